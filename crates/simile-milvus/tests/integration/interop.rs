//! A collection with FiftyOne's schema, created directly through the SDK (as FiftyOne's
//! pymilvus backend does), is opened by `collection_name` and queried correctly.
use std::collections::HashMap;

use serde_json::{json, Value};
use simile_index::conformance::{random_vectors, reference_knn};
use simile_index::{BackendFactory, Embeddings, Error, KnnQuery, Metric};
use simile_milvus::milvus::v2::prelude::*;
use simile_milvus::MilvusFactory;

use crate::common::{milvus, params, server};

const DIM: usize = 8;
const N: usize = 60;

fn sdk_client(rt: &tokio::runtime::Runtime) -> ClientV2 {
    let (uri, user, password) = server();
    let mut cfg = ConnectConfig::new()
        .uri(uri)
        .telemetry(TelemetryConfig::new().enabled(false));
    if let (Some(u), Some(p)) = (user, password) {
        cfg = cfg.username_password(&u, &p);
    }
    rt.block_on(ClientV2::new(&cfg)).unwrap()
}

/// Creates `name` like fiftyone-brain's Milvus backend: pk VARCHAR(64000) primary, vector, sample_id
/// VARCHAR(64000), HNSW (M=8, efConstruction=64) with IP, loaded; rows are patches (label ids).
fn create_like_fiftyone(
    rt: &tokio::runtime::Runtime,
    client: &ClientV2,
    name: &str,
    batch: &Embeddings,
) {
    let schema = CollectionSchema::new()
        .enable_dynamic_field(false)
        .add_field(
            FieldSchema::new()
                .name("pk")
                .data_type(DataType::VarChar)
                .primary_key(true)
                .auto_id(false)
                .max_length(64000),
        )
        .add_field(
            FieldSchema::new()
                .name("vector")
                .data_type(DataType::FloatVector)
                .dimension(DIM as u32),
        )
        .add_field(
            FieldSchema::new()
                .name("sample_id")
                .data_type(DataType::VarChar)
                .max_length(64000),
        );
    let create = CreateCollectionRequest::builder()
        .collection_name(name)
        .schema(schema)
        .build()
        .unwrap();
    rt.block_on(client.create_collection(create)).unwrap();
    let index = IndexParam::new()
        .field_name("vector")
        .index_type(IndexType::Hnsw)
        .metric_type(MetricType::Ip)
        .extra_params(HashMap::from([
            ("M".to_string(), "8".to_string()),
            ("efConstruction".to_string(), "64".to_string()),
        ]));
    let req = CreateIndexRequest::builder()
        .collection_name(name)
        .index_param(index)
        .build()
        .unwrap();
    rt.block_on(client.create_index(req)).unwrap();
    let insert = InsertRequest::builder()
        .collection_name(name)
        .columns(vec![
            FieldData::VarChar {
                name: "pk".into(),
                values: batch.keys().to_vec(),
            },
            FieldData::FloatVector {
                name: "vector".into(),
                values: (0..batch.len()).map(|i| batch.row(i).to_vec()).collect(),
            },
            FieldData::VarChar {
                name: "sample_id".into(),
                values: batch.sample_ids().to_vec(),
            },
        ])
        .build()
        .unwrap();
    rt.block_on(client.insert(insert)).unwrap();
    let flush = FlushRequest::builder()
        .collection_names([name.to_string()])
        .build()
        .unwrap();
    rt.block_on(client.flush(flush)).unwrap();
    let load = LoadCollectionRequest::builder()
        .collection_name(name)
        .sync(true)
        .timeout_ms(300_000)
        .build()
        .unwrap();
    rt.block_on(client.load_collection(load)).unwrap();
}

#[test]
fn opens_a_fiftyone_collection_made_through_the_sdk() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = sdk_client(&rt);
    let name = format!("fiftyone_interop_{}", std::process::id());
    let keys: Vec<String> = (0..N).map(|i| format!("{:024x}", 0xabc000 + i)).collect();
    let samples: Vec<String> = (0..N)
        .map(|i| format!("{:024x}", 0xdef000 + i / 3))
        .collect();
    let batch = Embeddings::new(
        DIM,
        random_vectors(N, DIM, 5),
        keys.clone(),
        samples.clone(),
    )
    .unwrap();
    create_like_fiftyone(&rt, &client, &name, &batch);

    // A metric other than the collection's is a typed error.
    let mut wrong = params(json!({"metric": "euclidean"}));
    wrong
        .params
        .insert("collection_name".into(), Value::String(name.clone()));
    assert!(
        matches!(MilvusFactory.open(&wrong), Err(Error::InvalidParam { param, .. }) if param == "metric")
    );

    let mut p = params(json!({}));
    p.params
        .insert("collection_name".into(), Value::String(name.clone()));
    p.patches = true;
    let b = MilvusFactory.open(&p).unwrap();
    assert_eq!(b.dim().unwrap(), Some(DIM), "dim read from the collection");
    assert!(
        !b.created_storage(),
        "an adopted collection is not this handle's to drop on failure"
    );
    assert_eq!(
        b.metric(),
        Metric::DotProduct,
        "metric read from the collection's index"
    );
    assert_eq!(milvus(b.as_ref()).collection_name(), name);
    assert_eq!(b.size().unwrap(), N);

    let q = random_vectors(1, DIM, 77);
    let hits = b.knn(&KnnQuery::nearest(&q, 5)).unwrap();
    let reference = reference_knn(&batch, Metric::DotProduct, &q, false);
    let want: Vec<&str> = reference.iter().take(5).map(|r| r.0.as_str()).collect();
    assert_eq!(
        hits.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
        want
    );
    for h in &hits {
        let i = keys.iter().position(|k| *k == h.key).unwrap();
        assert_eq!(
            h.sample_id, samples[i],
            "sample_id field returned with each hit"
        );
    }
    let got = b.get(&[keys[4].clone(), keys[1].clone()]).unwrap();
    assert_eq!(got.keys(), &[keys[4].clone(), keys[1].clone()]);
    assert_eq!(got.row(0), batch.row(4));
    let by_sample = b.get_by_sample_ids(&[samples[9].clone()]).unwrap();
    assert_eq!(by_sample.keys(), &keys[9..12]);

    // Writing through simile keeps the collection readable by the schema FiftyOne expects.
    let extra = Embeddings::new(
        DIM,
        random_vectors(1, DIM, 9),
        vec!["label_new".into()],
        vec!["sample_new".into()],
    )
    .unwrap();
    b.upsert(&extra).unwrap();
    assert_eq!(b.size().unwrap(), N + 1);
    let wrong_dim =
        Embeddings::for_samples(DIM + 1, random_vectors(1, DIM + 1, 1), vec!["x".into()]).unwrap();
    assert!(matches!(
        b.upsert(&wrong_dim),
        Err(Error::DimensionMismatch { expected: DIM, .. })
    ));

    b.cleanup().unwrap();
    let has = HasCollectionRequest::builder()
        .collection_name(name.as_str())
        .build()
        .unwrap();
    assert!(
        !rt.block_on(client.has_collection(has)).unwrap().exists(),
        "cleanup() drops the collection"
    );
}
