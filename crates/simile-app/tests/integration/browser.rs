//! The page in a real browser: Debian's chromium, driven over WebDriver (chromedriver) with
//! fantoccini, against the App served on a loopback socket over the quickstart dataset with the
//! committed tiny CLIP (RANDOM weights: mechanics, not semantics). Every grid the page shows is
//! compared with what the facade answers for the same query. Screenshots go to
//! `$SIMILE_TEST_SCREENSHOTS` (`cargo xtask ci`: `target/app-screenshots/`).
//!
//! Needs `SIMILE_TEST_CHROMEDRIVER` and `SIMILE_TEST_CHROMIUM` (set by `cargo xtask ci`, which
//! installs them) and `SIMILE_ORT_DYLIB_PATH`; a missing browser fails the test, never skips it.
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use simile::{Query, SimilarityOptions, Simile, SortOptions};

const MODEL: &str = "clip-tiny-random";

/// chromedriver, killed on drop.
struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_path(var: &str, default: &str) -> String {
    let p = std::env::var(var).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&p).exists(),
        "{var}: {p} does not exist. The App's browser tests need Debian's chromium and \
         chromium-driver: run them with `cargo xtask ci` (which installs them), or \
         `apt-get install --no-install-recommends chromium chromium-driver`"
    );
    p
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_browser(profile: &std::path::Path) -> (Driver, Client) {
    let driver_bin = env_path("SIMILE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = env_path("SIMILE_TEST_CHROMIUM", "/usr/bin/chromium");
    let port = free_port();
    let driver = Driver(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1440,960",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session in chromium");
    (driver, client)
}

/// The quickstart dataset with a CLIP sample index (`img_sim`) and a CLIP patch index of
/// `ground_truth` (`gt_sim`).
fn quickstart_home() -> (tempfile::TempDir, Simile) {
    let (home, simile) = simile_e2e::clip_session();
    let ds = simile.load_zoo_dataset("quickstart").unwrap();
    ds.compute_similarity(SimilarityOptions::new().brain_key("img_sim").model(MODEL))
        .unwrap();
    ds.compute_similarity(
        SimilarityOptions::new()
            .brain_key("gt_sim")
            .model(MODEL)
            .patches_field("ground_truth"),
    )
    .unwrap();
    (home, simile)
}

/// One page session: the browser, the App's base URL, where screenshots go.
struct Page {
    c: Client,
    base: String,
    shots: std::path::PathBuf,
}

/// A grid tile as the page shows it.
#[derive(Debug, Clone, PartialEq)]
struct Tile {
    sample_id: String,
    label_id: Option<String>,
    distance: Option<f32>,
}

impl Page {
    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.unwrap()
    }

    /// Marks the grid stale, runs `action`, then waits until the page says the grid is ready.
    async fn settle(&self) {
        let start = Instant::now();
        loop {
            let state = self
                .js("return document.querySelector('#grid')?.dataset.state || ''")
                .await;
            match state.as_str() {
                Some("ready") | Some("error") => return,
                _ => {}
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the grid never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn mark_stale(&self) {
        self.js("const g = document.querySelector('#grid'); if (g) g.dataset.state = 'stale';")
            .await;
    }

    async fn open(&self, query: &str) {
        self.c.goto(&format!("{}{query}", self.base)).await.unwrap();
        self.settle().await;
    }

    async fn click(&self, css: &str) {
        self.mark_stale().await;
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Clicks without waiting for the grid.
    async fn press(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn select(&self, css: &str, value: &str) {
        let e = self.c.find(Locator::Css(css)).await.unwrap();
        e.select_by_value(value).await.unwrap();
    }

    /// Clicks tile `i` with modifier keys held (a real mouse event in the page).
    async fn click_tile(&self, i: usize, ctrl: bool) {
        self.js(&format!(
            "const t = document.querySelectorAll('#grid .tile')[{i}];
             t.dispatchEvent(new MouseEvent('click', {{bubbles: true, cancelable: true, ctrlKey: {ctrl}, metaKey: {ctrl}}}));"
        ))
        .await;
    }

    async fn tiles(&self) -> Vec<Tile> {
        let v = self
            .js("return Array.from(document.querySelectorAll('#grid .tile')).map(t => [t.dataset.sampleId, t.dataset.labelId || null, t.dataset.distance || null])")
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| Tile {
                sample_id: t[0].as_str().unwrap().to_string(),
                label_id: t[1].as_str().map(str::to_string),
                distance: t[2].as_str().map(|d| d.parse().unwrap()),
            })
            .collect()
    }

    async fn text(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Saves a screenshot once the grid's images have loaded (or 10 s have passed).
    async fn shot(&self, name: &str) {
        let start = Instant::now();
        while self
            .js("return Array.from(document.querySelectorAll('img')).filter(i => i.offsetParent && i.getAttribute('src')).every(i => i.complete)")
            .await
            != Value::Bool(true)
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let png = self.c.screenshot().await.unwrap();
        std::fs::create_dir_all(&self.shots).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn url(&self) -> String {
        self.c.current_url().await.unwrap().to_string()
    }

    /// Opens the similarity panel (if closed) and picks a run.
    async fn open_sort_panel(&self, key: &str) {
        let open = self
            .js("return document.querySelector('#sort-panel').getAttribute('aria-hidden') === 'false'")
            .await;
        if open != Value::Bool(true) {
            self.press("#sort-button").await;
        }
        self.select("#sort-brain-key", key).await;
    }

    /// Sorts by the selection with run `key` and `k` results, and waits for the grid.
    async fn sort_selection(&self, key: &str, k: usize) {
        self.open_sort_panel(key).await;
        self.type_into("#sort-k", &k.to_string()).await;
        self.click("#sort-run").await;
        self.settle().await;
    }
}

fn assert_same_results(page: &[Tile], ids: &[String], distances: &[f32], what: &str) {
    let got: Vec<&str> = page.iter().map(|t| t.sample_id.as_str()).collect();
    let want: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(got, want, "{what}: the page's order is the facade's");
    for (t, d) in page.iter().zip(distances) {
        let got = t
            .distance
            .unwrap_or_else(|| panic!("{what}: tile without data-distance"));
        assert!(
            (got - d).abs() <= 1e-6 * d.abs().max(1.0),
            "{what}: distance {got} vs {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser() {
    let (home, simile) = quickstart_home();
    let ds = simile.load_dataset("quickstart").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(simile_app::serve(listener, simile.clone(), async {
        let _ = stop_rx.await;
    }));
    let profile = home.path().join("chromium-profile");
    let (_driver, c) = start_browser(&profile).await;
    let shots = std::env::var("SIMILE_TEST_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| home.path().join("screenshots"));
    let page = Page {
        c,
        base: format!("http://127.0.0.1:{}/", addr.port()),
        shots,
    };

    grid_shows_the_dataset(&page, &ds).await;
    click_then_sort_matches_the_facade(&page, &ds).await;
    several_selected_sort_by_their_mean(&page, &ds).await;
    text_prompt(&page, &ds).await;
    patches_grid_and_patch_query(&page, &ds).await;
    sample_view_and_find_similar(&page, &ds).await;
    tag_then_filter_by_tag(&page, &ds).await;
    duplicates_panel_and_uniqueness(&page, &ds).await;
    errors_are_shown_in_the_page(&page).await;

    page.c.close().await.unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

async fn grid_shows_the_dataset(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    let tiles = page.tiles().await;
    let want = ds.view().page(0, tiles.len().max(1)).unwrap();
    assert!(tiles.len() >= 20, "a full first page: {}", tiles.len());
    let want_ids: Vec<String> = want.samples.iter().map(|s| s.id().to_string()).collect();
    let got_ids: Vec<String> = tiles.iter().map(|t| t.sample_id.clone()).collect();
    assert_eq!(got_ids, want_ids, "tiles in dataset order");
    assert!(page.text("#total-count").await.contains("200"));
    // Thumbnails load (the browser decoded real JPEGs from /thumb).
    let start = Instant::now();
    loop {
        let loaded = page
            .js("return Array.from(document.querySelectorAll('#grid .tile img')).slice(0, 8).every(i => i.complete && i.naturalWidth > 0)")
            .await;
        if loaded == Value::Bool(true) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "thumbnails never loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Boxes are drawn for the ground truth.
    let boxes = page
        .js("return document.querySelectorAll('#grid .tile .box').length")
        .await;
    assert!(boxes.as_u64().unwrap() > 0, "detections drawn on the tiles");
    page.shot("grid").await;
}

async fn click_then_sort_matches_the_facade(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    let first = page.tiles().await[3].sample_id.clone();
    page.click_tile(3, false).await;
    assert!(page.text("#selection-count").await.starts_with('1'));
    page.sort_selection("img_sim", 25).await;
    let want = ds
        .sort_by_similarity(
            Query::id(&first),
            SortOptions::new().k(25).brain_key("img_sim"),
        )
        .unwrap();
    let (ids, d) = want.similarity().unwrap();
    assert_same_results(&page.tiles().await, ids, d, "click → sort");
    assert_eq!(
        page.tiles().await[0].sample_id,
        first,
        "the query itself comes first"
    );
    page.shot("sorted").await;

    // A reload of the URL reproduces the sorted grid.
    let url = page.url().await;
    assert!(url.contains("sort="), "{url}");
    page.c.goto(&url).await.unwrap();
    page.settle().await;
    assert_same_results(&page.tiles().await, ids, d, "reload of a sorted URL");

    // Reset returns to the view before the sort.
    page.click("#sort-reset").await;
    page.settle().await;
    assert!(page.tiles().await.iter().all(|t| t.distance.is_none()));
    assert!(!page.url().await.contains("sort="));
}

async fn several_selected_sort_by_their_mean(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    let tiles = page.tiles().await;
    let picked: Vec<String> = [1, 5, 9]
        .iter()
        .map(|&i| tiles[i].sample_id.clone())
        .collect();
    page.click_tile(1, false).await;
    page.click_tile(5, true).await;
    page.click_tile(9, true).await;
    assert!(page.text("#selection-count").await.starts_with('3'));
    page.sort_selection("img_sim", 10).await;
    let want = ds
        .sort_by_similarity(
            Query::ids(picked),
            SortOptions::new().k(10).brain_key("img_sim"),
        )
        .unwrap();
    let (ids, d) = want.similarity().unwrap();
    assert_same_results(&page.tiles().await, ids, d, "three selected → their mean");
}

async fn text_prompt(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    page.open_sort_panel("img_sim").await;
    page.type_into("#sort-k", "25").await;
    page.type_into("#text-query", "a red circle").await;
    page.click("#text-run").await;
    page.settle().await;
    let want = ds
        .sort_by_similarity(
            Query::text("a red circle"),
            SortOptions::new().k(25).brain_key("img_sim"),
        )
        .unwrap();
    let (ids, d) = want.similarity().unwrap();
    assert_same_results(&page.tiles().await, ids, d, "text prompt");
    page.shot("text-search").await;
}

async fn patches_grid_and_patch_query(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    page.mark_stale().await;
    page.select("#mode-select", "ground_truth").await;
    page.settle().await;
    let tiles = page.tiles().await;
    let patches = ds.to_patches("ground_truth").patches().unwrap();
    assert!(!tiles.is_empty());
    for (t, p) in tiles.iter().zip(&patches) {
        assert_eq!(t.label_id.as_deref(), Some(p.id.as_str()));
        assert_eq!(t.sample_id, p.sample_id);
    }
    let query = tiles[2].label_id.clone().unwrap();
    page.click_tile(2, false).await;
    page.sort_selection("gt_sim", 12).await;
    let want = ds
        .to_patches("ground_truth")
        .sort_by_similarity(
            Query::id(&query),
            SortOptions::new().k(12).brain_key("gt_sim"),
        )
        .unwrap();
    let (ids, d) = want.similarity().unwrap();
    let got = page.tiles().await;
    let got_labels: Vec<String> = got.iter().map(|t| t.label_id.clone().unwrap()).collect();
    assert_eq!(got_labels, ids.to_vec(), "patch query order");
    for (t, d) in got.iter().zip(d) {
        assert!((t.distance.unwrap() - d).abs() <= 1e-6 * d.abs().max(1.0));
    }
    page.shot("patches").await;
    // Click through to the sample.
    page.js("document.querySelectorAll('#grid .tile')[0].dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))").await;
    wait_visible(page, "#sample-modal").await;
    assert!(page
        .url()
        .await
        .contains(&format!("sample={}", got[0].sample_id)));
    page.press("#sample-close").await;
}

async fn wait_visible(page: &Page, css: &str) {
    let start = Instant::now();
    loop {
        let e = page.c.find(Locator::Css(css)).await.unwrap();
        if e.is_displayed().await.unwrap() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{css} never shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sample_view_and_find_similar(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    let tiles = page.tiles().await;
    page.js("document.querySelectorAll('#grid .tile')[4].dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))").await;
    wait_visible(page, "#sample-modal").await;
    let url = page.url().await;
    assert!(
        url.contains(&format!("sample={}", tiles[4].sample_id)),
        "{url}"
    );
    page.press("#sample-next").await;
    let start = Instant::now();
    while !page
        .url()
        .await
        .contains(&format!("sample={}", tiles[5].sample_id))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "next did not move to the next sample"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    page.shot("sample").await;
    // A link to a sample opens it.
    let url = page.url().await;
    page.c.goto(&url).await.unwrap();
    wait_visible(page, "#sample-modal").await;
    page.mark_stale().await;
    page.press("#sample-find-similar").await;
    page.settle().await;
    let got = page.tiles().await;
    assert_eq!(
        got[0].sample_id, tiles[5].sample_id,
        "find similar starts with the sample itself"
    );
    let k = got.len();
    let want = ds
        .sort_by_similarity(
            Query::id(&tiles[5].sample_id),
            SortOptions::new().k(k).brain_key("img_sim"),
        )
        .unwrap();
    let (ids, d) = want.similarity().unwrap();
    assert_same_results(&got, ids, d, "find similar");
}

async fn tag_then_filter_by_tag(page: &Page, ds: &simile::Dataset) {
    page.open("?dataset=quickstart").await;
    let tiles = page.tiles().await;
    page.click_tile(2, false).await;
    page.click_tile(7, true).await;
    page.type_into("#tag-input", "lookalike").await;
    page.press("#tag-add").await;
    let start = Instant::now();
    while page
        .js("return !!document.querySelector('.tag-filter[data-tag=\"lookalike\"]')")
        .await
        != Value::Bool(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new tag never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tagged = ds.view().match_tags(&["lookalike".into()]).ids().unwrap();
    assert_eq!(
        tagged,
        vec![tiles[2].sample_id.clone(), tiles[7].sample_id.clone()]
    );
    page.click(".tag-filter[data-tag=\"lookalike\"]").await;
    page.settle().await;
    let got: Vec<String> = page
        .tiles()
        .await
        .into_iter()
        .map(|t| t.sample_id)
        .collect();
    assert_eq!(got, tagged, "filter by tag shows the tagged samples");
    assert!(page.text("#view-bar").await.contains("lookalike"));
    page.shot("tagged").await;
    // The URL carries the view: a reload shows the same filtered grid.
    let url = page.url().await;
    assert!(url.contains("view="), "{url}");
    page.c.goto(&url).await.unwrap();
    page.settle().await;
    let again: Vec<String> = page
        .tiles()
        .await
        .into_iter()
        .map(|t| t.sample_id)
        .collect();
    assert_eq!(again, tagged, "reload of a view URL");
    // A stage added with the view bar's form.
    page.press("#add-stage").await;
    page.select("#stage-kind", "filter_labels").await;
    page.type_into("#stage-field", "ground_truth").await;
    page.type_into("#stage-value", "circle").await;
    page.click("#stage-apply").await;
    page.settle().await;
    let want = ds
        .view()
        .match_tags(&["lookalike".into()])
        .filter_labels(
            "ground_truth",
            simile::LabelFilter::LabelIn(vec!["circle".into()]),
        )
        .ids()
        .unwrap();
    let got: Vec<String> = page
        .tiles()
        .await
        .into_iter()
        .map(|t| t.sample_id)
        .collect();
    assert_eq!(got, want, "view bar: match_tags then filter_labels");
}

/// Waits until the duplicates panel says its requests are done.
async fn dups_settle(page: &Page) -> String {
    let start = Instant::now();
    loop {
        let state = page
            .js("return document.querySelector('#dups-panel').dataset.state || ''")
            .await;
        if let Some(s @ ("ready" | "error")) = state.as_str() {
            return s.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the duplicates panel never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dups_stale(page: &Page) {
    page.js("document.querySelector('#dups-panel').dataset.state = 'stale'")
        .await;
}

fn sample_ids(tiles: Vec<Tile>) -> Vec<String> {
    tiles.into_iter().map(|t| t.sample_id).collect()
}

async fn duplicates_panel_and_uniqueness(page: &Page, ds: &simile::Dataset) {
    // The facade's answer: a threshold that marks 5 % of the samples, then the groups at it.
    let index = ds.load_brain_results("img_sim").unwrap();
    let t = index
        .find_duplicates(Some(simile::DuplicatesBy::Fraction(0.05)))
        .unwrap()
        .thresh;
    let want = index
        .find_duplicates(Some(simile::DuplicatesBy::Thresh(t)))
        .unwrap();
    assert!(!want.duplicate_ids.is_empty());
    let mut groups: Vec<(&String, &Vec<(String, f64)>)> = want.neighbors_map.iter().collect();
    groups.sort_by(|a, b| a.1[0].1.total_cmp(&b.1[0].1));

    page.open("?dataset=quickstart").await;
    dups_stale(page).await;
    page.press("#dups-button").await;
    assert_eq!(dups_settle(page).await, "ready");
    wait_visible(page, "#dups-panel").await;
    page.select("#dups-brain-key", "img_sim").await;
    assert_eq!(dups_settle(page).await, "ready");
    // Only sample-level runs are offered.
    let keys = page
        .js("return Array.from(document.querySelectorAll('#dups-brain-key option')).map(o => o.value)")
        .await;
    assert_eq!(keys, json!(["img_sim"]));
    // The histogram: one bar (or two, split by the line) per non-empty bin, and the line.
    let bars = page
        .js("return document.querySelectorAll('#dups-histogram svg rect.bar').length")
        .await;
    assert!(bars.as_u64().unwrap() >= 10, "{bars}");
    // The number box moves the slider and the line.
    page.type_into("#dups-thresh-value", &t.to_string()).await;
    let slider = page
        .js("return Number(document.querySelector('#dups-thresh').value)")
        .await;
    assert!(
        (slider.as_f64().unwrap() - t).abs() < 1e-12,
        "{slider} vs {t}"
    );
    let label = page.text("#dups-histogram .thresh-label").await;
    assert!(label.starts_with('≤'), "{label}");

    dups_stale(page).await;
    page.press("#dups-run").await;
    assert_eq!(dups_settle(page).await, "ready");
    let got = page
        .js("return Array.from(document.querySelectorAll('#dups-groups .dup-group')).map(g => [g.dataset.sampleId, Array.from(g.querySelectorAll('.dup-member')).map(m => [m.dataset.sampleId, Number(m.dataset.distance)])])")
        .await;
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), groups.len(), "one .dup-group per kept sample");
    for (g, (kept, dups)) in got.iter().zip(&groups) {
        assert_eq!(g[0].as_str(), Some(kept.as_str()), "groups nearest first");
        let members = g[1].as_array().unwrap();
        let ids: Vec<&str> = members.iter().map(|m| m[0].as_str().unwrap()).collect();
        let want_ids: Vec<&str> = dups.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(ids, want_ids, "the duplicates of {kept}, nearest first");
        for (m, d) in members.iter().zip(dups.iter()) {
            assert!(
                (m[1].as_f64().unwrap() - d.1).abs() <= 1e-12,
                "{m} vs {d:?}"
            );
        }
    }
    let summary = page.text("#dups-summary").await;
    let n = want.duplicate_ids.len();
    assert!(
        summary.starts_with(&format!(
            "{n} duplicate{} in {} group",
            if n == 1 { "" } else { "s" },
            groups.len()
        )),
        "{summary}"
    );
    page.shot("duplicates").await;

    // A thumbnail opens the sample view.
    let first_dup = &groups[0].1[0].0;
    page.press(&format!(".dup-member[data-sample-id=\"{first_dup}\"]"))
        .await;
    wait_visible(page, "#sample-modal").await;
    assert!(page.url().await.contains(&format!("sample={first_dup}")));
    page.press("#sample-close").await;

    // Tag the duplicates (the kept samples stay untagged).
    let tag = page
        .js("return document.querySelector('#dups-tag-input').value")
        .await;
    assert_eq!(tag, json!("duplicate"));
    dups_stale(page).await;
    page.press("#dups-tag").await;
    assert_eq!(dups_settle(page).await, "ready");
    assert!(page
        .js("return !!document.querySelector('.tag-filter[data-tag=\"duplicate\"]')")
        .await
        .as_bool()
        .unwrap());
    assert_eq!(ds.count_sample_tags().unwrap().get("duplicate"), Some(&n));
    let mut tagged = ds.view().match_tags(&["duplicate".into()]).ids().unwrap();
    let mut dup_ids = want.duplicate_ids.clone();
    tagged.sort();
    dup_ids.sort();
    assert_eq!(tagged, dup_ids);

    // Show in grid: the groups in order, each kept sample before its duplicates.
    page.click("#dups-show").await;
    page.settle().await;
    let order: Vec<String> = groups
        .iter()
        .flat_map(|(k, d)| std::iter::once((*k).clone()).chain(d.iter().map(|x| x.0.clone())))
        .collect();
    assert_eq!(sample_ids(page.tiles().await), order, "show in grid");
    assert!(page.text("#view-bar").await.contains("(ordered)"));
    let kept = page
        .js("return Array.from(document.querySelectorAll('#grid .tile.dup-tile-kept')).map(t => t.dataset.sampleId)")
        .await;
    let want_kept: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        kept,
        json!(want_kept),
        "kept samples are marked in the grid"
    );

    // Uniqueness as a sortable field: a sort_by stage from the view bar.
    ds.view()
        .compute_uniqueness(
            "uniqueness",
            simile::UniquenessSource::BrainKey("img_sim".into()),
        )
        .unwrap();
    page.open("?dataset=quickstart").await;
    page.press("#add-stage").await;
    page.select("#stage-kind", "sort_by").await;
    page.type_into("#stage-field", "uniqueness").await;
    page.press("#stage-reverse").await;
    page.click("#stage-apply").await;
    page.settle().await;
    let tiles = sample_ids(page.tiles().await);
    let want: Vec<String> = ds
        .view()
        .sort_by("uniqueness", true)
        .page(0, tiles.len())
        .unwrap()
        .samples
        .iter()
        .map(|s| s.id().to_string())
        .collect();
    assert!(tiles.len() >= 20);
    assert_eq!(tiles, want, "sorted by uniqueness, most unique first");
    let chip = page.text("#view-bar .stage-chip").await;
    assert!(chip.contains("sort by uniqueness ↓"), "{chip}");
    let shown = page
        .js("return document.querySelector('#grid .tile .tile-value').title")
        .await;
    let top = ds
        .view()
        .sort_by("uniqueness", true)
        .first()
        .unwrap()
        .unwrap();
    let value = top.get("uniqueness").unwrap().as_f64().unwrap();
    let shown = shown.as_str().unwrap();
    let shown: f64 = shown.strip_prefix("uniqueness ").unwrap().parse().unwrap();
    assert_eq!(shown, value, "each tile shows the value it is sorted by");
    page.shot("uniqueness").await;
}

async fn errors_are_shown_in_the_page(page: &Page) {
    let sort =
        json!({"brain_key": "img_sim", "query": {"ids": ["0123456789abcdef01234567"]}, "k": 25});
    page.open(&format!(
        "?dataset=quickstart&sort={}",
        crate::common::enc(&sort.to_string())
    ))
    .await;
    wait_visible(page, "#error").await;
    let e = page.c.find(Locator::Css("#error")).await.unwrap();
    assert_eq!(
        e.attr("data-kind").await.unwrap().as_deref(),
        Some("query_ids_not_found")
    );
    let text = e.text().await.unwrap();
    assert!(text.contains("do not exist"), "{text}");
    page.shot("error").await;
}
