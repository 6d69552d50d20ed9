//! `uhc experiment` end to end on real files: the grid runs one store per run, a rerun
//! resumes (evaluating nothing twice), `uhc report FILE.uh` compares the cells with their
//! statistics, and a mix with an LLM operator talks to a real (scripted) server on loopback.

use super::llm_server::{Reply, ScriptedServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn uhc(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_uhc"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("UHC_LLM_URL")
        .env_remove("UHC_LLM_MODEL")
        .env_remove("OPENAI_BASE_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("uhc runs")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-exp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A cheap search (2 epochs, 2 draws, 6 evaluations) and an experiment over `mixes`.
fn write_file(dir: &Path, mixes: &str, repeats: usize) {
    let text = format!(
        "use \"hw/mzi.uh\"\n\ntask digits4 {{\n    dataset = digits\n    encode [pool(2), standardize]\n}}\n\narch seed_small on mzi_realistic {{\n    input x: real[16]\n    h = linear(x, 8)\n    output detect(linear(modrelu(h), 10))\n}}\n\nsearch tiny {{\n    task = digits4\n    seeds [seed_small]\n    constraint energy <= 5 nJ\n    population = 4\n    offspring = 2\n    train {{ epochs = 2, batch = 64 }}\n    eval {{ draws = 2 }}\n}}\n\nexperiment grid {{\n    search = tiny\n    operators {{ {mixes} }}\n    budgets [6]\n    repeats = {repeats}\n}}\n"
    );
    std::fs::write(dir.join("exp.uh"), text).expect("write");
}

#[test]
fn a_grid_runs_every_cell_resumes_and_compares_them() {
    let dir = temp("grid");
    write_file(
        &dir,
        "random = [random], evolution = [mutate(0.7), crossover(0.3)]",
        2,
    );
    let out = uhc(&["experiment", "exp.uh"], &dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{err}");
    for store in [
        "mzi_realistic-random-b6-s0.sqlite",
        "mzi_realistic-random-b6-s1.sqlite",
        "mzi_realistic-evolution-b6-s0.sqlite",
        "mzi_realistic-evolution-b6-s1.sqlite",
    ] {
        assert!(dir.join("grid").join(store).is_file(), "no {store}:\n{err}");
    }
    assert_eq!(err.matches("6 evaluated this session").count(), 4, "{err}");
    // One row per cell, both mixes compared, one shared reference stated.
    assert!(md.contains("| mzi_realistic | random | 6 | 2 |"), "{md}");
    assert!(md.contains("| mzi_realistic | evolution | 6 | 2 |"), "{md}");
    assert!(
        md.contains("**random vs evolution** on mzi_realistic, budget 6"),
        "{md}"
    );
    assert!(md.contains("Mann–Whitney U"), "{md}");
    assert!(md.contains("up to 5 nJ (the search's constraint)"), "{md}");
    assert!(dir.join("grid/report/pareto.svg").is_file());
    // A second run resumes every store and evaluates nothing again.
    let again = uhc(&["experiment", "exp.uh"], &dir, &[]);
    let err2 = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(again.status.success(), "{err2}");
    assert_eq!(
        err2.matches("0 evaluated this session").count(),
        4,
        "{err2}"
    );
    // The comparison again from the stores alone, into another folder.
    let report = uhc(&["report", "exp.uh", "--out", "again"], &dir, &[]);
    assert!(report.status.success());
    let md2 = std::fs::read_to_string(dir.join("again/report.md")).unwrap();
    assert_eq!(md2, md, "the report is the same each time it is written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_llm_mix_needs_an_llm_and_uses_the_one_given() {
    let dir = temp("llm");
    write_file(&dir, "llm = [llm_mutate]", 1);
    // No LLM configured: a clear error naming the mix, before any store is written.
    let out = uhc(&["experiment", "exp.uh"], &dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("mix `llm` has LLM operators, but no LLM is configured"),
        "{err}"
    );
    let stores = std::fs::read_dir(dir.join("grid")).map_or(0, |d| d.count());
    assert_eq!(stores, 0, "a store was written before the refusal");
    // A scripted server: each reply a different valid design.
    let replies: Vec<Reply> = (0..12)
        .map(|i| {
            Reply::content(
                &format!(
                    "```uh\narch w{i} on mzi_realistic {{\n    input x: real[16]\n    h = linear(x, {})\n    output detect(linear(modrelu(h), 10))\n}}\n```",
                    4 + i
                ),
                100,
                50,
            )
        })
        .collect();
    let server = ScriptedServer::start(replies);
    let url = server.base_url();
    let out = uhc(
        &[
            "experiment",
            "exp.uh",
            "--llm-url",
            &url,
            "--llm-model",
            "scripted",
        ],
        &dir,
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(
        !server.received().is_empty(),
        "the LLM was never called:\n{err}"
    );
    assert!(err.contains("6 evaluated this session"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
