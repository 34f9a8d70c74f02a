//! Static composition of a provider component into a host component, with `wac-graph`.
//!
//! This is how hosts that cannot load components at run time (Fastly Compute, a `wasi:http/proxy`
//! host) use providers: a host component imports a provider interface (e.g.
//! `gatehouse:provider/edge-cookie@0.2.0`), and [`compose`] plugs a provider's export of that
//! interface into it, producing one component. Everything either side imports and the other does
//! not export stays an import of the result (for a provider built from the published worlds:
//! `wasi:random/random` and `wasi:clocks/wall-clock`, plus the type-only
//! `gatehouse:provider/types`), so the result runs on any host that offers those.
//!
//! The 0.2 contract makes this possible: a provider imports nothing the calling host component
//! implements (evidence and settings are values, not host resources), so the graph has no cycle.
//! The crate's tests (`tests/all`) build a small host component and compose the repository's
//! providers into it; this module never runs a component itself.

use thiserror::Error;
use wac_graph::types::Package;
use wac_graph::{
    AliasError, CompositionGraph, EncodeError, EncodeOptions, ExportError,
    InstantiationArgumentError, RegisterPackageError,
};

/// Why [`compose`] could not build the composed component.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// A component's bytes could not be read as a component (`role` is `host` or `provider`).
    #[error("the {role} component is not a valid component")]
    Parse {
        /// `host` or `provider`.
        role: &'static str,
        /// What the parser reported.
        #[source]
        source: anyhow_compat::BoxError,
    },
    /// The graph refused a package (both components have the same package name).
    #[error("registering the {role} component")]
    Register {
        /// `host` or `provider`.
        role: &'static str,
        /// The graph's error.
        #[source]
        source: RegisterPackageError,
    },
    /// The provider does not export the interface.
    #[error("the provider does not export `{interface}`")]
    ProviderExport {
        /// The interface name, e.g. `gatehouse:provider/edge-cookie@0.2.0`.
        interface: String,
        /// The graph's error.
        #[source]
        source: AliasError,
    },
    /// The host does not import the interface, or its import's type differs from the export.
    #[error("the host component cannot take the provider's `{interface}`")]
    Plug {
        /// The interface name.
        interface: String,
        /// The graph's error, which names the mismatching item.
        #[source]
        source: InstantiationArgumentError,
    },
    /// One of the host's exports could not be re-exported from the composition.
    #[error("re-exporting the host's `{name}`")]
    Export {
        /// The export's name.
        name: String,
        /// The graph's error.
        #[source]
        source: ExportErrorKind,
    },
    /// Encoding or validating the composed component failed.
    #[error("encoding the composed component")]
    Encode(#[source] EncodeError),
}

/// The two ways re-exporting a host export can fail.
#[derive(Debug, Error)]
pub enum ExportErrorKind {
    /// Aliasing the export from the host instance.
    #[error(transparent)]
    Alias(#[from] AliasError),
    /// Exporting it from the composition.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Boxed parser errors: `wac-types` reports them as `anyhow::Error`, which a library does not
/// expose as its own error type.
pub mod anyhow_compat {
    /// A parse error from `wac-types`, as a boxed standard error.
    pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
}

/// Plugs `provider`'s export `interface` into `host`'s import of the same name and returns the
/// composed component, which exports everything `host` exports.
///
/// # Errors
/// [`ComposeError`] names the step that failed: a component that does not parse, a provider
/// without the export, a host that does not import it (or with another type), or an invalid
/// result.
pub fn compose(host: &[u8], provider: &[u8], interface: &str) -> Result<Vec<u8>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let provider_pkg = Package::from_bytes(
        "gatehouse:plugged-provider",
        None,
        provider.to_vec(),
        graph.types_mut(),
    )
    .map_err(|e| ComposeError::Parse {
        role: "provider",
        source: e.into(),
    })?;
    let provider_pkg =
        graph
            .register_package(provider_pkg)
            .map_err(|source| ComposeError::Register {
                role: "provider",
                source,
            })?;
    let host_pkg = Package::from_bytes("gatehouse:host", None, host.to_vec(), graph.types_mut())
        .map_err(|e| ComposeError::Parse {
            role: "host",
            source: e.into(),
        })?;
    let host_exports: Vec<String> = graph.types()[host_pkg.ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    let host_pkg = graph
        .register_package(host_pkg)
        .map_err(|source| ComposeError::Register {
            role: "host",
            source,
        })?;

    let provider_instance = graph.instantiate(provider_pkg);
    let export = graph
        .alias_instance_export(provider_instance, interface)
        .map_err(|source| ComposeError::ProviderExport {
            interface: interface.to_string(),
            source,
        })?;
    let host_instance = graph.instantiate(host_pkg);
    graph
        .set_instantiation_argument(host_instance, interface, export)
        .map_err(|source| ComposeError::Plug {
            interface: interface.to_string(),
            source,
        })?;
    for name in host_exports {
        let node = graph
            .alias_instance_export(host_instance, &name)
            .map_err(|e| ComposeError::Export {
                name: name.clone(),
                source: e.into(),
            })?;
        graph
            .export(node, &name)
            .map_err(|e| ComposeError::Export {
                name: name.clone(),
                source: e.into(),
            })?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(ComposeError::Encode)
}
