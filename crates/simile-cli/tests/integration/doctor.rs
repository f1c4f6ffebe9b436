//! `simile doctor` and deletions that leave nothing behind (issue 12, "Orphans"), across
//! processes: what a killed compute leaves is listed and removed by `--repair` unless a live
//! process holds its lock; a corrupt index can be deleted with `brain delete --cleanup`;
//! `dataset delete` removes its indexes' storage.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::Value;

use super::Cli;

impl Cli {
    /// The run's storage directory (absolute).
    fn storage(&self, key: &str) -> PathBuf {
        let info = self.ok(&["brain", "info", "d", key, "--json"]);
        let rel = info["results"]["storage_dir"].as_str().unwrap().to_string();
        self.home.path().join(rel)
    }

    /// `simile doctor [args] --json`: the report and the exit code.
    fn doctor(&self, args: &[&str]) -> (Value, Option<i32>) {
        let mut all = vec!["doctor", "--json"];
        all.extend_from_slice(args);
        let out: Output = self.run(&all);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} / {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (report, out.status.code())
    }
}

/// What a compute killed mid-write leaves beside the run's storage: a directory with a partial
/// temp file and no run.
fn leftover(run_dir: &Path, name: &str) -> PathBuf {
    let dir = run_dir.with_file_name(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vectors.simv.tmp"), vec![0u8; 4096]).unwrap();
    dir
}

#[test]
fn doctor_lists_a_killed_computes_leftovers_and_repair_removes_them() {
    let cli = Cli::new();
    cli.indexed(6);
    let run_dir = cli.storage("sim");
    let dead = leftover(&run_dir, "00000000deadbeef");

    let (report, code) = cli.doctor(&[]);
    assert_eq!(code, Some(1), "problems found: {report}");
    let orphans = report["orphan_storage"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{report}");
    assert!(orphans[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/00000000deadbeef"));
    assert_eq!(orphans[0]["bytes"], 4096);
    assert_eq!(orphans[0]["removed"], false);
    assert!(dead.exists());
    let out = cli.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("00000000deadbeef  4.1 KB"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("simile doctor --repair"),
        "says how to fix it"
    );

    let (report, code) = cli.doctor(&["--repair"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["orphan_storage"][0]["removed"], true);
    assert!(!dead.exists());
    assert!(run_dir.join("vectors.simv").exists());
    let out = cli.run(&["doctor"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no problems found"));
}

/// `flock(1)` holding `dir`'s lock file in another process, as a running compute does.
fn hold_lock(dir: &Path) -> Child {
    let mut lock = dir.as_os_str().to_os_string();
    lock.push(".lock");
    // `-o`: `sleep` does not inherit the lock, so killing `flock` releases it.
    let mut child = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until it holds the lock (the file exists and `flock -n` cannot take it).
    for _ in 0..200 {
        let busy = Command::new("flock")
            .args(["-n", "-E", "75"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap();
        if busy.code() == Some(75) {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("flock never took the lock");
}

#[test]
fn repair_never_removes_storage_another_process_holds() {
    let cli = Cli::new();
    cli.indexed(6);
    let busy = leftover(&cli.storage("sim"), "00000000cafebabe");
    let mut holder = hold_lock(&busy);

    let (report, code) = cli.doctor(&["--repair"]);
    assert_eq!(code, Some(0), "in use is not a problem: {report}");
    assert_eq!(report["orphan_storage"][0]["in_use"], true, "{report}");
    assert_eq!(report["orphan_storage"][0]["removed"], false);
    assert!(busy.join("vectors.simv.tmp").exists());
    // A compute on the dataset leaves it alone too.
    let emb = cli.file("emb.npy");
    cli.compute_with("d", "again", &emb);
    assert!(busy.exists());

    // The holder dies (kill -9): its leftovers are provably orphaned now.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (report, code) = cli.doctor(&["--repair"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["orphan_storage"][0]["removed"], true, "{report}");
    assert!(!busy.exists());
}

/// Flips a byte in the middle of the index file.
fn corrupt(run_dir: &Path) {
    let file = run_dir.join("vectors.simv");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
}

#[test]
fn a_corrupt_index_is_reported_marked_and_deleted_with_brain_delete_cleanup() {
    let cli = Cli::new();
    cli.indexed(6);
    let run_dir = cli.storage("sim");
    corrupt(&run_dir);

    let (report, code) = cli.doctor(&["--repair"]);
    assert_eq!(code, Some(1), "a broken run is left for the user: {report}");
    let broken = &report["broken_runs"][0];
    assert_eq!(broken["key"], "sim");
    assert_eq!(broken["problem"], "storage_corrupt");
    assert_eq!(broken["marked"], true);
    assert_eq!(
        cli.ok(&["brain", "info", "d", "sim", "--json"])["state"],
        "failed"
    );

    let deleted = cli.ok(&["brain", "delete", "d", "sim", "--cleanup", "--json"]);
    assert_eq!(deleted["deleted"], "sim");
    assert!(!run_dir.exists(), "the corrupt file is gone with its run");
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!([])
    );
    let (report, code) = cli.doctor(&[]);
    assert_eq!(code, Some(0), "{report}");
}

#[test]
fn dataset_delete_removes_its_indexes_storage() {
    let cli = Cli::new();
    cli.indexed(6);
    let run_dir = cli.storage("sim");
    let dataset_dir = run_dir.parent().unwrap().to_path_buf();
    let deleted = cli.ok(&["dataset", "delete", "d", "--json"]);
    assert_eq!(deleted["deleted"], "d");
    assert_eq!(deleted["runs"], 1);
    assert_eq!(deleted["removed"].as_array().unwrap().len(), 1, "{deleted}");
    assert_eq!(deleted["kept"], serde_json::json!([]));
    assert!(!dataset_dir.exists(), "nothing left under indexes/");
    let (report, code) = cli.doctor(&[]);
    assert_eq!(code, Some(0), "{report}");
}

/// Makes a directory read-only for as long as it lives: a read-only bind mount over itself when
/// running as root (whom permission bits do not stop), the write bits removed otherwise.
struct ReadOnly {
    dir: PathBuf,
    mounted: bool,
}

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        let uid = Command::new("id").arg("-u").output().unwrap();
        let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let sh = |cmd: &str| {
            let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
            assert!(st.success(), "`{cmd}` failed");
        };
        let d = dir.display();
        if root {
            sh(&format!(
                "mount --bind '{d}' '{d}' && mount -o remount,ro,bind '{d}'"
            ));
        } else {
            sh(&format!("chmod -R a-w '{d}'"));
        }
        let ro = ReadOnly {
            dir: dir.to_path_buf(),
            mounted: root,
        };
        assert!(
            std::fs::write(dir.join("probe"), b"").is_err(),
            "{d} is read-only now"
        );
        ro
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let d = self.dir.display();
        let cmd = if self.mounted {
            format!("umount '{d}'")
        } else {
            format!("chmod -R u+w '{d}'")
        };
        let _ = Command::new("sh").arg("-c").arg(cmd).status();
    }
}

#[test]
fn a_read_only_home_serves_reads_and_names_itself_on_writes() {
    let cli = Cli::new();
    let ids = cli.indexed(6);
    let home = cli.home.path().display().to_string();
    let dead = leftover(&cli.storage("sim"), "00000000deadbeef");
    let ro = ReadOnly::new(cli.home.path());

    // `doctor` checks a read-only home (its locks are looked at, not created) and says that
    // it cannot repair it.
    let (report, code) = cli.doctor(&[]);
    assert_eq!(code, Some(1), "problems found: {report}");
    let orphans = report["orphan_storage"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{report}");
    assert_eq!(orphans[0]["in_use"], false, "{report}");
    assert!(report["broken_runs"].as_array().unwrap().is_empty());
    let err = cli.fails(&["doctor", "--repair"]);
    assert!(
        err.contains(&format!("the home {home} is read-only")),
        "{err}"
    );
    assert!(dead.exists());

    assert_eq!(
        cli.ok(&["dataset", "list", "--json"]),
        serde_json::json!(["d"])
    );
    let head = cli.ok(&["dataset", "head", "d", "-n", "2", "--json"]);
    assert_eq!(head.as_array().unwrap().len(), 2);
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!(["sim"])
    );
    let sorted = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(sorted[0]["id"], ids[0].as_str());
    assert_eq!(sorted.as_array().unwrap().len(), 3);

    let imgs = cli.file("imgs");
    let emb = cli.file("emb.npy");
    let writes: [&[&str]; 4] = [
        &[
            "dataset",
            "create",
            "e",
            "--from-dir",
            imgs.to_str().unwrap(),
        ],
        &[
            "similarity",
            "compute",
            "d",
            "--brain-key",
            "again",
            "--embeddings",
            emb.to_str().unwrap(),
        ],
        &["brain", "rename", "d", "sim", "other"],
        &["dataset", "delete", "d"],
    ];
    for args in writes {
        let err = cli.fails(args);
        assert!(
            err.contains(&format!("the home {home} is read-only")),
            "simile {args:?}: {err}"
        );
    }
    drop(ro);
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        serde_json::json!(["sim"]),
        "nothing changed"
    );
}
