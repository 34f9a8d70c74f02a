//! Validation of a provider's manifest (WIT `types.manifest`), shared by every host and by
//! composition tooling: what a manifest may say before a provider is allowed to load.
//!
//! Invariants:
//! - A [`ValidManifest`] has an id matching `[a-z0-9-]{1,64}`, a semver version, bounded counts
//!   and lengths, no control characters anywhere, permissions the policy defines, and reads the
//!   host can supply; no read names a forbidden header ([`super::FORBIDDEN_READ_HEADERS`] or one
//!   the publisher forbids).
//! - A [`ManifestError`] never carries a control character or an unbounded value: values are
//!   quoted with [`quote`] (escaped, truncated), so an error can go to a log or `/_ts/health` as is.
//!
//! This module must never perform I/O.

use core::fmt;

use super::{FORBIDDEN_READ_HEADERS, ProviderSpec, Read, Reads};
use crate::policy::{Policy, UnknownPermission};

/// Longest manifest id.
pub const MAX_ID_LEN: usize = 64;
/// Longest version string.
pub const MAX_VERSION_LEN: usize = 64;
/// Most required permissions.
pub const MAX_PERMISSIONS: usize = 32;
/// Longest permission name.
pub const MAX_PERMISSION_LEN: usize = 64;
/// Most declared reads.
pub const MAX_READS: usize = 32;
/// Longest declared header name.
pub const MAX_HEADER_NAME_LEN: usize = 128;
/// The longest call budget a manifest may ask for, in milliseconds (the publisher's cap applies
/// on top).
pub const MAX_CALL_BUDGET_MS: u32 = 60_000;

/// A manifest as a provider's `describe` returned it (WIT `types.manifest`), not yet validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Stable identifier.
    pub id: String,
    /// The provider's version.
    pub version: String,
    /// Permissions its data use requires, by name.
    pub required_permissions: Vec<String>,
    /// The request evidence it reads.
    pub reads: Vec<Read>,
    /// The CPU time one call may use, if the provider asks for less (or more) than the default.
    pub call_budget_ms: Option<u32>,
}

/// What the host and the publisher allow a manifest to declare.
#[derive(Clone, Debug, Default)]
pub struct ManifestRules {
    /// Headers the publisher forbids in addition to [`FORBIDDEN_READ_HEADERS`] (any case).
    pub forbidden_headers: Vec<String>,
    /// Whether this host can supply the JA4 fingerprint.
    pub supplies_ja4: bool,
    /// Whether this host can supply the HTTP/2 fingerprint.
    pub supplies_http2_fingerprint: bool,
}

/// A manifest that passed [`validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidManifest {
    /// The id (`[a-z0-9-]{1,64}`).
    pub id: String,
    /// The semver version.
    pub version: String,
    /// The required permissions, by name, as declared.
    pub required_permissions: Vec<String>,
    /// The declared reads, as declared.
    pub reads: Vec<Read>,
    /// The requested call budget, if any (at most [`MAX_CALL_BUDGET_MS`]).
    pub call_budget_ms: Option<u32>,
    /// What the core needs to gate and feed the provider.
    pub spec: ProviderSpec,
}

/// Why a manifest was refused. Every message names the manifest field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A field holds a control character.
    #[error("manifest field `{field}` contains a control character: {value}")]
    ControlCharacter {
        /// The field, e.g. `id` or `reads[2]`.
        field: String,
        /// The value, quoted and escaped.
        value: Quoted,
    },
    /// A field is longer than allowed.
    #[error("manifest field `{field}` is {len} bytes long, more than the {max} allowed: {value}")]
    TooLong {
        /// The field.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
        /// The value, quoted, escaped and truncated.
        value: Quoted,
    },
    /// A list has more entries than allowed.
    #[error("manifest field `{field}` has {count} entries, more than the {max} allowed")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Its entry count.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The id is not `[a-z0-9-]{1,64}`.
    #[error("manifest field `id`: {value} is not `[a-z0-9-]{{1,64}}`")]
    InvalidId {
        /// The id, quoted.
        value: Quoted,
    },
    /// The version is not semver.
    #[error("manifest field `version`: {value} is not a semver version (`MAJOR.MINOR.PATCH`)")]
    InvalidVersion {
        /// The version, quoted.
        value: Quoted,
    },
    /// A declared header name is not a valid lowercase-insensitive HTTP field name.
    #[error("manifest field `{field}`: {value} is not an HTTP header name")]
    InvalidHeaderName {
        /// The field.
        field: String,
        /// The name, quoted.
        value: Quoted,
    },
    /// A declared header carries other parties' secrets.
    #[error(
        "manifest field `{field}`: header `{header}` can never be declared (it carries the visitor's or another party's secrets)"
    )]
    ForbiddenHeader {
        /// The field.
        field: String,
        /// The lowercase header name.
        header: String,
    },
    /// A declared read this host cannot supply.
    #[error("manifest field `{field}`: read `{read}` cannot be supplied by this host")]
    UnsupportedRead {
        /// The field.
        field: String,
        /// The read (`ja4`, `http2-fingerprint`).
        read: &'static str,
    },
    /// A required permission the policy does not define.
    #[error("manifest field `required-permissions`: {source}")]
    UnknownPermission {
        /// The policy's error, naming the permission.
        #[from]
        source: UnknownPermission,
    },
    /// The call budget is zero or absurdly large.
    #[error("manifest field `call-budget-ms`: {value} is not in 1..={MAX_CALL_BUDGET_MS}")]
    InvalidCallBudget {
        /// The requested budget.
        value: u32,
    },
}

/// A value quoted for an error message: in backticks, control and non-ASCII characters escaped,
/// truncated to a bounded length. Safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted(String);

/// The longest quoted excerpt of a value, in characters before escaping.
const QUOTE_CHARS: usize = 80;

/// Quotes `value` for an error message (see [`Quoted`]).
#[must_use]
pub fn quote(value: &str) -> Quoted {
    let mut out = String::from("`");
    for c in value.chars().take(QUOTE_CHARS) {
        out.extend(c.escape_default());
    }
    if value.chars().count() > QUOTE_CHARS {
        out.push_str("...");
    }
    out.push('`');
    Quoted(out)
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Read {
    /// The read's WIT name (`client-ip`, `header(x-geo-country)`, ...).
    #[must_use]
    pub fn wit_name(&self) -> String {
        match self {
            Self::ClientIp => "client-ip".into(),
            Self::UserAgent => "user-agent".into(),
            Self::Header(name) => format!("header({name})"),
            Self::Path => "path".into(),
            Self::Query => "query".into(),
            Self::Ja4 => "ja4".into(),
            Self::Http2Fingerprint => "http2-fingerprint".into(),
        }
    }
}

/// Validates `manifest` against `policy` and `rules`.
///
/// # Errors
/// The first problem found, as a [`ManifestError`] naming the field.
pub fn validate(
    manifest: &Manifest,
    policy: &Policy,
    rules: &ManifestRules,
) -> Result<ValidManifest, ManifestError> {
    check_text("id", &manifest.id, MAX_ID_LEN)?;
    if manifest.id.is_empty()
        || !manifest
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ManifestError::InvalidId {
            value: quote(&manifest.id),
        });
    }
    check_text("version", &manifest.version, MAX_VERSION_LEN)?;
    if !is_semver(&manifest.version) {
        return Err(ManifestError::InvalidVersion {
            value: quote(&manifest.version),
        });
    }
    check_count(
        "required-permissions",
        manifest.required_permissions.len(),
        MAX_PERMISSIONS,
    )?;
    for (i, name) in manifest.required_permissions.iter().enumerate() {
        check_text(
            &format!("required-permissions[{i}]"),
            name,
            MAX_PERMISSION_LEN,
        )?;
    }
    let required = policy.set_from_names(&manifest.required_permissions)?;
    check_count("reads", manifest.reads.len(), MAX_READS)?;
    for (i, read) in manifest.reads.iter().enumerate() {
        let field = format!("reads[{i}]");
        match read {
            Read::Header(name) => {
                check_text(&field, name, MAX_HEADER_NAME_LEN)?;
                if !is_field_name(name) {
                    return Err(ManifestError::InvalidHeaderName {
                        field,
                        value: quote(name),
                    });
                }
                let lower = name.to_ascii_lowercase();
                let forbidden = FORBIDDEN_READ_HEADERS.contains(&lower.as_str())
                    || rules
                        .forbidden_headers
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(&lower));
                if forbidden {
                    return Err(ManifestError::ForbiddenHeader {
                        field,
                        header: lower,
                    });
                }
            }
            Read::Ja4 if !rules.supplies_ja4 => {
                return Err(ManifestError::UnsupportedRead { field, read: "ja4" });
            }
            Read::Http2Fingerprint if !rules.supplies_http2_fingerprint => {
                return Err(ManifestError::UnsupportedRead {
                    field,
                    read: "http2-fingerprint",
                });
            }
            _ => {}
        }
    }
    if let Some(budget) = manifest.call_budget_ms
        && !(1..=MAX_CALL_BUDGET_MS).contains(&budget)
    {
        return Err(ManifestError::InvalidCallBudget { value: budget });
    }
    Ok(ValidManifest {
        id: manifest.id.clone(),
        version: manifest.version.clone(),
        required_permissions: manifest.required_permissions.clone(),
        reads: manifest.reads.clone(),
        call_budget_ms: manifest.call_budget_ms,
        spec: ProviderSpec {
            required,
            reads: Reads::from_declared(&manifest.reads),
        },
    })
}

/// Refuses control characters, then over-long values.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ManifestError> {
    if value.chars().any(char::is_control) {
        return Err(ManifestError::ControlCharacter {
            field: field.to_owned(),
            value: quote(value),
        });
    }
    if value.len() > max {
        return Err(ManifestError::TooLong {
            field: field.to_owned(),
            len: value.len(),
            max,
            value: quote(value),
        });
    }
    Ok(())
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), ManifestError> {
    if count > max {
        return Err(ManifestError::TooMany { field, count, max });
    }
    Ok(())
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Semantic Versioning 2.0.0: `MAJOR.MINOR.PATCH`, numbers without leading zeros, an optional
/// `-pre.release` and `+build.metadata` of dot-separated `[0-9A-Za-z-]+` identifiers.
#[must_use]
pub fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let identifiers_ok = |s: &str| {
        s.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n.len() == 1 || !n.starts_with('0'))
        })
        && pre.is_none_or(|p| {
            identifiers_ok(p)
                && p.split('.').all(|id| {
                    !(id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()))
                })
        })
        && build.is_none_or(identifiers_ok)
}
