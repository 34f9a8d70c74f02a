#!/usr/bin/env bash
# Server-level load test: throughput and latency of `gatehouse serve`, four configurations side
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
script=load.sh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

duration="${1:-10}"
connections="${2:-32}"
bench_setup wrk curl

# config DEFAULT_COUNTRY EXTRA: a server proxying to the demo origin; EXTRA continues `[geo]`.
config() {
    printf '[server]\nlisten = "127.0.0.1:0"\n[origin]\nurl = "builtin:demo"\n[geo]\ndefault_country = "%s"\n%s\n' "$1" "$2"
}

bench_serve bare "$(config FR '')"
bare="$started_url"
bench_serve gated "$(config FR "$bench_providers
[store]
enabled = false")"
gated="$started_url"
bench_serve full "$(config US "$bench_providers
[store]
enabled = false")"
full="$started_url"
# The store file is created next to the config, in the server's own scratch dir.
bench_serve stored "$(config US "$bench_providers")"
stored="$started_url"
bench_expect_cookie "$bare" no
bench_expect_cookie "$gated" no
bench_expect_cookie "$full" yes
bench_expect_cookie "$stored" yes
[ -f "$work/stored/gatehouse-store.redb" ] || bench_fail "\`stored\` has no store file"

echo "wrk: 1 thread, $connections connections, ${duration}s per configuration; $(nproc) cores shared with the server; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %12s %8s %10s %10s\n' config 'requests/s' 'vs bare' 'p50' 'p99'
measure() { bench_wrk "$1" -c"$connections" -d"${duration}s" -H "User-Agent: $bench_ua"; }
measure "$bare"
bare_rps="$rps"
printf '%-6s %12.0f %8s %10s %10s\n' bare "$bare_rps" 1.00 "$p50" "$p99"
for name in gated full stored; do
    measure "${!name}"
    printf '%-6s %12.0f %8.2f %10s %10s\n' "$name" "$rps" "$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN {print a / b}')" "$p50" "$p99"
done
