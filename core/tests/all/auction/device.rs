//! Device facts: IP truncation without personalised ads, ISO 3166-1 alpha-3 countries.

use std::collections::HashSet;
use std::net::IpAddr;

use gatehouse_core::auction::truncate_ip;
use gatehouse_core::openrtb::{ALPHA2_TO_ALPHA3, alpha3};

use super::support::{auction, body, build, tc_string, to, view};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn ipv4_is_truncated_to_its_24() {
    assert_eq!(truncate_ip(ip("198.51.100.213")), ip("198.51.100.0"));
}

#[test]
fn ipv6_is_truncated_to_its_48() {
    assert_eq!(
        truncate_ip(ip("2001:db8:abcd:12:3456:789a:bcde:f012")),
        ip("2001:db8:abcd::")
    );
}

#[test]
fn ipv4_mapped_ipv6_is_truncated_as_ipv4() {
    assert_eq!(truncate_ip(ip("::ffff:198.51.100.213")), ip("198.51.100.0"));
}

#[test]
fn ipv6_client_goes_to_device_ipv6_truncated_without_personalised_ads() {
    let mut v = view(&[("euconsent-v2", &tc_string(&[1, 2], &[]))], &[]);
    v.client_ip = Some(ip("2001:db8:abcd:12::1"));
    let requests = build(&auction(), &v, Some("DE"), None);
    let b = body(to(&requests, "alpha"));
    assert_eq!(b["device"]["ipv6"], "2001:db8:abcd::");
    assert!(b["device"].get("ip").is_none());
}

#[test]
fn full_ip_with_personalised_ads() {
    let mut v = view(&[], &[]);
    v.client_ip = Some(ip("2001:db8:abcd:12::1"));
    let requests = build(&auction(), &v, Some("US"), None);
    assert_eq!(
        body(to(&requests, "alpha"))["device"]["ipv6"],
        "2001:db8:abcd:12::1"
    );
}

#[test]
fn alpha3_table_is_complete_sorted_and_one_to_one() {
    assert_eq!(ALPHA2_TO_ALPHA3.len(), 249);
    assert!(ALPHA2_TO_ALPHA3.windows(2).all(|w| w[0].0 < w[1].0));
    let threes: HashSet<_> = ALPHA2_TO_ALPHA3.iter().map(|(_, a3)| a3).collect();
    assert_eq!(threes.len(), 249);
    for (a2, a3) in ALPHA2_TO_ALPHA3 {
        assert_eq!(alpha3(a2), Some(*a3));
    }
}

#[test]
fn alpha3_maps_known_codes_in_any_case_and_refuses_the_rest() {
    assert_eq!(alpha3("FR"), Some("FRA"));
    assert_eq!(alpha3("de"), Some("DEU"));
    assert_eq!(alpha3("GB"), Some("GBR"));
    assert_eq!(alpha3("Ax"), Some("ALA"));
    assert_eq!(alpha3("ZW"), Some("ZWE"));
    for bad in ["UK", "EU", "XK", "", "F", "FRA", "é1"] {
        assert_eq!(alpha3(bad), None, "{bad}");
    }
}
