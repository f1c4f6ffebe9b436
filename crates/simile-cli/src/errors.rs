//! Errors as a CLI user reads them: the library's messages name its Rust API (`no_embeddings()`,
//! `ort_dylib_path`); here those few are reworded to name the flags and variables instead.
use simile::model::EmbedError;

/// The messages of an error and its causes, outermost first, in CLI terms.
pub fn messages(e: &anyhow::Error) -> Vec<String> {
    e.chain()
        .map(|cause| cli_text(cause).unwrap_or_else(|| cause.to_string()))
        .collect()
}

const ORT_HINT: &str = "set SIMILE_ORT_DYLIB_PATH to libonnxruntime.so >= 1.31 (the PyPI \
    `onnxruntime` wheel's onnxruntime/capi/), or put it in ~/.simile/lib where simile finds it \
    (in a checkout: `cargo xtask models fetch-ort`)";

/// The CLI wording of one error, when the library's names a Rust call or field.
fn cli_text(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<simile::Error>() {
        return match e {
            simile::Error::NoEmbeddingsSource => Some(
                "no embeddings source: give --embeddings FILE.npy, --embeddings-field FIELD or \
                 --model NAME (or --no-embeddings for an empty index to fill with `similarity add`)"
                    .to_string(),
            ),
            _ => None,
        };
    }
    // `simile::Error::Model` holds it boxed.
    let embed = e
        .downcast_ref::<EmbedError>()
        .or_else(|| e.downcast_ref::<Box<EmbedError>>().map(|b| &**b))?;
    match embed {
        EmbedError::RuntimeNotConfigured => {
            Some(format!("no ONNX Runtime library found: {ORT_HINT}"))
        }
        EmbedError::RuntimeLoad { path, reason } => Some(format!(
            "cannot load the ONNX Runtime library from {}: {reason}. {ORT_HINT}",
            path.display()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_become_flags_and_variables() {
        let e = anyhow::Error::new(simile::Error::NoEmbeddingsSource);
        let m = messages(&e);
        assert!(
            m[0].contains("--no-embeddings") && !m[0].contains("()"),
            "{m:?}"
        );
        let e = anyhow::Error::new(EmbedError::RuntimeNotConfigured).context("loading the model");
        let m = messages(&e);
        assert_eq!(m[0], "loading the model");
        assert!(
            m[1].contains("SIMILE_ORT_DYLIB_PATH") && !m[1].contains("ort_dylib_path"),
            "{m:?}"
        );
        // As the facade reports it: boxed inside a model error.
        let e = anyhow::Error::new(simile::Error::Model {
            model: "clip".into(),
            source: Box::new(EmbedError::RuntimeNotConfigured),
        });
        let m = messages(&e);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[1].starts_with("no ONNX Runtime library found"), "{m:?}");
        let e = anyhow::anyhow!("plain");
        assert_eq!(messages(&e), vec!["plain".to_string()]);
    }
}
