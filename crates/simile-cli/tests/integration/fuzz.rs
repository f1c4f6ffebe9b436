//! Fuzz harness (`simile-fuzz`): ids files as `simile similarity add --ids-file` reads them,
//! mutated from a valid one (bytes flipped, lines cut, spliced and repeated, invalid UTF-8).
//! The property: exit 0 or 1 with a message (never a panic or an abort), and a refused add
//! changes nothing. Short pass by default (each case is two processes); `SIMILE_FUZZ_SECONDS=N`
//! runs long (`cargo xtask fuzz`).
use std::cell::Cell;

use simile_fuzz::proptest::prelude::*;
use simile_fuzz::{bytes_from, check};

use crate::{npy, Cli};

#[test]
fn mutated_ids_files_are_added_or_refused_never_a_crash() {
    let cli = Cli::new();
    let ids = cli.indexed(6);
    let emb = cli.file("rows.npy");
    npy(&emb, 3, 8, 9);
    let file = cli.file("ids.txt");
    let seed = format!("{}\n{}\r\n  {}\n\n", ids[0], ids[4], ids[2]).into_bytes();
    let added = Cell::new(0);
    check("cli ids files", 16, bytes_from(seed, 4), |b| {
        std::fs::write(&file, &b.0).unwrap();
        let out = cli.run(&[
            "similarity",
            "add",
            "d",
            "--brain-key",
            "sim",
            "--embeddings",
            emb.to_str().unwrap(),
            "--ids-file",
            file.to_str().unwrap(),
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        prop_assert!(
            matches!(out.status.code(), Some(0 | 1)) && !stderr.contains("panicked"),
            "{:?}: {}",
            out.status,
            stderr
        );
        if out.status.success() {
            added.set(added.get() + 1);
        } else {
            prop_assert!(!stderr.trim().is_empty(), "a refusal says why");
        }
        // Every id given was a sample already indexed, or the add was refused: still 6.
        let size = cli.ok(&["similarity", "size", "d", "--brain-key", "sim", "--json"]);
        prop_assert_eq!(&size["total_index_size"], 6);
        Ok(())
    });
    assert!(added.get() > 0, "the valid file is added");
}
