//! ONNX Runtime loading (`ort` with `load-dynamic`): the library is loaded at run time from a
//! path the caller gives, so a missing or too-old library is a typed error, never a panic.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::{EmbedError, Result};

/// File name tried through the dynamic loader's search path when no library path is configured.
#[cfg(target_os = "macos")]
pub const DEFAULT_LIBRARY_NAME: &str = "libonnxruntime.dylib";
/// File name tried through the dynamic loader's search path when no library path is configured.
#[cfg(windows)]
pub const DEFAULT_LIBRARY_NAME: &str = "onnxruntime.dll";
/// File name tried through the dynamic loader's search path when no library path is configured.
#[cfg(not(any(target_os = "macos", windows)))]
pub const DEFAULT_LIBRARY_NAME: &str = "libonnxruntime.so";

/// ONNX Runtime allows one environment (and one loaded library) per process.
static ENV: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// Loads ONNX Runtime (once per process) and returns the shared environment.
///
/// `dylib`: the library file (`libonnxruntime.so.1.31.1` from the PyPI `onnxruntime` wheel, or any
/// ONNX Runtime >= 1.31). `None` reuses an already loaded library, else tries
/// [`DEFAULT_LIBRARY_NAME`] through the system loader's search path. A later call with another
/// path keeps the first library (a process can hold only one) and logs a warning.
pub fn environment(dylib: Option<&Path>) -> Result<Environment> {
    let mut guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = guard.as_ref() {
        if let Some(p) = dylib {
            if p != loaded {
                tracing::warn!(
                    requested = %p.display(),
                    loaded = %loaded.display(),
                    "ONNX Runtime is already loaded from another path; keeping the loaded one"
                );
            }
        }
        return Ok(env.clone());
    }
    let path = match dylib {
        Some(p) => {
            if !p.exists() {
                return Err(EmbedError::RuntimeLoad {
                    path: p.to_path_buf(),
                    reason: "the file does not exist".into(),
                });
            }
            p.to_path_buf()
        }
        None => PathBuf::from(DEFAULT_LIBRARY_NAME),
    };
    let builder = ort::init_from(&path).map_err(|e| match e {
        // Nothing found on the search path: say how to configure one.
        ort::LoadDynamicError::Dlopen { .. } if dylib.is_none() => EmbedError::RuntimeNotConfigured,
        // Found but unusable (e.g. an ONNX Runtime older than 1.31).
        other => EmbedError::RuntimeLoad {
            path: path.clone(),
            reason: other.to_string(),
        },
    })?;
    let env = builder
        .with_name("simile")
        .with_telemetry(false)
        .build()
        .map_err(|e| EmbedError::runtime("creating the ONNX Runtime environment", e))?;
    tracing::debug!(path = %path.display(), "loaded ONNX Runtime");
    *guard = Some((path, env.clone()));
    Ok(env)
}

/// One CPU session for `model` with `threads` intra-op threads (no spinning, so the image
/// decoding threads get the CPU while ONNX Runtime waits).
pub(crate) fn session(env: &Environment, model: &Path, threads: usize) -> Result<Session> {
    fn build(env: &Environment, model: &Path, threads: usize) -> ort::Result<Session> {
        Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)?
            .with_intra_threads(threads)?
            .with_inter_threads(1)?
            .with_intra_op_spinning(false)?
            .commit_from_file(model)
    }
    build(env, model, threads).map_err(|e| EmbedError::Runtime {
        op: "loading an ONNX model",
        source: format!("{}: {e}", model.display()).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_library_is_a_typed_error() {
        // No unit test loads a real library, so this must fail with RuntimeLoad, not panic.
        let err = environment(Some(Path::new("/nonexistent/libonnxruntime.so.1.31.1")));
        assert!(
            matches!(err, Err(EmbedError::RuntimeLoad { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn not_a_library_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").unwrap();
        let err = environment(Some(&fake));
        assert!(
            matches!(err, Err(EmbedError::RuntimeLoad { .. })),
            "{err:?}"
        );
    }
}
