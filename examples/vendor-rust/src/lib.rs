//! Example Edge Cookie provider, written the way a vendor would: std Rust, `wit-bindgen`, and
//! `cargo build --target wasm32-wasip2 --release`.
//!
//! The identifier is random, not derived from the visitor: `v1.<issued>.<nonce>.<tag>` where
//! `issued` is the Unix time in hex, `nonce` 16 random bytes in hex, and `tag` the first 8 bytes
//! of HMAC-SHA256(`secret`, `v1.<issued>.<nonce>`) in hex. The tag lets the provider keep a cookie
//! it minted and replace a forged or garbled one; `rotate_after_days` bounds how long one id lives.
//!
//! Reads no request evidence (its manifest declares none, so the host fills none) and requires
//! `store-on-device`. It reports whether it kept or minted the id in the response header
//! `x-example-ec` (the publisher must allowlist it in `ec.allowed_headers`).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

wit_bindgen::generate!({
    world: "edge-cookie-provider",
    path: "../../wit",
    generate_all,
});

use exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest, Manifest};
use gatehouse::provider::types::{Evidence, Header, Setting};

/// The response header this provider sets: `minted` or `kept`.
const REPORT_HEADER: &str = "x-example-ec";
/// Default lifetime of one identifier before it is re-minted.
const DEFAULT_ROTATE_AFTER_DAYS: u64 = 30;
/// Shortest accepted secret: a shorter key makes the tag guessable.
const MIN_SECRET_BYTES: usize = 16;

struct ExampleEdgeCookie;

/// The provider's settings, parsed from its table in the publisher's config.
struct Settings {
    secret: String,
    rotate_after_secs: u64,
}

impl Settings {
    fn parse(settings: &[Setting]) -> Result<Self, String> {
        let mut secret = None;
        let mut rotate_after_days = DEFAULT_ROTATE_AFTER_DAYS;
        for Setting { key, value } in settings {
            match key.as_str() {
                "secret" => secret = Some(value.clone()),
                "rotate_after_days" => {
                    rotate_after_days = value
                        .parse::<u64>()
                        .ok()
                        .filter(|days| (1..=397).contains(days))
                        .ok_or_else(|| {
                            "`rotate_after_days`: expected a whole number of days from 1 to 397"
                                .to_string()
                        })?;
                }
                other => return Err(format!("`{other}`: unknown setting")),
            }
        }
        // Never echo the secret's value: the message names the key only.
        let secret = secret.ok_or_else(|| "`secret`: missing".to_string())?;
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "`secret`: must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Ok(Settings {
            secret,
            rotate_after_secs: rotate_after_days * 86_400,
        })
    }
}

impl Guest for ExampleEdgeCookie {
    fn describe(settings: Vec<Setting>) -> Result<Manifest, String> {
        Settings::parse(&settings)?;
        Ok(Manifest {
            id: "example-edge-cookie".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: vec!["store-on-device".into()],
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        settings: Vec<Setting>,
        _evidence: Evidence,
        current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let settings = Settings::parse(&settings).map_err(EcError::Config)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| EcError::Internal("wall clock before 1970".into()))?
            .as_secs();
        if let Some(current) = current.filter(|c| is_valid(c, &settings, now)) {
            return Ok(output(current, "kept"));
        }
        let nonce = gatehouse_random_hex();
        Ok(output(mint(&settings.secret, now, &nonce), "minted"))
    }
}

fn output(id: String, report: &str) -> EcOutput {
    EcOutput {
        id: Some(id),
        headers: vec![Header {
            name: REPORT_HEADER.into(),
            value: report.into(),
        }],
    }
}

/// `v1.<issued>.<nonce>.<tag>` for this secret.
fn mint(secret: &str, issued: u64, nonce: &str) -> String {
    let body = format!("v1.{issued:x}.{nonce}");
    let tag = tag(secret, &body);
    format!("{body}.{tag}")
}

/// Whether `cookie` is an id this provider minted under `secret`, no older than the rotation age.
fn is_valid(cookie: &str, settings: &Settings, now: u64) -> bool {
    let Some((body, tag_hex)) = cookie.rsplit_once('.') else {
        return false;
    };
    let mut parts = body.split('.');
    let (Some("v1"), Some(issued), Some(nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(issued) = u64::from_str_radix(issued, 16) else {
        return false;
    };
    nonce.len() == 32
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
        && issued <= now
        && now - issued < settings.rotate_after_secs
        && constant_time_eq(tag(&settings.secret, body).as_bytes(), tag_hex.as_bytes())
}

fn tag(secret: &str, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body.as_bytes());
    hex(&mac.finalize().into_bytes()[..8])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 16 bytes from the host's `wasi:random/random` (the world's import), in hex.
fn gatehouse_random_hex() -> String {
    hex(&wasi::random::random::get_random_bytes(16))
}

export!(ExampleEdgeCookie);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::parse(&[Setting {
            key: "secret".into(),
            value: "0123456789abcdef-test".into(),
        }])
        .expect("valid settings")
    }

    #[test]
    fn a_minted_id_is_kept_until_it_rotates() {
        let s = settings();
        let id = mint(&s.secret, 1_000, &"ab".repeat(16));
        assert!(is_valid(&id, &s, 1_000));
        assert!(is_valid(&id, &s, 1_000 + s.rotate_after_secs - 1));
        assert!(!is_valid(&id, &s, 1_000 + s.rotate_after_secs));
    }

    #[test]
    fn a_forged_or_garbled_id_is_replaced() {
        let s = settings();
        let id = mint(&s.secret, 1_000, &"ab".repeat(16));
        let forged = mint("another-secret-of-16+", 1_000, &"ab".repeat(16));
        assert!(!is_valid(&forged, &s, 1_000));
        assert!(!is_valid(&id.replace("v1.", "v2."), &s, 1_000));
        assert!(!is_valid(&id[..id.len() - 1], &s, 1_000));
    }

    #[test]
    fn settings_errors_name_the_key_and_never_the_secret() {
        let short = Settings::parse(&[Setting {
            key: "secret".into(),
            value: "hunter2".into(),
        }]);
        let err = short.err().expect("short secret refused");
        assert!(err.contains("`secret`") && !err.contains("hunter2"), "{err}");
        let unknown = Settings::parse(&[Setting {
            key: "passphrase".into(),
            value: "x".into(),
        }]);
        assert_eq!(unknown.err().as_deref(), Some("`passphrase`: unknown setting"));
    }
}
