//! `similarity compute --embeddings F.npy` streams the file (issue 11): a file whose length
//! disagrees with its header, or with a NaN in a row, is refused with exit code 1, a message
//! naming the problem, and no run; a good file builds the same index as before.
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;
use serde_json::json;

use crate::Cli;

fn compute(cli: &Cli, key: &str, file: &std::path::Path) -> std::process::Output {
    cli.run(&[
        "similarity",
        "compute",
        "d",
        "--brain-key",
        key,
        "--embeddings",
        file.to_str().unwrap(),
        "--json",
    ])
}

#[test]
fn compute_streams_an_npy_and_refuses_one_that_lies_about_its_size() {
    let cli = Cli::new();
    let ids = cli.dataset(5);
    let rows = Array2::from_shape_fn((5, 4), |(r, c)| (r * 4 + c) as f32 + 1.0);
    let good = cli.file("good.npy");
    rows.write_npy(std::fs::File::create(&good).unwrap())
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let data_start = bytes.len() - 5 * 4 * 4;

    let cut = cli.file("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = compute(&cli, "cut", &cut);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.npy")
            && err.contains(&format!("should be {} bytes long", bytes.len()))
            && err.contains(&format!("is {} bytes", bytes.len() - 3))
            && err.contains(&format!("{data_start} bytes of header")),
        "{err}"
    );

    let mut nan = rows.clone();
    nan[[3, 1]] = f32::NAN;
    let nan_file = cli.file("nan.npy");
    nan.write_npy(std::fs::File::create(&nan_file).unwrap())
        .unwrap();
    let out = compute(&cli, "nan", &nan_file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&ids[3]),
        "the bad row's sample is named: {err}"
    );
    assert_eq!(
        cli.ok(&["brain", "list", "d", "--json"]),
        json!([]),
        "no run after a refused compute"
    );

    let built = cli.compute_with("d", "sim", &good);
    assert_eq!(built["total_index_size"], 5);
    let got = cli.file("got.npy");
    cli.ok(&[
        "similarity",
        "get",
        "d",
        "--brain-key",
        "sim",
        "--id",
        &ids[4],
        "--out",
        got.to_str().unwrap(),
        "--json",
    ]);
    let back: Array2<f32> = ndarray_npy::read_npy(&got).unwrap();
    assert_eq!(back.row(0), rows.row(4));
}
