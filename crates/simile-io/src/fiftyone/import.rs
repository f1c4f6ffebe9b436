//! Reading a FiftyOne dataset directory into a dataset (see the parent module's docs).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use simile_dataset::{
    check_field_name, new_object_id, Dataset, Detection, Detections, FieldKind, FieldValue,
    NewSample,
};

use super::json::{normalize, oid_of, parse_json};
use super::FORMAT;
use crate::{ImportReport, IoError, Result, SkipReason, Skipped};

/// Sample keys that FiftyOne manages itself: not imported as fields.
const MANAGED: &[&str] = &["filepath", "created_at", "last_modified_at", "id"];

/// Keys of a FiftyOne `Detection` document that map onto [`Detection`]'s own fields.
const DETECTION_KEYS: &[&str] = &["_id", "_cls", "label", "bounding_box", "confidence"];

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
    let meta = read_metadata(&dir)?;
    let (source, docs) = read_samples(&dir)?;

    let mut report = ImportReport::default();
    let mut parser = SampleParser {
        dir: &dir,
        ftypes: declared_ftypes(&meta),
        kinds: dataset.schema()?,
        taken: ids_in_dataset(dataset)?,
        seen: HashSet::new(),
    };
    let mut samples = Vec::with_capacity(docs.len());
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("{source}[{i}]");
        if let Some(sample) = parser.sample(&at, doc, &mut report) {
            samples.push(sample);
        }
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

/// `metadata.json` (`null` when absent); an error when it declares a media type other than
/// images.
fn read_metadata(dir: &Path) -> Result<Value> {
    let meta_path = dir.join("metadata.json");
    if !meta_path.is_file() {
        return Ok(Value::Null);
    }
    let meta = parse_json(&meta_path)?;
    if let Some(mt) = meta.get("media_type").and_then(Value::as_str) {
        if mt != "image" {
            return Err(IoError::Format {
                path: meta_path,
                format: FORMAT,
                message: format!("media type '{mt}' is not supported (images only)"),
            });
        }
    }
    Ok(meta)
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

/// The sample documents, from `samples.json` or from the one-file-per-sample `samples/`
/// directory (in file name order), with the name of their source for reports.
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

/// Sample ids already in the target dataset, with the dataset's name (ids are unique per
/// dataset, so another dataset may hold the same ids: importing one export into two datasets
/// keeps the ids in both).
fn ids_in_dataset(dataset: &Dataset) -> Result<HashMap<String, String>> {
    let name = dataset.name().to_string();
    Ok(dataset
        .view()
        .ids()?
        .into_iter()
        .map(|id| (id, name.clone()))
        .collect())
}

/// Turns sample documents into new samples, one at a time, remembering what earlier ones
/// used: their ids (no duplicates) and the kind of each field (no conflicts).
struct SampleParser<'a> {
    /// The export directory; relative `filepath`s are under it.
    dir: &'a Path,
    /// Declared `ftype`s from `metadata.json`.
    ftypes: HashMap<String, String>,
    /// Field kinds: the dataset's schema plus fields of samples parsed so far.
    kinds: BTreeMap<String, FieldKind>,
    /// Ids already in the dataset, with the dataset's name.
    taken: HashMap<String, String>,
    /// Ids of samples parsed so far.
    seen: HashSet<String>,
}

impl SampleParser<'_> {
    /// The sample a document describes, or `None` (reported) when it cannot be imported.
    /// Fields that cannot be imported are reported and left out.
    fn sample(&mut self, at: &str, doc: &Value, report: &mut ImportReport) -> Option<NewSample> {
        let Some(obj) = doc.as_object() else {
            let reason = SkipReason::Malformed("a sample must be an object".into());
            report.skip(at, reason);
            return None;
        };
        let (id, path) = match self.identity(at, obj) {
            Ok(x) => x,
            Err(Skipped { path, reason }) => {
                report.skip(path, reason);
                return None;
            }
        };
        let mut sample = NewSample::new(path).with_id(id);
        for (name, v) in obj {
            if name.starts_with('_') || MANAGED.contains(&name.as_str()) || v.is_null() {
                continue;
            }
            let fat = format!("{at}.{name}");
            match self.field(name, v, &fat, report) {
                Ok(value) => sample = sample.with_field(name.clone(), value),
                Err(reason) => report.skip(fat, reason),
            }
        }
        Some(sample)
    }

    /// The id and absolute media path of the sample document at `at`, or why it is skipped
    /// (a missing media file is reported by its path).
    fn identity(
        &mut self,
        at: &str,
        obj: &Map<String, Value>,
    ) -> std::result::Result<(String, PathBuf), Skipped> {
        let skipped = |reason| Skipped {
            path: at.to_string(),
            reason,
        };
        let malformed = |m: &str| skipped(SkipReason::Malformed(m.into()));
        let id =
            oid_of(obj.get("_id")).ok_or_else(|| malformed("a sample needs an ObjectId '_id'"))?;
        if !self.seen.insert(id.clone()) {
            return Err(skipped(SkipReason::DuplicateId(id)));
        }
        if let Some(ds) = self.taken.get(&id) {
            let reason = SkipReason::AlreadyInDataset(format!("{id} (dataset '{ds}')"));
            return Err(skipped(reason));
        }
        let fp = obj
            .get("filepath")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("a sample needs a 'filepath'"))?;
        let path = if Path::new(fp).is_absolute() {
            PathBuf::from(fp)
        } else {
            self.dir.join(fp)
        };
        if !path.is_file() {
            return Err(Skipped {
                path: path.display().to_string(),
                reason: SkipReason::MissingFile,
            });
        }
        Ok((id, path))
    }

    /// One field's value, checked against the kind the field has in the dataset and in
    /// earlier samples (a new field takes this value's kind).
    fn field(
        &mut self,
        name: &str,
        v: &Value,
        at: &str,
        report: &mut ImportReport,
    ) -> std::result::Result<FieldValue, SkipReason> {
        if check_field_name(name).is_err() {
            return Err(SkipReason::Malformed(format!(
                "invalid field name {name:?}"
            )));
        }
        let value = self.field_value(name, v, at, report)?;
        match self.kinds.get(name) {
            Some(k) if *k != value.kind() => Err(SkipReason::FieldKindConflict {
                field: name.to_string(),
            }),
            Some(_) => Ok(value),
            None => {
                self.kinds.insert(name.to_string(), value.kind());
                Ok(value)
            }
        }
    }

    /// What a field holds: detections (`_cls: Detections`), a vector (FiftyOne's binary form,
    /// or a list in a field declared as a vector or array) or JSON.
    fn field_value(
        &self,
        name: &str,
        v: &Value,
        at: &str,
        report: &mut ImportReport,
    ) -> std::result::Result<FieldValue, SkipReason> {
        if v.get("_cls").and_then(Value::as_str) == Some("Detections") {
            return parse_detections(v, at, report)
                .map(FieldValue::Detections)
                .map_err(SkipReason::Malformed);
        }
        if let Some(vec) = crate::npy::decode_vector(v) {
            return Ok(FieldValue::Vector(vec));
        }
        let declared = self.ftypes.get(name).map(String::as_str).unwrap_or("");
        let is_vector = declared.ends_with("VectorField") || declared.ends_with("ArrayField");
        if let Some(vec) = is_vector.then(|| vector_of(v)).flatten() {
            return Ok(FieldValue::Vector(vec));
        }
        normalize(v)
            .map(FieldValue::Json)
            .ok_or_else(|| SkipReason::Malformed("binary values are not supported".into()))
    }
}

fn vector_of(v: &Value) -> Option<Vec<f32>> {
    let a = v.as_array()?;
    a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

/// A `Detections` document's detections; each one that cannot be imported is reported and
/// left out. An error when `detections` is not a list.
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
        match parse_detection(d) {
            Ok(det) => out.push(det),
            Err(reason) => report.skip(at, reason),
        }
    }
    Ok(Detections::new(out))
}

/// One `Detection` document: label, box and confidence, with every other non-empty key kept
/// as an attribute.
fn parse_detection(d: &Value) -> std::result::Result<Detection, SkipReason> {
    let malformed = |m: &str| SkipReason::Malformed(m.into());
    let obj = d
        .as_object()
        .ok_or_else(|| malformed("a detection must be an object"))?;
    let label = obj
        .get("label")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("a detection needs a 'label'"))?;
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
        })
        .ok_or_else(|| malformed("'bounding_box' must be 4 numbers"))?;
    let det = Detection {
        id: oid_of(obj.get("_id")).unwrap_or_else(new_object_id),
        label: label.to_string(),
        bounding_box: bbox,
        confidence: obj
            .get("confidence")
            .and_then(Value::as_f64)
            .filter(|c| c.is_finite()),
        attributes: detection_attributes(obj),
    };
    if det.validate().is_err() {
        return Err(SkipReason::BadBox { bbox });
    }
    Ok(det)
}

/// The keys of a detection document beyond [`DETECTION_KEYS`], flattened, leaving out nulls
/// and FiftyOne's empty defaults (`tags: []`, `attributes: {}`).
fn detection_attributes(obj: &Map<String, Value>) -> Map<String, Value> {
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
    attributes
}
