//! Writing: upserts (or, on the private fast path, inserts) in `batch_size` requests with
//! `parallel_batches` in flight, and deletes of the keys that are stored.
use std::collections::{HashSet, VecDeque};
use std::ops::Range;

use milvus::v2::prelude::{DeleteRequest, FieldData, InsertRequest, UpsertRequest};
use simile_index::{Embeddings, Result};
use tokio::task::JoinHandle;

use super::call::SdkResult;
use super::private::WriteMode;
use super::schema::{PK, SAMPLE_ID, VECTOR};
use super::{dedup_keys, MilvusIndex, RESTRICT_BATCH};
use crate::conn::runtime_error;
use crate::expr::in_filter;
use crate::runtime::{block_on, spawn};
use crate::MilvusError;

impl MilvusIndex {
    /// `upsert`: creates the collection on the first write; a repeated key's last row wins.
    pub(super) fn write_rows(&self, batch: &Embeddings) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ensure_collection(batch.dim())?;
        // Last row of a repeated key wins; copy only when there are repeats.
        let mut seen = HashSet::with_capacity(batch.len());
        let deduped;
        let batch = if batch.keys().iter().all(|k| seen.insert(k.as_str())) {
            batch
        } else {
            deduped = batch.clone().dedup_last_wins();
            &deduped
        };
        if self.sample_keys.before_write(batch) {
            tracing::debug!(collection = %self.collection, "rows keyed by label ids: reading sample ids from the sample_id field");
        }
        self.private
            .write(batch, |rows, mode| self.send_rows(rows, mode))
    }

    /// Sends `batch` in requests of `batch_size` rows, `parallel_batches` in flight; the first
    /// error is returned once every request in flight has finished.
    fn send_rows(&self, batch: &Embeddings, mode: WriteMode) -> Result<()> {
        let size = self.cfg.batch_size.max(1);
        let mut in_flight = VecDeque::new();
        let mut start = 0;
        while start < batch.len() {
            let end = (start + size).min(batch.len());
            in_flight.push_back(self.spawn_rows(batch, start..end, mode)?);
            if in_flight.len() >= self.cfg.parallel_batches.max(1) {
                if let Some(h) = in_flight.pop_front() {
                    if let Err(e) = self.wait_rows(mode, h) {
                        for rest in in_flight.drain(..) {
                            let _ = self.wait_rows(mode, rest);
                        }
                        return Err(e);
                    }
                }
            }
            start = end;
        }
        let mut first_err = None;
        for h in in_flight.drain(..) {
            if let Err(e) = self.wait_rows(mode, h) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Starts the request writing rows `rows` of `batch`.
    fn spawn_rows(
        &self,
        batch: &Embeddings,
        rows: Range<usize>,
        mode: WriteMode,
    ) -> Result<JoinHandle<SdkResult<()>>> {
        let op = mode.op();
        let vectors: Vec<Vec<f32>> = rows.clone().map(|i| batch.row(i).to_vec()).collect();
        let insert = InsertRequest::builder()
            .collection_name(self.collection.clone())
            .columns(vec![
                FieldData::VarChar {
                    name: PK.into(),
                    values: batch.keys()[rows.clone()].to_vec(),
                },
                FieldData::FloatVector {
                    name: VECTOR.into(),
                    values: vectors,
                },
                FieldData::VarChar {
                    name: SAMPLE_ID.into(),
                    values: batch.sample_ids()[rows].to_vec(),
                },
            ])
            .build()
            .map_err(|e| self.map_err(op, e))?;
        let client = self.client.clone();
        match mode {
            WriteMode::Insert => spawn(async move { client.insert(insert).await.map(|_| ()) }),
            WriteMode::Upsert => {
                let req = UpsertRequest::builder()
                    .insert(insert)
                    .build()
                    .map_err(|e| self.map_err(op, e))?;
                spawn(async move { client.upsert(req).await.map(|_| ()) })
            }
        }
        .map_err(|e| runtime_error(op, &self.cfg.connection.uri, e))
    }

    /// Waits for a request started by [`MilvusIndex::spawn_rows`].
    fn wait_rows(&self, mode: WriteMode, h: JoinHandle<SdkResult<()>>) -> Result<()> {
        let op = mode.op();
        let uri = &self.cfg.connection.uri;
        match block_on(h) {
            Err(e) => Err(runtime_error(op, uri, e)),
            Ok(Err(join)) => Err(runtime_error(
                op,
                uri,
                MilvusError::Runtime(join.to_string()),
            )),
            Ok(Ok(Err(e))) => Err(self.map_err(op, e)),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// `remove`: deletes the stored ones of `keys` (at most [`RESTRICT_BATCH`] per request);
    /// returns how many were stored.
    pub(super) fn delete_keys(&self, keys: &[String]) -> Result<usize> {
        if keys.is_empty() || !self.lock().exists {
            return Ok(0);
        }
        let keys = dedup_keys(keys);
        let mut removed = 0;
        for chunk in keys.chunks(RESTRICT_BATCH) {
            let present: Vec<String> = self.fetch(chunk, false)?.into_keys().collect();
            if present.is_empty() {
                continue;
            }
            let req = DeleteRequest::builder()
                .collection_name(self.collection.clone())
                .filter(in_filter(PK, &present))
                .build();
            self.request("delete", req, |client, req| async move {
                client.delete(req).await.map(|_| ())
            })?;
            self.reads.deleted();
            removed += present.len();
        }
        Ok(removed)
    }
}
