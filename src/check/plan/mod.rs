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

    /// `item NAME` lacks the field `field` naming a `field` item: one error, unless the
    /// field is there (its bad value was reported already).
    fn missing_reference(
        &mut self,
        file: FileId,
        body: &syntax::Block,
        name: &Ident,
        item: &str,
        field: &str,
    ) {
        if body
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Field(f) if f.key.name == field))
        {
            return;
        }
        self.push(
            Diagnostic::error(
                code::MISSING_FIELD,
                file,
                name.span,
                format!("{item} `{}` names no {field}", name.name),
            )
            .with_label(format!("no `{field}`"))
            .with_help(format!("add `{field} = NAME` naming a `{field}` item")),
        );
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
