//! Robustness on the stable toolchain: random, truncated and mutated inputs through every decoder
//! and the whole pipeline. Nothing may panic; iteration counts are bounded (no timing asserts).
//! The `cargo fuzz` targets in `fuzz/` explore the same surface with coverage guidance.

use gatehouse_core::consent::{
    AdditionalConsent, ConsentConfig, ConsentContext, GppString, JurisdictionFacts, RawSignals,
    SignalKind, TcString, UsPrivacy, decode_to_json,
};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~=,12YN";

/// Published vectors (sources cited in `consent.rs`) used as mutation seeds.
const SEEDS: &[&str] = &[
    "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA",
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA.YAAAAAAAAXA",
    "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA",
    "COxPe2TOxPe2TALABAENAPCgAAAAAAAAAAAAAFAAAAoAAA4IACACAIABgACAFA4ADACAAIygAGADwAQBIAIAIB0AEAEBSACACAA",
    "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA.IBAgAAAgAIAwgAgAAAAEAAAACA.QAagAQAgAIAwgA.cAAAAAAAITg=",
    "DBABLA~BVVVVVVVVWA.YA",
    "DBABLA~CAAAAAAAAAWA.Q",
    "DBABBg~BVqqqqpY.YA",
    "DBACNY~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN",
    "DBABjw~BPXuQIAPXuQIAAfKABENB-CgAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1YNN",
    "1YNN",
    "2~1.35.41.101~dv.9.21.81",
];

fn exercise(s: &str) {
    let max = 4096;
    let _ = TcString::decode(s, max).map(|t| t.to_json());
    let _ = GppString::decode(s, max).map(|g| g.to_json());
    let _ = s.parse::<UsPrivacy>();
    let _ = AdditionalConsent::decode(s, max);
    let _ = decode_to_json(s, None);
    for kind in [
        SignalKind::Tcf,
        SignalKind::Gpp,
        SignalKind::Usp,
        SignalKind::Ac,
    ] {
        let _ = decode_to_json(s, Some(kind));
    }
}

fn pipeline(r: RawSignals, rng: &mut Rng) {
    let config = ConsentConfig::default();
    let facts = JurisdictionFacts {
        gdpr_applies: rng.next() & 1 == 1,
        us_privacy_applies: rng.next() & 1 == 1,
    };
    let ctx = ConsentContext::from_raw(&config, r, facts, rng.next() % 3_000_000_000);
    let _ = ctx.signals();
    let _ = ctx.is_explicit_withdrawal();
    let _ = ctx.fingerprint();
    let _ = ctx.tcf();
}

#[test]
fn truncations_of_published_vectors_never_panic() {
    for seed in SEEDS {
        for end in 0..=seed.len() {
            exercise(&seed[..end]);
        }
    }
}

#[test]
fn mutations_and_random_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4_000 {
        let seed = SEEDS[rng.below(SEEDS.len())];
        let mut bytes = seed.as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
                1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                _ => {
                    bytes.remove(at);
                    if bytes.is_empty() {
                        bytes.push(b'C');
                    }
                }
            }
        }
        let s = String::from_utf8_lossy(&bytes).into_owned();
        exercise(&s);
        let other = SEEDS[rng.below(SEEDS.len())].to_owned();
        pipeline(
            RawSignals {
                tc_string: Some(s.clone()),
                gpp: Some(other),
                gpp_sid: Some(s.chars().take(8).collect()),
                us_privacy: Some(s.chars().take(4).collect()),
                additional_consent: Some(s),
                gpc: rng.next() & 1 == 1,
                ..RawSignals::default()
            },
            &mut rng,
        );
    }
    for _ in 0..2_000 {
        let len = rng.below(200);
        let s: String = (0..len)
            .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
            .collect();
        exercise(&s);
        exercise(&format!("C{s}"));
        exercise(&format!("DB{s}"));
    }
}

#[test]
fn oversized_inputs_are_refused_quickly() {
    let huge = "C".repeat(1 << 20);
    exercise(&huge);
    let mut many_sections = String::from("DBAB");
    many_sections.push_str(&"~1YNN".repeat(10_000));
    exercise(&many_sections);
}
