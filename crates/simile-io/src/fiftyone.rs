//! FiftyOne's own dataset format (`fiftyone.types.FiftyOneDataset`).
//!
//! Matched against FiftyOne's `FiftyOneDatasetExporter` / `FiftyOneDatasetImporter`
//! (`fiftyone/utils/data/exporters.py`, `importers.py`) and `fiftyone/core/odm/database.py`:
//!
//! - `metadata.json`: the dataset document (`name`, `version`, `media_type`, `sample_fields`
//!   with `{name, ftype, embedded_doc_type, subfield, fields, db_field, ...}`, runs, ...);
//! - `samples.json`: `{"samples": [doc, ...]}`, each doc the sample's MongoDB document written
//!   with `bson.json_util.dumps` (so `{"_id": {"$oid": ...}}`, `{"$date": ...}`, `NaN`), with
//!   `filepath` relative to the export directory (`data/<name>`) when media were exported; or,
//!   with `use_dirs=True`, a `samples/` directory of one JSON file per sample;
//! - `data/`: the media.
//!
//! Label fields are `{"_cls": "Detections", "detections": [{"_id": {"$oid"}, "_cls":
//! "Detection", "attributes": {}, "tags": [], "label", "bounding_box", "confidence"?,
//! <dynamic attributes>...}]}`. Sample and label ids are preserved, so brain runs and Milvus
//! collections made by FiftyOne (keyed by those ids) line up with the imported samples.
//!
//! Checked against FiftyOne 1.22.1 (see `tests/integration/assets/fiftyone-1.22.1`): sample
//! documents it writes (`$numberDouble` NaN, `$binary` vectors) import with their ids, and the
//! `samples.json` documents written here parse with its `Sample.from_dict` with the same sample,
//! label and classification ids and vectors. Not checked: loading the written `metadata.json`
//! into a real FiftyOne database (that needs MongoDB, which cannot be installed here).
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use simile_dataset::{
    check_field_name, is_object_id, new_object_id, Dataset, Detection, Detections, FieldKind,
    FieldValue, NewSample, Sample, View,
};

use crate::media::{read_to_string, write_json, MediaCopier};
use crate::{ExportReport, ImportReport, IoError, Result, SkipReason};

const FORMAT: &str = "FiftyOne dataset";

/// The FiftyOne version written into exported `metadata.json`. FiftyOne migrates documents
/// from older versions when importing, adding fields introduced since (e.g. `created_at`).
pub const EXPORT_FIFTYONE_VERSION: &str = "0.21.0";

/// Sample keys that FiftyOne manages itself: not imported as fields.
const MANAGED: &[&str] = &["filepath", "created_at", "last_modified_at", "id"];

/// Reads a JSON file as Python writes it: a leading UTF-8 byte-order mark is skipped and
/// non-finite numbers are read as `null` (see [`sanitize_non_finite`]).
fn parse_json(path: &Path) -> Result<Value> {
    let text = read_to_string(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = sanitize_non_finite(text);
    serde_json::from_str(&text).map_err(|source| IoError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity`; JSON has no such tokens.
/// Outside strings they become `null`.
pub(crate) fn sanitize_non_finite(text: &str) -> Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        // Compared as bytes: `i` may sit inside a multi-byte character (a byte-order mark,
        // say), where slicing `text` would panic. A match starts with an ASCII byte, so `i`
        // is then a character boundary and so is `last`.
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| b[i..].starts_with(t.as_bytes()));
        if let Some(t) = token {
            out.push_str(&text[last..i]);
            out.push_str("null");
            i += t.len();
            last = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// Turns MongoDB extended JSON into plain JSON: `$oid` → hex string, `$date` → its ISO string
/// or milliseconds, `$numberLong`/`$numberInt`/`$numberDouble` → numbers. Binary values have
/// no JSON form and give `None`.
pub(crate) fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.len() == 1 || m.contains_key("$binary") {
                if let Some(x) = m.get("$oid").and_then(Value::as_str) {
                    return Some(Value::String(x.to_string()));
                }
                if let Some(d) = m.get("$date") {
                    return Some(match d {
                        Value::Object(inner) => inner
                            .get("$numberLong")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse::<i64>().ok())
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                        other => other.clone(),
                    });
                }
                for key in ["$numberLong", "$numberInt"] {
                    if let Some(s) = m.get(key).and_then(Value::as_str) {
                        return Some(s.parse::<i64>().map(Value::from).unwrap_or(Value::Null));
                    }
                }
                if let Some(s) = m.get("$numberDouble").and_then(Value::as_str) {
                    return Some(
                        s.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .map(Value::from)
                            .unwrap_or(Value::Null),
                    );
                }
                if let Some(s) = m.get("$numberDecimal").and_then(Value::as_str) {
                    return Some(Value::String(s.to_string()));
                }
                if let Some(s) = m.get("$uuid").and_then(Value::as_str) {
                    return Some(Value::String(s.to_string()));
                }
                if m.contains_key("$binary") {
                    return None;
                }
            }
            let mut out = Map::new();
            for (k, x) in m {
                if let Some(n) = normalize(x) {
                    out.insert(k.clone(), n);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(normalize).collect())),
        other => Some(other.clone()),
    }
}

fn oid_of(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.clone(),
        other => normalize(other)?.as_str()?.to_string(),
    };
    is_object_id(&s).then(|| s.to_ascii_lowercase())
}

fn vector_of(v: &Value) -> Option<Vec<f32>> {
    let a = v.as_array()?;
    a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

/// The declared `ftype` of each sample field in `metadata.json`, by name.
fn declared_ftypes(meta: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(fields) = meta.get("sample_fields").and_then(Value::as_array) {
        for f in fields {
            if let (Some(n), Some(t)) = (
                f.get("name").and_then(Value::as_str),
                f.get("ftype").and_then(Value::as_str),
            ) {
                out.insert(n.to_string(), t.to_string());
            }
        }
    }
    out
}

fn read_samples(dir: &Path) -> Result<(String, Vec<Value>)> {
    let single = dir.join("samples.json");
    if single.is_file() {
        let root = parse_json(&single)?;
        return match root.get("samples") {
            Some(Value::Array(a)) => Ok(("samples.json".into(), a.clone())),
            _ => Err(IoError::Format {
                path: single,
                format: FORMAT,
                message: "expected {\"samples\": [...]}".into(),
            }),
        };
    }
    let multi = dir.join("samples");
    if multi.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&multi)
            .map_err(|e| IoError::io(&multi, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut docs = Vec::with_capacity(files.len());
        for f in files {
            docs.push(parse_json(&f)?);
        }
        return Ok(("samples".into(), docs));
    }
    Err(IoError::Format {
        path: dir.to_path_buf(),
        format: FORMAT,
        message: "neither samples.json nor a samples/ directory".into(),
    })
}

/// Keys of a FiftyOne `Detection` document that map onto [`Detection`]'s own fields.
const DETECTION_KEYS: &[&str] = &["_id", "_cls", "label", "bounding_box", "confidence"];

fn parse_detections(
    v: &Value,
    at: &str,
    report: &mut ImportReport,
) -> std::result::Result<Detections, String> {
    let list = match v.get("detections") {
        None | Some(Value::Null) => return Ok(Detections::default()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("'detections' must be a list".into()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (j, d) in list.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let Some(obj) = d.as_object() else {
            report.skip(
                at,
                SkipReason::Malformed("a detection must be an object".into()),
            );
            continue;
        };
        let Some(label) = obj.get("label").and_then(Value::as_str) else {
            report.skip(
                at,
                SkipReason::Malformed("a detection needs a 'label'".into()),
            );
            continue;
        };
        let bbox = obj
            .get("bounding_box")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 4)
            .and_then(|a| {
                let mut b = [0.0; 4];
                for (o, x) in b.iter_mut().zip(a) {
                    *o = x.as_f64()?;
                }
                Some(b)
            });
        let Some(bbox) = bbox else {
            report.skip(
                at,
                SkipReason::Malformed("'bounding_box' must be 4 numbers".into()),
            );
            continue;
        };
        let mut attributes = Map::new();
        for (k, x) in obj {
            if DETECTION_KEYS.contains(&k.as_str()) {
                continue;
            }
            let Some(x) = normalize(x) else { continue };
            let empty = match &x {
                Value::Null => true,
                Value::Array(a) => a.is_empty() && k == "tags",
                Value::Object(m) => m.is_empty() && k == "attributes",
                _ => false,
            };
            if !empty {
                attributes.insert(k.clone(), x);
            }
        }
        let det = Detection {
            id: oid_of(obj.get("_id")).unwrap_or_else(new_object_id),
            label: label.to_string(),
            bounding_box: bbox,
            confidence: obj
                .get("confidence")
                .and_then(Value::as_f64)
                .filter(|c| c.is_finite()),
            attributes,
        };
        if det.validate().is_err() {
            report.skip(at, SkipReason::BadBox { bbox });
            continue;
        }
        out.push(det);
    }
    Ok(Detections::new(out))
}

/// Ids of all samples in every dataset of the store (sample ids are unique store-wide).
/// Sample ids already in the target dataset (ids are unique per dataset, so another dataset
/// may hold the same ids: importing one export into two datasets keeps the ids in both).
fn ids_in_store(dataset: &Dataset) -> Result<HashMap<String, String>> {
    let name = dataset.name().to_string();
    Ok(dataset
        .view()
        .ids()?
        .into_iter()
        .map(|id| (id, name.clone()))
        .collect())
}

/// Imports a FiftyOne dataset directory (see the module docs), keeping sample and label ids.
///
/// Detections fields become label fields; vectors (FiftyOne's `$binary` zlib-compressed `.npy`
/// of a `VectorField`, or a list of numbers in a field declared `VectorField`/`ArrayField`)
/// become vector fields; everything else not managed by FiftyOne (`_`-prefixed keys,
/// `created_at`, `last_modified_at`) is kept as JSON, with MongoDB extended JSON flattened
/// (`$oid` → hex string, `$date` → ISO string). Samples whose media file is missing, whose id
/// is invalid, duplicated or already in the dataset, and labels with bad boxes are reported;
/// the rest is added in one transaction. Other binary values (masks, ...) are left out and
/// reported.
pub fn import_fiftyone(dataset: &Dataset, dir: &Path) -> Result<ImportReport> {
    if !dir.is_dir() {
        return Err(IoError::NotADirectory(dir.to_path_buf()));
    }
    let dir = crate::media::absolute(dir)?;
    let meta_path = dir.join("metadata.json");
    let meta = if meta_path.is_file() {
        parse_json(&meta_path)?
    } else {
        Value::Null
    };
    if let Some(mt) = meta.get("media_type").and_then(Value::as_str) {
        if mt != "image" {
            return Err(IoError::Format {
                path: meta_path,
                format: FORMAT,
                message: format!("media type '{mt}' is not supported (images only)"),
            });
        }
    }
    let ftypes = declared_ftypes(&meta);
    let (source, docs) = read_samples(&dir)?;

    let mut report = ImportReport::default();
    let mut kinds: BTreeMap<String, FieldKind> = dataset.schema()?;
    let taken = ids_in_store(dataset)?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut samples = Vec::with_capacity(docs.len());

    for (i, doc) in docs.iter().enumerate() {
        let at = format!("{source}[{i}]");
        let Some(obj) = doc.as_object() else {
            report.skip(
                at,
                SkipReason::Malformed("a sample must be an object".into()),
            );
            continue;
        };
        let Some(id) = oid_of(obj.get("_id")) else {
            report.skip(
                at,
                SkipReason::Malformed("a sample needs an ObjectId '_id'".into()),
            );
            continue;
        };
        if !seen.insert(id.clone()) {
            report.skip(at, SkipReason::DuplicateId(id));
            continue;
        }
        if let Some(ds) = taken.get(&id) {
            report.skip(
                at,
                SkipReason::AlreadyInDataset(format!("{id} (dataset '{ds}')")),
            );
            continue;
        }
        let Some(fp) = obj.get("filepath").and_then(Value::as_str) else {
            report.skip(
                at,
                SkipReason::Malformed("a sample needs a 'filepath'".into()),
            );
            continue;
        };
        let path = if Path::new(fp).is_absolute() {
            PathBuf::from(fp)
        } else {
            dir.join(fp)
        };
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let mut sample = NewSample::new(path).with_id(id.clone());
        for (name, v) in obj {
            if name.starts_with('_') || MANAGED.contains(&name.as_str()) || v.is_null() {
                continue;
            }
            let fat = format!("{at}.{name}");
            if check_field_name(name).is_err() {
                report.skip(
                    fat,
                    SkipReason::Malformed(format!("invalid field name {name:?}")),
                );
                continue;
            }
            let is_dets = v.get("_cls").and_then(Value::as_str) == Some("Detections");
            let declared = ftypes.get(name).map(String::as_str).unwrap_or("");
            let is_vector = declared.ends_with("VectorField") || declared.ends_with("ArrayField");
            let value = if is_dets {
                match parse_detections(v, &fat, &mut report) {
                    Ok(d) => FieldValue::Detections(d),
                    Err(m) => {
                        report.skip(fat, SkipReason::Malformed(m));
                        continue;
                    }
                }
            } else if let Some(vec) = crate::npy::decode_vector(v) {
                FieldValue::Vector(vec)
            } else if let Some(vec) = is_vector.then(|| vector_of(v)).flatten() {
                FieldValue::Vector(vec)
            } else {
                match normalize(v) {
                    Some(x) => FieldValue::Json(x),
                    None => {
                        report.skip(
                            fat,
                            SkipReason::Malformed("binary values are not supported".into()),
                        );
                        continue;
                    }
                }
            };
            match kinds.get(name) {
                Some(k) if *k != value.kind() => {
                    report.skip(
                        fat,
                        SkipReason::FieldKindConflict {
                            field: name.clone(),
                        },
                    );
                    continue;
                }
                Some(_) => {}
                None => {
                    kinds.insert(name.clone(), value.kind());
                }
            }
            sample = sample.with_field(name.clone(), value);
        }
        samples.push(sample);
    }
    report.added = dataset.add_samples(samples)?;
    tracing::info!(
        dataset = dataset.name(),
        added = report.added.len(),
        skipped = report.skipped.len(),
        "imported FiftyOne dataset"
    );
    Ok(report)
}

fn oid(id: &str) -> Value {
    json!({ "$oid": id })
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

/// Exports a view in FiftyOne's dataset format: `metadata.json`, `samples.json` and the media
/// copied into `data/` (relative `filepath`s), keeping sample and label ids. Vector fields are
/// written like FiftyOne writes a `VectorField` (`$binary` zlib-compressed float32 `.npy`).
/// Samples whose media file is missing are reported and left out.
pub fn export_fiftyone(view: &View, out_dir: &Path) -> Result<ExportReport> {
    let dataset = view.dataset();
    let schema = dataset.schema()?;
    let samples: Vec<Sample> = view.samples()?;
    let ids: Vec<String> = samples.iter().map(|s| s.id().to_string()).collect();
    let mut vectors: BTreeMap<&str, Vec<Option<Vec<f32>>>> = BTreeMap::new();
    for (name, kind) in &schema {
        if *kind == FieldKind::Vector {
            vectors.insert(name.as_str(), dataset.vectors(name, &ids)?);
        }
    }
    let mut copier = MediaCopier::new(out_dir.join("data"))?;
    let mut report = ExportReport::default();
    let dataset_oid = new_object_id();
    let mut docs = Vec::with_capacity(samples.len());
    let mut json_types: BTreeMap<String, FieldType> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        let path = s.filepath();
        if !path.is_file() {
            report.skip(path.display().to_string(), SkipReason::MissingFile);
            continue;
        }
        let name = copier.copy(path)?;
        let mut m = Map::new();
        m.insert("_id".into(), oid(s.id()));
        m.insert("filepath".into(), json!(format!("data/{name}")));
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
        m.insert("_dataset_id".into(), oid(&dataset_oid));
        for (name, v) in s.fields() {
            if name == "tags" || name == "metadata" || v.is_null() {
                continue;
            }
            match schema.get(name) {
                Some(FieldKind::Detections) => {
                    let dets = s.detections(name)?.unwrap_or_default();
                    report.labels += dets.detections.len();
                    let list: Vec<Value> = dets.detections.iter().map(detection_doc).collect();
                    m.insert(
                        name.clone(),
                        json!({"_cls": "Detections", "detections": list}),
                    );
                }
                _ => {
                    json_types
                        .entry(name.clone())
                        .or_insert_with(|| match label_class(v) {
                            Some(c) => FieldType::Label(c.to_string()),
                            None => FieldType::Plain(json_ftype(v)),
                        });
                    m.insert(name.clone(), restore_label_ids(v));
                }
            }
        }
        for (name, vs) in &vectors {
            if let Some(Some(v)) = vs.get(i) {
                m.insert((*name).to_string(), crate::npy::encode_vector(v));
            }
        }
        docs.push(Value::Object(m));
    }
    report.exported = docs.len();

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
    for (name, kind) in &schema {
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
    let meta = json!({
        "name": dataset.name(),
        "version": EXPORT_FIFTYONE_VERSION,
        "media_type": "image",
        "persistent": false,
        "info": {},
        "classes": {},
        "default_classes": [],
        "mask_targets": {},
        "default_mask_targets": {},
        "skeletons": {},
        "sample_fields": fields,
        "frame_fields": [],
        "saved_views": [],
        "annotation_runs": {},
        "brain_methods": {},
        "evaluations": {},
        "runs": {},
    });
    write_json(&out_dir.join("metadata.json"), &meta)?;
    write_json(&out_dir.join("samples.json"), &json!({ "samples": docs }))?;
    tracing::info!(
        exported = report.exported,
        labels = report.labels,
        skipped = report.skipped.len(),
        "exported FiftyOne dataset"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_tokens_become_null_outside_strings() {
        let s = r#"{"a": NaN, "b": "NaN and Infinity", "c": [-Infinity, Infinity], "d": "x\"NaN"}"#;
        let v: Value = serde_json::from_str(&sanitize_non_finite(s)).unwrap();
        assert_eq!(v["a"], Value::Null);
        assert_eq!(v["b"], json!("NaN and Infinity"));
        assert_eq!(v["c"], json!([null, null]));
        assert_eq!(v["d"], json!("x\"NaN"));
    }

    /// A byte-order mark (or any non-ASCII text outside strings) before a non-finite token
    /// used to slice the text inside a UTF-8 character and panic.
    #[test]
    fn non_finite_tokens_after_non_ascii_text_do_not_panic() {
        let s = "\u{feff}{\"a\": NaN, \"b\": \"\u{e9}\u{20ac}\", \"c\": Infinity}";
        assert_eq!(
            sanitize_non_finite(s),
            "\u{feff}{\"a\": null, \"b\": \"\u{e9}\u{20ac}\", \"c\": null}"
        );
        assert_eq!(sanitize_non_finite("\u{e9}NaN\u{e9}"), "\u{e9}null\u{e9}");
    }

    #[test]
    fn extended_json_is_flattened() {
        let v = json!({
            "a": {"$oid": "0123456789abcdef01234567"},
            "b": {"$date": "2024-01-01T00:00:00Z"},
            "c": {"$numberLong": "12"},
            "d": {"$binary": {"base64": "AA==", "subType": "00"}},
            "e": [{"$oid": "0123456789abcdef01234567"}],
        });
        let n = normalize(&v).unwrap();
        assert_eq!(n["a"], json!("0123456789abcdef01234567"));
        assert_eq!(n["b"], json!("2024-01-01T00:00:00Z"));
        assert_eq!(n["c"], json!(12));
        assert!(n.get("d").is_none());
        assert_eq!(n["e"], json!(["0123456789abcdef01234567"]));
    }

    #[test]
    fn rand_is_in_range_and_stable() {
        let id = "0123456789abcdef01234567";
        let r = rand_for(id);
        assert!((0.001..1.0).contains(&r));
        assert_eq!(r, rand_for(id));
    }
}
