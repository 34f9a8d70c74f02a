//! Validation of CDN geo headers: decides which header values are a country and a region.
//!
//! - **Country**: exactly two ASCII letters (ISO 3166-1 alpha-2), reported uppercase. CDN
//!   placeholders for "unknown" are not countries and become `none`: `XX` (Cloudflare's unknown),
//!   the ISO user-assigned codes `AA`, `QM`–`QZ`, `XA`–`XZ` and `ZZ` (except `XK`, Kosovo, which
//!   every major geo database uses), MaxMind's continent-level `EU` and `AP`, and any code that is
//!   not two letters (Cloudflare's Tor `T1`, MaxMind's `A1`/`A2`/`O1`).
//! - **Region**: the ISO 3166-2 subdivision code without its country prefix, 1–3 ASCII letters or
//!   digits, reported uppercase. A `US-CA` style value has its prefix stripped, but only when the
//!   prefix is the reported country; a region is never reported without a valid country, since a
//!   subdivision code means nothing on its own.
//!
//! Surrounding whitespace is ignored; anything else unexpected (repeated headers joined with `, `,
//! names instead of codes) yields `none` rather than a guess.

use alloc::format;
use alloc::string::String;

/// A validated location.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Found {
    /// ISO 3166-1 alpha-2 country code, uppercase.
    pub country: Option<String>,
    /// ISO 3166-2 subdivision code without the country prefix, uppercase.
    pub region: Option<String>,
}

/// Validates the raw values of the country and region headers.
pub fn from_headers(country: Option<&str>, region: Option<&str>) -> Found {
    let country = country.and_then(parse_country);
    let region = match (&country, region) {
        (Some(country), Some(region)) => parse_region(region, country),
        _ => None,
    };
    Found { country, region }
}

/// The uppercase country code in `raw`, or `None` when it is malformed or a placeholder.
pub fn parse_country(raw: &str) -> Option<String> {
    let code = raw.trim();
    let bytes = code.as_bytes();
    if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    let code = code.to_ascii_uppercase();
    (!is_placeholder_country(code.as_bytes())).then_some(code)
}

/// Two-letter codes that CDNs and geo databases use for "not a country".
fn is_placeholder_country(code: &[u8]) -> bool {
    match code {
        b"XK" => false,
        b"AA" | b"ZZ" | b"EU" | b"AP" => true,
        [b'Q', second] => (b'M'..=b'Z').contains(second),
        [b'X', _] => true,
        _ => false,
    }
}

/// The uppercase subdivision code in `raw` for `country`, or `None` when it is malformed or
/// prefixed with another country.
pub fn parse_region(raw: &str, country: &str) -> Option<String> {
    let raw = raw.trim();
    let code = match raw.split_once('-') {
        Some((prefix, code)) if prefix.eq_ignore_ascii_case(country) => code,
        Some(_) => return None,
        None => raw,
    };
    let valid = (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| code.to_ascii_uppercase())
}

/// The header name configured under `key`, or `default` when unset.
///
/// # Errors
/// A message naming `key` when the configured value is not a valid HTTP field name.
pub fn header_name_or_default(
    key: &str,
    configured: Option<String>,
    default: &str,
) -> Result<String, String> {
    let name = configured.unwrap_or_else(|| default.into());
    if is_field_name(&name) {
        Ok(name)
    } else {
        Err(format!("`{key}`: `{name}` is not a valid HTTP header name"))
    }
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(country: Option<&str>, region: Option<&str>) -> Found {
        Found {
            country: country.map(Into::into),
            region: region.map(Into::into),
        }
    }

    #[test]
    fn country_is_two_letters_uppercased() {
        assert_eq!(parse_country("DE").as_deref(), Some("DE"));
        assert_eq!(parse_country("us").as_deref(), Some("US"));
        assert_eq!(parse_country(" gb ").as_deref(), Some("GB"));
        assert_eq!(parse_country("XK").as_deref(), Some("XK"));
    }

    #[test]
    fn malformed_country_is_none() {
        for raw in [
            "", " ", "U", "USA", "U1", "1A", "U-", "DE, FR", "Ü1", "ÜS", "Germany",
        ] {
            assert_eq!(parse_country(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn unknown_country_placeholders_are_none() {
        for raw in [
            "XX", "xx", "ZZ", "T1", "A1", "A2", "O1", "AA", "QM", "QZ", "XA", "EU", "AP",
        ] {
            assert_eq!(parse_country(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn region_is_one_to_three_alphanumerics_uppercased() {
        assert_eq!(parse_region("CA", "US").as_deref(), Some("CA"));
        assert_eq!(parse_region("by", "DE").as_deref(), Some("BY"));
        assert_eq!(parse_region("75", "FR").as_deref(), Some("75"));
        assert_eq!(parse_region("ENG", "GB").as_deref(), Some("ENG"));
        assert_eq!(parse_region("B", "AR").as_deref(), Some("B"));
    }

    #[test]
    fn region_country_prefix_is_stripped_when_it_matches() {
        assert_eq!(parse_region("US-CA", "US").as_deref(), Some("CA"));
        assert_eq!(parse_region("us-ny", "US").as_deref(), Some("NY"));
        assert_eq!(parse_region("US-CA", "CA"), None);
    }

    #[test]
    fn malformed_region_is_none() {
        for raw in [
            "",
            "CALI",
            "California",
            "C A",
            "US-",
            "US-CA-X",
            "CA, NY",
            "É",
        ] {
            assert_eq!(parse_region(raw, "US"), None, "{raw:?}");
        }
    }

    #[test]
    fn location_from_headers() {
        assert_eq!(
            from_headers(Some("us"), Some("US-CA")),
            found(Some("US"), Some("CA"))
        );
        assert_eq!(from_headers(Some("DE"), None), found(Some("DE"), None));
        assert_eq!(
            from_headers(Some("DE"), Some("Bavaria")),
            found(Some("DE"), None)
        );
        assert_eq!(from_headers(None, None), found(None, None));
    }

    #[test]
    fn region_without_a_valid_country_is_none() {
        assert_eq!(from_headers(None, Some("CA")), found(None, None));
        assert_eq!(from_headers(Some("XX"), Some("CA")), found(None, None));
        assert_eq!(from_headers(Some("T1"), Some("US-CA")), found(None, None));
    }

    #[test]
    fn header_names_default_and_validate() {
        assert_eq!(
            header_name_or_default("country_header", None, "x-geo-country"),
            Ok("x-geo-country".into())
        );
        assert_eq!(
            header_name_or_default("country_header", Some("cf-ipcountry".into()), "x"),
            Ok("cf-ipcountry".into())
        );
        for bad in ["", "x geo", "x-geo:", "x\u{e9}"] {
            let err = header_name_or_default("region_header", Some(bad.into()), "x")
                .expect_err("invalid header name");
            assert!(err.starts_with("`region_header`: "), "{err}");
        }
    }
}
