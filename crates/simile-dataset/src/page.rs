//! Pages of a view: `limit` samples from `offset`, and the view's size, without reading the
//! whole dataset when the view allows it.
//!
//! Views that run entirely in SQL (the whole dataset, `match`/`match_tags` stages that
//! translate) get a *page index*: one walk of their rows' `seq` values (the covering
//! `(dataset, seq)` index for the whole dataset) gives the count and a bookmark every
//! [`STRIDE`] rows. It is cached for the database's current version — this connection's change
//! count plus SQLite's `data_version`, which moves when another connection commits — so any
//! later page at any offset is a seek to a bookmark plus at most `STRIDE` skipped index entries,
//! and counts are free until the data changes.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::view::read_rows;
use crate::{Result, Sample, View};

/// Rows between two bookmarks of a page index.
pub const STRIDE: usize = 1024;
/// Page indexes kept at once (the cache is emptied when it grows past this).
const MAX_CACHED: usize = 64;

/// One page of a view.
#[derive(Debug, Clone)]
pub struct Page {
    /// Samples in the whole view.
    pub total: usize,
    /// The page's samples, in view order.
    pub samples: Vec<Sample>,
}

/// A view's count and the `seq` of every `STRIDE`-th row, for one database version.
#[derive(Debug)]
pub(crate) struct PageIndex {
    version: (i64, u64),
    count: usize,
    marks: Vec<i64>,
}

/// Page indexes by view query.
#[derive(Debug, Default)]
pub(crate) struct PageCache(Mutex<HashMap<String, Arc<PageIndex>>>);

impl View {
    /// Whether every stage runs inside SQL.
    fn fully_pushed(&self) -> bool {
        self.pushdown().1 == self.stages().len()
    }

    /// The page index of a fully pushed view (made or reused).
    fn page_index(&self) -> Result<Arc<PageIndex>> {
        let (pushed, _) = self.pushdown();
        let (mut sql, params) = self.base_query("seq", &pushed);
        sql.push_str(" ORDER BY seq");
        let key = format!("{sql}\u{0}{params:?}");
        let store = self.dataset().store();
        store.read(|c| {
            let version: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0))?;
            let version = (version, c.total_changes());
            let cache = &store.pages().0;
            let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pi) = lock().get(&key).filter(|p| p.version == version) {
                return Ok(pi.clone());
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
            let pi = Arc::new(PageIndex {
                version,
                count,
                marks,
            });
            let mut cache = lock();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, pi.clone());
            Ok(pi)
        })
    }

    /// Samples in the view. Views that run in SQL are counted once per database version.
    pub fn count(&self) -> Result<usize> {
        if self.fully_pushed() {
            return Ok(self.page_index()?.count);
        }
        Ok(self.evaluate()?.len())
    }

    /// `limit` samples from `offset` (in view order) and the view's total. Views that run in SQL
    /// page there, from the nearest bookmark: no sample outside the page is read or parsed.
    /// Other views are evaluated once and only the page's samples are materialised.
    pub fn page(&self, offset: usize, limit: usize) -> Result<Page> {
        if self.fully_pushed() {
            let pi = self.page_index()?;
            if offset >= pi.count || limit == 0 {
                return Ok(Page {
                    total: pi.count,
                    samples: Vec::new(),
                });
            }
            let (pushed, _) = self.pushdown();
            let (mut sql, mut params) = self.base_query("seq, id, filepath, fields", &pushed);
            let n = params.len();
            sql.push_str(&format!(
                " AND seq >= ?{} ORDER BY seq LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2,
                n + 3
            ));
            params.push(rusqlite::types::Value::Integer(pi.marks[offset / STRIDE]));
            params.push(rusqlite::types::Value::Integer(clamp(limit)));
            params.push(rusqlite::types::Value::Integer(clamp(offset % STRIDE)));
            let rows = self
                .dataset()
                .store()
                .read(|c| read_rows(c, &sql, &params))?;
            return Ok(Page {
                total: pi.count,
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

fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
