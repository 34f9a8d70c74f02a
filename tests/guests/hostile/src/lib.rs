//! Test guest: an Edge Cookie provider that misbehaves on purpose, for the hosts' end-to-end tests.
//!
//! Its config key `mode` (read through `wasi:config/store`) picks the misbehaviour:
//!
//! | `mode`       | `generate` does                                                                  |
//! |--------------|----------------------------------------------------------------------------------|
//! | `loop`       | spins forever; the host must cut it off (fuel or epoch deadline)                 |
//! | `grow`       | allocates and touches 1 MiB chunks without bound until the memory limit traps it |
//! | `trap`       | executes `unreachable`                                                           |
//! | `set-cookie` | returns id `hostile-id` plus `Set-Cookie: evil=1` and `x-provider-debug: 1`      |
//! | `ok`         | returns id `hostile-ok` and no headers                                           |
//!
//! A missing or unknown mode is a config error. The manifest requires `store-on-device`, like a
//! real Edge Cookie provider, so the guest runs only where such a provider would.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

// Generated bindings and export glue: the only unsafe code in a guest.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "edge-cookie-provider",
        path: "../../../wit",
        generate_all,
    });
    // Exported only from the component: natively the export symbols' names (`pkg:iface@ver#fn`)
    // cannot be linked into a `cdylib`, and native builds exist only for unit tests and clippy.
    #[cfg(target_arch = "wasm32")]
    use super::HostileGuest;
    #[cfg(target_arch = "wasm32")]
    export!(HostileGuest with_types_in self);
}

use bindings::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest, Manifest};
use bindings::gatehouse::provider::evidence::Request;
use bindings::gatehouse::provider::types::ResponseHeader;
use bindings::wasi;

/// The misbehaviour selected by the config key `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `loop`: never return.
    Loop,
    /// `grow`: allocate memory without bound.
    Grow,
    /// `trap`: trap the instance.
    Trap,
    /// `set-cookie`: ask for headers the host must filter out.
    SetCookie,
    /// `ok`: behave, with a fixed id.
    Ok,
}

/// Every mode, by its config value.
const MODES: [(&str, Mode); 5] = [
    ("loop", Mode::Loop),
    ("grow", Mode::Grow),
    ("trap", Mode::Trap),
    ("set-cookie", Mode::SetCookie),
    ("ok", Mode::Ok),
];

/// Parses the config value of `mode`.
///
/// # Errors
/// A message naming the `mode` key when the value is missing or names no mode.
pub fn parse_mode(value: Option<&str>) -> Result<Mode, String> {
    let value = value.ok_or_else(|| String::from("`mode`: missing"))?;
    MODES.iter().find(|(name, _)| *name == value).map(|(_, mode)| *mode).ok_or_else(|| {
        format!("`mode`: unknown mode `{value}`, expected one of `loop`, `grow`, `trap`, `set-cookie`, `ok`")
    })
}

struct HostileGuest;

impl Guest for HostileGuest {
    fn describe() -> Manifest {
        Manifest {
            id: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
        }
    }

    fn generate(_req: &Request, _current: Option<String>) -> Result<EcOutput, EcError> {
        let value = wasi::config::store::get("mode")
            .map_err(|_| EcError::Config("`mode`: config store unavailable".into()))?;
        let mode = parse_mode(value.as_deref()).map_err(EcError::Config)?;
        Ok(misbehave(mode))
    }
}

/// Carries out `mode`; only `set-cookie` and `ok` return.
fn misbehave(mode: Mode) -> EcOutput {
    match mode {
        Mode::Loop => spin_forever(),
        Mode::Grow => grow_forever(),
        Mode::Trap => trap(),
        Mode::SetCookie => EcOutput {
            id: Some("hostile-id".into()),
            headers: alloc::vec![
                header("Set-Cookie", "evil=1"),
                header("x-provider-debug", "1")
            ],
        },
        Mode::Ok => EcOutput {
            id: Some("hostile-ok".into()),
            headers: Vec::new(),
        },
    }
}

fn header(name: &str, value: &str) -> ResponseHeader {
    ResponseHeader {
        name: name.into(),
        value: value.into(),
    }
}

/// An infinite loop the optimizer cannot delete: `black_box` makes every iteration observable.
fn spin_forever() -> ! {
    let mut iterations: u64 = 0;
    loop {
        iterations = core::hint::black_box(iterations.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks and writes to every page of each, keeping them all, until allocation
/// fails (the allocation-error path then traps).
fn grow_forever() -> ! {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = alloc::vec![0u8; CHUNK];
        for byte in chunk.iter_mut().step_by(PAGE) {
            *byte = 1;
        }
        hoard.push(core::hint::black_box(chunk));
    }
}

#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    panic!("hostile guest: `trap` mode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_mode_parses() {
        assert_eq!(parse_mode(Some("loop")), Ok(Mode::Loop));
        assert_eq!(parse_mode(Some("grow")), Ok(Mode::Grow));
        assert_eq!(parse_mode(Some("trap")), Ok(Mode::Trap));
        assert_eq!(parse_mode(Some("set-cookie")), Ok(Mode::SetCookie));
        assert_eq!(parse_mode(Some("ok")), Ok(Mode::Ok));
    }

    #[test]
    fn missing_or_unknown_mode_is_a_config_error_naming_the_key() {
        assert_eq!(parse_mode(None), Err("`mode`: missing".into()));
        let err = parse_mode(Some("LOOP")).expect_err("modes are case-sensitive");
        assert!(err.starts_with("`mode`: unknown mode `LOOP`"), "{err}");
    }

    #[test]
    fn set_cookie_mode_asks_for_forbidden_headers() {
        let out = misbehave(Mode::SetCookie);
        assert_eq!(out.id.as_deref(), Some("hostile-id"));
        let headers: Vec<_> = out
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            headers,
            [("Set-Cookie", "evil=1"), ("x-provider-debug", "1")]
        );
    }

    #[test]
    fn ok_mode_returns_a_fixed_id_and_no_headers() {
        let out = misbehave(Mode::Ok);
        assert_eq!(out.id.as_deref(), Some("hostile-ok"));
        assert!(out.headers.is_empty());
    }

    #[test]
    #[should_panic(expected = "trap")]
    fn trap_mode_does_not_return() {
        misbehave(Mode::Trap);
    }
}
