//! Applying diagnostics' fixes to text: the engine behind `uhc fix` and the LLM repair loop.
//!
//! The checker attaches a [`Fix`](crate::diag::Fix) only where the intended text is
//! unambiguous; this module splices those edits into the text and nothing else, so
//! comments, layout and every byte outside an edit survive. It does no I/O: callers check
//! the text their own way (a file on disk, a candidate appended to a search's prelude) and
//! hand the diagnostics in.

use crate::check::Resolver;
use crate::diag::{Diagnostic, Edit, FileId, Sources};
use serde::Serialize;

/// How many check-and-fix rounds [`fix_source`] runs: one fix can uncover another (a
/// renamed value whose output then needs `detect`), but never an unbounded chain.
pub const MAX_ROUNDS: usize = 4;

/// Where the text being fixed sits in the file the checker saw: its first byte is at
/// `start` of `file` (a search checks each candidate as a file of its own, in an
/// environment, so `start` is 0 there); fixes in other files are not the text's to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub file: FileId,
    pub start: u32,
}

impl Region {
    /// The whole of `file`.
    pub fn file(file: FileId) -> Region {
        Region { file, start: 0 }
    }
}

/// A fix that was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppliedFix {
    /// The code of the diagnostic the fix came from.
    pub code: &'static str,
    pub description: String,
    /// Byte offset of the fix's first edit in the text it was applied to.
    pub start: u32,
    /// 1-based line of `start` in that text.
    pub line: usize,
}

/// Applies the first fix of each diagnostic in `region` to `text` (the region's text).
/// Fixes that overlap or touch one already taken are skipped (the next round of
/// [`fix_with`] gets them, re-checked); so are fixes that fall outside the text, off a
/// character boundary, or would change nothing. Returns the new text and what was applied,
/// in text order.
pub fn apply_fixes(text: &str, region: Region, diags: &[Diagnostic]) -> (String, Vec<AppliedFix>) {
    let mut candidates: Vec<(Vec<Edit>, &Diagnostic, &str)> = diags
        .iter()
        .filter(|d| d.file == region.file)
        .filter_map(|d| {
            let fix = d.fixes.first()?;
            let edits = local_edits(text, region.start, &fix.edits)?;
            Some((edits, d, fix.description.as_str()))
        })
        .collect();
    candidates.sort_by_key(|(edits, _, _)| edits.first().map(|e| (e.start, e.end)));

    let mut taken: Vec<Edit> = Vec::new();
    let mut applied = Vec::new();
    for (edits, d, description) in candidates {
        let clashes = edits
            .iter()
            .any(|e| taken.iter().any(|t| e.start <= t.end && t.start <= e.end));
        if clashes {
            continue;
        }
        let start = edits.first().map_or(0, |e| e.start);
        applied.push(AppliedFix {
            code: d.code,
            description: description.to_string(),
            start,
            line: text[..start as usize].matches('\n').count() + 1,
        });
        taken.extend(edits);
    }
    // Later edits first, so earlier offsets stay valid.
    taken.sort_by_key(|e| std::cmp::Reverse(e.start));
    let mut out = text.to_string();
    for e in &taken {
        out.replace_range(e.start as usize..e.end as usize, &e.replacement);
    }
    (out, applied)
}

/// A fix's edits moved into `text`'s offsets and sorted; `None` when any edit lies outside
/// the text or off a character boundary, two of them overlap, or together they change
/// nothing (applying such a fix again and again would never converge).
fn local_edits(text: &str, base: u32, edits: &[Edit]) -> Option<Vec<Edit>> {
    let mut local = Vec::with_capacity(edits.len());
    for e in edits {
        let start = e.start.checked_sub(base)?;
        let end = e.end.checked_sub(base)?;
        if start > end
            || !text.is_char_boundary(start as usize)
            || !text.is_char_boundary(end as usize)
        {
            return None;
        }
        local.push(Edit {
            start,
            end,
            replacement: e.replacement.clone(),
        });
    }
    local.sort_by_key(|e| (e.start, e.end));
    if local.windows(2).any(|w| w[1].start < w[0].end) || local.is_empty() {
        return None;
    }
    let changes = local
        .iter()
        .any(|e| text.get(e.start as usize..e.end as usize) != Some(e.replacement.as_str()));
    changes.then_some(local)
}

/// The result of [`fix_with`] or [`fix_source`].
#[derive(Clone, Debug)]
pub struct FixOutcome {
    /// The text with every applied fix.
    pub text: String,
    /// Every fix applied, round by round (lines refer to the text of their round).
    pub applied: Vec<AppliedFix>,
    /// The diagnostics of the final text, as `check` returned them.
    pub diagnostics: Vec<Diagnostic>,
    /// False when the rounds ran out with fixes still applicable; running again continues.
    pub converged: bool,
}

/// Checks `text` with `check`, applies the fixes, and repeats until no fix applies or
/// `max_rounds` rounds have changed the text. `check` returns where the text sits in the
/// file it checked (see [`Region`]) and the diagnostics; the last call's diagnostics are
/// those of the returned text. On converged output this is a no-op, so it is idempotent.
pub fn fix_with(
    text: &str,
    max_rounds: usize,
    mut check: impl FnMut(&str) -> (Region, Vec<Diagnostic>),
) -> FixOutcome {
    let mut text = text.to_string();
    let mut applied = Vec::new();
    let mut round = 0;
    loop {
        let (region, diagnostics) = check(&text);
        let (next, done) = apply_fixes(&text, region, &diagnostics);
        if done.is_empty() || next == text || round == max_rounds {
            let converged = done.is_empty() || next == text;
            return FixOutcome {
                text,
                applied,
                diagnostics,
                converged,
            };
        }
        applied.extend(done);
        text = next;
        round += 1;
    }
}

/// [`fix_with`] for a standalone file: each round runs the whole front end
/// ([`crate::compile`]: check, lower, static constraints) on `text` named `name`, with
/// `use` resolved by `resolver`. Also returns the sources of the final round, to render
/// the remaining diagnostics.
pub fn fix_source(name: &str, text: &str, resolver: &dyn Resolver) -> (FixOutcome, Sources) {
    let mut last = Sources::new();
    let outcome = fix_with(text, MAX_ROUNDS, |t| {
        let mut sources = Sources::new();
        let root = sources.add(name, t);
        let (_, diags) = crate::compile(&mut sources, root, resolver);
        last = sources;
        (Region::file(root), diags)
    });
    (outcome, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{code, Fix};
    use crate::syntax::Span;

    fn diag(file: u32, fix: Fix) -> Diagnostic {
        Diagnostic::error(code::OP, FileId(file), Span::new(0, 1), "m").with_fix(fix)
    }

    #[test]
    fn applies_later_edits_first_and_skips_overlaps() {
        let text = "a = linaer(x) # keep\nb = relo(a)\n";
        let d1 = diag(0, Fix::replace(Span::new(4, 10), "linear", "one"));
        let d2 = diag(0, Fix::replace(Span::new(25, 29), "relu", "two"));
        let clash = diag(0, Fix::replace(Span::new(6, 8), "zz", "clash"));
        let (out, applied) = apply_fixes(text, Region::file(FileId(0)), &[d2, clash, d1]);
        assert_eq!(out, "a = linear(x) # keep\nb = relu(a)\n");
        let what: Vec<&str> = applied.iter().map(|a| a.description.as_str()).collect();
        assert_eq!(what, ["one", "two"]);
        assert_eq!(applied[1].line, 2);
    }

    #[test]
    fn only_the_region_is_touched() {
        let prelude = "use \"hw/mzi.uh\"\n";
        let cand = "y = modrelo(h)";
        let base = prelude.len();
        let inside = diag(
            0,
            Fix::replace(Span::new(base + 4, base + 11), "modrelu", "in"),
        );
        let before = diag(0, Fix::replace(Span::new(0, 3), "xxx", "prelude"));
        let other_file = diag(1, Fix::replace(Span::new(base, base + 1), "q", "other"));
        let region = Region {
            file: FileId(0),
            start: base as u32,
        };
        let (out, applied) = apply_fixes(cand, region, &[before, other_file, inside]);
        assert_eq!(out, "y = modrelu(h)");
        assert_eq!(applied.len(), 1);
    }

    #[test]
    fn bad_edits_are_ignored() {
        let text = "é = 1";
        let region = Region::file(FileId(0));
        let off_boundary = diag(0, Fix::replace(Span::new(1, 2), "e", "mid-char"));
        let past_end = diag(0, Fix::replace(Span::new(3, 99), "e", "past end"));
        let no_op = diag(0, Fix::replace(Span::new(0, 2), "é", "nothing"));
        let (out, applied) = apply_fixes(text, region, &[off_boundary, past_end, no_op]);
        assert_eq!(out, text);
        assert!(applied.is_empty());
    }

    #[test]
    fn wrap_keeps_the_inner_text() {
        let text = "output y # light\n";
        let d = diag(0, Fix::wrap(Span::new(7, 8), "detect(", ")", "wrap"));
        let (out, _) = apply_fixes(text, Region::file(FileId(0)), &[d]);
        assert_eq!(out, "output detect(y) # light\n");
    }
}
