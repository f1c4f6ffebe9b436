use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use crate::labels::{check_field_name, FieldKind, FieldValue};
use crate::{new_object_id, DatasetError, Detections, Result, Store, View};

/// A sample as read from the store: its id, file, and non-vector fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    id: String,
    filepath: PathBuf,
    fields: Map<String, Value>,
}

impl Sample {
    pub(crate) fn new(id: String, filepath: PathBuf, fields: Map<String, Value>) -> Self {
        Sample {
            id,
            filepath,
            fields,
        }
    }
    /// The 24-hex sample id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The media file's path.
    pub fn filepath(&self) -> &std::path::Path {
        &self.filepath
    }
    /// A JSON field's value (labels appear in their stored JSON form).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }
    /// All non-vector fields.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }
    /// The detections in a label field (`None` if the field is unset on this sample).
    pub fn detections(&self, field: &str) -> Result<Option<Detections>> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => decode_detections(field, v).map(Some),
        }
    }
    pub(crate) fn fields_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.fields
    }
    /// The sample as a flat JSON object: `{"id", "filepath", ...fields}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert(
            "filepath".into(),
            Value::String(self.filepath.display().to_string()),
        );
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

pub(crate) fn encode_detections(d: &Detections) -> Value {
    let mut m = Map::new();
    m.insert("_cls".into(), Value::String("Detections".into()));
    m.insert(
        "detections".into(),
        serde_json::to_value(&d.detections).unwrap_or(Value::Array(Vec::new())),
    );
    Value::Object(m)
}

pub(crate) fn decode_detections(field: &str, v: &Value) -> Result<Detections> {
    let is_dets = v.get("_cls").and_then(Value::as_str) == Some("Detections");
    if !is_dets {
        return Err(DatasetError::FieldKind {
            field: field.to_string(),
            expected: "detections",
            found: "another kind of value".to_string(),
        });
    }
    let list = v
        .get("detections")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let detections = serde_json::from_value(list).map_err(|source| DatasetError::Corrupt {
        what: format!("field '{field}'"),
        source,
    })?;
    Ok(Detections { detections })
}

/// A sample to add.
#[derive(Debug, Clone)]
pub struct NewSample {
    pub(crate) id: Option<String>,
    pub(crate) filepath: PathBuf,
    pub(crate) fields: Vec<(String, FieldValue)>,
}

impl NewSample {
    /// A sample to add for this media file, without fields (its id is made when added, unless [`NewSample::with_id`]).
    pub fn new(filepath: impl Into<PathBuf>) -> Self {
        NewSample {
            id: None,
            filepath: filepath.into(),
            fields: Vec::new(),
        }
    }
    /// Keeps a known id (imports that must line up with existing runs or collections).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Sets a field (JSON value, vector or detections).
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }
}

/// A named dataset in the store. Cheap to clone.
#[derive(Clone)]
pub struct Dataset {
    store: Store,
    id: i64,
    name: String,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset").field("name", &self.name).finish()
    }
}

impl Dataset {
    pub(crate) fn from_parts(store: Store, id: i64, name: String) -> Self {
        Dataset { store, id, name }
    }
    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The dataset's row id in the store (stable for its lifetime; keys brain runs).
    pub fn db_id(&self) -> i64 {
        self.id
    }
    /// The store the dataset lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// The whole dataset as a view (no stages).
    pub fn view(&self) -> View {
        View::new(self.clone())
    }

    /// Number of samples: one row read (the count kept beside the dataset), whatever its size.
    pub fn len(&self) -> Result<usize> {
        self.store.read(|c| sample_count(c, self.id))
    }
    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The field schema: name → kind.
    pub fn schema(&self) -> Result<BTreeMap<String, FieldKind>> {
        self.store.read(|c| schema_of(c, self.id))
    }

    /// The kind of a field, or `UnknownField`.
    pub fn field_kind(&self, field: &str) -> Result<FieldKind> {
        self.schema()?
            .get(field)
            .copied()
            .ok_or_else(|| DatasetError::UnknownField {
                dataset: self.name.clone(),
                field: field.to_string(),
            })
    }

    /// Adds one sample; returns its id.
    pub fn add_sample(&self, sample: NewSample) -> Result<String> {
        Ok(self.add_samples(vec![sample])?.remove(0))
    }

    /// Adds samples in one transaction (all or nothing); returns their ids in order.
    pub fn add_samples(&self, samples: Vec<NewSample>) -> Result<Vec<String>> {
        self.store.write(|tx| {
            let mut schema = schema_of(tx, self.id)?;
            let mut ids = Vec::with_capacity(samples.len());
            let mut ins = tx.prepare_cached(
                "INSERT INTO samples(dataset_id, id, filepath, fields) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut ins_vec = tx.prepare_cached(
                "INSERT INTO sample_vectors(sample_seq, field, data) VALUES (?1, ?2, ?3)",
            )?;
            for s in samples {
                let id = match s.id {
                    Some(id) => {
                        crate::check_object_id(&id)?;
                        id.to_ascii_lowercase()
                    }
                    None => new_object_id(),
                };
                let mut json = Map::new();
                let mut vectors = Vec::new();
                for (name, value) in s.fields {
                    check_field_name(&name)?;
                    check_kind(tx, self.id, &mut schema, &name, value.kind())?;
                    match value {
                        FieldValue::Json(v) => {
                            json.insert(name, v);
                        }
                        FieldValue::Detections(d) => {
                            for det in &d.detections {
                                det.validate()?;
                            }
                            json.insert(name, encode_detections(&d));
                        }
                        FieldValue::Vector(v) => {
                            check_vector(&name, &id, &v)?;
                            vectors.push((name, v));
                        }
                    }
                }
                ins.execute(params![
                    self.id,
                    id,
                    s.filepath.to_string_lossy(),
                    Value::Object(json).to_string()
                ])?;
                let seq = tx.last_insert_rowid();
                for (name, v) in vectors {
                    ins_vec.execute(params![seq, name, vector_to_blob(&v)])?;
                }
                ids.push(id);
            }
            tx.execute(
                "UPDATE dataset_stats SET samples = samples + ?2 WHERE dataset_id = ?1",
                params![self.id, ids.len() as i64],
            )?;
            Ok(ids)
        })
    }

    /// Deletes samples by id; returns how many existed.
    pub fn delete_samples(&self, ids: &[String]) -> Result<usize> {
        self.store.write(|tx| {
            let mut st =
                tx.prepare_cached("DELETE FROM samples WHERE dataset_id = ?1 AND id = ?2")?;
            let mut n = 0;
            for id in ids {
                n += st.execute(params![self.id, id])?;
            }
            tx.execute(
                "UPDATE dataset_stats SET samples = samples - ?2 WHERE dataset_id = ?1",
                params![self.id, n as i64],
            )?;
            Ok(n)
        })
    }

    /// Reads one sample.
    pub fn sample(&self, id: &str) -> Result<Sample> {
        let found = self.store.read(|c| {
            c.query_row(
                "SELECT id, filepath, fields FROM samples WHERE dataset_id = ?1 AND id = ?2",
                params![self.id, id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(DatasetError::from)
        })?;
        match found {
            Some((id, fp, fields)) => Ok(Sample::new(id, fp.into(), parse_fields(&fields)?)),
            None => Err(DatasetError::UnknownSample(
                id.to_string(),
                self.name.clone(),
            )),
        }
    }

    /// Sets a field on the given samples (one transaction). Every id must exist.
    pub fn set_values(&self, field: &str, values: Vec<(String, FieldValue)>) -> Result<()> {
        check_field_name(field)?;
        self.store.write(|tx| {
            let mut schema = schema_of(tx, self.id)?;
            let mut get = tx.prepare_cached("SELECT seq, fields FROM samples WHERE dataset_id = ?1 AND id = ?2")?;
            let mut upd = tx.prepare_cached("UPDATE samples SET fields = ?1 WHERE seq = ?2")?;
            let mut upv = tx.prepare_cached("INSERT OR REPLACE INTO sample_vectors(sample_seq, field, data) VALUES (?1, ?2, ?3)")?;
            for (id, value) in values {
                check_kind(tx, self.id, &mut schema, field, value.kind())?;
                let row: Option<(i64, String)> = get
                    .query_row(params![self.id, id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((seq, fields)) = row else {
                    return Err(DatasetError::UnknownSample(id, self.name.clone()));
                };
                match value {
                    FieldValue::Vector(v) => {
                        check_vector(field, &id, &v)?;
                        upv.execute(params![seq, field, vector_to_blob(&v)])?;
                    }
                    FieldValue::Json(v) => {
                        let mut m = parse_fields(&fields)?;
                        m.insert(field.to_string(), v);
                        upd.execute(params![Value::Object(m).to_string(), seq])?;
                    }
                    FieldValue::Detections(d) => {
                        for det in &d.detections {
                            det.validate()?;
                        }
                        let mut m = parse_fields(&fields)?;
                        m.insert(field.to_string(), encode_detections(&d));
                        upd.execute(params![Value::Object(m).to_string(), seq])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Sets JSON values on labels (by label id) inside a detections field, e.g. a patch query's
    /// distance. Labels not found are reported as `UnknownSample` with the label id.
    pub fn set_label_values(
        &self,
        field: &str,
        attribute: &str,
        values: &HashMap<String, Value>,
    ) -> Result<()> {
        check_field_name(attribute)?;
        self.store.write(|tx| {
            let mut st =
                tx.prepare_cached("SELECT seq, fields FROM samples WHERE dataset_id = ?1")?;
            let rows = st
                .query_map([self.id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut upd = tx.prepare_cached("UPDATE samples SET fields = ?1 WHERE seq = ?2")?;
            let mut seen = 0usize;
            for (seq, fields) in rows {
                let mut m = parse_fields(&fields)?;
                let Some(v) = m.get(field) else { continue };
                let mut dets = decode_detections(field, v)?;
                let mut changed = false;
                for d in &mut dets.detections {
                    if let Some(val) = values.get(&d.id) {
                        d.attributes.insert(attribute.to_string(), val.clone());
                        changed = true;
                        seen += 1;
                    }
                }
                if changed {
                    m.insert(field.to_string(), encode_detections(&dets));
                    upd.execute(params![Value::Object(m).to_string(), seq])?;
                }
            }
            if seen < values.len() {
                let missing = values.keys().next().cloned().unwrap_or_default();
                return Err(DatasetError::UnknownSample(missing, self.name.clone()));
            }
            Ok(())
        })
    }

    /// Vectors of a vector field for the given sample ids, aligned with `ids` (`None` where unset).
    pub fn vectors(&self, field: &str, ids: &[String]) -> Result<Vec<Option<Vec<f32>>>> {
        self.store.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT v.data FROM samples s JOIN sample_vectors v ON v.sample_seq = s.seq \
                 WHERE s.dataset_id = ?1 AND s.id = ?2 AND v.field = ?3",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let blob: Option<Vec<u8>> = st
                    .query_row(params![self.id, id, field], |r| r.get(0))
                    .optional()?;
                out.push(blob.map(|b| blob_to_vector(&b)));
            }
            Ok(out)
        })
    }

    /// Removes a field from every sample and from the schema.
    pub fn delete_field(&self, field: &str) -> Result<()> {
        self.store.write(|tx| {
            let kind: Option<String> = tx
                .query_row(
                    "SELECT kind FROM dataset_fields WHERE dataset_id = ?1 AND name = ?2",
                    params![self.id, field],
                    |r| r.get(0),
                )
                .optional()?;
            if kind.is_none() {
                return Err(DatasetError::UnknownField {
                    dataset: self.name.clone(),
                    field: field.to_string(),
                });
            }
            tx.execute(
                "DELETE FROM sample_vectors WHERE field = ?2 AND sample_seq IN (SELECT seq FROM samples WHERE dataset_id = ?1)",
                params![self.id, field],
            )?;
            tx.execute(
                "UPDATE samples SET fields = json_remove(fields, '$.' || ?2) WHERE dataset_id = ?1",
                params![self.id, field],
            )?;
            tx.execute("DELETE FROM dataset_fields WHERE dataset_id = ?1 AND name = ?2", params![self.id, field])?;
            Ok(())
        })
    }
}

/// The sample count of a dataset: the kept count, or (a read-only database made before counts
/// were kept) a count of its rows.
pub(crate) fn sample_count(c: &Connection, dataset_id: i64) -> Result<usize> {
    let kept: Option<i64> = c
        .prepare_cached("SELECT samples FROM dataset_stats WHERE dataset_id = ?1")
        .and_then(|mut st| st.query_row([dataset_id], |r| r.get(0)).optional())
        .unwrap_or(None);
    let n = match kept {
        Some(n) => n,
        None => c.query_row(
            "SELECT COUNT(*) FROM samples WHERE dataset_id = ?1",
            [dataset_id],
            |r| r.get(0),
        )?,
    };
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) fn parse_fields(s: &str) -> Result<Map<String, Value>> {
    serde_json::from_str(s).map_err(|source| DatasetError::Corrupt {
        what: "sample fields".into(),
        source,
    })
}

pub(crate) fn schema_of(c: &Connection, dataset_id: i64) -> Result<BTreeMap<String, FieldKind>> {
    let mut st = c.prepare_cached("SELECT name, kind FROM dataset_fields WHERE dataset_id = ?1")?;
    let rows = st.query_map([dataset_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for r in rows {
        let (n, k) = r?;
        out.insert(n, FieldKind::parse(&k));
    }
    Ok(out)
}

pub(crate) fn check_kind(
    c: &Connection,
    dataset_id: i64,
    schema: &mut BTreeMap<String, FieldKind>,
    name: &str,
    kind: FieldKind,
) -> Result<()> {
    match schema.get(name) {
        Some(k) if *k == kind => Ok(()),
        Some(k) => Err(DatasetError::FieldKind {
            field: name.to_string(),
            expected: k.as_str(),
            found: format!("a {} value", kind.as_str()),
        }),
        None => {
            c.execute(
                "INSERT INTO dataset_fields(dataset_id, name, kind) VALUES (?1, ?2, ?3)",
                params![dataset_id, name, kind.as_str()],
            )?;
            schema.insert(name.to_string(), kind);
            Ok(())
        }
    }
}

fn check_vector(field: &str, id: &str, v: &[f32]) -> Result<()> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(DatasetError::NonFiniteVector {
            field: field.to_string(),
            id: id.to_string(),
        });
    }
    Ok(())
}

/// Little-endian f32 bytes.
pub(crate) fn vector_to_blob(v: &[f32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(v.len() * 4);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

pub(crate) fn blob_to_vector(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
