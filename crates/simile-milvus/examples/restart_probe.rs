#![allow(clippy::unwrap_used, clippy::print_stdout)]
use simile_index::{BackendFactory, BackendParams, Embeddings, KnnQuery};
fn main() {
    let mut p = serde_json::Map::new();
    p.insert("uri".into(), "http://127.0.0.1:19530".into());
    p.insert("user".into(), "root".into());
    p.insert("password".into(), "Milvus".into());
    let bp = BackendParams {
        params: p,
        storage_dir: "/x".into(),
        dataset_name: "restart".into(),
        brain_key: None,
        patches: false,
    };
    let b = simile_milvus::MilvusFactory.create(&bp).unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let data: Vec<f32> = (0..400).map(|i| (i as f32 * 0.37).sin()).collect();
    b.upsert(&Embeddings::for_samples(4, data.clone(), keys).unwrap())
        .unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..90 {
        let t = std::time::Instant::now();
        let s = b.size();
        let k = b.knn(&KnnQuery::nearest(&data[..4], 3));
        println!(
            "{:5.1}s size {:?} knn {:?} ({:.1}s)",
            t0.elapsed().as_secs_f64(),
            s.map_err(|e| e.to_string()),
            k.map(|h| h.len()).map_err(|e| e.to_string()),
            t.elapsed().as_secs_f64()
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    b.cleanup().unwrap();
}
