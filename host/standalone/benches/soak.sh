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
cd "$(dirname "$0")/../../.."

duration="${1:-300}"
hogs="${2:-2}"
ua='Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36'
for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "soak.sh: needs \`$tool\`" >&2; exit 1; }
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

cat >"$work/soak.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[origin]
url = "builtin:demo"
[runtime]
cache_dir = "$work/cache"
[runtime.answer_cache]
enabled = false
[geo]
default_country = "US"
provider = "header-geo"
[geo.providers.header-geo]
country_header = "x-geo-country"
[device]
provider = "ua-device"
[ec]
provider = "hmac"
[ec.providers.hmac]
passphrase = "soak-passphrase"
[store]
enabled = false
TOML
GATEHOUSE_LOG=warn "$bin" serve --config "$work/soak.toml" >"$work/out" 2>"$work/err" &
server_pid="$!"
pids+=("$server_pid")
url=""
for _ in $(seq 1 400); do
    url="$(sed -n 's/^gatehouse listening on //p' "$work/out")"
    [ -n "$url" ] && break
    sleep 0.05
done
[ -n "$url" ] || { echo "soak.sh: the server did not start:" >&2; cat "$work/err" >&2; exit 1; }
curl -s -o /dev/null -D - -A "$ua" "$url/" | grep -qi '^set-cookie: ts-ec=' \
    || { echo "soak.sh: the server set no ts-ec" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
failures() {
    curl -s "$url/_ts/metrics" | awk '/^gatehouse_provider_failures_total/ {n += $2} END {print n + 0}'
}

for _ in $(seq 1 "$hogs"); do
    sh -c 'while :; do :; done' &
    pids+=("$!")
done

echo "soak: ${duration}s, wrk 1 thread 32 connections, $hogs CPU hogs beside it, $(nproc) cores"
wrk -t1 -c32 -d"${duration}s" --latency -H "User-Agent: $ua" "$url/" >"$work/wrk.txt" &
wrk_pid="$!"
pids+=("$wrk_pid")
: >"$work/rss"
elapsed=0
while kill -0 "$wrk_pid" 2>/dev/null; do
    sleep 10
    elapsed=$((elapsed + 10))
    rss="$(rss_kib)"
    echo "$rss" >>"$work/rss"
    printf '  t=%4ds  rss %7d KiB  provider failures so far %s\n' "$elapsed" "$rss" "$(failures)"
done
wait "$wrk_pid" || true

if grep -q 'Non-2xx' "$work/wrk.txt"; then
    echo "soak.sh: non-2xx responses:" >&2; cat "$work/wrk.txt" >&2; exit 1
fi
requests="$(awk '/requests in/ {print $1}' "$work/wrk.txt")"
echo "requests: $requests ($(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")/s), 3 provider calls each"
echo "provider failures (all kinds and reasons):"
curl -s "$url/_ts/metrics" | grep '^gatehouse_provider_failures_total' || echo "  none"
awk '{v[NR] = $1} END {
    third = int(NR / 3); if (third < 1) third = 1
    for (i = 1; i <= third; i++) a += v[i]
    for (i = NR - third + 1; i <= NR; i++) b += v[i]
    printf "rss: first third avg %.0f KiB, last third avg %.0f KiB (%+.1f%%), min %d, max %d\n",
        a / third, b / third, (b - a) / a * 100, min(v, NR), max(v, NR)
}
function min(v, n,  m, i) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] < m) m = v[i]; return m }
function max(v, n,  m, i) { m = v[1]; for (i = 2; i <= n; i++) if (v[i] > m) m = v[i]; return m }' "$work/rss"
[ "$(failures)" = 0 ] || { echo "soak.sh: providers failed under load" >&2; exit 1; }
