//! Per-request cost of running the bundled HMAC Edge Cookie provider: a fresh store + instance and
//! `generate`, against the same HMAC computed natively, measured side by side in one run.
//!
//! Any other component file can be timed the same way (a vendor's provider, the examples in
//! `examples/vendor-*`): set `GATEHOUSE_BENCH_COMPONENT=FILE` and `GATEHOUSE_BENCH_KIND=ec|geo|device`,
//! and its settings as `GATEHOUSE_BENCH_SETTINGS="name=value"` lines (newline-separated, since values
//! may hold commas). The benchmark `external/<kind>/<file name>` then runs one call per iteration
//! (fresh store and instance, as a request does) with evidence built from the provider's declared
//! reads over a fixed browser request. Without `GATEHOUSE_BENCH_COMPONENT` only the HMAC pair runs.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::config::{ComponentSource, SelectedProvider};
use gatehouse::runtime::{Limits, ProviderRuntime};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::{Evidence, ProviderHost, ProviderKind, RequestView};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PASSPHRASE: &str = "bench-passphrase";

fn native_edge_cookie(ip: IpAddr) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(PASSPHRASE.as_bytes()).expect("any key length");
    mac.update(ip.to_string().as_bytes());
    let mut id = hex::encode(mac.finalize().into_bytes());
    id.push('.');
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes: [u8; 12] = rand::random();
    id.extend(
        bytes
            .iter()
            .filter(|b| **b < 248)
            .take(6)
            .map(|b| char::from(ALPHABET[usize::from(b % 62)])),
    );
    id
}

fn bench(c: &mut Criterion) {
    let policy = Policy::embedded().expect("embedded policy");
    let hmac = SelectedProvider {
        name: "hmac".into(),
        key: "ec.providers.hmac".into(),
        source: ComponentSource::Bundled("hmac"),
        settings: vec![("passphrase".into(), PASSPHRASE.into())],
    };
    let limits = Limits {
        // Roomy: the benchmark measures cost; it must not be cut off by a loaded machine.
        call_timeout: Duration::from_secs(1),
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let rt = ProviderRuntime::load(limits, policy, None, None, Some(&hmac)).expect("load hmac");
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    // What the HMAC provider declares it reads: the client address only.
    let evidence = Evidence {
        client_ip: Some(ip),
        ..Evidence::default()
    };

    let mut group = c.benchmark_group("edge_cookie");
    group.bench_function("native_hmac", |b| {
        b.iter(|| native_edge_cookie(std::hint::black_box(ip)))
    });
    group.bench_function("component_instantiate_and_generate", |b| {
        b.iter(|| {
            let mut providers = rt.for_request();
            providers
                .generate_edge_cookie(&evidence, None)
                .expect("generate")
        })
    });
    group.finish();

    if let Some(external) = ExternalBench::from_env() {
        external.run(c, policy);
    }
}

/// A component file named by the environment (see the module docs).
struct ExternalBench {
    path: std::path::PathBuf,
    kind: ProviderKind,
    settings: Vec<(String, String)>,
}

impl ExternalBench {
    /// Reads `GATEHOUSE_BENCH_*`; panics (the bench's only error report) on a malformed value.
    fn from_env() -> Option<Self> {
        let path = std::env::var_os("GATEHOUSE_BENCH_COMPONENT")?;
        let kind = match std::env::var("GATEHOUSE_BENCH_KIND").as_deref() {
            Ok("ec") => ProviderKind::EdgeCookie,
            Ok("geo") => ProviderKind::Geo,
            Ok("device") => ProviderKind::Device,
            other => panic!("`GATEHOUSE_BENCH_KIND` must be ec, geo or device, not {other:?}"),
        };
        let settings = std::env::var("GATEHOUSE_BENCH_SETTINGS")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("setting `{l}` is not `name=value`"));
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        Some(Self {
            path: path.into(),
            kind,
            settings,
        })
    }

    fn run(self, c: &mut Criterion, policy: &Policy) {
        let bytes = std::fs::read(&self.path).expect("read `GATEHOUSE_BENCH_COMPONENT`");
        let section = self.kind.section();
        let selected = SelectedProvider {
            name: "external".into(),
            key: format!("{section}.providers.external"),
            source: ComponentSource::External {
                path: self.path.clone(),
                sha256: gatehouse::runtime::sha256_hex(&bytes),
            },
            settings: self.settings,
        };
        let limits = Limits {
            // Interpreted providers (Python, JavaScript) are slower and larger than ours: the
            // vendor e2e gives them 2 s of CPU too (a publisher raises `runtime.call_cpu_ms`).
            call_cpu: Duration::from_secs(2),
            call_timeout: Duration::from_secs(2),
            memory_bytes: 256 << 20,
            ..Limits::default()
        };
        let pick = |k: ProviderKind| (self.kind == k).then_some(&selected);
        let rt = ProviderRuntime::load(
            limits,
            policy,
            pick(ProviderKind::Geo),
            pick(ProviderKind::Device),
            pick(ProviderKind::EdgeCookie),
        )
        .expect("load `GATEHOUSE_BENCH_COMPONENT`");
        let reads = rt
            .for_request()
            .spec(self.kind)
            .expect("the loaded provider")
            .reads
            .clone();
        let evidence = Evidence::collect(&reads, &BrowserRequest);
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = self.kind;
        let mut group = c.benchmark_group(format!("external/{section}"));
        group.bench_function(file, |b| {
            b.iter(|| {
                let mut providers = rt.for_request();
                match kind {
                    ProviderKind::Geo => providers.locate(&evidence).map(|_| ()),
                    ProviderKind::Device => providers.classify(&evidence).map(|_| ()),
                    ProviderKind::EdgeCookie => {
                        providers.generate_edge_cookie(&evidence, None).map(|_| ())
                    }
                }
                .expect("provider call")
            })
        });
        group.finish();
    }
}

/// The request the external benchmark builds evidence from: a desktop browser at a documentation
/// address, with the User-Agent Client Hints a Chromium sends.
struct BrowserRequest;

impl RequestView for BrowserRequest {
    fn method(&self) -> &str {
        "GET"
    }
    fn path(&self) -> &str {
        "/articles/today"
    }
    fn query(&self) -> Option<&str> {
        Some("ref=home")
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        match name {
            "user-agent" => vec![
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            ],
            "sec-ch-ua-mobile" => vec!["?0"],
            "sec-ch-ua-platform" => vec!["\"Linux\""],
            "accept-language" => vec!["en-US,en;q=0.9"],
            _ => Vec::new(),
        }
    }
    fn client_ip(&self) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
