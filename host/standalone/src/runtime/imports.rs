//! What a provider component may import and must export, matched semver-compatibly (any 0.2.x
//! of an interface this host offers at 0.2.y), as the wasmtime linker matches them.

use gatehouse_core::provider::ProviderKind;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::LoadErrorReason;

/// The interfaces the standalone host offers providers, at the versions it implements. The
/// `wasi:*` entries are `wasmtime-wasi`'s WASI 0.2 (locked down: see `state`).
pub const OFFERED: &[&str] = &[
    "gatehouse:provider/types@0.2.0",
    "wasi:random/random@0.2.12",
    "wasi:random/insecure@0.2.12",
    "wasi:random/insecure-seed@0.2.12",
    "wasi:clocks/wall-clock@0.2.12",
    "wasi:clocks/monotonic-clock@0.2.12",
    "wasi:io/error@0.2.12",
    "wasi:io/poll@0.2.12",
    "wasi:io/streams@0.2.12",
    "wasi:cli/environment@0.2.12",
    "wasi:cli/exit@0.2.12",
    "wasi:cli/stdin@0.2.12",
    "wasi:cli/stdout@0.2.12",
    "wasi:cli/stderr@0.2.12",
    "wasi:cli/terminal-input@0.2.12",
    "wasi:cli/terminal-output@0.2.12",
    "wasi:cli/terminal-stdin@0.2.12",
    "wasi:cli/terminal-stdout@0.2.12",
    "wasi:cli/terminal-stderr@0.2.12",
    "wasi:filesystem/types@0.2.12",
    "wasi:filesystem/preopens@0.2.12",
    "wasi:sockets/network@0.2.12",
    "wasi:sockets/instance-network@0.2.12",
    "wasi:sockets/ip-name-lookup@0.2.12",
    "wasi:sockets/tcp@0.2.12",
    "wasi:sockets/tcp-create-socket@0.2.12",
    "wasi:sockets/udp@0.2.12",
    "wasi:sockets/udp-create-socket@0.2.12",
];

/// The provider interface version this host implements.
pub const PROVIDER_INTERFACE_VERSION: &str = "0.2.0";

/// The exported interface of each kind, and the world it belongs to.
#[must_use]
pub fn interface_of(kind: ProviderKind) -> (&'static str, &'static str) {
    match kind {
        ProviderKind::Geo => ("gatehouse:provider/geo", "geo-provider"),
        ProviderKind::Device => ("gatehouse:provider/device", "device-provider"),
        ProviderKind::EdgeCookie => ("gatehouse:provider/edge-cookie", "edge-cookie-provider"),
    }
}

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

/// Whether an import or export at version `wanted` is served by `offered` (semver rules; a
/// pre-release must match exactly; for 0.x the minor version is the breaking one, and any patch
/// of the same 0.x is compatible, as in the wasmtime linker).
fn version_compatible(offered: &str, wanted: &str) -> bool {
    if offered.contains('-') || wanted.contains('-') {
        return offered == wanted;
    }
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut it = v.split('.').map(str::parse::<u64>);
        Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
    };
    let (Some(o), Some(w)) = (parse(offered), parse(wanted)) else {
        return false;
    };
    if o.0 != w.0 {
        return false;
    }
    if o.0 == 0 { o.1 == w.1 } else { true }
}

/// Whether this host offers import `name`.
fn offered(name: &str) -> bool {
    let (iface, version) = split_version(name);
    OFFERED.iter().any(|offered| {
        let (o_iface, o_version) = split_version(offered);
        o_iface == iface
            && match (o_version, version) {
                (Some(o), Some(w)) => version_compatible(o, w),
                _ => false,
            }
    })
}

/// Every import of `component`, in its order.
#[must_use]
pub fn imports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Refuses a component importing anything not in [`OFFERED`], listing every such import.
///
/// # Errors
/// [`LoadErrorReason::MissingImports`].
pub fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadErrorReason> {
    let missing: Vec<String> = imports(engine, component)
        .into_iter()
        .filter(|name| !offered(name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LoadErrorReason::MissingImports { imports: missing })
    }
}

/// The provider kind `component` exports, checking the version.
///
/// # Errors
/// [`LoadErrorReason::WrongWorld`] when it exports none of the three provider interfaces (or
/// not `expected`, when given), [`LoadErrorReason::IncompatibleVersion`] for another version.
pub fn exported_kind(
    engine: &Engine,
    component: &Component,
    expected: Option<ProviderKind>,
) -> Result<ProviderKind, LoadErrorReason> {
    let kinds = [
        ProviderKind::EdgeCookie,
        ProviderKind::Device,
        ProviderKind::Geo,
    ];
    for (name, _) in component.component_type().exports(engine) {
        let (iface, version) = split_version(name);
        let Some(kind) = kinds
            .into_iter()
            .filter(|k| expected.is_none_or(|e| e == *k))
            .find(|k| interface_of(*k).0 == iface)
        else {
            continue;
        };
        let version = version.unwrap_or("");
        if !version_compatible(PROVIDER_INTERFACE_VERSION, version) {
            return Err(LoadErrorReason::IncompatibleVersion {
                interface: interface_of(kind).0,
                version: version.to_owned(),
                supported: PROVIDER_INTERFACE_VERSION,
            });
        }
        return Ok(kind);
    }
    let kind = expected.unwrap_or(ProviderKind::EdgeCookie);
    Err(LoadErrorReason::WrongWorld {
        interface: interface_of(kind).0,
        section: kind.section(),
    })
}

#[cfg(test)]
mod tests {
    use super::{offered, version_compatible};

    #[test]
    fn any_patch_of_the_same_0_x_is_compatible() {
        assert!(version_compatible("0.2.0", "0.2.0"));
        assert!(version_compatible("0.2.12", "0.2.6"));
        assert!(version_compatible("0.2.6", "0.2.12"));
        assert!(!version_compatible("0.2.0", "0.3.0"));
        assert!(!version_compatible("0.1.0", "0.2.0"));
        assert!(version_compatible("1.4.0", "1.9.9"));
        assert!(!version_compatible("1.4.0", "2.0.0"));
        assert!(version_compatible("0.2.0-rc.1", "0.2.0-rc.1"));
        assert!(!version_compatible("0.2.0-rc.1", "0.2.0-rc.2"));
    }

    #[test]
    fn newer_wasi_patch_versions_are_offered() {
        assert!(offered("wasi:cli/stdout@0.2.0"));
        assert!(offered("wasi:io/streams@0.2.99"));
        assert!(!offered("wasi:io/streams@0.3.0"));
        assert!(!offered("wasi:config/store@0.2.0-rc.1"));
        assert!(!offered("wasi:http/outgoing-handler@0.2.0"));
    }
}
