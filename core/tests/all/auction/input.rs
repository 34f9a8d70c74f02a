//! Validation of the page's auction request: every refusal names the field.

use gatehouse_core::auction::{AuctionInput, AuctionInputError, MAX_INPUT_BYTES};
use serde_json::{Value, json};

use super::support::input_json;

fn field_of(value: Value) -> String {
    AuctionInput::from_value(&value)
        .expect_err("refused")
        .field()
        .to_owned()
}

fn with(mutate: impl FnOnce(&mut Value)) -> Value {
    let mut v = input_json();
    mutate(&mut v);
    v
}

#[test]
fn a_valid_request_is_accepted_with_its_domain_and_scheme() {
    let input = AuctionInput::from_value(&input_json()).expect("valid");
    assert_eq!(input.domain, "news.example");
    assert!(input.secure);
    assert_eq!(input.ad_units.len(), 2);
    assert_eq!(input.ad_units[1].floor, Some(0.5));
    assert_eq!(input.eids.len(), 2);
}

#[test]
fn not_json_and_oversized_bodies_name_the_body() {
    let e = AuctionInput::parse(b"{not json").expect_err("refused");
    assert!(matches!(e, AuctionInputError::NotJson { .. }));
    assert_eq!(e.field(), "body");
    assert_eq!(e.label(), "not-json");
    let big = vec![b' '; MAX_INPUT_BYTES + 1];
    assert_eq!(
        AuctionInput::parse(&big).expect_err("refused"),
        AuctionInputError::TooLarge {
            len: MAX_INPUT_BYTES + 1
        }
    );
    assert_eq!(field_of(json!([1, 2])), "body");
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        field_of(with(|v| drop(
            v.as_object_mut().map(|o| o.remove("page_url"))
        ))),
        "page_url"
    );
    assert_eq!(
        field_of(with(|v| drop(
            v.as_object_mut().map(|o| o.remove("ad_units"))
        ))),
        "ad_units"
    );
    assert_eq!(
        field_of(with(|v| drop(
            v["ad_units"][1].as_object_mut().map(|o| o.remove("sizes"))
        ))),
        "ad_units[1].sizes"
    );
    assert_eq!(
        field_of(with(|v| drop(
            v["ad_units"][0]
                .as_object_mut()
                .map(|o| o.remove("media_type"))
        ))),
        "ad_units[0].media_type"
    );
}

#[test]
fn unknown_fields_are_refused_by_path() {
    assert_eq!(field_of(with(|v| v["flor"] = json!(1))), "flor");
    assert_eq!(
        field_of(with(|v| v["ad_units"][1]["flor"] = json!(1))),
        "ad_units[1].flor"
    );
    let e = AuctionInput::from_value(&with(|v| v["ad_units"][1]["flor"] = json!(1)))
        .expect_err("refused");
    assert_eq!(e.to_string(), "`ad_units[1].flor` is not a known field");
    assert_eq!(e.label(), "unknown-field");
}

#[test]
fn page_url_must_be_an_absolute_http_url_with_a_host_and_no_credentials() {
    for bad in [
        "/relative",
        "ftp://news.example/",
        "javascript:alert(1)",
        "https://",
        "https://user:pw@news.example/",
        "https://news example/",
        "https://news.example:99999/",
        "https://[::1/",
    ] {
        assert_eq!(
            field_of(with(|v| v["page_url"] = json!(bad))),
            "page_url",
            "{bad}"
        );
    }
    let ok = AuctionInput::from_value(&with(|v| {
        v["page_url"] = json!("HTTP://News.Example:8080/x")
    }))
    .expect("valid");
    assert_eq!((ok.domain.as_str(), ok.secure), ("news.example", false));
    let v6 = AuctionInput::from_value(&with(|v| v["page_url"] = json!("https://[2001:DB8::1]/")))
        .expect("valid");
    assert_eq!(v6.domain, "[2001:db8::1]");
}

#[test]
fn sizes_must_be_positive_integer_pairs() {
    for (bad, field) in [
        (json!([[300]]), "ad_units[0].sizes[0]"),
        (json!([[300, 0]]), "ad_units[0].sizes[0]"),
        (json!([[300.5, 250]]), "ad_units[0].sizes[0]"),
        (json!([[300, 250], [-1, 2]]), "ad_units[0].sizes[1]"),
        (json!([]), "ad_units[0].sizes"),
        (json!("300x250"), "ad_units[0].sizes"),
    ] {
        assert_eq!(
            field_of(with(|v| v["ad_units"][0]["sizes"] = bad.clone())),
            field,
            "{bad}"
        );
    }
}

#[test]
fn floor_must_be_a_non_negative_number() {
    for bad in [json!(-0.01), json!("1.0"), json!(1e9)] {
        assert_eq!(
            field_of(with(|v| v["ad_units"][1]["floor"] = bad.clone())),
            "ad_units[1].floor"
        );
    }
}

#[test]
fn ad_unit_codes_must_be_unique_and_printable() {
    assert_eq!(
        field_of(with(|v| v["ad_units"][1]["code"] = json!("top"))),
        "ad_units[1].code"
    );
    assert_eq!(
        field_of(with(|v| v["ad_units"][0]["code"] = json!("a b"))),
        "ad_units[0].code"
    );
    assert_eq!(
        field_of(with(|v| v["ad_units"][0]["code"] = json!(""))),
        "ad_units[0].code"
    );
}

#[test]
fn unsupported_media_types_and_empty_ad_units_are_refused() {
    assert_eq!(
        field_of(with(|v| v["ad_units"][0]["media_type"] = json!("video"))),
        "ad_units[0].media_type"
    );
    assert_eq!(field_of(with(|v| v["ad_units"] = json!([]))), "ad_units");
}

#[test]
fn client_eids_are_validated_by_path() {
    assert_eq!(
        field_of(with(|v| v["eids"][0]["uids"] = json!([]))),
        "eids[0].uids"
    );
    assert_eq!(
        field_of(with(|v| v["eids"][1]["uids"][0]["atype"] = json!(7))),
        "eids[1].uids[0].atype"
    );
    assert_eq!(
        field_of(with(|v| v["eids"][0]["uids"][0]["id"] = json!(42))),
        "eids[0].uids[0].id"
    );
    assert_eq!(
        field_of(with(|v| v["eids"][0]["source"] = json!(""))),
        "eids[0].source"
    );
}

#[test]
fn any_truncation_of_a_request_is_refused_with_a_field_or_accepted_never_a_panic() {
    let body = serde_json::to_vec(&input_json()).expect("json");
    for n in 0..body.len() {
        match AuctionInput::parse(&body[..n]) {
            Ok(_) => panic!("a truncated body was accepted at {n}"),
            Err(e) => assert!(!e.field().is_empty()),
        }
    }
    assert!(AuctionInput::parse(&body).is_ok());
}
