//! `[auction]` validation: every error names the key.

use gatehouse_core::auction::{Auction, AuctionConfig, AuctionConfigError};
use gatehouse_core::consent::ConsentConfig;
use gatehouse_core::pipeline::DEFAULT_COOKIE_NAME;

use super::support::{config, policy};

fn refused(config: AuctionConfig) -> String {
    Auction::new(
        policy(),
        config,
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
    )
    .expect_err("refused")
    .to_string()
}

fn with(mutate: impl FnOnce(&mut AuctionConfig)) -> AuctionConfig {
    let mut c = config();
    mutate(&mut c);
    c
}

#[test]
fn the_example_config_is_accepted_from_toml_with_defaults() {
    let parsed: AuctionConfig = toml_like(
        r#"{"tmax_ms": 800, "bidders": [{"name": "pbs", "url": "https://pbs.example/openrtb2/auction"}]}"#,
    );
    let auction = Auction::new(
        policy(),
        parsed,
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
    )
    .expect("valid");
    let bidder = &auction.config().bidders[0];
    assert!(!bidder.bidstream_enabled);
    assert_eq!(
        bidder.consent_forwarding,
        gatehouse_core::auction::ConsentForwarding::Both
    );
    assert_eq!(auction.config().currency, "USD");
}

/// The config deserialises with serde like the host's TOML; JSON keeps the test dependency-free.
fn toml_like(json: &str) -> AuctionConfig {
    serde_json::from_str(json).expect("valid config")
}

#[test]
fn unknown_keys_are_refused() {
    let e = serde_json::from_str::<AuctionConfig>(
        r#"{"bidders": [{"name": "a", "url": "https://a.example", "bidstream": true}]}"#,
    )
    .expect_err("refused");
    assert!(e.to_string().contains("unknown field `bidstream`"), "{e}");
    let e = serde_json::from_str::<AuctionConfig>(r#"{"consent_forwarding": "both"}"#)
        .expect_err("refused");
    assert!(e.to_string().contains("unknown field"), "{e}");
    let e = serde_json::from_str::<AuctionConfig>(
        r#"{"bidders": [{"name": "a", "url": "https://a.example", "consent_forwarding": "body"}]}"#,
    )
    .expect_err("refused");
    assert!(e.to_string().contains("openrtb_only"), "{e}");
}

#[test]
fn errors_name_the_key() {
    assert_eq!(
        refused(with(|c| c.bidders.clear())),
        "config key `auction.bidders`: 0 bidders configured, expected 1 to 32"
    );
    assert_eq!(
        refused(with(|c| c.currency = "usd".into())),
        "config key `auction.currency`: `usd` is not an iso 4217 code"
    );
    assert_eq!(
        refused(with(|c| c.tmax_ms = 0)),
        "config key `auction.tmax_ms`: `0` is out of range (1 to 10000)"
    );
    assert_eq!(
        refused(with(|c| c.bidders[2].timeout_ms = Some(501))),
        "config key `auction.bidders[2].timeout_ms`: `501` is out of range (1 to 500)"
    );
    assert_eq!(
        refused(with(|c| c.bidders[1].url = "ftp://x".into())),
        "config key `auction.bidders[1].url`: `ftp://x` is not an absolute http or https url"
    );
    assert_eq!(
        refused(with(|c| c.bidders[1].name = "alpha".into())),
        "config key `auction.bidders[1].name`: bidder `alpha` is configured twice"
    );
    assert!(
        refused(with(|c| c.bidders[0].name = "Has Space".into()))
            .starts_with("config key `auction.bidders[0].name`")
    );
    assert_eq!(
        refused(with(|c| c.allowed_eid_sources = vec!["not a domain".into()])),
        "config key `auction.allowed_eid_sources[0]`: `not a domain` is not a domain"
    );
}

#[test]
fn the_edge_cookie_and_consent_cookies_cannot_be_allowlisted_for_forwarding() {
    assert_eq!(
        refused(with(|c| c.bidders[0].forward_cookies = vec!["ts-ec".into()])),
        "config key `auction.bidders[0].forward_cookies[0]`: cookie `ts-ec` is the edge cookie, which reaches bidders only as a permitted eid"
    );
    assert_eq!(
        refused(with(
            |c| c.bidders[0].forward_cookies = vec!["ok".into(), "euconsent-v2".into()]
        )),
        "config key `auction.bidders[0].forward_cookies[1]`: cookie `euconsent-v2` is a consent cookie, forwarded according to `consent_forwarding`"
    );
}

#[test]
fn a_policy_without_the_identity_permissions_is_refused() {
    // `store-on-device` exists, `select-personalised-ads` does not.
    let yaml = r"
permissions:
  store-on-device: storage
groups:
  open:
    gdpr-applies: false
    us-privacy-applies: false
    permissions:
      store-on-device: granted
rules:
  US: open
signals:
  tcf:
    purposes:
      1: { permission: store-on-device }
    special-features: {}
  us-opt-outs:
    gpc: [store-on-device]
    us-privacy: []
    gpp-sale: []
    gpp-sharing: []
    gpp-targeted-ads: []
";
    let policy = gatehouse_core::policy::Policy::from_yaml_str(yaml, "small.yaml").expect("valid");
    let e = Auction::new(
        &policy,
        config(),
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
    )
    .expect_err("refused");
    assert_eq!(
        e,
        AuctionConfigError::MissingPermission {
            policy: "small.yaml".into(),
            permission: "select-personalised-ads",
        }
    );
    assert_eq!(
        e.to_string(),
        "policy `small.yaml` does not define the permission `select-personalised-ads`, which gates identifiers in bid requests"
    );
}
