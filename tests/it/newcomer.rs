//! What a newcomer meets (issue 16): outputs that agree, counts that add up, empty fronts
//! explained, rows that reproduce bit for bit, help on every flag. Real binary, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn uhc(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uhc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("UHC_LLM_URL")
        .env_remove("UHC_LLM_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("uhc runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The search example shrunk to seconds (1 epoch, 2 draws), with `extra` replacing its
/// energy constraint.
fn small_search(dir: &Path, constraint: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(super::root().join("examples/digits_search.uh")).expect("example");
    let text = text
        .replace(
            "train { epochs = 20, batch = 32, lr = 0.01, noise_aware = false }",
            "train { epochs = 1, batch = 64, lr = 0.02, noise_aware = false }",
        )
        .replace("eval { draws = 20 }", "eval { draws = 2 }")
        .replace("constraint energy <= 5 nJ", constraint);
    let path = dir.join("search.uh");
    std::fs::write(&path, text).expect("write search file");
    path
}

/// "this session: P proposals [+ C carried over …] = E evaluated + F failed + R rejected by
/// the compiler + D duplicates + Q still queued" → (P + C, E + F + R + D + Q).
fn session_sums(stderr: &str) -> (usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("this session: "))
        .unwrap_or_else(|| panic!("no session line in:\n{stderr}"));
    let (left, right) = line.split_once(" = ").expect("an equation");
    let numbers = |s: &str| -> Vec<usize> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let l: usize = numbers(left).iter().sum();
    let r = numbers(right);
    assert_eq!(r.len(), 5, "five parts on the right: {line}");
    (l, r.iter().sum())
}

#[test]
fn search_counts_add_up_and_rows_reproduce_bit_for_bit() {
    let dir = temp("newcomer-repro");
    let file = small_search(&dir, "constraint energy <= 5 nJ");
    let out = uhc(
        &["search", "search.uh", "--db", "run.sqlite", "--budget", "3"],
        &dir,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (proposals, accounted) = session_sums(&err);
    assert_eq!(proposals, accounted, "{err}");
    assert!(proposals >= 3, "{err}");

    // Resuming with a larger budget: what the first session left queued is carried over.
    let out = uhc(
        &["search", "search.uh", "--db", "run.sqlite", "--budget", "4"],
        &dir,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let (proposals, accounted) = session_sums(&err);
    assert_eq!(proposals, accounted, "{err}");

    // Every evaluated row reproduces exactly.
    let store = uhc::search::store::Store::open_read_only(
        dir.join("run.sqlite"),
        uhc::search::store::StoreOptions::default(),
    )
    .expect("store");
    let done = store.load_archive().expect("archive");
    assert!(!done.is_empty());
    let row = &done[0];
    let training = &row.evaluation.as_ref().unwrap().metrics.extras["training"];
    assert!(training["seed"].is_u64(), "{training}");
    assert_eq!(training["epochs"], 1);
    assert_eq!(training["draws"], 2);
    let id = row.id.to_string();
    let out = uhc(
        &[
            "eval",
            file.to_str().unwrap(),
            "--from",
            "run.sqlite",
            "--candidate",
            &id,
            "--json",
        ],
        &dir,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("bit for bit"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let m = &row.evaluation.as_ref().unwrap().metrics;
    assert_eq!(
        v["accuracy"].as_f64().unwrap().to_bits(),
        m.accuracy.to_bits()
    );
    assert_eq!(
        v["noisy_accuracy_mean"].as_f64().unwrap().to_bits(),
        m.noisy_accuracy_mean.to_bits()
    );
    assert_eq!(v["reproduced"], true);

    // A candidate that does not exist is a usage error, not a panic.
    let out = uhc(
        &[
            "eval",
            "search.uh",
            "--from",
            "run.sqlite",
            "--candidate",
            "99999",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // The report gives the command for each front row.
    let out = uhc(&["report", "run.sqlite", "--out", "rep"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(dir.join("rep/report.md")).expect("report.md");
    assert!(
        md.contains("--from run.sqlite --candidate"),
        "no reproduce command in the report:\n{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_front_is_explained() {
    let dir = temp("newcomer-empty");
    small_search(&dir, "constraint energy <= 1 pJ");
    let out = uhc(
        &["search", "search.uh", "--db", "run.sqlite", "--budget", "2"],
        &dir,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Pareto front (validation split): 0 candidates"),
        "{err}"
    );
    let why = err
        .lines()
        .find(|l| l.starts_with("constraints: "))
        .unwrap_or_else(|| panic!("the empty front is not explained:\n{err}"));
    assert!(
        why.contains("all 2 evaluated candidates exceed energy <= 1 pJ; the lowest was "),
        "{why}"
    );
    assert!(why.ends_with(" pJ"), "{why}");
    let out = uhc(&["report", "run.sqlite", "--out", "rep"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(dir.join("rep/report.md")).expect("report.md");
    assert!(md.contains("why its front is empty"), "{md}");
    assert!(md.contains("exceed energy <= 1 pJ"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_takes_hardware_and_speaks_si() {
    let root = super::root();
    let energy = |hw: Option<&str>| {
        let mut args = vec!["compile", "examples/digits_small.uh", "--emit", "json"];
        if let Some(h) = hw {
            args.extend(["--hardware", h]);
        }
        let out = uhc(&args, root);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(v["energy"]["components"]["laser_j"].is_f64());
        assert!(v["energy"]["segments"][0]["laser_electrical_w"].is_f64());
        (
            v["energy"]["total_j"].as_f64().unwrap(),
            v["hardware"]["name"].clone(),
        )
    };
    let (own, name) = energy(None);
    assert_eq!(name, "mzi_realistic");
    assert!((own - 421.774e-12).abs() < 1e-15, "{own}");
    let (worst, name) = energy(Some("mzi_worst"));
    assert_eq!(name, "mzi_worst");
    assert!(worst > 1000.0 * own, "{worst} vs {own}");
    // Another backend kind, or a profile that does not exist: usage errors.
    for hw in ["cpu_fp32", "no_such_profile"] {
        let out = uhc(
            &["compile", "examples/digits_small.uh", "--hardware", hw],
            root,
        );
        assert_eq!(out.status.code(), Some(2), "{hw}");
    }
    // The energy breakdown has no raw pJ figures above 1000.
    let out = uhc(
        &[
            "compile",
            "examples/digits_small.uh",
            "--hardware",
            "mzi_worst",
            "--emit",
            "energy",
        ],
        root,
    );
    let s = text(&out.stdout);
    assert!(s.starts_with("energy per inference: 21."), "{s}");
    assert!(s.contains(" µJ") || s.contains(" uJ"), "{s}");
}

#[test]
fn eval_checks_the_input_width_before_loading_data() {
    let dir = temp("newcomer-width");
    std::fs::write(
        dir.join("wide.uh"),
        "use \"hw/mzi.uh\"\n\ntask digits4 {\n    dataset = digits\n    encode [pool(2), standardize]\n}\n\narch w on mzi_realistic {\n    input x: real[12]\n    h = linear(x, 12)\n    y = linear(modrelu(h), 10)\n    output detect(y)\n}\n",
    )
    .unwrap();
    for cmd in ["eval", "train"] {
        let out = uhc(
            &[cmd, "wide.uh", "--task", "digits4", "--out", "w.json"]
                [..if cmd == "eval" { 4 } else { 6 }],
            &dir,
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains("uh::check::shape"), "{cmd}: {err}");
        assert!(
            err.contains("takes 12 inputs but task `digits4` has 16 features"),
            "{err}"
        );
        assert!(
            !err.contains("epoch"),
            "{cmd} trained before checking: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every argument and flag of every subcommand says what it is for.
#[test]
fn every_flag_has_help() {
    let subcommands = [
        "check", "compile", "search", "worker", "report", "train", "eval", "grammar", "fix", "fmt",
    ];
    let mut bare = Vec::new();
    for sub in subcommands {
        let out = uhc(&[sub, "-h"], super::root());
        assert!(out.status.success(), "{sub} -h");
        let help = text(&out.stdout);
        let mut section = false;
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().copied().enumerate() {
            if line == "Options:" || line == "Arguments:" {
                section = true;
                continue;
            }
            if line.is_empty() {
                section = false;
                continue;
            }
            if !section || !line.starts_with("  ") {
                continue;
            }
            let t = line.trim_start();
            // "--flag <VALUE>  Help…" or "<ARG>  Help…": text after two spaces.
            let described = t
                .split_once("  ")
                .map(|(_, rest)| rest.trim_start())
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('['))
                // Long flags get their help on the next, deeper-indented line.
                || lines.get(i + 1).is_some_and(|next| {
                    let n = next.trim_start();
                    next.len() - n.len() > line.len() - t.len()
                        && !n.is_empty()
                        && !n.starts_with('-')
                        && !n.starts_with('[')
                });
            if !described && (t.starts_with('-') || t.starts_with('<') || t.starts_with('[')) {
                bare.push(format!("uhc {sub}: {t}"));
            }
        }
    }
    assert!(bare.is_empty(), "flags without help:\n{}", bare.join("\n"));
}

/// A profile whose laser delivers less light than any candidate needs: every candidate is
/// evaluated but infeasible, and the summary says it is the laser budget.
#[test]
fn the_laser_budget_is_a_constraint_in_the_search() {
    let dir = temp("newcomer-laser");
    let path = small_search(&dir, "constraint energy <= 5 nJ");
    let src = std::fs::read_to_string(&path).unwrap();
    let src = src.replace(
        "    hardware = mzi_realistic\n",
        "    hardware = dim_laser\n",
    ) + "\nhardware dim_laser extends mzi_realistic {\n    energy { max_laser_power = 50 mW }\n}\n";
    std::fs::write(&path, src).unwrap();
    let out = uhc(
        &["search", "search.uh", "--db", "run.sqlite", "--budget", "2"],
        &dir,
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Pareto front (validation split): 0 candidates"),
        "{err}"
    );
    assert!(
        err.contains(
            "constraints: all 2 evaluated candidates exceed laser_power <= 50 mW; the lowest was "
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A row written before uhc recorded training seeds cannot be repeated exactly: `eval
/// --from` says so instead of evaluating something else.
#[test]
fn a_row_without_its_seed_is_refused_with_a_reason() {
    use uhc::search::store::{Disposition, Evaluation, Metrics, NewCandidate, Store, StoreOptions};
    let dir = temp("newcomer-old-row");
    let db = dir.join("old.sqlite");
    let (mut store, _) =
        Store::open_or_create(&db, "{}", 0, StoreOptions::default()).expect("store");
    let id = store
        .insert_proposal(
            &NewCandidate {
                text: "arch a on mzi_realistic {}".into(),
                canonical_text: None,
                structural_hash: Some("00".into()),
                parents: Vec::new(),
                operator: "seed".into(),
                generation: 0,
            },
            &Disposition::Queued,
        )
        .expect("insert")
        .id();
    let claimed = store
        .claim_next("uhc-old", std::time::Duration::from_secs(60))
        .expect("claim")
        .expect("queued");
    assert_eq!(claimed.id, id);
    store
        .record_evaluation(
            id,
            "uhc-old",
            &Evaluation {
                metrics: Metrics {
                    accuracy: 0.9,
                    energy_pj: 400.0,
                    ..Metrics::default()
                },
                wall_time_s: 1.0,
            },
        )
        .expect("record");
    drop(store);
    let file = super::root().join("examples/digits_search.uh");
    let out = uhc(
        &[
            "eval",
            file.to_str().unwrap(),
            "--from",
            "old.sqlite",
            "--candidate",
            &id.to_string(),
        ],
        &dir,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not record its training seed and settings"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A misspelt op reads its inputs all the same: no "unused" warning on top of the
/// did-you-mean, at any depth of nesting; an input nobody reads still warns.
#[test]
fn a_typo_in_an_op_does_not_make_its_input_unused() {
    let check = |body: &str| {
        let text = format!(
            "use \"hw/mzi.uh\"\n\narch a on mzi_realistic {{\n    input x: real[16]\n{body}}}\n"
        );
        let (_, diags, _) = uhc::check_source_with("t.uh", &text, &uhc::check::StdlibResolver);
        diags.iter().map(|d| d.code).collect::<Vec<_>>()
    };
    let codes = check("    h = linear(x, 16)\n    y = linaer(h, 10)\n    output detect(y)\n");
    assert_eq!(codes, vec!["uh::check::op"], "{codes:?}");
    let codes =
        check("    h = linear(x, 16)\n    y = linaer(modrelu(h), 10)\n    output detect(y)\n");
    assert_eq!(codes, vec!["uh::check::op"], "{codes:?}");
    let codes = check("    h = linear(x, 16)\n    g = linear(x, 16)\n    y = linaer(h, 10)\n    output detect(y)\n");
    assert_eq!(
        codes,
        vec!["uh::check::unused", "uh::check::op"],
        "{codes:?}"
    );
}

#[test]
fn laser_powers_read_with_si_prefixes() {
    use uhc::ir::energy::format_power;
    assert_eq!(format_power(0.283374), "283.374 mW");
    assert_eq!(format_power(5.169), "5.169 W");
    assert_eq!(format_power(21496.114), "21.496 kW");
    assert_eq!(format_power(48.2e3), "48.2 kW");
    assert_eq!(format_power(3.0e6), "3 MW");
}
