//! Partner sync: the `[[partners]]` registry and the server-to-server batch sync that lets a
//! partner attach its user ids to Edge Cookie identities.
//!
//! - [`partners`]: validated `[[partners]]` and constant-time API key authentication.
//! - [`batch`]: parsing a batch and applying it to the identity store with compare-and-swap
//!   (greatest timestamp wins; a sync never creates or revives an identity).
//!
//! No I/O here: the host reads the body, rate-limits, calls [`batch::apply_batch`] off its
//! async workers, and maps the outcome to HTTP.

pub mod batch;
pub mod partners;

pub use batch::{
    BatchError, BatchRequest, BatchRequestError, BatchResult, BatchSettings, MAX_BODY_BYTES,
    MAX_FUTURE_SKEW_SECS, MAX_MAPPINGS, MAX_PARTNER_UID_BYTES, Mapping, MappingError, RejectReason,
    apply_batch, normalize_ec_id,
};
pub use partners::{
    ApiKeyError, MIN_API_KEY_BYTES, Partner, PartnerConfig, PartnerConfigError, Partners,
    hash_api_key,
};
