//! Fastly's own geolocation as the geo provider: `geo.provider = "fastly"` in the config, accepted
//! by `gatehouse compose --target fastly` only.
//!
//! It stands in for a geo component and is gated like one: its spec requires no permission
//! (finding the jurisdiction is what permissions are resolved against) and reads only the client
//! address, so the core passes it the address it resolved (Fastly's, or the trusted proxy's
//! header) and nothing else. The lookup is Fastly's (`fastly::geo::geo_lookup`); an address it
//! does not know, or no address, answers "country unknown", and `geo.default_country` applies.

use gatehouse_core::provider::Location;

/// The [`Location`] of Fastly's `country_code` and `region` (ISO 3166-2, e.g. `US-CA`; the
/// policy's rules name subdivisions without the country prefix, `US/CA`). An empty or `??`
/// country code is unknown.
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the Fastly host is wasm32-only; natively only its tests run"
    )
)]
pub fn location_of(country_code: &str, region: Option<&str>) -> Location {
    let country = country_code.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Location::default();
    }
    let region = region
        .map(str::trim)
        .map(|r| {
            r.strip_prefix(country.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .unwrap_or(r)
        })
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_ascii_uppercase);
    Location {
        country: Some(country),
        region,
    }
}

#[cfg(target_arch = "wasm32")]
pub use fastly_host::FastlyProviders;

#[cfg(target_arch = "wasm32")]
mod fastly_host {
    use gatehouse_component_common::providers::{ComposedProviders, ProviderSummary};
    use gatehouse_core::pipeline::{
        Classification, EcOutput, Evidence, Location, ProviderFailure, ProviderHost, ProviderKind,
        ProviderSpec,
    };
    use gatehouse_core::policy::PermissionSet;
    use gatehouse_core::provider::{Read, Reads};

    use super::location_of;

    /// The composed providers, with Fastly's geolocation as the geo provider when the deployment
    /// asks for it.
    pub struct FastlyProviders {
        inner: ComposedProviders,
        /// The built-in geo's spec, when it is the geo provider.
        geo: Option<ProviderSpec>,
    }

    impl FastlyProviders {
        /// `inner`, with the built-in geo when `builtin_geo`.
        pub fn new(inner: ComposedProviders, builtin_geo: bool) -> Self {
            Self {
                inner,
                geo: builtin_geo.then(|| ProviderSpec {
                    required: PermissionSet::EMPTY,
                    reads: Reads::from_declared(&[Read::ClientIp]),
                }),
            }
        }

        /// The providers for `/_ts/health`, the built-in geo included.
        pub fn summary(&self) -> Vec<ProviderSummary> {
            let mut out = Vec::new();
            if self.geo.is_some() {
                out.push(ProviderSummary {
                    kind: ProviderKind::Geo.section(),
                    name: "fastly".into(),
                    id: "fastly-geolocation".into(),
                    version: "builtin".into(),
                    required_permissions: Vec::new(),
                    reads: vec![Read::ClientIp.wit_name()],
                    sha256: String::new(),
                });
            }
            out.extend(self.inner.summary().iter().cloned());
            out
        }
    }

    impl ProviderHost for FastlyProviders {
        fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
            match (kind, &self.geo) {
                (ProviderKind::Geo, Some(spec)) => Some(spec),
                _ => self.inner.spec(kind),
            }
        }

        fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure> {
            if self.geo.is_none() {
                return self.inner.locate(evidence);
            }
            Ok(evidence
                .client_ip
                .and_then(fastly::geo::geo_lookup)
                .map(|geo| location_of(geo.country_code(), geo.region()))
                .unwrap_or_default())
        }

        fn classify(&mut self, evidence: &Evidence) -> Result<Classification, ProviderFailure> {
            self.inner.classify(evidence)
        }

        fn generate_edge_cookie(
            &mut self,
            evidence: &Evidence,
            current: Option<&str>,
        ) -> Result<EcOutput, ProviderFailure> {
            self.inner.generate_edge_cookie(evidence, current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::location_of;

    #[test]
    fn fastly_regions_lose_their_country_prefix() {
        let ca = location_of("US", Some("US-CA"));
        assert_eq!(ca.country.as_deref(), Some("US"));
        assert_eq!(ca.region.as_deref(), Some("CA"));
        let berlin = location_of("de", Some("DE-BE"));
        assert_eq!(berlin.country.as_deref(), Some("DE"));
        assert_eq!(berlin.region.as_deref(), Some("BE"));
        assert_eq!(location_of("AX", None).region, None);
    }

    #[test]
    fn unknown_countries_are_unknown() {
        assert_eq!(location_of("", Some("X")).country, None);
        assert_eq!(location_of("??", None).country, None);
        assert_eq!(location_of("USA", None).country, None);
        assert_eq!(location_of("US", Some("")).region, None);
    }
}
