use ndarray::{Array2, ArrayView1, ArrayView2};

use crate::{Error, Result};

/// What to search for: sample/patch ids, vectors, or text prompts (as in FiftyOne's
/// `sort_by_similarity(query)`). Several ids, vectors or prompts are averaged into one query
/// vector (the "mean" aggregation, without normalisation).
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// These samples (or patches) by id; several are averaged into one query.
    Ids(Vec<String>),
    /// `n × dim` vectors, row-major.
    Vectors {
        /// The vectors' dimension.
        dim: usize,
        /// `n × dim` values.
        data: Vec<f32>,
    },
    /// Text prompts, embedded by the index's model (it must support prompts); several averaged.
    Text(Vec<String>),
}

impl Query {
    /// One sample (or patch) id.
    pub fn id(id: impl Into<String>) -> Query {
        Query::Ids(vec![id.into()])
    }
    /// Several ids (their vectors are averaged).
    pub fn ids<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Query {
        Query::Ids(ids.into_iter().map(Into::into).collect())
    }
    /// One vector.
    pub fn vector(v: impl Into<Vec<f32>>) -> Query {
        let data = v.into();
        Query::Vectors {
            dim: data.len(),
            data,
        }
    }
    /// Several vectors (rows), averaged.
    pub fn vectors(rows: ArrayView2<'_, f32>) -> Query {
        Query::Vectors {
            dim: rows.ncols(),
            data: rows.iter().copied().collect(),
        }
    }
    /// A vector from an ndarray.
    pub fn array(v: ArrayView1<'_, f32>) -> Query {
        Query::vector(v.to_vec())
    }
    /// A text prompt (needs an index whose model embeds prompts, e.g. CLIP).
    pub fn text(prompt: impl Into<String>) -> Query {
        Query::Text(vec![prompt.into()])
    }
    /// Interprets a string like FiftyOne does: an ObjectId-like string is an id, anything else is
    /// a text prompt.
    pub fn parse(s: &str) -> Query {
        if simile_dataset::is_object_id(s) {
            Query::id(s)
        } else {
            Query::text(s)
        }
    }

    /// A text prompt query (it needs an index that supports prompts).
    pub(crate) fn is_text(&self) -> bool {
        matches!(self, Query::Text(_))
    }

    pub(crate) fn check(&self) -> Result<()> {
        let empty = match self {
            Query::Ids(v) => v.is_empty(),
            Query::Text(v) => v.is_empty(),
            Query::Vectors { dim, data } => *dim == 0 || data.is_empty(),
        };
        if empty {
            return Err(Error::EmptyQuery);
        }
        if let Query::Vectors { dim, data } = self {
            if data.len() % dim != 0 {
                return Err(simile_index::Error::LengthMismatch {
                    what: "query values vs dimension",
                    expected: *dim,
                    got: data.len() % dim,
                }
                .into());
            }
        }
        Ok(())
    }
}

impl From<&str> for Query {
    fn from(s: &str) -> Query {
        Query::parse(s)
    }
}
impl From<String> for Query {
    fn from(s: String) -> Query {
        Query::parse(&s)
    }
}
impl From<Vec<f32>> for Query {
    fn from(v: Vec<f32>) -> Query {
        Query::vector(v)
    }
}
impl From<Array2<f32>> for Query {
    fn from(a: Array2<f32>) -> Query {
        Query::vectors(a.view())
    }
}
