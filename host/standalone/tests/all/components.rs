//! The bundled provider components import exactly what their world needs: no WASI beyond what the
//! provider uses (no `wasi:cli`, `wasi:io`, filesystem or sockets), read from the compiled
//! components by wasmtime itself.

use std::collections::BTreeSet;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

fn imports(path: &str) -> BTreeSet<String> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).expect("engine");
    let component = Component::from_file(&engine, path).expect("component");
    component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn hmac_imports_only_evidence_config_and_randomness() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC")),
        set(&[
            "gatehouse:provider/types@0.1.0",
            "gatehouse:provider/evidence@0.1.0",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:random/random@0.2.6",
        ])
    );
}

#[test]
fn ua_device_imports_only_evidence() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_UA_DEVICE")),
        set(&[
            "gatehouse:provider/types@0.1.0",
            "gatehouse:provider/evidence@0.1.0"
        ])
    );
}

#[test]
fn header_geo_imports_only_evidence_and_config() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HEADER_GEO")),
        set(&[
            "gatehouse:provider/types@0.1.0",
            "gatehouse:provider/evidence@0.1.0",
            "wasi:config/store@0.2.0-rc.1",
        ])
    );
}
