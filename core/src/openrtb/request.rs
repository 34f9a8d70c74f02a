//! The OpenRTB 2.6 `BidRequest` subset Gatehouse sends. Field docs name the OpenRTB path.

use serde::{Deserialize, Serialize};

/// `BidRequest` (OpenRTB 2.6 §3.2.1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BidRequest {
    /// `id`: unique id of this request (per bidder), supplied by the host.
    pub id: String,
    /// `imp`: one impression per ad unit.
    pub imp: Vec<Imp>,
    /// `site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Site>,
    /// `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// `tmax`: the time the bidder has, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmax: Option<u64>,
    /// `cur`: allowed bid currencies (ISO 4217).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cur: Vec<String>,
    /// `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// `regs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regs: Option<Regs>,
}

/// `Imp` (§3.2.4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Imp {
    /// `imp.id`: unique within the request (`1`, `2`, ... in ad unit order).
    pub id: String,
    /// `imp.banner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banner: Option<Banner>,
    /// `imp.tagid`: the page's ad unit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagid: Option<String>,
    /// `imp.bidfloor`: minimum bid, in `bidfloorcur`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bidfloor: Option<f64>,
    /// `imp.bidfloorcur`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bidfloorcur: Option<String>,
    /// `imp.secure`: 1 when the creative must be served over HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<u8>,
}

/// `Banner` (§3.2.6).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Banner {
    /// `banner.format`: the allowed sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub format: Vec<Format>,
}

/// `Format` (§3.2.10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    /// `format.w`, device-independent pixels.
    pub w: u32,
    /// `format.h`.
    pub h: u32,
}

/// `Site` (§3.2.13).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// `site.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `site.page`: the page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// `site.publisher`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<Publisher>,
}

/// `Publisher` (§3.2.15).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Publisher {
    /// `publisher.id`: the publisher's account at this bidder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `Device` (§3.2.18).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `device.ua`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
    /// `device.geo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// `device.ip`: IPv4 address (truncated where personalised ads are not permitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `device.ipv6`: IPv6 address (truncated likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
}

/// `Geo` (§3.2.19).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// `geo.country`: ISO 3166-1 alpha-3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// `User` (§3.2.20).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `user.consent`: the TCF TC string (OpenRTB 2.6 location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// `user.eids`: extended identifiers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eids: Vec<Eid>,
    /// `user.ext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<UserExt>,
}

impl User {
    /// Whether nothing would be serialised.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.consent.is_none() && self.eids.is_empty() && self.ext.is_none()
    }
}

/// `user.ext`: the OpenRTB 2.5 consent location and Google Additional Consent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserExt {
    /// `user.ext.consent`: the TC string, mirrored for OpenRTB 2.5 exchanges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// `user.ext.ConsentedProvidersSettings` (Prebid / Google convention).
    #[serde(
        rename = "ConsentedProvidersSettings",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub consented_providers_settings: Option<ConsentedProvidersSettings>,
}

/// `user.ext.ConsentedProvidersSettings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsentedProvidersSettings {
    /// `consented_providers`: the Additional Consent string as received (e.g. `2~1.35~dv.9`).
    pub consented_providers: String,
}

/// `EID` (§3.2.27).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eid {
    /// `eid.source`: the domain of the identity source.
    pub source: String,
    /// `eid.uids`.
    pub uids: Vec<Uid>,
}

/// `UID` (§3.2.28).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uid {
    /// `uid.id`.
    pub id: String,
    /// `uid.atype`: 1 cookie/device id, 2 person-based id, 3 ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atype: Option<u16>,
}

/// `Source` (§3.2.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `source.tid`: the transaction id, shared by every bidder of one auction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
}

/// `Regs` (§3.2.3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Regs {
    /// `regs.gdpr`: 1 when GDPR applies, 0 when it does not; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gdpr: Option<u8>,
    /// `regs.us_privacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub us_privacy: Option<String>,
    /// `regs.gpp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpp: Option<String>,
    /// `regs.gpp_sid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpp_sid: Vec<u16>,
    /// `regs.ext`: the same values in the OpenRTB 2.5 extension locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<RegsExt>,
}

/// `regs.ext` (OpenRTB 2.5 / Prebid extension locations).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegsExt {
    /// `regs.ext.gdpr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gdpr: Option<u8>,
    /// `regs.ext.us_privacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub us_privacy: Option<String>,
    /// `regs.ext.gpp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpp: Option<String>,
    /// `regs.ext.gpp_sid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpp_sid: Vec<u16>,
}

impl Regs {
    /// Whether nothing would be serialised.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.gdpr.is_none()
            && self.us_privacy.is_none()
            && self.gpp.is_none()
            && self.gpp_sid.is_empty()
            && self.ext.is_none()
    }
}
