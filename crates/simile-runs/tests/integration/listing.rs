use serde_json::json;
use simile_runs::{RunFilter, RunRecord, RunRegistry};

use crate::{obj, open};

#[test]
fn list_filters_by_type_method_and_config_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join("db.sqlite"));
    let runs = [
        (
            "zeta",
            "sklearn",
            json!({"patches_field": null, "supports_prompts": false}),
        ),
        (
            "alpha",
            "milvus",
            json!({"patches_field": "ground_truth", "supports_prompts": true}),
        ),
        ("Beta", "sklearn", json!({"patches_field": "ground_truth"})),
        ("émile", "milvus", json!({"supports_prompts": true})),
        ("_x", "sklearn", json!({})),
    ];
    for (k, m, c) in runs {
        RunRegistry::register(&conn, 1, &RunRecord::new(k, m, obj(c))).unwrap();
    }
    let mut viz = RunRecord::new("viz", "umap", Default::default());
    viz.run_type = "visualization".into();
    RunRegistry::register(&conn, 1, &viz).unwrap();

    let list = |f: RunFilter| RunRegistry::list(&conn, 1, &f).unwrap();
    // code-point order, like Python's sorted()
    assert_eq!(
        list(RunFilter::new()),
        ["Beta", "_x", "alpha", "viz", "zeta", "émile"]
    );
    assert_eq!(
        list(RunFilter::similarity()),
        ["Beta", "_x", "alpha", "zeta", "émile"]
    );
    assert_eq!(list(RunFilter::new().run_type("visualization")), ["viz"]);
    assert_eq!(list(RunFilter::new().method("milvus")), ["alpha", "émile"]);
    assert_eq!(
        list(RunFilter::similarity().patches_field("ground_truth")),
        ["Beta", "alpha"]
    );
    assert_eq!(
        list(RunFilter::new().supports_prompts(true)),
        ["alpha", "émile"]
    );
    assert_eq!(
        list(RunFilter::similarity().supports_prompts(false)),
        ["Beta", "_x", "zeta"]
    );
    assert_eq!(
        list(
            RunFilter::new()
                .method("milvus")
                .patches_field("ground_truth")
        ),
        ["alpha"]
    );
    assert!(list(RunFilter::new().method("pinecone")).is_empty());

    let recs =
        RunRegistry::list_records(&conn, 1, &RunFilter::new().supports_prompts(true)).unwrap();
    let keys: Vec<_> = recs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["alpha", "émile"]);
}
