//! The load run (issue 12): reader threads query one index through the facade while a writer
//! thread adds and removes rows, and every answer is checked against the committed states.
//!
//! The data make the check exact and able to fail:
//! - the **base rows** (the index at the start) have a last coordinate of 0; the **writer rows**
//!   are the unit vector of the last coordinate, so under cosine a writer row is at distance
//!   exactly 1 from every query, farther than any query's top-k, and a query's exact answer is
//!   the same in every committed state;
//! - **main queries** (base rows plus noise, last coordinate 0) must return the exact top-k of
//!   the base rows (on an exact backend: the same distances, each the id's true distance; on an
//!   approximate one: true distances, ascending, no writer row; recall is recorded);
//! - **probe queries** (the writer direction) must see a committed set of writer rows: the
//!   writer adds rows in a fixed cyclic order and removes the oldest once `window` are present,
//!   so every committed set is a contiguous run of that order of at most `window` rows.
//!
//! Used by the e2e test `load` (small) and by `cargo xtask bench --only load` (the example
//! `load` of this package: 8 threads × 1,000 queries on 100k × 512).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use simile::ndarray::Array2;
use simile::{
    AddOptions, Metric, MissingOptions, NewSample, Query, SimilarityOptions, Simile, SortOptions,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Base rows in the index.
    pub n: usize,
    pub dim: usize,
    pub threads: usize,
    pub queries_per_thread: usize,
    pub k: usize,
    /// Distinct writer rows (samples of the dataset, cycled through).
    pub writer_rows: usize,
    /// At most this many writer rows are in the index at once.
    pub window: usize,
    /// Every `probe_every`-th query of a thread is a probe.
    pub probe_every: usize,
    /// Backend name (`sklearn`, `milvus`); `None` = the session's default.
    pub backend: Option<String>,
    /// Whether the backend is exact (results must equal the exact answer).
    pub exact: bool,
}

/// What happened.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub queries: usize,
    pub probes: usize,
    pub errors: Vec<String>,
    pub inconsistent: Vec<String>,
    /// Writer operations committed (adds + removes) during the readers' run.
    pub writer_ops: usize,
    /// Latency of main queries, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub wall_s: f64,
    pub build_s: f64,
    /// Mean recall@k of main queries against the exact answer (1 on an exact backend).
    pub recall: f64,
    /// Distinct numbers of writer rows that probes saw.
    pub probe_counts_seen: Vec<usize>,
}

struct Shared {
    base: Array2<f32>,
    pool: Vec<Vec<f32>>,
    /// Exact top-k (base row, cosine distance) of each pool query.
    expected: Vec<Vec<(usize, f64)>>,
    row_of: std::collections::HashMap<String, usize>,
    writer_ids: Vec<String>,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    1.0 - d / (na.sqrt() * nb.sqrt())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the load on a new dataset `load` of `simile`.
pub fn run(simile: &Simile, cfg: &LoadConfig) -> LoadReport {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let t = Instant::now();
    let ds = simile.create_dataset("load").unwrap();
    let ids = ds
        .add_samples(
            (0..cfg.n + cfg.writer_rows)
                .map(|i| NewSample::new(format!("/load/{i}.jpg")))
                .collect(),
        )
        .unwrap();
    let d = cfg.dim;
    let base = Array2::from_shape_fn((cfg.n, d), |(_, c)| {
        if c == d - 1 {
            0.0
        } else {
            rng.random_range(-1.0f32..1.0)
        }
    });
    let mut opts = SimilarityOptions::new()
        .brain_key("load")
        .metric(Metric::Cosine)
        .embeddings(base.clone());
    if let Some(b) = &cfg.backend {
        opts = opts.backend(b.clone());
    }
    let index = ds.limit(cfg.n).compute_similarity(opts).unwrap();
    let build_s = t.elapsed().as_secs_f64();

    // 32 distinct main queries: base rows plus noise, last coordinate 0; exact answers.
    let pool: Vec<Vec<f32>> = (0..32)
        .map(|_| {
            let r = rng.random_range(0..cfg.n);
            let mut q: Vec<f32> = base.row(r).to_vec();
            for x in q.iter_mut().take(d - 1) {
                *x += rng.random_range(-0.3f32..0.3);
            }
            q[d - 1] = 0.0;
            q
        })
        .collect();
    let expected: Vec<Vec<(usize, f64)>> = pool
        .iter()
        .map(|q| {
            let mut all: Vec<(usize, f64)> = base
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i, cosine(r.as_slice().unwrap(), q)))
                .collect();
            all.select_nth_unstable_by(cfg.k, |a, b| a.1.total_cmp(&b.1));
            all.truncate(cfg.k);
            all.sort_by(|a, b| a.1.total_cmp(&b.1));
            all
        })
        .collect();
    let shared = Arc::new(Shared {
        base,
        pool,
        expected,
        row_of: ids[..cfg.n]
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect(),
        writer_ids: ids[cfg.n..].to_vec(),
    });

    let done = Arc::new(AtomicBool::new(false));
    let writer_ops = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let inconsistent = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();

    let writer = {
        let (index, shared, done, ops, errors) = (
            index.clone(),
            shared.clone(),
            done.clone(),
            writer_ops.clone(),
            errors.clone(),
        );
        let (n, d, window) = (cfg.n, cfg.dim, cfg.window);
        std::thread::spawn(move || {
            let w = shared.writer_ids.len();
            let mut row = Array2::<f32>::zeros((1, d));
            row[[0, d - 1]] = 1.0;
            let mut next = 0usize;
            let mut present: std::collections::VecDeque<usize> = Default::default();
            while !done.load(Ordering::Relaxed) {
                let r = if present.len() < window {
                    let id = shared.writer_ids[next % w].clone();
                    let r = index.add_to_index(row.view(), &[id], None, AddOptions::default());
                    present.push_back(next % w);
                    next += 1;
                    r
                } else {
                    let old = present.pop_front().unwrap_or_default();
                    let id = shared.writer_ids[old].clone();
                    index
                        .remove_from_index(&[id], MissingOptions::default())
                        .map(|_| ())
                };
                match r {
                    Ok(()) => {
                        ops.fetch_add(1, Ordering::Relaxed);
                        match index.total_index_size() {
                            Ok(s) if s == n + present.len() => {}
                            Ok(s) => errors.lock().unwrap().push(format!(
                                "writer: size {s} after a commit, expected {}",
                                n + present.len()
                            )),
                            Err(e) => errors.lock().unwrap().push(format!("writer size: {e}")),
                        }
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(format!("writer: {e}"));
                        return;
                    }
                }
            }
            // Leave no writer row behind.
            let rest: Vec<String> = present
                .iter()
                .map(|i| shared.writer_ids[*i].clone())
                .collect();
            if let Err(e) = index.remove_from_index(&rest, MissingOptions::default()) {
                errors.lock().unwrap().push(format!("writer cleanup: {e}"));
            }
        })
    };

    let readers: Vec<_> = (0..cfg.threads)
        .map(|t| {
            let (index, shared, errors, inconsistent, cfg) = (
                index.clone(),
                shared.clone(),
                errors.clone(),
                inconsistent.clone(),
                cfg.clone(),
            );
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(cfg.queries_per_thread);
                let (mut recall, mut probes) = (0f64, 0usize);
                let mut counts = HashSet::new();
                for j in 0..cfg.queries_per_thread {
                    let probe = cfg.probe_every > 0 && j % cfg.probe_every == cfg.probe_every - 1;
                    let p = (t * 7 + j) % shared.pool.len();
                    let (q, k) = if probe {
                        let mut q = vec![0f32; cfg.dim];
                        q[cfg.dim - 1] = 1.0;
                        (q, cfg.window + 2)
                    } else {
                        (shared.pool[p].clone(), cfg.k)
                    };
                    let t0 = Instant::now();
                    let res =
                        index.sort_by_similarity(Query::vector(q.clone()), SortOptions::new().k(k));
                    let ms = t0.elapsed().as_secs_f64() * 1e3;
                    let view = match res {
                        Ok(v) => v,
                        Err(e) => {
                            errors.lock().unwrap().push(format!("query: {e}"));
                            continue;
                        }
                    };
                    let Some((ids, dists)) = view.inner().similarity() else {
                        errors
                            .lock()
                            .unwrap()
                            .push("a result without distances".into());
                        continue;
                    };
                    let problem = if probe {
                        probes += 1;
                        let c = check_probe(&shared, ids, dists, cfg.window);
                        if let Ok(n) = c {
                            counts.insert(n);
                        }
                        c.err()
                    } else {
                        lat.push(ms);
                        match check_main(&shared, &shared.expected[p], &q, ids, dists, cfg.exact) {
                            Ok(r) => {
                                recall += r;
                                None
                            }
                            Err(e) => Some(e),
                        }
                    };
                    if let Some(e) = problem {
                        inconsistent.lock().unwrap().push(e);
                    }
                }
                (lat, recall, probes, counts)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let (mut recall, mut probes) = (0f64, 0usize);
    let mut counts = HashSet::new();
    for r in readers {
        let (l, rc, p, c) = r.join().unwrap();
        lat.extend(l);
        recall += rc;
        probes += p;
        counts.extend(c);
    }
    let wall_s = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    lat.sort_by(f64::total_cmp);
    let mut probe_counts_seen: Vec<usize> = counts.into_iter().collect();
    probe_counts_seen.sort_unstable();
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    let inconsistent = std::mem::take(&mut *inconsistent.lock().unwrap());
    LoadReport {
        queries: lat.len() + probes,
        probes,
        writer_ops: writer_ops.load(Ordering::Relaxed),
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        recall: recall / lat.len().max(1) as f64,
        errors,
        inconsistent,
        wall_s,
        build_s,
        probe_counts_seen,
    }
}

/// A main query's answer: only base rows, each at its true distance, ascending, k of them; on
/// an exact backend the exact distances. Returns the recall@k.
fn check_main(
    s: &Shared,
    expected: &[(usize, f64)],
    q: &[f32],
    ids: &[String],
    dists: &[f32],
    exact: bool,
) -> Result<f64, String> {
    if ids.len() != expected.len() {
        return Err(format!(
            "{} results, expected {}",
            ids.len(),
            expected.len()
        ));
    }
    let mut prev = f32::NEG_INFINITY;
    for (id, dist) in ids.iter().zip(dists) {
        let Some(&row) = s.row_of.get(id) else {
            return Err(format!(
                "{id} is not a base row (a writer row in a main query's top-k)"
            ));
        };
        let truth = cosine(s.base.row(row).as_slice().unwrap_or(&[]), q);
        if (truth - f64::from(*dist)).abs() > 1e-4 {
            return Err(format!("{id}: distance {dist}, true distance {truth}"));
        }
        if *dist < prev - 1e-6 {
            return Err(format!("distances not ascending at {id}"));
        }
        prev = *dist;
    }
    if exact {
        for (i, ((_, want), got)) in expected.iter().zip(dists).enumerate() {
            if (want - f64::from(*got)).abs() > 1e-5 {
                return Err(format!("rank {i}: distance {got}, exact {want}"));
            }
        }
    }
    let want: HashSet<usize> = expected.iter().map(|e| e.0).collect();
    let hit = ids
        .iter()
        .filter(|id| want.contains(&s.row_of[*id]))
        .count();
    Ok(hit as f64 / expected.len() as f64)
}

/// A probe's answer: the writer rows (distance ~0) form a contiguous run of the writer's cyclic
/// order of at most `window` rows, i.e. a committed state. Returns how many it saw.
fn check_probe(s: &Shared, ids: &[String], dists: &[f32], window: usize) -> Result<usize, String> {
    let w = s.writer_ids.len();
    let mut seen: Vec<usize> = Vec::new();
    for (id, d) in ids.iter().zip(dists) {
        if *d < 0.5 {
            match s.writer_ids.iter().position(|x| x == id) {
                Some(i) => seen.push(i),
                None => return Err(format!("probe: {id} at distance {d} is not a writer row")),
            }
        }
    }
    if seen.len() > window {
        return Err(format!(
            "probe saw {} writer rows, at most {window} are ever present",
            seen.len()
        ));
    }
    if seen.is_empty() {
        return Ok(0);
    }
    let set: HashSet<usize> = seen.iter().copied().collect();
    // Contiguous modulo w: exactly one member whose predecessor is absent.
    let starts = set
        .iter()
        .filter(|i| !set.contains(&((*i + w - 1) % w)))
        .count();
    if starts != 1 || set.len() != seen.len() {
        let mut v: Vec<usize> = set.into_iter().collect();
        v.sort_unstable();
        return Err(format!(
            "probe saw writer rows {v:?}: not a committed state"
        ));
    }
    Ok(seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let base =
            Array2::from_shape_vec((3, 3), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
                .unwrap();
        Shared {
            base,
            pool: vec![],
            expected: vec![],
            row_of: [("a", 0), ("b", 1), ("c", 2)]
                .map(|(k, v)| (k.to_string(), v))
                .into_iter()
                .collect(),
            writer_ids: ["w0", "w1", "w2", "w3"].map(String::from).to_vec(),
        }
    }

    #[test]
    fn the_checks_fail_on_answers_of_no_committed_state() {
        let s = shared();
        let q = [1.0f32, 0.1, 0.0];
        let c = cosine(&[1.0, 1.0, 0.0], &q) as f32;
        let a = cosine(&[1.0, 0.0, 0.0], &q) as f32;
        let exp = vec![(0, f64::from(a)), (2, f64::from(c))];
        let ids = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_main(&s, &exp, &q, &ids(&["a", "c"]), &[a, c], true),
            Ok(1.0)
        );
        // A writer row, a wrong distance, a missing row, a wrong order.
        assert!(check_main(&s, &exp, &q, &ids(&["a", "w0"]), &[a, 1.0], true).is_err());
        assert!(check_main(&s, &exp, &q, &ids(&["a", "c"]), &[a, c + 0.01], true).is_err());
        assert!(check_main(&s, &exp, &q, &ids(&["a"]), &[a], true).is_err());
        assert!(check_main(&s, &exp, &q, &ids(&["c", "a"]), &[c, a], false).is_err());
        // Probes: a contiguous run of the cyclic order (w3, w0 wraps) or nothing; not a gap.
        assert_eq!(
            check_probe(&s, &ids(&["w3", "w0", "a"]), &[0.0, 0.0, 1.0], 3),
            Ok(2)
        );
        assert_eq!(check_probe(&s, &ids(&["a"]), &[1.0], 3), Ok(0));
        assert!(check_probe(&s, &ids(&["w0", "w2"]), &[0.0, 0.0], 3).is_err());
        assert!(check_probe(&s, &ids(&["w0", "w1", "w2"]), &[0.0; 3], 2).is_err());
        assert!(check_probe(&s, &ids(&["b"]), &[0.0], 3).is_err());
    }
}
