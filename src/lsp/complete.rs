//! Completion. The context is read from the text before the cursor (the file being typed
//! rarely parses); what is offered comes from the compiler's tables (ops the profile
//! offers, profile fields, units of the field's dimension) and the last analysis's names.

use super::analysis::{Analysis, Ns};
use crate::check::profile_fields::{self as fields};
use crate::check::units::{self, Dim};
use crate::check::{ops, Metric, PROFILE_SECTIONS, SEARCH_FIELDS, TASK_FIELDS};
use lsp_types::{CompletionItem, CompletionItemKind};

/// An open `{` before the cursor: the text of its header (`arch a on h`) and its offset.
struct Open<'a> {
    header: &'a str,
    at: usize,
}

/// The enclosing blocks and the current entry's text up to the cursor, skipping comments
/// and strings.
fn context(text: &str) -> (Vec<Open<'_>>, &str) {
    let mut stack = Vec::new();
    let mut entry_start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                if end == text.len() {
                    return (stack, "");
                }
                i = end;
                continue;
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= bytes.len() {
                    break;
                }
                i = j + 1;
                continue;
            }
            b'{' => {
                stack.push(Open {
                    header: text[entry_start..i].trim(),
                    at: i,
                });
                entry_start = i + 1;
            }
            b'}' => {
                stack.pop();
                entry_start = i + 1;
            }
            b'\n' | b',' => entry_start = i + 1,
            _ => {}
        }
        i += 1;
    }
    (stack, text[entry_start.min(text.len())..].trim_start())
}

fn item(label: &str, kind: CompletionItemKind, detail: impl Into<String>) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail.into()),
        ..CompletionItem::default()
    }
}

/// The words of a header (`arch a on h` → `["arch", "a", "on", "h"]`).
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn names(a: Option<&Analysis>, kind: &'static str) -> Vec<CompletionItem> {
    let mut out: Vec<CompletionItem> = Vec::new();
    for s in a.map_or(&[][..], |a| &a.syms[..]) {
        if s.def && s.ns == Ns::Item(kind) && !out.iter().any(|o| o.label == s.name) {
            out.push(item(&s.name, CompletionItemKind::REFERENCE, kind));
        }
    }
    out
}

/// Completions at byte `offset` of `text` (the document's current text; `a` may be the
/// analysis of an earlier version).
pub fn complete(a: Option<&Analysis>, text: &str, offset: usize) -> Vec<CompletionItem> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let (stack, entry) = context(before);
    let w = words(entry);
    // The word being typed is not yet part of the context.
    let typing = !entry.is_empty() && !entry.ends_with(char::is_whitespace);
    let done = if typing { &w[..w.len() - 1] } else { &w[..] };
    let after_eq = entry.contains('=');
    match stack.as_slice() {
        [] => match done {
            ["arch", _, "on"] | ["hardware", _, "extends"] => names(a, "hardware"),
            [] => ["use", "hardware", "arch", "task", "search", "experiment"]
                .iter()
                .map(|k| item(k, CompletionItemKind::KEYWORD, "item"))
                .collect(),
            _ => Vec::new(),
        },
        [hw] if hw.header.starts_with("hardware") => {
            if entry.starts_with("ops") {
                ops::CATALOG
                    .iter()
                    .map(|o| item(o.name, CompletionItemKind::FUNCTION, o.signature))
                    .collect()
            } else if done.is_empty() {
                PROFILE_SECTIONS
                    .iter()
                    .map(|s| item(s, CompletionItemKind::MODULE, "profile section"))
                    .collect()
            } else {
                Vec::new()
            }
        }
        [hw, section] if hw.header.starts_with("hardware") => {
            profile_section(section.header, entry, done, after_eq)
        }
        [arch] if arch.header.starts_with("arch") => {
            arch_entry(a, arch, before, entry, done, after_eq)
        }
        [t] if t.header.starts_with("task") => match done {
            ["dataset", "="] => crate::stdlib::dataset_names()
                .into_iter()
                .map(|d| item(d, CompletionItemKind::VALUE, "built-in data set"))
                .collect(),
            [] => keys(TASK_FIELDS, "task field"),
            _ => Vec::new(),
        },
        [s] if s.header.starts_with("search") => match done {
            ["task", "="] => names(a, "task"),
            ["hardware", "="] => names(a, "hardware"),
            ["seeds", ..] => names(a, "arch"),
            [] => keys(SEARCH_FIELDS, "search field"),
            _ => Vec::new(),
        },
        [e] if e.header.starts_with("experiment") => match done {
            ["search", "="] => names(a, "search"),
            ["hardware", ..] => names(a, "hardware"),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn keys(list: &[&str], what: &str) -> Vec<CompletionItem> {
    list.iter()
        .map(|k| item(k, CompletionItemKind::FIELD, what))
        .collect()
}

fn profile_section(
    header: &str,
    entry: &str,
    done: &[&str],
    after_eq: bool,
) -> Vec<CompletionItem> {
    let hw = words(header);
    if hw.first() == Some(&"backend") {
        let Some(be) = hw.get(1).and_then(|k| crate::backend::by_name(k)) else {
            return crate::backend::names()
                .into_iter()
                .map(|n| item(n, CompletionItemKind::MODULE, "backend"))
                .collect();
        };
        return match done {
            [] => be
                .fields()
                .iter()
                .map(|f| item(f.name, CompletionItemKind::FIELD, be.block_name()))
                .collect(),
            [key, "="] => match be.fields().iter().find(|f| f.name == *key).map(|f| f.kind) {
                Some(crate::backend::FieldKind::Choice(c)) => c
                    .iter()
                    .map(|c| item(c, CompletionItemKind::ENUM_MEMBER, *key))
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
    }
    let section = hw.first().copied().unwrap_or("");
    if !after_eq {
        return fields::FIELDS
            .iter()
            .filter(|f| f.section == section)
            .map(|f| {
                item(
                    f.name,
                    CompletionItemKind::FIELD,
                    format!("{} — {}", f.dim.describe(), f.doc),
                )
            })
            .collect();
    }
    // `key = number ` → units of the key's dimension.
    let key = entry.split('=').next().unwrap_or("").trim();
    let number_typed = entry.split('=').nth(1).is_some_and(|v| {
        v.trim_start()
            .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
    });
    match fields::field(section, key) {
        Some(f) if number_typed && f.dim != Dim::None => units::UNITS
            .iter()
            .filter(|u| u.1 == f.dim)
            .map(|u| item(u.0, CompletionItemKind::UNIT, f.dim.describe()))
            .collect(),
        _ => Vec::new(),
    }
}

fn arch_entry(
    a: Option<&Analysis>,
    arch: &Open<'_>,
    before: &str,
    entry: &str,
    done: &[&str],
    after_eq: bool,
) -> Vec<CompletionItem> {
    if done.first() == Some(&"constraint") {
        return Metric::ALL
            .iter()
            .filter(|m| m.1.is_static())
            .map(|m| item(m.0, CompletionItemKind::PROPERTY, "static metric"))
            .collect();
    }
    if !(after_eq || entry.starts_with("output")) {
        return ["input", "output", "constraint"]
            .iter()
            .map(|k| item(k, CompletionItemKind::KEYWORD, "arch entry"))
            .collect();
    }
    // Ops the architecture's hardware offers (every op when the profile is unknown).
    let h = words(arch.header);
    let profile = h
        .iter()
        .position(|w| *w == "on")
        .and_then(|i| h.get(i + 1))
        .and_then(|name| a?.partial.checked.hardware(name));
    let mut out: Vec<CompletionItem> = ops::CATALOG
        .iter()
        .filter(|o| profile.is_none_or(|p| p.supports(o.name)))
        .map(|o| item(o.name, CompletionItemKind::FUNCTION, o.signature))
        .collect();
    // Values defined above the cursor in this block.
    let block = &before[arch.at + 1..];
    let above = block.rsplit_once('\n').map_or("", |(above, _)| above);
    for line in above.lines() {
        let l = line.trim();
        let name = match l.strip_prefix("input ") {
            Some(rest) => rest.split(':').next(),
            None => l.split_once('=').map(|(k, _)| k),
        };
        if let Some(n) = name.map(str::trim) {
            if !n.is_empty()
                && n.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !out.iter().any(|o| o.label == n)
            {
                out.push(item(n, CompletionItemKind::VARIABLE, "value"));
            }
        }
    }
    out
}
