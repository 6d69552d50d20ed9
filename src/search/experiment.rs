//! Experiments: the grid of runs an `experiment` item asks for, and the comparison of its
//! cells. Running the cells is the CLI's (`uhc experiment`): each cell repeat is an ordinary
//! resumable run with its own store, so a killed grid resumes where it stopped. This module
//! decides what the cells are and what their runs say, with one hypervolume space for the
//! whole grid so that every figure in a comparison is in the same units against the same
//! reference point.

use super::indicator::Space;
use super::report::{self, RunData};
use super::stats;
use crate::check::model::{ExperimentSpec, OperatorWeight, SearchSpec};
use std::fmt::Write as _;

/// One run of the grid: a hardware profile, an operator mix, a budget, and a repeat.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub hardware: String,
    pub mix: String,
    pub operators: Vec<OperatorWeight>,
    pub budget: usize,
    /// 0-based repeat; the run's search seed is the search's seed plus it.
    pub repeat: usize,
    pub seed: u64,
}

impl Cell {
    /// The store's file name inside the experiment's folder.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-b{}-s{}.sqlite",
            self.hardware, self.mix, self.budget, self.seed
        )
    }

    /// What groups repeats: everything but the repeat.
    pub fn group(&self) -> (String, String, usize) {
        (self.hardware.clone(), self.mix.clone(), self.budget)
    }

    /// The search as this cell runs it: its hardware, the seeds for that hardware's
    /// backend kind (`kind`), its operators, budget and seed, and the experiment's
    /// references where it declares any.
    pub fn spec(&self, e: &ExperimentSpec, search: &SearchSpec, kind: &str) -> SearchSpec {
        let mut s = search.clone();
        s.hardware = self.hardware.clone();
        s.seeds = crate::check::seeds_for(search, kind).to_vec();
        s.operators = self.operators.clone();
        s.budget = self.budget;
        s.seed = self.seed;
        if !e.reference.is_empty() {
            s.reference = e.reference.clone();
        }
        s
    }

    /// A short label: `mzi_realistic / evolution / 60`.
    pub fn label(&self) -> String {
        format!("{} / {} / {}", self.hardware, self.mix, self.budget)
    }
}

/// The grid in run order: hardware, then mix, then budget, then repeat.
pub fn cells(e: &ExperimentSpec, search: &SearchSpec) -> Vec<Cell> {
    let mut out = Vec::new();
    for hw in &e.hardware {
        for mix in &e.mixes {
            for &budget in &e.budgets {
                for repeat in 0..e.repeats {
                    out.push(Cell {
                        hardware: hw.clone(),
                        mix: mix.name.clone(),
                        operators: mix.operators.clone(),
                        budget,
                        repeat,
                        seed: search.seed + repeat as u64,
                    });
                }
            }
        }
    }
    out
}

/// The grid's one hypervolume space: the search's objectives; references declared by the
/// experiment, else by the search, else its constraints; derived from every run of the
/// grid only where none of those fixes one.
pub fn space(e: &ExperimentSpec, search: &SearchSpec, runs: &[&RunData]) -> Space {
    let mut spec = search.clone();
    if !e.reference.is_empty() {
        spec.reference = e.reference.clone();
    }
    let measured: Vec<&super::store::Metrics> = runs.iter().flat_map(|r| r.evaluated()).collect();
    Space::for_search(&spec, measured.iter().copied())
}

/// What one run of a cell measured.
struct RunFigures {
    hypervolume: f64,
    /// Evaluations until the hypervolume first reached 90 % of its final value.
    to_90: Option<usize>,
    front_hashes: Vec<String>,
    /// Mean accuracy lost to noise over the front (validation).
    noise_loss: Option<f64>,
    /// Best noisy accuracy on the test split among the front's scored members.
    test_best: Option<f64>,
}

fn figures(run: &RunData, space: &Space) -> RunFigures {
    let curve = space.curve(run.evaluated());
    let hypervolume = curve.last().copied().unwrap_or(0.0);
    let to_90 = (hypervolume > 0.0)
        .then(|| curve.iter().position(|&h| h >= 0.9 * hypervolume))
        .flatten()
        .map(|i| i + 1);
    let front = report::front(run);
    let drops: Vec<f64> = front
        .iter()
        .filter_map(|&i| run.candidates[i].evaluation.as_ref())
        .map(|e| e.metrics.accuracy_drop)
        .collect();
    let test_best = front
        .iter()
        .filter_map(|&i| run.test.get(&run.candidates[i].id))
        .map(|t| t.noisy_accuracy_mean)
        .reduce(f64::max);
    RunFigures {
        hypervolume,
        to_90,
        front_hashes: front
            .iter()
            .filter_map(|&i| run.candidates[i].structural_hash.clone())
            .collect(),
        noise_loss: (!drops.is_empty()).then(|| stats::mean(&drops)),
        test_best,
    }
}

/// The runs of one cell, in repeat order.
pub struct CellRuns<'a> {
    pub cell: &'a Cell,
    pub run: Option<&'a RunData>,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// The experiment's Markdown comparison and its two figures (the fronts per hardware, the
/// mean hypervolume curve per cell) as SVG.
pub fn report(
    e: &ExperimentSpec,
    search: &SearchSpec,
    runs: &[CellRuns<'_>],
) -> (String, String, String) {
    let present: Vec<&RunData> = runs.iter().filter_map(|r| r.run).collect();
    let space = space(e, search, &present);
    let mut md = format!(
        "# Experiment `{}`\n\nSearch `{}`; {} hardware × {} operator mixes × {} budgets × {} repeats = {} runs ({} found).\n\n![Pareto front](pareto.svg)\n\n![Hypervolume](hypervolume.svg)\n\n",
        e.name,
        e.search,
        e.hardware.len(),
        e.mixes.len(),
        e.budgets.len(),
        e.repeats,
        runs.len(),
        present.len()
    );
    let _ = writeln!(
        md,
        "Every run is measured in one space: {}.{} The search selected on the validation split, and so do these figures; `test` is the best noisy accuracy of each run's final front on the test split, scored once when the run ended.\n",
        space.describe(),
        if space.derived() {
            " That reference was derived from the runs of this grid: figures compare within it, not with other reports (declare `reference { … }` in the experiment to fix it)."
        } else {
            ""
        }
    );
    md.push_str("| hardware | operators | budget | runs | hypervolume mean ± std | 95 % bootstrap CI of the mean | distinct front archs (all runs) | accuracy lost to noise on front | evaluations to 90 % of final hypervolume | test: best noisy accuracy on front |\n|---|---|---|---|---|---|---|---|---|---|\n");
    // Groups of repeats, in grid order.
    let mut groups: Vec<((String, String, usize), Vec<RunFigures>)> = Vec::new();
    for r in runs {
        let key = r.cell.group();
        let f = r.run.map(|run| figures(run, &space));
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.extend(f),
            None => groups.push((key, f.into_iter().collect())),
        }
    }
    for ((hw, mix, budget), figs) in &groups {
        let hv: Vec<f64> = figs.iter().map(|f| f.hypervolume).collect();
        if hv.is_empty() {
            let _ = writeln!(
                md,
                "| {hw} | {mix} | {budget} | 0 | not run yet | | | | | |"
            );
            continue;
        }
        let ci = stats::bootstrap_mean_ci(&hv, 0.95, 0x5EED)
            .map_or("–".into(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]"));
        let mut distinct: Vec<&String> = figs.iter().flat_map(|f| &f.front_hashes).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let avg = |v: Vec<f64>| (!v.is_empty()).then(|| stats::mean(&v));
        let loss = avg(figs.iter().filter_map(|f| f.noise_loss).collect());
        let to90 = avg(figs
            .iter()
            .filter_map(|f| f.to_90.map(|n| n as f64))
            .collect());
        let test = avg(figs.iter().filter_map(|f| f.test_best).collect());
        let _ = writeln!(
            md,
            "| {hw} | {mix} | {budget} | {} | {:.4} ± {:.4} | {ci} | {} | {} points | {} | {} |",
            hv.len(),
            stats::mean(&hv),
            stats::std(&hv),
            distinct.len(),
            fmt_opt(loss.map(|l| 100.0 * l), 1),
            fmt_opt(to90, 1),
            fmt_opt(test, 3),
        );
    }
    // Why a hardware's runs have no front: the constraints most of their candidates break.
    for hw in &e.hardware {
        let candidates: Vec<_> = runs
            .iter()
            .filter(|r| &r.cell.hardware == hw)
            .filter_map(|r| r.run)
            .flat_map(|r| r.candidates.iter().cloned())
            .collect();
        let why = report::infeasibility(&candidates);
        if !why.is_empty() {
            let _ = write!(md, "\n**Constraints on {hw}:** {}.\n", why.join("; "));
        }
    }
    // Operator mixes against each other, on the same hardware and budget.
    let mut compared = String::new();
    for (i, ((hw, mix_a, budget), fa)) in groups.iter().enumerate() {
        for ((hw_b, mix_b, budget_b), fb) in groups.iter().skip(i + 1) {
            if hw != hw_b || budget != budget_b || mix_a == mix_b {
                continue;
            }
            let a: Vec<f64> = fa.iter().map(|f| f.hypervolume).collect();
            let b: Vec<f64> = fb.iter().map(|f| f.hypervolume).collect();
            let (Some(t), Some((lo, hi))) = (
                stats::mann_whitney(&a, &b),
                stats::bootstrap_difference_ci(&a, &b, 0.95, 0xD1FF),
            ) else {
                continue;
            };
            let diff = stats::mean(&a) - stats::mean(&b);
            let verdict = if t.p < 0.05 && lo * hi > 0.0 {
                format!(
                    "`{}` has the higher hypervolume",
                    if diff > 0.0 { mix_a } else { mix_b }
                )
            } else {
                "no evidence of a difference".to_string()
            };
            let floor = if t.exact {
                let n = (a.len() + b.len()) as u64;
                let ways = (1..=a.len() as u64).fold(1.0, |c, k| c * (n - k + 1) as f64 / k as f64);
                format!(
                    "exact; with {} and {} runs the smallest p possible is {:.3}",
                    a.len(),
                    b.len(),
                    2.0 / ways
                )
            } else {
                "normal approximation".into()
            };
            let _ = writeln!(
                compared,
                "- **{mix_a} vs {mix_b}** on {hw}, budget {budget}: mean difference {diff:+.4} (95 % bootstrap CI [{lo:+.4}, {hi:+.4}]); Mann–Whitney U = {}, p = {:.3} ({floor}): {verdict}.",
                t.u, t.p
            );
        }
    }
    if !compared.is_empty() {
        md.push_str("\n## Operator mixes compared\n\n");
        md.push_str(&compared);
    }
    // One front per hardware: every run on it pooled.
    let mut per_hw: Vec<RunData> = Vec::new();
    for hw in &e.hardware {
        let candidates: Vec<_> = runs
            .iter()
            .filter(|r| &r.cell.hardware == hw)
            .filter_map(|r| r.run)
            .flat_map(|r| r.candidates.iter().cloned())
            .collect();
        per_hw.push(RunData {
            label: hw.clone(),
            candidates,
            config: serde_json::Value::Null,
            store: None,
            test: Default::default(),
        });
    }
    // Every figure of an experiment is on the validation split, as the search selected.
    let fronts = report::pareto_svg(&per_hw, "validation");
    // The mean hypervolume after k evaluations over a cell's repeats (up to the shortest).
    let mut curves = Vec::new();
    for ((hw, mix, budget), _) in &groups {
        let cs: Vec<Vec<f64>> = runs
            .iter()
            .filter(|r| &r.cell.hardware == hw && &r.cell.mix == mix && r.cell.budget == *budget)
            .filter_map(|r| r.run)
            .map(|run| space.curve(run.evaluated()))
            .collect();
        let len = cs.iter().map(Vec::len).min().unwrap_or(0);
        if len == 0 {
            continue;
        }
        let mean: Vec<(usize, f64)> = (0..len)
            .map(|k| {
                (
                    k + 1,
                    cs.iter().map(|c| c[k]).sum::<f64>() / cs.len() as f64,
                )
            })
            .collect();
        curves.push((
            format!("{hw} / {mix} / {budget} (mean of {})", cs.len()),
            mean,
        ));
    }
    let hv = report::hypervolume_svg(&curves, "validation");
    (md, fronts, hv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::model::{Metric, OperatorMix};

    fn spec() -> (ExperimentSpec, SearchSpec) {
        let text = "use \"hw/mzi.uh\"\ntask t {\n    dataset = digits\n    encode [pool(2), standardize]\n}\narch a on mzi_realistic {\n    input x: real[16]\n    output detect(linear(x, 10))\n}\nsearch s {\n    task = t\n    hardware = mzi_realistic\n    seeds [a]\n    constraint energy <= 5 nJ\n    seed = 4\n}\n";
        let mut sources = crate::Sources::new();
        let root = sources.add("x.uh", text.to_string());
        let (compiled, diags) = crate::compile(&mut sources, root, &crate::driver::FsResolver);
        assert!(diags.is_empty(), "{diags:?}");
        let search = compiled.unwrap().checked.searches[0].clone();
        let e = ExperimentSpec {
            name: "e".into(),
            search: "s".into(),
            hardware: vec!["mzi_realistic".into(), "mzi_worst".into()],
            mixes: vec![
                OperatorMix {
                    name: "random".into(),
                    operators: vec![OperatorWeight {
                        name: "random".into(),
                        weight: 1.0,
                    }],
                },
                OperatorMix {
                    name: "evo".into(),
                    operators: search.operators.clone(),
                },
            ],
            budgets: vec![30, 60],
            repeats: 3,
            reference: vec![(Metric::Energy, 1e-8)],
            span: Default::default(),
        };
        (e, search)
    }

    #[test]
    fn the_grid_has_every_cell_once_with_seeds_per_repeat() {
        let (e, search) = spec();
        let cells = cells(&e, &search);
        assert_eq!(cells.len(), 2 * 2 * 2 * 3);
        let mut names: Vec<String> = cells.iter().map(Cell::file_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cells.len(), "every run has its own store");
        assert_eq!(cells[0].seed, 4);
        assert_eq!(cells[2].seed, 6);
        let s = cells[3].spec(&e, &search, "mzi");
        assert_eq!(s.budget, 60);
        assert_eq!(s.reference, vec![(Metric::Energy, 1e-8)]);
        assert_eq!(s.seeds, vec!["a".to_string()]);
    }

    #[test]
    fn the_experiment_reference_beats_the_search_constraint() {
        let (e, search) = spec();
        let space = space(&e, &search, &[]);
        assert_eq!(space.axes[1].reference, 1e-8);
        assert!(!space.derived());
    }
}
