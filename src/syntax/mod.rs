//! The language front end: grammar, syntax tree, and the canonical printer (`uhc fmt`).

mod ast;
mod parse;
mod print;

pub use ast::*;
pub use parse::{parse, MAX_NESTING, MAX_SOURCE_BYTES};
pub use print::{format_parsed, format_source, print_file};

/// Reserved words of the language (`keyword` in `grammar/uh.pest`, which a test holds
/// this list to): never a name.
pub const KEYWORDS: [&str; 11] = [
    "use",
    "hardware",
    "extends",
    "arch",
    "on",
    "task",
    "search",
    "experiment",
    "input",
    "output",
    "constraint",
];

/// Whether `s` can name an item or a value: the grammar's `ident`, a letter or `_` then
/// letters, digits and `_`, and no keyword.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keyword list is the grammar's: the words of its `keyword` rule, no more, no less.
    #[test]
    fn keywords_are_the_grammars() {
        let pest = include_str!("../../grammar/uh.pest");
        let rule = pest
            .lines()
            .find(|l| l.starts_with("keyword"))
            .expect("a keyword rule");
        // The alternatives, before the rule's `!(ASCII_ALPHANUMERIC | "_")` tail.
        let alternatives = rule.split("~ !(").next().unwrap_or(rule);
        let mut words: Vec<&str> = alternatives.split('"').skip(1).step_by(2).collect();
        let mut ours = KEYWORDS.to_vec();
        words.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, words);
    }

    /// `is_name` agrees with the parser on names of an `arch`.
    #[test]
    fn names_are_what_the_parser_takes() {
        for (s, ok) in [
            ("a", true),
            ("_x1", true),
            ("arch2", true),
            ("experiments", true),
            ("experiment", false),
            ("on", false),
            ("", false),
            ("1x", false),
            ("h-1", false),
            ("é", false),
        ] {
            assert_eq!(is_name(s), ok, "{s:?}");
            let text = format!("arch {s} on h {{\n}}\n");
            let (_, diags) = parse(crate::diag::FileId(0), &text);
            assert_eq!(diags.is_empty(), ok, "{s:?}: {diags:?}");
        }
    }
}
