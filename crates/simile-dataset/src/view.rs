use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rusqlite::params;
use serde_json::{Map, Value};

use crate::dataset::{decode_detections, encode_detections, parse_fields};
use crate::{Dataset, DatasetError, Detection, Result, Sample};

/// A condition on a sample field, for [`View::match_field`].
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, Value),
    Ne(String, Value),
    Gt(String, f64),
    Gte(String, f64),
    Lt(String, f64),
    Lte(String, f64),
    In(String, Vec<Value>),
    Exists(String),
    Missing(String),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// SQL translation of a filter: a boolean expression over the `samples` row and its parameters.
struct SqlFilter {
    expr: String,
    params: Vec<rusqlite::types::Value>,
}

impl Filter {
    /// Translates the filter to SQL where every part can be (JSON scalars, numeric comparisons,
    /// existence, boolean combinations); `None` otherwise (then it is evaluated in Rust).
    fn to_sql(&self) -> Option<SqlFilter> {
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

    fn eval(&self, id: &str, filepath: &str, fields: &Map<String, Value>) -> bool {
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
            Filter::And(fs) => fs.iter().all(|x| x.eval(id, filepath, fields)),
            Filter::Or(fs) => fs.iter().any(|x| x.eval(id, filepath, fields)),
            Filter::Not(x) => !x.eval(id, filepath, fields),
        }
    }
}

/// A condition on labels, for [`View::filter_labels`].
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// `label` is one of these.
    LabelIn(Vec<String>),
    /// `confidence >= x`.
    ConfidenceAtLeast(f64),
    /// The label id is one of these.
    Ids(Vec<String>),
    And(Vec<LabelFilter>),
}

impl LabelFilter {
    fn keep(&self, d: &Detection) -> bool {
        match self {
            LabelFilter::LabelIn(ls) => ls.contains(&d.label),
            LabelFilter::ConfidenceAtLeast(x) => d.confidence.is_some_and(|c| c >= *x),
            LabelFilter::Ids(ids) => ids.contains(&d.id),
            LabelFilter::And(fs) => fs.iter().all(|f| f.keep(d)),
        }
    }
}

/// One stage of a view, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Only these ids; `ordered` puts them in the given order.
    Select {
        ids: Vec<String>,
        ordered: bool,
    },
    Exclude {
        ids: Vec<String>,
    },
    /// A random subset of `n` (shuffled order), reproducible through its seed.
    Take {
        n: usize,
        seed: u64,
    },
    Limit(usize),
    Skip(usize),
    Match(Filter),
    /// Keeps only matching labels in `field`; drops samples left with none when `only_matches`.
    FilterLabels {
        field: String,
        filter: LabelFilter,
        only_matches: bool,
    },
    /// The result of a similarity query: these ids in this order, with their distances.
    SortBySimilarity {
        ids: Vec<String>,
        distances: Vec<f32>,
        brain_key: String,
    },
}

impl Stage {
    fn needs_fields(&self) -> bool {
        matches!(self, Stage::Match(_) | Stage::FilterLabels { .. })
    }
}

/// A dataset plus stages: a lazily evaluated, ordered selection of its samples (and labels).
#[derive(Debug, Clone)]
pub struct View {
    dataset: Dataset,
    stages: Vec<Stage>,
}

struct Row {
    seq: i64,
    id: String,
    filepath: String,
    fields: Option<Map<String, Value>>,
}

impl View {
    pub(crate) fn new(dataset: Dataset) -> Self {
        View {
            dataset,
            stages: Vec::new(),
        }
    }
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }
    /// Whether this view is the whole dataset (no stages).
    pub fn is_full(&self) -> bool {
        self.stages.is_empty()
    }

    /// This view with one more stage.
    pub fn with_stage(&self, stage: Stage) -> View {
        let mut v = self.clone();
        v.stages.push(stage);
        v
    }
    pub fn select(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Select {
            ids: ids.to_vec(),
            ordered: false,
        })
    }
    pub fn select_ordered(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Select {
            ids: ids.to_vec(),
            ordered: true,
        })
    }
    pub fn exclude(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Exclude { ids: ids.to_vec() })
    }
    /// `n` random samples; `seed` makes it reproducible (a random seed is drawn and kept otherwise,
    /// so the same view always holds the same samples).
    pub fn take(&self, n: usize, seed: Option<u64>) -> View {
        let seed = seed.unwrap_or_else(rand::random);
        self.with_stage(Stage::Take { n, seed })
    }
    pub fn limit(&self, n: usize) -> View {
        self.with_stage(Stage::Limit(n))
    }
    pub fn skip(&self, n: usize) -> View {
        self.with_stage(Stage::Skip(n))
    }
    pub fn match_field(&self, filter: Filter) -> View {
        self.with_stage(Stage::Match(filter))
    }
    pub fn filter_labels(&self, field: &str, filter: LabelFilter) -> View {
        self.with_stage(Stage::FilterLabels {
            field: field.to_string(),
            filter,
            only_matches: true,
        })
    }

    /// The distances of the last similarity stage, aligned with its ids.
    pub fn similarity(&self) -> Option<(&[String], &[f32])> {
        self.stages.iter().rev().find_map(|s| match s {
            Stage::SortBySimilarity { ids, distances, .. } => {
                Some((ids.as_slice(), distances.as_slice()))
            }
            _ => None,
        })
    }

    fn evaluate(&self) -> Result<Vec<Row>> {
        // Leading `match` stages that translate to SQL run inside the base query.
        let mut pushed = Vec::new();
        for stage in &self.stages {
            match stage {
                Stage::Match(f) => match f.to_sql() {
                    Some(sql) => pushed.push(sql),
                    None => break,
                },
                _ => break,
            }
        }
        let rest = &self.stages[pushed.len()..];
        let need_fields = rest.iter().any(Stage::needs_fields);
        let ds = &self.dataset;
        let mut rows: Vec<Row> = match rest.first().filter(|_| pushed.is_empty()) {
            // Fast path: a leading selection fetches only its rows.
            Some(Stage::Select { ids, .. }) | Some(Stage::SortBySimilarity { ids, .. }) => {
                let mut out = Vec::with_capacity(ids.len());
                ds.store().read(|c| {
                    let mut st = c.prepare_cached("SELECT seq, id, filepath, fields FROM samples WHERE dataset_id = ?1 AND id = ?2")?;
                    for id in ids {
                        let mut q = st.query(params![ds.db_id(), id])?;
                        if let Some(r) = q.next()? {
                            let fields: String = r.get(3)?;
                            out.push(Row {
                                seq: r.get(0)?,
                                id: r.get(1)?,
                                filepath: r.get(2)?,
                                fields: if need_fields { Some(parse_fields(&fields)?) } else { None },
                            });
                        }
                    }
                    Ok::<_, DatasetError>(())
                })?;
                out.sort_by_key(|r| r.seq);
                out
            }
            _ => ds.store().read(|c| {
                let mut params: Vec<rusqlite::types::Value> = Vec::new();
                let mut sql = String::from(if need_fields {
                    "SELECT seq, id, filepath, fields FROM samples WHERE dataset_id = ?1"
                } else {
                    "SELECT seq, id, filepath, NULL FROM samples WHERE dataset_id = ?1"
                });
                params.push(rusqlite::types::Value::Integer(ds.db_id()));
                for f in &pushed {
                    // Renumber the filter's placeholders after the ones already bound.
                    let mut expr = f.expr.clone();
                    for i in (1..=f.params.len()).rev() {
                        expr = expr.replace(&format!("?{i}"), &format!("?#{}", i + params.len()));
                    }
                    sql.push_str(" AND ");
                    sql.push_str(&expr.replace("?#", "?"));
                    params.extend(f.params.iter().cloned());
                }
                sql.push_str(" ORDER BY seq");
                let mut st = c.prepare_cached(&sql)?;
                let mut q = st.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = q.next()? {
                    let fields: Option<String> = r.get(3)?;
                    out.push(Row {
                        seq: r.get(0)?,
                        id: r.get(1)?,
                        filepath: r.get(2)?,
                        fields: match fields {
                            Some(f) => Some(parse_fields(&f)?),
                            None => None,
                        },
                    });
                }
                Ok::<_, DatasetError>(out)
            })?,
        };
        for stage in rest {
            rows = apply(stage, rows)?;
        }
        Ok(rows)
    }

    /// Sample ids in view order.
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self.evaluate()?.into_iter().map(|r| r.id).collect())
    }

    pub fn len(&self) -> Result<usize> {
        if self.is_full() {
            return self.dataset.len();
        }
        Ok(self.evaluate()?.len())
    }
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The samples in view order, with label filters applied to their label fields.
    pub fn samples(&self) -> Result<Vec<Sample>> {
        let rows = self.evaluate()?;
        let ds = &self.dataset;
        let mut out = Vec::with_capacity(rows.len());
        ds.store().read(|c| {
            let mut st = c.prepare_cached("SELECT fields FROM samples WHERE seq = ?1")?;
            for r in &rows {
                let fields = match &r.fields {
                    Some(f) => f.clone(),
                    None => {
                        let s: String = st.query_row([r.seq], |x| x.get(0))?;
                        parse_fields(&s)?
                    }
                };
                out.push(Sample::new(r.id.clone(), r.filepath.clone().into(), fields));
            }
            Ok::<_, DatasetError>(())
        })?;
        // Label filters shape what the samples show.
        for stage in &self.stages {
            if let Stage::FilterLabels { field, filter, .. } = stage {
                for s in &mut out {
                    if let Some(v) = s.fields_mut().get_mut(field) {
                        let mut d = decode_detections(field, v)?;
                        d.detections.retain(|x| filter.keep(x));
                        *v = encode_detections(&d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The first `n` samples.
    pub fn head(&self, n: usize) -> Result<Vec<Sample>> {
        self.limit(n).samples()
    }
    pub fn first(&self) -> Result<Option<Sample>> {
        Ok(self.head(1)?.into_iter().next())
    }
    pub fn last(&self) -> Result<Option<Sample>> {
        let ids = self.ids()?;
        match ids.last() {
            Some(id) => Ok(Some(self.dataset.sample(id)?)),
            None => Ok(None),
        }
    }

    /// `(sample_id, label_id)` of every visible label in `field`, in view order.
    pub fn label_ids(&self, field: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for s in self.samples()? {
            if let Some(d) = s.detections(field)? {
                for det in d.detections {
                    out.push((s.id().to_string(), det.id));
                }
            }
        }
        Ok(out)
    }

    /// Values of a JSON field in view order (`None` where unset).
    pub fn values(&self, field: &str) -> Result<Vec<Option<Value>>> {
        Ok(self
            .samples()?
            .into_iter()
            .map(|s| match field {
                "id" => Some(Value::String(s.id().to_string())),
                "filepath" => Some(Value::String(s.filepath().display().to_string())),
                _ => s.get(field).filter(|v| !v.is_null()).cloned(),
            })
            .collect())
    }

    /// Vectors of a vector field in view order (`None` where unset).
    pub fn vectors(&self, field: &str) -> Result<Vec<Option<Vec<f32>>>> {
        let ids = self.ids()?;
        self.dataset.vectors(field, &ids)
    }
}

fn apply(stage: &Stage, rows: Vec<Row>) -> Result<Vec<Row>> {
    Ok(match stage {
        Stage::Select {
            ids,
            ordered: false,
        } => {
            let keep: HashSet<&str> = ids.iter().map(String::as_str).collect();
            rows.into_iter()
                .filter(|r| keep.contains(r.id.as_str()))
                .collect()
        }
        Stage::Select { ids, ordered: true } | Stage::SortBySimilarity { ids, .. } => {
            let mut by_id: HashMap<String, Row> =
                rows.into_iter().map(|r| (r.id.clone(), r)).collect();
            ids.iter().filter_map(|id| by_id.remove(id)).collect()
        }
        Stage::Exclude { ids } => {
            let drop: HashSet<&str> = ids.iter().map(String::as_str).collect();
            rows.into_iter()
                .filter(|r| !drop.contains(r.id.as_str()))
                .collect()
        }
        Stage::Take { n, seed } => {
            let mut rows = rows;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
            rows.shuffle(&mut rng);
            rows.truncate(*n);
            rows
        }
        Stage::Limit(n) => rows.into_iter().take(*n).collect(),
        Stage::Skip(n) => rows.into_iter().skip(*n).collect(),
        Stage::Match(f) => rows
            .into_iter()
            .filter(|r| {
                r.fields
                    .as_ref()
                    .is_some_and(|m| f.eval(&r.id, &r.filepath, m))
            })
            .collect(),
        Stage::FilterLabels {
            field,
            filter,
            only_matches,
        } => {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let keep = match r.fields.as_ref().and_then(|m| m.get(field)) {
                    Some(v) if !v.is_null() => {
                        let d = decode_detections(field, v)?;
                        !*only_matches || d.detections.iter().any(|x| filter.keep(x))
                    }
                    _ => !*only_matches,
                };
                if keep {
                    out.push(r);
                }
            }
            out
        }
    })
}
