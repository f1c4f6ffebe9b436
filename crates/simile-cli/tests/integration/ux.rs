//! The CLI as a new user meets it: the README's `--id ID...` form, help on every argument.
use super::{npy, Cli};

#[test]
fn several_ids_after_one_flag_equal_repeated_flags() {
    let cli = Cli::new();
    let ids = cli.indexed(6);
    let (a, b) = (ids[0].as_str(), ids[1].as_str());
    let one_flag = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        a,
        b,
        "-k",
        "4",
        "--json",
    ]);
    let repeated = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        a,
        "--id",
        b,
        "-k",
        "4",
        "--json",
    ]);
    assert_eq!(one_flag, repeated);
    assert_eq!(one_flag.as_array().unwrap().len(), 4);
}

#[test]
fn every_argument_has_a_help_line() {
    let cli = Cli::new();
    for cmd in [
        &["dataset", "create"][..],
        &["dataset", "export"],
        &["dataset", "head"],
        &["embed"],
        &["similarity", "compute"],
        &["similarity", "remove"],
        &["similarity", "duplicates"],
        &["brain", "list"],
        &["brain", "rename"],
        &["brain", "delete"],
        &["brain", "uniqueness"],
        &["app"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = cli.run(&args);
        assert!(out.status.success(), "{cmd:?} --help");
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        // clap prints an argument with no doc as its name alone on the line.
        for line in help.lines().filter(|l| l.starts_with("  ")) {
            let t = line.trim();
            let bare = (t.starts_with('<') && t.ends_with('>') && !t.contains(' '))
                || (t.starts_with("--")
                    && t.split_whitespace().count() <= 2
                    && !line.starts_with("          "));
            assert!(
                !bare || help.contains(&format!("{t}\n          ")),
                "{cmd:?}: '{t}' has no help line:\n{help}"
            );
        }
    }
}

#[test]
fn messages_count_in_english_and_brain_info_honours_json() {
    let cli = Cli::new();
    let ids = cli.indexed(3);
    let id = ids[0].as_str();
    let one = cli.home.path().join("one.npy");
    npy(&one, 1, 8, 9);
    // Re-adding a present id with --no-overwrite adds nothing and says so.
    let out = cli.run(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        one.to_str().unwrap(),
        "--id",
        id,
        "--no-overwrite",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("added 0 vectors, left 1 already present"),
        "{text}"
    );
    let j = cli.ok(&[
        "similarity",
        "add",
        "d",
        "--brain-key",
        "sim",
        "--embeddings",
        one.to_str().unwrap(),
        "--id",
        id,
        "--json",
    ]);
    assert_eq!(
        (j["added"].as_u64(), j["replaced"].as_u64()),
        (Some(0), Some(1))
    );
    let out = cli.run(&[
        "similarity",
        "remove",
        "d",
        "--brain-key",
        "sim",
        "--id",
        id,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("removed 1 vector;"), "{text}");
    // brain info: readable by default, JSON with --json.
    let out = cli.run(&["brain", "info", "d", "sim"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("sim (similarity run, sklearn backend"),
        "{text}"
    );
    assert_eq!(
        cli.ok(&["brain", "info", "d", "sim", "--json"])["key"],
        "sim"
    );
}
