//! The provider gate: whether a configured provider would be called for a request, and which
//! missing permissions stop it.
//!
//! The audit view (`gatehouse permissions explain --config`) calls [`provider_gate`]. The page
//! pipeline (`crate::pipeline`) still applies the same rules in its own code; making it call this
//! function, so that what a reviewer is shown is what the server does by construction, is open
//! work. Until then the two must change together.
//!
//! The rules, per kind:
//!
//! - **geo** runs before the visitor's country is known, so it is checked against the
//!   `default_country` rule resolved with the request's signals (the *default-country baseline*).
//! - **device** is checked against the request's resolved permissions.
//! - **Edge Cookie** needs `store-on-device` *and* the provider's own required permissions, against
//!   the request's resolved permissions. Being a bot is not a permission: the caller still skips
//!   the Edge Cookie provider when the device provider says bot.
//!
//! Pure and allocation-free; it must never read a clock, do I/O or look at the provider itself.

use serde::Serialize;

use super::permission_set::{PermissionId, PermissionSet};
use crate::provider::ProviderKind;

/// Which permission set a provider's gate is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateBasis {
    /// The `default_country` rule resolved with the request's signals (geo runs before the
    /// country is known).
    DefaultCountryBaseline,
    /// The request's resolved permissions.
    Request,
}

/// The gate's answer for one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderGate {
    /// What the permissions were checked against.
    pub basis: GateBasis,
    /// Every permission the call needs: the provider's required permissions, plus
    /// `store-on-device` for an Edge Cookie provider.
    pub needed: PermissionSet,
    /// The needed permissions that are not held; empty when the provider is called.
    pub missing: PermissionSet,
}

impl ProviderGate {
    /// Whether the provider is called (for an Edge Cookie provider: unless the device is a bot).
    #[must_use]
    pub const fn is_called(&self) -> bool {
        self.missing.is_empty()
    }
}

/// The permissions one request makes available to the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatePermissions {
    /// The request's resolved permissions (its matched rule with its signals).
    pub request: PermissionSet,
    /// The `default_country` rule resolved with the request's signals.
    pub default_country_baseline: PermissionSet,
    /// The policy's `store-on-device` permission.
    pub store_on_device: PermissionId,
}

/// Whether a provider of `kind` requiring `required` would be called, given `held`.
#[must_use]
pub const fn provider_gate(
    kind: ProviderKind,
    required: PermissionSet,
    held: &GatePermissions,
) -> ProviderGate {
    let (basis, against, needed) = match kind {
        ProviderKind::Geo => (
            GateBasis::DefaultCountryBaseline,
            held.default_country_baseline,
            required,
        ),
        ProviderKind::Device => (GateBasis::Request, held.request, required),
        ProviderKind::EdgeCookie => (
            GateBasis::Request,
            held.request,
            required.union(PermissionSet::from_bits(1 << held.store_on_device.index())),
        ),
    };
    ProviderGate {
        basis,
        needed,
        missing: needed.difference(against),
    }
}

/// A configured provider, as the audit view needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfiguredProvider<'a> {
    /// Its kind.
    pub kind: ProviderKind,
    /// Its config name (e.g. `hmac`).
    pub name: &'a str,
    /// The permissions its manifest requires.
    pub required: PermissionSet,
}

/// Whether one configured provider would be called, for `permissions explain --config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProviderExplanation {
    /// `geo`, `device` or `ec`.
    pub kind: &'static str,
    /// The provider's config name.
    pub provider: String,
    /// The permissions its manifest requires, in vocabulary order.
    pub required: Vec<String>,
    /// Every permission the call needs (`required`, plus `store-on-device` for `ec`).
    pub needed: Vec<String>,
    /// What the needed permissions were checked against.
    pub checked_against: GateBasis,
    /// Whether it would be called.
    pub called: bool,
    /// The needed permissions that are not held, in vocabulary order.
    pub missing: Vec<String>,
    /// A condition outside the policy that can still stop the call, if any.
    pub unless: Option<String>,
    /// The answer in words.
    pub reason: String,
}

impl<'p> super::MatchedRule<'p> {
    /// For each configured provider, whether [`provider_gate`] lets it run for this request's
    /// jurisdiction and `signals`, and what stops it. `default_country` is the deployment's
    /// `geo.default_country` (geo is gated against it); `store_on_device` the policy's
    /// `store-on-device`.
    #[must_use]
    pub fn explain_providers(
        &self,
        default_country: &super::DefaultCountry,
        signals: &super::Signals,
        store_on_device: PermissionId,
        providers: &[ConfiguredProvider<'_>],
    ) -> Vec<ProviderExplanation> {
        let policy: &'p super::Policy = self.policy;
        let held = GatePermissions {
            request: self.resolve(signals),
            default_country_baseline: policy
                .match_jurisdiction(None, None, default_country)
                .resolve(signals),
            store_on_device,
        };
        let names =
            |set: PermissionSet| -> Vec<String> { policy.names(set).map(str::to_owned).collect() };
        providers
            .iter()
            .map(|provider| {
                let gate = provider_gate(provider.kind, provider.required, &held);
                let missing = names(gate.missing);
                let unless = (provider.kind == ProviderKind::EdgeCookie && gate.is_called())
                    .then(|| "the device provider says bot".to_owned());
                let listed = missing
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let reason = match (gate.is_called(), gate.basis) {
                    (true, _) => match &unless {
                        Some(condition) => format!("called unless {condition}"),
                        None => "called".to_owned(),
                    },
                    (false, GateBasis::Request) => format!("not called: missing {listed}"),
                    (false, GateBasis::DefaultCountryBaseline) => format!(
                        "not called: missing {listed} in the default country `{}` with these \
                         signals (geo runs before the country is known), so the request is \
                         treated as `{}`",
                        default_country.rule_key(),
                        default_country.rule_key()
                    ),
                };
                ProviderExplanation {
                    kind: provider.kind.section(),
                    provider: provider.name.to_owned(),
                    required: names(provider.required),
                    needed: names(gate.needed),
                    checked_against: gate.basis,
                    called: gate.is_called(),
                    missing,
                    unless,
                    reason,
                }
            })
            .collect()
    }
}
