//! Issue 12, must-show 5: `POST /_ts/api/v1/batch-sync` through the real `gatehouse serve`.
//!
//! - **Latency of one 1000-mapping batch**, one partner, sequential over one keep-alive
//!   connection: every mapping is written (each batch carries newer timestamps than the last),
//!   on the embedded store (redb, durable: each acknowledged batch is fsynced) and on Valkey.
//!   Side by side, the same batch when every mapping is stale (read and decided, nothing
//!   written) isolates the cost of the writes.
//! - **Throughput with four partners** posting 1000-mapping batches at once for the same 1000
//!   identities (so their compare-and-swap writes contend on the same records): mappings
//!   written per second.
//!
//! The identities are seeded into the store before the server starts. Valkey runs with
//! `appendonly yes`, `appendfsync everysec` (its common production setting).
//!
//! Usage: `cargo bench -p gatehouse --bench batch_sync [-- BATCHES]` (default 40 timed batches
//! per case after 5 warm-up batches). Needs `valkey-server` or `redis-server` for the Valkey
//! rows (skipped with a note when neither is installed). Binds 127.0.0.1 only.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_core::identity::{
    IdentityRecord, IdentityStore, LiveIdentity, Write, WriteMode, identity_key,
};
use gatehouse_core::pipeline::DeviceClass;
use gatehouse_store::{RedbStore, ValkeyOptions, ValkeyStore};
use support::{Stop, connect, loadavg, percentile, post, serve};

const IDENTITIES: usize = 1000;
const PARTNERS: usize = 4;
const MAX_AGE_SECS: u64 = 365 * 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The Edge Cookie value number `n`.
fn ec(n: usize) -> String {
    format!("{:064x}.bench{}", n + 1, n % 10)
}

fn key_of(partner: usize) -> String {
    format!("bench-partner-{partner}-key-0123456789abcdef0123456789")
}

/// Stores [`IDENTITIES`] live identities, created a minute ago.
fn seed(store: &dyn IdentityStore) {
    let record = IdentityRecord::Live(LiveIdentity {
        created: now() - 60,
        consent: None,
        country: Some("US".into()),
        region: None,
        device: DeviceClass::Desktop,
        partners: Default::default(),
    })
    .encode();
    let keys: Vec<String> = (0..IDENTITIES).map(|n| identity_key(&ec(n))).collect();
    let writes: Vec<Write<'_>> = keys
        .iter()
        .map(|key| Write {
            key,
            value: &record,
            mode: WriteMode::Overwrite,
            ttl: Some(Duration::from_secs(MAX_AGE_SECS)),
        })
        .collect();
    for result in store.insert_many(&writes) {
        result.expect("seed identity");
    }
}

/// A batch of one mapping per identity, all with `timestamp`.
fn batch(partner: usize, timestamp: u64) -> String {
    let mappings: Vec<serde_json::Value> = (0..IDENTITIES)
        .map(|n| {
            serde_json::json!({
                "ec_id": ec(n),
                "partner_uid": format!("p{partner}-user-{n}-{timestamp}"),
                "timestamp": timestamp,
            })
        })
        .collect();
    serde_json::json!({ "mappings": mappings }).to_string()
}

/// The server config: the store section, four partners, an Edge Cookie provider (the store
/// serves it).
fn config(dir: &Path, store: &str) -> String {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[origin]\nurl = \"builtin:demo\"\n\
         [runtime]\ncache_dir = \"{}\"\n[geo]\ndefault_country = \"US\"\n\
         [ec]\nprovider = \"hmac\"\n[ec.providers.hmac]\npassphrase = \"bench\"\n{store}\n",
        dir.join("cache").display()
    );
    for p in 0..PARTNERS {
        let hash = gatehouse_core::sync::hash_api_key(key_of(p).as_bytes()).expect("long key");
        config.push_str(&format!(
            "[[partners]]\nid = \"p{p}\"\nname = \"P{p}\"\nsource_domain = \"p{p}.example\"\n\
             api_key_sha256 = \"{hash}\"\nbatch_rate_limit = 1000000\n"
        ));
    }
    config
}

/// Posts one batch as `partner`; asserts every mapping was accepted; returns the elapsed ms.
fn timed_batch(client: &mut std::io::BufReader<TcpStream>, partner: usize, body: &str) -> f64 {
    let auth = format!("Authorization: Bearer {}", key_of(partner));
    let started = Instant::now();
    let (status, answer) = post(client, "/_ts/api/v1/batch-sync", &[&auth], body);
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], IDENTITIES, "{answer}");
    elapsed
}

struct Latency {
    written: Vec<f64>,
    stale: Vec<f64>,
}

/// Sequential batches from partner 0: `batches` that write every mapping, then `batches` that
/// are all stale.
fn latency(addr: SocketAddr, batches: usize, start: u64) -> Latency {
    let mut client = connect(addr);
    let mut written = Vec::with_capacity(batches);
    for i in 0..(5 + batches) {
        let ms = timed_batch(&mut client, 0, &batch(0, start + i as u64));
        if i >= 5 {
            written.push(ms);
        }
    }
    let stale_body = batch(0, start - 1);
    let mut stale = Vec::with_capacity(batches);
    for i in 0..(5 + batches) {
        let ms = timed_batch(&mut client, 0, &stale_body);
        if i >= 5 {
            stale.push(ms);
        }
    }
    for v in [&mut written, &mut stale] {
        v.sort_by(f64::total_cmp);
    }
    Latency { written, stale }
}

/// Four partners at once, `batches` batches each (every one writes all its mappings);
/// mappings written per second.
fn throughput(addr: SocketAddr, batches: usize, start: u64) -> f64 {
    let bodies: Vec<Vec<String>> = (0..PARTNERS)
        .map(|p| (0..batches).map(|i| batch(p, start + i as u64)).collect())
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for (p, bodies) in bodies.iter().enumerate() {
            s.spawn(move || {
                let mut client = connect(addr);
                for body in bodies {
                    timed_batch(&mut client, p, body);
                }
            });
        }
    });
    (PARTNERS * batches * IDENTITIES) as f64 / started.elapsed().as_secs_f64()
}

fn report(name: &str, latency: &Latency, rate: f64) {
    let row = |what: &str, v: &[f64]| {
        println!(
            "  {name:<6} {what:<22} p50 {:>7.2} ms  p90 {:>7.2} ms  max {:>7.2} ms",
            percentile(v, 0.5),
            percentile(v, 0.9),
            v.last().copied().unwrap_or_default()
        );
    };
    row("1000 written", &latency.written);
    row("1000 stale (no write)", &latency.stale);
    println!("  {name:<6} four partners at once   {rate:>9.0} mappings written/s");
}

/// A Valkey server with an append-only file, stopped on drop; `None` when not installed.
fn valkey(dir: &Path) -> Option<(Stop, String)> {
    let binary = ["valkey-server", "redis-server"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    })?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = dir.join("valkey");
    std::fs::create_dir_all(&data).expect("valkey dir");
    let child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(&data)
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start valkey");
    let guard = Stop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "valkey did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((guard, format!("redis://127.0.0.1:{port}/")))
}

fn main() {
    let batches: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("gatehouse-batch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Timestamps an hour back, growing by one per batch, so every timed batch writes (and none
    // is ahead of the server's clock); the four-partner run continues above the latency run's.
    let start = now() - 3600;
    assert!(batches < 1000, "at most 999 batches per case");
    println!(
        "batch sync: {IDENTITIES}-mapping batches, {batches} timed per case; loadavg {}",
        loadavg()
    );

    let redb_path = dir.join("identity.redb");
    seed(&RedbStore::open(&redb_path).expect("open redb"));
    {
        let (_server, addr) = serve(
            &dir.join("redb.toml"),
            &config(
                &dir,
                &format!("[store]\npath = \"{}\"", redb_path.display()),
            ),
        );
        let latency = latency(addr, batches, start);
        let rate = throughput(addr, batches / 2, start + 1000);
        report("redb", &latency, rate);
    }

    match valkey(&dir) {
        None => println!("  valkey: skipped (neither valkey-server nor redis-server installed)"),
        Some((_valkey, url)) => {
            seed(&ValkeyStore::connect(&url, ValkeyOptions::default()).expect("connect valkey"));
            let (_server, addr) = serve(
                &dir.join("valkey.toml"),
                &config(&dir, &format!("[store]\nurl = \"{url}\"")),
            );
            let latency = latency(addr, batches, start);
            let rate = throughput(addr, batches / 2, start + 1000);
            report("valkey", &latency, rate);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
