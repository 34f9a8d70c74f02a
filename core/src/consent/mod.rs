//! Consent signals: decoders and the per-request consent pipeline.
//!
//! One module per format — [`tcf`] (TCF v2 TC strings and TCF Canada), [`gpp`] (GPP v1 and its
//! sections), [`us`] (GPP US national/state sections), [`usp`] (US Privacy), [`ac`] (Google
//! Additional Consent) — plus [`extract`] (cookies and headers), [`config`] (`[consent]`) and
//! [`context`] (the [`ConsentContext`] pipeline that produces [`crate::policy::Signals`]).
//!
//! What this module must never do: perform I/O, read a clock, panic on hostile input, or
//! allocate in proportion to a size the input merely claims. Every string is bounded by a
//! configurable length before it is decoded.

pub mod ac;
mod bits;
pub mod config;
pub mod context;
pub mod extract;
pub mod gpp;
pub mod tcf;
pub mod time;
pub mod us;
pub mod usp;
pub mod vendors;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use ac::AdditionalConsent;
pub use config::{
    ConflictMode, ConsentConfig, CookieNames, DEFAULT_MAX_STRING_LENGTH, HeaderNames,
};
pub use context::{
    ConsentContext, ConsentFingerprint, ConsentInput, ConsentWarning, JurisdictionFacts,
    SignalSource, TcfChoice, fingerprint,
};
pub use extract::{HeaderLookup, NoHeaders, RawSignals, RepeatedCopies};
pub use gpp::{GppSection, GppString, can_carry_us_opt_out, parse_gpp_sid};
pub use tcf::{PubRestriction, PublisherTc, TcString, TcfCaV1};
pub use us::{OptOutFields, UsSection, UsValue, opt_out_fields};
pub use usp::UsPrivacy;
pub use vendors::VendorSet;

/// The kinds of consent string the CLI decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// A TCF v2 TC string.
    Tcf,
    /// A GPP string.
    Gpp,
    /// A US Privacy string.
    Usp,
    /// A Google Additional Consent string.
    Ac,
}

impl SignalKind {
    /// The lowercase name used on the command line and in JSON (`tcf`, `gpp`, `usp`, `ac`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Tcf => "tcf",
            SignalKind::Gpp => "gpp",
            SignalKind::Usp => "usp",
            SignalKind::Ac => "ac",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignalKind {
    type Err = ConsentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcf" => Ok(SignalKind::Tcf),
            "gpp" => Ok(SignalKind::Gpp),
            "usp" => Ok(SignalKind::Usp),
            "ac" => Ok(SignalKind::Ac),
            _ => Err(ConsentError::UnknownSignalKind(
                s.chars().take(32).collect(),
            )),
        }
    }
}

/// Why a consent string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// The string was empty.
    #[error("empty {kind} string")]
    Empty {
        /// Kind of string.
        kind: SignalKind,
    },
    /// The string exceeded the configured length bound.
    #[error("{kind} string is {len} bytes, over the limit of {max}")]
    TooLong {
        /// Kind of string.
        kind: SignalKind,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A character outside the base64url alphabet.
    #[error("invalid base64url character at offset {offset}")]
    InvalidBase64 {
        /// Offset within the segment.
        offset: usize,
    },
    /// The data ended before a field.
    #[error("truncated: not enough bits for `{field}`")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A version this decoder does not support.
    #[error("unsupported {what} version {found}")]
    UnsupportedVersion {
        /// What carried the version.
        what: &'static str,
        /// The version found.
        found: u8,
    },
    /// A TCF `last_updated` further in the future than the allowed clock skew.
    #[error(
        "`last_updated` is {ahead_seconds} s in the future, beyond the allowed clock skew of \
         {skew_seconds} s (`consent.clock_skew_seconds`)"
    )]
    LastUpdatedInFuture {
        /// How far ahead of now, in seconds.
        ahead_seconds: u64,
        /// The configured skew.
        skew_seconds: u64,
    },
    /// A range entry with start 0 or start > end.
    #[error("invalid range entry {start}-{end} in `{field}`")]
    InvalidRange {
        /// The field being read.
        field: &'static str,
        /// Range start.
        start: u16,
        /// Range end.
        end: u16,
    },
    /// A range entry beyond the declared `MaxVendorId`.
    #[error("range entry ends at {end}, beyond max vendor id {max} in `{field}`")]
    RangeBeyondMax {
        /// The field being read.
        field: &'static str,
        /// Range end.
        end: u16,
        /// Declared maximum.
        max: u16,
    },
    /// An optional TCF segment type outside 1..=3.
    #[error("unknown segment type {0}")]
    UnknownSegmentType(u8),
    /// An optional TCF segment type present twice.
    #[error("duplicate segment type {0}")]
    DuplicateSegment(u8),
    /// A GPP header whose type is not 3.
    #[error("gpp header type is {0}, expected 3")]
    GppHeaderType(u8),
    /// The GPP header lists a different number of sections than the string has.
    #[error("gpp header lists {ids} section ids but the string has {sections} sections")]
    SectionCountMismatch {
        /// Ids in the header (as far as read).
        ids: usize,
        /// Sections present.
        sections: usize,
    },
    /// A Fibonacci-coded integer that never terminates or overflows.
    #[error("invalid fibonacci integer in `{field}`")]
    InvalidFibonacci {
        /// The field being read.
        field: &'static str,
    },
    /// A GPP section id with no decoder for its layout.
    #[error("unsupported gpp section {0}")]
    UnsupportedSection(u16),
    /// A GPP section failed to decode.
    #[error("gpp section {id}: {source}")]
    GppSection {
        /// Section id.
        id: u16,
        /// The section's error.
        source: Box<ConsentError>,
    },
    /// A malformed US Privacy string.
    #[error("invalid us privacy string: {reason}")]
    InvalidUsPrivacy {
        /// What is wrong.
        reason: &'static str,
    },
    /// A malformed Additional Consent string.
    #[error("invalid additional consent string: {reason}")]
    InvalidAdditionalConsent {
        /// What is wrong.
        reason: &'static str,
    },
    /// A malformed `__gpp_sid` value.
    #[error("invalid `__gpp_sid` value")]
    InvalidGppSid,
    /// `--kind` named no known kind.
    #[error("unknown signal kind `{0}`, expected one of `tcf`, `gpp`, `usp`, `ac`")]
    UnknownSignalKind(String),
    /// Auto-detection found no matching kind.
    #[error("cannot detect the kind of consent string; pass `--kind`")]
    UndetectedKind,
}

/// Rejects empty and over-long input before any decoding work.
pub(crate) fn check_length(kind: SignalKind, input: &str, max: usize) -> Result<(), ConsentError> {
    if input.is_empty() {
        return Err(ConsentError::Empty { kind });
    }
    if input.len() > max {
        return Err(ConsentError::TooLong {
            kind,
            len: input.len(),
            max,
        });
    }
    Ok(())
}

/// Guesses the kind of a consent string from its shape: `1~`/`2~` → AC; four characters starting
/// with `1` → US Privacy; `DB` (GPP header type 3, version 1) → GPP; `C` (TCF version 2) → TCF.
#[must_use]
pub fn detect_kind(input: &str) -> Option<SignalKind> {
    let s = input.trim();
    if s.starts_with("1~") || s.starts_with("2~") {
        Some(SignalKind::Ac)
    } else if s.len() == 4 && s.starts_with('1') {
        Some(SignalKind::Usp)
    } else if s.starts_with("DB") {
        Some(SignalKind::Gpp)
    } else if s.starts_with('C') {
        Some(SignalKind::Tcf)
    } else {
        None
    }
}

/// Decodes one consent string to the documented JSON object (see `docs/consent.md`), for
/// `gatehouse consent decode`. The kind is auto-detected when `kind` is `None`; the object
/// carries it as `"kind"`.
///
/// # Errors
/// [`ConsentError::UndetectedKind`] when auto-detection fails, otherwise the decoder's error.
pub fn decode_to_json(input: &str, kind: Option<SignalKind>) -> Result<Value, ConsentError> {
    let input = input.trim();
    let kind = match kind {
        Some(k) => k,
        None => detect_kind(input).ok_or(ConsentError::UndetectedKind)?,
    };
    let max = DEFAULT_MAX_STRING_LENGTH;
    let mut value = match kind {
        SignalKind::Tcf => TcString::decode(input, max)?.to_json(),
        SignalKind::Gpp => GppString::decode(input, max)?.to_json(),
        SignalKind::Usp => {
            check_length(kind, input, max)?;
            input.parse::<UsPrivacy>()?.to_json()
        }
        SignalKind::Ac => AdditionalConsent::decode(input, max)?.to_json(),
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("kind".into(), Value::from(kind.as_str()));
    }
    Ok(value)
}
