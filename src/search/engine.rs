//! The evolutionary loop: propose `.uh` candidates, compile and deduplicate them, evaluate
//! the new ones in parallel under a wall-clock limit, commit each result as it lands, and
//! select the next population with NSGA-II. Everything it has done is in the store, so a
//! killed run resumes where it stopped.

use super::genome::{self, Genome};
use super::nsga2::{self, Individual};
use super::store::{
    CandidateRecord, CandidateState, Disposition, Evaluation, Failure, Inserted, Metrics,
    NewCandidate, Recovery, Store, StoreError, Violation,
};
use crate::check::model::{
    ArchGraph, Direction, HardwareProfile, Metric, Operator, SearchSpec, TaskSpec, TrainSpec,
};
use crate::check::Resolver;
use crate::diag::Sources;
use crate::syntax::{self, Item};
use crate::Compiled;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::failure::{EvalError, Rejection};
pub use crate::train::{HeldOut, Scores};

/// Everything an evaluator needs for one candidate.
pub struct EvalRequest<'a> {
    pub compiled: &'a Compiled,
    pub arch: &'a str,
    pub task: &'a TaskSpec,
    pub train: &'a TrainSpec,
    pub draws: usize,
    /// Derived from the search seed and the candidate: training and noise seeds come from it.
    pub seed: u64,
    /// Evaluators check it between mini-batches and give up with an error once passed.
    pub deadline: Instant,
    /// The split scored: the search selects on `Validation`; its final front alone is
    /// scored on `Test`. Training is the same either way.
    pub split: HeldOut,
}

/// Trains and scores one candidate. Must be deterministic for a given request.
pub trait Evaluator: Send + Sync {
    fn evaluate(&self, req: &EvalRequest<'_>) -> Result<Scores, EvalError>;
    /// The task's input width as its data says, where the file could not (IDX, CSV):
    /// proposers then write the right `input` line.
    fn task_features(&self, _task: &TaskSpec) -> Option<usize> {
        None
    }
}

/// Training is the evaluator of a real search. The adapter lives here so that `train`
/// knows nothing of the search.
impl Evaluator for crate::train::Trainer {
    fn evaluate(&self, req: &EvalRequest<'_>) -> Result<Scores, EvalError> {
        let graph = req
            .compiled
            .graph(req.arch)
            .ok_or_else(|| crate::train::TrainError::UnknownArch(req.arch.to_string()))?;
        self.run(
            graph,
            req.task,
            req.train,
            req.draws,
            req.seed,
            req.split,
            Some(crate::train::Stop::when({
                let deadline = req.deadline;
                move || Instant::now() >= deadline
            })),
            None,
        )
        .map(|o| o.robustness.scores())
        .map_err(EvalError::from)
    }

    fn task_features(&self, task: &TaskSpec) -> Option<usize> {
        self.data(task).ok().map(|d| d.train_x.ncols())
    }
}

/// `evaluator` on `req`, a panic caught and returned as [`EvalError::Panicked`]: one
/// candidate's bug must not take the run (or a worker) down.
pub fn evaluate_caught(
    evaluator: &dyn Evaluator,
    req: &EvalRequest<'_>,
) -> Result<Scores, EvalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.evaluate(req)))
        .unwrap_or_else(|p| Err(EvalError::from_panic(p.as_ref())))
}

/// The failure stored for a queued candidate that the search no longer accepts (its
/// source changed between runs, or a worker runs other compiler code).
pub fn no_longer_compiles(rejection: &Rejection) -> String {
    format!(
        "no longer compiles ({}): {}",
        rejection.reason(),
        rejection.diagnostics()
    )
}

/// The search file, compiled, and what candidates are compiled against.
pub struct SearchContext {
    pub spec: SearchSpec,
    pub task: TaskSpec,
    pub hardware: HardwareProfile,
    /// The search file's `use` and `hardware` items, as text (the LLM prompt shows it).
    pub prelude: String,
    /// The prelude checked once: every candidate is checked in it ([`crate::compile_in`]).
    env: crate::check::Env,
    /// Seed architectures as `.uh` text, retargeted onto the search's hardware.
    pub seeds: Vec<String>,
    resolver: Arc<dyn Resolver + Send + Sync>,
    file_name: String,
    /// Genomes of candidates already compiled, by candidate id: parents are picked again
    /// and again, and recompiling them dominated the engine's own time.
    genomes: std::sync::Mutex<std::collections::HashMap<i64, Genome>>,
    /// Structural hashes of every candidate stored or proposed so far: built-in operators
    /// draw again rather than propose one of them (a duplicate costs a proposal and
    /// teaches nothing).
    known: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A candidate that compiled.
pub struct CompiledCandidate {
    pub compiled: Compiled,
    pub arch: ArchGraph,
    pub canonical: String,
    pub hash: String,
}

impl SearchContext {
    /// Builds the context for search `name` in a compiled file.
    pub fn new(
        file_name: &str,
        text: &str,
        compiled: &Compiled,
        name: Option<&str>,
        resolver: Arc<dyn Resolver + Send + Sync>,
    ) -> Result<SearchContext, String> {
        let searches = &compiled.checked.searches;
        let spec = match name {
            Some(n) => searches.iter().find(|s| s.name == n).ok_or_else(|| {
                format!(
                    "no search named `{n}`; the file has: {}",
                    searches
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
            None if searches.len() == 1 => &searches[0],
            None if searches.is_empty() => return Err("the file defines no `search` item".into()),
            None => {
                return Err("the file defines several searches; choose one with --search".into())
            }
        };
        SearchContext::with_spec(file_name, text, compiled, spec.clone(), resolver)
    }

    /// The context of a search as `spec` says, which may differ from the file's (an
    /// experiment's cell: another hardware profile, its seeds, operators, budget).
    pub fn with_spec(
        file_name: &str,
        text: &str,
        compiled: &Compiled,
        spec: SearchSpec,
        resolver: Arc<dyn Resolver + Send + Sync>,
    ) -> Result<SearchContext, String> {
        let spec = &spec;
        let task = compiled
            .checked
            .task(&spec.task)
            .cloned()
            .ok_or("the search's task is missing")?;
        let hardware = compiled
            .checked
            .hardware(&spec.hardware)
            .cloned()
            .ok_or("the search's hardware is missing")?;
        let (ast, _) = syntax::parse(crate::diag::FileId(0), text);
        let prelude_items: Vec<Item> = ast
            .items
            .iter()
            .filter(|i| matches!(i, Item::Use(_) | Item::Hardware(_)))
            .cloned()
            .collect();
        let prelude = syntax::print_file(&syntax::File {
            items: prelude_items,
        });
        let mut env_sources = Sources::new();
        let env_root = env_sources.add(format!("{file_name}#prelude"), prelude.clone());
        let (env, _) = crate::check::Env::new(env_sources, env_root, resolver.as_ref());
        let mut seeds = Vec::new();
        for seed in &spec.seeds {
            let Some(Item::Arch(a)) = ast
                .items
                .iter()
                .find(|i| matches!(i, Item::Arch(a) if &a.name.name == seed))
            else {
                continue;
            };
            let mut a = a.clone();
            a.hardware.name = hardware.name.clone();
            seeds.push(syntax::print_file(&syntax::File {
                items: vec![Item::Arch(a)],
            }));
        }
        Ok(SearchContext {
            spec: spec.clone(),
            task,
            hardware,
            prelude,
            env,
            seeds,
            resolver,
            file_name: file_name.to_string(),
            genomes: Default::default(),
            known: Default::default(),
        })
    }

    /// The task's input width, once read from its data when the file could not say it
    /// (an IDX or CSV data set): proposers then write the right `input` line and every
    /// candidate is held to it.
    pub fn set_features(&mut self, features: usize) {
        self.task.features = Some(features);
    }

    /// Marks a structural hash as taken; true when it was new.
    pub fn claim_hash(&self, hash: &str) -> bool {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(hash.to_string())
    }

    /// Whether a structural hash is already stored or proposed.
    pub fn is_known(&self, hash: &str) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.contains(hash)
    }

    /// Checks and lowers candidate text in the search's environment (its prelude,
    /// checked once): the candidate is a file of its own, so its diagnostics carry its own
    /// line numbers.
    fn compile_in_env(
        &self,
        text: &str,
        parsed: Option<syntax::File>,
    ) -> (
        Option<Compiled>,
        Vec<crate::Diagnostic>,
        Sources,
        crate::diag::FileId,
    ) {
        crate::compile_in(
            &self.env,
            &format!("{}#candidate", self.file_name),
            text,
            parsed,
            self.resolver.as_ref(),
        )
    }

    /// The candidate's diagnostics (task shape included), with the region the candidate
    /// occupies (the whole of its own file): what [`crate::fix::fix_with`] needs to repair
    /// candidate text and nothing else.
    pub fn candidate_diagnostics(
        &self,
        text: &str,
    ) -> (crate::fix::Region, Vec<crate::Diagnostic>) {
        let (compiled, mut diags, _, root) = self.compile_in_env(text, None);
        if let Some(arch) = compiled.as_ref().and_then(|c| c.checked.archs.last()) {
            diags.extend(crate::check::task_shape(arch, &self.task));
        }
        (crate::fix::Region::file(root), diags)
    }

    /// Compiles candidate text (one `arch` on the search's hardware) in the search's
    /// environment, or says why it is refused.
    pub fn compile_candidate(&self, text: &str) -> Result<CompiledCandidate, Rejection> {
        let (cand_ast, parse_diags) = syntax::parse(crate::diag::FileId(0), text);
        if parse_diags.is_empty() {
            let archs = cand_ast
                .items
                .iter()
                .filter(|i| matches!(i, Item::Arch(_)))
                .count();
            let others: Vec<&'static str> = cand_ast
                .items
                .iter()
                .filter(|i| !matches!(i, Item::Arch(_)))
                .map(|i| i.keyword())
                .collect();
            if archs != 1 || !others.is_empty() {
                return Err(Rejection::NotOneArch { archs, others });
            }
            if let Some(Item::Arch(a)) = cand_ast.items.first() {
                if a.hardware.name != self.hardware.name {
                    return Err(Rejection::OtherHardware {
                        arch: a.name.name.clone(),
                        found: a.hardware.name.clone(),
                        expected: self.hardware.name.clone(),
                    });
                }
            }
        }
        // Parsed once: the tree goes to the checker and to the canonical printer.
        let parsed = parse_diags.is_empty().then(|| cand_ast.clone());
        let (compiled, diags, sources, _) = self.compile_in_env(text, parsed);
        let Some(compiled) = compiled else {
            let code = diags
                .iter()
                .find(|d| d.is_error())
                .map_or("invalid", |d| d.code);
            return Err(Rejection::Diagnostics {
                code,
                rendered: sources.render_plain(&diags),
            });
        };
        let Some(arch) = compiled.checked.archs.last().cloned() else {
            return Err(Rejection::NotOneArch {
                archs: 0,
                others: Vec::new(),
            });
        };
        let shape = crate::check::task_shape(&arch, &self.task);
        if !shape.is_empty() {
            return Err(Rejection::Diagnostics {
                code: crate::diag::code::SHAPE,
                rendered: sources.render_plain(&shape),
            });
        }
        let Some(graph) = compiled.graph(&arch.name) else {
            return Err(Rejection::NotLowered);
        };
        let hash = crate::ir::structural_hash(graph);
        let canonical = if !parse_diags.iter().any(|d| d.is_error()) {
            syntax::format_parsed(&cand_ast, text)
        } else {
            text.to_string()
        };
        Ok(CompiledCandidate {
            compiled,
            arch,
            canonical,
            hash,
        })
    }
}

/// Flags that override the `search` item.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub budget: Option<usize>,
    pub jobs: Option<usize>,
    pub seed: Option<u64>,
    /// Propose each generation while the previous one is evaluated (steady state).
    pub pipeline: bool,
    /// Set (by a signal handler) to stop: no new work is claimed or proposed, the
    /// evaluations in flight finish and are stored, and [`run`] returns with
    /// [`Summary::stopped`].
    pub stop: Option<&'static std::sync::atomic::AtomicBool>,
}

impl Overrides {
    fn stopping(&self) -> bool {
        self.stop
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A source of new candidate texts. Built-in operators edit genomes; LLM operators write text.
pub trait Proposer: Send {
    /// The operator name stored with each proposal.
    fn name(&self) -> &str;
    /// How many parents it takes (0, 1 or 2).
    fn arity(&self) -> usize;
    fn propose(
        &mut self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String>;
    /// Sees the archive (every evaluated candidate) once per generation, before proposing.
    fn observe(&mut self, _cx: &SearchContext, _archive: &[CandidateRecord]) {}
    /// LLM exchanges made since the last call, for the store's log.
    fn drain_exchanges(&mut self) -> Vec<super::store::Exchange> {
        Vec::new()
    }
    /// True once the proposer can no longer work (an LLM budget is spent): the engine
    /// evaluates what is queued and stops.
    fn exhausted(&self) -> bool {
        false
    }
    /// How many proposals it makes at once. Above 1, the engine hands it a generation's
    /// slots together ([`Proposer::propose_batch`]) instead of one at a time.
    fn concurrency(&self) -> usize {
        1
    }
    /// Proposals for several parent sets, each with its own random stream, in order,
    /// with the exchanges each made. The default proposes one after another; LLM
    /// operators override it to keep several calls in flight.
    fn propose_batch(
        &mut self,
        cx: &SearchContext,
        jobs: &[BatchJob<'_>],
    ) -> Vec<(Option<String>, Vec<super::store::Exchange>)> {
        jobs.iter()
            .map(|job| {
                let mut rng = StdRng::seed_from_u64(job.seed);
                let text = self.propose(cx, &job.parents, &mut rng);
                (text, self.drain_exchanges())
            })
            .collect()
    }
}

/// One slot of a batch: the parents and the seed of its random stream.
pub struct BatchJob<'a> {
    pub parents: Vec<&'a CandidateRecord>,
    pub seed: u64,
}

fn parent_genome(cx: &SearchContext, p: &CandidateRecord) -> Option<Genome> {
    if let Some(g) = cx.genomes.lock().ok().and_then(|m| m.get(&p.id).cloned()) {
        return Some(g);
    }
    let c = cx.compile_candidate(&p.text).ok()?;
    let g = Genome::from_graph(&c.arch);
    if let Ok(mut m) = cx.genomes.lock() {
        m.insert(p.id, g.clone());
    }
    Some(g)
}

/// `.uh` text for a genome on the search's hardware, under a fresh random name.
fn genome_text(cx: &SearchContext, prefix: &str, g: &Genome, rng: &mut StdRng) -> String {
    g.to_text(
        &format!("{prefix}_{}", rng.random::<u32>()),
        &cx.hardware.name,
    )
}

pub struct RandomProposer;
pub struct MutateProposer;
pub struct CrossoverProposer;

/// How many children a built-in operator draws before it gives up on finding a new one.
const NOVEL_TRIES: usize = 24;

/// The first of up to [`NOVEL_TRIES`] drawn children whose structure is neither stored
/// nor proposed yet, as text, its hash claimed; `None` when every draw was taken (the
/// engine then spends the slot elsewhere rather than store a duplicate). A child that
/// does not compile is returned as is: the engine records why.
fn novel(
    cx: &SearchContext,
    prefix: &str,
    parents: &[&CandidateRecord],
    rng: &mut StdRng,
    mut draw: impl FnMut(&mut StdRng) -> Genome,
) -> Option<String> {
    // A parent is in the run already; outside a run (a caller's own context) it is
    // excluded all the same.
    let parent_hashes: Vec<String> = parents
        .iter()
        .filter_map(|p| {
            p.structural_hash
                .clone()
                .or_else(|| cx.compile_candidate(&p.text).ok().map(|c| c.hash))
        })
        .collect();
    for _ in 0..NOVEL_TRIES {
        let g = draw(rng);
        let text = genome_text(cx, prefix, &g, rng);
        match cx.compile_candidate(&text) {
            Ok(c) if !parent_hashes.contains(&c.hash) && cx.claim_hash(&c.hash) => {
                return Some(text)
            }
            Ok(_) => continue,
            Err(_) => return Some(text),
        }
    }
    None
}

/// The input width proposers write: the task's, or (a data set whose width is only known
/// once read, and the caller did not read it) the first seed's.
fn features(cx: &SearchContext) -> usize {
    cx.task
        .features
        .or_else(|| {
            cx.seeds
                .iter()
                .find_map(|s| cx.compile_candidate(s).ok().map(|c| c.arch.input_width()))
        })
        .unwrap_or(cx.hardware.backend.max_width().min(16))
}

impl Proposer for RandomProposer {
    fn name(&self) -> &str {
        Operator::Random.name()
    }
    fn arity(&self) -> usize {
        0
    }
    fn propose(
        &mut self,
        cx: &SearchContext,
        _: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String> {
        let features = features(cx);
        novel(cx, "random", &[], rng, |rng| {
            genome::random(&cx.hardware, features, cx.task.classes, rng)
        })
    }
}

impl Proposer for MutateProposer {
    fn name(&self) -> &str {
        Operator::Mutate.name()
    }
    fn arity(&self) -> usize {
        1
    }
    fn propose(
        &mut self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String> {
        let g = parent_genome(cx, parents.first()?)?;
        novel(cx, "mutant", parents, rng, |rng| {
            genome::mutate(&g, &cx.hardware, rng)
        })
    }
}

impl Proposer for CrossoverProposer {
    fn name(&self) -> &str {
        Operator::Crossover.name()
    }
    fn arity(&self) -> usize {
        2
    }
    fn propose(
        &mut self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String> {
        let a = parent_genome(cx, parents.first()?)?;
        let b = parent_genome(cx, parents.get(1)?)?;
        novel(cx, "child", parents, rng, |rng| {
            genome::crossover(&a, &b, rng)
        })
    }
}

/// The built-in (no-network) proposer for an operator name.
pub fn builtin_proposer(name: &str) -> Option<Box<dyn Proposer>> {
    match Operator::from_name(name)? {
        Operator::Random => Some(Box::new(RandomProposer)),
        Operator::Mutate => Some(Box::new(MutateProposer)),
        Operator::Crossover => Some(Box::new(CrossoverProposer)),
        Operator::LlmMutate | Operator::LlmCrossover | Operator::BestOfN => None,
    }
}

/// A metric's value for a candidate (static ones from the compiler, the rest measured).
pub fn metric_value(m: &Metrics, metric: Metric) -> f64 {
    match metric {
        Metric::Accuracy => m.accuracy,
        Metric::NoisyAccuracyMean => m.noisy_accuracy_mean,
        Metric::NoisyAccuracyStd => m.noisy_accuracy_std,
        Metric::NoisyAccuracyP5 => m.noisy_accuracy_p5,
        Metric::AccuracyDrop => m.accuracy_drop,
        Metric::Energy => m.energy_pj * 1e-12,
        Metric::MziCount => m.mzi_count.unwrap_or(0) as f64,
        Metric::OpticalDepth => m.depth as f64,
        Metric::Params => m.params as f64,
    }
}

/// Progress events for the CLI's bar.
#[derive(Clone, Debug)]
pub enum Event {
    Evaluated {
        id: i64,
        done: usize,
        budget: usize,
        generation: u32,
        outcome: String,
    },
    Proposed {
        generation: u32,
        valid: usize,
        rejected: usize,
        duplicates: usize,
    },
    Generation {
        generation: u32,
        front: usize,
        hypervolume: f64,
    },
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Stopped on request ([`Overrides::stop`]) before the budget was spent.
    pub stopped: bool,
    pub evaluated: usize,
    pub proposals: usize,
    pub rejected: usize,
    pub duplicates: usize,
    /// Evaluations that failed or timed out this session, and candidates marked failed
    /// on resume (out of attempts).
    pub failed: usize,
    /// Candidates this session found waiting from an earlier one (queued, or back in the
    /// queue on resume) or marked failed on resume: they were proposed before it.
    pub carried_over: usize,
    /// Candidates still waiting for evaluation when the session ended.
    pub queued: usize,
    pub front: Vec<i64>,
    /// In the search's [`Space`](super::indicator::Space), on the validation split.
    pub hypervolume: f64,
    /// Front members scored on the test split at the end of this session.
    pub test_scored: usize,
    pub resumed: bool,
    /// Engine time outside evaluation (proposal, compile, dedup, store), seconds.
    pub engine_seconds: f64,
    pub evaluation_seconds: f64,
}

/// Runs (or resumes) a search until the evaluation budget is spent.
pub fn run(
    cx: &SearchContext,
    store: &mut Store,
    evaluator: Arc<dyn Evaluator>,
    proposers: &mut [(Box<dyn Proposer>, f64)],
    overrides: &Overrides,
    resumed: bool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary, StoreError> {
    let budget = overrides.budget.unwrap_or(cx.spec.budget);
    // A shared run may be coordinated by a process that evaluates nothing itself.
    let jobs = overrides
        .jobs
        .unwrap_or(1)
        .max(usize::from(!store.is_shared()));
    let seed = overrides.seed.unwrap_or(cx.spec.seed);
    let mut summary = Summary {
        resumed,
        ..Summary::default()
    };
    let engine_start = Instant::now();
    // Alone on a run, every `running` row is this process's dead work; on a shared run
    // other workers' live leases are not, and only expired ones come back.
    let recovered = store.recover(if store.is_shared() {
        Recovery::ExpiredAndCoordinators
    } else {
        Recovery::AllRunning
    })?;
    // Proposals interrupted between insert and enqueue are queued now.
    for c in store.candidates_in_state(CandidateState::Proposed)? {
        store.enqueue(c.id)?;
    }
    // What this run's store holds (a resumed run) is not proposed again; what another
    // run in this context proposed is no concern of this one.
    cx.known.lock().unwrap_or_else(|e| e.into_inner()).clear();
    for state in [
        CandidateState::Queued,
        CandidateState::Done,
        CandidateState::Failed,
        CandidateState::Timeout,
    ] {
        for c in store.candidates_in_state(state)? {
            if let Some(h) = &c.structural_hash {
                cx.claim_hash(h);
            }
        }
    }
    // What the session's accounting starts from: so that evaluated + failed + rejected +
    // duplicates + queued = proposals + carried over.
    summary.failed += recovered.failed.len();
    summary.carried_over = store.counts_by_state()?.queued as usize + recovered.failed.len();
    if store.counts_by_state()?.total() == 0 {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
        for text in &cx.seeds {
            add_candidate(cx, store, text, Vec::new(), "seed", 0, &mut summary)?;
        }
        // Fill the first population with mutations of the seeds.
        let mut tries = 0;
        while store.counts_by_state()?.queued < cx.spec.population as u64
            && tries < cx.spec.population * 4
        {
            tries += 1;
            let queued = store.candidates_in_state(CandidateState::Queued)?;
            if queued.is_empty() {
                break;
            }
            let parent = &queued[rng.random_range(0..queued.len())];
            let mut m = MutateProposer;
            if let Some(text) = m.propose(cx, &[parent], &mut rng) {
                add_candidate(
                    cx,
                    store,
                    &text,
                    vec![parent.id],
                    Operator::Mutate.name(),
                    0,
                    &mut summary,
                )?;
            }
        }
    }
    let mut exhausted = false;
    loop {
        if overrides.stopping() {
            summary.stopped = true;
            break;
        }
        let counts = store.counts_by_state()?;
        let evaluated = (counts.done + counts.failed + counts.timeout) as usize;
        if evaluated >= budget {
            break;
        }
        let queued = store.candidates_in_state(CandidateState::Queued)?;
        let next = store.last_generation()?.map_or(1, |g| g + 1);
        let more_generations =
            !(next as usize > cx.spec.generations.max(1) && overrides.budget.is_none());
        if !queued.is_empty() {
            let take: Vec<CandidateRecord> = queued.into_iter().take(budget - evaluated).collect();
            let t = Instant::now();
            // Pipelined: propose the next generation from the archive as it stands while
            // this batch is evaluated (a steady-state step: its parents do not yet see
            // this batch's results). Only where more evaluations will follow, so no
            // proposal is paid for and then left unevaluated by the budget.
            let pipelined = overrides.pipeline
                && !overrides.stopping()
                && !exhausted
                && more_generations
                && evaluated + take.len() < budget;
            let plan = if pipelined {
                plan_generation(cx, store, proposers, seed, next, on_event)?
            } else {
                None
            };
            // One evaluation either way; the next generation's proposals, if pipelined,
            // run beside it on another thread.
            let need = cx.spec.offspring;
            let (proposed, evaluation) = std::thread::scope(|scope| {
                let lent = &mut *proposers;
                let proposing = plan.map(|mut plan| {
                    scope.spawn(move || {
                        let (mut attempts, mut ran_out) = (0, false);
                        let p =
                            propose_round(cx, lent, &mut plan, need, &mut attempts, &mut ran_out);
                        (p, ran_out)
                    })
                });
                let evaluation = evaluate_batch(
                    cx,
                    store,
                    &evaluator,
                    take,
                    jobs,
                    seed,
                    budget,
                    evaluated,
                    &mut summary,
                    on_event,
                    overrides,
                );
                (proposing.map(|h| h.join()), evaluation)
            });
            evaluation?;
            if let Some(joined) = proposed {
                // A proposer that panicked does so here, as it would have in line.
                let (proposed, ran_out) =
                    joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                exhausted |= ran_out;
                let before = (summary.rejected, summary.duplicates);
                let valid = store_round(cx, store, proposers, proposed, next, &mut summary)?;
                on_event(Event::Proposed {
                    generation: next,
                    valid,
                    rejected: summary.rejected - before.0,
                    duplicates: summary.duplicates - before.1,
                });
            }
            summary.evaluation_seconds += t.elapsed().as_secs_f64();
            continue;
        }
        if exhausted || !more_generations {
            break;
        }
        let Some(mut plan) = plan_generation(cx, store, proposers, seed, next, on_event)? else {
            break;
        };
        let mut valid = 0;
        let before = (summary.rejected, summary.duplicates);
        let mut attempts = 0;
        while valid < cx.spec.offspring
            && attempts < cx.spec.offspring * 8
            && !exhausted
            && !overrides.stopping()
        {
            let need = cx.spec.offspring - valid;
            let proposed = propose_round(
                cx,
                proposers,
                &mut plan,
                need,
                &mut attempts,
                &mut exhausted,
            );
            valid += store_round(cx, store, proposers, proposed, next, &mut summary)?;
        }
        on_event(Event::Proposed {
            generation: next,
            valid,
            rejected: summary.rejected - before.0,
            duplicates: summary.duplicates - before.1,
        });
        if valid == 0 && !exhausted {
            break;
        }
    }
    let archive = store.load_archive()?;
    let (front, hv) = front_and_hypervolume(cx, &archive);
    summary.front = front.iter().map(|&i| archive[i].id).collect();
    summary.hypervolume = hv;
    // The final front, and only it, is scored on the test split (not when stopped early:
    // the front is not final, and a resumed run scores it at its end).
    if !summary.stopped {
        let t = Instant::now();
        summary.test_scored = score_on_test(cx, store, &evaluator, &summary.front, seed, jobs)?;
        summary.evaluation_seconds += t.elapsed().as_secs_f64();
    }
    let end = store.counts_by_state()?;
    summary.queued = (end.queued + end.proposed + end.running) as usize;
    summary.engine_seconds = engine_start.elapsed().as_secs_f64() - summary.evaluation_seconds;
    Ok(summary)
}

/// What a generation's proposals are drawn from: the archive as it stood, the selected
/// population with its ranking, and the generation's random stream.
struct Plan {
    archive: Vec<CandidateRecord>,
    population: Vec<usize>,
    ranking: nsga2::Ranking,
    rng: StdRng,
}

/// Shows the archive to the proposers (logging what they exchanged), selects the
/// population and reports the front. `None` when nothing is evaluated yet.
fn plan_generation(
    cx: &SearchContext,
    store: &mut Store,
    proposers: &mut [(Box<dyn Proposer>, f64)],
    seed: u64,
    generation: u32,
    on_event: &mut dyn FnMut(Event),
) -> Result<Option<Plan>, StoreError> {
    let archive = store.load_archive()?;
    if archive.is_empty() {
        return Ok(None);
    }
    for (p, _) in proposers.iter_mut() {
        p.observe(cx, &archive);
        for e in p.drain_exchanges() {
            store.record_exchange(&e)?;
        }
    }
    let rng = StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(generation as u64),
    );
    let (population, ranking) = select_population(cx, &archive);
    let (front, hv) = front_and_hypervolume(cx, &archive);
    on_event(Event::Generation {
        generation: generation - 1,
        front: front.len(),
        hypervolume: hv,
    });
    Ok(Some(Plan {
        archive,
        population,
        ranking,
        rng,
    }))
}

/// A proposal of a round: its operator (index), parents, text and exchanges.
struct Proposed {
    which: usize,
    parents: Vec<i64>,
    text: Option<String>,
    exchanges: Vec<super::store::Exchange>,
}

/// Draws up to `need` slots (operator, then parents by binary tournament) and proposes
/// for them, touching no store. Built-in operators propose in slot order on the plan's
/// random stream; operators that batch (LLM calls in flight at once) get a seed per slot
/// and run together once the round is drawn.
fn propose_round(
    cx: &SearchContext,
    proposers: &mut [(Box<dyn Proposer>, f64)],
    plan: &mut Plan,
    need: usize,
    attempts: &mut usize,
    exhausted: &mut bool,
) -> Vec<Proposed> {
    let total_weight: f64 = proposers.iter().map(|p| p.1).sum();
    let limit = cx.spec.offspring * 8;
    let mut slots: Vec<(usize, Vec<usize>, SlotResult)> = Vec::new();
    for _ in 0..need {
        if *attempts >= limit {
            break;
        }
        if proposers.iter().any(|p| p.0.exhausted()) {
            *exhausted = true;
            break;
        }
        *attempts += 1;
        let rng = &mut plan.rng;
        let mut pick = rng.random::<f64>() * total_weight;
        let mut which = 0;
        for (i, p) in proposers.iter().enumerate() {
            if pick < p.1 {
                which = i;
                break;
            }
            pick -= p.1;
            which = i;
        }
        let proposer = &mut proposers[which].0;
        let picks =
            nsga2::binary_tournament(&plan.ranking, proposer.arity(), rng).unwrap_or_default();
        let parents: Vec<usize> = picks.iter().map(|&i| plan.population[i]).collect();
        let result = if proposer.concurrency() > 1 {
            SlotResult::Deferred(rng.random::<u64>())
        } else {
            let refs: Vec<&CandidateRecord> = parents.iter().map(|&i| &plan.archive[i]).collect();
            let text = proposer.propose(cx, &refs, rng);
            SlotResult::Done(text, proposer.drain_exchanges())
        };
        slots.push((which, parents, result));
    }
    for (which, (proposer, _)) in proposers.iter_mut().enumerate() {
        let idx: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].0 == which && matches!(slots[i].2, SlotResult::Deferred(_)))
            .collect();
        if idx.is_empty() {
            continue;
        }
        let jobs: Vec<BatchJob<'_>> = idx
            .iter()
            .map(|&i| BatchJob {
                parents: slots[i].1.iter().map(|&a| &plan.archive[a]).collect(),
                seed: match slots[i].2 {
                    SlotResult::Deferred(seed) => seed,
                    SlotResult::Done(..) => 0,
                },
            })
            .collect();
        let mut results = proposer.propose_batch(cx, &jobs).into_iter();
        for &i in &idx {
            let (text, exchanges) = results.next().unwrap_or((None, Vec::new()));
            slots[i].2 = SlotResult::Done(text, exchanges);
        }
    }
    slots
        .into_iter()
        .filter_map(|(which, parents, result)| match result {
            SlotResult::Done(text, exchanges) => Some(Proposed {
                which,
                parents: parents.iter().map(|&i| plan.archive[i].id).collect(),
                text,
                exchanges,
            }),
            SlotResult::Deferred(_) => None,
        })
        .collect()
}

enum SlotResult {
    /// To be proposed in a batch, with this seed.
    Deferred(u64),
    Done(Option<String>, Vec<super::store::Exchange>),
}

/// Stores a round's proposals in slot order, each with its exchanges (the last one,
/// which wrote the proposal, linked to the stored candidate). Returns how many were
/// queued for evaluation.
fn store_round(
    cx: &SearchContext,
    store: &mut Store,
    proposers: &[(Box<dyn Proposer>, f64)],
    proposed: Vec<Proposed>,
    generation: u32,
    summary: &mut Summary,
) -> Result<usize, StoreError> {
    let mut valid = 0;
    for p in proposed {
        let Some(text) = p.text else {
            for e in &p.exchanges {
                store.record_exchange(e)?;
            }
            continue;
        };
        let op = proposers[p.which].0.name().to_string();
        let (queued, id) = add_candidate(cx, store, &text, p.parents, &op, generation, summary)?;
        valid += queued as usize;
        let last = p.exchanges.len().saturating_sub(1);
        for (i, mut e) in p.exchanges.into_iter().enumerate() {
            if i == last {
                e.candidate_id = Some(id);
            }
            store.record_exchange(&e)?;
        }
    }
    Ok(valid)
}

/// Compiles and stores a proposal. Returns whether it was queued for evaluation, and the
/// id of the stored (or, for a duplicate, the existing) candidate.
fn add_candidate(
    cx: &SearchContext,
    store: &mut Store,
    text: &str,
    parents: Vec<i64>,
    operator: &str,
    generation: u32,
    summary: &mut Summary,
) -> Result<(bool, i64), StoreError> {
    summary.proposals += 1;
    match cx.compile_candidate(text) {
        Ok(c) => {
            cx.claim_hash(&c.hash);
            let new = NewCandidate {
                text: text.to_string(),
                canonical_text: Some(c.canonical),
                structural_hash: Some(c.hash),
                parents,
                operator: operator.to_string(),
                generation,
            };
            match store.insert_proposal(&new, &Disposition::Queued)? {
                Inserted::New(id) => Ok((true, id)),
                Inserted::Duplicate { id, .. } => {
                    summary.duplicates += 1;
                    Ok((false, id))
                }
            }
        }
        Err(rejection) => {
            summary.rejected += 1;
            let new = NewCandidate {
                text: text.to_string(),
                canonical_text: None,
                structural_hash: None,
                parents,
                operator: operator.to_string(),
                generation,
            };
            let id = store
                .insert_proposal(
                    &new,
                    &Disposition::Rejected {
                        reason: rejection.reason().to_string(),
                        diagnostics: rejection.diagnostics(),
                    },
                )?
                .id();
            Ok((false, id))
        }
    }
}

fn individuals(
    cx: &SearchContext,
    archive: &[CandidateRecord],
) -> (Vec<Individual>, Vec<Direction>) {
    let dirs: Vec<Direction> = cx.spec.objectives.iter().map(|o| o.direction).collect();
    let inds = archive
        .iter()
        .map(|c| {
            let m = c.evaluation.as_ref().map(|e| &e.metrics);
            let objectives = cx
                .spec
                .objectives
                .iter()
                .map(|o| m.map_or(f64::NAN, |m| metric_value(m, o.metric)))
                .collect();
            Individual {
                objectives,
                violation: m.map_or(f64::INFINITY, |m| m.total_violation()),
            }
        })
        .collect();
    (inds, dirs)
}

fn select_population(
    cx: &SearchContext,
    archive: &[CandidateRecord],
) -> (Vec<usize>, nsga2::Ranking) {
    let (inds, dirs) = individuals(cx, archive);
    match nsga2::environmental_selection(&inds, &dirs, cx.spec.population.min(inds.len())) {
        Ok(s) => (s.indices, s.ranking),
        Err(_) => {
            let all: Vec<usize> = (0..inds.len()).collect();
            let ranking = nsga2::rank_population(&inds, &dirs).unwrap_or_else(|_| nsga2::Ranking {
                fronts: vec![all.clone()],
                rank: vec![0; all.len()],
                crowding: vec![0.0; all.len()],
                copy_index: vec![0; all.len()],
            });
            (all, ranking)
        }
    }
}

/// Indices (into `archive`) of the feasible first front, and its hypervolume in the
/// search's [`Space`](super::indicator::Space): the number the progress line, the summary
/// and `uhc report` all print.
pub fn front_and_hypervolume(cx: &SearchContext, archive: &[CandidateRecord]) -> (Vec<usize>, f64) {
    let (inds, dirs) = individuals(cx, archive);
    if inds.is_empty() {
        return (Vec::new(), 0.0);
    }
    let fronts = nsga2::non_dominated_sort(&inds, &dirs).unwrap_or_default();
    let front: Vec<usize> = fronts
        .first()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|&i| inds[i].violation <= 0.0)
        .collect();
    let space = space(cx, archive);
    let hv = space.hypervolume(
        front
            .iter()
            .filter_map(|&i| archive[i].evaluation.as_ref().map(|e| &e.metrics)),
    );
    (front, hv)
}

/// The search's hypervolume space; a reference neither declared nor bounded by a
/// constraint is derived from `archive` (and says so).
pub fn space(cx: &SearchContext, archive: &[CandidateRecord]) -> super::indicator::Space {
    let measured: Vec<&Metrics> = archive
        .iter()
        .filter_map(|c| c.evaluation.as_ref().map(|e| &e.metrics))
        .collect();
    super::indicator::Space::for_search(&cx.spec, measured.iter().copied())
}

/// Scores the candidates `ids` (the final front) on the test split, each trained exactly
/// as its evaluation was (same seed and settings), skipping those already scored: a
/// resumed run scores only what is new on its front. Several at once with `jobs`.
pub fn score_on_test(
    cx: &SearchContext,
    store: &mut Store,
    evaluator: &Arc<dyn Evaluator>,
    ids: &[i64],
    seed: u64,
    jobs: usize,
) -> Result<usize, StoreError> {
    let scored = store.test_scores()?;
    let mut todo = Vec::new();
    for &id in ids.iter().filter(|id| !scored.contains_key(id)) {
        let Some(c) = store.candidate(id)? else {
            continue;
        };
        if let Ok(cc) = cx.compile_candidate(&c.text) {
            todo.push((id, cc));
        }
    }
    let mut written = 0;
    for chunk in todo.chunks(jobs.max(1)) {
        let results: Vec<(i64, Result<Scores, EvalError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(id, cc)| {
                    let ev = Arc::clone(evaluator);
                    scope.spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs_f64(cx.spec.timeout);
                        let r = ev.evaluate(&EvalRequest {
                            compiled: &cc.compiled,
                            arch: &cc.arch.name,
                            task: &cx.task,
                            train: &cx.spec.train,
                            draws: cx.spec.draws,
                            seed: candidate_seed(seed, &cc.hash),
                            deadline,
                            split: HeldOut::Test,
                        });
                        (*id, r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for (id, r) in results {
            // A candidate that cannot be scored again keeps its validation row alone.
            if let Ok(s) = r {
                store.record_test_scores(
                    id,
                    &super::store::TestScores {
                        accuracy: s.accuracy,
                        noisy_accuracy_mean: s.noisy_accuracy_mean,
                        noisy_accuracy_std: s.noisy_accuracy_std,
                        noisy_accuracy_p5: s.noisy_accuracy_p5,
                    },
                )?;
                written += 1;
            }
        }
    }
    Ok(written)
}

fn violations(cx: &SearchContext, m: &Metrics) -> Vec<Violation> {
    let mut out = Vec::new();
    for c in &cx.spec.constraints {
        let v = metric_value(m, c.metric);
        if !c.op.holds(v, c.bound) {
            let scale = c.bound.abs().max(1e-30);
            out.push(Violation {
                constraint: format!("{} {} {}", c.metric.name(), c.op.as_str(), c.bound),
                amount: (v - c.bound).abs() / scale,
            });
        }
    }
    out
}

/// What an evaluation was run with, stored with its metrics (`extras.training`) so that
/// `uhc eval --from RUN --candidate N` repeats it exactly: the candidate's own seed, the
/// training settings, the noise draws and the task.
pub fn training_record(cx: &SearchContext, seed: u64) -> serde_json::Value {
    serde_json::json!({
        "seed": seed,
        "epochs": cx.spec.train.epochs,
        "batch": cx.spec.train.batch,
        "lr": cx.spec.train.lr,
        "noise_aware": cx.spec.train.noise_aware,
        "draws": cx.spec.draws,
        "task": cx.task.name,
        "split": HeldOut::Validation.as_str(),
    })
}

/// Candidate seeds are derived from the search seed and the structural hash, so the same
/// network gets the same training seed in any run order.
pub fn candidate_seed(seed: u64, hash: &str) -> u64 {
    let mut h = seed ^ 0x243F_6A88_85A3_08D3;
    for b in hash.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
    }
    h
}

#[allow(clippy::too_many_arguments)]
fn evaluate_batch(
    cx: &SearchContext,
    store: &mut Store,
    evaluator: &Arc<dyn Evaluator>,
    batch: Vec<CandidateRecord>,
    jobs: usize,
    seed: u64,
    budget: usize,
    mut done: usize,
    summary: &mut Summary,
    on_event: &mut dyn FnMut(Event),
    overrides: &Overrides,
) -> Result<(), StoreError> {
    // On a shared run the coordinator's own leases are marked as such, so the next
    // coordinator (which holds the run, so this one is gone) takes them back at once.
    let owner = if store.is_shared() {
        format!(
            "{}{}:{}",
            super::store::COORDINATOR_OWNER,
            super::store::Writer::this_process().host,
            std::process::id()
        )
    } else {
        format!("uhc-{}", std::process::id())
    };
    let timeout = Duration::from_secs_f64(cx.spec.timeout);
    let lease = timeout + Duration::from_secs(60);
    let (tx, rx) = mpsc::channel::<(i64, Result<Scores, EvalError>, f64)>();
    // On a shared run, workers claim from the same queue (in the same order): the
    // coordinator claims at most the batch's size itself, then waits until no candidate
    // of the batch is queued or running.
    let shared = store.is_shared();
    let mut left = batch.len();
    let ids: std::collections::HashSet<i64> = batch.iter().map(|c| c.id).collect();
    let mut running: Vec<(i64, Instant, u32)> = Vec::new();
    let mut info: std::collections::HashMap<i64, (CompiledCandidate, u32)> =
        std::collections::HashMap::new();
    loop {
        while running.len() < jobs && !overrides.stopping() && left > 0 {
            let Some(claimed) = store.claim_next(&owner, lease)? else {
                break;
            };
            left = left.saturating_sub(1);
            let generation = claimed.generation;
            let compiled = match cx.compile_candidate(&claimed.text) {
                Ok(cc) => cc,
                Err(rejection) => {
                    store.record_failure(
                        claimed.id,
                        &owner,
                        Failure::Failed,
                        &no_longer_compiles(&rejection),
                    )?;
                    summary.failed += 1;
                    continue;
                }
            };
            let id = claimed.id;
            let deadline = Instant::now() + timeout;
            let req_seed = candidate_seed(seed, &compiled.hash);
            let tx = tx.clone();
            let ev = Arc::clone(evaluator);
            let program = compiled.compiled.clone();
            let arch = compiled.arch.name.clone();
            let task = cx.task.clone();
            let train = cx.spec.train.clone();
            let draws = cx.spec.draws;
            std::thread::spawn(move || {
                let start = Instant::now();
                let result = evaluate_caught(
                    ev.as_ref(),
                    &EvalRequest {
                        compiled: &program,
                        arch: &arch,
                        task: &task,
                        train: &train,
                        draws,
                        seed: req_seed,
                        deadline,
                        split: HeldOut::Validation,
                    },
                );
                let _ = tx.send((id, result, start.elapsed().as_secs_f64()));
            });
            info.insert(id, (compiled, generation));
            running.push((id, deadline, generation));
        }
        if running.is_empty() {
            if !shared || overrides.stopping() {
                return Ok(());
            }
            let c = store.counts_by_state()?;
            let finished = (c.done + c.failed + c.timeout) as usize;
            if finished > done {
                // Results recorded by workers.
                done = finished;
                on_event(Event::Evaluated {
                    id: 0,
                    done,
                    budget,
                    generation: 0,
                    outcome: "done".into(),
                });
            }
            // The budget is spent (workers stop claiming at it, so the rest of the batch
            // would wait for ever): the run is over.
            if finished >= budget {
                return Ok(());
            }
            // The batch is over when none of it waits or runs (workers may meanwhile
            // take queued candidates beyond it, which the next batch counts).
            let mut open = store.candidates_in_state(CandidateState::Queued)?;
            open.extend(store.candidates_in_state(CandidateState::Running)?);
            if c.queued + c.running == 0 || !open.iter().any(|o| ids.contains(&o.id)) {
                return Ok(());
            }
            std::thread::sleep(SHARED_POLL);
            continue;
        }
        let next_deadline = running
            .iter()
            .map(|r| r.1)
            .min()
            .unwrap_or_else(Instant::now);
        let wait = next_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((id, result, wall)) => {
                let Some(pos) = running.iter().position(|r| r.0 == id) else {
                    continue;
                };
                let (_, _, generation) = running.remove(pos);
                let Some((cc, _)) = info.remove(&id) else {
                    continue;
                };
                let outcome = match result {
                    Ok(scores) => {
                        let m = measured_metrics(cx, &cc, &scores, seed);
                        store.record_evaluation(
                            id,
                            &owner,
                            &Evaluation {
                                metrics: m,
                                wall_time_s: wall,
                            },
                        )?;
                        summary.evaluated += 1;
                        "done".to_string()
                    }
                    Err(e) => {
                        let failure = e.failure();
                        store.record_failure(id, &owner, failure, &e.to_string())?;
                        summary.failed += 1;
                        match failure {
                            Failure::Timeout => "timeout".to_string(),
                            Failure::Failed => format!("failed: {e}"),
                        }
                    }
                };
                done += 1;
                on_event(Event::Evaluated {
                    id,
                    done,
                    budget,
                    generation,
                    outcome,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let expired: Vec<(i64, Instant, u32)> =
                    running.iter().filter(|r| r.1 <= now).copied().collect();
                for (id, _, generation) in expired {
                    running.retain(|r| r.0 != id);
                    info.remove(&id);
                    store.record_failure(
                        id,
                        &owner,
                        Failure::Timeout,
                        &format!("no result within the {} s limit", cx.spec.timeout),
                    )?;
                    summary.failed += 1;
                    done += 1;
                    on_event(Event::Evaluated {
                        id,
                        done,
                        budget,
                        generation,
                        outcome: "timeout".into(),
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// How often a coordinator whose workers hold the rest of a batch looks at the queue.
const SHARED_POLL: Duration = Duration::from_millis(200);

/// Everything stored for an evaluated candidate: the compiler's static metrics, the
/// measured scores, the constraint violations and the training record that repeats it.
pub fn measured_metrics(
    cx: &SearchContext,
    cc: &CompiledCandidate,
    scores: &Scores,
    seed: u64,
) -> Metrics {
    let mut m = static_metrics(cc);
    m.accuracy = scores.accuracy;
    m.noisy_accuracy_mean = scores.noisy_accuracy_mean;
    m.noisy_accuracy_std = scores.noisy_accuracy_std;
    m.noisy_accuracy_p5 = scores.noisy_accuracy_p5;
    m.accuracy_drop = scores.accuracy - scores.noisy_accuracy_mean;
    m.violations = violations(cx, &m);
    m.violations.extend(laser_violations(cc));
    m.extras.insert(
        "training".into(),
        training_record(cx, candidate_seed(seed, &cc.hash)),
    );
    m
}

/// Segments whose laser would have to deliver more light than the source can
/// (`ir::energy::laser_budget`): infeasible, by how much relative to the limit.
fn laser_violations(cc: &CompiledCandidate) -> Vec<Violation> {
    let Some(g) = cc.compiled.graph(&cc.arch.name) else {
        return Vec::new();
    };
    crate::ir::energy::laser_budget(g)
        .into_iter()
        .filter(|b| b.exceeded())
        .map(|b| Violation {
            constraint: format!("laser_power <= {}", b.limit_w),
            amount: (b.needed_w - b.limit_w) / b.limit_w.max(1e-30),
        })
        .collect()
}

/// Metrics the compiler decides: energy, MZI count, depth, parameters.
fn static_metrics(cc: &CompiledCandidate) -> Metrics {
    let g = cc
        .compiled
        .graph(&cc.arch.name)
        .expect("compiled candidates are lowered");
    let cost = g.total_cost();
    let energy = crate::ir::energy_report(g).total;
    Metrics {
        energy_pj: energy * 1e12,
        mzi_count: Some(cost.mzis as u64),
        depth: g.optical_depth() as u64,
        params: cost.params as u64,
        ..Metrics::default()
    }
}
