//! Where a query on a view goes: `view_profile N HOME` on a home built by `bench build N DIM HOME`.
//! Times, for the half-dataset view `idx < N/2`: the view's ids from SQL, the backend's k-NN
//! given those ids (first and repeated), the full sort through the facade (first and repeated).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use serde_json::json;
use simile::{BrainConfig, Filter, Query, Settings, Simile, SortOptions};
use simile_index::KnnQuery;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args[0].parse().unwrap();
    let home = args[1].as_str();
    let simile = Simile::builder()
        .settings(Settings::for_home(home))
        .brain_config(BrainConfig::default())
        .open()
        .unwrap();
    let ds = simile.load_dataset("bench").unwrap();
    let index = ds.load_brain_results("sim").unwrap();
    let backend = index.backend();
    let half = ds.match_field(Filter::Lt("idx".into(), (n / 2) as f64));
    let all = ds.view().ids().unwrap();
    let q = backend.get(&all[n / 3..n / 3 + 1]).unwrap();
    let vector = q.row(0).to_vec();

    let t = Instant::now();
    let ids = half.ids().unwrap();
    let sql_ids_ms = ms(t);
    let bytes: usize = ids.iter().map(String::len).sum();
    let knn = |restrict: Option<&[String]>| {
        let t = Instant::now();
        let hits = backend
            .knn(&KnnQuery {
                vector: &vector,
                k: Some(10),
                reverse: false,
                restrict,
                restrict_token: None,
            })
            .unwrap();
        assert_eq!(hits.len(), 10);
        ms(t)
    };
    let knn_view_first_ms = knn(Some(&ids));
    let knn_view_again: Vec<f64> = (0..5).map(|_| knn(Some(&ids))).collect();
    let knn_full: Vec<f64> = (0..5).map(|_| knn(None)).collect();
    let sort = || {
        let t = Instant::now();
        let v = half
            .sort_by_similarity(
                Query::id(&all[n / 3]),
                SortOptions::new().k(10).brain_key("sim"),
            )
            .unwrap();
        assert_eq!(v.ids().unwrap().len(), 10);
        ms(t)
    };
    let sort_first_ms = sort();
    let sort_again: Vec<f64> = (0..5).map(|_| sort()).collect();
    println!(
        "{}",
        json!({"view_ids": ids.len(), "id_bytes": bytes, "sql_ids_ms": sql_ids_ms,
               "knn_view_first_ms": knn_view_first_ms, "knn_view_again_ms": knn_view_again,
               "knn_full_ms": knn_full, "sort_first_ms": sort_first_ms, "sort_again_ms": sort_again})
    );
}
