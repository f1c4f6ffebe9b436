//! A server restart in the middle of a session: the next calls on the same handle succeed.
//!
//! It takes the server down, so `cargo xtask ci` runs it alone, on a server of its own, with
//! `SIMILE_TEST_MILVUS_RESTART_CMD` set to `cargo xtask milvus restart` (stop, then start on the
//! same data dir). By hand: `cargo xtask milvus start --auth`, export what it prints and
//! `SIMILE_TEST_MILVUS_RESTART_CMD="cargo xtask milvus restart"`, then run this test alone.
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use simile_index::conformance::random_vectors;
use simile_index::{BackendFactory, Embeddings, KnnQuery, Metric};
use simile_milvus::MilvusFactory;

use crate::common::{ids, index_with, milvus, params};

#[test]
fn server_restart_mid_session_is_survived() {
    let restart = std::env::var("SIMILE_TEST_MILVUS_RESTART_CMD").unwrap_or_else(|_| {
        panic!(
            "SIMILE_TEST_MILVUS_RESTART_CMD is not set: this test restarts the Milvus server and runs \
             alone in `cargo xtask ci` (see this file's docs to run it by hand)"
        )
    });
    let b = index_with(Metric::Cosine, json!({"consistency_level": "Session"}));
    let keys = ids("r", 300);
    let data = random_vectors(300, 16, 21);
    b.upsert(&Embeddings::for_samples(16, data.clone(), keys.clone()).unwrap())
        .unwrap();
    let before = b.knn(&KnnQuery::nearest(&data[..16], 5)).unwrap();
    assert_eq!(before[0].key, keys[0]);
    let cfg = b.persisted_config();

    let status = Command::new("sh").arg("-c").arg(&restart).status().unwrap();
    assert!(status.success(), "`{restart}` failed: {status}");

    // The same handle (and its shared client) carries on. The first call may wait while the
    // server loads the collection again; a bound keeps a hang from passing unnoticed.
    let t = Instant::now();
    let size = b.size();
    let first_call = t.elapsed();
    assert_eq!(
        size.unwrap(),
        300,
        "rows written before the restart are still there"
    );
    assert!(
        first_call < Duration::from_secs(120),
        "the first call after the restart took {first_call:?}"
    );
    let after = b.knn(&KnnQuery::nearest(&data[..16], 5)).unwrap();
    assert_eq!(
        after.iter().map(|h| &h.key).collect::<Vec<_>>(),
        before.iter().map(|h| &h.key).collect::<Vec<_>>()
    );
    // Writes work too, and a handle opened after the restart from the run's config sees them.
    let more = ids("s", 20);
    b.upsert(&Embeddings::for_samples(16, random_vectors(20, 16, 22), more.clone()).unwrap())
        .unwrap();
    assert_eq!(b.size().unwrap(), 320);
    let mut p = params(json!({}));
    p.params.extend(cfg);
    let reopened = MilvusFactory.open(&p).unwrap();
    assert_eq!(
        milvus(reopened.as_ref()).collection_name(),
        milvus(b.as_ref()).collection_name()
    );
    assert_eq!(reopened.get(&more).unwrap().len(), 20);
    b.cleanup().unwrap();
}
