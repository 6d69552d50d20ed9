//! Text → [`File`], with item-level recovery so one broken item does not hide the
//! problems of the others. pest stays private to this module: no `Pair` or `Rule` leaves it.

use super::ast::*;
use crate::diag::{code, Diagnostic, FileId};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/uh.pest"]
struct UhParser;

/// Deeper nesting than this is refused before parsing: pest descends recursively, and
/// no sensible `.uh` file nests brackets more than a handful of levels.
pub const MAX_NESTING: usize = 32;

/// Larger inputs are refused outright (an LLM reply or a generated file gone wrong).
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;

/// Parses a whole file. Always returns a tree (possibly missing the broken items) and every
/// syntax problem found, one per broken item.
pub fn parse(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if text.len() > MAX_SOURCE_BYTES {
        diags.push(
            Diagnostic::error(
                code::TOO_LARGE,
                file,
                Span::new(0, 0),
                format!(
                    "this file is {} bytes; the compiler accepts at most {MAX_SOURCE_BYTES}",
                    text.len()
                ),
            )
            .with_label("file starts here")
            .with_help("split it into several files joined with `use`"),
        );
        return (File::default(), diags);
    }
    let mut items = Vec::new();
    for (start, end) in item_chunks(text) {
        let chunk = &text[start..end];
        if let Some(d) = check_nesting(file, chunk, start) {
            diags.push(d);
            continue;
        }
        match UhParser::parse(Rule::file, chunk) {
            Ok(mut pairs) => {
                let Some(file_pair) = pairs.next() else {
                    continue;
                };
                let mut cx = Lower {
                    file,
                    offset: start,
                    diags: &mut diags,
                };
                for p in file_pair.into_inner() {
                    if p.as_rule() != Rule::EOI {
                        items.push(cx.item(p));
                    }
                }
            }
            Err(e) => diags.push(syntax_error(file, chunk, start, e)),
        }
    }
    (File { items }, diags)
}

/// Splits a file at lines that start an item, so each item parses on its own.
fn item_chunks(text: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && starts_item(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut chunks = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(text.len());
        chunks.push((s, e));
    }
    chunks
}

fn starts_item(line: &str) -> bool {
    let line = line.trim_start();
    if let Some(rest) = line.strip_prefix("use") {
        return rest.trim_start().starts_with('"') && rest.starts_with([' ', '\t']);
    }
    for kw in ["hardware", "arch", "task", "search", "experiment"] {
        if let Some(rest) = line.strip_prefix(kw) {
            if !rest.starts_with([' ', '\t']) {
                continue;
            }
            let rest = rest.trim_start();
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            return name_len > 0 && !rest[name_len..].trim_start().starts_with('=');
        }
    }
    false
}

fn check_nesting(file: FileId, chunk: &str, offset: usize) -> Option<Diagnostic> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut in_comment = false;
    let bytes = chunk.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_comment {
            in_comment = b != b'\n';
        } else if in_string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'/' if bytes.get(i + 1) == Some(&b'/') => in_comment = true,
                b'"' => in_string = true,
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        let at = offset + i;
                        return Some(
                            Diagnostic::error(
                                code::NESTING,
                                file,
                                Span::new(at, at + 1),
                                format!("brackets are nested more than {MAX_NESTING} levels deep"),
                            )
                            .with_label("too deep")
                            .with_help("flatten the expression: name intermediate values on their own lines"),
                        );
                    }
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn rule_name(rule: &Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of file",
        Rule::file | Rule::item => "an item",
        Rule::entry => "an entry",
        Rule::use_item => "`use \"path\"`",
        Rule::hardware_item => "`hardware`",
        Rule::arch_item => "`arch`",
        Rule::task_item => "`task`",
        Rule::search_item => "`search`",
        Rule::experiment_item => "`experiment`",
        Rule::extends => "`extends`",
        Rule::on_clause => "`on HARDWARE`",
        Rule::block => "`{`",
        Rule::input_entry => "`input`",
        Rule::output_entry => "`output`",
        Rule::constraint_entry => "`constraint`",
        Rule::section_entry => "a section",
        Rule::field_entry => "a field",
        Rule::ty => "a type like `real[16]`",
        Rule::cmp_op => "a comparison (`<=`, `>=`, `<`, `>`, `==`)",
        Rule::expr => "a value",
        Rule::list => "a list `[...]`",
        Rule::call => "a call",
        Rule::arg => "an argument",
        Rule::quantity => "a number",
        Rule::unit => "a unit",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::string_inner => "string text",
        Rule::keyword | Rule::entry_kw => "a keyword",
        Rule::ident | Rule::key => "a name",
        Rule::WHITESPACE | Rule::COMMENT => "whitespace",
    }
}

fn syntax_error(
    file: FileId,
    chunk: &str,
    offset: usize,
    e: pest::error::Error<Rule>,
) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = describe_found(&chunk[pos.min(chunk.len())..]);
    let (message, expected) = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().map(rule_name).collect();
            names.sort_unstable();
            names.dedup();
            let expected = join_alternatives(&names);
            (format!("expected {expected}, found {found}"), expected)
        }
        ErrorVariant::CustomError { message } => (message.clone(), String::new()),
    };
    let found_len = token_len(&chunk[pos.min(chunk.len())..]);
    let at = offset + pos;
    let mut d = Diagnostic::error(code::SYNTAX, file, Span::new(at, at + found_len), message)
        .with_label(if expected.is_empty() {
            "here".to_string()
        } else {
            format!("expected {expected}")
        });
    d = d.with_help(syntax_help(chunk, pos));
    d
}

fn syntax_help(chunk: &str, pos: usize) -> String {
    let rest = chunk[pos.min(chunk.len())..].trim_start();
    let before = chunk[..pos.min(chunk.len())].trim_end();
    if rest.starts_with("```") || rest.starts_with('#') || chunk.trim_start().starts_with("```") {
        return "this looks like Markdown: keep only the `.uh` text, without fences or prose"
            .into();
    }
    if rest.is_empty() && chunk.matches('{').count() > chunk.matches('}').count() {
        return "a `{` is not closed: add the missing `}`".into();
    }
    if before.ends_with(':') || rest.starts_with(':') {
        return "inputs are declared as `input NAME: real[WIDTH]`; fields use `=`".into();
    }
    "items are `use \"file.uh\"`, `hardware NAME { … }`, `arch NAME on HARDWARE { … }`, `task NAME { … }` or `search NAME { … }`; entries are `key = value`, `key [a, b]` or `section { … }`".into()
}

fn join_alternatives(names: &[&str]) -> String {
    match names {
        [] => "something else".into(),
        [one] => (*one).into(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn token_len(rest: &str) -> usize {
    let Some(c) = rest.chars().next() else {
        return 0;
    };
    if c.is_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len())
    } else {
        c.len_utf8()
    }
}

fn describe_found(rest: &str) -> String {
    let n = token_len(rest);
    match rest.chars().next() {
        None => "end of file".into(),
        Some('\n') | Some('\r') => "end of line".into(),
        Some(_) => format!("`{}`", rest[..n].escape_debug()),
    }
}

/// Turns pest pairs into the AST, shifting spans by the chunk's offset.
struct Lower<'d> {
    file: FileId,
    offset: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl Lower<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.offset + s.start(), self.offset + s.end())
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }

    fn item(&mut self, p: Pair<Rule>) -> Item {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        match rule {
            Rule::use_item => {
                let path = self.string(inner.next().expect("grammar: use has a string"));
                Item::Use(Use { path, span })
            }
            Rule::hardware_item => {
                let name = self.ident(inner.next().expect("grammar: hardware name"));
                let mut extends = None;
                let mut body = Block::default();
                for q in inner {
                    match q.as_rule() {
                        Rule::extends => extends = q.into_inner().next().map(|i| self.ident(i)),
                        _ => body = self.block(q),
                    }
                }
                Item::Hardware(Hardware {
                    name,
                    extends,
                    body,
                    span,
                })
            }
            Rule::arch_item => {
                let name = self.ident(inner.next().expect("grammar: arch name"));
                let on = inner.next().expect("grammar: on clause");
                let hardware = self.ident(on.into_inner().next().expect("grammar: on name"));
                let body = self.block(inner.next().expect("grammar: arch block"));
                Item::Arch(Arch {
                    name,
                    hardware,
                    body,
                    span,
                })
            }
            Rule::task_item => {
                let name = self.ident(inner.next().expect("grammar: task name"));
                let body = self.block(inner.next().expect("grammar: task block"));
                Item::Task(Task { name, body, span })
            }
            Rule::search_item => {
                let name = self.ident(inner.next().expect("grammar: search name"));
                let body = self.block(inner.next().expect("grammar: search block"));
                Item::Search(Search { name, body, span })
            }
            Rule::experiment_item => {
                let name = self.ident(inner.next().expect("grammar: experiment name"));
                let body = self.block(inner.next().expect("grammar: experiment block"));
                Item::Experiment(Experiment { name, body, span })
            }
            other => unreachable!("grammar: unexpected item rule {other:?}"),
        }
    }

    fn block(&mut self, p: Pair<Rule>) -> Block {
        let span = self.span(&p);
        let entries = p.into_inner().map(|e| self.entry(e)).collect();
        Block { entries, span }
    }

    fn entry(&mut self, p: Pair<Rule>) -> Entry {
        let span = self.span(&p);
        let rule = p.as_rule();
        let mut inner = p.into_inner();
        let mut next = || inner.next().expect("grammar: entry part");
        match rule {
            Rule::input_entry => {
                let name = self.ident(next());
                let ty_pair = next();
                let ty_span = self.span(&ty_pair);
                let mut ty_inner = ty_pair.into_inner();
                let domain = self.ident(ty_inner.next().expect("grammar: type domain"));
                let width = self.number(ty_inner.next().expect("grammar: type width"));
                Entry::Input(Input {
                    name,
                    ty: Type {
                        domain,
                        width,
                        span: ty_span,
                    },
                    span,
                })
            }
            Rule::output_entry => Entry::Output(Output {
                value: self.expr(next()),
                span,
            }),
            Rule::constraint_entry => {
                let metric = self.ident(next());
                let op_pair = next();
                let op_span = self.span(&op_pair);
                let op = match op_pair.as_str() {
                    "<=" => CmpOp::Le,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Eq,
                };
                let bound = self.expr(next());
                Entry::Constraint(Constraint {
                    metric,
                    op,
                    op_span,
                    bound,
                    span,
                })
            }
            Rule::section_entry => {
                let name = self.ident(next());
                let mut kind = None;
                let mut body = Block::default();
                for q in inner {
                    match q.as_rule() {
                        Rule::ident => kind = Some(self.ident(q)),
                        _ => body = self.block(q),
                    }
                }
                Entry::Section(Section {
                    name,
                    kind,
                    body,
                    span,
                })
            }
            Rule::field_entry => {
                let key = self.ident(next());
                let value = self.expr(next());
                Entry::Field(Field { key, value, span })
            }
            other => unreachable!("grammar: unexpected entry rule {other:?}"),
        }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::list => Expr::List(List {
                items: p.into_inner().map(|e| self.expr(e)).collect(),
                span,
            }),
            Rule::call => {
                let mut inner = p.into_inner();
                let func = self.ident(inner.next().expect("grammar: call name"));
                let args = inner.map(|a| self.arg(a)).collect();
                Expr::Call(Call { func, args, span })
            }
            Rule::quantity => {
                let mut inner = p.into_inner();
                let number = self.number(inner.next().expect("grammar: quantity number"));
                let unit = inner.next().map(|u| self.ident(u));
                Expr::Quantity(Quantity { number, unit, span })
            }
            Rule::string => Expr::Str(self.string(p)),
            Rule::ident => Expr::Ident(self.ident(p)),
            other => unreachable!("grammar: unexpected expr rule {other:?}"),
        }
    }

    fn arg(&mut self, p: Pair<Rule>) -> Arg {
        let span = self.span(&p);
        let parts: Vec<Pair<Rule>> = p.into_inner().collect();
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next()) {
            (Some(name), Some(value)) => Arg {
                name: Some(self.ident(name)),
                value: self.expr(value),
                span,
            },
            (Some(value), None) => Arg {
                name: None,
                value: self.expr(value),
                span,
            },
            _ => unreachable!("grammar: argument has one or two parts"),
        }
    }

    fn number(&mut self, p: Pair<Rule>) -> Number {
        let span = self.span(&p);
        let text = p.as_str().to_string();
        let value = match text.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                self.diags.push(
                    Diagnostic::error(code::NUMBER, self.file, span, format!("the number `{text}` is too large"))
                        .with_label("out of range")
                        .with_help("use a unit prefix instead of a huge exponent (e.g. `5 GHz`, not `5e9999 Hz`)"),
                );
                0.0
            }
        };
        Number { value, text, span }
    }

    fn string(&mut self, p: Pair<Rule>) -> Str {
        let span = self.span(&p);
        let raw = p.into_inner().next().map_or("", |i| i.as_str());
        let mut value = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => {}
                }
            } else {
                value.push(c);
            }
        }
        Str { value, span }
    }
}
