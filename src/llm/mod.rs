//! The LLM client of the evolutionary search: LLMs act as mutation and crossover
//! operators that write `.uh` text (UH-NAS, King and Leleu 2026).
//!
//! This module is the edge that talks to the network; nothing else in uhc does.
//! - [`LlmClient`] (blocking, for the rayon search) and [`AsyncLlmClient`]: an
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
pub use config::{ApiKey, LlmConfig, LlmOverrides, RetryPolicy, ENV_API_KEY, ENV_MODEL, ENV_URL};
pub use error::LlmError;
pub use exchange::{ChatFailure, Completion, Exchange, InvalidReason, Outcome};
pub use http::{AsyncLlmClient, LlmClient};
pub use ledger::{Budget, Ledger, LedgerTotals, Price};
pub use replay::{Replay, ReplayMode};
pub use types::{ChatRequest, Message, Role, Usage};
