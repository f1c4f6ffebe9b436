use serde::{Deserialize, Serialize};

use crate::{new_object_id, DatasetError, Result};

/// One object detection, like FiftyOne's `Detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The label's own id (24 hex), used as the index key of patch indexes.
    pub id: String,
    /// The class name.
    pub label: String,
    /// `[x, y, width, height]`, relative to the image size, top-left origin.
    pub bounding_box: [f64; 4],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The detector's confidence, if any.
    pub confidence: Option<f64>,
    /// Extra per-label values (e.g. a `dist_field` written by a patch query).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Detection {
    /// A new detection with a fresh id. The box must be relative and inside the image.
    pub fn new(label: impl Into<String>, bounding_box: [f64; 4]) -> Result<Self> {
        let d = Detection {
            id: new_object_id(),
            label: label.into(),
            bounding_box,
            confidence: None,
            attributes: serde_json::Map::new(),
        };
        d.validate()?;
        Ok(d)
    }

    /// This detection with a confidence.
    pub fn with_confidence(mut self, c: f64) -> Self {
        self.confidence = Some(c);
        self
    }

    /// Checks the bounding box: finite, `w, h > 0`, inside `[0, 1]` (with a small tolerance).
    pub fn validate(&self) -> Result<()> {
        let [x, y, w, h] = self.bounding_box;
        let eps = 1e-6;
        let ok = self.bounding_box.iter().all(|v| v.is_finite())
            && w > 0.0
            && h > 0.0
            && x >= -eps
            && y >= -eps
            && x + w <= 1.0 + eps
            && y + h <= 1.0 + eps;
        if ok {
            Ok(())
        } else {
            Err(DatasetError::InvalidBoundingBox {
                label: self.label.clone(),
                bbox: self.bounding_box,
            })
        }
    }
}

/// A list of detections: the value of a label field such as `ground_truth`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Detections {
    /// The detections, in stored order.
    pub detections: Vec<Detection>,
}

impl Detections {
    /// A list of these detections.
    pub fn new(detections: Vec<Detection>) -> Self {
        Detections { detections }
    }
}

/// Field values stored on samples. Vectors are stored apart from the other fields (compact
/// binary), so reading a sample's scalars never decodes embeddings.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Any JSON scalar or structure (numbers, strings, booleans, lists, objects).
    Json(serde_json::Value),
    /// A float vector (e.g. an embedding).
    Vector(Vec<f32>),
    /// Object detections.
    Detections(Detections),
}

impl From<serde_json::Value> for FieldValue {
    fn from(v: serde_json::Value) -> Self {
        FieldValue::Json(v)
    }
}
impl From<Vec<f32>> for FieldValue {
    fn from(v: Vec<f32>) -> Self {
        FieldValue::Vector(v)
    }
}
impl From<Detections> for FieldValue {
    fn from(v: Detections) -> Self {
        FieldValue::Detections(v)
    }
}

/// The kind of a field, recorded in the dataset schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Any JSON value.
    Json,
    /// A float vector (stored as `f32` bytes).
    Vector,
    /// A list of detections with label ids.
    Detections,
}

impl FieldKind {
    /// The kind's name in the schema (`"json"`, `"vector"`, `"detections"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Json => "json",
            FieldKind::Vector => "vector",
            FieldKind::Detections => "detections",
        }
    }
    pub(crate) fn parse(s: &str) -> FieldKind {
        match s {
            "vector" => FieldKind::Vector,
            "detections" => FieldKind::Detections,
            _ => FieldKind::Json,
        }
    }
}

impl FieldValue {
    /// The kind of this value.
    pub fn kind(&self) -> FieldKind {
        match self {
            FieldValue::Json(_) => FieldKind::Json,
            FieldValue::Vector(_) => FieldKind::Vector,
            FieldValue::Detections(_) => FieldKind::Detections,
        }
    }
}

/// Checks a user field name.
pub fn check_field_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => chars.all(|c| c.is_alphanumeric() || c == '_'),
        _ => false,
    };
    if ok && name != "id" && name != "filepath" && name != "_id" {
        Ok(())
    } else {
        Err(DatasetError::InvalidField(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_validated() {
        assert!(Detection::new("cat", [0.1, 0.1, 0.5, 0.5]).is_ok());
        assert!(matches!(
            Detection::new("cat", [0.8, 0.1, 0.5, 0.5]),
            Err(DatasetError::InvalidBoundingBox { .. })
        ));
        assert!(Detection::new("cat", [0.1, 0.1, 0.0, 0.5]).is_err());
        assert!(Detection::new("cat", [f64::NAN, 0.1, 0.1, 0.5]).is_err());
    }

    #[test]
    fn field_names() {
        assert!(check_field_name("ground_truth").is_ok());
        assert!(check_field_name("id").is_err());
        assert!(check_field_name("1abc").is_err());
        assert!(check_field_name("a b").is_err());
    }
}
