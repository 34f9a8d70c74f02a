#!/usr/bin/env bash
# Realistic-traffic load test (issue 11): Gatehouse against a bare hyper server returning the same
# page, side by side in one run, with a request mix of many visitors (see realistic_traffic.py:
# 5,000 client IPs through a trusted proxy's X-Forwarded-For, 300 User-Agents, 17 countries,
# TCF / GPC / US Privacy signals, 60% returning visitors with their Edge Cookie). Every request is
# a page load.
#
#   hyper    examples/bare_hyper.rs: the same hyper server stack answering the demo page, nothing else
#   none     Gatehouse without providers: client IP, consent, permission resolution, proxying
#   noec     + the geo and device providers (pure: answered from the answer cache), no Edge
#            Cookie provider: what `full` would be if its one impure call cost nothing
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
# The ratio to `hyper` in the same run is what to compare. This machine's speed drifts by tens
# of percent within minutes (a shared VM), so the servers are measured in ROUNDS rounds, each
# measuring every server in turn; the table gives each server's median requests/s and the
# median of its per-round ratios to `hyper` (each ratio taken within one round, a minute apart
# at most).
#
# Usage: host/standalone/benches/realistic.sh [SECONDS=10] [CONNECTIONS=32] [ROUNDS=3]
# Needs wrk, curl and python3. Binds 127.0.0.1 only; every server it starts is stopped on exit.
set -euo pipefail
script=realistic.sh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

duration="${1:-10}"
connections="${2:-32}"
rounds="${3:-3}"
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
bench_serve noec "$(config 'provider = "header-geo"
[geo.providers.header-geo]
country_header = "x-geo-country"
[device]
provider = "ua-device"
[store]
enabled = false')"
noec="$started_url"
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
bench_expect_cookie "$noec" no -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Geo-Country: US'

# The traffic. Returning visitors get their cookie from `stored`, so their records exist there;
# the HMAC provider keeps a cookie minted with the same passphrase for the same client on every
# server.
python3 host/standalone/benches/realistic_traffic.py "$stored" "$work/traffic.lua"

echo "wrk: 1 thread, $connections connections, ${duration}s per server, $rounds rounds; $(nproc) cores shared with the server; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
measure() { bench_wrk "$1" -c"$connections" -d"${duration}s" -s "$work/traffic.lua"; }
servers=(hyper none noec nocache isolated full stored)
declare -A all_rps all_ratio all_p50 all_p99
for round in $(seq 1 "$rounds"); do
    line="round $round:"
    for name in "${servers[@]}"; do
        measure "${!name}"
        [ "$name" = hyper ] && hyper_rps="$rps"
        ratio="$(awk -v a="$rps" -v b="$hyper_rps" 'BEGIN {printf "%.3f", a / b}')"
        all_rps[$name]+="$rps "
        all_ratio[$name]+="$ratio "
        all_p50[$name]+="$p50 "
        all_p99[$name]+="$p99 "
        line+=" $name $(printf '%.0f' "$rps") ($ratio)"
    done
    echo "$line"
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-8s %12s %9s %10s %10s   %s\n' server 'requests/s' 'vs hyper' 'p50 last' 'p99 last' 'per-round ratios'
for name in "${servers[@]}"; do
    printf '%-8s %12.0f %9.2f %10s %10s   %s\n' "$name" "$(echo "${all_rps[$name]}" | median)" \
        "$(echo "${all_ratio[$name]}" | median)" "$(echo "${all_p50[$name]}" | tr ' ' '\n' | grep -v '^$' | tail -1)" \
        "$(echo "${all_p99[$name]}" | tr ' ' '\n' | grep -v '^$' | tail -1)" "${all_ratio[$name]}"
done
echo "answer cache of \`full\` after its run:"
curl -s "$full/_ts/metrics" | grep -E 'answer_cache' | grep -v '^#' || echo "  (no answer-cache metrics)"
