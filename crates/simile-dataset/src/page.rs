//! Pages of a view: `limit` samples from `offset`, and the view's size, without reading the
//! whole dataset when the view allows it.
//!
//! Two kinds of views page without evaluating the view:
//!
//! - *Windows*: leading `match`/`match_tags` stages that translate to SQL (or none), then only
//!   `skip`/`limit` stages. Their rows are the SQL rows in `seq` order, so a position is found
//!   by a seek:
//!   - the whole dataset, when its `seq` values are contiguous (rows added and none deleted from
//!     the middle: `max − min + 1` equals the kept count), by arithmetic: position `p` is
//!     `seq = min + p`, two index probes and no walk at all;
//!   - otherwise through a *page index*: one walk of the view's `seq` values (the covering
//!     `(dataset, seq)` index for the whole dataset) gives the count and a bookmark every
//!     [`STRIDE`] rows. It is cached for the database's current version — this connection's
//!     change count plus SQLite's `data_version`, which moves when another connection commits —
//!     so a later page at any offset is a seek to a bookmark plus at most `STRIDE` skipped index
//!     entries. A first page near the start (`head`) needs no index: it skips its few rows.
//!
//!   The whole dataset's size is the count kept beside it (one row read).
//! - *Id lists*: an ordered `select` or a ranked result (a similarity sort), then `skip`/`limit`.
//!   Their rows are the listed ids that are still samples, first occurrence only. A page reads
//!   its rows by primary key; which ids are samples is probed once per database version (one
//!   index probe per id, cached like a page index), or — for a page near the start — only as
//!   far as the page needs.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::types::Value as Sql;
use rusqlite::{params, Connection, OptionalExtension};

use crate::filter::SqlFilter;
use crate::view::{read_rows, Row};
use crate::{Result, Sample, Stage, View};

/// Rows between two bookmarks of a page index.
pub const STRIDE: usize = 1024;
/// Page indexes kept at once (the cache is emptied when it grows past this).
const MAX_CACHED: usize = 64;
/// The first and last `seq` of a dataset (two index probes).
const SPAN_SQL: &str = "SELECT (SELECT MIN(seq) FROM samples WHERE dataset_id = ?1), \
                        (SELECT MAX(seq) FROM samples WHERE dataset_id = ?1)";
/// Whether an id is a sample of a dataset, and its `seq` (one probe of the unique index).
const PROBE_SQL: &str = "SELECT seq FROM samples WHERE dataset_id = ?1 AND id = ?2";
/// Rows a window skips by itself (no page index) when none is cached.
const DIRECT_SKIP: usize = 4 * STRIDE;

/// One page of a view.
#[derive(Debug, Clone)]
pub struct Page {
    /// Samples in the whole view.
    pub total: usize,
    /// The page's samples, in view order.
    pub samples: Vec<Sample>,
}

/// A view's count and where its rows are, for one database version: for a window the `seq` of
/// every `STRIDE`-th row, for an id list the `seq` of every listed id that is a sample.
#[derive(Debug)]
pub(crate) struct PageIndex {
    version: (i64, u64),
    count: usize,
    marks: Vec<i64>,
}

/// Page indexes by view query.
#[derive(Debug, Default)]
pub(crate) struct PageCache(Mutex<HashMap<String, Arc<PageIndex>>>);

/// A window: SQL filters, then `skip` rows and at most `limit`.
pub(crate) struct Window {
    pushed: Vec<SqlFilter>,
    skip: usize,
    limit: Option<usize>,
}

/// An id list: these ids in this order, then `skip` rows and at most `limit`.
pub(crate) struct IdList<'a> {
    ids: &'a [String],
    skip: usize,
    limit: Option<usize>,
}

impl IdList<'_> {
    /// Whether a limit bounds the list's rows.
    pub(crate) fn is_bounded(&self) -> bool {
        self.limit.is_some()
    }
    /// Rows skipped.
    pub(crate) fn skip(&self) -> usize {
        self.skip
    }
    /// At most this many rows.
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }
}

/// Folds `skip`/`limit` stages into one skip and limit; `None` if another stage is among them.
fn fold_skip_limit(stages: &[Stage]) -> Option<(usize, Option<usize>)> {
    let (mut skip, mut limit) = (0usize, None::<usize>);
    for s in stages {
        match s {
            Stage::Skip(k) => {
                skip = skip.saturating_add(*k);
                limit = limit.map(|l| l.saturating_sub(*k));
            }
            Stage::Limit(k) => limit = Some(limit.map_or(*k, |l| l.min(*k))),
            _ => return None,
        }
    }
    Some((skip, limit))
}

/// How many rows of `base` rows a window with `skip`/`limit` holds.
fn window_len(base: usize, skip: usize, limit: Option<usize>) -> usize {
    base.saturating_sub(skip).min(limit.unwrap_or(usize::MAX))
}

fn version(c: &Connection) -> Result<(i64, u64)> {
    let v: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    Ok((v, c.total_changes()))
}

fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl View {
    /// The view as a window, if it is one.
    pub(crate) fn window(&self) -> Option<Window> {
        let (pushed, n) = self.pushdown();
        let (skip, limit) = fold_skip_limit(&self.stages()[n..])?;
        Some(Window {
            pushed,
            skip,
            limit,
        })
    }

    /// The view as an id list, if it is one.
    pub(crate) fn id_list(&self) -> Option<IdList<'_>> {
        let (first, rest) = self.stages().split_first()?;
        let ids = match first {
            Stage::Select { ids, ordered: true } | Stage::Ranked { ids, .. } => ids,
            _ => return None,
        };
        let (skip, limit) = fold_skip_limit(rest)?;
        Some(IdList { ids, skip, limit })
    }

    fn cache_get(&self, key: &str, version: (i64, u64)) -> Option<Arc<PageIndex>> {
        let cache = self.dataset().store().pages().0.lock();
        let cache = cache.unwrap_or_else(|e| e.into_inner());
        cache.get(key).filter(|p| p.version == version).cloned()
    }

    fn cache_put(&self, key: String, pi: PageIndex) -> Arc<PageIndex> {
        let pi = Arc::new(pi);
        let cache = self.dataset().store().pages().0.lock();
        let mut cache = cache.unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, pi.clone());
        pi
    }

    /// The `seq` walk of a window's filtered rows and its cache key.
    fn walk_query(&self, pushed: &[SqlFilter]) -> (String, Vec<Sql>, String) {
        let (mut sql, params) = self.base_query("seq", pushed);
        sql.push_str(" ORDER BY seq");
        let key = format!("{sql}\u{0}{params:?}");
        (sql, params, key)
    }

    /// The page index of a window's filtered rows (made or reused).
    fn page_index(&self, pushed: &[SqlFilter]) -> Result<Arc<PageIndex>> {
        let (sql, params, key) = self.walk_query(pushed);
        let pi = self.dataset().store().read(|c| {
            let version = version(c)?;
            if let Some(pi) = self.cache_get(&key, version) {
                return Ok::<_, crate::DatasetError>(Err(pi));
            }
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
            let mut count = 0usize;
            let mut marks = Vec::new();
            while let Some(r) = rows.next()? {
                if count % STRIDE == 0 {
                    marks.push(r.get(0)?);
                }
                count += 1;
            }
            Ok(Ok(PageIndex {
                version,
                count,
                marks,
            }))
        })?;
        Ok(match pi {
            Ok(made) => self.cache_put(key, made),
            Err(cached) => cached,
        })
    }

    /// Rows before the window's skip: the kept count for the whole dataset, else the page index.
    fn window_base_count(&self, w: &Window) -> Result<usize> {
        if w.pushed.is_empty() {
            return self.dataset().len();
        }
        Ok(self.page_index(&w.pushed)?.count)
    }

    /// Where row `start` of the window's filtered rows is: a `seq` to seek to and rows to skip
    /// from there (`None`: past the end).
    fn window_seek(&self, w: &Window, start: usize) -> Result<Option<(i64, usize)>> {
        if w.pushed.is_empty() {
            let ds = self.dataset();
            let span: (Option<i64>, Option<i64>) = ds.store().read(|c| {
                c.prepare_cached(SPAN_SQL)?
                    .query_row([ds.db_id()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(crate::DatasetError::from)
            })?;
            let (Some(lo), Some(hi)) = span else {
                return Ok(None);
            };
            let n = ds.len()?;
            if usize::try_from(hi - lo + 1).ok() == Some(n) {
                return Ok((start < n).then(|| (lo + clamp(start), 0)));
            }
        }
        let (_, _, key) = self.walk_query(&w.pushed);
        let cached = self
            .dataset()
            .store()
            .read(|c| Ok::<_, crate::DatasetError>(self.cache_get(&key, version(c)?)))?;
        let pi = match cached {
            Some(pi) => pi,
            None if start < DIRECT_SKIP => return Ok(Some((i64::MIN, start))),
            None => self.page_index(&w.pushed)?,
        };
        Ok(pi
            .marks
            .get(start / STRIDE)
            .map(|&seq| (seq, start % STRIDE)))
    }

    /// Up to `n` rows (all to the end when `None`) from row `start` of the window's filtered
    /// rows, in `seq` order, with these columns (`seq, id, filepath, fields-or-NULL`).
    pub(crate) fn window_rows(
        &self,
        w: &Window,
        start: usize,
        n: Option<usize>,
        columns: &str,
    ) -> Result<Vec<Row>> {
        if n == Some(0) {
            return Ok(Vec::new());
        }
        let Some((from, skip)) = self.window_seek(w, start)? else {
            return Ok(Vec::new());
        };
        let (sql, mut params) = self.window_sql(w, columns);
        params.push(Sql::Integer(from));
        params.push(Sql::Integer(n.map_or(-1, clamp)));
        params.push(Sql::Integer(clamp(skip)));
        self.dataset().store().read(|c| read_rows(c, &sql, &params))
    }

    /// The query of `window_rows`; its last three parameters (first `seq`, limit, offset) are
    /// the caller's.
    fn window_sql(&self, w: &Window, columns: &str) -> (String, Vec<Sql>) {
        let (mut sql, params) = self.base_query(columns, &w.pushed);
        let k = params.len();
        sql.push_str(&format!(
            " AND seq >= ?{} ORDER BY seq LIMIT ?{} OFFSET ?{}",
            k + 1,
            k + 2,
            k + 3
        ));
        (sql, params)
    }

    /// The window's rows (all of them, after its skip and limit).
    pub(crate) fn window_all(&self, w: &Window, columns: &str) -> Result<Vec<Row>> {
        self.window_rows(w, w.skip, w.limit, columns)
    }

    /// The `seq` of every listed id that is a sample, first occurrence only, probed once per
    /// database version.
    fn id_index(&self, l: &IdList<'_>) -> Result<Arc<PageIndex>> {
        let key = format!(
            "ids\u{0}{}\u{0}{}\u{0}{:x}",
            self.dataset().db_id(),
            l.ids.len(),
            list_hash(l.ids)
        );
        let ds = self.dataset();
        let made = ds.store().read(|c| {
            let version = version(c)?;
            if let Some(pi) = self.cache_get(&key, version) {
                return Ok::<_, crate::DatasetError>(Err(pi));
            }
            let marks = probe(c, ds.db_id(), l.ids, usize::MAX)?;
            Ok(Ok(PageIndex {
                version,
                count: marks.len(),
                marks,
            }))
        })?;
        Ok(match made {
            Ok(pi) => self.cache_put(key, pi),
            Err(cached) => cached,
        })
    }

    /// Up to `n` rows (all when `None`) from row `start` of the id list's sample rows.
    pub(crate) fn id_rows(
        &self,
        l: &IdList<'_>,
        start: usize,
        n: Option<usize>,
        columns: &str,
    ) -> Result<Vec<Row>> {
        let ds = self.dataset();
        let end = n.map_or(usize::MAX, |n| start.saturating_add(n));
        let near;
        let index;
        let seqs: &[i64] = if end <= DIRECT_SKIP {
            // A page near the start: probe only as far as it needs.
            near = ds.store().read(|c| probe(c, ds.db_id(), l.ids, end))?;
            &near
        } else {
            index = self.id_index(l)?;
            &index.marks
        };
        let page = &seqs[start.min(seqs.len())..end.min(seqs.len())];
        let sql = format!("SELECT {columns} FROM samples WHERE seq = ?1");
        ds.store().read(|c| {
            let mut out = Vec::with_capacity(page.len());
            for &seq in page {
                out.extend(read_rows(c, &sql, &[Sql::Integer(seq)])?);
            }
            Ok(out)
        })
    }

    /// The first `n` samples of a window or an id list, read without evaluating (or cloning)
    /// the view; `None` for other views.
    pub(crate) fn head_of_page_view(&self, n: usize) -> Result<Option<Vec<Sample>>> {
        const NO_FIELDS: &str = "seq, id, filepath, NULL";
        let cap = |limit: Option<usize>| Some(limit.map_or(n, |l| l.min(n)));
        let rows = if let Some(w) = self.window() {
            self.window_rows(&w, w.skip, cap(w.limit), NO_FIELDS)?
        } else if let Some(l) = self.id_list() {
            self.id_rows(&l, l.skip, cap(l.limit), NO_FIELDS)?
        } else {
            return Ok(None);
        };
        Ok(Some(self.samples_of(&rows)?))
    }

    /// Samples in the view. Windows are counted from the kept count or once per database
    /// version; id lists once per database version.
    pub fn count(&self) -> Result<usize> {
        if let Some(w) = self.window() {
            return Ok(window_len(self.window_base_count(&w)?, w.skip, w.limit));
        }
        if let Some(l) = self.id_list() {
            return Ok(window_len(self.id_index(&l)?.count, l.skip, l.limit));
        }
        Ok(self.evaluate()?.len())
    }

    /// `limit` samples from `offset` (in view order) and the view's total. Windows and id lists
    /// seek to the page (see the module documentation): no sample outside the page is read or
    /// parsed. Other views are evaluated once and only the page's samples are materialised.
    pub fn page(&self, offset: usize, limit: usize) -> Result<Page> {
        const COLUMNS: &str = "seq, id, filepath, fields";
        let fast = if let Some(w) = self.window() {
            let total = window_len(self.window_base_count(&w)?, w.skip, w.limit);
            let n = limit.min(total.saturating_sub(offset));
            let start = w.skip.saturating_add(offset);
            Some((total, self.window_rows(&w, start, Some(n), COLUMNS)?))
        } else if let Some(l) = self.id_list() {
            let total = window_len(self.id_index(&l)?.count, l.skip, l.limit);
            let n = limit.min(total.saturating_sub(offset));
            let start = l.skip.saturating_add(offset);
            Some((total, self.id_rows(&l, start, Some(n), COLUMNS)?))
        } else {
            None
        };
        if let Some((total, rows)) = fast {
            return Ok(Page {
                total,
                samples: self.samples_of(&rows)?,
            });
        }
        let rows = self.evaluate()?;
        let total = rows.len();
        let start = offset.min(total);
        let end = start.saturating_add(limit).min(total);
        Ok(Page {
            total,
            samples: self.samples_of(&rows[start..end])?,
        })
    }
}

/// A 64-bit hash of an id list (eight bytes at a time, each id's length mixed in): its
/// page-index key.
fn list_hash(ids: &[String]) -> u64 {
    let mix = |h: u64, w: u64| {
        let h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for chunk in id.as_bytes().chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(w));
        }
        h = mix(h, id.len() as u64);
    }
    h
}

/// The `seq` of each id that is a sample of the dataset, in list order, first occurrence only,
/// stopping after `want` found.
fn probe(c: &Connection, dataset_id: i64, ids: &[String], want: usize) -> Result<Vec<i64>> {
    let mut st = c.prepare_cached(PROBE_SQL)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if out.len() >= want {
            break;
        }
        let seq: Option<i64> = st
            .query_row(params![dataset_id, id], |r| r.get(0))
            .optional()?;
        if let Some(seq) = seq {
            if seen.insert(seq) {
                out.push(seq);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Filter, Store};

    /// `EXPLAIN QUERY PLAN` details of a query.
    fn plan(store: &Store, sql: &str, params: &[Sql]) -> String {
        store
            .read(|c| {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = st
                    .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                        r.get::<_, String>(3)
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, crate::DatasetError>(rows.join("; "))
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn every_page_query_seeks_through_an_index() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let ds = store.create_dataset("d").unwrap_or_else(|e| panic!("{e}"));
        let (id, int) = (Sql::Integer(ds.db_id()), Sql::Integer(1));
        let whole = ds.view().window().unwrap_or_else(|| panic!("not a window"));
        let (sql, mut params) = ds.view().window_sql(&whole, "seq, id, filepath, fields");
        params.extend([int.clone(), int.clone(), int.clone()]);
        let row = "SELECT fields FROM samples WHERE seq = ?1".to_string();
        let cases = [
            (SPAN_SQL.to_string(), vec![id.clone()]),
            (
                PROBE_SQL.to_string(),
                vec![id.clone(), Sql::Text("x".into())],
            ),
            (
                "SELECT samples FROM dataset_stats WHERE dataset_id = ?1".into(),
                vec![id.clone()],
            ),
            (row, vec![int.clone()]),
            (sql, params),
        ];
        for (sql, params) in cases {
            let p = plan(&store, &sql, &params);
            assert!(p.contains("SEARCH"), "{sql}: {p}");
            assert!(!p.contains("SCAN samples"), "{sql} scans: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql} sorts: {p}");
        }
        // A filtered window seeks to its bookmark through the (dataset, seq) index too: only
        // the filter runs per row, on rows from the bookmark on.
        let filtered = ds.view().match_field(Filter::Gte("idx".into(), 3.0));
        let w = filtered.window().unwrap_or_else(|| panic!("not a window"));
        let (sql, mut params) = filtered.window_sql(&w, "seq, id, filepath, fields");
        params.extend([int.clone(), int.clone(), int]);
        let p = plan(&store, &sql, &params);
        assert!(p.contains("SEARCH samples USING"), "{p}");
        assert!(
            !p.contains("SCAN samples") && !p.contains("TEMP B-TREE"),
            "{p}"
        );
    }
}
