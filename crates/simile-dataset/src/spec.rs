//! The JSON view description: a list of stages, shared by the App (its URLs and requests) and
//! the CLI. Parsing validates every name, id and number, so a bad description is a typed error
//! that says what is wrong, never a database error or a silently empty view.
use serde_json::Value;

use crate::{check_field_name, check_object_id, DatasetError, Filter, LabelFilter, Result, Stage};

/// Parses a JSON view description (`[{"match": ...}, {"limit": 10}, ...]`); see [`Stage`].
pub fn parse_stages(json: &str) -> Result<Vec<Stage>> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| DatasetError::InvalidStage(format!("the view is not valid JSON: {e}")))?;
    if !value.is_array() {
        return Err(DatasetError::InvalidStage(
            "a view is a JSON array of stages".into(),
        ));
    }
    let stages: Vec<Stage> =
        serde_json::from_value(value).map_err(|e| DatasetError::InvalidStage(format!("{e}")))?;
    for s in &stages {
        check_stage(s)?;
    }
    Ok(stages)
}

/// The JSON description of stages ([`parse_stages`] reads it back). Ranked results are not
/// describable (re-run the query instead): they are an error here.
pub fn stages_to_json(stages: &[Stage]) -> Result<Value> {
    serde_json::to_value(stages).map_err(|_| {
        DatasetError::InvalidStage("a ranked result (a similarity query's) cannot be written as a view stage: re-run the query".into())
    })
}

fn bad(msg: String) -> DatasetError {
    DatasetError::InvalidStage(msg)
}

fn check_stage(stage: &Stage) -> Result<()> {
    match stage {
        Stage::Select { ids, .. } | Stage::Exclude { ids } => ids.iter().try_for_each(|i| {
            check_object_id(i).map_err(|_| bad(format!("{i:?} is not a sample id")))
        }),
        Stage::Match(f) => check_filter(f),
        Stage::MatchTags(tags) => tags.iter().try_for_each(|t| check_tag(t)),
        Stage::SortBy { field, .. } => check_match_field(field),
        Stage::FilterLabels { field, filter, .. } => {
            check_field_name(field)?;
            check_label_filter(filter)
        }
        Stage::Take { .. } | Stage::Limit(_) | Stage::Skip(_) => Ok(()),
        Stage::Ranked { .. } => Err(bad(
            "a ranked result (a similarity query's) is not a view stage".into(),
        )),
    }
}

/// A tag: non-empty, at most 200 characters, no control characters.
pub(crate) fn check_tag(tag: &str) -> Result<()> {
    if tag.trim().is_empty() || tag.chars().count() > 200 || tag.chars().any(char::is_control) {
        return Err(bad(format!(
            "invalid tag {tag:?}: tags are 1 to 200 characters without control characters"
        )));
    }
    Ok(())
}

fn check_match_field(f: &str) -> Result<()> {
    if f == "id" || f == "filepath" {
        return Ok(());
    }
    check_field_name(f)
}

fn check_number(field: &str, x: f64) -> Result<()> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(bad(format!(
            "the bound on '{field}' is not a finite number"
        )))
    }
}

fn check_filter(f: &Filter) -> Result<()> {
    match f {
        Filter::Eq(n, _) | Filter::Ne(n, _) | Filter::In(n, _) | Filter::Contains(n, _) => {
            check_match_field(n)
        }
        Filter::Gt(n, x) | Filter::Gte(n, x) | Filter::Lt(n, x) | Filter::Lte(n, x) => {
            check_match_field(n)?;
            check_number(n, *x)
        }
        Filter::Exists(n) | Filter::Missing(n) => check_match_field(n),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().try_for_each(check_filter),
        Filter::Not(x) => check_filter(x),
    }
}

fn check_label_filter(f: &LabelFilter) -> Result<()> {
    match f {
        LabelFilter::LabelIn(_) => Ok(()),
        LabelFilter::ConfidenceAtLeast(x) => check_number("confidence", *x),
        LabelFilter::Ids(ids) => ids.iter().try_for_each(|i| {
            check_object_id(i).map_err(|_| bad(format!("{i:?} is not a label id")))
        }),
        LabelFilter::And(fs) => fs.iter().try_for_each(check_label_filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let json = r#"[{"match":{"eq":["label","cat"]}},{"match_tags":["dup"]},
            {"filter_labels":{"field":"ground_truth","filter":{"label_in":["circle"]}}},
            {"take":{"n":3,"seed":7}},{"limit":2},{"skip":1},{"sort_by":{"field":"u","reverse":true}},
            {"match":{"and":[{"gte":["confidence",0.5]},{"not":{"exists":"x"}},{"contains":["tags","a"]}]}}]"#;
        let stages = parse_stages(json).expect("parses");
        assert_eq!(stages.len(), 8);
        assert!(matches!(
            &stages[2],
            Stage::FilterLabels {
                only_matches: true,
                ..
            }
        ));
        let back = stages_to_json(&stages).expect("serialises");
        assert_eq!(parse_stages(&back.to_string()).expect("re-parses"), stages);
    }

    #[test]
    fn bad_descriptions_name_the_problem() {
        let msg = |j: &str| parse_stages(j).expect_err(j).to_string();
        assert!(msg("{}").contains("JSON array"));
        assert!(msg("[{\"frobnicate\": 1}]").contains("frobnicate"));
        assert!(msg(r#"[{"match":{"eq":["a\"b",1]}}]"#).contains("invalid field name"));
        assert!(msg(r#"[{"select":{"ids":["xyz"]}}]"#).contains("not a sample id"));
        assert!(msg(r#"[{"match_tags":[""]}]"#).contains("invalid tag"));
        assert!(msg("[{\"limit\": -1}]").contains("invalid"));
    }
}
