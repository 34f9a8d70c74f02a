//! The typed consent input to permission resolution.
//!
//! Decoders in [`crate::consent`] produce these; the resolver never sees raw strings.

/// Consent signals for one request, already decoded and validated.
///
/// A TCF record, when present, is authoritative for every permission the policy maps to a TCF
/// purpose or special feature; US-style opt-outs only ever revoke, and whether they also revoke
/// what a TCF record grants is the matched group's `opt-outs-override-tcf`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// A TCF v2 record (a standalone TC string or an applicable GPP `tcfeuv2` section), if
    /// present, valid and not expired.
    pub tcf: Option<TcfSignal>,
    /// Global Privacy Control: a `Sec-GPC: 1` header, or a GPP US section whose GPC sub-section
    /// is set.
    pub gpc: bool,
    /// A US Privacy string (cookie or GPP `uspv1`) with opt-out-of-sale `Y`.
    pub us_privacy_opt_out: bool,
    /// A GPP US section (national or state) with sale opt-out = 1 (opted out).
    pub gpp_sale_opt_out: bool,
    /// A GPP US section with sharing opt-out = 1 (opted out).
    pub gpp_sharing_opt_out: bool,
    /// A GPP US section with targeted-advertising opt-out = 1 (opted out).
    pub gpp_targeted_ads_opt_out: bool,
    /// GPP sections that can carry a US opt-out (`uspv1`, `usnat`, the US states) but did not
    /// decode. Fail closed: the opt-outs such a section can carry are already set in the fields
    /// above; this set says why, for explanations.
    pub fail_closed_gpp_sections: GppSectionSet,
}

/// The parts of a TCF v2 record that permission resolution reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcfSignal {
    /// Bit `n - 1` set: consent to TCF purpose `n` (1..=24).
    pub purpose_consents: u32,
    /// Bit `n - 1` set: legitimate interest established for TCF purpose `n` (1..=24).
    pub purpose_li: u32,
    /// Bit `n - 1` set: opt-in to TCF special feature `n` (1..=12).
    pub special_feature_optins: u16,
    /// The publisher TC segment (the visitor's choices for the publisher's own processing), when
    /// the record carries one. The policy's `signals.tcf.publisher-tc-authoritative` decides
    /// whether it replaces the core purpose fields above.
    pub publisher: Option<PublisherTcfSignal>,
}

/// The purpose fields of a TCF publisher TC segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherTcfSignal {
    /// Bit `n - 1` set: publisher purpose consent for TCF purpose `n`.
    pub purpose_consents: u32,
    /// Bit `n - 1` set: publisher purpose legitimate interest for TCF purpose `n`.
    pub purpose_li: u32,
}

/// A set of GPP section ids (0..=63), allocation-free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GppSectionSet(u64);

impl GppSectionSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// Adds `id`; ids above 63 (no GPP section that carries an opt-out) are ignored.
    pub fn insert(&mut self, id: u16) {
        if id < 64 {
            self.0 |= 1 << id;
        }
    }

    /// Whether `id` is in the set.
    #[must_use]
    pub const fn contains(self, id: u16) -> bool {
        id < 64 && self.0 & (1 << id) != 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The ids in ascending order.
    pub fn iter(self) -> impl Iterator<Item = u16> {
        (0..64u16).filter(move |&id| self.contains(id))
    }
}

impl Signals {
    /// Whether any US-style opt-out (GPC, US Privacy, GPP sale/sharing/targeted ads) is present.
    #[must_use]
    pub fn any_us_opt_out(&self) -> bool {
        self.gpc
            || self.us_privacy_opt_out
            || self.gpp_sale_opt_out
            || self.gpp_sharing_opt_out
            || self.gpp_targeted_ads_opt_out
    }
}
