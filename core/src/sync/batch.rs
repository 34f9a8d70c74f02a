//! One partner's batch of `(Edge Cookie, partner uid, timestamp)` mappings applied to the
//! identity store (`POST /_ts/api/v1/batch-sync`).
//!
//! Rules this module keeps, per mapping and in this order (the first that applies decides):
//! 1. `ec_id` is not `<64 hex>.<6 alphanumerics>` → `invalid_ec_id` (the hex matches in any case
//!    and is looked up lowercase, as the Edge Cookie is issued);
//! 2. `partner_uid` empty or over [`MAX_PARTNER_UID_BYTES`] → `invalid_partner_uid`;
//! 3. `timestamp` missing, zero, or more than [`MAX_FUTURE_SKEW_SECS`] ahead of now →
//!    `invalid_timestamp` (a far-future timestamp would pin a value forever);
//! 4. no record → `not_found` (a sync never creates an identity);
//! 5. a tombstone (the visitor withdrew) → `consent_withdrawn`;
//! 6. the record's `synced` for this partner ≥ `timestamp` → accepted without a write (stale);
//! 7. otherwise the partner's id and `synced = timestamp` are written with compare-and-swap on
//!    the generation read, keeping the record's expiry. A lost race reads again and re-decides,
//!    so of concurrent writers the greatest timestamp wins, whatever the arrival order.
//!
//! A store failure on one mapping rejects it as `store_unavailable` and the rest continue;
//! but when the store is unavailable before anything was written, the whole batch fails
//! ([`BatchError::StoreUnavailable`], a 503 the partner retries: nothing was changed).
//!
//! This module never logs and never puts a key, uid or Edge Cookie in an error.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::identity::{
    Backoff, IdentityRecord, IdentityStore, PartnerId, RetryPolicy, StoreError, Versioned, Write,
    WriteMode, identity_key,
};

use super::partners::Partner;

/// The most mappings in one request.
pub const MAX_MAPPINGS: usize = 1000;
/// The longest `partner_uid`, in bytes.
pub const MAX_PARTNER_UID_BYTES: usize = 512;
/// The largest request body, in bytes (2 MiB).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How far ahead of the server's clock a `timestamp` may be (one hour of clock skew).
pub const MAX_FUTURE_SKEW_SECS: u64 = 3600;

/// The request body: `{"mappings": [...]}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The mappings, at most [`MAX_MAPPINGS`].
    pub mappings: Vec<Mapping>,
}

/// One mapping as sent. Missing fields are per-mapping rejections, not request errors.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The Edge Cookie value.
    #[serde(default)]
    pub ec_id: Option<String>,
    /// The partner's user id.
    #[serde(default)]
    pub partner_uid: Option<String>,
    /// When the partner observed the mapping, Unix seconds.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// Why a request body was refused as a whole (400).
// Exhaustive on purpose: hosts map each variant to a status in one `match`.
#[derive(Debug, thiserror::Error)]
pub enum BatchRequestError {
    /// Not JSON, not the documented shape, a field of the wrong type, or `mappings` missing.
    #[error("request body is not a batch: {reason}")]
    Malformed {
        /// serde's description (line and column; it may quote the request's own values).
        reason: String,
    },
    /// More than [`MAX_MAPPINGS`] mappings.
    #[error("request has {count} mappings; at most {MAX_MAPPINGS} are accepted")]
    TooManyMappings {
        /// How many were sent.
        count: usize,
    },
}

impl BatchRequest {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`BatchRequestError`].
    pub fn parse(body: &[u8]) -> Result<Self, BatchRequestError> {
        let request: Self =
            serde_json::from_slice(body).map_err(|e| BatchRequestError::Malformed {
                reason: e.to_string(),
            })?;
        if request.mappings.len() > MAX_MAPPINGS {
            return Err(BatchRequestError::TooManyMappings {
                count: request.mappings.len(),
            });
        }
        Ok(request)
    }
}

/// Why one mapping was rejected. The wire names are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// `ec_id` is missing or not an Edge Cookie value.
    InvalidEcId,
    /// `partner_uid` is missing, empty or too long.
    InvalidPartnerUid,
    /// `timestamp` is missing, zero or too far in the future.
    InvalidTimestamp,
    /// No identity has this Edge Cookie.
    NotFound,
    /// The visitor withdrew: the identity is a tombstone.
    ConsentWithdrawn,
    /// The store failed for this mapping.
    StoreUnavailable,
}

impl RejectReason {
    /// The wire name (`invalid_ec_id`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidEcId => "invalid_ec_id",
            Self::InvalidPartnerUid => "invalid_partner_uid",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::NotFound => "not_found",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// One rejected mapping in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingError {
    /// Its position in `mappings`, from 0.
    pub index: usize,
    /// Why.
    pub reason: RejectReason,
}

/// The response body, plus counts for logs and metrics (not serialised).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Mappings accepted (written, or stale and left as they were).
    pub accepted: usize,
    /// Mappings rejected.
    pub rejected: usize,
    /// One entry per rejected mapping, by index.
    pub errors: Vec<MappingError>,
    /// Of the accepted, how many were written.
    #[serde(skip)]
    pub written: usize,
    /// Of the accepted, how many were stale (not written).
    #[serde(skip)]
    pub stale: usize,
}

impl BatchResult {
    /// Whether every mapping was accepted (200; else 207).
    #[must_use]
    pub fn all_accepted(&self) -> bool {
        self.rejected == 0
    }

    /// How many mappings were rejected for `reason`.
    #[must_use]
    pub fn count(&self, reason: RejectReason) -> usize {
        self.errors.iter().filter(|e| e.reason == reason).count()
    }

    fn reject(&mut self, index: usize, reason: RejectReason) {
        self.rejected += 1;
        self.errors.push(MappingError { index, reason });
    }
}

/// Why a batch failed as a whole.
// Exhaustive on purpose: hosts map each variant to a status in one `match`.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The store was unavailable before any mapping was written (503; nothing changed).
    #[error("identity store unavailable before any mapping was written")]
    StoreUnavailable(#[source] StoreError),
}

/// What [`apply_batch`] needs besides the mappings.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    /// `ec.max_age_secs`: a record keeps its expiry, `created + max_age_secs`.
    pub max_age_secs: u64,
    /// Compare-and-swap attempts and backoff (`store.cas_attempts`).
    pub retry: RetryPolicy,
}

/// The Edge Cookie value `ec_id` denotes, hex lowercased, or `None` when it is not
/// `<64 hex>.<6 alphanumerics>`.
#[must_use]
pub fn normalize_ec_id(ec_id: &str) -> Option<String> {
    let (hash, suffix) = ec_id.split_once('.')?;
    if hash.len() != 64
        || !hash.bytes().all(|b| b.is_ascii_hexdigit())
        || suffix.len() != 6
        || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    let mut value = hash.to_ascii_lowercase();
    value.push('.');
    value.push_str(suffix);
    Some(value)
}

/// A valid mapping still waiting for its write.
struct Pending<'m> {
    index: usize,
    key: String,
    uid: &'m str,
    timestamp: u64,
}

/// What one pending mapping's step decided about the entry it read.
enum Step {
    /// Write these bytes if the generation read still matches.
    Write(WriteMode, Vec<u8>, Duration),
    /// Accepted without a write.
    Stale,
    /// Rejected.
    Reject(RejectReason),
}

/// Applies `mappings` for `partner` at `now` (Unix seconds). See the module docs for the rules.
///
/// The writes go to the store in rounds: every pending mapping is read and decided, then all
/// the writes of the round go in one [`IdentityStore::insert_many`] (one transaction and one
/// `fsync` on the embedded store, not one per mapping). A write that lost a race (or a second
/// mapping for an identity the round already changed) is read and decided again in the next
/// round, after a [`Backoff::pause`], at most `settings.retry.max_attempts` rounds.
///
/// # Errors
/// [`BatchError::StoreUnavailable`] when the store was unavailable and nothing was written.
pub fn apply_batch(
    store: &dyn IdentityStore,
    backoff: &mut dyn Backoff,
    settings: &BatchSettings,
    partner: &Partner,
    mappings: &[Mapping],
    now: u64,
) -> Result<BatchResult, BatchError> {
    let mut result = BatchResult::default();
    let mut pending = Vec::with_capacity(mappings.len());
    for (index, mapping) in mappings.iter().enumerate() {
        let Some(ec) = mapping.ec_id.as_deref().and_then(normalize_ec_id) else {
            result.reject(index, RejectReason::InvalidEcId);
            continue;
        };
        let uid = match mapping.partner_uid.as_deref() {
            Some(uid) if !uid.is_empty() && uid.len() <= MAX_PARTNER_UID_BYTES => uid,
            _ => {
                result.reject(index, RejectReason::InvalidPartnerUid);
                continue;
            }
        };
        let timestamp = match mapping.timestamp {
            Some(t) if t > 0 && t <= now.saturating_add(MAX_FUTURE_SKEW_SECS) => t,
            _ => {
                result.reject(index, RejectReason::InvalidTimestamp);
                continue;
            }
        };
        pending.push(Pending {
            index,
            key: identity_key(&ec),
            uid,
            timestamp,
        });
    }
    let mut first_unavailable: Option<StoreError> = None;
    let mut unavailable = |result: &mut BatchResult, index: usize, error: StoreError| {
        result.reject(index, RejectReason::StoreUnavailable);
        first_unavailable.get_or_insert(error);
    };
    let attempts = settings.retry.max_attempts.max(1);
    for round in 1..=attempts {
        if pending.is_empty() {
            break;
        }
        if round > 1 {
            backoff.pause(settings.retry.delay_cap(round - 1));
        }
        let mut writing = Vec::with_capacity(pending.len());
        let mut steps = Vec::with_capacity(pending.len());
        for p in pending.drain(..) {
            let step = match store.get(&p.key) {
                Ok(current) => decide(settings, &partner.id, &p, current.as_ref(), now),
                Err(error) => {
                    unavailable(&mut result, p.index, error);
                    continue;
                }
            };
            match step {
                Step::Stale => {
                    result.accepted += 1;
                    result.stale += 1;
                }
                Step::Reject(reason) => result.reject(p.index, reason),
                Step::Write(mode, value, ttl) => {
                    steps.push((mode, value, ttl));
                    writing.push(p);
                }
            }
        }
        let writes: Vec<Write<'_>> = writing
            .iter()
            .zip(&steps)
            .map(|(p, (mode, value, ttl))| Write {
                key: &p.key,
                value,
                mode: *mode,
                ttl: Some(*ttl),
            })
            .collect();
        let mut outcomes = store.insert_many(&writes).into_iter();
        drop(writes);
        for p in writing {
            match outcomes.next() {
                Some(Ok(_)) => {
                    result.accepted += 1;
                    result.written += 1;
                }
                Some(Err(error)) if error.is_conflict() => pending.push(p),
                Some(Err(error @ StoreError::Unavailable { .. })) => {
                    unavailable(&mut result, p.index, error);
                }
                Some(Err(_)) | None => result.reject(p.index, RejectReason::StoreUnavailable),
            }
        }
    }
    // Every round lost a race for these: other writers kept changing the entries.
    for p in pending {
        result.reject(p.index, RejectReason::StoreUnavailable);
    }
    if result.written == 0
        && let Some(error) = first_unavailable
    {
        return Err(BatchError::StoreUnavailable(error));
    }
    result.errors.sort_by_key(|e| e.index);
    Ok(result)
}

/// One mapping's decision on the entry read for it: never create (an absent entry is
/// `not_found`), never revive a tombstone, leave a stale timestamp, else write the partner's id
/// with `synced = timestamp`, keeping the record's expiry.
fn decide(
    settings: &BatchSettings,
    partner_id: &str,
    p: &Pending<'_>,
    current: Option<&Versioned>,
    now: u64,
) -> Step {
    let Some(current) = current else {
        return Step::Reject(RejectReason::NotFound);
    };
    let mut live = match IdentityRecord::decode(&current.value) {
        Ok(IdentityRecord::Live(live)) => live,
        Ok(IdentityRecord::Tombstone(_)) => return Step::Reject(RejectReason::ConsentWithdrawn),
        Err(_) => return Step::Reject(RejectReason::StoreUnavailable),
    };
    if live
        .partners
        .get(partner_id)
        .is_some_and(|existing| existing.synced >= p.timestamp)
    {
        return Step::Stale;
    }
    live.partners.insert(
        partner_id.to_owned(),
        PartnerId {
            id: p.uid.to_owned(),
            synced: p.timestamp,
        },
    );
    let ttl = Duration::from_secs(
        live.created
            .saturating_add(settings.max_age_secs)
            .saturating_sub(now)
            .max(1),
    );
    Step::Write(
        WriteMode::IfGeneration(current.generation),
        IdentityRecord::Live(live).encode(),
        ttl,
    )
}
