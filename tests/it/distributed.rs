//! Distributed search as users run it: `uhc search --db postgres://…` and `uhc worker`
//! processes on the real server (`UHC_TEST_POSTGRES_URL`; each test in a schema of its
//! own, skipped with a note without the variable), and the launchers in `deploy/`.

use super::cli_search::small_search;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use uhc::search::store::{CandidateRecord, CandidateState, PgScratch, Store, StoreOptions};

fn uhc(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uhc"));
    c.args(args)
        .current_dir(dir)
        .env_remove("UHC_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-dist-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits for a process to end, at most 300 s: a coordinator or worker that never ends
/// fails the test (killed, with its stderr) instead of hanging the suite.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("wait"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on our own child, which has not been reaped (its waiter runs).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let out = waiter.join().expect("waiter");
            panic!(
                "{what} did not end within 300 s (killed): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = waiter.join().expect("waiter");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn open(scratch: &PgScratch) -> Store {
    Store::open_at(&scratch.location(), StoreOptions::default()).expect("run opens")
}

/// Waits (bounded) until `done` candidates are evaluated in the run.
fn wait_for_done(scratch: &PgScratch, done: u64, child: &mut Child) {
    let start = Instant::now();
    loop {
        if let Ok(store) = Store::open_at(&scratch.location(), StoreOptions::default()) {
            if store.counts_by_state().map(|c| c.done).unwrap_or(0) >= done {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("process ended before {done} evaluations: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no progress within 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every structure once, every evaluated candidate with exactly one evaluation row.
fn assert_counted_once(scratch: &PgScratch) -> Vec<CandidateRecord> {
    let store = open(scratch);
    let mut all = Vec::new();
    for s in CandidateState::ALL {
        all.extend(store.candidates_in_state(s).expect("query"));
    }
    let hashes: Vec<&str> = all
        .iter()
        .filter_map(|c| c.structural_hash.as_deref())
        .collect();
    let unique: HashSet<&str> = hashes.iter().copied().collect();
    assert_eq!(hashes.len(), unique.len(), "a structure stored twice");
    let mut admin = scratch.admin();
    let rows: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM {}.evaluations", scratch.schema),
            &[],
        )
        .expect("count")
        .get(0);
    let done = store.counts_by_state().expect("counts").done;
    assert_eq!(rows as u64, done, "an evaluation row per done candidate");
    all
}

#[test]
fn coordinator_and_two_workers_finish_a_run() {
    let Some(scratch) = PgScratch::from_env("coordinator_and_two_workers_finish_a_run") else {
        return;
    };
    let dir = temp_dir("two-workers");
    let file = small_search(&dir);
    let url = scratch.url();
    // Workers started first wait for the coordinator to store the run's source.
    let workers: Vec<Child> = (0..2)
        .map(|_| {
            uhc(&["worker", "--db", &url, "--idle-exit", "120s"], &dir)
                .spawn()
                .expect("worker starts")
        })
        .collect();
    let coordinator = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            &url,
            "--budget",
            "8",
            "--jobs",
            "0",
        ],
        &dir,
    )
    .spawn()
    .expect("coordinator starts");
    let out = finish(coordinator, "coordinator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run stored in postgres://"), "{stderr}");
    let mut by_worker = HashSet::new();
    for w in workers {
        let out = finish(w, "worker");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("worker done:"), "{stderr}");
    }
    let all = assert_counted_once(&scratch);
    let done: Vec<&CandidateRecord> = all
        .iter()
        .filter(|c| c.state == CandidateState::Done)
        .collect();
    // The budget caps the claims (two workers racing for the last slot may pass it by
    // one each).
    assert!((8..=10).contains(&done.len()), "{} done", done.len());
    for c in &done {
        let e = c.evaluation.as_ref().expect("done has an evaluation");
        assert!(
            e.worker.contains(':'),
            "evaluated by a worker: {}",
            e.worker
        );
        by_worker.insert(e.worker.rsplit_once(':').map(|(w, _)| w.to_string()));
    }
    // The report reads the run from the server as it reads a file.
    let report = dir.join("report");
    let out = uhc(&["report", &url, "--out", report.to_str().unwrap()], &dir)
        .output()
        .expect("report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(report.join("report.md"))
        .expect("report.md")
        .contains("## Front of"));
    // A second coordinator on the same run while one holds it is refused; here none
    // does, so resuming the finished run does nothing more and succeeds.
    let out = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            &url,
            "--budget",
            "8",
            "--jobs",
            "0",
        ],
        &dir,
    )
    .output()
    .expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(assert_counted_once(&scratch).len(), all.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker of another uhc version refuses the run and says what to do.
#[test]
fn worker_refuses_a_run_made_by_another_uhc() {
    let Some(scratch) = PgScratch::from_env("worker_refuses_a_run_made_by_another_uhc") else {
        return;
    };
    let dir = temp_dir("version");
    let file = small_search(&dir);
    let url = scratch.url();
    let out = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            &url,
            "--budget",
            "1",
            "--jobs",
            "1",
        ],
        &dir,
    )
    .output()
    .expect("search");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut admin = scratch.admin();
    admin
        .execute(
            &format!(
                "UPDATE {}.run_source SET doc = replace(doc, '\"uhc_version\":\"{}\"', \
                 '\"uhc_version\":\"0.0.1-old\"')",
                scratch.schema,
                env!("CARGO_PKG_VERSION")
            ),
            &[],
        )
        .expect("edit");
    let out = uhc(&["worker", "--db", &url, "--idle-exit", "1s"], &dir)
        .output()
        .expect("worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "was made by uhc 0.0.1-old, and this is uhc {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{stderr}"
    );
    // A worker pointed at an SQLite file is told that workers need PostgreSQL.
    let out = uhc(&["worker", "--db", "run.sqlite"], &dir)
        .output()
        .expect("worker");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workers share a PostgreSQL run"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The coordinator killed with SIGKILL mid-run and started again: it resumes, and no
/// structure is stored or evaluated twice.
#[test]
fn killed_coordinator_resumes_without_duplicates() {
    let Some(scratch) = PgScratch::from_env("killed_coordinator_resumes_without_duplicates") else {
        return;
    };
    let dir = temp_dir("coordinator-kill");
    let file = small_search(&dir);
    let url = scratch.url();
    let args = [
        "search",
        file.to_str().unwrap(),
        "--db",
        &url,
        "--budget",
        "8",
        "--jobs",
        "1",
    ];
    let mut first = uhc(&args, &dir).spawn().expect("coordinator starts");
    wait_for_done(&scratch, 3, &mut first);
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let before: Vec<(i64, String)> = open(&scratch)
        .load_archive()
        .expect("archive")
        .into_iter()
        .map(|c| {
            (
                c.id,
                serde_json::to_string(&c.evaluation.unwrap().metrics).unwrap(),
            )
        })
        .collect();
    // Its lease on the candidate in flight outlives it; the restarted coordinator holds
    // the run, so it knows that lease is dead and takes it back at once.
    let out = uhc(&args, &dir).output().expect("coordinator resumes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let all = assert_counted_once(&scratch);
    let store = open(&scratch);
    let c = store.counts_by_state().unwrap();
    assert_eq!(c.done + c.failed + c.timeout, 8, "{c:?}");
    assert_eq!(c.running, 0, "{c:?}");
    let after: Vec<(i64, String)> = store
        .load_archive()
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.id,
                serde_json::to_string(&c.evaluation.unwrap().metrics).unwrap(),
            )
        })
        .collect();
    for entry in &before {
        assert!(after.contains(entry), "lost or changed {entry:?}");
    }
    assert!(all.len() >= 8);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same search and seed on SQLite and on PostgreSQL give the same archive: the same
/// candidates in the same order with the same scores.
#[test]
fn sqlite_and_postgres_runs_give_the_same_archive() {
    let Some(scratch) = PgScratch::from_env("sqlite_and_postgres_runs_give_the_same_archive")
    else {
        return;
    };
    let dir = temp_dir("same-archive");
    let file = small_search(&dir);
    let db = dir.join("run.sqlite");
    let url = scratch.url();
    for target in [db.to_str().unwrap(), url.as_str()] {
        let out = uhc(
            &[
                "search",
                file.to_str().unwrap(),
                "--db",
                target,
                "--budget",
                "6",
                "--jobs",
                "1",
                "--seed",
                "11",
            ],
            &dir,
        )
        .output()
        .expect("search");
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let key = |s: Store| -> Vec<(i64, String, Option<String>, String)> {
        s.load_archive()
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    c.text,
                    c.structural_hash,
                    serde_json::to_string(&c.evaluation.unwrap().metrics).unwrap(),
                )
            })
            .collect()
    };
    let lite = key(Store::open_read_only(&db, StoreOptions::default()).unwrap());
    let pg = key(open(&scratch));
    assert_eq!(lite.len(), 6);
    assert_eq!(lite.len(), pg.len());
    for (a, b) in lite.iter().zip(&pg) {
        assert_eq!(a, b);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The launchers name `uhc` subcommands and flags that exist: every `uhc SUB --flag` in
/// `deploy/` (shell lines and YAML argument lists) is checked against `uhc SUB --help`.
#[test]
fn launchers_use_real_subcommands_and_flags() {
    let deploy = super::root().join("deploy");
    let mut files = Vec::new();
    let mut stack = vec![deploy.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("deploy/ exists") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut invocations: Vec<(String, Vec<String>)> = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("text");
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("exec uhc ") {
                let words: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
                invocations.push((words[0].clone(), words[1..].to_vec()));
            }
            for key in ["args:", "command:"] {
                if let Some(list) = line.strip_prefix(key).map(str::trim) {
                    if list.starts_with('[') {
                        let words: Vec<String> = serde_json::from_str(list)
                            .unwrap_or_else(|e| panic!("{}: {list}: {e}", f.display()));
                        if words
                            .first()
                            .is_some_and(|w| w == "search" || w == "worker")
                        {
                            invocations.push((words[0].clone(), words[1..].to_vec()));
                        }
                    }
                }
            }
        }
    }
    let subs: HashSet<&str> = invocations.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subs, HashSet::from(["search", "worker"]), "{invocations:?}");
    assert!(invocations.len() >= 6, "{invocations:?}");
    for (sub, words) in &invocations {
        let help = Command::new(env!("CARGO_BIN_EXE_uhc"))
            .args([sub.as_str(), "--help"])
            .output()
            .expect("help");
        assert!(help.status.success(), "uhc {sub} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "uhc {sub} has no {flag} (used in deploy/)"
            );
        }
    }
}

/// A worker killed with SIGKILL in the middle of an evaluation: its lease expires, the
/// other worker re-runs the candidate, and the candidate is counted once, with two
/// attempts.
#[test]
fn sigkilled_worker_mid_evaluation_is_rerun_by_another() {
    let Some(scratch) = PgScratch::from_env("sigkilled_worker_mid_evaluation_is_rerun_by_another")
    else {
        return;
    };
    let dir = temp_dir("worker-kill");
    // Slower candidates than the other tests (more epochs), so the kill lands inside one.
    let file = small_search(&dir);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "train { epochs = 2, batch = 64",
        "train { epochs = 12, batch = 64",
    );
    std::fs::write(&file, text).unwrap();
    let url = scratch.url();
    let coordinator = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            &url,
            "--budget",
            "3",
            "--jobs",
            "0",
        ],
        &dir,
    )
    .spawn()
    .expect("coordinator starts");
    let worker = |lease: &str| {
        uhc(
            &[
                "worker",
                "--db",
                &url,
                "--idle-exit",
                "60s",
                "--lease",
                lease,
            ],
            &dir,
        )
        .spawn()
        .expect("worker starts")
    };
    let mut doomed = worker("1s");
    let owner_prefix = format!(":{}:", doomed.id());
    // Wait (bounded) until the doomed worker holds a candidate, then kill it.
    let start = Instant::now();
    let victim = loop {
        if let Ok(store) = Store::open_at(&scratch.location(), StoreOptions::default()) {
            if let Ok(running) = store.candidates_in_state(CandidateState::Running) {
                if let Some(c) = running.iter().find(|c| {
                    c.lease_owner
                        .as_deref()
                        .is_some_and(|o| o.contains(&owner_prefix))
                }) {
                    break c.id;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the worker never claimed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    doomed.kill().expect("SIGKILL");
    let _ = doomed.wait();
    let store = open(&scratch);
    let held = store.candidate(victim).unwrap().unwrap();
    let survivor = worker("30s");
    finish(coordinator, "coordinator");
    finish(survivor, "survivor");
    let all = assert_counted_once(&scratch);
    let c = all.iter().find(|c| c.id == victim).unwrap();
    if held.state == CandidateState::Running {
        // Killed mid-evaluation (the usual case): re-run by the survivor, once.
        assert_eq!(c.state, CandidateState::Done, "{c:?}");
        assert_eq!(c.attempts, 2);
        assert_eq!(
            c.reason.as_deref(),
            Some("worker lost during attempt 1; requeued")
        );
        assert!(!c
            .evaluation
            .as_ref()
            .unwrap()
            .worker
            .contains(&owner_prefix));
    } else {
        // The result committed between the look and the kill: nothing to re-run.
        assert_eq!(c.attempts, 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
