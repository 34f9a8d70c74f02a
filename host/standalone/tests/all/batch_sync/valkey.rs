//! The ordering guarantee on Valkey, with two endpoints (two Gatehouse nodes) sharing it.

use std::sync::Arc;

use gatehouse_core::identity::IdentityStore;
use gatehouse_store::{ValkeyOptions, ValkeyStore};

use super::ordering::{all_partners, shuffled_concurrent_batches_keep_the_greatest_timestamp};
use crate::valkey_support::Valkey;

fn store(valkey: &Valkey) -> Arc<dyn IdentityStore> {
    Arc::new(ValkeyStore::connect(&valkey.url(), ValkeyOptions::default()).expect("connect"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_shuffled_batches_from_four_partners_on_two_nodes_keep_the_greatest_timestamp_on_valkey()
 {
    let valkey = Valkey::start();
    let node_a = Arc::new(all_partners(&store(&valkey)));
    let node_b = Arc::new(all_partners(&store(&valkey)));
    shuffled_concurrent_batches_keep_the_greatest_timestamp(store(&valkey), vec![node_a, node_b])
        .await;
}
