//! Consent decisions end to end through `gatehouse serve`: whether the Edge Cookie is minted.
//!
//! Issues 7 ("consent decoding that never loses an opt-out") and 17 ("consent semantics"). Each
//! test starts with a reproduction (the request that minted a cookie before the fix) and checks a
//! control request in the same server, so it fails if the server simply never mints.
//!
//! Consent strings are published vectors (cited where defined); GPP headers that combine
//! published sections are encoded for the test and name the section ids they list.

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec, temp_dir};

/// GDPR-IAB-TCFv2 t/01-parse.t "valid tcf v2 consent string using bitfield": consent to
/// purposes 1, 3, 9 and 10 (so `store-on-device`), last updated 2012.
const TCF_GRANTS_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// iabtcf-java TCStringV2Test::testCanConstructTCModelFromBase64String: purposes 2 and 10 only,
/// last updated 2020, newer than [`TCF_GRANTS_STORAGE`].
const TCF_NEWER_REFUSES_STORAGE: &str = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA";
/// iabgpp-es test/GppModel.test.ts "should decode defaults from all sections": a `tcfcav1`
/// section of version 2, which a TCF CA v1 decoder refuses.
const TCFCAV1_VERSION_2: &str = "CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAA.YAAAAAAAAAA";
/// iabgpp-es test/encoder/section/UsNat.test.ts "should decode BVVVkkkkkpFY.YA": sale, sharing
/// and targeted-advertising opt-outs.
const USNAT_OPTED_OUT: &str = "BVVVkkkkkpFY.YA";
/// iabgpp-es UsNat.test.ts "should decode BVQqAAAACg": no opt-out.
const USNAT_NOT_OPTED_OUT: &str = "BVQqAAAACg";

/// Consent strings of 2012–2022 must not expire for these tests.
const NO_EXPIRY: &str = "\n[consent]\nmax_consent_age_days = 36500\n";

fn start(label: &str, default_country: &str, extra: &str) -> (Origin, Server) {
    let origin = Origin::start();
    let server = Server::start(
        label,
        &config(
            &origin.url(),
            default_country,
            &format!("{}{NO_EXPIRY}{extra}", hmac_ec()),
        ),
    );
    (origin, server)
}

/// Whether a page request with `headers` (plus a browser User-Agent) gets an Edge Cookie.
fn mints(server: &Server, headers: &[(&str, &str)]) -> bool {
    let mut all = vec![("User-Agent", BROWSER_UA)];
    all.extend_from_slice(headers);
    let response = server.get("/", &all);
    assert_eq!(response.status, 200, "{response:?}");
    response.set_cookie("ts-ec").is_some()
}

fn with_cookie(server: &Server, cookie: &str) -> bool {
    mints(server, &[("Cookie", cookie)])
}

/// `[policy] path` to the shipped policy with the US groups' `opt-outs-override-tcf` turned off.
fn tcf_wins_policy() -> String {
    let yaml = gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace(
        "opt-outs-override-tcf: true",
        "opt-outs-override-tcf: false",
    );
    let path = temp_dir("tcf-wins").join("permissions.yaml");
    std::fs::write(&path, yaml).expect("write policy");
    format!("\n[policy]\npath = \"{}\"\n", path.display())
}

// ---- issue 7 ---------------------------------------------------------------------------------

#[test]
fn us_gpp_uspv1_opt_out_beside_a_malformed_section_gets_no_edge_cookie() {
    // Reproduction: `__gpp` lists 5 (a tcfcav1 v2 section the decoder refuses) and 6 (`1YYN`).
    // The whole string was rejected, the opt-out with it, and a cookie was minted.
    let (_origin, server) = start("e2e-uspv1", "US", "");
    assert!(!with_cookie(
        &server,
        &format!("__gpp=DBACDY~{TCFCAV1_VERSION_2}~1YYN")
    ));
    // Control: the same string without the opt-out mints.
    assert!(with_cookie(
        &server,
        &format!("__gpp=DBACDY~{TCFCAV1_VERSION_2}~1YNN")
    ));
}

#[test]
fn us_gpp_usnat_opt_out_beside_a_malformed_section_gets_no_edge_cookie() {
    // Reproduction: `__gpp` lists 5 (malformed tcfcav1) and 7 (usnat, opted out of sale).
    let (_origin, server) = start("e2e-usnat", "US", "");
    assert!(!with_cookie(
        &server,
        &format!("__gpp=DBACDM~{TCFCAV1_VERSION_2}~{USNAT_OPTED_OUT}")
    ));
    assert!(with_cookie(
        &server,
        &format!("__gpp=DBACDM~{TCFCAV1_VERSION_2}~{USNAT_NOT_OPTED_OUT}")
    ));
}

#[test]
fn us_usprivacy_cookie_opt_out_gets_no_edge_cookie() {
    // Reproduction: `usprivacy=1YYN` (the IAB spec's cookie name) was not read.
    let (_origin, server) = start("e2e-usprivacy", "US", "");
    assert!(!with_cookie(&server, "usprivacy=1YYN"));
    assert!(with_cookie(&server, "usprivacy=1YNN"));
}

#[test]
fn us_malformed_usnat_section_fails_closed() {
    // `__gpp` lists 7 with iabgpp-es's garbage usnat body `z`: it could carry an opt-out that
    // cannot be read, so the request counts as opted out.
    let (_origin, server) = start("e2e-fail-closed", "US", "");
    assert!(!with_cookie(&server, "__gpp=DBABL~z"));
    assert!(with_cookie(
        &server,
        &format!("__gpp=DBABL~{USNAT_NOT_OPTED_OUT}")
    ));
}

// ---- issue 17 --------------------------------------------------------------------------------

#[test]
fn gpp_sid_without_tcfeuv2_keeps_the_us_opt_out() {
    // Reproduction (policy where a TCF record outweighs US opt-outs): `__gpp` lists 2 (granting
    // TC string) and 7 (usnat sale opt-out) with `__gpp_sid=7`. The non-applicable tcfeuv2
    // section overrode the opt-out and a cookie was minted.
    let (_origin, server) = start("e2e-sid-7", "US", &tcf_wins_policy());
    let gpp = format!("__gpp=DBACMM~{TCF_GRANTS_STORAGE}~{USNAT_OPTED_OUT}");
    assert!(!with_cookie(&server, &format!("{gpp}; __gpp_sid=7")));
    // Control: where tcfeuv2 applies, this policy lets the TC string win.
    assert!(with_cookie(&server, &format!("{gpp}; __gpp_sid=2,7")));
}

#[test]
fn gpp_sid_minus_one_grants_nothing_in_de() {
    // Reproduction: DE visitor, `__gpp` with a granting tcfeuv2 (lists 2), `__gpp_sid=-1` ("no
    // section applies"): every permission was granted and a cookie minted.
    let (_origin, server) = start("e2e-sid-none", "DE", "");
    let gpp = format!("__gpp=DBABM~{TCF_GRANTS_STORAGE}");
    assert!(!with_cookie(&server, &format!("{gpp}; __gpp_sid=-1")));
    assert!(!with_cookie(&server, &format!("{gpp}; __gpp_sid=nonsense")));
    assert!(with_cookie(&server, &format!("{gpp}; __gpp_sid=2")));
}

#[test]
fn duplicate_us_privacy_cookies_any_opt_out_counts() {
    // Reproduction: the first copy won, even malformed or not opted out.
    let (_origin, server) = start("e2e-dup-usp", "US", "");
    assert!(!with_cookie(&server, "us_privacy=xx; us_privacy=1YYN"));
    assert!(!with_cookie(&server, "us_privacy=1NNN; us_privacy=1YYN"));
    assert!(with_cookie(&server, "us_privacy=xx; us_privacy=1NNN"));
}

#[test]
fn duplicate_tc_strings_newest_last_updated_wins() {
    // Reproduction: browsers send the older cookie first; the older (granting) copy won over the
    // newer one that refuses storage, and a DE visitor got a cookie.
    let (_origin, server) = start("e2e-dup-tcf", "DE", "");
    assert!(!with_cookie(
        &server,
        &format!("euconsent-v2={TCF_GRANTS_STORAGE}; euconsent-v2={TCF_NEWER_REFUSES_STORAGE}")
    ));
    assert!(!with_cookie(
        &server,
        &format!("euconsent-v2={TCF_NEWER_REFUSES_STORAGE}; euconsent-v2={TCF_GRANTS_STORAGE}")
    ));
    // A malformed copy is skipped.
    assert!(with_cookie(
        &server,
        &format!("euconsent-v2=garbage; euconsent-v2={TCF_GRANTS_STORAGE}")
    ));
}

#[test]
fn gpp_gpc_sub_section_counts_as_gpc() {
    // Reproduction: iabgpp-rs tests/data/usca_with_gpc.txt (no sale or sharing opt-out, Gpc=1)
    // without a `Sec-GPC` header did not count as GPC.
    let (_origin, server) = start("e2e-gpp-gpc", "US", "");
    assert!(!with_cookie(&server, "__gpp=DBABBg~BVqqqqpY.YA"));
    assert!(with_cookie(&server, "__gpp=DBABBg~BVqqqqpY"));
}

/// A copy of `tc` with `last_updated` (bits 42..78) set to `deciseconds`.
fn with_last_updated(tc: &str, deciseconds: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: Vec<u8> = tc
        .bytes()
        .flat_map(|c| {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u8;
            (0..6).rev().map(move |i| v >> i & 1)
        })
        .collect();
    for i in 0..36 {
        bits[42 + i] = (deciseconds >> (35 - i) & 1) as u8;
    }
    bits.chunks(6)
        .map(|c| {
            let v = c.iter().fold(0usize, |acc, b| acc << 1 | usize::from(*b)) << (6 - c.len());
            char::from(ALPHABET[v])
        })
        .collect()
}

#[test]
fn tc_string_updated_in_the_future_is_ignored() {
    // Reproduction: a granting TC string whose `last_updated` is a day ahead never expired and
    // was honoured.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (_origin, server) = start("e2e-future", "DE", "");
    let future = with_last_updated(TCF_GRANTS_STORAGE, (now + 86_400) * 10);
    assert!(!with_cookie(&server, &format!("euconsent-v2={future}")));
    let recent = with_last_updated(TCF_GRANTS_STORAGE, (now - 60) * 10);
    assert!(with_cookie(&server, &format!("euconsent-v2={recent}")));
}

#[test]
fn every_sec_gpc_header_is_read() {
    // Reproduction: only the first `Sec-GPC` header was read.
    let (_origin, server) = start("e2e-gpc-headers", "US", "");
    assert!(!mints(&server, &[("Sec-GPC", "0"), ("Sec-GPC", "1")]));
    assert!(mints(&server, &[("Sec-GPC", "0")]));
}

#[test]
fn us_privacy_is_trimmed_after_unquoting_and_percent_decoding() {
    // Reproduction: `" 1YYN "` percent-encoded inside quotes decoded to ` 1YYN ` and was refused.
    let (_origin, server) = start("e2e-usp-trim", "US", "");
    assert!(!with_cookie(&server, "us_privacy=\"%201YYN%20\""));
    assert!(with_cookie(&server, "us_privacy=\"%201YNN%20\""));
}

#[test]
fn us_ca_gpc_overrides_a_granting_tc_string() {
    // Reproduction: in California a granting TC string outweighed GPC and a cookie was minted;
    // the shipped policy now says `opt-outs-override-tcf: true` for `us-opt-out`.
    let (_origin, server) = start("e2e-ca-gpc", "US/CA", "");
    let cookie = format!("euconsent-v2={TCF_GRANTS_STORAGE}");
    assert!(!mints(&server, &[("Cookie", &cookie), ("Sec-GPC", "1")]));
    assert!(mints(&server, &[("Cookie", &cookie)]));
    // With the key `false`, the TC string wins, as before.
    let (_origin, server) = start("e2e-ca-gpc-tcf-wins", "US/CA", &tcf_wins_policy());
    assert!(mints(&server, &[("Cookie", &cookie), ("Sec-GPC", "1")]));
}
