//! Tidy tests (after rust-analyzer's `xtask/src/tidy.rs`): they read the source tree as
//! text and fail on a forbidden pattern, with a message that says how to fix it. They
//! enforce the invariants ARCHITECTURE.md states as absences.

use std::path::{Path, PathBuf};

/// Every `.rs` file below `src/`, as (path relative to the repository with `/`, text).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src/ is readable")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&crate::root().join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("source is UTF-8");
            (crate::rel(&p), text)
        })
        .collect()
}

/// The lines of `text` that are code: comment lines dropped, and everything from the
/// first `#[cfg(test)]` on (tests may reach anywhere).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

fn is_test_file(path: &str) -> bool {
    path.ends_with("/tests.rs") || path.contains("/tests/")
}

/// Files outside `src/backend/` that still match on a backend kind, each with the reason
/// it has not moved yet. This list only shrinks: the test fails if a listed file is clean.
const BACKEND_MATCH_ALLOWED: &[(&str, &str)] = &[
    // (file, reason): none left. The profile schema moved behind `Backend::fields` and
    // `Backend::spec`.
];

#[test]
fn no_backend_matches_outside_backend() {
    let mut offenders = Vec::new();
    let mut clean_but_listed = Vec::new();
    for (path, text) in sources() {
        if path.starts_with("src/backend/") {
            continue;
        }
        let mut hits = Vec::new();
        for (n, line) in code_lines(&text) {
            for pat in ["BackendKind::", "BackendSpec::"] {
                for (i, _) in line.match_indices(pat) {
                    let rest = &line[i + pat.len()..];
                    if rest.starts_with(|c: char| c.is_ascii_uppercase()) {
                        hits.push(format!("{path}:{n}: {}", line.trim()));
                    }
                }
            }
        }
        let listed = BACKEND_MATCH_ALLOWED.iter().any(|(p, _)| *p == path);
        match (hits.is_empty(), listed) {
            (false, false) => offenders.extend(hits),
            (true, true) => clean_but_listed.push(path),
            _ => {}
        }
    }
    assert!(
        offenders.is_empty(),
        "code outside src/backend/ matches on a backend kind; ask the backend instead \
         (`hw.backend.backend()` gives the `uhc::backend::Backend`; add a method to the trait \
         if none says what you need):\n{}",
        offenders.join("\n")
    );
    assert!(
        clean_but_listed.is_empty(),
        "these files no longer match on a backend kind: remove them from \
         BACKEND_MATCH_ALLOWED in tests/it/tidy.rs: {clean_but_listed:?}"
    );
}

/// The stages, lowest first. A module may import only modules of a lower rank.
const STAGES: &[(&str, u32)] = &[
    ("span", 0),
    ("stdlib", 0),
    ("diag", 1),
    ("syntax", 2),
    ("check", 3),
    ("ir", 4),
    ("backend", 5),
    ("runtime", 6),
    // The facade's front end (`crate::compile`, `check_source`, `Compiled`): check + lower.
    ("compile", 7),
    ("compile_with", 7),
    ("check_source", 7),
    ("check_source_with", 7),
    ("Compiled", 7),
    ("driver", 7),
    ("fix", 8),
    ("data", 8),
    // The LLM client: an OpenAI-compatible client that knows nothing of the search.
    ("llm", 8),
    ("train", 9),
    ("search", 10),
    // The search's LLM operators: prompts, proposers, the repair loop (client + search).
    ("llm_ops", 11),
    // The language server: an edge like `cli`, asking the front end and `driver`.
    ("lsp", 12),
];

/// Upward imports that are allowed, with the reason.
const UPWARD_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "check",
        "backend",
        "the backend interface (the `Backend` trait, `backend::of`, the spec types) is asked \
         by every stage, as LLVM passes ask the TargetMachine; only its root, never \
         `backend::mzi`, `backend::digital` or `backend::aimc`",
    ),
    (
        "ir",
        "backend",
        "lowering asks the backend interface to lower its ops (root only, as above)",
    ),
];

/// Downward imports that are still refused, with the reason.
const DOWNWARD_FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "runtime",
        "check",
        "the runtime runs IR graphs: the checker's types it needs come through `ir`",
    ),
    (
        "runtime",
        "syntax",
        "the runtime runs IR graphs and never sees source text",
    ),
];

fn rank(module: &str) -> Option<u32> {
    STAGES.iter().find(|(m, _)| *m == module).map(|&(_, r)| r)
}

/// The top-level module a `src/` file belongs to (`None` for the facade and the binary).
fn module_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    let m = first.strip_suffix(".rs").unwrap_or(first);
    (m != "lib" && m != "main" && m != "cli").then_some(m)
}

#[test]
fn stages_import_only_lower_stages() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        if is_test_file(&path) {
            continue;
        }
        let Some(from) = module_of(&path) else {
            continue;
        };
        let Some(from_rank) = rank(from) else {
            offenders.push(format!(
                "{path}: module `{from}` has no stage; add it to STAGES in tests/it/tidy.rs \
                 and to ARCHITECTURE.md"
            ));
            continue;
        };
        for (n, line) in code_lines(&text) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let to: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let Some(to_rank) = rank(&to) else { continue };
                if let Some((_, _, why)) = DOWNWARD_FORBIDDEN
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == to)
                {
                    offenders.push(format!(
                        "{path}:{n}: `{from}` imports `{to}` ({why}): {}",
                        line.trim()
                    ));
                    continue;
                }
                if to == from || to_rank < from_rank {
                    continue;
                }
                let after = &rest[to.len()..];
                let interface_only = to == "backend"
                    && !after.starts_with("::mzi")
                    && !after.starts_with("::digital")
                    && !after.starts_with("::aimc");
                if interface_only
                    && UPWARD_ALLOWED
                        .iter()
                        .any(|(f, t, _)| *f == from && *t == to)
                {
                    continue;
                }
                offenders.push(format!(
                    "{path}:{n}: `{from}` (stage {from_rank}) imports `{to}` (stage {to_rank}): {}",
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a stage imports a higher one (the order is in STAGES, tests/it/tidy.rs, and \
         ARCHITECTURE.md): move the shared piece down, or invert the dependency (the higher \
         stage implements a trait of the lower one):\n{}",
        offenders.join("\n")
    );
}

/// The pure core: no files, environment, clock or console.
const CORE: &[&str] = &[
    "src/span.rs",
    "src/diag.rs",
    "src/stdlib.rs",
    "src/syntax/",
    "src/check/",
    "src/ir/",
    "src/backend/",
    "src/runtime/",
    // Training gets its data and a stop condition; it reads no clock and prints nothing.
    "src/train/",
];

#[test]
fn the_core_does_no_io() {
    let forbidden = [
        ("std::fs", "files are read in `driver` and `cli`"),
        ("std::env", "settings come in as values, from the CLI"),
        ("std::net", "the network is `llm`'s"),
        ("std::process", "processes are the CLI's"),
        ("Instant", "the clock is the search's and the CLI's"),
        ("SystemTime", "the clock is the search's and the CLI's"),
        ("println!", "output is rendered at the edge"),
        ("eprintln!", "output is rendered at the edge"),
        ("print!", "output is rendered at the edge"),
        ("eprint!", "output is rendered at the edge"),
        ("dbg!", "output is rendered at the edge"),
    ];
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        // A test module may build a deadline or print (tests reach anywhere).
        if !CORE.iter().any(|c| path.starts_with(c)) || path.ends_with("/tests.rs") {
            continue;
        }
        for (n, line) in code_lines(&text) {
            for (pat, why) in forbidden {
                let hit = line.match_indices(pat).any(|(i, _)| {
                    let before = line[..i].chars().next_back();
                    !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if hit {
                    offenders.push(format!("{path}:{n}: `{pat}` ({why}): {}", line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the core (syntax, check, ir, backend, runtime, train) does no I/O and reads no clock; pass \
         what it needs in as a value:\n{}",
        offenders.join("\n")
    );
}

/// The backend implementations, which only `src/backend/` names.
const BACKEND_IMPLS: &[&str] = &["mzi", "digital", "aimc"];

/// Whether `s` starts with the identifier `word` (not merely a longer name).
fn starts_with_word(s: &str, word: &str) -> bool {
    s.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn only_the_backend_names_its_implementations() {
    let mut offenders = Vec::new();
    for (path, text) in sources() {
        if path.starts_with("src/backend/") || is_test_file(&path) {
            continue;
        }
        let code: Vec<(usize, &str)> = code_lines(&text).collect();
        for &(n, line) in &code {
            for (i, _) in line.match_indices("backend::") {
                let rest = &line[i + "backend::".len()..];
                if let Some(m) = BACKEND_IMPLS.iter().find(|m| starts_with_word(rest, m)) {
                    offenders.push(format!("{path}:{n}: names `backend::{m}`: {}", line.trim()));
                }
            }
        }
        // `use crate::backend::{mzi, …}` (on one line or several) brings a module in by
        // its short name.
        let joined: String = code.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
        for (i, _) in joined.match_indices("backend::{") {
            let group = &joined[i + "backend::{".len()..];
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(j, _)| j);
            let names = group[..end].split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for m in names.filter(|w| BACKEND_IMPLS.contains(w)) {
                let line = joined[..i].lines().count().max(1);
                let n = code.get(line - 1).map_or(0, |&(n, _)| n);
                offenders.push(format!("{path}:{n}: imports `backend::{{{m}}}`"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "code outside src/backend/ names a backend implementation (`backend::mzi`, \
         `backend::digital`, `backend::aimc`); ask the `Backend` trait instead \
         (`graph.target.backend.backend()`; add a method to the trait, as \
         `Backend::weight_space` and `Backend::noise_model` do, if none says what you \
         need), and move what only one backend knows under src/backend/:\n{}",
        offenders.join("\n")
    );
}
