//! The record of one chat call, kept for the run store and for replay.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::LlmError;
use super::types::{ChatRequest, Usage};

/// How a call ended, as one column-friendly value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    HttpError { status: u16 },
    Timeout,
    Connection,
    InvalidResponse { reason: InvalidReason },
    TooLarge,
    BudgetExhausted,
    Config,
    ReplayMissing,
}

impl Outcome {
    /// A short stable name (`ok`, `http_error`, `timeout`, ...), e.g. for an SQL column.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpError { .. } => "http_error",
            Outcome::Timeout => "timeout",
            Outcome::Connection => "connection",
            Outcome::InvalidResponse { .. } => "invalid_response",
            Outcome::TooLarge => "too_large",
            Outcome::BudgetExhausted => "budget_exhausted",
            Outcome::Config => "config",
            Outcome::ReplayMissing => "replay_missing",
        }
    }
}

/// Why a 2xx body is not a usable chat completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    /// Not JSON, truncated JSON, or JSON of the wrong shape.
    MalformedJson,
    /// `choices` absent, null or empty (some servers put an `error` object here instead).
    NoChoices,
    /// The first choice has no `message.content` text.
    MissingContent,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidReason::MalformedJson => "malformed JSON",
            InvalidReason::NoChoices => "no choices",
            InvalidReason::MissingContent => "missing content",
        })
    }
}

/// One chat call: what was asked, what came back, what it cost. Every call produces
/// one, successful or not. It never holds the API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// The model asked (the configured name, not whatever the server echoes).
    pub model: String,
    pub request: ChatRequest,
    /// [`ChatRequest::key`] of `request` for `model`: the lookup key of keyed replay.
    pub request_key: String,
    /// The reply text on success.
    pub response_text: Option<String>,
    /// The server's `finish_reason` (`"length"` means the reply was cut by max_tokens).
    pub finish_reason: Option<String>,
    /// The failure, when there was one (the last attempt's, after retries).
    pub error: Option<LlmError>,
    pub outcome: Outcome,
    /// Zero for failed calls: no usage is reported for them.
    pub usage: Usage,
    /// Cost charged to the ledger, in the unit of the configured prices.
    pub cost: f64,
    /// Wall-clock time of the whole call, retries and backoff included.
    pub latency_ms: u64,
    /// HTTP attempts made (0 when the call was refused before sending).
    pub attempts: u32,
    /// Start time, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// True when a [`Replay`](super::Replay) answered instead of a server.
    #[serde(default)]
    pub replayed: bool,
}

impl Exchange {
    /// The reply text, or the recorded error.
    pub fn result(&self) -> Result<&str, LlmError> {
        match (&self.error, &self.response_text) {
            (Some(e), _) => Err(e.clone()),
            (None, Some(text)) => Ok(text),
            (None, None) => Err(LlmError::Replay {
                detail: "recorded exchange has neither a response nor an error".into(),
            }),
        }
    }
}

/// A successful call: the text and its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub exchange: Exchange,
}

/// A failed call: the error and its record (boxed to keep `Result` small).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct ChatFailure {
    pub error: LlmError,
    pub exchange: Box<Exchange>,
}

/// Builds the [`Exchange`] of one call from its start to its end.
pub(crate) struct Recorder {
    model: String,
    request: ChatRequest,
    request_key: String,
    started: std::time::Instant,
    started_unix_ms: u64,
}

impl Recorder {
    pub(crate) fn start(model: &str, request: &ChatRequest) -> Self {
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Recorder {
            model: model.to_string(),
            request: request.clone(),
            request_key: request.key(model),
            started: std::time::Instant::now(),
            started_unix_ms,
        }
    }

    fn exchange(self, attempts: u32) -> Exchange {
        Exchange {
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            model: self.model,
            request: self.request,
            request_key: self.request_key,
            response_text: None,
            finish_reason: None,
            error: None,
            outcome: Outcome::Ok,
            usage: Usage::default(),
            cost: 0.0,
            attempts,
            started_unix_ms: self.started_unix_ms,
            replayed: false,
        }
    }

    pub(crate) fn ok(
        self,
        text: String,
        finish_reason: Option<String>,
        usage: Usage,
        cost: f64,
        attempts: u32,
    ) -> Completion {
        let exchange = Exchange {
            response_text: Some(text.clone()),
            finish_reason,
            usage,
            cost,
            ..self.exchange(attempts)
        };
        Completion { text, exchange }
    }

    pub(crate) fn fail(self, error: LlmError, attempts: u32) -> ChatFailure {
        let exchange = Exchange {
            outcome: error.outcome(),
            error: Some(error.clone()),
            ..self.exchange(attempts)
        };
        ChatFailure {
            error,
            exchange: Box::new(exchange),
        }
    }
}
