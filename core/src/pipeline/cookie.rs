//! The Edge Cookie on the wire: the `Set-Cookie` value Gatehouse sends, finding the cookie in a
//! request's `Cookie` header, removing it from a forwarded one, and recognising an origin's
//! `Set-Cookie` for the same name.
//!
//! Invariants: a `Set-Cookie` value is only ever built from a name, domain and value that passed
//! [`is_cookie_name`], [`is_cookie_domain`] and [`is_cookie_value`] (the pipeline checks the
//! first two at startup and the value on every provider answer), so nothing a provider or a config
//! file says can add an attribute. Removing a cookie keeps every other byte of the header.

use std::fmt::Write as _;

/// The longest Edge Cookie value accepted from a provider or from the visitor.
pub const MAX_COOKIE_VALUE_LEN: usize = 256;

/// Formats the `Set-Cookie` header value that sets an Edge Cookie.
#[must_use]
pub fn set_cookie_header(
    name: &str,
    value: &str,
    domain: Option<&str>,
    max_age_secs: u64,
) -> String {
    let attributes = "; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=";
    let mut out = String::with_capacity(
        name.len() + value.len() + domain.map_or(0, |d| d.len() + 9) + attributes.len() + 21,
    );
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str(attributes);
    let _ = write!(out, "{max_age_secs}");
    out
}

/// Formats the `Set-Cookie` header value that expires an Edge Cookie: same name and attributes
/// (a browser only replaces a cookie with the same name, domain and path), empty value,
/// `Max-Age=0`.
#[must_use]
pub fn expire_cookie_header(name: &str, domain: Option<&str>) -> String {
    set_cookie_header(name, "", domain, 0)
}

/// Finds the value of cookie `name` in a `Cookie` request header value (the first occurrence;
/// surrounding double quotes removed).
#[must_use]
pub fn find_cookie<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Removes every `name=value` pair of cookie `name` from one `Cookie` header line, keeping the
/// other pairs byte for byte (only the `; ` separators around the removed pairs go). Returns
/// `None` when the line does not hold the cookie, so an untouched line is never rewritten.
/// Works on bytes: a line that is not UTF-8 is handled like any other.
#[must_use]
pub fn remove_cookie(line: &[u8], name: &str) -> Option<Vec<u8>> {
    let is_target = |pair: &[u8]| {
        let key = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        key.trim_ascii() == name.as_bytes()
    };
    if !line.split(|&b| b == b';').any(is_target) {
        return None;
    }
    let kept: Vec<&[u8]> = line
        .split(|&b| b == b';')
        .filter(|pair| !is_target(pair) && !pair.trim_ascii().is_empty())
        .map(<[u8]>::trim_ascii)
        .collect();
    Some(kept.join(&b"; "[..]))
}

/// The cookie name a `Set-Cookie` response header value sets (the bytes before the first `=`,
/// trimmed), or `None` for a nameless cookie.
#[must_use]
pub fn set_cookie_name(value: &[u8]) -> Option<&[u8]> {
    let pair = value.split(|&b| b == b';').next().unwrap_or(value);
    let (name, _) = split_once(pair, b'=')?;
    let name = name.trim_ascii();
    (!name.is_empty()).then_some(name)
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let index = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..index], &bytes[index + 1..]))
}

/// Whether `name` is an RFC 6265 cookie name: a non-empty RFC 9110 token.
#[must_use]
pub fn is_cookie_name(name: &str) -> bool {
    is_token(name)
}

/// Whether `value` is a non-empty RFC 6265 `cookie-value` of at most [`MAX_COOKIE_VALUE_LEN`]
/// bytes, without surrounding quotes (so it can never carry `;`, whitespace or a control byte).
#[must_use]
pub fn is_cookie_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_COOKIE_VALUE_LEN
        // cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
        && value
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

/// Whether `domain` is usable as a `Domain=` attribute: a hostname (labels of ASCII letters,
/// digits and `-`, 1 to 63 bytes, not starting or ending with `-`; at most 253 bytes), with an
/// optional leading `.` that browsers ignore.
#[must_use]
pub fn is_cookie_domain(domain: &str) -> bool {
    let host = domain.strip_prefix('.').unwrap_or(domain);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether `text` is an RFC 9110 `token` (header field names, cookie names).
#[must_use]
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}
