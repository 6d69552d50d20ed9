//! No input makes the compiler panic or hang, and every diagnostic points inside its file.

use proptest::prelude::*;
use uhc::check::StdlibResolver;

/// Token-level mutations: delete, duplicate or replace a token; flip a byte.
pub fn mutate(text: &str, ops: &[(u8, prop::sample::Index, prop::sample::Index)]) -> String {
    let mut tokens: Vec<String> = tokenize(text);
    for (kind, a, b) in ops {
        if tokens.is_empty() {
            break;
        }
        let i = a.index(tokens.len());
        match kind {
            0 => {
                tokens.remove(i);
            }
            1 => {
                let t = tokens[b.index(tokens.len())].clone();
                tokens.insert(i, t);
            }
            _ => {
                let t = &mut tokens[i];
                let mut bytes = t.clone().into_bytes();
                if !bytes.is_empty() {
                    let j = b.index(bytes.len());
                    bytes[j] ^= 1 << (j % 7);
                }
                *t = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    tokens.concat()
}

/// Runs of word characters are tokens; every other character is a token of its own.
fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        out.push(c.to_string());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Checks text and asserts every diagnostic span lies on char boundaries inside the file.
pub fn check_survives(text: &str) -> Vec<uhc::Diagnostic> {
    let (_, diags, sources) = uhc::check_source_with("input.uh", text, &StdlibResolver);
    for (i, d) in diags.iter().enumerate() {
        let file_text = sources.text(d.file);
        let r = d.span.range();
        assert!(
            r.start <= r.end && r.end <= file_text.len(),
            "span {r:?} outside file of {} bytes: {d:?}",
            file_text.len()
        );
        assert!(
            file_text.is_char_boundary(r.start) && file_text.is_char_boundary(r.end),
            "span {r:?} splits a character: {d:?}"
        );
        for rel in &d.related {
            assert!(rel.span.range().end <= sources.text(rel.file).len());
        }
        // Rendering must not panic either (each render scans the file: sample a few).
        if i < 8 {
            let _ = sources.render_human(std::slice::from_ref(d), false);
        }
    }
    diags
}

fn example_text() -> String {
    std::fs::read_to_string(super::root().join("examples/digits_small.uh")).expect("example exists")
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    for open in ["(", "[", "{"] {
        let text = format!("arch a on b {{ x = f{} }}", open.repeat(100_000));
        let diags = check_survives(&text);
        assert!(
            diags.iter().any(|d| d.code == "uh::syntax::nesting"),
            "{open}: {diags:?}"
        );
    }
}

#[test]
fn huge_file_gets_a_diagnostic() {
    let text = "x".repeat(17 * 1024 * 1024);
    let diags = check_survives(&text);
    assert_eq!(diags[0].code, "uh::syntax::too_large");
    // A 10 MB file of distinct valid items is checked, and a broken one at the end found.
    let mut text = String::with_capacity(10 * 1024 * 1024 + 64);
    let mut i = 0;
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(&format!("task t{i} {{ dataset = digits }}\n"));
        i += 1;
    }
    text.push_str("task broken { dataset = }\n");
    let diags = check_survives(&text);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].code, "uh::syntax::parse");
}

#[test]
fn binary_junk_and_markdown_get_diagnostics() {
    let junk: String = (0..4096u32)
        .map(|i| char::from_u32((i * 7919) % 0x2FF).unwrap_or('?'))
        .collect();
    assert!(!check_survives(&junk).is_empty());
    let markdown = format!(
        "Here is the architecture you asked for:\n\n```uh\n{}```\n\nIt should work well.",
        example_text()
    );
    let diags = check_survives(&markdown);
    assert!(
        diags.iter().any(|d| d.code == "uh::syntax::parse"
            && d.help.as_deref().unwrap_or("").contains("Markdown")),
        "{diags:?}"
    );
}

#[test]
fn empty_and_whitespace_files_are_fine() {
    assert!(check_survives("").is_empty());
    assert!(check_survives("  \n// only a comment\n").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutations_never_panic(ops in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..6)) {
        let text = mutate(&example_text(), &ops);
        check_survives(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_survives(&text);
    }
}
