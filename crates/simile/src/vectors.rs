//! Assembling index rows: `(key, sample id, vector)` triples from arrays, fields or a model,
//! checked for one dimension, into `Embeddings` or `IndexEmbeddings`. The one place vectors
//! are gathered for `compute_similarity` and `compute_embeddings`.
use ndarray::Array2;
use simile_dataset::FieldKind;
use simile_index::Embeddings;

use crate::{DatasetError, Error, IndexEmbeddings, Result};

/// Rows of a collection: `(key, sample id)` per sample, or per visible patch.
pub(crate) type Rows = [(String, String)];

/// Rows being assembled: vectors of one dimension with their keys and sample ids.
#[derive(Debug, Default)]
pub(crate) struct VectorRows {
    dim: Option<usize>,
    data: Vec<f32>,
    keys: Vec<String>,
    sample_ids: Vec<String>,
}

impl VectorRows {
    /// Rows of this dimension, or (None) of the first row's.
    pub(crate) fn with_dim(dim: Option<usize>) -> Self {
        VectorRows {
            dim,
            ..Default::default()
        }
    }

    /// The vectors present in `have` (aligned with `rows`), in row order.
    pub(crate) fn gather(
        rows: &Rows,
        have: Vec<Option<Vec<f32>>>,
        dim: Option<usize>,
    ) -> Result<Self> {
        let mut out = VectorRows::with_dim(dim);
        for ((key, sample), v) in rows.iter().zip(have) {
            if let Some(v) = v {
                out.push(key, sample, &v)?;
            }
        }
        Ok(out)
    }

    /// Appends one row; a vector of another dimension than the rows so far is an error.
    pub(crate) fn push(&mut self, key: &str, sample_id: &str, v: &[f32]) -> Result<()> {
        let d = *self.dim.get_or_insert(v.len());
        if v.len() != d {
            return Err(simile_index::Error::DimensionMismatch {
                expected: d,
                got: v.len(),
            }
            .into());
        }
        self.data.extend_from_slice(v);
        self.keys.push(key.to_string());
        self.sample_ids.push(sample_id.to_string());
        Ok(())
    }

    /// Validated index rows (dimension 0 when there are none and none was given).
    pub(crate) fn into_embeddings(self) -> Result<Embeddings> {
        Ok(Embeddings::new(
            self.dim.unwrap_or(0),
            self.data,
            self.keys,
            self.sample_ids,
        )?)
    }

    /// The `compute_embeddings` result: an array with sample ids (and label ids for patches).
    pub(crate) fn into_index_embeddings(self, patches: bool) -> Result<IndexEmbeddings> {
        let n = self.sample_ids.len();
        let dim = self.dim.unwrap_or(0);
        Ok(IndexEmbeddings {
            embeddings: Array2::from_shape_vec((n, dim), self.data)
                .map_err(|e| Error::NotSupported(e.to_string()))?,
            sample_ids: self.sample_ids,
            label_ids: patches.then_some(self.keys),
        })
    }
}

/// The vectors a vector field holds for the rows' samples, aligned with `rows` (`None` where
/// unset). A field of another kind is an error; a missing field is `DatasetError::UnknownField`.
pub(crate) fn stored_vectors(
    dataset: &simile_dataset::Dataset,
    field: &str,
    rows: &Rows,
) -> Result<Vec<Option<Vec<f32>>>> {
    check_vector_field(dataset, field)?;
    let ids: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    Ok(dataset.vectors(field, &ids)?)
}

/// A field that exists and is not a vector field is an error (`DatasetError::FieldKind`); a
/// missing field is `DatasetError::UnknownField`.
pub(crate) fn check_vector_field(dataset: &simile_dataset::Dataset, field: &str) -> Result<()> {
    check_field_kind(dataset, field, FieldKind::Vector)
}

/// The field exists and holds this kind of values (else `DatasetError::FieldKind`, or
/// `DatasetError::UnknownField`).
pub(crate) fn check_field_kind(
    dataset: &simile_dataset::Dataset,
    field: &str,
    kind: FieldKind,
) -> Result<()> {
    match dataset.field_kind(field)? {
        found if found == kind => Ok(()),
        other => Err(DatasetError::FieldKind {
            field: field.to_string(),
            expected: kind.as_str(),
            found: format!("a {} field", other.as_str()),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), format!("s{i}"))).collect()
    }

    #[test]
    fn gather_keeps_present_rows_in_order_and_checks_the_dimension() {
        let have = vec![Some(vec![1.0, 2.0]), None, Some(vec![3.0, 4.0])];
        let e = VectorRows::gather(&rows(3), have, None)
            .unwrap()
            .into_index_embeddings(true)
            .unwrap();
        assert_eq!(e.sample_ids, ["s0", "s2"]);
        assert_eq!(e.label_ids.unwrap(), ["k0", "k2"]);
        assert_eq!(e.embeddings.row(1).to_vec(), [3.0, 4.0]);

        let mixed = vec![Some(vec![1.0, 2.0]), Some(vec![3.0])];
        let err = VectorRows::gather(&rows(2), mixed, None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Index(simile_index::Error::DimensionMismatch {
                    expected: 2,
                    got: 1
                })
            ),
            "{err}"
        );
        let wrong_model_dim = VectorRows::gather(&rows(1), vec![Some(vec![1.0])], Some(4));
        assert!(wrong_model_dim.is_err());
    }

    #[test]
    fn no_rows_keep_the_given_dimension() {
        let e = VectorRows::with_dim(Some(8))
            .into_index_embeddings(false)
            .unwrap();
        assert_eq!(e.embeddings.shape(), [0, 8]);
        assert_eq!(e.label_ids, None);
    }
}
