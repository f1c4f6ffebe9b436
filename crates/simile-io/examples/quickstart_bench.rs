//! Times the quickstart generator: `cargo run --release -p simile-io --example quickstart_bench`.
//! With a directory argument, also leaves one generated set there to look at.
#![allow(clippy::print_stdout, clippy::unwrap_used)]
use std::time::Instant;

fn main() {
    if let Some(dir) = std::env::args().nth(1) {
        simile_io::quickstart::generate(std::path::Path::new(&dir), 51).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let t = Instant::now();
        let samples = simile_io::quickstart::generate(dir.path(), 51).unwrap();
        println!(
            "round {round}: {} images in {:.3} s",
            samples.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let t = Instant::now();
    let store = simile_dataset::Store::open(dir.path().join("home")).unwrap();
    simile_io::load_quickstart(&store, &dir.path().join("q")).unwrap();
    println!(
        "load_quickstart (create): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    simile_io::load_quickstart(&store, &dir.path().join("q")).unwrap();
    println!(
        "load_quickstart (reuse): {:.3} s",
        t.elapsed().as_secs_f64()
    );
}
