use std::collections::HashMap;
use std::path::PathBuf;

use crate::{Detection, Result, View};

/// One object patch: a detection with its owning sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// The label id (the patch's id, and its key in patch indexes).
    pub id: String,
    /// The id of the sample the label belongs to.
    pub sample_id: String,
    /// The sample's media file.
    pub filepath: PathBuf,
    /// The detection itself.
    pub detection: Detection,
}

/// A view with one row per label of a detections field (FiftyOne's `to_patches(field)`), in
/// sample order then label order — or, after a similarity query, in result order.
#[derive(Debug, Clone)]
pub struct PatchesView {
    base: View,
    field: String,
    selection: Option<(Vec<String>, Vec<f32>)>,
}

impl View {
    /// One row per visible label of `field` (label filters of this view apply).
    pub fn to_patches(&self, field: &str) -> PatchesView {
        PatchesView {
            base: self.clone(),
            field: field.to_string(),
            selection: None,
        }
    }
}

impl PatchesView {
    /// The sample view the patches come from.
    pub fn base(&self) -> &View {
        &self.base
    }
    /// The label field.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// Whether every label of the dataset's field is in this view.
    pub fn is_full(&self) -> bool {
        self.base.is_full() && self.selection.is_none()
    }
    /// This view restricted to these patches, in this order, with their distances (a similarity
    /// result).
    pub fn with_similarity(&self, ids: Vec<String>, distances: Vec<f32>) -> PatchesView {
        PatchesView {
            base: self.base.clone(),
            field: self.field.clone(),
            selection: Some((ids, distances)),
        }
    }
    /// The ids and distances of a similarity result.
    pub fn similarity(&self) -> Option<(&[String], &[f32])> {
        self.selection
            .as_ref()
            .map(|(i, d)| (i.as_slice(), d.as_slice()))
    }

    /// The patches, in view order.
    pub fn patches(&self) -> Result<Vec<Patch>> {
        let mut all = Vec::new();
        for s in self.base.samples()? {
            if let Some(d) = s.detections(&self.field)? {
                for det in d.detections {
                    all.push(Patch {
                        id: det.id.clone(),
                        sample_id: s.id().to_string(),
                        filepath: s.filepath().to_path_buf(),
                        detection: det,
                    });
                }
            }
        }
        match &self.selection {
            None => Ok(all),
            Some((ids, _)) => {
                let mut by_id: HashMap<String, Patch> =
                    all.into_iter().map(|p| (p.id.clone(), p)).collect();
                Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
            }
        }
    }
    /// Label ids in view order.
    pub fn ids(&self) -> Result<Vec<String>> {
        Ok(self.patches()?.into_iter().map(|p| p.id).collect())
    }
    /// `(sample_id, label_id)` in view order.
    pub fn label_ids(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .patches()?
            .into_iter()
            .map(|p| (p.sample_id, p.id))
            .collect())
    }
    /// The number of patches in view.
    pub fn len(&self) -> Result<usize> {
        Ok(self.patches()?.len())
    }
    /// Whether no patch is in view.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
    /// The first patch in view order.
    pub fn first(&self) -> Result<Option<Patch>> {
        Ok(self.patches()?.into_iter().next())
    }
}
