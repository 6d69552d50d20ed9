//! `uhc worker`: a stateless evaluator of a shared run. It rebuilds the search from the
//! source the run stores, then claims queued candidates under a lease, heartbeats while it
//! trains them, and writes each result in one transaction. Killing it at any moment loses
//! at most the candidates it held, which return to the queue when their leases expire.

use super::engine::{self, EvalRequest, Evaluator, SearchContext};
use super::store::{
    CandidateRecord, Evaluation, Failure, Location, RunSource, Store, StoreError, StoreOptions,
    UsedFile,
};
use crate::check::Resolver;
use crate::diag::Sources;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Hash of the standard library compiled into this uhc: a worker whose stdlib differs
/// would evaluate a different profile under the same name.
pub fn stdlib_hash() -> String {
    let mut all = String::new();
    for (name, text) in crate::stdlib::FILES {
        all.push_str(name);
        all.push('\0');
        all.push_str(text);
        all.push('\0');
    }
    crate::ir::text_hash(&all)
}

/// A resolver that remembers every file it answered with, so the coordinator can store
/// them for workers that do not share its file system.
pub struct Recording<R> {
    pub inner: R,
    seen: Mutex<Vec<UsedFile>>,
}

impl<R> Recording<R> {
    pub fn new(inner: R) -> Self {
        Recording {
            inner,
            seen: Mutex::new(Vec::new()),
        }
    }
    /// The files resolved so far, each (importer, path) once.
    pub fn files(&self) -> Vec<UsedFile> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl<R: Resolver> Resolver for Recording<R> {
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String> {
        let (name, text) = self.inner.resolve(importer, path)?;
        if let Ok(mut seen) = self.seen.lock() {
            if !seen
                .iter()
                .any(|u| u.importer == importer && u.path == path)
            {
                seen.push(UsedFile {
                    importer: importer.to_string(),
                    path: path.to_string(),
                    name: name.clone(),
                    text: text.clone(),
                });
            }
        }
        Ok((name, text))
    }
}

/// Answers `use` from a run's stored files (the coordinator's answers, exactly), then
/// from the standard library.
pub struct Replay {
    files: BTreeMap<(String, String), (String, String)>,
}

impl Replay {
    pub fn new(uses: &[UsedFile]) -> Self {
        Replay {
            files: uses
                .iter()
                .map(|u| {
                    (
                        (u.importer.clone(), u.path.clone()),
                        (u.name.clone(), u.text.clone()),
                    )
                })
                .collect(),
        }
    }
}

impl Resolver for Replay {
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String> {
        if let Some(found) = self.files.get(&(importer.to_string(), path.to_string())) {
            return Ok(found.clone());
        }
        // A candidate's own `use` (its importer is the candidate): the same path as the
        // search file resolved, if it did.
        if let Some(found) = self.files.iter().find(|((_, p), _)| p == path).map(|e| e.1) {
            return Ok(found.clone());
        }
        crate::check::StdlibResolver.resolve(importer, path)
    }
}

/// Why a worker cannot serve a run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "run {run} has no coordinator's source yet (waited for --idle-exit): start \
         `uhc search FILE --db URL` for it, or check the URL's `?schema=`"
    )]
    NoSource { run: String },
    #[error(
        "run {run} was made by uhc {theirs}{stdlib}, and this is uhc {ours}: a worker must \
         evaluate with the coordinator's uhc, or their scores would not compare; install uhc \
         {theirs} on this host (or restart the run with this version)"
    )]
    Incompatible {
        run: String,
        theirs: String,
        ours: String,
        stdlib: &'static str,
    },
    #[error("run {run}'s stored search no longer builds: {problem}")]
    Rebuild { run: String, problem: String },
}

/// The search a run stores, rebuilt the way its coordinator built it.
pub fn rebuild(run: &str, source: &RunSource) -> Result<SearchContext, WorkerError> {
    let ours = env!("CARGO_PKG_VERSION");
    let same_stdlib = source.stdlib_hash == stdlib_hash();
    if source.uhc_version != ours || !same_stdlib {
        return Err(WorkerError::Incompatible {
            run: run.to_string(),
            theirs: source.uhc_version.clone(),
            ours: ours.to_string(),
            stdlib: if same_stdlib {
                ""
            } else {
                " with another standard library"
            },
        });
    }
    let resolver = Arc::new(Replay::new(&source.uses));
    let mut sources = Sources::new();
    let root = sources.add(source.file.clone(), source.text.clone());
    let (compiled, diags) = crate::compile(&mut sources, root, resolver.as_ref());
    let Some(compiled) = compiled else {
        return Err(WorkerError::Rebuild {
            run: run.to_string(),
            problem: sources.render_human(&diags, false),
        });
    };
    SearchContext::new(
        &source.file,
        &source.text,
        &compiled,
        Some(&source.search),
        resolver,
    )
    .map_err(|problem| WorkerError::Rebuild {
        run: run.to_string(),
        problem,
    })
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Candidates evaluated at once (one connection each).
    pub jobs: usize,
    /// Stop after claiming this many candidates in all.
    pub max_candidates: Option<usize>,
    /// Leave after finding the queue empty for this long (and at once when the
    /// coordinator has marked the run finished and nothing is queued).
    pub idle_exit: Duration,
    /// Lease taken on each claim and renewed by each heartbeat.
    pub lease: Duration,
    /// Time between heartbeats; below `lease`, so one missed beat does not lose it.
    pub heartbeat: Duration,
    /// Time between looks at an empty queue.
    pub poll: Duration,
    /// Names the lease owner (`NAME:JOB`); default `host:pid`.
    pub name: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            jobs: 1,
            max_candidates: None,
            idle_exit: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            name: format!(
                "{}:{}",
                crate::search::store::Writer::this_process().host,
                std::process::id()
            ),
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub claimed: usize,
    pub evaluated: usize,
    /// Failed or timed out (recorded as such).
    pub failed: usize,
    /// Leases taken back before the result came (the result was discarded).
    pub lost: usize,
}

impl std::ops::AddAssign for WorkerReport {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.evaluated += o.evaluated;
        self.failed += o.failed;
        self.lost += o.lost;
    }
}

/// Serves the run at `location` until it is finished, idle for `idle_exit`, out of
/// `max_candidates`, or `stop` is set.
pub fn run(
    location: &Location,
    evaluator: Arc<dyn Evaluator>,
    options: &WorkerOptions,
    stop: &AtomicBool,
    log: &(dyn Fn(String) + Sync),
) -> Result<WorkerReport, WorkerError> {
    let run_name = location.shown();
    // Workers may start before their coordinator has created the run or stored its
    // source (a job array and a coordinator job submitted together): wait for it, up to
    // the idle limit.
    let start = Instant::now();
    let (source, seed) = loop {
        let found = match Store::open_at(location, StoreOptions::default()) {
            Ok(store) => match store.source()? {
                Some(source) => Some((source, store.run_info()?.seed)),
                None => None,
            },
            Err(StoreError::NoPostgresRun { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(found) = found {
            break found;
        }
        if start.elapsed() >= options.idle_exit || stop.load(Ordering::SeqCst) {
            return Err(WorkerError::NoSource { run: run_name });
        }
        std::thread::sleep(options.poll);
    };
    let cx = rebuild(&run_name, &source)?;
    log(format!(
        "worker {} serving search {} of {} with {} job(s)",
        options.name,
        cx.spec.name,
        run_name,
        options.jobs.max(1)
    ));
    let claimed = AtomicUsize::new(0);
    let results: Vec<Result<WorkerReport, WorkerError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.jobs.max(1))
            .map(|job| {
                let (cx, evaluator, claimed) = (&cx, &evaluator, &claimed);
                scope.spawn(move || {
                    let owner = format!("{}:{job}", options.name);
                    job_loop(
                        location, cx, evaluator, seed, options, &owner, claimed, stop, log,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut total = WorkerReport::default();
    for r in results {
        total += r?;
    }
    Ok(total)
}

#[allow(clippy::too_many_arguments)]
fn job_loop(
    location: &Location,
    cx: &SearchContext,
    evaluator: &Arc<dyn Evaluator>,
    seed: u64,
    options: &WorkerOptions,
    owner: &str,
    claimed: &AtomicUsize,
    stop: &AtomicBool,
    log: &(dyn Fn(String) + Sync),
) -> Result<WorkerReport, WorkerError> {
    let mut store = Store::open_at(location, StoreOptions::default())?;
    let mut report = WorkerReport::default();
    let mut idle_since = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // A finished run takes no more work, even if candidates beyond its budget wait.
        if store.is_finished()? {
            break;
        }
        if let Some(max) = options.max_candidates {
            if claimed.fetch_add(1, Ordering::SeqCst) >= max {
                break;
            }
        }
        let Some(c) = store.claim_next(owner, options.lease)? else {
            if options.max_candidates.is_some() {
                claimed.fetch_sub(1, Ordering::SeqCst);
            }
            if idle_since.elapsed() >= options.idle_exit {
                break;
            }
            std::thread::sleep(options.poll);
            continue;
        };
        report.claimed += 1;
        evaluate_claimed(
            &mut store,
            cx,
            evaluator,
            seed,
            options,
            owner,
            c,
            &mut report,
            log,
        )?;
        idle_since = Instant::now();
    }
    Ok(report)
}

/// Compiles, trains and scores one claimed candidate, renewing its lease every
/// `options.heartbeat`, and records the outcome.
#[allow(clippy::too_many_arguments)]
fn evaluate_claimed(
    store: &mut Store,
    cx: &SearchContext,
    evaluator: &Arc<dyn Evaluator>,
    seed: u64,
    options: &WorkerOptions,
    owner: &str,
    c: CandidateRecord,
    report: &mut WorkerReport,
    log: &(dyn Fn(String) + Sync),
) -> Result<(), WorkerError> {
    let lost = |e: StoreError, report: &mut WorkerReport| match e {
        StoreError::LeaseLost { .. } => {
            report.lost += 1;
            log(format!("candidate {}: {e}", c.id));
            Ok(())
        }
        e => Err(WorkerError::Store(e)),
    };
    let cc = match cx.compile_candidate(&c.text) {
        Ok(cc) => cc,
        Err(rejection) => {
            report.failed += 1;
            let why = engine::no_longer_compiles(&rejection);
            return store
                .record_failure(c.id, owner, Failure::Failed, &why)
                .or_else(|e| lost(e, report));
        }
    };
    let timeout = Duration::from_secs_f64(cx.spec.timeout);
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let ev = Arc::clone(evaluator);
    let program = cc.compiled.clone();
    let arch = cc.arch.name.clone();
    let (task, train, draws) = (cx.task.clone(), cx.spec.train.clone(), cx.spec.draws);
    let req_seed = engine::candidate_seed(seed, &cc.hash);
    std::thread::spawn(move || {
        let start = Instant::now();
        let result = engine::evaluate_caught(
            ev.as_ref(),
            &EvalRequest {
                compiled: &program,
                arch: &arch,
                task: &task,
                train: &train,
                draws,
                seed: req_seed,
                deadline,
                // The search selects on the validation split; the coordinator scores its
                // final front on the test split itself.
                split: crate::search::engine::HeldOut::Validation,
            },
        );
        let _ = tx.send((result, start.elapsed().as_secs_f64()));
    });
    loop {
        let wait = options
            .heartbeat
            .min(deadline.saturating_duration_since(Instant::now()));
        match rx.recv_timeout(wait) {
            Ok((Ok(scores), wall)) => {
                let m = engine::measured_metrics(cx, &cc, &scores, seed);
                let evaluation = Evaluation {
                    metrics: m,
                    wall_time_s: wall,
                };
                return match store.record_evaluation(c.id, owner, &evaluation) {
                    Ok(()) => {
                        report.evaluated += 1;
                        Ok(())
                    }
                    Err(e) => lost(e, report),
                };
            }
            Ok((Err(e), _)) => {
                report.failed += 1;
                return store
                    .record_failure(c.id, owner, e.failure(), &e.to_string())
                    .or_else(|e| lost(e, report));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                report.failed += 1;
                let why = format!("no result within the {} s limit", cx.spec.timeout);
                return store
                    .record_failure(c.id, owner, Failure::Timeout, &why)
                    .or_else(|e| lost(e, report));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = store.heartbeat(c.id, owner, options.lease) {
                    // The evaluation thread runs on and its result is dropped.
                    return lost(e, report);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                report.failed += 1;
                return store
                    .record_failure(c.id, owner, Failure::Failed, "evaluator vanished")
                    .or_else(|e| lost(e, report));
            }
        }
    }
}
