//! What can be wrong with a policy, said so a policy owner can fix it without reading code.
//!
//! Every message is lowercase, names the file and the key path, and puts the offending item in
//! backticks. Callers match on the variants, never on the text.

use thiserror::Error;

/// The config key naming the default jurisdiction; quoted by [`PolicyError::UnknownDefaultCountry`]
/// and [`PolicyError::MissingDefaultCountry`].
pub const DEFAULT_COUNTRY_KEY: &str = "geo.default_country";

/// A policy that cannot be used: the host must refuse to start.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is not valid YAML (or has a duplicate key, which YAML forbids).
    #[error("{file}: invalid yaml: {message}")]
    Syntax {
        /// The policy's source name (usually `permissions.yaml`).
        file: String,
        /// The YAML parser's message, with line and column.
        message: String,
    },
    /// The YAML is well-formed but the policy it describes is not.
    #[error("{file}: at `{path}`: {reason}")]
    Invalid {
        /// The policy's source name (usually `permissions.yaml`).
        file: String,
        /// The dotted key path of the offending entry, e.g. `groups.gdpr-eu.permissions.store-on-device`.
        path: String,
        /// What is wrong there.
        reason: InvalidPolicy,
    },
    /// `geo.default_country` names no rule of the policy.
    #[error(
        "config key `{DEFAULT_COUNTRY_KEY}`: `{value}` does not match any rule in {file} \
         (expected a rule key such as `FR` or `US/CA`)"
    )]
    UnknownDefaultCountry {
        /// The policy's source name.
        file: String,
        /// The configured value, as given.
        value: String,
    },
    /// `geo.default_country` is not set. Gatehouse never assumes a jurisdiction.
    #[error(
        "config key `{DEFAULT_COUNTRY_KEY}` is not set: gatehouse does not assume a jurisdiction; \
         set it to a rule key of the policy such as `FR` or `US/CA`"
    )]
    MissingDefaultCountry,
}

impl PolicyError {
    /// The reason, when the policy itself is invalid.
    #[must_use]
    pub fn invalid_reason(&self) -> Option<&InvalidPolicy> {
        match self {
            Self::Invalid { reason, .. } => Some(reason),
            Self::Syntax { .. }
            | Self::UnknownDefaultCountry { .. }
            | Self::MissingDefaultCountry => None,
        }
    }

    /// The key path, when the policy itself is invalid.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Invalid { path, .. } => Some(path),
            Self::Syntax { .. }
            | Self::UnknownDefaultCountry { .. }
            | Self::MissingDefaultCountry => None,
        }
    }
}

/// Why a well-formed YAML document is not a valid policy. Always wrapped in
/// [`PolicyError::Invalid`], which adds the file and key path.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidPolicy {
    /// A key the policy format does not define.
    #[error("unknown key `{key}` (expected one of {expected})")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The accepted keys, already backticked and comma-separated.
        expected: String,
    },
    /// A required key is absent.
    #[error("missing key `{key}`")]
    MissingKey {
        /// The missing key.
        key: String,
    },
    /// A value of the wrong YAML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the format expects there.
        expected: &'static str,
        /// What the file has, briefly.
        found: String,
    },
    /// A permission or group name that is not lowercase kebab-case.
    #[error(
        "invalid name `{name}` (names are lowercase kebab-case: `a-z`, `0-9` and `-`, starting with a letter)"
    )]
    InvalidName {
        /// The name as written.
        name: String,
    },
    /// `permissions` is empty.
    #[error("no permissions defined")]
    NoPermissions,
    /// More permissions than a [`PermissionSet`](super::PermissionSet) holds.
    #[error("{count} permissions defined, at most {max} are supported")]
    TooManyPermissions {
        /// How many the file defines.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A permission name that is not in the vocabulary.
    #[error("unknown permission `{permission}`")]
    UnknownPermission {
        /// The name as written.
        permission: String,
    },
    /// A group does not spell out one of the permissions.
    #[error("missing permission `{permission}` (every group must set every permission)")]
    MissingPermission {
        /// The first permission the group leaves out.
        permission: String,
    },
    /// A permission value other than `granted`, `requires-signal` or `denied`.
    #[error("unknown acquisition `{value}` (expected `granted`, `requires-signal` or `denied`)")]
    UnknownAcquisition {
        /// The value as written.
        value: String,
    },
    /// A rule names a group that is not defined.
    #[error("unknown group `{group}`{hint}")]
    UnknownGroup {
        /// The group as written.
        group: String,
        /// A hint for a likely mistake, or empty.
        hint: &'static str,
    },
    /// A rule key that is neither `CC` nor `CC/SUB`.
    #[error(
        "malformed rule key `{key}` (expected an iso 3166-1 alpha-2 country code such as `FR`, \
         or `CC/SUB` with an iso 3166-2 subdivision code such as `US/CA`)"
    )]
    MalformedRuleKey {
        /// The key as written.
        key: String,
    },
    /// Two rule keys that are equal once case is ignored.
    #[error("duplicate rule key `{key}`: same as `{first}` (rule keys are case-insensitive)")]
    DuplicateRuleKey {
        /// The later key as written.
        key: String,
        /// The earlier key as written.
        first: String,
    },
    /// An override without a `+` or `-` prefix.
    #[error(
        "malformed override `{value}` (expected `+permission` to grant or `-permission` to deny)"
    )]
    MalformedOverride {
        /// The override as written.
        value: String,
    },
    /// The same permission overridden twice in one rule.
    #[error("duplicate override of `{permission}`")]
    DuplicateOverride {
        /// The permission overridden more than once.
        permission: String,
    },
    /// A TCF purpose or special feature number out of range.
    #[error("invalid tcf {kind} `{value}` (expected a number from 1 to {max})")]
    InvalidTcfNumber {
        /// `purpose` or `special feature`.
        kind: &'static str,
        /// The key as written.
        value: String,
        /// The largest accepted number.
        max: u8,
    },
    /// Legitimate interest enabled for a purpose where the TCF policy forbids it.
    #[error(
        "legitimate interest cannot be enabled for tcf purpose `{purpose}` (the tcf policy \
         allows only consent for purposes 1, 3, 4, 5 and 6)"
    )]
    LegitimateInterestForbidden {
        /// The purpose number.
        purpose: u8,
    },
    /// Two TCF purposes or special features map to the same permission.
    #[error("permission `{permission}` is already mapped by `{first}`")]
    DuplicateSignalMapping {
        /// The permission mapped twice.
        permission: String,
        /// The earlier mapping's key path.
        first: String,
    },
    /// The same permission listed twice in one revocation list.
    #[error("duplicate permission `{permission}`")]
    DuplicatePermission {
        /// The permission listed twice.
        permission: String,
    },
}

/// A permission name that the policy does not define, e.g. in a provider manifest.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("unknown permission `{name}` (not defined in the policy's `permissions`)")]
pub struct UnknownPermission {
    /// The name as given.
    pub name: String,
}
