//! Resumable embedding (issue 12): `simile embed` killed with SIGKILL part-way keeps the batches
//! it committed and marks the field incomplete; `embed --skip-existing` embeds only the rest,
//! and the field then equals a clean run's.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{images, Cli};

const MODEL: &str = "clip-tiny-random";
/// With `--batch-size 1` an embed commits every 64 images.
const BATCH: usize = 64;
const IMAGES: usize = 10 * BATCH;
/// Killed at 90 %, like the 9,000 of 10,000.
const KILL_AT: usize = 9 * BATCH;

#[test]
fn an_embed_killed_part_way_resumes_with_skip_existing_and_equals_a_clean_run() {
    assert!(
        std::env::var("SIMILE_ORT_DYLIB_PATH").is_ok(),
        "SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`"
    );
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    images(&imgs, IMAGES);
    cli.create_from_dir("d", &imgs);
    let embed = [
        "embed",
        "d",
        "--model",
        MODEL,
        "--batch-size",
        "1",
        "--json",
    ];

    // Start an embed and kill it (SIGKILL) once 90 % is committed.
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simile"))
        .arg("--home")
        .arg(cli.home.path())
        .args(embed)
        .env(
            "SIMILE_BRAIN_CONFIG_PATH",
            cli.home.path().join("no-such-config.json"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let simile = simile::Simile::open_at(cli.home.path()).unwrap();
    let ds = simile.load_dataset("d").unwrap();
    let at_kill = loop {
        if let Some(p) = ds.embed_progress("embeddings").unwrap() {
            if p.done >= KILL_AT {
                child.kill().unwrap();
                break p;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the embed finished before a batch was seen: use more images"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.wait().unwrap();
    let killed_after = started.elapsed();

    let ids: Vec<String> = ds.view().ids().unwrap();
    let count = |field: &str| {
        ds.vectors(field, &ids)
            .unwrap()
            .iter()
            .filter(|v| v.is_some())
            .count()
    };
    // What the record says after the kill (the kill may land after one more batch).
    let after = ds
        .embed_progress("embeddings")
        .unwrap()
        .expect("incomplete");
    assert!(
        after.done >= at_kill.done && after.done < IMAGES,
        "{after:?}"
    );
    assert_eq!(after.total, IMAGES);
    let committed = count("embeddings");
    assert!(
        committed >= after.done && committed <= after.done + BATCH,
        "{committed} vectors vs {after:?}"
    );

    // The half-done field is refused as a source of embeddings, naming the field.
    let err = cli.fails(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "sim",
        "--embeddings-field",
        "embeddings",
    ]);
    assert!(
        err.contains("'embeddings'")
            && err.contains("incomplete")
            && err.contains("--skip-existing"),
        "{err}"
    );

    // The rerun embeds only what the killed run had not committed.
    let mut resume = embed.to_vec();
    resume.push("--skip-existing");
    let t = Instant::now();
    let out = cli.ok(&resume);
    let resumed_in = t.elapsed();
    assert_eq!(out["computed"], Value::from(IMAGES - after.done), "{out}");
    assert_eq!(out["embedded"], IMAGES);
    assert_eq!(ds.embed_progress("embeddings").unwrap(), None);

    // The result equals a clean run's.
    let t = Instant::now();
    let clean = cli.ok(&[
        "embed",
        "d",
        "--model",
        MODEL,
        "--field",
        "clean",
        "--batch-size",
        "1",
        "--json",
    ]);
    let clean_in = t.elapsed();
    assert_eq!(clean["computed"], IMAGES);
    let resumed = ds.vectors("embeddings", &ids).unwrap();
    let fresh = ds.vectors("clean", &ids).unwrap();
    for (a, b) in resumed.iter().zip(&fresh) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5));
    }
    cli.ok(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "sim",
        "--embeddings-field",
        "embeddings",
        "--json",
    ]);
    eprintln!(
        "resume: {IMAGES} images; killed after {killed_after:?} with {} recorded done ({committed} vectors committed); \
         the rerun embedded {} in {resumed_in:?}; a clean run embeds {IMAGES} in {clean_in:?}",
        after.done,
        IMAGES - after.done
    );
}
