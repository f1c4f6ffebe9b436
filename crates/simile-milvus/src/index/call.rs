//! Running SDK requests on the crate's runtime and turning their failures into the contract's
//! errors: every request goes through [`MilvusIndex::request`] (writes, schema changes) or
//! [`MilvusIndex::read`] (queries and searches).
use std::future::Future;

use milvus::v2::error::Error as SdkError;
use milvus::v2::prelude::ConsistencyLevel;
use milvus::v2::ClientV2;
use simile_index::{Error, Result};

use super::MilvusIndex;
use crate::conn::{classify, map_error, runtime_error, Kind};
use crate::runtime::block_on;
use crate::{MilvusError, BACKEND};

/// What the SDK's builders and calls return.
pub(super) type SdkResult<T> = std::result::Result<T, SdkError>;

impl MilvusIndex {
    /// Runs an SDK future on the crate's runtime. A runtime failure is mapped; the SDK's own
    /// result is returned as it is, for callers that handle some SDK errors themselves.
    pub(super) fn run<F, T>(&self, op: &'static str, fut: F) -> Result<SdkResult<T>>
    where
        F: Future<Output = SdkResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        block_on(fut).map_err(|e| runtime_error(op, &self.cfg.connection.uri, e))
    }

    /// Runs an SDK future on the crate's runtime, mapping errors.
    pub(super) fn call<F, T>(&self, op: &'static str, fut: F) -> Result<T>
    where
        F: Future<Output = SdkResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.run(op, fut)?.map_err(|e| self.map_err(op, e))
    }

    /// Build request → call → map error, in one place: `req` is a builder's result, `send`
    /// makes the call with a client of this handle; failures of either are mapped for `op`.
    pub(super) fn request<R, F, Fut, T>(
        &self,
        op: &'static str,
        req: SdkResult<R>,
        send: F,
    ) -> Result<T>
    where
        F: FnOnce(ClientV2, R) -> Fut,
        Fut: Future<Output = SdkResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let req = req.map_err(|e| self.map_err(op, e))?;
        self.call(op, send(self.client.clone(), req))
    }

    /// Like [`MilvusIndex::request`] for reads: the request is built for the consistency level
    /// the read needs (see `consistency`); a collection found not loaded (after a server
    /// restart, or released by someone) is loaded and the read retried once.
    pub(super) fn read<R, B, F, Fut, T>(&self, op: &'static str, build: B, send: F) -> Result<T>
    where
        B: FnOnce(ConsistencyLevel) -> SdkResult<R>,
        R: Clone,
        F: Fn(ClientV2, R) -> Fut,
        Fut: Future<Output = SdkResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let ticket = self.reads.next();
        let req = build(ticket.level()).map_err(|e| self.map_err(op, e))?;
        let attempt = || send(self.client.clone(), req.clone());
        let out = match self.run(op, attempt())? {
            Ok(v) => v,
            Err(e) if classify(&e) == Kind::NotLoaded => {
                tracing::info!(collection = %self.collection, "collection not loaded (server restart?): loading it and retrying");
                self.load()?;
                self.call(op, attempt())?
            }
            Err(e) => return Err(self.map_err(op, e)),
        };
        self.reads.done(ticket);
        Ok(out)
    }

    /// The contract's error for an SDK error; a missing collection is
    /// [`Error::IndexMissing`], and this handle forgets that it exists.
    pub(super) fn map_err(&self, op: &'static str, e: SdkError) -> Error {
        if classify(&e) == Kind::CollectionMissing {
            self.lock().exists = false;
            return Error::IndexMissing {
                backend: BACKEND,
                name: self.collection.clone(),
            };
        }
        map_error(op, &self.cfg.connection.uri, e)
    }
}

/// A response this backend cannot use.
pub(super) fn malformed(op: &'static str, what: impl Into<String>) -> Error {
    Error::Backend {
        backend: BACKEND,
        op,
        source: Box::new(MilvusError::Malformed(what.into())),
    }
}
