//! Install: the binary finds the ONNX Runtime library that `cargo xtask models fetch-ort` put in
//! the simile home's `lib/`, with no variable exported.
use std::process::{Command, Output};

use super::Cli;

/// `simile --home <cli home> embed d --model clip-tiny-random` with `HOME=user_home` and none of
/// the variables that name a library or a home.
fn embed(cli: &Cli, user_home: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simile"))
        .arg("--home")
        .arg(cli.home.path())
        .args(["embed", "d", "--model", "clip-tiny-random", "--json"])
        .env("HOME", user_home)
        .env(
            "SIMILE_BRAIN_CONFIG_PATH",
            cli.home.path().join("no-such-config.json"),
        )
        .env_remove("SIMILE_ORT_DYLIB_PATH")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("SIMILE_HOME")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap()
}

#[test]
fn the_binary_finds_the_fetched_onnx_runtime_without_a_variable() {
    let fetched = std::env::var("SIMILE_ORT_DYLIB_PATH")
        .expect("SIMILE_ORT_DYLIB_PATH is not set: run the suite with `cargo xtask ci`");
    let cli = Cli::new();
    cli.dataset(3);
    // Nothing installed: nothing found.
    let bare = cli.file("bare-user");
    std::fs::create_dir_all(&bare).unwrap();
    let out = embed(&cli, &bare);
    assert!(!out.status.success(), "no library anywhere");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no ONNX Runtime library found")
            && err.contains("SIMILE_ORT_DYLIB_PATH")
            && err.contains("~/.simile/lib")
            && !err.contains("ort_dylib_path"),
        "in CLI terms: {err}"
    );
    // Where fetch-ort installs it: ~/.simile/lib.
    let user = cli.file("user");
    let lib = user.join(".simile/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink(&fetched, lib.join("libonnxruntime.so.1.31.1")).unwrap();
    let out = embed(&cli, &user);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["embedded"], 3);
    assert_eq!(j["dim"], 64);
}
