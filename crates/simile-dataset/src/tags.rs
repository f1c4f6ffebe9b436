//! Sample tags: a `tags` list field, as in FiftyOne (`tag_samples`, `untag_samples`,
//! `count_sample_tags`, and the `match_tags` view stage).
use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::dataset::{check_kind, parse_fields, schema_of};
use crate::spec::check_tag;
use crate::{Dataset, DatasetError, FieldKind, Result};

/// The field that holds sample tags.
pub const TAGS_FIELD: &str = "tags";

impl Dataset {
    /// Adds tags to samples (one transaction; every id must exist). Returns how many samples
    /// changed.
    pub fn tag_samples(&self, ids: &[String], tags: &[String]) -> Result<usize> {
        self.edit_sample_tags(ids, tags, &[])
    }

    /// Removes tags from samples (one transaction; every id must exist). Returns how many
    /// samples changed.
    pub fn untag_samples(&self, ids: &[String], tags: &[String]) -> Result<usize> {
        self.edit_sample_tags(ids, &[], tags)
    }

    /// Adds `add` then removes `remove` on samples, in one transaction: every tag is checked and
    /// every id must exist, or nothing changes. Returns how many samples changed.
    pub fn edit_sample_tags(
        &self,
        ids: &[String],
        add: &[String],
        remove: &[String],
    ) -> Result<usize> {
        for t in add.iter().chain(remove) {
            check_tag(t)?;
        }
        self.store().write(|tx| {
            let mut schema = schema_of(tx, self.db_id())?;
            check_kind(tx, self.db_id(), &mut schema, TAGS_FIELD, FieldKind::Json)?;
            let mut get = tx.prepare_cached(
                "SELECT seq, fields FROM samples WHERE dataset_id = ?1 AND id = ?2",
            )?;
            let mut upd = tx.prepare_cached("UPDATE samples SET fields = ?1 WHERE seq = ?2")?;
            let mut changed = 0;
            for id in ids {
                let row: Option<(i64, String)> = get
                    .query_row(params![self.db_id(), id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((seq, fields)) = row else {
                    return Err(DatasetError::UnknownSample(id.clone(), self.name().into()));
                };
                let mut m = parse_fields(&fields)?;
                let mut list = match m.get(TAGS_FIELD) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.clone(),
                    Some(_) => {
                        return Err(DatasetError::FieldKind {
                            field: TAGS_FIELD.into(),
                            expected: "a list of strings",
                            found: format!("another value on sample '{id}'"),
                        })
                    }
                };
                let before = list.clone();
                for t in add {
                    let v = Value::String(t.clone());
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                for t in remove {
                    list.retain(|x| x.as_str() != Some(t.as_str()));
                }
                if list != before {
                    m.insert(TAGS_FIELD.into(), Value::Array(list));
                    upd.execute(params![Value::Object(m).to_string(), seq])?;
                    changed += 1;
                }
            }
            Ok(changed)
        })
    }

    /// Every tag of the dataset with the number of samples that have it.
    pub fn count_sample_tags(&self) -> Result<BTreeMap<String, usize>> {
        self.store().read(|c| {
            let mut st = c.prepare_cached(
                "SELECT j.value, COUNT(*) FROM samples, json_each(samples.fields, '$.tags') AS j \
                 WHERE samples.dataset_id = ?1 AND json_type(samples.fields, '$.tags') = 'array' \
                 AND j.type = 'text' GROUP BY j.value",
            )?;
            let rows = st.query_map([self.db_id()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            let mut out = BTreeMap::new();
            for r in rows {
                let (t, n) = r?;
                out.insert(t, n as usize);
            }
            Ok(out)
        })
    }
}
