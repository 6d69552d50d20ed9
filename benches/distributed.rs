//! Distributed search on this machine: candidates per minute with 1, 2 and 4 `uhc worker`
//! processes on a PostgreSQL run, against the baseline of one `uhc search --jobs 1` process
//! on SQLite, measured in the same run; claim latency (claim + record of a trivial result)
//! with 1 and 8 concurrent claimers; and the coordinator's own time per candidate.
//!
//! `cargo bench --bench distributed` measures (budget 40 per run); without `--bench` (as
//! `cargo test --all-targets` runs it) it does a smoke run (budget 2, one worker). Needs
//! `UHC_TEST_POSTGRES_URL`; without it, it says so and measures nothing. Every PostgreSQL
//! run is in a throwaway schema.
//!
//! The search is `examples/digits_search.uh` as it is (20 epochs, 20 noise draws; shrunk to
//! 2 epochs and 3 draws for the smoke run). A candidate trains on one core, so on a 2-core machine
//! the rate cannot grow past 2 workers; what the figures show beyond that is overhead.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use uhc::search::store::{
    Disposition, Evaluation, Metrics, NewCandidate, PgScratch, Store, StoreOptions,
};

/// The example as it is when measuring; shrunk to 2 epochs and 3 draws for the smoke run.
fn search_file(dir: &std::path::Path, full: bool) -> std::path::PathBuf {
    let text = include_str!("../examples/digits_search.uh");
    let text = if full {
        text.to_string()
    } else {
        text.replace(
            "train { epochs = 20, batch = 32, lr = 0.01, noise_aware = false }",
            "train { epochs = 2, batch = 64, lr = 0.02, noise_aware = false }",
        )
        .replace("eval { draws = 20 }", "eval { draws = 3 }")
    };
    let path = dir.join("search.uh");
    std::fs::write(&path, text).expect("write search file");
    path
}

fn uhc(args: &[&str], dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uhc"));
    c.args(args)
        .current_dir(dir)
        .env_remove("UHC_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// "engine overhead: X s of Y s" from a search's stderr: the engine's own seconds.
fn engine_seconds(stderr: &str) -> f64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("engine overhead: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One run: (candidates evaluated, wall seconds, coordinator engine seconds).
fn sqlite_run(dir: &std::path::Path, budget: usize, full: bool) -> (usize, f64, f64) {
    let file = search_file(dir, full);
    let db = dir.join(format!(
        "bench-{}.sqlite",
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_file(&db);
    let t = Instant::now();
    let out = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--budget",
            &budget.to_string(),
            "--jobs",
            "1",
        ],
        dir,
    )
    .output()
    .expect("uhc search");
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let done = Store::open_read_only(&db, StoreOptions::default())
        .unwrap()
        .counts_by_state()
        .unwrap();
    let _ = std::fs::remove_file(&db);
    (
        (done.done + done.failed + done.timeout) as usize,
        wall,
        engine_seconds(&stderr),
    )
}

fn pg_run(
    base: &str,
    dir: &std::path::Path,
    budget: usize,
    workers: usize,
    full: bool,
) -> (usize, f64, f64) {
    let scratch = PgScratch::new(base);
    let url = scratch.url();
    let file = search_file(dir, full);
    let t = Instant::now();
    let coordinator = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            &url,
            "--budget",
            &budget.to_string(),
            "--jobs",
            "0",
        ],
        dir,
    )
    .spawn()
    .expect("coordinator");
    let ws: Vec<_> = (0..workers)
        .map(|_| {
            uhc(&["worker", "--db", &url, "--idle-exit", "60s"], dir)
                .spawn()
                .expect("worker")
        })
        .collect();
    let out = coordinator.wait_with_output().expect("coordinator");
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for w in ws {
        let o = w.wait_with_output().expect("worker");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let c = Store::open_at(&scratch.location(), StoreOptions::default())
        .unwrap()
        .counts_by_state()
        .unwrap();
    (
        (c.done + c.failed + c.timeout) as usize,
        wall,
        engine_seconds(&stderr),
    )
}

fn trivial(k: usize) -> NewCandidate {
    NewCandidate {
        text: format!("c{k}"),
        canonical_text: None,
        structural_hash: Some(format!("h{k}")),
        parents: vec![],
        operator: "seed".into(),
        generation: 0,
    }
}

/// Claim + record latencies (seconds, sorted) of `n` trivial candidates drained by
/// `claimers` threads, and the wall time of the whole drain.
fn claim_latency(open: &(dyn Fn() -> Store + Sync), n: usize, claimers: usize) -> (Vec<f64>, f64) {
    let mut s = open();
    for k in 0..n {
        s.insert_proposal(&trivial(k), &Disposition::Queued)
            .unwrap();
    }
    let t = Instant::now();
    let mut all: Vec<f64> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..claimers)
            .map(|w| {
                scope.spawn(move || {
                    let mut s = open();
                    let owner = format!("b{w}");
                    let mut lat = Vec::new();
                    loop {
                        let t = Instant::now();
                        let Some(c) = s.claim_next(&owner, Duration::from_secs(600)).unwrap()
                        else {
                            break;
                        };
                        s.record_evaluation(
                            c.id,
                            &owner,
                            &Evaluation {
                                metrics: Metrics::default(),
                                wall_time_s: 0.0,
                            },
                        )
                        .unwrap();
                        lat.push(t.elapsed().as_secs_f64());
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let wall = t.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    assert_eq!(all.len(), n);
    (all, wall)
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let Ok(base) = std::env::var(PgScratch::ENV) else {
        println!(
            "distributed: skipped, set {} (e.g. postgres://root@127.0.0.1/test)",
            PgScratch::ENV
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("uhc-bench-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Claim latency: a store operation, no training.
    let n = if full { 2000 } else { 50 };
    let lite_path = dir.join("claims.sqlite");
    let _ = std::fs::remove_file(&lite_path);
    drop(Store::create(&lite_path, "bench", 1, StoreOptions::default()).unwrap());
    let lite = || Store::open(&lite_path, StoreOptions::default()).unwrap();
    let (l1, lw1) = claim_latency(&lite, n, 1);
    println!(
        "claim+record, SQLite, 1 claimer:     median {:.2} ms, p95 {:.2} ms, {:.0} candidates/s (baseline)",
        pct(&l1, 0.5) * 1e3,
        pct(&l1, 0.95) * 1e3,
        n as f64 / lw1
    );
    for claimers in [1, 8] {
        let scratch = PgScratch::new(&base);
        let loc = scratch.location();
        let open = || {
            Store::open_or_create_at(&loc, "bench", 1, StoreOptions::default())
                .unwrap()
                .0
        };
        let (l, w) = claim_latency(&open, n, claimers);
        println!(
            "claim+record, PostgreSQL, {claimers} claimer(s): median {:.2} ms, p95 {:.2} ms, {:.0} candidates/s ({:.2}x SQLite)",
            pct(&l, 0.5) * 1e3,
            pct(&l, 0.95) * 1e3,
            n as f64 / w,
            (n as f64 / w) / (n as f64 / lw1)
        );
    }

    // Candidates per minute, end to end.
    let budget = if full { 40 } else { 2 };
    let (n0, w0, e0) = sqlite_run(&dir, budget, full);
    let base_rate = n0 as f64 / w0 * 60.0;
    println!(
        "SQLite, uhc search --jobs 1: {n0} candidates in {w0:.1} s = {base_rate:.1} candidates/min; engine {:.1} ms/candidate (baseline)",
        e0 / n0 as f64 * 1e3
    );
    let counts: &[usize] = if full { &[1, 2, 4] } else { &[1] };
    for &workers in counts {
        let (n, w, e) = pg_run(&base, &dir, budget, workers, full);
        let rate = n as f64 / w * 60.0;
        println!(
            "PostgreSQL, coordinator --jobs 0 + {workers} worker(s): {n} candidates in {w:.1} s = {rate:.1} candidates/min ({:.2}x SQLite); coordinator {:.1} ms/candidate",
            rate / base_rate,
            e / n as f64 * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
