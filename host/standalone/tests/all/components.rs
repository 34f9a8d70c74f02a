//! The bundled provider components (no_std, built with the SDK's `rt` feature) import exactly what
//! they use: no WASI beyond it (no `wasi:cli`, `wasi:io`, filesystem or sockets), read from the compiled
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
fn hmac_imports_only_the_contract_types_and_randomness() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC")),
        set(&["gatehouse:provider/types@0.2.0", "wasi:random/random@0.2.6"])
    );
}

#[test]
fn ua_device_imports_only_the_contract_types() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_UA_DEVICE")),
        set(&["gatehouse:provider/types@0.2.0"])
    );
}

#[test]
fn header_geo_imports_only_the_contract_types() {
    assert_eq!(
        imports(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HEADER_GEO")),
        set(&["gatehouse:provider/types@0.2.0"])
    );
}
