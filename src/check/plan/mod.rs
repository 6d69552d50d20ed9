//! `task` and `search` items: the experiment plan that training and search consume.

use super::model::*;
use super::units::Dim;
use super::{Cx, Located};
use crate::diag::{code, Diagnostic, FileId};
use crate::syntax::{self, Entry, Expr, Ident, Span};
use std::collections::HashMap;

mod experiment;
mod search;
mod task;

pub use experiment::seeds_for;
pub use search::SEARCH_FIELDS;
pub use task::{task_shape, TASK_FIELDS};

/// Entries of an item body as (key, entry) with duplicates and unknown keys reported.
fn keyed<'e>(
    cx: &mut Cx<'_>,
    file: FileId,
    entries: &'e [Entry],
    known: &[&str],
    place: &str,
    allow_constraints: bool,
) -> Vec<(&'e Ident, &'e Entry)> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for e in entries {
        let key = match e {
            Entry::Field(f) => &f.key,
            Entry::Section(s) => &s.name,
            Entry::Constraint(_) if allow_constraints => continue,
            other => {
                cx.misplaced_entry(file, other, place);
                continue;
            }
        };
        if !known.contains(&key.name.as_str()) {
            cx.unknown_key(file, key, place, known);
            continue;
        }
        if let Some(first) = seen.get(key.name.as_str()) {
            cx.duplicate_key(file, key, *first);
            continue;
        }
        seen.insert(&key.name, e.span());
        out.push((key, e));
    }
    out
}

impl Cx<'_> {
    fn field_value<'e>(&mut self, file: FileId, e: &'e Entry) -> Option<&'e Expr> {
        match e {
            Entry::Field(f) => Some(&f.value),
            Entry::Section(s) => {
                self.push(
                    Diagnostic::error(
                        code::VALUE,
                        file,
                        s.name.span,
                        format!("`{}` is a field, not a section", s.name.name),
                    )
                    .with_label("expected `= value`")
                    .with_help(format!("write `{} = …`", s.name.name)),
                );
                None
            }
            _ => None,
        }
    }

    fn section_body<'e>(&mut self, file: FileId, e: &'e Entry) -> Option<&'e [Entry]> {
        match e {
            Entry::Section(s) => Some(&s.body.entries),
            Entry::Field(f) => {
                self.push(
                    Diagnostic::error(
                        code::VALUE,
                        file,
                        f.key.span,
                        format!("`{}` is a section, not a field", f.key.name),
                    )
                    .with_label("expected `{ … }`")
                    .with_help(format!("write `{} {{ … }}`", f.key.name)),
                );
                None
            }
            _ => None,
        }
    }
}
