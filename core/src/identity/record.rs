//! The identity record: what the store keeps per Edge Cookie value, and its encoding.
//!
//! Encoding: one JSON object, `{"v":1,"live":{...}}` or `{"v":1,"tombstone":{...}}`. JSON
//! because every backend stores bytes, operators can read it with `redis-cli` or a redb dump,
//! and serde already guards the shape; a record is a few hundred bytes, so a binary format would
//! save little. Reading fails closed: a version other than [`RECORD_VERSION`], an unknown
//! field, or both/neither of `live` and `tombstone` is an error, never a guess, so a record
//! written by a newer Gatehouse is neither used nor overwritten by an older one.
//!
//! Times are Unix seconds. The record never holds the client IP or the User-Agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consent::{ConsentContext, RawSignals};
use crate::provider::DeviceClass;

/// The record schema version this build writes and the only one it reads.
pub const RECORD_VERSION: u64 = 1;

/// What the store holds for one identity.
// One record is decoded per request and none is held in bulk, so the tombstone variant's
// unused bytes cost nothing worth a `Box` in every match.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityRecord {
    /// An issued identity.
    Live(LiveIdentity),
    /// A withdrawn identity: nothing but the time of withdrawal, kept for the configured
    /// tombstone time so the key is not silently reused (it is revived only by compare-and-swap).
    Tombstone(Tombstone),
}

/// An issued identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveIdentity {
    /// When the identity was created.
    pub created: u64,
    /// The consent last seen with the identity (absent when the request that created it
    /// carried no signals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<StoredConsent>,
    /// ISO 3166-1 alpha-2 country of the geo answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code of the geo answer, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The device class when the identity was created.
    #[serde(with = "DeviceClassDef")]
    pub device: DeviceClass,
    /// Partner ids by partner name, each with the partner's `synced` time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partners: BTreeMap<String, PartnerId>,
}

/// A partner's id for this identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerId {
    /// The partner's id.
    pub id: String,
    /// When the partner last synced it.
    pub synced: u64,
}

/// A withdrawn identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// When the visitor withdrew.
    pub withdrawn: u64,
}

/// The consent stored with an identity: the raw signals (so a later request without signals
/// can be decided exactly as the original, expiry included), their fingerprint for
/// write-on-change, and a summary for operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredConsent {
    /// [`crate::consent::ConsentFingerprint`] in lowercase hex.
    pub fingerprint: String,
    /// When this consent was stored.
    pub updated: u64,
    /// A readable summary (not used for decisions).
    pub summary: ConsentSummary,
    /// The raw signals.
    pub signals: StoredSignals,
}

/// A readable summary of a stored consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSummary {
    /// TCF purposes consented to (purpose `n` is bit `n-1`), when a TCF record applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcf_purposes: Option<u32>,
    /// GPC was sent.
    pub gpc: bool,
    /// Any US-style opt-out was set.
    pub us_opt_out: bool,
    /// GDPR applied in the matched jurisdiction.
    pub gdpr_applies: bool,
}

/// The raw consent signals as received ([`RawSignals`] with a stable encoding).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredSignals {
    /// Standalone TC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc_string: Option<String>,
    /// GPP string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpp: Option<String>,
    /// `__gpp_sid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpp_sid: Option<String>,
    /// US Privacy string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub us_privacy: Option<String>,
    /// Google Additional Consent string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_consent: Option<String>,
    /// GPC.
    #[serde(default)]
    pub gpc: bool,
}

impl From<&RawSignals> for StoredSignals {
    fn from(raw: &RawSignals) -> Self {
        Self {
            tc_string: raw.tc_string.clone(),
            gpp: raw.gpp.clone(),
            gpp_sid: raw.gpp_sid.clone(),
            us_privacy: raw.us_privacy.clone(),
            additional_consent: raw.additional_consent.clone(),
            gpc: raw.gpc,
        }
    }
}

impl From<&StoredSignals> for RawSignals {
    fn from(stored: &StoredSignals) -> Self {
        RawSignals {
            tc_string: stored.tc_string.clone(),
            gpp: stored.gpp.clone(),
            gpp_sid: stored.gpp_sid.clone(),
            us_privacy: stored.us_privacy.clone(),
            additional_consent: stored.additional_consent.clone(),
            gpc: stored.gpc,
            ..RawSignals::default()
        }
    }
}

impl StoredConsent {
    /// The consent of `context` (its raw signals, fingerprint and summary), stored at `now`.
    #[must_use]
    pub fn from_context(context: &ConsentContext, now: u64) -> Self {
        let signals = context.signals();
        Self {
            fingerprint: context.fingerprint().to_string(),
            updated: now,
            summary: ConsentSummary {
                tcf_purposes: signals.tcf.map(|t| t.purpose_consents),
                gpc: signals.gpc,
                us_opt_out: signals.any_us_opt_out(),
                gdpr_applies: context.gdpr_applies(),
            },
            signals: StoredSignals::from(context.raw()),
        }
    }
}

/// Whether `raw` carries no consent signal at all.
#[must_use]
pub fn has_no_signals(raw: &RawSignals) -> bool {
    raw.tc_string.is_none()
        && raw.gpp.is_none()
        && raw.gpp_sid.is_none()
        && raw.us_privacy.is_none()
        && raw.additional_consent.is_none()
        && !raw.gpc
}

/// Why stored bytes are not a record this build reads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record's `v` is not [`RECORD_VERSION`].
    #[error(
        "identity record version `{found}` is not supported (this build reads version `{RECORD_VERSION}`)"
    )]
    UnsupportedVersion {
        /// The version found.
        found: u64,
    },
    /// Not a JSON object with a numeric `v`, or an invalid version-1 record.
    #[error("identity record is malformed: {reason}")]
    Malformed {
        /// What is wrong (serde's message; never the record's content).
        reason: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    v: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireV1 {
    v: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live: Option<LiveIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tombstone: Option<Tombstone>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "DeviceClass", rename_all = "lowercase")]
enum DeviceClassDef {
    Bot,
    Mobile,
    Tablet,
    Desktop,
    Unknown,
}

impl IdentityRecord {
    /// The record's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let wire = match self {
            Self::Live(live) => WireV1 {
                v: RECORD_VERSION,
                live: Some(live.clone()),
                tombstone: None,
            },
            Self::Tombstone(tombstone) => WireV1 {
                v: RECORD_VERSION,
                live: None,
                tombstone: Some(*tombstone),
            },
        };
        // Serialising these plain structs (strings, integers, maps with string keys) cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Reads a record, refusing anything but a valid version-1 record.
    ///
    /// # Errors
    /// [`RecordError::UnsupportedVersion`] or [`RecordError::Malformed`].
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let malformed = |e: serde_json::Error| RecordError::Malformed {
            reason: e.to_string(),
        };
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(malformed)?;
        if envelope.v != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion { found: envelope.v });
        }
        let wire: WireV1 = serde_json::from_slice(bytes).map_err(malformed)?;
        match (wire.live, wire.tombstone) {
            (Some(live), None) => Ok(Self::Live(live)),
            (None, Some(tombstone)) => Ok(Self::Tombstone(tombstone)),
            _ => Err(RecordError::Malformed {
                reason: "exactly one of `live` and `tombstone` must be present".to_owned(),
            }),
        }
    }
}
