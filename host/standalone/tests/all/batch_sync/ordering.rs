//! Ordering: concurrent batches from several partners for the same identities, timestamps
//! shuffled across batches. Per (identity, partner) the stored value is the one with the
//! greatest timestamp, and nothing acknowledged is lost.

use std::sync::Arc;

use gatehouse::batch_sync::BatchSync;
use gatehouse_core::identity::IdentityStore;
use rand::seq::SliceRandom as _;
use serde_json::json;

use super::{batch_from, ec, endpoint, now, redb_store, seed, send, synced};

const PARTNERS: [&str; 4] = ["ssp-a", "ssp-b", "dsp-c", "idv-d"];
const IDENTITIES: usize = 16;
const BATCHES_PER_PARTNER: usize = 12;

/// Sends every partner's batches concurrently through `endpoints` (partner `i` uses endpoint
/// `i % endpoints.len()`, so several endpoints play several Gatehouse nodes on one store), then
/// checks the store.
pub async fn shuffled_concurrent_batches_keep_the_greatest_timestamp(
    store: Arc<dyn IdentityStore>,
    endpoints: Vec<Arc<BatchSync>>,
) {
    for i in 0..IDENTITIES {
        seed(store.as_ref(), &ec(i));
    }
    let base = now() - 10_000;
    let mut tasks = Vec::new();
    for (p, partner) in PARTNERS.iter().enumerate() {
        // Each batch carries every identity once; batch `b` gets timestamp offset `order[b]`,
        // a different shuffle per identity, so arrival order says nothing about recency.
        let orders: Vec<Vec<u64>> = (0..IDENTITIES)
            .map(|_| {
                let mut order: Vec<u64> = (1..=BATCHES_PER_PARTNER as u64).collect();
                order.shuffle(&mut rand::rng());
                order
            })
            .collect();
        // `b` is a batch number into every identity's own shuffle, not an index into one slice.
        #[allow(clippy::needless_range_loop)]
        for b in 0..BATCHES_PER_PARTNER {
            let mappings: Vec<serde_json::Value> = (0..IDENTITIES)
                .map(|i| {
                    let t = base + orders[i][b] * 10 + p as u64;
                    json!({"ec_id": ec(i), "partner_uid": format!("{partner}-{t}"), "timestamp": t})
                })
                .collect();
            let endpoint = Arc::clone(&endpoints[p % endpoints.len()]);
            let body = json!({ "mappings": mappings });
            let partner = (*partner).to_owned();
            tasks.push(tokio::spawn(async move {
                let answer = send(&endpoint, batch_from(&partner, &body)).await;
                (partner, body, answer.status, answer.body)
            }));
        }
    }
    let mut acknowledged = std::collections::HashMap::<(usize, String), u64>::new();
    for task in tasks {
        let (partner, body, status, answer) = task.await.expect("task");
        assert_eq!(status, 200, "every mapping is valid: {answer}");
        assert_eq!(answer["accepted"], IDENTITIES);
        for (i, mapping) in body["mappings"]
            .as_array()
            .expect("mappings")
            .iter()
            .enumerate()
        {
            let t = mapping["timestamp"].as_u64().expect("t");
            let best = acknowledged.entry((i, partner.clone())).or_default();
            *best = (*best).max(t);
        }
    }
    assert_eq!(acknowledged.len(), IDENTITIES * PARTNERS.len());
    for ((i, partner), best) in acknowledged {
        let stored = synced(store.as_ref(), &ec(i), &partner).expect("stored");
        assert_eq!(
            (stored.synced, stored.id.as_str()),
            (best, format!("{partner}-{best}").as_str()),
            "identity {i}, partner {partner}"
        );
    }
}

pub fn all_partners(store: &Arc<dyn IdentityStore>) -> BatchSync {
    let ids: Vec<(&str, u32)> = PARTNERS.iter().map(|p| (*p, 10_000)).collect();
    endpoint(&ids, Some(Arc::clone(store)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_shuffled_batches_from_four_partners_keep_the_greatest_timestamp_on_redb() {
    let store = redb_store("sync-order-redb");
    let endpoint = Arc::new(all_partners(&store));
    shuffled_concurrent_batches_keep_the_greatest_timestamp(store, vec![endpoint]).await;
}
