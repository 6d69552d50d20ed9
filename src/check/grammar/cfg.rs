//! A small context-free grammar: built once, rendered to the dialects LLM servers take
//! for constrained decoding (llama.cpp's GBNF, the Lark EBNF of vLLM's guided decoding),
//! and run here too: a recogniser and a random sampler test the very rules a server
//! receives, so what the model is forced to write and what the tests check cannot drift.

use rand::Rng;
use std::collections::HashMap;
use std::fmt::Write as _;

/// One grammar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Exactly this text.
    Lit(String),
    /// One character from these inclusive ranges.
    Class(Vec<(char, char)>),
    /// A named rule.
    Ref(String),
    Seq(Vec<Expr>),
    Alt(Vec<Expr>),
    Opt(Box<Expr>),
}

pub fn lit(s: impl Into<String>) -> Expr {
    Expr::Lit(s.into())
}
pub fn rule(name: impl Into<String>) -> Expr {
    Expr::Ref(name.into())
}
pub fn seq(items: impl IntoIterator<Item = Expr>) -> Expr {
    // Nested sequences are one sequence (`a (b c)` is `a b c`), and adjacent literals one
    // literal: the same language, fewer symbols for a server's matcher.
    let mut v: Vec<Expr> = Vec::new();
    let push = |v: &mut Vec<Expr>, e: Expr| match (v.last_mut(), e) {
        (Some(Expr::Lit(a)), Expr::Lit(b)) => a.push_str(&b),
        (_, e) => v.push(e),
    };
    for item in items {
        match item {
            Expr::Seq(inner) => inner.into_iter().for_each(|e| push(&mut v, e)),
            other => push(&mut v, other),
        }
    }
    if v.len() == 1 {
        v.pop().unwrap_or(Expr::Seq(Vec::new()))
    } else {
        Expr::Seq(v)
    }
}
pub fn alt(items: impl IntoIterator<Item = Expr>) -> Expr {
    let mut v: Vec<Expr> = items.into_iter().collect();
    if v.len() == 1 {
        v.pop().unwrap_or(Expr::Alt(Vec::new()))
    } else {
        Expr::Alt(v)
    }
}
pub fn opt(e: Expr) -> Expr {
    Expr::Opt(Box::new(e))
}

/// Rules in definition order; the first is the start rule. Rule names are
/// `[a-z][a-z0-9-]*` (GBNF's form); Lark gets them with `_` for `-`.
#[derive(Clone, Debug, Default)]
pub struct Grammar {
    rules: Vec<(String, Expr)>,
    index: HashMap<String, usize>,
}

/// The server dialects a grammar renders to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// llama.cpp (and llama-cpp-python's server): request field `grammar`.
    Gbnf,
    /// Lark EBNF, as vLLM's guided decoding takes it.
    Lark,
}

impl Dialect {
    pub const NAMES: [&'static str; 2] = ["gbnf", "lark"];
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Gbnf => "gbnf",
            Dialect::Lark => "lark",
        }
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gbnf" => Ok(Dialect::Gbnf),
            "lark" => Ok(Dialect::Lark),
            other => Err(format!(
                "`{other}` is not a grammar format; choose gbnf or lark"
            )),
        }
    }
}

impl Grammar {
    /// Adds (or replaces) a rule; the first rule added is the start rule.
    pub fn define(&mut self, name: impl Into<String>, body: Expr) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.rules[i].1 = body,
            None => {
                self.index.insert(name.clone(), self.rules.len());
                self.rules.push((name, body));
            }
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&Expr> {
        self.index.get(name).map(|&i| &self.rules[i].1)
    }

    pub fn start(&self) -> Option<&str> {
        self.rules.first().map(|r| r.0.as_str())
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Drops the rules the start rule cannot reach (a one-layer grammar needs no widths
    /// other than the class count): smaller text for a server to parse on every request.
    pub fn prune(&mut self) {
        let Some(start) = self.start().map(str::to_string) else {
            return;
        };
        fn refs<'e>(e: &'e Expr, out: &mut Vec<&'e str>) {
            match e {
                Expr::Ref(n) => out.push(n),
                Expr::Seq(v) | Expr::Alt(v) => v.iter().for_each(|e| refs(e, out)),
                Expr::Opt(e) => refs(e, out),
                _ => {}
            }
        }
        let mut reached = std::collections::HashSet::from([start.clone()]);
        let mut stack = vec![start];
        while let Some(name) = stack.pop() {
            let mut found = Vec::new();
            if let Some(body) = self.get(&name) {
                refs(body, &mut found);
            }
            for r in found {
                if reached.insert(r.to_string()) {
                    stack.push(r.to_string());
                }
            }
        }
        self.rules.retain(|(n, _)| reached.contains(n));
        self.index = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
    }

    /// Names referenced but never defined (a generator bug; tests assert there are none).
    pub fn undefined_refs(&self) -> Vec<String> {
        fn walk(e: &Expr, g: &Grammar, out: &mut Vec<String>) {
            match e {
                Expr::Ref(n) if !g.has(n) => out.push(n.clone()),
                Expr::Seq(v) | Expr::Alt(v) => v.iter().for_each(|e| walk(e, g, out)),
                Expr::Opt(e) => walk(e, g, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (_, body) in &self.rules {
            walk(body, self, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    /// The grammar in `dialect`, one rule per line, the start rule first (named `root` in
    /// GBNF and `start` in Lark, as the servers require).
    pub fn render(&self, dialect: Dialect) -> String {
        let start = self.start().unwrap_or("root");
        let name = |n: &str| -> String {
            match dialect {
                Dialect::Gbnf if n == start => "root".into(),
                Dialect::Gbnf => n.to_string(),
                Dialect::Lark if n == start => "start".into(),
                Dialect::Lark => n.replace('-', "_"),
            }
        };
        let mut out = String::new();
        for (n, body) in &self.rules {
            let sep = match dialect {
                Dialect::Gbnf => " ::= ",
                Dialect::Lark => ": ",
            };
            let _ = writeln!(
                out,
                "{}{sep}{}",
                name(n),
                render_expr(body, dialect, &name, true)
            );
        }
        out
    }

    /// Whether `text` is a sentence of the grammar (whole text, from the start rule).
    pub fn accepts(&self, text: &str) -> bool {
        let Some(start) = self.start() else {
            return false;
        };
        let chars: Vec<char> = text.chars().collect();
        let mut memo = HashMap::new();
        self.match_rule(start, &chars, 0, &mut memo, 0)
            .contains(&chars.len())
    }

    /// End positions of every way `rule` matches `text` from `pos`. Memoised per (rule,
    /// position); the grammars built here have no left recursion, and `depth` bounds any
    /// that would.
    fn match_rule(
        &self,
        name: &str,
        text: &[char],
        pos: usize,
        memo: &mut HashMap<(String, usize), Vec<usize>>,
        depth: usize,
    ) -> Vec<usize> {
        let key = (name.to_string(), pos);
        if let Some(r) = memo.get(&key) {
            return r.clone();
        }
        let Some(body) = self.get(name) else {
            return Vec::new();
        };
        if depth > 512 {
            return Vec::new();
        }
        let out = self.match_expr(body, text, pos, memo, depth + 1);
        memo.insert(key, out.clone());
        out
    }

    fn match_expr(
        &self,
        e: &Expr,
        text: &[char],
        pos: usize,
        memo: &mut HashMap<(String, usize), Vec<usize>>,
        depth: usize,
    ) -> Vec<usize> {
        match e {
            Expr::Lit(s) => {
                let mut p = pos;
                for c in s.chars() {
                    if text.get(p) != Some(&c) {
                        return Vec::new();
                    }
                    p += 1;
                }
                vec![p]
            }
            Expr::Class(ranges) => match text.get(pos) {
                Some(&c) if ranges.iter().any(|&(a, b)| a <= c && c <= b) => vec![pos + 1],
                _ => Vec::new(),
            },
            Expr::Ref(n) => self.match_rule(n, text, pos, memo, depth),
            Expr::Seq(items) => {
                let mut ends = vec![pos];
                for item in items {
                    let mut next = Vec::new();
                    for &p in &ends {
                        for q in self.match_expr(item, text, p, memo, depth) {
                            if !next.contains(&q) {
                                next.push(q);
                            }
                        }
                    }
                    if next.is_empty() {
                        return next;
                    }
                    ends = next;
                }
                ends
            }
            Expr::Alt(items) => {
                let mut ends = Vec::new();
                for item in items {
                    for q in self.match_expr(item, text, pos, memo, depth) {
                        if !ends.contains(&q) {
                            ends.push(q);
                        }
                    }
                }
                ends
            }
            Expr::Opt(inner) => {
                let mut ends = vec![pos];
                for q in self.match_expr(inner, text, pos, memo, depth) {
                    if !ends.contains(&q) {
                        ends.push(q);
                    }
                }
                ends
            }
        }
    }

    /// A random sentence: alternatives uniformly, options with probability ½. `hook`
    /// may produce a rule's text itself, given the text so far (the tests use it to bind
    /// names, which no context-free grammar can). `None` if a derivation runs past
    /// `max_depth` (the grammars built here are finite, so that means a generator bug).
    pub fn sample(
        &self,
        rng: &mut impl Rng,
        hook: &mut dyn FnMut(&str, &str) -> Option<String>,
        max_depth: usize,
    ) -> Option<String> {
        let mut out = String::new();
        let start = self.start()?.to_string();
        self.sample_expr(&Expr::Ref(start), rng, hook, &mut out, max_depth)?;
        Some(out)
    }

    fn sample_expr(
        &self,
        e: &Expr,
        rng: &mut impl Rng,
        hook: &mut dyn FnMut(&str, &str) -> Option<String>,
        out: &mut String,
        depth: usize,
    ) -> Option<()> {
        if depth == 0 {
            return None;
        }
        match e {
            Expr::Lit(s) => out.push_str(s),
            Expr::Class(ranges) => {
                let sizes: Vec<u32> = ranges
                    .iter()
                    .map(|&(a, b)| b as u32 - a as u32 + 1)
                    .collect();
                let total: u32 = sizes.iter().sum();
                let mut k = rng.random_range(0..total.max(1));
                for (&(a, _), &n) in ranges.iter().zip(&sizes) {
                    if k < n {
                        out.push(char::from_u32(a as u32 + k)?);
                        break;
                    }
                    k -= n;
                }
            }
            Expr::Ref(n) => {
                if let Some(text) = hook(n, out) {
                    out.push_str(&text);
                } else {
                    let body = self.get(n)?;
                    self.sample_expr(body, rng, hook, out, depth - 1)?;
                }
            }
            Expr::Seq(items) => {
                for item in items {
                    self.sample_expr(item, rng, hook, out, depth - 1)?;
                }
            }
            Expr::Alt(items) => {
                if items.is_empty() {
                    return None;
                }
                let i = rng.random_range(0..items.len());
                self.sample_expr(&items[i], rng, hook, out, depth - 1)?;
            }
            Expr::Opt(inner) => {
                if rng.random_bool(0.5) {
                    self.sample_expr(inner, rng, hook, out, depth - 1)?;
                }
            }
        }
        Some(())
    }
}

fn render_expr(e: &Expr, d: Dialect, name: &dyn Fn(&str) -> String, top: bool) -> String {
    match e {
        Expr::Lit(s) => quote(s),
        Expr::Class(ranges) => {
            let mut s = String::from("[");
            for &(a, b) in ranges {
                s.push_str(&class_char(a));
                if b != a {
                    s.push('-');
                    s.push_str(&class_char(b));
                }
            }
            s.push(']');
            match d {
                Dialect::Gbnf => s,
                Dialect::Lark => format!("/{s}/"),
            }
        }
        Expr::Ref(n) => name(n),
        Expr::Seq(items) if items.is_empty() => quote(""),
        Expr::Seq(items) => {
            let s = items
                .iter()
                .map(|i| match i {
                    Expr::Alt(_) => format!("({})", render_expr(i, d, name, true)),
                    _ => render_expr(i, d, name, false),
                })
                .collect::<Vec<_>>()
                .join(" ");
            if top {
                s
            } else {
                format!("({s})")
            }
        }
        Expr::Alt(items) => {
            let s = items
                .iter()
                .map(|i| render_expr(i, d, name, true))
                .collect::<Vec<_>>()
                .join(" | ");
            if top {
                s
            } else {
                format!("({s})")
            }
        }
        Expr::Opt(inner) => match **inner {
            Expr::Lit(_) | Expr::Ref(_) | Expr::Class(_) => {
                format!("{}?", render_expr(inner, d, name, false))
            }
            _ => format!("({})?", render_expr(inner, d, name, true)),
        },
    }
}

/// A double-quoted literal; both dialects read JSON-style escapes.
fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn class_char(c: char) -> String {
    match c {
        '\\' | ']' | '[' | '-' | '^' | '/' => format!("\\{c}"),
        '\n' => "\\n".into(),
        c => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn small() -> Grammar {
        let mut g = Grammar::default();
        g.define(
            "top",
            seq([lit("a"), alt([lit("b"), rule("digits")]), opt(lit("!"))]),
        );
        g.define(
            "digits",
            seq([Expr::Class(vec![('0', '9')]), opt(rule("digits"))]),
        );
        g
    }

    #[test]
    fn recogniser_takes_exactly_the_language() {
        let g = small();
        for ok in ["ab", "ab!", "a1", "a123!", "a0"] {
            assert!(g.accepts(ok), "{ok}");
        }
        for bad in ["", "a", "b", "abb", "a1b", "a!", "ab!!", "x"] {
            assert!(!g.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn pruning_keeps_exactly_the_reachable_rules() {
        let mut g = small();
        g.define("orphan", lit("x"));
        g.prune();
        assert_eq!(g.rule_count(), 2);
        assert!(g.accepts("a12!") && !g.has("orphan"));
    }

    #[test]
    fn samples_are_accepted() {
        let g = small();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let s = g.sample(&mut rng, &mut |_, _| None, 64).unwrap();
            assert!(g.accepts(&s), "{s}");
        }
    }

    #[test]
    fn renders_both_dialects() {
        let g = small();
        assert_eq!(
            g.render(Dialect::Gbnf),
            "root ::= \"a\" (\"b\" | digits) \"!\"?\ndigits ::= [0-9] digits?\n"
        );
        assert_eq!(
            g.render(Dialect::Lark),
            "start: \"a\" (\"b\" | digits) \"!\"?\ndigits: /[0-9]/ digits?\n"
        );
        let mut q = Grammar::default();
        q.define(
            "r",
            seq([
                lit("say \"hi\"\n"),
                Expr::Class(vec![('-', '-'), ('a', 'z')]),
            ]),
        );
        assert_eq!(
            q.render(Dialect::Gbnf),
            "root ::= \"say \\\"hi\\\"\\n\" [\\-a-z]\n"
        );
        assert!(q.undefined_refs().is_empty());
        q.define("s", rule("nowhere"));
        assert_eq!(q.undefined_refs(), vec!["nowhere".to_string()]);
    }
}
