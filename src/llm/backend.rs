//! The one interface the search talks to: a live server or a recorded run.

use super::exchange::{ChatFailure, Completion};
use super::types::{ChatRequest, Dialect};

/// Something that answers chat requests synchronously and records each exchange.
/// Implemented by [`LlmClient`](super::LlmClient) (HTTP) and [`Replay`](super::Replay)
/// (recorded exchanges, no network). Object-safe: hold a `Box<dyn ChatBackend>` and pick
/// the implementation at run time.
pub trait ChatBackend: Send + Sync {
    /// The model name recorded in exchanges.
    fn model(&self) -> &str;

    /// Answers one request. Both arms carry the [`Exchange`](super::Exchange) to store.
    fn chat(&self, request: &ChatRequest) -> Result<Completion, ChatFailure>;

    /// The decoding-grammar dialect this backend's requests should carry, if any.
    fn grammar_dialect(&self) -> Option<Dialect> {
        None
    }

    /// Proposals worth keeping in flight at once when nobody says otherwise.
    fn default_concurrency(&self) -> usize {
        1
    }
}
