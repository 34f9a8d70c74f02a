//! Why a provider could not be loaded: one error type for the load operation, naming the provider,
//! the config key to look at, and a typed reason.

use std::path::PathBuf;

use gatehouse_core::provider::ProviderFailure;
use gatehouse_core::provider::manifest::{ManifestError, Quoted};

/// A provider that could not be loaded. Displays as ``provider `NAME` (`KEY`): REASON``.
#[derive(Debug, thiserror::Error)]
#[error("provider `{provider}` (`{key}`): {reason}")]
pub struct LoadError {
    /// The provider's config name (`-` for engine-wide problems, the file for `inspect`).
    pub provider: String,
    /// The config key to fix, e.g. `ec.providers.hmac`, `ec.providers.hmac.sha256`,
    /// `runtime.max_core_instances_per_component`.
    pub key: String,
    /// What went wrong (part of the message, so not repeated as a `source`).
    pub reason: LoadErrorReason,
}

/// What went wrong while loading a provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorReason {
    /// The wasm engine could not be created from `[runtime]`.
    #[error("cannot create the wasm engine: {message}")]
    Engine {
        /// wasmtime's message.
        message: String,
    },
    /// No bundled provider of this kind has this name.
    #[error("no such bundled provider")]
    UnknownBundled,
    /// The component file could not be read.
    #[error("cannot read `{path}`: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file's digest is not the pinned one.
    #[error("digest mismatch for `{path}`: config pins sha256 {expected}, file has {actual}")]
    Digest {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The bytes are not a component wasmtime can compile.
    #[error("not a valid component: {message}")]
    Compile {
        /// wasmtime's message.
        message: String,
    },
    /// The component needs more than a configured sandbox limit allows.
    #[error("needs more than the sandbox allows: {message}; raise `{limit_key}` to load it")]
    PoolLimit {
        /// The `[runtime]` key of the limit.
        limit_key: &'static str,
        /// wasmtime's description of the excess.
        message: String,
    },
    /// The component imports interfaces this host does not offer.
    #[error("imports {} which this host does not offer", backticked(.imports))]
    MissingImports {
        /// Every import not offered, in the component's order.
        imports: Vec<String>,
    },
    /// The component does not export the interface of the configured kind.
    #[error("does not export `{interface}`: is it a `{section}` provider?")]
    WrongWorld {
        /// The interface expected.
        interface: &'static str,
        /// The config section it was configured under.
        section: &'static str,
    },
    /// The component exports the interface at an incompatible version.
    #[error("exports `{interface}@{version}`, not compatible with this host's {supported}")]
    IncompatibleVersion {
        /// The interface.
        interface: &'static str,
        /// The version it exports.
        version: String,
        /// The version this host implements.
        supported: &'static str,
    },
    /// Linking or instantiating the component failed.
    #[error("cannot instantiate: {message}")]
    Link {
        /// wasmtime's message.
        message: String,
    },
    /// `describe` did not return (trap, deadline, exit, ...).
    #[error("`describe` failed: {0}")]
    DescribeFailed(ProviderFailure),
    /// `describe` returned an error: the provider refuses its settings.
    #[error("`describe` refused the settings: {0}")]
    DescribeRefused(Quoted),
    /// The manifest is invalid.
    #[error("{0}")]
    Manifest(ManifestError),
}

fn backticked(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `[runtime]` key of the pooling-allocator limit a compile error reports, if it is one.
///
/// wasmtime reports these as plain messages (`validate_component` in its pooling allocator); the
/// patterns are pinned to wasmtime `=48.0.8` and each has a test, so an upgrade that rewords one
/// fails the tests instead of degrading the message.
#[must_use]
pub fn pool_limit_key(message: &str) -> Option<&'static str> {
    const PATTERNS: &[(&str, &str)] = &[
        (
            "core module instances, which exceeds",
            "runtime.max_core_instances_per_component",
        ),
        (
            "Wasm linear memories, which exceeds",
            "runtime.max_memories_per_component",
        ),
        (
            "defined memories count",
            "runtime.max_memories_per_component",
        ),
        ("tables, which exceeds", "runtime.max_tables_per_component"),
        ("defined tables count", "runtime.max_tables_per_component"),
        ("memory has a minimum byte size", "runtime.memory_limit_mib"),
    ];
    PATTERNS
        .iter()
        .find(|(pattern, _)| message.contains(pattern))
        .map(|(_, key)| *key)
}
