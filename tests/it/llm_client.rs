//! The LLM client against the scripted server: real HTTP on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uhc::llm::extract::extract_program;
use uhc::llm::{
    ApiKey, Budget, ChatBackend, ChatFailure, ChatRequest, Completion, Exchange, InvalidReason,
    Ledger, LlmClient, LlmConfig, LlmError, Message, Outcome, Price, Replay, ReplayMode,
    RetryPolicy, TokenParam,
};

use crate::llm_server::{Reply, ScriptedServer};

const KEY: &str = "sk-test-0123456789-SECRET";
const MODEL: &str = "test-model";

fn config(server: &ScriptedServer) -> LlmConfig {
    let mut c = LlmConfig::new(server.base_url(), MODEL).with_api_key(ApiKey::new(KEY).unwrap());
    c.timeout = Duration::from_secs(5);
    c.retry = RetryPolicy {
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
    };
    c
}

fn client_with(config: LlmConfig, ledger: Ledger) -> LlmClient {
    LlmClient::new(config, Arc::new(ledger)).unwrap()
}

fn client(server: &ScriptedServer) -> LlmClient {
    client_with(config(server), Ledger::unlimited())
}

fn request(prompt: &str) -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You write .uh programs."),
        Message::user(prompt),
    ])
}

fn failure(r: Result<Completion, ChatFailure>) -> ChatFailure {
    match r {
        Ok(c) => panic!("expected a failure, got {:?}", c.text),
        Err(f) => f,
    }
}

fn assert_no_key(exchange: &Exchange) {
    let json = serde_json::to_string(exchange).unwrap();
    assert!(!json.contains(KEY) && !json.contains("SECRET"), "{json}");
    assert!(!format!("{exchange:?}").contains("SECRET"));
}

#[test]
fn valid_reply_is_sent_with_bearer_key_and_recorded_exactly() {
    let server = ScriptedServer::start(vec![Reply::content("arch a on m {}", 12, 34)]);
    let ledger = Ledger::unlimited()
        .with_price(
            MODEL,
            Price {
                prompt_per_mtok: 1.0,
                completion_per_mtok: 2.0,
            },
        )
        .unwrap();
    let client = client_with(config(&server), ledger);
    let req = request("mutate")
        .with_temperature(0.8)
        .with_max_tokens(256)
        .with_seed(7);
    let c = client.chat(&req).unwrap();

    assert_eq!(c.text, "arch a on m {}");
    let e = &c.exchange;
    assert_eq!((e.outcome, e.attempts, e.replayed), (Outcome::Ok, 1, false));
    assert_eq!(
        (
            e.usage.prompt_tokens,
            e.usage.completion_tokens,
            e.usage.estimated
        ),
        (12, 34, false)
    );
    assert!((e.cost - (12.0 + 68.0) / 1e6).abs() < 1e-15);
    assert_eq!(e.model, MODEL);
    assert_eq!(e.request, req);
    assert_eq!(e.request_key, req.key(MODEL));
    assert_eq!(e.finish_reason.as_deref(), Some("stop"));
    assert_eq!(e.error, None);
    assert_no_key(e);
    assert!(!format!("{client:?}").contains("SECRET"));

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.body,
        serde_json::json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "You write .uh programs."},
                {"role": "user", "content": "mutate"}
            ],
            "temperature": 0.8, "max_tokens": 256, "seed": 7, "stream": false
        })
    );
    let t = client.ledger().totals();
    assert_eq!(
        (
            t.calls,
            t.prompt_tokens,
            t.completion_tokens,
            t.estimated_calls
        ),
        (1, 12, 34, 0)
    );
}

#[test]
fn no_key_sends_no_authorization_header() {
    let server = ScriptedServer::start(vec![Reply::content("x", 1, 1)]);
    let mut c = config(&server);
    c.api_key = None;
    client_with(c, Ledger::unlimited())
        .chat(&request("p"))
        .unwrap();
    assert_eq!(server.received()[0].authorization, None);
}

#[test]
fn missing_usage_is_estimated_and_flagged() {
    let server = ScriptedServer::start(vec![Reply::content_without_usage("abcdefghij")]);
    let client = client(&server);
    let req = ChatRequest::new(vec![Message::user("x".repeat(41))]);
    let c = client.chat(&req).unwrap();
    // ceil(41 / 4) = 11 prompt tokens, ceil(10 / 4) = 3 completion tokens.
    assert_eq!(
        (
            c.exchange.usage.prompt_tokens,
            c.exchange.usage.completion_tokens
        ),
        (11, 3)
    );
    assert!(c.exchange.usage.estimated);
    assert_eq!(client.ledger().totals().estimated_calls, 1);
}

#[test]
fn program_is_extracted_from_prose_around_a_fence() {
    let program = "arch small on mzi8 {\n  input x: f32[16]\n}";
    let reply = format!(
        "Here is a more robust variant:\r\n\r\n```uh\r\n{}\r\n```\r\nIt halves the depth.",
        program.replace('\n', "\r\n")
    );
    let server = ScriptedServer::start(vec![Reply::content(&reply, 5, 5)]);
    let c = client(&server).chat(&request("mutate")).unwrap();
    assert_eq!(extract_program(&c.text).unwrap().text, program);
}

#[test]
fn invalid_bodies_are_typed_and_not_retried() {
    let cases = [
        (
            Reply::ok_body("<html>oops</html>"),
            InvalidReason::MalformedJson,
        ),
        (
            Reply::ok_body(
                r#"{"choices":[{"message":{"role":"assistant","content":"arch a on m {"#,
            ),
            InvalidReason::MalformedJson,
        ),
        (
            Reply::ok_body(r#"{"choices":[],"usage":{"prompt_tokens":3}}"#),
            InvalidReason::NoChoices,
        ),
        (
            Reply::ok_body(r#"{"choices":[{"message":{"role":"assistant","content":null}}]}"#),
            InvalidReason::MissingContent,
        ),
    ];
    for (reply, reason) in cases {
        let server = ScriptedServer::start(vec![reply.clone(), Reply::content("unused", 1, 1)]);
        let client = client(&server);
        let f = failure(client.chat(&request("p")));
        assert!(
            matches!(f.error, LlmError::InvalidResponse { reason: r, .. } if r == reason),
            "{reply:?}: {:?}",
            f.error
        );
        assert_eq!(f.exchange.outcome, Outcome::InvalidResponse { reason });
        assert_eq!((f.exchange.attempts, server.received().len()), (1, 1));
        assert_eq!(f.exchange.response_text, None);
        let t = client.ledger().totals();
        assert_eq!((t.calls, t.failed_calls, t.tokens()), (1, 1, 0));
    }
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let server = ScriptedServer::start(vec![
        Reply::status(500, "boom"),
        Reply::rate_limited("0"),
        Reply::content("fine", 2, 3),
    ]);
    let c = client(&server).chat(&request("p")).unwrap();
    assert_eq!((c.text.as_str(), c.exchange.attempts), ("fine", 3));
    assert_eq!(server.received().len(), 3);
}

#[test]
fn gives_up_after_max_attempts_with_the_last_error() {
    let server = ScriptedServer::start(vec![
        Reply::status(503, "busy"),
        Reply::status(502, "bad gateway"),
        Reply::status(500, r#"{"error":{"message":"still down"}}"#),
        Reply::content("too late", 1, 1),
    ]);
    let client = client(&server);
    let f = failure(client.chat(&request("p")));
    assert_eq!(f.exchange.outcome, Outcome::HttpError { status: 500 });
    assert_eq!(f.exchange.attempts, 3);
    assert!(f.error.to_string().contains("still down"), "{}", f.error);
    assert_eq!((server.received().len(), server.script_left()), (3, 1));
    assert_eq!(client.ledger().totals().failed_calls, 1);
}

#[test]
fn retry_after_is_honoured() {
    // Backoff is 1-20 ms here, so a gap of 300 ms can only come from the header.
    let server =
        ScriptedServer::start(vec![Reply::rate_limited("0.3"), Reply::content("ok", 1, 1)]);
    let mut c = config(&server);
    c.retry.backoff_max = Duration::from_secs(2);
    let started = Instant::now();
    let done = client_with(c, Ledger::unlimited())
        .chat(&request("p"))
        .unwrap();
    let got = server.received();
    assert_eq!((got.len(), done.exchange.attempts), (2, 2));
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(300), "retried after {gap:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(done.exchange.latency_ms >= 300);
}

#[test]
fn retry_after_is_capped_by_max_backoff() {
    let server = ScriptedServer::start(vec![Reply::rate_limited("30"), Reply::content("ok", 1, 1)]);
    let started = Instant::now();
    let done = client(&server).chat(&request("p")).unwrap();
    assert_eq!(done.exchange.attempts, 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn other_client_errors_fail_at_once_and_echoed_keys_are_scrubbed() {
    let body = format!(r#"{{"error":{{"message":"Incorrect API key provided: {KEY}."}}}}"#);
    let server = ScriptedServer::start(vec![
        Reply::status(401, &body),
        Reply::content("unused", 1, 1),
    ]);
    let f = failure(client(&server).chat(&request("p")));
    assert_eq!(
        (f.exchange.outcome, f.exchange.attempts),
        (Outcome::HttpError { status: 401 }, 1)
    );
    assert_eq!(server.received().len(), 1);
    let shown = f.error.to_string();
    assert!(shown.contains("Incorrect API key provided: ***"), "{shown}");
    assert_no_key(&f.exchange);
}

#[test]
fn slow_replies_time_out_and_are_retried() {
    // The server waits 400 ms, longer than the client's 100 ms limit.
    let slow = || Reply::slow(Duration::from_millis(400), Reply::content("late", 1, 1));
    let server = ScriptedServer::start(vec![slow(), Reply::content("fast", 1, 1)]);
    let mut c = config(&server);
    c.timeout = Duration::from_millis(100);
    c.retry.max_attempts = 2;
    let started = Instant::now();
    let done = client_with(c.clone(), Ledger::unlimited())
        .chat(&request("p"))
        .unwrap();
    assert_eq!((done.text.as_str(), done.exchange.attempts), ("fast", 2));
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let server = ScriptedServer::start(vec![slow()]);
    let c = LlmConfig {
        base_url: server.base_url(),
        retry: RetryPolicy {
            max_attempts: 1,
            ..c.retry
        },
        ..c
    };
    let started = Instant::now();
    let f = failure(client_with(c, Ledger::unlimited()).chat(&request("p")));
    let elapsed = started.elapsed();
    assert_eq!(f.error, LlmError::Timeout { timeout_ms: 100 });
    assert_eq!(
        (f.exchange.outcome, f.exchange.attempts),
        (Outcome::Timeout, 1)
    );
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(400),
        "{elapsed:?}"
    );
}

#[test]
fn oversized_bodies_are_cut_off_while_streaming() {
    const MB20: usize = 20 * 1024 * 1024;
    for reply in [
        Reply::Huge {
            bytes: MB20,
            declared: true,
        },
        Reply::Huge {
            bytes: MB20,
            declared: false,
        },
        Reply::Endless,
    ] {
        let server = ScriptedServer::start(vec![reply.clone(), Reply::content("unused", 1, 1)]);
        let client = client(&server);
        let started = Instant::now();
        let f = failure(client.chat(&request("p")));
        assert_eq!(
            f.error,
            LlmError::TooLarge {
                limit: 2 * 1024 * 1024
            },
            "{reply:?}"
        );
        assert_eq!(
            (f.exchange.outcome, f.exchange.attempts),
            (Outcome::TooLarge, 1)
        );
        assert_eq!(server.received().len(), 1);
        // An endless body can only end this way if reading stopped at the limit.
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(client);
        // The client hung up early: the server never got the whole body out (what it did
        // produce, 4-8 MB here, sat in loopback socket buffers, not in the client).
        assert!(
            server.body_bytes_sent() < MB20,
            "{reply:?}: {}",
            server.body_bytes_sent()
        );
    }
}

#[test]
fn response_limit_is_configurable() {
    let text = "y".repeat(4000);
    let server = ScriptedServer::start(vec![
        Reply::content(&text, 1, 1),
        Reply::content(&text, 1, 1),
    ]);
    let mut c = config(&server);
    c.max_response_bytes = 1000;
    let f = failure(client_with(c.clone(), Ledger::unlimited()).chat(&request("p")));
    assert_eq!(f.error, LlmError::TooLarge { limit: 1000 });
    c.max_response_bytes = 8000;
    assert_eq!(
        client_with(c, Ledger::unlimited())
            .chat(&request("p"))
            .unwrap()
            .text,
        text
    );
}

#[test]
fn refused_connections_are_connection_errors_and_retried() {
    // Bind then drop: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = LlmConfig::new(format!("http://127.0.0.1:{port}/v1"), MODEL);
    c.retry = RetryPolicy {
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    };
    let f = failure(client_with(c, Ledger::unlimited()).chat(&request("p")));
    assert_eq!(
        (f.exchange.outcome, f.exchange.attempts),
        (Outcome::Connection, 3)
    );
    assert!(
        f.error
            .to_string()
            .contains("could not talk to the LLM server"),
        "{}",
        f.error
    );
}

#[test]
fn token_cap_stops_calls_before_the_network() {
    let server = ScriptedServer::start((0..5).map(|_| Reply::content("x", 15, 5)).collect());
    let ledger = Ledger::new(Budget {
        max_tokens_total: Some(30),
        max_cost: None,
    })
    .unwrap();
    let client = client_with(config(&server), ledger);
    client.chat(&request("1")).unwrap(); // 20 tokens
    client.chat(&request("2")).unwrap(); // 40 tokens: cap reached, overshoot of one call
    let f = failure(client.chat(&request("3")));
    assert!(f.error.is_budget_exhausted());
    assert_eq!(
        (f.exchange.outcome, f.exchange.attempts),
        (Outcome::BudgetExhausted, 0)
    );
    assert!(failure(client.chat(&request("4")))
        .error
        .is_budget_exhausted());
    assert_eq!(server.received().len(), 2);
    let t = client.ledger().totals();
    assert_eq!((t.calls, t.refused_calls, t.tokens()), (2, 2, 40));
}

#[test]
fn cost_cap_stops_calls_and_needs_a_price() {
    let server = ScriptedServer::start((0..3).map(|_| Reply::content("x", 1000, 1000)).collect());
    let budget = Budget {
        max_tokens_total: None,
        max_cost: Some(0.01),
    };
    let unpriced = LlmClient::new(config(&server), Arc::new(Ledger::new(budget).unwrap()));
    assert!(matches!(unpriced, Err(LlmError::Config { .. })));
    // 1000 * 3 + 1000 * 6 per 1M = 0.009 per call.
    let price = Price {
        prompt_per_mtok: 3.0,
        completion_per_mtok: 6.0,
    };
    let ledger = Ledger::new(budget)
        .unwrap()
        .with_price(MODEL, price)
        .unwrap();
    let client = client_with(config(&server), ledger);
    client.chat(&request("1")).unwrap();
    client.chat(&request("2")).unwrap();
    assert!(failure(client.chat(&request("3")))
        .error
        .is_budget_exhausted());
    assert!((client.ledger().totals().cost - 0.018).abs() < 1e-12);
    assert_eq!(server.received().len(), 2);
}

#[test]
fn concurrency_limit_holds_across_threads() {
    let n = 6;
    let script = (0..n)
        .map(|_| Reply::slow(Duration::from_millis(40), Reply::content("x", 1, 1)))
        .collect();
    let server = ScriptedServer::start(script);
    let mut c = config(&server);
    c.max_concurrency = 2;
    let client = client_with(c, Ledger::unlimited());
    std::thread::scope(|s| {
        for i in 0..n {
            let client = &client;
            s.spawn(move || client.chat(&request(&i.to_string())).unwrap());
        }
    });
    assert_eq!(server.received().len(), n);
    assert_eq!(server.max_in_flight(), 2);
}

#[test]
fn async_api_works_and_blocking_inside_async_is_refused() {
    let server = ScriptedServer::start(vec![Reply::content("async", 1, 1)]);
    let client = client(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (text, refused) = rt.block_on(async {
        let text = client
            .async_client()
            .chat(&request("p"))
            .await
            .unwrap()
            .text;
        (text, client.chat(&request("p")))
    });
    assert_eq!(text, "async");
    let f = failure(refused);
    assert!(matches!(f.error, LlmError::Config { .. }));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_recorded_run_replays_without_network() {
    let server = ScriptedServer::start(vec![
        Reply::content("first", 3, 4),
        Reply::status(400, "bad request"),
        Reply::content_without_usage("third"),
    ]);
    let live = client(&server);
    let prompts = ["a", "b", "c"];
    let recorded: Vec<Exchange> = prompts
        .iter()
        .map(|p| match live.chat(&request(p)) {
            Ok(c) => c.exchange,
            Err(f) => *f.exchange,
        })
        .collect();
    drop(server);
    // Through JSON, as the run store keeps them.
    let stored: Vec<Exchange> = recorded
        .iter()
        .map(|e| serde_json::from_str(&serde_json::to_string(e).unwrap()).unwrap())
        .collect();
    let ledger = Arc::new(Ledger::unlimited());
    let replay: Box<dyn ChatBackend> = Box::new(
        Replay::new(ReplayMode::InOrder, stored)
            .unwrap()
            .with_ledger(Arc::clone(&ledger)),
    );
    assert_eq!(replay.model(), MODEL);
    for (p, original) in prompts.iter().zip(&recorded) {
        let again = match replay.chat(&request(p)) {
            Ok(c) => c.exchange,
            Err(f) => *f.exchange,
        };
        assert!(again.replayed);
        assert_eq!(
            Exchange {
                replayed: false,
                ..again
            },
            *original
        );
    }
    assert_eq!(ledger.totals().tokens(), live.ledger().totals().tokens());
    assert_eq!(ledger.totals().failed_calls, 1);
}

#[test]
fn https_goes_through_rustls_and_fails_cleanly_against_plain_http() {
    // The scripted server speaks plain HTTP, so the TLS handshake must fail: as a
    // retryable connection error, not a panic about a missing crypto provider.
    let server = ScriptedServer::start(vec![]);
    let mut c = config(&server);
    c.base_url = server.base_url().replace("http://", "https://");
    c.retry.max_attempts = 1;
    let f = failure(client_with(c, Ledger::unlimited()).chat(&request("p")));
    assert_eq!(f.exchange.outcome, Outcome::Connection, "{}", f.error);
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}

/// The reply-cap fields of a received body.
fn cap_fields(body: &serde_json::Value) -> (Option<u64>, Option<u64>) {
    (
        body.get("max_tokens").and_then(|v| v.as_u64()),
        body.get("max_completion_tokens").and_then(|v| v.as_u64()),
    )
}

/// OpenAI's answer to `max_tokens` on a reasoning model (o1, o3, gpt-5).
fn refuses_max_tokens() -> Reply {
    Reply::status(
        400,
        r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#,
    )
}

#[test]
fn reply_cap_goes_as_max_tokens_and_switches_once_when_a_server_refuses_it() {
    let server = ScriptedServer::start(vec![
        refuses_max_tokens(),
        Reply::content("a", 5, 1),
        Reply::content("b", 5, 1),
    ]);
    let mut c = config(&server);
    assert_eq!(c.token_param, TokenParam::Auto);
    // The switch is not a retry: it happens even when retries are off.
    c.retry.max_attempts = 1;
    let client = client_with(c, Ledger::unlimited());
    let req = request("mutate").with_max_tokens(64);
    let first = client.chat(&req).unwrap();
    assert_eq!((first.text.as_str(), first.exchange.attempts), ("a", 2));
    assert_eq!(
        first.exchange.request, req,
        "the recorded request is unchanged"
    );
    let second = client.chat(&req).unwrap();
    assert_eq!((second.text.as_str(), second.exchange.attempts), ("b", 1));
    let got: Vec<_> = server
        .received()
        .iter()
        .map(|r| cap_fields(&r.body))
        .collect();
    assert_eq!(
        got,
        vec![(Some(64), None), (None, Some(64)), (None, Some(64))],
        "max_tokens first (what llama.cpp, Ollama and vLLM read), then the new name, kept"
    );
}

#[test]
fn a_chosen_reply_cap_field_is_sent_as_given_and_never_switched() {
    for (param, want) in [
        (TokenParam::MaxTokens, (Some(32), None)),
        (TokenParam::MaxCompletionTokens, (None, Some(32))),
        (TokenParam::Both, (Some(32), Some(32))),
        (TokenParam::Auto, (Some(32), None)),
    ] {
        let server = ScriptedServer::start(vec![Reply::content("x", 1, 1)]);
        let mut c = config(&server);
        c.token_param = param;
        client_with(c, Ledger::unlimited())
            .chat(&request("p").with_max_tokens(32))
            .unwrap();
        assert_eq!(cap_fields(&server.received()[0].body), want, "{param:?}");
    }
    // Without a cap neither field is sent.
    let server = ScriptedServer::start(vec![Reply::content("x", 1, 1)]);
    let mut c = config(&server);
    c.token_param = TokenParam::Both;
    client_with(c, Ledger::unlimited())
        .chat(&request("p"))
        .unwrap();
    assert_eq!(cap_fields(&server.received()[0].body), (None, None));

    // A fixed choice is not switched: the refusal is the answer.
    let server = ScriptedServer::start(vec![refuses_max_tokens(), Reply::content("x", 1, 1)]);
    let mut c = config(&server);
    c.token_param = TokenParam::MaxTokens;
    let f = failure(client_with(c, Ledger::unlimited()).chat(&request("p").with_max_tokens(8)));
    assert!(
        matches!(&f.error, LlmError::Http { status: 400, body } if body.contains("max_completion_tokens")),
        "{:?}",
        f.error
    );
    assert_eq!((f.exchange.attempts, server.script_left()), (1, 1));

    // Other 400s under `auto` are not mistaken for a refusal of the field.
    let server = ScriptedServer::start(vec![
        Reply::status(400, r#"{"error":{"message":"messages: too many tokens"}}"#),
        Reply::content("x", 1, 1),
    ]);
    let f = failure(client(&server).chat(&request("p").with_max_tokens(8)));
    assert_eq!((f.exchange.attempts, server.script_left()), (1, 1));
}

/// The grammar goes in the field each server reads: `grammar` (GBNF) for llama.cpp,
/// `guided_grammar` and `structured_outputs.grammar` (Lark) for vLLM; `auto` sends GBNF
/// to loopback and nothing elsewhere; `off` sends nothing.
#[test]
fn grammars_go_in_the_field_of_their_dialect() {
    use uhc::llm::{Dialect, GrammarMode};
    let server = ScriptedServer::start((0..3).map(|_| Reply::content("ok", 5, 1)).collect());
    for (mode, expected) in [
        (GrammarMode::Auto, Some(Dialect::Gbnf)),
        (GrammarMode::Lark, Some(Dialect::Lark)),
        (GrammarMode::Off, None),
    ] {
        let mut c = config(&server);
        c.grammar = mode;
        let client = client_with(c, Ledger::unlimited());
        assert_eq!(client.grammar_dialect(), expected, "{mode:?}");
        let mut req = request("p");
        if let Some(d) = client.grammar_dialect() {
            req = req.with_grammar(d, "root ::= \"ok\"");
        }
        client.chat(&req).unwrap();
    }
    let bodies: Vec<serde_json::Value> = server.received().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies[0]["grammar"], "root ::= \"ok\"");
    assert!(bodies[0].get("guided_grammar").is_none());
    assert_eq!(bodies[1]["guided_grammar"], "root ::= \"ok\"");
    assert_eq!(
        bodies[1]["structured_outputs"]["grammar"],
        "root ::= \"ok\""
    );
    assert!(bodies[1].get("grammar").is_none());
    for key in ["grammar", "guided_grammar", "structured_outputs"] {
        assert!(bodies[2].get(key).is_none(), "{key}");
    }
    // A hosted endpoint under `auto` gets no grammar (it would take a JSON schema).
    let hosted = LlmConfig::new("https://api.openai.com/v1", MODEL);
    assert_eq!(
        client_with(hosted, Ledger::unlimited()).grammar_dialect(),
        None
    );
}

/// A server that refuses the grammar (llama.cpp: "Failed to parse grammar"; strict
/// servers: an extra field) gets the call again at once without it, and no grammar from
/// then on; the recorded request keeps it, so a replay matches.
#[test]
fn a_refused_grammar_is_dropped_once_and_for_the_rest_of_the_run() {
    let server = ScriptedServer::start(vec![
        Reply::status(
            400,
            r#"{"error":{"message":"Failed to parse grammar","type":"invalid_request_error"}}"#,
        ),
        Reply::content("a", 5, 1),
        Reply::content("b", 5, 1),
    ]);
    let mut c = config(&server);
    c.retry.max_attempts = 1;
    let client = client_with(c, Ledger::unlimited());
    let dialect = client.grammar_dialect().expect("loopback gets GBNF");
    let req = request("p").with_grammar(dialect, "root ::= [a-z]");
    let first = client.chat(&req).unwrap();
    assert_eq!((first.text.as_str(), first.exchange.attempts), ("a", 2));
    assert_eq!(first.exchange.request, req);
    assert_eq!(client.grammar_dialect(), None);
    let second = client.chat(&req).unwrap();
    assert_eq!(second.text, "b");
    let sent: Vec<bool> = server
        .received()
        .iter()
        .map(|r| r.body.get("grammar").is_some())
        .collect();
    assert_eq!(sent, [true, false, false]);
}
