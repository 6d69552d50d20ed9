//! Deterministic re-runs: answer requests from recorded exchanges, without network.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::backend::ChatBackend;
use super::error::LlmError;
use super::exchange::{ChatFailure, Completion, Exchange, Recorder};
use super::ledger::Ledger;
use super::types::{ChatRequest, Dialect};

/// How a [`Replay`] matches requests to recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    /// The n-th request gets the n-th recording, which must be for the same request;
    /// a different request is an error (the run diverged). For single-threaded runs.
    InOrder,
    /// A request gets the earliest unused recording of an identical request (same
    /// [`ChatRequest::key`]). For parallel runs, where arrival order varies.
    ByRequest,
}

/// Recorded exchanges served back as answers. Recorded failures replay as the same
/// errors (a recorded 429 still reports 429), so a re-run takes the same path.
#[derive(Debug)]
pub struct Replay {
    mode: ReplayMode,
    model: String,
    /// The grammar dialect of the recorded requests, so a replay builds the same ones.
    dialect: Option<Dialect>,
    ledger: Option<Arc<Ledger>>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    in_order: VecDeque<Exchange>,
    by_key: HashMap<String, VecDeque<Exchange>>,
    served: usize,
}

impl Replay {
    /// All exchanges must be for one model (use one `Replay` per model).
    pub fn new(
        mode: ReplayMode,
        exchanges: impl IntoIterator<Item = Exchange>,
    ) -> Result<Self, LlmError> {
        let exchanges: Vec<Exchange> = exchanges.into_iter().collect();
        let model = exchanges
            .first()
            .map(|e| e.model.clone())
            .unwrap_or_default();
        if let Some(other) = exchanges.iter().find(|e| e.model != model) {
            return Err(LlmError::config(format!(
                "replay got exchanges of models `{model}` and `{}`; make one Replay per model",
                other.model
            )));
        }
        let dialect = exchanges
            .iter()
            .find_map(|e| e.request.grammar.as_ref().map(|g| g.dialect));
        let mut state = State::default();
        match mode {
            ReplayMode::InOrder => state.in_order = exchanges.into(),
            ReplayMode::ByRequest => {
                for e in exchanges {
                    // Recompute rather than trust the stored key.
                    let key = e.request.key(&e.model);
                    state.by_key.entry(key).or_default().push_back(e);
                }
            }
        }
        Ok(Replay {
            mode,
            model,
            dialect,
            ledger: None,
            state: Mutex::new(state),
        })
    }

    /// Books replayed usage in `ledger`, so its totals match the recorded run.
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Recordings not served yet.
    pub fn remaining(&self) -> usize {
        let s = self.lock();
        s.in_order.len() + s.by_key.values().map(VecDeque::len).sum::<usize>()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only popped from; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next(&self, request: &ChatRequest) -> Result<Exchange, String> {
        let key = request.key(&self.model);
        let mut s = self.lock();
        let n = s.served;
        let found = match self.mode {
            ReplayMode::InOrder => match s.in_order.front() {
                None => Err(format!("request #{n} asked for more than the {n} recorded exchanges")),
                Some(e) if e.request.key(&e.model) != key => Err(format!(
                    "request #{n} differs from the recorded one (the prompt, sampling or model changed); \
                     re-record the run or replay with ReplayMode::ByRequest"
                )),
                Some(_) => s.in_order.pop_front().ok_or_else(String::new),
            },
            ReplayMode::ByRequest => s
                .by_key
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| format!("no unused recording for request key {key}")),
        };
        if found.is_ok() {
            s.served += 1;
        }
        found
    }
}

impl ChatBackend for Replay {
    fn model(&self) -> &str {
        &self.model
    }

    fn grammar_dialect(&self) -> Option<Dialect> {
        self.dialect
    }

    fn chat(&self, request: &ChatRequest) -> Result<Completion, ChatFailure> {
        let mut exchange = match self.next(request) {
            Ok(e) => e,
            Err(detail) => {
                return Err(
                    Recorder::start(&self.model, request).fail(LlmError::Replay { detail }, 0)
                )
            }
        };
        exchange.replayed = true;
        if let Some(ledger) = &self.ledger {
            ledger.book_replayed(&exchange);
        }
        match exchange.result().map(str::to_string) {
            Ok(text) => Ok(Completion { text, exchange }),
            Err(error) => Err(ChatFailure {
                error,
                exchange: Box::new(exchange),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, Outcome, Usage};

    fn recorded(prompt: &str, answer: Result<&str, LlmError>) -> Exchange {
        let request = ChatRequest::new(vec![Message::user(prompt)]).with_seed(1);
        let rec = Recorder::start("m", &request);
        match answer {
            Ok(text) => {
                let usage = Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    estimated: false,
                };
                rec.ok(text.into(), Some("stop".into()), usage, 0.0, 1)
                    .exchange
            }
            Err(e) => *rec.fail(e, 3).exchange,
        }
    }

    fn ask(prompt: &str) -> ChatRequest {
        ChatRequest::new(vec![Message::user(prompt)]).with_seed(1)
    }

    #[test]
    fn in_order_serves_in_sequence_and_detects_divergence() {
        let http = LlmError::Http {
            status: 429,
            body: "slow down".into(),
        };
        let r = Replay::new(
            ReplayMode::InOrder,
            vec![recorded("a", Ok("A")), recorded("b", Err(http.clone()))],
        )
        .unwrap();
        assert_eq!(r.chat(&ask("a")).unwrap().text, "A");
        let err = r.chat(&ask("zzz")).unwrap_err();
        assert!(matches!(err.error, LlmError::Replay { .. }));
        assert_eq!(err.exchange.outcome, Outcome::ReplayMissing);
        assert_eq!(r.remaining(), 1, "a mismatch consumes nothing");
        let err = r.chat(&ask("b")).unwrap_err();
        assert_eq!(err.error, http);
        assert!(err.exchange.replayed);
        assert_eq!(err.exchange.attempts, 3);
        assert!(r
            .chat(&ask("b"))
            .unwrap_err()
            .to_string()
            .contains("more than the 2"));
    }

    #[test]
    fn by_request_matches_keys_and_keeps_order_among_duplicates() {
        let r = Replay::new(
            ReplayMode::ByRequest,
            vec![
                recorded("a", Ok("A1")),
                recorded("b", Ok("B")),
                recorded("a", Ok("A2")),
            ],
        )
        .unwrap();
        assert_eq!(r.chat(&ask("b")).unwrap().text, "B");
        assert_eq!(r.chat(&ask("a")).unwrap().text, "A1");
        assert_eq!(r.chat(&ask("a")).unwrap().text, "A2");
        assert!(r.chat(&ask("a")).is_err());
        // Another seed is another request.
        let r = Replay::new(ReplayMode::ByRequest, vec![recorded("a", Ok("A"))]).unwrap();
        assert!(r.chat(&ask("a").with_seed(2)).is_err());
    }

    #[test]
    fn replay_books_the_ledger_like_the_live_run() {
        let ledger = Arc::new(Ledger::unlimited());
        let timeout = LlmError::Timeout { timeout_ms: 5 };
        let r = Replay::new(
            ReplayMode::InOrder,
            vec![recorded("a", Ok("A")), recorded("b", Err(timeout))],
        )
        .unwrap()
        .with_ledger(Arc::clone(&ledger));
        r.chat(&ask("a")).unwrap();
        r.chat(&ask("b")).unwrap_err();
        let t = ledger.totals();
        assert_eq!(
            (
                t.calls,
                t.failed_calls,
                t.prompt_tokens,
                t.completion_tokens
            ),
            (2, 1, 10, 5)
        );
    }

    #[test]
    fn exchanges_survive_json_and_mixed_models_are_refused() {
        let e = recorded("a", Err(LlmError::TooLarge { limit: 9 }));
        let back: Exchange = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let mut other = recorded("a", Ok("A"));
        other.model = "n".into();
        assert!(Replay::new(ReplayMode::InOrder, vec![recorded("a", Ok("A")), other]).is_err());
    }
}
