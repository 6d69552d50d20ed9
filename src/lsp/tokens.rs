//! Semantic tokens: colour from the compiler's own reading of a document, for editors
//! without the TextMate grammar (Helix, Neovim) and to tell apart what a grammar cannot:
//! an op from a value, a profile from a task, a unit from a name.
//!
//! Names, numbers, units and strings come from the syntax tree and the analysis' index of
//! names; keywords and comments, which the tree does not keep, from a scan of the text that
//! skips strings. Tokens never span lines (`.uh` has no multi-line token).

use super::analysis::{Analysis, Ns};
use super::text::LineIndex;
use crate::syntax::{self, Entry, Expr, Item};
use lsp_types as lt;
use std::collections::{HashMap, HashSet};

/// The token types, in the order of the legend the server announces.
pub const TYPES: [lt::SemanticTokenType; 14] = [
    lt::SemanticTokenType::KEYWORD,
    lt::SemanticTokenType::COMMENT,
    lt::SemanticTokenType::STRING,
    lt::SemanticTokenType::NUMBER,
    lt::SemanticTokenType::TYPE,
    lt::SemanticTokenType::FUNCTION,
    lt::SemanticTokenType::VARIABLE,
    lt::SemanticTokenType::PARAMETER,
    lt::SemanticTokenType::PROPERTY,
    lt::SemanticTokenType::NAMESPACE,
    lt::SemanticTokenType::STRUCT,
    lt::SemanticTokenType::CLASS,
    lt::SemanticTokenType::EVENT,
    lt::SemanticTokenType::ENUM_MEMBER,
];

/// The modifiers: a definition, and a name the standard library defines.
pub const MODIFIERS: [lt::SemanticTokenModifier; 2] = [
    lt::SemanticTokenModifier::DECLARATION,
    lt::SemanticTokenModifier::DEFAULT_LIBRARY,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Keyword,
    Comment,
    Str,
    Number,
    /// Value types (`real`, `complex`) and units.
    Type,
    /// Ops (`linear`, `modrelu`).
    Op,
    /// An arch's inputs and values.
    Value,
    /// Named arguments (`bias = …`).
    Param,
    /// Field keys and constraint metrics.
    Field,
    /// Section names and a backend's kind (`backend mzi`).
    Section,
    Hardware,
    Arch,
    /// Tasks, searches and experiments.
    Plan,
    /// Other bare words: choices such as `clements`, `fp32`, data-set names.
    Choice,
}

const DECLARATION: u32 = 1;
const DEFAULT_LIBRARY: u32 = 2;

/// The legend announced in `initialize`.
pub fn legend() -> lt::SemanticTokensLegend {
    lt::SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

/// One token: byte range in the root document, kind, modifier bits.
type Token = (usize, usize, Kind, u32);

/// The semantic tokens of the analysed document, encoded as the protocol wants.
pub fn tokens(a: &Analysis) -> Vec<lt::SemanticToken> {
    let text = a.sources.text(a.root);
    let mut out = lexical(text);
    let names = Names::new(a);
    for item in &a.tree().items {
        item_tokens(&names, item, &mut out);
    }
    // Sorted by start; of overlapping tokens the first wins (none overlap in a tree the
    // parser built, but a recovered one is not trusted).
    out.sort_by_key(|t| (t.0, t.1));
    let index = LineIndex::new(text);
    let mut encoded = Vec::with_capacity(out.len());
    let (mut line, mut col, mut end) = (0u32, 0u32, 0usize);
    for (start, stop, kind, mods) in out {
        if start < end || stop <= start || stop > text.len() {
            continue;
        }
        let (p, q) = (index.position(text, start), index.position(text, stop));
        if p.line != q.line {
            continue;
        }
        encoded.push(lt::SemanticToken {
            delta_line: p.line - line,
            delta_start: if p.line == line {
                p.character - col
            } else {
                p.character
            },
            length: q.character - p.character,
            token_type: kind as u32,
            token_modifiers_bitset: mods,
        });
        (line, col, end) = (p.line, p.character, stop);
    }
    encoded
}

/// Keywords and comments: what the tree does not keep. Strings are skipped so that a
/// `//` or a keyword inside one is not taken for either.
fn lexical(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let end = if text[..end].ends_with('\r') {
                    end - 1
                } else {
                    end
                };
                out.push((i, end, Kind::Comment, 0));
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if syntax::KEYWORDS.contains(&&text[start..i]) {
                    out.push((start, i, Kind::Keyword, 0));
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn ident(out: &mut Vec<Token>, id: &syntax::Ident, kind: Kind, mods: u32) {
    out.push((id.span.start as usize, id.span.end as usize, kind, mods));
}

/// The kind and modifiers of every name the analysis indexed in the root, by the byte
/// offset where it starts: one pass over the index, so colouring stays linear in the text.
struct Names(HashMap<u32, (Kind, u32)>);

impl Names {
    fn new(a: &Analysis) -> Names {
        // Items the standard library defines (it defines no values).
        let stdlib: HashSet<(&str, &str)> = a
            .syms
            .iter()
            .filter(|s| s.def && a.sources.name(s.file).starts_with("<stdlib>/"))
            .filter_map(|s| match s.ns {
                Ns::Item(kind) => Some((kind, s.name.as_str())),
                Ns::Value { .. } => None,
            })
            .collect();
        let map = a
            .syms
            .iter()
            .filter(|s| s.file == a.root)
            .map(|s| {
                let kind = match s.ns {
                    Ns::Value { .. } => Kind::Value,
                    Ns::Item("hardware") => Kind::Hardware,
                    Ns::Item("arch") => Kind::Arch,
                    Ns::Item(_) => Kind::Plan,
                };
                let mut mods = if s.def { DECLARATION } else { 0 };
                if let Ns::Item(k) = s.ns {
                    if stdlib.contains(&(k, s.name.as_str())) {
                        mods |= DEFAULT_LIBRARY;
                    }
                }
                (s.span.start, (kind, mods))
            })
            .collect();
        Names(map)
    }

    /// The kind and modifiers of the name at `id`, if the analysis indexed it.
    fn get(&self, id: &syntax::Ident) -> Option<(Kind, u32)> {
        self.0.get(&id.span.start).copied()
    }
}

fn item_tokens(a: &Names, item: &Item, out: &mut Vec<Token>) {
    let name = |id: &syntax::Ident, fallback: Kind, out: &mut Vec<Token>| {
        let (kind, mods) = a.get(id).unwrap_or((fallback, 0));
        ident(out, id, kind, mods);
    };
    match item {
        Item::Use(u) => out.push((
            u.path.span.start as usize,
            u.path.span.end as usize,
            Kind::Str,
            0,
        )),
        Item::Hardware(h) => {
            name(&h.name, Kind::Hardware, out);
            if let Some(base) = &h.extends {
                name(base, Kind::Hardware, out);
            }
            block(a, &h.body, false, out);
        }
        Item::Arch(arch) => {
            name(&arch.name, Kind::Arch, out);
            name(&arch.hardware, Kind::Hardware, out);
            block(a, &arch.body, true, out);
        }
        Item::Task(t) => {
            name(&t.name, Kind::Plan, out);
            block(a, &t.body, false, out);
        }
        Item::Search(s) => {
            name(&s.name, Kind::Plan, out);
            block(a, &s.body, false, out);
        }
        Item::Experiment(e) => {
            name(&e.name, Kind::Plan, out);
            block(a, &e.body, false, out);
        }
    }
}

/// The entries of a block; in an arch a field's key is a value it defines.
fn block(a: &Names, b: &syntax::Block, in_arch: bool, out: &mut Vec<Token>) {
    for e in &b.entries {
        match e {
            Entry::Field(f) => {
                let kind = if in_arch { Kind::Value } else { Kind::Field };
                let (kind, mods) = a.get(&f.key).unwrap_or((kind, 0));
                ident(out, &f.key, kind, mods);
                expr(a, &f.value, out);
            }
            Entry::Section(s) => {
                ident(out, &s.name, Kind::Section, 0);
                if let Some(k) = &s.kind {
                    ident(out, k, Kind::Section, 0);
                }
                block(a, &s.body, false, out);
            }
            Entry::Input(i) => {
                let (kind, mods) = a.get(&i.name).unwrap_or((Kind::Value, DECLARATION));
                ident(out, &i.name, kind, mods);
                ident(out, &i.ty.domain, Kind::Type, 0);
                let w = &i.ty.width.span;
                out.push((w.start as usize, w.end as usize, Kind::Number, 0));
            }
            Entry::Output(o) => expr(a, &o.value, out),
            Entry::Constraint(c) => {
                ident(out, &c.metric, Kind::Field, 0);
                expr(a, &c.bound, out);
            }
        }
    }
}

fn expr(a: &Names, e: &Expr, out: &mut Vec<Token>) {
    match e {
        Expr::Quantity(q) => {
            let n = &q.number.span;
            out.push((n.start as usize, n.end as usize, Kind::Number, 0));
            if let Some(u) = &q.unit {
                ident(out, u, Kind::Type, 0);
            }
        }
        Expr::Ident(i) => {
            let (kind, mods) = a.get(i).unwrap_or((Kind::Choice, 0));
            ident(out, i, kind, mods);
        }
        Expr::Str(s) => out.push((s.span.start as usize, s.span.end as usize, Kind::Str, 0)),
        Expr::List(l) => l.items.iter().for_each(|x| expr(a, x, out)),
        Expr::Call(c) => {
            ident(out, &c.func, Kind::Op, 0);
            for arg in &c.args {
                if let Some(n) = &arg.name {
                    ident(out, n, Kind::Param, 0);
                }
                expr(a, &arg.value, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_matches_the_kinds() {
        assert_eq!(TYPES.len(), Kind::Choice as usize + 1);
        assert_eq!(TYPES[Kind::Op as usize], lt::SemanticTokenType::FUNCTION);
        assert_eq!(
            TYPES[Kind::Choice as usize],
            lt::SemanticTokenType::ENUM_MEMBER
        );
        assert_eq!(
            MODIFIERS[DECLARATION.trailing_zeros() as usize],
            lt::SemanticTokenModifier::DECLARATION
        );
        assert_eq!(
            MODIFIERS[DEFAULT_LIBRARY.trailing_zeros() as usize],
            lt::SemanticTokenModifier::DEFAULT_LIBRARY
        );
    }

    #[test]
    fn strings_hide_comments_and_keywords() {
        let t = "use \"a//arch.uh\" // arch\narch";
        let toks: Vec<(&str, Kind)> = lexical(t)
            .iter()
            .map(|&(s, e, k, _)| (&t[s..e], k))
            .collect();
        assert_eq!(
            toks,
            [
                ("use", Kind::Keyword),
                ("// arch", Kind::Comment),
                ("arch", Kind::Keyword)
            ]
        );
    }
}
