//! The per-request consent pipeline: raw signals → decoded, expiry-checked, conflict-resolved
//! [`ConsentContext`] → [`Signals`] for permission resolution.
//!
//! Decisions made here (and lessons from a prior system's review):
//! - Malformed input for one signal becomes a [`ConsentWarning`] and that signal is ignored; the
//!   others still count. Core does no logging, the host logs the warnings.
//! - Never lose an opt-out. GPP sections decode independently; a section that can carry a US
//!   opt-out (`uspv1`, `usnat`, a US state) but does not decode counts as opted out of everything
//!   it can carry (fail closed). Every copy of a repeated cookie is decoded: undecodable copies
//!   are skipped, any decodable copy that opts out counts, and between TC strings the newest
//!   `last_updated` wins (browsers send older cookies first, RFC 6265 §5.4, so order decides
//!   nothing). A GPC sub-section in a GPP US section counts as GPC.
//! - Only applicable sections grant. When `__gpp_sid` is present, a GPP `tcfeuv2` section counts
//!   only if the list names section 2 (`-1` names none; a `__gpp_sid` that does not decode names
//!   none either: fail closed). Opt-outs count whether or not their section is listed: taking
//!   away is always safe.
//! - A TCF record whose `last_updated` lies more than `clock_skew_seconds` in the future is
//!   invalid (it would otherwise never expire).
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
use super::gpp::{GppSection, GppString, TCFEUV2, USPV1, can_carry_us_opt_out, parse_gpp_sid};
use super::tcf::TcString;
use super::us::{opt_out_fields, us_section_name};
use super::usp::UsPrivacy;
use super::{ConsentError, SignalKind};
use crate::policy::{PublisherTcfSignal, Signals, TcfSignal};

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
    /// One section of a GPP string (the rest of the string still counts).
    GppSection(u16),
}

impl fmt::Display for SignalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignalSource::TcString => "tc string",
            SignalSource::Gpp => "gpp string",
            SignalSource::GppSid => "gpp section ids",
            SignalSource::UsPrivacy => "us privacy string",
            SignalSource::AdditionalConsent => "additional consent string",
            SignalSource::GppSection(id) => {
                return match section_name(*id) {
                    Some(name) => write!(f, "gpp section {id} (`{name}`)"),
                    None => write!(f, "gpp section {id}"),
                };
            }
        })
    }
}

/// The API prefix of a GPP section id, for messages.
fn section_name(id: u16) -> Option<&'static str> {
    match id {
        1 => Some("tcfeuv1"),
        2 => Some("tcfeuv2"),
        5 => Some("tcfcav1"),
        6 => Some("uspv1"),
        _ => us_section_name(id),
    }
}

/// A signal that was present but ignored because it did not decode (or, for a TCF record, lies
/// in the future).
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
    /// Further decodable GPP copies: they count for opt-outs only.
    gpp_others: Vec<GppString>,
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
        let now_ds = now_unix_seconds.saturating_mul(10);
        let skew_ds = config.clock_skew_seconds.saturating_mul(10);
        // `Some(error)` when `last_updated` lies beyond the allowed skew in the future.
        let in_future = |tc: &TcString| {
            let ahead_ds = tc.last_updated.saturating_sub(now_ds);
            (ahead_ds > skew_ds).then_some(ConsentError::LastUpdatedInFuture {
                ahead_seconds: ahead_ds / 10,
                skew_seconds: config.clock_skew_seconds,
            })
        };

        // TC strings: every decodable, not-future copy; the newest `last_updated` wins (a later
        // copy on a tie).
        let mut tcf: Option<TcString> = None;
        for copy in raw.tc_strings() {
            let decoded = TcString::decode(copy, max).and_then(|tc| match in_future(&tc) {
                Some(error) => Err(error),
                None => Ok(tc),
            });
            match decoded {
                Ok(tc) => {
                    if tcf
                        .as_ref()
                        .is_none_or(|best| tc.last_updated >= best.last_updated)
                    {
                        tcf = Some(tc);
                    }
                }
                Err(error) => warnings.push(ConsentWarning {
                    source_signal: SignalSource::TcString,
                    error,
                }),
            }
        }

        // GPP strings: every decodable copy counts for opt-outs; the one with the newest valid
        // `tcfeuv2` (else the last one) is the primary copy, the only one that may grant.
        let mut gpp_copies: Vec<GppString> = Vec::new();
        for copy in raw.gpp_strings() {
            match GppString::decode(copy, max) {
                Ok(mut g) => {
                    for (id, error) in g.section_errors() {
                        warnings.push(ConsentWarning {
                            source_signal: SignalSource::GppSection(*id),
                            error: error.clone(),
                        });
                    }
                    if let Some(error) = g.tcf_eu().and_then(in_future) {
                        g.remove_section(TCFEUV2);
                        warnings.push(ConsentWarning {
                            source_signal: SignalSource::GppSection(TCFEUV2),
                            error,
                        });
                    }
                    gpp_copies.push(g);
                }
                Err(error) => warnings.push(ConsentWarning {
                    source_signal: SignalSource::Gpp,
                    error,
                }),
            }
        }
        let primary = gpp_copies
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.tcf_eu().map(|tc| (tc.last_updated, i)))
            .max()
            .map(|(_, i)| i)
            .or_else(|| gpp_copies.len().checked_sub(1));
        let mut gpp = primary.map(|i| gpp_copies.remove(i));
        let gpp_others = gpp_copies;

        // `__gpp_sid`: a section applies only if every decodable copy lists it; when copies are
        // present but none decodes, no section applies (fail closed).
        let mut gpp_sid: Option<Vec<u16>> = None;
        let mut sid_present = false;
        for copy in raw.gpp_sids() {
            sid_present = true;
            match parse_gpp_sid(copy) {
                Ok(ids) => {
                    gpp_sid = Some(match gpp_sid {
                        None => ids,
                        Some(mut kept) => {
                            kept.retain(|id| ids.contains(id));
                            kept
                        }
                    });
                }
                Err(error) => warnings.push(ConsentWarning {
                    source_signal: SignalSource::GppSid,
                    error,
                }),
            }
        }
        if sid_present && gpp_sid.is_none() {
            gpp_sid = Some(Vec::new());
        }

        // US Privacy: any decodable copy that opts out wins; otherwise the last decodable copy.
        let mut us_privacy: Option<UsPrivacy> = None;
        for copy in raw.us_privacy_strings() {
            let decoded = super::check_length(SignalKind::Usp, copy, max)
                .and_then(|()| copy.parse::<UsPrivacy>());
            match decoded {
                Ok(usp) => {
                    if !us_privacy.is_some_and(|kept| kept.opted_out()) {
                        us_privacy = Some(usp);
                    }
                }
                Err(error) => warnings.push(ConsentWarning {
                    source_signal: SignalSource::UsPrivacy,
                    error,
                }),
            }
        }

        // Additional Consent: the first decodable copy (it grants nothing here; forwarded only).
        let mut additional_consent = None;
        for copy in raw.additional_consent_strings() {
            match AdditionalConsent::decode(copy, max) {
                Ok(ac) if additional_consent.is_none() => additional_consent = Some(ac),
                Ok(_) => {}
                Err(error) => warnings.push(ConsentWarning {
                    source_signal: SignalSource::AdditionalConsent,
                    error,
                }),
            }
        }

        // Expiry: each record against its own last_updated.
        let max_age_ds = u64::from(config.max_consent_age_days) * 86_400 * 10;
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

        let gpp_tcf_applies = gpp_sid.as_ref().is_none_or(|ids| ids.contains(&TCFEUV2));
        let (tcf_choice, tcf_conflict) = resolve_conflict(
            config,
            tcf.as_ref(),
            gpp.as_ref()
                .and_then(GppString::tcf_eu)
                .filter(|_| gpp_tcf_applies),
        );

        let mut context = ConsentContext {
            raw,
            tcf,
            gpp,
            gpp_others,
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
        context.synthesize_us_privacy(config);
        context
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

    /// GPC → US Privacy, only where US privacy applies and no US Privacy signal came in (nor a
    /// `uspv1` GPP section, decodable or not).
    fn synthesize_us_privacy(&mut self, config: &ConsentConfig) {
        let gpp_usp = self.all_gpp().any(|g| {
            g.us_privacy().is_some() || g.section_errors().iter().any(|(id, _)| *id == USPV1)
        });
        if self.jurisdiction.us_privacy_applies
            && self.gpc()
            && self.us_privacy.is_none()
            && !gpp_usp
        {
            self.us_privacy = Some(config.gpc_us_privacy);
            self.us_privacy_synthesized = true;
        }
    }

    /// Every decodable GPP copy, the primary first.
    fn all_gpp(&self) -> impl Iterator<Item = &GppString> {
        self.gpp.iter().chain(&self.gpp_others)
    }

    /// GPC: the header, or a GPC sub-section set in any GPP US section of any copy.
    fn gpc(&self) -> bool {
        self.raw.gpc
            || self
                .all_gpp()
                .flat_map(GppString::us_sections)
                .any(|us| us.gpc == Some(true))
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

    /// Whether the standalone and the applicable GPP TCF records disagree on any purpose,
    /// legitimate interest, special feature or publisher purpose.
    #[must_use]
    pub fn has_tcf_conflict(&self) -> bool {
        self.tcf_conflict
    }

    /// Which TCF record(s) the signals come from.
    #[must_use]
    pub fn tcf_choice(&self) -> TcfChoice {
        self.tcf_choice
    }

    /// The standalone TC string that counts (the newest valid copy), if not expired.
    #[must_use]
    pub fn standalone_tcf(&self) -> Option<&TcString> {
        self.tcf.as_ref()
    }

    /// The primary decoded GPP string (an expired or future `tcfeuv2` section already removed).
    #[must_use]
    pub fn gpp(&self) -> Option<&GppString> {
        self.gpp.as_ref()
    }

    /// The GPP `tcfeuv2` record, when `__gpp_sid` lets it apply.
    fn applicable_gpp_tcf(&self) -> Option<&TcString> {
        let applies = self
            .gpp_sid
            .as_ref()
            .is_none_or(|ids| ids.contains(&TCFEUV2));
        self.gpp
            .as_ref()
            .and_then(GppString::tcf_eu)
            .filter(|_| applies)
    }

    /// The TCF record to forward downstream. For a merged choice the record that grants fewer
    /// (restrictive) or more (permissive) purposes, legitimate interests and special features;
    /// on a tie, the standalone record. [`ConsentContext::signals`] uses the exact merge instead.
    #[must_use]
    pub fn tcf(&self) -> Option<&TcString> {
        let gpp_tcf = self.applicable_gpp_tcf();
        match self.tcf_choice {
            TcfChoice::None => None,
            TcfChoice::Standalone => self.tcf.as_ref(),
            TcfChoice::Gpp => gpp_tcf,
            TcfChoice::Intersection | TcfChoice::Union => {
                let (a, b) = (self.tcf.as_ref()?, gpp_tcf?);
                let (sa, sb) = (grant_count(a), grant_count(b));
                let pick_b = if self.tcf_choice == TcfChoice::Intersection {
                    sb < sa
                } else {
                    sb > sa
                };
                Some(if pick_b { b } else { a })
            }
        }
    }

    /// `__gpp_sid` as it applies: `None` when absent (every section applies), the ids every
    /// decodable copy lists, or empty for `-1` and when no copy decodes (no section applies).
    #[must_use]
    pub fn gpp_sid(&self) -> Option<&[u16]> {
        self.gpp_sid.as_deref()
    }

    /// The US Privacy record: received (an opted-out copy wins), or synthesised from GPC.
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

    /// The TCF records the signals use.
    fn used_tcf_records(&self) -> impl Iterator<Item = &TcString> {
        let (standalone, gpp) = match self.tcf_choice {
            TcfChoice::None => (None, None),
            TcfChoice::Standalone => (self.tcf.as_ref(), None),
            TcfChoice::Gpp => (None, self.applicable_gpp_tcf()),
            TcfChoice::Intersection | TcfChoice::Union => {
                (self.tcf.as_ref(), self.applicable_gpp_tcf())
            }
        };
        standalone.into_iter().chain(gpp)
    }

    /// The typed consent input to permission resolution.
    #[must_use]
    pub fn signals(&self) -> Signals {
        let gpp_tcf = self.applicable_gpp_tcf().map(tcf_signal);
        let standalone = self.tcf.as_ref().map(tcf_signal);
        let tcf = match self.tcf_choice {
            TcfChoice::None => None,
            TcfChoice::Standalone => standalone,
            TcfChoice::Gpp => gpp_tcf,
            TcfChoice::Intersection => merge(standalone, gpp_tcf, Merge::Intersection),
            TcfChoice::Union => merge(standalone, gpp_tcf, Merge::Union),
        };
        let mut signals = Signals {
            tcf,
            gpc: self.gpc(),
            // A string synthesised from GPC is for downstream partners only: GPC itself already
            // counts, and the visitor sent no US Privacy signal of their own.
            us_privacy_opt_out: !self.us_privacy_synthesized
                && self.us_privacy.is_some_and(|u| u.opted_out()),
            ..Signals::default()
        };
        // Opt-outs count from every decodable copy, listed in `__gpp_sid` or not.
        for gpp in self.all_gpp() {
            for (_, section) in gpp.sections() {
                match section {
                    GppSection::UspV1(u) => signals.us_privacy_opt_out |= u.opted_out(),
                    GppSection::Us(us) => {
                        signals.gpp_sale_opt_out |= us.sale_opt_out() == Some(1);
                        signals.gpp_sharing_opt_out |= us.sharing_opt_out() == Some(1);
                        signals.gpp_targeted_ads_opt_out |=
                            us.targeted_advertising_opt_out() == Some(1);
                    }
                    GppSection::TcfEuV2(_) | GppSection::TcfCaV1(_) | GppSection::Unsupported => {}
                }
            }
            // Fail closed: a section that can carry a US opt-out but did not decode counts as
            // opted out of everything it can carry.
            for &(id, _) in gpp.section_errors() {
                if !can_carry_us_opt_out(id) {
                    continue;
                }
                signals.fail_closed_gpp_sections.insert(id);
                if id == USPV1 {
                    signals.us_privacy_opt_out = true;
                } else if let Some(fields) = opt_out_fields(id) {
                    signals.gpp_sale_opt_out |= fields.sale;
                    signals.gpp_sharing_opt_out |= fields.sharing;
                    signals.gpp_targeted_ads_opt_out |= fields.targeted_advertising;
                    // Every US section may carry a GPC sub-section.
                    signals.gpc = true;
                }
            }
        }
        signals
    }

    /// Whether the user explicitly withdrew: a TCF record that disclosed purpose 1 (storage) and
    /// refuses it, or any US-style opt-out (fail-closed ones included). A record with
    /// `purpose_one_treatment` set never disclosed purpose 1, so its missing purpose 1 consent is
    /// no withdrawal. Drives the Edge Cookie lifecycle.
    #[must_use]
    pub fn is_explicit_withdrawal(&self) -> bool {
        let s = self.signals();
        let purpose_one_refused = s.tcf.is_some_and(|t| t.purpose_consents & 1 == 0);
        let purpose_one_disclosed = self.used_tcf_records().any(|tc| !tc.purpose_one_treatment);
        (purpose_one_refused && purpose_one_disclosed) || s.any_us_opt_out()
    }

    /// A short stable hash over the raw signals (including `__gpp_sid`, GPC and every copy of a
    /// repeated cookie).
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
    // Repeated copies only when present, so fingerprints of ordinary requests are unchanged.
    if !raw.repeated.is_empty() {
        let more = &raw.repeated;
        let lists = [
            &more.tc_string,
            &more.gpp,
            &more.gpp_sid,
            &more.us_privacy,
            &more.additional_consent,
        ];
        for (tag, list) in (7u8..).zip(lists) {
            h.update([tag]);
            h.update((list.len() as u64).to_le_bytes());
            for s in list {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    ConsentFingerprint(out)
}

fn tcf_signal(tc: &TcString) -> TcfSignal {
    TcfSignal {
        purpose_consents: tc.purpose_consents,
        purpose_li: tc.purpose_li,
        special_feature_optins: tc.special_feature_optins,
        publisher: tc.publisher_tc.as_ref().map(|p| PublisherTcfSignal {
            purpose_consents: p.pub_purpose_consents,
            purpose_li: p.pub_purpose_li,
        }),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    Intersection,
    Union,
}

/// Merges two TCF signals field by field, symmetrically. A publisher segment present in only one
/// record is merged with the other record's core purposes (what that record grants the publisher
/// when the policy makes the segment authoritative).
fn merge(a: Option<TcfSignal>, b: Option<TcfSignal>, how: Merge) -> Option<TcfSignal> {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => return a.or(b),
    };
    let op = |x: u32, y: u32| match how {
        Merge::Intersection => x & y,
        Merge::Union => x | y,
    };
    let core_as_publisher = |t: &TcfSignal| PublisherTcfSignal {
        purpose_consents: t.purpose_consents,
        purpose_li: t.purpose_li,
    };
    let publisher = match (a.publisher, b.publisher) {
        (None, None) => None,
        (pa, pb) => {
            let pa = pa.unwrap_or_else(|| core_as_publisher(&a));
            let pb = pb.unwrap_or_else(|| core_as_publisher(&b));
            Some(PublisherTcfSignal {
                purpose_consents: op(pa.purpose_consents, pb.purpose_consents),
                purpose_li: op(pa.purpose_li, pb.purpose_li),
            })
        }
    };
    Some(TcfSignal {
        purpose_consents: op(a.purpose_consents, b.purpose_consents),
        purpose_li: op(a.purpose_li, b.purpose_li),
        special_feature_optins: u16::try_from(op(
            u32::from(a.special_feature_optins),
            u32::from(b.special_feature_optins),
        ))
        .unwrap_or(0),
        publisher,
    })
}

/// How many purposes, legitimate interests and special features a record grants.
fn grant_count(tc: &TcString) -> u32 {
    tc.purpose_consents.count_ones()
        + tc.purpose_li.count_ones()
        + tc.special_feature_optins.count_ones()
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
    // Any difference in what the records grant is a conflict, whichever permission it maps to.
    if tcf_signal(a) == tcf_signal(b) {
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
