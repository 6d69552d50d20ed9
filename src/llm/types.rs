//! Requests, messages and token usage.

use serde::{Deserialize, Serialize};

pub use crate::check::grammar::cfg::Dialect;

/// Who speaks in a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message, as in the OpenAI chat-completions API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What the search asks of the model. The sampling fields are sent when set; servers
/// may ignore `seed` (hosted APIs treat it as best effort), so replay, not the seed, is
/// what makes a run reproducible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A decoding grammar the reply must match (servers that refuse it get the request
    /// again without it). Absent from the JSON when unset, so keys of requests recorded
    /// before grammars existed are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<RequestGrammar>,
}

/// A grammar as sent: its dialect and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGrammar {
    pub dialect: Dialect,
    pub text: String,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            temperature: None,
            max_tokens: None,
            seed: None,
            grammar: None,
        }
    }
    pub fn with_grammar(mut self, dialect: Dialect, text: impl Into<String>) -> Self {
        self.grammar = Some(RequestGrammar {
            dialect,
            text: text.into(),
        });
        self
    }
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A stable key for this request sent to `model`: 16 hex digits of FNV-1a (64 bit)
    /// over the model name and the request's canonical JSON. Stable across runs and Rust
    /// versions (unlike `DefaultHasher`), so keyed replay finds recorded answers.
    pub fn key(&self, model: &str) -> String {
        // Serialising plain structs of strings and numbers cannot fail; fall back to the
        // Debug text rather than panic if that ever changes.
        let json = serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"));
        let mut hash = Fnv1a::new();
        hash.write(model.as_bytes());
        hash.write(&[0]);
        hash.write(json.as_bytes());
        format!("{:016x}", hash.0)
    }

    /// Characters of all message contents, for token estimates.
    pub(crate) fn content_chars(&self) -> usize {
        self.messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum()
    }
}

/// FNV-1a 64 (Fowler, Noll, Vo; offset basis and prime from the reference definition).
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Tokens of one exchange. `estimated` is true when the server did not report usage (or
/// reported it only in part) and [`Usage::estimate_tokens`] filled the gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub estimated: bool,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Tokens in `chars` characters of text, rounded up: about four characters of
    /// English per token (OpenAI's rule of thumb in "What are tokens and how to count
    /// them"). Code tokenises denser, so this undercounts somewhat; it only backs the
    /// budget when the server omits `usage`.
    pub fn estimate_tokens(chars: usize) -> u64 {
        (chars as u64).div_ceil(4)
    }
}
