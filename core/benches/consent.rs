//! Consent decoding benchmarks, each measured side by side with the `iab_gpp` crate decoding the
//! same string. Bench strings are built by the small encoder below (its source is the fixture).
//!
//! Run: `cargo bench -p gatehouse-core --bench consent`.
//!
//! The restrictions case has no peer measurement: `iab_gpp` 0.1.2 reads publisher restriction
//! entries as `MaxVendorId + IsRangeEncoding` instead of the TCF `NumEntries` range list, so it
//! rejects standard strings with restrictions (ours are checked against published vectors).

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::consent::{
    ConsentConfig, ConsentContext, ConsentInput, DEFAULT_MAX_STRING_LENGTH, GppString,
    JurisdictionFacts, TcString,
};

/// Minimal MSB-first bit writer with base64url output.
#[derive(Default)]
struct Bits(Vec<bool>);

impl Bits {
    fn put(&mut self, value: u64, n: u32) -> &mut Self {
        for i in (0..n).rev() {
            self.0.push(value >> i & 1 == 1);
        }
        self
    }

    fn letters(&mut self, code: &str) -> &mut Self {
        for b in code.bytes() {
            self.put(u64::from(b - b'A'), 6);
        }
        self
    }

    fn base64url(&self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = self.0.clone();
        // Pad to whole bytes then to whole characters, as the IAB encoders do.
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        while !bits.len().is_multiple_of(6) {
            bits.push(false);
        }
        bits.chunks(6)
            .map(|c| {
                let v = c.iter().fold(0usize, |acc, &b| acc << 1 | usize::from(b));
                char::from(ALPHABET[v])
            })
            .collect()
    }
}

enum Vendors {
    /// Bitfield up to `max`, every third vendor set.
    Bitfield(u16),
    /// Range encoding of `entries` two-vendor ranges spread up to ~`4 * entries`.
    Range(u16),
}

fn vendor_section(w: &mut Bits, vendors: &Vendors) {
    match *vendors {
        Vendors::Bitfield(max) => {
            w.put(u64::from(max), 16).put(0, 1);
            for id in 1..=max {
                w.put(u64::from(id % 3 == 0), 1);
            }
        }
        Vendors::Range(entries) => {
            w.put(u64::from(entries) * 4, 16).put(1, 1);
            w.put(u64::from(entries), 12);
            for i in 0..entries {
                let start = u64::from(i) * 4 + 1;
                w.put(1, 1).put(start, 16).put(start + 1, 16);
            }
        }
    }
}

/// A TC string (core segment only) with the given vendor encoding and `restrictions` publisher
/// restrictions of 20 single-vendor entries each.
fn tc_string(vendors: &Vendors, restrictions: u64) -> String {
    let mut w = Bits::default();
    let ds = 17_000_000_000u64; // 2023-11-14
    w.put(2, 6)
        .put(ds, 36)
        .put(ds, 36)
        .put(10, 12)
        .put(1, 12)
        .put(1, 6);
    w.letters("EN").put(300, 12).put(4, 6).put(0, 1).put(0, 1);
    w.put(0b1, 12)
        .put(0xFF_FF00, 24)
        .put(0x7F_0000, 24)
        .put(0, 1)
        .letters("DE");
    vendor_section(&mut w, vendors);
    vendor_section(&mut w, vendors);
    w.put(restrictions, 12);
    for r in 0..restrictions {
        w.put(r % 10 + 1, 6).put(r % 3, 2).put(20, 12);
        for v in 0..20 {
            w.put(0, 1).put(r * 20 + v + 1, 16);
        }
    }
    w.base64url()
}

/// A usnat v2 core segment with sale/sharing/targeted-ads opt-outs set, plus a GPC sub-section.
fn usnat_v2() -> String {
    let mut w = Bits::default();
    w.put(2, 6);
    for _ in 0..6 {
        w.put(1, 2); // notices provided
    }
    for _ in 0..3 {
        w.put(1, 2); // opted out
    }
    for _ in 0..(16 + 3 + 1) {
        w.put(2, 2);
    }
    w.put(1, 2).put(1, 2).put(2, 2);
    let mut gpc = Bits::default();
    gpc.put(1, 2).put(1, 1);
    format!("{}.{}", w.base64url(), gpc.base64url())
}

/// A GPP header listing `ids` (single Fibonacci-coded entries).
fn gpp_header(ids: &[u16]) -> String {
    fn fib(w: &mut Bits, n: u16) {
        let mut f = vec![1u16, 2];
        while f[f.len() - 1] <= n {
            let next = f[f.len() - 1] + f[f.len() - 2];
            f.push(next);
        }
        let mut digits = vec![false; f.len()];
        let mut rest = n;
        for (i, &fi) in f.iter().enumerate().rev() {
            if fi <= rest {
                digits[i] = true;
                rest -= fi;
            }
        }
        while digits.last() == Some(&false) {
            digits.pop();
        }
        for d in digits {
            w.put(u64::from(d), 1);
        }
        w.put(1, 1);
    }
    let mut w = Bits::default();
    w.put(3, 6).put(1, 6).put(ids.len() as u64, 12);
    let mut last = 0;
    for &id in ids {
        w.put(0, 1);
        fib(&mut w, id - last);
        last = id;
    }
    w.base64url()
}

fn bench_tcf(c: &mut Criterion) {
    let cases = [
        ("tcf_bitfield_10", tc_string(&Vendors::Bitfield(10), 0)),
        ("tcf_bitfield_100", tc_string(&Vendors::Bitfield(100), 0)),
        ("tcf_bitfield_500", tc_string(&Vendors::Bitfield(500), 0)),
        ("tcf_range_500", tc_string(&Vendors::Range(250), 0)),
        (
            "tcf_bitfield_500_restrictions",
            tc_string(&Vendors::Bitfield(500), 5),
        ),
    ];
    for (name, s) in &cases {
        assert!(
            TcString::decode(s, DEFAULT_MAX_STRING_LENGTH).is_ok(),
            "{name}"
        );
        let peer_ok = iab_gpp::sections::tcfeuv2::TcfEuV2::from_str(s).is_ok();
        let mut g = c.benchmark_group(*name);
        g.bench_function("gatehouse", |b| {
            b.iter(|| TcString::decode(black_box(s), DEFAULT_MAX_STRING_LENGTH))
        });
        if peer_ok {
            g.bench_function("iab_gpp", |b| {
                b.iter(|| iab_gpp::sections::tcfeuv2::TcfEuV2::from_str(black_box(s)))
            });
        }
        g.finish();
    }
}

fn bench_gpp(c: &mut Criterion) {
    let usnat = format!("{}~{}", gpp_header(&[7]), usnat_v2());
    let eu_usp = format!(
        "{}~{}~1YNN",
        gpp_header(&[2, 6]),
        tc_string(&Vendors::Bitfield(500), 0)
    );
    for (name, s) in [("gpp_usnat", &usnat), ("gpp_tcfeuv2_uspv1", &eu_usp)] {
        assert!(
            GppString::decode(s, DEFAULT_MAX_STRING_LENGTH).is_ok(),
            "{name}"
        );
        let peer = iab_gpp::v1::GPPString::from_str(s).expect("peer parses");
        assert!(
            peer.decode_all_sections().iter().all(Result::is_ok),
            "{name} peer"
        );
        let mut g = c.benchmark_group(name);
        g.bench_function("gatehouse", |b| {
            b.iter(|| GppString::decode(black_box(s), DEFAULT_MAX_STRING_LENGTH))
        });
        g.bench_function("iab_gpp", |b| {
            b.iter(|| {
                iab_gpp::v1::GPPString::from_str(black_box(s)).map(|g| g.decode_all_sections())
            })
        });
        g.finish();
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let cfg = ConsentConfig::default();
    let cookie = format!(
        "session=abc; euconsent-v2={}; __gpp={}~{}~1YNN~{}; __gpp_sid=2,6,7; us_privacy=1YNN",
        tc_string(&Vendors::Bitfield(500), 0),
        gpp_header(&[2, 6, 7]),
        tc_string(&Vendors::Bitfield(500), 0),
        usnat_v2()
    );
    let headers = [("sec-gpc", "1")];
    let mut g = c.benchmark_group("pipeline_full");
    g.bench_function("gatehouse", |b| {
        b.iter(|| {
            let ctx = ConsentContext::build(
                &cfg,
                &ConsentInput {
                    cookie_header: Some(black_box(&cookie)),
                    headers: &headers,
                    jurisdiction: JurisdictionFacts {
                        gdpr_applies: true,
                        us_privacy_applies: true,
                    },
                    now_unix_seconds: 1_700_000_000,
                },
            );
            (ctx.signals(), ctx.fingerprint())
        })
    });
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
    targets = bench_tcf, bench_gpp, bench_pipeline
}
criterion_main!(benches);
