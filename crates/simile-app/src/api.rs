//! JSON routes: datasets, pages of samples and patches, one sample, brain runs, tags.
use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use simile::{Dataset, FieldKind, Patch, RunFilter, Sample, Simile, View};

use crate::{ApiError, AppState};

/// Largest page the API serves.
pub(crate) const MAX_PAGE: usize = 1000;

/// Runs blocking facade work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Simile) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let simile = state.simile.clone();
    tokio::task::spawn_blocking(move || f(&simile))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server hit an internal error; see its log",
            )
        })?
}

/// A view of `dataset` from an optional JSON view description.
pub(crate) fn view_of(dataset: &Dataset, view: Option<&str>) -> Result<View, ApiError> {
    match view.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(dataset.view()),
        Some(json) => Ok(dataset.view_of(simile::parse_stages(json)?)),
    }
}

/// A sample as the API shows it.
pub(crate) fn sample_json(s: &Sample) -> Value {
    json!({"id": s.id(), "filepath": s.filepath().display().to_string(), "fields": s.fields()})
}

/// A patch as the API shows it.
pub(crate) fn patch_json(p: &Patch) -> Value {
    json!({
        "id": p.id,
        "sample_id": p.sample_id,
        "filepath": p.filepath.display().to_string(),
        "label": p.detection.label,
        "confidence": p.detection.confidence,
        "bounding_box": p.detection.bounding_box,
    })
}

#[derive(Serialize)]
pub(crate) struct DatasetSummary {
    name: String,
    len: usize,
}

pub(crate) async fn datasets(
    State(state): State<AppState>,
) -> Result<Json<Vec<DatasetSummary>>, ApiError> {
    blocking(&state, |s| {
        let mut out = Vec::new();
        for name in s.list_datasets()? {
            let len = s.load_dataset(&name)?.view().count()?;
            out.push(DatasetSummary { name, len });
        }
        Ok(Json(out))
    })
    .await
}

pub(crate) async fn dataset_info(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        let schema = ds.schema()?;
        let label_fields: Vec<&String> = schema
            .iter()
            .filter(|(_, k)| **k == FieldKind::Detections)
            .map(|(n, _)| n)
            .collect();
        Ok(Json(json!({
            "name": ds.name(),
            "len": ds.view().count()?,
            "fields": schema,
            "label_fields": label_fields,
            "tags": ds.count_sample_tags()?,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct PageParams {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    view: Option<String>,
    field: Option<String>,
}

impl PageParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(50).min(MAX_PAGE)
    }
}

pub(crate) async fn samples(
    State(state): State<AppState>,
    Path(name): Path<String>,
    p: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = p?;
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        let view = view_of(&ds, p.view.as_deref())?;
        let page = view.page(p.offset, p.limit())?;
        let samples: Vec<Value> = page.samples.iter().map(sample_json).collect();
        Ok(Json(
            json!({"total": page.total, "offset": p.offset, "samples": samples}),
        ))
    })
    .await
}

pub(crate) async fn sample(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        Ok(Json(sample_json(&ds.sample(&id)?)))
    })
    .await
}

pub(crate) async fn patches(
    State(state): State<AppState>,
    Path(name): Path<String>,
    p: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = p?;
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        let field = p.field.clone().ok_or_else(|| {
            ApiError::bad_request("a patches page needs ?field=<detections field>")
        })?;
        if ds.field_kind(&field)? != FieldKind::Detections {
            return Err(ApiError::bad_request(format!(
                "field '{field}' does not hold detections"
            )));
        }
        let view = view_of(&ds, p.view.as_deref())?;
        let all = view.to_patches(&field).patches()?;
        let page: Vec<Value> = all
            .iter()
            .skip(p.offset)
            .take(p.limit())
            .map(patch_json)
            .collect();
        Ok(Json(
            json!({"total": all.len(), "offset": p.offset, "patches": page}),
        ))
    })
    .await
}

pub(crate) async fn runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        let mut out = Vec::new();
        for key in ds.list_brain_runs(&RunFilter::similarity())? {
            out.push(run_json(&ds, &key)?);
        }
        Ok(Json(out))
    })
    .await
}

/// One similarity run: what it is (from its record) and, when its index opens, its size and
/// whether it can rank least-similar first. Never its credentials: only these fields are sent.
fn run_json(ds: &Dataset, key: &str) -> Result<Value, ApiError> {
    let info = ds.get_brain_info(key)?;
    let c = &info.config;
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let (size, reverse, error) = match ds.load_brain_results(key) {
        Ok(index) => match index.total_index_size() {
            Ok(n) => (
                json!(n),
                index.backend().capabilities().reverse,
                Value::Null,
            ),
            Err(e) => (Value::Null, false, json!(ApiError::from(e).message)),
        },
        Err(e) => (Value::Null, false, json!(ApiError::from(e).message)),
    };
    Ok(json!({
        "key": key,
        "type": get("type"),
        "backend": info.method,
        "metric": get("metric"),
        "model": get("model"),
        "embeddings_field": get("embeddings_field"),
        "patches_field": get("patches_field"),
        "supports_prompts": c.get("supports_prompts").and_then(Value::as_bool).unwrap_or(false),
        "supports_reverse": reverse,
        "size": size,
        "error": error,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsBody {
    ids: Vec<String>,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

pub(crate) async fn tags(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<TagsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        if body.add.is_empty() && body.remove.is_empty() {
            return Err(ApiError::bad_request(
                "name at least one tag to add or remove",
            ));
        }
        // One transaction: a bad tag or an unknown id changes nothing.
        let updated = ds.edit_sample_tags(&body.ids, &body.add, &body.remove)?;
        let counts: BTreeMap<String, usize> = ds.count_sample_tags()?;
        Ok(Json(json!({"updated": updated, "tags": counts})))
    })
    .await
}
