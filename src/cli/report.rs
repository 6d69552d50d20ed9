//! `uhc report RUN.sqlite… [--out DIR]`: Markdown and HTML with SVG figures.

use super::{EXIT_OK, EXIT_USAGE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use uhc::llm_ops::{tally, LlmStats};
use uhc::search::report::{self, RunData};
use uhc::search::store::{CandidateState, Location, Store, StoreOptions};

/// A run and what its LLM operators did (none when it used none).
struct Loaded {
    data: RunData,
    llm: Option<LlmRun>,
}

/// The LLM exchange log of a run, tallied.
struct LlmRun {
    stats: LlmStats,
    tokens: u64,
}

/// `path` is a run store's file or a `postgres://` URL.
fn load(path: &Path) -> Result<Loaded, String> {
    let location = Location::parse(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    let store =
        Store::open_read_only_at(&location, StoreOptions::default()).map_err(|e| e.to_string())?;
    let exchanges = store.exchanges().map_err(|e| e.to_string())?;
    let llm = (!exchanges.is_empty()).then(|| LlmRun {
        stats: tally(
            exchanges
                .iter()
                .map(|r| (r.exchange.operator.as_str(), r.exchange.outcome.as_str())),
        ),
        tokens: exchanges
            .iter()
            .map(|r| r.exchange.prompt_tokens + r.exchange.completion_tokens)
            .sum(),
    });
    let mut candidates = Vec::new();
    for s in CandidateState::ALL {
        candidates.extend(store.candidates_in_state(s).map_err(|e| e.to_string())?);
    }
    candidates.sort_by_key(|c| c.id);
    let config = store
        .run_info()
        .ok()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(&i.config).ok())
        .unwrap_or(serde_json::Value::Null);
    let label = Some(&config)
        .and_then(|v| {
            Some(format!(
                "{} on {}",
                v.get("search")?.as_str()?,
                v.get("spec")?.get("hardware")?.as_str()?
            ))
        })
        .unwrap_or_else(|| path.display().to_string());
    Ok(Loaded {
        data: RunData {
            label,
            candidates,
            config,
            store: Some(path.display().to_string()),
            test: store.test_scores().map_err(|e| e.to_string())?,
        },
        llm,
    })
}

/// A run store read for a report.
pub fn load_run(path: &Path) -> Result<RunData, String> {
    load(path).map(|l| l.data)
}

/// `reference_pj`: the energy of the comparison's reference point, if the user fixed one.
/// A single `.uh` file is an experiment: its runs' comparison is written.
pub fn run(dbs: &[PathBuf], out: &Path, reference_pj: Option<f64>) -> u8 {
    if let [file] = dbs {
        if file.extension().is_some_and(|e| e == "uh") {
            return super::experiment::report(file, None, None, out);
        }
    }
    let mut loaded = Vec::new();
    for db in dbs {
        match load(db) {
            Ok(r) => loaded.push(r),
            Err(e) => {
                eprintln!("error: {}: {e}", db.display());
                return EXIT_USAGE;
            }
        }
    }
    let llm: Vec<Option<LlmRun>> = loaded.iter_mut().map(|l| l.llm.take()).collect();
    let mut runs: Vec<RunData> = loaded.into_iter().map(|l| l.data).collect();
    // Runs of one search on one profile (repeats, other seeds or tasks) would share a
    // label: name those by their store too, so legends and tables tell them apart.
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    for run in &mut runs {
        if labels.iter().filter(|l| **l == run.label).count() > 1 {
            if let Some(store) = &run.store {
                run.label = format!("{} [{store}]", run.label);
            }
        }
    }
    // One space for the comparison: each run's own objectives and fixed references; a
    // reference a run does not fix is derived from all the runs given (and said to be).
    let all: Vec<&RunData> = runs.iter().collect();
    let reference_j = reference_pj.map(|pj| pj * 1e-12);
    let mut curves = Vec::new();
    for run in &runs {
        let space = run.space(&all, reference_j);
        curves.push((
            format!("{} (all)", run.label),
            report::hypervolume_curve(run, &space),
        ));
        let mut ops: Vec<&str> = run
            .candidates
            .iter()
            .map(|c| c.operator.as_str())
            .filter(|o| *o != "seed")
            .collect();
        ops.sort_unstable();
        ops.dedup();
        if ops.len() > 1 {
            for op in ops {
                let sub = RunData {
                    label: op.to_string(),
                    candidates: run
                        .candidates
                        .iter()
                        .filter(|c| c.operator == op || c.operator == "seed")
                        .cloned()
                        .collect(),
                    config: run.config.clone(),
                    store: None,
                    test: Default::default(),
                };
                curves.push((
                    format!("{}: {op} + seeds", run.label),
                    report::hypervolume_curve(&sub, &space),
                ));
            }
        }
    }
    let mut md = report::markdown(&runs);
    // One line per run on stdout: the figures to compare, in one space, at an equal
    // number of evaluations (the smallest any run reached) and at the end.
    let evaluated = |r: &RunData| {
        r.candidates
            .iter()
            .filter(|c| c.evaluation.is_some())
            .count()
    };
    let common = runs.iter().map(evaluated).min().unwrap_or(0);
    for ((run, llm), db) in runs.iter().zip(&llm).zip(dbs) {
        let space = run.space(&all, reference_j);
        let curve = report::hypervolume_curve(run, &space);
        let at = |n: usize| {
            curve
                .iter()
                .take_while(|p| p.0 <= n)
                .last()
                .map_or(0.0, |p| p.1)
        };
        println!(
            "{} [{}]: {} evaluated, hypervolume (validation) {:.4} at {common}, {:.4} at the end, front {}; {}{}",
            // The line names the store itself.
            run.label
                .strip_suffix(&format!(" [{}]", db.display()))
                .unwrap_or(&run.label),
            db.display(),
            evaluated(run),
            at(common),
            curve.last().map_or(0.0, |p| p.1),
            report::front(run).len(),
            space.describe(),
            if space.derived() && runs.len() > 1 {
                " over these runs; fix it with --reference-energy or `reference { … }` to compare across reports"
            } else {
                ""
            }
        );
        if let Some(l) = llm {
            println!("  LLM: {}; {} tokens", l.stats.summary(), l.tokens);
        }
    }
    if llm.iter().any(Option::is_some) {
        md.push_str("\n## LLM operators\n\nA proposal is valid when it compiles, new when it is also not a copy of a design already proposed: only new valid proposals cost an evaluation.\n\n| run | proposals | calls | valid, first reply | valid after fixes | valid after repair | new and valid | new and valid without repair | duplicates | replies parsed | calls per new candidate | tokens |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (run, l) in runs.iter().zip(&llm) {
            let Some(l) = l else { continue };
            let s = &l.stats;
            let pct = |n: usize| 100.0 * n as f64 / s.proposals.max(1) as f64;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {:.0}% | {} | {:.0}% | {:.2} | {} |",
                run.label,
                s.proposals,
                s.calls,
                pct(s.valid_first_try),
                pct(s.valid_first_try + s.valid_after_fixes),
                100.0 * s.final_rate(),
                pct(s.new_valid),
                pct(s.new_first_round),
                s.duplicates,
                100.0 * s.parse_rate(),
                s.calls_per_new(),
                l.tokens
            );
        }
    }
    // The split the search's stored metrics are scored on (the engine selects on
    // validation; only the final front is scored on test); titles and axes name it.
    let split = "validation";
    let pareto = report::pareto_svg(&runs, split);
    let hv = report::hypervolume_svg(&curves, split);
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        return EXIT_USAGE;
    }
    let html = to_html(&md, &pareto, &hv);
    for (name, content) in [
        ("report.md", &md),
        ("pareto.svg", &pareto),
        ("hypervolume.svg", &hv),
        ("report.html", &html),
    ] {
        if let Err(e) = std::fs::write(out.join(name), content) {
            eprintln!("error: cannot write {}: {e}", out.join(name).display());
            return EXIT_USAGE;
        }
    }
    eprintln!(
        "wrote {}/report.md and report.html with pareto.svg and hypervolume.svg",
        out.display()
    );
    EXIT_OK
}

/// HTML for the Markdown this module writes (headings, tables, code blocks, the figures).
pub fn to_html(md: &str, pareto: &str, hv: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>uhc search report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:8px}</style></head><body>\n");
    let mut in_code = false;
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with("```") {
            out.push_str(if in_code { "</pre>\n" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            let _ = writeln!(out, "{}", esc(line));
            continue;
        }
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                out.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| format!("<td>{}</td>", esc(c.trim())))
                .collect();
            let _ = writeln!(out, "<tr>{}</tr>", cells.join(""));
            continue;
        } else if in_table {
            out.push_str("</table>\n");
            in_table = false;
        }
        if line == "![Pareto front](pareto.svg)" {
            out.push_str(pareto);
        } else if line == "![Hypervolume](hypervolume.svg)" {
            out.push_str(hv);
        } else if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(out, "<h3>{}</h3>", esc(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", esc(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(out, "<h1>{}</h1>", esc(h));
        } else if !line.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", esc(line));
        }
    }
    if in_table {
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}
