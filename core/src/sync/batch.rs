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
    Backoff, IdentityRecord, IdentityStore, PartnerId, RetryPolicy, StoreError, Update, UpdateFn,
    UpdateStep, Versioned, identity_key,
};
use crate::task::block_on;

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
struct Pending {
    index: usize,
    key: String,
    uid: String,
    timestamp: u64,
}

/// What one mapping's step decided, as the `report` of its [`UpdateStep`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decided {
    Written = 0,
    Stale = 1,
    NotFound = 2,
    Withdrawn = 3,
    Unreadable = 4,
}

impl Decided {
    const ALL: [Self; 5] = [
        Self::Written,
        Self::Stale,
        Self::NotFound,
        Self::Withdrawn,
        Self::Unreadable,
    ];

    fn report(self) -> u32 {
        self as u32
    }

    fn from_report(report: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.report() == report)
    }
}

/// Applies `mappings` for `partner` at `now` (Unix seconds). See the module docs for the rules.
///
/// The mappings go to the store as one [`IdentityStore::update_many`]: each is read, decided
/// and written with compare-and-swap. The embedded store decides inside its write transaction
/// (one transaction and one `fsync` for the batch, and no lost races); on a store that decides
/// outside it, a write that lost a race (or a second mapping for an identity the batch already
/// changed) is read and decided again in a next round, after a [`Backoff::pause`], at most
/// `settings.retry.max_attempts` rounds.
///
/// # Errors
/// [`BatchError::StoreUnavailable`] when the store was unavailable and nothing was written.
pub fn apply_batch(
    store: &dyn IdentityStore,
    backoff: &dyn Backoff,
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
            uid: uid.to_owned(),
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
            block_on(backoff.pause(settings.retry.delay_cap(round - 1)));
        }
        let updates = pending
            .iter()
            .map(|p| Update {
                key: p.key.clone(),
                step: step(*settings, partner.id.clone(), p, now),
            })
            .collect();
        let mut outcomes = store.update_many(updates).into_iter();
        for p in std::mem::take(&mut pending) {
            match outcomes.next() {
                Some(Ok(updated)) => match Decided::from_report(updated.report) {
                    Some(Decided::Written) if updated.written.is_some() => {
                        result.accepted += 1;
                        result.written += 1;
                    }
                    Some(Decided::Stale) => {
                        result.accepted += 1;
                        result.stale += 1;
                    }
                    Some(Decided::NotFound) => result.reject(p.index, RejectReason::NotFound),
                    Some(Decided::Withdrawn) => {
                        result.reject(p.index, RejectReason::ConsentWithdrawn);
                    }
                    _ => result.reject(p.index, RejectReason::StoreUnavailable),
                },
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

/// The step of one mapping's update: never create (an absent entry is `not_found`), never
/// revive a tombstone, leave a stale timestamp, else write the partner's id with
/// `synced = timestamp`, keeping the record's expiry.
fn step(settings: BatchSettings, partner_id: String, p: &Pending, now: u64) -> UpdateFn {
    let uid = p.uid.clone();
    let timestamp = p.timestamp;
    Box::new(move |current: Option<&Versioned>| {
        let leave = |decided: Decided| UpdateStep::Leave {
            report: decided.report(),
        };
        let Some(current) = current else {
            return leave(Decided::NotFound);
        };
        let mut live = match IdentityRecord::decode(&current.value) {
            Ok(IdentityRecord::Live(live)) => live,
            Ok(IdentityRecord::Tombstone(_)) => return leave(Decided::Withdrawn),
            Err(_) => return leave(Decided::Unreadable),
        };
        if live
            .partners
            .get(&partner_id)
            .is_some_and(|existing| existing.synced >= timestamp)
        {
            return leave(Decided::Stale);
        }
        live.partners.insert(
            partner_id.clone(),
            PartnerId {
                id: uid.clone(),
                synced: timestamp,
            },
        );
        let ttl = Duration::from_secs(
            live.created
                .saturating_add(settings.max_age_secs)
                .saturating_sub(now)
                .max(1),
        );
        UpdateStep::Write {
            value: IdentityRecord::Live(live).encode(),
            ttl: Some(ttl),
            report: Decided::Written.report(),
        }
    })
}
