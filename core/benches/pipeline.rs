//! The page pipeline's own cost per request, providers answering instantly (a mock host), beside
//! the part of it the old host already paid (consent context, rule match, permission
//! resolution) measured in the same run. The difference is what the pipeline adds: evidence per
//! provider, the decision value, the `gatehouse-decision` header and the edits.
//!
//! Run: `cargo bench -p gatehouse-core --bench pipeline`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::consent::{ConsentConfig, ConsentContext, ConsentInput, JurisdictionFacts};
use gatehouse_core::pipeline::{
    Classification, DeviceClass, EcOutput, Evidence, FixedClock, Location, PagePipeline,
    PipelineSettings, ProviderFailure, ProviderHost, ProviderKind, ProviderSpec, RequestView,
};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::{Read, Reads};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

struct View {
    headers: Vec<(&'static str, String)>,
    ip: IpAddr,
}

impl RequestView for View {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/articles/today"
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn client_ip(&self) -> Option<IpAddr> {
        Some(self.ip)
    }
}

/// Answers instantly: geo from `x-geo-country`, a desktop, and an Edge Cookie that keeps the
/// current value or mints a fixed one.
struct Instant {
    geo: ProviderSpec,
    device: ProviderSpec,
    ec: ProviderSpec,
}

impl ProviderHost for Instant {
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
        Some(match kind {
            ProviderKind::Geo => &self.geo,
            ProviderKind::Device => &self.device,
            ProviderKind::EdgeCookie => &self.ec,
        })
    }
    fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure> {
        Ok(Location {
            country: evidence.headers.first().map(|(_, v)| v.clone()),
            region: None,
        })
    }
    fn classify(&mut self, _: &Evidence) -> Result<Classification, ProviderFailure> {
        Ok(Classification {
            class: DeviceClass::Desktop,
            bot_name: None,
        })
    }
    fn generate_edge_cookie(
        &mut self,
        _: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure> {
        Ok(EcOutput {
            id: Some(current.unwrap_or("0123456789abcdef.AbCdEf").to_owned()),
            headers: Vec::new(),
        })
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let policy = Policy::embedded().expect("embedded policy");
    let pipeline = PagePipeline::new(policy, PipelineSettings::new("US")).expect("settings");
    let spec = |required: &[&str], reads: &[Read]| ProviderSpec {
        required: policy.set_from_names(required).expect("names"),
        reads: Reads::from_declared(reads),
    };
    let mut providers = Instant {
        geo: spec(&[], &[Read::Header("x-geo-country".into())]),
        device: spec(&[], &[Read::UserAgent]),
        ec: spec(&["store-on-device"], &[Read::ClientIp, Read::UserAgent]),
    };
    let view = |country: &str, cookie: &str| View {
        headers: vec![
            ("user-agent", UA.to_owned()),
            ("x-geo-country", country.to_owned()),
            ("cookie", cookie.to_owned()),
            ("accept-language", "en-US,en;q=0.9".to_owned()),
        ],
        ip: "203.0.113.7".parse().expect("ip"),
    };
    let cases = [
        ("us_mint", view("US", "theme=dark")),
        (
            "us_keep",
            view("US", "theme=dark; ts-ec=0123456789abcdef.AbCdEf"),
        ),
        (
            "de_no_consent",
            view("DE", "theme=dark; ts-ec=0123456789abcdef.AbCdEf"),
        ),
    ];
    let clock = FixedClock(1_700_000_000);
    let consent = ConsentConfig::default();
    let mut g = c.benchmark_group("page_pipeline");
    for (name, view) in &cases {
        g.bench_function(format!("{name}/pipeline_run_and_edits"), |b| {
            b.iter(|| {
                let outcome = pipeline.run(black_box(view), &clock, &mut providers);
                let mut request: Vec<(String, Vec<u8>)> =
                    vec![("cookie".into(), view.headers[2].1.as_bytes().to_vec())];
                let mut response: Vec<(String, Vec<u8>)> = vec![
                    ("content-type".into(), b"text/html".to_vec()),
                    ("cache-control".into(), b"public, max-age=60".to_vec()),
                ];
                pipeline.edit_forwarded_request(&outcome.forward, &mut request);
                pipeline.edit_response(&outcome.response, &mut response);
                (outcome, request, response)
            })
        });
        // What the old host already did per page request, for the ratio.
        g.bench_function(format!("{name}/consent_and_policy_only"), |b| {
            b.iter(|| {
                let cookie = view.header_values("cookie");
                let ctx = ConsentContext::build(
                    &consent,
                    &ConsentInput {
                        cookie_header: cookie.first().copied(),
                        headers: &[("user-agent", UA)],
                        jurisdiction: JurisdictionFacts::default(),
                        now_unix_seconds: 1_700_000_000,
                    },
                );
                let country = view.header_values("x-geo-country");
                policy.resolve_permissions(
                    country.first().copied(),
                    None,
                    pipeline.default_country(),
                    &ctx.signals(),
                )
            })
        });
    }
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_pipeline
}
criterion_main!(benches);
