//! Consent semantics: per-section GPP decoding, fail-closed opt-outs, `__gpp_sid`, repeated
//! cookies, GPC sub-sections, symmetric conflict resolution, future timestamps and withdrawal.
//!
//! Section bodies and TC strings are published vectors, each cited. GPP *headers* that combine
//! published sections in new ways are encoded here (type 3, version 1, Fibonacci section ids);
//! the comment next to each names the ids it lists.

use gatehouse_core::consent::{
    ConsentConfig, ConsentContext, ConsentError, ConsentInput, GppString, HeaderLookup, NoHeaders,
    RawSignals, SignalSource, TcString, TcfChoice, decode_to_json,
};
use gatehouse_core::policy::Policy;
use serde_json::json;

use super::{CPAN_BITFIELD, EU, FRESH_NOW, IABTCF_JAVA_CORE, MAX, US, raw};

/// iabgpp-es `test/GppModel.test.ts` "should decode defaults from all sections" (commit
/// 0087a7e): sections 2, 5, 6, 7–12 with defaults. Its `tcfeuv2` has vendor list version 0 and
/// its `tcfcav1` section is version 2, which this decoder (TCF CA v1) does not read.
const IABGPP_ES_DEFAULTS: &str = "DBACOaw~CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---~BAAAAAAAAAA.QA~BAAAAAAA.QA~BAAAAAA~BAAAAAA.QA~BAAAAAAA~BAAAAAAA.QA";
/// iabgpp-es `test/encoder/section/TcfEuV2.test.ts` "encode defaults": vendor list version 0.
const IABGPP_ES_TCFEUV2_DEFAULTS: &str = "CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA";
/// The `tcfcav1` version-2 section of [`IABGPP_ES_DEFAULTS`].
const TCFCAV1_VERSION_2: &str = "CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAA.YAAAAAAAAAA";
/// iabgpp-es `test/encoder/section/UsNat.test.ts` "should decode BVVVkkkkkpFY.YA": sale,
/// sharing and targeted-advertising opt-outs 1, GPC sub-section set.
const USNAT_OPTED_OUT: &str = "BVVVkkkkkpFY.YA";
/// iabgpp-es `UsNat.test.ts` "should decode BVQqAAAACg": sale 0, sharing 2, targeted ads 2.
const USNAT_NOT_OPTED_OUT: &str = "BVQqAAAACg";
/// iabgpp-es `UsNat.test.ts` "should throw Error on garbage".
const USNAT_GARBAGE: &str = "z";

fn context(
    raw: RawSignals,
    jurisdiction: gatehouse_core::consent::JurisdictionFacts,
) -> ConsentContext {
    context_at(raw, jurisdiction, FRESH_NOW)
}

fn context_at(
    raw: RawSignals,
    jurisdiction: gatehouse_core::consent::JurisdictionFacts,
    now: u64,
) -> ConsentContext {
    let config = ConsentConfig {
        max_consent_age_days: 100_000,
        ..ConsentConfig::default()
    };
    ConsentContext::from_raw(&config, raw, jurisdiction, now)
}

/// 2023-01-01T00:00:00Z: after every vector's `last_updated`.
const NOW_2023: u64 = 1_672_531_200;

fn cookies(
    header: &str,
    jurisdiction: gatehouse_core::consent::JurisdictionFacts,
) -> ConsentContext {
    let config = ConsentConfig {
        max_consent_age_days: 100_000,
        ..ConsentConfig::default()
    };
    ConsentContext::build(
        &config,
        &ConsentInput {
            cookie_header: Some(header),
            headers: &NoHeaders,
            jurisdiction,
            now_unix_seconds: FRESH_NOW,
        },
    )
}

#[test]
fn tcf_vendor_list_version_zero_is_accepted() {
    // Source: iabgpp-es TcfEuV2.test.ts "encode defaults" (the reference encoder's own default).
    let tc = TcString::decode(IABGPP_ES_TCFEUV2_DEFAULTS, MAX).expect("vlv 0 decodes");
    assert_eq!(tc.vendor_list_version, 0);
    assert_eq!(tc.policy_version, 2);
    assert!(tc.allowed_vendors.is_some() && tc.disclosed_vendors.is_some());
}

#[test]
fn gpp_sections_decode_independently() {
    // Source: iabgpp-es GppModel.test.ts "should decode defaults from all sections".
    let g = GppString::decode(IABGPP_ES_DEFAULTS, MAX).expect("the header decodes");
    assert_eq!(g.section_ids, vec![2, 5, 6, 7, 8, 9, 10, 11, 12]);
    let failed: Vec<u16> = g.section_errors().iter().map(|(id, _)| *id).collect();
    assert_eq!(failed, vec![5], "only the tcfcav1 v2 section fails");
    assert_eq!(
        g.section_errors()[0].1,
        ConsentError::UnsupportedVersion {
            what: "tcfcav1",
            found: 2
        }
    );
    assert_eq!(g.tcf_eu().map(|t| t.vendor_list_version), Some(0));
    assert_eq!(
        g.us_privacy().map(ToString::to_string).as_deref(),
        Some("1---")
    );
    assert_eq!(g.us_sections().count(), 6);

    let j = decode_to_json(IABGPP_ES_DEFAULTS, None).expect("json");
    assert_eq!(
        j["sections"]["5"],
        json!({"error": "unsupported tcfcav1 version 2"})
    );
    assert_eq!(j["sections"]["2"]["vendor_list_version"], 0);
    assert_eq!(j["sections"]["6"]["notice"], "-");
}

#[test]
fn uspv1_opt_out_beside_a_malformed_section_still_counts() {
    // Header lists 5, 6: the published tcfcav1 v2 section, then `1YYN`.
    let s = format!("DBACDY~{TCFCAV1_VERSION_2}~1YYN");
    let ctx = context(raw(None, Some(&s)), US);
    assert!(ctx.signals().us_privacy_opt_out);
    assert!(
        ctx.signals().fail_closed_gpp_sections.is_empty(),
        "tcfcav1 carries no US opt-out"
    );
    assert_eq!(
        ctx.warnings()
            .iter()
            .map(|w| w.source_signal)
            .collect::<Vec<_>>(),
        vec![SignalSource::GppSection(5)]
    );
    assert_eq!(
        ctx.warnings()[0].to_string(),
        "ignored gpp section 5 (`tcfcav1`): unsupported tcfcav1 version 2"
    );
}

#[test]
fn usnat_opt_out_beside_a_malformed_section_still_counts() {
    // Header lists 5, 7.
    let s = format!("DBACDM~{TCFCAV1_VERSION_2}~{USNAT_OPTED_OUT}");
    let signals = context(raw(None, Some(&s)), US).signals();
    assert!(signals.gpp_sale_opt_out && signals.gpp_sharing_opt_out);
    assert!(signals.gpp_targeted_ads_opt_out && signals.gpc);
    // The same beside a usnat that did not opt out: nothing is revoked.
    let s = format!("DBACDM~{TCFCAV1_VERSION_2}~{USNAT_NOT_OPTED_OUT}");
    assert!(!context(raw(None, Some(&s)), US).signals().any_us_opt_out());
}

#[test]
fn a_malformed_us_section_fails_closed() {
    // Header lists 7: the garbage usnat body iabgpp-es refuses.
    let ctx = context(raw(None, Some(&format!("DBABL~{USNAT_GARBAGE}"))), US);
    let s = ctx.signals();
    assert!(s.fail_closed_gpp_sections.contains(7));
    assert!(s.gpp_sale_opt_out && s.gpp_sharing_opt_out && s.gpp_targeted_ads_opt_out && s.gpc);
    assert!(!s.us_privacy_opt_out);
    assert!(ctx.is_explicit_withdrawal());

    // A malformed uspv1 (header lists 6) fails closed on the US Privacy opt-out only.
    let s = context(raw(None, Some("DBABT~1Y")), US).signals();
    assert!(s.fail_closed_gpp_sections.contains(6) && s.us_privacy_opt_out);
    assert!(!s.gpp_sale_opt_out && !s.gpc);

    // A malformed usca (header lists 8) fails closed on what usca carries: sale and sharing.
    let s = context(raw(None, Some("DBABBg~z")), US).signals();
    assert!(s.gpp_sale_opt_out && s.gpp_sharing_opt_out && !s.gpp_targeted_ads_opt_out);

    // A malformed tcfcav1 alone opts out of nothing.
    let s = context(raw(None, Some(&format!("DBABD~{TCFCAV1_VERSION_2}"))), US).signals();
    assert!(!s.any_us_opt_out() && s.fail_closed_gpp_sections.is_empty());
}

#[test]
fn gpp_sid_limits_which_sections_may_grant() {
    // Header lists 2, 7: the published granting bitfield TC string and a usnat opt-out.
    let s = format!("DBACMM~{CPAN_BITFIELD}~{USNAT_OPTED_OUT}");
    let mut r = raw(None, Some(&s));
    r.gpp_sid = Some("7".into());
    let ctx = context(r.clone(), US);
    assert_eq!(ctx.signals().tcf, None, "tcfeuv2 is not applicable");
    assert_eq!(ctx.tcf_choice(), TcfChoice::None);
    assert!(ctx.signals().gpp_sale_opt_out, "the listed usnat counts");

    // `-1`: no section applies, but an opt-out outside the list still takes away.
    r.gpp_sid = Some("-1".into());
    let ctx = context(r.clone(), EU);
    assert_eq!(ctx.signals().tcf, None);
    assert!(ctx.signals().gpp_sale_opt_out);

    // Listed: it grants.
    r.gpp_sid = Some("2,7".into());
    assert!(context(r.clone(), EU).signals().tcf.is_some());
    // Absent: every section applies.
    r.gpp_sid = None;
    assert!(context(r.clone(), EU).signals().tcf.is_some());
    // Malformed: fail closed, nothing applies.
    r.gpp_sid = Some("two".into());
    let ctx = context(r, EU);
    assert_eq!(ctx.signals().tcf, None);
    assert_eq!(ctx.gpp_sid(), Some(&[][..]));
}

#[test]
fn repeated_us_privacy_cookies_any_opt_out_counts() {
    for header in [
        "us_privacy=xx; us_privacy=1YYN",
        "us_privacy=1NNN; us_privacy=1YYN",
        "us_privacy=1YYN; us_privacy=1NNN",
        "usprivacy=1YYN",
        "us_privacy=1NNN; usprivacy=1YYN",
    ] {
        let ctx = cookies(header, US);
        assert!(ctx.signals().us_privacy_opt_out, "{header}");
        assert!(ctx.us_privacy().is_some_and(|u| u.opted_out()), "{header}");
    }
    let ctx = cookies("us_privacy=xx; us_privacy=1NNN", US);
    assert!(!ctx.signals().us_privacy_opt_out);
    assert_eq!(
        ctx.warnings().len(),
        1,
        "the undecodable copy is warned about"
    );
}

#[test]
fn us_privacy_cookie_names_are_configurable() {
    let config: ConsentConfig =
        serde_json::from_value(json!({"cookie_names": {"us_privacy": "ccpa"}})).expect("one");
    assert_eq!(config.cookie_names.us_privacy, vec!["ccpa".to_owned()]);
    let config: ConsentConfig =
        serde_json::from_value(json!({"cookie_names": {"us_privacy": ["a", "b"]}})).expect("list");
    assert_eq!(config.cookie_names.us_privacy.len(), 2);
    assert!(
        serde_json::from_value::<ConsentConfig>(json!({"cookie_names": {"us_privacy": []}}))
            .is_err()
    );
    assert_eq!(
        ConsentConfig::default().cookie_names.us_privacy,
        vec!["us_privacy".to_owned(), "usprivacy".to_owned()]
    );
}

#[test]
fn repeated_tc_strings_newest_last_updated_wins() {
    let older = TcString::decode(CPAN_BITFIELD, MAX).expect("cpan");
    let newer = TcString::decode(IABTCF_JAVA_CORE, MAX).expect("java");
    assert!(newer.last_updated > older.last_updated);
    for header in [
        format!("euconsent-v2={CPAN_BITFIELD}; euconsent-v2={IABTCF_JAVA_CORE}"),
        format!("euconsent-v2={IABTCF_JAVA_CORE}; euconsent-v2={CPAN_BITFIELD}"),
        format!(
            "euconsent-v2=garbage; euconsent-v2={IABTCF_JAVA_CORE}; euconsent-v2={CPAN_BITFIELD}"
        ),
    ] {
        let ctx = cookies(&header, EU);
        assert_eq!(
            ctx.standalone_tcf().map(|t| t.last_updated),
            Some(newer.last_updated),
            "{header}"
        );
    }
}

#[test]
fn gpp_gpc_sub_section_counts_as_gpc() {
    // Source: iabgpp-rs tests/data/usca_with_gpc.txt (sale and sharing not opted out, Gpc = 1).
    let ctx = context(raw(None, Some("DBABBg~BVqqqqpY.YA")), US);
    let s = ctx.signals();
    assert!(s.gpc);
    assert!(!s.gpp_sale_opt_out && !s.gpp_sharing_opt_out);
    assert!(ctx.us_privacy_synthesized(), "GPC from GPP synthesises too");
    // Without the sub-section: no GPC.
    assert!(
        !context(raw(None, Some("DBABBg~BVqqqqpY")), US)
            .signals()
            .gpc
    );
}

/// A copy of `tc` with `last_updated` replaced (bits 42..78 of the core segment).
fn with_last_updated(tc: &str, deciseconds: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (core, rest) = tc.split_once('.').map_or((tc, None), |(c, r)| (c, Some(r)));
    let mut bits: Vec<u8> = core
        .bytes()
        .flat_map(|c| {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u8;
            (0..6).rev().map(move |i| v >> i & 1)
        })
        .collect();
    for i in 0..36 {
        bits[42 + i] = (deciseconds >> (35 - i) & 1) as u8;
    }
    let mut out: String = bits
        .chunks(6)
        .map(|c| {
            let v = c.iter().fold(0usize, |acc, b| acc << 1 | usize::from(*b)) << (6 - c.len());
            char::from(ALPHABET[v])
        })
        .collect();
    if let Some(rest) = rest {
        out.push('.');
        out.push_str(rest);
    }
    out
}

#[test]
fn tcf_last_updated_in_the_future_is_invalid() {
    // The published bitfield vector with `last_updated` moved to now + 1 hour.
    let future = with_last_updated(CPAN_BITFIELD, (FRESH_NOW + 3600) * 10);
    assert_eq!(
        TcString::decode(&future, MAX)
            .expect("still decodes")
            .last_updated,
        (FRESH_NOW + 3600) * 10
    );
    let ctx = context(raw(Some(&future), None), EU);
    assert_eq!(ctx.signals().tcf, None);
    assert_eq!(
        ctx.warnings()[0].error,
        ConsentError::LastUpdatedInFuture {
            ahead_seconds: 3600,
            skew_seconds: 300
        }
    );
    // Within the skew it counts.
    let near = with_last_updated(CPAN_BITFIELD, (FRESH_NOW + 200) * 10);
    assert!(context(raw(Some(&near), None), EU).signals().tcf.is_some());
    // The GPP copy is checked too (header lists 2).
    let ctx = context(raw(None, Some(&format!("DBABM~{future}"))), EU);
    assert_eq!(ctx.signals().tcf, None);
    assert_eq!(ctx.warnings()[0].source_signal, SignalSource::GppSection(2));
}

#[test]
fn restrictive_conflict_mode_is_symmetric_over_every_purpose() {
    // Standalone IABTCF_JAVA_CORE: purposes {2, 10}. GPP: iabgpp-es "encode defaults" tcfeuv2
    // (no purposes). They agree on purposes 1, 3 and 4 but not on 2 and 10.
    let gpp = format!("DBABM~{IABGPP_ES_TCFEUV2_DEFAULTS}");
    let ctx = context_at(raw(Some(IABTCF_JAVA_CORE), Some(&gpp)), EU, NOW_2023);
    assert!(ctx.has_tcf_conflict());
    assert_eq!(ctx.tcf_choice(), TcfChoice::Intersection);
    assert_eq!(ctx.signals().tcf.map(|t| t.purpose_consents), Some(0));
    // Swapped: the GPP copy grants {2, 10}, the standalone none. Same result.
    let swapped = format!("DBABM~{IABTCF_JAVA_CORE}");
    let ctx = context_at(
        raw(Some(IABGPP_ES_TCFEUV2_DEFAULTS), Some(&swapped)),
        EU,
        NOW_2023,
    );
    assert_eq!(ctx.tcf_choice(), TcfChoice::Intersection);
    assert_eq!(ctx.signals().tcf.map(|t| t.purpose_consents), Some(0));
}

#[test]
fn purpose_one_treatment_without_purpose_one_is_no_withdrawal() {
    // IABTCF_JAVA_CORE refuses purpose 1 with purpose_one_treatment set: purpose 1 was never
    // disclosed, so its missing consent is no withdrawal.
    let java = TcString::decode(IABTCF_JAVA_CORE, MAX).expect("java");
    assert!(java.purpose_one_treatment && !java.has_purpose_consent(1));
    assert!(!context(raw(Some(IABTCF_JAVA_CORE), None), EU).is_explicit_withdrawal());
    // The same record with purpose_one_treatment cleared (bit 200 of the core segment): purpose
    // 1 was disclosed and refused, a withdrawal.
    let mut bits = String::new();
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for c in IABTCF_JAVA_CORE.chars() {
        let v = ALPHABET.find(c).expect("base64url");
        bits.push_str(&format!("{v:06b}"));
    }
    bits.replace_range(200..201, "0");
    let treated: String = bits
        .as_bytes()
        .chunks(6)
        .map(|c| {
            let v = usize::from_str_radix(std::str::from_utf8(c).expect("bits"), 2).expect("bin");
            ALPHABET.as_bytes()[v << (6 - c.len())] as char
        })
        .collect();
    let tc = TcString::decode(&treated, MAX).expect("treated");
    assert!(!tc.purpose_one_treatment && !tc.has_purpose_consent(1));
    assert_eq!(tc.purpose_consents, java.purpose_consents);
    assert!(context(raw(Some(&treated), None), EU).is_explicit_withdrawal());
}

#[test]
fn us_privacy_is_trimmed_after_unquoting_and_percent_decoding() {
    for header in [
        "us_privacy=\"%201YYN%20\"",
        "us_privacy=\" 1YYN \"",
        "us_privacy=%201YYN",
    ] {
        assert!(cookies(header, US).signals().us_privacy_opt_out, "{header}");
    }
}

#[test]
fn every_gpc_header_value_is_read() {
    let config = ConsentConfig::default();
    let build = |headers: &dyn HeaderLookup| {
        ConsentContext::build(
            &config,
            &ConsentInput {
                cookie_header: None,
                headers,
                jurisdiction: US,
                now_unix_seconds: FRESH_NOW,
            },
        )
        .signals()
        .gpc
    };
    assert!(build(&[("Sec-GPC", "0"), ("sec-gpc", "1")]));
    assert!(build(&[("Sec-GPC", "0, 1")]));
    assert!(!build(&[("Sec-GPC", "0")]));
    // The trait's default reads only the first value; a multi-valued lookup overrides it.
    assert_eq!(
        [("Sec-GPC", "0"), ("sec-gpc", "1")].header_values("sec-gpc"),
        vec!["0", "1"]
    );
}

#[test]
fn publisher_tc_segment_is_authoritative_only_when_the_policy_says_so() {
    // Source: GDPR-IAB-TCFv2 t/01-parse.t "with publisher TC section": core purposes
    // {1, 3, 9, 10}, publisher purposes {2, 4, 6, 8, 9, 10}.
    let with_publisher = format!("{CPAN_BITFIELD}.argAC0gAAAAAAAAAAAA");
    let tc = TcString::decode(&with_publisher, MAX).expect("decodes");
    let publisher = tc.publisher_tc.as_ref().expect("publisher segment");
    let signals = context(raw(Some(&with_publisher), None), EU).signals();
    let tcf = signals.tcf.expect("tcf");
    assert_eq!(
        tcf.publisher.map(|p| p.purpose_consents),
        Some(publisher.pub_purpose_consents)
    );

    let shipped = Policy::embedded().expect("policy");
    assert!(!shipped.publisher_tc_authoritative());
    let authoritative = Policy::from_yaml_str(
        &gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace(
            "publisher-tc-authoritative: false",
            "publisher-tc-authoritative: true",
        ),
        "publisher.yaml",
    )
    .expect("valid");
    let held = |policy: &Policy| {
        let default = policy.default_country("FR").expect("FR");
        let set = policy.resolve_permissions(Some("DE"), None, &default, &signals);
        policy.names(set).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_ne!(
        held(shipped),
        held(&authoritative),
        "core {:?} vs publisher {:?}",
        tcf.purpose_consents,
        publisher.pub_purpose_consents
    );
}
