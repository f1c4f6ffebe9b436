//! Resumable embedding into a vector field.
//!
//! An embed into a field commits its vectors one batch of images at a time (one transaction
//! each), so a killed or failed embed keeps what it finished. Before the first batch it writes
//! a progress record (`embed_progress`: field F of dataset D is incomplete, how far it got);
//! the record is updated after each batch and deleted when the embed finishes. While it
//! exists, the field is not used as a source of embeddings ([`Error::IncompleteField`]), and a
//! rerun with `skip_existing` embeds only what is missing — or, when the unfinished embed was
//! replacing vectors, also what it had not reached yet (everything after the last sample it
//! committed, in view order), so old and new vectors are never mixed.
//!
//! The record is written in its own transaction after each batch's: a kill between the two
//! leaves it one batch behind, which a resume only re-embeds (the field itself is what says
//! which samples are done).
use rusqlite::{params, OptionalExtension};
use simile_dataset::FieldValue;

use crate::collection::View;
use crate::embed::{embed_rows, Chunk, ModelRun};
use crate::model::EmbeddingModel;
use crate::vectors::{check_vector_field, stored_vectors, Rows};
use crate::{DatasetError, Error, Result};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS embed_progress (
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    field       TEXT NOT NULL,
    scope       TEXT NOT NULL,
    model       TEXT NOT NULL,
    replacing   INTEGER NOT NULL,
    done        INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    last_sample TEXT,
    PRIMARY KEY (dataset_id, field)
)";

/// The store migration that creates the progress table.
pub(crate) fn migrate(
    conn: &rusqlite::Connection,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// An embed into a vector field that started and has not finished (it was killed, or failed):
/// until an embed of the same samples finishes, the field is incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedProgress {
    /// The vector field it was writing.
    pub field: String,
    /// The model it ran (a resume must use the same one).
    pub model: String,
    /// Samples of its collection done so far: embedded (or tried, for unreadable images), or
    /// already in the field when it was resuming with `skip_existing`.
    pub done: usize,
    /// Samples of its collection.
    pub total: usize,
    /// Whether it was replacing the field's vectors (no `skip_existing`).
    pub replacing: bool,
    /// Whether it embedded the whole dataset (else a view of it).
    pub whole_dataset: bool,
}

struct Record {
    progress: EmbedProgress,
    /// The view's stages as JSON, "" for the whole dataset.
    scope: String,
    /// The last sample of the last committed batch.
    last_sample: Option<String>,
}

const COLUMNS: &str = "field, model, done, total, replacing, scope, last_sample";

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let scope: String = r.get(5)?;
    Ok(Record {
        progress: EmbedProgress {
            field: r.get(0)?,
            model: r.get(1)?,
            done: r.get::<_, i64>(2)?.max(0) as usize,
            total: r.get::<_, i64>(3)?.max(0) as usize,
            replacing: r.get(4)?,
            whole_dataset: scope.is_empty(),
        },
        scope,
        last_sample: r.get(6)?,
    })
}

fn load(store: &simile_dataset::Store, ds: i64, field: &str) -> Result<Option<Record>> {
    Ok(store.read(|c| {
        c.query_row(
            &format!("SELECT {COLUMNS} FROM embed_progress WHERE dataset_id = ?1 AND field = ?2"),
            params![ds, field],
            read_record,
        )
        .optional()
    })?)
}

/// The unfinished embeds of a dataset, by field.
pub(crate) fn list(store: &simile_dataset::Store, ds: i64) -> Result<Vec<EmbedProgress>> {
    Ok(store.read(|c| {
        let mut st = c.prepare(&format!(
            "SELECT {COLUMNS} FROM embed_progress WHERE dataset_id = ?1 ORDER BY field"
        ))?;
        let rows = st.query_map([ds], read_record)?;
        rows.map(|r| r.map(|r| r.progress)).collect()
    })?)
}

/// The progress of an unfinished embed into `field`, if there is one.
pub(crate) fn get(
    store: &simile_dataset::Store,
    ds: i64,
    field: &str,
) -> Result<Option<EmbedProgress>> {
    Ok(load(store, ds, field)?.map(|r| r.progress))
}

/// Forgets the record (the field was deleted).
pub(crate) fn clear(store: &simile_dataset::Store, ds: i64, field: &str) -> Result<()> {
    store.write(|tx| {
        tx.execute(
            "DELETE FROM embed_progress WHERE dataset_id = ?1 AND field = ?2",
            params![ds, field],
        )
    })?;
    Ok(())
}

/// [`Error::IncompleteField`] when an unfinished embed left `field` part-filled.
pub(crate) fn ensure_complete(
    store: &simile_dataset::Store,
    dataset: &simile_dataset::Dataset,
    field: &str,
) -> Result<()> {
    match get(store, dataset.db_id(), field)? {
        None => Ok(()),
        Some(p) => Err(Error::IncompleteField {
            dataset: dataset.name().to_string(),
            field: p.field,
            model: p.model,
            done: p.done,
            total: p.total,
        }),
    }
}

fn scope_of(view: &simile_dataset::View) -> String {
    if view.is_full() {
        return String::new();
    }
    match simile_dataset::stages_to_json(view.stages()) {
        Ok(v) => v.to_string(),
        // A ranked result has no JSON form; its stages still identify it.
        Err(_) => format!("{:?}", view.stages()),
    }
}

/// What an embed into a field does: the rows to embed, and what its record says.
#[derive(Debug, PartialEq)]
struct Plan {
    which: Vec<usize>,
    replacing: bool,
    last_sample: Option<String>,
}

/// Which rows to embed: all of them, unless `skip_existing`, which resumes — only the rows
/// without a vector, or, after an unfinished replacement of the same collection, also every
/// row after the last one it committed (the ones before it that it could not embed stay
/// missing and are tried again).
fn plan(
    rows: &Rows,
    present: &[bool],
    skip_existing: bool,
    earlier: Option<&Record>,
    scope: &str,
) -> Plan {
    let all = || (0..rows.len()).collect::<Vec<_>>();
    if !skip_existing {
        return Plan {
            which: all(),
            replacing: true,
            last_sample: None,
        };
    }
    match earlier {
        Some(r) if r.progress.replacing => {
            let reached = r
                .last_sample
                .as_ref()
                .filter(|_| r.scope == scope)
                .and_then(|s| rows.iter().position(|row| &row.1 == s));
            match reached {
                Some(p) => Plan {
                    which: (0..rows.len()).filter(|i| *i > p || !present[*i]).collect(),
                    replacing: true,
                    last_sample: r.last_sample.clone(),
                },
                // It committed nothing, or on other samples: every vector may be an old one.
                None => Plan {
                    which: all(),
                    replacing: true,
                    last_sample: None,
                },
            }
        }
        _ => Plan {
            which: (0..rows.len()).filter(|i| !present[*i]).collect(),
            replacing: false,
            last_sample: None,
        },
    }
}

/// Embeds the rows of `field` that need it with the model, committing each batch to the field
/// under a progress record (see the module docs). Returns the field's vectors for the rows
/// (the stored ones with `skip_existing`), aligned with `rows`; rows whose image could not be
/// read are `None`.
pub(crate) fn fill_field(
    view: &View,
    rows: &Rows,
    field: &str,
    skip_existing: bool,
    model: &dyn EmbeddingModel,
    run: &ModelRun,
) -> Result<Vec<Option<Vec<f32>>>> {
    let dataset = view.inner.dataset();
    let store = &view.ctx.store;
    let ds = dataset.db_id();
    let mut have = vec![None; rows.len()];
    let earlier = load(store, ds, field)?;
    let exists = match check_vector_field(dataset, field) {
        Ok(()) => true,
        // No such field yet: the embed creates it.
        Err(Error::Dataset(DatasetError::UnknownField { .. })) => false,
        Err(e) => return Err(e),
    };
    if skip_existing {
        if exists {
            have = stored_vectors(dataset, field, rows)?;
        }
        if let Some(r) = earlier
            .as_ref()
            .filter(|r| r.progress.model != model.name())
        {
            return Err(Error::ResumeWithAnotherModel {
                dataset: dataset.name().to_string(),
                field: field.to_string(),
                started_with: r.progress.model.clone(),
                model: model.name().to_string(),
            });
        }
    }
    let scope = scope_of(&view.inner);
    let present: Vec<bool> = have.iter().map(Option::is_some).collect();
    let plan = plan(rows, &present, skip_existing, earlier.as_ref(), &scope);
    // An unfinished embed of other samples stays on record until it is finished itself.
    let owned = earlier
        .as_ref()
        .is_none_or(|r| r.scope == scope || scope.is_empty());
    if !owned {
        tracing::warn!(
            field,
            "an unfinished embed of other samples keeps the field marked incomplete"
        );
    }
    let done_before = rows.len() - plan.which.len();
    if owned {
        store.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO embed_progress
                 (dataset_id, field, scope, model, replacing, done, total, last_sample)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    ds,
                    field,
                    scope,
                    model.name(),
                    plan.replacing,
                    done_before as i64,
                    rows.len() as i64,
                    plan.last_sample
                ],
            )
        })?;
    }
    let mut commit = |c: Chunk<'_>| -> Result<()> {
        let values: Vec<(String, FieldValue)> = c
            .embedded
            .iter()
            .map(|(i, v)| (rows[*i].1.clone(), FieldValue::Vector(v.clone())))
            .collect();
        if !values.is_empty() {
            dataset.set_values(field, values)?;
        }
        if owned {
            let last = &rows[plan.which[c.tried - 1]].1;
            store.write(|tx| {
                tx.execute(
                    "UPDATE embed_progress SET done = ?1, last_sample = ?2
                     WHERE dataset_id = ?3 AND field = ?4",
                    params![(done_before + c.tried) as i64, last, ds, field],
                )
            })?;
        }
        Ok(())
    };
    let computed = embed_rows(view, rows, &plan.which, model, None, run, &mut commit)?;
    if owned {
        clear(store, ds, field)?;
    }
    for (i, v) in computed {
        have[i] = Some(v);
    }
    Ok(have)
}

impl crate::Dataset {
    /// The unfinished embed into `field`, if one was killed or failed: the field is incomplete
    /// until an embed with `skip_existing` (or a new one) finishes.
    pub fn embed_progress(&self, field: &str) -> Result<Option<EmbedProgress>> {
        get(&self.ctx.store, self.db_id(), field)
    }
    /// Every unfinished embed of the dataset, by field.
    pub fn unfinished_embeds(&self) -> Result<Vec<EmbedProgress>> {
        list(&self.ctx.store, self.db_id())
    }
    /// Removes a field from every sample and from the schema, with any record of an
    /// unfinished embed into it.
    pub fn delete_field(&self, field: &str) -> Result<()> {
        self.inner.delete_field(field)?;
        clear(&self.ctx.store, self.db_id(), field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("s{i}"), format!("s{i}"))).collect()
    }

    fn record(replacing: bool, scope: &str, last: Option<&str>) -> Record {
        Record {
            progress: EmbedProgress {
                field: "e".into(),
                model: "m".into(),
                done: 0,
                total: 5,
                replacing,
                whole_dataset: scope.is_empty(),
            },
            scope: scope.into(),
            last_sample: last.map(str::to_string),
        }
    }

    #[test]
    fn without_skip_existing_every_row_is_replaced() {
        let p = plan(&rows(3), &[true, false, true], false, None, "");
        assert_eq!(p.which, [0, 1, 2]);
        assert!(p.replacing);
    }

    #[test]
    fn a_resume_embeds_only_missing_rows() {
        let present = [true, true, false, true, false];
        let p = plan(&rows(5), &present, true, None, "");
        assert_eq!(p.which, [2, 4]);
        assert!(!p.replacing);
        let after_fill = record(false, "", Some("s1"));
        let p = plan(&rows(5), &present, true, Some(&after_fill), "");
        assert_eq!(p.which, [2, 4], "a filling embed: what is present is done");
    }

    #[test]
    fn resuming_a_replacement_redoes_what_it_had_not_reached() {
        // It committed s0..s2 (s1 failed and has no vector); s3, s4 hold old vectors.
        let present = [true, false, true, true, true];
        let r = record(true, "", Some("s2"));
        let p = plan(&rows(5), &present, true, Some(&r), "");
        assert_eq!(p.which, [1, 3, 4]);
        assert!(p.replacing);
        assert_eq!(p.last_sample.as_deref(), Some("s2"));
        // Nothing committed, another collection, or a vanished sample: everything again.
        for r in [
            record(true, "", None),
            record(true, "[{\"limit\":2}]", Some("s2")),
            record(true, "", Some("gone")),
        ] {
            let p = plan(&rows(5), &present, true, Some(&r), "");
            assert_eq!(p.which, [0, 1, 2, 3, 4]);
        }
    }
}
