//! IAB TCF v2.x TC strings (the `euconsent-v2` cookie and GPP section 2, `tcfeuv2`).
//!
//! Decodes the core segment and the optional disclosed-vendors, allowed-vendors and publisher-TC
//! segments (any order, each at most once) as laid out in IAB Tech Lab "Consent string and vendor
//! list formats v2". Accepts what the reference decoders (iabtcf-es, iabgpp-es, go-gpp) accept,
//! including vendor list version 0; rejects truncated data, version ≠ 2, inconsistent range
//! entries and over-long input; never allocates from a claimed size before checking the bits.

use serde_json::{Value, json};

use super::bits::{BitReader, decode_base64url};
use super::vendors::{VendorSet, read_range_entries, read_vendor_section, set_from_ranges};
use super::{ConsentError, SignalKind, check_length, time};

/// A decoded TCF v2 TC string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcString {
    /// Always 2.
    pub version: u8,
    /// Creation time, deciseconds since the Unix epoch.
    pub created: u64,
    /// Last update time, deciseconds since the Unix epoch.
    pub last_updated: u64,
    /// CMP id.
    pub cmp_id: u16,
    /// CMP version.
    pub cmp_version: u16,
    /// Consent screen number.
    pub consent_screen: u8,
    /// Two-letter ISO 639-1 language code, uppercase ASCII.
    pub consent_language: [u8; 2],
    /// Global Vendor List version (0 is accepted, as the reference decoders do).
    pub vendor_list_version: u16,
    /// TCF policy version.
    pub policy_version: u8,
    /// Whether the signals are service-specific.
    pub is_service_specific: bool,
    /// Whether non-standard texts (stacks) were used.
    pub use_non_standard_texts: bool,
    /// Bit `n - 1`: opted in to special feature `n` (1..=12).
    pub special_feature_optins: u16,
    /// Bit `n - 1`: consent to purpose `n` (1..=24).
    pub purpose_consents: u32,
    /// Bit `n - 1`: legitimate-interest transparency for purpose `n` (1..=24).
    pub purpose_li: u32,
    /// Purpose one treatment flag.
    pub purpose_one_treatment: bool,
    /// Publisher country code, uppercase ASCII.
    pub publisher_cc: [u8; 2],
    /// Vendors with consent.
    pub vendor_consents: VendorSet,
    /// Vendors with legitimate interest established.
    pub vendor_li: VendorSet,
    /// Publisher restrictions, in string order.
    pub pub_restrictions: Vec<PubRestriction>,
    /// Disclosed vendors segment (type 1), when present.
    pub disclosed_vendors: Option<VendorSet>,
    /// Allowed vendors segment (type 2), when present.
    pub allowed_vendors: Option<VendorSet>,
    /// Publisher TC segment (type 3), when present.
    pub publisher_tc: Option<PublisherTc>,
}

/// One publisher restriction entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubRestriction {
    /// Purpose id (1..=63).
    pub purpose: u8,
    /// Restriction type: 0 not allowed, 1 require consent, 2 require legitimate interest.
    pub restriction_type: u8,
    /// Vendors the restriction applies to.
    pub vendors: VendorSet,
}

/// The publisher TC segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherTc {
    /// Bit `n - 1`: publisher purpose consent for purpose `n`.
    pub pub_purpose_consents: u32,
    /// Bit `n - 1`: publisher purpose legitimate interest for purpose `n`.
    pub pub_purpose_li: u32,
    /// Number of custom purposes (0..=63).
    pub num_custom_purposes: u8,
    /// Bit `n - 1`: consent to custom purpose `n`.
    pub custom_consents: u64,
    /// Bit `n - 1`: legitimate interest for custom purpose `n`.
    pub custom_li: u64,
}

impl TcString {
    /// Whether the user consented to purpose `n` (1-based).
    #[must_use]
    pub fn has_purpose_consent(&self, n: u8) -> bool {
        bit(u64::from(self.purpose_consents), n)
    }

    /// Decodes a TC string of at most `max_len` bytes.
    ///
    /// # Errors
    /// [`ConsentError`] describing the first problem: over-long or empty input, invalid base64url,
    /// truncated data, unsupported version, vendor list version 0, invalid range entries or an
    /// unknown/duplicate segment type.
    pub fn decode(input: &str, max_len: usize) -> Result<Self, ConsentError> {
        check_length(SignalKind::Tcf, input, max_len)?;
        let mut segments = input.split('.');
        let core = segments.next().unwrap_or_default();
        let buf = decode_base64url(core)?;
        let mut r = buf.reader();
        let version = r.read(6, "version")? as u8;
        if version != 2 {
            return Err(ConsentError::UnsupportedVersion {
                what: "tc string",
                found: version,
            });
        }
        let created = r.read(36, "created")?;
        let last_updated = r.read(36, "last_updated")?;
        let cmp_id = r.read(12, "cmp_id")? as u16;
        let cmp_version = r.read(12, "cmp_version")? as u16;
        let consent_screen = r.read(6, "consent_screen")? as u8;
        let consent_language = r.read_letters("consent_language")?;
        // 0 is accepted, as the reference decoders (iabtcf-es, iabgpp-es, go-gpp) do: the IAB's
        // own GPP test vectors encode a default `tcfeuv2` section with vendor list version 0.
        let vendor_list_version = r.read(12, "vendor_list_version")? as u16;
        let policy_version = r.read(6, "policy_version")? as u8;
        let is_service_specific = r.read_bool("is_service_specific")?;
        let use_non_standard_texts = r.read_bool("use_non_standard_texts")?;
        let special_feature_optins = read_flags(&mut r, 12, "special_feature_optins")? as u16;
        let purpose_consents = read_flags(&mut r, 24, "purpose_consents")? as u32;
        let purpose_li = read_flags(&mut r, 24, "purpose_li")? as u32;
        let purpose_one_treatment = r.read_bool("purpose_one_treatment")?;
        let publisher_cc = r.read_letters("publisher_cc")?;
        let vendor_consents = read_vendor_section(&mut r, "vendor_consents")?;
        let vendor_li = read_vendor_section(&mut r, "vendor_li")?;
        let pub_restrictions = read_pub_restrictions(&mut r)?;

        let mut tc = TcString {
            version,
            created,
            last_updated,
            cmp_id,
            cmp_version,
            consent_screen,
            consent_language,
            vendor_list_version,
            policy_version,
            is_service_specific,
            use_non_standard_texts,
            special_feature_optins,
            purpose_consents,
            purpose_li,
            purpose_one_treatment,
            publisher_cc,
            vendor_consents,
            vendor_li,
            pub_restrictions,
            disclosed_vendors: None,
            allowed_vendors: None,
            publisher_tc: None,
        };
        for segment in segments {
            let buf = decode_base64url(segment)?;
            let mut r = buf.reader();
            let kind = r.read(3, "segment_type")? as u8;
            match kind {
                1 => set_once(
                    &mut tc.disclosed_vendors,
                    read_vendor_section(&mut r, "disclosed_vendors")?,
                    kind,
                )?,
                2 => set_once(
                    &mut tc.allowed_vendors,
                    read_vendor_section(&mut r, "allowed_vendors")?,
                    kind,
                )?,
                3 => set_once(&mut tc.publisher_tc, read_publisher_tc(&mut r)?, kind)?,
                other => return Err(ConsentError::UnknownSegmentType(other)),
            }
        }
        Ok(tc)
    }

    /// The documented JSON shape (see `docs/consent.md`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "version": self.version,
            "created": time::format_deciseconds(self.created),
            "last_updated": time::format_deciseconds(self.last_updated),
            "cmp_id": self.cmp_id,
            "cmp_version": self.cmp_version,
            "consent_screen": self.consent_screen,
            "consent_language": letters(self.consent_language),
            "vendor_list_version": self.vendor_list_version,
            "policy_version": self.policy_version,
            "is_service_specific": self.is_service_specific,
            "use_non_standard_texts": self.use_non_standard_texts,
            "special_feature_optins": flag_ids(u64::from(self.special_feature_optins), 12),
            "purpose_consents": flag_ids(u64::from(self.purpose_consents), 24),
            "purpose_li": flag_ids(u64::from(self.purpose_li), 24),
            "purpose_one_treatment": self.purpose_one_treatment,
            "publisher_cc": letters(self.publisher_cc),
            "max_vendor_id": self.vendor_consents.max_id(),
            "vendor_consents": self.vendor_consents.to_vec(),
            "vendor_li": self.vendor_li.to_vec(),
            "pub_restrictions": restrictions_json(&self.pub_restrictions),
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(d) = &self.disclosed_vendors {
                obj.insert("disclosed_vendors".into(), json!(d.to_vec()));
            }
            if let Some(a) = &self.allowed_vendors {
                obj.insert("allowed_vendors".into(), json!(a.to_vec()));
            }
            if let Some(p) = &self.publisher_tc {
                obj.insert(
                    "publisher_tc".into(),
                    json!({
                        "pub_purpose_consents": flag_ids(u64::from(p.pub_purpose_consents), 24),
                        "pub_purpose_li": flag_ids(u64::from(p.pub_purpose_li), 24),
                        "num_custom_purposes": p.num_custom_purposes,
                        "custom_consents": flag_ids(p.custom_consents, p.num_custom_purposes),
                        "custom_li": flag_ids(p.custom_li, p.num_custom_purposes),
                    }),
                );
            }
        }
        v
    }
}

/// A decoded GPP section 5 (`tcfcav1`, TCF Canada).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcfCaV1 {
    /// Section version (1).
    pub version: u8,
    /// Creation time, deciseconds since the Unix epoch.
    pub created: u64,
    /// Last update time, deciseconds since the Unix epoch.
    pub last_updated: u64,
    /// CMP id.
    pub cmp_id: u16,
    /// CMP version.
    pub cmp_version: u16,
    /// Consent screen number.
    pub consent_screen: u8,
    /// Two-letter language code.
    pub consent_language: [u8; 2],
    /// Vendor list version.
    pub vendor_list_version: u16,
    /// Policy version.
    pub policy_version: u8,
    /// Whether non-standard texts were used.
    pub use_non_standard_texts: bool,
    /// Bit `n - 1`: express consent to special feature `n`.
    pub special_feature_express_consents: u16,
    /// Bit `n - 1`: express consent to purpose `n`.
    pub purpose_express_consents: u32,
    /// Bit `n - 1`: implied consent to purpose `n`.
    pub purpose_implied_consents: u32,
    /// Vendors with express consent.
    pub vendor_express_consents: VendorSet,
    /// Vendors with implied consent.
    pub vendor_implied_consents: VendorSet,
    /// Publisher restrictions (TCF CA v1.1; empty for older strings that end before them).
    pub pub_restrictions: Vec<PubRestriction>,
    /// Disclosed vendors segment (type 1), when present.
    pub disclosed_vendors: Option<VendorSet>,
    /// Publisher purposes segment (type 3), when present. `pub_purpose_li` holds implied consent.
    pub publisher_tc: Option<PublisherTc>,
}

impl TcfCaV1 {
    /// Decodes a `tcfcav1` GPP section.
    ///
    /// # Errors
    /// [`ConsentError`] for invalid base64url, truncation, an unsupported version or bad segments.
    pub fn decode(input: &str) -> Result<Self, ConsentError> {
        let mut segments = input.split('.');
        let buf = decode_base64url(segments.next().unwrap_or_default())?;
        let mut r = buf.reader();
        let version = r.read(6, "version")? as u8;
        if version != 1 {
            return Err(ConsentError::UnsupportedVersion {
                what: "tcfcav1",
                found: version,
            });
        }
        let created = r.read(36, "created")?;
        let last_updated = r.read(36, "last_updated")?;
        let cmp_id = r.read(12, "cmp_id")? as u16;
        let cmp_version = r.read(12, "cmp_version")? as u16;
        let consent_screen = r.read(6, "consent_screen")? as u8;
        let consent_language = r.read_letters("consent_language")?;
        let vendor_list_version = r.read(12, "vendor_list_version")? as u16;
        let policy_version = r.read(6, "policy_version")? as u8;
        let use_non_standard_texts = r.read_bool("use_non_standard_texts")?;
        let special_feature_express_consents =
            read_flags(&mut r, 12, "special_feature_express_consents")? as u16;
        let purpose_express_consents = read_flags(&mut r, 24, "purpose_express_consents")? as u32;
        let purpose_implied_consents = read_flags(&mut r, 24, "purpose_implied_consents")? as u32;
        let vendor_express_consents = read_vendor_section(&mut r, "vendor_express_consents")?;
        let vendor_implied_consents = read_vendor_section(&mut r, "vendor_implied_consents")?;
        // Publisher restrictions arrived in TCF CA v1.1; strings from v1.0 stop here.
        let pub_restrictions = if r.remaining() >= 12 {
            read_pub_restrictions(&mut r)?
        } else {
            Vec::new()
        };
        let mut ca = TcfCaV1 {
            version,
            created,
            last_updated,
            cmp_id,
            cmp_version,
            consent_screen,
            consent_language,
            vendor_list_version,
            policy_version,
            use_non_standard_texts,
            special_feature_express_consents,
            purpose_express_consents,
            purpose_implied_consents,
            vendor_express_consents,
            vendor_implied_consents,
            pub_restrictions,
            disclosed_vendors: None,
            publisher_tc: None,
        };
        for segment in segments {
            let buf = decode_base64url(segment)?;
            let mut r = buf.reader();
            let kind = r.read(3, "segment_type")? as u8;
            match kind {
                1 => set_once(
                    &mut ca.disclosed_vendors,
                    read_vendor_section(&mut r, "disclosed_vendors")?,
                    kind,
                )?,
                3 => set_once(&mut ca.publisher_tc, read_publisher_tc(&mut r)?, kind)?,
                other => return Err(ConsentError::UnknownSegmentType(other)),
            }
        }
        Ok(ca)
    }

    /// The documented JSON shape (see `docs/consent.md`).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "version": self.version,
            "created": time::format_deciseconds(self.created),
            "last_updated": time::format_deciseconds(self.last_updated),
            "cmp_id": self.cmp_id,
            "cmp_version": self.cmp_version,
            "consent_screen": self.consent_screen,
            "consent_language": letters(self.consent_language),
            "vendor_list_version": self.vendor_list_version,
            "policy_version": self.policy_version,
            "use_non_standard_texts": self.use_non_standard_texts,
            "special_feature_express_consents":
                flag_ids(u64::from(self.special_feature_express_consents), 12),
            "purpose_express_consents": flag_ids(u64::from(self.purpose_express_consents), 24),
            "purpose_implied_consents": flag_ids(u64::from(self.purpose_implied_consents), 24),
            "vendor_express_consents": self.vendor_express_consents.to_vec(),
            "vendor_implied_consents": self.vendor_implied_consents.to_vec(),
            "pub_restrictions": restrictions_json(&self.pub_restrictions),
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(d) = &self.disclosed_vendors {
                obj.insert("disclosed_vendors".into(), json!(d.to_vec()));
            }
            if let Some(p) = &self.publisher_tc {
                obj.insert(
                    "publisher_tc".into(),
                    json!({
                        "pub_purpose_express_consents":
                            flag_ids(u64::from(p.pub_purpose_consents), 24),
                        "pub_purpose_implied_consents": flag_ids(u64::from(p.pub_purpose_li), 24),
                        "num_custom_purposes": p.num_custom_purposes,
                        "custom_express_consents":
                            flag_ids(p.custom_consents, p.num_custom_purposes),
                        "custom_implied_consents": flag_ids(p.custom_li, p.num_custom_purposes),
                    }),
                );
            }
        }
        v
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, kind: u8) -> Result<(), ConsentError> {
    if slot.is_some() {
        return Err(ConsentError::DuplicateSegment(kind));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads an `n`-bit flag field (first bit = id 1) as a mask with bit `id - 1` set.
fn read_flags(r: &mut BitReader<'_>, n: u32, field: &'static str) -> Result<u64, ConsentError> {
    debug_assert!((1..=64).contains(&n));
    // Custom purposes can need up to 63 bits: read in two halves the reader can handle.
    let high = n.min(32);
    let v = r.read(high, field)? << (n - high) | r.read(n - high, field)?;
    Ok(v.reverse_bits() >> (64 - n))
}

fn read_pub_restrictions(r: &mut BitReader<'_>) -> Result<Vec<PubRestriction>, ConsentError> {
    let count = r.read(12, "pub_restrictions")? as usize;
    // Each restriction takes at least 20 bits.
    let mut out = Vec::with_capacity(count.min(r.remaining() / 20));
    for _ in 0..count {
        let purpose = r.read(6, "pub_restrictions")? as u8;
        let restriction_type = r.read(2, "pub_restrictions")? as u8;
        let ranges = read_range_entries(r, "pub_restrictions", None)?;
        out.push(PubRestriction {
            purpose,
            restriction_type,
            vendors: set_from_ranges(ranges),
        });
    }
    Ok(out)
}

fn read_publisher_tc(r: &mut BitReader<'_>) -> Result<PublisherTc, ConsentError> {
    let pub_purpose_consents = read_flags(r, 24, "pub_purpose_consents")? as u32;
    let pub_purpose_li = read_flags(r, 24, "pub_purpose_li")? as u32;
    let num_custom_purposes = r.read(6, "num_custom_purposes")? as u8;
    let n = u32::from(num_custom_purposes);
    let (custom_consents, custom_li) = if n == 0 {
        (0, 0)
    } else {
        (
            read_flags(r, n, "custom_consents")?,
            read_flags(r, n, "custom_li")?,
        )
    };
    Ok(PublisherTc {
        pub_purpose_consents,
        pub_purpose_li,
        num_custom_purposes,
        custom_consents,
        custom_li,
    })
}

fn bit(mask: u64, n: u8) -> bool {
    (1..=64).contains(&n) && mask >> (n - 1) & 1 == 1
}

/// The ids (1-based) of the set bits of a flag mask of `n` flags.
pub(crate) fn flag_ids(mask: u64, n: u8) -> Vec<u8> {
    (1..=n).filter(|&i| bit(mask, i)).collect()
}

fn letters(code: [u8; 2]) -> String {
    code.iter().map(|&b| char::from(b)).collect()
}

fn restrictions_json(list: &[PubRestriction]) -> Value {
    list.iter()
        .map(|p| {
            json!({
                "purpose": p.purpose,
                "type": p.restriction_type,
                "vendors": p.vendors.to_vec(),
            })
        })
        .collect()
}
