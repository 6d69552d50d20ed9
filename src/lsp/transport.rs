//! JSON-RPC framing over a byte stream, bounded and resynchronising.
//!
//! lsp-server's own stdio reader stops at the first malformed message (so every later
//! request would be lost) and allocates whatever `Content-Length` claims; this one reads
//! at most [`MAX_MESSAGE_BYTES`] per message, reports a bad frame as [`Incoming::Malformed`]
//! and carries on with the next.

use lsp_server::{Message, RequestId};
use serde_json::Value;
use std::io::{BufRead, Read, Write};

/// The largest message read: a 16 MiB document (the parser's limit) JSON-escaped, with room.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
const MAX_HEADER_LINE: u64 = 4096;

/// One frame from the client.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// A frame that is not a JSON-RPC message; `id` when the JSON had one.
    Malformed {
        id: Option<RequestId>,
        code: i32,
        message: String,
    },
}

/// The next frame, or `None` at the end of the stream.
pub fn read(r: &mut impl BufRead) -> std::io::Result<Option<Incoming>> {
    let mut length: Option<usize> = None;
    let mut bad_header: Option<String> = None;
    loop {
        let mut line = Vec::new();
        r.by_ref()
            .take(MAX_HEADER_LINE)
            .read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if !text.is_empty() {
            match text.split_once(':') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => {
                    match value.trim().parse::<usize>() {
                        Ok(n) => length = Some(n),
                        Err(_) => {
                            bad_header = Some(format!("bad Content-Length `{}`", value.trim()))
                        }
                    }
                }
                Some(_) => {}
                None => bad_header = Some(format!("malformed header line `{}`", clip(text))),
            }
            continue;
        }
        // The blank line ending a header block.
        let n = match (length, bad_header) {
            (Some(n), None) => n,
            (_, Some(why)) => return Ok(Some(malformed(None, PARSE_ERROR, why))),
            (None, None) => {
                return Ok(Some(malformed(
                    None,
                    PARSE_ERROR,
                    "a header block without Content-Length".into(),
                )))
            }
        };
        if n > MAX_MESSAGE_BYTES {
            // Skip the body so the next frame is read from its start.
            std::io::copy(&mut r.by_ref().take(n as u64), &mut std::io::sink())?;
            return Ok(Some(malformed(
                None,
                PARSE_ERROR,
                format!("a message of {n} bytes; the most uhc lsp reads is {MAX_MESSAGE_BYTES}"),
            )));
        }
        let mut body = Vec::with_capacity(n);
        r.by_ref().take(n as u64).read_to_end(&mut body)?;
        if body.len() < n {
            return Ok(None);
        }
        return Ok(Some(decode(&body)));
    }
}

const PARSE_ERROR: i32 = lsp_server::ErrorCode::ParseError as i32;
const INVALID_REQUEST: i32 = lsp_server::ErrorCode::InvalidRequest as i32;

fn malformed(id: Option<RequestId>, code: i32, message: String) -> Incoming {
    Incoming::Malformed { id, code, message }
}

fn decode(body: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return malformed(None, PARSE_ERROR, format!("the message is not JSON: {e}")),
    };
    let id = value
        .get("id")
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return malformed(
            id,
            INVALID_REQUEST,
            "the message is not JSON-RPC 2.0 (`\"jsonrpc\": \"2.0\"` missing)".into(),
        );
    }
    match serde_json::from_value::<Message>(value) {
        Ok(m) => Incoming::Message(m),
        Err(e) => malformed(
            id,
            INVALID_REQUEST,
            format!("not a JSON-RPC request, response or notification: {e}"),
        ),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Writes a message as one frame.
pub fn write(w: &mut impl Write, msg: &Message) -> std::io::Result<()> {
    msg.write(w)
}

/// Writes an error response whose id may be unknown (`null`).
pub fn write_error(
    w: &mut impl Write,
    id: Option<RequestId>,
    code: i32,
    message: &str,
) -> std::io::Result<()> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    })
    .to_string();
    write!(w, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<String> {
        let mut r = std::io::BufReader::new(input.as_bytes());
        let mut out = Vec::new();
        while let Some(m) = read(&mut r).unwrap() {
            out.push(match m {
                Incoming::Message(m) => format!("ok {}", serde_json::to_string(&m).unwrap()),
                Incoming::Malformed { id, code, .. } => format!("bad {code} {id:?}"),
            });
        }
        out
    }

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn a_bad_frame_does_not_lose_the_next() {
        let good = r#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#;
        let input = [
            frame("{not json"),
            frame(r#"{"jsonrpc":"2.0","id":7,"method":3}"#),
            "garbage line\r\n\r\n".to_string(),
            frame(good),
        ]
        .concat();
        let got = frames(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], "bad -32700 None");
        assert!(got[1].starts_with("bad -32600 Some("), "{}", got[1]);
        assert_eq!(got[2], "bad -32700 None");
        assert!(
            got[3].starts_with("ok ") && got[3].contains("shutdown"),
            "{}",
            got[3]
        );
    }

    #[test]
    fn an_oversized_length_is_skipped_not_allocated() {
        let n = MAX_MESSAGE_BYTES + 1;
        let mut input = format!("Content-Length: {n}\r\n\r\n");
        input.push_str(&" ".repeat(n));
        input.push_str(&frame(r#"{"jsonrpc":"2.0","method":"exit"}"#));
        let got = frames(&input);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "bad -32700 None");
        assert!(got[1].contains("exit"));
    }
}
