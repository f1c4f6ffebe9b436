//! Checks that guard writes from layers above: which ids are samples of a dataset, and whether a
//! field may receive distances without clobbering anything else.
use rusqlite::{params, OptionalExtension};

use crate::dataset::schema_of;
use crate::{check_field_name, Dataset, DatasetError, FieldKind, Result};

/// Label attributes a distance may never overwrite: the detection's own values.
const DETECTION_KEYS: &[&str] = &["id", "label", "bounding_box", "confidence", "attributes"];

impl Dataset {
    /// The ids of `ids` that are not samples of this dataset (malformed ones included), each once,
    /// in the order given.
    pub fn missing_ids(&self, ids: &[String]) -> Result<Vec<String>> {
        self.store().read(|c| {
            let mut st =
                c.prepare_cached("SELECT 1 FROM samples WHERE dataset_id = ?1 AND id = ?2")?;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for id in ids {
                if !seen.insert(id.as_str()) {
                    continue;
                }
                let found: Option<i64> = st
                    .query_row(params![self.db_id(), id], |r| r.get(0))
                    .optional()?;
                if found.is_none() {
                    out.push(id.clone());
                }
            }
            Ok(out)
        })
    }

    /// Whether distances may be written to sample field `field`: it does not exist yet, or it is
    /// a JSON field whose values are all numbers or null (distances written before). Any other
    /// field is [`DatasetError::NotADistanceField`] (nothing is written by this check).
    pub fn check_distance_field(&self, field: &str) -> Result<()> {
        check_field_name(field)?;
        self.store().read(|c| {
            let refuse = |found: String| DatasetError::NotADistanceField {
                dataset: self.name().to_string(),
                field: field.to_string(),
                found,
            };
            match schema_of(c, self.db_id())?.get(field) {
                None => return Ok(()),
                Some(FieldKind::Json) => {}
                Some(FieldKind::Vector) => return Err(refuse("vectors".into())),
                Some(kind) => return Err(refuse(kind.as_str().to_string())),
            }
            let other: Option<(String, String)> = c
                .query_row(
                    "SELECT id, json_type(fields, '$.\"' || ?2 || '\"') AS t FROM samples \
                     WHERE dataset_id = ?1 AND t NOT IN ('integer', 'real', 'null') LIMIT 1",
                    params![self.db_id(), field],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match other {
                Some((id, kind)) => Err(refuse(format!("{} on sample '{id}'", an(&kind)))),
                None => Ok(()),
            }
        })
    }

    /// Whether distances may be written to attribute `attribute` of the detections in
    /// `label_field`: it is not one of the detection's own keys (`label`, `confidence`, ...) and
    /// every detection that has it holds a number or null.
    pub fn check_distance_attribute(&self, label_field: &str, attribute: &str) -> Result<()> {
        check_field_name(attribute)?;
        let refuse = |found: String| DatasetError::NotADistanceField {
            dataset: self.name().to_string(),
            field: format!("{label_field}.{attribute}"),
            found,
        };
        if DETECTION_KEYS.contains(&attribute) {
            return Err(refuse(format!("the detections' own '{attribute}'")));
        }
        self.store().read(|c| {
            let other: Option<(String, String)> = c
                .query_row(
                    "SELECT s.id, json_type(d.value, '$.attributes.\"' || ?3 || '\"') AS t \
                     FROM samples s, json_each(s.fields, '$.\"' || ?2 || '\".detections') d \
                     WHERE s.dataset_id = ?1 AND t NOT IN ('integer', 'real', 'null') LIMIT 1",
                    params![self.db_id(), label_field, attribute],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match other {
                Some((id, kind)) => Err(refuse(format!(
                    "{} on a detection of sample '{id}'",
                    an(&kind)
                ))),
                None => Ok(()),
            }
        })
    }
}

/// "an object", "a text", ... for SQLite's `json_type` names.
fn an(json_type: &str) -> String {
    match json_type {
        "object" => "an object".into(),
        "array" => "a list".into(),
        "text" => "a string".into(),
        "true" | "false" => "a boolean".into(),
        other => format!("a {other}"),
    }
}
