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
#   isolated + the pure providers' answer cache, every pipeline handed to a blocking thread
#            (`runtime.inline_budget_ms = 0`)
#   full     the defaults: the answer cache, and pipelines whose providers' CPU budgets add up to
#            at most `runtime.inline_budget_ms` (15 ms; the three bundled ones: 15 ms) run on the
#            async worker
#   stored   `full` with the default embedded identity store (redb: a returning visitor's record
#            is read, a new one written durably)
#
# Each Gatehouse server is checked before it is measured (`full` mints for a permitted visitor).
# The ratio to `hyper` in the same run is what to compare.
#
# Usage: host/standalone/benches/realistic.sh [SECONDS=10] [CONNECTIONS=32]
# Needs wrk, curl and python3. Binds 127.0.0.1 only; every server it starts is stopped on exit.
set -euo pipefail
script=realistic.sh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

duration="${1:-10}"
connections="${2:-32}"
bench_setup wrk curl python3
cargo build --release --locked -p gatehouse --example bare_hyper >&2

# config EXTRA: a server trusting loopback's X-Forwarded-For and CDN facts; EXTRA continues `[geo]`.
config() {
    printf '[server]\nlisten = "127.0.0.1:0"\ntrusted_proxies = ["127.0.0.1"]\nclient_ip_header = "x-forwarded-for"\n[origin]\nurl = "builtin:demo"\n[geo]\ndefault_country = "US"\n%s\n' "$1"
}

"$target/examples/bare_hyper" >"$work/hyper.out" 2>"$work/hyper.err" &
pids+=("$!")
bench_wait hyper 'bare hyper listening on'
hyper="$started_url"
bench_serve none "$(config '')"
none="$started_url"
bench_serve nocache "$(config "$bench_providers
[runtime.answer_cache]
enabled = false
[store]
enabled = false")"
nocache="$started_url"
bench_serve isolated "$(config "$bench_providers
[store]
enabled = false")
[runtime]
inline_budget_ms = 0"
isolated="$started_url"
bench_serve full "$(config "$bench_providers
[store]
enabled = false")"
full="$started_url"
bench_serve stored "$(config "$bench_providers")"
stored="$started_url"
# `full` mints for a permitted visitor; `none` never does.
bench_expect_cookie "$full" yes -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Geo-Country: US'
bench_expect_cookie "$none" no -H 'X-Geo-Country: US'

# The traffic. Returning visitors get their cookie from `stored`, so their records exist there;
# the HMAC provider keeps a cookie minted with the same passphrase for the same client on every
# server.
python3 host/standalone/benches/realistic_traffic.py "$stored" "$work/traffic.lua"

echo "wrk: 1 thread, $connections connections, ${duration}s per server; $(nproc) cores shared with the server; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %12s %9s %10s %10s\n' server 'requests/s' 'vs hyper' 'p50' 'p99'
measure() { bench_wrk "$1" -c"$connections" -d"${duration}s" -s "$work/traffic.lua"; }
measure "$hyper"
hyper_rps="$rps"
printf '%-8s %12.0f %9s %10s %10s\n' hyper "$hyper_rps" 1.00 "$p50" "$p99"
for name in none nocache isolated full stored; do
    measure "${!name}"
    printf '%-8s %12.0f %9.2f %10s %10s\n' "$name" "$rps" "$(awk -v a="$rps" -v b="$hyper_rps" 'BEGIN {print a / b}')" "$p50" "$p99"
done
echo "answer cache of \`full\` after its run:"
curl -s "$full/_ts/metrics" | grep -E 'answer_cache' | grep -v '^#' || echo "  (no answer-cache metrics)"
