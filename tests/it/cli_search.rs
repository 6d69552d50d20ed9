//! `uhc search` as a user runs it: a real process, a real store, killed with SIGKILL in the
//! middle and resumed by running the same command again. Nothing finished may be lost or
//! evaluated twice.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use uhc::search::store::{CandidateState, Store, StoreOptions};

/// The search example shrunk to seconds: 2 epochs, 3 noise draws.
pub fn small_search_text() -> String {
    let text =
        std::fs::read_to_string(super::root().join("examples/digits_search.uh")).expect("example");
    text.replace(
        "train { epochs = 20, batch = 32, lr = 0.01, noise_aware = false }",
        "train { epochs = 2, batch = 64, lr = 0.02, noise_aware = false }",
    )
    .replace("eval { draws = 20 }", "eval { draws = 3 }")
}

/// [`small_search_text`] written to `dir/search.uh`.
pub(crate) fn small_search(dir: &Path) -> PathBuf {
    let path = dir.join("search.uh");
    std::fs::write(&path, small_search_text()).expect("write search file");
    path
}

fn uhc(args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uhc"));
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn done_metrics(db: &Path) -> Vec<(i64, String)> {
    let store = Store::open(db, StoreOptions::default()).expect("store opens");
    let mut v: Vec<(i64, String)> = store
        .candidates_in_state(CandidateState::Done)
        .expect("query")
        .into_iter()
        .map(|c| {
            (
                c.id,
                serde_json::to_string(&c.evaluation.expect("done has evaluation").metrics)
                    .expect("json"),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn killed_search_resumes_without_losing_work() {
    let dir = std::env::temp_dir().join(format!("uhc-it-cli-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = small_search(&dir);
    let db = dir.join("run.sqlite");
    let args = [
        "search",
        file.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--budget",
        "14",
        "--jobs",
        "1",
    ];

    let mut child = uhc(&args, &dir).spawn().expect("uhc starts");
    // Wait (bounded) until a few evaluations are committed, then kill -9.
    let start = Instant::now();
    loop {
        if db.exists() {
            if let Ok(store) = Store::open(&db, StoreOptions::default()) {
                if store.counts_by_state().map(|c| c.done).unwrap_or(0) >= 4 {
                    break;
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("search ended before it could be killed: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no progress within 240 s"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = done_metrics(&db);
    assert!(before.len() >= 4);

    let out = uhc(&args, &dir).output().expect("uhc resumes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "resume failed: {stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let after = done_metrics(&db);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let counts = store.counts_by_state().unwrap();
    assert_eq!(
        (counts.done + counts.failed + counts.timeout) as usize,
        14,
        "{counts:?}"
    );
    assert!(store.integrity_check().unwrap().is_empty());
    // Every evaluation finished before the kill is still there, unchanged.
    for entry in &before {
        assert!(
            after.contains(entry),
            "lost or changed evaluation {entry:?}"
        );
    }

    // The report of the finished run is written.
    let report_dir = dir.join("report");
    let out = uhc(
        &[
            "report",
            db.to_str().unwrap(),
            "--out",
            report_dir.to_str().unwrap(),
        ],
        &dir,
    )
    .output()
    .expect("report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(report_dir.join("report.md")).expect("report.md");
    assert!(md.contains("## Front of"));
    assert!(std::fs::read_to_string(report_dir.join("pareto.svg"))
        .expect("svg")
        .starts_with("<svg"));

    // Two runs of one search on one profile: each is named by its store as well.
    let copy = dir.join("repeat.sqlite");
    std::fs::copy(&db, &copy).expect("copy the store");
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::copy(db.with_extension(ext), copy.with_extension(ext));
    }
    let out = uhc(
        &["report", "run.sqlite", "repeat.sqlite", "--out", "both"],
        &dir,
    )
    .output()
    .expect("report of two runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(dir.join("both/hypervolume.svg")).expect("svg");
    for label in [
        "digits_mzi on mzi_realistic [run.sqlite] (all)",
        "digits_mzi on mzi_realistic [repeat.sqlite] (all)",
    ] {
        assert!(svg.contains(label), "{label} not in the legend");
    }
}

#[test]
fn foreign_and_corrupt_databases_are_refused() {
    let dir = std::env::temp_dir().join(format!("uhc-it-cli-foreign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = small_search(&dir);
    let junk = dir.join("junk.sqlite");
    std::fs::write(&junk, b"this is not a database at all, just bytes").unwrap();
    let out = uhc(
        &[
            "search",
            file.to_str().unwrap(),
            "--db",
            junk.to_str().unwrap(),
            "--budget",
            "1",
        ],
        &dir,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error"), "{stderr}");
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        b"this is not a database at all, just bytes"
    );
}

#[test]
fn check_reports_invalid_utf8_with_a_code_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("uhc-it-cli-utf8-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.uh");
    std::fs::write(&file, b"arch a on b {\n  input x: real[4]\xff\xfe\n}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_uhc"))
        .args(["check", "--format", "json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON array");
    assert_eq!(json[0]["code"], "uh::syntax::utf8");
    assert_eq!(json[0]["line"], 2);
    assert_eq!(json[0]["start"], 32);
    let missing = Command::new(env!("CARGO_BIN_EXE_uhc"))
        .args(["check", dir.join("missing.uh").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
