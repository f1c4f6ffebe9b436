//! Reading rows back: by key (`get`, `contains`), by sample id, every row (paging by key), and
//! `count(*)`. Responses are kept under tonic's default 4 MiB decoding limit.
use std::collections::HashMap;

use milvus::v2::prelude::{FieldData, QueryRequest};
use simile_index::{Embeddings, Result};

use super::call::malformed;
use super::sample_keys::SampleIds;
use super::schema::{PK, SAMPLE_ID, VECTOR};
use super::{dedup_keys, MilvusIndex, RESTRICT_BATCH};
use crate::expr::{in_filter, string_literal};

/// Keep each response under tonic's default 4 MiB decoding limit.
const RESPONSE_BUDGET_BYTES: usize = 3 << 20;
/// Requests `get` keeps in flight.
const FETCH_IN_FLIGHT: usize = 4;
/// Rows per page of a scan without vectors.
const SCAN_PAGE_KEYS: usize = 4 * RESTRICT_BATCH;

/// Rows read back from a query (columns of equal length; `vectors` empty when not asked for).
#[derive(Debug, Default)]
pub(super) struct Rows {
    pub(super) pks: Vec<String>,
    pub(super) sample_ids: Vec<String>,
    pub(super) vectors: Vec<Vec<f32>>,
}

impl MilvusIndex {
    /// Rows of `fields` matching `filter` (at most `limit`).
    fn query_rows(
        &self,
        op: &'static str,
        filter: String,
        fields: &[&str],
        limit: Option<i64>,
    ) -> Result<Rows> {
        let source = self.sample_keys.source();
        let requested = source.output_fields(fields);
        let want_sample = fields.contains(&SAMPLE_ID);
        let want_vector = fields.contains(&VECTOR);
        let build = |level| {
            let mut b = QueryRequest::builder()
                .collection_name(self.collection.clone())
                .filter(filter)
                .output_fields(requested)
                .consistency_level(level);
            if let Some(l) = limit {
                b = b.limit(l);
            }
            b.build()
        };
        let rows = self.read(op, build, |client, req| async move {
            let resp = client.query(req).await?;
            let r = resp.results();
            let col = |name: &str| r.get_output_field(name);
            let pks = col(PK).and_then(|f| f.as_varchar()).map(|v| v.to_vec());
            let sample_ids = match (want_sample, source) {
                (false, _) => Some(Vec::new()),
                (true, SampleIds::FromPk) => pks.clone(),
                (true, SampleIds::FromField) => col(SAMPLE_ID)
                    .and_then(|f| f.as_varchar())
                    .map(|v| v.to_vec()),
            };
            let vectors = if want_vector {
                col(VECTOR)
                    .and_then(|f| f.as_float_vectors())
                    .map(|v| v.to_vec())
            } else {
                Some(Vec::new())
            };
            Ok((pks, sample_ids, vectors, r.get_row_count()))
        })?;
        match rows {
            (Some(pks), Some(sample_ids), Some(vectors), _) => Ok(Rows {
                pks,
                sample_ids,
                vectors,
            }),
            (_, _, _, 0) => Ok(Rows::default()),
            _ => Err(malformed(op, "query response lacks the requested fields")),
        }
    }

    /// How many rows with vectors fit in one response.
    fn rows_per_response(&self) -> usize {
        let dim = self.lock().dim.unwrap_or(512);
        (RESPONSE_BUDGET_BYTES / (dim * 4 + 128)).clamp(1, self.cfg.batch_size.min(RESTRICT_BATCH))
    }

    /// The stored rows of `keys` (absent keys skipped), as a map key → (sample id, vector);
    /// vectors are empty unless `with_vectors`.
    pub(super) fn fetch(
        &self,
        keys: &[String],
        with_vectors: bool,
    ) -> Result<HashMap<String, (String, Vec<f32>)>> {
        let mut out = HashMap::with_capacity(keys.len());
        if keys.is_empty() || !self.lock().exists {
            return Ok(out);
        }
        let keys = dedup_keys(keys);
        let (per, fields): (usize, &[&str]) = if with_vectors {
            (self.rows_per_response(), &[PK, SAMPLE_ID, VECTOR])
        } else {
            (RESTRICT_BATCH, &[PK, SAMPLE_ID])
        };
        // Several requests in flight: the server answers `pk in [...]` queries one core each.
        let chunks: Vec<&[String]> = keys.chunks(per).collect();
        let workers = FETCH_IN_FLIGHT.min(chunks.len()).max(1);
        let answers: Vec<Vec<(usize, Result<Rows>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let chunks = &chunks;
                    scope.spawn(move || {
                        (w..chunks.len())
                            .step_by(workers)
                            .map(|c| {
                                (
                                    c,
                                    self.query_rows("get", in_filter(PK, chunks[c]), fields, None),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut answers: Vec<(usize, Result<Rows>)> = answers.into_iter().flatten().collect();
        answers.sort_by_key(|a| a.0);
        for (_, rows) in answers {
            let rows = rows?;
            let n = rows.pks.len();
            let mut vectors = rows.vectors.into_iter();
            for (i, (pk, sid)) in rows.pks.into_iter().zip(rows.sample_ids).enumerate() {
                let v = if with_vectors {
                    vectors
                        .next()
                        .ok_or_else(|| malformed("get", format!("{n} keys but {i} vectors")))?
                } else {
                    Vec::new()
                };
                out.insert(pk, (sid, v));
            }
        }
        Ok(out)
    }

    /// The stored rows of `keys` (dedupicated, in first-seen order, absent keys skipped).
    pub(super) fn fetch_rows(&self, keys: &[String]) -> Result<Rows> {
        let keys = dedup_keys(keys);
        let mut found = self.fetch(&keys, true)?;
        let mut rows = Rows::default();
        for key in keys {
            if let Some((sid, v)) = found.remove(&key) {
                rows.pks.push(key);
                rows.sample_ids.push(sid);
                rows.vectors.push(v);
            }
        }
        Ok(rows)
    }

    /// `get`: the stored rows of `keys`, in their order (absent keys skipped).
    pub(super) fn read_keys(&self, keys: &[String]) -> Result<Embeddings> {
        let found = self.fetch(keys, true)?;
        let mut rows = Rows::default();
        for k in keys {
            if let Some((sid, v)) = found.get(k) {
                rows.pks.push(k.clone());
                rows.sample_ids.push(sid.clone());
                rows.vectors.push(v.clone());
            }
        }
        self.rows_to_embeddings(rows)
    }

    /// `get_by_sample_ids`: every row of each sample (in the order of `sample_ids`, keys sorted
    /// within a sample).
    pub(super) fn read_sample_ids(&self, sample_ids: &[String]) -> Result<Embeddings> {
        if sample_ids.is_empty() || !self.lock().exists {
            return Ok(Embeddings::empty(self.dim_or_zero()));
        }
        let wanted = dedup_keys(sample_ids);
        let mut by_sample: HashMap<String, Vec<(String, Vec<f32>)>> = HashMap::new();
        // Patch indexes hold several rows per sample: ask for fewer samples per request.
        let per = (self.rows_per_response() / 4).max(1);
        for chunk in wanted.chunks(per) {
            // Sample indexes: the pk is the sample id, and pk filters use the pk index.
            let field = self.sample_keys.source().filter_field();
            let rows = self.query_rows(
                "get_by_sample_ids",
                in_filter(field, chunk),
                &[PK, SAMPLE_ID, VECTOR],
                None,
            )?;
            if rows.vectors.len() != rows.pks.len() {
                return Err(malformed("get_by_sample_ids", "fewer vectors than keys"));
            }
            for ((pk, sid), v) in rows.pks.into_iter().zip(rows.sample_ids).zip(rows.vectors) {
                by_sample.entry(sid).or_default().push((pk, v));
            }
        }
        let mut rows = Rows::default();
        for sid in &wanted {
            if let Some(mut group) = by_sample.remove(sid) {
                group.sort_by(|a, b| a.0.cmp(&b.0));
                for (pk, v) in group {
                    rows.pks.push(pk);
                    rows.sample_ids.push(sid.clone());
                    rows.vectors.push(v);
                }
            }
        }
        self.rows_to_embeddings(rows)
    }

    /// Every row (pk order), paging with `pk > last`.
    pub(super) fn scan_all(&self, with_vectors: bool) -> Result<Rows> {
        let mut all = Rows::default();
        if !self.lock().exists {
            return Ok(all);
        }
        let (page, fields): (usize, &[&str]) = if with_vectors {
            (self.rows_per_response(), &[PK, SAMPLE_ID, VECTOR])
        } else {
            (SCAN_PAGE_KEYS, &[PK, SAMPLE_ID])
        };
        let mut last: Option<String> = None;
        loop {
            let filter = match &last {
                None => format!("{PK} >= \"\""),
                Some(l) => format!("{PK} > {}", string_literal(l)),
            };
            let rows = self.query_rows("scan", filter, fields, Some(page as i64))?;
            let n = rows.pks.len();
            if n == 0 {
                break;
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|a, b| rows.pks[*a].cmp(&rows.pks[*b]));
            last = order.last().map(|i| rows.pks[*i].clone());
            for i in order {
                all.pks.push(rows.pks[i].clone());
                all.sample_ids.push(rows.sample_ids[i].clone());
                if with_vectors {
                    let v = rows
                        .vectors
                        .get(i)
                        .ok_or_else(|| malformed("scan", "fewer vectors than keys"))?;
                    all.vectors.push(v.clone());
                }
            }
            if n < page {
                break;
            }
        }
        Ok(all)
    }

    pub(super) fn rows_to_embeddings(&self, rows: Rows) -> Result<Embeddings> {
        let dim = self.dim_or_zero();
        if rows.pks.is_empty() {
            return Ok(Embeddings::empty(dim));
        }
        let mut data = Vec::with_capacity(rows.pks.len() * dim);
        for v in &rows.vectors {
            if v.len() != dim {
                return Err(malformed(
                    "get",
                    format!("a stored vector has {} values, not {dim}", v.len()),
                ));
            }
            data.extend_from_slice(v);
        }
        Embeddings::new(dim, data, rows.pks, rows.sample_ids)
    }

    /// `size`: the exact row count (`count(*)`).
    pub(super) fn count(&self) -> Result<usize> {
        if !self.lock().exists {
            return Ok(0);
        }
        let build = |level| {
            QueryRequest::builder()
                .collection_name(self.collection.clone())
                .filter("")
                .output_fields(["count(*)"])
                .consistency_level(level)
                .build()
        };
        let count = self.read("count", build, |client, req| async move {
            let resp = client.query(req).await?;
            Ok(resp
                .results()
                .get_output_field("count(*)")
                .and_then(|f| match f {
                    FieldData::Int64 { values, .. } => values.first().copied(),
                    _ => None,
                }))
        })?;
        match count {
            Some(c) => Ok(c.max(0) as usize),
            None => Err(malformed("count", "no count(*) in the response")),
        }
    }
}
