//! Queries on views (issue 11): a view's keys are read from SQL once per database version and
//! the exact backend keeps their rows by token, so repeated queries skip both. Every answer here
//! is checked against brute force over the view's members as they are at that moment: after the
//! dataset changes (a sample's field, a tag, a deleted sample, a change from another session)
//! and after the index changes (upsert, remove).
use std::collections::HashSet;

use simile::ndarray::Array2;
use simile::{
    AddOptions, FieldValue, Filter, Metric, MissingOptions, Query, SimilarityOptions, SortOptions,
    View,
};
use simile_e2e::{cosine_rank, dataset_with, open, random_array, session};

const N: usize = 400;
const DIM: usize = 12;
const K: usize = 7;

/// The `k` nearest members of `view` to `q` by brute force over `emb` (rows aligned with `ids`).
fn brute_force(view: &View, ids: &[String], emb: &Array2<f32>, q: &[f32], k: usize) -> Vec<String> {
    let members: HashSet<String> = view.ids().unwrap().into_iter().collect();
    cosine_rank(emb, q)
        .into_iter()
        .map(|(i, _)| ids[i].clone())
        .filter(|id| members.contains(id))
        .take(k)
        .collect()
}

/// The embedding of sample `id`.
fn row_of(emb: &Array2<f32>, ids: &[String], id: &str) -> Vec<f32> {
    emb.row(ids.iter().position(|i| i == id).unwrap()).to_vec()
}

fn sorted(view: &View, q: Query) -> Vec<String> {
    view.sort_by_similarity(q, SortOptions::new().k(K).brain_key("sim"))
        .unwrap()
        .ids()
        .unwrap()
}

/// Vector queries equal brute force over the view, twice (the second from the caches).
fn check(view: &View, ids: &[String], emb: &Array2<f32>, queries: &[Vec<f32>], step: &str) {
    for _ in 0..2 {
        for q in queries {
            let want = brute_force(view, ids, emb, q, K);
            assert_eq!(sorted(view, Query::vector(q.clone())), want, "{step}");
        }
    }
}

#[test]
fn a_view_query_follows_every_change_to_the_dataset_and_the_index() {
    let (home, simile) = session();
    let (ds, ids, mut emb) = dataset_with(&simile, "views", N, DIM);
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("sim")
            .metric(Metric::Cosine)
            .embeddings(emb.clone()),
    )
    .unwrap();
    let half = ds.match_field(Filter::Lt("idx".into(), (N / 2) as f64));
    let queries: Vec<Vec<f32>> = random_array(3, DIM, 77)
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    let q = queries[0].clone();
    check(&half, &ids, &emb, &queries, "first");

    // A sample outside the view moves in (its field changes): queried with its own vector,
    // it was absent (the view cached) and is now the nearest.
    let outsider = ids[N - 3].clone();
    assert!(!sorted(&half, Query::vector(row_of(&emb, &ids, &outsider))).contains(&outsider));
    ds.set_values(
        "idx",
        vec![(outsider.clone(), FieldValue::Json(serde_json::json!(0)))],
    )
    .unwrap();
    check(&half, &ids, &emb, &queries, "a sample moved into the view");
    assert_eq!(
        sorted(&half, Query::vector(row_of(&emb, &ids, &outsider)))[0],
        outsider
    );

    // The best member is deleted from the dataset: it is no longer a candidate.
    let best = sorted(&half, Query::vector(q.clone()))[0].clone();
    assert_eq!(ds.delete_samples(std::slice::from_ref(&best)).unwrap(), 1);
    check(&half, &ids, &emb, &queries, "a member deleted");
    assert!(!sorted(&half, Query::vector(q.clone())).contains(&best));

    // A tag view: tagging and untagging change its members.
    let tagged = ds.view().match_tags(&["keep".to_string()]);
    let some: Vec<String> = ids.iter().skip(1).step_by(5).cloned().collect();
    ds.tag_samples(&some, &["keep".to_string()]).unwrap();
    check(&tagged, &ids, &emb, &queries, "tagged");
    let top = sorted(&tagged, Query::vector(q.clone()))[0].clone();
    ds.untag_samples(std::slice::from_ref(&top), &["keep".to_string()])
        .unwrap();
    check(&tagged, &ids, &emb, &queries, "untagged");
    assert!(!sorted(&tagged, Query::vector(q.clone())).contains(&top));

    // The index changes (its rows move; the view does not): an upsert of a member with the query
    // itself makes it the nearest; removing it from the index drops it.
    let index = ds.load_brain_results("sim").unwrap();
    let member = half.ids().unwrap()[17].clone();
    let row = ids.iter().position(|i| *i == member).unwrap();
    let one = Array2::from_shape_vec((1, DIM), q.clone()).unwrap();
    index
        .add_to_index(
            one.view(),
            std::slice::from_ref(&member),
            None,
            AddOptions::default(),
        )
        .unwrap();
    emb.row_mut(row).assign(&one.row(0));
    check(&half, &ids, &emb, &queries, "a member upserted");
    assert_eq!(sorted(&half, Query::vector(q.clone()))[0], member);
    index
        .remove_from_index(std::slice::from_ref(&member), MissingOptions::default())
        .unwrap();
    let got = sorted(&half, Query::vector(q.clone()));
    assert!(!got.contains(&member));
    // Brute force without the removed row.
    let want: Vec<String> = brute_force(&half, &ids, &emb, &q, K + 1)
        .into_iter()
        .filter(|i| *i != member)
        .take(K)
        .collect();
    assert_eq!(got, want, "a member removed from the index");

    // Another session (another connection) changes the dataset: this session notices.
    let other = open(home.path());
    let ds2 = other.load_dataset("views").unwrap();
    let newcomer = ids[N - 5].clone();
    let q2 = row_of(&emb, &ids, &newcomer);
    assert!(!sorted(&half, Query::vector(q2.clone())).contains(&newcomer));
    ds2.set_values(
        "idx",
        vec![(newcomer.clone(), FieldValue::Json(serde_json::json!(1)))],
    )
    .unwrap();
    assert_eq!(
        sorted(&half, Query::vector(q2)),
        brute_force(&half, &ids, &emb, &row_of(&emb, &ids, &newcomer), K),
    );
    assert_eq!(
        sorted(&half, Query::vector(row_of(&emb, &ids, &newcomer)))[0],
        newcomer,
        "a change committed by another connection is seen"
    );
}

/// An id query from outside the view: the query row is not a candidate, whatever the cache.
#[test]
fn an_id_query_from_outside_a_cached_view_does_not_return_itself() {
    let (_home, simile) = session();
    let (ds, ids, emb) = dataset_with(&simile, "outside", 200, 8);
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("sim")
            .embeddings(emb.clone()),
    )
    .unwrap();
    let half = ds.match_field(Filter::Lt("idx".into(), 100.0));
    for _ in 0..2 {
        let inside = &ids[3];
        let got = sorted(&half, Query::id(inside));
        assert_eq!(&got[0], inside, "an inside query row comes first");
        let outside = &ids[150];
        let got = sorted(&half, Query::id(outside));
        assert!(!got.contains(outside));
        let q = emb.row(150).to_vec();
        assert_eq!(got, brute_force(&half, &ids, &emb, &q, K));
    }
}
