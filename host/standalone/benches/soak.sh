#!/usr/bin/env bash
# Soak test (issue 8): `gatehouse serve` with the three bundled providers under sustained load
# beside CPU hogs, checking that well-behaved providers never miss their budget and that memory
# stays flat.
#
# - The server: geo, device and Edge Cookie providers, default US (all three run on every page
#   load), the answer cache off (so every request makes three fresh-instance calls), no store.
# - wrk: 1 thread, 32 connections, a browser User-Agent, no cookies (every response mints).
# - HOGS busy-looping processes (default 2, one per core) run for the whole soak, so the server
#   is always contended for CPU: the case where a wall-clock budget used to cut providers off.
# - Every 10 s: the server's resident memory (VmRSS) and the provider failure counters from
#   `/_ts/metrics`. At the end: the totals, and the RSS of the first and last thirds.
#
# Usage: host/standalone/benches/soak.sh [SECONDS=300] [HOGS=2]
# Needs wrk and curl. Binds 127.0.0.1 only; the server and the hogs are stopped on exit.
set -euo pipefail
script=soak.sh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

duration="${1:-300}"
hogs="${2:-2}"
bench_setup wrk curl

bench_serve soak "[server]
listen = \"127.0.0.1:0\"
[origin]
url = \"builtin:demo\"
[runtime.answer_cache]
enabled = false
[geo]
default_country = \"US\"
$bench_providers
[store]
enabled = false"
url="$started_url"
server_pid="$started_pid"
bench_expect_cookie "$url" yes

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
failures() {
    curl -s "$url/_ts/metrics" | awk '/^gatehouse_provider_failures_total/ {n += $2} END {print n + 0}'
}

for _ in $(seq 1 "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
done

echo "soak: ${duration}s, wrk 1 thread 32 connections, $hogs CPU hogs beside it, $(nproc) cores"
bench_wrk "$url" -c32 -d"${duration}s" -H "User-Agent: $bench_ua" &
wrk_job="$!"
: >"$work/rss"
elapsed=0
while kill -0 "$wrk_job" 2>/dev/null; do
    sleep 10
    elapsed=$((elapsed + 10))
    rss="$(rss_kib)"
    echo "$rss" >>"$work/rss"
    printf '  t=%4ds  rss %7d KiB  provider failures so far %s\n' "$elapsed" "$rss" "$(failures)"
done
wait "$wrk_job"
read -r rps p50 p99 requests <"$work/result.txt"
echo "requests: $requests (${rps}/s, p50 $p50, p99 $p99), 3 provider calls each"
echo "provider failures (all kinds and reasons):"
curl -s "$url/_ts/metrics" | grep '^gatehouse_provider_failures_total' || echo "  none"
awk '{v[NR] = $1} END {
    third = int(NR / 3); if (third < 1) third = 1
    for (i = 1; i <= third; i++) a += v[i]
    for (i = NR - third + 1; i <= NR; i++) b += v[i]
    lo = v[1]; hi = v[1]
    for (i = 2; i <= NR; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
    printf "rss: first third avg %.0f KiB, last third avg %.0f KiB (%+.1f%%), min %d, max %d\n",
        a / third, b / third, (b - a) / a * 100, lo, hi
}' "$work/rss"
[ "$(failures)" = 0 ] || bench_fail "providers failed under load"
