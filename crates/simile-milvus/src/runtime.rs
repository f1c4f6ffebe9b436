//! The crate's own tokio runtime: the backend contract is blocking, the SDK is async.
//!
//! Futures are spawned on a process-wide multi-thread runtime (two workers) and the caller waits
//! on a channel, so calling from inside a user's tokio runtime never hits "cannot start a runtime
//! from within a runtime" (the caller's thread only blocks on a channel).
use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::MilvusError;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static Runtime, MilvusError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("simile-milvus")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| MilvusError::Runtime(e.clone()))
}

/// Runs `fut` on the crate's runtime and waits for its output.
pub(crate) fn block_on<F, T>(fut: F) -> Result<T, MilvusError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| MilvusError::Runtime("the task was dropped before finishing".into()))
}

/// Spawns `fut` on the crate's runtime (await the handle with [`block_on`]).
pub(crate) fn spawn<F, T>(fut: F) -> Result<tokio::task::JoinHandle<T>, MilvusError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    Ok(runtime()?.spawn(fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_inside_a_user_runtime() {
        let user_rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = user_rt.block_on(async { block_on(async { 40 + 2 }).unwrap() });
        assert_eq!(got, 42);
    }
}
