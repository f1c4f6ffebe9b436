//! `dataset create --from-paths` and `dataset head` pages, through the binary: every page is the
//! same slice of the path list's order, at the start, the middle, the end and past it.
use serde_json::Value;

use crate::Cli;

fn filepaths(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["filepath"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn head_pages_are_slices_of_the_path_list_at_any_offset() {
    let cli = Cli::new();
    let dir = cli.home.path().join("imgs");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let n = 1300;
    let mut lines = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let f = dir.join(format!("{i:04}.jpg"));
        std::fs::write(&f, b"x").unwrap();
        if i == 7 {
            // A path through `..` is stored without it.
            lines.push(format!("{}/sub/../{i:04}.jpg", dir.display()));
        } else {
            lines.push(f.display().to_string());
        }
        want.push(f.display().to_string());
        if i == 500 {
            lines.push(format!("{}/missing.jpg", dir.display()));
        }
    }
    let list = cli.home.path().join("paths.txt");
    std::fs::write(&list, lines.join("\n")).unwrap();
    let created = cli.ok(&[
        "dataset",
        "create",
        "d",
        "--from-paths",
        list.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(created["samples"], n);
    assert_eq!(created["skipped"].as_array().unwrap().len(), 1);
    let info = cli.ok(&["dataset", "info", "d", "--json"]);
    assert_eq!(info["samples"], n);
    for (skip, limit) in [
        (0, 10),
        (0, 1),
        (649, 3),
        (1299, 5),
        (1290, 10),
        (1300, 4),
        (5000, 2),
    ] {
        let (s, l) = (skip.to_string(), limit.to_string());
        let page = cli.ok(&["dataset", "head", "d", "-n", &l, "--skip", &s, "--json"]);
        let exp: Vec<String> = want.iter().skip(skip).take(limit).cloned().collect();
        assert_eq!(filepaths(&page), exp, "skip {skip}, n {limit}");
    }
    // A window of a window: --skip then --limit, then head's own n.
    let page = cli.ok(&[
        "dataset", "head", "d", "-n", "4", "--skip", "1000", "--limit", "2", "--json",
    ]);
    assert_eq!(filepaths(&page), want[1000..1002]);
}
