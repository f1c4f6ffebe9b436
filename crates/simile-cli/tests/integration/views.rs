//! View options (`--match`, `--tag`, `--filter-labels`, `--take/--seed`, `--skip`, `--limit`,
//! `--view FILE.json`) on `similarity sort|compute`, `dataset head|export`.
use serde_json::{json, Value};
use simile::{Query, Simile, SortOptions};

use super::{npy, Cli};

fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Tags some samples `pick` through the library (the CLI has no tagging command).
fn tag(cli: &Cli, ids: &[&String]) {
    let simile = Simile::open_at(cli.home.path()).unwrap();
    let ds = simile.load_dataset("d").unwrap();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ds.tag_samples(&ids, &["pick".to_string()]).unwrap();
}

#[test]
fn sort_within_a_tag_subset_is_the_facades_sort_of_that_view() {
    let cli = Cli::new();
    let ids = cli.indexed(12);
    let picked = [&ids[1], &ids[4], &ids[7], &ids[9], &ids[10]];
    tag(&cli, &picked);
    let sorted = cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "--tag",
        "pick",
        "--json",
    ]);
    let got = ids_of(&sorted);
    assert_eq!(got.len(), picked.len(), "only the tagged samples: {got:?}");
    assert!(got.iter().all(|g| picked.contains(&g)), "{got:?}");
    // The facade's order for the same view (the query id lies outside it).
    let simile = Simile::open_at(cli.home.path()).unwrap();
    let ds = simile.load_dataset("d").unwrap();
    let want = ds
        .view()
        .match_tags(&["pick".to_string()])
        .sort_by_similarity(Query::id(&ids[0]), SortOptions::new().brain_key("sim"))
        .unwrap()
        .ids()
        .unwrap();
    assert_eq!(got, want);
    // And the whole sort restricted to the tag keeps its order.
    let all = ids_of(&cli.ok(&[
        "similarity",
        "sort",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[0],
        "--json",
    ]));
    let filtered: Vec<String> = all.into_iter().filter(|i| picked.contains(&i)).collect();
    assert_eq!(got, filtered);
}

#[test]
fn a_view_file_equals_the_same_flags() {
    let cli = Cli::new();
    let ids = cli.indexed(12);
    tag(
        &cli,
        &[&ids[0], &ids[2], &ids[3], &ids[5], &ids[8], &ids[11]],
    );
    let file = cli.file("view.json");
    std::fs::write(
        &file,
        json!([{"match_tags": ["pick"]}, {"take": {"n": 4, "seed": 5}}, {"skip": 1}]).to_string(),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let flags = ["--tag", "pick", "--take", "4", "--seed", "5", "--skip", "1"];
    let head = |extra: &[&str]| {
        let mut a = vec!["dataset", "head", "d", "-n", "100", "--json"];
        a.extend_from_slice(extra);
        ids_of(&cli.ok(&a))
    };
    let by_file = head(&["--view", file]);
    assert_eq!(by_file.len(), 3, "take 4, skip 1");
    assert_eq!(by_file, head(&flags));
    assert_ne!(
        head(&["--tag", "pick", "--take", "4", "--seed", "6"]),
        head(&["--tag", "pick", "--take", "4", "--seed", "5"]),
        "another seed, another subset"
    );
    assert_eq!(
        head(&["--limit", "2", "--skip", "3"]),
        ids[3..5].to_vec(),
        "skip then limit"
    );
    let sort = |extra: &[&str]| {
        let mut a = vec![
            "similarity",
            "sort",
            "d",
            "--brain-key",
            "sim",
            "--id",
            &ids[1],
            "--json",
        ];
        a.extend_from_slice(extra);
        ids_of(&cli.ok(&a))
    };
    let sorted = sort(&["--view", file]);
    assert_eq!(sorted, sort(&flags));
    let mut subset = by_file.clone();
    subset.sort();
    let mut s = sorted.clone();
    s.sort();
    assert_eq!(s, subset, "the sort ranks exactly the view's samples");
    // An index built on the view holds only its samples; an export writes only them.
    let emb = cli.file("sub.npy");
    npy(&emb, 3, 8, 2);
    let built = cli.ok(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "sub",
        "--embeddings",
        emb.to_str().unwrap(),
        "--view",
        file,
        "--json",
    ]);
    assert_eq!(built["total_index_size"], 3);
    let out = cli.file("export");
    let exported = cli.ok(&[
        "dataset",
        "export",
        "d",
        "--format",
        "fiftyone",
        "--out",
        out.to_str().unwrap(),
        "--tag",
        "pick",
        "--json",
    ]);
    assert_eq!(exported["exported"], 6);
    // Embedding a view embeds only its samples.
    let embedded = cli.ok(&[
        "embed",
        "d",
        "--model",
        "clip-tiny-random",
        "--field",
        "tiny",
        "--tag",
        "pick",
        "--json",
    ]);
    assert_eq!(
        (embedded["embedded"].as_u64(), embedded["samples"].as_u64()),
        (Some(6), Some(6)),
        "{embedded}"
    );
    // An index of the field over the whole dataset holds exactly the tagged samples.
    let built = cli.ok(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        "t",
        "--embeddings-field",
        "tiny",
        "--json",
    ]);
    assert_eq!(built["total_index_size"], 6);
    let got = cli.ok(&["similarity", "get", "d", "--brain-key", "t", "--json"]);
    let mut got: Vec<String> = serde_json::from_value(got["ids"].clone()).unwrap();
    got.sort();
    let mut want = ids_of(&cli.ok(&[
        "dataset", "head", "d", "-n", "100", "--tag", "pick", "--json",
    ]));
    want.sort();
    assert_eq!(got, want, "the vectors are on the tagged samples only");
}

#[test]
fn match_expressions_select_by_field_value() {
    let cli = Cli::new();
    cli.indexed(10);
    cli.ok(&["brain", "uniqueness", "d", "--brain-key", "sim", "--json"]);
    let all = cli.ok(&["dataset", "head", "d", "-n", "100", "--json"]);
    let score = |s: &Value| s["uniqueness"].as_f64().unwrap();
    let all = all.as_array().unwrap();
    let mut scores: Vec<f64> = all.iter().map(score).collect();
    scores.sort_by(f64::total_cmp);
    // Halfway between two scores: no value sits on the bound.
    let cut = (scores[4] + scores[5]) / 2.0;
    assert!(scores[4] < scores[5], "distinct scores: {scores:?}");
    let above = cli.ok(&[
        "dataset",
        "head",
        "d",
        "-n",
        "100",
        "--match",
        &format!("uniqueness>={cut}"),
        "--json",
    ]);
    let above = above.as_array().unwrap();
    assert_eq!(above.len(), scores.iter().filter(|x| **x >= cut).count());
    assert!(above.iter().all(|s| score(s) >= cut));
    // Several --match are all required; a JSON filter is the same filter.
    let both = cli.ok(&[
        "dataset",
        "head",
        "d",
        "-n",
        "100",
        "--match",
        "uniqueness>=0",
        "--match",
        &format!("uniqueness<{cut}"),
        "--json",
    ]);
    let json_filter = cli.ok(&[
        "dataset",
        "head",
        "d",
        "-n",
        "100",
        "--match",
        &json!({"lt": ["uniqueness", cut]}).to_string(),
        "--json",
    ]);
    assert_eq!(both, json_filter);
    assert_eq!(both.as_array().unwrap().len() + above.len(), all.len());
    let missing = cli.ok(&["dataset", "head", "d", "--match", "!uniqueness", "--json"]);
    assert_eq!(missing, json!([]));
}

#[test]
fn bad_view_options_are_errors_naming_the_flag() {
    let cli = Cli::new();
    cli.indexed(4);
    let sort = |extra: &[&str]| {
        let mut a = vec![
            "similarity",
            "sort",
            "d",
            "--brain-key",
            "sim",
            "--vector",
            "/nonexistent.npy",
        ];
        a.extend_from_slice(extra);
        cli.fails(&a)
    };
    let err = sort(&["--match", "uniqueness>lots"]);
    assert!(
        err.contains("--match 'uniqueness>lots'") && err.contains("needs a number"),
        "{err}"
    );
    let err = sort(&["--match", "bad\"name=1"]);
    assert!(
        err.contains("--match") && err.contains("invalid field name"),
        "{err}"
    );
    let err = sort(&["--filter-labels", "ground_truth"]);
    assert!(err.contains("--filter-labels 'ground_truth'"), "{err}");
    let bad = cli.file("bad.json");
    std::fs::write(&bad, r#"{"limit": 3}"#).unwrap();
    let err = sort(&["--view", bad.to_str().unwrap()]);
    assert!(
        err.contains("--view") && err.contains("JSON array"),
        "{err}"
    );
    let err = cli.fails(&["dataset", "head", "d", "--seed", "3"]);
    assert!(err.contains("--take"), "--seed needs --take: {err}");
    let err = cli.fails(&["dataset", "export", "d", "--format", "csv", "--out", "x"]);
    assert!(err.contains("coco") && err.contains("fiftyone"), "{err}");
}
