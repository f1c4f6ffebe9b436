//! Backend behaviour beyond the shared suite: real upserts, exact sizes, read-your-writes,
//! large views, enumeration, config persistence, connection sharing.
use serde_json::{json, Value};
use simile_index::conformance::{random_vectors, reference_knn};
use simile_index::{
    BackendFactory, Embeddings, KnnQuery, Metric, SimilarityBackend, SECRET_PARAMS,
};
use simile_milvus::MilvusFactory;

use crate::common::{ids, index_with, milvus, params, server};

#[test]
fn upsert_never_duplicates_and_size_is_exact_after_deletes() {
    let b = index_with(
        Metric::Euclidean,
        json!({"batch_size": 300, "parallel_batches": 3}),
    );
    assert!(
        !b.created_storage(),
        "nothing created before the first upsert"
    );
    let keys = ids("u", 2000);
    let first = Embeddings::for_samples(8, random_vectors(2000, 8, 1), keys.clone()).unwrap();
    b.upsert(&first).unwrap();
    assert!(
        b.created_storage(),
        "the first upsert created the collection"
    );
    assert_eq!(b.size().unwrap(), 2000);
    let second = Embeddings::for_samples(8, random_vectors(2000, 8, 2), keys.clone()).unwrap();
    b.upsert(&second).unwrap();
    assert_eq!(
        b.size().unwrap(),
        2000,
        "re-adding the same ids must not create duplicates"
    );
    let got = b.get(&keys[1990..]).unwrap();
    assert_eq!(
        got.data(),
        &second.data()[1990 * 8..],
        "the second upsert's vectors win"
    );

    assert_eq!(b.remove(&keys[..700]).unwrap(), 700);
    assert_eq!(
        b.size().unwrap(),
        1300,
        "count(*) is exact right after deletes"
    );
    assert_eq!(b.remove(&keys[..700]).unwrap(), 0);
    assert_eq!(
        b.contains(&keys[698..702]).unwrap(),
        vec![false, false, true, true]
    );
    b.cleanup().unwrap();
}

#[test]
fn new_indexes_insert_new_keys_until_their_name_is_handed_out() {
    let b = index_with(Metric::Cosine, json!({"batch_size": 256}));
    let m = milvus(b.as_ref());
    assert!(!m.is_private(), "no collection yet");
    let keys = ids("p", 1500);
    let v1 = random_vectors(1500, 8, 11);
    let v2 = random_vectors(1500, 8, 12);
    b.upsert(&Embeddings::for_samples(8, v1[..1000 * 8].to_vec(), keys[..1000].to_vec()).unwrap())
        .unwrap();
    assert!(
        m.is_private(),
        "a new randomly named collection: new keys go as inserts"
    );
    // Half known keys (upserted), half new ones (inserted).
    b.upsert(&Embeddings::for_samples(8, v2[500 * 8..].to_vec(), keys[500..].to_vec()).unwrap())
        .unwrap();
    assert_eq!(
        b.size().unwrap(),
        1500,
        "a known key is never inserted twice"
    );
    assert_eq!(
        b.get(&keys[500..1000]).unwrap().data(),
        &v2[500 * 8..1000 * 8]
    );
    assert_eq!(b.remove(&keys[..100]).unwrap(), 100);
    b.upsert(&Embeddings::for_samples(8, v2[..100 * 8].to_vec(), keys[..100].to_vec()).unwrap())
        .unwrap();
    assert_eq!(b.size().unwrap(), 1500, "removed then re-added");
    // The name goes into a run record: another process may write now, so upserts only.
    let cfg = b.persisted_config();
    assert!(!m.is_private());
    assert_eq!(
        cfg.get("collection_name").and_then(Value::as_str),
        Some(m.collection_name())
    );
    b.upsert(&Embeddings::for_samples(8, v1.clone(), keys.clone()).unwrap())
        .unwrap();
    assert_eq!(b.size().unwrap(), 1500);
    assert_eq!(b.get(&keys[1400..]).unwrap().data(), &v1[1400 * 8..]);
    b.cleanup().unwrap();

    // A collection named by the user may have other writers from the start.
    let name = format!("simile_named_{}", std::process::id());
    let b = index_with(Metric::Cosine, json!({ "collection_name": name }));
    b.upsert(&Embeddings::for_samples(8, v1[..80].to_vec(), keys[..10].to_vec()).unwrap())
        .unwrap();
    assert!(!milvus(b.as_ref()).is_private());
    assert_eq!(b.size().unwrap(), 10);
    b.cleanup().unwrap();
}

#[test]
fn session_consistency_reads_its_own_writes() {
    let b = index_with(Metric::Cosine, json!({"consistency_level": "Session"}));
    let mut stored = 0;
    for round in 0..5u64 {
        let key = format!("rw{round}");
        let v = random_vectors(1, 16, 100 + round);
        b.upsert(&Embeddings::for_samples(16, v.clone(), vec![key.clone()]).unwrap())
            .unwrap();
        stored += 1;
        // Immediately visible to every read path.
        assert_eq!(b.size().unwrap(), stored);
        assert_eq!(b.contains(std::slice::from_ref(&key)).unwrap(), vec![true]);
        let hits = b.knn(&KnnQuery::nearest(&v, 1)).unwrap();
        assert_eq!(hits[0].key, key);
        b.remove(std::slice::from_ref(&key)).unwrap();
        stored -= 1;
        assert_eq!(b.size().unwrap(), stored);
        assert!(b
            .knn(&KnnQuery::nearest(&v, 1))
            .unwrap()
            .iter()
            .all(|h| h.key != key));
    }
    b.cleanup().unwrap();
}

fn exact_flat(metric: Metric, n: usize, dim: usize) -> (Box<dyn SimilarityBackend>, Embeddings) {
    let b = index_with(metric, json!({"index_type": "FLAT", "batch_size": 2000}));
    let batch = Embeddings::for_samples(dim, random_vectors(n, dim, 31), ids("v", n)).unwrap();
    b.upsert(&batch).unwrap();
    (b, batch)
}

fn check_view(b: &dyn SimilarityBackend, batch: &Embeddings, view: &[String], k: usize) {
    let q = random_vectors(1, batch.dim(), 999);
    let query = KnnQuery {
        vector: &q,
        k: Some(k),
        reverse: false,
        restrict: Some(view),
        restrict_token: None,
    };
    let hits = b.knn(&query).unwrap();
    let rows: Vec<usize> = view
        .iter()
        .filter_map(|v| batch.keys().iter().position(|k| k == v))
        .collect();
    let reference = reference_knn(&batch.select_rows(&rows), b.metric(), &q, false);
    let want: Vec<&str> = reference.iter().take(k).map(|r| r.0.as_str()).collect();
    assert_eq!(
        hits.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
        want
    );
}

#[test]
fn large_views_use_batched_filters_or_overfetch_and_stay_exact() {
    let (b, batch) = exact_flat(Metric::DotProduct, 12_000, 8);
    let sparse: Vec<String> = batch.keys().iter().step_by(2).take(4500).cloned().collect();
    // 4,500 of 12,000, k = 20: over-fetch (240 hits) and filter.
    check_view(b.as_ref(), &batch, &sparse, 20);
    // k = 2,000: an over-fetch would need more than 16,384 hits, so two filtered searches
    // (4,096 + 404 ids) are merged.
    check_view(b.as_ref(), &batch, &sparse, 2000);
    // 10,000 of 12,000: over-fetch and filter.
    let dense: Vec<String> = batch.keys()[..10_000].to_vec();
    check_view(b.as_ref(), &batch, &dense, 20);
    // A small view, with ids not in the index.
    let mut small: Vec<String> = batch.keys()[100..150].to_vec();
    small.push("not-there".into());
    check_view(b.as_ref(), &batch, &small, 60);
    b.cleanup().unwrap();
}

#[test]
fn enumeration_pages_through_everything_once() {
    let b = index_with(Metric::Cosine, json!({"batch_size": 256}));
    let n = 3000;
    let batch = Embeddings::for_samples(8, random_vectors(n, 8, 3), ids("e", n)).unwrap();
    b.upsert(&batch).unwrap();
    let all = b.get_all().unwrap();
    assert_eq!(all.len(), n);
    let mut keys = all.keys().to_vec();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "every row exactly once");
    let i = all.keys().iter().position(|k| k == "e001234").unwrap();
    assert_eq!(all.row(i), batch.row(1234));
    assert_eq!(b.keys().unwrap().len(), n);
    b.cleanup().unwrap();
}

#[test]
fn reverse_and_unbounded_queries_are_exact() {
    let (b, batch) = exact_flat(Metric::Cosine, 300, 8);
    let q = random_vectors(1, 8, 5);
    let far = b
        .knn(&KnnQuery {
            vector: &q,
            k: Some(7),
            reverse: true,
            restrict: None,
            restrict_token: None,
        })
        .unwrap();
    let reference = reference_knn(&batch, Metric::Cosine, &q, true);
    let want: Vec<&str> = reference.iter().take(7).map(|r| r.0.as_str()).collect();
    assert_eq!(
        far.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
        want,
        "negated-query search on a FLAT index"
    );
    let all = b
        .knn(&KnnQuery {
            vector: &q,
            k: None,
            reverse: false,
            restrict: None,
            restrict_token: None,
        })
        .unwrap();
    assert_eq!(all.len(), 300);
    assert_eq!(all[0].key, reference.last().unwrap().0);
    b.cleanup().unwrap();
}

#[test]
fn persisted_config_reopens_without_credentials_and_shares_the_client() {
    let b = index_with(
        Metric::Cosine,
        json!({"consistency_level": "Bounded", "search_ef": 80}),
    );
    let batch = Embeddings::for_samples(4, random_vectors(10, 4, 8), ids("p", 10)).unwrap();
    b.upsert(&batch).unwrap();
    let cfg = b.persisted_config();
    let (uri, user, password) = server();
    let text = serde_json::to_string(&cfg).unwrap();
    for k in SECRET_PARAMS.iter().chain(["uri", "user"].iter()) {
        assert!(!cfg.contains_key(*k), "persisted config has '{k}': {text}");
    }
    if let Some(pw) = &password {
        assert!(!text.contains(pw.as_str()));
        let dbg = format!("{b:?}");
        assert!(
            !dbg.contains(&format!("\"{pw}\"")) && !dbg.contains("password"),
            "Debug shows the password: {dbg}"
        );
    }
    assert!(!text.contains(&uri));
    assert_eq!(cfg["consistency_level"], "Bounded");
    assert_eq!(cfg["search_ef"], 80);
    let name = milvus(b.as_ref()).collection_name().to_string();
    assert!(name.starts_with("fiftyone_simile_test_"), "{name}");

    // Reopen like the facade: credentials from config/env, the rest from the run record.
    let clients_before = simile_milvus::shared_client_count();
    let mut p = params(Value::Object(cfg));
    p.params
        .insert("consistency_level".into(), Value::String("Strong".into()));
    let again = MilvusFactory.open(&p).unwrap();
    assert_eq!(
        simile_milvus::shared_client_count(),
        clients_before,
        "one client per connection, not per index"
    );
    assert_eq!(again.size().unwrap(), 10);
    assert_eq!(again.get(&batch.keys()[3..4]).unwrap().row(0), batch.row(3));
    let _ = user;
    again.cleanup().unwrap();
    assert!(!milvus(b.as_ref()).collection_exists().unwrap());
    assert_eq!(b.size().unwrap(), 0);
}

#[test]
fn blocking_calls_work_inside_a_user_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let n = rt.block_on(async {
        let b = index_with(Metric::DotProduct, json!({}));
        b.upsert(&Embeddings::for_samples(4, random_vectors(3, 4, 1), ids("t", 3)).unwrap())
            .unwrap();
        let n = b.size().unwrap();
        b.cleanup().unwrap();
        n
    });
    assert_eq!(n, 3);
}
