//! The search engine's mechanics on a real store file, with an analytic evaluator standing
//! in for training (so these tests are fast and exact): budget, deduplication, rejected
//! proposals kept with their diagnostics, failures and timeouts never scored, resume.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use uhc::search::engine::{
    self, EvalError, EvalRequest, Evaluator, HeldOut, Overrides, Proposer, Scores, SearchContext,
};
use uhc::search::store::{CandidateState, Store, StoreOptions};

/// Accuracy grows with parameters and falls with optical depth: a smooth, known landscape.
/// `calls` counts the search's evaluations (validation split), `test_calls` the scoring of
/// the final front on the test split, where the landscape is a little lower.
#[derive(Default)]
pub struct Analytic {
    pub calls: AtomicUsize,
    pub test_calls: AtomicUsize,
}

impl Evaluator for Analytic {
    fn evaluate(&self, req: &EvalRequest<'_>) -> Result<Scores, EvalError> {
        let lower = match req.split {
            HeldOut::Validation => {
                self.calls.fetch_add(1, Ordering::SeqCst);
                0.0
            }
            HeldOut::Test => {
                self.test_calls.fetch_add(1, Ordering::SeqCst);
                0.01
            }
        };
        let g = req
            .compiled
            .graph(req.arch)
            .ok_or_else(|| EvalError::Failed("no graph".into()))?;
        let params = g.total_cost().params as f64;
        let acc = params / (params + 300.0) - lower;
        let noisy = acc - 0.002 * g.optical_depth() as f64;
        Ok(Scores {
            accuracy: acc,
            noisy_accuracy_mean: noisy,
            noisy_accuracy_std: 0.01,
            noisy_accuracy_p5: noisy - 0.02,
        })
    }
}

struct Panics;
impl Evaluator for Panics {
    fn evaluate(&self, _: &EvalRequest<'_>) -> Result<Scores, EvalError> {
        panic!("simulated crash in training")
    }
}

/// Never answers: the engine's deadline must fire.
struct Hangs(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);
impl Evaluator for Hangs {
    fn evaluate(&self, _: &EvalRequest<'_>) -> Result<Scores, EvalError> {
        let rx = self
            .0
            .lock()
            .map_err(|e| EvalError::Failed(e.to_string()))?;
        let _ = rx.recv();
        Err(EvalError::Failed("released".into()))
    }
}

/// Gives up at once as training does when the search's deadline passes.
struct PastDeadline;
impl Evaluator for PastDeadline {
    fn evaluate(&self, _: &EvalRequest<'_>) -> Result<Scores, EvalError> {
        Err(uhc::train::TrainError::Deadline { steps: 7 }.into())
    }
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-search-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("run.sqlite")
}

fn context(extra: &str) -> SearchContext {
    let path = super::root().join("examples/digits_search.uh");
    let text = std::fs::read_to_string(&path)
        .expect("example")
        .replace("seed = 0\n}", &format!("seed = 0\n{extra}}}"));
    let (compiled, diags, sources) =
        uhc::check_source_with(&path.display().to_string(), &text, &uhc::driver::FsResolver);
    let compiled = compiled.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
    let resolver = Arc::new(uhc::driver::SandboxResolver {
        root: super::root().join("examples"),
    });
    SearchContext::new("digits_search.uh", &text, &compiled, None, resolver).expect("context")
}

fn proposers() -> Vec<(Box<dyn Proposer>, f64)> {
    vec![
        (Box::new(engine::MutateProposer), 0.5),
        (Box::new(engine::CrossoverProposer), 0.3),
        (Box::new(engine::RandomProposer), 0.2),
    ]
}

fn run(cx: &SearchContext, db: &PathBuf, ev: Arc<dyn Evaluator>, budget: usize) -> engine::Summary {
    let (mut store, _) =
        Store::open_or_create(db, "{}", 0, StoreOptions::default()).expect("store");
    let overrides = Overrides {
        budget: Some(budget),
        jobs: Some(2),
        seed: None,
        pipeline: false,
        stop: None,
    };
    engine::run(
        cx,
        &mut store,
        ev,
        &mut proposers(),
        &overrides,
        false,
        &mut |_| {},
    )
    .expect("search runs")
}

#[test]
fn search_spends_its_budget_once_and_resumes() {
    let cx = context("");
    let db = temp_db("budget");
    let ev = Arc::new(Analytic {
        ..Analytic::default()
    });
    let s = run(&cx, &db, ev.clone(), 30);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let counts = store.counts_by_state().unwrap();
    assert_eq!(counts.done, 30, "{counts:?}");
    assert_eq!(ev.calls.load(Ordering::SeqCst), 30);
    assert!(!s.front.is_empty());
    // The final front, and nothing else, was scored on the test split, once each.
    let test = store.test_scores().unwrap();
    let mut scored: Vec<i64> = test.keys().copied().collect();
    let mut front = s.front.clone();
    scored.sort_unstable();
    front.sort_unstable();
    assert_eq!(scored, front);
    assert_eq!(ev.test_calls.load(Ordering::SeqCst), front.len());
    for (id, t) in &test {
        let row = store.candidate(*id).unwrap().unwrap().evaluation.unwrap();
        assert!((row.metrics.accuracy - t.accuracy - 0.01).abs() < 1e-12);
    }
    // In (1 − accuracy) × log10 energy up to the search's 5 nJ constraint: accuracies near
    // 0.5 and energies of ~0.1 nJ give about 0.5 × 1.7.
    assert!(
        s.hypervolume > 0.1 && s.hypervolume < 5.0,
        "hypervolume {}",
        s.hypervolume
    );
    // Every evaluated candidate is distinct by structural hash (the store enforces it too).
    let archive = store.load_archive().unwrap();
    let hashes: std::collections::HashSet<_> =
        archive.iter().map(|c| c.structural_hash.clone()).collect();
    assert_eq!(hashes.len(), archive.len());
    // Rejected proposals keep the compiler's reasons.
    for c in store.candidates_in_state(CandidateState::Rejected).unwrap() {
        assert!(
            c.diagnostics.as_deref().is_some_and(|d| !d.is_empty()),
            "{c:?}"
        );
    }
    drop(store);
    // Resuming with a larger budget evaluates only the new ones.
    run(&cx, &db, ev.clone(), 40);
    assert_eq!(ev.calls.load(Ordering::SeqCst), 40);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    assert_eq!(store.counts_by_state().unwrap().done, 40);
    // Same budget again: nothing left to do.
    drop(store);
    run(&cx, &db, ev.clone(), 40);
    assert_eq!(ev.calls.load(Ordering::SeqCst), 40);
}

#[test]
fn same_seed_same_archive() {
    let cx = context("");
    let texts = |name: &str| {
        let db = temp_db(name);
        let ev = Arc::new(Analytic::default());
        let (mut store, _) = Store::open_or_create(&db, "{}", 0, StoreOptions::default()).unwrap();
        let overrides = Overrides {
            budget: Some(24),
            jobs: Some(1),
            seed: None,
            pipeline: false,
            stop: None,
        };
        engine::run(
            &cx,
            &mut store,
            ev,
            &mut proposers(),
            &overrides,
            false,
            &mut |_| {},
        )
        .unwrap();
        let mut v: Vec<String> = store
            .load_archive()
            .unwrap()
            .into_iter()
            .filter_map(|c| c.structural_hash)
            .collect();
        v.sort();
        v
    };
    assert_eq!(texts("det-a"), texts("det-b"));
}

#[test]
fn failures_and_timeouts_get_no_score() {
    let cx = context("");
    let db = temp_db("panic");
    run(&cx, &db, Arc::new(Panics), 3);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let failed = store.candidates_in_state(CandidateState::Failed).unwrap();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|c| c.evaluation.is_none()
        && c.reason
            .as_deref()
            .unwrap_or("")
            .contains("simulated crash")));
    assert!(store.load_archive().unwrap().is_empty());

    let cx = context("");
    let mut cx = cx;
    cx.spec.timeout = 0.05;
    let db = temp_db("timeout");
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    run(&cx, &db, Arc::new(Hangs(std::sync::Mutex::new(rx))), 1);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let timed_out = store.candidates_in_state(CandidateState::Timeout).unwrap();
    assert_eq!(timed_out.len(), 1);
    assert!(timed_out[0].evaluation.is_none());

    // Training that stops itself at the deadline is a timeout too, not a failure (it
    // used to be stored as `failed` whenever it beat the engine's own timer).
    let cx = context("");
    let db = temp_db("deadline");
    run(&cx, &db, Arc::new(PastDeadline), 2);
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    assert!(store
        .candidates_in_state(CandidateState::Failed)
        .unwrap()
        .is_empty());
    let timed_out = store.candidates_in_state(CandidateState::Timeout).unwrap();
    assert_eq!(timed_out.len(), 2);
    assert!(timed_out.iter().all(|c| c
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("deadline passed after 7 training steps")));
}

#[test]
fn candidates_are_sandboxed_and_must_fit_the_search() {
    let cx = context("");
    let other_hw = cx.seeds[0].replace("on mzi_realistic", "on mzi_worst");
    let err = cx
        .compile_candidate(&other_hw)
        .err()
        .expect("wrong hardware is refused");
    assert_eq!(err.reason(), "hardware");
    assert!(
        err.diagnostics()
            .contains("write `arch seed_small on mzi_realistic`"),
        "{err}"
    );
    let escape = format!("use \"../../etc/passwd\"\n{}", cx.seeds[0]);
    assert!(cx.compile_candidate(&escape).is_err());
    let two = format!("{}\n{}", cx.seeds[0], cx.seeds[1]);
    assert_eq!(
        cx.compile_candidate(&two)
            .err()
            .expect("one arch only")
            .reason(),
        "shape"
    );
    let renamed = cx.seeds[0].replace("seed_small", "other_name");
    let (a, b) = (
        cx.compile_candidate(&cx.seeds[0]).ok().unwrap(),
        cx.compile_candidate(&renamed).ok().unwrap(),
    );
    assert_eq!(a.hash, b.hash);
}

/// The session summary adds up (evaluated + failed + rejected + duplicates + still queued =
/// proposals + carried over), also when a resumed search marks a candidate whose worker
/// died failed: that candidate is counted as failed and as carried over.
#[test]
fn session_counts_add_up_with_failures_on_resume() {
    let adds_up = |s: &engine::Summary| {
        assert_eq!(
            s.proposals + s.carried_over,
            s.evaluated + s.failed + s.rejected + s.duplicates + s.queued,
            "{s:?}"
        );
    };
    let cx = context("");
    let db = temp_db("failed-on-resume");
    let ev = Arc::new(Analytic {
        ..Analytic::default()
    });
    let s = run(&cx, &db, ev.clone(), 4);
    adds_up(&s);
    assert_eq!(s.carried_over, 0);
    assert!(s.queued > 0, "{s:?}");
    // A worker claims a queued candidate and dies; with one attempt allowed, the next run
    // marks it failed.
    let opts = || StoreOptions {
        max_attempts: 1,
        ..StoreOptions::default()
    };
    {
        let mut store = Store::open(&db, opts()).unwrap();
        store
            .claim_next("uhc-dead-worker", std::time::Duration::from_secs(3600))
            .unwrap()
            .expect("a queued candidate");
    }
    let (mut store, _) = Store::open_or_create(&db, "{}", 0, opts()).unwrap();
    let overrides = Overrides {
        budget: Some(6),
        jobs: Some(1),
        seed: None,
        pipeline: false,
        stop: None,
    };
    let s = engine::run(
        &cx,
        &mut store,
        ev,
        &mut proposers(),
        &overrides,
        true,
        &mut |_| {},
    )
    .unwrap();
    adds_up(&s);
    assert_eq!(s.failed, 1, "{s:?}");
    assert!(s.carried_over > 1, "{s:?}");
}

#[test]
fn candidate_diagnostics_carry_the_candidates_own_lines() {
    let cx = context("");
    let text = "arch c on mzi_realistic {\n    input x: real[16]\n    h = lniear(x, 16)\n    y = linear(h, 10)\n    output detect(y)\n}\n";
    let (region, diags) = cx.candidate_diagnostics(text);
    assert_eq!(region.start, 0, "the candidate is a file of its own");
    let d = diags
        .iter()
        .find(|d| d.is_error())
        .expect("the misspelt op is an error");
    assert_eq!(d.file, region.file);
    assert_eq!(&text[d.span.range()], "lniear");
    // The fix applies to the candidate text as it is.
    let outcome = uhc::fix::fix_with(text, uhc::fix::MAX_ROUNDS, |t| cx.candidate_diagnostics(t));
    assert!(
        outcome.text.contains("h = linear(x, 16)"),
        "{}",
        outcome.text
    );
    // Rendered for the LLM: line 3 of the candidate, not of prelude + candidate.
    let rejection = cx.compile_candidate(text).err().expect("an error");
    let rendered = rejection.diagnostics();
    assert_eq!(rejection.reason(), d.code);
    assert!(rendered.contains(":3:"), "{rendered}");
    assert!(!rendered.contains("hw/mzi.uh"), "{rendered}");
}

#[test]
fn operator_names_come_from_one_table() {
    use uhc::check::model::Operator;
    assert_eq!(
        uhc::llm_ops::OPERATORS.to_vec(),
        Operator::names(Some(true))
    );
    for op in Operator::ALL {
        assert_eq!(Operator::from_name(op.name()), Some(op));
        // Every built-in operator has a proposer, and no LLM one does.
        assert_eq!(
            uhc::search::engine::builtin_proposer(op.name()).map(|p| p.name().to_string()),
            (!op.is_llm()).then(|| op.name().to_string())
        );
    }
}

/// A search on `task` (encoders, data set) with 64-port hardware, as a context.
fn sized_context(dataset: &str, encode: &str, classes: usize, features: usize) -> SearchContext {
    let text = format!(
        "use \"hw/mzi.uh\"\nhardware wide extends mzi_realistic {{\n    backend mzi {{ max_ports = 64 }}\n}}\ntask t {{\n    dataset = {dataset}\n    encode [{encode}]\n    classes = {classes}\n}}\narch s on wide {{\n    input x: real[{features}]\n    h = linear(x, 8)\n    output detect(linear(modrelu(h), {classes}))\n}}\nsearch q {{\n    task = t\n    seeds [s]\n}}\n"
    );
    let (compiled, diags, sources) =
        uhc::check_source_with("sized.uh", &text, &uhc::driver::FsResolver);
    let compiled = compiled.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
    let resolver = Arc::new(uhc::driver::SandboxResolver {
        root: super::root().join("examples"),
    });
    SearchContext::new("sized.uh", &text, &compiled, None, resolver).expect("context")
}

#[test]
fn built_in_proposers_fit_every_task_and_never_repeat_a_parent() {
    use rand::SeedableRng;
    // 28×28 MNIST pooled to 49 or 196 features, 8×8 digits to 16 or 64: input widths and
    // classes come from the task, hidden widths from the 64-port hardware.
    for (dataset, encode, classes, features) in [
        ("mnist5k", "pool(4), standardize", 10, 49),
        ("digits", "pool(2), standardize", 10, 16),
        ("digits", "standardize", 10, 64),
    ] {
        let cx = sized_context(dataset, encode, classes, features);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut random = engine::RandomProposer;
        let mut mutate = engine::MutateProposer;
        let seed = uhc::search::store::CandidateRecord {
            id: 1,
            text: cx.seeds[0].clone(),
            canonical_text: None,
            structural_hash: None,
            parents: Vec::new(),
            operator: "seed".into(),
            generation: 0,
            state: CandidateState::Done,
            diagnostics: None,
            reason: None,
            attempts: 1,
            lease_owner: None,
            lease_expires_ms: None,
            created_ms: 0,
            updated_ms: 0,
            started_ms: None,
            finished_ms: None,
            evaluation: None,
        };
        let parent = cx.compile_candidate(&seed.text).expect("seed compiles");
        for _ in 0..40 {
            let text = random.propose(&cx, &[], &mut rng).expect("a new proposal");
            let c = cx
                .compile_candidate(&text)
                .unwrap_or_else(|e| panic!("{dataset} {encode}: {e:?}\n{text}"));
            assert_eq!(c.arch.input_width(), features, "{text}");
            assert_eq!(c.arch.output_type().width, classes, "{text}");
            assert!(
                c.arch.nodes.iter().all(|n| n.ty.width <= 64),
                "wider than the hardware: {text}"
            );
            if let Some(child) = mutate.propose(&cx, &[&seed], &mut rng) {
                let m = cx.compile_candidate(&child).expect("mutant compiles");
                assert_ne!(
                    m.hash, parent.hash,
                    "mutation returned its parent:\n{child}"
                );
                assert_eq!(m.arch.input_width(), features);
            }
        }
    }
}
