//! Pulling raw consent signals out of a request: the `Cookie` header value and a header lookup.
//! No HTTP types: the host hands over a string and something that answers header queries.

use super::config::ConsentConfig;

/// Read access to request headers. Names are compared case-insensitively by implementations.
pub trait HeaderLookup {
    /// The value of header `name`, if present (the first one when repeated).
    fn header(&self, name: &str) -> Option<&str>;

    /// Every value of header `name`, in request order. The default returns only
    /// [`HeaderLookup::header`]; implementations over multi-valued header maps override it so that
    /// a repeated header (a second `Sec-GPC`, say) is never lost.
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.header(name).into_iter().collect()
    }
}

impl HeaderLookup for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect()
    }
}

impl<const N: usize> HeaderLookup for [(&str, &str); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.as_slice().header_values(name)
    }
}

/// A request without headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHeaders;

impl HeaderLookup for NoHeaders {
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The raw consent signals of one request, before decoding.
///
/// A repeated cookie keeps every copy: the first in the field named after the signal, the others
/// in [`RawSignals::repeated`]. Browsers send older cookies first (RFC 6265 §5.4) and a stale or
/// malformed copy may come first, so which copy counts is decided after decoding, by
/// [`super::ConsentContext`], never by order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSignals {
    /// Standalone TCF TC string (the first copy).
    pub tc_string: Option<String>,
    /// GPP string (the first copy).
    pub gpp: Option<String>,
    /// `__gpp_sid` (applicable GPP section ids) as sent (the first copy).
    pub gpp_sid: Option<String>,
    /// US Privacy string as sent (the first copy, under any configured cookie name).
    pub us_privacy: Option<String>,
    /// Google Additional Consent string (the first copy).
    pub additional_consent: Option<String>,
    /// Global Privacy Control: some GPC header value was `1`.
    pub gpc: bool,
    /// The second and later copies of repeated cookies, in header order.
    pub repeated: RepeatedCopies,
}

/// The second and later copies of repeated consent cookies, in header order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepeatedCopies {
    /// Further TC strings.
    pub tc_string: Vec<String>,
    /// Further GPP strings.
    pub gpp: Vec<String>,
    /// Further `__gpp_sid` values.
    pub gpp_sid: Vec<String>,
    /// Further US Privacy strings.
    pub us_privacy: Vec<String>,
    /// Further Additional Consent strings.
    pub additional_consent: Vec<String>,
}

impl RepeatedCopies {
    /// Whether no cookie was repeated.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tc_string.is_empty()
            && self.gpp.is_empty()
            && self.gpp_sid.is_empty()
            && self.us_privacy.is_empty()
            && self.additional_consent.is_empty()
    }
}

fn copies<'a>(first: &'a Option<String>, more: &'a [String]) -> impl Iterator<Item = &'a str> {
    first
        .as_deref()
        .into_iter()
        .chain(more.iter().map(String::as_str))
}

impl RawSignals {
    /// Every TC string copy, in header order.
    pub fn tc_strings(&self) -> impl Iterator<Item = &str> {
        copies(&self.tc_string, &self.repeated.tc_string)
    }

    /// Every GPP string copy, in header order.
    pub fn gpp_strings(&self) -> impl Iterator<Item = &str> {
        copies(&self.gpp, &self.repeated.gpp)
    }

    /// Every `__gpp_sid` copy, in header order.
    pub fn gpp_sids(&self) -> impl Iterator<Item = &str> {
        copies(&self.gpp_sid, &self.repeated.gpp_sid)
    }

    /// Every US Privacy copy, in header order.
    pub fn us_privacy_strings(&self) -> impl Iterator<Item = &str> {
        copies(&self.us_privacy, &self.repeated.us_privacy)
    }

    /// Every Additional Consent copy, in header order.
    pub fn additional_consent_strings(&self) -> impl Iterator<Item = &str> {
        copies(&self.additional_consent, &self.repeated.additional_consent)
    }

    /// Extracts signals from a `Cookie` header value and request headers, using the configured
    /// names. Every copy of a repeated cookie is kept; a header is read only when no cookie
    /// carries that signal. GPC is on when any value of any GPC header is `1`.
    #[must_use]
    pub fn extract(
        config: &ConsentConfig,
        cookie_header: Option<&str>,
        headers: &dyn HeaderLookup,
    ) -> Self {
        let names = &config.cookie_names;
        let hn = &config.header_names;
        let mut raw = RawSignals::default();
        if let Some(cookies) = cookie_header {
            for pair in cookies.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let name = name.trim();
                let Some(value) = clean_value(value) else {
                    continue;
                };
                let (first, more) = if name == names.tc_string {
                    (&mut raw.tc_string, &mut raw.repeated.tc_string)
                } else if name == names.gpp {
                    (&mut raw.gpp, &mut raw.repeated.gpp)
                } else if name == names.gpp_sid {
                    (&mut raw.gpp_sid, &mut raw.repeated.gpp_sid)
                } else if names.us_privacy.iter().any(|n| n == name) {
                    (&mut raw.us_privacy, &mut raw.repeated.us_privacy)
                } else if name == names.additional_consent {
                    (
                        &mut raw.additional_consent,
                        &mut raw.repeated.additional_consent,
                    )
                } else {
                    continue;
                };
                if first.is_none() {
                    *first = Some(value);
                } else {
                    more.push(value);
                }
            }
        }
        let from_header =
            |first: &mut Option<String>, more: &mut Vec<String>, name: &Option<String>| {
                if first.is_some() {
                    return;
                }
                let Some(name) = name.as_deref() else {
                    return;
                };
                for value in headers
                    .header_values(name)
                    .into_iter()
                    .filter_map(clean_value)
                {
                    if first.is_none() {
                        *first = Some(value);
                    } else {
                        more.push(value);
                    }
                }
            };
        let more = &mut raw.repeated;
        from_header(&mut raw.tc_string, &mut more.tc_string, &hn.tc_string);
        from_header(&mut raw.gpp, &mut more.gpp, &hn.gpp);
        from_header(&mut raw.gpp_sid, &mut more.gpp_sid, &hn.gpp_sid);
        from_header(&mut raw.us_privacy, &mut more.us_privacy, &hn.us_privacy);
        from_header(
            &mut raw.additional_consent,
            &mut more.additional_consent,
            &hn.additional_consent,
        );
        // Every GPC header, and every comma-separated element of each: an opt-out is never lost
        // to a repeated or combined header.
        raw.gpc = headers
            .header_values(&hn.gpc)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|v| v.trim() == "1");
        raw
    }
}

/// Trims whitespace, removes surrounding quotes and percent-decodes, trimming again after each
/// step (` "%201YYN%20" ` is `1YYN`); empty values count as absent.
fn clean_value(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
        .trim();
    let v = if v.contains('%') {
        percent_decode(v).trim().to_owned()
    } else {
        v.to_owned()
    };
    (!v.is_empty()).then_some(v)
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(byte) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
