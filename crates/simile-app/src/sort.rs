//! `POST /api/datasets/{name}/sort`: the facade's `sort_by_similarity` on a view (or on the
//! patches of a field), so the page shows exactly what the API and the CLI return.
use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use simile::{Query, SortOptions};

use crate::api::{blocking, patch_json, sample_json, view_of};
use crate::{ApiError, AppState};

/// What to search for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum QueryBody {
    /// Sample ids (label ids on patches); several = their mean.
    Ids(Vec<String>),
    /// A text prompt (needs an index whose model has a text tower).
    Text(String),
    /// A query vector.
    Vector(Vec<f32>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SortBody {
    #[serde(default)]
    brain_key: Option<String>,
    query: QueryBody,
    /// `null` ranks the whole view.
    #[serde(default = "default_k")]
    k: Option<usize>,
    #[serde(default)]
    reverse: bool,
    #[serde(default)]
    dist_field: Option<String>,
    /// The view's stages (the JSON view description).
    #[serde(default)]
    view: Option<Value>,
    /// Sort the patches of this detections field instead of the samples.
    #[serde(default)]
    patches_field: Option<String>,
}

fn default_k() -> Option<usize> {
    Some(25)
}

impl SortBody {
    fn query(&self) -> Result<Query, ApiError> {
        Ok(match &self.query {
            QueryBody::Ids(ids) => Query::ids(ids.iter().cloned()),
            QueryBody::Text(t) if t.trim().is_empty() => {
                return Err(ApiError::bad_request("the text prompt is empty"))
            }
            QueryBody::Text(t) => Query::text(t.clone()),
            QueryBody::Vector(v) => Query::vector(v.clone()),
        })
    }

    fn options(&self) -> SortOptions {
        let mut o = SortOptions::new().limit(self.k).reverse(self.reverse);
        if let Some(k) = &self.brain_key {
            o = o.brain_key(k);
        }
        if let Some(f) = self.dist_field.as_deref().filter(|f| !f.is_empty()) {
            o = o.dist_field(f);
        }
        o
    }
}

pub(crate) async fn sort(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<SortBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    blocking(&state, move |s| {
        let ds = s.load_dataset(&name)?;
        let view_json = body.view.as_ref().map(Value::to_string);
        let view = view_of(&ds, view_json.as_deref())?;
        let query = body.query()?;
        let results: Vec<Value> = match &body.patches_field {
            None => {
                let sorted = view.sort_by_similarity(query, body.options())?;
                let distances = distances_of(sorted.similarity());
                sorted
                    .samples()?
                    .iter()
                    .map(|smp| with_distance(sample_json(smp), &distances, smp.id()))
                    .collect()
            }
            Some(field) => {
                let sorted = view
                    .to_patches(field)
                    .sort_by_similarity(query, body.options())?;
                let distances = distances_of(sorted.similarity());
                sorted
                    .patches()?
                    .iter()
                    .map(|p| with_distance(patch_json(p), &distances, &p.id))
                    .collect()
            }
        };
        Ok(Json(
            json!({"brain_key": body.brain_key, "results": results}),
        ))
    })
    .await
}

fn distances_of(sim: Option<(&[String], &[f32])>) -> HashMap<String, f32> {
    sim.map(|(ids, d)| ids.iter().cloned().zip(d.iter().copied()).collect())
        .unwrap_or_default()
}

fn with_distance(mut v: Value, distances: &HashMap<String, f32>, id: &str) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert(
            "distance".into(),
            distances.get(id).map_or(Value::Null, |d| json!(d)),
        );
    }
    v
}
