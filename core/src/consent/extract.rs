//! Pulling raw consent signals out of a request: the `Cookie` header value and a header lookup.
//! No HTTP types: the host hands over a string and something that answers header queries.

use super::config::ConsentConfig;

/// Read access to request headers. Names are compared case-insensitively by implementations.
pub trait HeaderLookup {
    /// The value of header `name`, if present (the first one when repeated).
    fn header(&self, name: &str) -> Option<&str>;
}

impl HeaderLookup for [(&str, &str)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl<const N: usize> HeaderLookup for [(&str, &str); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawSignals {
    /// Standalone TCF TC string.
    pub tc_string: Option<String>,
    /// GPP string.
    pub gpp: Option<String>,
    /// `__gpp_sid` (applicable GPP section ids) as sent.
    pub gpp_sid: Option<String>,
    /// US Privacy string as sent.
    pub us_privacy: Option<String>,
    /// Google Additional Consent string.
    pub additional_consent: Option<String>,
    /// Global Privacy Control header was `1`.
    pub gpc: bool,
}

impl RawSignals {
    /// Extracts signals from a `Cookie` header value and request headers, using the configured
    /// names. Cookies win over headers; the first occurrence of a repeated cookie wins.
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
                let slot = if name == names.tc_string {
                    &mut raw.tc_string
                } else if name == names.gpp {
                    &mut raw.gpp
                } else if name == names.gpp_sid {
                    &mut raw.gpp_sid
                } else if name == names.us_privacy {
                    &mut raw.us_privacy
                } else if name == names.additional_consent {
                    &mut raw.additional_consent
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = clean_value(value);
                }
            }
        }
        let from_header = |slot: &mut Option<String>, name: &Option<String>| {
            if slot.is_none()
                && let Some(v) = name.as_deref().and_then(|n| headers.header(n))
            {
                *slot = clean_value(v);
            }
        };
        from_header(&mut raw.tc_string, &hn.tc_string);
        from_header(&mut raw.gpp, &hn.gpp);
        from_header(&mut raw.gpp_sid, &hn.gpp_sid);
        from_header(&mut raw.us_privacy, &hn.us_privacy);
        from_header(&mut raw.additional_consent, &hn.additional_consent);
        raw.gpc = headers.header(&hn.gpc).is_some_and(|v| v.trim() == "1");
        raw
    }
}

/// Trims whitespace and surrounding quotes and percent-decodes; empty values count as absent.
fn clean_value(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    if v.is_empty() {
        return None;
    }
    Some(if v.contains('%') {
        percent_decode(v)
    } else {
        v.to_owned()
    })
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
