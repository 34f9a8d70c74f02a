//! Builds the provider components this host bundles, and the guest components its tests load, for
//! `wasm32-wasip2` with the size-optimised `component` profile.
//!
//! The nested cargo uses its own target directory so it never waits on the outer build's lock.
//! For each package `NAME` it sets `GATEHOUSE_COMPONENT_<NAME>` (uppercase, `-` → `_`) to the
//! component's path: bundled providers are embedded with `include_bytes!`, tests read the guests.

use std::path::PathBuf;
use std::process::Command;

/// `no_std` packages built into components (with the SDK's `rt` feature): the bundled providers
/// first, then the test guests.
const NO_STD_COMPONENTS: &[&str] = &[
    "gatehouse-provider-hmac",
    "gatehouse-provider-host-signals",
    "gatehouse-provider-client-side",
    "gatehouse-provider-client-fixed",
    "gatehouse-provider-ua-device",
    "gatehouse-provider-header-geo",
    "gatehouse-guest-unknown-permission",
    "gatehouse-guest-transport",
    "gatehouse-absent-provider",
];

/// `std` packages. Built by a separate cargo run: features unify across the packages of one run,
/// and the SDK's `rt` feature (a panic handler and global allocator) must not reach a `std` crate.
const STD_COMPONENTS: &[&str] = &[
    "gatehouse-guest-hostile",
    "gatehouse-guest-filesystem",
    "gatehouse-host-wasi-http",
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    for dir in [
        "wit",
        "providers",
        "tests/guests",
        "host/wasi-http",
        "host/component-common",
        "host/absent-provider",
        "core/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    // `<outer target dir>/components`: OUT_DIR is `<target>/<profile>/build/<pkg>-<hash>/out`.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map_or_else(|| out_dir.join("components"), |t| t.join("components"));

    for group in [NO_STD_COMPONENTS, STD_COMPONENTS] {
        build_components(&root, &target_dir, group);
    }
}

/// Builds `packages` in one cargo run and exports `GATEHOUSE_COMPONENT_<NAME>` for each.
fn build_components(root: &std::path::Path, target_dir: &std::path::Path, packages: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "component",
            "--target-dir",
        ])
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("run cargo for the wasm components");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\n\nhint: run `rustup target add wasm32-wasip2`"
            } else {
                ""
            };
        panic!("building the provider components failed:\n{stderr}{hint}");
    }
    for package in packages {
        let file = target_dir
            .join("wasm32-wasip2/component")
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "missing component {}", file.display());
        println!(
            "cargo:rustc-env=GATEHOUSE_COMPONENT_{}={}",
            package.to_uppercase().replace('-', "_"),
            file.display()
        );
    }
}
