//! `uhc lsp` as an editor sees it: a client speaking JSON-RPC to the real binary over
//! pipes. No test sleeps; every wait is for a message, with a timeout that only fires
//! when the server has hung.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// Generous: a debug build checking a 10 MB document on a busy 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    /// Messages received while waiting for something else.
    stash: Vec<Value>,
    next_id: i64,
    stderr: Receiver<String>,
    pub dir: PathBuf,
}

/// A fresh folder for one test's files and the server's stdlib cache.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uhc-it-lsp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn read_frame(r: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

impl Client {
    /// Starts `uhc lsp` and initialises it.
    pub fn start(name: &str) -> Client {
        let mut c = Client::spawn(name);
        let r = c.request(
            "initialize",
            json!({ "processId": null, "rootUri": null, "capabilities": {} }),
        );
        assert_eq!(r["result"]["serverInfo"]["name"], "uhc", "{r}");
        c.notify("initialized", json!({}));
        c
    }

    /// Starts `uhc lsp` without initialising it.
    pub fn spawn(name: &str) -> Client {
        let dir = scratch(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_uhc"))
            .arg("lsp")
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("uhc lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(v) = read_frame(&mut r) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let (etx, erx) = channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            let _ = etx.send(s);
        });
        Client {
            child,
            stdin,
            rx,
            stash: Vec::new(),
            next_id: 0,
            stderr: erx,
            dir,
        }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("server reads");
        self.stdin.flush().expect("server reads");
    }

    pub fn send(&mut self, v: &Value) {
        let body = v.to_string();
        self.raw(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    /// The next message that satisfies `pred` (others are kept for later waits).
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.stash.iter().position(&pred) {
            return self.stash.remove(i);
        }
        loop {
            match self.rx.recv_timeout(TIMEOUT) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.stash.push(v),
                Err(e) => panic!("no {what} from uhc lsp ({e}); received: {:#?}", self.stash),
            }
        }
    }

    pub fn response(&mut self, id: i64) -> Value {
        self.wait_for(&format!("response {id}"), |v| {
            v["id"] == id && v.get("method").is_none()
        })
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(id)
    }

    /// The diagnostics published for `uri` at `version`.
    pub fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let v = self.wait_for(&format!("diagnostics of {uri} v{version}"), |v| {
            v["method"] == "textDocument/publishDiagnostics"
                && v["params"]["uri"] == uri
                && v["params"]["version"] == version
        });
        v["params"]["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "uh", "version": 1, "text": text } }),
        );
    }

    pub fn change(&mut self, uri: &str, version: i64, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": changes }),
        );
    }

    /// `shutdown` then `exit`; returns the exit code and what the server wrote on stderr.
    pub fn shutdown(mut self) -> (i32, String) {
        let r = self.request("shutdown", Value::Null);
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["result"], Value::Null);
        self.notify("exit", Value::Null);
        let stderr = self
            .stderr
            .recv_timeout(TIMEOUT)
            .expect("the server exits after `exit`");
        let status = self.child.wait().expect("exit status");
        (status.code().unwrap_or(-1), stderr)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pos(line: u32, character: u32) -> Value {
    json!({ "line": line, "character": character })
}

fn at(uri: &str, line: u32, character: u32) -> Value {
    json!({ "textDocument": { "uri": uri }, "position": pos(line, character) })
}

/// Line and character of the first occurrence of `needle` in `text` (ASCII text).
pub fn find(text: &str, needle: &str) -> (u32, u32) {
    let i = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in the test text"));
    let line = text[..i].matches('\n').count();
    let col = i - text[..i].rfind('\n').map_or(0, |n| n + 1);
    (line as u32, col as u32)
}

const TYPO: &str = r#"use "hw/mzi.uh"

arch small on mzi_realistic {
    input x: real[16]
    h1 = linaer(x, 16)
    a1 = modrelu(h1, bias = 0.1)
    y = linear(a1, 10)
    output detect(y)
}
"#;

fn write(dir: &Path, name: &str, text: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    let path = path.canonicalize().expect("canonical path");
    let u = uri(&path);
    (path, u)
}

fn hover_text(c: &mut Client, uri: &str, (line, col): (u32, u32)) -> String {
    let r = c.request("textDocument/hover", at(uri, line, col));
    r["result"]["contents"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("a hover at {line}:{col}: {r}"))
        .to_string()
}

/// Diagnostics are `uhc check`'s: same codes, messages, help and places; the fix is a code
/// action that, applied, leaves a clean file; hover, definition, references, completion
/// and formatting answer from the compiler; shutdown and exit end the process with 0.
#[test]
fn an_editor_session() {
    let mut c = Client::start("session");
    let (path, u) = write(&c.dir.clone(), "typo.uh", TYPO);
    c.open(&u, TYPO);
    let diags = c.diagnostics(&u, 1);

    let out = Command::new(env!("CARGO_BIN_EXE_uhc"))
        .args(["check", "--format", "json"])
        .arg(&path)
        .output()
        .expect("uhc check runs");
    let expected: Vec<Value> = serde_json::from_slice(&out.stdout).expect("uhc check's JSON");
    assert!(!expected.is_empty(), "the test file has an error");
    assert_eq!(diags.len(), expected.len(), "{diags:#?}\n{expected:#?}");
    for (d, e) in diags.iter().zip(&expected) {
        assert_eq!(d["code"], e["code"]);
        assert_eq!(d["source"], "uhc");
        assert_eq!(d["range"]["start"]["line"], e["line"].as_u64().unwrap() - 1);
        assert_eq!(
            d["range"]["start"]["character"],
            e["column"].as_u64().unwrap() - 1
        );
        assert_eq!(d["severity"], if e["severity"] == "error" { 1 } else { 2 });
        let message = format!(
            "{}\nhelp: {}",
            e["message"].as_str().unwrap(),
            e["help"].as_str().unwrap()
        );
        assert_eq!(d["message"], message);
    }
    assert_eq!(diags[0]["code"], "uh::check::op", "{diags:#?}");

    // The machine-applicable fix as a code action; applying it leaves a clean file.
    let r = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": u }, "range": diags[0]["range"], "context": { "diagnostics": [] } }),
    );
    let actions = r["result"].as_array().expect("code actions").clone();
    assert_eq!(actions.len(), 1, "{r}");
    assert_eq!(actions[0]["kind"], "quickfix");
    assert_eq!(actions[0]["title"], expected[0]["fixes"][0]["description"]);
    let edits = actions[0]["edit"]["changes"][&u]
        .as_array()
        .expect("edits")
        .clone();
    assert_eq!(edits.len(), 1);
    assert_eq!(edits[0]["newText"], "linear");
    c.change(
        &u,
        2,
        json!([{ "range": edits[0]["range"], "text": edits[0]["newText"] }]),
    );
    assert_eq!(
        c.diagnostics(&u, 2),
        Vec::<Value>::new(),
        "the fix leaves a clean file"
    );
    let fixed = TYPO.replace("linaer", "linear");

    // Hover: an op, a value's type, the arch header's costs.
    let op = hover_text(&mut c, &u, find(&fixed, "linear(x"));
    assert!(
        op.contains("linear(x, width)") && op.contains("offers `linear`"),
        "{op}"
    );
    let (l, col) = find(&fixed, "a1 = ");
    let ty = hover_text(&mut c, &u, (l, col + 1));
    assert!(ty.contains("a1: complex[16]"), "{ty}");
    let (l, col) = find(&fixed, "small");
    let head = hover_text(&mut c, &u, (l, col));
    for part in [
        "MZIs",
        "optical depth",
        "parameters",
        "energy per inference",
        "J |",
    ] {
        assert!(head.contains(part), "`{part}` in {head}");
    }

    // Definition of a value, and of a stdlib profile (written read-only to the cache).
    let (l, col) = find(&fixed, "modrelu(h1");
    let r = c.request("textDocument/definition", at(&u, l, col + 9));
    assert_eq!(r["result"]["range"]["start"], pos(4, 4), "{r}");
    let (l, col) = find(&fixed, "mzi_realistic");
    let r = c.request("textDocument/definition", at(&u, l, col + 2));
    let target = r["result"]["uri"].as_str().expect("a location").to_string();
    assert!(
        target.ends_with("/hw/mzi.uh") && target.contains("/cache/uhc/"),
        "{target}"
    );
    let stdlib_path = PathBuf::from(target.trim_start_matches("file://"));
    assert!(std::fs::metadata(&stdlib_path)
        .unwrap()
        .permissions()
        .readonly());
    let stdlib_text = std::fs::read_to_string(&stdlib_path).unwrap();
    let start = &r["result"]["range"]["start"];
    let line = stdlib_text
        .lines()
        .nth(start["line"].as_u64().unwrap() as usize)
        .unwrap();
    assert!(
        line[start["character"].as_u64().unwrap() as usize..].starts_with("mzi_realistic"),
        "{line}"
    );
    // `use` paths go to the file.
    let r = c.request("textDocument/definition", at(&u, 0, 7));
    assert_eq!(r["result"]["uri"].as_str(), Some(target.as_str()), "{r}");

    // References of `h1`: its definition and its use.
    let (l, col) = find(&fixed, "h1 =");
    let r = c.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": u }, "position": pos(l, col), "context": { "includeDeclaration": true } }),
    );
    let lines: Vec<u64> = r["result"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [4, 5], "{r}");

    // Completion: ops the profile offers (mzi_realistic has no `relu`) and values above.
    let edited = fixed.replace("    output detect(y)", "    z = \n    output detect(y)");
    c.change(&u, 3, json!([{ "text": edited }]));
    let (l, col) = find(&edited, "z = ");
    let r = c.request("textDocument/completion", at(&u, l, col + 4));
    let labels: Vec<&str> = r["result"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    for want in ["linear", "modrelu", "detect", "x", "h1", "a1", "y"] {
        assert!(labels.contains(&want), "`{want}` in {labels:?}");
    }
    assert!(
        !labels.contains(&"relu") && !labels.contains(&"z"),
        "{labels:?}"
    );

    // Formatting is `uhc fmt`'s printer.
    let messy = fixed.replace("    h1 = linear(x, 16)", "h1=linear( x,16 )");
    c.change(&u, 4, json!([{ "text": messy }]));
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let edits = r["result"].as_array().expect("edits");
    assert_eq!(edits.len(), 1, "{r}");
    assert_eq!(
        edits[0]["newText"],
        uhc::syntax::format_source(uhc::diag::FileId(0), &messy).unwrap()
    );
    assert_eq!(edits[0]["newText"], fixed);

    let (code, stderr) = c.shutdown();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Hover on a profile field: dimension, unit, built-in default, the profile's value and
/// where the inherited value came from; completion of fields and of units by dimension.
#[test]
fn profile_fields_hover_and_complete() {
    let mut c = Client::start("fields");
    let text = "use \"hw/mzi.uh\"\n\nhardware mine extends mzi_realistic {\n    energy { dac = 2 pJ }\n}\n";
    let (_, u) = write(&c.dir.clone(), "mine.uh", text);
    c.open(&u, text);
    assert_eq!(c.diagnostics(&u, 1), Vec::<Value>::new());
    let (l, col) = find(text, "dac");
    let h = hover_text(&mut c, &u, (l, col));
    for part in [
        "energy.dac",
        "an energy",
        "pJ",
        "built-in default: 3.571 pJ (source: the Lightening-Transformer simulator",
        "in `mine`: 2 pJ",
        "overrides `mzi_realistic`",
    ] {
        assert!(h.contains(part), "`{part}` in {h}");
    }
    let edited = "use \"hw/mzi.uh\"\n\nhardware mine extends mzi_realistic {\n    energy { dac = 2 pJ\n        tia = 3 \n    }\n}\n";
    c.change(&u, 2, json!([{ "text": edited }]));
    let labels = |r: Value| -> Vec<String> {
        r["result"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_string())
            .collect()
    };
    let (l, col) = find(edited, "tia = 3 ");
    let units = labels(c.request("textDocument/completion", at(&u, l, col + 8)));
    assert_eq!(units, ["W", "mW", "uW", "nW"], "power units for `tia`");
    let fields = labels(c.request("textDocument/completion", at(&u, l, col)));
    for f in ["dac", "tia", "clock", "max_laser_power"] {
        assert!(fields.contains(&f.to_string()), "`{f}` in {fields:?}");
    }
    assert!(
        !fields.contains(&"phase_sigma".to_string()),
        "noise fields are not energy fields"
    );
}

/// A file is re-checked when a file it `use`s changes, from the editor's unsaved text.
#[test]
fn dependants_are_rechecked() {
    let mut c = Client::start("deps");
    let dir = c.dir.clone();
    let hw = "use \"hw/mzi.uh\"\nhardware lab extends mzi_realistic {\n    precision { phase = 6 bit }\n}\n";
    let net = "use \"lab.uh\"\n\narch n on lab {\n    input x: real[4]\n    y = linear(x, 2)\n    output detect(y)\n}\n";
    let (_, hu) = write(&dir, "lab.uh", hw);
    let (_, nu) = write(&dir, "net.uh", net);
    c.open(&hu, hw);
    c.open(&nu, net);
    assert_eq!(c.diagnostics(&hu, 1), Vec::<Value>::new());
    assert_eq!(c.diagnostics(&nu, 1), Vec::<Value>::new());
    // Rename the profile in the open (unsaved) `lab.uh`: `net.uh` now names no profile.
    c.change(
        &hu,
        2,
        json!([{ "text": hw.replace("hardware lab", "hardware lab2") }]),
    );
    let d = c.diagnostics(&nu, 1);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "uh::check::undefined");
    assert!(d[0]["message"].as_str().unwrap().contains("lab"), "{d:#?}");
    // The definition of `lab2`… is in the other open file.
    c.change(
        &nu,
        2,
        json!([{ "text": net.replace("on lab", "on lab2") }]),
    );
    assert_eq!(c.diagnostics(&nu, 2), Vec::<Value>::new());
    let r = c.request("textDocument/definition", at(&nu, 2, 11));
    assert_eq!(r["result"]["uri"], hu.as_str(), "{r}");

    // Closed, `lab.uh` is read from disk again (where the profile is still `lab`), and a
    // change on disk that the client reports re-checks `net.uh` too.
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": hu } }),
    );
    let d = c.diagnostics(&nu, 2);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "uh::check::undefined");
    std::fs::write(
        dir.join("lab.uh"),
        hw.replace("hardware lab", "hardware lab2"),
    )
    .unwrap();
    c.notify(
        "workspace/didChangeWatchedFiles",
        json!({ "changes": [{ "uri": hu, "type": 2 }] }),
    );
    let d = c.wait_for("a clean re-check", |v| {
        v["params"]["uri"] == nu.as_str() && v["params"]["diagnostics"] == json!([])
    });
    assert_eq!(d["params"]["version"], 2);
}

/// Bad clients: none of these panics the server, hangs it, or loses a response.
#[test]
fn bad_clients() {
    let mut c = Client::spawn("bad");
    // Before `initialize`.
    let r = c.request("textDocument/hover", at("file:///nowhere.uh", 0, 0));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    let r = c.request("initialize", json!({ "capabilities": {} }));
    assert!(r["result"]["capabilities"].is_object(), "{r}");
    c.notify("initialized", json!({}));

    // Malformed JSON-RPC: not JSON, JSON without `jsonrpc`, a request with a bad method,
    // a garbage header; each gets an error and the next request its answer.
    c.raw(b"Content-Length: 9\r\n\r\n{not json");
    let r = c.wait_for("a parse error", |v| v["error"]["code"] == -32700);
    assert_eq!(r["id"], Value::Null);
    c.send(&json!({ "id": 99, "method": "x" }));
    let r = c.response(99);
    assert_eq!(r["error"]["code"], -32600, "{r}");
    c.send(&json!({ "jsonrpc": "2.0", "id": 98, "method": 7 }));
    assert_eq!(c.response(98)["error"]["code"], -32600);
    c.raw(b"this is not a header\r\n\r\n");
    c.wait_for("a parse error", |v| v["error"]["code"] == -32700);
    // Unknown methods: an error for a request, nothing for a notification.
    let r = c.request("textDocument/frobnicate", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    c.notify("$/frobnicate", json!({}));
    // Invalid params.
    let r = c.request("textDocument/hover", json!({ "textDocument": 3 }));
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // Requests for files never opened or gone: answered, with nothing.
    let r = c.request("textDocument/hover", at("file:///gone/nowhere.uh", 3, 3));
    assert_eq!(r["result"], Value::Null, "{r}");
    let (path, u) = write(&c.dir.clone(), "gone.uh", TYPO);
    c.open(&u, TYPO);
    assert!(!c.diagnostics(&u, 1).is_empty());
    std::fs::remove_file(&path).unwrap();
    let (l, col) = find(TYPO, "h1 =");
    let r = c.request("textDocument/definition", at(&u, l, col));
    assert_eq!(
        r["result"]["range"]["start"],
        pos(l, col),
        "the open text still answers: {r}"
    );
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": u } }),
    );
    let d = c.wait_for("cleared diagnostics", |v| {
        v["params"]["uri"] == u.as_str() && v["params"]["diagnostics"] == json!([])
    });
    assert_eq!(d["params"]["version"], Value::Null);
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(r["result"], Value::Null, "{r}");
    let r = c.request("textDocument/codeAction", json!({ "textDocument": { "uri": u }, "range": { "start": pos(0, 0), "end": pos(0, 0) }, "context": { "diagnostics": [] } }));
    assert_eq!(r["result"], Value::Null, "{r}");

    // An edit that leaves invalid UTF-16 positions: inside a surrogate pair, past a line's
    // end, past the last line. Positions are clamped; the text stays valid.
    let u2 = uri(&c.dir.join("utf16.uh"));
    let text = "// 𝄞 clef\narch a on nowhere {\n}\n";
    c.open(&u2, text);
    c.diagnostics(&u2, 1);
    c.change(
        &u2,
        2,
        json!([
            { "range": { "start": pos(0, 4), "end": pos(0, 4) }, "text": "é" },
            { "range": { "start": pos(1, 500), "end": pos(1, 999) }, "text": " " },
            { "range": { "start": pos(4000, 1), "end": pos(9000, 0) }, "text": "\n// end" },
        ]),
    );
    let d = c.diagnostics(&u2, 2);
    assert!(
        d.iter().any(|d| d["code"] == "uh::check::undefined"),
        "{d:#?}"
    );
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u2 }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let new = r["result"][0]["newText"]
        .as_str()
        .expect("the edited text formats");
    assert!(
        new.starts_with("// é𝄞 clef\n") && new.contains("// end"),
        "{new}"
    );

    // 1 000 edits in a burst: every one applied, in order; the diagnostics that follow are
    // of the last version.
    let u3 = uri(&c.dir.join("burst.uh"));
    c.open(&u3, "");
    for v in 2..=1001 {
        c.change(
            &u3,
            v,
            json!([{ "range": { "start": pos(0, 0), "end": pos(0, 0) }, "text": "x" }]),
        );
    }
    let r = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": u3 }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    assert_eq!(r["result"], Value::Null, "1 000 `x`s do not parse: {r}");
    let d = c.diagnostics(&u3, 1001);
    assert_eq!(d[0]["code"], "uh::syntax::parse", "{d:#?}");
    assert_eq!(d[0]["range"]["start"], pos(0, 0));

    // A 10 MB document: checked, answered, and the next request is not lost.
    let u4 = uri(&c.dir.join("big.uh"));
    let mut big = String::from(TYPO);
    let filler = "// a comment line to make the document large enough for the test\n";
    while big.len() < 10_000_000 {
        big.push_str(filler);
    }
    c.open(&u4, &big);
    let (l, col) = find(&big, "linaer");
    let op = c.request("textDocument/hover", at(&u4, l, col));
    assert!(
        op["result"]["contents"]["value"]
            .as_str()
            .unwrap_or("")
            .contains("not an operation"),
        "{op}"
    );
    let d = c.diagnostics(&u4, 1);
    assert_eq!(d[0]["code"], "uh::check::op", "{d:#?}");

    let (code, stderr) = c.shutdown();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `exit` without `shutdown` is exit code 1, as the protocol says; requests after
/// `shutdown` are refused.
#[test]
fn exit_codes_follow_the_protocol() {
    let mut c = Client::start("exit");
    c.notify("exit", Value::Null);
    let status = c.child.wait().expect("exit status");
    assert_eq!(status.code(), Some(1));

    let mut c = Client::start("exit2");
    let r = c.request("shutdown", Value::Null);
    assert_eq!(r["result"], Value::Null);
    let r = c.request("textDocument/hover", at("file:///x.uh", 0, 0));
    assert_eq!(r["error"]["code"], -32600, "{r}");
    c.notify("exit", Value::Null);
    assert_eq!(c.child.wait().expect("exit status").code(), Some(0));
}

/// The VS Code grammar colours every keyword of the parser, every op of the catalog and
/// every unit: it cannot drift from the compiler's tables.
#[test]
fn vscode_grammar_knows_every_op_and_unit() {
    let path = super::root().join("editors/vscode/syntaxes/uh.tmLanguage.json");
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("grammar")).expect("JSON");
    let words = |pattern: &str| -> Vec<String> {
        let inner = pattern
            .split("\\b(")
            .nth(1)
            .or_else(|| pattern.split("\\s*(").nth(1))
            .expect("a group");
        inner
            .split(')')
            .next()
            .unwrap()
            .split('|')
            .map(str::to_string)
            .collect()
    };
    let ops = words(g["repository"]["op"]["match"].as_str().unwrap());
    let mut catalog: Vec<String> = uhc::check::ops::CATALOG
        .iter()
        .map(|o| o.name.to_string())
        .collect();
    catalog.sort();
    let mut ops_sorted = ops.clone();
    ops_sorted.sort();
    assert_eq!(ops_sorted, catalog, "the grammar's ops are the catalog's");
    let mut keywords = words(g["repository"]["keyword"]["match"].as_str().unwrap());
    keywords.sort();
    let pest = std::fs::read_to_string(super::root().join("grammar/uh.pest")).expect("grammar");
    let rule = pest
        .lines()
        .find(|l| l.starts_with("keyword"))
        .expect("the keyword rule");
    let mut language: Vec<String> = rule
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|w| *w != "_")
        .map(str::to_string)
        .collect();
    language.sort();
    assert_eq!(
        keywords, language,
        "the grammar's keywords are the parser's"
    );
    let units = words(g["repository"]["quantity"]["match"].as_str().unwrap());
    for (u, _, _) in uhc::check::units::UNITS {
        assert!(
            *u == "%" || units.iter().any(|x| x == u),
            "unit `{u}` in the grammar: {units:?}"
        );
    }
}

/// Related places become related information, in the file itself or in the standard
/// library (its file written read-only to the cache).
#[test]
fn related_information_points_at_the_other_place() {
    let mut c = Client::start("related");
    let dir = c.dir.clone();
    let dup = "use \"hw/mzi.uh\"\n\narch a on mzi_realistic {\n    input x: real[16]\n    h = linear(x, 16)\n    h = modrelu(h)\n    y = linear(h, 10)\n    output detect(y)\n}\n";
    let (_, u) = write(&dir, "dup.uh", dup);
    c.open(&u, dup);
    let d = c.diagnostics(&u, 1);
    assert_eq!(d[0]["code"], "uh::check::duplicate", "{d:#?}");
    assert_eq!(d[0]["range"]["start"]["line"], 5);
    let rel = &d[0]["relatedInformation"][0];
    assert_eq!(rel["location"]["uri"], u.as_str(), "{d:#?}");
    assert_eq!(rel["location"]["range"]["start"], pos(4, 4), "{d:#?}");

    let redefined = "use \"hw/mzi.uh\"\n\nhardware mzi_realistic {\n    backend mzi { mesh = clements, max_ports = 32 }\n}\n";
    let (_, u2) = write(&dir, "redefined.uh", redefined);
    c.open(&u2, redefined);
    // `uhc check` reports this one at the stdlib's definition (the second, in load order),
    // so it is published on the stdlib file's read-only copy, pointing back here.
    assert_eq!(c.diagnostics(&u2, 1), Vec::<Value>::new());
    let v = c.wait_for("diagnostics of the stdlib copy", |v| {
        v["params"]["uri"].as_str().is_some_and(|s| {
            s.ends_with(concat!(
                "/cache/uhc/stdlib-",
                env!("CARGO_PKG_VERSION"),
                "/hw/mzi.uh"
            ))
        })
    });
    let d = &v["params"]["diagnostics"][0];
    assert_eq!(d["code"], "uh::check::duplicate", "{v:#}");
    assert_eq!(
        d["relatedInformation"][0]["location"]["uri"],
        u2.as_str(),
        "{v:#}"
    );
    assert_eq!(
        d["relatedInformation"][0]["location"]["range"]["start"],
        pos(2, 9),
        "{v:#}"
    );
}

/// Problems in a `use`d file that is not open are published on that file, as `uhc check`
/// reports them, and cleared when the importing file closes.
#[test]
fn problems_in_used_files_are_published_there() {
    let mut c = Client::start("foreign");
    let dir = c.dir.clone();
    let lib =
        "use \"hw/mzi.uh\"\nhardware lab extends mzi_realistic {\n    noise { crosstalk = 3 }\n}\n";
    let main = "use \"lab.uh\"\n";
    let (_, lu) = write(&dir, "lab.uh", lib);
    let (_, mu) = write(&dir, "main.uh", main);
    c.open(&mu, main);
    assert_eq!(c.diagnostics(&mu, 1), Vec::<Value>::new());
    let v = c.wait_for("diagnostics of lab.uh", |v| {
        v["params"]["uri"] == lu.as_str()
    });
    let d = v["params"]["diagnostics"].as_array().unwrap();
    assert_eq!(v["params"]["version"], Value::Null);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["code"], "uh::check::range");
    assert_eq!(d[0]["range"]["start"]["line"], 2);
    c.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": mu } }),
    );
    c.wait_for("lab.uh cleared", |v| {
        v["params"]["uri"] == lu.as_str() && v["params"]["diagnostics"] == json!([])
    });
}

/// Names across items: a search's task, hardware and seeds go to their definitions, have
/// their references, hover with a summary, and complete where they are expected.
#[test]
fn items_named_by_a_search() {
    let mut c = Client::start("search");
    let text = std::fs::read_to_string(super::root().join("examples/digits_search.uh")).unwrap();
    let (_, u) = write(&c.dir.clone(), "search.uh", &text);
    c.open(&u, &text);
    assert_eq!(c.diagnostics(&u, 1), Vec::<Value>::new());
    let task_def = find(&text, "task digits4");
    let (l, col) = find(&text, "task = digits4");
    let r = c.request("textDocument/definition", at(&u, l, col + 8));
    assert_eq!(
        r["result"]["range"]["start"],
        pos(task_def.0, task_def.1 + 5),
        "{r}"
    );
    let h = hover_text(&mut c, &u, (l, col + 8));
    assert!(
        h.contains("task `digits4`") && h.contains("10 classes"),
        "{h}"
    );
    let (l, col) = find(&text, "hardware = mzi_realistic");
    let h = hover_text(&mut c, &u, (l, col + 12));
    assert!(
        h.contains("hardware `mzi_realistic`") && h.contains("ops: encode, linear"),
        "{h}"
    );

    let seed = find(&text, "arch seed_small");
    let r = c.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": u }, "position": pos(seed.0, seed.1 + 6), "context": { "includeDeclaration": true } }),
    );
    let lines: Vec<u64> = r["result"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        [seed.0 as u64, find(&text, "seeds [").0 as u64],
        "{r}"
    );

    let edited = text.replace("    task = digits4\n", "    task = \n");
    c.change(&u, 2, json!([{ "text": edited }]));
    let (l, col) = find(&edited, "task = \n");
    let r = c.request("textDocument/completion", at(&u, l, col + 7));
    let labels: Vec<&str> = r["result"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["digits4"], "{r}");
}

/// Random edits at random (often invalid) positions, each followed by a random request at
/// a random position, straight into the server's handler: every request gets exactly one
/// response, and none is the internal error a caught panic becomes.
#[test]
fn random_edits_and_requests_never_panic() {
    use lsp_server::{Message, Notification, Request, RequestId};
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let dir = scratch("random");
    let mut s = uhc::lsp::Server::new(dir.join("stdlib"));
    let note = |method: &str, params: Value| {
        Message::Notification(Notification::new(method.into(), params))
    };
    s.handle(Message::Request(Request::new(
        RequestId::from(0),
        "initialize".into(),
        json!({ "capabilities": {} }),
    )));
    let u = uri(&dir.join("r.uh"));
    let text = std::fs::read_to_string(super::root().join("examples/digits_search.uh")).unwrap();
    s.handle(note(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": u, "languageId": "uh", "version": 1, "text": text } }),
    ));
    let pieces = [
        "",
        "x",
        "}",
        "{",
        "(",
        "linear(",
        " = ",
        "\n",
        "é",
        "𝄞",
        "\"",
        "// c\n",
        "16 pJ",
        "arch a on mzi_realistic {\n",
        "on",
        "]",
    ];
    let methods = [
        "textDocument/hover",
        "textDocument/definition",
        "textDocument/references",
        "textDocument/completion",
        "textDocument/formatting",
        "textDocument/codeAction",
        "textDocument/documentSymbol",
        "textDocument/semanticTokens/full",
        "textDocument/prepareRename",
        "textDocument/rename",
    ];
    assert_eq!(s.take_output().len(), 1, "the answer to `initialize`");
    let mut responses = 1;
    let mut answered = 0;
    for i in 0..2000u32 {
        let p =
            |rng: &mut rand::rngs::StdRng| pos(rng.random_range(0..50), rng.random_range(0..90));
        let (a, b) = (p(&mut rng), p(&mut rng));
        let piece = pieces[rng.random_range(0..pieces.len())];
        s.handle(note(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": u, "version": i + 2 }, "contentChanges": [{ "range": { "start": a, "end": b }, "text": piece }] }),
        ));
        let method = methods[rng.random_range(0..methods.len())];
        let at = p(&mut rng);
        let params = json!({
            "textDocument": { "uri": u }, "position": at, "context": { "includeDeclaration": true, "diagnostics": [], "triggerKind": 1 },
            "range": { "start": at, "end": p(&mut rng) }, "options": { "tabSize": 4, "insertSpaces": true },
            "newName": "renamed_x",
        });
        s.handle(Message::Request(Request::new(
            RequestId::from(i as i32 + 1),
            method.into(),
            params,
        )));
        if i % 7 == 0 {
            s.flush();
        }
        for m in s.take_output() {
            if let Message::Response(r) = m {
                assert_eq!(r.id, RequestId::from(i as i32 + 1));
                match &r.response_result {
                    // Renaming may be refused (a stdlib name, an undefined one), with a
                    // reason; nothing else may fail.
                    Err(e)
                        if method.contains("ename")
                            && e.code == lsp_server::ErrorCode::RequestFailed as i32 => {}
                    Err(e) => panic!("`{method}` after {i} edits failed: {e:?}"),
                    Ok(v) => answered += usize::from(!v.is_null() && *v != json!([])),
                }
                responses += 1;
            }
        }
    }
    assert_eq!(
        responses, 2001,
        "one response per request, the initialize included"
    );
    eprintln!("{answered} of 2000 requests had a non-empty answer");
    // 303 with this seed: the edits soon leave little that parses, but not nothing.
    assert!(
        answered >= 100,
        "random positions still find something: {answered}"
    );
}

/// `edits` (LSP `TextEdit`s on ASCII text) applied to `text`, last first.
fn apply_edits(text: &str, edits: &Value) -> String {
    let offset = |p: &Value| {
        let (line, ch) = (
            p["line"].as_u64().unwrap() as usize,
            p["character"].as_u64().unwrap() as usize,
        );
        text.split_inclusive('\n')
            .take(line)
            .map(str::len)
            .sum::<usize>()
            + ch
    };
    let mut edits: Vec<(usize, usize, String)> = edits
        .as_array()
        .expect("edits")
        .iter()
        .map(|e| {
            (
                offset(&e["range"]["start"]),
                offset(&e["range"]["end"]),
                e["newText"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_string();
    for (start, end, new) in edits {
        out.replace_range(start..end, &new);
    }
    out
}

/// Rename reaches every place the compiler sees the name (the definition in a used file,
/// this document, another open document using the same file) and nothing else (a value of
/// another arch with the same name); refuses what cannot be renamed, saying why; the
/// outline lists items and an arch's values.
#[test]
fn rename_and_outline() {
    let mut c = Client::start("rename");
    let dir = c.dir.clone();
    let lib = "use \"hw/mzi.uh\"\n\nhardware mine extends mzi_realistic {\n    noise { phase_sigma = 0.02 rad }\n}\n";
    let main = "use \"lib.uh\"\n\narch a on mine {\n    input x: real[16]\n    h = linear(x, 16)\n    output detect(linear(modrelu(h), 10))\n}\n\narch b on mine {\n    input x: real[16]\n    h = linear(x, 12)\n    output detect(h)\n}\n";
    let other = "use \"lib.uh\"\n\narch c on mine {\n    input x: real[4]\n    output detect(linear(x, 4))\n}\n";
    let (_, lib_u) = write(&dir, "lib.uh", lib);
    let (_, main_u) = write(&dir, "main.uh", main);
    let (_, other_u) = write(&dir, "other.uh", other);
    for (u, t) in [(&lib_u, lib), (&main_u, main), (&other_u, other)] {
        c.open(u, t);
        assert_eq!(c.diagnostics(u, 1), Vec::<Value>::new(), "{u}");
    }

    // An item: its definition in lib.uh, both uses in main.uh, the use in other.uh.
    let (l, col) = find(main, "on mine");
    let r = c.request("textDocument/prepareRename", at(&main_u, l, col + 4));
    assert_eq!(r["result"]["start"], pos(l, col + 3), "{r}");
    let mut params = at(&main_u, l, col + 4);
    params["newName"] = json!("ours");
    let r = c.request("textDocument/rename", params);
    let changes = &r["result"]["changes"];
    assert_eq!(changes.as_object().map(|o| o.len()), Some(3), "{r}");
    let renamed_main = apply_edits(main, &changes[main_u.as_str()]);
    assert_eq!(renamed_main, main.replace("on mine", "on ours"));
    assert_eq!(
        apply_edits(lib, &changes[lib_u.as_str()]),
        lib.replace("hardware mine", "hardware ours")
    );
    assert_eq!(
        apply_edits(other, &changes[other_u.as_str()]),
        other.replace("on mine", "on ours")
    );

    // A value: only within its own arch.
    let (l, col) = find(main, "modrelu(h)");
    let mut params = at(&main_u, l, col + 8);
    params["newName"] = json!("hidden");
    let r = c.request("textDocument/rename", params);
    let renamed = apply_edits(main, &r["result"]["changes"][main_u.as_str()]);
    assert_eq!(
        renamed,
        main.replacen("h = linear(x, 16)", "hidden = linear(x, 16)", 1)
            .replace("modrelu(h)", "modrelu(hidden)"),
        "{r}"
    );

    // Refusals, with the reason.
    let refused = |c: &mut Client, needle: &str, shift: u32, new: &str| {
        let (l, col) = find(main, needle);
        let mut params = at(&main_u, l, col + shift);
        params["newName"] = json!(new);
        let r = c.request("textDocument/rename", params);
        r["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("refused: {r}"))
            .to_string()
    };
    assert!(refused(&mut c, "on mine", 4, "arch").contains("not a name"));
    assert!(refused(&mut c, "on mine", 4, "2x").contains("not a name"));
    assert!(refused(&mut c, "arch a", 5, "b").contains("an arch named `b` exists already"));
    let (l, col) = find(lib, "extends mzi_realistic");
    let r = c.request("textDocument/prepareRename", at(&lib_u, l, col + 10));
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("standard library"), "{r}");
    let r = c.request("textDocument/prepareRename", at(&main_u, 0, 1));
    assert_eq!(r["result"], Value::Null, "nothing to rename on `use`: {r}");

    // The outline.
    let r = c.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": main_u } }),
    );
    let items = r["result"].as_array().expect("symbols");
    let names: Vec<(&str, &str)> = items
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(names, [("a", "on mine"), ("b", "on mine")], "{r}");
    let values: Vec<&str> = items[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["x", "h"]);
    assert_eq!(items[0]["selectionRange"]["start"], pos(2, 5));
}

/// Semantic tokens colour from the compiler's reading: each word of a document gets the
/// kind the checker gives it (an op, a value, a profile from the stdlib, a unit, a choice),
/// keywords and comments included, strings hiding what looks like either.
#[test]
fn semantic_tokens_follow_the_compiler() {
    let mut c = Client::spawn("tokens");
    let r = c.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    let legend = &r["result"]["capabilities"]["semanticTokensProvider"]["legend"];
    let types: Vec<String> = legend["tokenTypes"]
        .as_array()
        .expect("a legend")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let modifiers: Vec<String> = legend["tokenModifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    c.notify("initialized", json!({}));
    let text = "use \"hw/mzi.uh\" // arch in a comment\n\nhardware mine extends mzi_realistic {\n    backend mzi { mesh = clements }\n    noise { phase_sigma = 0.02 rad }\n}\n\narch a on mine {\n    input x: real[16]\n    h = linear(x, 16)\n    output detect(linear(modrelu(h, bias = 0.1), 10))\n}\n";
    let (_, u) = write(&c.dir.clone(), "t.uh", text);
    c.open(&u, text);
    assert_eq!(c.diagnostics(&u, 1), Vec::<Value>::new());
    let r = c.request(
        "textDocument/semanticTokens/full",
        json!({ "textDocument": { "uri": u } }),
    );
    let data: Vec<u64> = r["result"]["data"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(data.len() % 5, 0);
    let lines: Vec<&str> = text.lines().collect();
    let (mut line, mut col) = (0usize, 0usize);
    let mut seen: Vec<(String, String, Vec<String>)> = Vec::new();
    for t in data.chunks(5) {
        if t[0] > 0 {
            col = 0;
        }
        line += t[0] as usize;
        col += t[1] as usize;
        let word = lines[line][col..col + t[2] as usize].to_string();
        let mods = (0..modifiers.len())
            .filter(|b| t[4] & (1 << b) != 0)
            .map(|b| modifiers[b].clone())
            .collect();
        seen.push((word, types[t[3] as usize].clone(), mods));
    }
    let kind = |word: &str, nth: usize| -> (String, Vec<String>) {
        let (_, k, m) = seen
            .iter()
            .filter(|(w, ..)| w == word)
            .nth(nth)
            .unwrap_or_else(|| panic!("`{word}` #{nth} in {seen:?}"));
        (k.clone(), m.clone())
    };
    let decl = vec!["declaration".to_string()];
    assert_eq!(kind("use", 0).0, "keyword");
    assert_eq!(kind("\"hw/mzi.uh\"", 0).0, "string");
    assert_eq!(kind("// arch in a comment", 0).0, "comment");
    assert_eq!(kind("mine", 0), ("struct".into(), decl.clone()));
    assert_eq!(
        kind("mzi_realistic", 0),
        ("struct".into(), vec!["defaultLibrary".to_string()])
    );
    assert_eq!(kind("backend", 0).0, "namespace");
    assert_eq!(kind("clements", 0).0, "enumMember");
    assert_eq!(kind("phase_sigma", 0).0, "property");
    assert_eq!(kind("0.02", 0).0, "number");
    assert_eq!(kind("rad", 0).0, "type");
    assert_eq!(kind("a", 0), ("class".into(), decl.clone()));
    assert_eq!(kind("mine", 1), ("struct".into(), vec![]));
    assert_eq!(kind("x", 0), ("variable".into(), decl.clone()));
    assert_eq!(kind("real", 0).0, "type");
    assert_eq!(kind("linear", 0).0, "function");
    assert_eq!(kind("x", 1), ("variable".into(), vec![]));
    assert_eq!(kind("bias", 0).0, "parameter");
    assert_eq!(kind("h", 1), ("variable".into(), vec![]));
    // The keyword once: the `arch` in the comment is the comment's.
    assert_eq!(
        seen.iter().filter(|(w, ..)| w == "arch").count(),
        1,
        "{seen:?}"
    );
}
