//! Decoding grammars: "one `arch` on hardware H for task T" as a context-free grammar,
//! generated from the op table ([`ops::CATALOG`], [`ops::result_domain`]) and the
//! checked hardware and task, for LLM servers that constrain sampling with a grammar.
//!
//! What the grammar enforces, so a model cannot get it wrong:
//! - only the ops H offers, each with its own named parameters (in table order);
//! - widths as literals in `1..=max` (H's ports or lanes);
//! - `input NAME: real[F]` with F the task's features;
//! - value domains: optical ops on light (real inputs are encoded implicitly), `detect`
//!   only of light, electronic ops only of real values, the output real;
//! - the output's width equal to the task's classes (a state bit tracks "current width
//!   = classes" through width-setting ops);
//! - at most `max_layers` layer lines, so every sentence is finite.
//!
//! Names come in two forms ([`Names`]). With free names a context-free grammar cannot
//! say that a name is bound on an earlier line, and bound once: the documented residue,
//! which the checker catches. Positional names (`x`, `h1`, `h2`, …), which LLM requests
//! carry, close it: the states already count layers, so each line's input is known. The
//! grammar describes canonical text (`uhc fmt`'s
//! layout: four-space indent, one layer per line) inside a ```` ```uh ```` fence, with no
//! comments and no arch-level `constraint` or `precision` lines (the search applies its
//! own constraints).

pub mod cfg;

use cfg::{alt, lit, opt, rule, seq, Expr, Grammar};

use super::model::{Domain, HardwareProfile, TaskSpec};
use super::ops::{self, ParamKind};

pub use crate::syntax::KEYWORDS;

/// Longest name the grammar lets a model write.
pub const MAX_NAME: usize = 16;
/// Layer lines (not counting `input` and `output`) in one architecture, by default.
pub const DEFAULT_MAX_LAYERS: usize = 10;

/// The rule names the tests' sampler binds (see [`cfg::Grammar::sample`]).
pub const DEF_NAME: &str = "def-name";
pub const REF_NAME: &str = "ref-name";

/// How values are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Names {
    /// Any name (never a keyword): every hand-written arch is a sentence, and what the
    /// grammar cannot say (a name bound on an earlier line, once) is left to the checker.
    Free,
    /// `x`, then `h1`, `h2`, … line by line, each layer taking the one before: the
    /// grammar's states already count layers, so binding becomes context-free and every
    /// sentence binds its names. What LLM requests carry.
    Positional,
}

/// What one decoding grammar is for.
#[derive(Clone, Copy, Debug)]
pub struct ArchGrammar<'a> {
    pub hardware: &'a HardwareProfile,
    pub features: usize,
    pub classes: usize,
    pub max_layers: usize,
    pub names: Names,
}

impl<'a> ArchGrammar<'a> {
    /// The grammar for candidates of a search on `hardware` for `task`: refused, with the
    /// reason, when the task's feature count is unknown or no architecture can fit.
    pub fn for_task(hardware: &'a HardwareProfile, task: &TaskSpec) -> Result<Self, String> {
        let features = task.features.ok_or_else(|| {
            format!(
                "task `{}`'s feature count is not known at compile time, so no grammar can fix the input width",
                task.name
            )
        })?;
        Ok(ArchGrammar {
            hardware,
            features,
            classes: task.classes,
            max_layers: DEFAULT_MAX_LAYERS,
            names: Names::Positional,
        })
    }

    /// Builds the grammar. Fails when no architecture on the hardware can take the input
    /// or produce the classes (widths above its ports or lanes, or no way to reach a
    /// real output of the right width within `max_layers`).
    pub fn build(&self) -> Result<Grammar, String> {
        let hw = self.hardware;
        let max = hw.backend.max_width();
        let kind = hw.backend.backend();
        if self.features == 0 || self.features > max {
            return Err(format!(
                "the task has {} features, but `{}` is {max} wide: no architecture on it can take the input",
                self.features, hw.name
            ));
        }
        if self.classes == 0 || self.classes > max {
            return Err(format!(
                "the task has {} classes, but `{}` is {max} wide: no architecture on it can produce them",
                self.classes, hw.name
            ));
        }
        let ops: Vec<&ops::OpSpec> = ops::CATALOG
            .iter()
            .filter(|o| hw.supports(o.name))
            .collect();
        let mut g = Grammar::default();
        // Transition table: for each state and op, where it leads.
        let states = State::ALL;
        let steps = |from: State| -> Vec<(State, &ops::OpSpec, Width)> {
            let mut out = Vec::new();
            for op in &ops {
                let Some(domain) = ops::result_domain(op.name, kind, from.domain) else {
                    continue;
                };
                if ops::sets_width(op.name) {
                    out.push((State { domain, fits: true }, *op, Width::Classes));
                    out.push((
                        State {
                            domain,
                            fits: false,
                        },
                        *op,
                        Width::Other,
                    ));
                } else {
                    out.push((State { domain, ..from }, *op, Width::Kept));
                }
            }
            out
        };
        let finishes_now = |s: State| s.is_output() || steps(s).iter().any(|(t, ..)| t.is_output());
        // live[d][s]: from state s with d layers written, an output can still be reached.
        let layers = self.max_layers;
        let mut live = vec![[false; 4]; layers + 1];
        for d in (0..=layers).rev() {
            for s in states {
                live[d][s.index()] = finishes_now(s)
                    || (d < layers && steps(s).iter().any(|(t, ..)| live[d + 1][t.index()]));
            }
        }
        let start = State {
            domain: Domain::Real,
            fits: self.features == self.classes,
        };
        if !live[0][start.index()] {
            return Err(format!(
                "no architecture of at most {layers} layers on `{}` turns {} real inputs into {} real outputs with the ops it offers ({})",
                hw.name,
                self.features,
                self.classes,
                ops.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
            ));
        }
        g.define(
            "arch",
            seq([
                lit("```uh\narch "),
                rule("ident"),
                lit(format!(" on {} {{\n    input ", hw.name)),
                self.def_name(0),
                lit(format!(": real[{}]\n", self.features)),
                rule(state_rule(0, start)),
            ]),
        );
        let end = lit("\n}\n```");
        // Each state's alternatives are one per op (and, for width-setting ops, per
        // "width = classes or not"), each call followed by the state it leads to: sentences
        // diverge at the op's name, so a server's grammar matcher keeps few parse stacks.
        // Breadth first, so the rules read in layer order.
        let mut pending = std::collections::VecDeque::from([(0usize, start)]);
        let mut seen = vec![(0usize, start)];
        while let Some((d, s)) = pending.pop_front() {
            let mut lines = Vec::new();
            let mut outputs = Vec::new();
            if s.is_output() {
                outputs.push(self.ref_name(d));
            }
            for (t, op, width) in steps(s) {
                let call = self.call(op, width, self.ref_name(d));
                if t.is_output() {
                    outputs.push(call.clone());
                }
                if d < layers && live[d + 1][t.index()] {
                    lines.push(seq([call, lit("\n"), rule(state_rule(d + 1, t))]));
                    if !seen.contains(&(d + 1, t)) {
                        seen.push((d + 1, t));
                        pending.push_back((d + 1, t));
                    }
                }
            }
            let mut alts = Vec::new();
            if !lines.is_empty() {
                alts.push(seq([
                    lit("    "),
                    self.def_name(d + 1),
                    lit(" = "),
                    alt(lines),
                ]));
            }
            if !outputs.is_empty() {
                alts.push(seq([lit("    output "), alt(outputs), end.clone()]));
            }
            g.define(state_rule(d, s), alt(alts));
        }
        if self.names == Names::Free {
            g.define(DEF_NAME, rule("ident"));
            g.define(REF_NAME, rule("ident"));
        }
        define_widths(&mut g, max, self.classes);
        define_ident(&mut g);
        g.define(
            "number",
            seq([
                opt(lit("-")),
                digit(),
                opt(digit()),
                opt(seq([
                    lit("."),
                    digit(),
                    opt(seq([digit(), opt(seq([digit(), opt(digit())]))])),
                ])),
            ]),
        );
        g.prune();
        Ok(g)
    }

    /// The name defined after `layers` layer lines (`layers` = 0: the input).
    fn def_name(&self, layers: usize) -> Expr {
        match self.names {
            Names::Free => rule(DEF_NAME),
            Names::Positional => lit(positional(layers)),
        }
    }

    /// The value available after `layers` layer lines: the last one defined.
    fn ref_name(&self, layers: usize) -> Expr {
        match self.names {
            Names::Free => rule(REF_NAME),
            Names::Positional => lit(positional(layers)),
        }
    }

    fn call(&self, op: &ops::OpSpec, width: Width, input: Expr) -> Expr {
        let mut parts = vec![lit(format!("{}(", op.name)), input];
        for p in op.params {
            match p.kind {
                ParamKind::Width => parts.push(seq([
                    lit(", "),
                    match width {
                        Width::Classes => lit(self.classes.to_string()),
                        _ => rule("width-other"),
                    },
                ])),
                ParamKind::Real => {
                    parts.push(opt(seq([lit(format!(", {} = ", p.name)), rule("number")])))
                }
                ParamKind::Choice(choices) => parts.push(opt(seq([
                    lit(format!(", {} = ", p.name)),
                    alt(choices.iter().map(|c| lit(*c))),
                ]))),
            }
        }
        parts.push(lit(")"));
        seq(parts)
    }
}

/// Where a value is in the grammar's automaton: its domain, and whether its width equals
/// the task's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    domain: Domain,
    fits: bool,
}

impl State {
    const ALL: [State; 4] = [
        State {
            domain: Domain::Real,
            fits: true,
        },
        State {
            domain: Domain::Real,
            fits: false,
        },
        State {
            domain: Domain::Complex,
            fits: true,
        },
        State {
            domain: Domain::Complex,
            fits: false,
        },
    ];
    fn index(self) -> usize {
        (self.domain == Domain::Complex) as usize * 2 + (!self.fits) as usize
    }
    fn is_output(self) -> bool {
        self.domain == Domain::Real && self.fits
    }
    fn tag(self) -> &'static str {
        match (self.domain, self.fits) {
            (Domain::Real, true) => "real-fit",
            (Domain::Real, false) => "real",
            (Domain::Complex, true) => "light-fit",
            (Domain::Complex, false) => "light",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    Kept,
    Classes,
    Other,
}

fn state_rule(layers: usize, s: State) -> String {
    format!("after{layers}-{}", s.tag())
}

/// `x` for the input, `h1`, `h2`, … for the layers.
fn positional(layers: usize) -> String {
    if layers == 0 {
        "x".into()
    } else {
        format!("h{layers}")
    }
}

fn digit() -> Expr {
    Expr::Class(vec![('0', '9')])
}

/// `width-other`: the literals `1..=max` except `classes`.
fn define_widths(g: &mut Grammar, max: usize, classes: usize) {
    g.define(
        "width-other",
        alt((1..=max)
            .filter(|&w| w != classes)
            .map(|w| lit(w.to_string()))),
    );
}

/// `ident`: `[a-z][a-z0-9_]*`, at most [`MAX_NAME`] characters, never a keyword. A
/// finite set of words is removed from a regular language by walking their trie: at
/// each keyword prefix the next character either continues a keyword (and the walk goes
/// on) or leaves every keyword behind (and any tail follows).
fn define_ident(g: &mut Grammar) {
    let tail = |n: usize| format!("id-tail{n}");
    let tail_chars = vec![('0', '9'), ('_', '_'), ('a', 'z')];
    g.define(tail(1), Expr::Class(tail_chars.clone()));
    for n in 2..MAX_NAME {
        g.define(
            tail(n),
            seq([Expr::Class(tail_chars.clone()), opt(rule(tail(n - 1)))]),
        );
    }
    fn prefix_rule(prefix: &str) -> String {
        if prefix.is_empty() {
            "ident".into()
        } else {
            format!("id-{prefix}")
        }
    }
    // Every proper prefix of a keyword (the empty one included) gets a rule.
    let mut prefixes: Vec<String> = vec![String::new()];
    for k in KEYWORDS {
        for i in 1..k.len() {
            let p = k[..i].to_string();
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
    }
    for prefix in &prefixes {
        let first = prefix.is_empty();
        let allowed: Vec<(char, char)> = if first {
            vec![('a', 'z')]
        } else {
            tail_chars.clone()
        };
        let mut next: Vec<char> = KEYWORDS
            .iter()
            .filter(|k| k.len() > prefix.len() && k.starts_with(prefix.as_str()))
            .filter_map(|k| k[prefix.len()..].chars().next())
            .collect();
        next.sort_unstable();
        next.dedup();
        let rest = MAX_NAME - prefix.len() - 1;
        let mut alts = Vec::new();
        for &c in &next {
            let continued = format!("{prefix}{c}");
            let inner = if KEYWORDS.contains(&continued.as_str()) {
                // A whole keyword: only a longer word is a name.
                if prefixes.contains(&continued) {
                    rule(prefix_rule(&continued))
                } else {
                    rule(tail(rest.min(MAX_NAME - 1)))
                }
            } else if prefixes.contains(&continued) {
                opt(rule(prefix_rule(&continued)))
            } else {
                opt(rule(tail(rest.max(1))))
            };
            alts.push(seq([lit(c.to_string()), inner]));
        }
        let others = subtract(&allowed, &next);
        if !others.is_empty() {
            alts.push(if rest == 0 {
                Expr::Class(others)
            } else {
                seq([Expr::Class(others), opt(rule(tail(rest)))])
            });
        }
        g.define(prefix_rule(prefix), alt(alts));
    }
}

/// `ranges` without the characters in `minus`.
fn subtract(ranges: &[(char, char)], minus: &[char]) -> Vec<(char, char)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        let mut start: Option<char> = None;
        let mut c = a;
        loop {
            let keep = !minus.contains(&c);
            match (keep, start) {
                (true, None) => start = Some(c),
                (false, Some(s)) => {
                    out.push((s, char::from_u32(c as u32 - 1).unwrap_or(s)));
                    start = None;
                }
                _ => {}
            }
            if c == b {
                break;
            }
            c = match char::from_u32(c as u32 + 1) {
                Some(n) => n,
                None => break,
            };
        }
        if let Some(s) = start {
            out.push((s, b));
        }
    }
    out
}

/// The canonical text of one `arch` as the grammar describes it: printed by `uhc fmt`
/// without comments, arch-level `constraint`/`precision` lines dropped, in a ```` ```uh ````
/// fence. For recognising hand-written architectures against a grammar.
pub fn fenced_canonical(arch: &crate::syntax::Arch) -> String {
    let mut a = arch.clone();
    a.body.entries.retain(|e| {
        !matches!(e, crate::syntax::Entry::Constraint(_))
            && !matches!(e, crate::syntax::Entry::Section(s) if s.name.name == "precision")
    });
    // `print_file` prints the tree alone: no comments.
    let text = crate::syntax::print_file(&crate::syntax::File {
        items: vec![crate::syntax::Item::Arch(a)],
    });
    format!("```uh\n{}\n```", text.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_removes_characters() {
        assert_eq!(
            subtract(&[('a', 'z')], &['a', 'c', 'z']),
            vec![('b', 'b'), ('d', 'y')]
        );
        assert_eq!(subtract(&[('0', '9')], &[]), vec![('0', '9')]);
    }

    #[test]
    fn ident_takes_names_and_refuses_keywords() {
        let mut g = Grammar::default();
        g.define("top", rule("ident"));
        define_ident(&mut g);
        assert!(g.undefined_refs().is_empty(), "{:?}", g.undefined_refs());
        for ok in [
            "x",
            "h1",
            "a_2",
            "on1",
            "o",
            "ont",
            "in",
            "inputs",
            "output_",
            "constrain",
            "constraints",
            "arch2",
            "hard",
            "u",
            "usex",
            "seed_small",
            "abcdefghijklmnop",
        ] {
            assert!(g.accepts(ok), "{ok}");
        }
        for bad in KEYWORDS
            .iter()
            .copied()
            .chain(["", "1x", "_x", "X", "h-1", "abcdefghijklmnopq"])
        {
            assert!(!g.accepts(bad), "{bad}");
        }
    }
}
