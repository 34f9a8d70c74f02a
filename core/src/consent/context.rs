//! The per-request consent pipeline: raw signals → decoded, expiry-checked, conflict-resolved
//! [`ConsentContext`] → [`Signals`] for permission resolution.
//!
//! Decisions made here (and lessons from a prior system's review):
//! - Malformed input for one signal becomes a [`ConsentWarning`] and that signal is ignored; the
//!   others still count. Core does no logging, the host logs the warnings.
//! - An expired TCF record is dropped from the standalone cookie *and* from the GPP `tcfeuv2`
//!   section, each checked against its own `last_updated`, so no copy leaks through a fallback.
//! - Conflict resolution borrows both records and only records which one wins; nothing is cloned.
//! - `gdpr_applies` comes from [`JurisdictionFacts`] (the matched policy group), never from the
//!   presence of a TC string or a country list.
//! - The fingerprint covers every raw signal including `__gpp_sid`, with length-prefixed fields
//!   and presence tags so `None`/`Some("")`/shifted values cannot collide.

use std::fmt;

use sha2::{Digest, Sha256};

use super::ac::AdditionalConsent;
use super::config::{ConflictMode, ConsentConfig};
use super::extract::{HeaderLookup, RawSignals};
use super::gpp::{GppString, TCFEUV2, parse_gpp_sid};
use super::tcf::TcString;
use super::usp::UsPrivacy;
use super::{ConsentError, SignalKind};
use crate::policy::{Signals, TcfSignal};

/// Jurisdiction facts from the matched policy group, taken as plain inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JurisdictionFacts {
    /// The group's `gdpr_applies` attribute.
    pub gdpr_applies: bool,
    /// The group's `us_privacy_applies` attribute.
    pub us_privacy_applies: bool,
}

/// Everything the pipeline needs from one request.
#[derive(Clone, Copy)]
pub struct ConsentInput<'a> {
    /// The `Cookie` header value, if any.
    pub cookie_header: Option<&'a str>,
    /// Request headers.
    pub headers: &'a dyn HeaderLookup,
    /// Facts of the matched policy group.
    pub jurisdiction: JurisdictionFacts,
    /// The current time, seconds since the Unix epoch (core has no clock).
    pub now_unix_seconds: u64,
}

/// Which signal a warning is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalSource {
    /// The standalone TC string.
    TcString,
    /// The GPP string.
    Gpp,
    /// `__gpp_sid`.
    GppSid,
    /// The US Privacy string.
    UsPrivacy,
    /// The Additional Consent string.
    AdditionalConsent,
}

impl fmt::Display for SignalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignalSource::TcString => "tc string",
            SignalSource::Gpp => "gpp string",
            SignalSource::GppSid => "gpp section ids",
            SignalSource::UsPrivacy => "us privacy string",
            SignalSource::AdditionalConsent => "additional consent string",
        })
    }
}

/// A signal that was present but ignored because it did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ignored {source_signal}: {error}")]
pub struct ConsentWarning {
    /// The signal that was ignored.
    pub source_signal: SignalSource,
    /// Why.
    pub error: ConsentError,
}

/// Which TCF record(s) the context uses, after expiry and conflict resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcfChoice {
    /// No usable TCF record.
    None,
    /// The standalone TC string (the only one, or they agree, or it won).
    Standalone,
    /// The GPP `tcfeuv2` section (the only one, or it won).
    Gpp,
    /// Both, intersected (restrictive resolution of a conflict).
    Intersection,
    /// Both, united (permissive resolution of a conflict).
    Union,
}

/// A short, stable hash of a request's raw consent signals, for write-on-change persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsentFingerprint([u8; 16]);

impl ConsentFingerprint {
    /// The raw 16 bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for ConsentFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The decoded consent state of one request. Built once per request.
#[derive(Clone, Debug)]
pub struct ConsentContext {
    raw: RawSignals,
    tcf: Option<TcString>,
    gpp: Option<GppString>,
    gpp_sid: Option<Vec<u16>>,
    us_privacy: Option<UsPrivacy>,
    us_privacy_synthesized: bool,
    additional_consent: Option<AdditionalConsent>,
    tcf_choice: TcfChoice,
    tcf_conflict: bool,
    expired: bool,
    jurisdiction: JurisdictionFacts,
    warnings: Vec<ConsentWarning>,
}

impl ConsentContext {
    /// Extracts, decodes and resolves the consent signals of one request.
    #[must_use]
    pub fn build(config: &ConsentConfig, input: &ConsentInput<'_>) -> Self {
        let raw = RawSignals::extract(config, input.cookie_header, input.headers);
        Self::from_raw(config, raw, input.jurisdiction, input.now_unix_seconds)
    }

    /// Runs the pipeline on already extracted raw signals.
    #[must_use]
    pub fn from_raw(
        config: &ConsentConfig,
        raw: RawSignals,
        jurisdiction: JurisdictionFacts,
        now_unix_seconds: u64,
    ) -> Self {
        let max = config.max_string_length;
        let mut warnings = Vec::new();
        let mut keep = Keeper(&mut warnings);
        let mut tcf = keep.keep(
            SignalSource::TcString,
            raw.tc_string.as_deref().map(|s| TcString::decode(s, max)),
        );
        let mut gpp = keep.keep(
            SignalSource::Gpp,
            raw.gpp.as_deref().map(|s| GppString::decode(s, max)),
        );
        let gpp_sid = keep.keep(
            SignalSource::GppSid,
            raw.gpp_sid.as_deref().map(parse_gpp_sid),
        );
        let us_privacy = keep.keep(
            SignalSource::UsPrivacy,
            raw.us_privacy.as_deref().map(|s| {
                super::check_length(SignalKind::Usp, s, max)?;
                s.parse::<UsPrivacy>()
            }),
        );
        let additional_consent = keep.keep(
            SignalSource::AdditionalConsent,
            raw.additional_consent
                .as_deref()
                .map(|s| AdditionalConsent::decode(s, max)),
        );

        // Expiry: each copy against its own last_updated.
        let max_age_ds = u64::from(config.max_consent_age_days) * 86_400 * 10;
        let now_ds = now_unix_seconds.saturating_mul(10);
        let is_expired = |tc: &TcString| now_ds.saturating_sub(tc.last_updated) > max_age_ds;
        let mut expired = false;
        if tcf.as_ref().is_some_and(is_expired) {
            tcf = None;
            expired = true;
        }
        if let Some(g) = gpp.as_mut()
            && g.tcf_eu().is_some_and(is_expired)
        {
            g.remove_section(TCFEUV2);
            expired = true;
        }

        let (tcf_choice, tcf_conflict) = resolve_conflict(
            config,
            tcf.as_ref(),
            gpp.as_ref().and_then(GppString::tcf_eu),
        );

        let mut ctx = ConsentContext {
            raw,
            tcf,
            gpp,
            gpp_sid,
            us_privacy,
            us_privacy_synthesized: false,
            additional_consent,
            tcf_choice,
            tcf_conflict,
            expired,
            jurisdiction,
            warnings,
        };
        ctx.synthesize_us_privacy(config);
        ctx
    }

    /// The same context for another jurisdiction, without decoding anything again: the page
    /// pipeline resolves permissions from [`ConsentContext::signals`] (which do not depend on the
    /// jurisdiction) before geo has picked the rule, then attaches the matched group's facts.
    /// Only the jurisdiction-dependent parts change: `gdpr_applies` and the US Privacy string
    /// synthesised from GPC.
    #[must_use]
    pub fn with_jurisdiction(
        mut self,
        config: &ConsentConfig,
        jurisdiction: JurisdictionFacts,
    ) -> Self {
        if self.us_privacy_synthesized {
            self.us_privacy = None;
            self.us_privacy_synthesized = false;
        }
        self.jurisdiction = jurisdiction;
        self.synthesize_us_privacy(config);
        self
    }

    /// GPC → US Privacy, only where US privacy applies and no US Privacy signal came in.
    fn synthesize_us_privacy(&mut self, config: &ConsentConfig) {
        let gpp_usp = self.gpp.as_ref().and_then(GppString::us_privacy).is_some();
        if self.jurisdiction.us_privacy_applies
            && self.raw.gpc
            && self.us_privacy.is_none()
            && !gpp_usp
        {
            self.us_privacy = Some(config.gpc_us_privacy);
            self.us_privacy_synthesized = true;
        }
    }

    /// The raw signals as received (kept even when expired or malformed).
    #[must_use]
    pub fn raw(&self) -> &RawSignals {
        &self.raw
    }

    /// Signals that were present but ignored, for the host to log.
    #[must_use]
    pub fn warnings(&self) -> &[ConsentWarning] {
        &self.warnings
    }

    /// Whether a TCF record was dropped for being older than `max_consent_age_days`.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// Whether the standalone and GPP TCF records disagreed on storage or personalised ads.
    #[must_use]
    pub fn has_tcf_conflict(&self) -> bool {
        self.tcf_conflict
    }

    /// Which TCF record(s) the signals come from.
    #[must_use]
    pub fn tcf_choice(&self) -> TcfChoice {
        self.tcf_choice
    }

    /// The standalone TC string, if present, valid and not expired.
    #[must_use]
    pub fn standalone_tcf(&self) -> Option<&TcString> {
        self.tcf.as_ref()
    }

    /// The decoded GPP string (an expired `tcfeuv2` section already removed).
    #[must_use]
    pub fn gpp(&self) -> Option<&GppString> {
        self.gpp.as_ref()
    }

    /// The TCF record to forward downstream. For a merged choice the record that grants fewer
    /// (restrictive) or more (permissive) of storage and personalised ads; on a tie, the
    /// standalone record. [`ConsentContext::signals`] uses the exact merge instead.
    #[must_use]
    pub fn tcf(&self) -> Option<&TcString> {
        let gpp_tcf = self.gpp.as_ref().and_then(GppString::tcf_eu);
        match self.tcf_choice {
            TcfChoice::None => None,
            TcfChoice::Standalone => self.tcf.as_ref(),
            TcfChoice::Gpp => gpp_tcf,
            TcfChoice::Intersection | TcfChoice::Union => {
                let (a, b) = (self.tcf.as_ref()?, gpp_tcf?);
                let (sa, sb) = (ads_storage_score(a), ads_storage_score(b));
                let pick_b = if self.tcf_choice == TcfChoice::Intersection {
                    sb < sa
                } else {
                    sb > sa
                };
                Some(if pick_b { b } else { a })
            }
        }
    }

    /// `__gpp_sid` as parsed.
    #[must_use]
    pub fn gpp_sid(&self) -> Option<&[u16]> {
        self.gpp_sid.as_deref()
    }

    /// The US Privacy record: received, or synthesised from GPC.
    #[must_use]
    pub fn us_privacy(&self) -> Option<&UsPrivacy> {
        self.us_privacy.as_ref()
    }

    /// Whether [`ConsentContext::us_privacy`] was synthesised from GPC.
    #[must_use]
    pub fn us_privacy_synthesized(&self) -> bool {
        self.us_privacy_synthesized
    }

    /// The Additional Consent record.
    #[must_use]
    pub fn additional_consent(&self) -> Option<&AdditionalConsent> {
        self.additional_consent.as_ref()
    }

    /// Whether GDPR applies, for downstream OpenRTB `regs.gdpr`: from the matched policy group.
    #[must_use]
    pub fn gdpr_applies(&self) -> bool {
        self.jurisdiction.gdpr_applies
    }

    /// The jurisdiction facts this context was built with.
    #[must_use]
    pub fn jurisdiction(&self) -> JurisdictionFacts {
        self.jurisdiction
    }

    /// The typed consent input to permission resolution.
    #[must_use]
    pub fn signals(&self) -> Signals {
        let gpp_tcf = self.gpp.as_ref().and_then(GppString::tcf_eu);
        let tcf = match self.tcf_choice {
            TcfChoice::None => None,
            TcfChoice::Standalone => self.tcf.as_ref().map(tcf_signal),
            TcfChoice::Gpp => gpp_tcf.map(tcf_signal),
            TcfChoice::Intersection | TcfChoice::Union => {
                match (self.tcf.as_ref().map(tcf_signal), gpp_tcf.map(tcf_signal)) {
                    (Some(a), Some(b)) if self.tcf_choice == TcfChoice::Intersection => {
                        Some(TcfSignal {
                            purpose_consents: a.purpose_consents & b.purpose_consents,
                            purpose_li: a.purpose_li & b.purpose_li,
                            special_feature_optins: a.special_feature_optins
                                & b.special_feature_optins,
                        })
                    }
                    (Some(a), Some(b)) => Some(TcfSignal {
                        purpose_consents: a.purpose_consents | b.purpose_consents,
                        purpose_li: a.purpose_li | b.purpose_li,
                        special_feature_optins: a.special_feature_optins | b.special_feature_optins,
                    }),
                    (a, b) => a.or(b),
                }
            }
        };
        let gpp_usp_opt_out = self
            .gpp
            .as_ref()
            .and_then(GppString::us_privacy)
            .is_some_and(UsPrivacy::opted_out);
        let mut signals = Signals {
            tcf,
            gpc: self.raw.gpc,
            // A string synthesised from GPC is for downstream partners only: GPC itself already
            // counts, and the visitor sent no US Privacy signal of their own.
            us_privacy_opt_out: (!self.us_privacy_synthesized
                && self.us_privacy.is_some_and(|u| u.opted_out()))
                || gpp_usp_opt_out,
            ..Signals::default()
        };
        if let Some(gpp) = &self.gpp {
            for us in gpp.us_sections() {
                signals.gpp_sale_opt_out |= us.sale_opt_out() == Some(1);
                signals.gpp_sharing_opt_out |= us.sharing_opt_out() == Some(1);
                signals.gpp_targeted_ads_opt_out |= us.targeted_advertising_opt_out() == Some(1);
            }
        }
        signals
    }

    /// Whether the user explicitly withdrew: a TCF record is present and purpose 1 (storage) is
    /// refused, or any US-style opt-out is set. Drives the Edge Cookie lifecycle.
    #[must_use]
    pub fn is_explicit_withdrawal(&self) -> bool {
        let s = self.signals();
        s.tcf.is_some_and(|t| t.purpose_consents & 1 == 0) || s.any_us_opt_out()
    }

    /// A short stable hash over the raw signals (including `__gpp_sid` and GPC).
    #[must_use]
    pub fn fingerprint(&self) -> ConsentFingerprint {
        fingerprint(&self.raw)
    }
}

/// Fingerprint of raw signals: tagged, presence-marked, length-prefixed fields under SHA-256.
#[must_use]
pub fn fingerprint(raw: &RawSignals) -> ConsentFingerprint {
    let mut h = Sha256::new();
    h.update(b"gatehouse.consent.v1");
    let fields = [
        raw.tc_string.as_deref(),
        raw.gpp.as_deref(),
        raw.gpp_sid.as_deref(),
        raw.us_privacy.as_deref(),
        raw.additional_consent.as_deref(),
    ];
    for (tag, field) in (1u8..).zip(fields) {
        h.update([tag]);
        match field {
            None => h.update([0]),
            Some(s) => {
                h.update([1]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    h.update([6, u8::from(raw.gpc)]);
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    ConsentFingerprint(out)
}

/// Turns a decode result into an optional value, recording the error as a warning.
struct Keeper<'a>(&'a mut Vec<ConsentWarning>);

impl Keeper<'_> {
    fn keep<T>(&mut self, source: SignalSource, r: Option<Result<T, ConsentError>>) -> Option<T> {
        match r? {
            Ok(v) => Some(v),
            Err(error) => {
                self.0.push(ConsentWarning {
                    source_signal: source,
                    error,
                });
                None
            }
        }
    }
}

fn tcf_signal(tc: &TcString) -> TcfSignal {
    TcfSignal {
        purpose_consents: tc.purpose_consents,
        purpose_li: tc.purpose_li,
        special_feature_optins: tc.special_feature_optins,
    }
}

/// (storage allowed, personalised ads allowed): purpose 1; purposes 3 and 4.
fn storage_and_ads(tc: &TcString) -> (bool, bool) {
    (
        tc.has_purpose_consent(1),
        tc.has_purpose_consent(3) && tc.has_purpose_consent(4),
    )
}

fn ads_storage_score(tc: &TcString) -> u8 {
    let (s, a) = storage_and_ads(tc);
    u8::from(s) + u8::from(a)
}

fn resolve_conflict(
    config: &ConsentConfig,
    standalone: Option<&TcString>,
    gpp: Option<&TcString>,
) -> (TcfChoice, bool) {
    let (a, b) = match (standalone, gpp) {
        (None, None) => return (TcfChoice::None, false),
        (Some(_), None) => return (TcfChoice::Standalone, false),
        (None, Some(_)) => return (TcfChoice::Gpp, false),
        (Some(a), Some(b)) => (a, b),
    };
    if storage_and_ads(a) == storage_and_ads(b) {
        return (TcfChoice::Standalone, false);
    }
    let choice = match config.conflict_mode {
        ConflictMode::Restrictive => TcfChoice::Intersection,
        ConflictMode::Permissive => TcfChoice::Union,
        ConflictMode::Newest => {
            let threshold_ds = config.freshness_threshold_seconds.saturating_mul(10);
            if a.last_updated >= b.last_updated.saturating_add(threshold_ds) {
                TcfChoice::Standalone
            } else if b.last_updated >= a.last_updated.saturating_add(threshold_ds) {
                TcfChoice::Gpp
            } else {
                TcfChoice::Intersection
            }
        }
    };
    (choice, true)
}
