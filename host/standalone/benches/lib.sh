# Shared by the load scripts (load.sh, realistic.sh, soak.sh); sourced, not run. The caller sets
# `script` (its name, for messages) and runs `set -euo pipefail` first.
#
# After `bench_setup TOOL...`: the repository root is the working directory, `work` is a scratch
# directory, `target` is the release output directory, and every pid appended to `pids` is killed
# on exit (the scratch directory is removed).

# The three bundled providers (geo from a CDN header, device from the User-Agent, the HMAC Edge
# Cookie); continues a `[geo]` table.
bench_providers='
provider = "header-geo"
[geo.providers.header-geo]
country_header = "x-geo-country"
[device]
provider = "ua-device"
[ec]
provider = "hmac"
[ec.providers.hmac]
passphrase = "load-test-passphrase"
'

# A browser User-Agent.
bench_ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36'

bench_fail() { echo "$script: $*" >&2; exit 1; }

# bench_setup TOOL...: checks the tools, builds the release binary, makes the scratch directory.
bench_setup() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || bench_fail "needs \`$tool\` (Debian: apt-get install $tool)"
    done
    cargo build --release --locked -p gatehouse >&2
    target="${CARGO_TARGET_DIR:-target}/release"
    work="$(mktemp -d)"
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}

# bench_wait NAME PREFIX: waits for the line of $work/NAME.out starting with `PREFIX ` and sets
# `started_url` to the rest of it.
bench_wait() {
    local url=""
    for _ in $(seq 1 400); do
        url="$(sed -n "s/^$2 //p" "$work/$1.out")"
        [ -n "$url" ] && break
        sleep 0.05
    done
    [ -n "$url" ] || { cat "$work/$1.err" >&2; bench_fail "\`$1\` did not start"; }
    started_url="$url"
}

# bench_serve NAME CONFIG: starts `gatehouse serve` with CONFIG (TOML text) written to
# $work/NAME/gatehouse.toml (so each server's default identity store, next to its config, is
# its own) and sets `started_url` and `started_pid`. Runs in this shell (not in `$(...)`), so
# the pid reaches `pids`. Only warnings are logged: a line per request would measure the terminal.
bench_serve() {
    mkdir -p "$work/$1"
    printf '%s\n' "$2" >"$work/$1/gatehouse.toml"
    GATEHOUSE_LOG=warn "$target/gatehouse" serve --config "$work/$1/gatehouse.toml" >"$work/$1.out" 2>"$work/$1.err" &
    started_pid="$!"
    pids+=("$started_pid")
    bench_wait "$1" 'gatehouse listening on'
}

# bench_expect_cookie URL yes|no [CURL_ARGS...]: checks that a request does (not) get `ts-ec`.
bench_expect_cookie() {
    local url="$1" want="$2" got=no
    shift 2
    curl -s -o /dev/null -D - -A "$bench_ua" "$@" "$url/" | grep -qi '^set-cookie: ts-ec=' && got=yes
    [ "$got" = "$want" ] || bench_fail "$url set ts-ec: $got, expected $want"
}

# bench_wrk URL WRK_ARGS...: one wrk run (1 thread, `--latency`); fails on any non-2xx answer
# and sets `rps`, `p50`, `p99` and `requests`.
bench_wrk() {
    local url="$1"
    shift
    wrk -t1 --latency "$@" "$url/" >"$work/wrk.txt"
    if grep -q 'Non-2xx' "$work/wrk.txt"; then
        cat "$work/wrk.txt" >&2
        bench_fail "non-2xx responses from $url"
    fi
    awk '/^Requests\/sec:/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /requests in/ {n=$1}
         END {print rps, p50, p99, n}' "$work/wrk.txt" >"$work/result.txt"
    read -r rps p50 p99 requests <"$work/result.txt"
    [ -n "${requests:-}" ] || { cat "$work/wrk.txt" >&2; bench_fail "cannot read wrk's output"; }
}
