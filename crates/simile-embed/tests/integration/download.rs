//! Model downloads against an HTTP server the test starts on 127.0.0.1: good file, resume after a
//! truncated transfer, wrong checksum, 404, and a whole model fetched into the cache.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use simile_embed::download::{download, DownloadSpec, Progress};
use simile_embed::manifest::{fetch_into, ModelManifest};
use simile_embed::EmbedError;

/// How the server answers one path.
#[derive(Clone)]
enum Route {
    /// The body, honouring `Range: bytes=N-`.
    File(Arc<Vec<u8>>),
    /// Announces the full length but sends only `cut` bytes on the first `times` requests.
    Truncated {
        body: Arc<Vec<u8>>,
        cut: usize,
        times: usize,
    },
}

struct Server {
    base: String,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(routes: HashMap<String, Route>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    let hits = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let routes = routes.clone();
            let seen = seen.clone();
            let hits = hits.clone();
            std::thread::spawn(move || handle(stream, &routes, &seen, &hits));
        }
    });
    Server { base, ranges }
}

fn handle(
    mut stream: TcpStream,
    routes: &HashMap<String, Route>,
    seen: &Mutex<Vec<Option<String>>>,
    hits: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h
            .strip_prefix("Range: ")
            .or_else(|| h.strip_prefix("range: "))
        {
            range = Some(v.trim().to_string());
        }
    }
    seen.lock().unwrap().push(range.clone());
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let (body, cut) = match routes.get(&path) {
        None => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
            return;
        }
        Some(Route::File(b)) => (b.clone(), None),
        Some(Route::Truncated { body, cut, times }) => {
            let n = hits.fetch_add(1, Ordering::SeqCst);
            (body.clone(), (n < *times).then_some(*cut))
        }
    };
    let rest = &body[start.min(body.len())..];
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
            rest.len(),
            start,
            body.len() - 1,
            body.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            rest.len()
        )
    };
    let _ = stream.write_all(head.as_bytes());
    let send = cut.map_or(rest.len(), |c| c.min(rest.len()));
    let _ = stream.write_all(&rest[..send]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn payload(n: usize) -> Arc<Vec<u8>> {
    Arc::new((0..n).map(|i| (i * 31 % 251) as u8).collect())
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn good_file_with_checksum_and_progress() {
    let body = payload(300_000);
    let server = serve(HashMap::from([(
        "/m.onnx".to_string(),
        Route::File(body.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.onnx");
    let last = Mutex::new(None);
    let cb = |p: &Progress<'_>| *last.lock().unwrap() = Some((p.downloaded, p.total));
    let url = format!("{}/m.onnx", server.base);
    let expected = sha(&body);
    download(
        &DownloadSpec {
            url: &url,
            dest: &dest,
            sha256: Some(&expected),
            size: Some(body.len() as u64),
        },
        Some(&cb),
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), *body);
    assert_eq!(*last.lock().unwrap(), Some((300_000, Some(300_000))));
    assert!(!dir.path().join("m.onnx.part").exists());
    // A second call finds the verified file and does not fetch again.
    let before = server.ranges.lock().unwrap().len();
    download(
        &DownloadSpec {
            url: &url,
            dest: &dest,
            sha256: Some(&expected),
            size: None,
        },
        None,
    )
    .unwrap();
    assert_eq!(server.ranges.lock().unwrap().len(), before);
}

#[test]
fn truncated_transfer_is_an_error_and_the_next_call_resumes() {
    let body = payload(200_000);
    let server = serve(HashMap::from([(
        "/t.onnx".to_string(),
        Route::Truncated {
            body: body.clone(),
            cut: 70_000,
            times: 1,
        },
    )]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("t.onnx");
    let url = format!("{}/t.onnx", server.base);
    let expected = sha(&body);
    let spec = DownloadSpec {
        url: &url,
        dest: &dest,
        sha256: Some(&expected),
        size: None,
    };
    let err = download(&spec, None).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Truncated {
                expected: 200_000,
                got: 70_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!dest.exists());
    assert_eq!(
        std::fs::metadata(dir.path().join("t.onnx.part"))
            .unwrap()
            .len(),
        70_000
    );

    download(&spec, None).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), *body);
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some("bytes=70000-".to_string())]);
}

#[test]
fn wrong_checksum_is_rejected_and_nothing_is_kept() {
    let body = payload(10_000);
    let server = serve(HashMap::from([("/w.onnx".to_string(), Route::File(body))]));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.onnx");
    let url = format!("{}/w.onnx", server.base);
    let wrong = "0".repeat(64);
    let err = download(
        &DownloadSpec {
            url: &url,
            dest: &dest,
            sha256: Some(&wrong),
            size: None,
        },
        None,
    )
    .unwrap_err();
    match err {
        EmbedError::ChecksumMismatch { expected, got, .. } => {
            assert_eq!(expected, wrong);
            assert_eq!(got.len(), 64);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dest.exists());
    assert!(!dir.path().join("w.onnx.part").exists());
}

#[test]
fn not_found_is_a_download_error() {
    let server = serve(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("x.onnx");
    let url = format!("{}/nope.onnx", server.base);
    let err = download(
        &DownloadSpec {
            url: &url,
            dest: &dest,
            sha256: None,
            size: None,
        },
        None,
    )
    .unwrap_err();
    match &err {
        EmbedError::Download { reason, .. } => assert!(reason.contains("404"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!dest.exists());
}

#[test]
fn a_whole_model_is_fetched_into_the_cache_and_loads() {
    let src = crate::assets().join("clip-tiny-random");
    let image = Arc::new(std::fs::read(src.join("image.onnx")).unwrap());
    let text = Arc::new(std::fs::read(src.join("text.onnx")).unwrap());
    let server = serve(HashMap::from([
        ("/tiny/image.onnx".to_string(), Route::File(image.clone())),
        ("/tiny/text.onnx".to_string(), Route::File(text)),
    ]));
    let mut m = ModelManifest::load(&src).unwrap();
    m.name = "tiny-downloaded".into();
    m.image.url = Some(format!("{}/tiny/image.onnx", server.base));
    m.text.as_mut().unwrap().url = Some(format!("{}/tiny/text.onnx", server.base));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("models").join("tiny-downloaded");
    fetch_into(&m, &cache, None).unwrap();
    let written = ModelManifest::load(&cache).unwrap();
    assert_eq!(written.image.sha256.as_deref(), Some(sha(&image).as_str()));
    assert!(Path::new(&cache.join("text.onnx")).is_file());

    let opts = simile_embed::ModelOptions {
        ort_dylib_path: Some(crate::ort_path()),
        models_dir: None,
        cache_dir: dir.path().to_path_buf(),
        batch_size: 4,
        threads: 1,
        offline: true,
    };
    let model = simile_embed::load_model(cache.to_str().unwrap(), &opts).unwrap();
    assert_eq!(model.name(), "tiny-downloaded");
    assert_eq!(
        model.embed_prompts(&["a cat".to_string()]).unwrap()[0].len(),
        64
    );
}
