//! The provider contract as the core sees it (`gatehouse:provider@0.2.0` in `wit/`): the three
//! kinds, their answers and failures, the request evidence a provider declares it reads, the
//! evidence value built from exactly those reads, and the [`ProviderHost`] trait every host
//! implements (a wasmtime sandbox, a statically composed component, a test mock).
//!
//! Invariants this module owns:
//! - [`Evidence::collect`] fills only the fields a provider's [`Reads`] declare; everything else is
//!   `None`/empty whatever the request carried. A host passes that value to the provider as is.
//! - [`Reads`] never contains a header in [`FORBIDDEN_READ_HEADERS`] (or one the publisher forbids):
//!   such a manifest is refused before a [`ProviderSpec`] exists.
//!
//! This module must never perform I/O or read a clock.

pub mod manifest;

use std::net::IpAddr;

use crate::policy::PermissionSet;

/// Request headers no provider may ever declare: they carry the visitor's or another party's
/// secrets. A publisher may forbid more in config.
pub const FORBIDDEN_READ_HEADERS: &[&str] = &["cookie", "authorization", "proxy-authorization"];

/// The three provider kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Geolocation.
    Geo,
    /// Device classification.
    Device,
    /// Edge Cookie identity.
    EdgeCookie,
}

impl ProviderKind {
    /// The config section naming this kind (`geo`, `device`, `ec`).
    #[must_use]
    pub fn section(self) -> &'static str {
        match self {
            Self::Geo => "geo",
            Self::Device => "device",
            Self::EdgeCookie => "ec",
        }
    }
}

/// A geo provider's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, if known.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country prefix, if known.
    pub region: Option<String>,
}

/// The broad class of a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceClass {
    /// An automated client. Bots never receive an Edge Cookie.
    Bot,
    /// A phone.
    Mobile,
    /// A tablet.
    Tablet,
    /// A desktop browser.
    Desktop,
    /// Not enough evidence (also the fail-closed answer).
    #[default]
    Unknown,
}

/// A device provider's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    /// The device class.
    pub class: DeviceClass,
    /// For bots, the crawler's name when known.
    pub bot_name: Option<String>,
}

/// An Edge Cookie provider's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcOutput {
    /// The identifier to set, if any.
    pub id: Option<String>,
    /// Extra response headers the provider asks for (not yet filtered).
    pub headers: Vec<(String, String)>,
}

/// Why a provider call produced no answer. Every failure is handled fail-closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFailure {
    /// The provider trapped (panic, `unreachable`, out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The call ran past its deadline and was interrupted.
    #[error("deadline exceeded")]
    Deadline,
    /// The provider tried to grow its memory past the configured cap.
    #[error("memory limit exceeded")]
    MemoryLimit,
    /// The provider could not be instantiated.
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The provider returned its own error variant.
    #[error("provider error: {0}")]
    Provider(String),
    /// The provider returned a value the host rejects (e.g. an Edge Cookie value with `;`).
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The provider called `exit` (WASI `wasi:cli/exit`) with this status.
    #[error("exited with status {0}")]
    Exit(i32),
}

impl ProviderFailure {
    /// A short stable label for metrics and logs (`trap`, `deadline`, `memory`, ...).
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Trap(_) => "trap",
            Self::Deadline => "deadline",
            Self::MemoryLimit => "memory",
            Self::Instantiate(_) => "instantiate",
            Self::Provider(_) => "provider-error",
            Self::InvalidOutput(_) => "invalid-output",
            Self::Exit(_) => "exit",
        }
    }
}

/// One piece of request evidence a provider declares it reads (WIT `types.read`). Serialized
/// with the WIT case names (`"client-ip"`, `{"header": "x-geo-country"}`), as in a composed
/// host's deployment document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Read {
    /// The trusted client address.
    ClientIp,
    /// The `User-Agent` header.
    UserAgent,
    /// One request header, by lowercase name.
    Header(String),
    /// The request path.
    Path,
    /// The query string.
    Query,
    /// The JA4 TLS fingerprint (host-specific).
    Ja4,
    /// The HTTP/2 fingerprint (host-specific).
    Http2Fingerprint,
}

/// A provider's declared reads, normalised: flags plus the lowercase header names in declaration
/// order, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reads {
    /// Reads the client address.
    pub client_ip: bool,
    /// Reads the `User-Agent` header.
    pub user_agent: bool,
    /// Reads these request headers (lowercase, no duplicates, never a forbidden one).
    pub headers: Vec<String>,
    /// Reads the path.
    pub path: bool,
    /// Reads the query string.
    pub query: bool,
    /// Reads the JA4 fingerprint.
    pub ja4: bool,
    /// Reads the HTTP/2 fingerprint.
    pub http2_fingerprint: bool,
}

impl Reads {
    /// Normalises a manifest's list of reads (lowercases header names, drops duplicates). Does not
    /// validate: manifest validation refuses forbidden or malformed names first.
    #[must_use]
    pub fn from_declared<'a>(reads: impl IntoIterator<Item = &'a Read>) -> Self {
        let mut out = Self::default();
        for read in reads {
            match read {
                Read::ClientIp => out.client_ip = true,
                Read::UserAgent => out.user_agent = true,
                Read::Header(name) => {
                    let name = name.to_ascii_lowercase();
                    if !out.headers.contains(&name) {
                        out.headers.push(name);
                    }
                }
                Read::Path => out.path = true,
                Read::Query => out.query = true,
                Read::Ja4 => out.ja4 = true,
                Read::Http2Fingerprint => out.http2_fingerprint = true,
            }
        }
        out
    }
}

/// A read-only view of the request being served, implemented by each host over its own HTTP types.
pub trait RequestView {
    /// The request method (`GET`, ...).
    fn method(&self) -> &str;
    /// The path, without the query string.
    fn path(&self) -> &str;
    /// The raw query string without `?`, if any.
    fn query(&self) -> Option<&str>;
    /// Every value of header `name` (lowercase), in request order. Values that are not valid
    /// UTF-8 are skipped.
    fn header_values(&self, name: &str) -> Vec<&str>;
    /// The client address the host trusts (the peer, or what a trusted proxy reported).
    fn client_ip(&self) -> Option<IpAddr>;
    /// The JA4 fingerprint, when this host can supply it.
    fn ja4(&self) -> Option<&str> {
        None
    }
    /// The HTTP/2 fingerprint, when this host can supply it.
    fn http2_fingerprint(&self) -> Option<&str> {
        None
    }
}

/// The evidence value one provider call receives (WIT `types.evidence`): only what was declared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Evidence {
    /// The client address, if declared and known.
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent`, if declared and present.
    pub user_agent: Option<String>,
    /// Declared headers the request carried, `(lowercase name, values joined with ", ")`, in
    /// declaration order.
    pub headers: Vec<(String, String)>,
    /// The path, if declared.
    pub path: Option<String>,
    /// The query string, if declared and present.
    pub query: Option<String>,
    /// The JA4 fingerprint, if declared and known.
    pub ja4: Option<String>,
    /// The HTTP/2 fingerprint, if declared and known.
    pub http2_fingerprint: Option<String>,
}

impl Evidence {
    /// Builds the evidence for a provider that declared `reads`, from `request`. Nothing
    /// undeclared is copied.
    #[must_use]
    pub fn collect(reads: &Reads, request: &dyn RequestView) -> Self {
        let joined = |name: &str| {
            let values = request.header_values(name);
            (!values.is_empty()).then(|| values.join(", "))
        };
        Self {
            client_ip: if reads.client_ip {
                request.client_ip()
            } else {
                None
            },
            user_agent: if reads.user_agent {
                joined("user-agent")
            } else {
                None
            },
            headers: reads
                .headers
                .iter()
                .filter_map(|name| joined(name).map(|value| (name.clone(), value)))
                .collect(),
            path: reads.path.then(|| request.path().to_owned()),
            query: if reads.query {
                request.query().map(str::to_owned)
            } else {
                None
            },
            ja4: if reads.ja4 {
                request.ja4().map(str::to_owned)
            } else {
                None
            },
            http2_fingerprint: if reads.http2_fingerprint {
                request.http2_fingerprint().map(str::to_owned)
            } else {
                None
            },
        }
    }
}

/// What the core needs to know about a configured provider to gate it and feed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSpec {
    /// The permissions its data use requires (from its validated manifest).
    pub required: PermissionSet,
    /// The evidence it reads (from its validated manifest).
    pub reads: Reads,
}

/// How a host runs providers. The core calls each method at most once per request, only when
/// the configured provider's required permissions are held, and passes the [`Evidence`] built
/// from that provider's declared reads.
pub trait ProviderHost {
    /// The configured provider of `kind`, or `None` when the deployment configures none.
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec>;
    /// Runs the geo provider.
    ///
    /// # Errors
    /// Any [`ProviderFailure`]; the request continues fail-closed.
    fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure>;
    /// Runs the device provider.
    ///
    /// # Errors
    /// Any [`ProviderFailure`]; the request continues with an `unknown` device.
    fn classify(&mut self, evidence: &Evidence) -> Result<Classification, ProviderFailure>;
    /// Runs the Edge Cookie provider with the request's current cookie value.
    ///
    /// # Errors
    /// Any [`ProviderFailure`]; the request continues without an Edge Cookie.
    fn generate_edge_cookie(
        &mut self,
        evidence: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure>;
}
