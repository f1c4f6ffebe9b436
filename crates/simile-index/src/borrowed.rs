//! A backend's rows lent in place (see [`SimilarityBackend::with_rows`](crate::SimilarityBackend::with_rows)).

use crate::{Error, Result};

/// Every row of an index, borrowed in index row order: `len` rows of `dim` contiguous `f32`
/// values (row-major) and the key of each row.
pub struct BorrowedRows<'a> {
    dim: usize,
    len: usize,
    data: &'a [f32],
    key: &'a dyn Fn(usize) -> &'a str,
}

impl<'a> BorrowedRows<'a> {
    /// `len` rows of `dim` values in `data` (exactly `len · dim` of them, else
    /// [`Error::LengthMismatch`]); `key(r)` is the key of row `r < len`.
    pub fn new(
        dim: usize,
        len: usize,
        data: &'a [f32],
        key: &'a dyn Fn(usize) -> &'a str,
    ) -> Result<Self> {
        let expected = dim.checked_mul(len).ok_or(Error::LengthMismatch {
            what: "borrowed rows (dim × len overflows)",
            expected: usize::MAX,
            got: data.len(),
        })?;
        if data.len() != expected {
            return Err(Error::LengthMismatch {
                what: "borrowed rows (values vs dim × len)",
                expected,
                got: data.len(),
            });
        }
        Ok(BorrowedRows {
            dim,
            len,
            data,
            key,
        })
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All rows, row-major (`len · dim` values).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `r`'s values; `None` past the last row.
    pub fn row(&self, r: usize) -> Option<&'a [f32]> {
        (r < self.len).then(|| &self.data[r * self.dim..(r + 1) * self.dim])
    }

    /// Row `r`'s key; `None` past the last row.
    pub fn key(&self, r: usize) -> Option<&'a str> {
        (r < self.len).then(|| (self.key)(r))
    }
}

impl std::fmt::Debug for BorrowedRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BorrowedRows")
            .field("dim", &self.dim)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_keys_line_up_and_bad_shapes_are_refused() {
        let data = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let keys = ["a", "b", "c"];
        let key = |r: usize| keys[r];
        let rows = BorrowedRows::new(2, 3, &data, &key).unwrap();
        assert_eq!((rows.dim(), rows.len(), rows.is_empty()), (2, 3, false));
        assert_eq!(rows.row(1), Some(&[3.0f32, 4.0][..]));
        assert_eq!(rows.key(2), Some("c"));
        assert_eq!((rows.row(3), rows.key(3)), (None, None));
        assert_eq!(rows.data().len(), 6);
        assert!(matches!(
            BorrowedRows::new(4, 2, &data, &key),
            Err(Error::LengthMismatch {
                expected: 8,
                got: 6,
                ..
            })
        ));
        let empty = BorrowedRows::new(0, 0, &[], &key).unwrap();
        assert!(empty.is_empty() && empty.row(0).is_none());
    }
}
