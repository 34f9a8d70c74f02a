//! Crash safety: under sustained sync load from two partners, `kill -9` the server; every
//! mapping it acknowledged (200) is in the embedded store afterwards, and the server restarts
//! on the same file.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gatehouse_store::RedbStore;
use serde_json::json;

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec, temp_dir};

use super::{key_of, now, synced};

const IDENTITIES: usize = 24;
const PARTNERS: [&str; 2] = ["ssp", "dsp"];

fn partners_toml() -> String {
    PARTNERS
        .iter()
        .map(|id| {
            let hash = gatehouse_core::sync::hash_api_key(key_of(id).as_bytes()).expect("hash");
            format!(
                "\n[[partners]]\nid = \"{id}\"\nname = \"{id}\"\nsource_domain = \"{id}.example\"\n\
                 api_key_sha256 = \"{hash}\"\nbatch_rate_limit = 1000000\n"
            )
        })
        .collect()
}

/// One batch-sync POST; the status, or `None` when the server is gone.
fn post(addr: SocketAddr, key: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let request = format!(
        "POST /_ts/api/v1/batch-sync HTTP/1.1\r\nhost: gatehouse.test\r\nconnection: close\r\n\
         authorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let head = String::from_utf8_lossy(&response);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Mints one identity through a page view in the US (store-on-device held).
fn mint(server: &Server) -> String {
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "US")]);
    let cookie = response
        .set_cookie("ts-ec")
        .expect("an Edge Cookie is minted");
    cookie
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("ts-ec="))
        .expect("value")
        .to_owned()
}

#[test]
fn every_acknowledged_mapping_survives_kill_9_under_sustained_sync_load() {
    let origin = Origin::start();
    let dir = temp_dir("sync-crash");
    let path = dir.join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            &origin.url(),
            "US",
            &format!("{}{}", hmac_ec(), partners_toml()),
        ),
    )
    .expect("write config");
    let server = Server::start_at(&path);
    let ecs: Arc<Vec<String>> = Arc::new((0..IDENTITIES).map(|_| mint(&server)).collect());

    // Each partner sends batches of every identity with a timestamp one higher than the last,
    // as fast as the server answers, and remembers the last acknowledged timestamp.
    let stop = Arc::new(AtomicBool::new(false));
    let base = now() - 100_000;
    let acked: Vec<Arc<AtomicU64>> = PARTNERS
        .iter()
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let load: Vec<_> = PARTNERS
        .iter()
        .zip(&acked)
        .map(|(partner, acked)| {
            let (stop, ecs, acked, addr) =
                (Arc::clone(&stop), Arc::clone(&ecs), Arc::clone(acked), server.addr);
            let key = key_of(partner);
            std::thread::spawn(move || {
                let mut t = base;
                while !stop.load(Ordering::SeqCst) {
                    t += 1;
                    let mappings: Vec<_> = ecs
                        .iter()
                        .map(|ec| json!({"ec_id": ec, "partner_uid": format!("uid-{t}"), "timestamp": t}))
                        .collect();
                    match post(addr, &key, &json!({ "mappings": mappings }).to_string()) {
                        Some(200) => acked.store(t, Ordering::SeqCst),
                        Some(status) => panic!("unexpected status {status}"),
                        None => break,
                    }
                }
            })
        })
        .collect();
    // Kill while both partners are mid-stream: after each has several acknowledged batches.
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < base + 5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut server = server;
    server.signal(rustix::process::Signal::KILL);
    assert!(
        server.wait_exit(Duration::from_secs(60)).is_some(),
        "killed"
    );
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().expect("load thread");
    }

    let store = RedbStore::open(dir.join("gatehouse-store.redb")).expect("reopen after kill -9");
    for (partner, acked) in PARTNERS.iter().zip(&acked) {
        let acked = acked.load(Ordering::SeqCst);
        assert!(acked > base, "{partner} had acknowledged batches");
        for ec in ecs.iter() {
            let stored = synced(&store, ec, partner).expect("acknowledged mapping stored");
            assert!(
                stored.synced >= acked,
                "{partner}: stored {} < acknowledged {acked}",
                stored.synced
            );
            assert_eq!(stored.id, format!("uid-{}", stored.synced));
        }
    }
    drop(store);

    // The server restarts on the same file and syncs again.
    let server = Server::start_at(&path);
    let t = acked[0].load(Ordering::SeqCst) + 1_000;
    let body = json!({"mappings": [{"ec_id": ecs[0], "partner_uid": "after", "timestamp": t}]});
    assert_eq!(
        post(server.addr, &key_of("ssp"), &body.to_string()),
        Some(200)
    );
}
