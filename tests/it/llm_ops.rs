//! The LLM operators inside a real search: a scripted OpenAI-compatible server on
//! loopback answers with valid designs, invalid ones that a repair round fixes, prose,
//! garbage, empty choices, 429, 500 and truncated JSON; the search must go on through
//! each, log every exchange with its outcome, count validity and repairs, stop cleanly
//! when the LLM budget is spent, and replay a recorded run without the network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use uhc::llm::{
    Budget, Ledger, LlmClient, LlmConfig, LlmOverrides, PromptConfig, PromptStyle, RetryPolicy,
};
use uhc::llm_ops::{self as operators, LlmSetup, LlmStats};
use uhc::search::engine::{self, Overrides, SearchContext};
use uhc::search::store::{CandidateState, Store, StoreOptions};

use super::llm_server::{Reply, ScriptedServer};
use super::search::Analytic;

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-llmops-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("run.sqlite")
}

/// `examples/digits_search.uh` with a population of 6 and 5 offspring per generation.
fn context() -> SearchContext {
    context_of("examples/digits_search.uh", |t| {
        t.replace("population = 20", "population = 6")
            .replace("offspring = 8", "offspring = 5")
    })
}

/// The search of a repository file, edited by `edit`; the file must check clean.
fn context_of(file: &str, edit: impl Fn(&str) -> String) -> SearchContext {
    let path = super::root().join(file);
    let text = edit(&std::fs::read_to_string(&path).expect("search file"));
    let (compiled, diags, sources) =
        uhc::check_source_with(&path.display().to_string(), &text, &uhc::driver::FsResolver);
    assert!(diags.is_empty(), "{}", sources.render_plain(&diags));
    let compiled = compiled.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
    let folder = path.parent().expect("folder").to_path_buf();
    let resolver = Arc::new(uhc::driver::SandboxResolver { root: folder });
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    SearchContext::new(&name, &text, &compiled, None, resolver).expect("context")
}

fn arch(name: &str, body: &str) -> String {
    format!(
        "arch {name} on mzi_realistic {{\n    input x: real[16]\n{body}\n    output detect(y)\n}}"
    )
}

fn fenced(text: &str) -> String {
    format!("```uh\n{text}\n```")
}

fn setup(server: &ScriptedServer, budget: Budget) -> LlmSetup {
    let mut c = LlmConfig::new(server.base_url(), "scripted-model");
    c.retry = RetryPolicy {
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
    };
    let client = LlmClient::new(c, Arc::new(Ledger::new(budget).expect("budget"))).expect("client");
    LlmSetup::new(Arc::new(client))
}

fn run(cx: &SearchContext, db: &PathBuf, setup: LlmSetup, budget: usize) -> engine::Summary {
    let mut proposers =
        operators::llm_proposers(&[("llm_mutate".to_string(), 1.0)], setup).expect("operators");
    let (mut store, _) =
        Store::open_or_create(db, "{}", 0, StoreOptions::default()).expect("store");
    let overrides = Overrides {
        budget: Some(budget),
        jobs: Some(1),
        seed: None,
        pipeline: false,
        stop: None,
    };
    engine::run(
        cx,
        &mut store,
        Arc::new(Analytic::default()),
        &mut proposers,
        &overrides,
        false,
        &mut |_| {},
    )
    .expect("search runs")
}

/// The script of one generation: every kind of answer a server gives.
fn script() -> Vec<Reply> {
    let usage = |t: &str| Reply::content(t, 900, 120);
    vec![
        // Design notes of generation 0.
        usage("Notes:\n- depth costs 0.2 dB per MZI column\n- wider first layers help\n- keep modrelu bias small"),
        // 1: valid on the first try.
        usage(&fenced(&arch("wide_eo", "    h = linear(x, 14)\n    a = eo_activation(h)\n    y = linear(a, 10)"))),
        // 2: missing width, then repaired.
        usage(&fenced(&arch("fixme", "    h = linear(x)\n    a = modrelu(h)\n    y = linear(a, 10)"))),
        usage(&fenced(&arch("fixme", "    h = linear(x, 9)\n    a = eo_activation(h)\n    y = linear(a, 10)"))),
        // 3: prose around a fence, and a name that clashes with a seed.
        usage(&format!(
            "Here is a design that trades depth for robustness:\n\n{}\n\nIt should lose less to noise.",
            fenced(&arch("seed_small", "    h = linear(x, 8)\n    u = unitary(h)\n    a = eo_activation(u)\n    y = linear(a, 10)"))
        )),
        // 4: garbage, then empty choices (the proposal ends with an error).
        usage("I am sorry, I cannot help with photonic design today."),
        Reply::ok_body(r#"{"id":"x","object":"chat.completion","choices":[]}"#),
        // 5: rate limited once, then valid.
        Reply::rate_limited("0"),
        usage(&fenced(&arch("after_429", "    h = linear(x, 6)\n    a = eo_activation(h)\n    y = linear(a, 10)"))),
        // 6: server error on both attempts.
        Reply::status(500, r#"{"error":{"message":"internal"}}"#),
        Reply::status(500, r#"{"error":{"message":"internal"}}"#),
        // 7: truncated JSON.
        Reply::ok_body(r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"arch"#),
        // 8: valid, deeper.
        usage(&fenced(&arch("deep_eo", "    h = linear(x, 12)\n    a = eo_activation(h)\n    g = linear(a, 12)\n    b = eo_activation(g)\n    y = linear(b, 10)"))),
    ]
}

fn outcomes(store: &Store) -> Vec<(String, String)> {
    store
        .exchanges()
        .expect("exchanges")
        .into_iter()
        .map(|r| (r.exchange.operator, r.exchange.outcome))
        .collect()
}

fn tally_store(store: &Store) -> LlmStats {
    let log = outcomes(store);
    operators::tally(log.iter().map(|(a, b)| (a.as_str(), b.as_str())))
}

#[test]
fn search_goes_on_through_every_failure_and_logs_each_outcome() {
    let cx = context();
    let db = temp_db("script");
    let server = ScriptedServer::start(script());
    let setup = setup(&server, Budget::default());
    let stats = setup.stats();
    // 6 initial candidates, then the 5 valid LLM designs of the script.
    let summary = run(&cx, &db, setup, 11);
    assert_eq!(server.script_left(), 0, "every scripted answer was used");
    let store = Store::open(&db, StoreOptions::default()).expect("store");
    assert_eq!(store.counts_by_state().expect("counts").done, 11);
    assert_eq!(summary.evaluated, 11);
    let got: Vec<String> = outcomes(&store)
        .into_iter()
        .map(|(op, o)| format!("{op} {o}"))
        .collect();
    let want = [
        "llm_notes notes",
        "llm_mutate ok",
        "llm_mutate invalid:uh::check::args",
        "llm_mutate repair:ok",
        "llm_mutate ok",
        "llm_mutate no_program",
        "llm_mutate repair:error:invalid_response",
        "llm_mutate ok",
        "llm_mutate error:http_error:500",
        "llm_mutate error:invalid_response",
        "llm_mutate ok",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    assert_eq!(got, want);
    let s = tally_store(&store);
    assert_eq!(s, stats.get(), "the store and the live counters agree");
    assert_eq!(
        (
            s.proposals,
            s.valid_first_try,
            s.valid_after_repair,
            s.invalid
        ),
        (6, 4, 1, 1),
        "{s:?}"
    );
    assert_eq!(
        (s.errors, s.notes, s.no_program, s.duplicates),
        (3, 1, 1, 0),
        "{s:?}"
    );
    assert!(
        (s.first_try_rate() - 4.0 / 6.0).abs() < 1e-12
            && (s.final_rate() - 5.0 / 6.0).abs() < 1e-12
    );

    // Every evaluated LLM design is linked to the exchange that wrote it; the clashing
    // name was renamed; nothing the LLM wrote was left unrepaired, so no LLM rejection.
    let llm: Vec<_> = store
        .load_archive()
        .expect("archive")
        .into_iter()
        .filter(|c| c.operator == "llm_mutate")
        .collect();
    assert_eq!(llm.len(), 5);
    for c in &llm {
        let ex = store.exchanges_for_candidate(c.id).expect("linked");
        assert_eq!(ex.len(), 1, "{c:?}");
        assert!(ex[0].exchange.outcome.ends_with("ok"));
        assert!(
            ex[0].exchange.prompt.contains("\"role\":\"system\""),
            "prompt is the recorded request"
        );
        assert_eq!(ex[0].exchange.model, "scripted-model");
    }
    assert!(
        llm.iter().any(|c| c.text.contains("arch seed_small_v")),
        "clashing name renamed"
    );
    let rejected = store
        .candidates_in_state(CandidateState::Rejected)
        .expect("rejected");
    assert!(
        rejected.iter().all(|c| c.operator != "llm_mutate"),
        "{rejected:?}"
    );

    // The prompts: language reference, hardware, the parent with its figures, the notes
    // after they were written, and diagnostics in the repair round.
    let received = server.received();
    let text_of = |i: usize| {
        received[i].body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = text_of(1);
    for needle in [
        "eo_activation(x, alpha",
        "dBm",
        "noisy_accuracy_mean",
        "Hardware `mzi_realistic`",
        "## Parent",
        "under noise",
        "(lost ",
        "- wider first layers help",
        "Current Pareto front",
    ] {
        assert!(
            first.contains(needle),
            "first proposal prompt lacks {needle:?}"
        );
    }
    assert!(
        first.chars().count() <= 24_000 + 200,
        "bounded: {}",
        first.chars().count()
    );
    let repair = text_of(3);
    assert!(repair.contains("The compiler rejected it"), "{repair}");
    // Later prompts carry the rejected design.
    assert!(text_of(4).contains("Rejected earlier"));
}

#[test]
fn spent_llm_budget_stops_the_search_cleanly() {
    let cx = context();
    let db = temp_db("budget");
    let server = ScriptedServer::start(vec![Reply::content("- notes cost a lot", 3000, 2000)]);
    let setup = setup(
        &server,
        Budget {
            max_tokens_total: Some(1000),
            max_cost: None,
        },
    );
    let summary = run(&cx, &db, setup, 50);
    let store = Store::open(&db, StoreOptions::default()).expect("store");
    // The initial population was evaluated, then the first proposal was refused.
    assert_eq!(summary.evaluated, 6);
    assert_eq!(server.received().len(), 1, "no request after the cap");
    let got: Vec<String> = outcomes(&store).into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        got,
        vec!["notes".to_string(), "error:budget_exhausted".to_string()]
    );
}

#[test]
fn a_recorded_run_replays_without_the_network() {
    let cx = context();
    let db = temp_db("record");
    let server = ScriptedServer::start(script());
    run(&cx, &db, setup(&server, Budget::default()), 11);
    drop(server);
    let replay_db = temp_db("replay");
    let setup = LlmSetup::from_flags(
        Some(&format!("replay:{}", db.display())),
        &LlmOverrides::default(),
        Budget::default(),
    )
    .expect("replay setup");
    run(&cx, &replay_db, setup, 11);
    let hashes = |p: &PathBuf| {
        let s = Store::open(p, StoreOptions::default()).expect("store");
        let mut v: Vec<String> = s
            .load_archive()
            .expect("archive")
            .into_iter()
            .filter_map(|c| c.structural_hash)
            .collect();
        v.sort();
        v
    };
    assert_eq!(hashes(&db), hashes(&replay_db));
    let (a, b) = (
        Store::open(&db, StoreOptions::default()).unwrap(),
        Store::open(&replay_db, StoreOptions::default()).unwrap(),
    );
    assert_eq!(outcomes(&a), outcomes(&b));
    let none = LlmOverrides::default();
    assert!(LlmSetup::from_flags(Some("replay:"), &none, Budget::default()).is_err());
    assert!(LlmSetup::from_flags(Some("gpt"), &none, Budget::default()).is_err());
    let bad_style = LlmOverrides {
        prompt: Some("tiny".into()),
        ..LlmOverrides::default()
    };
    let replay = format!("replay:{}", db.display());
    let err = LlmSetup::from_flags(Some(&replay), &bad_style, Budget::default())
        .err()
        .expect("refused");
    assert!(err.contains("compact"), "{err}");
}

#[test]
fn best_of_n_samples_from_the_seeds_and_keeps_unrepaired_designs_as_rejected() {
    let cx = context();
    let db = temp_db("best-of-n");
    let bad = fenced(&arch("bad", "    h = linear(x)\n    y = linear(h, 10)"));
    let mut script: Vec<Reply> = (0..3).map(|_| Reply::content(&bad, 10, 10)).collect();
    for w in [3, 5, 7, 11, 13] {
        script.push(Reply::content(
            &fenced(&arch(
                &format!("w{w}"),
                &format!("    h = linear(x, {w})\n    a = eo_activation(h)\n    y = linear(a, 10)"),
            )),
            10,
            10,
        ));
    }
    let server = ScriptedServer::start(script);
    let mut proposers = operators::llm_proposers(
        &[("best_of_n".to_string(), 1.0)],
        setup(&server, Budget::default()),
    )
    .expect("operators");
    let (mut store, _) =
        Store::open_or_create(&db, "{}", 0, StoreOptions::default()).expect("store");
    let overrides = Overrides {
        budget: Some(11),
        jobs: Some(1),
        seed: None,
        pipeline: false,
        stop: None,
    };
    engine::run(
        &cx,
        &mut store,
        Arc::new(Analytic::default()),
        &mut proposers,
        &overrides,
        false,
        &mut |_| {},
    )
    .expect("search runs");
    assert_eq!(server.script_left(), 0);
    let got: Vec<String> = outcomes(&store)
        .into_iter()
        .map(|(op, o)| format!("{op} {o}"))
        .collect();
    let mut want = vec![
        "best_of_n invalid:uh::check::args",
        "best_of_n repair:invalid:uh::check::args",
        "best_of_n repair:invalid:uh::check::args",
    ];
    want.extend(["best_of_n ok"; 5]);
    assert_eq!(got, want, "no design notes for the no-evolution baseline");
    let rejected: Vec<_> = store
        .candidates_in_state(CandidateState::Rejected)
        .expect("rejected")
        .into_iter()
        .filter(|c| c.operator == "best_of_n")
        .collect();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]
            .diagnostics
            .as_deref()
            .is_some_and(|d| d.contains("width")),
        "{:?}",
        rejected[0].diagnostics
    );
    let s = tally_store(&store);
    assert_eq!(
        (
            s.proposals,
            s.valid_first_try,
            s.valid_after_repair,
            s.invalid
        ),
        (6, 5, 0, 1)
    );
    let first = server.received()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        first.contains("Example architectures")
            && first.contains("seed_small")
            && !first.contains("Current Pareto front"),
        "{first}"
    );
}

/// The messages of a received request, and their characters in all.
fn messages(body: &serde_json::Value) -> (Vec<(String, String)>, usize) {
    let m: Vec<(String, String)> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let chars = m.iter().map(|(_, c)| c.chars().count()).sum();
    (m, chars)
}

/// What SmolLM2-135M wrote in the last local run: a parse error (`name: value`).
fn smollm_like_reply(i: usize) -> String {
    fenced(&format!(
        "arch try_{i} on mzi_realistic {{\n    input x: real[16]\n    arch_mzi: linear(x, 10)\n    output detect(arch_mzi)\n}}"
    ))
}

fn smoke_setup(server: &ScriptedServer, max_prompt_tokens: Option<usize>) -> LlmSetup {
    setup(server, Budget::default()).with_prompt_config(PromptConfig {
        style: PromptStyle::Compact,
        max_prompt_tokens,
    })
}

#[test]
fn the_ci_smoke_search_checks_clean_and_is_cheap() {
    let cx = context_of("tests/llm/smoke_search.uh", str::to_string);
    assert_eq!(cx.spec.operators.len(), 1);
    assert_eq!(cx.spec.operators[0].name, "llm_mutate");
    assert!(
        cx.spec.population <= 4 && cx.spec.offspring <= 2,
        "{:?}",
        cx.spec
    );
}

#[test]
fn compact_prompts_hold_a_worked_example_and_stay_under_the_token_bound() {
    let cx = context_of("tests/llm/smoke_search.uh", str::to_string);
    // No usage reported: the prior of 2 characters per token holds throughout.
    let replies: Vec<Reply> = (0..12)
        .map(|i| Reply::content_without_usage(&smollm_like_reply(i)))
        .collect();
    for bound in [None, Some(1200)] {
        let db = temp_db(&format!("compact-{bound:?}"));
        let server = ScriptedServer::start(replies.clone());
        let setup = smoke_setup(&server, bound);
        assert_eq!(setup.style, PromptStyle::Compact);
        let limit = 2 * bound.unwrap_or(uhc::llm_ops::prompt::DEFAULT_MAX_PROMPT_TOKENS_COMPACT);
        let stats = setup.stats();
        // 4 initial candidates and 2 LLM proposals that never compile: the generation
        // ends after `offspring * 8` attempts or when the script runs out.
        run(&cx, &db, setup, 6);
        let received = server.received();
        assert!(received.len() >= 9, "{}", received.len());
        let s = stats.get();
        assert_eq!(
            (s.notes, s.valid_first_try, s.valid_after_repair),
            (0, 0, 0)
        );
        assert!(
            s.rejection_reasons.contains_key("uh::syntax::parse"),
            "{s:?}"
        );
        let system = messages(&received[0].body).0[0].1.clone();
        for (i, r) in received.iter().enumerate() {
            let (m, chars) = messages(&r.body);
            assert!(chars <= limit, "request {i}: {chars} characters > {limit}");
            assert_eq!(
                m[0].1, system,
                "request {i}: the system prompt never changes"
            );
            assert_eq!(r.body["max_tokens"], 384, "request {i}");
            // llm_mutate's exploring default, and the decoding grammar (a loopback
            // server gets GBNF under `auto`).
            assert_eq!(r.body["temperature"], 0.8, "request {i}");
            let grammar = r.body["grammar"].as_str().unwrap_or_default();
            assert!(
                grammar.starts_with("root ::= \"```uh\\narch \" ident")
                    && grammar.contains("on mzi_realistic"),
                "request {i}: {grammar:.200}"
            );
            assert!(r.body.get("max_completion_tokens").is_none());
            // Each scripted proposal is three rounds (after the script, errors).
            if i < replies.len() && i % 3 > 0 {
                let last = &m.last().expect("messages").1;
                assert!(
                    last.contains("The compiler rejected it (uh::syntax::parse)")
                        && last.contains("Fix every error"),
                    "request {i}: {last}"
                );
                assert!(m.len() <= 6);
            }
        }
        // The reference: the arch syntax, a seed as the worked example, and the ops the
        // hardware offers; not the grammar, units, metrics or electronic-only ops.
        assert!(system.contains("A valid arch (it compiles):\n```uh\narch seed_small"));
        assert!(system.contains("Operations on `mzi_realistic`"));
        for op in uhc::check::ops::CATALOG {
            assert_eq!(
                system.contains(op.signature),
                cx.hardware.supports(op.name),
                "{}",
                op.name
            );
        }
        for absent in ["Grammar", "dBm", "noisy_accuracy_p5", "relu(x) : real"] {
            assert!(!system.contains(absent), "{absent}");
        }
        let first = &messages(&received[0].body).0[1].1;
        assert!(!first.contains("Resolved profile"), "{first}");
        if bound.is_none() {
            assert!(first.contains("at most 16 ports") && first.contains("## Parent"));
        } else {
            // Too tight for the sections: the instruction is what survives.
            assert!(
                first.contains("[earlier context truncated]") && first.contains("## Your task")
            );
        }
    }
}

#[test]
fn reported_usage_tightens_the_prompt_bound_for_the_rest_of_the_run() {
    let cx = context_of("tests/llm/smoke_search.uh", str::to_string);
    // A tokenizer far denser than the prior of 2 characters per token.
    let density = 1.2;
    let replies: Vec<Reply> = (0..9)
        .map(|i| Reply::Tokenized {
            text: smollm_like_reply(i),
            chars_per_token: density,
        })
        .collect();
    let db = temp_db("calibrate");
    let server = ScriptedServer::start(replies);
    let bound = 2000;
    run(&cx, &db, smoke_setup(&server, Some(bound)), 6);
    let received = server.received();
    assert!(received.len() > 9);
    let tokens: Vec<usize> = received
        .iter()
        .map(|r| (messages(&r.body).1 as f64 / density).ceil() as usize)
        .collect();
    // The first prompt, built at the prior, is over the bound in this tokenizer's
    // tokens; every later one is within it, repair rounds included (their first round
    // is built again when it no longer fits).
    assert!(tokens[0] > bound, "{tokens:?}");
    for (i, &t) in tokens.iter().enumerate().skip(1) {
        assert!(t <= bound, "request {i}: {t} tokens > {bound} ({tokens:?})");
    }
}

/// With `concurrency` 4, a generation's four LLM proposals are in flight together: the
/// server holds every reply until four requests are open at once, so a client that
/// called one at a time would get nothing for 20 s and this test would fail.
#[test]
fn a_generation_keeps_its_llm_calls_in_flight_together() {
    let cx = context_of("examples/digits_search.uh", |t| {
        t.replace("population = 20", "population = 4")
            .replace("offspring = 8", "offspring = 4")
    });
    let widths = [5, 7, 9, 11];
    let replies: Vec<Reply> = widths
        .iter()
        .map(|w| {
            Reply::Gate(
                4,
                Box::new(Reply::content(
                    &fenced(&arch(
                        &format!("wide_{w}"),
                        &format!(
                            "    h = linear(x, {w})\n    a = modrelu(h)\n    y = linear(a, 10)"
                        ),
                    )),
                    500,
                    60,
                )),
            )
        })
        .collect();
    let server = ScriptedServer::start(replies);
    let mut setup = setup(&server, Budget::default()).with_prompt_config(PromptConfig {
        style: PromptStyle::Compact,
        max_prompt_tokens: None,
    });
    assert_eq!(
        setup.concurrency, 1,
        "a loopback server gets one call at a time by default"
    );
    setup.concurrency = 4;
    let stats = setup.stats();
    let db = temp_db("concurrent");
    run(&cx, &db, setup, 8);
    assert_eq!(server.max_in_flight(), 4);
    let s = stats.get();
    assert_eq!((s.proposals, s.new_valid, s.calls), (4, 4, 4), "{s:?}");
    // Stored in slot order, each with its own exchange linked.
    let store = Store::open(&db, StoreOptions::default()).expect("store");
    let llm: Vec<_> = store
        .load_archive()
        .expect("archive")
        .into_iter()
        .filter(|c| c.operator == "llm_mutate")
        .collect();
    assert_eq!(llm.len(), 4);
    for c in &llm {
        assert_eq!(
            store
                .exchanges_for_candidate(c.id)
                .expect("exchanges")
                .len(),
            1
        );
    }
}

/// Scores like [`Analytic`]; an LLM-made candidate only once the LLM server has seen
/// `calls` requests (it gives up with an error after 20 s). Under `pipeline`, the next
/// generation's LLM calls are made while this batch is evaluated, so the wait ends;
/// without it they would come only after the batch, and its evaluations would fail.
struct AfterLlmCalls {
    inner: Analytic,
    server: Arc<ScriptedServer>,
    calls: usize,
}

impl uhc::search::engine::Evaluator for AfterLlmCalls {
    fn evaluate(
        &self,
        req: &uhc::search::engine::EvalRequest<'_>,
    ) -> Result<uhc::search::engine::Scores, uhc::search::engine::EvalError> {
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        // Only the LLM's candidates (named `w…`) wait: generation 0 has nothing to
        // select parents from, so no pipelining can start before it is evaluated.
        let llm_made = req.arch.starts_with('w');
        while llm_made && self.server.received().len() < self.calls {
            if std::time::Instant::now() > give_up {
                return Err(uhc::search::engine::EvalError::Failed(
                    "no LLM call was made while this batch was evaluated".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        uhc::search::engine::Evaluator::evaluate(&self.inner, req)
    }
}

#[test]
fn pipelined_generations_are_proposed_while_the_last_is_evaluated() {
    let cx = context_of("examples/digits_search.uh", |t| {
        t.replace("population = 20", "population = 4")
            .replace("offspring = 8", "offspring = 2")
    });
    let replies: Vec<Reply> = (3..9)
        .map(|w| {
            Reply::content(
                &fenced(&arch(
                    &format!("w{w}"),
                    &format!("    h = linear(x, {w})\n    a = modrelu(h)\n    y = linear(a, 10)"),
                )),
                500,
                60,
            )
        })
        .collect();
    let server = Arc::new(ScriptedServer::start(replies));
    let setup = setup(&server, Budget::default()).with_prompt_config(PromptConfig {
        style: PromptStyle::Compact,
        max_prompt_tokens: None,
    });
    let mut proposers =
        operators::llm_proposers(&[("llm_mutate".to_string(), 1.0)], setup).expect("operators");
    let db = temp_db("pipelined");
    let (mut store, _) =
        Store::open_or_create(&db, "{}", 0, StoreOptions::default()).expect("store");
    let evaluator = AfterLlmCalls {
        inner: Analytic::default(),
        server: Arc::clone(&server),
        // Generation 1's two calls, and at least one of generation 2's.
        calls: 3,
    };
    let overrides = Overrides {
        budget: Some(8),
        jobs: Some(1),
        seed: None,
        pipeline: true,
        stop: None,
    };
    let summary = engine::run(
        &cx,
        &mut store,
        Arc::new(evaluator),
        &mut proposers,
        &overrides,
        false,
        &mut |_| {},
    )
    .expect("search runs");
    assert_eq!((summary.evaluated, summary.failed), (8, 0), "{summary:?}");
    let archive = store.load_archive().expect("archive");
    // Generation 2 was proposed while generation 1 was evaluated: from generation 0 alone.
    let gen = |id: i64| archive.iter().find(|c| c.id == id).map(|c| c.generation);
    let second: Vec<_> = archive.iter().filter(|c| c.generation == 2).collect();
    assert_eq!(second.len(), 2);
    for c in second {
        assert!(
            c.parents.iter().all(|&p| gen(p) == Some(0)),
            "{:?}",
            c.parents
        );
    }
    assert!(store
        .candidates_in_state(CandidateState::Queued)
        .expect("queued")
        .is_empty());
}

/// A reply the compiler can repair itself (a misspelt op, an output naming the one unused
/// value) is fixed without a repair round: one call, counted as valid after fixes, and
/// the fixed text is what is stored.
#[test]
fn fixable_replies_cost_no_repair_round() {
    let cx = context_of("examples/digits_search.uh", |t| {
        t.replace("population = 20", "population = 4")
            .replace("offspring = 8", "offspring = 2")
    });
    let replies = vec![
        Reply::content(
            &fenced(&arch(
                "typo",
                "    h = linaer(x, 7)\n    a = modrelu(h)\n    y = linear(a, 10)",
            )),
            500,
            60,
        ),
        Reply::content(
            &fenced(
                "arch dangling on mzi_realistic {\n    input x: real[16]\n    h = linear(x, 5)\n    a = modrelu(h)\n    z = linear(a, 10)\n    output detect(y)\n}",
            ),
            500,
            60,
        ),
    ];
    let server = ScriptedServer::start(replies);
    let setup = setup(&server, Budget::default()).with_prompt_config(PromptConfig {
        style: PromptStyle::Compact,
        max_prompt_tokens: None,
    });
    let stats = setup.stats();
    let db = temp_db("fixable");
    run(&cx, &db, setup, 6);
    let s = stats.get();
    assert_eq!(
        (s.calls, s.proposals, s.valid_after_fixes, s.new_valid),
        (2, 2, 2, 2),
        "{s:?}"
    );
    let store = Store::open(&db, StoreOptions::default()).expect("store");
    let texts: Vec<String> = store
        .load_archive()
        .expect("archive")
        .into_iter()
        .filter(|c| c.operator == "llm_mutate")
        .map(|c| c.text)
        .collect();
    assert_eq!(texts.len(), 2);
    assert!(
        texts.iter().any(|t| t.contains("linear(x, 7)")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("output detect(z)")),
        "{texts:?}"
    );
    let outcomes: Vec<String> = store
        .exchanges()
        .expect("exchanges")
        .into_iter()
        .map(|e| e.exchange.outcome)
        .collect();
    assert_eq!(outcomes, ["fixed:ok", "fixed:ok"]);
}
