//! `uhc experiment FILE`: runs an experiment's grid, one resumable run store per cell
//! repeat in the experiment's folder, then writes the comparison (`uhc report FILE` writes
//! it again from the stores). A killed grid resumes: finished runs are not run again, a
//! run cut short continues from its store.

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uhc::check::model::{ExperimentSpec, SearchSpec};
use uhc::driver::{read_text, FsResolver, SandboxResolver};
use uhc::search::engine::{self, Evaluator, Overrides, Proposer, SearchContext};
use uhc::search::experiment::{self, Cell, CellRuns};
use uhc::Sources;

/// `uhc experiment`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ExperimentArgs {
    /// The `.uh` file with the `experiment` item and its search.
    pub file: PathBuf,
    /// The `experiment` item (optional when the file has one).
    #[arg(long)]
    pub experiment: Option<String>,
    /// Folder of the runs' stores and the report (default: EXPERIMENT_NAME in the current
    /// folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Candidates evaluated in parallel within a run (1 to 1024).
    #[arg(long, value_parser = super::positive(1024))]
    pub jobs: Option<usize>,
    /// OpenAI-compatible base URL for mixes with LLM operators (or UHC_LLM_URL).
    #[arg(long)]
    pub llm_url: Option<String>,
    /// Model name for mixes with LLM operators (or UHC_LLM_MODEL).
    #[arg(long)]
    pub llm_model: Option<String>,
    /// Token cap of each run with LLM operators (prompt + completion).
    #[arg(long)]
    pub max_tokens_total: Option<u64>,
}

/// The file compiled, with the experiment and its search picked out.
struct Loaded {
    name: String,
    text: String,
    compiled: uhc::Compiled,
    experiment: ExperimentSpec,
    search: SearchSpec,
}

fn load(file: &Path, which: Option<&str>) -> Result<Loaded, u8> {
    let text = read_text(file).map_err(|e| {
        eprintln!("error: {}", e.message);
        EXIT_USAGE
    })?;
    let name = file.display().to_string();
    let mut sources = Sources::new();
    let root = sources.add(name.clone(), text.clone());
    let (compiled, diags) = uhc::compile(&mut sources, root, &FsResolver);
    if !diags.is_empty() {
        eprint!("{}", sources.render_human(&diags, false));
    }
    let compiled = compiled.ok_or(EXIT_PROBLEMS)?;
    let all = &compiled.checked.experiments;
    let experiment = match which {
        Some(n) => all.iter().find(|e| e.name == n).cloned().ok_or_else(|| {
            eprintln!(
                "error: no experiment named `{n}` in {name}; it has: {}",
                all.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            EXIT_USAGE
        })?,
        None if all.len() == 1 => all[0].clone(),
        None if all.is_empty() => {
            eprintln!("error: {name} defines no `experiment` item (`uhc search` runs a search)");
            return Err(EXIT_USAGE);
        }
        None => {
            eprintln!("error: {name} defines several experiments; choose one with --experiment");
            return Err(EXIT_USAGE);
        }
    };
    let search = compiled
        .checked
        .search(&experiment.search)
        .cloned()
        .ok_or(EXIT_PROBLEMS)?;
    Ok(Loaded {
        name,
        text,
        compiled,
        experiment,
        search,
    })
}

fn folder(args_dir: Option<&Path>, e: &ExperimentSpec) -> PathBuf {
    args_dir.map_or_else(|| PathBuf::from(&e.name), Path::to_path_buf)
}

pub fn run(args: ExperimentArgs, evaluator: Arc<dyn Evaluator>) -> u8 {
    let l = match load(&args.file, args.experiment.as_deref()) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let dir = folder(args.dir.as_deref(), &l.experiment);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return EXIT_USAGE;
    }
    let source_folder = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let resolver = Arc::new(SandboxResolver {
        root: source_folder,
    });
    // A mix with LLM operators and no LLM to run them is refused before any run starts.
    for mix in &l.experiment.mixes {
        if mix
            .operators
            .iter()
            .any(|o| engine::builtin_proposer(&o.name).is_none())
        {
            if let Err(e) = llm_setup(&args, &l.search.llm, &mix.name) {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    let cells = experiment::cells(&l.experiment, &l.search);
    let stop = super::signals::install();
    eprintln!(
        "experiment {}: {} runs of search {} into {}",
        l.experiment.name,
        cells.len(),
        l.search.name,
        dir.display()
    );
    for (i, cell) in cells.iter().enumerate() {
        match run_cell(&l, cell, &dir, resolver.clone(), &evaluator, &args, stop) {
            Ok(CellEnd::Done(line)) => {
                eprintln!(
                    "[{}/{}] {}, seed {}: {line}",
                    i + 1,
                    cells.len(),
                    cell.label(),
                    cell.seed
                )
            }
            Ok(CellEnd::Stopped) => {
                eprintln!(
                    "stopped in run {} of {}; run the same command to resume the grid",
                    i + 1,
                    cells.len()
                );
                return super::signals::EXIT_SIGNALLED;
            }
            Err(e) => {
                eprintln!("error: run {} ({}): {e}", i + 1, cell.label());
                return EXIT_USAGE;
            }
        }
    }
    write_report(&l, &cells, &dir, &dir.join("report"))
}

/// The LLM operators' setup for one run of mix `mix`, from the flags (or the env) and the
/// search's `llm { … }` settings.
fn llm_setup(
    args: &ExperimentArgs,
    llm: &uhc::check::model::LlmSpec,
    mix: &str,
) -> Result<uhc::llm_ops::LlmSetup, String> {
    let overrides = uhc::llm::LlmOverrides {
        url: args.llm_url.clone(),
        model: args.llm_model.clone(),
        grammar: llm.grammar.clone(),
        ..Default::default()
    };
    let budget = uhc::llm::Budget {
        max_tokens_total: args.max_tokens_total,
        max_cost: None,
    };
    let mut setup =
        uhc::llm_ops::LlmSetup::from_flags(None, &overrides, budget).map_err(|e| {
            format!(
                "mix `{mix}` has LLM operators, but no LLM is configured ({e}); give --llm-url and --llm-model, or UHC_LLM_URL and UHC_LLM_MODEL"
            )
        })?;
    setup.temperature = llm.temperature;
    if let Some(n) = llm.concurrency {
        setup.concurrency = n;
    }
    Ok(setup)
}

enum CellEnd {
    Done(String),
    Stopped,
}

fn run_cell(
    l: &Loaded,
    cell: &Cell,
    dir: &Path,
    resolver: Arc<SandboxResolver>,
    evaluator: &Arc<dyn Evaluator>,
    args: &ExperimentArgs,
    stop: &'static std::sync::atomic::AtomicBool,
) -> Result<CellEnd, String> {
    let jobs = args.jobs;
    let kind = l
        .compiled
        .checked
        .hardware(&cell.hardware)
        .map(|h| h.backend.kind().as_str())
        .ok_or_else(|| format!("no hardware profile `{}`", cell.hardware))?;
    let spec = cell.spec(&l.experiment, &l.search, kind);
    let mut cx = SearchContext::with_spec(&l.name, &l.text, &l.compiled, spec, resolver)?;
    if cx.task.features.is_none() {
        if let Some(f) = evaluator.task_features(&cx.task) {
            cx.set_features(f);
        }
    }
    let mut proposers: Vec<(Box<dyn Proposer>, f64)> = Vec::new();
    let mut operators = Vec::new();
    let mut llm_ops = Vec::new();
    for op in &cell.operators {
        match engine::builtin_proposer(&op.name) {
            Some(p) => proposers.push((p, op.weight)),
            None => llm_ops.push((op.name.clone(), op.weight)),
        }
        operators.push((op.name.clone(), op.weight));
    }
    if !llm_ops.is_empty() {
        // Each run its own client, ledger and counters: runs of a grid share nothing.
        let setup = llm_setup(args, &cx.spec.llm, &cell.mix)?;
        proposers.extend(uhc::llm_ops::llm_proposers(&llm_ops, setup)?);
    }
    let db = dir.join(cell.file_name());
    let extra = serde_json::json!({
        "experiment": l.experiment.name,
        "hardware": cell.hardware,
        "mix": cell.mix,
        "budget": cell.budget,
        "repeat": cell.repeat,
    });
    let (mut store, opened, writer) = super::search::open_run(
        &cx,
        &uhc::search::store::Location::File(db.clone()),
        &operators,
        &l.name,
        &l.text,
        cell.seed,
        extra,
    )?;
    let overrides = Overrides {
        budget: Some(cell.budget),
        jobs,
        seed: Some(cell.seed),
        pipeline: false,
        stop: Some(stop),
    };
    let result = engine::run(
        &cx,
        &mut store,
        Arc::clone(evaluator),
        &mut proposers,
        &overrides,
        matches!(opened, uhc::search::store::Opened::Resumed),
        &mut |_| {},
    );
    let _ = store.release_writer(&writer);
    let s = result.map_err(|e| e.to_string())?;
    if s.stopped {
        return Ok(CellEnd::Stopped);
    }
    Ok(CellEnd::Done(format!(
        "{} evaluated this session, front {}, hypervolume {:.4} (validation), {} duplicates of {} proposals",
        s.evaluated,
        s.front.len(),
        s.hypervolume,
        s.duplicates,
        s.proposals
    )))
}

/// Reads the grid's stores (those that exist) and writes the comparison into `out`.
fn write_report(l: &Loaded, cells: &[Cell], dir: &Path, out: &Path) -> u8 {
    let mut loaded = Vec::new();
    for cell in cells {
        let db = dir.join(cell.file_name());
        if !db.exists() {
            loaded.push(None);
            continue;
        }
        match super::report::load_run(&db) {
            Ok(r) => loaded.push(Some(r)),
            Err(e) => {
                eprintln!("error: {}: {e}", db.display());
                return EXIT_USAGE;
            }
        }
    }
    let runs: Vec<CellRuns<'_>> = cells
        .iter()
        .zip(&loaded)
        .map(|(cell, run)| CellRuns {
            cell,
            run: run.as_ref(),
        })
        .collect();
    let (md, fronts, hv) = experiment::report(&l.experiment, &l.search, &runs);
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("error: cannot create {}: {e}", out.display());
        return EXIT_USAGE;
    }
    let html = super::report::to_html(&md, &fronts, &hv);
    for (name, content) in [
        ("report.md", &md),
        ("pareto.svg", &fronts),
        ("hypervolume.svg", &hv),
        ("report.html", &html),
    ] {
        if let Err(e) = std::fs::write(out.join(name), content) {
            eprintln!("error: cannot write {}: {e}", out.join(name).display());
            return EXIT_USAGE;
        }
    }
    print!("{md}");
    eprintln!(
        "wrote {}/report.md and report.html with pareto.svg and hypervolume.svg",
        out.display()
    );
    EXIT_OK
}

/// `uhc report FILE.uh`: the comparison of an experiment's runs found so far.
pub fn report(file: &Path, which: Option<&str>, dir: Option<&Path>, out: &Path) -> u8 {
    let l = match load(file, which) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let dir = folder(dir, &l.experiment);
    let cells = experiment::cells(&l.experiment, &l.search);
    write_report(&l, &cells, &dir, out)
}
