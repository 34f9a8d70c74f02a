//! The conformance suite: every case of `tests/conformance/cases.toml` against the three hosts
//! (standalone, the composed Fastly app under Viceroy, the composed wasi:http app under `wasmtime
//! serve`), with the same deployment TOML and the same provider component files.
//!
//! A case passes on a host when the host's response and what its origin was sent meet the case's
//! `expect`, and the whole observation (status, the Edge Cookie's `Set-Cookie` and attributes,
//! other cookies set, the provider and cache headers, the forwarded decision and `Cookie`) equals
//! the standalone host's. A host may deviate only where the case names it under
//! `platform_limits`, with a reason; those deviations are checked against their own `expect` and
//! printed. Every failure of every host is collected and reported at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Deserialize;

use crate::compose::HOSTILE;
use crate::hosts::HostKind;
use crate::support::{
    Origin, Response, component, http_get, sha256_of, tc_full_consent_now, tc_string,
    workspace_root,
};

/// A desktop browser User-Agent (`ua-device` classifies it as a desktop, not a bot).
const BROWSER: &str = crate::compose::BROWSER;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    deployments: BTreeMap<String, Deployment>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Deployment {
    toml: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    about: String,
    deployment: String,
    #[serde(default = "root_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    capture_minted: bool,
    expect: Expect,
    #[serde(default)]
    platform_limits: BTreeMap<String, PlatformLimit>,
}

fn root_path() -> String {
    "/".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformLimit {
    reason: String,
    expect: Expect,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: u16,
    content_type: Option<String>,
    body_contains: Option<String>,
    edge_cookie: Option<EdgeCookie>,
    cookie_attributes: Option<Vec<String>>,
    other_set_cookies: Option<Vec<String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    headers_contain: BTreeMap<String, String>,
    #[serde(default)]
    headers_exclude: BTreeMap<String, Vec<String>>,
    origin_seen: Option<bool>,
    origin_decision: Option<String>,
    origin_cookie: Option<String>,
}

/// What a response did with the Edge Cookie.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum EdgeCookie {
    /// No `Set-Cookie` for it.
    None,
    /// A new value.
    Set,
    /// Expired (`Max-Age=0`).
    Expired,
}

/// The response headers every observation records (beyond what a case's `expect` names).
const OBSERVED_HEADERS: &[&str] = &["cache-control", "x-origin", "x-provider-debug"];

/// Everything a host did for one case, normalised so hosts compare equal when they behave alike:
/// the Edge Cookie's value (random per mint) is left out, and the host's minted value in the
/// forwarded `Cookie` reads `{minted}`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observation {
    status: u16,
    content_type: Option<String>,
    edge_cookie: EdgeCookie,
    cookie_attributes: Vec<String>,
    other_set_cookies: Vec<String>,
    headers: BTreeMap<String, String>,
    origin_seen: bool,
    origin_decision: Option<String>,
    origin_cookie: Option<String>,
}

/// The case file, parsed.
fn suite() -> Suite {
    let path = workspace_root().join("tests/conformance/cases.toml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let suite: Suite =
        toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    for case in &suite.cases {
        assert!(
            suite.deployments.contains_key(&case.deployment),
            "case `{}` names the unknown deployment `{}`",
            case.name,
            case.deployment
        );
        for host in case.platform_limits.keys() {
            assert!(
                HostKind::ALL
                    .iter()
                    .any(|h| h.name() == host && *h != HostKind::Standalone),
                "case `{}`: `platform_limits.{host}` names no composed host",
                case.name
            );
        }
    }
    suite
}

/// The values of the case file's placeholders on one host.
struct Placeholders {
    origin: String,
    hostile: String,
    hostile_sha256: String,
    tcf_full: String,
    tcf_refused: String,
    /// Set by the case with `capture_minted`.
    minted: Option<String>,
}

impl Placeholders {
    fn new(origin: &Origin) -> Self {
        let hostile = component(HOSTILE);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            origin: origin.url(),
            hostile_sha256: sha256_of(&hostile),
            hostile: hostile.to_str().expect("utf-8 path").to_owned(),
            tcf_full: tc_full_consent_now(),
            tcf_refused: tc_string(&[], now - 86_400),
            minted: None,
        }
    }

    /// `text` with every placeholder filled.
    fn fill(&self, text: &str) -> String {
        let mut out = text
            .replace("{origin}", &self.origin)
            .replace("{hostile_sha256}", &self.hostile_sha256)
            .replace("{hostile}", &self.hostile)
            .replace("{browser}", BROWSER)
            .replace("{tcf_full}", &self.tcf_full)
            .replace("{tcf_refused}", &self.tcf_refused);
        if out.contains("{minted}") {
            let minted = self
                .minted
                .as_deref()
                .expect("a case using {minted} runs after one that captures it");
            out = out.replace("{minted}", minted);
        }
        out
    }
}

/// What a host did for each case, by case name: the observation and the response body.
type HostRun = BTreeMap<String, (Observation, String)>;

/// Runs every case on `host`, one server per deployment, cases in file order.
fn run_host(host: HostKind, suite: &Suite) -> HostRun {
    let origin = Origin::start();
    let mut values = Placeholders::new(&origin);
    let mut run = HostRun::new();
    // Deployments in order of first use; cases keep file order within one.
    let mut order: Vec<&str> = Vec::new();
    for case in &suite.cases {
        if !order.contains(&case.deployment.as_str()) {
            order.push(&case.deployment);
        }
    }
    for deployment in order {
        let config = values.fill(&suite.deployments[deployment].toml);
        let label = format!("conformance-{}-{deployment}", host.name());
        let running = host.launch(&label, &config, &[]);
        for case in suite.cases.iter().filter(|c| c.deployment == deployment) {
            let headers: Vec<(String, String)> = case
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), values.fill(v)))
                .collect();
            let seen_before = origin.requests.lock().expect("origin log").len();
            let response = send(running.addr, &case.path, &headers);
            let forwarded: Vec<String> =
                origin.requests.lock().expect("origin log")[seen_before..].to_vec();
            if case.capture_minted {
                values.minted = response
                    .set_cookie("ts-ec")
                    .and_then(|c| c.split(';').next())
                    .and_then(|c| c.strip_prefix("ts-ec="))
                    .map(str::to_owned);
            }
            let observation = observe(&response, &forwarded, values.minted.as_deref());
            run.insert(case.name.clone(), (observation, response.body));
        }
    }
    run
}

fn send(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> Response {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http_get(addr, path, &headers)
}

/// The observation of `response`, with `forwarded` the request heads the origin was sent.
fn observe(response: &Response, forwarded: &[String], minted: Option<&str>) -> Observation {
    let ec = response.set_cookie("ts-ec");
    let mut cookie_attributes: Vec<String> = ec
        .map(|c| c.split(';').skip(1).map(|a| a.trim().to_owned()).collect())
        .unwrap_or_default();
    cookie_attributes.sort();
    let edge_cookie = match ec {
        None => EdgeCookie::None,
        Some(_) if cookie_attributes.iter().any(|a| a == "Max-Age=0") => EdgeCookie::Expired,
        Some(_) => EdgeCookie::Set,
    };
    let mut other_set_cookies: Vec<String> = response
        .all("set-cookie")
        .into_iter()
        .filter(|c| !c.starts_with("ts-ec="))
        .map(|c| c.split('=').next().unwrap_or(c).trim().to_owned())
        .collect();
    other_set_cookies.sort();
    let headers = OBSERVED_HEADERS
        .iter()
        .filter_map(|name| {
            response
                .header(name)
                .map(|v| ((*name).to_owned(), v.to_owned()))
        })
        .collect();
    let head = forwarded.last();
    let forwarded_header = |name: &str| {
        head.and_then(|head| {
            head.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        })
    };
    let normalise = |value: String| match minted {
        Some(minted) => value.replace(minted, "{minted}"),
        None => value,
    };
    Observation {
        status: response.status,
        content_type: response.header("content-type").map(str::to_owned),
        edge_cookie,
        cookie_attributes,
        other_set_cookies,
        headers,
        origin_seen: !forwarded.is_empty(),
        origin_decision: forwarded_header("gatehouse-decision"),
        origin_cookie: forwarded_header("cookie").map(normalise),
    }
}

/// Where `observation` (with `body`) does not meet `expect`; empty when it does.
fn unmet(expect: &Expect, observation: &Observation, body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            out.push(what);
        }
    };
    check(
        observation.status == expect.status,
        format!("status {} (expected {})", observation.status, expect.status),
    );
    if let Some(content_type) = &expect.content_type {
        check(
            observation.content_type.as_deref() == Some(content_type.as_str()),
            format!(
                "content-type {:?} (expected {content_type:?})",
                observation.content_type
            ),
        );
    }
    if let Some(needle) = &expect.body_contains {
        check(
            body.contains(needle.as_str()),
            format!("body without {needle:?}: {body:.300}"),
        );
    }
    if let Some(edge_cookie) = expect.edge_cookie {
        check(
            observation.edge_cookie == edge_cookie,
            format!(
                "Edge Cookie {:?} (expected {edge_cookie:?})",
                observation.edge_cookie
            ),
        );
    }
    if let Some(attributes) = &expect.cookie_attributes {
        check(
            &observation.cookie_attributes == attributes,
            format!(
                "Edge Cookie attributes {:?} (expected {attributes:?})",
                observation.cookie_attributes
            ),
        );
    }
    let other = expect.other_set_cookies.clone().unwrap_or_default();
    check(
        observation.other_set_cookies == other,
        format!(
            "other cookies set {:?} (expected {other:?})",
            observation.other_set_cookies
        ),
    );
    for (name, value) in &expect.headers {
        let actual = observation.headers.get(name).map_or("", String::as_str);
        check(
            actual == value,
            format!("header `{name}` {actual:?} (expected {value:?})"),
        );
    }
    for (name, needle) in &expect.headers_contain {
        let actual = observation.headers.get(name).map_or("", String::as_str);
        check(
            actual.contains(needle.as_str()),
            format!("header `{name}` {actual:?} lacks {needle:?}"),
        );
    }
    for (name, needles) in &expect.headers_exclude {
        let actual = observation.headers.get(name).map_or("", String::as_str);
        for needle in needles {
            check(
                !actual.contains(needle.as_str()),
                format!("header `{name}` {actual:?} contains {needle:?}"),
            );
        }
    }
    if let Some(seen) = expect.origin_seen {
        check(
            observation.origin_seen == seen,
            format!(
                "origin sent the request: {} (expected {seen})",
                observation.origin_seen
            ),
        );
    }
    if let Some(needle) = &expect.origin_decision {
        let actual = observation.origin_decision.as_deref().unwrap_or("");
        check(
            actual.contains(needle.as_str()),
            format!("forwarded gatehouse-decision {actual:?} lacks {needle:?}"),
        );
    }
    if let Some(cookie) = &expect.origin_cookie {
        let actual = observation.origin_cookie.as_deref().unwrap_or("");
        check(
            actual == cookie,
            format!("forwarded Cookie {actual:?} (expected {cookie:?})"),
        );
    }
    out
}

#[test]
fn every_conformance_case_behaves_the_same_on_all_three_hosts() {
    let suite = suite();
    let hosts: Vec<HostKind> = HostKind::ALL
        .into_iter()
        .filter(|h| h.available())
        .collect();
    // One thread per host: each runs its own origin and servers.
    let results: Vec<(HostKind, HostRun)> = std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|&host| {
                let suite = &suite;
                scope.spawn(move || (host, run_host(host, suite)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a host's run panicked"))
            .collect()
    });

    let standalone = &results
        .iter()
        .find(|(h, _)| *h == HostKind::Standalone)
        .expect("the standalone host always runs")
        .1;
    let mut failures = String::new();
    let mut limits = String::new();
    for case in &suite.cases {
        for (host, run) in &results {
            let (observation, body) = &run[&case.name];
            let limit = case.platform_limits.get(host.name());
            let expect = limit.map_or(&case.expect, |l| &l.expect);
            for problem in unmet(expect, observation, body) {
                let _ = writeln!(failures, "[{host}] {}: {problem}", case.name);
            }
            match limit {
                Some(limit) => {
                    let _ = writeln!(limits, "[{host}] {}: {}", case.name, limit.reason);
                }
                None if *host != HostKind::Standalone => {
                    let reference = &standalone[&case.name].0;
                    if observation != reference {
                        let _ = writeln!(
                            failures,
                            "[{host}] {}: differs from the standalone host ({}):\n  {host}: {observation:?}\n  standalone: {reference:?}",
                            case.name, case.about
                        );
                    }
                }
                None => {}
            }
        }
    }
    if !limits.is_empty() {
        eprintln!("platform limits (declared in cases.toml):\n{limits}");
    }
    let ran: Vec<&str> = hosts.iter().map(|h| h.name()).collect();
    assert!(
        failures.is_empty(),
        "conformance failures on {ran:?}:\n{failures}"
    );
    eprintln!("{} conformance cases agree on {ran:?}", suite.cases.len());
}
