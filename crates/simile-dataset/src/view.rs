use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataset::{decode_detections, encode_detections, parse_fields};
use crate::filter::SqlFilter;
use crate::{Dataset, DatasetError, Filter, LabelFilter, Result, Sample};

/// One stage of a view, applied in order.
///
/// Serialised (the JSON view description the App, its URLs and the CLI share; see
/// [`crate::parse_stages`]) as `{"match": FILTER}`, `{"match_tags": ["dup"]}`,
/// `{"filter_labels": {"field", "filter", "only_matches"}}`, `{"take": {"n", "seed"}}`,
/// `{"limit": n}`, `{"skip": n}`, `{"select": {"ids", "ordered"}}`, `{"exclude": {"ids"}}`.
/// A ranked result ([`Stage::Ranked`]) is not serialised: a description re-runs its query instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Only these ids; `ordered` puts them in the given order.
    Select {
        /// The sample ids kept.
        ids: Vec<String>,
        /// Put the samples in the order of `ids` (else view order).
        #[serde(default)]
        ordered: bool,
    },
    /// All but these ids.
    Exclude {
        /// The sample ids dropped.
        ids: Vec<String>,
    },
    /// A random subset of `n` (shuffled order), reproducible through its seed.
    Take {
        /// How many samples.
        n: usize,
        /// The shuffle's seed.
        #[serde(default)]
        seed: u64,
    },
    /// At most the first `n` samples.
    Limit(usize),
    /// All but the first `n` samples.
    Skip(usize),
    /// Samples whose fields satisfy the filter.
    Match(Filter),
    /// Samples with any of these tags (FiftyOne's `match_tags`).
    MatchTags(Vec<String>),
    /// Orders samples by a field's value (numbers, then strings; samples without it last).
    SortBy {
        /// The field (or `id`, `filepath`).
        field: String,
        /// Largest first.
        #[serde(default)]
        reverse: bool,
    },
    /// Keeps only matching labels in `field`; drops samples left with none when `only_matches`.
    FilterLabels {
        /// The label field.
        field: String,
        /// Which labels are kept.
        filter: LabelFilter,
        /// Drop samples left without labels (default `true`).
        #[serde(default = "yes")]
        only_matches: bool,
    },
    /// A ranked result (e.g. of a similarity query): only these ids, in this order, each with
    /// its distance (`distances[i]` belongs to `ids[i]`; smaller ranks first). Where the ranking
    /// came from is the caller's business, not the dataset's.
    #[serde(skip)]
    Ranked {
        /// The ids, best first.
        ids: Vec<String>,
        /// Their distances, aligned with `ids`.
        distances: Vec<f32>,
    },
}

fn yes() -> bool {
    true
}

impl Stage {
    fn needs_fields(&self) -> bool {
        matches!(
            self,
            Stage::Match(_)
                | Stage::MatchTags(_)
                | Stage::FilterLabels { .. }
                | Stage::SortBy { .. }
        )
    }
    /// The sample filter of a matching stage (`match`, `match_tags`).
    pub(crate) fn filter(&self) -> Option<Filter> {
        match self {
            Stage::Match(f) => Some(f.clone()),
            Stage::MatchTags(tags) => Some(Filter::Or(
                tags.iter()
                    .map(|t| Filter::Contains("tags".into(), Value::String(t.clone())))
                    .collect(),
            )),
            _ => None,
        }
    }
}

/// A dataset plus stages: a lazily evaluated, ordered selection of its samples (and labels).
#[derive(Debug, Clone)]
pub struct View {
    dataset: Dataset,
    stages: Vec<Stage>,
}

pub(crate) struct Row {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) filepath: String,
    pub(crate) fields: Option<Map<String, Value>>,
}

/// Rows of a query whose columns are `seq, id, filepath, fields-or-NULL`.
pub(crate) fn read_rows(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
) -> Result<Vec<Row>> {
    let mut st = c.prepare_cached(sql)?;
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
    Ok(out)
}

impl View {
    pub(crate) fn new(dataset: Dataset) -> Self {
        View {
            dataset,
            stages: Vec::new(),
        }
    }
    /// The dataset this view is of.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
    /// The stages, in order.
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
    /// Only these samples (see [`Stage::Select`]).
    pub fn select(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Select {
            ids: ids.to_vec(),
            ordered: false,
        })
    }
    /// Only these samples, in this order.
    pub fn select_ordered(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Select {
            ids: ids.to_vec(),
            ordered: true,
        })
    }
    /// All samples but these.
    pub fn exclude(&self, ids: &[String]) -> View {
        self.with_stage(Stage::Exclude { ids: ids.to_vec() })
    }
    /// `n` random samples; `seed` makes it reproducible (a random seed is drawn and kept otherwise,
    /// so the same view always holds the same samples).
    pub fn take(&self, n: usize, seed: Option<u64>) -> View {
        let seed = seed.unwrap_or_else(rand::random);
        self.with_stage(Stage::Take { n, seed })
    }
    /// At most the first `n` samples.
    pub fn limit(&self, n: usize) -> View {
        self.with_stage(Stage::Limit(n))
    }
    /// All but the first `n` samples.
    pub fn skip(&self, n: usize) -> View {
        self.with_stage(Stage::Skip(n))
    }
    /// Samples matching the filter.
    pub fn match_field(&self, filter: Filter) -> View {
        self.with_stage(Stage::Match(filter))
    }
    /// Samples with any of these tags.
    pub fn match_tags(&self, tags: &[String]) -> View {
        self.with_stage(Stage::MatchTags(tags.to_vec()))
    }
    /// Orders the samples by a field (see [`Stage::SortBy`]).
    pub fn sort_by(&self, field: &str, reverse: bool) -> View {
        self.with_stage(Stage::SortBy {
            field: field.to_string(),
            reverse,
        })
    }
    /// Only the labels of `field` that match the filter, and only samples left with one.
    pub fn filter_labels(&self, field: &str, filter: LabelFilter) -> View {
        self.with_stage(Stage::FilterLabels {
            field: field.to_string(),
            filter,
            only_matches: true,
        })
    }

    /// The ids and distances of the last ranked stage ([`Stage::Ranked`], e.g. a similarity
    /// result), aligned.
    pub fn similarity(&self) -> Option<(&[String], &[f32])> {
        self.stages.iter().rev().find_map(|s| match s {
            Stage::Ranked { ids, distances } => Some((ids.as_slice(), distances.as_slice())),
            _ => None,
        })
    }

    /// The leading matching stages that translate to SQL, and how many stages they cover.
    pub(crate) fn pushdown(&self) -> (Vec<SqlFilter>, usize) {
        let mut pushed = Vec::new();
        for stage in &self.stages {
            match stage.filter().and_then(|f| f.to_sql()) {
                Some(sql) => pushed.push(sql),
                None => break,
            }
        }
        let n = pushed.len();
        (pushed, n)
    }

    /// `SELECT {columns} FROM samples WHERE` this dataset and the pushed filters, with its
    /// parameters (no ORDER BY).
    pub(crate) fn base_query(
        &self,
        columns: &str,
        pushed: &[SqlFilter],
    ) -> (String, Vec<rusqlite::types::Value>) {
        let mut params = vec![rusqlite::types::Value::Integer(self.dataset.db_id())];
        let mut sql = format!("SELECT {columns} FROM samples WHERE dataset_id = ?1");
        for f in pushed {
            // Renumber the filter's placeholders after the ones already bound.
            let mut expr = f.expr.clone();
            for i in (1..=f.params.len()).rev() {
                expr = expr.replace(&format!("?{i}"), &format!("?#{}", i + params.len()));
            }
            sql.push_str(" AND ");
            sql.push_str(&expr.replace("?#", "?"));
            params.extend(f.params.iter().cloned());
        }
        (sql, params)
    }

    pub(crate) fn evaluate(&self) -> Result<Vec<Row>> {
        // Windows and bounded id lists read only their rows (see `crate::page`).
        const NO_FIELDS: &str = "seq, id, filepath, NULL";
        if let Some(w) = self.window() {
            return self.window_all(&w, NO_FIELDS);
        }
        if let Some(l) = self.id_list().filter(|l| l.is_bounded()) {
            return self.id_rows(&l, l.skip(), l.limit(), NO_FIELDS);
        }
        // Leading `match` stages that translate to SQL run inside the base query.
        let (pushed, n_pushed) = self.pushdown();
        let rest = &self.stages[n_pushed..];
        let need_fields = rest.iter().any(Stage::needs_fields);
        let ds = &self.dataset;
        let mut rows: Vec<Row> = match rest.first().filter(|_| pushed.is_empty()) {
            // Fast path: a leading selection fetches only its rows.
            Some(Stage::Select { ids, .. }) | Some(Stage::Ranked { ids, .. }) => {
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
            _ => {
                let columns = if need_fields {
                    "seq, id, filepath, fields"
                } else {
                    "seq, id, filepath, NULL"
                };
                let (mut sql, params) = self.base_query(columns, &pushed);
                sql.push_str(" ORDER BY seq");
                ds.store().read(|c| read_rows(c, &sql, &params))?
            }
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

    /// The number of samples in view (the same as [`View::count`]).
    pub fn len(&self) -> Result<usize> {
        self.count()
    }
    /// Whether no sample is in view.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The samples in view order, with label filters applied to their label fields.
    pub fn samples(&self) -> Result<Vec<Sample>> {
        let rows = self.evaluate()?;
        self.samples_of(&rows)
    }

    /// The samples of these rows (fields read where the rows lack them), label filters applied.
    pub(crate) fn samples_of(&self, rows: &[Row]) -> Result<Vec<Sample>> {
        let ds = &self.dataset;
        let mut out = Vec::with_capacity(rows.len());
        ds.store().read(|c| {
            let mut st = c.prepare_cached("SELECT fields FROM samples WHERE seq = ?1")?;
            for r in rows {
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
        if let Some(samples) = self.head_of_page_view(n)? {
            return Ok(samples);
        }
        self.limit(n).samples()
    }
    /// The first sample in view order.
    pub fn first(&self) -> Result<Option<Sample>> {
        Ok(self.head(1)?.into_iter().next())
    }
    /// The last sample in view order.
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
        Stage::Select { ids, ordered: true } | Stage::Ranked { ids, .. } => {
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
        Stage::SortBy { field, reverse } => {
            let mut rows = rows;
            let key = |r: &Row| sort_key(r.fields.as_ref().and_then(|m| m.get(field)));
            rows.sort_by(|a, b| {
                let (ka, kb) = (key(a), key(b));
                // Missing values stay last in either direction.
                match (&ka, &kb) {
                    (SortKey::Missing, SortKey::Missing) => std::cmp::Ordering::Equal,
                    (SortKey::Missing, _) => std::cmp::Ordering::Greater,
                    (_, SortKey::Missing) => std::cmp::Ordering::Less,
                    _ if *reverse => kb.cmp(&ka),
                    _ => ka.cmp(&kb),
                }
            });
            rows
        }
        Stage::Limit(n) => rows.into_iter().take(*n).collect(),
        Stage::Skip(n) => rows.into_iter().skip(*n).collect(),
        Stage::Match(_) | Stage::MatchTags(_) => {
            let f = stage.filter().unwrap_or(Filter::And(Vec::new()));
            rows.into_iter()
                .filter(|r| {
                    r.fields
                        .as_ref()
                        .is_some_and(|m| f.eval(&r.id, &r.filepath, m))
                })
                .collect()
        }
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

/// A field value as a sort key: numbers, then strings, then anything else; missing last.
#[derive(Debug, PartialEq)]
enum SortKey {
    Number(f64),
    Text(String),
    Other(String),
    Missing,
}

impl SortKey {
    fn rank(&self) -> u8 {
        match self {
            SortKey::Number(_) => 0,
            SortKey::Text(_) => 1,
            SortKey::Other(_) => 2,
            SortKey::Missing => 3,
        }
    }
}

impl Eq for SortKey {}
impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) | (SortKey::Other(a), SortKey::Other(b)) => {
                a.cmp(b)
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn sort_key(v: Option<&Value>) -> SortKey {
    match v {
        None | Some(Value::Null) => SortKey::Missing,
        Some(Value::Number(n)) => n.as_f64().map_or(SortKey::Missing, SortKey::Number),
        Some(Value::String(s)) => SortKey::Text(s.clone()),
        Some(other) => SortKey::Other(other.to_string()),
    }
}
