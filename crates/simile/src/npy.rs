//! Reading and writing `.npy` files (float32, one row per sample), as numpy does.
use std::path::Path;

use ndarray::Array2;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::{Error, Result};

/// Reads a 2-D (or 1-D, as one row) float32 `.npy` file.
pub fn read_npy(path: &Path) -> Result<Array2<f32>> {
    let err = |reason: String| Error::Npy {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    match Array2::<f32>::read_npy(&bytes[..]) {
        Ok(a) => Ok(a),
        Err(e2) => match ndarray::Array1::<f32>::read_npy(&bytes[..]) {
            Ok(a) => {
                let n = a.len();
                a.into_shape_with_order((1, n))
                    .map_err(|e| err(e.to_string()))
            }
            Err(_) => Err(err(format!(
                "{e2} (expected a float32 array of 1 or 2 dimensions)"
            ))),
        },
    }
}

/// Writes a float32 `.npy` file (via a temporary file, so a failure leaves no partial file).
pub fn write_npy(path: &Path, array: &Array2<f32>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("npy.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    array
        .write_npy(std::io::BufWriter::new(file))
        .map_err(|e| Error::Npy {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
