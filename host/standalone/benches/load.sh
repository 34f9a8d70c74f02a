#!/usr/bin/env bash
# Server-level load test: throughput and latency of `gatehouse serve`, three configurations side
# by side in one run, all proxying to the built-in demo origin on loopback:
#
#   bare   no providers: HTTP, client IP, consent extraction, permission resolution, proxy
#   gated  the three bundled providers, default_country FR: without consent the Edge Cookie
#          provider is never instantiated (geo and device still run: they need no permission)
#   full   the three bundled providers, default_country US: geo, device and Edge Cookie run for
#          every request (a fresh instance each), and every response sets `ts-ec`; no identity
#          store (`[store] enabled = false`)
#   stored `full` with the default identity store (an embedded redb file in the work dir): every
#          response's new `ts-ec` is first written to the store, add-only, durably (fsync)
#
# Ratios against `bare` are what to compare; absolute numbers depend on the machine (wrk and the
# server share its cores). Each server is checked before it is measured, so a run that does not
# do what its name says fails instead of printing numbers.
#
# Usage: host/standalone/benches/load.sh [SECONDS=10] [CONNECTIONS=32]
# Needs wrk (Debian: `apt-get install wrk`) and curl. Binds 127.0.0.1 only, on ports the server
# picks; every server it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../../.."

duration="${1:-10}"
connections="${2:-32}"
ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36'

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "load.sh: needs \`$tool\` (Debian: apt-get install $tool)" >&2; exit 1; }
done

cargo build --release --locked -p gatehouse >&2
bin="${CARGO_TARGET_DIR:-target}/release/gatehouse"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

providers='
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

# start NAME DEFAULT_COUNTRY PROVIDERS_TOML: starts a server and sets `started_url` to its base URL.
# PROVIDERS_TOML continues the `[geo]` table. Runs in this shell (not in `$(...)`), so the server's
# pid reaches `pids` and the EXIT trap stops it.
start() {
    local name="$1" country="$2" extra="$3"
    cat >"$work/$name.toml" <<EOF
[server]
listen = "127.0.0.1:0"
[origin]
url = "builtin:demo"
[geo]
default_country = "$country"
$extra
EOF
    # Only warnings: a log line per request would measure the terminal.
    GATEHOUSE_LOG=warn "$bin" serve --config "$work/$name.toml" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=("$!")
    local url=""
    for _ in $(seq 1 200); do
        url="$(sed -n 's/^gatehouse listening on //p' "$work/$name.out")"
        [ -n "$url" ] && break
        sleep 0.05
    done
    [ -n "$url" ] || { echo "load.sh: \`$name\` did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
    started_url="$url"
}

# expect_cookie URL yes|no: checks that a browser request does (not) get `ts-ec`.
expect_cookie() {
    local got=no
    curl -s -o /dev/null -D - -A "$ua" "$1/" | grep -qi '^set-cookie: ts-ec=' && got=yes
    [ "$got" = "$2" ] || { echo "load.sh: $1 set ts-ec: $got, expected $2" >&2; exit 1; }
}

start bare FR ''
bare="$started_url"
start gated FR "$providers"
gated="$started_url"
start full US "$providers
[store]
enabled = false"
full="$started_url"
start stored US "$providers"
stored="$started_url"
expect_cookie "$bare" no
expect_cookie "$gated" no
expect_cookie "$full" yes
expect_cookie "$stored" yes
[ -f "$work/gatehouse-store.redb" ] || { echo "load.sh: \`stored\` has no store file" >&2; exit 1; }

# measure URL: one wrk run; sets `rps`, `p50` and `p99`. Runs in this shell so a failure exits.
measure() {
    wrk -t1 -c"$connections" -d"${duration}s" --latency -H "User-Agent: $ua" "$1/" >"$work/wrk.txt"
    if grep -q 'Non-2xx' "$work/wrk.txt"; then
        echo "load.sh: non-2xx responses from $1:" >&2; cat "$work/wrk.txt" >&2; exit 1
    fi
    awk '/^Requests\/sec:/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print rps, p50, p99}' \
        "$work/wrk.txt" >"$work/result.txt"
    read -r rps p50 p99 <"$work/result.txt"
    [ -n "$p99" ] || { echo "load.sh: cannot read wrk's output:" >&2; cat "$work/wrk.txt" >&2; exit 1; }
}

echo "wrk: 1 thread, $connections connections, ${duration}s per configuration; $(nproc) cores shared with the server"
printf '%-6s %12s %8s %10s %10s\n' config 'requests/s' 'vs bare' 'p50' 'p99'
measure "$bare"
bare_rps="$rps"
printf '%-6s %12.0f %8s %10s %10s\n' bare "$bare_rps" 1.00 "$p50" "$p99"
for name in gated full stored; do
    measure "${!name}"
    printf '%-6s %12.0f %8.2f %10s %10s\n' "$name" "$rps" "$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN {print a / b}')" "$p50" "$p99"
done
