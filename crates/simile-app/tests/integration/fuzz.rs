//! Fuzz harnesses (`simile-fuzz`): the App's request bodies and view parameters, mutated from
//! valid ones, through the router in-process. The property: never a 5xx (a panic would be the
//! catch-panic layer's 500), always a JSON answer (an error with its kind and message); a
//! refused tag change changes nothing. Short pass by default; `SIMILE_FUZZ_SECONDS=N` runs long
//! (`cargo xtask fuzz`).
use std::cell::Cell;

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use simile_fuzz::proptest::prelude::*;
use simile_fuzz::{check, json_from, Bytes};

use crate::common::{enc, fixture, get, send, Reply};

fn post_raw(app: &axum::Router, rt: &tokio::runtime::Runtime, uri: &str, body: &Bytes) -> Reply {
    let req = Request::post(uri)
        .header("host", "127.0.0.1:5151")
        .header("content-type", "application/json")
        .body(Body::from(body.0.clone()))
        .unwrap();
    rt.block_on(send(app, req))
}

/// Checks the property of one reply; counts the 2xx.
fn answered(r: &Reply, oks: &Cell<usize>) -> Result<(), TestCaseError> {
    prop_assert!(
        r.status.as_u16() < 500,
        "{}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    if r.status.is_success() {
        oks.set(oks.get() + 1);
        prop_assert!(serde_json::from_slice::<Value>(&r.body).is_ok());
    } else {
        prop_assert!(!r.error_kind().is_empty());
    }
    Ok(())
}

#[test]
fn mutated_request_bodies_are_answered_or_refused_never_a_server_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_home, simile, ids) = fixture(12);
    let app = simile_app::router(simile);
    let view = json!([{"match": {"gte": ["idx", 2]}}, {"limit": 8}]);
    let oks = Cell::new(0);
    let sort = json!({"brain_key": "emb", "query": {"ids": [ids[3]]}, "k": 5, "reverse": false,
                      "dist_field": "dist", "view": view});
    check("app sort by ids", 96, json_from(sort), |b| {
        answered(&post_raw(&app, &rt, "/api/datasets/d/sort", &b), &oks)
    });
    let vector: Vec<f32> = (0..16).map(|i| i as f32 / 16.0 - 0.5).collect();
    let sort = json!({"brain_key": "emb", "query": {"vector": vector}, "k": null});
    check("app sort by vector", 64, json_from(sort), |b| {
        answered(&post_raw(&app, &rt, "/api/datasets/d/sort", &b), &oks)
    });
    let dups = json!({"brain_key": "emb", "thresh": 0.5, "view": view});
    check("app duplicates", 64, json_from(dups), |b| {
        answered(&post_raw(&app, &rt, "/api/datasets/d/duplicates", &b), &oks)
    });
    let tags = json!({"ids": [ids[0], ids[1]], "add": ["keep", "x"], "remove": ["x"]});
    check("app tags", 96, json_from(tags), |b| {
        let before = rt.block_on(get(&app, "/api/datasets/d")).json()["tags"].clone();
        let r = post_raw(&app, &rt, "/api/datasets/d/tags", &b);
        answered(&r, &oks)?;
        if !r.status.is_success() {
            let after = rt.block_on(get(&app, "/api/datasets/d")).json()["tags"].clone();
            prop_assert_eq!(before, after, "a refused tag change changes nothing");
        }
        Ok(())
    });
    assert!(oks.get() > 40, "{} requests were answered", oks.get());
}

#[test]
fn mutated_views_and_query_parameters_are_answered_or_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_home, simile, ids) = fixture(12);
    let app = simile_app::router(simile);
    let view = json!([{"select": {"ids": [ids[1], ids[2], ids[5]]}}, {"match": {"lt": ["idx", 9]}},
                      {"skip": 0}, {"take": {"n": 2, "seed": 1}}]);
    let oks = Cell::new(0);
    let params = (
        json_from(view),
        prop_oneof![
            prop::sample::select(simile_fuzz::EDGE_NUMBERS).prop_map(String::from),
            (0u32..20).prop_map(|n| n.to_string()),
        ],
    );
    check("app views in urls", 128, params, |(v, n)| {
        let v = enc(&String::from_utf8_lossy(&v.0));
        let n = enc(&n);
        for uri in [
            format!("/api/datasets/d/samples?offset={n}&limit=5&view={v}"),
            format!("/api/datasets/d/samples?offset=0&limit={n}&view={v}"),
            format!("/api/datasets/d/distances?brain_key=emb&bins={n}&view={v}"),
            format!("/api/datasets/d/patches?field=gt&offset={n}&view={v}"),
        ] {
            answered(&rt.block_on(get(&app, &uri)), &oks)?;
        }
        Ok(())
    });
    assert!(oks.get() > 40, "{} requests were answered", oks.get());
}

/// Found by `app views in urls`: a query string that did not parse (`offset=1e308`) was axum's
/// plain-text rejection, not the API's JSON error.
#[tokio::test]
async fn regression_a_query_string_that_does_not_parse_is_a_json_error() {
    let (_home, simile, ids) = fixture(3);
    let app = simile_app::router(simile);
    for uri in [
        "/api/datasets/d/samples?offset=1e308".to_string(),
        "/api/datasets/d/patches?field=gt&limit=-1".to_string(),
        "/api/datasets/d/distances?brain_key=emb&bins=NaN".to_string(),
        format!("/media/{}?dataset=d&dataset=e", ids[0]),
    ] {
        let r = get(&app, &uri).await;
        assert_eq!(r.status, 400, "{uri}");
        assert_eq!(r.error_kind(), "bad_request", "{uri}");
    }
}
