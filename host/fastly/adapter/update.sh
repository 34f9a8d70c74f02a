#!/usr/bin/env bash
# Replaces the vendored adapter with the one in the crates.io package `viceroy-lib` VERSION and
# prints its sha256 (put it in host/standalone/build.rs and README.md here).
set -euo pipefail
version="${1:?usage: update.sh VERSION (e.g. 0.22.0)}"
cd "$(dirname "$0")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "https://static.crates.io/crates/viceroy-lib/viceroy-lib-$version.crate" -o "$tmp/crate.tar.gz"
sha256sum "$tmp/crate.tar.gz"
tar -xzf "$tmp/crate.tar.gz" -C "$tmp" "viceroy-lib-$version/wasm_abi/data/viceroy-component-adapter.noshift.wasm"
cp "$tmp/viceroy-lib-$version/wasm_abi/data/viceroy-component-adapter.noshift.wasm" .
sha256sum viceroy-component-adapter.noshift.wasm
