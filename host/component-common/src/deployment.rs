//! The deployment document: what `gatehouse compose` decided, embedded in the composed app.
//!
//! Invariants:
//! - Written only by `gatehouse compose` and read only by a composed host, of the same Gatehouse
//!   version; every struct refuses unknown fields and [`DEPLOYMENT_FORMAT`] must match, so a
//!   mismatched pair fails loudly instead of deciding with half a configuration.
//! - It holds literal settings only. A setting given as `{ env = "VAR" }` is a
//!   [`SettingDoc::Config`]: the name of the `wasi:config` key to read at run time, never a value.
//! - The manifests in it are the ones compose validated; the host validates them again with the
//!   same core function ([`gatehouse_core::provider::manifest::validate`]) before it gates a call.

use std::time::Duration;

use gatehouse_core::consent::ConsentConfig;
use gatehouse_core::identity::{IdentitySettings, RetryPolicy};
use gatehouse_core::pipeline::{EdgeCookieSettings, PipelineSettings, ProviderHeaderLimits};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::manifest::{self, Manifest, ManifestRules, ValidManifest};
use gatehouse_core::provider::{ProviderKind, Read};
use serde::{Deserialize, Serialize};

/// The version of the document's shape. Compose writes it; a host refuses any other.
pub const DEPLOYMENT_FORMAT: u32 = 2;

/// The interface through which a composed host reads the document: one function,
/// `get: func() -> string`, returning the document as JSON.
pub const DEPLOYMENT_INTERFACE: &str = "gatehouse:host/deployment@0.1.0";

/// Everything a composed host needs to serve, decided at compose time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// [`DEPLOYMENT_FORMAT`].
    pub format: u32,
    /// The compose target (`wasi-http`).
    pub target: String,
    /// `permissions.yaml` as text (the embedded one, or `policy.path`'s).
    pub policy_yaml: String,
    /// The policy's source name, for messages (`permissions.yaml` or the file's path).
    pub policy_source: String,
    /// `geo.default_country`.
    pub default_country: String,
    /// The `[consent]` table as written (an empty object for the defaults).
    pub consent: serde_json::Value,
    /// `[ec]` cookie attributes and provider header limits.
    pub edge_cookie: EdgeCookieDoc,
    /// `[origin]`.
    pub origin: OriginDoc,
    /// `server.client_ip_header`: where the platform in front writes the client address.
    pub client_ip_header: String,
    /// `server.trusted_proxies`: peers whose `client_ip_header` is believed
    /// ([`crate::http::client_ip_behind`]). Fastly believes the header only from these; on
    /// wasi:http, which reports no peer, the platform is the trusted proxy and these are the
    /// further hops the walk skips.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `server.cdn_headers` (lowercase): headers believed only from a trusted proxy; the Fastly
    /// host removes them from a request whose peer is not one
    /// ([`crate::http::HeaderList::strip_untrusted_facts`]).
    #[serde(default)]
    pub cdn_headers: Vec<String>,
    /// `runtime.forbidden_headers`: headers no provider may declare, besides the built-in ones.
    pub forbidden_headers: Vec<String>,
    /// The geo provider, if configured.
    pub geo: Option<ProviderDoc>,
    /// `geo.provider = "fastly"`: Fastly's own geolocation is the geo provider (target `fastly`
    /// only; `geo` is then `None`).
    #[serde(default)]
    pub fastly_geo: bool,
    /// The device provider, if configured.
    pub device: Option<ProviderDoc>,
    /// The Edge Cookie provider, if configured.
    pub ec: Option<ProviderDoc>,
    /// The identity store: `Some` when an Edge Cookie provider is configured and
    /// `store.enabled` is true; `None` runs the Edge Cookie statelessly.
    pub store: Option<StoreDoc>,
}

/// The identity store of a composed host (`[store]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreDoc {
    /// Which store the platform opens: the Fastly KV store's name (`store.fastly_kv_store`,
    /// target `fastly`) or the `wasi:keyvalue` bucket identifier (`store.keyvalue_bucket`,
    /// target `wasi-http`).
    pub name: String,
    /// `store.tombstone_secs`.
    pub tombstone_secs: u64,
    /// `store.cas_attempts`.
    pub cas_attempts: u32,
    /// `store.cas_base_delay_ms`.
    pub cas_base_delay_ms: u64,
    /// `store.cas_max_delay_ms`.
    pub cas_max_delay_ms: u64,
}

impl StoreDoc {
    /// The core's lifecycle settings.
    #[must_use]
    pub fn settings(&self) -> IdentitySettings {
        identity_settings(
            self.tombstone_secs,
            self.cas_attempts,
            self.cas_base_delay_ms,
            self.cas_max_delay_ms,
        )
    }
}

/// The core's lifecycle settings from the `[store]` keys every host reads: `tombstone_secs`,
/// `cas_attempts`, `cas_base_delay_ms`, `cas_max_delay_ms`.
#[must_use]
pub fn identity_settings(
    tombstone_secs: u64,
    cas_attempts: u32,
    cas_base_delay_ms: u64,
    cas_max_delay_ms: u64,
) -> IdentitySettings {
    IdentitySettings {
        tombstone_ttl: Duration::from_secs(tombstone_secs),
        retry: RetryPolicy {
            max_attempts: cas_attempts,
            base_delay: Duration::from_millis(cas_base_delay_ms),
            max_delay: Duration::from_millis(cas_max_delay_ms),
        },
    }
}

/// `[ec]` cookie attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeCookieDoc {
    /// `ec.cookie_name`.
    pub name: String,
    /// `ec.cookie_domain`.
    pub domain: Option<String>,
    /// `ec.max_age_secs`.
    pub max_age_secs: u64,
    /// `ec.allowed_headers`.
    pub allowed_headers: Vec<String>,
    /// `ec.max_headers`.
    pub max_headers: usize,
    /// `ec.max_header_bytes`.
    pub max_header_bytes: usize,
}

/// `[origin]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginDoc {
    /// `origin.url`: `http(s)://host[:port]` or `builtin:demo`.
    pub url: String,
    /// `origin.preserve_host`.
    pub preserve_host: bool,
    /// `origin.timeout_ms`: time to the origin's first response byte.
    pub timeout_ms: u64,
}

/// One configured provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDoc {
    /// The config name (`[ec] provider = "NAME"`).
    pub name: String,
    /// The sha256 of the component compose plugged in.
    pub sha256: String,
    /// The manifest its `describe` returned at compose time.
    pub manifest: ManifestDoc,
    /// Its settings, in config order.
    pub settings: Vec<SettingDoc>,
}

/// A provider manifest (WIT `types.manifest`), as compose received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    /// `id`.
    pub id: String,
    /// `version`.
    pub version: String,
    /// `required-permissions`.
    pub required_permissions: Vec<String>,
    /// `reads`.
    pub reads: Vec<Read>,
    /// `call-budget-ms`.
    pub call_budget_ms: Option<u32>,
}

impl From<&Manifest> for ManifestDoc {
    fn from(m: &Manifest) -> Self {
        Self {
            id: m.id.clone(),
            version: m.version.clone(),
            required_permissions: m.required_permissions.clone(),
            reads: m.reads.clone(),
            call_budget_ms: m.call_budget_ms,
        }
    }
}

impl From<&ManifestDoc> for Manifest {
    fn from(m: &ManifestDoc) -> Self {
        Self {
            id: m.id.clone(),
            version: m.version.clone(),
            required_permissions: m.required_permissions.clone(),
            reads: m.reads.clone(),
            call_budget_ms: m.call_budget_ms,
        }
    }
}

/// One provider setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "from", rename_all = "kebab-case")]
pub enum SettingDoc {
    /// Written in the config file: embedded.
    Literal {
        /// The setting's key.
        key: String,
        /// Its value.
        value: String,
    },
    /// `{ env = "VAR" }` in the config file: read at run time from `wasi:config/store` under
    /// `config_key` (the variable's name in lowercase).
    Config {
        /// The setting's key.
        key: String,
        /// The `wasi:config` key.
        config_key: String,
    },
}

/// Why a host cannot use a deployment document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// The document is not JSON of this shape.
    #[error("the deployment document does not parse: {0}")]
    Parse(#[from] serde_json::Error),
    /// The document was written for another format.
    #[error(
        "the deployment document has format `{found}`, this host reads `{DEPLOYMENT_FORMAT}`: compose it again with the same gatehouse version"
    )]
    Format {
        /// The document's format.
        found: u32,
    },
    /// The embedded policy does not parse.
    #[error("the embedded policy: {0}")]
    Policy(#[from] gatehouse_core::policy::PolicyError),
    /// The `[consent]` table does not parse.
    #[error("config key `consent`: {0}")]
    Consent(serde_json::Error),
    /// An entry of `server.trusted_proxies` is not an address or CIDR block.
    #[error("config key `server.trusted_proxies`: {0}")]
    TrustedProxy(String),
    /// A provider's manifest no longer validates.
    #[error("provider `{name}` (`{section}.providers.{name}`): {source}")]
    Manifest {
        /// `geo`, `device` or `ec`.
        section: &'static str,
        /// The config name.
        name: String,
        /// Why.
        #[source]
        source: manifest::ManifestError,
    },
}

impl Deployment {
    /// Parses the JSON document and checks its format.
    ///
    /// # Errors
    /// [`DeploymentError::Parse`] or [`DeploymentError::Format`].
    pub fn from_json(text: &str) -> Result<Self, DeploymentError> {
        let doc: Self = serde_json::from_str(text)?;
        if doc.format != DEPLOYMENT_FORMAT {
            return Err(DeploymentError::Format { found: doc.format });
        }
        Ok(doc)
    }

    /// The document as JSON.
    ///
    /// # Errors
    /// Never in practice (every field serialises); the serialiser's error otherwise.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Parses the embedded policy.
    ///
    /// # Errors
    /// [`DeploymentError::Policy`].
    pub fn policy(&self) -> Result<Policy, DeploymentError> {
        Ok(Policy::from_yaml_str(
            &self.policy_yaml,
            &self.policy_source,
        )?)
    }

    /// The parsed `server.trusted_proxies`.
    ///
    /// # Errors
    /// [`DeploymentError::TrustedProxy`] naming the entry that does not parse.
    pub fn trusted_proxies(&self) -> Result<Vec<crate::http::Cidr>, DeploymentError> {
        self.trusted_proxies
            .iter()
            .map(|entry| entry.parse().map_err(DeploymentError::TrustedProxy))
            .collect()
    }

    /// The core's pipeline settings.
    ///
    /// # Errors
    /// [`DeploymentError::Consent`] when the `[consent]` table does not parse.
    pub fn pipeline_settings(&self) -> Result<PipelineSettings, DeploymentError> {
        let consent: ConsentConfig = if self.consent.is_null() {
            ConsentConfig::default()
        } else {
            serde_json::from_value(self.consent.clone()).map_err(DeploymentError::Consent)?
        };
        Ok(PipelineSettings {
            default_country: self.default_country.clone(),
            consent,
            edge_cookie: EdgeCookieSettings {
                name: self.edge_cookie.name.clone(),
                domain: self.edge_cookie.domain.clone(),
                max_age_secs: self.edge_cookie.max_age_secs,
                allowed_headers: self.edge_cookie.allowed_headers.clone(),
                header_limits: ProviderHeaderLimits {
                    max_count: self.edge_cookie.max_headers,
                    max_bytes: self.edge_cookie.max_header_bytes,
                },
            },
        })
    }

    /// What a manifest may declare on a composed host: the publisher's forbidden headers, and no
    /// JA4 or HTTP/2 fingerprint (a `wasi:http` component never sees the TLS handshake or the
    /// HTTP/2 frames).
    #[must_use]
    pub fn manifest_rules(&self) -> ManifestRules {
        ManifestRules {
            forbidden_headers: self.forbidden_headers.clone(),
            supplies_ja4: false,
            supplies_http2_fingerprint: false,
        }
    }

    /// The configured provider of `kind`.
    #[must_use]
    pub fn provider(&self, kind: ProviderKind) -> Option<&ProviderDoc> {
        match kind {
            ProviderKind::Geo => self.geo.as_ref(),
            ProviderKind::Device => self.device.as_ref(),
            ProviderKind::EdgeCookie => self.ec.as_ref(),
        }
    }

    /// Validates the provider of `kind` against `policy`, as compose did.
    ///
    /// # Errors
    /// [`DeploymentError::Manifest`].
    pub fn validated(
        &self,
        kind: ProviderKind,
        policy: &Policy,
    ) -> Result<Option<ValidManifest>, DeploymentError> {
        let Some(doc) = self.provider(kind) else {
            return Ok(None);
        };
        manifest::validate(
            &Manifest::from(&doc.manifest),
            policy,
            &self.manifest_rules(),
        )
        .map(Some)
        .map_err(|source| DeploymentError::Manifest {
            section: kind.section(),
            name: doc.name.clone(),
            source,
        })
    }
}

/// The `wasi:config` key under which a `{ env = "VAR" }` setting is read at run time: the
/// variable's name in lowercase, which is also a valid Spin variable name. `None` when the name
/// has characters neither allows (anything but ASCII letters, digits and `_`, or a leading digit).
#[must_use]
pub fn config_key_for_env(var: &str) -> Option<String> {
    let key = var.to_ascii_lowercase();
    let mut bytes = key.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    (first_ok
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        Deployment {
            format: DEPLOYMENT_FORMAT,
            target: "wasi-http".into(),
            policy_yaml: gatehouse_core::policy::EMBEDDED_POLICY_YAML.into(),
            policy_source: "permissions.yaml".into(),
            default_country: "FR".into(),
            consent: serde_json::json!({}),
            edge_cookie: EdgeCookieDoc {
                name: "ts-ec".into(),
                domain: None,
                max_age_secs: 60,
                allowed_headers: Vec::new(),
                max_headers: 8,
                max_header_bytes: 4096,
            },
            origin: OriginDoc {
                url: "builtin:demo".into(),
                preserve_host: false,
                timeout_ms: 10_000,
            },
            client_ip_header: "x-forwarded-for".into(),
            trusted_proxies: vec!["10.0.0.0/8".into()],
            cdn_headers: vec!["x-geo-country".into()],
            forbidden_headers: Vec::new(),
            geo: None,
            fastly_geo: false,
            device: None,
            ec: Some(ProviderDoc {
                name: "hmac".into(),
                sha256: "00".repeat(32),
                manifest: ManifestDoc {
                    id: "hmac".into(),
                    version: "0.1.0".into(),
                    required_permissions: vec!["store-on-device".into()],
                    reads: vec![Read::ClientIp, Read::Header("x-a".into())],
                    call_budget_ms: None,
                },
                settings: vec![SettingDoc::Config {
                    key: "passphrase".into(),
                    config_key: "gatehouse_ec_passphrase".into(),
                }],
            }),
            store: Some(StoreDoc {
                name: String::new(),
                tombstone_secs: 86_400,
                cas_attempts: 8,
                cas_base_delay_ms: 2,
                cas_max_delay_ms: 50,
            }),
        }
    }

    #[test]
    fn a_deployment_round_trips_through_json_and_validates_its_provider() {
        let doc = sample();
        let back = Deployment::from_json(&doc.to_json().expect("json")).expect("parses");
        assert_eq!(back, doc);
        let policy = back.policy().expect("policy");
        let valid = back
            .validated(ProviderKind::EdgeCookie, &policy)
            .expect("valid")
            .expect("configured");
        assert!(valid.spec.reads.client_ip);
        assert_eq!(valid.spec.reads.headers, vec!["x-a".to_owned()]);
        back.pipeline_settings().expect("settings");
        assert_eq!(back.trusted_proxies().expect("cidrs").len(), 1);
        let settings = back.store.as_ref().expect("store").settings();
        assert_eq!(
            settings.tombstone_ttl,
            std::time::Duration::from_secs(86_400)
        );
        assert_eq!(settings.retry.max_attempts, 8);
    }

    #[test]
    fn reads_are_written_with_their_wit_names() {
        let json = sample().to_json().expect("json");
        assert!(
            json.contains(r#""reads":["client-ip",{"header":"x-a"}]"#),
            "{json}"
        );
    }

    #[test]
    fn a_document_of_another_format_is_refused() {
        let mut doc = sample();
        doc.format = DEPLOYMENT_FORMAT + 1;
        let err = Deployment::from_json(&doc.to_json().expect("json")).expect_err("refused");
        assert!(matches!(err, DeploymentError::Format { .. }), "{err}");
    }

    #[test]
    fn an_unknown_field_in_the_document_is_refused() {
        let mut value: serde_json::Value =
            serde_json::from_str(&sample().to_json().expect("json")).expect("value");
        value["surprise"] = true.into();
        assert!(Deployment::from_json(&value.to_string()).is_err());
    }

    #[test]
    fn env_variable_names_map_to_lowercase_config_keys() {
        assert_eq!(
            config_key_for_env("GATEHOUSE_EC_PASSPHRASE").as_deref(),
            Some("gatehouse_ec_passphrase")
        );
        assert_eq!(config_key_for_env("1ABC"), None);
        assert_eq!(config_key_for_env("A-B"), None);
        assert_eq!(config_key_for_env(""), None);
    }
}
