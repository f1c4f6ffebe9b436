//! Media routes: only samples' own image files, by id; thumbnails cached and re-made when the
//! file changes; lying files are errors; foreign hosts refused.
use axum::body::Body;
use axum::http::Request;
use simile::NewSample;

use crate::common::{fixture, get, send};

#[tokio::test]
async fn media_and_thumbnails_of_samples() {
    let (home, simile, ids) = fixture(4);
    let app = simile_app::router(simile.clone());
    let r = get(&app, &format!("/media/{}?dataset=d", ids[0])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "image/png");
    let path = simile
        .load_dataset("d")
        .unwrap()
        .sample(&ids[0])
        .unwrap()
        .filepath()
        .to_path_buf();
    assert_eq!(r.body, std::fs::read(&path).unwrap());
    // Without ?dataset the id is looked up in every dataset.
    assert_eq!(get(&app, &format!("/media/{}", ids[1])).await.status, 200);

    let t = get(&app, &format!("/thumb/{}?dataset=d", ids[0])).await;
    assert_eq!(t.status, 200);
    assert_eq!(t.headers["content-type"], "image/jpeg");
    let img = image::load_from_memory(&t.body).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (64, 48),
        "small images are not enlarged"
    );
    let etag = t.headers["etag"].to_str().unwrap().to_string();
    let cached: Vec<_> = walk(&home.path().join("app-cache"));
    assert_eq!(cached.len(), 1, "one thumbnail on disk: {cached:?}");

    // The browser's copy is still good: 304.
    let r = send(
        &app,
        Request::get(format!("/thumb/{}?dataset=d", ids[0]))
            .header("if-none-match", &etag)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 304);

    // A changed file is re-made (new key).
    let big = image::RgbImage::from_fn(1000, 500, |x, _| image::Rgb([(x % 256) as u8, 0, 0]));
    big.save(&path).unwrap();
    let t2 = get(&app, &format!("/thumb/{}?dataset=d", ids[0])).await;
    assert_ne!(t2.headers["etag"].to_str().unwrap(), etag);
    let img = image::load_from_memory(&t2.body).unwrap();
    assert_eq!((img.width(), img.height()), (320, 160));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn no_route_serves_a_file_that_is_not_a_sample_image() {
    let (home, simile, ids) = fixture(2);
    let ds = simile.load_dataset("d").unwrap();
    // A sample whose "image" is a text file, one that is a symlink out of its folder, one that
    // is missing, one whose PNG header claims 100000 × 100000 pixels.
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0").unwrap();
    let inner = home.path().join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    let outside_png = home.path().join("outside.png");
    std::fs::copy(ds.sample(&ids[0]).unwrap().filepath(), &outside_png).unwrap();
    let link = inner.join("link.png");
    std::os::unix::fs::symlink(&outside_png, &link).unwrap();
    let ok_link = home.path().join("imgs").join("ok_link.png");
    std::os::unix::fs::symlink(ds.sample(&ids[1]).unwrap().filepath(), &ok_link).unwrap();
    let liar = home.path().join("liar.png");
    let mut png = std::fs::read(ds.sample(&ids[0]).unwrap().filepath()).unwrap();
    png[16..24].copy_from_slice(&[0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]); // IHDR width, height
    std::fs::write(&liar, &png).unwrap();
    let bad = ds
        .add_samples(vec![
            NewSample::new(&secret),
            NewSample::new(&link),
            NewSample::new(home.path().join("missing.png")),
            NewSample::new(&liar),
            NewSample::new(&ok_link),
        ])
        .unwrap();
    let app = simile_app::router(simile);
    for id in &bad[..3] {
        for route in ["media", "thumb"] {
            let r = get(&app, &format!("/{route}/{id}?dataset=d")).await;
            assert_eq!(r.status, 404, "{route} {id}");
            assert_eq!(r.error_kind(), "unknown_media");
        }
    }
    // A symlink that stays in its folder is fine.
    assert_eq!(
        get(&app, &format!("/media/{}?dataset=d", bad[4]))
            .await
            .status,
        200
    );
    // The liar is served as bytes, but its thumbnail is a typed error, not an abort.
    let r = get(&app, &format!("/thumb/{}?dataset=d", bad[3])).await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (422, "bad_image")
    );
    // Paths never work, whatever their spelling.
    for uri in [
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2Fetc%2Fpasswd",
        "/media/../../etc/passwd",
        "/thumb/..",
        "/media/0123456789abcdef01234567",
        "/media/0123456789abcdef01234567?dataset=nope",
        "/crop/0123456789abcdef01234567/0123456789abcdef01234567?dataset=d&field=x",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, 404, "{uri}");
    }
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_a_loopback_server() {
    let (_home, simile, _ids) = fixture(1);
    let app = simile_app::router(simile);
    let r = send(
        &app,
        Request::get("/api/datasets")
            .header("host", "attacker.example:5151")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.error_kind().as_str()),
        (403, "forbidden_host")
    );
    assert_eq!(get(&app, "/api/datasets").await.status, 200);
    assert_eq!(
        r.headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff")
    );
}
