//! `uhc search`: the main job. Opens (or resumes) the run's store and evolves candidates.

use super::{read_text, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uhc::driver::{FsResolver, SandboxResolver};
use uhc::search::engine::{self, Evaluator, Event, Overrides, Proposer, SearchContext};
use uhc::search::store::{Location, Opened, RunSource, Store, StoreOptions, Writer};
use uhc::search::worker::Recording;
use uhc::Sources;

/// `uhc search`'s arguments.
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The `.uh` file with the `search` item, its task and seed architectures.
    pub file: PathBuf,
    /// The `search` item (optional when the file has one).
    #[arg(long)]
    pub search: Option<String>,
    /// The run's store: an SQLite file, or `postgres://user@host/db[?schema=NAME]` for a
    /// run that `uhc worker`s share (or UHC_DB; default: SEARCH_NAME.sqlite here).
    #[arg(long)]
    pub db: Option<String>,
    /// Evaluations in total (1 to 10000000, as in the search item; overrides the search item).
    #[arg(long, value_parser = super::positive(10_000_000))]
    pub budget: Option<usize>,
    /// Candidates evaluated in parallel (1 to 1024).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1024))]
    pub jobs: Option<usize>,
    /// Seed of the search: proposals, selection, training and noise draws (default: the
    /// search item's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Operator mix, e.g. `mutate=0.5,crossover=0.3,llm_mutate=0.2`.
    #[arg(long)]
    pub operators: Option<String>,
    /// `replay:RUN.sqlite` replays a previous run's LLM exchanges (no network).
    #[arg(long)]
    pub llm: Option<String>,
    /// OpenAI-compatible base URL (or UHC_LLM_URL / OPENAI_BASE_URL).
    #[arg(long)]
    pub llm_url: Option<String>,
    /// Model name (or UHC_LLM_MODEL).
    #[arg(long)]
    pub llm_model: Option<String>,
    /// `full` (hosted models) or `compact` (small local models) prompts (or
    /// UHC_LLM_PROMPT; default full).
    #[arg(long)]
    pub llm_prompt: Option<String>,
    /// Bound on every request's prompt tokens (or UHC_LLM_MAX_PROMPT_TOKENS; default
    /// 6000 full, 2048 compact).
    #[arg(long)]
    pub llm_max_prompt_tokens: Option<String>,
    /// Field of the reply cap: auto, max_tokens, max_completion_tokens or both (or
    /// UHC_LLM_TOKEN_PARAM; default auto).
    #[arg(long)]
    pub llm_token_param: Option<String>,
    /// Decoding grammar sent with LLM requests: auto (GBNF to loopback servers, none to
    /// hosted APIs), gbnf, lark or off (or the search's `llm { grammar }`, then
    /// UHC_LLM_GRAMMAR).
    #[arg(long)]
    pub llm_grammar: Option<String>,
    /// Sampling temperature of every LLM operator (default per operator: llm_mutate 0.8,
    /// llm_crossover 0.7, best_of_n 1.0; or the search's `llm { temperature }`).
    #[arg(long, value_parser = parse_temperature)]
    pub llm_temperature: Option<f64>,
    /// LLM calls in flight at once within a generation (default 1 for a loopback server,
    /// 4 for a hosted one; or the search's `llm { concurrency }`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub llm_concurrency: Option<u32>,
    /// Propose each generation while the previous one is evaluated: a steady-state step
    /// whose parents do not yet see the batch in evaluation. Wall time per generation
    /// approaches max(proposal, evaluation) instead of their sum; worth it when the LLM
    /// runs elsewhere (a hosted endpoint), not when it shares this machine's cores.
    #[arg(long)]
    pub pipeline: bool,
    /// Stop cleanly once the LLM has used this many tokens (1 to 10^12).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub max_tokens_total: Option<u64>,
    /// Stop cleanly once the LLM has cost this much (a positive number; needs prices).
    #[arg(long, value_parser = positive_number)]
    pub max_cost: Option<f64>,
}

fn parse_temperature(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if (0.0..=2.0).contains(&t) => Ok(t),
        _ => Err(format!("`{s}` is not a temperature from 0 to 2")),
    }
}

/// A search writes its store and, next to it, SQLite's `-wal` and `-shm` files: refuse a
/// read-only store or folder before touching anything (`uhc report` reads such stores).
fn writable(db: &Path) -> Result<(), String> {
    let folder = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(m) = std::fs::metadata(db) {
        if !m.is_file() {
            return Err(format!(
                "{} is not a regular file, so not a run store",
                db.display()
            ));
        }
        if m.permissions().readonly() {
            return Err(format!(
                "{} is read-only, so the search cannot resume it; `uhc report {}` reads it, or make it writable (chmod u+w) to continue the run",
                db.display(),
                db.display()
            ));
        }
    }
    match std::fs::metadata(folder) {
        Ok(m) if m.permissions().readonly() => Err(format!(
            "the folder {} is read-only, and a search writes its store and SQLite's -wal and -shm files there; choose another --db or make the folder writable",
            folder.display()
        )),
        Err(e) => Err(format!("cannot use the folder {} for the run store: {e}", folder.display())),
        Ok(_) => Ok(()),
    }
}

/// A finite number above 0 (`--max-cost 0`, `NaN` or `-1` would stop at once or never).
fn positive_number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        Ok(_) => Err(format!("`{s}` is not a positive finite number")),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// Parses `mutate=0.7,crossover=0.3` (weights optional).
fn parse_operators(spec: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once('=') {
            Some((n, w)) => (
                n.trim(),
                w.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("operator weight `{w}` is not a number"))?,
            ),
            None => (part, 1.0),
        };
        if !(weight >= 0.0 && weight.is_finite()) {
            return Err(format!("operator weight for `{name}` must be 0 or more"));
        }
        out.push((name.to_string(), weight));
    }
    if out.is_empty() {
        return Err("--operators names no operator".into());
    }
    Ok(out)
}

pub fn run(args: SearchArgs, evaluator: Arc<dyn Evaluator>) -> u8 {
    let text = match read_text(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return EXIT_USAGE;
        }
    };
    let name = args.file.display().to_string();
    let mut sources = Sources::new();
    let root = sources.add(name.clone(), text.clone());
    // Every file the search `use`s is recorded, for workers on other hosts.
    let fs = Recording::new(FsResolver);
    let (compiled, diags) = uhc::compile(&mut sources, root, &fs);
    if !diags.is_empty() {
        eprint!("{}", sources.render_human(&diags, false));
    }
    let Some(compiled) = compiled else {
        return EXIT_PROBLEMS;
    };
    let folder = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let sandbox = Arc::new(Recording::new(SandboxResolver { root: folder }));
    let resolver: Arc<dyn uhc::check::Resolver + Send + Sync> = sandbox.clone();
    let mut cx = match SearchContext::new(&name, &text, &compiled, args.search.as_deref(), resolver)
    {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    // A data set whose width the file cannot say (IDX, CSV) is read once here, so that
    // proposers write the right `input` line and candidates are held to it.
    if cx.task.features.is_none() {
        if let Some(f) = evaluator.task_features(&cx.task) {
            cx.set_features(f);
        }
    }
    let operators = match &args.operators {
        Some(spec) => match parse_operators(spec) {
            Ok(ops) => ops,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        },
        None => cx
            .spec
            .operators
            .iter()
            .map(|o| (o.name.clone(), o.weight))
            .collect(),
    };
    let mut proposers: Vec<(Box<dyn Proposer>, f64)> = Vec::new();
    let mut llm_ops: Vec<(String, f64)> = Vec::new();
    for (op, weight) in &operators {
        match engine::builtin_proposer(op) {
            Some(p) => proposers.push((p, *weight)),
            None if uhc::llm_ops::OPERATORS.contains(&op.as_str()) => {
                llm_ops.push((op.clone(), *weight))
            }
            None => {
                eprintln!(
                    "error: unknown operator `{op}`; built in: {}; LLM: {}",
                    uhc::check::model::Operator::names(Some(false)).join(", "),
                    uhc::check::model::Operator::names(Some(true)).join(", ")
                );
                return EXIT_USAGE;
            }
        }
    }
    let mut llm_stats = None;
    if !llm_ops.is_empty() {
        let explicit = args.llm.is_some()
            || args.llm_url.is_some()
            || args.llm_model.is_some()
            || args.llm_prompt.is_some()
            || args.llm_max_prompt_tokens.is_some()
            || args.llm_token_param.is_some()
            || args.llm_grammar.is_some();
        let budget = uhc::llm::Budget {
            max_tokens_total: args.max_tokens_total,
            max_cost: args.max_cost,
        };
        let overrides = uhc::llm::LlmOverrides {
            url: args.llm_url.clone(),
            model: args.llm_model.clone(),
            api_key: None,
            token_param: args.llm_token_param.clone(),
            prompt: args.llm_prompt.clone(),
            max_prompt_tokens: args.llm_max_prompt_tokens.clone(),
            grammar: args.llm_grammar.clone().or(cx.spec.llm.grammar.clone()),
        };
        match uhc::llm_ops::LlmSetup::from_flags(args.llm.as_deref(), &overrides, budget) {
            Ok(mut setup) => {
                setup.temperature = args.llm_temperature.or(cx.spec.llm.temperature);
                if let Some(n) = args
                    .llm_concurrency
                    .map(|n| n as usize)
                    .or(cx.spec.llm.concurrency)
                {
                    setup.concurrency = n;
                }
                // Say once why replies go unconstrained, when the backend would take a
                // grammar but this search has none (e.g. a task whose feature count is
                // only known once its data is read).
                if setup.backend.grammar_dialect().is_some() {
                    if let Err(why) =
                        uhc::check::grammar::ArchGrammar::for_task(&cx.hardware, &cx.task)
                            .and_then(|g| g.build())
                    {
                        eprintln!("note: no decoding grammar for this search ({why}); LLM replies are not constrained");
                    }
                }
                llm_stats = Some(setup.stats());
                match uhc::llm_ops::llm_proposers(&llm_ops, setup) {
                    Ok(ps) => proposers.extend(ps),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return EXIT_USAGE;
                    }
                }
            }
            Err(e) if explicit => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
            Err(_) => {
                let names: Vec<&str> = llm_ops.iter().map(|o| o.0.as_str()).collect();
                eprintln!("note: no LLM is configured (set --llm-url and --llm-model, or UHC_LLM_URL and UHC_LLM_MODEL), so the LLM operators ({}) are skipped; running the built-in operators", names.join(", "));
            }
        }
    }
    if proposers.is_empty() {
        eprintln!("note: no built-in operator was selected; using mutate and crossover");
        proposers.push((Box::new(engine::MutateProposer), 0.7));
        proposers.push((Box::new(engine::CrossoverProposer), 0.3));
    }
    let db_text = args
        .db
        .clone()
        .or_else(|| std::env::var("UHC_DB").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("{}.sqlite", cx.spec.name));
    let location = match Location::parse(&db_text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let db = location.shown();
    if args.jobs == Some(0) && matches!(location, Location::File(_)) {
        eprintln!("error: --jobs 0 leaves the evaluation to `uhc worker`s, which need a PostgreSQL run (--db postgres://…); give --jobs 1 or more for an SQLite run");
        return EXIT_USAGE;
    }
    let seed = args.seed.unwrap_or(cx.spec.seed);
    let (mut store, opened, writer) = match open_run(
        &cx,
        &location,
        &operators,
        &name,
        &text,
        seed,
        serde_json::Value::Null,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    // What a worker needs to rebuild this search with nothing but the store's URL.
    let mut uses = fs.files();
    uses.extend(sandbox.files());
    let source = RunSource {
        file: name.clone(),
        text: text.clone(),
        search: cx.spec.name.clone(),
        uses,
        operators: operators.clone(),
        uhc_version: env!("CARGO_PKG_VERSION").to_string(),
        stdlib_hash: uhc::search::worker::stdlib_hash(),
    };
    // Claims on a shared run stop at the budget, so workers train nothing it will not use.
    let budget = args.budget.unwrap_or(cx.spec.budget) as u64;
    let shared_setup = store
        .set_source(&source)
        .and_then(|()| store.set_finished(false))
        .and_then(|()| store.set_budget(Some(budget)));
    if let Err(e) = shared_setup {
        eprintln!("error: {e}");
        let _ = store.release_writer(&writer);
        return EXIT_USAGE;
    }
    let code = run_store(
        &args,
        &cx,
        &db,
        &mut store,
        opened,
        evaluator,
        &mut proposers,
        llm_stats.as_ref(),
    );
    if let Err(e) = store.release_writer(&writer) {
        eprintln!("warning: could not give up the run store: {e}");
    }
    code
}

/// Opens (or creates) the run store `db` of search `cx` run with `operators` and `seed`,
/// refusing a store that belongs to another search or seed, and takes the run's writer
/// role. `extra` goes into a new store's configuration beside the identity (an
/// experiment's cell).
pub fn open_run(
    cx: &SearchContext,
    location: &Location,
    operators: &[(String, f64)],
    name: &str,
    text: &str,
    seed: u64,
    extra: serde_json::Value,
) -> Result<(Store, Opened, Writer), String> {
    let task = uhc::driver::canonical_data_paths(&cx.task);
    let identity = uhc::search::identity::identity(cx, &task, operators, name, text);
    let config = serde_json::json!({ "file": name, "search": cx.spec.name, "spec": cx.spec, "operators": operators, "identity": identity, "cell": extra });
    if let Location::File(path) = location {
        writable(path)?;
    }
    let db = location.shown();
    let (mut store, opened) =
        Store::open_or_create_at(location, &config.to_string(), seed, StoreOptions::default())
            .map_err(|e| e.to_string())?;
    let info = store.run_info().map_err(|e| e.to_string())?;
    let stored: serde_json::Value =
        serde_json::from_str(&info.config).unwrap_or(serde_json::Value::Null);
    let diffs = uhc::search::identity::differences(&stored, &config);
    if !diffs.is_empty() {
        return Err(format!(
            "{} holds the run of {}, not of {}; a store keeps one search, and resuming it with another would mix their archives. What differs:\n{}\nrun the search the store belongs to, or give this one its own store with --db (a larger --budget is allowed on resume)",
            db,
            uhc::search::identity::describe(&stored),
            uhc::search::identity::describe(&config),
            diffs.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
        ));
    }
    if info.seed != seed {
        return Err(format!("{} belongs to a run with seed {}; pass --seed {} to resume it or --db to start a new run", db, info.seed, info.seed));
    }
    // One process writes a run at a time; a second one is refused, naming the first.
    let writer = Writer::this_process();
    store.acquire_writer(&writer).map_err(|e| e.to_string())?;
    Ok((store, opened, writer))
}

/// The search proper, on a store this process writes.
#[allow(clippy::too_many_arguments)]
fn run_store(
    args: &SearchArgs,
    cx: &SearchContext,
    db: &str,
    store: &mut Store,
    opened: Opened,
    evaluator: Arc<dyn Evaluator>,
    proposers: &mut [(Box<dyn Proposer>, f64)],
    llm_stats: Option<&uhc::llm_ops::StatsHandle>,
) -> u8 {
    let resumed = matches!(opened, Opened::Resumed);
    let budget = args.budget.unwrap_or(cx.spec.budget);
    let bar = ProgressBar::with_draw_target(Some(budget as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} evaluations {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("search {} on {}", cx.spec.name, cx.hardware.name));
    // A hidden bar (no terminal) prints nothing, so messages go to stderr directly then.
    let say = |bar: &ProgressBar, msg: String| {
        if bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            bar.println(msg);
        }
    };
    if resumed {
        say(&bar, format!("resuming {db}"));
    }
    let overrides = Overrides {
        budget: args.budget,
        jobs: args.jobs,
        seed: args.seed,
        pipeline: args.pipeline,
        stop: Some(super::signals::install()),
    };
    let mut on_event = |e: Event| match e {
        Event::Evaluated {
            done,
            generation,
            outcome,
            id,
            ..
        } => {
            bar.set_position(done as u64);
            if outcome != "done" {
                bar.println(format!(
                    "candidate {id} (generation {generation}): {outcome}"
                ));
            }
        }
        Event::Generation {
            generation,
            front,
            hypervolume,
        } => {
            bar.set_message(format!(
                "gen {generation}: front {front}, hypervolume {hypervolume:.4}"
            ));
        }
        Event::Proposed { .. } => {}
    };
    let result = engine::run(
        cx,
        store,
        evaluator,
        proposers,
        &overrides,
        resumed,
        &mut on_event,
    );
    bar.finish();
    match result {
        Ok(s) if s.stopped => {
            let total = store
                .counts_by_state()
                .map(|c| c.done + c.failed + c.timeout)
                .unwrap_or(s.evaluated as u64);
            eprintln!(
                "stopped after {total} evaluations ({} this session); run the same command to resume",
                s.evaluated
            );
            super::signals::EXIT_SIGNALLED
        }
        Ok(s) => {
            eprintln!("{}", session_counts(&s));
            let archive = store.load_archive().unwrap_or_default();
            let space = engine::space(cx, &archive);
            eprintln!(
                "Pareto front (validation split): {} candidates, hypervolume {:.4}: {}",
                s.front.len(),
                s.hypervolume,
                space.describe()
            );
            if s.proposals > 0 {
                eprintln!(
                    "duplicates: {} of {} proposals ({:.1}%)",
                    s.duplicates,
                    s.proposals,
                    100.0 * s.duplicates as f64 / s.proposals as f64
                );
            }
            if let Ok(test) = store.test_scores() {
                let on_front: Vec<_> = s.front.iter().filter_map(|id| test.get(id)).collect();
                if !on_front.is_empty() {
                    let best = on_front
                        .iter()
                        .map(|t| t.noisy_accuracy_mean)
                        .fold(f64::NEG_INFINITY, f64::max);
                    eprintln!(
                        "test split (final front only, {} of {} scored): best noisy accuracy {:.3}",
                        on_front.len(),
                        s.front.len(),
                        best
                    );
                }
            }
            // Why the front is empty or thin: the constraints most candidates break.
            let why = uhc::search::report::infeasibility(&archive);
            for line in &why {
                eprintln!("constraints: {line}");
            }
            let total = s.engine_seconds + s.evaluation_seconds;
            if total > 0.0 {
                eprintln!(
                    "engine overhead: {:.3} s of {:.1} s ({:.2}%)",
                    s.engine_seconds,
                    total,
                    100.0 * s.engine_seconds / total
                );
            }
            if let Some(stats) = llm_stats {
                eprintln!("LLM (this session): {}", stats.get().summary());
            }
            if let Err(e) = store.set_finished(true) {
                eprintln!("warning: could not mark the run finished for its workers: {e}");
            }
            eprintln!("run stored in {db}; `uhc report {db}` writes the report");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_PROBLEMS
        }
    }
}

/// The session's accounting, in one line whose parts add up: every proposal (and every
/// candidate an earlier session left) is evaluated, failed, rejected, a duplicate or still
/// queued.
pub fn session_counts(s: &uhc::search::engine::Summary) -> String {
    let carried = if s.carried_over > 0 {
        format!(" + {} carried over from an earlier session", s.carried_over)
    } else {
        String::new()
    };
    format!(
        "this session: {} proposals{carried} = {} evaluated + {} failed + {} rejected by the compiler + {} duplicates + {} still queued",
        s.proposals, s.evaluated, s.failed, s.rejected, s.duplicates, s.queued
    )
}
