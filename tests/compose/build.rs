//! Builds the components the composition tests use, for `wasm32-wasip2`:
//!
//! - the test guests `compose-caller` (a host component) and `compose-ec` (a provider importing
//!   only its world), with the workspace's size-optimised `component` profile;
//! - the out-of-tree std Rust example `examples/vendor-rust`, exactly as its README builds it
//!   (`cargo build --target wasm32-wasip2 --release`, plus `--locked`), in its own workspace.
//!
//! Each nested cargo uses its own target directory under the outer one, so it never waits on the
//! outer build's lock. The paths reach the tests as `GATEHOUSE_COMPONENT_<NAME>` (uppercase,
//! `-` → `_`) and `GATEHOUSE_EXAMPLE_VENDOR_RUST`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Workspace packages built into components.
const GUESTS: &[&str] = &[
    "gatehouse-guest-compose-caller",
    "gatehouse-guest-compose-ec",
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
        "providers/sdk",
        "tests/guests/compose-caller",
        "tests/guests/compose-ec",
        "examples/vendor-rust/src",
        "examples/vendor-rust/Cargo.toml",
        "examples/vendor-rust/Cargo.lock",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    // `<outer target dir>`: OUT_DIR is `<target>/<profile>/build/<pkg>-<hash>/out`.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map_or_else(|| out_dir.clone(), Path::to_path_buf);

    let guests_dir = target_dir.join("compose-components");
    let mut cmd = cargo(&root);
    cmd.args([
        "build",
        "--target",
        "wasm32-wasip2",
        "--profile",
        "component",
        "--target-dir",
    ])
    .arg(&guests_dir);
    for package in GUESTS {
        cmd.args(["-p", package]);
    }
    run(cmd, "the composition test guests");
    for package in GUESTS {
        let file = guests_dir
            .join("wasm32-wasip2/component")
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "missing component {}", file.display());
        println!(
            "cargo:rustc-env=GATEHOUSE_COMPONENT_{}={}",
            package.to_uppercase().replace('-', "_"),
            file.display()
        );
    }

    let example_dir = target_dir.join("vendor-rust-example");
    let mut cmd = cargo(&root.join("examples/vendor-rust"));
    cmd.args([
        "build",
        "--target",
        "wasm32-wasip2",
        "--release",
        "--locked",
        "--target-dir",
    ])
    .arg(&example_dir);
    run(cmd, "examples/vendor-rust");
    let file = example_dir.join("wasm32-wasip2/release/example_edge_cookie.wasm");
    assert!(file.exists(), "missing component {}", file.display());
    println!(
        "cargo:rustc-env=GATEHOUSE_EXAMPLE_VENDOR_RUST={}",
        file.display()
    );
}

/// A cargo command in `dir`, without the flags meant for the outer (host) build.
fn cargo(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir);
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
    cmd
}

fn run(mut cmd: Command, what: &str) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("run cargo for {what}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\n\nhint: run `rustup target add wasm32-wasip2`"
            } else {
                ""
            };
        panic!("building {what} failed:\n{stderr}{hint}");
    }
}
