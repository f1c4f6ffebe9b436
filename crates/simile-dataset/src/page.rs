//! Pages of a view: `limit` samples from `offset`, and the view's size, without reading the
//! whole dataset when the view allows it.
use crate::view::read_rows;
use crate::{Result, Sample, View};

/// One page of a view.
#[derive(Debug, Clone)]
pub struct Page {
    /// Samples in the whole view.
    pub total: usize,
    /// The page's samples, in view order.
    pub samples: Vec<Sample>,
}

impl View {
    /// Whether every stage runs inside SQL (the whole dataset, or `match`/`match_tags` stages
    /// that translate): then counts and pages cost what SQLite's index walk costs.
    fn fully_pushed(&self) -> bool {
        self.pushdown().1 == self.stages().len()
    }

    /// Samples in the view. Views made only of translatable matches are counted in SQL.
    pub fn count(&self) -> Result<usize> {
        if self.is_full() {
            return self.dataset().len();
        }
        if self.fully_pushed() {
            let (pushed, _) = self.pushdown();
            let (sql, params) = self.base_query("COUNT(*)", &pushed);
            return self.dataset().store().read(|c| {
                let n: i64 = c.query_row(&sql, rusqlite::params_from_iter(params.iter()), |r| {
                    r.get(0)
                })?;
                Ok(n as usize)
            });
        }
        Ok(self.evaluate()?.len())
    }

    /// `limit` samples from `offset` (in view order) and the view's total. The whole dataset and
    /// views of translatable matches page inside SQL (`LIMIT`/`OFFSET` on the `(dataset, seq)`
    /// index): no sample outside the page is read or parsed. Other views are evaluated once and
    /// only the page's samples are materialised.
    pub fn page(&self, offset: usize, limit: usize) -> Result<Page> {
        if self.fully_pushed() {
            let total = self.count()?;
            let (pushed, _) = self.pushdown();
            let (mut sql, mut params) = self.base_query("seq, id, filepath, fields", &pushed);
            let n = params.len();
            sql.push_str(&format!(" ORDER BY seq LIMIT ?{} OFFSET ?{}", n + 1, n + 2));
            params.push(rusqlite::types::Value::Integer(clamp(limit)));
            params.push(rusqlite::types::Value::Integer(clamp(offset)));
            let rows = self
                .dataset()
                .store()
                .read(|c| read_rows(c, &sql, &params))?;
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

fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
