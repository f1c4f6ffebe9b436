//! CLIP engine benchmark: end-to-end images/s (JPEG files -> embeddings) against ONNX Runtime
//! alone on pre-made tensors, decode+preprocess cost, and text prompts/s.
//!
//! The model is ViT-B/32 with RANDOM WEIGHTS (same compute as the real one):
//! `cargo xtask models export-vitb32` writes it to target/xtask-cache/models/clip-vit-b32-random.
//!
//! ```text
//! cargo run --release -p simile-embed --example clip_bench -- \
//!     [--model DIR] [--ort LIB] [--images N] [--batch B] [--threads T] [--prompts P] [--json]
//!     [--images-dir DIR] [--photos-dir DIR] [--rounds R] [--decode-threads D]
//! ```
//! End to end is measured on two JPEG sets, interleaved with ONNX Runtime alone in every round:
//! `--photos-dir DIR`, the `*.jpg` files in DIR (cycled up to `--images`; `cargo xtask bench` passes
//! 640×480 / 480×640 4:2:0 JPEGs cut from real photos by `tools/bench_jpegs.py`), and the worst
//! case that `clip_bench` makes itself in `--images-dir` (noise saved 4:4:4 at quality 90, whose
//! Huffman decoding costs twice a photo's). Without `--photos-dir` only the noise set is measured
//! (its figures then fill both the main and the `noise_` keys of the JSON line).
//! `--decode-only` measures decoding + preprocessing alone (one thread, CPU ms per image, best of
//! `--rounds`) without loading a model, interleaved with the previous path (`image` crate
//! decoding, `preprocess_reference`) and the largest difference between their tensors;
//! `--inputs DIR` decodes the image files in DIR (repeated up to `--images`) instead of the
//! generated JPEGs.
//! `--ort` defaults to `$SIMILE_ORT_DYLIB_PATH`.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use image::{Rgb, RgbImage};
use simile_embed::preprocess::{
    jpeg_is_complete, preprocess_reference, preprocess_region_into, DecodeScratch, PreprocessConfig,
};
use simile_embed::{load_clip, EmbeddingModel, ImageInput, ModelOptions};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// CPU time of this process (all threads), seconds, from /proc (Linux); 0 elsewhere.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name: state is field 3; utime/stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU time of the calling thread, seconds, from /proc/thread-self/schedstat (Linux; updated at
/// scheduler ticks, so time whole passes, not single images); the process's where it is missing.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or_else(cpu_s, |ns| ns * 1e-9)
}

/// Best over `rounds` of (CPU ms per item of `first`, of `both`) passes on this thread.
fn best_passes(
    rounds: usize,
    n: usize,
    mut first: impl FnMut(),
    mut both: impl FnMut(),
) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds.max(1) {
        let c = thread_cpu_s();
        first();
        let c2 = thread_cpu_s();
        both();
        let c3 = thread_cpu_s();
        let k = 1e3 / n.max(1) as f64;
        best = (best.0.min((c2 - c) * k), best.1.min((c3 - c2) * k));
    }
    best
}

fn make_jpegs(dir: &std::path::Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|k| {
            let (w, h) = if k % 3 == 0 { (480, 640) } else { (640, 480) };
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = ((x * 7 + y * 13 + k as u32 * 29) % 256) as u8;
                let s = (((x as f32 / 9.0).sin() * (y as f32 / 7.0).cos() + 1.0) * 127.0) as u8;
                Rgb([v, s, v.wrapping_add(s)])
            });
            let p = dir.join(format!("img{k:04}.jpg"));
            let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90)
                .encode_image(&img)
                .unwrap();
            p
        })
        .collect()
}

/// The files in `dir` accepted by `keep`, sorted, cycled up to at least `n` (all of them when
/// there are more).
fn files_in(
    dir: &std::path::Path,
    n: usize,
    keep: impl Fn(&std::path::Path) -> bool,
) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && keep(p))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no files in {}", dir.display());
    let k = v.len();
    v.into_iter().cycle().take(n.max(k)).collect()
}

/// Mean file size, KB.
fn mean_kb(paths: &[PathBuf]) -> f64 {
    let bytes: u64 = paths.iter().map(|p| p.metadata().unwrap().len()).sum();
    bytes as f64 / paths.len().max(1) as f64 / 1e3
}

/// One end-to-end pass (JPEG files -> embeddings): (wall seconds, process CPU seconds).
fn e2e_pass(model: &simile_embed::ClipModel, inputs: &[ImageInput], dim: usize) -> (f64, f64) {
    let c = cpu_s();
    let t = Instant::now();
    let out = model.embed_images(inputs).unwrap();
    let e = t.elapsed().as_secs_f64();
    let cpu = cpu_s() - c;
    assert!(out.iter().all(|r| r.as_ref().is_ok_and(|v| v.len() == dim)));
    (e, cpu)
}

/// CPU ms per image on this thread, best of `rounds`: (decode, decode + resize + crop +
/// normalise into `tensors`, one `3*S*S` slot per path). One decoding scratch for all, as each of
/// the engine's decoding threads has.
fn time_decode(
    paths: &[PathBuf],
    cfg: &PreprocessConfig,
    tensors: &mut [f32],
    rounds: usize,
) -> (f64, f64) {
    let len = tensors.len() / paths.len().max(1);
    let mut scratch = DecodeScratch::default();
    let mut scratch2 = DecodeScratch::default();
    best_passes(
        rounds,
        paths.len(),
        || {
            for p in paths {
                scratch.load_rgb(p).unwrap();
            }
        },
        || {
            for (p, out) in paths.iter().zip(tensors.chunks_exact_mut(len)) {
                let img = scratch2.load_rgb(p).unwrap();
                let region = [0, 0, img.width as u32, img.height as u32];
                preprocess_region_into(img, region, cfg, out);
            }
        },
    )
}

/// The same on the previous path (the `image` crate's decoder into a fresh image, the whole
/// image resized, then cropped and normalised pixel by pixel), and the largest difference of
/// its tensors from `tensors`.
fn time_previous_path(
    paths: &[PathBuf],
    cfg: &PreprocessConfig,
    tensors: &[f32],
    rounds: usize,
) -> (f64, f64, f32) {
    let len = tensors.len() / paths.len().max(1);
    let decode = |p: &PathBuf| {
        let bytes = std::fs::read(p).unwrap();
        let img = image::load_from_memory(&bytes).unwrap().into_rgb8();
        assert!(jpeg_is_complete(&bytes));
        img
    };
    let mut max_diff = 0f32;
    let (dec, both) = best_passes(
        rounds,
        paths.len(),
        || {
            for p in paths {
                decode(p);
            }
        },
        || {
            for (p, want) in paths.iter().zip(tensors.chunks_exact(len)) {
                let got = preprocess_reference(&decode(p), cfg);
                max_diff = got
                    .iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(max_diff, f32::max);
            }
        },
    );
    (dec, both, max_diff)
}

/// `inputs`: decode the image files in that folder instead of making `n` JPEGs.
fn decode_only(n: usize, rounds: usize, json: bool, dir: Option<PathBuf>, inputs: Option<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let paths = match inputs {
        // Repeated up to `n` files: a pass must outlast the clock's ticks.
        Some(d) => files_in(&d, n, |_| true),
        None => make_jpegs(&dir, n),
    };
    let n = paths.len();
    eprintln!("{n} files, {:.0} KB each on average", mean_kb(&paths));
    let cfg = PreprocessConfig::default();
    let s = cfg.image_size as usize;
    let mut tensors = vec![0f32; n * 3 * s * s];
    // Interleaved, so both paths see the same machine.
    let (mut best, mut prev) = (
        (f64::INFINITY, f64::INFINITY),
        (f64::INFINITY, f64::INFINITY),
    );
    let mut max_diff = 0f32;
    for _ in 0..rounds {
        let b = time_decode(&paths, &cfg, &mut tensors, 1);
        let p = time_previous_path(&paths, &cfg, &tensors, 1);
        best = (best.0.min(b.0), best.1.min(b.1));
        prev = (prev.0.min(p.0), prev.1.min(p.1));
        max_diff = max_diff.max(p.2);
    }
    let (total, prev_total) = (best.1, prev.1);
    if json {
        println!(
            "{{\"images\":{n},\"decode_ms_per_image\":{total:.2},\"decode_only_ms\":{:.2},\"previous_path_ms\":{prev_total:.2},\"max_abs_diff\":{max_diff:e}}}",
            best.0
        );
    } else {
        println!(
            "decode+preprocess (1 thread, CPU, best of {rounds}): {total:.2} ms/image (decode alone {:.2})",
            best.0
        );
        println!(
            "previous path (image crate decode, whole-image resize): {prev_total:.2} ms/image (decode alone {:.2}); max |tensor difference| {max_diff:e}",
            prev.0
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir: PathBuf = arg(&args, "--model")
        .unwrap_or_else(|| root.join("target/xtask-cache/models/clip-vit-b32-random"));
    let ort: Option<PathBuf> = arg(&args, "--ort")
        .or_else(|| std::env::var_os("SIMILE_ORT_DYLIB_PATH").map(PathBuf::from));
    let n: usize = arg(&args, "--images").unwrap_or(64);
    let batch: usize = arg(&args, "--batch").unwrap_or(16);
    let threads: usize = arg(&args, "--threads").unwrap_or(0);
    let n_prompts: usize = arg(&args, "--prompts").unwrap_or(64);
    let json = args.iter().any(|a| a == "--json");
    let rounds: usize = arg(&args, "--rounds").unwrap_or(3);
    if args.iter().any(|a| a == "--decode-only") {
        decode_only(
            n,
            rounds.max(1),
            json,
            arg(&args, "--images-dir"),
            arg(&args, "--inputs"),
        );
        return;
    }

    let opts = ModelOptions {
        ort_dylib_path: ort,
        models_dir: None,
        cache_dir: std::env::temp_dir(),
        batch_size: batch,
        threads,
        offline: true,
    };
    let model = load_clip(model_dir.to_str().unwrap(), &opts, None).unwrap_or_else(|e| {
        eprintln!("cannot load {}: {e}\n(run `cargo xtask models export-vitb32` and `cargo xtask models fetch-ort`)", model_dir.display());
        std::process::exit(2);
    });
    // --decode-threads N: reopen with another number of decoding threads.
    let model = match arg::<usize>(&args, "--decode-threads") {
        Some(d) => {
            let mut eo = model.options();
            eo.decode_threads = d.max(1);
            let env = simile_embed::runtime::environment(opts.ort_dylib_path.as_deref()).unwrap();
            simile_embed::ClipModel::open(env, model.dir(), model.manifest().clone(), eo).unwrap()
        }
        None => model,
    };
    let m = model.manifest();
    eprintln!(
        "model {} ({}{}), dim {}, batch {}, threads {:?}",
        m.name,
        m.architecture,
        if m.random_weights {
            ", RANDOM WEIGHTS"
        } else {
            ""
        },
        m.dim,
        batch,
        model.options()
    );

    let tmp = tempfile::tempdir().unwrap();
    // --images-dir keeps the noise JPEGs (tools/bench_open_clip.py reads the same files).
    let img_dir: PathBuf = arg(&args, "--images-dir").unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&img_dir).unwrap();
    let noise = make_jpegs(&img_dir, n);
    let is_jpeg = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
    };
    // The main set: the photos when given, else the noise JPEGs.
    let paths = match arg::<PathBuf>(&args, "--photos-dir") {
        Some(d) => files_in(&d, n, is_jpeg),
        None => noise.clone(),
    };
    let n = paths.len();
    let noise: Vec<PathBuf> = noise.into_iter().cycle().take(n).collect();
    let with_photos = paths != noise;
    let s = m.preprocess.image_size as usize;
    let len = 3 * s * s;

    // Decode, then preprocess, one thread, as the engine's decoding threads do (thread CPU time:
    // robust on a shared machine); best of 2 passes (the first also faults the tensors in).
    let mut tensors = vec![0f32; n * len];
    let (noise_decode_only_ms, noise_decode_ms) =
        time_decode(&noise, &m.preprocess, &mut tensors, 2);
    let (decode_only_ms, decode_ms) = time_decode(&paths, &m.preprocess, &mut tensors, 2);
    let preprocess_ms = decode_ms - decode_only_ms;
    let (kb, noise_kb) = (mean_kb(&paths), mean_kb(&noise));

    // Warm-up.
    model
        .run_image_batch(&tensors[..batch.min(n) * len], batch.min(n))
        .unwrap();

    // ORT alone on pre-made tensors vs end to end from the JPEG files (the photos, then the
    // noise), interleaved over several rounds; the best round of each counts (the machine may be
    // shared). CPU is summed over all rounds.
    let inputs: Vec<ImageInput> = paths.iter().map(ImageInput::new).collect();
    let noise_inputs: Vec<ImageInput> = noise.iter().map(ImageInput::new).collect();
    let (mut ort_s, mut e2e_s, mut noise_s) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let (mut ort_cpu, mut e2e_cpu, mut noise_cpu) = (0.0, 0.0, 0.0);
    for round in 0..rounds {
        let c = cpu_s();
        let t = Instant::now();
        let mut done = 0;
        while done < n {
            let k = batch.min(n - done);
            model
                .run_image_batch(&tensors[done * len..(done + k) * len], k)
                .unwrap();
            done += k;
        }
        let o = t.elapsed().as_secs_f64();
        ort_cpu += cpu_s() - c;
        let (e, ec) = e2e_pass(&model, &inputs, m.dim);
        e2e_cpu += ec;
        let (w, wc) = if with_photos {
            e2e_pass(&model, &noise_inputs, m.dim)
        } else {
            (e, ec)
        };
        noise_cpu += wc;
        eprintln!(
            "round {round}: ORT alone {:.1} ms/image, end to end {:.1} ms/image, noise JPEGs {:.1} ms/image",
            o * 1e3 / n as f64,
            e * 1e3 / n as f64,
            w * 1e3 / n as f64
        );
        ort_s = ort_s.min(o);
        e2e_s = e2e_s.min(e);
        noise_s = noise_s.min(w);
    }

    // Prompts.
    let prompts: Vec<String> = (0..n_prompts)
        .map(|i| format!("a photo of a dog number {i}"))
        .collect();
    model.embed_prompts(&prompts[..1]).unwrap();
    let c = cpu_s();
    let t = Instant::now();
    model.embed_prompts(&prompts).unwrap();
    let text_s = t.elapsed().as_secs_f64();
    let text_cpu_ms = (cpu_s() - c) * 1e3 / n_prompts as f64;

    let ort_ips = n as f64 / ort_s;
    // CPU cost per image (all threads): what the throughput ratio converges to on an idle machine.
    let per_image = |cpu: f64| cpu * 1e3 / (n * rounds) as f64;
    let (ort_cpu_ms, e2e_cpu_ms, noise_cpu_ms) =
        (per_image(ort_cpu), per_image(e2e_cpu), per_image(noise_cpu));
    let (e2e_ips, noise_ips) = (n as f64 / e2e_s, n as f64 / noise_s);
    let pps = n_prompts as f64 / text_s;
    if json {
        println!(
            "{{\"model\":\"{}\",\"random_weights\":{},\"images\":{n},\"batch\":{batch},\"photos\":{with_photos},\"jpeg_kb\":{kb:.1},\"decode_ms_per_image\":{decode_ms:.2},\"ort_images_per_s\":{ort_ips:.2},\"e2e_images_per_s\":{e2e_ips:.2},\"e2e_over_ort\":{:.3},\"ort_cpu_ms_per_image\":{ort_cpu_ms:.1},\"e2e_cpu_ms_per_image\":{e2e_cpu_ms:.1},\"noise_jpeg_kb\":{noise_kb:.1},\"noise_decode_ms_per_image\":{noise_decode_ms:.2},\"noise_e2e_images_per_s\":{noise_ips:.2},\"noise_e2e_over_ort\":{:.3},\"noise_e2e_cpu_ms_per_image\":{noise_cpu_ms:.1},\"prompts_per_s\":{pps:.2},\"prompt_cpu_ms\":{text_cpu_ms:.1}}}",
            m.name, m.random_weights, e2e_ips / ort_ips, noise_ips / ort_ips
        );
    } else {
        let set = if with_photos { "photos" } else { "noise" };
        println!("JPEGs: {set} {kb:.0} KB, noise {noise_kb:.0} KB on average");
        println!("decode+preprocess (1 thread, CPU): {decode_ms:.2} ms/image (decode {decode_only_ms:.2}, resize+crop+normalise {preprocess_ms:.2}); noise JPEGs {noise_decode_ms:.2} (decode {noise_decode_only_ms:.2})");
        println!(
            "ORT alone, pre-made tensors: {ort_ips:.2} images/s ({:.1} ms/image)",
            1e3 / ort_ips
        );
        println!(
            "end to end from JPEG ({set}): {e2e_ips:.2} images/s ({:.1} ms/image), ÷ ORT alone {:.3}",
            1e3 / e2e_ips,
            e2e_ips / ort_ips
        );
        println!(
            "end to end, noise JPEGs:     {noise_ips:.2} images/s ({:.1} ms/image), ÷ ORT alone {:.3}",
            1e3 / noise_ips,
            noise_ips / ort_ips
        );
        println!(
            "CPU per image (all threads): ORT alone {ort_cpu_ms:.1} ms, end to end {e2e_cpu_ms:.1} ms (ratio {:.3}), noise {noise_cpu_ms:.1} ms",
            ort_cpu_ms / e2e_cpu_ms
        );
        println!(
            "text prompts:                {pps:.2} prompts/s ({:.1} ms/prompt, CPU {text_cpu_ms:.1} ms/prompt)",
            1e3 / pps
        );
    }
}
