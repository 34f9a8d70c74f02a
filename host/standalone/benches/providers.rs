//! Per-request cost of running the bundled HMAC Edge Cookie provider: a fresh store + instance and
//! `generate`, against the same HMAC computed natively, measured side by side in one run.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::config::{ComponentSource, SelectedProvider};
use gatehouse::runtime::{Limits, ProviderRuntime};
use gatehouse_core::policy::Policy;
use gatehouse_core::provider::{Evidence, ProviderHost};
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
