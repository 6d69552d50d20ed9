//! The LLM client: how uhc talks to a language model. The search's LLM operators
//! (`llm_mutate`, `llm_crossover`, `best_of_n`, their prompts and repair loop) live above
//! both this client and the search, in [`crate::llm_ops`]; this module knows nothing of
//! the search (a tidy test says so).
//!
//! This module is the edge that talks to the network; nothing else in uhc does.
//! - [`LlmClient`] (blocking, for the search's worker threads) and [`AsyncLlmClient`]: an
//!   OpenAI-compatible chat-completions client with a concurrency limit, per-attempt
//!   timeout, retries with backoff and jitter (honouring `Retry-After`), and a cap on
//!   the response size enforced while streaming.
//! - [`Ledger`]: tokens and cost with hard caps shared by all clients of a run; a call
//!   past a cap fails with [`LlmError::BudgetExhausted`] so the search can stop cleanly.
//! - [`Exchange`]: the serialisable record of every call; [`Replay`] serves recorded
//!   exchanges for deterministic re-runs. Both sides implement [`ChatBackend`].
//! - [`extract`]: pull the `.uh` program out of a reply (pure).
//!
//! Configure with [`LlmConfig::resolve`] (flags, then `UHC_LLM_*`, then `OPENAI_*`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use uhc::llm::{extract, Budget, ChatRequest, Ledger, LlmClient, LlmConfig, LlmOverrides, Message};
//!
//! # fn main() -> Result<(), uhc::llm::LlmError> {
//! let flags = LlmOverrides { model: Some("smollm2".into()), ..LlmOverrides::default() };
//! let config = LlmConfig::from_env(&flags)?;
//! let ledger = Arc::new(Ledger::new(Budget { max_tokens_total: Some(2_000_000), max_cost: None })?);
//! let client = LlmClient::new(config, ledger)?;
//! let request = ChatRequest::new(vec![Message::user("Mutate this design: ...")]).with_seed(1);
//! match client.chat(&request) {
//!     Ok(done) => {
//!         let program = extract::extract_program(&done.text);
//!         // store done.exchange; compile `program`
//!         # let _ = program;
//!     }
//!     Err(failed) if failed.error.is_budget_exhausted() => { /* save state, stop */ }
//!     Err(failed) => { /* store *failed.exchange; count a failed proposal */ }
//! }
//! # Ok(())
//! # }
//! ```

mod backend;
mod config;
mod error;
mod exchange;
pub mod extract;
mod http;
mod ledger;
mod replay;
mod types;

pub use backend::ChatBackend;
pub use config::{
    ApiKey, GrammarMode, LlmConfig, LlmOverrides, PromptConfig, PromptStyle, RetryPolicy,
    TokenParam, ENV_API_KEY, ENV_MAX_PROMPT_TOKENS, ENV_MODEL, ENV_PROMPT, ENV_TOKEN_PARAM,
    ENV_URL,
};
pub use error::LlmError;
pub use exchange::{ChatFailure, Completion, Exchange, InvalidReason, Outcome};
pub use http::{AsyncLlmClient, LlmClient};
pub use ledger::{Budget, Ledger, LedgerTotals, Price};
pub use replay::{Replay, ReplayMode};
pub use types::{ChatRequest, Dialect, Message, RequestGrammar, Role, Usage};
