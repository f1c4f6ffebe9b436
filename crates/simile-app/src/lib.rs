//! # simile-app
//!
//! The simile App: a local web server that shows a dataset's images in a grid and answers
//! similarity queries by point-and-click (sort by similarity, text search, patches, tags, views).
//! The page (HTML, ES modules, CSS) is embedded in the binary; no build step, no CDN.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let simile = simile::Simile::open().expect("a simile home");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5151").await?;
//! simile_app::serve(listener, simile, std::future::pending()).await
//! # }
//! ```
//!
//! Every facade call (blocking: SQLite, index scans, model inference, Milvus) runs on tokio's
//! blocking pool; image work (thumbnails, crops) is further bounded by the number of cores, so the
//! server answers API calls while thumbnails are made. Routes and shapes: `docs/app.md`.
//!
//! Security: the server binds loopback by default and then refuses requests whose `Host` is not
//! a loopback name (DNS rebinding); media routes take sample ids, never paths, and serve only
//! files that are the filepath of a sample and look like images; request bodies are limited to
//! 1 MiB; errors carry a typed kind and a message, never a backtrace or a credential.

#![warn(missing_docs)]

mod api;
mod assets;
mod dups;
mod error;
mod media;
mod sort;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use simile::Simile;

pub use error::ApiError;

/// Largest request body accepted (a 512-d vector query is ~10 KiB of JSON).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Shared server state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) simile: Simile,
    /// Bounds concurrent image work (decode/resize/encode) by the cores.
    pub(crate) image_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) cache_dir: std::path::PathBuf,
    /// Accept only loopback `Host` headers (set when bound to a loopback address).
    pub(crate) loopback_only: bool,
}

/// Options of [`router_with`].
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Refuse requests whose `Host` header is not `localhost`, `127.0.0.1` or `[::1]` (with any
    /// port): on by default, as the server binds loopback by default.
    pub loopback_only: bool,
    /// Concurrent thumbnail/crop jobs (default: the number of cores).
    pub image_workers: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            loopback_only: true,
            image_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The App's routes on a simile session (loopback-only, default options).
pub fn router(simile: Simile) -> Router {
    router_with(simile, AppOptions::default())
}

/// The App's routes with options.
pub fn router_with(simile: Simile, options: AppOptions) -> Router {
    let cache_dir = simile.home().join("app-cache");
    let state = AppState {
        simile,
        image_slots: Arc::new(tokio::sync::Semaphore::new(options.image_workers.max(1))),
        cache_dir,
        loopback_only: options.loopback_only,
    };
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::asset))
        .route("/api/datasets", get(api::datasets))
        .route("/api/datasets/{name}", get(api::dataset_info))
        .route("/api/datasets/{name}/samples", get(api::samples))
        .route("/api/datasets/{name}/samples/{id}", get(api::sample))
        .route("/api/datasets/{name}/patches", get(api::patches))
        .route("/api/datasets/{name}/runs", get(api::runs))
        .route("/api/datasets/{name}/sort", post(sort::sort))
        .route("/api/datasets/{name}/tags", post(api::tags))
        .route("/api/datasets/{name}/duplicates", post(dups::duplicates))
        .route("/api/datasets/{name}/distances", get(dups::distances))
        .route("/media/{id}", get(media::media))
        .route("/thumb/{id}", get(media::thumb))
        .route("/crop/{id}/{label_id}", get(media::crop))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page or route")
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server hit an internal error; see its log",
    )
    .into_response()
}

/// Whether a `Host` header names this machine's loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1") || name.starts_with("127.")
}

/// Refuses foreign `Host` headers on a loopback server and sets defensive headers.
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let foreign = state.loopback_only
        && req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| !is_loopback_host(host));
    let mut res = if foreign {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            "this App server only answers requests addressed to localhost",
        )
        .into_response()
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Serves the App on `listener` until `shutdown` completes. Binding a non-loopback address turns
/// the loopback `Host` check off (the caller chose to expose the server) and logs a warning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    simile: Simile,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let loopback = addr.ip().is_loopback();
    if !loopback {
        tracing::warn!(
            "the App listens on {addr}, reachable from other machines: anyone who can reach it can read the images of every dataset in this home"
        );
    }
    let app = router_with(
        simile,
        AppOptions {
            loopback_only: loopback,
            ..AppOptions::default()
        },
    );
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The URL a person opens for an address (and optionally a dataset).
pub fn url_for(addr: SocketAddr, dataset: Option<&str>) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    match dataset {
        Some(d) => format!(
            "http://{host}:{}/?dataset={}",
            addr.port(),
            encode_component(d)
        ),
        None => format!("http://{host}:{}/", addr.port()),
    }
}

/// Percent-encodes a URL query component.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost:5151",
            "127.0.0.1:80",
            "[::1]:5151",
            "localhost",
            "127.0.0.2:1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example:5151",
            "192.168.1.2:5151",
            "[::2]:1",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn urls() {
        let a: SocketAddr = "127.0.0.1:5151".parse().expect("addr");
        assert_eq!(
            url_for(a, Some("my data")),
            "http://127.0.0.1:5151/?dataset=my%20data"
        );
        let b: SocketAddr = "0.0.0.0:80".parse().expect("addr");
        assert_eq!(url_for(b, None), "http://127.0.0.1:80/");
    }
}
