//! Sample filters (`match`) and label filters (`filter_labels`): their SQL translation and
//! their evaluation in Rust, which agree wherever both apply.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Detection;

/// A condition on a sample field, for [`View::match_field`](crate::View::match_field).
///
/// Serialised (the JSON view description) as `{"eq": ["field", value]}`, `{"exists": "field"}`,
/// `{"contains": ["tags", "dup"]}`, `{"and": [...]}`, `{"not": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The field equals the value.
    Eq(String, Value),
    /// The field does not equal the value (an unset field does not).
    Ne(String, Value),
    /// The field is a number greater than this.
    Gt(String, f64),
    /// The field is a number at least this.
    Gte(String, f64),
    /// The field is a number less than this.
    Lt(String, f64),
    /// The field is a number at most this.
    Lte(String, f64),
    /// The field equals one of the values.
    In(String, Vec<Value>),
    /// The field is set.
    Exists(String),
    /// The field is not set.
    Missing(String),
    /// A list field holds this value (e.g. `tags` holds `"dup"`).
    Contains(String, Value),
    /// All of these hold.
    And(Vec<Filter>),
    /// Any of these holds.
    Or(Vec<Filter>),
    /// This does not hold.
    Not(Box<Filter>),
}

/// SQL translation of a filter: a boolean expression over the `samples` row and its parameters.
pub(crate) struct SqlFilter {
    pub(crate) expr: String,
    pub(crate) params: Vec<rusqlite::types::Value>,
}

impl Filter {
    /// Translates the filter to SQL where every part can be (JSON scalars, numeric comparisons,
    /// existence, boolean combinations); `None` otherwise (then it is evaluated in Rust).
    pub(crate) fn to_sql(&self) -> Option<SqlFilter> {
        use rusqlite::types::Value as Sql;
        let mut params = Vec::new();
        let expr = self.sql_into(&mut params)?;
        let _: &Vec<Sql> = &params;
        Some(SqlFilter { expr, params })
    }

    fn sql_into(&self, p: &mut Vec<rusqlite::types::Value>) -> Option<String> {
        use rusqlite::types::Value as Sql;
        // (value expression, type expression) of a field.
        let field = |f: &str, p: &mut Vec<Sql>| -> (String, String) {
            match f {
                "id" => ("id".into(), "'text'".into()),
                "filepath" => ("filepath".into(), "'text'".into()),
                _ => {
                    p.push(Sql::Text(format!("$.\"{f}\"")));
                    let i = p.len();
                    (
                        format!("json_extract(fields, ?{i})"),
                        format!("json_type(fields, ?{i})"),
                    )
                }
            }
        };
        let scalar_eq = |f: &str, v: &Value, p: &mut Vec<Sql>| -> Option<String> {
            let (val, ty) = field(f, p);
            Some(match v {
                Value::Bool(b) => format!("({ty} IS '{}')", if *b { "true" } else { "false" }),
                Value::String(s) => {
                    p.push(Sql::Text(s.clone()));
                    format!("({ty} IS 'text' AND {val} = ?{})", p.len())
                }
                Value::Number(n) => {
                    p.push(Sql::Real(n.as_f64()?));
                    format!("({ty} IN ('integer', 'real') AND {val} = ?{})", p.len())
                }
                _ => return None,
            })
        };
        let cmp = |f: &str, op: &str, x: f64, p: &mut Vec<Sql>| -> String {
            let (val, ty) = field(f, p);
            p.push(Sql::Real(x));
            format!("({ty} IN ('integer', 'real') AND {val} {op} ?{})", p.len())
        };
        let exists = |f: &str, p: &mut Vec<Sql>| -> String {
            let (_, ty) = field(f, p);
            format!("({ty} IS NOT NULL AND {ty} IS NOT 'null')")
        };
        Some(match self {
            Filter::Eq(f, v) => scalar_eq(f, v, p)?,
            Filter::Ne(f, v) => format!("(NOT {})", scalar_eq(f, v, p)?),
            Filter::Gt(f, x) => cmp(f, ">", *x, p),
            Filter::Gte(f, x) => cmp(f, ">=", *x, p),
            Filter::Lt(f, x) => cmp(f, "<", *x, p),
            Filter::Lte(f, x) => cmp(f, "<=", *x, p),
            Filter::In(f, vs) => {
                let parts: Option<Vec<String>> = vs.iter().map(|v| scalar_eq(f, v, p)).collect();
                let parts = parts?;
                if parts.is_empty() {
                    "(0)".into()
                } else {
                    format!("({})", parts.join(" OR "))
                }
            }
            Filter::Exists(f) => exists(f, p),
            Filter::Missing(f) => format!("(NOT {})", exists(f, p)),
            Filter::Contains(f, v) => {
                if matches!(f.as_str(), "id" | "filepath") {
                    return None;
                }
                let (_, ty) = field(f, p);
                let path = p.len();
                let cond = match v {
                    Value::String(s) => {
                        p.push(Sql::Text(s.clone()));
                        format!("j.type = 'text' AND j.value = ?{}", p.len())
                    }
                    Value::Number(n) => {
                        p.push(Sql::Real(n.as_f64()?));
                        format!("j.type IN ('integer', 'real') AND j.value = ?{}", p.len())
                    }
                    _ => return None,
                };
                format!("({ty} IS 'array' AND EXISTS (SELECT 1 FROM json_each(samples.fields, ?{path}) AS j WHERE {cond}))")
            }
            Filter::And(fs) | Filter::Or(fs) => {
                let joiner = if matches!(self, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Option<Vec<String>> = fs.iter().map(|x| x.sql_into(p)).collect();
                let parts = parts?;
                if parts.is_empty() {
                    if matches!(self, Filter::And(_)) {
                        "(1)".into()
                    } else {
                        "(0)".into()
                    }
                } else {
                    format!("({})", parts.join(joiner))
                }
            }
            Filter::Not(x) => format!("(NOT {})", x.sql_into(p)?),
        })
    }

    pub(crate) fn eval(&self, id: &str, filepath: &str, fields: &Map<String, Value>) -> bool {
        let get = |f: &str| -> Option<Value> {
            match f {
                "id" => Some(Value::String(id.to_string())),
                "filepath" => Some(Value::String(filepath.to_string())),
                _ => fields.get(f).filter(|v| !v.is_null()).cloned(),
            }
        };
        let num = |f: &str| get(f).and_then(|v| v.as_f64());
        match self {
            Filter::Eq(f, v) => get(f).as_ref() == Some(v),
            Filter::Ne(f, v) => get(f).as_ref() != Some(v),
            Filter::Gt(f, x) => num(f).is_some_and(|n| n > *x),
            Filter::Gte(f, x) => num(f).is_some_and(|n| n >= *x),
            Filter::Lt(f, x) => num(f).is_some_and(|n| n < *x),
            Filter::Lte(f, x) => num(f).is_some_and(|n| n <= *x),
            Filter::In(f, vs) => get(f).is_some_and(|v| vs.contains(&v)),
            Filter::Exists(f) => get(f).is_some(),
            Filter::Missing(f) => get(f).is_none(),
            Filter::Contains(f, v) => get(f)
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| scalar_eq(x, v))),
            Filter::And(fs) => fs.iter().all(|x| x.eval(id, filepath, fields)),
            Filter::Or(fs) => fs.iter().any(|x| x.eval(id, filepath, fields)),
            Filter::Not(x) => !x.eval(id, filepath, fields),
        }
    }
}

/// Equality of JSON scalars as SQLite compares them (numbers by value: `1 == 1.0`).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A condition on labels, for [`View::filter_labels`](crate::View::filter_labels).
///
/// Serialised as `{"label_in": [...]}`, `{"confidence_at_least": 0.5}`, `{"ids": [...]}`,
/// `{"and": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelFilter {
    /// `label` is one of these.
    LabelIn(Vec<String>),
    /// `confidence >= x`.
    ConfidenceAtLeast(f64),
    /// The label id is one of these.
    Ids(Vec<String>),
    /// All of these hold.
    And(Vec<LabelFilter>),
}

impl LabelFilter {
    pub(crate) fn keep(&self, d: &Detection) -> bool {
        match self {
            LabelFilter::LabelIn(ls) => ls.contains(&d.label),
            LabelFilter::ConfidenceAtLeast(x) => d.confidence.is_some_and(|c| c >= *x),
            LabelFilter::Ids(ids) => ids.contains(&d.id),
            LabelFilter::And(fs) => fs.iter().all(|f| f.keep(d)),
        }
    }
}
