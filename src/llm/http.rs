//! The OpenAI-compatible HTTP client: async core plus a blocking facade.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::backend::ChatBackend;
use super::config::{GrammarMode, LlmConfig, TokenParam};
use super::error::LlmError;
use super::exchange::{ChatFailure, Completion, InvalidReason, Recorder};
use super::ledger::Ledger;
use super::types::{ChatRequest, Dialect, Message, Usage};

/// Error bodies are read up to this size for their message; the rest is dropped.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Characters of a server's text kept in an error message.
const EXCERPT_CHARS: usize = 500;
/// More permits than any server takes; also far below tokio's `Semaphore::MAX_PERMITS`.
const MAX_CONCURRENCY: usize = 1024;

/// The async client. Cheap to clone (shared state behind an `Arc`); all clones share
/// one connection pool, one concurrency limit and the ledger.
#[derive(Clone)]
pub struct AsyncLlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    config: LlmConfig,
    ledger: Arc<Ledger>,
    permits: Semaphore,
    /// The [`TokenField`] requests use now; with [`TokenParam::Auto`] it changes once if
    /// the server rejects the first choice.
    token_field: AtomicU8,
    /// Set once the server refused the grammar field: requests go without it from then on.
    grammar_refused: AtomicBool,
}

/// The request field(s) that carry [`ChatRequest::max_tokens`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenField {
    MaxTokens = 0,
    MaxCompletionTokens = 1,
    Both = 2,
}

impl TokenField {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => TokenField::MaxCompletionTokens,
            2 => TokenField::Both,
            _ => TokenField::MaxTokens,
        }
    }

    /// The first choice for a config: [`TokenParam::Auto`] picks `max_completion_tokens`
    /// for OpenAI's own hosts (every OpenAI chat model takes it; reasoning models take
    /// nothing else) and `max_tokens` elsewhere (every OpenAI-compatible server takes it).
    fn initial(param: TokenParam, endpoint: &reqwest::Url) -> Self {
        match param {
            TokenParam::MaxTokens => TokenField::MaxTokens,
            TokenParam::MaxCompletionTokens => TokenField::MaxCompletionTokens,
            TokenParam::Both => TokenField::Both,
            TokenParam::Auto => {
                let host = endpoint.host_str().unwrap_or("").to_ascii_lowercase();
                if host == "api.openai.com" || host.ends_with(".openai.azure.com") {
                    TokenField::MaxCompletionTokens
                } else {
                    TokenField::MaxTokens
                }
            }
        }
    }

    /// The other single field, if `error` is a server refusing this one: HTTP 400 or 422
    /// whose message names this field first (before any suggested replacement) and has a
    /// refusal word. OpenAI: "Unsupported
    /// parameter: 'max_tokens' is not supported with this model. Use
    /// 'max_completion_tokens' instead."; older Azure API versions: "Unrecognized request
    /// argument supplied: max_completion_tokens"; strict pydantic servers: 422
    /// `extra_forbidden` ("Extra inputs are not permitted").
    fn refused_by(self, error: &LlmError) -> Option<TokenField> {
        let LlmError::Http { status, body } = error else {
            return None;
        };
        let (sent, other) = match self {
            TokenField::MaxTokens => ("max_tokens", TokenField::MaxCompletionTokens),
            TokenField::MaxCompletionTokens => ("max_completion_tokens", TokenField::MaxTokens),
            TokenField::Both => return None,
        };
        let text = body.to_ascii_lowercase();
        let first_named = ["max_tokens", "max_completion_tokens"]
            .into_iter()
            .filter_map(|f| text.find(f).map(|at| (at, f)))
            .min()
            .map(|(_, f)| f);
        let refusal = [
            "unsupported",
            "not supported",
            "unrecognized",
            "unknown",
            "not permitted",
            "extra",
        ];
        (matches!(status, 400 | 422)
            && first_named == Some(sent)
            && refusal.iter().any(|w| text.contains(w)))
        .then_some(other)
    }
}

/// Whether `error` is a server refusing the grammar field (or the grammar in it): HTTP
/// 400 or 422 whose message names `grammar` (llama.cpp: "Failed to parse grammar";
/// strict servers: "grammar: Extra inputs are not permitted"; vLLM: `guided_grammar` or
/// `structured_outputs`).
fn refuses_grammar(error: &LlmError) -> bool {
    let LlmError::Http { status, body } = error else {
        return false;
    };
    let text = body.to_ascii_lowercase();
    matches!(status, 400 | 422) && (text.contains("grammar") || text.contains("structured_outputs"))
}

impl fmt::Debug for AsyncLlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLlmClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// reqwest is built with `rustls-no-provider` so that TLS uses `ring` (no cmake, no
/// aws-lc); it then takes the process-wide default provider, installed here once.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed a provider first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The message of an error and of all its sources, e.g. "error sending request: ...:
/// connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl AsyncLlmClient {
    /// Checks the config (and that a cost cap has a price for the model) and builds the
    /// connection pool. Requests to loopback addresses bypass any `HTTP_PROXY`.
    pub fn new(config: LlmConfig, ledger: Arc<Ledger>) -> Result<Self, LlmError> {
        config.validate()?;
        if config.max_concurrency > MAX_CONCURRENCY {
            return Err(LlmError::config(format!(
                "max_concurrency must be at most {MAX_CONCURRENCY}"
            )));
        }
        ledger.check_model(&config.model)?;
        let endpoint = config.endpoint()?;
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("uhc/", env!("CARGO_PKG_VERSION")))
            // A redirected POST would become a GET; report it instead of following.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.max_concurrency);
        if is_loopback(&endpoint) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            LlmError::config(format!("cannot build the HTTP client: {}", chain(&e)))
        })?;
        let token_field = TokenField::initial(config.token_param, &endpoint) as u8;
        Ok(AsyncLlmClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                permits: Semaphore::new(config.max_concurrency),
                config,
                ledger,
                token_field: AtomicU8::new(token_field),
                grammar_refused: AtomicBool::new(false),
            }),
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.inner.config
    }

    /// The grammar dialect requests should carry now: by [`GrammarMode`] (under `auto`,
    /// GBNF for loopback servers only), and none once the server refused the field.
    pub fn grammar_dialect(&self) -> Option<Dialect> {
        if self.grammar_refused() {
            return None;
        }
        match self.inner.config.grammar {
            GrammarMode::Auto => is_loopback(&self.inner.endpoint).then_some(Dialect::Gbnf),
            GrammarMode::Gbnf => Some(Dialect::Gbnf),
            GrammarMode::Lark => Some(Dialect::Lark),
            GrammarMode::Off => None,
        }
    }

    /// True once the server refused the grammar field.
    pub fn grammar_refused(&self) -> bool {
        self.inner.grammar_refused.load(Ordering::Relaxed)
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.inner.ledger
    }

    /// One chat completion, with retries. Always yields an [`Exchange`](super::Exchange):
    /// in the `Completion` or in the `ChatFailure`.
    pub async fn chat(&self, request: &ChatRequest) -> Result<Completion, ChatFailure> {
        let model = &self.inner.config.model;
        let rec = Recorder::start(model, request);
        let field = TokenField::from_u8(self.inner.token_field.load(Ordering::Relaxed));
        let stripped;
        let request = if request.grammar.is_some() && self.grammar_refused() {
            stripped = ChatRequest {
                grammar: None,
                ..request.clone()
            };
            &stripped
        } else {
            request
        };
        let body = match wire_body(model, request, field) {
            Ok(b) => b,
            Err(e) => return Err(rec.fail(e, 0)),
        };
        if let Err(e) = self.inner.ledger.admit() {
            return Err(rec.fail(e, 0));
        }
        let (result, attempts) = self.with_retries(request, field, body).await;
        match result {
            Ok(parsed) => {
                let usage = parsed.usage(request);
                let cost = self.inner.ledger.charge(model, &usage);
                Ok(rec.ok(parsed.text, parsed.finish_reason, usage, cost, attempts))
            }
            Err(e) => {
                self.inner.ledger.fail();
                Err(rec.fail(e, attempts))
            }
        }
    }

    /// Sends `body` until it succeeds, fails for good, or the attempts run out. Under
    /// [`TokenParam::Auto`], a refusal of the token field is answered once by resending
    /// at once with the other field (not counted against the retry policy), and later
    /// calls of this client use that field.
    async fn with_retries(
        &self,
        request: &ChatRequest,
        mut field: TokenField,
        mut body: Vec<u8>,
    ) -> (Result<Parsed, LlmError>, u32) {
        let policy = self.inner.config.retry;
        let mut attempts = 0;
        let mut switched = false;
        let mut grammar_dropped = false;
        loop {
            attempts += 1;
            let (error, retry_after) = match self.attempt_with_timeout(&body).await {
                Ok(parsed) => return (Ok(parsed), attempts),
                Err(failure) => failure,
            };
            let other = (!switched
                && self.inner.config.token_param == TokenParam::Auto
                && request.max_tokens.is_some())
            .then(|| field.refused_by(&error))
            .flatten();
            if let Some(other) = other {
                switched = true;
                field = other;
                self.inner.token_field.store(other as u8, Ordering::Relaxed);
                let resend = ChatRequest {
                    grammar: request.grammar.clone().filter(|_| !grammar_dropped),
                    ..request.clone()
                };
                match wire_body(&self.inner.config.model, &resend, field) {
                    Ok(b) => body = b,
                    Err(e) => return (Err(e), attempts),
                }
                continue;
            }
            if request.grammar.is_some() && !grammar_dropped && refuses_grammar(&error) {
                // Answered at once without the grammar; later calls leave it out too.
                grammar_dropped = true;
                self.inner.grammar_refused.store(true, Ordering::Relaxed);
                let plain = ChatRequest {
                    grammar: None,
                    ..request.clone()
                };
                match wire_body(&self.inner.config.model, &plain, field) {
                    Ok(b) => body = b,
                    Err(e) => return (Err(e), attempts),
                }
                continue;
            }
            if !error.is_retryable()
                || attempts - u32::from(switched) - u32::from(grammar_dropped)
                    >= policy.max_attempts
            {
                return (Err(error), attempts);
            }
            let delay = policy.delay(attempts - 1, retry_after, rand::random::<f64>());
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP attempt under a concurrency permit; the timeout covers sending and the
    /// whole body, not the wait for a permit.
    async fn attempt_with_timeout(
        &self,
        body: &[u8],
    ) -> Result<Parsed, (LlmError, Option<Duration>)> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| (LlmError::config("the client's semaphore was closed"), None))?;
        let timeout = self.inner.config.timeout;
        match tokio::time::timeout(timeout, self.attempt(body)).await {
            Ok(result) => result,
            Err(_) => Err((
                LlmError::Timeout {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                },
                None,
            )),
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<Parsed, (LlmError, Option<Duration>)> {
        let cfg = &self.inner.config;
        let mut req = self
            .inner
            .http
            .post(self.inner.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(key) = &cfg.api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    (
                        LlmError::config("the API key cannot be sent as a header"),
                        None,
                    )
                })?;
            value.set_sensitive(true);
            req = req.header(AUTHORIZATION, value);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| (self.transport_error(&e), None))?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let (bytes, _cut) = read_body(&mut resp, ERROR_BODY_LIMIT, false)
                .await
                .unwrap_or_default();
            let error = LlmError::Http {
                status: status.as_u16(),
                body: self.scrub(&error_message(&bytes)),
            };
            return Err((error, retry_after));
        }
        let (bytes, _) = read_body(&mut resp, cfg.max_response_bytes, true)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => (
                    LlmError::TooLarge {
                        limit: cfg.max_response_bytes,
                    },
                    None,
                ),
                BodyError::Transport(e) => (self.transport_error(&e), None),
            })?;
        parse_completion(&bytes).map_err(|e| (self.scrub_error(e), None))
    }

    fn transport_error(&self, e: &reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                timeout_ms: u64::try_from(self.inner.config.timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }
        } else if e.is_builder() {
            LlmError::config(format!("cannot build the request: {}", chain(e)))
        } else {
            LlmError::Connection { detail: chain(e) }
        }
    }

    /// Servers sometimes echo the key in errors ("Incorrect API key provided: sk-...").
    fn scrub(&self, text: &str) -> String {
        match &self.inner.config.api_key {
            Some(key) => text.replace(key.expose(), "***"),
            None => text.to_string(),
        }
    }

    fn scrub_error(&self, e: LlmError) -> LlmError {
        match e {
            LlmError::InvalidResponse { reason, detail } => LlmError::InvalidResponse {
                reason,
                detail: self.scrub(&detail),
            },
            other => other,
        }
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body chunk by chunk, never holding more than `limit` bytes. With `strict`,
/// a longer body is an error; otherwise it is cut at `limit` (`true` in the result).
async fn read_body(
    resp: &mut reqwest::Response,
    limit: usize,
    strict: bool,
) -> Result<(Vec<u8>, bool), BodyError> {
    let declared = resp.content_length();
    if strict && declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(declared.map_or(16 * 1024, |n| n as usize).min(limit));
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        let room = limit - buf.len();
        if chunk.len() > room {
            if strict {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// `Retry-After` in its seconds form (fractions accepted), or OpenAI's `retry-after-ms`.
/// The HTTP-date form is ignored: the backoff applies instead.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let v = headers.get(name)?.to_str().ok()?.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
    };
    let secs = number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number(RETRY_AFTER.as_str()))?;
    Duration::try_from_secs_f64(secs).ok()
}

fn excerpt(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

/// The `error.message` of an OpenAI-style error body, else the body's start.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message")
                .and_then(|m| m.as_str())
                .or_else(|| e.as_str())
                .map(str::to_string)
        });
    let text = message.unwrap_or_else(|| text.trim().to_string());
    if text.is_empty() {
        "(empty body)".into()
    } else {
        excerpt(&text, EXCERPT_CHARS)
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    /// GBNF for llama.cpp's server and llama-cpp-python's.
    #[serde(skip_serializing_if = "Option::is_none")]
    grammar: Option<&'a str>,
    /// Lark for vLLM: `guided_grammar` up to 0.10, `structured_outputs.grammar` after.
    #[serde(skip_serializing_if = "Option::is_none")]
    guided_grammar: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    structured_outputs: Option<serde_json::Value>,
    stream: bool,
}

fn wire_body(model: &str, request: &ChatRequest, field: TokenField) -> Result<Vec<u8>, LlmError> {
    if request.messages.is_empty() {
        return Err(LlmError::config(
            "a chat request needs at least one message",
        ));
    }
    if let Some(t) = request.temperature {
        if !t.is_finite() || t < 0.0 {
            return Err(LlmError::config(format!(
                "temperature must be a non-negative number, got {t}"
            )));
        }
    }
    serde_json::to_vec(&WireRequest {
        model,
        messages: &request.messages,
        temperature: request.temperature,
        max_tokens: request
            .max_tokens
            .filter(|_| field != TokenField::MaxCompletionTokens),
        max_completion_tokens: request
            .max_tokens
            .filter(|_| field != TokenField::MaxTokens),
        seed: request.seed,
        grammar: request
            .grammar
            .as_ref()
            .filter(|g| g.dialect == Dialect::Gbnf)
            .map(|g| g.text.as_str()),
        guided_grammar: request
            .grammar
            .as_ref()
            .filter(|g| g.dialect == Dialect::Lark)
            .map(|g| g.text.as_str()),
        structured_outputs: request
            .grammar
            .as_ref()
            .filter(|g| g.dialect == Dialect::Lark)
            .map(|g| serde_json::json!({ "grammar": g.text })),
        stream: false,
    })
    .map_err(|e| LlmError::config(format!("cannot encode the request: {e}")))
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<serde_json::Value>,
}

/// A usable completion, before accounting.
#[derive(Debug, PartialEq)]
struct Parsed {
    text: String,
    finish_reason: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Parsed {
    /// Reported usage, with estimates for whatever the server left out.
    fn usage(&self, request: &ChatRequest) -> Usage {
        let prompt = self
            .prompt_tokens
            .unwrap_or_else(|| Usage::estimate_tokens(request.content_chars()));
        let completion = self
            .completion_tokens
            .unwrap_or_else(|| Usage::estimate_tokens(self.text.chars().count()));
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            estimated: self.prompt_tokens.is_none() || self.completion_tokens.is_none(),
        }
    }
}

fn parse_completion(body: &[u8]) -> Result<Parsed, LlmError> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|e| {
        LlmError::invalid(
            InvalidReason::MalformedJson,
            format!(
                "{e}; the body starts with {:?}",
                excerpt(&String::from_utf8_lossy(body), 120)
            ),
        )
    })?;
    let Some(first) = wire.choices.unwrap_or_default().into_iter().next() else {
        let detail = match wire.error {
            Some(e) => format!(
                "`choices` is empty; the server says {}",
                excerpt(&e.to_string(), EXCERPT_CHARS)
            ),
            None => "`choices` is missing or empty".to_string(),
        };
        return Err(LlmError::invalid(InvalidReason::NoChoices, detail));
    };
    let text = match first.message.and_then(|m| m.content) {
        Some(serde_json::Value::String(s)) => s,
        // Content as a list of parts: keep the text parts, in order.
        Some(serde_json::Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect();
            if texts.is_empty() {
                return Err(LlmError::invalid(
                    InvalidReason::MissingContent,
                    "`message.content` has no text parts",
                ));
            }
            texts.concat()
        }
        _ => {
            return Err(LlmError::invalid(
                InvalidReason::MissingContent,
                "the first choice has no `message.content` text",
            ))
        }
    };
    let count = |field: &str| {
        wire.usage
            .as_ref()
            .and_then(|u| u.get(field))
            .and_then(|v| v.as_u64())
    };
    Ok(Parsed {
        finish_reason: first.finish_reason,
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
        text,
    })
}

/// The blocking facade for synchronous callers (the search runs on std threads). It
/// owns a small tokio runtime (one worker thread for I/O and timers); each call runs on
/// the caller's thread, so many threads may call [`LlmClient::chat`] at once.
pub struct LlmClient {
    client: AsyncLlmClient,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    pub fn new(config: LlmConfig, ledger: Arc<Ledger>) -> Result<Self, LlmError> {
        let client = AsyncLlmClient::new(config, ledger)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("uhc-llm")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| LlmError::config(format!("cannot start the LLM client's runtime: {e}")))?;
        Ok(LlmClient {
            client,
            runtime: Some(runtime),
        })
    }

    /// The async client inside, for callers that already run in tokio.
    pub fn async_client(&self) -> &AsyncLlmClient {
        &self.client
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        self.client.ledger()
    }

    /// Blocks until the call ends. Called from inside an async runtime it fails with
    /// [`LlmError::Config`] (blocking there would stall the runtime): use
    /// [`AsyncLlmClient::chat`] instead.
    pub fn chat(&self, request: &ChatRequest) -> Result<Completion, ChatFailure> {
        let refuse = |detail: &str| {
            Err(Recorder::start(&self.client.config().model, request)
                .fail(LlmError::config(detail), 0))
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            return refuse("LlmClient::chat blocks and cannot run inside an async runtime; use AsyncLlmClient::chat");
        }
        match &self.runtime {
            Some(rt) => rt.block_on(self.client.chat(request)),
            None => refuse("the LLM client was shut down"),
        }
    }
}

impl Drop for LlmClient {
    fn drop(&mut self) {
        // Never blocks, so dropping the client inside async code does not panic.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl ChatBackend for LlmClient {
    fn model(&self) -> &str {
        &self.client.config().model
    }

    fn chat(&self, request: &ChatRequest) -> Result<Completion, ChatFailure> {
        LlmClient::chat(self, request)
    }

    fn grammar_dialect(&self) -> Option<Dialect> {
        self.client.grammar_dialect()
    }

    /// One call at a time to a loopback server (a local model on a 2-core machine
    /// computes one reply at a time anyway; parallel calls only split its cores), a few
    /// to a hosted endpoint, within the client's own connection limit.
    fn default_concurrency(&self) -> usize {
        if is_loopback(&self.client.inner.endpoint) {
            1
        } else {
            self.client.config().max_concurrency.clamp(1, 4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Parsed, LlmError> {
        parse_completion(s.as_bytes())
    }

    fn reason(r: Result<Parsed, LlmError>) -> InvalidReason {
        match r {
            Err(LlmError::InvalidResponse { reason, .. }) => reason,
            other => panic!("expected an invalid response, got {other:?}"),
        }
    }

    #[test]
    fn parses_openai_shape_with_and_without_usage() {
        let p = parse(r#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#).unwrap();
        assert_eq!(p.text, "hi");
        assert_eq!(p.finish_reason.as_deref(), Some("stop"));
        assert_eq!((p.prompt_tokens, p.completion_tokens), (Some(7), Some(2)));
        let req = ChatRequest::new(vec![Message::user("x".repeat(10))]);
        assert_eq!(
            p.usage(&req),
            Usage {
                prompt_tokens: 7,
                completion_tokens: 2,
                estimated: false
            }
        );

        let p = parse(
            r#"{"choices":[{"message":{"content":"abcdefghi"}}],"usage":{"prompt_tokens":null}}"#,
        )
        .unwrap();
        // 10 prompt chars -> 3 tokens, 9 completion chars -> 3 tokens (ceil of chars/4).
        assert_eq!(
            p.usage(&req),
            Usage {
                prompt_tokens: 3,
                completion_tokens: 3,
                estimated: true
            }
        );
    }

    #[test]
    fn content_parts_are_joined() {
        let p = parse(r#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}}]}"#).unwrap();
        assert_eq!(p.text, "ab");
    }

    #[test]
    fn each_bad_shape_has_its_reason() {
        assert_eq!(reason(parse("")), InvalidReason::MalformedJson);
        assert_eq!(reason(parse("<html>")), InvalidReason::MalformedJson);
        assert_eq!(
            reason(parse(r#"{"choices":[{"message":{"content":"trunc"#)),
            InvalidReason::MalformedJson
        );
        assert_eq!(
            reason(parse(r#"{"choices":"x"}"#)),
            InvalidReason::MalformedJson
        );
        assert_eq!(reason(parse(r#"{"choices":[]}"#)), InvalidReason::NoChoices);
        assert_eq!(reason(parse(r#"{}"#)), InvalidReason::NoChoices);
        assert_eq!(
            reason(parse(r#"{"choices":[{"message":{"content":null}}]}"#)),
            InvalidReason::MissingContent
        );
        assert_eq!(
            reason(parse(r#"{"choices":[{"finish_reason":"stop"}]}"#)),
            InvalidReason::MissingContent
        );
        assert_eq!(
            reason(parse(r#"{"choices":[{"message":{"content":[]}}]}"#)),
            InvalidReason::MissingContent
        );
        let err = parse(r#"{"error":{"message":"model not loaded"}}"#).unwrap_err();
        assert!(err.to_string().contains("model not loaded"), "{err}");
    }

    #[test]
    fn retry_after_forms() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            retry_after(&m)
        };
        assert_eq!(h(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(
            h(&[("retry-after", " 0.25 ")]),
            Some(Duration::from_millis(250))
        );
        assert_eq!(h(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]), None);
        assert_eq!(h(&[("retry-after", "-1")]), None);
        assert_eq!(h(&[("retry-after", "1e999")]), None);
        assert_eq!(
            h(&[("retry-after", "2"), ("retry-after-ms", "150")]),
            Some(Duration::from_millis(150))
        );
        assert_eq!(h(&[]), None);
    }

    #[test]
    fn error_message_prefers_the_openai_error_object() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Rate limit"}}"#),
            "Rate limit"
        );
        assert_eq!(error_message(br#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(error_message(b"  Bad Gateway \n"), "Bad Gateway");
        assert_eq!(error_message(b""), "(empty body)");
        let long = "x".repeat(2000);
        assert_eq!(
            error_message(long.as_bytes()).chars().count(),
            EXCERPT_CHARS + 1
        );
    }

    #[test]
    fn wire_body_is_openai_shaped_and_checks_input() {
        let req = ChatRequest::new(vec![Message::system("s"), Message::user("u")])
            .with_temperature(0.7)
            .with_seed(3);
        let json = |r: &ChatRequest, f| -> serde_json::Value {
            serde_json::from_slice(&wire_body("m", r, f).unwrap()).unwrap()
        };
        assert_eq!(
            json(&req, TokenField::MaxTokens),
            serde_json::json!({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"temperature":0.7,"seed":3,"stream":false})
        );
        let capped = req.clone().with_max_tokens(64);
        let fields = |f| {
            let v = json(&capped, f);
            (
                v.get("max_tokens").cloned(),
                v.get("max_completion_tokens").cloned(),
            )
        };
        let n = Some(serde_json::json!(64));
        assert_eq!(fields(TokenField::MaxTokens), (n.clone(), None));
        assert_eq!(fields(TokenField::MaxCompletionTokens), (None, n.clone()));
        assert_eq!(fields(TokenField::Both), (n.clone(), n));
        assert!(wire_body("m", &ChatRequest::new(vec![]), TokenField::Both).is_err());
        assert!(wire_body(
            "m",
            &req.clone().with_temperature(f64::NAN),
            TokenField::Both
        )
        .is_err());
    }

    #[test]
    fn token_field_starts_by_host_and_switches_only_on_a_refusal_of_it() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        for (u, want) in [
            ("https://api.openai.com/v1", TokenField::MaxCompletionTokens),
            (
                "https://x.openai.azure.com/openai",
                TokenField::MaxCompletionTokens,
            ),
            ("http://127.0.0.1:8080/v1", TokenField::MaxTokens),
            ("https://openrouter.ai/api/v1", TokenField::MaxTokens),
        ] {
            assert_eq!(TokenField::initial(TokenParam::Auto, &url(u)), want, "{u}");
        }
        let local = url("http://127.0.0.1/v1");
        assert_eq!(
            TokenField::initial(TokenParam::Both, &local),
            TokenField::Both
        );
        assert_eq!(
            TokenField::initial(TokenParam::MaxCompletionTokens, &local),
            TokenField::MaxCompletionTokens
        );
        for v in 0..3u8 {
            assert_eq!(TokenField::from_u8(v) as u8, v);
        }

        let http = |status, body: &str| LlmError::Http {
            status,
            body: body.into(),
        };
        let openai = http(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.");
        let azure = http(
            400,
            "Unrecognized request argument supplied: max_completion_tokens",
        );
        let pydantic = http(
            422,
            r#"{"detail":[{"type":"extra_forbidden","loc":["body","max_completion_tokens"],"msg":"Extra inputs are not permitted"}]}"#,
        );
        let too_long = http(
            400,
            "max_tokens is too large: 9000. This model supports at most 4096 completion tokens",
        );
        let (mt, mct) = (TokenField::MaxTokens, TokenField::MaxCompletionTokens);
        assert_eq!(mt.refused_by(&openai), Some(mct));
        assert_eq!(mct.refused_by(&azure), Some(mt));
        assert_eq!(mct.refused_by(&pydantic), Some(mt));
        // Not a refusal of the field sent, a different complaint, or the wrong status.
        assert_eq!(mct.refused_by(&openai), None);
        assert_eq!(mt.refused_by(&azure), None);
        assert_eq!(mt.refused_by(&too_long), None);
        assert_eq!(mt.refused_by(&http(500, "unsupported max_tokens")), None);
        assert_eq!(TokenField::Both.refused_by(&openai), None);
        assert_eq!(mt.refused_by(&LlmError::Timeout { timeout_ms: 1 }), None);
    }

    #[test]
    fn loopback_detection() {
        for (u, want) in [
            ("http://127.0.0.1:8080/v1", true),
            ("http://127.3.4.5/v1", true),
            ("http://localhost:11434/v1", true),
            ("http://[::1]:8000/v1", true),
            ("https://api.openai.com/v1", false),
            ("http://10.0.0.1/v1", false),
        ] {
            assert_eq!(is_loopback(&reqwest::Url::parse(u).unwrap()), want, "{u}");
        }
    }
}
