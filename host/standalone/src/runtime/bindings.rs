//! Generated bindings for the three provider worlds. Private to the runtime: the rest of the host
//! sees only [`super::ProviderRuntime`].
#![allow(missing_docs, clippy::all)]

/// The Edge Cookie world; also generates the shared imports.
pub mod ec {
    wasmtime::component::bindgen!({
        world: "edge-cookie-provider",
        path: "../../wit",
    });
}

/// The device world, reusing the shared import bindings.
pub mod device {
    wasmtime::component::bindgen!({
        world: "device-provider",
        path: "../../wit",
        with: {
            "gatehouse:provider/types": super::ec::gatehouse::provider::types,
            "gatehouse:provider/evidence": super::ec::gatehouse::provider::evidence,
            "gatehouse:provider/transport": super::ec::gatehouse::provider::transport,
            "wasi:config/store": super::ec::wasi::config::store,
            "wasi:random/random": super::ec::wasi::random::random,
            "wasi:clocks/wall-clock": super::ec::wasi::clocks::wall_clock,
        },
    });
}

/// The geo world, reusing the shared import bindings.
pub mod geo {
    wasmtime::component::bindgen!({
        world: "geo-provider",
        path: "../../wit",
        with: {
            "gatehouse:provider/types": super::ec::gatehouse::provider::types,
            "gatehouse:provider/evidence": super::ec::gatehouse::provider::evidence,
            "wasi:config/store": super::ec::wasi::config::store,
            "wasi:random/random": super::ec::wasi::random::random,
            "wasi:clocks/wall-clock": super::ec::wasi::clocks::wall_clock,
        },
    });
}

pub use ec::gatehouse::provider::{evidence, types};
pub use ec::wasi::clocks::wall_clock;
pub use ec::wasi::config::store as config_store;
pub use ec::wasi::random::random;
