//! The canonical printer behind `uhc fmt`.
//!
//! The canonical text depends only on the tree, the comments and where blank lines were,
//! so formatting is idempotent and two candidates that differ only in layout print the
//! same (the search deduplicates on it). Numbers keep their lexeme: formatting never
//! changes a value.

use super::ast::*;
use crate::diag::{Diagnostic, FileId};

const INDENT: &str = "    ";
/// A section prints on one line when it has only plain fields and fits in this width.
const INLINE_WIDTH: usize = 80;

/// Prints a tree without comments.
pub fn print_file(file: &File) -> String {
    let mut p = Printer {
        out: String::new(),
        src: "",
        comments: Vec::new(),
        next_comment: 0,
        depth: 0,
        last_end: 0,
    };
    p.file(file);
    p.out
}

/// Formats source text: parse, then print keeping comments and single blank lines.
/// Refuses (returning the syntax diagnostics) when the text does not parse.
pub fn format_source(file_id: FileId, text: &str) -> Result<String, Vec<Diagnostic>> {
    let (file, diags) = super::parse(file_id, text);
    if diags.iter().any(|d| d.is_error()) {
        return Err(diags);
    }
    Ok(format_parsed(&file, text))
}

/// [`format_source`] for a text already parsed without errors into `file`.
pub fn format_parsed(file: &super::File, text: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        src: text,
        comments: scan_comments(text),
        next_comment: 0,
        depth: 0,
        last_end: 0,
    };
    p.file(file);
    p.out
}

struct Comment {
    span: Span,
    text: String,
}

/// Finds `//` comments outside strings.
fn scan_comments(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            out.push(Comment {
                span: Span::new(i, end),
                text: text[i..end].trim_end().to_string(),
            });
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

struct Printer<'s> {
    out: String,
    src: &'s str,
    comments: Vec<Comment>,
    next_comment: usize,
    depth: usize,
    /// Source offset of the end of the last thing printed (for blank-line detection).
    last_end: usize,
}

impl Printer<'_> {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    fn at_line_start_after_open(&self) -> bool {
        self.out.is_empty() || self.out.ends_with("{\n") || self.out.ends_with("\n\n")
    }

    /// Emits a blank line when the source had one between the last thing printed and `pos`.
    fn blank_line_before(&mut self, pos: usize) {
        if self.src.is_empty() || self.at_line_start_after_open() {
            return;
        }
        let from = self.last_end.min(pos).min(self.src.len());
        let between = &self.src[from..pos.min(self.src.len())];
        let mut newlines = 0;
        for c in between.chars() {
            match c {
                '\n' => {
                    newlines += 1;
                    if newlines >= 2 {
                        self.out.push('\n');
                        return;
                    }
                }
                c if c.is_whitespace() => {}
                _ => newlines = 0,
            }
        }
    }

    /// Emits, each on its own line, the comments that start before `pos`.
    fn leading_comments(&mut self, pos: u32) {
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.span.start >= pos {
                break;
            }
            let (start, end, text) = (c.span.start as usize, c.span.end as usize, c.text.clone());
            self.blank_line_before(start);
            self.indent();
            self.out.push_str(&text);
            self.out.push('\n');
            self.next_comment += 1;
            self.last_end = end;
        }
    }

    /// Appends a comment that stands on the same source line after `end`.
    fn trailing_comment(&mut self, end: u32) {
        if let Some(c) = self.comments.get(self.next_comment) {
            let gap = self
                .src
                .get(end as usize..c.span.start as usize)
                .unwrap_or("\n");
            if c.span.start >= end && !gap.contains('\n') {
                self.out.push(' ');
                self.out.push_str(&c.text.clone());
                self.last_end = c.span.end as usize;
                self.next_comment += 1;
            }
        }
    }

    fn has_comment_within(&self, span: Span) -> bool {
        self.comments[self.next_comment..]
            .iter()
            .any(|c| c.span.start > span.start && c.span.start < span.end)
    }

    fn file(&mut self, file: &File) {
        let mut prev_use = false;
        for (i, item) in file.items.iter().enumerate() {
            let is_use = matches!(item, Item::Use(_));
            self.leading_comments_item(item.span().start, i > 0 && !(is_use && prev_use));
            self.item(item);
            prev_use = is_use;
        }
        self.leading_comments(u32::MAX);
    }

    fn leading_comments_item(&mut self, pos: u32, separate: bool) {
        if separate && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        while let Some(c) = self.comments.get(self.next_comment) {
            if c.span.start >= pos {
                break;
            }
            let (start, end, text) = (c.span.start as usize, c.span.end as usize, c.text.clone());
            self.blank_line_before(start);
            self.out.push_str(&text);
            self.out.push('\n');
            self.last_end = end;
            self.next_comment += 1;
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                self.out.push_str("use ");
                self.string(&u.path);
                self.finish_line(u.span);
            }
            Item::Hardware(h) => {
                self.out.push_str("hardware ");
                self.out.push_str(&h.name.name);
                if let Some(base) = &h.extends {
                    self.out.push_str(" extends ");
                    self.out.push_str(&base.name);
                }
                self.block_multiline(&h.body, h.span);
            }
            Item::Arch(a) => {
                self.out.push_str("arch ");
                self.out.push_str(&a.name.name);
                self.out.push_str(" on ");
                self.out.push_str(&a.hardware.name);
                self.block_multiline(&a.body, a.span);
            }
            Item::Task(t) => {
                self.out.push_str("task ");
                self.out.push_str(&t.name.name);
                self.block_multiline(&t.body, t.span);
            }
            Item::Search(s) => {
                self.out.push_str("search ");
                self.out.push_str(&s.name.name);
                self.block_multiline(&s.body, s.span);
            }
            Item::Experiment(e) => {
                self.out.push_str("experiment ");
                self.out.push_str(&e.name.name);
                self.block_multiline(&e.body, e.span);
            }
        }
    }

    fn finish_line(&mut self, end: Span) {
        self.finish_at(end.end);
    }

    fn finish_at(&mut self, end: u32) {
        self.last_end = end as usize;
        self.trailing_comment(end);
        self.out.push('\n');
    }

    /// ` {`, entries one per line, `}`.
    fn block_multiline(&mut self, block: &Block, owner: Span) {
        self.out.push_str(" {");
        // A comment on the header line after `{` stays there.
        self.last_end = block.span.start as usize + 1;
        self.trailing_comment(block.span.start + 1);
        self.out.push('\n');
        self.depth += 1;
        for entry in &block.entries {
            self.leading_comments(entry.span().start);
            self.blank_line_before(entry.span().start as usize);
            self.indent();
            self.entry(entry);
        }
        let close = block.span.end.saturating_sub(1);
        self.leading_comments(close);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        self.finish_at(owner.end.max(block.span.end));
    }

    fn entry(&mut self, entry: &Entry) {
        // Comments inside a one-line entry move above it.
        let span = entry.span();
        match entry {
            Entry::Section(s) if !self.section_inline(s) => {
                self.out.push_str(&s.name.name);
                if let Some(k) = &s.kind {
                    self.out.push(' ');
                    self.out.push_str(&k.name);
                }
                self.block_multiline(&s.body, s.span);
                return;
            }
            _ => {}
        }
        if self.has_comment_within(span) {
            let line = std::mem::take(&mut self.out);
            self.leading_comments(span.end);
            let comments = std::mem::replace(&mut self.out, line);
            // Put the moved comments before the (already indented) entry line.
            let indent_len = self.depth * INDENT.len();
            let at = self.out.len() - indent_len;
            self.out.insert_str(at, &comments);
        }
        let text = entry_inline(entry);
        self.out.push_str(&text);
        self.finish_line(span);
    }

    fn section_inline(&self, s: &Section) -> bool {
        if self.has_comment_within(s.span) {
            return false;
        }
        if !s
            .body
            .entries
            .iter()
            .all(|e| matches!(e, Entry::Field(f) if !matches!(f.value, Expr::List(_))))
        {
            return false;
        }
        self.depth * INDENT.len() + section_inline_text(s).len() <= INLINE_WIDTH
    }

    fn string(&mut self, s: &Str) {
        self.out.push_str(&quote(&s.value));
    }
}

fn section_inline_text(s: &Section) -> String {
    let mut out = s.name.name.clone();
    if let Some(k) = &s.kind {
        out.push(' ');
        out.push_str(&k.name);
    }
    if s.body.entries.is_empty() {
        out.push_str(" {}");
        return out;
    }
    out.push_str(" { ");
    let parts: Vec<String> = s.body.entries.iter().map(entry_inline).collect();
    out.push_str(&parts.join(", "));
    out.push_str(" }");
    out
}

/// One entry on one line.
fn entry_inline(entry: &Entry) -> String {
    match entry {
        Entry::Field(f) => match &f.value {
            Expr::List(l) => format!("{} {}", f.key.name, expr(&Expr::List(l.clone()))),
            v => format!("{} = {}", f.key.name, expr(v)),
        },
        Entry::Section(s) => section_inline_text(s),
        Entry::Input(i) => format!(
            "input {}: {}[{}]",
            i.name.name, i.ty.domain.name, i.ty.width.text
        ),
        Entry::Output(o) => format!("output {}", expr(&o.value)),
        Entry::Constraint(c) => format!(
            "constraint {} {} {}",
            c.metric.name,
            c.op.as_str(),
            expr(&c.bound)
        ),
    }
}

pub(crate) fn expr(e: &Expr) -> String {
    match e {
        Expr::Quantity(q) => match &q.unit {
            Some(u) => format!("{} {}", q.number.text, u.name),
            None => q.number.text.clone(),
        },
        Expr::Ident(i) => i.name.clone(),
        Expr::Str(s) => quote(&s.value),
        Expr::List(l) => {
            let parts: Vec<String> = l.items.iter().map(expr).collect();
            format!("[{}]", parts.join(", "))
        }
        Expr::Call(c) => {
            let parts: Vec<String> = c
                .args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{} = {}", n.name, expr(&a.value)),
                    None => expr(&a.value),
                })
                .collect();
            format!("{}({})", c.func.name, parts.join(", "))
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
