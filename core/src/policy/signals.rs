//! The typed consent input to permission resolution.
//!
//! Decoders in [`crate::consent`] produce these; the resolver never sees raw strings.

/// Consent signals for one request, already decoded and validated.
///
/// A TCF record, when present, is authoritative for every permission the policy maps to a TCF
/// purpose or special feature and wins over US-style opt-outs. US-style opt-outs only ever revoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// A TCF v2 record (a standalone TC string or a GPP `tcfeuv2` section), if present and not
    /// expired.
    pub tcf: Option<TcfSignal>,
    /// Global Privacy Control: the request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// A US Privacy string with opt-out-of-sale `Y`.
    pub us_privacy_opt_out: bool,
    /// A GPP US section (national or state) with sale opt-out = 1 (opted out).
    pub gpp_sale_opt_out: bool,
    /// A GPP US section with sharing opt-out = 1 (opted out).
    pub gpp_sharing_opt_out: bool,
    /// A GPP US section with targeted-advertising opt-out = 1 (opted out).
    pub gpp_targeted_ads_opt_out: bool,
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
