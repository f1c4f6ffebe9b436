//! Benchmarks of the App server, in process (router calls, no socket: server time).
//!
//! `app_bench N DIM HOME` builds a dataset of N samples with an exact index of N × DIM random
//! vectors (only the samples of the measured pages have real image files: 64 × 48 JPEGs, plus
//! 24-megapixel ones for the responsiveness check), then prints one JSON line with medians in ms:
//! page at offset 0 and at 90 %, the first page's thumbnails made cold, `POST /sort` k=25 by id
//! and the facade's own query time for the same query, and API latency while large thumbnails
//! are being made. Used by `cargo xtask bench`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
use simile::{NewSample, Query, SimilarityOptions, SortOptions};
use tower::ServiceExt;

const PAGE: usize = 50;

async fn call(app: &Router, req: Request<Body>) -> (u16, Vec<u8>) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    (
        status,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

async fn get(app: &Router, uri: &str) -> (u16, Vec<u8>) {
    call(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn write_jpeg(path: &std::path::Path, w: u32, h: u32, seed: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x + seed) % 256) as u8,
            ((y * 3 + seed) % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let home = std::path::PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "target/app-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("imgs")).unwrap();
    let far = n * 9 / 10;
    let real = |i: usize| i < PAGE || (far..far + PAGE).contains(&i) || i >= n - 8;

    let t = Instant::now();
    let simile = simile::Simile::builder()
        .settings(simile::Settings::for_home(&home))
        .brain_config(simile::BrainConfig::default())
        .open()
        .unwrap();
    let ds = simile.create_dataset("bench").unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let p = home.join("imgs").join(format!("{i}.jpg"));
        if real(i) {
            if i >= n - 8 {
                write_jpeg(&p, 6000, 4000, i as u32); // 24 MP
            } else {
                write_jpeg(&p, 64, 48, i as u32);
            }
        }
        samples.push(NewSample::new(p).with_field("idx", serde_json::json!(i)));
    }
    let ids = ds.add_samples(samples).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let emb = ndarray::Array2::from_shape_fn((n, dim), |_| rng.random_range(-1.0f32..1.0));
    ds.compute_similarity(SimilarityOptions::new().brain_key("emb").embeddings(emb))
        .unwrap();
    let setup_s = t.elapsed().as_secs_f64();
    let app = simile_app::router(simile.clone());

    // Pages: offset 0 and offset 90 %; the very first request (cold: it builds the view's page
    // index) is reported on its own.
    let t = Instant::now();
    let (s, _) = get(
        &app,
        &format!("/api/datasets/bench/samples?offset={far}&limit={PAGE}"),
    )
    .await;
    assert_eq!(s, 200);
    let page_cold = ms(t);
    let mut page0 = Vec::new();
    let mut page_far = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let (s, _) = get(
            &app,
            &format!("/api/datasets/bench/samples?offset=0&limit={PAGE}"),
        )
        .await;
        assert_eq!(s, 200);
        page0.push(ms(t));
        let t = Instant::now();
        let (s, _) = get(
            &app,
            &format!("/api/datasets/bench/samples?offset={far}&limit={PAGE}"),
        )
        .await;
        assert_eq!(s, 200);
        page_far.push(ms(t));
    }

    // First page, cold thumbnail cache: the page JSON, then its 50 thumbnails requested at once
    // (as a browser does), all made on the bounded image pool.
    let _ = std::fs::remove_dir_all(home.join("app-cache"));
    let t = Instant::now();
    let (s, _) = get(
        &app,
        &format!("/api/datasets/bench/samples?offset=0&limit={PAGE}"),
    )
    .await;
    assert_eq!(s, 200);
    let mut tasks = Vec::new();
    for id in &ids[..PAGE] {
        let app = app.clone();
        let uri = format!("/thumb/{id}?dataset=bench");
        tasks.push(tokio::spawn(async move { get(&app, &uri).await.0 }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let first_page_cold = ms(t);

    // Sort k=25 by id through the API, and the facade's own time for the same query.
    let mut sort_api = Vec::new();
    let mut sort_facade = Vec::new();
    for i in 0..21 {
        let q = &ids[(i * 7919) % n];
        let body = serde_json::json!({"brain_key": "emb", "query": {"ids": [q]}, "k": 25});
        let t = Instant::now();
        let (s, _) = call(
            &app,
            Request::post("/api/datasets/bench/sort")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(s, 200);
        let api = ms(t);
        let ds2 = ds.clone();
        let q2 = q.clone();
        let facade = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let v = ds2
                .sort_by_similarity(Query::id(&q2), SortOptions::new().k(25).brain_key("emb"))
                .unwrap();
            let _ = v.ids().unwrap();
            ms(t)
        })
        .await
        .unwrap();
        if i > 0 {
            sort_api.push(api);
            sort_facade.push(facade);
        }
    }

    // Responsiveness: API latency while eight 24-MP thumbnails are being made.
    let _ = std::fs::remove_dir_all(home.join("app-cache"));
    let mut big = Vec::new();
    for id in &ids[n - 8..] {
        let app = app.clone();
        let uri = format!("/thumb/{id}?dataset=bench");
        big.push(tokio::spawn(async move { get(&app, &uri).await.0 }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut during = Vec::new();
    while big.iter().any(|t| !t.is_finished()) && during.len() < 200 {
        let t = Instant::now();
        let (s, _) = get(
            &app,
            &format!("/api/datasets/bench/samples?offset=0&limit={PAGE}"),
        )
        .await;
        assert_eq!(s, 200);
        during.push(ms(t));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let t = Instant::now();
    for task in big {
        assert_eq!(task.await.unwrap(), 200);
    }
    let big_rest = ms(t);
    let during_max = during.iter().copied().fold(0.0, f64::max);
    println!(
        "{}",
        serde_json::json!({
            "n": n, "dim": dim, "setup_s": setup_s,
            "page_cold_ms": page_cold, "page0_ms": median(page0), "page_far_ms": median(page_far),
            "first_page_cold_thumbs_ms": first_page_cold,
            "sort_api_ms": median(sort_api), "sort_facade_ms": median(sort_facade),
            "api_during_big_thumbs_ms": if during.is_empty() { f64::NAN } else { median(during.clone()) },
            "api_during_big_thumbs_max_ms": during_max,
            "api_samples_during": during.len(),
            "big_thumbs_left_ms": big_rest,
        })
    );
}
