//! `uhc lsp` server time, measured in process on the server's message handler (no pipes,
//! no debounce wait): what an edit costs until its diagnostics are ready, and what a
//! completion costs. The baseline, measured in the same run, is the compiler alone
//! (`uhc::check_source` on the same text), so the ratio is the server's overhead.
//!
//! `cargo bench --bench lsp` measures; without `--bench` (as `cargo test --all-targets`
//! runs it) it does a smoke iteration. Targets (issue 15): diagnostics after an edit of a
//! typical 30-line file under 5 ms, completion under 2 ms, a 5 000-line file under 50 ms;
//! semantic tokens of a checked file under 2 ms (typical) and 50 ms (5 000 lines).

mod common;

use common::thread_cpu;
use lsp_server::{Message, Notification, Request, RequestId};
use serde_json::json;
use std::hint::black_box;

const URI: &str = "file:///bench/typical.uh";

/// A typical file: the deep example plus a task, 30 lines.
fn typical() -> String {
    let mut s = include_str!("../examples/digits_deep.uh").to_string();
    s.push_str("\narch wide on mzi_realistic {\n    input x: real[16]\n    h = linear(x, 16)\n    y = linear(h, 10)\n    output detect(y)\n}\n");
    s
}

fn big_file(lines: usize) -> String {
    let mut s = String::from("use \"hw/mzi.uh\"\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "arch a{i} on mzi_realistic {{\n    input x: real[16]\n    h = linear(x, 16)\n    a = modrelu(h, bias = 0.1)\n    h2 = unitary(a)\n    y = linear(h2, 10)\n    output detect(y)\n}}\n"
        ));
        i += 1;
    }
    s
}

fn note(method: &str, params: serde_json::Value) -> Message {
    Message::Notification(Notification::new(method.into(), params))
}

fn server(text: &str) -> uhc::lsp::Server {
    let mut s = uhc::lsp::Server::new(std::env::temp_dir().join("uhc-bench-lsp-stdlib"));
    s.handle(Message::Request(Request::new(
        RequestId::from(1),
        "initialize".into(),
        json!({ "capabilities": {} }),
    )));
    s.handle(note(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "uh", "version": 1, "text": text } }),
    ));
    s.flush();
    let out = s.take_output();
    let diags = out.iter().find_map(|m| match m {
        Message::Notification(n) if n.method == "textDocument/publishDiagnostics" => {
            Some(n.params["diagnostics"].clone())
        }
        _ => None,
    });
    assert_eq!(diags, Some(json!([])), "bench input must be clean");
    s
}

/// Mean CPU seconds per call of `f` over at least `min_runs` calls and `budget` seconds.
fn time(mut f: impl FnMut(u64), budget: f64, min_runs: u64) -> (f64, u64) {
    let start = thread_cpu();
    let mut n = 0;
    while n < min_runs || thread_cpu() - start < budget {
        f(n);
        n += 1;
    }
    ((thread_cpu() - start) / n as f64, n)
}

/// An edit (a width toggled between 16 and 12 at `line`), then diagnostics.
fn edit_cost(text: &str, line: u32, col: u32, budget: f64) -> (f64, u64) {
    let mut s = server(text);
    time(
        |n| {
            let width = if n % 2 == 0 { "12" } else { "16" };
            s.handle(note(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": URI, "version": n + 2 },
                        "contentChanges": [{ "range": { "start": { "line": line, "character": col }, "end": { "line": line, "character": col + 2 } }, "text": width }] }),
            ));
            s.flush();
            black_box(s.take_output());
        },
        budget,
        3,
    )
}

fn position_of(text: &str, needle: &str) -> (u32, u32) {
    let i = text.find(needle).expect("needle");
    let line = text[..i].matches('\n').count() as u32;
    let col = (i - text[..i].rfind('\n').map_or(0, |n| n + 1)) as u32;
    (line, col)
}

fn report(name: &str, t: f64, n: u64, baseline: f64, target_ms: f64) {
    println!(
        "{name}: {:.2} ms server CPU time ({n} runs), {:.3}× the compiler alone ({:.2} ms); target < {target_ms} ms: {}",
        t * 1e3,
        t / baseline,
        baseline * 1e3,
        if t * 1e3 < target_ms { "met" } else { "MISSED" }
    );
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let budget = if measure { 3.0 } else { 0.0 };
    let min = if measure { 10 } else { 1 };

    for (name, text, target) in [
        ("edit + diagnostics, typical file", typical(), 5.0),
        ("edit + diagnostics, 5 000 lines", big_file(5_000), 50.0),
    ] {
        let (line, col) = position_of(&text, "16)");
        let (line, col) = (line, col);
        let (t, n) = edit_cost(&text, line, col, budget);
        let (base, _) = time(
            |_| {
                black_box(uhc::check_source("bench.uh", black_box(&text)));
            },
            budget,
            min,
        );
        report(
            &format!("{name} ({} lines)", text.lines().count()),
            t,
            n,
            base,
            target,
        );
    }

    // An edit, then a completion of an op name inside an arch before the edit's check
    // (completion reads the last analysis; it never waits for a check).
    for (name, text) in [
        ("typical file", typical()),
        ("5 000 lines", big_file(5_000)),
    ] {
        let mut s = server(&text);
        let (line, col) = position_of(&text, "h = ");
        let (eline, ecol) = position_of(&text, "16)");
        let (t, n) = time(
            |i| {
                let width = if i % 2 == 0 { "12" } else { "16" };
                s.handle(note(
                    "textDocument/didChange",
                    json!({ "textDocument": { "uri": URI, "version": i + 2 },
                            "contentChanges": [{ "range": { "start": { "line": eline, "character": ecol }, "end": { "line": eline, "character": ecol + 2 } }, "text": width }] }),
                ));
                s.handle(Message::Request(Request::new(
                    RequestId::from(i as i32 + 10),
                    "textDocument/completion".into(),
                    json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": col + 4 } }),
                )));
                let out = s.take_output();
                assert!(
                    matches!(&out[..], [Message::Response(r)] if r.response_result.as_ref().is_ok_and(|v| v.as_array().is_some_and(|a| a.iter().any(|i| i["label"] == "linear"))))
                );
                black_box(out);
            },
            budget,
            min,
        );
        let (base, _) = time(
            |_| {
                black_box(uhc::check_source("bench.uh", black_box(&text)));
            },
            budget,
            min,
        );
        report(&format!("edit + completion, {name}"), t, n, base, 2.0);
    }

    // Semantic tokens of a checked document: what an editor asks after every check.
    for (name, text, target) in [
        ("typical file", typical(), 2.0),
        ("5 000 lines", big_file(5_000), 50.0),
    ] {
        let mut s = server(&text);
        let (t, n) = time(
            |i| {
                s.handle(Message::Request(Request::new(
                    RequestId::from(i as i32 + 10),
                    "textDocument/semanticTokens/full".into(),
                    json!({ "textDocument": { "uri": URI } }),
                )));
                let out = s.take_output();
                assert!(
                    matches!(&out[..], [Message::Response(r)] if r.response_result.as_ref().is_ok_and(|v| v["data"].as_array().is_some_and(|d| d.len() > 100)))
                );
                black_box(out);
            },
            budget,
            min,
        );
        let (base, _) = time(
            |_| {
                black_box(uhc::check_source("bench.uh", black_box(&text)));
            },
            budget,
            min,
        );
        report(&format!("semantic tokens, {name}"), t, n, base, target);
    }
}
