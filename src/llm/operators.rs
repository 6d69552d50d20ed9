//! LLM operators of the search: `llm_mutate` (one parent), `llm_crossover` (two) and
//! `best_of_n` (no parents: independent samples shown only the seeds, the no-evolution
//! baseline). Each asks a [`ChatBackend`] for one `arch`, compiles it against the search,
//! and on diagnostics sends them back for a fix, up to `repair_rounds` times. Once per
//! generation the first evolving operator asks for "design notes" (what helped and hurt
//! on this hardware), which later prompts carry.
//!
//! Every call is buffered as a [`store::Exchange`] for the engine to log. Its `prompt`
//! column is the JSON of the [`ChatRequest`] (so [`LlmSetup::replay`] can serve the run
//! again) and its `outcome` is one of (prefixed `repair:` on follow-up rounds):
//! `ok`, `duplicate`, `invalid:<reason>`, `no_program`, `error:<kind>`; or `notes`,
//! `notes:error:<kind>` for design-notes calls. [`tally`] turns the log into rates.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::PromptConfig;
use super::prompt::{self, PromptStyle, Section};
use super::types::Dialect;
use super::{
    extract, Budget, ChatBackend, ChatRequest, Exchange, Ledger, LlmClient, LlmConfig, LlmError,
    LlmOverrides, Message, Outcome, Replay, ReplayMode, Usage,
};
use crate::check::grammar::ArchGrammar;
use crate::check::model::Operator;
use crate::diag::FileId;
use crate::search::engine::{self, Proposer, SearchContext};
use crate::search::store::{self, CandidateRecord, Store, StoreOptions};
use crate::syntax::{self, Item};

/// Operator names this module provides.
pub const OPERATORS: [&str; 3] = [
    Operator::LlmMutate.name(),
    Operator::LlmCrossover.name(),
    Operator::BestOfN.name(),
];
/// The operator name of design-notes exchanges in the store.
pub const NOTES_OPERATOR: &str = "llm_notes";

/// How the LLM operators talk and how much they say. Build with [`LlmSetup::new`],
/// [`LlmSetup::http`] or [`LlmSetup::replay`], pick a style with
/// [`LlmSetup::with_style`], then adjust the public fields.
///
/// Every request (system and user text, repair rounds included) is kept under
/// `max_prompt_tokens`, estimated from its characters: at `chars_per_token` until the
/// server reports usage, then at the densest ratio reported so far in the run.
pub struct LlmSetup {
    pub backend: Arc<dyn ChatBackend>,
    pub style: PromptStyle,
    /// Bound on every request's prompt tokens (system + all messages).
    pub max_prompt_tokens: usize,
    /// Characters per token assumed before the server reports usage.
    pub chars_per_token: f64,
    /// A cap on every request's characters, on top of the token bound.
    pub max_prompt_chars: usize,
    /// Follow-up rounds that send diagnostics back (0 = none).
    pub repair_rounds: usize,
    /// Characters of compiler diagnostics sent back in a repair round.
    pub diagnostics_chars: usize,
    /// Sampling temperature for every operator; `None` uses each operator's default
    /// ([`default_temperature`]).
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Ask for design notes once per generation.
    pub design_notes: bool,
    /// Calls in flight at once when a generation asks for several proposals.
    pub concurrency: usize,
    /// Layer lines the decoding grammar allows.
    pub max_layers: usize,
    /// Rejected proposals kept for the prompt, newest last.
    pub recent_failures: usize,
    /// Front members shown in full.
    pub front_shown: usize,
    shared: Arc<Mutex<Shared>>,
}

impl LlmSetup {
    /// The full style's defaults: 6 000-token prompts, 2 repair rounds, temperature 0.8,
    /// 1 024 reply tokens (an arch is a few hundred), design notes on.
    pub fn new(backend: Arc<dyn ChatBackend>) -> Self {
        let concurrency = backend.default_concurrency();
        LlmSetup {
            backend,
            style: PromptStyle::Full,
            max_prompt_tokens: prompt::DEFAULT_MAX_PROMPT_TOKENS,
            chars_per_token: prompt::PRIOR_CHARS_PER_TOKEN,
            max_prompt_chars: prompt::DEFAULT_MAX_PROMPT_CHARS,
            repair_rounds: 2,
            diagnostics_chars: 4000,
            temperature: None,
            max_tokens: Some(1024),
            design_notes: true,
            concurrency,
            max_layers: crate::check::grammar::DEFAULT_MAX_LAYERS,
            recent_failures: 6,
            front_shown: 6,
            shared: Arc::default(),
        }
    }

    /// Switches to `style` with its defaults for the prompt bound, the reply cap, what
    /// the prompt shows, and design notes (off in the compact style: one
    /// more call per generation, with another system prompt that evicts the server's
    /// cached prefix, for notes a small model cannot make useful).
    pub fn with_style(mut self, style: PromptStyle) -> Self {
        self.style = style;
        match style {
            PromptStyle::Full => {
                self.max_prompt_tokens = prompt::DEFAULT_MAX_PROMPT_TOKENS;
                self.diagnostics_chars = 4000;
                self.max_tokens = Some(1024);
                self.design_notes = true;
                self.recent_failures = 6;
                self.front_shown = 6;
            }
            PromptStyle::Compact => {
                self.max_prompt_tokens = prompt::DEFAULT_MAX_PROMPT_TOKENS_COMPACT;
                self.diagnostics_chars = 1200;
                self.max_tokens = Some(COMPACT_MAX_TOKENS);
                self.design_notes = false;
                self.recent_failures = 1;
                self.front_shown = 2;
            }
        }
        self
    }

    /// Applies resolved prompt settings: the style's defaults, then the explicit bound.
    pub fn with_prompt_config(self, config: PromptConfig) -> Self {
        let mut setup = self.with_style(config.style);
        if let Some(n) = config.max_prompt_tokens {
            setup.max_prompt_tokens = n;
        }
        setup
    }

    /// A live OpenAI-compatible server: the values in `overrides` beat `UHC_LLM_*` /
    /// `OPENAI_*` (pass the key through the environment, not a flag); `budget` caps the
    /// tokens of the run.
    pub fn http(overrides: &LlmOverrides, budget: Budget) -> Result<Self, String> {
        let config = LlmConfig::from_env(overrides).map_err(|e| e.to_string())?;
        let ledger = Ledger::new(budget).map_err(|e| e.to_string())?;
        ledger
            .check_model(&config.model)
            .map_err(|e| e.to_string())?;
        let client = LlmClient::new(config, Arc::new(ledger)).map_err(|e| e.to_string())?;
        Ok(LlmSetup::new(Arc::new(client)))
    }

    /// Serves the exchanges logged in an earlier run's store, matched by request, with no
    /// network. The re-run takes the same path as long as the prompts come out the same
    /// (same search file, seed and operators); past the recording the operators stop.
    pub fn replay(path: &Path) -> Result<Self, String> {
        let store = Store::open_read_only(path, StoreOptions::default())
            .map_err(|e| format!("cannot open the replay store {}: {e}", path.display()))?;
        let records = store.exchanges().map_err(|e| e.to_string())?;
        let exchanges: Vec<Exchange> = records
            .iter()
            .filter_map(|r| to_llm_exchange(&r.exchange))
            .collect();
        if exchanges.is_empty() {
            return Err(format!(
                "{} holds no replayable LLM exchanges",
                path.display()
            ));
        }
        let replay = Replay::new(ReplayMode::ByRequest, exchanges).map_err(|e| e.to_string())?;
        Ok(LlmSetup::new(Arc::new(replay)))
    }

    /// `--llm` flag values: `replay:PATH`; anything else is refused with the reason.
    /// Without the flag, [`LlmSetup::http`] with `overrides`. Either way the prompt
    /// settings come from `overrides`, then `UHC_LLM_PROMPT` and
    /// `UHC_LLM_MAX_PROMPT_TOKENS` (a replay needs the settings of the recorded run).
    pub fn from_flags(
        llm: Option<&str>,
        overrides: &LlmOverrides,
        budget: Budget,
    ) -> Result<Self, String> {
        let prompt = PromptConfig::resolve(overrides, |k| std::env::var(k).ok())
            .map_err(|e| e.to_string())?;
        let setup = match llm {
            None => LlmSetup::http(overrides, budget)?,
            Some(v) => match v.strip_prefix("replay:") {
                Some(path) if !path.is_empty() => LlmSetup::replay(Path::new(path))?,
                _ => return Err(format!("--llm `{v}` is not understood; use `--llm replay:RUN.sqlite`, or --llm-url and --llm-model for a server")),
            },
        };
        Ok(setup.with_prompt_config(prompt))
    }

    /// Counters over every exchange the operators built from this setup have made.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared))
    }
}

/// Reads the counters of a running set of operators.
#[derive(Clone)]
pub struct StatsHandle(Arc<Mutex<Shared>>);

impl StatsHandle {
    pub fn get(&self) -> LlmStats {
        let s = lock(&self.0);
        tally(
            s.log
                .iter()
                .map(|(op, outcome)| (op.as_str(), outcome.as_str())),
        )
    }
}

/// Validity, novelty and repair counts. A proposal is one first-round call that got a
/// reply, with its follow-up rounds. `valid` means it compiled (a copy of a known design
/// included); `new` means valid and not a copy: only those are worth an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmStats {
    /// Chat calls, design notes included.
    pub calls: usize,
    /// Calls that got a reply (any round, notes excluded).
    pub replies: usize,
    /// Replies in which a program was found and parsed.
    pub replies_parsed: usize,
    pub proposals: usize,
    /// Proposals whose first reply compiled as written.
    pub valid_first_try: usize,
    /// Proposals whose first reply compiled once the compiler's fixes were applied.
    pub valid_after_fixes: usize,
    /// Proposals invalid after the first round and valid after a follow-up round.
    pub valid_after_repair: usize,
    /// Proposals still invalid after every round.
    pub invalid: usize,
    /// Proposals whose first reply (fixes included) was valid and new.
    pub new_first_round: usize,
    /// Proposals that ended valid and new, in any round.
    pub new_valid: usize,
    /// Replies that compiled to a design already known.
    pub duplicates: usize,
    pub no_program: usize,
    /// Failed calls (HTTP, timeout, malformed reply, budget).
    pub errors: usize,
    pub notes: usize,
    /// Compiler reasons of invalid replies, all rounds.
    pub rejection_reasons: BTreeMap<String, usize>,
}

impl LlmStats {
    /// Fraction of proposals valid on the first reply, as written.
    pub fn first_try_rate(&self) -> f64 {
        self.valid_first_try as f64 / self.proposals.max(1) as f64
    }
    /// Fraction valid after fixes and repair rounds.
    pub fn final_rate(&self) -> f64 {
        (self.valid_first_try + self.valid_after_fixes + self.valid_after_repair) as f64
            / self.proposals.max(1) as f64
    }
    /// Fraction of proposals that were new and valid without a repair round.
    pub fn new_first_round_rate(&self) -> f64 {
        self.new_first_round as f64 / self.proposals.max(1) as f64
    }
    /// Fraction of proposals that ended new and valid.
    pub fn new_rate(&self) -> f64 {
        self.new_valid as f64 / self.proposals.max(1) as f64
    }
    /// Fraction of replies in which a program parsed.
    pub fn parse_rate(&self) -> f64 {
        self.replies_parsed as f64 / self.replies.max(1) as f64
    }
    /// Chat calls per new valid candidate (what an evaluation costs in calls).
    pub fn calls_per_new(&self) -> f64 {
        self.calls as f64 / self.new_valid.max(1) as f64
    }

    /// The summary line: validity and novelty side by side.
    pub fn summary(&self) -> String {
        format!(
            "{} proposals in {} calls: valid on the first reply {:.0}%, after fixes {:.0}%, after repair {:.0}%; \
             new and valid {} ({:.0}%, {:.0}% without a repair round); {} duplicates; replies parsed {:.0}%; \
             {:.2} calls per new candidate; {} failed calls",
            self.proposals,
            self.calls,
            100.0 * self.first_try_rate(),
            100.0 * (self.valid_first_try + self.valid_after_fixes) as f64 / self.proposals.max(1) as f64,
            100.0 * self.final_rate(),
            self.new_valid,
            100.0 * self.new_rate(),
            100.0 * self.new_first_round_rate(),
            self.duplicates,
            100.0 * self.parse_rate(),
            self.calls_per_new(),
            self.errors
        )
    }
}

/// Counts outcomes of an exchange log, given as `(operator, outcome)` in call order.
/// Outcomes are `[repair:][fixed:]ok|duplicate`, `[repair:]invalid:<reason>`,
/// `[repair:]no_program`, `[repair:]error:<kind>`, and `notes`/`notes:error:<kind>`.
pub fn tally<'a>(log: impl IntoIterator<Item = (&'a str, &'a str)>) -> LlmStats {
    /// The open proposal: its first round's verdicts and how it has ended so far.
    #[derive(Clone, Copy, Default)]
    struct Open {
        first_valid: bool,
        first_fixed: bool,
        first_new: bool,
        any_valid: bool,
        last_new: bool,
    }
    let mut s = LlmStats::default();
    let mut open: Option<Open> = None;
    let close = |s: &mut LlmStats, open: &mut Option<Open>| {
        if let Some(p) = open.take() {
            s.proposals += 1;
            if p.first_valid && !p.first_fixed {
                s.valid_first_try += 1;
            } else if p.first_valid {
                s.valid_after_fixes += 1;
            } else if p.any_valid {
                s.valid_after_repair += 1;
            } else {
                s.invalid += 1;
            }
            s.new_first_round += p.first_new as usize;
            s.new_valid += p.last_new as usize;
        }
    };
    for (op, outcome) in log {
        s.calls += 1;
        if op == NOTES_OPERATOR {
            if outcome == "notes" {
                s.notes += 1;
            } else {
                s.errors += 1;
            }
            continue;
        }
        let (repair, o) = match outcome.strip_prefix("repair:") {
            Some(rest) => (true, rest),
            None => (false, outcome),
        };
        let (fixed, o) = match o.strip_prefix("fixed:") {
            Some(rest) => (true, rest),
            None => (false, o),
        };
        if !repair {
            close(&mut s, &mut open);
        }
        if o.starts_with("error:") {
            s.errors += 1;
            continue; // no reply: not a proposal, nor a round of one
        }
        s.replies += 1;
        let valid = o == "ok" || o == "duplicate";
        let new = o == "ok";
        if o == "duplicate" {
            s.duplicates += 1;
        }
        if o == "no_program" {
            s.no_program += 1;
        }
        let parsed = o != "no_program"
            && !o
                .strip_prefix("invalid:")
                .is_some_and(|r| r.starts_with("uh::syntax"));
        s.replies_parsed += parsed as usize;
        if let Some(reason) = o.strip_prefix("invalid:") {
            *s.rejection_reasons.entry(reason.to_string()).or_default() += 1;
        }
        match (&mut open, repair) {
            (None, false) => {
                open = Some(Open {
                    first_valid: valid,
                    first_fixed: fixed,
                    first_new: new,
                    any_valid: valid,
                    last_new: new,
                })
            }
            (Some(p), true) => {
                p.any_valid |= valid;
                p.last_new = new;
            }
            _ => {}
        }
    }
    close(&mut s, &mut open);
    s
}

/// Proposers with their selection weights, as `engine::run` takes them.
pub type WeightedProposers = Vec<(Box<dyn Proposer>, f64)>;

/// Builds the LLM operators named in `names_and_weights` (each of [`OPERATORS`]), sharing
/// one backend, notes and counters.
///
/// Wiring in `src/cli/search.rs`: split the `--operators` list into built-in names
/// (`engine::builtin_proposer`) and LLM names; if any LLM name is present, build
/// `let setup = LlmSetup::from_flags(llm_flag.as_deref(), &overrides, budget)?;` (the
/// `--llm-*` flags in an [`LlmOverrides`]),
/// keep `setup.stats()` for the end-of-run summary, and append
/// `llm_proposers(&llm_names, setup)?` to the proposer list given to `engine::run`. The
/// engine logs each exchange in the store and stops cleanly when the LLM budget is spent.
pub fn llm_proposers(
    names_and_weights: &[(String, f64)],
    setup: LlmSetup,
) -> Result<WeightedProposers, String> {
    let settings = Arc::new(Settings::of(&setup)?);
    let mut out: WeightedProposers = Vec::new();
    for (name, weight) in names_and_weights {
        let kind = match name.as_str() {
            "llm_mutate" => Kind::Mutate,
            "llm_crossover" => Kind::Crossover,
            "best_of_n" => Kind::BestOfN,
            other => {
                return Err(format!(
                    "`{other}` is not an LLM operator; choose from {}",
                    OPERATORS.join(", ")
                ))
            }
        };
        if !weight.is_finite() || *weight < 0.0 {
            return Err(format!(
                "operator `{name}` has weight {weight}; weights are non-negative numbers"
            ));
        }
        out.push((
            Box::new(LlmProposer {
                kind,
                settings: Arc::clone(&settings),
                shared: Arc::clone(&setup.shared),
                pending: Vec::new(),
            }),
            *weight,
        ));
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Mutate,
    Crossover,
    BestOfN,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Mutate => "llm_mutate",
            Kind::Crossover => "llm_crossover",
            Kind::BestOfN => "best_of_n",
        }
    }
}

struct Settings {
    backend: Arc<dyn ChatBackend>,
    style: PromptStyle,
    max_prompt_tokens: usize,
    chars_per_token: f64,
    max_prompt_chars: usize,
    repair_rounds: usize,
    diagnostics_chars: usize,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    design_notes: bool,
    concurrency: usize,
    max_layers: usize,
    recent_failures: usize,
    front_shown: usize,
}

impl Settings {
    fn of(setup: &LlmSetup) -> Result<Self, String> {
        if setup.max_prompt_tokens == 0
            || !setup.chars_per_token.is_finite()
            || setup.chars_per_token <= 0.0
        {
            return Err(
                "the prompt bound and the characters per token must be positive numbers".into(),
            );
        }
        Ok(Settings {
            backend: Arc::clone(&setup.backend),
            style: setup.style,
            max_prompt_tokens: setup.max_prompt_tokens,
            chars_per_token: setup.chars_per_token,
            max_prompt_chars: setup.max_prompt_chars,
            repair_rounds: setup.repair_rounds,
            diagnostics_chars: setup.diagnostics_chars,
            temperature: setup.temperature,
            max_tokens: setup.max_tokens,
            design_notes: setup.design_notes,
            concurrency: setup.concurrency.max(1),
            max_layers: setup.max_layers,
            recent_failures: setup.recent_failures,
            front_shown: setup.front_shown,
        })
    }
}

/// A proposal the compiler refused, for later prompts.
struct Rejected {
    operator: &'static str,
    reason: String,
    text: String,
    diagnostics: String,
}

/// State shared by the operators of one run.
#[derive(Default)]
struct Shared {
    exhausted: bool,
    notes: Vec<String>,
    /// Archive size when the notes were last refreshed.
    notes_key: Option<usize>,
    failures: VecDeque<Rejected>,
    front: Vec<CandidateRecord>,
    /// Structural hashes of every design proposed or evaluated in the run, with the
    /// evaluated candidate's id and one line of its figures where known: a duplicate
    /// reply is told which candidate it copied.
    known_hashes: HashMap<String, Option<(i64, String)>>,
    /// Compact chains of the archive's candidates by id, and their parents, for the
    /// "already tried near the parent" list.
    tried: HashMap<i64, (Vec<i64>, String)>,
    /// The decoding grammar rendered for the run's hardware and task, per dialect; or
    /// why none could be built.
    grammar: Option<(Dialect, Result<String, String>)>,
    known_names: HashSet<String>,
    fresh: u64,
    /// (operator, outcome) of every exchange, in order.
    log: Vec<(String, String)>,
    /// The densest characters-per-token ratio servers reported in this run.
    chars_per_token: Option<f64>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Plain data, updated in single statements: a panic elsewhere cannot tear it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct LlmProposer {
    kind: Kind,
    settings: Arc<Settings>,
    shared: Arc<Mutex<Shared>>,
    pending: Vec<store::Exchange>,
}

/// The compact style's reply cap, tokens. A seed of the digits search in its fence is 70
/// SmolLM2 tokens, so an arch with some prose around it fits several times over; what a
/// small model writes past that is rambling that costs generation time (SmolLM2-135M's
/// replies ran to 256-470 tokens under the full style's 1 024 cap).
pub const COMPACT_MAX_TOKENS: u32 = 384;

/// An operator's sampling temperature unless the search or a flag sets one. Low
/// temperatures make copies: at 0.2 (SmolLM2's model card value) 44 of 68 first replies
/// of the 135M model were candidates already evaluated. With the decoding grammar
/// keeping replies well-formed, sampling can explore: 0.8-1.0 gave 22 new valid
/// architectures in 28 calls (shared/guide/domain.md). `best_of_n` samples
/// independently from the seeds alone, so it runs hottest; crossover stays closest to
/// its parents.
pub fn default_temperature(operator: &str) -> f64 {
    match operator {
        "best_of_n" => 1.0,
        "llm_crossover" => 0.7,
        _ => 0.8,
    }
}

/// Share of the prompt bound a first-round prompt may use; the rest is kept for a repair
/// round (the refused program and the compiler's diagnostics).
const FIRST_ROUND_SHARE: f64 = 0.75;

const SYSTEM: &str = "You design neural-network architectures for physical photonic hardware, written in the .uh language. \
Reply with exactly one `arch` item inside one ```uh fenced block. Use only the operations listed below and only those the hardware supports.";

/// `s` in at most `max` characters, the marker `\n[...]` included when it is cut.
fn cut(s: &str, max: usize) -> String {
    const MARK: &str = "\n[...]";
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max <= MARK.len() {
        return s.chars().take(max).collect();
    }
    let mut t: String = s.chars().take(max - MARK.len()).collect();
    t.push_str(MARK);
    t
}

/// Canonical candidate text: `use` items dropped (the prelude has them), the arch put on
/// the search's hardware and renamed if its name is taken. Unparsable text is returned
/// as is, for the compiler to explain.
fn prepare(cx: &SearchContext, text: &str, names: &HashSet<String>, fresh: &mut u64) -> String {
    let (file, diags) = syntax::parse(FileId(0), text);
    if diags.iter().any(|d| d.is_error()) {
        return text.to_string();
    }
    let mut items: Vec<Item> = file
        .items
        .into_iter()
        .filter(|i| !matches!(i, Item::Use(_)))
        .collect();
    for item in &mut items {
        if let Item::Arch(a) = item {
            a.hardware.name = cx.hardware.name.clone();
            if names.contains(&a.name.name) {
                let base = a.name.name.clone();
                loop {
                    *fresh += 1;
                    let candidate = format!("{base}_v{fresh}");
                    if !names.contains(&candidate) {
                        a.name.name = candidate;
                        break;
                    }
                }
            }
        }
    }
    syntax::print_file(&syntax::File { items })
}

fn arch_name(text: &str) -> Option<String> {
    let (file, _) = syntax::parse(FileId(0), text);
    file.items.into_iter().find_map(|i| match i {
        Item::Arch(a) => Some(a.name.name),
        _ => None,
    })
}

fn error_outcome(e: &LlmError) -> String {
    match e.outcome() {
        Outcome::HttpError { status } => format!("error:http_error:{status}"),
        o => format!("error:{}", o.name()),
    }
}

/// The store row of a chat call.
fn to_store(operator: &str, ex: &Exchange, outcome: String) -> store::Exchange {
    let response = match (&ex.response_text, &ex.error) {
        (_, Some(e)) => serde_json::to_string(e).unwrap_or_else(|_| e.to_string()),
        (Some(t), None) => t.clone(),
        (None, None) => String::new(),
    };
    store::Exchange {
        operator: operator.to_string(),
        model: ex.model.clone(),
        prompt: serde_json::to_string(&ex.request).unwrap_or_default(),
        response,
        prompt_tokens: ex.usage.prompt_tokens,
        completion_tokens: ex.usage.completion_tokens,
        tokens_estimated: ex.usage.estimated,
        latency_ms: ex.latency_ms,
        outcome,
        candidate_id: None,
    }
}

/// A logged row back as a client exchange, for replay; `None` if its prompt is not a
/// recorded request (rows written by other tools).
fn to_llm_exchange(e: &store::Exchange) -> Option<Exchange> {
    let request: ChatRequest = serde_json::from_str(&e.prompt).ok()?;
    let failed = e.outcome.contains("error:");
    let error = failed.then(|| {
        serde_json::from_str::<LlmError>(&e.response).unwrap_or_else(|_| LlmError::Replay {
            detail: format!("recorded failure: {}", e.response),
        })
    });
    Some(Exchange {
        model: e.model.clone(),
        request_key: request.key(&e.model),
        request,
        response_text: (!failed).then(|| e.response.clone()),
        finish_reason: None,
        outcome: error.as_ref().map_or(Outcome::Ok, LlmError::outcome),
        error,
        usage: Usage {
            prompt_tokens: e.prompt_tokens,
            completion_tokens: e.completion_tokens,
            estimated: e.tokens_estimated,
        },
        cost: 0.0,
        latency_ms: e.latency_ms,
        attempts: 1,
        started_unix_ms: 0,
        replayed: false,
    })
}

impl LlmProposer {
    /// One proposal with its repair rounds; `&self` so a batch can run several at once.
    /// Returns the text to store (the last attempt if none compiled) and the exchanges.
    fn propose_one(
        &self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> (Option<String>, Vec<store::Exchange>) {
        let mut buf = Vec::new();
        if lock(&self.shared).exhausted || parents.len() < self.arity() {
            return (None, buf);
        }
        let op = self.kind.name();
        let (system, user) = self.first_prompt(cx, parents);
        let mut messages = vec![Message::system(system), Message::user(user)];
        let mut last_invalid: Option<String> = None;
        for round in 0..=self.settings.repair_rounds {
            let prefix = if round == 0 { "" } else { "repair:" };
            let request = self.request(cx, messages.clone(), rng);
            let reply = match self.settings.backend.chat(&request) {
                Ok(c) => {
                    self.calibrate(&c.exchange);
                    c
                }
                Err(f) => {
                    self.note_failure(&f.error);
                    self.log(
                        &mut buf,
                        op,
                        &f.exchange,
                        format!("{prefix}{}", error_outcome(&f.error)),
                    );
                    return (last_invalid, buf);
                }
            };
            let found = extract::candidates(&reply.text);
            if found.is_empty() {
                self.log(&mut buf, op, &reply.exchange, format!("{prefix}no_program"));
                messages = self.repair_messages(
                    &self.refit(cx, parents, messages),
                    &reply.text,
                    None,
                    "Your reply contained no .uh program.",
                    "",
                    "Reply with one complete `arch` item in one ```uh block.",
                );
                continue;
            }
            let (names, mut fresh) = {
                let s = lock(&self.shared);
                (s.known_names.clone(), s.fresh)
            };
            let mut first_error: Option<(String, String, String)> = None;
            let mut compiled = None;
            let mut fixed = false;
            for cand in &found {
                let text = prepare(cx, &cand.text, &names, &mut fresh);
                match cx.compile_candidate(&text) {
                    Ok(c) => {
                        compiled = Some((text, c.hash));
                        break;
                    }
                    Err((reason, diags)) => {
                        first_error.get_or_insert((text, reason, diags));
                    }
                }
            }
            // The compiler's own unambiguous fixes before a repair round: free, and what
            // a small model gets wrong most (a typo'd name, a reference to the one unused
            // value, a missing `detect`).
            if compiled.is_none() {
                if let Some((text, ..)) = &first_error {
                    let outcome = crate::fix::fix_with(text, crate::fix::MAX_ROUNDS, |t| {
                        cx.candidate_diagnostics(t)
                    });
                    if !outcome.applied.is_empty() {
                        if let Ok(c) = cx.compile_candidate(&outcome.text) {
                            compiled = Some((outcome.text, c.hash));
                            fixed = true;
                        }
                    }
                }
            }
            lock(&self.shared).fresh = fresh;
            match (compiled, first_error) {
                (Some((text, hash)), _) => {
                    let copied = {
                        let mut s = lock(&self.shared);
                        match s.known_hashes.get(&hash) {
                            Some(known) => Some(known.clone()),
                            None => {
                                s.known_hashes.insert(hash, None);
                                None
                            }
                        }
                    };
                    let duplicate = copied.is_some();
                    let prefix = if fixed {
                        format!("{prefix}fixed:")
                    } else {
                        prefix.to_string()
                    };
                    if duplicate && round < self.settings.repair_rounds {
                        self.log(&mut buf, op, &reply.exchange, format!("{prefix}duplicate"));
                        // One line, cheaper than a repair round: which design it copied.
                        let which = match copied.flatten() {
                            Some((id, line)) => {
                                format!("That is candidate #{id}, already evaluated: {line}.")
                            }
                            None => {
                                "That design was already proposed in this generation.".to_string()
                            }
                        };
                        messages = self.repair_messages(
                            &self.refit(cx, parents, messages),
                            &reply.text,
                            Some(&text),
                            &which,
                            "",
                            "Make a different change (other widths, depth or operations) and reply in one ```uh block.",
                        );
                        last_invalid = Some(text);
                        continue;
                    }
                    self.log(
                        &mut buf,
                        op,
                        &reply.exchange,
                        format!("{prefix}{}", if duplicate { "duplicate" } else { "ok" }),
                    );
                    if let Some(name) = arch_name(&text) {
                        lock(&self.shared).known_names.insert(name);
                    }
                    return (Some(text), buf);
                }
                (None, Some((text, reason, diagnostics))) => {
                    self.log(
                        &mut buf,
                        op,
                        &reply.exchange,
                        format!("{prefix}invalid:{reason}"),
                    );
                    {
                        let mut s = lock(&self.shared);
                        s.failures.push_back(Rejected {
                            operator: op,
                            reason: reason.clone(),
                            text: text.clone(),
                            diagnostics: diagnostics.clone(),
                        });
                        while s.failures.len() > self.settings.recent_failures {
                            s.failures.pop_front();
                        }
                    }
                    messages = self.repair_messages(
                        &self.refit(cx, parents, messages),
                        &reply.text,
                        Some(&text),
                        &format!("The compiler rejected it ({reason}):\n"),
                        &diagnostics,
                        "Fix every error and reply with the whole corrected arch in one ```uh block.",
                    );
                    last_invalid = Some(text);
                }
                (None, None) => return (last_invalid, buf),
            }
        }
        // Out of rounds: hand back the last attempt so the engine stores it as rejected
        // (or counts it as a duplicate) with its diagnostics.
        (last_invalid, buf)
    }

    /// A proposal request: a fresh seed per call (servers that honour seeds would
    /// otherwise answer the same prompt the same way), the operator's temperature, the
    /// reply cap, and the decoding grammar where the backend takes one.
    fn request(&self, cx: &SearchContext, messages: Vec<Message>, rng: &mut StdRng) -> ChatRequest {
        let temperature = self
            .settings
            .temperature
            .unwrap_or_else(|| default_temperature(self.kind.name()));
        let mut r = ChatRequest::new(messages)
            .with_seed(rng.random::<u32>() as u64)
            .with_temperature(temperature);
        if let Some(m) = self.settings.max_tokens {
            r = r.with_max_tokens(m);
        }
        if let Some((dialect, text)) = self.grammar(cx) {
            r = r.with_grammar(dialect, text);
        }
        r
    }

    /// The run's decoding grammar in the backend's dialect, built once.
    fn grammar(&self, cx: &SearchContext) -> Option<(Dialect, String)> {
        let dialect = self.settings.backend.grammar_dialect()?;
        let mut s = lock(&self.shared);
        if !matches!(&s.grammar, Some((d, _)) if *d == dialect) {
            let built = ArchGrammar::for_task(&cx.hardware, &cx.task).and_then(|mut g| {
                g.max_layers = self.settings.max_layers;
                g.build()
            });
            s.grammar = Some((dialect, built.map(|g| g.render(dialect))));
        }
        match &s.grammar {
            Some((d, Ok(text))) => Some((*d, text.clone())),
            _ => None,
        }
    }

    fn log(&self, buf: &mut Vec<store::Exchange>, operator: &str, ex: &Exchange, outcome: String) {
        lock(&self.shared)
            .log
            .push((operator.to_string(), outcome.clone()));
        buf.push(to_store(operator, ex, outcome));
    }

    /// Characters per token for estimates: the densest ratio a server reported in this
    /// run, else the configured prior.
    fn chars_per_token(&self) -> f64 {
        lock(&self.shared)
            .chars_per_token
            .unwrap_or(self.settings.chars_per_token)
    }

    /// Characters a whole request may hold: the token bound at the current ratio, capped
    /// by `max_prompt_chars`.
    fn char_budget(&self) -> usize {
        prompt::chars_for_tokens(self.settings.max_prompt_tokens, self.chars_per_token())
            .min(self.settings.max_prompt_chars)
    }

    /// Learns the tokenizer's density from a reply's reported usage (estimated usage
    /// teaches nothing). The minimum over the run is kept, so estimates stay on the
    /// long side for every prompt seen.
    fn calibrate(&self, ex: &Exchange) {
        if ex.usage.estimated || ex.usage.prompt_tokens == 0 {
            return;
        }
        let ratio = ex.request.content_chars() as f64 / ex.usage.prompt_tokens as f64;
        if ratio.is_finite() && ratio > 0.0 {
            let mut s = lock(&self.shared);
            let ratio = ratio.clamp(0.5, 8.0);
            s.chars_per_token = Some(s.chars_per_token.map_or(ratio, |r| r.min(ratio)));
        }
    }

    /// Characters a first-round prompt may use now.
    fn first_round_budget(&self) -> usize {
        (self.char_budget() as f64 * FIRST_ROUND_SHARE) as usize
    }

    /// The conversation so far, with its first round built again if it no longer fits
    /// (a server reported a denser tokenizer than assumed when it was built); earlier
    /// repair rounds go with it.
    fn refit(
        &self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        messages: Vec<Message>,
    ) -> Vec<Message> {
        let first: usize = messages
            .iter()
            .take(2)
            .map(|m| m.content.chars().count())
            .sum();
        if first <= self.first_round_budget() {
            return messages;
        }
        let (system, user) = self.first_prompt(cx, parents);
        vec![Message::system(system), Message::user(user)]
    }

    /// The messages of a repair round within the budget: the first round (system and
    /// user), the model's last reply and the compiler's answer. Earlier rounds go first,
    /// oldest first, when the bound is reached; then the reply is cut to the program the
    /// compiler refused, and both it and the diagnostics are shortened to fit.
    fn repair_messages(
        &self,
        history: &[Message],
        reply: &str,
        program: Option<&str>,
        feedback_head: &str,
        diagnostics: &str,
        feedback_tail: &str,
    ) -> Vec<Message> {
        let budget = self.char_budget();
        let chars = |m: &[Message]| m.iter().map(|m| m.content.chars().count()).sum::<usize>();
        let mut kept: Vec<Message> = history.to_vec();
        let fixed = feedback_head.chars().count() + feedback_tail.chars().count() + 1;
        let diagnostics = cut(diagnostics, self.settings.diagnostics_chars);
        let want = reply.chars().count() + diagnostics.chars().count() + fixed;
        // Drop whole earlier rounds (pairs after the first two messages) while over.
        while kept.len() > 2 && chars(&kept) + want > budget {
            kept.drain(2..4.min(kept.len()));
        }
        let room = budget.saturating_sub(chars(&kept) + fixed);
        let reply = if reply.chars().count() + diagnostics.chars().count() <= room {
            reply.to_string()
        } else {
            let program = program.map_or_else(
                || reply.to_string(),
                |p| format!("```uh\n{}\n```", p.trim()),
            );
            cut(
                &program,
                (room / 2).max(room.saturating_sub(diagnostics.chars().count())),
            )
        };
        let diagnostics = cut(&diagnostics, room.saturating_sub(reply.chars().count()));
        kept.push(Message::assistant(reply));
        kept.push(Message::user(format!(
            "{feedback_head}{diagnostics}\n{feedback_tail}"
        )));
        kept
    }

    /// Marks the run exhausted on budget errors and when a replay has run out.
    fn note_failure(&self, e: &LlmError) {
        if e.is_budget_exhausted() || matches!(e, LlmError::Replay { .. }) {
            lock(&self.shared).exhausted = true;
        }
    }

    fn first_prompt(&self, cx: &SearchContext, parents: &[&CandidateRecord]) -> (String, String) {
        let compact = self.settings.style == PromptStyle::Compact;
        let reference = if compact {
            prompt::compact_reference(&cx.hardware, cx.seeds.first().map(String::as_str))
        } else {
            prompt::language_reference()
        };
        let system = format!("{SYSTEM}\n\n{reference}");
        let budget = self.first_round_budget();
        let hardware = if compact {
            prompt::compact_hardware_section(cx)
        } else {
            prompt::hardware_section(cx)
        };
        let (program_chars, diagnostics_chars) = if compact { (800, 400) } else { (1500, 800) };
        let shared = lock(&self.shared);
        let mut sections = vec![hardware, prompt::task_section(cx)];
        let evolving = self.kind != Kind::BestOfN;
        if evolving {
            if !shared.notes.is_empty() {
                sections.push(Section::droppable(
                    "Design notes from earlier generations",
                    shared.notes.join("\n"),
                    100,
                ));
            }
            if !shared.front.is_empty() {
                let front: String = shared
                    .front
                    .iter()
                    .take(self.settings.front_shown)
                    .map(|c| prompt::candidate_block(cx, c))
                    .collect();
                sections.push(Section::droppable("Current Pareto front", front, 50));
            }
            for (i, f) in shared.failures.iter().enumerate() {
                sections.push(Section::droppable(
                    format!("Rejected earlier ({}, {})", f.operator, f.reason),
                    format!(
                        "```uh\n{}\n```\nCompiler said:\n{}",
                        cut(&f.text, program_chars),
                        cut(&f.diagnostics, diagnostics_chars)
                    ),
                    i as u32,
                ));
            }
        }
        let instruction = match self.kind {
            Kind::Mutate => {
                if let Some(p) = parents.first() {
                    sections.push(Section::keep("Parent", prompt::candidate_block(cx, p)));
                    let near = tried_near(&shared.tried, p.id, TRIED_SHOWN);
                    if !near.is_empty() {
                        sections.push(Section::droppable(
                            "Already tried from this parent (do not repeat these)",
                            near,
                            60,
                        ));
                    }
                }
                "Write one new architecture derived from the parent: change a few things (widths, depth, activations, operations) \
                 to improve the objectives on this hardware while meeting the constraints. Give it a new name."
            }
            Kind::Crossover => {
                for (i, p) in parents.iter().enumerate() {
                    sections.push(Section::keep(
                        format!("Parent {}", i + 1),
                        prompt::candidate_block(cx, p),
                    ));
                }
                "Write one new architecture that combines the strengths of the parents (for example the front of one and the \
                 back of the other) to improve the objectives on this hardware while meeting the constraints. Give it a new name."
            }
            Kind::BestOfN => {
                let seeds: String = cx
                    .seeds
                    .iter()
                    .map(|s| format!("```uh\n{}\n```\n", s.trim()))
                    .collect();
                sections.push(Section::keep("Example architectures", seeds));
                "Write one new architecture for this task and hardware that you expect to do well on the objectives while \
                 meeting the constraints. Give it a new name."
            }
        };
        sections.push(Section::keep(
            "Your task",
            format!("{instruction}\nReply with the arch in one ```uh block."),
        ));
        let user = prompt::assemble(&sections, system.chars().count(), budget);
        (system, user)
    }

    fn refresh_notes(&mut self, cx: &SearchContext, archive: &[CandidateRecord], rng_seed: u64) {
        let (previous, failures, front) = {
            let s = lock(&self.shared);
            let failures: Vec<String> = s
                .failures
                .iter()
                .map(|f| {
                    format!(
                        "- {} rejected ({}): {}",
                        f.operator,
                        f.reason,
                        cut(f.diagnostics.lines().next().unwrap_or(""), 200)
                    )
                })
                .collect();
            (s.notes.join("\n"), failures.join("\n"), s.front.clone())
        };
        let last_gen = archive.iter().map(|c| c.generation).max().unwrap_or(0);
        let recent: String = archive
            .iter()
            .filter(|c| c.generation == last_gen)
            .take(12)
            .map(|c| format!("- {}\n", prompt::metrics_line(cx, c)))
            .collect();
        let front_text: String = front
            .iter()
            .take(self.settings.front_shown)
            .map(|c| prompt::candidate_block(cx, c))
            .collect();
        let sections = vec![
            prompt::hardware_section(cx),
            prompt::task_section(cx),
            Section::droppable("Previous notes", if previous.is_empty() { "(none yet)".into() } else { previous }, 3),
            Section::droppable("Rejected proposals", if failures.is_empty() { "(none)".into() } else { failures }, 0),
            Section::droppable(format!("Generation {last_gen} results"), recent, 2),
            Section::droppable("Pareto front", front_text, 1),
            Section::keep(
                "Your task",
                "Summarise in at most 10 bullet lines, each starting with `- `, what helped and what hurt on this hardware \
                 (optical depth versus loss, sensitivity to noise, energy, width). Be concrete; no code.",
            ),
        ];
        let system = "You analyse the results of a hardware-aware architecture search for photonic hardware.".to_string();
        let user = prompt::assemble(&sections, system.chars().count(), self.char_budget());
        let mut r = ChatRequest::new(vec![Message::system(system), Message::user(user)])
            .with_seed(rng_seed);
        if let Some(m) = self.settings.max_tokens {
            r = r.with_max_tokens(m);
        }
        let mut buf = Vec::new();
        match self.settings.backend.chat(&r) {
            Ok(c) => {
                self.calibrate(&c.exchange);
                let notes = parse_notes(&c.text);
                self.log(&mut buf, NOTES_OPERATOR, &c.exchange, "notes".into());
                if !notes.is_empty() {
                    lock(&self.shared).notes = notes;
                }
            }
            Err(f) => {
                self.note_failure(&f.error);
                self.log(
                    &mut buf,
                    NOTES_OPERATOR,
                    &f.exchange,
                    format!("notes:{}", error_outcome(&f.error)),
                );
            }
        }
        self.pending.extend(buf);
    }
}

/// Designs listed as "already tried" near a parent.
const TRIED_SHOWN: usize = 8;

/// One line per design already derived from `parent` (newest first), `#id: chain`.
fn tried_near(tried: &HashMap<i64, (Vec<i64>, String)>, parent: i64, max: usize) -> String {
    let mut near: Vec<(&i64, &String)> = tried
        .iter()
        .filter(|(_, (parents, _))| parents.contains(&parent))
        .map(|(id, (_, chain))| (id, chain))
        .collect();
    near.sort_by(|a, b| b.0.cmp(a.0));
    near.iter()
        .take(max)
        .map(|(id, chain)| format!("- #{id}: {chain}\n"))
        .collect()
}

/// At most 10 bullet lines of a reply, each at most 240 characters.
fn parse_notes(reply: &str) -> Vec<String> {
    let lines: Vec<&str> = reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect();
    let bullet = |l: &str| -> Option<String> {
        let rest = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .or_else(|| l.strip_prefix("• "))
            .or_else(|| {
                let digits = l.chars().take_while(char::is_ascii_digit).count();
                (digits > 0)
                    .then(|| {
                        l[digits..]
                            .strip_prefix(". ")
                            .or_else(|| l[digits..].strip_prefix(") "))
                    })
                    .flatten()
            })?;
        Some(rest.trim().to_string())
    };
    let bullets: Vec<String> = lines.iter().filter_map(|l| bullet(l)).collect();
    let chosen: Vec<String> = if bullets.is_empty() {
        lines.iter().map(|l| l.to_string()).collect()
    } else {
        bullets
    };
    chosen
        .into_iter()
        .filter(|l| !l.is_empty())
        .take(10)
        .map(|l| format!("- {}", cut(&l, 240)))
        .collect()
}

impl Proposer for LlmProposer {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn arity(&self) -> usize {
        match self.kind {
            Kind::Mutate => 1,
            Kind::Crossover => 2,
            Kind::BestOfN => 0,
        }
    }

    fn propose(
        &mut self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String> {
        let (text, exchanges) = self.propose_one(cx, parents, rng);
        self.pending.extend(exchanges);
        text
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    /// Up to `concurrency` proposals in flight at once, one thread each (the HTTP client
    /// is shared and bounds its own connections). Results come back in job order.
    fn propose_batch(
        &mut self,
        cx: &SearchContext,
        jobs: &[engine::BatchJob<'_>],
    ) -> Vec<(Option<String>, Vec<store::Exchange>)> {
        let this: &LlmProposer = self;
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(this.settings.concurrency.max(1)) {
            let results: Vec<(Option<String>, Vec<store::Exchange>)> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|job| {
                            scope.spawn(move || {
                                let mut rng =
                                    <StdRng as rand::SeedableRng>::seed_from_u64(job.seed);
                                this.propose_one(cx, &job.parents, &mut rng)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or((None, Vec::new())))
                        .collect()
                });
            out.extend(results);
        }
        out
    }

    fn observe(&mut self, cx: &SearchContext, archive: &[CandidateRecord]) {
        let (front_idx, _) = engine::front_and_hypervolume(cx, archive);
        let refresh = {
            let mut s = lock(&self.shared);
            for c in archive {
                if let Some(h) = &c.structural_hash {
                    let known = c
                        .evaluation
                        .as_ref()
                        .map(|_| (c.id, prompt::metrics_line(cx, c)));
                    match s.known_hashes.get_mut(h) {
                        Some(slot @ None) => *slot = known,
                        Some(Some(_)) => {}
                        None => {
                            s.known_hashes.insert(h.clone(), known);
                        }
                    }
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = s.tried.entry(c.id) {
                    if let Some(chain) = prompt::chain(&c.text) {
                        slot.insert((c.parents.clone(), chain));
                    }
                }
            }
            if s.known_names.is_empty() || s.notes_key != Some(archive.len()) {
                for c in archive {
                    if let Some(n) = arch_name(&c.text) {
                        s.known_names.insert(n);
                    }
                }
                for seed in &cx.seeds {
                    if let Some(n) = arch_name(seed) {
                        s.known_names.insert(n);
                    }
                }
            }
            let mut front: Vec<CandidateRecord> =
                front_idx.iter().map(|&i| archive[i].clone()).collect();
            if let Some(o) = cx.spec.objectives.first() {
                let key = |c: &CandidateRecord| {
                    c.evaluation
                        .as_ref()
                        .map_or(f64::NAN, |e| engine::metric_value(&e.metrics, o.metric))
                };
                front.sort_by(|a, b| {
                    let (x, y) = (key(a), key(b));
                    let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                    if o.direction == crate::check::model::Direction::Maximize {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
            s.front = front;
            let due = self.settings.design_notes
                && self.kind != Kind::BestOfN
                && !s.exhausted
                && s.notes_key != Some(archive.len());
            if due {
                s.notes_key = Some(archive.len());
            }
            due
        };
        if refresh {
            self.refresh_notes(cx, archive, archive.len() as u64);
        }
    }

    fn drain_exchanges(&mut self) -> Vec<store::Exchange> {
        std::mem::take(&mut self.pending)
    }

    fn exhausted(&self) -> bool {
        lock(&self.shared).exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_groups_rounds_into_proposals() {
        let log = [
            ("llm_mutate", "ok"),
            ("llm_mutate", "invalid:uh::check::ports"),
            ("llm_mutate", "repair:ok"),
            ("llm_mutate", "no_program"),
            ("llm_mutate", "repair:invalid:uh::syntax::parse"),
            ("llm_mutate", "repair:error:http_error:500"),
            ("llm_notes", "notes"),
            ("llm_crossover", "error:timeout"),
            ("llm_crossover", "duplicate"),
            ("llm_crossover", "repair:duplicate"),
            ("best_of_n", "fixed:ok"),
            ("best_of_n", "duplicate"),
            ("best_of_n", "repair:fixed:ok"),
        ];
        let s = tally(log);
        assert_eq!(s.calls, 13);
        assert_eq!(s.proposals, 6);
        assert_eq!(
            (
                s.valid_first_try,
                s.valid_after_fixes,
                s.valid_after_repair,
                s.invalid
            ),
            (3, 1, 1, 1)
        );
        // New and valid: `ok`, `repair:ok`, `fixed:ok`, `repair:fixed:ok`; without a
        // repair round only the first and the third.
        assert_eq!((s.new_valid, s.new_first_round), (4, 2));
        assert_eq!(
            (s.duplicates, s.no_program, s.errors, s.notes),
            (3, 1, 2, 1)
        );
        // Replies: 10 (13 calls less the two failed and the notes); two did not parse.
        assert_eq!((s.replies, s.replies_parsed), (10, 8));
        assert_eq!(s.rejection_reasons.get("uh::check::ports"), Some(&1));
        assert_eq!(s.rejection_reasons.get("uh::syntax::parse"), Some(&1));
        assert!((s.first_try_rate() - 0.5).abs() < 1e-12);
        assert!((s.final_rate() - 5.0 / 6.0).abs() < 1e-12);
        assert!((s.calls_per_new() - 13.0 / 4.0).abs() < 1e-12);
        assert!(
            s.summary()
                .contains("new and valid 4 (67%, 33% without a repair round)"),
            "{}",
            s.summary()
        );
    }

    fn proposer(max_prompt_tokens: usize) -> LlmProposer {
        let backend = Arc::new(Replay::new(ReplayMode::ByRequest, []).expect("empty replay"));
        let mut setup = LlmSetup::new(backend).with_style(PromptStyle::Compact);
        setup.max_prompt_tokens = max_prompt_tokens;
        setup.max_prompt_chars = usize::MAX;
        LlmProposer {
            kind: Kind::Mutate,
            settings: Arc::new(Settings::of(&setup).expect("settings")),
            shared: Arc::default(),
            pending: Vec::new(),
        }
    }

    #[test]
    fn cut_never_exceeds_its_bound() {
        let s = "x".repeat(100);
        for max in [0, 3, 6, 7, 50, 99, 100, 200] {
            let c = cut(&s, max);
            assert!(c.chars().count() <= max, "{max}: {}", c.chars().count());
            assert_eq!(c == s, max >= 100);
        }
        assert_eq!(cut(&s, 20), format!("{}\n[...]", "x".repeat(14)));
    }

    #[test]
    fn repair_rounds_stay_under_the_bound_and_keep_the_newest_round() {
        let p = proposer(1000); // 2 000 characters at the prior of 2 per token
        assert_eq!(p.char_budget(), 2000);
        let first = vec![
            Message::system("s".repeat(700)),
            Message::user("u".repeat(800)),
        ];
        let chars = |m: &[Message]| m.iter().map(|m| m.content.chars().count()).sum::<usize>();
        let program = "arch a on m {\n    input x: real[4]\n}";
        let reply = format!("Sure! {}\n```uh\n{program}\n```", "blah ".repeat(40));
        // A round that fits is appended whole: the server can reuse its cached prefix.
        let m1 = p.repair_messages(
            &first,
            &reply,
            Some(program),
            "Rejected:\n",
            "E1 bad",
            "Fix it.",
        );
        assert_eq!(m1.len(), 4);
        assert_eq!(&m1[..2], &first[..]);
        assert_eq!(m1[2].content, reply);
        assert_eq!(m1[3].content, "Rejected:\nE1 bad\nFix it.");
        // The next one would not fit: the older round goes, the new one is kept.
        let m2 = p.repair_messages(
            &m1,
            &reply,
            Some(program),
            "Rejected:\n",
            "E2 worse",
            "Fix it.",
        );
        assert_eq!(m2.len(), 4);
        assert!(m2[3].content.contains("E2 worse") && chars(&m2) <= 2000);
        // Long diagnostics and a long reply: the reply shrinks to the refused program,
        // the diagnostics are cut, the instruction survives.
        let long = "diagnostic line\n".repeat(200);
        let m3 = p.repair_messages(
            &first,
            &"z".repeat(3000),
            Some(program),
            "Rejected:\n",
            &long,
            "Fix it.",
        );
        assert!(chars(&m3) <= 2000, "{}", chars(&m3));
        assert_eq!(m3[2].content, format!("```uh\n{program}\n```"));
        assert!(
            m3[3].content.starts_with("Rejected:\ndiagnostic line")
                && m3[3].content.ends_with("\nFix it.")
        );
        assert!(m3[3].content.contains("[...]"));
        // No program (a reply without code): the reply itself is cut.
        let m4 = p.repair_messages(
            &first,
            &"z".repeat(3000),
            None,
            "No program.",
            "",
            "Write one.",
        );
        assert!(chars(&m4) <= 2000 && m4[2].content.ends_with("[...]"));
    }

    #[test]
    fn reported_usage_sets_the_ratio_to_the_densest_seen() {
        let p = proposer(1000);
        let ex = |chars: usize, tokens: u64, estimated: bool| Exchange {
            model: "m".into(),
            request_key: String::new(),
            request: ChatRequest::new(vec![Message::user("c".repeat(chars))]),
            response_text: Some(String::new()),
            finish_reason: None,
            error: None,
            outcome: Outcome::Ok,
            usage: Usage {
                prompt_tokens: tokens,
                completion_tokens: 1,
                estimated,
            },
            cost: 0.0,
            latency_ms: 0,
            attempts: 1,
            started_unix_ms: 0,
            replayed: false,
        };
        p.calibrate(&ex(3000, 1000, true));
        assert_eq!(p.char_budget(), 2000, "estimated usage teaches nothing");
        p.calibrate(&ex(3000, 1000, false));
        assert_eq!(p.char_budget(), 3000);
        p.calibrate(&ex(4000, 1000, false));
        assert_eq!(p.char_budget(), 3000, "the densest ratio is kept");
        p.calibrate(&ex(2500, 1000, false));
        assert_eq!(p.char_budget(), 2500);
        p.calibrate(&ex(10, 0, false));
        assert_eq!(p.char_budget(), 2500);
    }

    #[test]
    fn notes_keep_at_most_ten_bullets() {
        let reply = format!(
            "Here are my notes:\n{}\n```\ncode\n```",
            (1..=14)
                .map(|i| format!("{i}. point {i}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let n = parse_notes(&reply);
        assert_eq!(n.len(), 10);
        assert_eq!(n[0], "- point 1");
        let plain = parse_notes("depth hurts\n\nwidth helps");
        assert_eq!(
            plain,
            vec!["- depth hurts".to_string(), "- width helps".to_string()]
        );
        assert!(parse_notes("").is_empty());
    }

    #[test]
    fn stored_rows_replay_as_the_same_exchanges() {
        let request = ChatRequest::new(vec![Message::user("hi")]).with_seed(3);
        let ok = Exchange {
            model: "m".into(),
            request_key: request.key("m"),
            request: request.clone(),
            response_text: Some("reply".into()),
            finish_reason: None,
            error: None,
            outcome: Outcome::Ok,
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
                estimated: false,
            },
            cost: 0.0,
            latency_ms: 12,
            attempts: 1,
            started_unix_ms: 0,
            replayed: false,
        };
        let back = to_llm_exchange(&to_store("llm_mutate", &ok, "ok".into())).expect("replayable");
        assert_eq!(back.result(), Ok("reply"));
        assert_eq!(
            (back.request_key, back.usage),
            (ok.request_key.clone(), ok.usage)
        );
        let err = LlmError::Http {
            status: 500,
            body: "boom".into(),
        };
        let failed = Exchange {
            response_text: None,
            outcome: err.outcome(),
            error: Some(err.clone()),
            ..ok
        };
        let row = to_store("llm_mutate", &failed, error_outcome(&err));
        assert_eq!(row.outcome, "error:http_error:500");
        assert_eq!(
            to_llm_exchange(&row).expect("replayable").result(),
            Err(err)
        );
    }
}
