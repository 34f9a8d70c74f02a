//! Generated bindings for the three provider worlds of `gatehouse:provider@0.2.0`. Private to the
//! runtime: the rest of the host sees only [`super::ProviderRuntime`].
//!
//! The worlds' WASI imports (`wasi:random/random`, `wasi:clocks/wall-clock`) map to
//! `wasmtime-wasi`'s bindings, so one implementation serves providers built against any 0.2.x.
#![allow(missing_docs, clippy::all)]

/// The Edge Cookie world; also generates the shared `types` interface.
pub mod ec {
    wasmtime::component::bindgen!({
        world: "edge-cookie-provider",
        path: "../../wit",
        with: {
            "wasi:random/random": wasmtime_wasi::p2::bindings::random::random,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
        },
    });
}

/// The device world, reusing the shared bindings.
pub mod device {
    wasmtime::component::bindgen!({
        world: "device-provider",
        path: "../../wit",
        with: {
            "gatehouse:provider/types": super::ec::gatehouse::provider::types,
            "wasi:random/random": wasmtime_wasi::p2::bindings::random::random,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
        },
    });
}

/// The geo world, reusing the shared bindings.
pub mod geo {
    wasmtime::component::bindgen!({
        world: "geo-provider",
        path: "../../wit",
        with: {
            "gatehouse:provider/types": super::ec::gatehouse::provider::types,
            "wasi:random/random": wasmtime_wasi::p2::bindings::random::random,
            "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
        },
    });
}

pub use ec::gatehouse::provider::types;
