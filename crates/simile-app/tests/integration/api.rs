//! The JSON API: same answers as the facade, typed errors, tags and views.
use serde_json::{json, Value};
use simile::{Query, SortOptions};

use crate::common::{enc, fixture, get, post};

fn ids_of(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn datasets_info_and_pages() {
    let (_home, simile, ids) = fixture(30);
    let app = simile_app::router(simile.clone());
    let r = get(&app, "/api/datasets").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([{"name": "d", "len": 30}]));

    let info = get(&app, "/api/datasets/d").await.json();
    assert_eq!(info["len"], 30);
    assert_eq!(info["fields"]["idx"], "json");

    // Pages in dataset order, total = the view's size.
    let p = get(&app, "/api/datasets/d/samples?offset=25&limit=10")
        .await
        .json();
    assert_eq!(p["total"], 30);
    assert_eq!(ids_of(&p, "samples"), ids[25..].to_vec());
    let s0 = &p["samples"][0];
    assert!(s0["filepath"].as_str().unwrap().ends_with(".png"));
    assert_eq!(s0["fields"]["idx"], 25);

    // A view description in the URL.
    let view = json!([{"match": {"gte": ["idx", 10]}}, {"limit": 5}]).to_string();
    let p = get(
        &app,
        &format!("/api/datasets/d/samples?view={}", enc(&view)),
    )
    .await
    .json();
    assert_eq!(p["total"], 5);
    assert_eq!(ids_of(&p, "samples"), ids[10..15].to_vec());

    // One sample.
    let s = get(&app, &format!("/api/datasets/d/samples/{}", ids[3]))
        .await
        .json();
    assert_eq!(s["id"], ids[3].as_str());
}

#[tokio::test]
async fn sort_answers_exactly_what_the_facade_answers() {
    let (_home, simile, ids) = fixture(40);
    let app = simile_app::router(simile.clone());
    let ds = simile.load_dataset("d").unwrap();
    let view_json = json!([{"match": {"lt": ["idx", 30]}}]);
    for query_ids in [
        vec![ids[3].clone()],
        vec![ids[3].clone(), ids[8].clone(), ids[20].clone()],
    ] {
        let r = post(
            &app,
            "/api/datasets/d/sort",
            &json!({"brain_key": "emb", "query": {"ids": query_ids}, "k": 12, "view": view_json}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let got = r.json();
        let view = ds.view_of(simile::parse_stages(&view_json.to_string()).unwrap());
        let want = view
            .sort_by_similarity(
                Query::ids(query_ids.clone()),
                SortOptions::new().k(12).brain_key("emb"),
            )
            .unwrap();
        let (want_ids, want_d) = want.similarity().unwrap();
        assert_eq!(ids_of(&got, "results"), want_ids.to_vec());
        let got_d: Vec<f32> = got["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["distance"].as_f64().unwrap() as f32)
            .collect();
        assert_eq!(
            got_d,
            want_d.to_vec(),
            "distances are the facade's, bit for bit"
        );
        // Only samples of the view come back.
        for r in got["results"].as_array().unwrap() {
            assert!(r["fields"]["idx"].as_i64().unwrap() < 30);
        }
    }
    // Reverse and dist_field go through.
    let r = post(
        &app,
        "/api/datasets/d/sort",
        &json!({"brain_key": "emb", "query": {"ids": [ids[0]]}, "k": 3, "reverse": true, "dist_field": "dist"}),
    )
    .await
    .json();
    let first = r["results"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(first, ids[0]);
    assert!(ds.sample(&first).unwrap().get("dist").is_some());
}

#[tokio::test]
async fn errors_are_typed_and_readable() {
    let (_home, simile, ids) = fixture(10);
    let app = simile_app::router(simile);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"brain_key": "emb", "query": {"ids": ["0123456789abcdef01234567"]}}),
            404,
            "query_ids_not_found",
        ),
        (
            json!({"brain_key": "emb", "query": {"text": "a dog"}}),
            400,
            "prompts_not_supported",
        ),
        (
            json!({"brain_key": "nope", "query": {"ids": [ids[0]]}}),
            404,
            "unknown_run",
        ),
        (
            json!({"brain_key": "emb", "query": {"ids": [ids[0]]}, "view": [{"frob": 1}]}),
            400,
            "bad_view",
        ),
        (
            json!({"brain_key": "emb", "query": {"vector": [1.0, 2.0]}}),
            400,
            "bad_query",
        ),
        (
            json!({"brain_key": "emb", "query": {"ids": []}}),
            400,
            "bad_query",
        ),
        (
            json!({"brain_key": "emb", "query": {"ids": [ids[0]]}, "bogus": 1}),
            400,
            "bad_request",
        ),
    ];
    for (body, status, kind) in cases {
        let r = post(&app, "/api/datasets/d/sort", &body).await;
        assert_eq!(
            (r.status.as_u16(), r.error_kind().as_str()),
            (status, kind),
            "{body}"
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(!msg.contains("panicked") && !msg.contains("src/"), "{msg}");
    }
    let r = get(&app, "/api/datasets/nope/samples").await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (404, "unknown_dataset")
    );
    let r = get(&app, "/api/datasets/d/samples?view=%5B%7B").await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (400, "bad_view")
    );
    let r = get(&app, "/api/nothing").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn tags_then_filter_by_tag_then_export_the_tagged_view() {
    let (home, simile, ids) = fixture(12);
    let app = simile_app::router(simile.clone());
    let r = post(
        &app,
        "/api/datasets/d/tags",
        &json!({"ids": [ids[1], ids[4]], "add": ["dup"]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"updated": 2, "tags": {"dup": 2}}));
    // Unknown id: nothing changes.
    let r = post(
        &app,
        "/api/datasets/d/tags",
        &json!({"ids": [ids[2], "0123456789abcdef01234567"], "add": ["x"]}),
    )
    .await;
    assert_eq!(r.error_kind(), "unknown_sample");
    assert_eq!(
        get(&app, "/api/datasets/d").await.json()["tags"],
        json!({"dup": 2})
    );

    let view = json!([{"match_tags": ["dup"]}]).to_string();
    let p = get(
        &app,
        &format!("/api/datasets/d/samples?view={}", enc(&view)),
    )
    .await
    .json();
    assert_eq!(ids_of(&p, "samples"), vec![ids[1].clone(), ids[4].clone()]);

    // The same description drives an export of the tagged view.
    let ds = simile.load_dataset("d").unwrap();
    let tagged = ds.view_of(simile::parse_stages(&view).unwrap());
    let out = home.path().join("export");
    let report = tagged.export_fiftyone(&out).unwrap();
    assert_eq!(report.exported, 2, "{report:?}");

    let r = post(
        &app,
        "/api/datasets/d/tags",
        &json!({"ids": [ids[1]], "remove": ["dup"]}),
    )
    .await;
    assert_eq!(r.json()["tags"], json!({"dup": 1}));
}

#[tokio::test]
async fn runs_list_what_the_page_needs_and_no_credentials() {
    let (_home, simile, _ids) = fixture(10);
    let app = simile_app::router(simile);
    let runs = get(&app, "/api/datasets/d/runs").await.json();
    let run = &runs[0];
    assert_eq!(run["key"], "emb");
    assert_eq!(run["type"], "similarity");
    assert_eq!(run["backend"], "sklearn");
    assert_eq!(run["metric"], "cosine");
    assert_eq!(run["size"], 10);
    assert_eq!(run["supports_prompts"], false);
    assert_eq!(run["supports_reverse"], true);
    assert_eq!(run["patches_field"], Value::Null);
}

#[tokio::test]
async fn page_and_assets_are_served_and_bodies_are_limited() {
    let (_home, simile, _ids) = fixture(2);
    let app = simile_app::router(simile);
    let r = get(&app, "/").await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("/assets/"));
    let r = get(&app, "/assets/app.css").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let r = get(&app, "/assets/js/main.js").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let r = get(&app, "/assets/../Cargo.toml").await;
    assert_eq!(r.status, 404);
    // A body over the limit is refused before it is parsed.
    let huge = json!({"ids": vec!["0123456789abcdef01234567"; 60_000], "add": ["x"]});
    let r = post(&app, "/api/datasets/d/tags", &huge).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
}

/// Dataset `m` of `n` samples with a FLAT Milvus index `mil` of random 8-d vectors.
async fn milvus_run(simile: &simile::Simile, n: usize) -> (simile::Dataset, Vec<String>) {
    let (ds, ids, emb) = simile_e2e::dataset_with(simile, "m", n, 8);
    let ds2 = ds.clone();
    tokio::task::spawn_blocking(move || {
        ds2.compute_similarity(
            simile::SimilarityOptions::new()
                .brain_key("mil")
                .backend("milvus")
                .embeddings(emb)
                .set("index_type", "FLAT"),
        )
        .unwrap();
    })
    .await
    .unwrap();
    (ds, ids)
}

/// A Milvus index in the App: listed with its size, sorted exactly as the facade sorts, and its
/// credentials never reach the browser (the test server runs with authentication).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_index_works_like_an_exact_one() {
    let (_home, simile) = simile_e2e::milvus_session(false);
    let (ds, ids) = milvus_run(&simile, 60).await;
    let app = simile_app::router(simile.clone());
    let r = get(&app, "/api/datasets/m/runs").await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    let password = std::env::var("SIMILE_TEST_MILVUS_PASSWORD").unwrap_or_default();
    assert!(
        password.is_empty() || !text.contains(&password),
        "no credentials in /runs"
    );
    let run = &r.json()[0];
    assert_eq!(
        (run["backend"].as_str(), run["size"].as_u64()),
        (Some("milvus"), Some(60)),
        "{run}"
    );

    let r = post(
        &app,
        "/api/datasets/m/sort",
        &json!({"brain_key": "mil", "query": {"ids": [ids[5]]}, "k": 7}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = r.json();
    let want = tokio::task::spawn_blocking(move || {
        let v = ds
            .sort_by_similarity(Query::id(&ids[5]), SortOptions::new().k(7).brain_key("mil"))
            .unwrap();
        v.similarity()
            .map(|(i, d)| (i.to_vec(), d.to_vec()))
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ids_of(&got, "results"), want.0);
    let index = simile
        .load_dataset("m")
        .unwrap()
        .load_brain_results("mil")
        .unwrap();
    tokio::task::spawn_blocking(move || index.cleanup().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn duplicates_panel_routes_answer_what_the_facade_answers() {
    let (_home, simile, _ids) = fixture(40);
    let app = simile_app::router(simile.clone());
    let r = post(
        &app,
        "/api/datasets/d/duplicates",
        &json!({"brain_key": "emb", "fraction": 0.2}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = r.json();
    let index = simile
        .load_dataset("d")
        .unwrap()
        .load_brain_results("emb")
        .unwrap();
    let want = index
        .find_duplicates(Some(simile::DuplicatesBy::Fraction(0.2)))
        .unwrap();
    assert_eq!(got["thresh"].as_f64(), Some(want.thresh));
    assert_eq!(
        got["method"],
        json!({"exact": true}),
        "a small index is searched exactly"
    );
    let dup_ids: Vec<String> = serde_json::from_value(got["duplicate_ids"].clone()).unwrap();
    assert_eq!(dup_ids, want.duplicate_ids);
    assert_eq!(dup_ids.len(), 8);
    // Groups: nearest duplicate first; every member is a duplicate with its filepath.
    let groups = got["groups"].as_array().unwrap();
    let firsts: Vec<f64> = groups
        .iter()
        .map(|g| g["duplicates"][0]["distance"].as_f64().unwrap())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
    for g in groups {
        assert!(want
            .unique_ids
            .contains(&g["id"].as_str().unwrap().to_string()));
        assert!(g["filepath"].as_str().unwrap().ends_with(".png"));
    }
    let hist = get(&app, "/api/datasets/d/distances?brain_key=emb&bins=10")
        .await
        .json();
    let total: u64 = hist["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 40);
    assert_eq!(hist["metric"], "cosine");
    // Uniqueness as a sortable field through the view description.
    let ds = simile.load_dataset("d").unwrap();
    ds.view()
        .compute_uniqueness(
            "uniqueness",
            simile::UniquenessSource::BrainKey("emb".into()),
        )
        .unwrap();
    let view = json!([{"sort_by": {"field": "uniqueness", "reverse": true}}]).to_string();
    let p = get(
        &app,
        &format!("/api/datasets/d/samples?limit=40&view={}", enc(&view)),
    )
    .await
    .json();
    let u: Vec<f64> = p["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["fields"]["uniqueness"].as_f64().unwrap())
        .collect();
    assert!(u.windows(2).all(|w| w[0] >= w[1]), "most unique first");
    assert_eq!(u[0], 1.0);
    // Errors stay typed.
    let r = post(
        &app,
        "/api/datasets/d/duplicates",
        &json!({"brain_key": "emb", "thresh": 0.1, "fraction": 0.1}),
    )
    .await;
    assert_eq!(r.error_kind(), "bad_request");
}

/// Milvus down: the runs panel says why the index cannot be opened and a sort is a typed 503,
/// both in well under the client's connect timeout (a refused port answers at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_down_is_a_typed_error_not_a_hang() {
    let (home, simile) = simile_e2e::milvus_session(false);
    let (_ds, ids) = milvus_run(&simile, 20).await;
    // A second session on the same home whose config points Milvus at a closed port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = simile::BrainConfig::default();
    let mut params = simile_e2e::milvus_params();
    params.insert("uri".into(), format!("http://{dead}").into());
    config.similarity_backends.insert("milvus".into(), params);
    let down = simile::Simile::builder()
        .settings(simile::Settings::for_home(home.path()))
        .brain_config(config)
        .open()
        .unwrap();
    let app = simile_app::router(down);
    let started = std::time::Instant::now();
    let runs = get(&app, "/api/datasets/m/runs").await.json();
    assert_eq!(runs[0]["size"], Value::Null);
    let why = runs[0]["error"].as_str().unwrap().to_string();
    assert!(why.contains("milvus"), "{why}");
    let r = post(
        &app,
        "/api/datasets/m/sort",
        &json!({"brain_key": "mil", "query": {"ids": [ids[0]]}}),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (503, "backend_unavailable")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let index = simile
        .load_dataset("m")
        .unwrap()
        .load_brain_results("mil")
        .unwrap();
    tokio::task::spawn_blocking(move || index.cleanup().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dist_field_that_would_clobber_a_field_is_a_400() {
    let (_home, simile, ids) = fixture(6);
    let app = simile_app::router(simile);
    // `tags` holds a list: a distance field may not overwrite it.
    let r = post(
        &app,
        "/api/datasets/d/tags",
        &json!({"ids": [ids[0]], "add": ["keep"]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(
        &app,
        "/api/datasets/d/sort",
        &json!({"brain_key": "emb", "query": {"ids": [ids[0]]}, "k": 3, "dist_field": "tags"}),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (400, "bad_request")
    );
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tags"));
}
