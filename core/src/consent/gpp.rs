//! IAB Global Privacy Platform (GPP) v1 strings (`__gpp` cookie).
//!
//! The header (type 3, version 1, a Fibonacci range of section ids) must list exactly as many
//! ids as there are `~`-separated sections. Range expansion is bounded by the number of sections
//! actually present, so a hostile header (`1-65535`) fails on the first oversized entry instead
//! of expanding. Sections 2 (`tcfeuv2`), 5 (`tcfcav1`), 6 (`uspv1`) and 7–27 (US) are decoded,
//! each independently: a section that fails to decode is kept as an error next to its id
//! ([`GppString::section_errors`]) and every other section still counts, so one bad section can
//! never hide an opt-out carried by another. Only a bad header fails the whole string. Other ids
//! (e.g. the deprecated `tcfeuv1`) are kept undecoded.
//!
//! What this module must never do: drop a decodable section because a sibling failed, or treat a
//! failed section as absent without the caller being able to tell (the consent pipeline fails
//! closed on a failed section that can carry a US opt-out, see [`can_carry_us_opt_out`]).

use serde_json::{Map, Value, json};

use super::bits::decode_base64url;
use super::tcf::{TcString, TcfCaV1};
use super::us::{UsSection, is_us_section};
use super::usp::UsPrivacy;
use super::{ConsentError, SignalKind, check_length};

/// Section id of `tcfeuv2`.
pub const TCFEUV2: u16 = 2;
/// Section id of `tcfcav1`.
pub const TCFCAV1: u16 = 5;
/// Section id of `uspv1`.
pub const USPV1: u16 = 6;
/// Section id of `usnat`.
pub const USNAT: u16 = 7;

/// A decoded GPP string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GppString {
    /// Header version (1).
    pub version: u8,
    /// Section ids from the header, in header order.
    pub section_ids: Vec<u16>,
    sections: Vec<(u16, GppSection)>,
    section_errors: Vec<(u16, ConsentError)>,
}

/// Whether section `id` can carry a US opt-out: `uspv1` (6), `usnat` (7) and the US state
/// sections (8–27). When such a section is present but does not decode, the consent pipeline
/// treats the request as opted out of what that section governs (fail closed).
#[must_use]
pub fn can_carry_us_opt_out(id: u16) -> bool {
    id == USPV1 || is_us_section(id)
}

/// One decoded GPP section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GppSection {
    /// Section 2: TCF EU v2.
    TcfEuV2(Box<TcString>),
    /// Section 5: TCF Canada v1.
    TcfCaV1(Box<TcfCaV1>),
    /// Section 6: US Privacy.
    UspV1(UsPrivacy),
    /// Sections 7–27: US national and state sections.
    Us(UsSection),
    /// A section this decoder does not interpret; only its id is kept.
    Unsupported,
}

impl GppString {
    /// Decodes a GPP string of at most `max_len` bytes.
    ///
    /// Sections are decoded independently: one that fails is recorded in
    /// [`GppString::section_errors`] and the others are kept.
    ///
    /// # Errors
    /// [`ConsentError`] for over-long input, a bad header or a header/section count mismatch.
    pub fn decode(input: &str, max_len: usize) -> Result<Self, ConsentError> {
        check_length(SignalKind::Gpp, input, max_len)?;
        let mut parts = input.split('~');
        let header = parts.next().unwrap_or_default();
        let bodies: Vec<&str> = parts.collect();
        let buf = decode_base64url(header)?;
        let mut r = buf.reader();
        let kind = r.read(6, "header_type")? as u8;
        if kind != 3 {
            return Err(ConsentError::GppHeaderType(kind));
        }
        let version = r.read(6, "header_version")? as u8;
        if version != 1 {
            return Err(ConsentError::UnsupportedVersion {
                what: "gpp header",
                found: version,
            });
        }
        let mismatch = |ids| ConsentError::SectionCountMismatch {
            ids,
            sections: bodies.len(),
        };
        let entries = r.read(12, "section_ids")? as usize;
        let mut section_ids: Vec<u16> = Vec::with_capacity(bodies.len());
        let mut last: u16 = 0;
        for _ in 0..entries {
            let is_range = r.read_bool("section_ids")?;
            let start = last.checked_add(r.read_fibonacci("section_ids")?).ok_or(
                ConsentError::InvalidFibonacci {
                    field: "section_ids",
                },
            )?;
            let end = if is_range {
                start.checked_add(r.read_fibonacci("section_ids")?).ok_or(
                    ConsentError::InvalidFibonacci {
                        field: "section_ids",
                    },
                )?
            } else {
                start
            };
            // Fail fast: never expand beyond the number of sections present.
            let count = usize::from(end - start) + 1;
            if section_ids.len() + count > bodies.len() {
                return Err(mismatch(section_ids.len().saturating_add(count)));
            }
            section_ids.extend(start..=end);
            last = end;
        }
        if section_ids.len() != bodies.len() {
            return Err(mismatch(section_ids.len()));
        }
        let mut sections = Vec::with_capacity(bodies.len());
        let mut section_errors = Vec::new();
        for (&id, body) in section_ids.iter().zip(&bodies) {
            match decode_section(id, body, max_len) {
                Ok(section) => sections.push((id, section)),
                Err(error) => section_errors.push((id, error)),
            }
        }
        Ok(GppString {
            version,
            section_ids,
            sections,
            section_errors,
        })
    }

    /// The sections that failed to decode, with their ids and errors, in header order.
    #[must_use]
    pub fn section_errors(&self) -> &[(u16, ConsentError)] {
        &self.section_errors
    }

    /// All decoded sections with their ids, in header order (failed sections are not listed
    /// here, see [`GppString::section_errors`]).
    pub fn sections(&self) -> impl Iterator<Item = (u16, &GppSection)> {
        self.sections.iter().map(|(id, s)| (*id, s))
    }

    /// The section with `id`, if present (and not removed).
    #[must_use]
    pub fn section(&self, id: u16) -> Option<&GppSection> {
        self.sections.iter().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    /// The embedded TCF EU v2 record, if present.
    #[must_use]
    pub fn tcf_eu(&self) -> Option<&TcString> {
        match self.section(TCFEUV2)? {
            GppSection::TcfEuV2(tc) => Some(tc),
            _ => None,
        }
    }

    /// The embedded US Privacy record, if present.
    #[must_use]
    pub fn us_privacy(&self) -> Option<&UsPrivacy> {
        match self.section(USPV1)? {
            GppSection::UspV1(u) => Some(u),
            _ => None,
        }
    }

    /// The US national and state sections.
    pub fn us_sections(&self) -> impl Iterator<Item = &UsSection> {
        self.sections.iter().filter_map(|(_, s)| match s {
            GppSection::Us(us) => Some(us),
            _ => None,
        })
    }

    /// Removes the decoded section `id` (e.g. an expired `tcfeuv2`); the id stays listed in
    /// [`GppString::section_ids`] because the raw string still carries it.
    pub fn remove_section(&mut self, id: u16) {
        self.sections.retain(|(i, _)| *i != id);
    }

    /// The documented JSON shape: `version, section_ids, sections` keyed by id; a section that
    /// failed to decode is `{"error": "..."}`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut sections = Map::new();
        for (id, error) in &self.section_errors {
            sections.insert(id.to_string(), json!({ "error": error.to_string() }));
        }
        for (id, section) in &self.sections {
            let v = match section {
                GppSection::TcfEuV2(tc) => tc.to_json(),
                GppSection::TcfCaV1(ca) => ca.to_json(),
                GppSection::UspV1(u) => u.to_section_json(),
                GppSection::Us(us) => us.to_json(),
                GppSection::Unsupported => json!({ "unsupported": true }),
            };
            sections.insert(id.to_string(), v);
        }
        json!({
            "version": self.version,
            "section_ids": self.section_ids,
            "sections": sections,
        })
    }
}

fn decode_section(id: u16, body: &str, max_len: usize) -> Result<GppSection, ConsentError> {
    Ok(match id {
        TCFEUV2 => GppSection::TcfEuV2(Box::new(TcString::decode(body, max_len)?)),
        TCFCAV1 => GppSection::TcfCaV1(Box::new(TcfCaV1::decode(body)?)),
        USPV1 => GppSection::UspV1(body.parse()?),
        id if is_us_section(id) => GppSection::Us(UsSection::decode(id, body)?),
        _ => GppSection::Unsupported,
    })
}

/// Parses a `__gpp_sid` value: section ids separated by `,` (or `_`), at most 64 of them.
///
/// # Errors
/// [`ConsentError::InvalidGppSid`] for anything else.
pub fn parse_gpp_sid(value: &str) -> Result<Vec<u16>, ConsentError> {
    let value = value.trim();
    if value == "-1" {
        // GPP's "no section applies".
        return Ok(Vec::new());
    }
    if value.is_empty() || value.len() > 512 {
        return Err(ConsentError::InvalidGppSid);
    }
    let ids = value
        .split([',', '_'])
        .map(|s| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| ConsentError::InvalidGppSid)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > 64 {
        return Err(ConsentError::InvalidGppSid);
    }
    Ok(ids)
}
