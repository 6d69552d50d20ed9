//! "Did you mean …?" by edit distance, and the fix that applies it when it is unambiguous.

use crate::diag::{Diagnostic, Fix};
use crate::syntax::Span;

/// Levenshtein distance, early-exiting on very long inputs (names are short).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Candidates within a distance that scales with the name's length, nearest first.
fn near<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<(usize, &'a str)> {
    let limit = (name.chars().count() / 3).max(1) + usize::from(name.len() > 6);
    let lower = name.to_lowercase();
    let mut v: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    v.sort_by_key(|(d, c)| (*d, c.len(), *c));
    v.dedup_by_key(|(_, c)| *c);
    v
}

/// The closest candidate within a distance that scales with the name's length.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    near(name, candidates).first().map(|(_, c)| *c)
}

/// The candidate `name` surely meant: the only one within reach, or the only one that
/// differs from it in letter case alone (`mw` → `mW`). `None` when two are plausible
/// (`noisy_accuracy` could be `_mean` or `_p5`): a fix applied without asking must not guess.
pub fn unique_closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let near = near(name, candidates);
    let only = match near.as_slice() {
        [(_, c)] => Some(*c),
        [(0, c), (d, _), ..] if *d > 0 => Some(*c),
        _ => None,
    };
    only.filter(|c| *c != name)
}

/// The fix that replaces `name` (under `span`) with its unique closest candidate.
pub fn rename_fix(name: &str, span: Span, candidates: &[&str]) -> Option<Fix> {
    let to = unique_closest(name, candidates.iter().copied())?;
    Some(Fix::replace(
        span,
        to,
        format!("replace `{name}` with `{to}`"),
    ))
}

impl Diagnostic {
    /// "did you mean …?" (or the list of what is allowed) as the help, with a fix when
    /// exactly one candidate is nearest.
    pub(crate) fn with_suggestion(
        self,
        name: &str,
        span: Span,
        candidates: &[&str],
        what: &str,
    ) -> Self {
        self.with_help(help_for(name, candidates, what))
            .with_fixes(rename_fix(name, span, candidates))
    }
}

/// `did you mean `x`?` or a list of what is allowed.
pub fn help_for(name: &str, candidates: &[&str], what: &str) -> String {
    match closest(name, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => format!("no {what} is defined here"),
        None if candidates.len() <= 12 => {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("known {what}s: {}", list.join(", "))
        }
        None => format!(
            "there are {} known {what}s; check the spelling",
            candidates.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("modrelu", "modrelu"), 0);
        assert_eq!(distance("modrelo", "modrelu"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_picks_near_names_only() {
        let ops = ["linear", "unitary", "modrelu", "detect"];
        assert_eq!(closest("modrelo", ops), Some("modrelu"));
        assert_eq!(closest("lienar", ops), Some("linear"));
        assert_eq!(closest("softmax", ops), None);
    }

    #[test]
    fn unique_closest_refuses_ties_and_identity() {
        assert_eq!(
            unique_closest("lienar", ["linear", "detect"]),
            Some("linear")
        );
        assert_eq!(unique_closest("h", ["h1", "h2"]), None);
        assert_eq!(unique_closest("h", ["h1", "h1"]), Some("h1"));
        assert_eq!(unique_closest("linear", ["linear"]), None);
        assert_eq!(unique_closest("NJ", ["J", "nJ", "mJ", "pJ"]), Some("nJ"));
        let metrics = [
            "noisy_accuracy_mean",
            "noisy_accuracy_std",
            "noisy_accuracy_p5",
        ];
        assert_eq!(unique_closest("noisy_accuracy", metrics), None);
    }
}
