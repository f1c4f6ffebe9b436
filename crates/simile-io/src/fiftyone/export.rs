//! Writing a view as a FiftyOne dataset directory (see the parent module's docs).
use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use simile_dataset::{is_object_id, new_object_id, Dataset, Detection, FieldKind, Sample, View};

use super::json::oid;
use super::EXPORT_FIFTYONE_VERSION;
use crate::media::{write_json, MediaCopier};
use crate::{ExportReport, Result, SkipReason};

/// Exports a view in FiftyOne's dataset format: `metadata.json`, `samples.json` and the media
/// copied into `data/` (relative `filepath`s), keeping sample and label ids. Vector fields are
/// written like FiftyOne writes a `VectorField` (`$binary` zlib-compressed float32 `.npy`).
/// Samples whose media file is missing are reported and left out.
pub fn export_fiftyone(view: &View, out_dir: &Path) -> Result<ExportReport> {
    let dataset = view.dataset();
    let schema = dataset.schema()?;
    let samples: Vec<Sample> = view.samples()?;
    let mut writer = SampleWriter {
        schema: &schema,
        vectors: vector_columns(dataset, &schema, &samples)?,
        dataset_oid: new_object_id(),
        json_types: BTreeMap::new(),
    };
    let mut copier = MediaCopier::new(out_dir.join("data"))?;
    let mut report = ExportReport::default();
    let mut docs = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let path = s.filepath();
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let name = copier.copy(path)?;
        let doc = writer.sample_doc(i, s, &format!("data/{name}"), &mut report)?;
        docs.push(Value::Object(doc));
    }
    report.exported = docs.len();

    let fields = sample_field_decls(&schema, &writer.json_types);
    write_json(
        &out_dir.join("metadata.json"),
        &metadata_doc(dataset.name(), fields),
    )?;
    write_json(&out_dir.join("samples.json"), &json!({ "samples": docs }))?;
    tracing::info!(
        exported = report.exported,
        labels = report.labels,
        skipped = report.skipped.len(),
        "exported FiftyOne dataset"
    );
    Ok(report)
}

/// The values of every vector field of the dataset, one column per field, one row per sample
/// (in `samples` order).
fn vector_columns<'s>(
    dataset: &Dataset,
    schema: &'s BTreeMap<String, FieldKind>,
    samples: &[Sample],
) -> Result<BTreeMap<&'s str, Vec<Option<Vec<f32>>>>> {
    let ids: Vec<String> = samples.iter().map(|s| s.id().to_string()).collect();
    let mut vectors = BTreeMap::new();
    for (name, kind) in schema {
        if *kind == FieldKind::Vector {
            vectors.insert(name.as_str(), dataset.vectors(name, &ids)?);
        }
    }
    Ok(vectors)
}

/// Writes sample documents, remembering how each JSON field is to be declared.
struct SampleWriter<'a> {
    schema: &'a BTreeMap<String, FieldKind>,
    /// See [`vector_columns`].
    vectors: BTreeMap<&'a str, Vec<Option<Vec<f32>>>>,
    /// The `_dataset_id` written on every sample.
    dataset_oid: String,
    /// How each JSON field is declared: from the first sample that has it.
    json_types: BTreeMap<String, FieldType>,
}

impl SampleWriter<'_> {
    /// The document of sample number `i`, whose media were copied to `filepath` (relative to
    /// the export directory). Counts its labels in `report`.
    fn sample_doc(
        &mut self,
        i: usize,
        s: &Sample,
        filepath: &str,
        report: &mut ExportReport,
    ) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("_id".into(), oid(s.id()));
        m.insert("filepath".into(), json!(filepath));
        let tags = s.get("tags").filter(|t| t.is_array()).cloned();
        m.insert("tags".into(), tags.unwrap_or_else(|| json!([])));
        let metadata = match s.get("metadata") {
            Some(Value::Object(md)) => {
                let mut md = md.clone();
                md.entry("_cls").or_insert_with(|| json!("ImageMetadata"));
                Value::Object(md)
            }
            _ => Value::Null,
        };
        m.insert("metadata".into(), metadata);
        m.insert("_media_type".into(), json!("image"));
        m.insert("_rand".into(), json!(rand_for(s.id())));
        m.insert("_dataset_id".into(), oid(&self.dataset_oid));
        for (name, v) in s.fields() {
            if name == "tags" || name == "metadata" || v.is_null() {
                continue;
            }
            let value = match self.schema.get(name) {
                Some(FieldKind::Detections) => {
                    let dets = s.detections(name)?.unwrap_or_default();
                    report.labels += dets.detections.len();
                    let list: Vec<Value> = dets.detections.iter().map(detection_doc).collect();
                    json!({"_cls": "Detections", "detections": list})
                }
                _ => {
                    self.json_types
                        .entry(name.clone())
                        .or_insert_with(|| match label_class(v) {
                            Some(c) => FieldType::Label(c.to_string()),
                            None => FieldType::Plain(json_ftype(v)),
                        });
                    restore_label_ids(v)
                }
            };
            m.insert(name.clone(), value);
        }
        for (name, vs) in &self.vectors {
            if let Some(Some(v)) = vs.get(i) {
                m.insert((*name).to_string(), crate::npy::encode_vector(v));
            }
        }
        Ok(m)
    }
}

/// The `sample_fields` of `metadata.json`: FiftyOne's own fields, then the dataset's.
fn sample_field_decls(
    schema: &BTreeMap<String, FieldKind>,
    json_types: &BTreeMap<String, FieldType>,
) -> Vec<Value> {
    let mut fields = vec![
        field_decl("id", "ObjectIdField", None, None),
        field_decl("filepath", "StringField", None, None),
        field_decl("tags", "ListField", None, Some("StringField")),
        field_decl(
            "metadata",
            "EmbeddedDocumentField",
            Some("fiftyone.core.metadata.ImageMetadata"),
            None,
        ),
        field_decl("_media_type", "StringField", None, None),
        field_decl("_rand", "FloatField", None, None),
        field_decl("_dataset_id", "ObjectIdField", None, None),
    ];
    for (name, kind) in schema {
        if name == "tags" || name == "metadata" {
            continue;
        }
        match kind {
            FieldKind::Detections => fields.push(field_decl(
                name,
                "EmbeddedDocumentField",
                Some("fiftyone.core.labels.Detections"),
                None,
            )),
            FieldKind::Vector => fields.push(field_decl(name, "VectorField", None, None)),
            FieldKind::Json => match json_types.get(name) {
                Some(FieldType::Plain(t)) => fields.push(field_decl(name, t, None, None)),
                Some(FieldType::Label(c)) => fields.push(field_decl(
                    name,
                    "EmbeddedDocumentField",
                    Some(&format!("fiftyone.core.labels.{c}")),
                    None,
                )),
                None => {}
            },
        }
    }
    fields
}

/// The dataset document written as `metadata.json`.
fn metadata_doc(name: &str, sample_fields: Vec<Value>) -> Value {
    json!({
        "name": name,
        "version": EXPORT_FIFTYONE_VERSION,
        "media_type": "image",
        "persistent": false,
        "info": {},
        "classes": {},
        "default_classes": [],
        "mask_targets": {},
        "default_mask_targets": {},
        "skeletons": {},
        "sample_fields": sample_fields,
        "frame_fields": [],
        "saved_views": [],
        "annotation_runs": {},
        "brain_methods": {},
        "evaluations": {},
        "runs": {},
    })
}

/// FiftyOne's `_rand` (in `[0.001, 1)`), derived from the id so exports are reproducible.
fn rand_for(id: &str) -> f64 {
    let seed = u64::from_str_radix(id.get(8..24).unwrap_or("0"), 16).unwrap_or(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    0.001 + 0.999 * rng.random::<f64>()
}

fn detection_doc(d: &Detection) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), oid(&d.id));
    m.insert("_cls".into(), json!("Detection"));
    m.insert("attributes".into(), json!({}));
    m.insert("tags".into(), json!([]));
    m.insert("label".into(), json!(d.label));
    m.insert("bounding_box".into(), json!(d.bounding_box));
    if let Some(c) = d.confidence {
        m.insert("confidence".into(), json!(c));
    }
    for (k, v) in &d.attributes {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

fn field_decl(name: &str, ftype: &str, embedded: Option<&str>, subfield: Option<&str>) -> Value {
    json!({
        "name": name,
        "ftype": format!("fiftyone.core.fields.{ftype}"),
        "embedded_doc_type": embedded,
        "subfield": subfield.map(|s| format!("fiftyone.core.fields.{s}")),
        "fields": [],
        "db_field": if name == "id" { "_id" } else { name },
        "description": null,
        "info": null,
    })
}

/// Label documents kept as JSON (a `Classification`, say) get their ObjectIds back:
/// `{"_cls": .., "_id": "<hex>"}` → `{"_cls": .., "_id": {"$oid": "<hex>"}}`, recursively.
fn restore_label_ids(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let is_label = m.get("_cls").is_some_and(Value::is_string);
            let mut out = Map::new();
            for (k, x) in m {
                let restored = match x {
                    Value::String(s) if is_label && k == "_id" && is_object_id(s) => oid(s),
                    other => restore_label_ids(other),
                };
                out.insert(k.clone(), restored);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(restore_label_ids).collect()),
        other => other.clone(),
    }
}

/// The `fiftyone.core.labels` class of a JSON label document, if it is one.
fn label_class(v: &Value) -> Option<&str> {
    const LABELS: &[&str] = &[
        "Classification",
        "Classifications",
        "Detection",
        "Detections",
        "Polyline",
        "Polylines",
        "Keypoint",
        "Keypoints",
        "Segmentation",
        "Heatmap",
        "TemporalDetection",
        "TemporalDetections",
        "GeoLocation",
        "GeoLocations",
        "Regression",
    ];
    let c = v.get("_cls")?.as_str()?;
    LABELS.contains(&c).then_some(c)
}

/// How a JSON field is declared in `metadata.json`.
enum FieldType {
    Plain(&'static str),
    Label(String),
}

fn json_ftype(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "BooleanField",
        Value::Number(n) if n.is_i64() || n.is_u64() => "IntField",
        Value::Number(_) => "FloatField",
        Value::String(_) => "StringField",
        Value::Array(_) => "ListField",
        Value::Object(_) => "DictField",
        Value::Null => "StringField",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand_is_in_range_and_stable() {
        let id = "0123456789abcdef01234567";
        let r = rand_for(id);
        assert!((0.001..1.0).contains(&r));
        assert_eq!(r, rand_for(id));
    }
}
