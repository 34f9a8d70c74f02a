//! The page's auction request: parsed from JSON and validated, with every error naming the field
//! (a JSON path such as `ad_units[1].sizes[0]`) for the host's 400 problem+json.
//!
//! Shape (`POST /_ts/api/v1/auction`):
//! ```json
//! { "page_url": "https://news.example/a",
//!   "ad_units": [ { "code": "top", "media_type": "banner", "sizes": [[300, 250]], "floor": 0.5 } ],
//!   "eids": [ { "source": "id5-sync.com", "uids": [ { "id": "ID5*abc", "atype": 1 } ] } ] }
//! ```
//! Unknown fields are errors (a typo in `floor` must not silently sell below the floor).

use serde_json::{Map, Value};

use crate::openrtb::{Eid, Format, Uid};

/// The largest request body accepted.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// The most ad units per auction.
pub const MAX_AD_UNITS: usize = 32;
/// The most sizes per ad unit.
pub const MAX_SIZES: usize = 16;
/// The most client EIDs, and the most uids per EID.
pub const MAX_EIDS: usize = 16;
/// The longest ad unit code.
pub const MAX_CODE_LEN: usize = 128;
/// The longest page URL.
pub const MAX_URL_LEN: usize = 2048;
/// The longest EID source or uid.
pub const MAX_EID_LEN: usize = 512;
/// The largest width or height.
pub const MAX_DIMENSION: u32 = 10_000;
/// The highest floor accepted (CPM in the auction currency).
pub const MAX_FLOOR: f64 = 100_000.0;

/// Why an auction request was refused. Every variant names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuctionInputError {
    /// The body is over [`MAX_INPUT_BYTES`].
    #[error("request body is {len} bytes, over the limit of {MAX_INPUT_BYTES}")]
    TooLarge {
        /// The body's length.
        len: usize,
    },
    /// The body is not JSON.
    #[error("request body is not json (line {line}, column {column})")]
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A required field is missing.
    #[error("`{field}` is required")]
    Missing {
        /// JSON path of the field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// JSON path of the field.
        field: String,
        /// What was expected (`a string`, `an array`, ...).
        expected: &'static str,
    },
    /// A field the API does not define.
    #[error("`{field}` is not a known field")]
    UnknownField {
        /// JSON path of the field.
        field: String,
    },
    /// A field with a value out of its domain.
    #[error("`{field}` {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong, lowercase.
        reason: &'static str,
    },
}

impl AuctionInputError {
    /// A short stable label per kind of refusal, for the problem `type` and metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body-too-large",
            Self::NotJson { .. } => "not-json",
            Self::Missing { .. } => "missing-field",
            Self::WrongType { .. } => "wrong-type",
            Self::UnknownField { .. } => "unknown-field",
            Self::Invalid { .. } => "invalid-value",
        }
    }

    /// The JSON path of the offending field (`body` for errors about the whole body).
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::TooLarge { .. } | Self::NotJson { .. } => "body",
            Self::Missing { field }
            | Self::WrongType { field, .. }
            | Self::UnknownField { field }
            | Self::Invalid { field, .. } => field,
        }
    }
}

/// The media type of an ad unit. Only banner is supported so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `banner`.
    Banner,
}

/// One validated ad unit.
#[derive(Clone, Debug, PartialEq)]
pub struct AdUnit {
    /// `code`: the page's slot name (printable ASCII, unique in the request).
    pub code: String,
    /// `media_type`.
    pub media_type: MediaType,
    /// `sizes`: at least one, without duplicates, in the page's order.
    pub sizes: Vec<Format>,
    /// `floor`: minimum CPM in the auction currency.
    pub floor: Option<f64>,
}

/// A validated auction request.
#[derive(Clone, Debug, PartialEq)]
pub struct AuctionInput {
    /// `page_url`: an absolute `http`/`https` URL without credentials.
    pub page_url: String,
    /// The page URL's host, lowercase, without port: `site.domain`.
    pub domain: String,
    /// Whether the page is `https` (`imp.secure`).
    pub secure: bool,
    /// `ad_units`: at least one.
    pub ad_units: Vec<AdUnit>,
    /// `eids`: the client's EIDs, as sent (filtered per bidder later).
    pub eids: Vec<Eid>,
}

type R<T> = Result<T, AuctionInputError>;

fn missing(field: &str) -> AuctionInputError {
    AuctionInputError::Missing {
        field: field.to_owned(),
    }
}

fn wrong(field: &str, expected: &'static str) -> AuctionInputError {
    AuctionInputError::WrongType {
        field: field.to_owned(),
        expected,
    }
}

fn invalid(field: &str, reason: &'static str) -> AuctionInputError {
    AuctionInputError::Invalid {
        field: field.to_owned(),
        reason,
    }
}

fn object<'v>(value: &'v Value, field: &str, known: &[&str]) -> R<&'v Map<String, Value>> {
    let map = value.as_object().ok_or_else(|| wrong(field, "an object"))?;
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let name: String = unknown.chars().take(64).collect();
        return Err(AuctionInputError::UnknownField {
            field: if field.is_empty() {
                name
            } else {
                format!("{field}.{name}")
            },
        });
    }
    Ok(map)
}

fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn string<'v>(map: &'v Map<String, Value>, parent: &str, key: &str) -> R<Option<&'v str>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(&path(parent, key), "a string")),
    }
}

fn array<'v>(map: &'v Map<String, Value>, parent: &str, key: &str) -> R<Option<&'v [Value]>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(wrong(&path(parent, key), "an array")),
    }
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

impl AuctionInput {
    /// Parses and validates a request body.
    ///
    /// # Errors
    /// [`AuctionInputError`], naming the field: a body over [`MAX_INPUT_BYTES`] or not JSON, an
    /// unknown field, a missing or mistyped field, or a value out of range (see the limits in
    /// this module).
    pub fn parse(body: &[u8]) -> Result<Self, AuctionInputError> {
        if body.len() > MAX_INPUT_BYTES {
            return Err(AuctionInputError::TooLarge { len: body.len() });
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| AuctionInputError::NotJson {
                line: e.line(),
                column: e.column(),
            })?;
        Self::from_value(&value)
    }

    /// Validates an already parsed JSON value.
    ///
    /// # Errors
    /// As [`AuctionInput::parse`].
    pub fn from_value(value: &Value) -> Result<Self, AuctionInputError> {
        let root = object(value, "", &["page_url", "ad_units", "eids"]).map_err(|e| match e {
            AuctionInputError::WrongType { .. } => wrong("body", "a json object"),
            other => other,
        })?;
        let page_url = string(root, "", "page_url")?.ok_or_else(|| missing("page_url"))?;
        let (domain, secure) = parse_page_url(page_url)?;
        let units = array(root, "", "ad_units")?.ok_or_else(|| missing("ad_units"))?;
        if units.is_empty() {
            return Err(invalid("ad_units", "must hold at least one ad unit"));
        }
        if units.len() > MAX_AD_UNITS {
            return Err(invalid("ad_units", "holds more than 32 ad units"));
        }
        let mut ad_units: Vec<AdUnit> = Vec::with_capacity(units.len());
        for (i, unit) in units.iter().enumerate() {
            let unit = parse_ad_unit(unit, &format!("ad_units[{i}]"))?;
            if ad_units.iter().any(|u| u.code == unit.code) {
                return Err(invalid(
                    &format!("ad_units[{i}].code"),
                    "repeats the code of an earlier ad unit",
                ));
            }
            ad_units.push(unit);
        }
        let eids = match array(root, "", "eids")? {
            None => Vec::new(),
            Some(list) => {
                if list.len() > MAX_EIDS {
                    return Err(invalid("eids", "holds more than 16 entries"));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, e)| parse_eid(e, &format!("eids[{i}]")))
                    .collect::<R<Vec<_>>>()?
            }
        };
        Ok(AuctionInput {
            page_url: page_url.to_owned(),
            domain,
            secure,
            ad_units,
            eids,
        })
    }
}

fn parse_ad_unit(value: &Value, field: &str) -> R<AdUnit> {
    let map = object(value, field, &["code", "media_type", "sizes", "floor"])?;
    let code = string(map, field, "code")?.ok_or_else(|| missing(&path(field, "code")))?;
    if code.is_empty() || code.len() > MAX_CODE_LEN || !printable(code) {
        return Err(invalid(
            &path(field, "code"),
            "must be 1 to 128 printable ascii characters",
        ));
    }
    let media_type = match string(map, field, "media_type")? {
        None => return Err(missing(&path(field, "media_type"))),
        Some("banner") => MediaType::Banner,
        Some(_) => {
            return Err(invalid(
                &path(field, "media_type"),
                "is not supported (supported: `banner`)",
            ));
        }
    };
    let sizes_field = path(field, "sizes");
    let list = array(map, field, "sizes")?.ok_or_else(|| missing(&sizes_field))?;
    if list.is_empty() || list.len() > MAX_SIZES {
        return Err(invalid(&sizes_field, "must hold 1 to 16 sizes"));
    }
    let mut sizes = Vec::with_capacity(list.len());
    for (j, size) in list.iter().enumerate() {
        let size_field = format!("{sizes_field}[{j}]");
        let pair = size
            .as_array()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| wrong(&size_field, "a [width, height] pair"))?;
        let dim = |v: &Value| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_DIMENSION).contains(n))
        };
        let (Some(w), Some(h)) = (dim(&pair[0]), dim(&pair[1])) else {
            return Err(invalid(
                &size_field,
                "must be two integers from 1 to 10000 (width, height)",
            ));
        };
        let format = Format { w, h };
        if !sizes.contains(&format) {
            sizes.push(format);
        }
    }
    let floor = match map.get("floor") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let f = v
                .as_f64()
                .ok_or_else(|| wrong(&path(field, "floor"), "a number"))?;
            if !(0.0..=MAX_FLOOR).contains(&f) {
                return Err(invalid(&path(field, "floor"), "must be from 0 to 100000"));
            }
            Some(f)
        }
    };
    Ok(AdUnit {
        code: code.to_owned(),
        media_type,
        sizes,
        floor,
    })
}

fn parse_eid(value: &Value, field: &str) -> R<Eid> {
    let map = object(value, field, &["source", "uids"])?;
    let source = string(map, field, "source")?.ok_or_else(|| missing(&path(field, "source")))?;
    if source.is_empty() || source.len() > MAX_EID_LEN || !printable(source) {
        return Err(invalid(
            &path(field, "source"),
            "must be 1 to 512 printable ascii characters",
        ));
    }
    let uids_field = path(field, "uids");
    let list = array(map, field, "uids")?.ok_or_else(|| missing(&uids_field))?;
    if list.is_empty() || list.len() > MAX_EIDS {
        return Err(invalid(&uids_field, "must hold 1 to 16 uids"));
    }
    let mut uids = Vec::with_capacity(list.len());
    for (j, uid) in list.iter().enumerate() {
        let uid_field = format!("{uids_field}[{j}]");
        let m = object(uid, &uid_field, &["id", "atype"])?;
        let id = string(m, &uid_field, "id")?.ok_or_else(|| missing(&path(&uid_field, "id")))?;
        if id.is_empty() || id.len() > MAX_EID_LEN || !printable(id) {
            return Err(invalid(
                &path(&uid_field, "id"),
                "must be 1 to 512 printable ascii characters",
            ));
        }
        let atype = match m.get("atype") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (1..=3).contains(n) || *n >= 500)
                    .ok_or_else(|| {
                        invalid(
                            &path(&uid_field, "atype"),
                            "must be 1, 2, 3 or 500 and above",
                        )
                    })?,
            ),
        };
        uids.push(Uid {
            id: id.to_owned(),
            atype,
        });
    }
    Ok(Eid {
        source: source.to_ascii_lowercase(),
        uids,
    })
}

/// Validates the page URL; returns its host (lowercase, without port) and whether it is https.
fn parse_page_url(url: &str) -> R<(String, bool)> {
    let bad = |reason| invalid("page_url", reason);
    if url.len() > MAX_URL_LEN || !printable(url) {
        return Err(bad("must be at most 2048 printable ascii characters"));
    }
    let lower_scheme = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (secure, rest) = if lower_scheme.starts_with("https://") {
        (true, &url[8..])
    } else if lower_scheme.starts_with("http://") {
        (false, &url[7..])
    } else {
        return Err(bad("must be an absolute `http` or `https` url"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("must not contain credentials"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| bad("has an unterminated ipv6 host"))?;
        let inner = &v6[..end];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("has an invalid ipv6 host"));
        }
        check_port(&v6[end + 1..]).map_err(|()| bad("has an invalid port"))?;
        format!("[{}]", inner.to_ascii_lowercase())
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if let Some(port) = port {
            check_port(&format!(":{port}")).map_err(|()| bad("has an invalid port"))?;
        }
        let host = host.trim_end_matches('.');
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                (1..=63).contains(&label.len())
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(bad("must name a host"));
        }
        host.to_ascii_lowercase()
    };
    Ok((host, secure))
}

fn check_port(rest: &str) -> Result<(), ()> {
    match rest.strip_prefix(':') {
        None if rest.is_empty() => Ok(()),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().map(|_| ()).map_err(|_| ())
        }
        _ => Err(()),
    }
}
