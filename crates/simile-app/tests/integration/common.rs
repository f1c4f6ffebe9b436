//! Fixtures: sessions with datasets of real image files, and a one-shot HTTP caller.
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use simile::{NewSample, SimilarityOptions, Simile};
use tower::ServiceExt;

/// A home with dataset `d`: `n` PNG images (pairs of near-duplicates), field `idx`, and an
/// exact index `emb` of seeded random 16-d vectors.
pub fn fixture(n: usize) -> (tempfile::TempDir, Simile, Vec<String>) {
    let (home, simile) = simile_e2e::session();
    let paths = simile_e2e::write_images(&home.path().join("imgs"), n);
    let ds = simile.create_dataset("d").unwrap();
    let ids = ds
        .add_samples(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| NewSample::new(p).with_field("idx", serde_json::json!(i)))
                .collect(),
        )
        .unwrap();
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("emb")
            .embeddings(simile_e2e::random_array(n, 16, 7)),
    )
    .unwrap();
    (home, simile, ids)
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// The error kind of an error reply (and checks the error shape).
    pub fn error_kind(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"]["kind"].as_str().unwrap().to_string()
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    send(
        app,
        Request::get(uri)
            .header("host", "127.0.0.1:5151")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

pub async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    send(
        app,
        Request::post(uri)
            .header("host", "127.0.0.1:5151")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
