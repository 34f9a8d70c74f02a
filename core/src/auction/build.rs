//! Building one OpenRTB 2.6 `BidRequest` (and its outbound headers) per bidder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::consent::gpp::TCFEUV2;
use crate::consent::{ConsentContext, CookieNames};
use crate::openrtb::{
    Banner, BidRequest, ConsentedProvidersSettings, Device, Eid, Geo, Imp, Publisher, Regs,
    RegsExt, Site, Source, Uid, User, UserExt, alpha3,
};
use crate::policy::{MatchKind, MatchedRule};

use super::config::BidderConfig;
use super::input::{AuctionInput, MediaType};

/// Whether GDPR applies, as OpenRTB `regs.gdpr` states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GdprApplies {
    /// `regs.gdpr = 1`.
    Yes,
    /// `regs.gdpr = 0`: a policy rule for the visitor's own country or region says it does not.
    No,
    /// Not sent: the jurisdiction is not known (no rule for the country, geo unavailable or
    /// failed) and the fallback group does not say GDPR applies. Never a guessed `0`.
    Unknown,
}

impl GdprApplies {
    /// From the matched rule: the group's `gdpr-applies` when true; `No` only when a rule for
    /// the visitor's country or region matched; otherwise `Unknown`.
    #[must_use]
    pub fn from_rule(rule: &MatchedRule<'_>) -> Self {
        if rule.gdpr_applies() {
            Self::Yes
        } else {
            match rule.match_kind() {
                MatchKind::Region | MatchKind::Country => Self::No,
                MatchKind::Default | MatchKind::GeoFailed => Self::Unknown,
            }
        }
    }

    /// The `regs.gdpr` value.
    #[must_use]
    pub fn as_regs(self) -> Option<u8> {
        match self {
            Self::Yes => Some(1),
            Self::No => Some(0),
            Self::Unknown => None,
        }
    }
}

/// Truncates an address for a request without personalised-ads permission: IPv4 to its /24,
/// IPv6 to its /48 (an IPv4-mapped IPv6 address is treated as IPv4).
#[must_use]
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// The consent values that may leave Gatehouse, computed once per auction: each is present only
/// when its signal decoded and (for TCF) has not expired. Raw strings are forwarded verbatim.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ForwardedConsent {
    pub tc_string: Option<String>,
    pub gpp: Option<String>,
    pub gpp_sid: Vec<u16>,
    pub us_privacy: Option<String>,
    pub additional_consent: Option<String>,
    /// Which consent cookies (configured names) carry a forwardable value.
    pub tc_cookie: bool,
    pub gpp_cookie: bool,
    pub gpp_sid_cookie: bool,
    pub us_privacy_cookie: bool,
    pub ac_cookie: bool,
}

impl ForwardedConsent {
    pub(crate) fn new(consent: &ConsentContext) -> Self {
        let raw = consent.raw();
        let standalone = consent.standalone_tcf();
        // The GPP string is forwarded only if nothing in it was dropped for expiry: a GPP string
        // cannot be re-encoded without its section, and an expired record counts as none.
        let gpp_intact = consent
            .gpp()
            .is_some_and(|g| !(g.section_ids.contains(&TCFEUV2) && g.tcf_eu().is_none()));
        let gpp = gpp_intact.then(|| raw.gpp.clone()).flatten();
        // `user.consent`: the TCF record the context chose, as its own raw string.
        let tc_string = match consent.tcf() {
            None => None,
            Some(chosen) if standalone.is_some_and(|s| std::ptr::eq(s, chosen)) => {
                raw.tc_string.clone()
            }
            Some(_) => gpp.as_deref().and_then(|raw_gpp| {
                let ids = &consent.gpp()?.section_ids;
                let index = ids.iter().position(|&id| id == TCFEUV2)?;
                raw_gpp.split('~').nth(index + 1).map(str::to_owned)
            }),
        };
        let us_privacy = consent.us_privacy().map(ToString::to_string);
        let received_usp = us_privacy.is_some() && !consent.us_privacy_synthesized();
        Self {
            tc_cookie: standalone.is_some() && raw.tc_string.is_some(),
            gpp_cookie: gpp.is_some(),
            gpp_sid_cookie: consent.gpp_sid().is_some(),
            us_privacy_cookie: received_usp,
            ac_cookie: consent.additional_consent().is_some(),
            tc_string,
            gpp,
            gpp_sid: consent.gpp_sid().map(<[u16]>::to_vec).unwrap_or_default(),
            us_privacy,
            additional_consent: consent
                .additional_consent()
                .and(raw.additional_consent.clone()),
        }
    }

    /// Whether cookie `name` is a consent cookie whose value may be forwarded.
    fn cookie_forwardable(&self, names: &CookieNames, name: &str) -> bool {
        (name == names.tc_string && self.tc_cookie)
            || (name == names.gpp && self.gpp_cookie)
            || (name == names.gpp_sid && self.gpp_sid_cookie)
            || (names.us_privacy.iter().any(|n| n == name) && self.us_privacy_cookie)
            || (name == names.additional_consent && self.ac_cookie)
    }
}

/// The per-auction facts every bidder's request shares.
pub(crate) struct Shared<'a> {
    pub request_id: &'a str,
    pub transaction_id: &'a str,
    pub currency: &'a str,
    pub tmax_ms: u64,
    pub gdpr: GdprApplies,
    pub consent: ForwardedConsent,
    pub device: Device,
    /// The identifiers, already gated on permissions (empty when not permitted).
    pub eids: Vec<Eid>,
}

pub(crate) fn device(
    user_agent: Option<&str>,
    client_ip: Option<IpAddr>,
    country: Option<&str>,
    personalised: bool,
) -> Device {
    let ip = client_ip.map(|ip| {
        if personalised {
            ip.to_canonical()
        } else {
            truncate_ip(ip)
        }
    });
    Device {
        ua: user_agent.map(str::to_owned),
        geo: country.and_then(alpha3).map(|c| Geo {
            country: Some(c.to_owned()),
        }),
        ip: match ip {
            Some(IpAddr::V4(v4)) => Some(v4.to_string()),
            _ => None,
        },
        ipv6: match ip {
            Some(IpAddr::V6(v6)) => Some(v6.to_string()),
            _ => None,
        },
    }
}

pub(crate) fn edge_cookie_eid(source: &str, id: &str) -> Eid {
    Eid {
        source: source.to_owned(),
        uids: vec![Uid {
            id: id.to_owned(),
            atype: Some(1),
        }],
    }
}

pub(crate) fn bid_request(
    shared: &Shared<'_>,
    input: &AuctionInput,
    bidder: &BidderConfig,
    tmax_ms: u64,
) -> BidRequest {
    let imp = input
        .ad_units
        .iter()
        .enumerate()
        .map(|(i, unit)| Imp {
            id: (i + 1).to_string(),
            banner: match unit.media_type {
                MediaType::Banner => Some(Banner {
                    format: unit.sizes.clone(),
                }),
            },
            tagid: Some(unit.code.clone()),
            bidfloor: unit.floor,
            bidfloorcur: unit.floor.map(|_| shared.currency.to_owned()),
            secure: input.secure.then_some(1),
        })
        .collect();

    let c = &shared.consent;
    let in_body = bidder.consent_forwarding.in_body();
    let gdpr = shared.gdpr.as_regs();
    let (us_privacy, gpp, gpp_sid, tc, ac) = if in_body {
        (
            c.us_privacy.clone(),
            c.gpp.clone(),
            c.gpp_sid.clone(),
            c.tc_string.clone(),
            c.additional_consent.clone(),
        )
    } else {
        (None, None, Vec::new(), None, None)
    };
    let regs_ext = RegsExt {
        gdpr,
        us_privacy: us_privacy.clone(),
        gpp: gpp.clone(),
        gpp_sid: gpp_sid.clone(),
    };
    let regs = Regs {
        gdpr,
        us_privacy,
        gpp,
        gpp_sid,
        ext: (regs_ext != RegsExt::default()).then_some(regs_ext),
    };
    let user_ext = UserExt {
        consent: tc.clone(),
        consented_providers_settings: ac.map(|consented_providers| ConsentedProvidersSettings {
            consented_providers,
        }),
    };
    let user = User {
        consent: tc,
        eids: if bidder.bidstream_enabled {
            shared.eids.clone()
        } else {
            Vec::new()
        },
        ext: (user_ext != UserExt::default()).then_some(user_ext),
    };
    BidRequest {
        id: shared.request_id.to_owned(),
        imp,
        site: Some(Site {
            domain: Some(input.domain.clone()),
            page: Some(input.page_url.clone()),
            publisher: bidder.publisher_id.as_ref().map(|id| Publisher {
                id: Some(id.clone()),
            }),
        }),
        device: (shared.device != Device::default()).then(|| shared.device.clone()),
        user: (!user.is_empty()).then_some(user),
        tmax: Some(tmax_ms),
        cur: vec![shared.currency.to_owned()],
        source: Some(Source {
            tid: Some(shared.transaction_id.to_owned()),
        }),
        regs: (!regs.is_empty()).then_some(regs),
    }
}

/// The `Cookie` header for one bidder: from the visitor's `Cookie` header, the first occurrence
/// of each consent cookie whose value is forwardable (when the mode forwards cookies) and of each
/// `forward_cookies` name, in the visitor's order and byte for byte. Everything else (the Edge
/// Cookie, the publisher's other cookies, consent cookies that expired or did not decode) stays.
pub(crate) fn cookie_header(
    visitor_cookies: Option<&str>,
    bidder: &BidderConfig,
    names: &CookieNames,
    consent: &ForwardedConsent,
) -> Option<String> {
    let cookies = visitor_cookies?;
    let with_consent = bidder.consent_forwarding.in_cookies();
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::new();
    for pair in cookies.split(';') {
        let pair = pair.trim();
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let name = name.trim();
        // An empty value counts as absent, as consent extraction reads it: the pair forwarded
        // is the one that was decoded.
        if value.trim().trim_matches('"').is_empty() {
            continue;
        }
        let wanted = (with_consent && consent.cookie_forwardable(names, name))
            || bidder.forward_cookies.iter().any(|n| n == name);
        if !wanted || seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(out)
}
