//! `similarity duplicates | unique | plot-distances`, `brain uniqueness`,
//! `dataset exact-duplicates`: the documented --json shapes, agreeing with each other.
use serde_json::Value;

use super::{images, npy, Cli};

#[test]
fn near_duplicate_commands() {
    let cli = Cli::new();
    let imgs = cli.home.path().join("imgs");
    images(&imgs, 12);
    // Two files with the same bytes: one exact-duplicate group.
    std::fs::copy(imgs.join("000.jpg"), imgs.join("copy.jpg")).unwrap();
    cli.create_from_dir("d", &imgs);
    let emb = cli.home.path().join("e.npy");
    npy(&emb, 13, 8, 3);
    cli.compute_with("d", "k", &emb);

    let d = cli.ok(&[
        "similarity",
        "duplicates",
        "d",
        "--brain-key",
        "k",
        "--fraction",
        "0.25",
        "--tag",
        "dup",
        "--json",
    ]);
    let dups: Vec<String> = serde_json::from_value(d["duplicate_ids"].clone()).unwrap();
    let unique: Vec<String> = serde_json::from_value(d["unique_ids"].clone()).unwrap();
    assert_eq!(dups.len(), 3, "25 % of 13, rounded");
    assert_eq!(dups.len() + unique.len(), 13);
    let thresh = d["thresh"].as_f64().unwrap();
    let mut mapped = 0;
    for (u, members) in d["neighbors"].as_object().unwrap() {
        assert!(unique.contains(u));
        for m in members.as_array().unwrap() {
            assert!(dups.contains(&m[0].as_str().unwrap().to_string()));
            assert!(m[1].as_f64().unwrap() <= thresh);
            mapped += 1;
        }
    }
    assert_eq!(mapped, 3, "every duplicate is in one group");
    // --tag tagged exactly the duplicates.
    let info = cli.ok(&["dataset", "head", "d", "-n", "13", "--json"]);
    let tagged: Vec<String> = info
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&Value::from("dup")))
        })
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tagged, dups);

    // The same thresh given explicitly gives the same answer, searched every way.
    let t = thresh.to_string();
    fn dups_at<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["similarity", "duplicates", "d", "--brain-key", "k"];
        args.extend_from_slice(extra);
        args
    }
    let again = cli.ok(&dups_at(&["--thresh", &t, "--json"]));
    assert_eq!(again["duplicate_ids"], d["duplicate_ids"]);
    assert_eq!(again["method"], "exact");
    // By cells: one cell is the exact answer, and the output says how it was searched.
    let one_cell = dups_at(&[
        "--thresh",
        &t,
        "--search",
        "clustered",
        "--cells",
        "1",
        "--json",
    ]);
    let one = cli.ok(&one_cell);
    assert_eq!(one["duplicate_ids"], d["duplicate_ids"]);
    assert_eq!(one["neighbors"], again["neighbors"]);
    assert_eq!(one["method"]["clustered"]["cells"], 1);
    assert_eq!(one["method"]["clustered"]["recall"], 1.0);
    let out = cli.run(&dups_at(&["--thresh", &t, "--search", "clustered"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("searched inside"),
        "{text}"
    );
    let err = cli.fails(&dups_at(&["--cells", "4"]));
    assert!(
        err.contains("--cells goes with --search clustered"),
        "{err}"
    );

    let u = cli.ok(&[
        "similarity",
        "unique",
        "d",
        "--brain-key",
        "k",
        "--count",
        "5",
        "--json",
    ]);
    assert_eq!(u["unique_ids"].as_array().unwrap().len(), 5);

    let svg = cli.home.path().join("d.svg");
    cli.ok(&[
        "similarity",
        "plot-distances",
        "d",
        "--brain-key",
        "k",
        "--out",
        svg.to_str().unwrap(),
        "--bins",
        "9",
        "--json",
    ]);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // The extension picks the format: a PNG that decodes, with a log axis and a threshold.
    let png = cli.home.path().join("d.png");
    cli.ok(&[
        "similarity",
        "plot-distances",
        "d",
        "--brain-key",
        "k",
        "--out",
        png.to_str().unwrap(),
        "--log",
        "--thresh",
        "0.5",
        "--json",
    ]);
    let img = image::open(&png).unwrap().to_rgb8();
    assert!(
        img.width() >= 400 && img.height() >= 300,
        "{:?}",
        img.dimensions()
    );
    // The threshold line's red is there.
    assert!(img.pixels().any(|p| p.0 == [229, 72, 77]));
    // Any other extension is refused, naming it and the two accepted, and nothing is written.
    let txt = cli.home.path().join("x.txt");
    let err = cli.fails(&[
        "similarity",
        "plot-distances",
        "d",
        "--brain-key",
        "k",
        "--out",
        txt.to_str().unwrap(),
    ]);
    assert!(
        err.contains("'.txt'") && err.contains(".png") && err.contains(".svg"),
        "{err}"
    );
    assert!(!txt.exists());

    let s = cli.ok(&["brain", "uniqueness", "d", "--brain-key", "k", "--json"]);
    assert_eq!(s["scored"], 13);
    let runs = cli.ok(&["brain", "list", "d", "--type", "uniqueness", "--json"]);
    assert_eq!(runs, serde_json::json!(["uniqueness"]));

    let x = cli.ok(&["dataset", "exact-duplicates", "d", "--json"]);
    let groups = x.as_object().unwrap();
    assert_eq!(groups.len(), 1, "{x}");
    assert_eq!(groups.values().next().unwrap().as_array().unwrap().len(), 1);

    let err = cli.fails(&[
        "similarity",
        "duplicates",
        "d",
        "--brain-key",
        "k",
        "--fraction",
        "2",
    ]);
    assert!(err.contains("fraction"), "{err}");
    let err = cli.fails(&["brain", "uniqueness", "d"]);
    assert!(err.contains("--brain-key"), "{err}");
}
