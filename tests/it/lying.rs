//! Inputs that lie (issue 12): degenerate numbers, special files and folder loops, weight
//! files that do not match, foreign and read-only run stores. Real files and processes.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use uhc::search::store::{CandidateState, Store, StoreOptions};

fn uhc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uhc"));
    c.stdin(Stdio::null());
    c
}

/// A fresh temporary folder for one test.
fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-lying-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------- degenerate numbers

#[test]
fn degenerate_counts_are_refused_with_the_allowed_range() {
    let dir = temp("degenerate");
    let db = dir.join("run.sqlite");
    let example = super::root().join("examples/digits_small.uh");
    let search = super::root().join("examples/digits_search.uh");
    let ex = example.to_str().unwrap();
    let se = search.to_str().unwrap();
    let d = db.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["eval", ex, "--task", "digits4", "--draws", "0"],
            "--draws",
        ),
        (
            vec![
                "train", ex, "--task", "digits4", "--epochs", "0", "--out", "w.json",
            ],
            "--epochs",
        ),
        (
            vec!["eval", ex, "--task", "digits4", "--epochs", "0"],
            "--epochs",
        ),
        (vec!["search", se, "--db", d, "--budget", "0"], "--budget"),
        (vec!["search", se, "--db", d, "--jobs", "0"], "--jobs"),
        (
            vec!["search", se, "--db", d, "--max-tokens-total", "0"],
            "--max-tokens-total",
        ),
        (
            vec!["search", se, "--db", d, "--max-cost", "0"],
            "--max-cost",
        ),
        (
            vec!["search", se, "--db", d, "--max-cost", "NaN"],
            "--max-cost",
        ),
    ];
    for (args, flag) in cases {
        let out = uhc().args(&args).current_dir(&dir).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        if flag == "--jobs" {
            // 0 is a coordinator that evaluates nothing, meaningful on PostgreSQL only.
            assert!(err.contains("need a PostgreSQL run"), "{args:?}: {err}");
        } else if flag != "--max-cost" {
            assert!(err.contains("is not in 1..="), "{args:?}: {err}");
        } else {
            assert!(err.contains("positive"), "{args:?}: {err}");
        }
    }
    assert!(!db.exists(), "a refused search must not create its store");
    assert!(!dir.join("w.json").exists());
}

#[test]
fn a_report_of_nothing_evaluated_says_so() {
    let dir = temp("report-empty");
    let db = dir.join("empty.sqlite");
    drop(Store::create(&db, "{}", 0, StoreOptions::default()).unwrap());
    let out = uhc()
        .args(["report", db.to_str().unwrap(), "--out"])
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(md.contains("Nothing has been evaluated yet"), "{md}");
    assert!(
        md.contains("| nothing evaluated | nothing evaluated |"),
        "{md}"
    );
    assert!(!md.contains("twice the highest"), "{md}");
    assert!(!md.contains("-0.0"), "{md}");
    assert!(!md.contains("1 pJ"), "{md}");
}

// ---------------------------------------------------------------- special files

#[test]
fn an_endless_device_is_read_with_the_bound() {
    let out = uhc().args(["check", "/dev/zero"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("larger than 16 MiB"),
        "{err}"
    );
}

#[test]
fn a_too_long_file_name_says_so() {
    let name = format!("{}.uh", "n".repeat(300));
    let out = uhc().args(["check", &name]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.to_lowercase().contains("name too long"), "{err}");
    assert!(!err.contains("no such file"), "{err}");
}

/// A file with one error, so each time it is checked shows in the output.
const BAD: &str = "arch a on nowhere {\n    input x: real[4]\n    output x\n}\n";

#[cfg(unix)]
#[test]
fn folder_walks_end_on_symlink_loops_and_check_each_file_once() {
    use std::os::unix::fs::symlink;
    let dir = temp("loops");
    std::fs::write(dir.join("bad.uh"), BAD).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    symlink(".", dir.join("self")).unwrap();
    symlink(".", dir.join("again")).unwrap();
    symlink("..", dir.join("sub/up")).unwrap();
    // Two links to each other: a loop with no folder in it.
    symlink("ping.uh", dir.join("pong.uh")).unwrap();
    symlink("pong.uh", dir.join("ping.uh")).unwrap();
    let out = uhc()
        .args(["check", "--format", "json"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diags = json.as_array().unwrap();
    assert_eq!(diags.len(), 1, "reported once: {json}");
    for skipped in ["self", "again", "up", "ping.uh", "pong.uh"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("note: skipped") && l.contains(skipped)),
            "{skipped}: {err}"
        );
    }
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn folder_walks_skip_fifos_without_opening_them() {
    let dir = temp("fifo-walk");
    std::fs::write(dir.join("bad.uh"), BAD).unwrap();
    // No writer ever opens it: opening it for reading would block forever.
    mkfifo(&dir.join("pipe.uh"));
    let out = uhc().arg("check").arg(&dir).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("note: skipped") && err.contains("pipe.uh: not a regular file (a FIFO)"),
        "{err}"
    );
    assert!(err.contains("checked 1 file(s)"), "{err}");
}

/// A FIFO named explicitly is read like any file, through the bound: an endless writer
/// gets "larger than 16 MiB", not an ever-growing process. Cannot hang: if `uhc` never
/// opens the FIFO, the test opens it itself (non-blocking) to release the writer.
#[cfg(unix)]
#[test]
fn a_named_fifo_is_read_with_the_bound() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = temp("fifo-named");
    let fifo = dir.join("stream.uh");
    mkfifo(&fifo);
    let child = uhc()
        .arg("check")
        .arg(&fifo)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        // Blocks until a reader opens the FIFO.
        let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return 0usize;
        };
        let chunk = vec![b' '; 1 << 20];
        let mut sent = 0;
        // Far more than the bound; stops when the reader goes away (EPIPE).
        for _ in 0..64 {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    // Release the writer if uhc never opened the FIFO (then the assertions below fail).
    let release = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    drop(release);
    let sent = writer.join().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
    assert!(sent >= 16 << 20, "the writer sent {sent} bytes");
    assert!(sent < 64 << 20, "uhc read to the end: {sent} bytes");
}

// ---------------------------------------------------------------- weights that lie

fn weights_dir() -> PathBuf {
    super::root().join("tests/data/weights")
}

/// Every file in `tests/data/weights/expected.tsv` is evaluated; each must give its exit
/// code and message. The lying files are the valid one with one lie each.
#[test]
fn lying_weight_files_are_refused_with_what_is_wrong() {
    let dir = weights_dir();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut cases = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "file, task, flags, exit, message: {line}");
        let (file, task, flags, code, expect) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let mut cmd = uhc();
        cmd.args(["eval", "tiny.uh", "--arch", "tiny", "--task", task])
            .args(["--draws", "1", "--json", "--weights", file])
            .current_dir(&dir);
        cmd.args(flags.split_whitespace());
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(code.parse::<i32>().unwrap()),
            "{file}: {err}"
        );
        assert!(
            err.contains(expect),
            "{file}: expected `{expect}` in:\n{err}"
        );
        if code == "0" {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(v["accuracy"].as_f64().is_some(), "{file}: {v}");
        } else {
            assert!(out.stdout.is_empty(), "{file}: no figures on failure");
        }
        cases += 1;
    }
    assert!(cases >= 15, "only {cases} cases in expected.tsv");
    // And every lying file in the folder has a row.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            assert!(
                table.lines().any(|l| l.starts_with(&format!("{name}\t"))),
                "{name} has no row in expected.tsv"
            );
        }
    }
}

/// A small MZI architecture: `depth` linear layers of `width` (modrelu between), then 10.
fn arch_text(name: &str, width: usize, depth: usize, modrelu: bool) -> String {
    let mut s = format!("arch {name} on mzi_realistic {{\n    input x: real[4]\n");
    let mut prev = "x".to_string();
    for k in 0..depth {
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!("    h{k} = linear({prev}, {width})\n"),
        );
        prev = format!("h{k}");
        if modrelu {
            let _ = std::fmt::Write::write_fmt(
                &mut s,
                format_args!("    a{k} = modrelu({prev}, bias = 0.1)\n"),
            );
            prev = format!("a{k}");
        }
    }
    s + &format!("    y = linear({prev}, 10)\n    output detect(y)\n}}\n")
}

fn compile_two(a: &str, b: &str) -> uhc::Compiled {
    let text = std::fs::read_to_string(weights_dir().join("tiny.uh")).unwrap();
    let head = &text[..text.find("arch tiny ").unwrap()];
    let mut sources = uhc::Sources::new();
    let root = sources.add("lying.uh", format!("{head}{a}{b}"));
    let (compiled, diags) = uhc::compile(&mut sources, root, &uhc::check::StdlibResolver);
    assert!(diags.is_empty(), "{}", sources.render_human(&diags, false));
    compiled.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Valid weights of one architecture never load into another: not as written, and not
    /// with the hash forged to the other's (the node-by-node checks refuse them then).
    #[test]
    fn weights_of_another_architecture_are_refused(
        (wa, da, ma) in (2usize..=8, 1usize..=3, any::<bool>()),
        (wb, db, mb) in (2usize..=8, 1usize..=3, any::<bool>()),
        seed in 0u64..1000,
    ) {
        prop_assume!((wa, da, ma) != (wb, db, mb));
        let compiled = compile_two(&arch_text("one", wa, da, ma), &arch_text("two", wb, db, mb));
        let task = compiled.checked.task("digits2").unwrap().clone();
        let (ga, gb) = (compiled.graph("one").unwrap(), compiled.graph("two").unwrap());
        let trained = uhc::runtime::Program::new(ga, seed).unwrap();
        let how = uhc::train::file::Provenance { seed, epochs: 1, noise_aware: false };
        let mut file = uhc::train::file::to_file(&trained, &task, how);
        // The file is valid: it loads into its own architecture.
        let mut own = uhc::runtime::Program::new(ga, seed + 1).unwrap();
        prop_assert!(uhc::train::file::load(&file, &mut own, &task, false).is_ok());
        let text = serde_json::to_string(&file).unwrap();
        prop_assert!(uhc::train::file::parse(&text).is_ok());
        let mut other = uhc::runtime::Program::new(gb, 0).unwrap();
        let before = other.params.clone();
        let err = uhc::train::file::load(&file, &mut other, &task, true).unwrap_err();
        prop_assert!(err.contains("differs from"), "{}", err);
        file.hash = uhc::ir::structural_hash(gb);
        let err = uhc::train::file::load(&file, &mut other, &task, true);
        prop_assert!(err.is_err(), "forged hash accepted: ({wa},{da},{ma}) into ({wb},{db},{mb})");
        prop_assert_eq!(other.params.blocks, before.blocks, "a refused file changed nothing");
    }
}

// ---------------------------------------------------------------- run stores

/// The search example shrunk to seconds (as in cli_search.rs), with its own changes.
fn search_file(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text =
        std::fs::read_to_string(super::root().join("examples/digits_search.uh")).expect("example");
    text = text
        .replace(
            "train { epochs = 20, batch = 32, lr = 0.01, noise_aware = false }",
            "train { epochs = 1, batch = 64, lr = 0.02, noise_aware = false }",
        )
        .replace("eval { draws = 20 }", "eval { draws = 2 }");
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write search file");
    path
}

fn store_counts(db: &Path) -> (u64, u64) {
    let store = Store::open_read_only(db, StoreOptions::default()).unwrap();
    let c = store.counts_by_state().unwrap();
    (c.total(), c.get(CandidateState::Done))
}

fn search(dir: &Path, file: &Path, db: &Path, budget: &str) -> Output {
    uhc()
        .args(["search"])
        .arg(file)
        .arg("--db")
        .arg(db)
        .args(["--budget", budget, "--jobs", "1"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .output()
        .unwrap()
}

/// A store keeps one search. Each row: an edit of the search file, and what the refusal
/// must name. Edits that keep the archive meaningful (budget, population, comments) pass.
#[test]
fn a_store_of_another_search_is_refused_with_what_differs() {
    let dir = temp("foreign");
    let db = dir.join("run.sqlite");
    let base = search_file(&dir, "base.uh", &[]);
    let out = search(&dir, &base, &db, "2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = store_counts(&db);
    assert_eq!(before.1, 2);
    let foreign: &[(&str, &str, &str)] = &[
        (
            "search digits_mzi {",
            "search other_run {",
            "the search's name: `digits_mzi` → `other_run`",
        ),
        (
            "hardware = mzi_realistic",
            "hardware = mzi_worst",
            "the hardware profile: `mzi_realistic` → `mzi_worst`",
        ),
        (
            "test = 0.2, seed = 0 }",
            "test = 0.2, seed = 7 }",
            "the task: `digits4` is defined differently",
        ),
        (
            "minimize(energy)]",
            "minimize(mzi_count)]",
            "the objectives and constraints",
        ),
        (
            "constraint energy <= 5 nJ",
            "constraint energy <= 4 nJ",
            "the objectives and constraints",
        ),
        (
            "mutate(0.7), crossover(0.3)",
            "mutate(0.5), crossover(0.5)",
            "the operators: mutate=0.7,crossover=0.3 → mutate=0.5,crossover=0.5",
        ),
        (
            "draws = 2 }",
            "draws = 3 }",
            "the evaluation (training settings or noise draws)",
        ),
    ];
    for (k, (from, to, expect)) in foreign.iter().enumerate() {
        let file = search_file(&dir, &format!("foreign{k}.uh"), &[(from, to)]);
        let out = search(&dir, &file, &db, "4");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(
            err.contains("holds the run of search `digits_mzi`"),
            "{to}: {err}"
        );
        assert!(err.contains(expect), "{to}: expected `{expect}` in\n{err}");
        assert_eq!(store_counts(&db), before, "{to}: the store was changed");
    }
    // Allowed: a comment, a population change, and a larger budget.
    let same = search_file(
        &dir,
        "same.uh",
        &[
            ("population = 20", "population = 21 // more"),
            ("// A co-design", "// Edited: a co-design"),
        ],
    );
    let out = search(&dir, &same, &db, "3");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(store_counts(&db).1, 3);
}

#[cfg(unix)]
#[test]
fn reports_read_read_only_stores_and_searches_refuse_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp("readonly");
    let folder = dir.join("ro");
    std::fs::create_dir(&folder).unwrap();
    let db = folder.join("run.sqlite");
    let file = search_file(&dir, "base.uh", &[]);
    let out = search(&dir, &file, &db, "1");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing = |f: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(f)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing(&folder), ["run.sqlite"]);
    let bytes = std::fs::read(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();

    let out = uhc()
        .arg("report")
        .arg(&db)
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .unwrap();
    let report_err = stderr(&out);
    let report_code = out.status.code();
    let after_report = listing(&folder);

    let out = search(&dir, &file, &db, "2");
    let search_err = stderr(&out);
    let search_code = out.status.code();
    let after_search = listing(&folder);
    let unchanged = std::fs::read(&db).unwrap() == bytes;

    // Writable again before asserting, so the folder can be cleaned up.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(report_code, Some(0), "{report_err}");
    assert_eq!(after_report, ["run.sqlite"], "report left files behind");
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(md.contains("| digits_mzi on mzi_realistic | 1 |"), "{md}");
    assert_eq!(search_code, Some(2), "{search_err}");
    assert!(search_err.contains("is read-only"), "{search_err}");
    assert_eq!(after_search, ["run.sqlite"], "search left files behind");
    assert!(unchanged, "the store's bytes changed");
    // The store still resumes once writable.
    let out = search(&dir, &file, &db, "2");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(store_counts(&db).1, 2);
}

// ---------------------------------------------------------------- processes and signals

/// Polls (bounded) until `done` holds of the store, or the child ends.
#[cfg(unix)]
fn wait_for(db: &Path, child: &mut std::process::Child, what: &str, done: impl Fn(&Store) -> bool) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(store) = Store::open_read_only(db, StoreOptions::default()) {
            if done(&store) {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the search ended ({status}) before {what}");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "not {what} within 300 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(unix)]
fn kill(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: a plain kill(2) on our own child.
    let r = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(r, 0, "kill failed");
}

/// One process writes a run at a time. The first is frozen (SIGSTOP) while it holds the
/// run, so the second surely meets a live writer; it is refused with the writer's pid and
/// host, and the first, resumed, finishes with none of its leases taken.
#[cfg(unix)]
#[test]
fn a_second_process_on_a_store_is_refused_and_the_first_keeps_its_leases() {
    let dir = temp("two-processes");
    let db = dir.join("run.sqlite");
    let file = search_file(&dir, "base.uh", &[]);
    let mut first = uhc()
        .arg("search")
        .arg(&file)
        .arg("--db")
        .arg(&db)
        .args(["--budget", "12", "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    wait_for(&db, &mut first, "it took the run", |s| {
        s.writer().ok().flatten().is_some_and(|w| w.pid == pid)
    });
    // Frozen inside one of its short write transactions, the first holds SQLite's lock,
    // and the second is refused with "database is locked" before it can read who writes:
    // also a refusal, but not the one under test. Then the first runs on a little (it is
    // still the writer: its budget is far from spent) and is frozen again.
    let mut second = None;
    for _ in 0..50 {
        kill(&first, libc::SIGSTOP);
        let out = search(&dir, &file, &db, "4");
        kill(&first, libc::SIGCONT);
        let err = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(0),
            "the second wrote the run:\n{err}"
        );
        if !err.contains("locked") {
            second = Some(out);
            break;
        }
        let done = |s: &Store| s.counts_by_state().map_or(0, |c| c.done);
        let before = Store::open_read_only(&db, StoreOptions::default()).map_or(0, |s| done(&s));
        wait_for(&db, &mut first, "it evaluated another candidate", |s| {
            done(s) > before
        });
    }
    let second = second.expect("the second never met the first outside a write transaction");
    let out = first.wait_with_output().unwrap();
    let first_err = stderr(&out);
    let second_err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{second_err}");
    assert!(
        second_err.contains(&format!("is being written by process {pid} on host ")),
        "{second_err}"
    );
    assert_eq!(out.status.code(), Some(0), "{first_err}");
    assert!(!first_err.contains("no longer leased"), "{first_err}");
    let store = Store::open_read_only(&db, StoreOptions::default()).unwrap();
    let counts = store.counts_by_state().unwrap();
    assert_eq!((counts.done, counts.failed), (12, 0), "{counts:?}");
    assert_eq!(
        store.writer().unwrap(),
        None,
        "the run was given up at the end"
    );
}

/// Started at the same moment, either may win; the loser is refused with a clear message
/// (never "database is locked"), and the run ends complete.
#[cfg(unix)]
#[test]
fn two_processes_started_together_do_not_corrupt_or_steal() {
    let dir = temp("two-together");
    let db = dir.join("run.sqlite");
    let file = search_file(&dir, "base.uh", &[]);
    let spawn = || {
        uhc()
            .arg("search")
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .args(["--budget", "3", "--jobs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for out in &outs {
        let err = stderr(out);
        assert!(!err.contains("database is locked"), "{err}");
        assert!(!err.contains("no longer leased"), "{err}");
        match out.status.code() {
            Some(0) => {}
            Some(2) => assert!(err.contains("is being written by process"), "{err}"),
            other => panic!("exit {other:?}: {err}"),
        }
    }
    assert!(outs.iter().any(|o| o.status.success()));
    let counts = Store::open_read_only(&db, StoreOptions::default())
        .unwrap()
        .counts_by_state()
        .unwrap();
    assert_eq!(
        (counts.done, counts.failed, counts.running),
        (3, 0, 0),
        "{counts:?}"
    );
}

/// SIGINT and SIGTERM stop a search the way its budget does: the evaluation in flight is
/// finished and stored, the command says how far it got and exits 130, and the same
/// command resumes.
#[cfg(unix)]
#[test]
fn a_signal_stops_the_search_cleanly_and_the_same_command_resumes() {
    for (name, signal) in [("int", libc::SIGINT), ("term", libc::SIGTERM)] {
        let dir = temp(&format!("signal-{name}"));
        let db = dir.join("run.sqlite");
        let file = search_file(&dir, "base.uh", &[]);
        let mut child = uhc()
            .arg("search")
            .arg(&file)
            .arg("--db")
            .arg(&db)
            .args(["--budget", "40", "--jobs", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&db, &mut child, "one evaluation was stored", |s| {
            s.counts_by_state().is_ok_and(|c| c.done >= 1)
        });
        kill(&child, signal);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "{name}: {err}");
        let store = Store::open_read_only(&db, StoreOptions::default()).unwrap();
        let counts = store.counts_by_state().unwrap();
        let n = counts.done + counts.failed + counts.timeout;
        assert!(
            err.contains(&format!(
                "stopped after {n} evaluations ({n} this session); run the same command to resume"
            )),
            "{name}: {err}"
        );
        assert_eq!(counts.running, 0, "{name}: work left in flight: {counts:?}");
        assert!(n < 40, "{name}: the budget ran out first");
        assert_eq!(
            store.writer().unwrap(),
            None,
            "{name}: the run was given up"
        );
        drop(store);
        let resumed = search(&dir, &file, &db, &(n + 1).to_string());
        assert_eq!(
            resumed.status.code(),
            Some(0),
            "{name}: {}",
            stderr(&resumed)
        );
        let after = Store::open_read_only(&db, StoreOptions::default())
            .unwrap()
            .counts_by_state()
            .unwrap();
        assert_eq!(after.done + after.failed + after.timeout, n + 1, "{name}");
    }
}

// ---------------------------------------------------------------- messages

/// Data paths are resolved next to the `.uh` file that names them, as `use` paths are,
/// and the error says where uhc looked.
#[test]
fn data_paths_are_relative_to_the_task_file() {
    let dir = temp("data-paths");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let text = std::fs::read_to_string(weights_dir().join("tiny.uh"))
        .unwrap()
        .replace(
            "task digits2 {\n    dataset = digits\n    encode [pool(4), standardize]",
            "task digits2 {\n    dataset = csv(\"rows.csv\", label = last)\n    encode [standardize]",
        );
    std::fs::write(dir.join("sub/tiny.uh"), text).unwrap();
    // Decoy next to the current folder: must not be read.
    std::fs::write(dir.join("rows.csv"), "not,a,valid\ncsv\n").unwrap();
    let eval = || {
        uhc()
            .args(["eval", "sub/tiny.uh", "--arch", "tiny", "--task", "digits2"])
            .args(["--draws", "1", "--epochs", "1", "--json"])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = eval();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read `sub/rows.csv`"), "{err}");
    assert!(err.contains("next to the `.uh` file"), "{err}");
    // 4 features and a label per row, five rows per class.
    let mut rows = String::new();
    for k in 0..50 {
        rows += &format!("{},{},{},{},{}\n", k % 3, k % 5, k % 7, k % 2, k % 10);
    }
    std::fs::write(dir.join("sub/rows.csv"), rows).unwrap();
    let out = eval();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "digits2");
    // Weights trained from one folder are for the same task seen from another.
    let out = uhc()
        .args([
            "train",
            "sub/tiny.uh",
            "--arch",
            "tiny",
            "--task",
            "digits2",
        ])
        .args(["--epochs", "1", "--out", "w.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = uhc()
        .args(["eval", "tiny.uh", "--arch", "tiny", "--task", "digits2"])
        .args(["--draws", "1", "--weights", "../w.json"])
        .current_dir(dir.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// A file that cannot be read is exit 2 whether it is a data file or a weight file.
#[test]
fn missing_data_and_missing_weights_exit_alike() {
    let dir = temp("missing");
    let text = std::fs::read_to_string(weights_dir().join("tiny.uh"))
        .unwrap()
        .replace(
            "task digits2 {\n    dataset = digits",
            "task digits2 {\n    dataset = csv(\"absent.csv\", label = last)",
        );
    std::fs::write(dir.join("tiny.uh"), text).unwrap();
    let run = |extra: &[&str]| {
        uhc()
            .args([
                "eval", "tiny.uh", "--arch", "tiny", "--task", "digits2", "--draws", "1",
                "--epochs", "1",
            ])
            .args(extra)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let csv = run(&[]);
    let weights = run(&["--weights", "absent.json"]);
    assert_eq!(csv.status.code(), Some(2), "{}", stderr(&csv));
    assert!(stderr(&csv).contains("absent.csv"), "{}", stderr(&csv));
    assert_eq!(weights.status.code(), Some(2), "{}", stderr(&weights));
    assert!(
        stderr(&weights).contains("cannot read absent.json"),
        "{}",
        stderr(&weights)
    );
}

/// Overlaid runs: the report says which are comparable, and adding a run changes none of
/// another run's figures (each run has its own reference point).
#[test]
fn an_overlay_names_what_differs_and_changes_no_run_figures() {
    let dir = temp("overlay");
    let a = search_file(&dir, "a.uh", &[]);
    let b = search_file(
        &dir,
        "b.uh",
        &[("hardware = mzi_realistic", "hardware = mzi_worst")],
    );
    for (file, db) in [(&a, "a.sqlite"), (&b, "b.sqlite"), (&a, "a2.sqlite")] {
        let out = search(&dir, file, &dir.join(db), "3");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let report = |dbs: &[&str], out: &str| -> String {
        let o = uhc()
            .arg("report")
            .args(dbs.iter().map(|d| dir.join(d)))
            .arg("--out")
            .arg(dir.join(out))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        std::fs::read_to_string(dir.join(out).join("report.md")).unwrap()
    };
    let row = |md: &str, label: &str| -> String {
        md.lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row for {label}:\n{md}"))
            .to_string()
    };
    let alone = report(&["a.sqlite"], "alone");
    let mixed = report(&["a.sqlite", "b.sqlite"], "mixed");
    let same = report(&["a.sqlite", "a2.sqlite"], "same");
    let a_row = row(&alone, "digits_mzi on mzi_realistic");
    assert_eq!(row(&mixed, "digits_mzi on mzi_realistic"), a_row, "{mixed}");
    assert!(!alone.contains("## Comparability"), "{alone}");
    assert!(
        mixed.contains("group 2: `digits_mzi on mzi_worst` (differs from group 1 in the hardware profile: `mzi_realistic` → `mzi_worst`)"),
        "{mixed}"
    );
    assert!(
        mixed.contains("only runs of one group are comparable"),
        "{mixed}"
    );
    assert!(
        same.contains("All runs share their task, hardware profile and objectives"),
        "{same}"
    );
}
