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

use crate::check::grammar::ArchGrammar;
use crate::check::model::Operator;
use crate::diag::FileId;
use crate::llm::{
    extract, Budget, ChatBackend, ChatRequest, Dialect, Exchange, Ledger, LlmClient, LlmConfig,
    LlmError, LlmOverrides, Message, Outcome, PromptConfig, Replay, ReplayMode, Usage,
};
use crate::search::engine::{self, Proposer, SearchContext};
use crate::search::store::{self, CandidateRecord, Store, StoreOptions};
use crate::syntax::{self, Item};
use prompt::{PromptStyle, Section};

/// Operator names this module provides.
pub const OPERATORS: [&str; 3] = [
    Operator::LlmMutate.name(),
    Operator::LlmCrossover.name(),
    Operator::BestOfN.name(),
];
/// The operator name of design-notes exchanges in the store.
pub const NOTES_OPERATOR: &str = "llm_notes";

mod notes;
mod outcome;
pub mod prompt;
mod proposer;
mod stats;

pub use outcome::{CallOutcome, Reply, UnknownOutcome};
use proposer::{cut, error_kind, LlmProposer};
pub use proposer::{default_temperature, COMPACT_MAX_TOKENS};
pub use stats::{tally, LlmStats, StatsHandle};

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
    // A row whose outcome is not ours is replayed as a reply.
    let failed = e.outcome.parse::<CallOutcome>().is_ok_and(|o| o.failed());
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

#[cfg(test)]
mod tests;
