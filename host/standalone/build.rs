//! Builds the provider components this host bundles, and the guest components its tests load, for
//! `wasm32-wasip2` with the size-optimised `component` profile.
//!
//! The nested cargo uses its own target directory so it never waits on the outer build's lock.
//! For each package `NAME` it sets `GATEHOUSE_COMPONENT_<NAME>` (uppercase, `-` → `_`) to the
//! component's path: bundled providers are embedded with `include_bytes!`, tests read the guests.
//!
//! The Fastly host (`host/fastly`) is built for `wasm32-wasip1` (the `fastly` crate's target) and
//! made a component here, as `viceroy adapt` does: its `fastly_*` imports are renamed into the
//! adapter's module and `wit-component` encodes it with the vendored Viceroy adapter
//! (`host/fastly/adapter/`, digest checked). `GATEHOUSE_COMPONENT_GATEHOUSE_HOST_FASTLY` names
//! the result.

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
        "host/fastly",
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
        build_components(&root, &target_dir, "wasm32-wasip2", group);
    }
    build_fastly_host(&root, &target_dir);
}

/// The Fastly host module's package.
const FASTLY_HOST: &str = "gatehouse-host-fastly";

/// sha256 of `host/fastly/adapter/viceroy-component-adapter.noshift.wasm` (Viceroy 0.22.0's).
const FASTLY_ADAPTER_SHA256: &str =
    "c742a62f2003ccbee6d7717c7b31610b713714c2722a5eaee28e9ceab5fb5e6f";

/// Builds the Fastly host module for `wasm32-wasip1`, adapts it into a component and exports
/// `GATEHOUSE_COMPONENT_GATEHOUSE_HOST_FASTLY`.
fn build_fastly_host(root: &std::path::Path, target_dir: &std::path::Path) {
    let module_path = build_components(root, target_dir, "wasm32-wasip1", &[FASTLY_HOST])
        .pop()
        .expect("one package built");
    let module = std::fs::read(&module_path).expect("read the Fastly host module");
    let adapter_path = root.join("host/fastly/adapter/viceroy-component-adapter.noshift.wasm");
    let adapter = std::fs::read(&adapter_path).expect("read the vendored Viceroy adapter");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&adapter));
    assert_eq!(
        digest,
        FASTLY_ADAPTER_SHA256,
        "{} is not the vendored Viceroy adapter (see host/fastly/adapter/README.md)",
        adapter_path.display()
    );
    let component = adapt_fastly_module(&module, &adapter)
        .unwrap_or_else(|e| panic!("adapting {} into a component: {e:#}", module_path.display()));
    let out = module_path.with_file_name("gatehouse_host_fastly.component.wasm");
    std::fs::write(&out, component).expect("write the Fastly host component");
    println!(
        "cargo:rustc-env=GATEHOUSE_COMPONENT_GATEHOUSE_HOST_FASTLY={}",
        out.display()
    );
}

/// What `viceroy adapt` does to a main module with wit-bindgen imports (Viceroy 0.22.0's
/// `adapt_bytes`): every import of a Fastly ABI module (`fastly_*`, `fastly`, `xqd`, `env`)
/// becomes an import of the adapter's module, `wasi_snapshot_preview1`, named
/// `module#name`; then the module and the adapter are encoded as one component.
fn adapt_fastly_module(
    module: &[u8],
    adapter: &[u8],
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let is_fastly_module =
        |m: &str| m.starts_with("fastly_") || matches!(m, "env" | "fastly" | "xqd");
    let mut renamed = wasm_encoder::Module::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload? {
            wasmparser::Payload::ImportSection(section) => {
                let mut imports = wasm_encoder::ImportSection::new();
                for group in section {
                    for import in group? {
                        let (_, import) = import?;
                        let entity =
                            wasm_encoder::EntityType::try_from(import.ty).map_err(|e| {
                                format!(
                                    "import `{}::{}` has an unsupported type: {e:?}",
                                    import.module, import.name
                                )
                            })?;
                        if is_fastly_module(import.module) {
                            let name = format!("{}#{}", import.module, import.name);
                            imports.import("wasi_snapshot_preview1", &name, entity);
                        } else {
                            imports.import(import.module, import.name, entity);
                        }
                    }
                }
                renamed.section(&imports);
            }
            payload => {
                if let Some((id, range)) = payload.as_section() {
                    let start = usize::try_from(range.start)?;
                    let end = usize::try_from(range.end)?;
                    renamed.section(&wasm_encoder::RawSection {
                        id,
                        data: &module[start..end],
                    });
                }
            }
        }
    }
    let component = wit_component::ComponentEncoder::default()
        .module(renamed.as_slice())?
        .adapter("wasi_snapshot_preview1", adapter)?
        .validate(true)
        .encode()?;
    Ok(component)
}

/// Builds `packages` for `target` in one cargo run and returns their files; for `wasm32-wasip2`
/// (components) it also exports `GATEHOUSE_COMPONENT_<NAME>` for each.
fn build_components(
    root: &std::path::Path,
    target_dir: &std::path::Path,
    target: &str,
    packages: &[&str],
) -> Vec<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--target",
            target,
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
        let hint = if stderr.contains(target) && stderr.contains("target may not be installed") {
            "\n\nhint: run `rustup target add wasm32-wasip2 wasm32-wasip1`"
        } else {
            ""
        };
        panic!("building the provider components failed:\n{stderr}{hint}");
    }
    let mut files = Vec::new();
    for package in packages {
        // A library's file is named with `_`, a binary's (the Fastly host) as the package.
        let dir = target_dir.join(target).join("component");
        let file = [package.replace('-', "_"), (*package).to_owned()]
            .into_iter()
            .map(|name| dir.join(format!("{name}.wasm")))
            .find(|file| file.exists())
            .unwrap_or_else(|| panic!("missing component for {package} in {}", dir.display()));
        if target == "wasm32-wasip2" {
            println!(
                "cargo:rustc-env=GATEHOUSE_COMPONENT_{}={}",
                package.to_uppercase().replace('-', "_"),
                file.display()
            );
        }
        files.push(file);
    }
    files
}
