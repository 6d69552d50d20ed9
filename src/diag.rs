//! Diagnostics: one type for every stage, rendered only at the driver.
//!
//! Stages hold spans and file ids, never source text; [`Sources`] attaches the text when a
//! diagnostic is rendered (human, JSON or GitHub annotations). Every diagnostic has a
//! stable code from [`CODES`], which the book's diagnostics index and the ui tests mirror.

use crate::span::Span;
use serde::Serialize;
use std::fmt::Write as _;

/// Index of a source file in [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FileId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub file: FileId,
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: FileId,
    pub span: Span,
    /// What the primary span points at, in a few words.
    pub label: String,
    pub help: Option<String>,
    /// Secondary places (a previous definition, the hardware limit that was exceeded).
    pub related: Vec<Label>,
    /// Machine-applicable repairs, attached only where the intended text is unambiguous
    /// (`uhc fix` and the LLM repair loop apply them without asking). Alternatives, not a
    /// sequence: an applier takes the first.
    pub fixes: Vec<Fix>,
}

/// One text replacement in the diagnostic's file, in byte offsets (`start == end` inserts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edit {
    pub start: u32,
    pub end: u32,
    pub replacement: String,
}

/// A repair: edits that belong together (e.g. `detect(` and `)` around a value) and a short
/// description in the imperative ("replace `linaer` with `linear`").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub description: String,
    pub edits: Vec<Edit>,
}

impl Fix {
    /// Replaces the text under `span`.
    pub fn replace(
        span: Span,
        replacement: impl Into<String>,
        description: impl Into<String>,
    ) -> Fix {
        Fix {
            description: description.into(),
            edits: vec![Edit {
                start: span.start,
                end: span.end,
                replacement: replacement.into(),
            }],
        }
    }

    /// Puts `before` and `after` around the text under `span`, leaving that text (and any
    /// comment inside it) untouched.
    pub fn wrap(span: Span, before: &str, after: &str, description: impl Into<String>) -> Fix {
        Fix {
            description: description.into(),
            edits: vec![
                Edit {
                    start: span.start,
                    end: span.start,
                    replacement: before.to_string(),
                },
                Edit {
                    start: span.end,
                    end: span.end,
                    replacement: after.to_string(),
                },
            ],
        }
    }

    /// The first byte touched and the byte after the last.
    pub fn extent(&self) -> (u32, u32) {
        let start = self.edits.iter().map(|e| e.start).min().unwrap_or(0);
        let end = self.edits.iter().map(|e| e.end).max().unwrap_or(0);
        (start, end)
    }

    /// The fix as a single replacement of its extent, filling the gaps between edits from
    /// `text`, so JSON consumers need to know only one shape. `None` when the edits are
    /// out of order, overlap, or do not fall on character boundaries of `text`.
    pub fn as_single_edit(&self, text: &str) -> Option<Edit> {
        let mut edits: Vec<&Edit> = self.edits.iter().collect();
        edits.sort_by_key(|e| (e.start, e.end));
        let (start, end) = self.extent();
        let mut replacement = String::new();
        let mut at = start as usize;
        for e in edits {
            let (s, t) = (e.start as usize, e.end as usize);
            if s < at || t < s {
                return None;
            }
            replacement.push_str(text.get(at..s)?);
            replacement.push_str(&e.replacement);
            at = t;
        }
        text.get(start as usize..end as usize)?;
        Some(Edit {
            start,
            end,
            replacement,
        })
    }
}

impl Diagnostic {
    pub fn error(code: &'static str, file: FileId, span: Span, message: impl Into<String>) -> Self {
        debug_assert!(
            CODES.iter().any(|c| c.code == code),
            "unregistered code {code}"
        );
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            file,
            span,
            label: String::new(),
            help: None,
            related: Vec::new(),
            fixes: Vec::new(),
        }
    }
    pub fn warning(
        code: &'static str,
        file: FileId,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, span, message)
        }
    }
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn with_related(mut self, file: FileId, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Label {
            file,
            span,
            message: message.into(),
        });
        self
    }
    /// Attaches a machine-applicable repair (see [`Diagnostic::fixes`]).
    pub fn with_fix(mut self, fix: Fix) -> Self {
        self.fixes.push(fix);
        self
    }
    /// As [`Diagnostic::with_fix`], for sites where the fix is found only sometimes.
    pub fn with_fixes(mut self, fix: Option<Fix>) -> Self {
        self.fixes.extend(fix);
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A registered diagnostic code and the one-line summary the book index shows.
pub struct Code {
    pub code: &'static str,
    pub summary: &'static str,
}

macro_rules! codes {
    ($($name:ident = $code:literal : $summary:literal;)*) => {
        /// Diagnostic codes, by constant, so a typo is a compile error.
        pub mod code {
            $(pub const $name: &str = $code;)*
        }
        /// Every code uhc can emit.
        pub const CODES: &[Code] = &[$(Code { code: $code, summary: $summary }),*];
    };
}

codes! {
    UTF8 = "uh::syntax::utf8": "the file is not valid UTF-8 text";
    TOO_LARGE = "uh::syntax::too_large": "the file is larger than the compiler accepts";
    NESTING = "uh::syntax::nesting": "brackets are nested deeper than the language allows";
    SYNTAX = "uh::syntax::parse": "the text does not follow the grammar";
    NUMBER = "uh::syntax::number": "a number is out of range";
    IMPORT = "uh::check::import": "a `use` path cannot be resolved";
    DUPLICATE = "uh::check::duplicate": "a name is defined twice";
    UNDEFINED = "uh::check::undefined": "a name is used but never defined";
    UNKNOWN_FIELD = "uh::check::unknown_field": "a field or section is not known in this place";
    MISSING_FIELD = "uh::check::missing_field": "a required field is missing";
    VALUE = "uh::check::value": "a field has a value of the wrong kind";
    UNIT = "uh::check::unit": "a quantity has an unknown unit or one of the wrong dimension";
    RANGE = "uh::check::range": "a parameter is outside its physical range";
    EXTENDS = "uh::check::extends": "a hardware profile extends itself or a missing profile";
    BACKEND = "uh::check::backend": "the hardware backend is unknown or misconfigured";
    OP = "uh::check::op": "an operation is unknown or not supported by the hardware";
    ARGS = "uh::check::args": "an operation is called with wrong arguments";
    TYPE = "uh::check::type": "a value has the wrong domain (real vs complex) for its use";
    SHAPE = "uh::check::shape": "widths do not match";
    PORTS = "uh::check::ports": "a layer is wider than the hardware's mesh";
    PRECISION = "uh::check::precision": "more bits are requested than the hardware has";
    STRUCTURE = "uh::check::structure": "an architecture lacks an input or an output, or has an unused value";
    CONSTRAINT = "uh::check::constraint": "a static constraint is violated or malformed";
    TASK = "uh::check::task": "a task or its data set is misconfigured";
    SEARCH = "uh::check::search": "a search experiment is misconfigured";
    UNUSED = "uh::check::unused": "a value is computed but never used";
    LASER = "uh::check::laser": "an optical segment needs more laser power than the source delivers";
    IGNORED = "uh::check::ignored": "a hardware setting has no effect on the profile's backend";
}

/// The source texts behind file ids.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    files: Vec<(String, String)>,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push((name.into(), text.into()));
        FileId((self.files.len() - 1) as u32)
    }
    pub fn name(&self, id: FileId) -> &str {
        self.files
            .get(id.0 as usize)
            .map_or("<unknown>", |f| f.0.as_str())
    }
    pub fn text(&self, id: FileId) -> &str {
        self.files.get(id.0 as usize).map_or("", |f| f.1.as_str())
    }
    /// Every file's id, in the order they were added.
    pub fn ids(&self) -> impl Iterator<Item = FileId> {
        (0..self.files.len() as u32).map(FileId)
    }
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.0 == name)
            .map(|i| FileId(i as u32))
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: u32) -> (usize, usize) {
        let text = self.text(id);
        let offset = clamp_to_char_boundary(text, offset as usize);
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Renders diagnostics as miette's graphical report, without colour, at a fixed width,
    /// so the output is stable for snapshots and for LLM repair prompts.
    pub fn render_human(&self, diags: &[Diagnostic], color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for d in diags {
            let report = Rendered::new(d, self);
            if handler.render_report(&mut out, &report).is_err() {
                let _ = writeln!(out, "{}: {}", d.code, d.message);
            }
        }
        out
    }

    /// A plain-text rendering with file:line:col, for prompts and logs.
    pub fn render_plain(&self, diags: &[Diagnostic]) -> String {
        let mut out = String::new();
        for d in diags {
            let (line, col) = self.line_col(d.file, d.span.start);
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "{}:{line}:{col}: {sev}[{}]: {}",
                self.name(d.file),
                d.code,
                d.message
            );
            let text = self.text(d.file);
            if let Some(src_line) = text.lines().nth(line - 1) {
                let _ = writeln!(out, "    {src_line}");
            }
            if let Some(help) = &d.help {
                let _ = writeln!(out, "    help: {help}");
            }
        }
        out
    }

    pub fn render_json(&self, diags: &[Diagnostic]) -> Vec<JsonDiagnostic> {
        diags
            .iter()
            .map(|d| {
                let (line, column) = self.line_col(d.file, d.span.start);
                JsonDiagnostic {
                    file: self.name(d.file).to_string(),
                    code: d.code,
                    severity: d.severity,
                    message: d.message.clone(),
                    line,
                    column,
                    start: d.span.start,
                    end: d.span.end,
                    help: d.help.clone(),
                    fixes: d
                        .fixes
                        .iter()
                        .filter_map(|f| {
                            let e = f.as_single_edit(self.text(d.file))?;
                            let (line, column) = self.line_col(d.file, e.start);
                            Some(JsonFix {
                                description: f.description.clone(),
                                start: e.start,
                                end: e.end,
                                replacement: e.replacement,
                                line,
                                column,
                            })
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`).
    pub fn render_github(&self, diags: &[Diagnostic]) -> String {
        let mut out = String::new();
        for d in diags {
            let (line, col) = self.line_col(d.file, d.span.start);
            let kind = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut msg = format!("[{}] {}", d.code, d.message);
            if let Some(h) = &d.help {
                msg.push_str(" (help: ");
                msg.push_str(h);
                msg.push(')');
            }
            if !d.fixes.is_empty() {
                msg.push_str(FIXABLE);
            }
            let _ = writeln!(
                out,
                "::{kind} file={},line={line},col={col},title={}::{}",
                escape_gh_property(self.name(d.file)),
                escape_gh_property(d.code),
                escape_gh_data(&msg)
            );
        }
        out
    }
}

/// Appended to the help of a diagnostic that carries a fix, so a reader knows the tool
/// can make the change.
const FIXABLE: &str = " (fixable with `uhc fix`)";

fn clamp_to_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn escape_gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_gh_property(s: &str) -> String {
    escape_gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JsonDiagnostic {
    pub file: String,
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub line: usize,
    pub column: usize,
    pub start: u32,
    pub end: u32,
    pub help: Option<String>,
    pub fixes: Vec<JsonFix>,
}

/// A fix in JSON: one replacement of bytes `start..end` (line and column of `start`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JsonFix {
    pub description: String,
    pub start: u32,
    pub end: u32,
    pub replacement: String,
    pub line: usize,
    pub column: usize,
}

/// A file's name and text as miette's `SourceCode`.
struct FileView<'a> {
    name: &'a str,
    text: &'a str,
}

impl miette::SourceCode for FileView<'_> {
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

impl Sources {
    fn view(&self, id: FileId) -> FileView<'_> {
        FileView {
            name: self.name(id),
            text: self.text(id),
        }
    }
}

fn labeled(text: &str, span: Span, label: &str) -> miette::LabeledSpan {
    let start = clamp_to_char_boundary(text, span.start as usize);
    let end = clamp_to_char_boundary(text, span.end as usize).max(start);
    let label = if label.is_empty() {
        None
    } else {
        Some(label.to_string())
    };
    miette::LabeledSpan::new(label, start, end - start)
}

/// A diagnostic with its source attached, in the shape miette renders.
struct Rendered<'a> {
    diag: &'a Diagnostic,
    view: FileView<'a>,
    related: Vec<RelatedNote<'a>>,
}

impl<'a> Rendered<'a> {
    fn new(diag: &'a Diagnostic, sources: &'a Sources) -> Self {
        let related = diag
            .related
            .iter()
            .map(|label| RelatedNote {
                label,
                view: sources.view(label.file),
            })
            .collect();
        Rendered {
            diag,
            view: sources.view(diag.file),
            related,
        }
    }
}

impl std::fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        let help = self.diag.help.as_deref();
        match (help, self.diag.fixes.first()) {
            (None, None) => None,
            (Some(h), None) => Some(Box::new(h)),
            (Some(h), Some(_)) => Some(Box::new(format!("{h}{FIXABLE}"))),
            (None, Some(f)) => Some(Box::new(format!("{}{FIXABLE}", f.description))),
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.view)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(labeled(
            self.view.text,
            self.diag.span,
            &self.diag.label,
        ))))
    }
    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

struct RelatedNote<'a> {
    label: &'a Label,
    view: FileView<'a>,
}

impl std::fmt::Debug for RelatedNote<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label.message)
    }
}
impl std::fmt::Display for RelatedNote<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label.message)
    }
}
impl std::error::Error for RelatedNote<'_> {}

impl miette::Diagnostic for RelatedNote<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.view)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(labeled(
            self.view.text,
            self.label.span,
            "here",
        ))))
    }
}
