//! The one error type of the LLM client. Every variant maps to one [`Outcome`], so an
//! error can be stored in an [`Exchange`](super::Exchange) and replayed exactly.

use serde::{Deserialize, Serialize};

use super::exchange::{InvalidReason, Outcome};

/// Why a chat call failed. Serialisable so a recorded failure replays as the same error.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LlmError {
    /// A cap of the shared [`Ledger`](super::Ledger) was reached before this call; no
    /// request was sent. The search should stop here and save its state.
    #[error("LLM budget exhausted: {detail}; raise the cap to continue")]
    BudgetExhausted { detail: String },
    /// The server answered with a non-success status (429 and 5xx are retried first).
    #[error("the LLM server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// No complete answer within the per-request timeout (retried).
    #[error("the LLM server did not answer within {timeout_ms} ms; raise the timeout or check the server")]
    Timeout { timeout_ms: u64 },
    /// Connecting failed or the connection broke mid-answer (retried).
    #[error("could not talk to the LLM server: {detail}; check the URL and that the server is up")]
    Connection { detail: String },
    /// The body is not an OpenAI-compatible chat completion (not retried).
    #[error("the LLM server sent an invalid response ({reason}): {detail}")]
    InvalidResponse {
        reason: InvalidReason,
        detail: String,
    },
    /// The body grew past the configured limit; reading stopped there (not retried).
    #[error(
        "the LLM response exceeds {limit} bytes; raise max_response_bytes or lower max_tokens"
    )]
    TooLarge { limit: usize },
    /// The client cannot be used as configured (bad URL, missing model, bad key, ...).
    #[error("LLM configuration: {detail}")]
    Config { detail: String },
    /// A replay source has no recorded exchange for this request.
    #[error("LLM replay: {detail}")]
    Replay { detail: String },
}

impl LlmError {
    /// The outcome class stored next to an exchange.
    pub fn outcome(&self) -> Outcome {
        match self {
            LlmError::BudgetExhausted { .. } => Outcome::BudgetExhausted,
            LlmError::Http { status, .. } => Outcome::HttpError { status: *status },
            LlmError::Timeout { .. } => Outcome::Timeout,
            LlmError::Connection { .. } => Outcome::Connection,
            LlmError::InvalidResponse { reason, .. } => {
                Outcome::InvalidResponse { reason: *reason }
            }
            LlmError::TooLarge { .. } => Outcome::TooLarge,
            LlmError::Config { .. } => Outcome::Config,
            LlmError::Replay { .. } => Outcome::ReplayMissing,
        }
    }

    /// Transient failures worth another attempt: timeouts, broken connections, 429, 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Timeout { .. } | LlmError::Connection { .. } => true,
            LlmError::Http { status, .. } => *status == 429 || (500..=599).contains(status),
            _ => false,
        }
    }

    /// True when a budget cap stopped the call: the caller should stop cleanly.
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self, LlmError::BudgetExhausted { .. })
    }

    pub(crate) fn config(detail: impl Into<String>) -> Self {
        LlmError::Config {
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Self {
        LlmError::InvalidResponse {
            reason,
            detail: detail.into(),
        }
    }
}
