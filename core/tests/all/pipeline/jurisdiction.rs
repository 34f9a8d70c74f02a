//! `ConsentContext::with_jurisdiction`: the pipeline decodes consent once, then attaches the
//! matched group's facts.

use gatehouse_core::consent::{ConsentConfig, ConsentContext, JurisdictionFacts, RawSignals};

const US: JurisdictionFacts = JurisdictionFacts {
    gdpr_applies: false,
    us_privacy_applies: true,
};
const EU: JurisdictionFacts = JurisdictionFacts {
    gdpr_applies: true,
    us_privacy_applies: false,
};

fn context(raw: RawSignals) -> ConsentContext {
    ConsentContext::from_raw(
        &ConsentConfig::default(),
        raw,
        JurisdictionFacts::default(),
        super::support::NOW,
    )
}

#[test]
fn with_jurisdiction_synthesises_us_privacy_from_gpc_only_where_it_applies() {
    let config = ConsentConfig::default();
    let gpc = RawSignals {
        gpc: true,
        ..RawSignals::default()
    };
    let neutral = context(gpc.clone());
    assert!(neutral.us_privacy().is_none());

    let us = neutral.clone().with_jurisdiction(&config, US);
    assert!(us.us_privacy_synthesized());
    assert_eq!(
        us.us_privacy().map(ToString::to_string).as_deref(),
        Some("1YYN")
    );
    assert!(!us.gdpr_applies());
    // The same as building it for the US directly, fingerprint and signals included.
    let direct = ConsentContext::from_raw(&config, gpc, US, super::support::NOW);
    assert_eq!(us.us_privacy(), direct.us_privacy());
    assert_eq!(us.fingerprint(), direct.fingerprint());
    assert_eq!(us.signals(), direct.signals());

    // Moving to the EU undoes the synthesis.
    let eu = us.with_jurisdiction(&config, EU);
    assert!(!eu.us_privacy_synthesized());
    assert!(eu.us_privacy().is_none());
    assert!(eu.gdpr_applies());
}

#[test]
fn with_jurisdiction_never_drops_a_received_us_privacy_string() {
    let config = ConsentConfig::default();
    let raw = RawSignals {
        gpc: true,
        us_privacy: Some("1YNN".into()),
        ..RawSignals::default()
    };
    let eu = context(raw)
        .with_jurisdiction(&config, US)
        .with_jurisdiction(&config, EU);
    assert_eq!(
        eu.us_privacy().map(ToString::to_string).as_deref(),
        Some("1YNN")
    );
    assert!(!eu.us_privacy_synthesized());
}
