//! The CLIP engine: ONNX image and text towers, batched, with image decoding and preprocessing
//! on worker threads running ahead of inference.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{EmbedError, ItemError, Result};
use crate::manifest::{ModelManifest, TowerSpec};
use crate::preprocess::{patch_box, preprocess_region_into, DecodeScratch};
use crate::tokenizer::{ClipTokenizer, CONTEXT_LENGTH, EOT};
use crate::{EmbeddingModel, ImageInput};

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Images (or prompts) per ONNX Runtime call.
    pub batch_size: usize,
    /// ONNX Runtime intra-op threads per session.
    pub threads: usize,
    /// Threads decoding and preprocessing images ahead of inference.
    pub decode_threads: usize,
}

impl EngineOptions {
    /// Defaults for a machine: batch 16, all cores for inference, as many decoders.
    pub fn for_machine(batch_size: usize, threads: usize) -> EngineOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if threads == 0 { cores } else { threads };
        EngineOptions {
            batch_size: if batch_size == 0 { 16 } else { batch_size },
            threads,
            decode_threads: threads.max(1),
        }
    }
}

/// A pool of sessions for one tower: each concurrent caller takes its own (`Session::run` needs
/// `&mut`), new ones are created on demand and kept for reuse.
#[derive(Debug)]
struct SessionPool {
    path: PathBuf,
    threads: usize,
    idle: Mutex<Vec<Session>>,
}

impl SessionPool {
    fn new(env: &Environment, path: PathBuf, threads: usize) -> Result<SessionPool> {
        let first = crate::runtime::session(env, &path, threads)?;
        Ok(SessionPool {
            path,
            threads,
            idle: Mutex::new(vec![first]),
        })
    }

    fn take(&self, env: &Environment) -> Result<Session> {
        let popped = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match popped {
            Some(s) => Ok(s),
            None => crate::runtime::session(env, &self.path, self.threads),
        }
    }

    fn give_back(&self, s: Session) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }
}

/// A CLIP model on ONNX Runtime. Implements [`EmbeddingModel`].
#[derive(Debug)]
pub struct ClipModel {
    name: String,
    dir: PathBuf,
    manifest: ModelManifest,
    env: Environment,
    opts: EngineOptions,
    image: SessionPool,
    text: Option<SessionPool>,
    tokenizer: ClipTokenizer,
}

fn check_io(session: &Session, spec: &TowerSpec, path: &Path) -> Result<()> {
    let ins: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let outs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let mut wanted_in = vec![spec.input.as_str()];
    wanted_in.extend(spec.attention_mask.as_deref());
    for w in wanted_in {
        if !ins.contains(&w) {
            return Err(EmbedError::InvalidManifest {
                path: path.to_path_buf(),
                reason: format!("model input '{w}' not found; the model has inputs {ins:?}"),
            });
        }
    }
    if !outs.contains(&spec.output.as_str()) {
        return Err(EmbedError::InvalidManifest {
            path: path.to_path_buf(),
            reason: format!(
                "model output '{}' not found; the model has outputs {outs:?}",
                spec.output
            ),
        });
    }
    Ok(())
}

impl ClipModel {
    /// Opens the model in `dir` described by `manifest` with a loaded ONNX Runtime environment.
    pub fn open(
        env: Environment,
        dir: &Path,
        manifest: ModelManifest,
        opts: EngineOptions,
    ) -> Result<ClipModel> {
        if opts.batch_size == 0 {
            return Err(EmbedError::InvalidOption {
                option: "batch_size",
                reason: "must be at least 1".into(),
            });
        }
        let image = SessionPool::new(&env, dir.join(&manifest.image.file), opts.threads)?;
        {
            let idle = image.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = idle.first() {
                check_io(s, &manifest.image, &image.path)?;
            }
        }
        let text = match &manifest.text {
            Some(spec) => {
                let pool = SessionPool::new(&env, dir.join(&spec.file), opts.threads)?;
                {
                    let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(s) = idle.first() {
                        check_io(s, spec, &pool.path)?;
                    }
                }
                Some(pool)
            }
            None => None,
        };
        if manifest.random_weights {
            tracing::warn!(
                model = %manifest.name,
                "this model has RANDOM WEIGHTS: its embeddings are meaningless (tests/benchmarks only)"
            );
        }
        Ok(ClipModel {
            name: manifest.name.clone(),
            dir: dir.to_path_buf(),
            manifest,
            env,
            opts,
            image,
            text,
            tokenizer: ClipTokenizer::new(),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Engine settings in use.
    pub fn options(&self) -> EngineOptions {
        self.opts
    }

    fn embed_images_impl(
        &self,
        inputs: &[ImageInput],
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<std::result::Result<Vec<f32>, ItemError>>> {
        let n = inputs.len();
        let mut results: Vec<Option<std::result::Result<Vec<f32>, ItemError>>> =
            (0..n).map(|_| None).collect();
        if n == 0 {
            return Ok(Vec::new());
        }
        let bs = self.opts.batch_size;
        let len = self.tensor_len();
        let mut session = self.image.take(&self.env)?;
        let next = AtomicUsize::new(0);
        let decoders = self.opts.decode_threads.clamp(1, n);
        // Recycled tensor buffers: no page-faulting fresh 600 KB allocations per image.
        let spare: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
        // Bounded: decoders stay at most ~2 batches ahead of inference.
        let (tx, rx) = sync_channel::<(usize, std::result::Result<Vec<f32>, ItemError>)>(2 * bs);
        let outcome = std::thread::scope(|scope| -> Result<()> {
            for _ in 0..decoders {
                let tx = tx.clone();
                let next = &next;
                let spare = &spare;
                let mut scratch = DecodeScratch::default();
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let recycled = spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let mut buf = recycled.unwrap_or_else(|| vec![0f32; len]);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.prepare_with(&inputs[i], &mut scratch, &mut buf)
                    }))
                    .unwrap_or_else(|p| {
                        let reason = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".to_string());
                        Err(ItemError::DecoderPanic {
                            path: inputs[i].path.clone(),
                            reason,
                        })
                    })
                    .map(|()| buf);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            // Owned here so it is dropped (stopping blocked decoders) before the scope joins.
            let rx = rx;
            let mut batch_idx: Vec<usize> = Vec::with_capacity(bs);
            let mut pixels: Vec<f32> = Vec::with_capacity(bs * len);
            let mut failed = None;
            let mut done = 0usize;
            let report = |done: usize| {
                if let Some(cb) = progress {
                    cb(done);
                }
            };
            for (i, r) in rx.iter() {
                match r {
                    Ok(t) => {
                        batch_idx.push(i);
                        pixels.extend_from_slice(&t);
                        spare.lock().unwrap_or_else(|p| p.into_inner()).push(t);
                        if batch_idx.len() == bs {
                            let k = batch_idx.len();
                            if let Err(e) =
                                self.flush(&mut session, &mut batch_idx, &mut pixels, &mut results)
                            {
                                failed = Some(e);
                                break;
                            }
                            done += k;
                            report(done);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(index = i, error = %e, "an input failed");
                        results[i] = Some(Err(e));
                        done += 1;
                        report(done);
                    }
                }
            }
            drop(rx);
            if let Some(e) = failed {
                return Err(e);
            }
            let k = batch_idx.len();
            self.flush(&mut session, &mut batch_idx, &mut pixels, &mut results)?;
            if k > 0 {
                report(done + k);
            }
            Ok(())
        });
        self.image.give_back(session);
        outcome?;
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| {
                    EmbedError::runtime("embedding images", format!("input #{i} got no result"))
                })
            })
            .collect()
    }

    /// Decodes, crops and preprocesses one input into `out` (`3*S*S`).
    pub fn prepare(&self, input: &ImageInput, out: &mut [f32]) -> Result<(), ItemError> {
        self.prepare_with(input, &mut DecodeScratch::default(), out)
    }

    /// [`ClipModel::prepare`] decoding into `scratch`'s buffers (reused from image to image).
    pub fn prepare_with(
        &self,
        input: &ImageInput,
        scratch: &mut DecodeScratch,
        out: &mut [f32],
    ) -> Result<(), ItemError> {
        let img = scratch.load_rgb(&input.path)?;
        let (w, h) = (img.width as u32, img.height as u32);
        let region = match input.crop {
            Some(crop) => patch_box(w, h, crop, input.force_square, input.alpha)?,
            None => [0, 0, w, h],
        };
        preprocess_region_into(img, region, &self.manifest.preprocess, out);
        Ok(())
    }

    fn flush(
        &self,
        session: &mut Session,
        batch_idx: &mut Vec<usize>,
        pixels: &mut Vec<f32>,
        results: &mut [Option<std::result::Result<Vec<f32>, ItemError>>],
    ) -> Result<()> {
        if batch_idx.is_empty() {
            return Ok(());
        }
        let rows = self.run_image(session, pixels, batch_idx.len())?;
        for (i, row) in batch_idx.drain(..).zip(rows) {
            results[i] = Some(Ok(row));
        }
        pixels.clear();
        Ok(())
    }

    fn tensor_len(&self) -> usize {
        let s = self.manifest.preprocess.image_size as usize;
        3 * s * s
    }

    /// Runs the image tower on `n` preprocessed images laid out in `pixels` (`n*3*S*S`).
    pub fn run_image_batch(&self, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let mut session = self.image.take(&self.env)?;
        let r = self.run_image(&mut session, pixels, n);
        self.image.give_back(session);
        r
    }

    fn run_image(&self, session: &mut Session, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let s = self.manifest.preprocess.image_size as usize;
        let spec = &self.manifest.image;
        let t = TensorRef::from_array_view(([n, 3, s, s], pixels))
            .map_err(|e| EmbedError::runtime("creating the image tensor", e))?;
        let outputs = session
            .run(ort::inputs![spec.input.as_str() => t])
            .map_err(|e| EmbedError::runtime("running the image tower", e))?;
        output(&outputs, &spec.output, n, self.manifest.dim)
    }

    fn run_text(&self, session: &mut Session, ids: &[i64], n: usize) -> Result<Vec<Vec<f32>>> {
        let Some(spec) = &self.manifest.text else {
            return Err(EmbedError::PromptsNotSupported(self.name.clone()));
        };
        let t = TensorRef::from_array_view(([n, CONTEXT_LENGTH], ids))
            .map_err(|e| EmbedError::runtime("creating the text tensor", e))?;
        let outputs = if let Some(mask_name) = &spec.attention_mask {
            let mut mask = vec![0i64; ids.len()];
            for (row_ids, row_mask) in ids
                .chunks_exact(CONTEXT_LENGTH)
                .zip(mask.chunks_exact_mut(CONTEXT_LENGTH))
            {
                for (id, m) in row_ids.iter().zip(row_mask.iter_mut()) {
                    *m = 1;
                    if *id == i64::from(EOT) {
                        break;
                    }
                }
            }
            let m = TensorRef::from_array_view(([n, CONTEXT_LENGTH], &mask[..]))
                .map_err(|e| EmbedError::runtime("creating the mask tensor", e))?;
            session
                .run(ort::inputs![spec.input.as_str() => t, mask_name.as_str() => m])
                .map_err(|e| EmbedError::runtime("running the text tower", e))?
        } else {
            session
                .run(ort::inputs![spec.input.as_str() => t])
                .map_err(|e| EmbedError::runtime("running the text tower", e))?
        };
        output(&outputs, &spec.output, n, self.manifest.dim)
    }
}

fn output(
    outputs: &ort::session::SessionOutputs<'_>,
    name: &str,
    n: usize,
    dim: usize,
) -> Result<Vec<Vec<f32>>> {
    let Some(value) = outputs.get(name) else {
        return Err(EmbedError::runtime(
            "reading the model output",
            format!("no output named '{name}'"),
        ));
    };
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| EmbedError::runtime("reading the model output", e))?;
    if data.len() != n * dim {
        return Err(EmbedError::runtime(
            "reading the model output",
            format!("expected {n}x{dim} values, got shape {shape:?}"),
        ));
    }
    Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

impl EmbeddingModel for ClipModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.manifest.dim
    }

    fn supports_prompts(&self) -> bool {
        self.text.is_some()
    }

    fn embed_images(
        &self,
        inputs: &[ImageInput],
    ) -> Result<Vec<std::result::Result<Vec<f32>, ItemError>>> {
        self.embed_images_impl(inputs, None)
    }

    fn embed_images_with_progress(
        &self,
        inputs: &[ImageInput],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<std::result::Result<Vec<f32>, ItemError>>> {
        self.embed_images_impl(inputs, Some(progress))
    }

    fn embed_prompts(&self, prompts: &[String]) -> Result<Vec<Vec<f32>>> {
        let Some(pool) = &self.text else {
            return Err(EmbedError::PromptsNotSupported(self.name.clone()));
        };
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let mut session = pool.take(&self.env)?;
        let mut out = Vec::with_capacity(prompts.len());
        let mut result = Ok(());
        for chunk in prompts.chunks(self.opts.batch_size) {
            let ids = self.tokenizer.tokenize_batch(chunk);
            match self.run_text(&mut session, &ids, chunk.len()) {
                Ok(rows) => out.extend(rows),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        pool.give_back(session);
        result.map(|()| out)
    }
}
