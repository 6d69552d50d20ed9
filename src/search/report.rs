//! Run reports: the Pareto front (error vs energy, log scale), hypervolume against
//! evaluations per proposer, and a table of the front's architectures. Figures are plain
//! SVG written in `svg` (no font rasteriser needed), so reports build anywhere.

use super::indicator::Space;
use super::nsga2::{self, Direction, Individual};
use super::store::{CandidateRecord, CandidateState};
use std::fmt::Write as _;

mod svg;
pub use svg::{hypervolume_svg, pareto_svg};

/// One run as the report sees it.
pub struct RunData {
    pub label: String,
    pub candidates: Vec<CandidateRecord>,
    /// The store's run configuration (with the search's identity, see
    /// [`super::identity`]); `Null` when unknown. Decides which runs are comparable.
    pub config: serde_json::Value,
    /// The store's path as given to `uhc report`, for the commands that reproduce rows.
    pub store: Option<String>,
    /// Test-split scores of the final front (written when the run ended).
    pub test: std::collections::HashMap<i64, super::store::TestScores>,
}

impl RunData {
    /// Metrics of the evaluated candidates, in the order their evaluations finished.
    pub fn evaluated(&self) -> Vec<&super::store::Metrics> {
        let mut done: Vec<&CandidateRecord> = self
            .candidates
            .iter()
            .filter(|c| c.evaluation.is_some())
            .collect();
        done.sort_by_key(|c| (c.finished_ms.unwrap_or(0), c.id));
        done.iter()
            .filter_map(|c| c.evaluation.as_ref().map(|e| &e.metrics))
            .collect()
    }

    /// The run's hypervolume space: its search's objectives and references; a reference
    /// it does not fix is derived from `measured` (the runs compared), and `energy` (J)
    /// overrides the energy reference.
    pub fn space(&self, measured: &[&RunData], energy: Option<f64>) -> Space {
        let metrics: Vec<&super::store::Metrics> =
            measured.iter().flat_map(|r| r.evaluated()).collect();
        Space::for_config(&self.config, energy, metrics.iter().copied())
    }
}

/// (error = 1 − noisy accuracy mean, energy in pJ) of an evaluated candidate.
fn point(c: &CandidateRecord) -> Option<(f64, f64)> {
    let m = &c.evaluation.as_ref()?.metrics;
    let err = 1.0 - m.noisy_accuracy_mean;
    (err.is_finite() && m.energy_pj.is_finite() && m.energy_pj > 0.0).then_some((err, m.energy_pj))
}

/// Indices of the non-dominated (error, energy) points among feasible evaluated candidates.
pub fn front(run: &RunData) -> Vec<usize> {
    let idx: Vec<usize> = (0..run.candidates.len())
        .filter(|&i| point(&run.candidates[i]).is_some())
        .collect();
    let inds: Vec<Individual> = idx
        .iter()
        .map(|&i| {
            let (e, j) = point(&run.candidates[i]).unwrap_or((1.0, f64::MAX));
            let v = run.candidates[i]
                .evaluation
                .as_ref()
                .map_or(0.0, |e| e.metrics.total_violation());
            Individual {
                objectives: vec![e, j],
                violation: v,
            }
        })
        .collect();
    let dirs = [Direction::Minimize, Direction::Minimize];
    let fronts = nsga2::non_dominated_sort(&inds, &dirs).unwrap_or_default();
    let mut f: Vec<usize> = fronts
        .first()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|&k| inds[k].violation <= 0.0)
        .map(|k| idx[k])
        .collect();
    f.sort_by(|&a, &b| {
        point(&run.candidates[a])
            .map(|p| p.1)
            .partial_cmp(&point(&run.candidates[b]).map(|p| p.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    f
}

/// Hypervolume in `space` after each evaluation (1-based count, value).
pub fn hypervolume_curve(run: &RunData, space: &Space) -> Vec<(usize, f64)> {
    space
        .curve(run.evaluated())
        .into_iter()
        .enumerate()
        .map(|(k, hv)| (k + 1, hv))
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Three significant digits in the largest unit that keeps the value ≥ 1.
fn format_pj(pj: f64) -> String {
    let (v, unit) = if pj >= 1e6 {
        (pj / 1e6, "µJ")
    } else if pj >= 1e3 {
        (pj / 1e3, "nJ")
    } else {
        (pj, "pJ")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s} {unit}")
}

/// The Markdown report for one or more runs. Figures are referenced as `pareto.svg` and
/// `hypervolume.svg` next to it.
pub fn markdown(runs: &[RunData]) -> String {
    let mut md = String::from(
        "# uhc search report\n\n![Pareto front](pareto.svg)\n\n![Hypervolume](hypervolume.svg)\n\n",
    );
    let evaluated = runs
        .iter()
        .any(|r| r.candidates.iter().any(|c| point(c).is_some()));
    if evaluated {
        md.push_str("Every figure of the search (fronts, hypervolumes, the charts) is on the **validation split**, the data the search selected on. The test split is used once, at the end of a run, to score its final front: the `test` columns below, never an input to selection.\n\n");
        for run in runs {
            let space = run.space(&[run], None);
            let _ = writeln!(
                md,
                "{}: {}.{}",
                escape(&run.label),
                space.describe(),
                if space.derived() {
                    " A derived reference moves with the run: declare `reference { … }` in the search to compare runs."
                } else {
                    ""
                }
            );
        }
        md.push('\n');
    } else {
        md.push_str("Nothing has been evaluated yet: no run has a finished evaluation, so there is no front, no reference point and no hypervolume. Run the search (or let it run longer) and report again.\n\n");
    }
    if runs.len() > 1 {
        md.push_str(&comparability(runs));
    }
    md.push_str("| run | evaluated | failed/timeout | rejected by the compiler | validity of proposals | front size | distinct archs on front | mean accuracy lost to noise on front (validation) | hypervolume (validation) |\n|---|---|---|---|---|---|---|---|---|\n");
    for run in runs {
        let space = run.space(&[run], None);
        let count = |s: CandidateState| run.candidates.iter().filter(|c| c.state == s).count();
        let (done, failed, rejected) = (
            count(CandidateState::Done),
            count(CandidateState::Failed) + count(CandidateState::Timeout),
            count(CandidateState::Rejected),
        );
        let proposals = run.candidates.len();
        let f = front(run);
        let hashes: std::collections::HashSet<&str> = f
            .iter()
            .filter_map(|&i| run.candidates[i].structural_hash.as_deref())
            .collect();
        let drop: f64 = f
            .iter()
            .filter_map(|&i| run.candidates[i].evaluation.as_ref())
            .map(|e| e.metrics.accuracy_drop)
            .sum::<f64>()
            / f.len().max(1) as f64;
        let hv = space.hypervolume(run.evaluated());
        let validity = if proposals > 0 {
            100.0 * (proposals - rejected) as f64 / proposals as f64
        } else {
            0.0
        };
        if f.is_empty() {
            // No front: no drop to average and no hypervolume (not 0 or -0.0 of nothing).
            let none = if done == 0 {
                "nothing evaluated"
            } else {
                "no feasible candidate"
            };
            let _ = writeln!(md, "| {} | {done} | {failed} | {rejected} | {validity:.0}% | 0 | 0 | {none} | {none} |", escape(&run.label));
            continue;
        }
        let _ = writeln!(md, "| {} | {done} | {failed} | {rejected} | {validity:.0}% | {} | {} | {:.1} points | {hv:.4} |", escape(&run.label), f.len(), hashes.len(), 100.0 * drop);
    }
    for run in runs {
        let why = infeasibility(&run.candidates);
        if !why.is_empty() {
            let empty = front(run).is_empty();
            let _ = writeln!(
                md,
                "\n**Constraints of {}{}:** {}.",
                escape(&run.label),
                if empty {
                    " (why its front is empty)"
                } else {
                    ""
                },
                why.join("; ")
            );
        }
    }
    for run in runs {
        let _ = writeln!(md, "\n## Front of {}\n", run.label);
        md.push_str("| id | operator | gen | accuracy (validation) | noisy mean ± std (validation) | p5 (validation) | accuracy (test) | noisy mean ± std (test) | energy | MZIs | depth | params |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let f = front(run);
        for &i in &f {
            let c = &run.candidates[i];
            let Some(e) = &c.evaluation else { continue };
            let m = &e.metrics;
            let (test_acc, test_noisy) = match run.test.get(&c.id) {
                Some(t) => (
                    format!("{:.3}", t.accuracy),
                    format!("{:.3} ± {:.3}", t.noisy_accuracy_mean, t.noisy_accuracy_std),
                ),
                None => ("not scored".into(), "not scored".into()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} ± {:.3} | {:.3} | {test_acc} | {test_noisy} | {} | {} | {} | {} |",
                c.id,
                c.operator,
                c.generation,
                m.accuracy,
                m.noisy_accuracy_mean,
                m.noisy_accuracy_std,
                m.noisy_accuracy_p5,
                format_pj(m.energy_pj),
                m.mzi_count.map_or("-".into(), |v| v.to_string()),
                m.depth,
                m.params
            );
        }
        for &i in &f {
            let c = &run.candidates[i];
            let _ = writeln!(md, "\n### Candidate {}\n", c.id);
            if let (Some(file), Some(store)) =
                (run.config.get("file").and_then(|f| f.as_str()), &run.store)
            {
                let _ = writeln!(
                    md,
                    "Reproduce its row (same seed and settings, bit for bit): `uhc eval {file} --from {store} --candidate {}`\n",
                    c.id
                );
            }
            let _ = writeln!(
                md,
                "```uh\n{}```",
                c.canonical_text.as_deref().unwrap_or(&c.text)
            );
        }
    }
    md
}

/// Which runs of a report measure the same thing: the same task, hardware profile and
/// objectives (by the hashes their stores record; by name for older stores). Runs that
/// differ are overlaid in the figures but named here as not comparable, with what differs.
fn comparability(runs: &[RunData]) -> String {
    const KEYS: [&str; 3] = ["task", "hardware", "objectives"];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..runs.len() {
        match groups.iter_mut().find(|g| {
            super::identity::differences_in(&runs[g[0]].config, &runs[i].config, &KEYS).is_empty()
        }) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut md = String::from("## Comparability\n\n");
    if groups.len() == 1 {
        md.push_str("All runs share their task, hardware profile and objectives: their fronts are comparable.\n\n");
        return md;
    }
    md.push_str("The runs do not all measure the same thing; their fronts are overlaid in the figures, but only runs of one group are comparable.\n\n");
    let first = &runs[groups[0][0]];
    for (k, g) in groups.iter().enumerate() {
        let names: Vec<String> = g.iter().map(|&i| format!("`{}`", runs[i].label)).collect();
        let _ = write!(md, "- group {}: {}", k + 1, names.join(", "));
        if k > 0 {
            let diffs = super::identity::differences_in(&first.config, &runs[g[0]].config, &KEYS);
            let _ = write!(md, " (differs from group 1 in {})", diffs.join("; "));
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

/// Why a front is empty or thin: for every constraint that most evaluated candidates
/// violate (at least 90 %, or all of them when nothing is feasible), one sentence naming
/// it and the best value reached, e.g. "all 40 candidates exceed energy <= 5 nJ; the
/// lowest was 10.9 nJ". Empty when the constraints let enough candidates through.
pub fn infeasibility(candidates: &[CandidateRecord]) -> Vec<String> {
    use crate::check::model::Metric;
    use crate::check::units::{format_si, Dim};
    let evaluated: Vec<&super::store::Metrics> = candidates
        .iter()
        .filter(|c| c.state == CandidateState::Done)
        .filter_map(|c| c.evaluation.as_ref().map(|e| &e.metrics))
        .collect();
    if evaluated.is_empty() {
        return Vec::new();
    }
    let feasible = evaluated.iter().filter(|m| m.violations.is_empty()).count();
    // The constraints as the engine wrote them: "metric op bound" (bound in SI units).
    let mut constraints: Vec<&str> = evaluated
        .iter()
        .flat_map(|m| m.violations.iter().map(|v| v.constraint.as_str()))
        .collect();
    constraints.sort_unstable();
    constraints.dedup();
    let mut out = Vec::new();
    for text in constraints {
        let mut parts = text.split_whitespace();
        let (Some(name), Some(op), Some(bound)) = (
            parts.next(),
            parts.next(),
            parts.next().and_then(|b| b.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let metric = Metric::from_name(name);
        // A metric's value is measured; the laser budget's (in W) follows from the
        // violation's relative amount.
        let violating: Vec<f64> = evaluated
            .iter()
            .filter_map(|m| {
                let v = m.violations.iter().find(|v| v.constraint == text)?;
                Some(match metric {
                    Some(metric) => super::engine::metric_value(m, metric),
                    None => bound + v.amount * bound.abs(),
                })
            })
            .filter(|v| v.is_finite())
            .collect();
        let n = violating.len();
        if n == 0 || (feasible > 0 && 10 * n < 9 * evaluated.len()) {
            continue;
        }
        let below = op.starts_with('<');
        let best = if below {
            violating.iter().copied().fold(f64::INFINITY, f64::min)
        } else {
            violating.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        };
        let show = |v: f64| match metric {
            Some(Metric::Energy) => format_si(v, Dim::Energy),
            None if name == "laser_power" => crate::ir::energy::format_power(v),
            Some(m) if m.is_fraction() => format!("{v:.3}"),
            _ => format!("{v}"),
        };
        let who = if n == evaluated.len() {
            format!("all {n} evaluated candidates")
        } else {
            format!("{n} of {} evaluated candidates", evaluated.len())
        };
        let (verb, extreme) = if below {
            ("exceed", "lowest")
        } else {
            ("fall short of", "highest")
        };
        out.push(format!(
            "{who} {verb} {name} {op} {}; the {extreme} was {}",
            show(bound),
            show(best)
        ));
    }
    out
}
