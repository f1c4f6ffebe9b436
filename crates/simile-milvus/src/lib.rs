//! The Milvus similarity backend of simile, on the official `milvus-sdk-rust` (V2 client).
//!
//! [`MilvusFactory`] creates and reopens [`MilvusIndex`]es; both implement the blocking
//! `simile-index` contract. The async SDK runs on a runtime owned by this crate (see
//! [`SimilarityBackend`]'s notes), so callers need no runtime.
//!
//! # Parameters (`BackendParams::params`)
//! | name | default | notes |
//! |---|---|---|
//! | `uri` | `http://localhost:19530` | connection, not persisted |
//! | `user`, `password`, `token` | – | credentials, kept in [`Secret`](simile_index::Secret)s, never persisted or printed |
//! | `db_name`, `secure` | –, false | connection, not persisted |
//! | `collection_name` | `fiftyone_<dataset>_<6 random>` | an existing collection is connected to (dim read from it) |
//! | `metric` | dotproduct | cosine→COSINE, dotproduct→IP, euclidean→L2 |
//! | `consistency_level` | Session | Strong, Session, Bounded, Eventually |
//! | `index_type` | HNSW | HNSW (approximate) or FLAT (exact) |
//! | `hnsw_m`, `hnsw_ef_construction` | 16, 128 | HNSW build parameters |
//! | `search_ef` | 64 | HNSW `ef` sent with every search (raised to `k`) |
//! | `batch_size` | 1000 | rows per upsert request / ids per query request |
//! | `parallel_batches` | 2 | upsert requests in flight |
//! | `connect_timeout_s`, `rpc_timeout_s`, `retry_attempts` | 5, 60, 4 | failure bounds |
//! | `flush_on_persist` | false | `persist()` flushes (Milvus logs acknowledged writes durably anyway) |
//! | `telemetry` | false | the SDK's client telemetry heartbeat |
//!
//! # Schema (compatible with FiftyOne's Milvus backend)
//! `pk` VARCHAR(64000) primary key (sample id, or label id for patch indexes), `vector`
//! FLOAT_VECTOR(dim), `sample_id` VARCHAR(64000); no dynamic field. In a sample index `pk` and
//! `sample_id` are equal, so searches and gets there ask for no `sample_id` output (a search
//! with output fields costs Milvus a second retrieve phase).
//!
//! # Queries
//! - `k` up to [`MAX_K`] (16384), [`Error::KTooLarge`](simile_index::Error::KTooLarge) above.
//! - View restriction: views of up to 512 keys go into one `pk in [...]` filter. Larger views
//!   first try an over-fetch: one unfiltered search deep enough to hold about `3k` view members on
//!   average (`3k·size/|view| + k` hits, when that is at most 16384), filtered here; it is used
//!   when it finds `k` view members (every closer view member would rank inside that depth too).
//!   Otherwise the view is searched with filters of at most [`RESTRICT_BATCH`] keys each and the
//!   results are merged. No expression ever holds more than [`RESTRICT_BATCH`] ids.
//! - `reverse = true`: for dotproduct and cosine, an ANN search with the negated query (the
//!   farthest under the metric are the nearest to `-q`); for euclidean, an exact scan.
//! - `k = None`: an exact scan of the candidates (the whole index, or the view), computed here.
//!
//! # Consistency and failures
//! - Reads use the configured level (Session by default: a read after this process's upsert sees
//!   it). On Milvus 2.3 a Session read right after a delete was observed to still see the deleted
//!   rows, so after a delete the next read is Strong (about one server time tick), then Session
//!   again.
//! - Writes are real upserts (deduplicated within a call, last row wins), sent in `batch_size`
//!   requests with `parallel_batches` in flight. `size()` is `count(*)`, exact after deletes.
//!   One exception keeps the first fill as fast as a plain insert: while the handle is the only
//!   one that can know its collection (created here under a random name that has not left the
//!   handle through `collection_name()`, `client()` or `persisted_config()`), it remembers the
//!   keys it wrote, and rows with keys it never wrote are sent as inserts (they cannot be stored
//!   yet). Any failed write, or the name leaving the handle, ends this: upserts only.
//! - Wrong credentials → [`Error::Unauthenticated`](simile_index::Error::Unauthenticated); server
//!   unreachable → [`Error::Unavailable`](simile_index::Error::Unavailable) after the connect
//!   timeout (new connection) or the retry budget (existing one); at once, with a
//!   [`MilvusError::Refused`] source, when the address refuses connections (nothing listens). A collection found not loaded
//!   (server restart) is loaded again and the read retried once.
//! - One SDK client per (uri, user, database, credentials) is shared by every index in the process.
#![warn(missing_docs)]

pub mod config;
mod conn;
mod expr;
mod index;
mod runtime;

use simile_index::{BackendFactory, BackendParams, Metric, Result, SimilarityBackend};

pub use config::{MilvusConfig, DEFAULT_URI, MAX_K};
pub use conn::shared_client_count;
pub use index::{owner_of, MilvusIndex, OwnedCollection, OWNER_PREFIX, RESTRICT_BATCH};
pub use milvus;

/// The backend's registered name.
pub const BACKEND: &str = "milvus";

/// Failures of this crate's own machinery, carried as the `source` of
/// [`simile_index::Error`] variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MilvusError {
    /// The Milvus SDK (or the server through it) reported an error.
    #[error("Milvus SDK call failed")]
    Sdk(#[source] Box<milvus::v2::error::Error>),
    /// The backend's async runtime could not run the request.
    #[error("the Milvus backend's async runtime failed: {0}")]
    Runtime(String),
    /// Nothing accepts connections at the server's address.
    #[error("{location} refused the connection: is Milvus running there, on that port?")]
    Refused {
        /// The server's address.
        location: String,
        #[source]
        /// The connection error.
        source: std::io::Error,
    },
    /// The server answered something this backend cannot use.
    #[error("unexpected Milvus response: {0}")]
    Malformed(String),
}

/// Creates and reopens Milvus indexes (`backend="milvus"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct MilvusFactory;

impl BackendFactory for MilvusFactory {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn default_metric(&self) -> Metric {
        Metric::DotProduct
    }

    fn create(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>> {
        Ok(Box::new(MilvusIndex::connect(params)?))
    }

    fn open(&self, params: &BackendParams) -> Result<Box<dyn SimilarityBackend>> {
        Ok(Box::new(MilvusIndex::connect(params)?))
    }
}
