//! Near-duplicates in the App: `POST /api/datasets/{name}/duplicates` (groups of look-alikes at
//! a threshold) and `GET /api/datasets/{name}/distances` (the nearest-neighbour distance
//! histogram that the threshold slider sits on).
use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use simile::DuplicatesBy;

use crate::api::{blocking, view_of};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DuplicatesBody {
    brain_key: String,
    #[serde(default)]
    thresh: Option<f64>,
    #[serde(default)]
    fraction: Option<f64>,
    #[serde(default)]
    view: Option<Value>,
}

fn index_for(
    s: &simile::Simile,
    name: &str,
    key: &str,
    view: Option<&Value>,
) -> Result<simile::SimilarityIndex, ApiError> {
    let ds = s.load_dataset(name)?;
    let index = ds.load_brain_results(key)?;
    if index.patches_field().is_some() {
        return Err(ApiError::bad_request(format!(
            "'{key}' indexes patches; the duplicates panel works on sample indexes"
        )));
    }
    let json = view.map(Value::to_string);
    Ok(match json.as_deref() {
        Some(j) if j != "[]" && j != "null" => index.use_view(&view_of(&ds, Some(j))?),
        _ => index,
    })
}

pub(crate) async fn duplicates(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<DuplicatesBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    blocking(&state, move |s| {
        let index = index_for(s, &name, &body.brain_key, body.view.as_ref())?;
        let by = match (body.thresh, body.fraction) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("give thresh or fraction, not both"))
            }
            (Some(t), None) => Some(DuplicatesBy::Thresh(t)),
            (None, Some(f)) => Some(DuplicatesBy::Fraction(f)),
            (None, None) => None,
        };
        let d = index.find_duplicates(by)?;
        let ds = s.load_dataset(&name)?;
        // Filepaths of every id shown, in one read.
        let mut shown: Vec<String> = Vec::new();
        for (u, dups) in &d.neighbors_map {
            shown.push(u.clone());
            shown.extend(dups.iter().map(|x| x.0.clone()));
        }
        let paths: HashMap<String, String> = ds
            .view()
            .select(&shown)
            .samples()?
            .into_iter()
            .map(|smp| (smp.id().to_string(), smp.filepath().display().to_string()))
            .collect();
        let path = |id: &str| paths.get(id).cloned().unwrap_or_default();
        let mut groups: Vec<(f64, Value)> = d
            .neighbors_map
            .iter()
            .map(|(u, dups)| {
                let nearest = dups.first().map_or(f64::INFINITY, |x| x.1);
                let members: Vec<Value> = dups
                    .iter()
                    .map(|(id, dist)| json!({"id": id, "filepath": path(id), "distance": dist}))
                    .collect();
                (
                    nearest,
                    json!({"id": u, "filepath": path(u), "duplicates": members}),
                )
            })
            .collect();
        groups.sort_by(|a, b| a.0.total_cmp(&b.0));
        // How the pairs were searched: exactly, or inside cells with the recall measured.
        let method = match d.method {
            simile::DuplicatesMethod::Exact => json!({"exact": true}),
            simile::DuplicatesMethod::Clustered { cells, recall } => json!({
                "exact": false,
                "cells": cells,
                "sampled": recall.sampled_rows,
                "near_pairs": recall.near_pairs,
                "recall": recall.ratio(),
            }),
        };
        Ok(Json(json!({
            "thresh": d.thresh,
            "method": method,
            "unique_count": d.unique_ids.len(),
            "duplicate_ids": d.duplicate_ids,
            "groups": groups.into_iter().map(|g| g.1).collect::<Vec<_>>(),
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct DistanceParams {
    brain_key: String,
    #[serde(default)]
    bins: Option<usize>,
    #[serde(default)]
    view: Option<String>,
}

pub(crate) async fn distances(
    State(state): State<AppState>,
    Path(name): Path<String>,
    p: Result<Query<DistanceParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = p?;
    blocking(&state, move |s| {
        let view: Option<Value> = match p.view.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(
                serde_json::from_str(v)
                    .map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_view", format!("the view is not valid JSON: {e}")))?,
            ),
            _ => None,
        };
        let index = index_for(s, &name, &p.brain_key, view.as_ref())?;
        let h = index.distance_histogram(p.bins.unwrap_or(40).clamp(1, 500))?;
        let n: usize = h.counts.iter().sum();
        let hist: Vec<Value> = h
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (lo, hi) = h.edges(i);
                json!({"lo": lo, "hi": hi, "count": c})
            })
            .collect();
        Ok(Json(json!({"n": n, "min": h.lo, "max": h.hi, "metric": index.metric().as_str(), "bins": hist})))
    })
    .await
}
