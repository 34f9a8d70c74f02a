//! The store operations of the Edge Cookie lifecycle, as the page pipeline performs them.
//!
//! Invariants:
//! - A new identity is created add-only; an existing record is changed only by
//!   compare-and-swap, so concurrent first requests for one key leave exactly one record and a
//!   tombstone is revived only by a writer that read it.
//! - A record this build cannot read (newer version, malformed) is never used and never
//!   overwritten, except by a withdrawal, which always wins.
//! - A live record expires with the cookie: `created + ec.max_age_secs`.

use std::sync::Arc;
use std::time::Duration;

use super::record::{IdentityRecord, LiveIdentity, RecordError, StoredConsent, Tombstone};
use super::retry::{CasError, CasStep, compare_and_swap_async};
use super::store::{Generation, IdentityStore, StoreError, Versioned, WriteMode};
use super::{Identity, IdentityOutcome};

/// Why a lifecycle store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The store failed.
    #[error("identity store operation failed")]
    Store(#[from] StoreError),
    /// The stored record is not one this build reads (fail closed: not used, not overwritten).
    #[error("stored identity record refused")]
    Record(#[from] RecordError),
    /// Compare-and-swap lost every race.
    #[error("identity record update gave up after {attempts} compare-and-swap attempts")]
    CasExhausted {
        /// The attempts made.
        attempts: u32,
    },
}

impl From<CasError<RecordError>> for IdentityError {
    fn from(error: CasError<RecordError>) -> Self {
        match error {
            CasError::Exhausted { attempts } => Self::CasExhausted { attempts },
            CasError::Store(e) => Self::Store(e),
            CasError::Step(e) => Self::Record(e),
        }
    }
}

impl IdentityError {
    /// Wrapped for [`IdentityOutcome::Failed`].
    #[must_use]
    pub fn into_outcome(self) -> IdentityOutcome {
        IdentityOutcome::Failed(Arc::new(self))
    }
}

/// Reads and decodes the record for `key`.
///
/// # Errors
/// [`IdentityError::Store`] or [`IdentityError::Record`].
pub fn load(
    store: &dyn IdentityStore,
    key: &str,
) -> Result<Option<(IdentityRecord, Generation)>, IdentityError> {
    match store.get(key)? {
        None => Ok(None),
        Some(v) => Ok(Some((IdentityRecord::decode(&v.value)?, v.generation))),
    }
}

/// Replaces the record for `key` by a tombstone written at `now`, kept for the tombstone time.
/// The stored consent and partner ids go with the record.
///
/// # Errors
/// [`IdentityError::Store`].
pub async fn withdraw(identity: Identity<'_>, key: &str, now: u64) -> Result<(), IdentityError> {
    let tombstone = IdentityRecord::Tombstone(Tombstone { withdrawn: now });
    identity
        .store
        .insert(
            key,
            tombstone.encode(),
            WriteMode::Overwrite,
            Some(identity.settings.tombstone_ttl),
        )
        .await?;
    Ok(())
}

/// What [`ensure_live`] works on.
#[derive(Debug)]
pub struct EnsureLive<'r> {
    /// The store key ([`super::identity_key`]).
    pub key: &'r str,
    /// The record to create when there is none or only a tombstone.
    pub fresh: &'r LiveIdentity,
    /// The consent the request itself carried (never one read back from the store).
    pub own_consent: Option<&'r StoredConsent>,
    /// `ec.max_age_secs`: a live record expires with its cookie.
    pub max_age_secs: u64,
    /// Now, in Unix seconds.
    pub now: u64,
    /// A freshly minted value: try the add-only write before reading.
    pub expect_absent: bool,
    /// The entry already read for this key (`Some(None)`: read as absent), used instead of
    /// the first read.
    pub prefetched: Option<Option<Versioned>>,
}

/// Makes sure a live record exists for `request.key`: creates `fresh` when there is none
/// (add-only), revives a tombstone with `fresh` (compare-and-swap), and otherwise replaces the
/// stored consent with `own_consent` when its fingerprint differs (compare-and-swap).
/// `expect_absent` and `prefetched` each save a store round trip in the common case.
///
/// # Errors
/// [`IdentityError`]: the store failed, the stored record is unreadable, or every
/// compare-and-swap attempt lost a race.
pub async fn ensure_live(
    identity: Identity<'_>,
    request: EnsureLive<'_>,
) -> Result<IdentityOutcome, IdentityError> {
    let EnsureLive {
        key,
        fresh,
        own_consent,
        max_age_secs,
        now,
        expect_absent,
        prefetched,
    } = request;
    let ttl = |created: u64| {
        Some(Duration::from_secs(
            created
                .saturating_add(max_age_secs)
                .saturating_sub(now)
                .max(1),
        ))
    };
    let fresh_bytes = IdentityRecord::Live(fresh.clone()).encode();
    if expect_absent {
        match identity
            .store
            .insert(
                key,
                fresh_bytes.clone(),
                WriteMode::AddOnly,
                ttl(fresh.created),
            )
            .await
        {
            Ok(_) => return Ok(IdentityOutcome::Created),
            Err(StoreError::AlreadyExists) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let outcome = compare_and_swap_async(
        identity.store,
        key,
        &identity.settings.retry,
        identity.backoff,
        prefetched,
        |current| {
            let Some(current) = current else {
                return Ok(CasStep::Write(
                    fresh_bytes.clone(),
                    ttl(fresh.created),
                    IdentityOutcome::Created,
                ));
            };
            match IdentityRecord::decode(&current.value)? {
                IdentityRecord::Tombstone(_) => Ok(CasStep::Write(
                    fresh_bytes.clone(),
                    ttl(fresh.created),
                    IdentityOutcome::Revived,
                )),
                IdentityRecord::Live(mut live) => match own_consent {
                    Some(consent)
                        if live.consent.as_ref().map(|c| &c.fingerprint)
                            != Some(&consent.fingerprint) =>
                    {
                        live.consent = Some(consent.clone());
                        let created = live.created;
                        Ok(CasStep::Write(
                            IdentityRecord::Live(live).encode(),
                            ttl(created),
                            IdentityOutcome::ConsentRefreshed,
                        ))
                    }
                    _ => Ok(CasStep::Leave(IdentityOutcome::Existing)),
                },
            }
        },
    )
    .await?;
    Ok(outcome)
}
