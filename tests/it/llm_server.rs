//! A scripted OpenAI-compatible chat server on 127.0.0.1 (ephemeral port) for client
//! tests. Each request takes the next reply from the script and is recorded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with a valid chat completion; `usage` is (prompt, completion) tokens.
    Content {
        text: String,
        usage: Option<(u64, u64)>,
    },
    /// 200 with a valid chat completion whose `usage.prompt_tokens` counts the request
    /// like a tokenizer of fixed density: ceil(characters of all messages /
    /// `chars_per_token`).
    Tokenized { text: String, chars_per_token: f64 },
    /// Any status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// The server is slow: it waits, then sends the inner reply.
    Delay(Duration, Box<Reply>),
    /// Held until this many requests are in flight at once (or 20 s have passed, so a
    /// sequential client fails the test instead of hanging it), then the inner reply.
    Gate(usize, Box<Reply>),
    /// 200 with `bytes` bytes of body in 64 KiB chunks; `declared` sets Content-Length,
    /// otherwise the body is chunked.
    Huge { bytes: usize, declared: bool },
    /// 200 with a chunked body that never ends.
    Endless,
}

impl Reply {
    pub fn content(text: &str, prompt: u64, completion: u64) -> Self {
        Reply::Content {
            text: text.into(),
            usage: Some((prompt, completion)),
        }
    }
    pub fn content_without_usage(text: &str) -> Self {
        Reply::Content {
            text: text.into(),
            usage: None,
        }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Reply::Raw {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    pub fn ok_body(body: &str) -> Self {
        Reply::Raw {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }
    pub fn rate_limited(retry_after: &str) -> Self {
        Reply::Raw {
            status: 429,
            headers: vec![("retry-after".into(), retry_after.into())],
            body: r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#.into(),
        }
    }
    pub fn slow(delay: Duration, reply: Reply) -> Self {
        Reply::Delay(delay, Box::new(reply))
    }
}

/// What the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: serde_json::Value,
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    body_bytes_sent: AtomicUsize,
}

/// The server; it stops when dropped.
pub struct ScriptedServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    pub fn start(script: Vec<Reply>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            ..Shared::default()
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let accept = tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        let state = Arc::clone(&state);
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                handle(req, Arc::clone(&state))
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
                let _ = rx.await;
                accept.abort();
            });
        });
        ScriptedServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The API root to configure the client with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The most requests the server was handling at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Bytes of streamed (`Huge`, `Endless`) bodies handed to the connection.
    pub fn body_bytes_sent(&self) -> usize {
        self.shared.body_bytes_sent.load(Ordering::SeqCst)
    }

    pub fn script_left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ServerBody>, Infallible> {
    let _in_flight = InFlight::enter(&shared);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (authorization, content_type) = (header("authorization"), header("content-type"));
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    shared.received.lock().unwrap().push(Received {
        method,
        path,
        authorization,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        at: Instant::now(),
    });
    let next = shared.script.lock().unwrap().pop_front();
    let mut reply = next.unwrap_or_else(|| Reply::status(500, "test script exhausted"));
    let mut reply = loop {
        reply = match reply {
            Reply::Delay(delay, inner) => {
                tokio::time::sleep(delay).await;
                *inner
            }
            Reply::Gate(n, inner) => {
                let give_up = Instant::now() + Duration::from_secs(20);
                while shared.max_in_flight.load(Ordering::SeqCst) < n && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                *inner
            }
            other => break other,
        };
    };
    if let Reply::Tokenized {
        text,
        chars_per_token,
    } = reply
    {
        let chars: usize = shared.received.lock().unwrap().last().map_or(0, |r| {
            r.body["messages"].as_array().map_or(0, |m| {
                m.iter()
                    .map(|m| m["content"].as_str().unwrap_or("").chars().count())
                    .sum()
            })
        });
        let tokens = (chars as f64 / chars_per_token).ceil() as u64;
        reply = Reply::content(&text, tokens, 1);
    }
    Ok(respond(reply, &shared))
}

fn respond(reply: Reply, shared: &Arc<Shared>) -> Response<ServerBody> {
    let full = |status: u16, headers: Vec<(String, String)>, body: String| {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.body(ServerBody::Full(Some(Bytes::from(body))))
            .expect("valid scripted response")
    };
    let stream = |total: Option<usize>, declared: bool| {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(ServerBody::Stream {
                remaining: total,
                declared: declared.then_some(total).flatten(),
                chunk: Bytes::from(vec![b' '; 64 * 1024]),
                shared: Arc::clone(shared),
            })
            .expect("valid streamed response")
    };
    match reply {
        Reply::Content { text, usage } => {
            let mut body = serde_json::json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": "scripted",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"
                }]
            });
            if let Some((p, c)) = usage {
                body["usage"] = serde_json::json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
            }
            full(
                200,
                vec![("content-type".into(), "application/json".into())],
                body.to_string(),
            )
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => full(status, headers, body),
        Reply::Huge { bytes, declared } => stream(Some(bytes), declared),
        Reply::Endless => stream(None, false),
        Reply::Delay(..) | Reply::Gate(..) | Reply::Tokenized { .. } => full(
            500,
            vec![],
            "delays and token counts are resolved before".into(),
        ),
    }
}

/// A whole body, or a generated stream of spaces (`remaining: None` = endless).
enum ServerBody {
    Full(Option<Bytes>),
    Stream {
        remaining: Option<usize>,
        declared: Option<usize>,
        chunk: Bytes,
        shared: Arc<Shared>,
    },
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ServerBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ServerBody::Stream {
                remaining,
                chunk,
                shared,
                ..
            } => {
                let n = match remaining {
                    Some(0) => return Poll::Ready(None),
                    Some(r) => (*r).min(chunk.len()),
                    None => chunk.len(),
                };
                if let Some(r) = remaining {
                    *r -= n;
                }
                shared.body_bytes_sent.fetch_add(n, Ordering::SeqCst);
                Poll::Ready(Some(Ok(Frame::data(chunk.slice(..n)))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ServerBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ServerBody::Full(None) => SizeHint::with_exact(0),
            ServerBody::Stream {
                declared: Some(n), ..
            } => SizeHint::with_exact(*n as u64),
            ServerBody::Stream { .. } => SizeHint::default(),
        }
    }
}
