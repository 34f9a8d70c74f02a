//! `[[partners]]`: the partners that push their user ids for Edge Cookie identities, how they
//! authenticate, and their auction flags.
//!
//! A partner's API key is never configured: only its SHA-256 (`api_key_sha256`), so a leaked
//! config file leaks no credential. A presented key is hashed and compared against every
//! configured hash in constant time ([`Partners::authenticate`]), so neither the comparison nor
//! the lookup reveals how much of a hash matched or which partner was close.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auction::ConsentForwarding;
use crate::pipeline::is_cookie_domain;

/// The shortest API key `gatehouse partner hash-key` accepts: 32 bytes (256 bits when random).
pub const MIN_API_KEY_BYTES: usize = 32;

/// One `[[partners]]` entry as written in the config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// `id`: the stable partner id (1 to 64 of `a-z`, `0-9`, `-`, `_`, `.`); the key of the
    /// partner's ids in identity records, and what `auction.bidders[].partner` names.
    pub id: String,
    /// `name`: a readable name (1 to 128 printable characters).
    pub name: String,
    /// `source_domain`: the partner's domain (`user.eids[].source` of its ids), unique.
    pub source_domain: String,
    /// `api_key_sha256`: lowercase or uppercase hex SHA-256 of the partner's API key
    /// (`gatehouse partner hash-key`), unique. Never the key itself.
    pub api_key_sha256: String,
    /// `batch_rate_limit`: batch-sync requests per minute, more than 0.
    pub batch_rate_limit: u32,
    /// `bidstream_enabled` (default false): whether identifiers may be sent to this partner's
    /// bidder (`auction.bidders[].partner`).
    #[serde(default)]
    pub bidstream_enabled: bool,
    /// `consent_forwarding` (default `both`): where this partner's bidder receives the consent
    /// strings.
    #[serde(default)]
    pub consent_forwarding: ConsentForwarding,
}

/// A validated partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    /// `id`.
    pub id: String,
    /// `name`.
    pub name: String,
    /// `source_domain`, lowercase.
    pub source_domain: String,
    /// `batch_rate_limit`, requests per minute (> 0).
    pub batch_rate_limit: u32,
    /// `bidstream_enabled`.
    pub bidstream_enabled: bool,
    /// `consent_forwarding`.
    pub consent_forwarding: ConsentForwarding,
    api_key_sha256: [u8; 32],
}

/// Why `[[partners]]` was refused. Each message names the config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartnerConfigError {
    /// An id that is not a token.
    #[error(
        "config key `{key}`: `{value}` is not a partner id (1 to 64 of a-z, 0-9, `-`, `_`, `.`)"
    )]
    InvalidId {
        /// The key.
        key: String,
        /// The value, escaped.
        value: String,
    },
    /// An empty, overlong or unprintable name.
    #[error("config key `{key}`: a partner name is 1 to 128 printable characters")]
    InvalidName {
        /// The key.
        key: String,
    },
    /// A source domain that is not a domain.
    #[error("config key `{key}`: `{value}` is not a domain")]
    InvalidDomain {
        /// The key.
        key: String,
        /// The value, escaped.
        value: String,
    },
    /// A key hash that is not 64 hex digits.
    #[error(
        "config key `{key}`: not a hex sha-256 (64 hex digits; create it with `gatehouse partner hash-key`)"
    )]
    InvalidKeyHash {
        /// The key.
        key: String,
    },
    /// `batch_rate_limit = 0`.
    #[error("config key `{key}`: must be more than 0 requests per minute")]
    InvalidRateLimit {
        /// The key.
        key: String,
    },
    /// An id, source domain or key hash used by two partners.
    #[error("config key `{key}`: {what} is already used by partner `{other}`")]
    Duplicate {
        /// The key of the second use.
        key: String,
        /// What is repeated (`the id`, `the source domain`, `the api key hash`).
        what: &'static str,
        /// The id of the partner that uses it first.
        other: String,
    },
}

/// The partners of a deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partners {
    partners: Vec<Partner>,
}

impl Partners {
    /// Validates `[[partners]]`.
    ///
    /// # Errors
    /// [`PartnerConfigError`] naming the key (`partners[1].api_key_sha256`): an invalid id,
    /// name, domain, key hash or rate limit, or an id, source domain or key hash that another
    /// partner already uses.
    pub fn new(configs: &[PartnerConfig]) -> Result<Self, PartnerConfigError> {
        let mut partners: Vec<Partner> = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let key = |field: &str| format!("partners[{i}].{field}");
            if !crate::auction::is_partner_token(&config.id) {
                return Err(PartnerConfigError::InvalidId {
                    key: key("id"),
                    value: escaped(&config.id),
                });
            }
            if config.name.is_empty()
                || config.name.chars().count() > 128
                || config.name.chars().any(char::is_control)
            {
                return Err(PartnerConfigError::InvalidName { key: key("name") });
            }
            let domain = config.source_domain.to_ascii_lowercase();
            if !is_cookie_domain(&domain) || domain.starts_with('.') {
                return Err(PartnerConfigError::InvalidDomain {
                    key: key("source_domain"),
                    value: escaped(&config.source_domain),
                });
            }
            let hash = parse_sha256_hex(&config.api_key_sha256).ok_or_else(|| {
                PartnerConfigError::InvalidKeyHash {
                    key: key("api_key_sha256"),
                }
            })?;
            if config.batch_rate_limit == 0 {
                return Err(PartnerConfigError::InvalidRateLimit {
                    key: key("batch_rate_limit"),
                });
            }
            let duplicate =
                |field: &str, what: &'static str, other: &Partner| PartnerConfigError::Duplicate {
                    key: key(field),
                    what,
                    other: other.id.clone(),
                };
            for other in &partners {
                if other.id == config.id {
                    return Err(duplicate("id", "the id", other));
                }
                if other.source_domain == domain {
                    return Err(duplicate("source_domain", "the source domain", other));
                }
                if other.api_key_sha256 == hash {
                    return Err(duplicate("api_key_sha256", "the api key hash", other));
                }
            }
            partners.push(Partner {
                id: config.id.clone(),
                name: config.name.clone(),
                source_domain: domain,
                batch_rate_limit: config.batch_rate_limit,
                bidstream_enabled: config.bidstream_enabled,
                consent_forwarding: config.consent_forwarding,
                api_key_sha256: hash,
            });
        }
        Ok(Self { partners })
    }

    /// Every partner, in config order.
    pub fn iter(&self) -> std::slice::Iter<'_, Partner> {
        self.partners.iter()
    }

    /// Whether no partner is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.partners.is_empty()
    }

    /// The number of partners.
    #[must_use]
    pub fn len(&self) -> usize {
        self.partners.len()
    }

    /// The partner with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.id == id)
    }

    /// The partner whose API key is `api_key`. The key is hashed with SHA-256 and the hash is
    /// compared with every partner's in constant time: the time taken depends only on the
    /// number of partners, never on the key or on how much of a hash matched.
    #[must_use]
    pub fn authenticate(&self, api_key: &[u8]) -> Option<&Partner> {
        let presented: [u8; 32] = Sha256::digest(api_key).into();
        let mut found = None;
        for partner in &self.partners {
            // No early exit: every hash is compared.
            if bool::from(partner.api_key_sha256.ct_eq(&presented)) {
                found = Some(partner);
            }
        }
        found
    }
}

impl<'a> IntoIterator for &'a Partners {
    type Item = &'a Partner;
    type IntoIter = std::slice::Iter<'a, Partner>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Why [`hash_api_key`] refused a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The key is shorter than [`MIN_API_KEY_BYTES`].
    #[error("api key is {len} bytes; at least {MIN_API_KEY_BYTES} are required")]
    TooShort {
        /// Its length in bytes.
        len: usize,
    },
}

/// The `api_key_sha256` of an API key: lowercase hex SHA-256.
///
/// # Errors
/// [`ApiKeyError::TooShort`] when the key has fewer than [`MIN_API_KEY_BYTES`] bytes.
pub fn hash_api_key(api_key: &[u8]) -> Result<String, ApiKeyError> {
    if api_key.len() < MIN_API_KEY_BYTES {
        return Err(ApiKeyError::TooShort { len: api_key.len() });
    }
    let digest = Sha256::digest(api_key);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Ok(hex)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

fn escaped(text: &str) -> String {
    text.chars()
        .take(256)
        .collect::<String>()
        .escape_default()
        .to_string()
}
