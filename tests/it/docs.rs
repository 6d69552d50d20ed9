//! Docs that cannot drift: every shell session in README.md and `book/src/*.md` runs
//! against the built `uhc`, and the book's diagnostics index is held to the ui cases.
//!
//! A session is a fenced `console` block: lines starting with `$ ` are commands, the lines
//! after one (up to the next command) are what it prints, standard output then standard
//! error. In expected output, `[..]` matches any text within a line and a line `...`
//! matches any number of lines: that is how paths and volatile numbers are masked, always
//! explicitly in the text. An HTML comment on the line before the fence sets up the block:
//!
//! - `<!-- session: dir=PATH -->` copies the files of `PATH` (relative to the repository)
//!   into a fresh temporary folder and runs the commands there (otherwise they run in the
//!   repository root, so such a session must only read files);
//! - `<!-- session: long args="--budget 4" -->` marks a long run: each `uhc` command gets
//!   the extra arguments, so the test runs it with a reduced budget (a `long` session
//!   without `args` is refused);
//! - several settings may be combined in one comment.
//!
//! Commands are `uhc …` (the binary under test) and `cat FILE`. Set `UPDATE_DOCS=1` to
//! rewrite the book's diagnostics index from the ui cases instead of failing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `console` block and its set-up.
struct Session {
    file: String,
    line: usize,
    dir: Option<String>,
    long: bool,
    extra_args: Vec<String>,
    body: Vec<String>,
}

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![super::root().join("README.md")];
    let mut book: Vec<PathBuf> = std::fs::read_dir(super::root().join("book/src"))
        .expect("book/src exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    book.sort();
    files.extend(book);
    files
}

/// Splits `key=value key="a b" flag` settings.
fn settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = rest.find([' ', '=']).unwrap_or(rest.len());
        let key = rest[..end].to_string();
        rest = &rest[end..];
        let value = if let Some(r) = rest.strip_prefix('=') {
            if let Some(r) = r.strip_prefix('"') {
                let close = r.find('"').expect("closing quote in a session setting");
                let v = r[..close].to_string();
                rest = &r[close + 1..];
                v
            } else {
                let close = r.find(' ').unwrap_or(r.len());
                let v = r[..close].to_string();
                rest = &r[close..];
                v
            }
        } else {
            String::new()
        };
        out.push((key, value));
        rest = rest.trim_start();
    }
    out
}

fn sessions(path: &Path) -> Vec<Session> {
    let text = std::fs::read_to_string(path).expect("doc is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_end();
        if fence == "```console" {
            let mut s = Session {
                file: super::rel(path),
                line: i + 1,
                dir: None,
                long: false,
                extra_args: Vec::new(),
                body: Vec::new(),
            };
            if let Some(setup) = i
                .checked_sub(1)
                .and_then(|p| lines[p].trim().strip_prefix("<!-- session:"))
                .and_then(|r| r.strip_suffix("-->"))
            {
                for (k, v) in settings(setup) {
                    match k.as_str() {
                        "dir" => s.dir = Some(v),
                        "args" => s.extra_args = v.split_whitespace().map(String::from).collect(),
                        "long" => s.long = true,
                        other => panic!("{}:{}: unknown session setting `{other}`", s.file, i),
                    }
                }
            }
            i += 1;
            while i < lines.len() && lines[i].trim_end() != "```" {
                s.body.push(lines[i].to_string());
                i += 1;
            }
            out.push(s);
        }
        i += 1;
    }
    out
}

/// `[..]` in `pattern` matches any text.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Expected lines (with `...` elisions) against actual lines.
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, arest)| line_matches(e, a) && lines_match(rest, arest)),
    }
}

fn split_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|_| panic!("{} exists", from.display())) {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn run(command: &str, cwd: &Path, extra: &[String]) -> Vec<String> {
    let words = split_words(command);
    let text = match words.first().map(String::as_str) {
        Some("uhc") => {
            let out = Command::new(env!("CARGO_BIN_EXE_uhc"))
                .args(&words[1..])
                .args(extra)
                .current_dir(cwd)
                .env("NO_COLOR", "1")
                .env_remove("UHC_LLM_URL")
                .env_remove("UHC_LLM_MODEL")
                .env_remove("OPENAI_BASE_URL")
                .output()
                .expect("uhc runs");
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
        Some("cat") => std::fs::read_to_string(cwd.join(&words[1])).unwrap_or_default(),
        _ => panic!("a session may run `uhc` or `cat`, not `{command}`"),
    };
    text.lines().map(|l| l.trim_end().to_string()).collect()
}

#[test]
fn every_console_session_runs() {
    let mut failures = Vec::new();
    let mut count = 0;
    for doc in doc_files() {
        for (n, s) in sessions(&doc).into_iter().enumerate() {
            let tmp = std::env::temp_dir().join(format!(
                "uhc-docs-{}-{}-{n}",
                std::process::id(),
                s.file.replace(['/', '.'], "_")
            ));
            let _ = std::fs::remove_dir_all(&tmp);
            if s.long && s.extra_args.is_empty() {
                failures.push(format!(
                    "{}:{}: a long session needs `args=\"…\"` to reduce its budget",
                    s.file, s.line
                ));
                continue;
            }
            let cwd = match &s.dir {
                Some(d) => {
                    copy_dir(&super::root().join(d), &tmp);
                    tmp.clone()
                }
                None => super::root().to_path_buf(),
            };
            let mut i = 0;
            while i < s.body.len() {
                let Some(command) = s.body[i].strip_prefix("$ ") else {
                    failures.push(format!("{}:{}: output before any command", s.file, s.line));
                    break;
                };
                let mut expected = Vec::new();
                i += 1;
                while i < s.body.len() && !s.body[i].starts_with("$ ") {
                    expected.push(s.body[i].trim_end().to_string());
                    i += 1;
                }
                count += 1;
                let actual = run(command, &cwd, &s.extra_args);
                if !lines_match(&expected, &actual) {
                    failures.push(format!(
                        "{}:{}: `{command}` printed\n{}\n--- but the doc says\n{}\n",
                        s.file,
                        s.line,
                        actual.join("\n"),
                        expected.join("\n")
                    ));
                }
            }
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    assert!(count >= 15, "only {count} documented commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A shell session is a `console` block, so the test above runs it: no `$ uhc` hides in a
/// `text` or `sh` block.
#[test]
fn sessions_are_console_blocks() {
    let mut hidden = Vec::new();
    for doc in doc_files() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let mut fence: Option<&str> = None;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_end();
            if let Some(info) = t.strip_prefix("```") {
                fence = match fence {
                    Some(_) if info.is_empty() => None,
                    Some(f) => Some(f),
                    None => Some(info),
                };
                continue;
            }
            if fence.is_some_and(|f| f != "console" && f != "sh") && t.starts_with("$ uhc") {
                hidden.push(format!("{}:{}: {t}", super::rel(&doc), n + 1));
            }
        }
    }
    assert!(
        hidden.is_empty(),
        "sessions outside `console` blocks:\n{}",
        hidden.join("\n")
    );
}

#[test]
fn matcher_masks_only_what_it_is_told() {
    assert!(line_matches("took [..] s", "took 1.25 s"));
    assert!(!line_matches("took [..] s", "took 1.25 ms"));
    assert!(!line_matches("exact", "exact "));
    let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(lines_match(
        &l(&["a", "...", "d"]),
        &l(&["a", "b", "c", "d"])
    ));
    assert!(!lines_match(&l(&["a", "...", "d"]), &l(&["a", "b", "c"])));
    assert!(!lines_match(&l(&["a"]), &l(&["a", "b"])));
}

/// One `Example (`case.uh`)` of the diagnostics index: the section's code, and the line
/// ranges (0-based, exclusive of fences) of its source and message blocks.
struct IndexExample {
    code: String,
    case: String,
    source: (usize, usize),
    message: (usize, usize),
}

/// The fenced block starting at or after `from`: (first content line, end fence line).
fn next_block(lines: &[&str], from: usize) -> Option<(usize, usize)> {
    let start = (from..lines.len()).find(|&i| lines[i].starts_with("```"))?;
    let ticks: String = lines[start].chars().take_while(|&c| c == '`').collect();
    let end = (start + 1..lines.len()).find(|&i| lines[i].trim_end() == ticks)?;
    Some((start + 1, end))
}

fn index_examples(lines: &[&str]) -> Vec<IndexExample> {
    let mut out = Vec::new();
    let mut code = String::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(c) = line.strip_prefix("## `").and_then(|r| r.strip_suffix('`')) {
            code = c.to_string();
        }
        let Some(case) = line
            .starts_with("Example")
            .then(|| line.split("(`").nth(1))
            .flatten()
            .and_then(|r| r.split("`)").next())
            .filter(|c| c.ends_with(".uh"))
        else {
            continue;
        };
        let Some(source) = next_block(lines, i + 1) else {
            continue;
        };
        let Some(message) = next_block(lines, source.1 + 1) else {
            continue;
        };
        out.push(IndexExample {
            code: code.clone(),
            case: case.to_string(),
            source,
            message,
        });
    }
    out
}

/// The book's diagnostics index shows, for each example, the ui case's text (without its
/// `// expect:` line) and exactly what `uhc check` prints for it (the diagnostics of the
/// section's code, or all of them when the book shows others too). A message change fails
/// here; `UPDATE_DOCS=1 cargo test --test it diagnostics_index` rewrites the index.
#[test]
fn diagnostics_index_matches_the_ui_cases() {
    let path = super::root().join("book/src/diagnostics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let examples = index_examples(&lines);
    assert!(
        examples.len() >= 30,
        "only {} examples found",
        examples.len()
    );
    let mut replacements: Vec<((usize, usize), Vec<String>)> = Vec::new();
    let mut failures = Vec::new();
    for ex in &examples {
        let case_path = super::root().join("tests/ui").join(&ex.case);
        let Ok(case) = std::fs::read_to_string(&case_path) else {
            failures.push(format!("{}: no ui case tests/ui/{}", ex.code, ex.case));
            continue;
        };
        let body: String = case.split_once('\n').map(|(_, b)| b).unwrap_or("").into();
        let (_, diags, sources) =
            uhc::check_source_with(&ex.case, &body, &uhc::check::StdlibResolver);
        let shown: Vec<String> = lines[ex.message.0..ex.message.1]
            .iter()
            .filter(|l| l.starts_with("uh::"))
            .map(|l| l.trim().to_string())
            .collect();
        let all = shown.iter().any(|c| *c != ex.code);
        let picked: Vec<_> = diags
            .into_iter()
            .filter(|d| all || d.code == ex.code)
            .collect();
        let rendered: Vec<String> = sources
            .render_human(&picked, false)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        let book_source: Vec<String> = lines[ex.source.0..ex.source.1]
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
        let case_lines: Vec<String> = body.lines().map(|l| l.trim_end().to_string()).collect();
        if book_source != case_lines {
            failures.push(format!(
                "{} ({}): the example is not the ui case",
                ex.code, ex.case
            ));
            replacements.push((ex.source, case_lines));
        }
        let book_message: Vec<String> = lines[ex.message.0..ex.message.1]
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect();
        if book_message != rendered {
            failures.push(format!(
                "{} ({}): the book shows\n{}\n--- but uhc prints\n{}\n",
                ex.code,
                ex.case,
                book_message.join("\n"),
                rendered.join("\n")
            ));
            replacements.push((ex.message, rendered));
        }
    }
    if !failures.is_empty() && std::env::var_os("UPDATE_DOCS").is_some() {
        replacements.sort_by_key(|r| std::cmp::Reverse(r.0 .0));
        let mut new: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for ((start, end), with) in replacements {
            new.splice(start..end, with);
        }
        std::fs::write(&path, new.join("\n") + "\n").unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "book/src/diagnostics.md is out of date (UPDATE_DOCS=1 rewrites it):\n{}",
        failures.join("\n")
    );
}
