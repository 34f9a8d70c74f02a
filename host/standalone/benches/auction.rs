//! Issue 13, must-show 5: the overhead of one auction beyond its slowest bidder.
//!
//! Starts the real `gatehouse serve` (the bench profile's binary) with the three bundled
//! providers and three loopback OpenRTB bidders that answer after 1, 2 and 3 ms. Each bidder
//! measures its own service time (request read → response written). For every auction,
//!
//! ```text
//! overhead = page round trip − the slowest bidder's service time
//! ```
//!
//! is what Gatehouse adds: reading and validating the input, the page pipeline (geo, device and
//! Edge Cookie providers), building and serialising three bid requests, three loopback HTTP
//! exchanges, choosing the winners and answering. In the same run, a client calling the slowest
//! bidder directly gives the cost of one bare loopback HTTP exchange (`direct`), for comparison.
//! Requests are sequential over one keep-alive connection, so the numbers are latencies, not
//! throughput.
//!
//! Usage: `cargo bench -p gatehouse --bench auction [-- SAMPLES]` (default 2000 after 200
//! warm-up auctions). Binds 127.0.0.1 only; the server is stopped on exit.

mod support;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{UA, connect, percentile, serve};

/// An auction POST from a US browser; the response body.
fn post(reader: &mut BufReader<TcpStream>, path: &str, body: &str) -> Vec<u8> {
    let ua = format!("User-Agent: {UA}");
    support::post(reader, path, &[&ua, "X-Geo-Country: US"], body).1
}

/// One request read by a bench bidder; its body.
fn read_message(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    support::read_message(reader).map(|(_, body)| body)
}

/// How a bench bidder answers after its delay.
#[derive(Clone, Copy)]
enum Mode {
    Bid,
    Status500,
    Malformed,
}

/// A loopback OpenRTB bidder answering after `delay`, recording its last service time in ns.
fn bidder(delay: Duration) -> (SocketAddr, Arc<AtomicU64>) {
    bidder_with(delay, Mode::Bid)
}

fn bidder_with(delay: Duration, mode: Mode) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let last = Arc::new(AtomicU64::new(0));
    let record = Arc::clone(&last);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = BufReader::new(stream);
                loop {
                    let Some(body) = read_message(&mut reader) else {
                        return;
                    };
                    let started = Instant::now();
                    let request: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    std::thread::sleep(delay);
                    let answer = serde_json::json!({
                        "id": request["id"], "cur": "USD",
                        "seatbid": [{"bid": [{"id": "1", "impid": "1", "price": 1.0 + delay.as_secs_f64(),
                            "w": 300, "h": 250, "adm": "<div>ad</div>"}]}]
                    })
                    .to_string();
                    let (status, answer) = match mode {
                        Mode::Bid => (200, answer),
                        Mode::Status500 => (500, String::new()),
                        Mode::Malformed => (200, "{\"id\": [".to_owned()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    // Stored before the answer leaves, so the client always reads this
                    // auction's value.
                    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    record.store(nanos, Ordering::SeqCst);
                    if reader.get_mut().write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, last)
}

/// Must-show 2 in release: tmax 50 ms, a bidder sleeping 10× tmax, one answering 500, one
/// malformed, one good. Returns the sorted answer times minus tmax, in ms.
fn isolation(dir: &std::path::Path, rounds: usize, body: &str) -> Vec<f64> {
    const TMAX_MS: u64 = 50;
    let bidders = [
        ("sleeper", bidder(Duration::from_millis(10 * TMAX_MS)).0),
        ("broken", bidder_with(Duration::ZERO, Mode::Status500).0),
        ("malformed", bidder_with(Duration::ZERO, Mode::Malformed).0),
        ("good", bidder(Duration::ZERO).0),
    ];
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[origin]\nurl = \"builtin:demo\"\n\
         [runtime]\ncache_dir = \"{}\"\n[geo]\ndefault_country = \"US\"\n\
         [auction]\ntmax_ms = {TMAX_MS}\n",
        dir.join("cache").display()
    );
    for (name, addr) in bidders {
        config.push_str(&format!(
            "[[auction.bidders]]\nname = \"{name}\"\nurl = \"http://{addr}/\"\n"
        ));
    }
    let (_server, addr) = serve(&dir.join("isolation.toml"), &config);
    let mut client = connect(addr);
    let mut beyond = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let answer: serde_json::Value =
            serde_json::from_slice(&post(&mut client, "/_ts/api/v1/auction", body)).expect("json");
        beyond.push(started.elapsed().as_secs_f64() * 1e3 - TMAX_MS as f64);
        assert_eq!(answer["winners"][0]["bidder"], "good", "{answer}");
        assert_eq!(
            answer["timed_out"],
            serde_json::json!(["sleeper"]),
            "{answer}"
        );
    }
    beyond.sort_by(f64::total_cmp);
    beyond
}

fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let bidders: Vec<(SocketAddr, Arc<AtomicU64>)> = [1, 2, 3]
        .into_iter()
        .map(|ms| bidder(Duration::from_millis(ms)))
        .collect();
    let dir = std::env::temp_dir().join(format!("gatehouse-auction-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [origin]\nurl = \"builtin:demo\"\n[runtime]\ncache_dir = \"{}\"\n\
         [geo]\ndefault_country = \"US\"\nprovider = \"header-geo\"\n[device]\nprovider = \"ua-device\"\n\
         [ec]\nprovider = \"hmac\"\n[ec.providers.hmac]\npassphrase = \"bench\"\n\
         [auction]\ntmax_ms = 1000\n",
        dir.join("cache").display()
    );
    for (i, (addr, _)) in bidders.iter().enumerate() {
        config.push_str(&format!(
            "[[auction.bidders]]\nname = \"b{i}\"\nurl = \"http://{addr}/\"\nbidstream_enabled = true\n"
        ));
    }
    let (server, addr) = serve(&dir.join("gatehouse.toml"), &config);
    let body = serde_json::json!({
        "page_url": "https://news.example/a",
        "ad_units": [
            {"code": "top", "media_type": "banner", "sizes": [[300, 250], [728, 90]]},
            {"code": "side", "media_type": "banner", "sizes": [[160, 600]], "floor": 0.2}
        ]
    })
    .to_string();
    let mut client = connect(addr);
    let first: serde_json::Value =
        serde_json::from_slice(&post(&mut client, "/_ts/api/v1/auction", &body)).expect("json");
    assert_eq!(
        first["winners"][0]["bidder"], "b2",
        "every bidder answers and the highest bid wins: {first}"
    );
    let slowest = &bidders[2];
    let mut direct_client = connect(slowest.0);
    let direct_body = r#"{"id":"x"}"#;
    let mut overhead = Vec::with_capacity(samples);
    let mut direct = Vec::with_capacity(samples);
    for i in 0..(200 + samples) {
        let started = Instant::now();
        let answer = post(&mut client, "/_ts/api/v1/auction", &body);
        let total = started.elapsed().as_secs_f64() * 1e3;
        let slowest_service = bidders
            .iter()
            .map(|(_, last)| last.load(Ordering::SeqCst))
            .max()
            .unwrap_or(0) as f64
            / 1e6;
        assert!(answer.starts_with(b"{\"id\""), "an auction answer");
        let started = Instant::now();
        post(&mut direct_client, "/", direct_body);
        let direct_total = started.elapsed().as_secs_f64() * 1e3;
        let direct_service = slowest.1.load(Ordering::SeqCst) as f64 / 1e6;
        if i >= 200 {
            overhead.push(total - slowest_service);
            direct.push(direct_total - direct_service);
        }
    }
    drop(server);
    let isolation = isolation(&dir, 50, &body);
    let _ = std::fs::remove_dir_all(&dir);
    for v in [&mut overhead, &mut direct] {
        v.sort_by(f64::total_cmp);
    }
    let load = support::loadavg();
    println!(
        "auction overhead beyond the slowest bidder ({samples} auctions, 3 bidders at 1/2/3 ms, \
         3 providers; loadavg {}):",
        load
    );
    for (name, v) in [
        ("gatehouse auction", &overhead),
        ("direct to bidder ", &direct),
    ] {
        println!(
            "  {name}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms",
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99)
        );
    }
    println!(
        "  ratio p50 auction overhead / one direct loopback exchange: {:.1}x",
        percentile(&overhead, 0.5) / percentile(&direct, 0.5)
    );
    println!(
        "isolation (tmax 50 ms; a bidder sleeping 500 ms, one 500, one malformed, one good; \
         50 auctions): answer after tmax + p50 {:.2} ms, max {:.2} ms",
        percentile(&isolation, 0.5),
        isolation.last().copied().unwrap_or_default()
    );
}
