//! Where the client connects and how hard it tries.

use std::fmt;
use std::time::Duration;

use super::error::LlmError;

/// An API key. `Debug` and `Display` print `ApiKey(***)`; it is not serialisable, and it
/// leaves this type only as the `Authorization` header (and to scrub echoes of it).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Rejects an empty key and one that cannot go into an HTTP header.
    pub fn new(key: impl Into<String>) -> Result<Self, LlmError> {
        let key = key.into();
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(LlmError::config(
                "the API key is empty; unset it for servers without keys",
            ));
        }
        if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(LlmError::config(
                "the API key contains spaces, control or non-ASCII characters; check for a stray quote or newline",
            ));
        }
        Ok(ApiKey(key))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Values given explicitly (CLI flags `--llm-url`, `--llm-model`, `--llm-token-param`,
/// `--llm-prompt`, `--llm-max-prompt-tokens`); they beat the environment. Text values
/// are parsed by [`LlmConfig::resolve`] and [`PromptConfig::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LlmOverrides {
    pub url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    /// `auto`, `max_tokens`, `max_completion_tokens` or `both` ([`TokenParam`]).
    pub token_param: Option<String>,
    /// `full` or `compact` ([`PromptStyle`]).
    pub prompt: Option<String>,
    /// A positive integer: the bound on every request's prompt tokens.
    pub max_prompt_tokens: Option<String>,
    /// `auto`, `gbnf`, `lark` or `off` ([`GrammarMode`]).
    pub grammar: Option<String>,
}

/// Environment variables read by [`LlmConfig::resolve`] and [`PromptConfig::resolve`],
/// first match wins.
pub const ENV_URL: [&str; 2] = ["UHC_LLM_URL", "OPENAI_BASE_URL"];
pub const ENV_MODEL: [&str; 1] = ["UHC_LLM_MODEL"];
pub const ENV_API_KEY: [&str; 2] = ["UHC_LLM_API_KEY", "OPENAI_API_KEY"];
pub const ENV_TOKEN_PARAM: [&str; 1] = ["UHC_LLM_TOKEN_PARAM"];
pub const ENV_PROMPT: [&str; 1] = ["UHC_LLM_PROMPT"];
pub const ENV_MAX_PROMPT_TOKENS: [&str; 1] = ["UHC_LLM_MAX_PROMPT_TOKENS"];
pub const ENV_GRAMMAR: [&str; 1] = ["UHC_LLM_GRAMMAR"];

/// The first non-empty value: the explicit one, then the variables in order.
fn pick(
    explicit: &Option<String>,
    names: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Option<String> {
    explicit
        .iter()
        .cloned()
        .chain(names.iter().filter_map(|n| env(n)))
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// Which request field carries the reply-length cap. OpenAI deprecated `max_tokens` for
/// `max_completion_tokens` (Sept. 2024), and its reasoning models (o1, o3, gpt-5) answer
/// `max_tokens` with HTTP 400 `unsupported_parameter`. Local servers lag: llama-cpp-python
/// 0.3 reads only `max_tokens` and silently drops `max_completion_tokens` (its pydantic
/// request model ignores unknown fields), so a cap sent only under the new name leaves
/// generation unbounded there; Ollama and LM Studio read only `max_tokens`; llama.cpp's
/// own server and vLLM read both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenParam {
    /// `max_completion_tokens` for api.openai.com and Azure OpenAI hosts, `max_tokens`
    /// elsewhere; when a server answers 400/422 that the field sent is unsupported, the
    /// call is sent again at once with the other one, which the client then keeps.
    #[default]
    Auto,
    MaxTokens,
    MaxCompletionTokens,
    /// Both fields with the same value (servers that ignore unknown fields).
    Both,
}

impl TokenParam {
    pub const NAMES: [&'static str; 4] = ["auto", "max_tokens", "max_completion_tokens", "both"];

    pub fn name(self) -> &'static str {
        match self {
            TokenParam::Auto => "auto",
            TokenParam::MaxTokens => "max_tokens",
            TokenParam::MaxCompletionTokens => "max_completion_tokens",
            TokenParam::Both => "both",
        }
    }
}

impl std::str::FromStr for TokenParam {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Self, LlmError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "auto" => Ok(TokenParam::Auto),
            "max_tokens" => Ok(TokenParam::MaxTokens),
            "max_completion_tokens" => Ok(TokenParam::MaxCompletionTokens),
            "both" => Ok(TokenParam::Both),
            _ => Err(LlmError::config(format!(
                "token parameter `{s}` is not one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// Whether requests carry a decoding grammar, and in which dialect. llama.cpp's server
/// and llama-cpp-python's take GBNF in the field `grammar`; vLLM takes Lark EBNF for
/// guided decoding; hosted OpenAI-style APIs take JSON schemas, not grammars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrammarMode {
    /// GBNF to loopback servers (llama.cpp and friends), nothing to other hosts. A
    /// server that refuses the field (a 4xx naming it) is sent no grammar from then on.
    #[default]
    Auto,
    Gbnf,
    Lark,
    Off,
}

impl GrammarMode {
    pub const NAMES: [&'static str; 4] = ["auto", "gbnf", "lark", "off"];

    pub fn name(self) -> &'static str {
        match self {
            GrammarMode::Auto => "auto",
            GrammarMode::Gbnf => "gbnf",
            GrammarMode::Lark => "lark",
            GrammarMode::Off => "off",
        }
    }
}

impl std::str::FromStr for GrammarMode {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Self, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GrammarMode::Auto),
            "gbnf" => Ok(GrammarMode::Gbnf),
            "lark" => Ok(GrammarMode::Lark),
            "off" | "none" => Ok(GrammarMode::Off),
            _ => Err(LlmError::config(format!(
                "grammar mode `{s}` is not one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }
}

/// How much the LLM operators put in a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptStyle {
    /// The whole grammar, every op with its parameters, units and metrics, the resolved
    /// hardware profile, six front members, six recent failures, design notes: for
    /// hosted models with large contexts.
    #[default]
    Full,
    /// For small local models, where every prompt token costs latency: the arch syntax
    /// only, the ops the hardware supports (signatures and one line each), one worked
    /// example (a seed of the search, so it compiles), two front members, the last
    /// failure, no design notes.
    Compact,
}

impl PromptStyle {
    pub fn name(self) -> &'static str {
        match self {
            PromptStyle::Full => "full",
            PromptStyle::Compact => "compact",
        }
    }
}

impl std::str::FromStr for PromptStyle {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Self, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(PromptStyle::Full),
            "compact" => Ok(PromptStyle::Compact),
            _ => Err(LlmError::config(format!(
                "prompt style `{s}` is not `full` or `compact`"
            ))),
        }
    }
}

/// The prompt settings taken from flags and the environment ([`ENV_PROMPT`],
/// [`ENV_MAX_PROMPT_TOKENS`]); `None` keeps the style's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PromptConfig {
    pub style: PromptStyle,
    pub max_prompt_tokens: Option<usize>,
}

impl PromptConfig {
    /// Explicit values first, then the environment; empty values count as unset.
    pub fn resolve(
        overrides: &LlmOverrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let style = pick(&overrides.prompt, &ENV_PROMPT, &env)
            .map(|s| s.parse::<PromptStyle>())
            .transpose()?
            .unwrap_or_default();
        let max_prompt_tokens = pick(&overrides.max_prompt_tokens, &ENV_MAX_PROMPT_TOKENS, &env)
            .map(|s| match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(LlmError::config(format!(
                    "max prompt tokens `{s}` is not a positive integer"
                ))),
            })
            .transpose()?;
        Ok(PromptConfig {
            style,
            max_prompt_tokens,
        })
    }
}

/// Retries with exponential backoff and "equal jitter" (half fixed, half random; Brooker,
/// "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles for each further one.
    pub backoff_base: Duration,
    /// Cap on any delay, `Retry-After` included.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    /// openai-python retries twice from 0.5 s (`_constants.py`: INITIAL_RETRY_DELAY 0.5,
    /// MAX_RETRY_DELAY 8); a search runs for hours, so we allow one more attempt and wait
    /// up to 60 s, the window of per-minute rate limits.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry). `unit` is a uniform
    /// draw in [0, 1) for the jitter; a server's `Retry-After` is a floor, and
    /// `backoff_max` caps the result.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.backoff_max);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = exp / 2 + exp.mul_f64(0.5 * unit);
        jittered
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(self.backoff_max)
    }
}

/// Everything the HTTP client needs. `Debug` is safe to print: the key is redacted.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The API root, e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8080/v1`
    /// (llama.cpp server), `http://127.0.0.1:11434/v1` (Ollama). `/chat/completions`
    /// is appended unless already there.
    pub base_url: String,
    pub model: String,
    /// None for local servers that need no key.
    pub api_key: Option<ApiKey>,
    /// Limit on one attempt, from sending to the last body byte. openai-python's default
    /// is 600 s; slow local models on 2 cores need minutes for long replies.
    pub timeout: Duration,
    /// Limit on opening a connection (openai-python: 5 s).
    pub connect_timeout: Duration,
    /// Requests in flight at once, per client.
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    /// Bodies longer than this are cut off while streaming and rejected. 2 MiB is ~500k
    /// tokens of text, far above any completion we ask for.
    pub max_response_bytes: usize,
    /// The request field of the reply-length cap.
    pub token_param: TokenParam,
    /// Whether requests carry the decoding grammar.
    pub grammar: GrammarMode,
}

impl LlmConfig {
    /// A config with defaults for everything but the endpoint and model.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            max_response_bytes: 2 * 1024 * 1024,
            token_param: TokenParam::Auto,
            grammar: GrammarMode::Auto,
        }
    }

    pub fn with_api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// Builds a config from explicit values, then the environment (see [`ENV_URL`],
    /// [`ENV_MODEL`], [`ENV_API_KEY`], [`ENV_TOKEN_PARAM`]). `env` looks a variable up
    /// (pass `|k| std::env::var(k).ok()`, or a map in tests). Empty values count as unset.
    pub fn resolve(
        overrides: &LlmOverrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let pick = |explicit: &Option<String>, names: &[&str]| pick(explicit, names, &env);
        let url = pick(&overrides.url, &ENV_URL).ok_or_else(|| {
            LlmError::config(
                "no LLM endpoint: pass --llm-url or set UHC_LLM_URL \
                 (e.g. http://127.0.0.1:8080/v1 for a local llama.cpp server)",
            )
        })?;
        let model = pick(&overrides.model, &ENV_MODEL).ok_or_else(|| {
            LlmError::config("no LLM model: pass --llm-model or set UHC_LLM_MODEL")
        })?;
        let api_key = pick(&overrides.api_key, &ENV_API_KEY)
            .map(ApiKey::new)
            .transpose()?;
        let token_param = pick(&overrides.token_param, &ENV_TOKEN_PARAM)
            .map(|s| s.parse::<TokenParam>())
            .transpose()?
            .unwrap_or_default();
        let grammar = pick(&overrides.grammar, &ENV_GRAMMAR)
            .map(|s| s.parse::<GrammarMode>())
            .transpose()?
            .unwrap_or_default();
        let config = LlmConfig {
            api_key,
            token_param,
            grammar,
            ..LlmConfig::new(url, model)
        };
        config.endpoint()?;
        Ok(config)
    }

    /// [`LlmConfig::resolve`] against the process environment.
    pub fn from_env(overrides: &LlmOverrides) -> Result<Self, LlmError> {
        Self::resolve(overrides, |k| std::env::var(k).ok())
    }

    /// The chat-completions URL, checked.
    pub fn endpoint(&self) -> Result<reqwest::Url, LlmError> {
        let base = self.base_url.trim().trim_end_matches('/');
        let full = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        };
        let url = reqwest::Url::parse(&full).map_err(|e| {
            LlmError::config(format!(
                "LLM URL `{}` is not a valid URL ({e}); write it like http://127.0.0.1:8080/v1",
                self.base_url
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(LlmError::config(format!(
                "LLM URL `{}` must start with http:// or https://",
                self.base_url
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(LlmError::config(
                "LLM URL must not carry credentials; pass the key with UHC_LLM_API_KEY",
            ));
        }
        Ok(url)
    }

    /// Checks the numeric settings.
    pub fn validate(&self) -> Result<(), LlmError> {
        if self.model.trim().is_empty() {
            return Err(LlmError::config("the model name is empty"));
        }
        if self.max_concurrency == 0 {
            return Err(LlmError::config("max_concurrency must be at least 1"));
        }
        if self.retry.max_attempts == 0 {
            return Err(LlmError::config("max_attempts must be at least 1"));
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(LlmError::config("timeouts must be positive"));
        }
        if self.max_response_bytes == 0 {
            return Err(LlmError::config("max_response_bytes must be positive"));
        }
        self.endpoint().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn explicit_values_beat_uhc_env_which_beats_openai_env() {
        let e = env(&[
            ("UHC_LLM_URL", "http://uhc:1/v1"),
            ("OPENAI_BASE_URL", "http://openai:2/v1"),
            ("UHC_LLM_MODEL", "m-env"),
            ("UHC_LLM_API_KEY", "k-uhc"),
            ("OPENAI_API_KEY", "k-openai"),
        ]);
        let c = LlmConfig::resolve(&LlmOverrides::default(), &e).unwrap();
        assert_eq!(c.base_url, "http://uhc:1/v1");
        assert_eq!(c.model, "m-env");
        assert_eq!(c.api_key.as_ref().map(ApiKey::expose), Some("k-uhc"));

        let o = LlmOverrides {
            url: Some("http://flag:3/v1".into()),
            model: Some("m-flag".into()),
            ..LlmOverrides::default()
        };
        let c = LlmConfig::resolve(&o, &e).unwrap();
        assert_eq!(c.base_url, "http://flag:3/v1");
        assert_eq!(c.model, "m-flag");

        let e = env(&[
            ("OPENAI_BASE_URL", "https://openai:2/v1"),
            ("UHC_LLM_MODEL", "m"),
            ("UHC_LLM_API_KEY", "  "),
            ("OPENAI_API_KEY", "k-openai"),
        ]);
        let c = LlmConfig::resolve(&LlmOverrides::default(), e).unwrap();
        assert_eq!(c.base_url, "https://openai:2/v1");
        assert_eq!(c.api_key.as_ref().map(ApiKey::expose), Some("k-openai"));
    }

    #[test]
    fn missing_or_bad_values_say_how_to_fix_them() {
        let err = LlmConfig::resolve(&LlmOverrides::default(), env(&[])).unwrap_err();
        assert!(err.to_string().contains("--llm-url"), "{err}");
        let err = LlmConfig::resolve(
            &LlmOverrides::default(),
            env(&[("UHC_LLM_URL", "http://x/v1")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("UHC_LLM_MODEL"), "{err}");
        for bad in ["not a url", "ftp://x/v1", "http://user:pw@x/v1"] {
            let e = env(&[("UHC_LLM_URL", bad), ("UHC_LLM_MODEL", "m")]);
            let err = LlmConfig::resolve(&LlmOverrides::default(), e).unwrap_err();
            assert!(matches!(err, LlmError::Config { .. }), "{bad}: {err}");
        }
        let e = env(&[
            ("UHC_LLM_URL", "http://x"),
            ("UHC_LLM_MODEL", "m"),
            ("UHC_LLM_API_KEY", "a b"),
        ]);
        assert!(LlmConfig::resolve(&LlmOverrides::default(), e).is_err());
    }

    #[test]
    fn token_param_and_prompt_settings_come_from_flags_then_env() {
        let base = [("UHC_LLM_URL", "http://x/v1"), ("UHC_LLM_MODEL", "m")];
        let c = LlmConfig::resolve(&LlmOverrides::default(), env(&base)).unwrap();
        assert_eq!(c.token_param, TokenParam::Auto);
        let e = env(&[
            base[0],
            base[1],
            ("UHC_LLM_TOKEN_PARAM", "max-completion-tokens"),
            ("UHC_LLM_PROMPT", " Compact "),
            ("UHC_LLM_MAX_PROMPT_TOKENS", "1500"),
        ]);
        let c = LlmConfig::resolve(&LlmOverrides::default(), &e).unwrap();
        assert_eq!(c.token_param, TokenParam::MaxCompletionTokens);
        let p = PromptConfig::resolve(&LlmOverrides::default(), &e).unwrap();
        assert_eq!(
            p,
            PromptConfig {
                style: PromptStyle::Compact,
                max_prompt_tokens: Some(1500)
            }
        );
        let flags = LlmOverrides {
            token_param: Some("both".into()),
            prompt: Some("full".into()),
            max_prompt_tokens: Some("900".into()),
            ..LlmOverrides::default()
        };
        assert_eq!(
            LlmConfig::resolve(&flags, &e).unwrap().token_param,
            TokenParam::Both
        );
        let p = PromptConfig::resolve(&flags, &e).unwrap();
        assert_eq!(
            (p.style, p.max_prompt_tokens),
            (PromptStyle::Full, Some(900))
        );
        for name in TokenParam::NAMES {
            assert_eq!(name.parse::<TokenParam>().unwrap().name(), name);
        }
        assert_eq!(
            PromptConfig::resolve(&LlmOverrides::default(), env(&[])).unwrap(),
            PromptConfig::default()
        );

        let bad = |k: &'static str, v: &'static str| {
            let e = env(&[base[0], base[1], (k, v)]);
            LlmConfig::resolve(&LlmOverrides::default(), &e)
                .and_then(|_| PromptConfig::resolve(&LlmOverrides::default(), &e))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("UHC_LLM_TOKEN_PARAM", "max").contains("max_completion_tokens"));
        assert!(bad("UHC_LLM_PROMPT", "tiny").contains("compact"));
        for v in ["0", "-3", "2k"] {
            assert!(
                bad("UHC_LLM_MAX_PROMPT_TOKENS", v).contains("positive integer"),
                "{v}"
            );
        }
    }

    #[test]
    fn endpoint_appends_chat_completions_once() {
        for (base, want) in [
            ("http://h:1/v1", "http://h:1/v1/chat/completions"),
            ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
            (
                "https://h/v1/chat/completions",
                "https://h/v1/chat/completions",
            ),
        ] {
            assert_eq!(LlmConfig::new(base, "m").endpoint().unwrap().as_str(), want);
        }
    }

    #[test]
    fn key_is_redacted_in_debug_and_display() {
        let key = ApiKey::new("sk-very-secret-123").unwrap();
        let c = LlmConfig::new("http://h/v1", "m").with_api_key(key.clone());
        for shown in [format!("{key:?}"), format!("{key}"), format!("{c:?}")] {
            assert!(!shown.contains("very-secret"), "{shown}");
        }
        assert!(format!("{c:?}").contains("ApiKey(***)"));
    }

    #[test]
    fn backoff_doubles_jitters_within_half_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
        };
        // Equal jitter: exp/2 at unit 0, exp at unit 1.
        assert_eq!(p.delay(0, None, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(0, None, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, None, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(3, None, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(4, None, 1.0), Duration::from_millis(1000));
        assert_eq!(p.delay(u32::MAX, None, 1.0), Duration::from_millis(1000));
        // Retry-After is a floor, capped by backoff_max.
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(700)), 0.0),
            Duration::from_millis(700)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(30)), 0.0),
            Duration::from_millis(1000)
        );
        assert_eq!(p.delay(0, None, f64::NAN), Duration::from_millis(50));
    }
}
