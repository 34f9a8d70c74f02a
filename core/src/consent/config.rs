//! The `[consent]` configuration table. Unknown keys are errors; every key has a documented
//! default so an empty table is valid.

use serde::{Deserialize, Deserializer};

use super::usp::UsPrivacy;

/// Default bound on any single consent string, in bytes.
pub const DEFAULT_MAX_STRING_LENGTH: usize = 16 * 1024;

/// Configuration of consent extraction and the per-request pipeline (`[consent]` in TOML).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// `[consent.cookie_names]`: which cookies carry which signal.
    pub cookie_names: CookieNames,
    /// `[consent.header_names]`: request headers that carry signals.
    pub header_names: HeaderNames,
    /// `max_consent_age_days` (default 395): a TCF record whose `last_updated` is older than this
    /// is dropped, from the standalone cookie and from GPP alike.
    pub max_consent_age_days: u32,
    /// `conflict_mode` (default `"restrictive"`): how a standalone TC string and a GPP `tcfeuv2`
    /// section that disagree on storage (purpose 1) or personalised ads (purposes 3/4) resolve.
    pub conflict_mode: ConflictMode,
    /// `freshness_threshold_seconds` (default 300): in `newest` mode, the newer record wins only
    /// if its `last_updated` is at least this much newer; otherwise `restrictive` applies.
    pub freshness_threshold_seconds: u64,
    /// `gpc_us_privacy` (default `"1YYN"`): the US Privacy string synthesised when GPC is set,
    /// US privacy applies and no US Privacy string came in.
    pub gpc_us_privacy: UsPrivacy,
    /// `max_string_length` (default 16384): longer consent strings are rejected unread.
    pub max_string_length: usize,
    /// `clock_skew_seconds` (default 300): a TCF record whose `last_updated` lies further than
    /// this in the future is invalid (ignored with a warning) instead of never expiring.
    pub clock_skew_seconds: u64,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            cookie_names: CookieNames::default(),
            header_names: HeaderNames::default(),
            max_consent_age_days: 395,
            conflict_mode: ConflictMode::Restrictive,
            freshness_threshold_seconds: 300,
            gpc_us_privacy: UsPrivacy {
                version: 1,
                notice: 'Y',
                opt_out_sale: 'Y',
                lspa: 'N',
            },
            max_string_length: DEFAULT_MAX_STRING_LENGTH,
            clock_skew_seconds: 300,
        }
    }
}

/// Cookie names per signal (`[consent.cookie_names]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CookieNames {
    /// `tc_string` (default `euconsent-v2`).
    pub tc_string: String,
    /// `gpp` (default `__gpp`).
    pub gpp: String,
    /// `gpp_sid` (default `__gpp_sid`).
    pub gpp_sid: String,
    /// `us_privacy` (default `["us_privacy", "usprivacy"]`): a name or a list of names. The IAB
    /// US Privacy technical specification names the first-party cookie `usprivacy`; many CMPs
    /// write `us_privacy`. Every copy under every name is read.
    #[serde(deserialize_with = "one_or_many")]
    pub us_privacy: Vec<String>,
    /// `additional_consent` (default `addtl_consent`).
    pub additional_consent: String,
}

impl Default for CookieNames {
    fn default() -> Self {
        CookieNames {
            tc_string: "euconsent-v2".into(),
            gpp: "__gpp".into(),
            gpp_sid: "__gpp_sid".into(),
            us_privacy: vec!["us_privacy".into(), "usprivacy".into()],
            additional_consent: "addtl_consent".into(),
        }
    }
}

/// Header names per signal (`[consent.header_names]`). A string header is read only when the
/// matching cookie is absent. Names are case-insensitive.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderNames {
    /// `gpc` (default `Sec-GPC`): value `1` means Global Privacy Control is on.
    pub gpc: String,
    /// `tc_string` (default unset).
    pub tc_string: Option<String>,
    /// `gpp` (default unset).
    pub gpp: Option<String>,
    /// `gpp_sid` (default unset).
    pub gpp_sid: Option<String>,
    /// `us_privacy` (default unset).
    pub us_privacy: Option<String>,
    /// `additional_consent` (default unset).
    pub additional_consent: Option<String>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            gpc: "Sec-GPC".into(),
            tc_string: None,
            gpp: None,
            gpp_sid: None,
            us_privacy: None,
            additional_consent: None,
        }
    }
}

/// Resolution of a standalone TC string vs. a GPP `tcfeuv2` section that disagree.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConflictMode {
    /// Grant a purpose only if both records grant it (bitwise intersection).
    #[default]
    Restrictive,
    /// Grant a purpose if either record grants it (bitwise union).
    Permissive,
    /// The record with the newer `last_updated` wins outright when it is newer by at least
    /// `freshness_threshold_seconds`; otherwise `restrictive`.
    Newest,
}

/// A cookie name or a non-empty list of names.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let names = match OneOrMany::deserialize(d)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    };
    if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
        return Err(serde::de::Error::custom(
            "expected a cookie name or a non-empty list of non-empty cookie names",
        ));
    }
    Ok(names)
}
