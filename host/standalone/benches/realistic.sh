#!/usr/bin/env bash
# Realistic-traffic load test (issue 11): Gatehouse against a bare hyper server returning the same
# page, side by side in one run, with a request mix of many visitors (see realistic_traffic.py:
# 5,000 client IPs through a trusted proxy's X-Forwarded-For, 300 User-Agents, 17 countries,
# TCF / GPC / US Privacy signals, 60% returning visitors with their Edge Cookie). Every request is
# a page load.
#
#   hyper    examples/bare_hyper.rs: the same hyper server stack answering the demo page, nothing else
#   none     Gatehouse without providers: client IP, consent, permission resolution, proxying
#   nocache  + geo, device and Edge Cookie providers, a fresh instance per call, answer cache off
#   full     + the pure providers' answer cache (`[runtime.answer_cache]`, the default)
#   stored   `full` with the default embedded identity store (redb: a returning visitor's record
#            is read, a new one written durably)
#
# Each Gatehouse server is checked before it is measured (`full` mints for a permitted visitor).
# The ratio to `hyper` in the same run is what to compare.
#
# Usage: host/standalone/benches/realistic.sh [SECONDS=10] [CONNECTIONS=32]
# Needs wrk, curl and python3. Binds 127.0.0.1 only; every server it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../../.."

duration="${1:-10}"
connections="${2:-32}"
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "realistic.sh: needs \`$tool\`" >&2; exit 1; }
done

cargo build --release --locked -p gatehouse --bin gatehouse --example bare_hyper >&2
target="${CARGO_TARGET_DIR:-target}/release"
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

# wait_for NAME PREFIX: sets `started_url` from the line of $work/NAME.out starting with PREFIX.
wait_for() {
    local url=""
    for _ in $(seq 1 400); do
        url="$(sed -n "s/^$2 //p" "$work/$1.out")"
        [ -n "$url" ] && break
        sleep 0.05
    done
    [ -n "$url" ] || { echo "realistic.sh: \`$1\` did not start:" >&2; cat "$work/$1.err" >&2; exit 1; }
    started_url="$url"
}

# start NAME EXTRA_TOML: a Gatehouse server trusting loopback's X-Forwarded-For and CDN facts.
start() {
    cat >"$work/$1.toml" <<TOML
[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]
client_ip_header = "x-forwarded-for"
[origin]
url = "builtin:demo"
[runtime]
cache_dir = "$work/cache"
[geo]
default_country = "US"
$2
TOML
    GATEHOUSE_LOG=warn "$target/gatehouse" serve --config "$work/$1.toml" >"$work/$1.out" 2>"$work/$1.err" &
    pids+=("$!")
    wait_for "$1" 'gatehouse listening on'
}

"$target/examples/bare_hyper" >"$work/hyper.out" 2>"$work/hyper.err" &
pids+=("$!")
wait_for hyper 'bare hyper listening on'
hyper="$started_url"
start none ''
none="$started_url"
start nocache "$providers
[runtime.answer_cache]
enabled = false
[store]
enabled = false"
nocache="$started_url"
start full "$providers
[store]
enabled = false"
full="$started_url"
start stored "$providers"
stored="$started_url"

# `full` mints for a permitted visitor; `none` never does.
curl -s -o /dev/null -D "$work/full.head" -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Geo-Country: US' \
    -H 'Sec-Fetch-Dest: document' -A 'Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0' "$full/"
grep -qi '^set-cookie: ts-ec=' "$work/full.head" || { echo "realistic.sh: \`full\` set no ts-ec" >&2; exit 1; }
curl -s -o /dev/null -D "$work/none.head" -H 'X-Geo-Country: US' "$none/"
if grep -qi '^set-cookie: ts-ec=' "$work/none.head"; then echo "realistic.sh: \`none\` set ts-ec" >&2; exit 1; fi

# The traffic. Returning visitors get their cookie from `stored`, so their records exist there;
# the HMAC provider keeps a cookie minted with the same passphrase for the same client on every
# server.
python3 host/standalone/benches/realistic_traffic.py "$stored" "$work/traffic.lua"

measure() {
    wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/traffic.lua" "$1/" >"$work/wrk.txt"
    if grep -q 'Non-2xx' "$work/wrk.txt"; then
        echo "realistic.sh: non-2xx responses from $1:" >&2; cat "$work/wrk.txt" >&2; exit 1
    fi
    awk '/^Requests\/sec:/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print rps, p50, p99}' \
        "$work/wrk.txt" >"$work/result.txt"
    read -r rps p50 p99 <"$work/result.txt"
    [ -n "$p99" ] || { echo "realistic.sh: cannot read wrk's output:" >&2; cat "$work/wrk.txt" >&2; exit 1; }
}

echo "wrk: 1 thread, $connections connections, ${duration}s per server; $(nproc) cores shared with the server; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %12s %9s %10s %10s\n' server 'requests/s' 'vs hyper' 'p50' 'p99'
measure "$hyper"
hyper_rps="$rps"
printf '%-8s %12.0f %9s %10s %10s\n' hyper "$hyper_rps" 1.00 "$p50" "$p99"
for name in none nocache full stored; do
    measure "${!name}"
    printf '%-8s %12.0f %9.2f %10s %10s\n' "$name" "$rps" "$(awk -v a="$rps" -v b="$hyper_rps" 'BEGIN {print a / b}')" "$p50" "$p99"
done
echo "answer cache of \`full\` after its run:"
curl -s "$full/_ts/metrics" | grep -E 'answer_cache' | grep -v '^#' || echo "  (no answer-cache metrics)"
