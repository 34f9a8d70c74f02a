//! The core's [`ProviderHost`] over the composed provider imports.
//!
//! A call is a plain function call into the provider instance composed into this component: the
//! core has already gated it, and passes the evidence of the provider's declared reads only. A
//! provider's answer is converted exactly as the standalone host converts it; its error variants
//! become [`ProviderFailure::Provider`]. A setting read from `wasi:config` that is missing makes
//! every call of that provider fail (fail-closed) without calling it.
//!
//! Shared by the wasi:http and Fastly hosts: they differ only in where such a setting is read
//! (`wasi:config`, Fastly's secret store), which the caller passes in.

use crate::{Deployment, DeploymentError, SettingDoc};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::{
    Classification, DeviceClass, EcOutput, Evidence, Location, ProviderFailure, ProviderHost,
    ProviderKind, ProviderSpec,
};

use crate::bindings::gatehouse::provider::{device, edge_cookie, geo, types};

/// One configured provider: what the core gates on, and its settings (or why they are missing).
struct Configured {
    spec: ProviderSpec,
    settings: Result<Vec<types::Setting>, String>,
}

/// A summary of one provider for `/_ts/health`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProviderSummary {
    /// `geo`, `device` or `ec`.
    pub kind: &'static str,
    /// The config name.
    pub name: String,
    /// The manifest id.
    pub id: String,
    /// The manifest version.
    pub version: String,
    /// The required permissions.
    pub required_permissions: Vec<String>,
    /// The declared reads.
    pub reads: Vec<String>,
    /// The digest of the component composed in.
    pub sha256: String,
}

/// The composed providers, as the core's [`ProviderHost`] for one request.
pub struct ComposedProviders {
    geo: Option<Configured>,
    device: Option<Configured>,
    ec: Option<Configured>,
    summary: Vec<ProviderSummary>,
}

impl ComposedProviders {
    /// Validates each configured provider's manifest against `policy` (as compose did) and
    /// resolves its settings from `settings_store` (`wasi:config/store` on wasi:http, the
    /// secret store on Fastly).
    ///
    /// # Errors
    /// [`DeploymentError::Manifest`] when a manifest no longer validates.
    pub fn new(
        deployment: &Deployment,
        policy: &Policy,
        settings_store: &dyn SettingsStore,
    ) -> Result<Self, DeploymentError> {
        let mut summary = Vec::new();
        let mut load = |kind: ProviderKind| -> Result<Option<Configured>, DeploymentError> {
            let (Some(doc), Some(valid)) = (
                deployment.provider(kind),
                deployment.validated(kind, policy)?,
            ) else {
                return Ok(None);
            };
            summary.push(ProviderSummary {
                kind: kind.section(),
                name: doc.name.clone(),
                id: valid.id.clone(),
                version: valid.version.clone(),
                required_permissions: valid.required_permissions.clone(),
                reads: valid.reads.iter().map(|r| r.wit_name()).collect(),
                sha256: doc.sha256.clone(),
            });
            Ok(Some(Configured {
                spec: valid.spec,
                settings: resolve_settings(&doc.settings, settings_store),
            }))
        };
        let geo = load(ProviderKind::Geo)?;
        let device = load(ProviderKind::Device)?;
        let ec = load(ProviderKind::EdgeCookie)?;
        Ok(Self {
            geo,
            device,
            ec,
            summary,
        })
    }

    /// The configured providers, for `/_ts/health`.
    #[must_use]
    pub fn summary(&self) -> &[ProviderSummary] {
        &self.summary
    }

    fn settings(configured: &Configured) -> Result<&[types::Setting], ProviderFailure> {
        configured
            .settings
            .as_deref()
            .map_err(|message| ProviderFailure::Instantiate(message.clone()))
    }
}

/// Where a composed host reads the settings given as `{ env = "VAR" }` at run time: never
/// embedded, so never in the deployment document.
pub trait SettingsStore {
    /// What a key is, for messages: `wasi:config key`, `secret store \`gatehouse\` key`.
    fn key_kind(&self) -> String;
    /// The value of `key`; `Ok(None)` when the store has no such key.
    ///
    /// # Errors
    /// The store's message when it cannot be read.
    fn get(&self, key: &str) -> Result<Option<String>, String>;
}

/// The literal settings, and the run-time ones read now. The first missing key fails the
/// provider; its message names the setting and the key, never a value.
fn resolve_settings(
    settings: &[SettingDoc],
    store: &dyn SettingsStore,
) -> Result<Vec<types::Setting>, String> {
    settings
        .iter()
        .map(|setting| match setting {
            SettingDoc::Literal { key, value } => Ok(types::Setting {
                key: key.clone(),
                value: value.clone(),
            }),
            SettingDoc::Config { key, config_key } => match store.get(config_key) {
                Ok(Some(value)) => Ok(types::Setting {
                    key: key.clone(),
                    value,
                }),
                Ok(None) => Err(format!(
                    "setting `{key}`: {} `{config_key}` is not set",
                    store.key_kind()
                )),
                Err(error) => Err(format!(
                    "setting `{key}`: {} `{config_key}` cannot be read: {error}",
                    store.key_kind()
                )),
            },
        })
        .collect()
}

impl ProviderHost for ComposedProviders {
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
        match kind {
            ProviderKind::Geo => self.geo.as_ref(),
            ProviderKind::Device => self.device.as_ref(),
            ProviderKind::EdgeCookie => self.ec.as_ref(),
        }
        .map(|c| &c.spec)
    }

    fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure> {
        let Some(configured) = &self.geo else {
            return Ok(Location::default());
        };
        let settings = Self::settings(configured)?;
        match geo::locate(settings, &evidence_to_wit(evidence)) {
            Ok(found) => Ok(Location {
                country: found.country,
                region: found.region,
            }),
            Err(geo::GeoError::Config(m)) => Err(ProviderFailure::Provider(format!("config: {m}"))),
            Err(geo::GeoError::Internal(m)) => {
                Err(ProviderFailure::Provider(format!("internal: {m}")))
            }
        }
    }

    fn classify(&mut self, evidence: &Evidence) -> Result<Classification, ProviderFailure> {
        let Some(configured) = &self.device else {
            return Ok(Classification::default());
        };
        let settings = Self::settings(configured)?;
        match device::classify(settings, &evidence_to_wit(evidence)) {
            Ok(found) => Ok(Classification {
                class: match found.class {
                    device::DeviceClass::Bot => DeviceClass::Bot,
                    device::DeviceClass::Mobile => DeviceClass::Mobile,
                    device::DeviceClass::Tablet => DeviceClass::Tablet,
                    device::DeviceClass::Desktop => DeviceClass::Desktop,
                    device::DeviceClass::Unknown => DeviceClass::Unknown,
                },
                bot_name: found.bot_name,
            }),
            Err(device::DeviceError::Config(m)) => {
                Err(ProviderFailure::Provider(format!("config: {m}")))
            }
            Err(device::DeviceError::Internal(m)) => {
                Err(ProviderFailure::Provider(format!("internal: {m}")))
            }
        }
    }

    fn generate_edge_cookie(
        &mut self,
        evidence: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure> {
        let Some(configured) = &self.ec else {
            return Ok(EcOutput::default());
        };
        let settings = Self::settings(configured)?;
        match edge_cookie::generate(settings, &evidence_to_wit(evidence), current) {
            Ok(out) => Ok(EcOutput {
                id: out.id,
                headers: out.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            }),
            Err(edge_cookie::EcError::Config(m)) => {
                Err(ProviderFailure::Provider(format!("config: {m}")))
            }
            Err(edge_cookie::EcError::MissingEvidence(m)) => {
                Err(ProviderFailure::Provider(format!("missing evidence: {m}")))
            }
            Err(edge_cookie::EcError::Internal(m)) => {
                Err(ProviderFailure::Provider(format!("internal: {m}")))
            }
        }
    }
}

/// The core's evidence as the WIT record.
fn evidence_to_wit(evidence: &Evidence) -> types::Evidence {
    types::Evidence {
        client_ip: evidence.client_ip.map(|ip| match ip {
            std::net::IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                types::IpAddress::Ipv4((a, b, c, d))
            }
            std::net::IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h] = v6.segments();
                types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        }),
        user_agent: evidence.user_agent.clone(),
        headers: evidence
            .headers
            .iter()
            .map(|(name, value)| types::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        path: evidence.path.clone(),
        query: evidence.query.clone(),
        ja4: evidence.ja4.clone(),
        http2_fingerprint: evidence.http2_fingerprint.clone(),
    }
}
