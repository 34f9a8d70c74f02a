//! `[[partners]]`: validation naming the key, constant-time authentication, key hashing, and
//! `auction.bidders[].partner`.

use gatehouse_core::auction::{Auction, AuctionConfig, AuctionConfigError, ConsentForwarding};
use gatehouse_core::consent::ConsentConfig;
use gatehouse_core::pipeline::DEFAULT_COOKIE_NAME;
use gatehouse_core::sync::{
    ApiKeyError, PartnerConfig, PartnerConfigError, Partners, hash_api_key,
};

use crate::pipeline::support::policy;

pub const KEY_A: &str = "partner-a-secret-key-0123456789abcdef";
pub const KEY_B: &str = "partner-b-secret-key-0123456789abcdef";

pub fn partner(id: &str, domain: &str, key: &str) -> PartnerConfig {
    PartnerConfig {
        id: id.to_owned(),
        name: format!("Partner {id}"),
        source_domain: domain.to_owned(),
        api_key_sha256: hash_api_key(key.as_bytes()).expect("long key"),
        batch_rate_limit: 60,
        bidstream_enabled: false,
        consent_forwarding: ConsentForwarding::Both,
    }
}

pub fn two_partners() -> Partners {
    Partners::new(&[
        partner("ssp-a", "ssp-a.example", KEY_A),
        partner("dsp-b", "dsp-b.example", KEY_B),
    ])
    .expect("valid")
}

fn refused(configs: &[PartnerConfig]) -> String {
    Partners::new(configs).expect_err("refused").to_string()
}

#[test]
fn partners_parse_from_config_with_defaults_and_refuse_unknown_keys() {
    let parsed: PartnerConfig = serde_json::from_str(&format!(
        r#"{{"id": "ssp-a", "name": "SSP A", "source_domain": "SSP-A.example",
            "api_key_sha256": "{}", "batch_rate_limit": 10}}"#,
        hash_api_key(KEY_A.as_bytes()).expect("hash").to_uppercase()
    ))
    .expect("valid");
    assert!(!parsed.bidstream_enabled);
    assert_eq!(parsed.consent_forwarding, ConsentForwarding::Both);
    let partners = Partners::new(&[parsed]).expect("valid");
    let p = partners.get("ssp-a").expect("configured");
    assert_eq!(p.source_domain, "ssp-a.example");
    assert_eq!(p.batch_rate_limit, 10);

    let e = serde_json::from_str::<PartnerConfig>(
        r#"{"id": "a", "name": "A", "source_domain": "a.example", "api_key_sha256": "00",
            "batch_rate_limit": 1, "api_key": "plaintext"}"#,
    )
    .expect_err("refused");
    assert!(e.to_string().contains("unknown field `api_key`"), "{e}");
}

#[test]
fn duplicate_partner_ids_domains_and_key_hashes_fail_naming_the_key() {
    let e = refused(&[
        partner("a", "a.example", KEY_A),
        partner("a", "b.example", KEY_B),
    ]);
    assert_eq!(
        e,
        "config key `partners[1].id`: the id is already used by partner `a`"
    );
    let e = refused(&[
        partner("a", "a.example", KEY_A),
        partner("b", "A.EXAMPLE", KEY_B),
    ]);
    assert_eq!(
        e,
        "config key `partners[1].source_domain`: the source domain is already used by partner `a`"
    );
    let mut upper = partner("b", "b.example", KEY_A);
    upper.api_key_sha256 = upper.api_key_sha256.to_uppercase();
    let e = refused(&[partner("a", "a.example", KEY_A), upper]);
    assert_eq!(
        e,
        "config key `partners[1].api_key_sha256`: the api key hash is already used by partner `a`"
    );
}

#[test]
fn invalid_partner_fields_fail_naming_the_key() {
    let mut p = partner("a", "a.example", KEY_A);
    p.batch_rate_limit = 0;
    assert_eq!(
        refused(&[p]),
        "config key `partners[0].batch_rate_limit`: must be more than 0 requests per minute"
    );
    let mut p = partner("a", "a.example", KEY_A);
    p.api_key_sha256 = KEY_A.to_owned();
    assert!(
        refused(&[p]).starts_with("config key `partners[0].api_key_sha256`: not a hex sha-256"),
    );
    let mut p = partner("a", "a.example", KEY_A);
    p.api_key_sha256.replace_range(0..1, "g");
    assert!(refused(&[p]).starts_with("config key `partners[0].api_key_sha256`"));
    let p = partner("Not An Id", "a.example", KEY_A);
    assert!(refused(&[p]).starts_with("config key `partners[0].id`"));
    let p = partner("a", "https://a.example/", KEY_A);
    assert!(refused(&[p]).starts_with("config key `partners[0].source_domain`"));
    let mut p = partner("a", "a.example", KEY_A);
    p.name = String::new();
    assert!(refused(&[p]).starts_with("config key `partners[0].name`"));
}

#[test]
fn a_config_error_never_contains_the_key_hash() {
    let mut p = partner("a", "a.example", KEY_A);
    p.api_key_sha256.push('0');
    let e = refused(&[p.clone()]);
    assert!(!e.contains(&p.api_key_sha256[..60]), "{e}");
}

#[test]
fn authentication_finds_the_partner_of_the_key_and_nobody_for_another_key() {
    let partners = two_partners();
    assert_eq!(
        partners
            .authenticate(KEY_A.as_bytes())
            .map(|p| p.id.as_str()),
        Some("ssp-a")
    );
    assert_eq!(
        partners
            .authenticate(KEY_B.as_bytes())
            .map(|p| p.id.as_str()),
        Some("dsp-b")
    );
    assert!(partners.authenticate(b"").is_none());
    assert!(partners.authenticate(&KEY_A.as_bytes()[1..]).is_none());
    // The hash itself is not a key.
    let hash = hash_api_key(KEY_A.as_bytes()).expect("hash");
    assert!(partners.authenticate(hash.as_bytes()).is_none());
}

#[test]
fn hash_key_prints_lowercase_sha256_and_refuses_short_keys() {
    // SHA-256 of 32 ASCII `a`s.
    assert_eq!(
        hash_api_key(&[b'a'; 32]).expect("long enough"),
        "3ba3f5f43b92602683c19aee62a20342b084dd5971ddd33808d81a328879a547"
    );
    assert_eq!(
        hash_api_key(&[b'a'; 31]),
        Err(ApiKeyError::TooShort { len: 31 })
    );
    assert_eq!(
        ApiKeyError::TooShort { len: 31 }.to_string(),
        "api key is 31 bytes; at least 32 are required"
    );
}

fn auction_config(bidders: &str) -> AuctionConfig {
    serde_json::from_str(&format!(r#"{{"bidders": {bidders}}}"#)).expect("valid config")
}

fn linked(bidders: &str, partners: &Partners) -> Result<Auction, AuctionConfigError> {
    Auction::with_partners(
        policy(),
        auction_config(bidders),
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
        partners,
    )
}

#[test]
fn a_bidder_naming_a_partner_takes_the_partners_auction_flags() {
    let mut a = partner("ssp-a", "ssp-a.example", KEY_A);
    a.bidstream_enabled = true;
    a.consent_forwarding = ConsentForwarding::OpenrtbOnly;
    let partners = Partners::new(&[a]).expect("valid");
    let auction = linked(
        r#"[{"name": "pbs", "url": "https://pbs.example/a", "partner": "ssp-a"},
            {"name": "other", "url": "https://other.example/a"}]"#,
        &partners,
    )
    .expect("valid");
    let bidders = &auction.config().bidders;
    assert!(bidders[0].bidstream_enabled);
    assert_eq!(
        bidders[0].consent_forwarding,
        ConsentForwarding::OpenrtbOnly
    );
    assert!(!bidders[1].bidstream_enabled);
    assert_eq!(bidders[1].consent_forwarding, ConsentForwarding::Both);
}

#[test]
fn a_bidder_naming_an_unknown_partner_fails_naming_the_key() {
    let e = linked(
        r#"[{"name": "pbs", "url": "https://pbs.example/a", "partner": "nobody"}]"#,
        &two_partners(),
    )
    .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "config key `auction.bidders[0].partner`: no partner has the id `nobody`"
    );
    // `Auction::new` knows no partners.
    let e = Auction::new(
        policy(),
        auction_config(r#"[{"name": "pbs", "url": "https://pbs.example/a", "partner": "ssp-a"}]"#),
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
    )
    .expect_err("refused");
    assert!(
        matches!(e, AuctionConfigError::UnknownPartner { .. }),
        "{e}"
    );
}

#[test]
fn inline_auction_flags_on_a_bidder_naming_a_partner_are_a_config_error() {
    for flag in [
        r#""bidstream_enabled": false"#,
        r#""consent_forwarding": "both""#,
    ] {
        let e = serde_json::from_str::<AuctionConfig>(&format!(
            r#"{{"bidders": [{{"name": "pbs", "url": "https://pbs.example/a", "partner": "ssp-a", {flag}}}]}}"#
        ))
        .expect_err("refused");
        let field = flag.split('"').nth(1).expect("field");
        assert!(
            e.to_string().contains(&format!(
                "names partner `ssp-a`, whose `{field}` applies: remove `auction.bidders[].{field}`"
            )),
            "{e}"
        );
    }
}

#[test]
fn partner_config_errors_are_typed() {
    let e = Partners::new(&[
        partner("a", "a.example", KEY_A),
        partner("a", "b.example", KEY_B),
    ])
    .expect_err("refused");
    assert!(matches!(
        e,
        PartnerConfigError::Duplicate { what: "the id", .. }
    ));
}
