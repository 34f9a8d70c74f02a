//! Issue 13 through the real server: `POST /_ts/api/v1/auction` on `gatehouse serve`, with mock
//! OpenRTB bidders on loopback that record exactly what they receive.
//!
//! - Golden files (`golden/auction/*.http`, `BLESS=1` regenerates): for a matrix of consent
//!   signals and jurisdictions, the request line, the OpenRTB headers, the `Cookie` header and
//!   the JSON body each of three bidders receives. Only the random fields are normalised: `id`
//!   (`<request-id>`) and `source.tid` (`<tid>`); the tests assert that every bidder got the same
//!   two values, 32 hex digits each, and that the page's answer carries the same `id`.
//! - Isolation: a bidder sleeping 10× `tmax`, one answering 500, one sending malformed JSON; the
//!   page still gets the good bid, before the sleeper answers.
//! - `consent_forwarding` on the outbound `Cookie` header, one test per mode.
//! - Input validation (400 naming the field, 413, 415, 405) and the per-bidder metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::expected_hash;
use crate::support::{
    BROWSER_UA, Origin, Response, Server, config, golden, hmac_ec, http_raw, tc_string,
};

/// A GPP string with a US national section (`usnat`, id 7), as in the core's goldens.
const GPP_USNAT: &str = "DBABLA~BVVVVVVVVWA.YA";
/// A Google Additional Consent string.
const AC: &str = "2~1.35.41~dv.9.21";
/// The visitor's address, told by the trusted proxy (the test client).
const CLIENT: &str = "203.0.113.7";
/// 2025-01-01T00:00:00Z: TC strings last updated then are valid under `max_consent_age_days =
/// 3650` until 2034; fixed so the golden files do not change from run to run.
const RECENT: u64 = 1_735_689_600;
/// 2014-01-01T00:00:00Z: older than 3650 days, so expired.
const LONG_AGO: u64 = 1_388_534_400;

// ---- a mock OpenRTB bidder -------------------------------------------------------------------

/// How a mock bidder answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 200 with one bid at this price on the first impression (300×250).
    Bid(f64),
    /// Sleeps, then bids.
    SleepThenBid(Duration, f64),
    /// Answers this status with an empty body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Malformed,
}

/// One request as the bidder received it.
#[derive(Clone, Debug)]
struct Received {
    request_line: String,
    /// Lowercased names, in order.
    headers: Vec<(String, String)>,
    /// The body exactly as sent.
    raw: String,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An OpenRTB endpoint on loopback (HTTP/1.1, keep-alive) recording every request.
struct MockBidder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Set once the bidder has written an answer (for the isolation test).
    answered: Arc<AtomicBool>,
}

impl MockBidder {
    fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind bidder");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(AtomicBool::new(false));
        let (seen, done) = (Arc::clone(&received), Arc::clone(&answered));
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (seen, done) = (Arc::clone(&seen), Arc::clone(&done));
                std::thread::spawn(move || serve_bidder(stream, answer, &seen, &done));
            }
        });
        Self {
            addr,
            received,
            answered,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    /// The only request received.
    fn only(&self) -> Received {
        let all = self.received();
        assert_eq!(all.len(), 1, "{all:#?}");
        all.into_iter().next().expect("one request")
    }
}

fn serve_bidder(stream: TcpStream, answer: Answer, seen: &Mutex<Vec<Received>>, done: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let raw = String::from_utf8_lossy(&body).into_owned();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        if let Ok(mut seen) = seen.lock() {
            seen.push(Received {
                request_line: request_line.trim_end().to_owned(),
                headers,
                raw,
                body,
            });
        }
        let bid = |price: f64| {
            json!({
                "id": id,
                "cur": "USD",
                "seatbid": [{"bid": [{
                    "id": "b1", "impid": "1", "price": price, "w": 300, "h": 250,
                    "adm": format!("<div>{price}</div>"), "crid": "c1"
                }]}]
            })
            .to_string()
        };
        let (status, body) = match answer {
            Answer::Bid(price) => (200, bid(price)),
            Answer::SleepThenBid(delay, price) => {
                std::thread::sleep(delay);
                (200, bid(price))
            }
            Answer::Status(status) => (status, String::new()),
            Answer::Malformed => (200, "{\"id\": \"not json".to_owned()),
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let written = reader.get_mut().write_all(response.as_bytes()).is_ok();
        done.store(true, Ordering::SeqCst);
        if !written {
            return;
        }
    }
}

// ---- the server and the page's request ---------------------------------------------------------

/// A bidder's `[[auction.bidders]]` table, minus `name` and `url`.
struct BidderSpec<'a> {
    name: &'a str,
    url: String,
    extra: &'a str,
}

/// `gatehouse serve` with the HMAC Edge Cookie, consent valid for ten years, and `[auction]`.
fn start(label: &str, default_country: &str, tmax_ms: u64, bidders: &[BidderSpec<'_>]) -> Server {
    let origin = Origin::start();
    let mut auction = format!(
        "\n[consent]\nmax_consent_age_days = 3650\n\n[auction]\ntmax_ms = {tmax_ms}\n\
         allowed_eid_sources = [\"id5-sync.com\"]\n"
    );
    for b in bidders {
        auction.push_str(&format!(
            "\n[[auction.bidders]]\nname = \"{}\"\nurl = \"{}\"\n{}\n",
            b.name, b.url, b.extra
        ));
    }
    let server = Server::start(
        label,
        &config(
            &origin.url(),
            default_country,
            &format!("{}{auction}", hmac_ec()),
        ),
    );
    // The origin is not needed by the auction; keep it alive with the server anyway.
    std::mem::forget(origin);
    server
}

/// The page's input: two ad units (one with a floor) and two client EIDs, one from a source
/// that is not allowed.
fn input() -> Value {
    json!({
        "page_url": "https://news.example/sport/article-1?ref=home",
        "ad_units": [
            {"code": "side", "media_type": "banner", "sizes": [[300, 250]], "floor": 0.5},
            {"code": "top", "media_type": "banner", "sizes": [[728, 90], [970, 250]]}
        ],
        "eids": [
            {"source": "id5-sync.com", "uids": [{"id": "ID5*client", "atype": 1}]},
            {"source": "tracker.example", "uids": [{"id": "not-allowed"}]}
        ]
    })
}

/// The visitor's Edge Cookie, as the HMAC provider keeps it for [`CLIENT`].
fn visitor_ec() -> String {
    format!("{}.abc123", expected_hash(CLIENT))
}

/// `POST` with `Connection: close`.
fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: news.example\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    http_raw(server.addr, &raw)
}

/// A visitor's auction call: browser User-Agent, the client address and geo from the trusted
/// proxy, the Edge Cookie, a publisher cookie, `consent_cookies`, another cookie, `headers`.
fn auction_call(
    server: &Server,
    country: Option<&str>,
    region: Option<&str>,
    consent_cookies: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Value {
    let mut jar = vec![
        format!("ts-ec={}", visitor_ec()),
        "pub_seg=sports".to_owned(),
    ];
    jar.extend(consent_cookies.iter().map(|(n, v)| format!("{n}={v}")));
    jar.push("other=1".to_owned());
    let cookie = jar.join("; ");
    let mut all = vec![
        ("User-Agent", BROWSER_UA),
        ("X-Forwarded-For", CLIENT),
        ("Content-Type", "application/json"),
        ("Cookie", cookie.as_str()),
    ];
    if let Some(country) = country {
        all.push(("X-Geo-Country", country));
    }
    if let Some(region) = region {
        all.push(("X-Geo-Region", region));
    }
    all.extend_from_slice(headers);
    let response = post(
        server,
        "/_ts/api/v1/auction",
        &all,
        input().to_string().as_bytes(),
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    // `private` joins it when the answer expires the Edge Cookie (an opt-out withdraws it).
    let cache = response.header("cache-control").unwrap_or("");
    assert!(
        cache == "no-store" || cache == "no-store, private",
        "{cache}"
    );
    serde_json::from_str(&response.body).expect("auction answer is json")
}

fn full_consent() -> String {
    tc_string(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], RECENT)
}

// ---- must-show 1: the golden matrix --------------------------------------------------------------

/// The three bidders of the golden matrix: `alpha` (identifiers, consent in body and cookies,
/// forwards `pub_seg`), `beta` (no identifiers, `openrtb_only`), `gamma` (identifiers,
/// `cookies_only`, its own timeout and publisher id).
struct Matrix {
    server: Server,
    bidders: [MockBidder; 3],
}

impl Matrix {
    fn start(label: &str) -> Self {
        let bidders = [
            MockBidder::start(Answer::Bid(1.5)),
            MockBidder::start(Answer::Bid(2.0)),
            MockBidder::start(Answer::Status(204)),
        ];
        // Generous budgets: no bidder may time out on a loaded machine; timing is not under test.
        let server = start(
            label,
            "US",
            10_000,
            &[
                BidderSpec {
                    name: "alpha",
                    url: bidders[0].url("/openrtb2/auction"),
                    extra: "bidstream_enabled = true\nconsent_forwarding = \"both\"\n\
                            forward_cookies = [\"pub_seg\"]",
                },
                BidderSpec {
                    name: "beta",
                    url: bidders[1].url("/bid"),
                    extra: "consent_forwarding = \"openrtb_only\"",
                },
                BidderSpec {
                    name: "gamma",
                    url: bidders[2].url("/rtb"),
                    extra: "timeout_ms = 9000\npublisher_id = \"pub-123\"\n\
                            bidstream_enabled = true\nconsent_forwarding = \"cookies_only\"",
                },
            ],
        );
        Self { server, bidders }
    }

    /// Runs one auction call and compares what the bidders received with `golden/auction/NAME`.
    /// Returns each bidder's received body, in bidder order.
    fn golden(
        &self,
        name: &str,
        country: Option<&str>,
        region: Option<&str>,
        consent_cookies: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Vec<Received> {
        let answer = auction_call(&self.server, country, region, consent_cookies, headers);
        let received: Vec<Received> = self.bidders.iter().map(MockBidder::only).collect();
        let id = received[0].body["id"].as_str().expect("id").to_owned();
        let tid = received[0].body["source"]["tid"]
            .as_str()
            .expect("source.tid")
            .to_owned();
        for r in &received {
            assert_eq!(r.body["id"], id.as_str(), "one request id per auction");
            assert_eq!(r.body["source"]["tid"], tid.as_str(), "one tid per auction");
        }
        for random in [&id, &tid] {
            assert_eq!(random.len(), 32, "{random}");
            assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{random}");
        }
        assert_ne!(id, tid);
        assert_eq!(answer["id"], id.as_str(), "the page sees the auction's id");
        let mut text = String::new();
        for (bidder, r) in ["alpha", "beta", "gamma"].iter().zip(&received) {
            text.push_str(&format!("### bidder `{bidder}`\n{}\n", r.request_line));
            for header in ["content-type", "x-openrtb-version", "cookie", "sec-gpc"] {
                if let Some(value) = r.header(header) {
                    text.push_str(&format!("{header}: {value}\n"));
                }
            }
            // The bytes as sent (field order included), re-indented for review; only the two
            // random values are replaced.
            let raw = r
                .raw
                .replace(&format!("\"{id}\""), "\"<request-id>\"")
                .replace(&format!("\"{tid}\""), "\"<tid>\"");
            assert_eq!(raw.matches("<request-id>").count(), 1, "{raw}");
            assert_eq!(raw.matches("<tid>").count(), 1, "{raw}");
            text.push('\n');
            text.push_str(&indent_json(&raw));
            text.push_str("\n\n");
        }
        golden(&format!("auction/{name}.http"), &text);
        received
    }
}

/// Re-indents compact JSON text without reordering or re-encoding anything: two spaces per
/// level, one member or element per line. Panics on whitespace outside strings (the host sends
/// compact JSON).
fn indent_json(compact: &str) -> String {
    let mut out = String::new();
    let (mut depth, mut in_string, mut escaped) = (0_usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        assert!(!c.is_whitespace(), "whitespace outside a string: {compact}");
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' if matches!(chars.peek(), Some('}' | ']')) => {
                out.push(c);
                out.push(chars.next().unwrap_or_default());
            }
            '{' | '[' => {
                out.push(c);
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

fn eid_sources(body: &Value) -> Vec<&str> {
    body["user"]["eids"]
        .as_array()
        .map(|eids| eids.iter().filter_map(|e| e["source"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn auction_tcf_with_purposes_1_and_4_forwards_consent_and_identifiers_to_bidstream_partners() {
    let m = Matrix::start("auction-fr-tcf-full");
    let tc = full_consent();
    let r = m.golden(
        "fr-tcf-full",
        Some("FR"),
        None,
        &[("euconsent-v2", &tc), ("addtl_consent", AC)],
        &[],
    );
    let alpha = &r[0].body;
    assert_eq!(alpha["regs"]["gdpr"], 1);
    assert_eq!(alpha["user"]["consent"], tc.as_str());
    assert_eq!(alpha["user"]["ext"]["consent"], tc.as_str());
    assert_eq!(
        alpha["user"]["ext"]["ConsentedProvidersSettings"]["consented_providers"],
        AC
    );
    assert_eq!(eid_sources(alpha), ["news.example", "id5-sync.com"]);
    assert_eq!(alpha["user"]["eids"][0]["uids"][0]["id"], visitor_ec());
    assert_eq!(alpha["device"]["ip"], CLIENT);
    assert_eq!(alpha["device"]["geo"]["country"], "FRA");
    assert!(eid_sources(&r[1].body).is_empty(), "beta is not bidstream");
}

#[test]
fn auction_tcf_without_purposes_1_and_4_forwards_consent_but_no_identifier() {
    let m = Matrix::start("auction-fr-tcf-without-1-4");
    let tc = tc_string(&[2, 3, 7, 9, 10], RECENT);
    let r = m.golden(
        "fr-tcf-without-1-4",
        Some("FR"),
        None,
        &[("euconsent-v2", &tc)],
        &[],
    );
    for received in &r {
        assert!(eid_sources(&received.body).is_empty());
        assert_eq!(received.body["device"]["ip"], "203.0.113.0");
    }
    assert_eq!(r[0].body["user"]["consent"], tc.as_str());
}

#[test]
fn auction_expired_tcf_is_forwarded_nowhere() {
    let m = Matrix::start("auction-de-tcf-expired");
    let expired = tc_string(&[1, 2, 3, 4], LONG_AGO);
    let r = m.golden(
        "de-tcf-expired",
        Some("DE"),
        None,
        &[("euconsent-v2", &expired)],
        &[],
    );
    for received in &r {
        assert_eq!(received.body["regs"]["gdpr"], 1);
        assert!(received.body["user"].get("consent").is_none());
        assert!(eid_sources(&received.body).is_empty());
        let cookie = received.header("cookie").unwrap_or_default();
        assert!(!cookie.contains("euconsent-v2"), "{cookie}");
    }
}

#[test]
fn auction_gpp_with_section_ids_is_forwarded_in_2_6_and_2_5_locations() {
    let m = Matrix::start("auction-us-ca-gpp");
    let r = m.golden(
        "us-ca-gpp-usnat",
        Some("US"),
        Some("CA"),
        &[("__gpp", GPP_USNAT), ("__gpp_sid", "7")],
        &[],
    );
    let alpha = &r[0].body;
    assert_eq!(alpha["regs"]["gpp"], GPP_USNAT);
    assert_eq!(alpha["regs"]["gpp_sid"], json!([7]));
    assert_eq!(alpha["regs"]["ext"]["gpp"], GPP_USNAT);
    assert_eq!(alpha["regs"]["ext"]["gpp_sid"], json!([7]));
    assert_eq!(alpha["device"]["geo"]["country"], "USA");
}

#[test]
fn auction_us_privacy_opt_out_is_forwarded_and_withholds_identifiers() {
    let m = Matrix::start("auction-us-usp");
    let r = m.golden(
        "us-usp-opt-out",
        Some("US"),
        None,
        &[("us_privacy", "1YYN")],
        &[],
    );
    assert_eq!(r[0].body["regs"]["us_privacy"], "1YYN");
    assert_eq!(r[0].body["regs"]["ext"]["us_privacy"], "1YYN");
    assert!(eid_sources(&r[0].body).is_empty());
}

#[test]
fn auction_gpc_in_a_us_opt_out_region_synthesises_us_privacy_for_every_partner() {
    let m = Matrix::start("auction-us-ca-gpc");
    let r = m.golden(
        "us-ca-gpc",
        Some("US"),
        Some("CA"),
        &[],
        &[("Sec-GPC", "1")],
    );
    assert_eq!(r[0].body["regs"]["us_privacy"], "1YYN");
    assert!(eid_sources(&r[0].body).is_empty());
    assert!(r.iter().all(|r| r.header("sec-gpc") == Some("1")));
}

#[test]
fn auction_no_signal_in_france_sends_gdpr_1_and_nothing_identifying() {
    let m = Matrix::start("auction-fr-none");
    let r = m.golden("fr-no-signal", Some("FR"), None, &[], &[]);
    assert_eq!(r[0].body["regs"], json!({"gdpr": 1, "ext": {"gdpr": 1}}));
    assert!(eid_sources(&r[0].body).is_empty());
    assert_eq!(r[0].body["device"]["ip"], "203.0.113.0");
}

#[test]
fn auction_no_signal_in_the_us_sends_identifiers_and_gdpr_0() {
    let m = Matrix::start("auction-us-none");
    let r = m.golden("us-no-signal", Some("US"), None, &[], &[]);
    assert_eq!(r[0].body["regs"]["gdpr"], 0);
    assert_eq!(eid_sources(&r[0].body), ["news.example", "id5-sync.com"]);
    assert_eq!(r[0].body["device"]["ip"], CLIENT);
}

#[test]
fn auction_no_signal_in_an_unknown_country_omits_regs_gdpr() {
    let m = Matrix::start("auction-unknown-none");
    let r = m.golden("unknown-country-no-signal", None, None, &[], &[]);
    for received in &r {
        assert!(
            received.body["regs"].get("gdpr").is_none(),
            "never a guessed 0"
        );
        assert!(received.body["device"].get("geo").is_none());
    }
}

// ---- must-show 2: isolation ----------------------------------------------------------------------

#[test]
fn auction_slow_failing_and_malformed_bidders_are_dropped_and_the_good_bid_wins() {
    const TMAX_MS: u64 = 500;
    let good = MockBidder::start(Answer::Bid(1.25));
    let sleeper = MockBidder::start(Answer::SleepThenBid(
        Duration::from_millis(10 * TMAX_MS),
        9.0,
    ));
    let broken = MockBidder::start(Answer::Status(500));
    let malformed = MockBidder::start(Answer::Malformed);
    let server = start(
        "auction-isolation",
        "US",
        TMAX_MS,
        &[
            BidderSpec {
                name: "sleeper",
                url: sleeper.url("/"),
                extra: "",
            },
            BidderSpec {
                name: "broken",
                url: broken.url("/"),
                extra: "",
            },
            BidderSpec {
                name: "malformed",
                url: malformed.url("/"),
                extra: "",
            },
            BidderSpec {
                name: "good",
                url: good.url("/"),
                extra: "",
            },
        ],
    );
    let started = Instant::now();
    let answer = auction_call(&server, Some("US"), None, &[], &[]);
    let elapsed = started.elapsed();
    // The behaviour, not a timing bound: the page has its answer while the sleeper (10× tmax)
    // has not answered yet.
    assert!(
        !sleeper.answered.load(Ordering::SeqCst),
        "the page waited for the sleeping bidder ({elapsed:?})"
    );
    eprintln!("auction with a bidder sleeping past tmax ({TMAX_MS} ms) answered in {elapsed:?}");
    assert_eq!(sleeper.received().len(), 1, "the sleeper was asked");
    assert_eq!(
        answer["winners"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    let winner = &answer["winners"][0];
    assert_eq!(winner["ad_unit"], "side");
    assert_eq!(winner["bidder"], "good");
    assert_eq!(winner["price"], 1.25);
    assert_eq!(winner["markup"], "<div>1.25</div>");
    assert_eq!(
        (winner["width"].clone(), winner["height"].clone()),
        (json!(300), json!(250))
    );
    assert_eq!(answer["no_bid"], json!(["top"]));
    assert_eq!(answer["timed_out"], json!(["sleeper"]));
    assert_eq!(answer["failed"], json!(["broken", "malformed"]));
    let errors: Vec<(&str, &str)> = answer["bidders"]
        .as_array()
        .expect("bidders")
        .iter()
        .map(|b| {
            (
                b["bidder"].as_str().unwrap_or_default(),
                b["error"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("sleeper", "timed-out"),
            ("broken", "http-status"),
            ("malformed", "malformed-response"),
            ("good", "-")
        ]
    );
    // Metrics per bidder.
    let metrics = server.get("/_ts/metrics", &[]).body;
    for line in [
        "gatehouse_auction_bidder_requests_total{bidder=\"sleeper\"} 1",
        "gatehouse_auction_bidder_requests_total{bidder=\"good\"} 1",
        "gatehouse_auction_bidder_timeouts_total{bidder=\"sleeper\"} 1",
        "gatehouse_auction_bidder_timeouts_total{bidder=\"good\"} 0",
        "gatehouse_auction_bidder_errors_total{bidder=\"broken\",reason=\"http-status\"} 1",
        "gatehouse_auction_bidder_errors_total{bidder=\"malformed\",reason=\"malformed-response\"} 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
    assert!(!metrics.contains("bidder=\"good\",reason"), "{metrics}");
}

#[test]
fn auction_bidder_response_over_the_size_cap_is_dropped_as_malformed() {
    // A bidder answering a 2 MiB body (over the 1 MiB cap) never reaches the winners.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0_u8; 65536];
                let _ = stream.read(&mut buf);
                let body = format!("{{\"id\":\"x\",\"pad\":\"{}\"}}", "a".repeat(2 << 20));
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    let server = start(
        "auction-size-cap",
        "US",
        10_000,
        &[BidderSpec {
            name: "huge",
            url: format!("http://{addr}/"),
            extra: "",
        }],
    );
    let answer = auction_call(&server, Some("US"), None, &[], &[]);
    assert_eq!(answer["failed"], json!(["huge"]));
    assert_eq!(answer["bidders"][0]["error"], "malformed-response");
    let log = server.log_when(|log| log.contains("over the limit"));
    assert!(log.contains("over the limit of 1048576"), "{log}");
}

// ---- must-show 3: consent_forwarding on the Cookie header ------------------------------------

/// One bidder in `mode`, a visitor in France with a TCF record, the AC string, a GPP string
/// and a US Privacy string; returns what the bidder received.
fn forwarded_to(mode: &str) -> Received {
    let bidder = MockBidder::start(Answer::Status(204));
    let server = start(
        &format!("auction-forwarding-{mode}"),
        "US",
        10_000,
        &[BidderSpec {
            name: "partner",
            url: bidder.url("/"),
            extra: &format!(
                "bidstream_enabled = true\nconsent_forwarding = \"{mode}\"\nforward_cookies = [\"pub_seg\"]"
            ),
        }],
    );
    let tc = full_consent();
    auction_call(
        &server,
        Some("FR"),
        None,
        &[
            ("euconsent-v2", &tc),
            ("addtl_consent", AC),
            ("us_privacy", "1---"),
        ],
        &[],
    );
    bidder.only()
}

#[test]
fn auction_openrtb_only_strips_consent_cookies_from_the_cookie_header() {
    let r = forwarded_to("openrtb_only");
    assert_eq!(r.header("cookie"), Some("pub_seg=sports"));
    assert_eq!(r.body["user"]["consent"], full_consent().as_str());
    assert_eq!(r.body["regs"]["us_privacy"], "1---");
}

#[test]
fn auction_cookies_only_sends_consent_cookies_and_no_consent_string_in_the_body() {
    let r = forwarded_to("cookies_only");
    let tc = full_consent();
    assert_eq!(
        r.header("cookie"),
        Some(
            format!("pub_seg=sports; euconsent-v2={tc}; addtl_consent={AC}; us_privacy=1---")
                .as_str()
        )
    );
    assert!(r.body["user"].get("consent").is_none(), "{}", r.body);
    assert!(r.body["regs"].get("us_privacy").is_none(), "{}", r.body);
    assert_eq!(r.body["regs"]["gdpr"], 1, "a fact of jurisdiction stays");
}

#[test]
fn auction_both_sends_consent_in_cookies_and_body_but_never_the_edge_cookie() {
    let r = forwarded_to("both");
    let tc = full_consent();
    let cookie = r.header("cookie").expect("cookie header");
    assert_eq!(
        cookie,
        format!("pub_seg=sports; euconsent-v2={tc}; addtl_consent={AC}; us_privacy=1---")
    );
    assert!(!cookie.contains("ts-ec"), "{cookie}");
    assert!(!cookie.contains("other=1"), "{cookie}");
    assert_eq!(r.body["user"]["consent"], tc.as_str());
    assert_eq!(r.body["regs"]["us_privacy"], "1---");
}

// ---- the page's input ----------------------------------------------------------------------------

fn one_bidder_server(label: &str) -> (MockBidder, Server) {
    let bidder = MockBidder::start(Answer::Bid(1.0));
    let server = start(
        label,
        "US",
        10_000,
        &[BidderSpec {
            name: "partner",
            url: bidder.url("/"),
            extra: "",
        }],
    );
    (bidder, server)
}

fn problem(response: &Response) -> Value {
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{response:?}"
    );
    serde_json::from_str(&response.body).expect("problem json")
}

#[test]
fn auction_invalid_input_is_a_400_problem_naming_the_field_and_reaches_no_bidder() {
    let (bidder, server) = one_bidder_server("auction-invalid");
    let mut body = input();
    body["ad_units"][1]["sizes"][0] = json!([0, 90]);
    let response = post(
        &server,
        "/_ts/api/v1/auction",
        &[("Content-Type", "application/json; charset=utf-8")],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 400);
    let doc = problem(&response);
    assert_eq!(doc["type"], "/_ts/problems/invalid-auction-input");
    assert_eq!(doc["field"], "ad_units[1].sizes[0]");
    assert_eq!(doc["status"], 400);
    let response = post(
        &server,
        "/_ts/api/v1/auction",
        &[("Content-Type", "application/json")],
        b"{\"page_url\": ",
    );
    assert_eq!(response.status, 400);
    assert_eq!(problem(&response)["field"], "body");
    assert!(bidder.received().is_empty());
}

#[test]
fn auction_refuses_other_media_types_large_bodies_and_other_methods() {
    let (bidder, server) = one_bidder_server("auction-refusals");
    let json_body = input().to_string();
    let response = post(
        &server,
        "/_ts/api/v1/auction",
        &[("Content-Type", "text/plain")],
        json_body.as_bytes(),
    );
    assert_eq!(response.status, 415);
    assert_eq!(
        problem(&response)["type"],
        "/_ts/problems/unsupported-media-type"
    );
    // Declared over 64 KiB: refused before the body is read (so none is sent).
    let response = http_raw(
        server.addr,
        b"POST /_ts/api/v1/auction HTTP/1.1\r\nHost: news.example\r\nContent-Type: application/json\r\n\
          Content-Length: 65537\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 413);
    assert_eq!(
        problem(&response)["type"],
        "/_ts/problems/payload-too-large"
    );
    let response = server.get("/_ts/api/v1/auction", &[]);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    assert_eq!(
        problem(&response)["type"],
        "/_ts/problems/method-not-allowed"
    );
    assert!(bidder.received().is_empty());
}

#[test]
fn auction_route_answers_404_when_no_auction_is_configured() {
    let origin = Origin::start();
    let server = Server::start("auction-off", &config(&origin.url(), "US", ""));
    let response = post(
        &server,
        "/_ts/api/v1/auction",
        &[("Content-Type", "application/json")],
        input().to_string().as_bytes(),
    );
    assert_eq!(response.status, 404);
    assert_eq!(problem(&response)["type"], "/_ts/problems/not-found");
    assert!(origin.requests.lock().expect("requests").is_empty());
}

#[test]
fn auction_config_error_names_the_key_at_startup() {
    let origin = Origin::start();
    let path = crate::support::write_config(
        "auction-bad-config",
        &config(
            &origin.url(),
            "US",
            "[auction]\ntmax_ms = 100\n[[auction.bidders]]\nname = \"a\"\nurl = \"ftp://x\"\n",
        ),
    );
    let out = crate::support::run(&["serve", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`auction.bidders[0].url`"), "{stderr}");
    let path = crate::support::write_config(
        "auction-unknown-key",
        &config(&origin.url(), "US", "[auction]\ntmax = 100\n"),
    );
    let out = crate::support::run(&["serve", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tmax"), "{stderr}");
}
