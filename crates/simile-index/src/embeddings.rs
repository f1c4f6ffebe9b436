use crate::{Error, Result};

/// A batch of vectors with their index keys, row-major and contiguous.
///
/// `keys[i]` is the key row `i` is stored under: the sample id for a sample index, the label id for
/// a patch index. `sample_ids[i]` is the sample that owns row `i` (equal to `keys[i]` for sample
/// indexes). Construction checks that lengths line up and that every value is finite, so a backend
/// never sees a malformed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    keys: Vec<String>,
    sample_ids: Vec<String>,
}

impl Embeddings {
    /// A batch whose keys may differ from their owning samples (patch indexes).
    pub fn new(
        dim: usize,
        data: Vec<f32>,
        keys: Vec<String>,
        sample_ids: Vec<String>,
    ) -> Result<Self> {
        if dim == 0 && !keys.is_empty() {
            return Err(Error::Empty("embedding vectors have dimension 0"));
        }
        if keys.len() != sample_ids.len() {
            return Err(Error::LengthMismatch {
                what: "sample ids vs keys",
                expected: keys.len(),
                got: sample_ids.len(),
            });
        }
        if data.len() != keys.len() * dim {
            return Err(Error::LengthMismatch {
                what: "embedding rows vs ids",
                expected: keys.len(),
                got: data.len().checked_div(dim).unwrap_or(0),
            });
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("for '{}'", keys[pos / dim]),
            });
        }
        Ok(Embeddings {
            dim,
            data,
            keys,
            sample_ids,
        })
    }

    /// A batch for a sample index: each row's key is its sample id.
    pub fn for_samples(dim: usize, data: Vec<f32>, sample_ids: Vec<String>) -> Result<Self> {
        let keys = sample_ids.clone();
        Self::new(dim, data, keys, sample_ids)
    }

    /// An empty batch of the given dimension.
    pub fn empty(dim: usize) -> Self {
        Embeddings {
            dim,
            data: Vec::new(),
            keys: Vec::new(),
            sample_ids: Vec::new(),
        }
    }

    /// The vectors' dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Row-major values, `len() * dim()` of them.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// The rows' index keys (sample ids, or label ids for patches), one per row.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
    /// The rows' sample ids, one per row (equal to the keys for a sample index).
    pub fn sample_ids(&self) -> &[String] {
        &self.sample_ids
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// Iterates `(key, sample_id, vector)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[f32])> + '_ {
        (0..self.len()).map(move |i| {
            (
                self.keys[i].as_str(),
                self.sample_ids[i].as_str(),
                self.row(i),
            )
        })
    }
    /// Splits into `(dim, data, keys, sample_ids)`.
    pub fn into_parts(self) -> (usize, Vec<f32>, Vec<String>, Vec<String>) {
        (self.dim, self.data, self.keys, self.sample_ids)
    }

    /// Keeps, for every key that occurs more than once, only its last row (last write wins).
    pub fn dedup_last_wins(self) -> Self {
        let mut last = std::collections::HashMap::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            last.insert(k.as_str(), i);
        }
        if last.len() == self.keys.len() {
            return self;
        }
        let keep: Vec<usize> = (0..self.keys.len())
            .filter(|i| last[self.keys[*i].as_str()] == *i)
            .collect();
        self.select_rows(&keep)
    }

    /// A new batch of the given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let mut data = Vec::with_capacity(rows.len() * self.dim);
        let mut keys = Vec::with_capacity(rows.len());
        let mut sample_ids = Vec::with_capacity(rows.len());
        for &i in rows {
            data.extend_from_slice(self.row(i));
            keys.push(self.keys[i].clone());
            sample_ids.push(self.sample_ids[i].clone());
        }
        Embeddings {
            dim: self.dim,
            data,
            keys,
            sample_ids,
        }
    }

    /// Appends another batch of the same dimension.
    pub fn extend(&mut self, other: Embeddings) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() && self.data.is_empty() {
            self.dim = other.dim;
        }
        if other.dim != self.dim {
            return Err(Error::DimensionMismatch {
                expected: self.dim,
                got: other.dim,
            });
        }
        self.data.extend(other.data);
        self.keys.extend(other.keys);
        self.sample_ids.extend(other.sample_ids);
        Ok(())
    }

    /// The element-wise mean of all rows (the "mean" aggregation of several queries).
    pub fn mean(&self) -> Result<Vec<f32>> {
        mean_of_rows(self.dim, &self.data)
    }
}

/// The element-wise mean of `n` rows of length `dim` stored row-major in `data`, accumulated in f64.
pub fn mean_of_rows(dim: usize, data: &[f32]) -> Result<Vec<f32>> {
    if dim == 0 || data.is_empty() {
        return Err(Error::Empty("at least one query vector must be provided"));
    }
    if data.len() % dim != 0 {
        return Err(Error::LengthMismatch {
            what: "query values vs dimension",
            expected: dim,
            got: data.len() % dim,
        });
    }
    let n = data.len() / dim;
    let mut acc = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += f64::from(*v);
        }
    }
    Ok(acc.into_iter().map(|a| (a / n as f64) as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i}")).collect()
    }

    #[test]
    fn rejects_bad_shapes_and_values() {
        assert!(matches!(
            Embeddings::for_samples(2, vec![1.0; 5], ids(3)),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            Embeddings::for_samples(2, vec![1.0, f32::NAN], ids(1)),
            Err(Error::NonFinite { what }) if what.contains("id0")
        ));
        assert!(matches!(
            Embeddings::new(1, vec![1.0], ids(1), ids(2)),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn dedup_keeps_last_row() {
        let keys = vec!["a".to_string(), "b".to_string(), "a".to_string()];
        let e = Embeddings::for_samples(1, vec![1.0, 2.0, 3.0], keys)
            .unwrap()
            .dedup_last_wins();
        assert_eq!(e.keys(), &["b".to_string(), "a".to_string()]);
        assert_eq!(e.data(), &[2.0, 3.0]);
    }

    #[test]
    fn mean_is_elementwise() {
        let e = Embeddings::for_samples(2, vec![1.0, 2.0, 3.0, 6.0], ids(2)).unwrap();
        assert_eq!(e.mean().unwrap(), vec![2.0, 4.0]);
        assert!(matches!(Embeddings::empty(2).mean(), Err(Error::Empty(_))));
    }
}
