use std::path::PathBuf;

use serde_json::{json, Map, Value};
use simile_index::{BackendFactory, BackendParams, Metric, SimilarityBackend};
use simile_milvus::{MilvusFactory, MilvusIndex};

/// The test server's URI, user and password. Panics (no silent skip) when it is not configured.
pub fn server() -> (String, Option<String>, Option<String>) {
    let uri = std::env::var("SIMILE_TEST_MILVUS_URI").unwrap_or_else(|_| {
        panic!(
            "SIMILE_TEST_MILVUS_URI is not set: these tests need a real Milvus server. \
             Run them through `cargo xtask ci`, or start one with `cargo xtask milvus start --auth` \
             and export SIMILE_TEST_MILVUS_URI, SIMILE_TEST_MILVUS_USER and SIMILE_TEST_MILVUS_PASSWORD \
             as it prints"
        )
    });
    let user = std::env::var("SIMILE_TEST_MILVUS_USER")
        .ok()
        .filter(|s| !s.is_empty());
    let password = std::env::var("SIMILE_TEST_MILVUS_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty());
    (uri, user, password)
}

/// Backend params for the test server, plus `extra`.
pub fn params(extra: Value) -> BackendParams {
    let (uri, user, password) = server();
    let mut p = Map::new();
    p.insert("uri".into(), Value::String(uri));
    if let Some(u) = user {
        p.insert("user".into(), Value::String(u));
    }
    if let Some(pw) = password {
        p.insert("password".into(), Value::String(pw));
    }
    if let Value::Object(extra) = extra {
        p.extend(extra);
    }
    BackendParams {
        params: p,
        storage_dir: PathBuf::from("/nonexistent"),
        dataset_name: "simile test".into(),
        brain_key: None,
        patches: false,
    }
}

/// A new index (new collection name) for `metric` with extra params.
pub fn index_with(metric: Metric, extra: Value) -> Box<dyn SimilarityBackend> {
    let mut p = params(extra);
    p.params
        .insert("metric".into(), Value::String(metric.as_str().into()));
    MilvusFactory.create(&p).unwrap()
}

pub fn index(metric: Metric) -> Box<dyn SimilarityBackend> {
    index_with(metric, json!({}))
}

pub fn milvus(b: &dyn SimilarityBackend) -> &MilvusIndex {
    b.as_any().downcast_ref::<MilvusIndex>().unwrap()
}

pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:06}")).collect()
}
