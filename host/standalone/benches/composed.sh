#!/usr/bin/env bash
# The composed apps locally: the size of `gatehouse compose --target fastly` and
# `--target wasi-http` outputs, and their per-request time under Viceroy (Fastly's local runtime)
# and `wasmtime serve`, in one run. Two configurations, both on the built-in demo origin:
#
#   bare   no providers: the core's pipeline and the host glue only
#   full   the three bundled providers, default_country US: geo, device and Edge Cookie are
#          called for every request and every response sets `ts-ec`
#
# Both runtimes instantiate the whole composition afresh per request. The wasi:http app under
# `wasmtime serve` is the baseline of the same run; ratios are what to compare (wrk and the
# runtime share the machine's cores, and Viceroy is a development server, not Fastly's edge). The
# standalone host (`gatehouse serve`, release build) serves the same two configs beside them.
# `full` keeps identities in each host's store: redb (standalone), Viceroy's in-memory KV store
# (Fastly), `wasmtime serve -Skeyvalue`'s per-request bucket (wasi:http).
#
# Usage: host/standalone/benches/composed.sh [SECONDS=10] [CONNECTIONS=4]
# Needs wrk, curl, Viceroy 0.22 ($GATEHOUSE_VICEROY or ~/.cache/gatehouse-ci-tools/viceroy) and
# the wasmtime CLI ($GATEHOUSE_WASMTIME or ~/.cache/gatehouse-ci-tools/wasmtime-cli), as
# `.ci/run` installs them. Binds 127.0.0.1 only; every server it starts is stopped on exit.
set -euo pipefail
script=composed.sh
cd "$(dirname "$0")/../../.."
# shellcheck source=lib.sh
source host/standalone/benches/lib.sh

duration="${1:-10}"
connections="${2:-4}"
for tool in wrk curl; do
    command -v "$tool" >/dev/null || bench_fail "needs \`$tool\` (Debian: apt-get install $tool)"
done
viceroy="${GATEHOUSE_VICEROY:-$HOME/.cache/gatehouse-ci-tools/viceroy/bin/viceroy}"
wasmtime="${GATEHOUSE_WASMTIME:-$HOME/.cache/gatehouse-ci-tools/wasmtime-cli/bin/wasmtime}"
[ -x "$viceroy" ] || bench_fail "needs Viceroy at $viceroy (see .ci/run)"
[ -x "$wasmtime" ] || bench_fail "needs the wasmtime CLI at $wasmtime (see .ci/run)"
# One release build: it serves the standalone host measured beside the composed apps, and it
# composes them (compose's output does not depend on the binary's profile: the host and provider
# components are always built with the `component` profile).
cargo build --release --locked -p gatehouse >&2
target="${CARGO_TARGET_DIR:-target}/release"
gatehouse="$target/gatehouse"
work="$(mktemp -d)"
pids=()
trap bench_cleanup EXIT

config() {
    printf '[origin]\nurl = "builtin:demo"\n[geo]\ndefault_country = "US"\n%s\n' "$1"
}

port=7800
# serve NAME TARGET CONFIG: composes CONFIG for TARGET and serves it; sets `started_url`.
serve() {
    local name="$1" target="$2" dir="$work/$1"
    mkdir -p "$dir"
    printf '%s\n' "$3" >"$dir/gatehouse.toml"
    "$gatehouse" compose --config "$dir/gatehouse.toml" --target "$target" -o "$dir/app.wasm" >"$dir/compose.out"
    port=$((port + 1))
    if [ "$target" = fastly ]; then
        sed -n '/from this fastly.toml:/,/^serve it with:/p' "$dir/compose.out" | sed '1d;$d' >"$dir/fastly.toml"
        (cd "$dir" && exec "$viceroy" serve -C fastly.toml --addr "127.0.0.1:$port" app.wasm) >"$dir.out" 2>&1 &
    else
        "$wasmtime" serve -Scli -Sconfig -Skeyvalue --addr="127.0.0.1:$port" "$dir/app.wasm" >"$dir.out" 2>&1 &
    fi
    pids+=("$!")
    started_url="http://127.0.0.1:$port"
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "$started_url/_ts/health" && return 0
        sleep 0.1
    done
    cat "$dir.out" >&2
    bench_fail "\`$name\` did not start"
}

# A wasi:http component is not told the peer address: it reads this header (Fastly ignores it
# and uses the connection's, loopback here).
client='X-Forwarded-For: 203.0.113.7'
declare -A url
for platform in fastly wasi-http; do
    serve "$platform-bare" "$platform" "$(config '')"
    url[$platform-bare]="$started_url"
    serve "$platform-full" "$platform" "$(config "$bench_providers")"
    url[$platform-full]="$started_url"
    bench_expect_cookie "${url[$platform-bare]}" no -H "$client"
    bench_expect_cookie "${url[$platform-full]}" yes -H "$client"
done
# The standalone host: its client is loopback, which it trusts as the proxy in front, so it reads
# the same `X-Forwarded-For` as the wasi:http app.
standalone() {
    printf '[server]\nlisten = "127.0.0.1:0"\ntrusted_proxies = ["127.0.0.1"]\n%s\n' "$(config "$1")"
}
bench_serve standalone-bare "$(standalone '')"
url[standalone-bare]="$started_url"
bench_serve standalone-full "$(standalone "$bench_providers")"
url[standalone-full]="$started_url"
bench_expect_cookie "${url[standalone-bare]}" no -H "$client"
bench_expect_cookie "${url[standalone-full]}" yes -H "$client"

echo "sizes (bytes):"
for name in fastly-bare fastly-full wasi-http-bare wasi-http-full; do
    printf '  %-15s %9d\n' "$name" "$(stat -c %s "$work/$name/app.wasm")"
done
echo "wrk: 1 thread, $connections connections, ${duration}s per app; $(nproc) cores shared with the runtime; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-15s %12s %10s %10s %16s\n' app 'requests/s' 'p50' 'p99' 'vs wasi-http'
for config in bare full; do
    bench_wrk "${url[wasi-http-$config]}" -c"$connections" -d"${duration}s" -H "User-Agent: $bench_ua" -H "$client"
    base="$rps"
    printf '%-15s %12.0f %10s %10s %16s\n' "wasi-http-$config" "$rps" "$p50" "$p99" 1.00
    for host in fastly standalone; do
        bench_wrk "${url[$host-$config]}" -c"$connections" -d"${duration}s" -H "User-Agent: $bench_ua" -H "$client"
        printf '%-15s %12.0f %10s %10s %16.2f\n' "$host-$config" "$rps" "$p50" "$p99" "$(echo "$rps / $base" | bc -l)"
    done
done
