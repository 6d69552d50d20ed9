//! `uhc lsp`: a language server over stdio, the compiler's diagnostics and tables where
//! the typing happens. An edge module, like `cli`: it reads files (through `driver`) and
//! the client's stream, and asks the compiler; it has no parser or checker of its own.
//!
//! Synchronous, as rust-analyzer (lsp-server for the JSON-RPC messages, lsp-types for the
//! protocol's types): one thread answers every message in order, so no response is lost
//! or reordered, and a reader thread feeds it through a channel ([`transport`]). Changes
//! are applied at once; checking waits until the client has been quiet for
//! [`DEBOUNCE`], so a burst of edits costs one check. A request always sees the latest
//! text (it checks first if it must).

mod analysis;
mod complete;
mod hover;
pub mod text;
mod tokens;
pub mod transport;

use crate::diag::FileId;
use analysis::Analysis;
use lsp_server::{ErrorCode, Message, Notification, Request, Response};
use lsp_types as lt;
use lsp_types::Url;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use text::LineIndex;

/// How long the client must be quiet after an edit before the document is checked.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

struct Doc {
    text: String,
    index: LineIndex,
    version: i32,
    /// The compiler's name for the file (a path, or the URI when it is not a file).
    name: String,
    /// The analysis of the current text, once made.
    analysis: Option<Rc<Analysis>>,
    /// The analysis of an earlier text, for completion while a check waits.
    stale: Option<Rc<Analysis>>,
    /// Names of the files the last analysis loaded.
    deps: Vec<String>,
}

#[derive(PartialEq, Eq)]
enum Phase {
    Uninitialised,
    Running,
    ShutDown,
}

/// The server's state; the I/O loop is [`run_stdio`], benches and tests drive it directly.
pub struct Server {
    docs: HashMap<Url, Doc>,
    /// Documents whose diagnostics are due.
    dirty: BTreeSet<Url>,
    out: Vec<Message>,
    phase: Phase,
    exit: Option<i32>,
    stdlib_dir: PathBuf,
    /// For each open document, the files it `use`s whose diagnostics it published.
    foreign: HashMap<Url, BTreeSet<Url>>,
}

/// Resolves `use` against the open documents first (their unsaved text), then as `uhc
/// check` does.
struct Overlay<'a> {
    docs: HashMap<&'a str, &'a str>,
}

impl crate::check::Resolver for Overlay<'_> {
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String> {
        if !importer.starts_with('<') {
            let base = Path::new(importer).parent().unwrap_or(Path::new("."));
            let candidate = base.join(path);
            let name = canonical_name(&candidate);
            if let Some(text) = self.docs.get(name.as_str()) {
                return Ok((name, text.to_string()));
            }
        }
        crate::driver::FsResolver.resolve(importer, path)
    }
}

/// The name `FsResolver` gives a file: its canonical path when it exists.
fn canonical_name(path: &Path) -> String {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Where stdlib files are written for editors to open (read-only):
/// `$XDG_CACHE_HOME/uhc/stdlib-VERSION`, else `~/.cache/…`, else the temp folder.
pub fn stdlib_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("uhc")
        .join(concat!("stdlib-", env!("CARGO_PKG_VERSION")))
}

impl Server {
    pub fn new(stdlib_dir: PathBuf) -> Server {
        Server {
            docs: HashMap::new(),
            dirty: BTreeSet::new(),
            out: Vec::new(),
            phase: Phase::Uninitialised,
            exit: None,
            stdlib_dir,
            foreign: HashMap::new(),
        }
    }

    /// Messages to send, in order.
    pub fn take_output(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.out)
    }

    /// The exit code once the client has sent `exit`.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit
    }

    /// Whether diagnostics wait to be published.
    pub fn has_pending(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub fn handle(&mut self, msg: Message) {
        match msg {
            Message::Request(r) => {
                let id = r.id.clone();
                let method = r.method.clone();
                let result =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.request(r)));
                let response = match result {
                    Ok(Ok(value)) => Response::new_ok(id, value),
                    Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
                    Err(_) => Response::new_err(
                        id,
                        ErrorCode::InternalError as i32,
                        format!("uhc lsp failed on `{method}` (a bug: please report it)"),
                    ),
                };
                self.out.push(Message::Response(response));
            }
            Message::Notification(n) => {
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.notification(n)));
            }
            // Replies to requests the server never sends.
            Message::Response(_) => {}
        }
    }

    fn request(&mut self, r: Request) -> Result<Value, (ErrorCode, String)> {
        match (&self.phase, r.method.as_str()) {
            (Phase::Uninitialised, "initialize") => {
                self.phase = Phase::Running;
                return Ok(serde_json::to_value(initialize_result()).unwrap_or(Value::Null));
            }
            (Phase::Uninitialised, _) => {
                return Err((
                    ErrorCode::ServerNotInitialized,
                    "the client has not sent `initialize`".into(),
                ))
            }
            (_, "initialize") => {
                return Err((
                    ErrorCode::InvalidRequest,
                    "`initialize` was sent twice".into(),
                ))
            }
            (Phase::ShutDown, _) => {
                return Err((
                    ErrorCode::InvalidRequest,
                    "the server is shut down; only `exit` is accepted".into(),
                ))
            }
            (_, "shutdown") => {
                self.phase = Phase::ShutDown;
                return Ok(Value::Null);
            }
            _ => {}
        }
        fn params<P: serde::de::DeserializeOwned>(v: Value) -> Result<P, (ErrorCode, String)> {
            serde_json::from_value(v)
                .map_err(|e| (ErrorCode::InvalidParams, format!("invalid params: {e}")))
        }
        let value = match r.method.as_str() {
            "textDocument/hover" => to_value(self.hover(params(r.params)?)),
            "textDocument/definition" => to_value(self.definition(params(r.params)?)),
            "textDocument/references" => to_value(self.references(params(r.params)?)),
            "textDocument/completion" => to_value(self.completion(params(r.params)?)),
            "textDocument/formatting" => to_value(self.formatting(params(r.params)?)),
            "textDocument/codeAction" => to_value(self.code_actions(params(r.params)?)),
            "textDocument/documentSymbol" => to_value(self.document_symbols(params(r.params)?)),
            "textDocument/semanticTokens/full" => to_value(self.semantic_tokens(params(r.params)?)),
            "textDocument/prepareRename" => to_value(self.prepare_rename(params(r.params)?)?),
            "textDocument/rename" => to_value(self.rename(params(r.params)?)?),
            other => {
                return Err((
                    ErrorCode::MethodNotFound,
                    format!("uhc lsp does not implement `{other}`"),
                ))
            }
        };
        Ok(value)
    }

    fn notification(&mut self, n: Notification) {
        if n.method == "exit" {
            self.exit = Some(if self.phase == Phase::ShutDown { 0 } else { 1 });
            return;
        }
        if self.phase != Phase::Running {
            return;
        }
        match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = serde_json::from_value::<lt::DidOpenTextDocumentParams>(n.params)
                else {
                    return;
                };
                let d = p.text_document;
                let name = self.name_of(&d.uri);
                self.docs.insert(
                    d.uri.clone(),
                    Doc {
                        index: LineIndex::new(&d.text),
                        text: d.text,
                        version: d.version,
                        name,
                        analysis: None,
                        stale: None,
                        deps: Vec::new(),
                    },
                );
                self.changed(&d.uri);
            }
            "textDocument/didChange" => {
                let Ok(p) = serde_json::from_value::<lt::DidChangeTextDocumentParams>(n.params)
                else {
                    return;
                };
                let uri = p.text_document.uri;
                let Some(doc) = self.docs.get_mut(&uri) else {
                    return;
                };
                for c in p.content_changes {
                    text::apply_change(&mut doc.text, &mut doc.index, c);
                }
                doc.version = p.text_document.version;
                self.changed(&uri);
            }
            "textDocument/didClose" => {
                let Ok(p) = serde_json::from_value::<lt::DidCloseTextDocumentParams>(n.params)
                else {
                    return;
                };
                let uri = p.text_document.uri;
                if let Some(doc) = self.docs.remove(&uri) {
                    self.dirty.remove(&uri);
                    for f in self.foreign.remove(&uri).unwrap_or_default() {
                        self.publish(f, Vec::new(), None);
                    }
                    self.publish(uri, Vec::new(), None);
                    // Dependants now read the file from disk.
                    self.dependants_changed(&doc.name);
                }
            }
            "textDocument/didSave" => {
                let Ok(p) = serde_json::from_value::<lt::DidSaveTextDocumentParams>(n.params)
                else {
                    return;
                };
                let name = self.name_of(&p.text_document.uri);
                self.dependants_changed(&name);
            }
            "workspace/didChangeWatchedFiles" => {
                let Ok(p) = serde_json::from_value::<lt::DidChangeWatchedFilesParams>(n.params)
                else {
                    return;
                };
                for c in p.changes {
                    let name = self.name_of(&c.uri);
                    self.dependants_changed(&name);
                }
            }
            _ => {}
        }
    }

    /// A document's text changed: it and every open document that `use`s it are due.
    fn changed(&mut self, uri: &Url) {
        let Some(doc) = self.docs.get_mut(uri) else {
            return;
        };
        if let Some(a) = doc.analysis.take() {
            doc.stale = Some(a);
        }
        let name = doc.name.clone();
        self.dirty.insert(uri.clone());
        self.dependants_changed(&name);
    }

    fn dependants_changed(&mut self, name: &str) {
        for (uri, doc) in &mut self.docs {
            if doc.deps.iter().any(|d| d == name) {
                if let Some(a) = doc.analysis.take() {
                    doc.stale = Some(a);
                }
                self.dirty.insert(uri.clone());
            }
        }
    }

    /// Checks the documents that changed and publishes their diagnostics: the document's
    /// own, and those of files it `use`s that are not open (as `uhc check` reports them; an
    /// open file publishes its own; stdlib files are their read-only copies in the cache).
    pub fn flush(&mut self) {
        for uri in std::mem::take(&mut self.dirty) {
            let Some(a) = self.analysis(&uri) else {
                continue;
            };
            let doc = &self.docs[&uri];
            let mut by_file: BTreeMap<FileId, Vec<lt::Diagnostic>> = BTreeMap::new();
            let mut indexes: HashMap<FileId, LineIndex> = HashMap::new();
            for d in &a.partial.diagnostics {
                let index = if d.file == a.root {
                    &doc.index
                } else {
                    indexes
                        .entry(d.file)
                        .or_insert_with(|| LineIndex::new(a.sources.text(d.file)))
                };
                let diag = self.lsp_diagnostic(&a, index, d);
                by_file.entry(d.file).or_default().push(diag);
            }
            let version = doc.version;
            let own = by_file.remove(&a.root).unwrap_or_default();
            self.publish(uri.clone(), own, Some(version));
            let mut foreign = BTreeSet::new();
            for (file, diags) in by_file {
                let Some(target) = self.uri_of(a.sources.name(file)) else {
                    continue;
                };
                if !self.docs.contains_key(&target) {
                    foreign.insert(target.clone());
                    self.publish(target, diags, None);
                }
            }
            let before = self
                .foreign
                .insert(uri, foreign.clone())
                .unwrap_or_default();
            for gone in before.difference(&foreign) {
                if !self.docs.contains_key(gone) {
                    self.publish(gone.clone(), Vec::new(), None);
                }
            }
        }
    }

    fn publish(&mut self, uri: Url, diagnostics: Vec<lt::Diagnostic>, version: Option<i32>) {
        let params = lt::PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
        };
        self.out.push(Message::Notification(Notification::new(
            "textDocument/publishDiagnostics".into(),
            params,
        )));
    }

    /// The analysis of an open document's current text (made now if needed).
    fn analysis(&mut self, uri: &Url) -> Option<Rc<Analysis>> {
        let doc = self.docs.get(uri)?;
        if let Some(a) = &doc.analysis {
            return Some(a.clone());
        }
        let overlay = Overlay {
            docs: self
                .docs
                .values()
                .map(|d| (d.name.as_str(), d.text.as_str()))
                .collect(),
        };
        let a = Rc::new(Analysis::new(&doc.name, &doc.text, &overlay));
        let doc = self.docs.get_mut(uri)?;
        doc.deps = a.dependencies();
        doc.analysis = Some(a.clone());
        doc.stale = None;
        Some(a)
    }

    /// The compiler's name for a URI: a canonical path (a file of the stdlib cache is the
    /// stdlib file it holds), or the URI itself.
    fn name_of(&self, uri: &Url) -> String {
        match uri.to_file_path() {
            Ok(path) => {
                if let Ok(rel) = path.strip_prefix(&self.stdlib_dir) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if crate::stdlib::get(&rel).is_some() {
                        return format!("<stdlib>/{rel}");
                    }
                }
                canonical_name(&path)
            }
            Err(()) => uri.to_string(),
        }
    }

    /// The URI of a compiler file name; stdlib files are written to the cache read-only.
    fn uri_of(&self, name: &str) -> Option<Url> {
        if let Some(rel) = name.strip_prefix("<stdlib>/") {
            let text = crate::stdlib::get(rel)?;
            let path = self.stdlib_dir.join(rel);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                let _ = std::fs::create_dir_all(path.parent()?);
                if let Ok(meta) = std::fs::metadata(&path) {
                    let mut perms = meta.permissions();
                    #[allow(clippy::permissions_set_readonly_false)]
                    perms.set_readonly(false);
                    let _ = std::fs::set_permissions(&path, perms);
                }
                std::fs::write(&path, text).ok()?;
                let mut perms = std::fs::metadata(&path).ok()?.permissions();
                perms.set_readonly(true);
                let _ = std::fs::set_permissions(&path, perms);
            }
            return Url::from_file_path(&path).ok();
        }
        let path = Path::new(name);
        if path.is_absolute() {
            return Url::from_file_path(path).ok();
        }
        Url::parse(name)
            .ok()
            .or_else(|| Url::from_file_path(std::env::current_dir().ok()?.join(path)).ok())
    }

    fn location(
        &self,
        a: &Analysis,
        file: crate::diag::FileId,
        span: crate::span::Span,
    ) -> Option<lt::Location> {
        let text = a.sources.text(file);
        let index = LineIndex::new(text);
        Some(lt::Location {
            uri: self.uri_of(a.sources.name(file))?,
            range: index.range(text, span.start as usize, span.end as usize),
        })
    }

    fn lsp_diagnostic(
        &self,
        a: &Analysis,
        index: &LineIndex,
        d: &crate::Diagnostic,
    ) -> lt::Diagnostic {
        let text = a.sources.text(d.file);
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let related: Vec<lt::DiagnosticRelatedInformation> = d
            .related
            .iter()
            .filter_map(|l| {
                Some(lt::DiagnosticRelatedInformation {
                    location: self.location(a, l.file, l.span)?,
                    message: l.message.clone(),
                })
            })
            .collect();
        lt::Diagnostic {
            range: index.range(text, d.span.start as usize, d.span.end as usize),
            severity: Some(if d.is_error() {
                lt::DiagnosticSeverity::ERROR
            } else {
                lt::DiagnosticSeverity::WARNING
            }),
            code: Some(lt::NumberOrString::String(d.code.to_string())),
            source: Some("uhc".into()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..lt::Diagnostic::default()
        }
    }

    /// The analysis and byte offset of a position in an open document.
    fn at(&mut self, p: &lt::TextDocumentPositionParams) -> Option<(Rc<Analysis>, usize)> {
        let a = self.analysis(&p.text_document.uri)?;
        let doc = &self.docs[&p.text_document.uri];
        Some((a, doc.index.offset(&doc.text, p.position)))
    }

    fn hover(&mut self, p: lt::HoverParams) -> Option<lt::Hover> {
        let (a, offset) = self.at(&p.text_document_position_params)?;
        let value = hover::hover(&a, offset)?;
        Some(lt::Hover {
            contents: lt::HoverContents::Markup(lt::MarkupContent {
                kind: lt::MarkupKind::Markdown,
                value,
            }),
            range: None,
        })
    }

    fn definition(&mut self, p: lt::GotoDefinitionParams) -> Option<lt::GotoDefinitionResponse> {
        let (a, offset) = self.at(&p.text_document_position_params)?;
        if let Some(u) = a.use_at(offset) {
            let overlay = Overlay {
                docs: HashMap::new(),
            };
            let (name, _) =
                crate::check::Resolver::resolve(&overlay, a.sources.name(a.root), &u.path.value)
                    .ok()?;
            let uri = self.uri_of(&name)?;
            return Some(lt::GotoDefinitionResponse::Scalar(lt::Location {
                uri,
                range: lt::Range::default(),
            }));
        }
        let sym = a.sym_at(offset)?;
        let def = a.definition(sym)?;
        Some(lt::GotoDefinitionResponse::Scalar(
            self.location(&a, def.file, def.span)?,
        ))
    }

    fn references(&mut self, p: lt::ReferenceParams) -> Option<Vec<lt::Location>> {
        let (a, offset) = self.at(&p.text_document_position)?;
        let sym = a.sym_at(offset)?;
        let include_def = p.context.include_declaration;
        Some(
            a.references(sym)
                .into_iter()
                .filter(|s| include_def || !s.def)
                .filter_map(|s| self.location(&a, s.file, s.span))
                .collect(),
        )
    }

    fn completion(&mut self, p: lt::CompletionParams) -> Option<lt::CompletionResponse> {
        let uri = &p.text_document_position.text_document.uri;
        // The last analysis, even of an older text: names and profiles change rarely while
        // typing, and completion must not wait for a check.
        let doc = self.docs.get(uri)?;
        let a = match doc.analysis.as_ref().or(doc.stale.as_ref()) {
            Some(a) => Some(a.clone()),
            None => self.analysis(uri),
        };
        let doc = &self.docs[uri];
        let offset = doc
            .index
            .offset(&doc.text, p.text_document_position.position);
        Some(lt::CompletionResponse::Array(complete::complete(
            a.as_deref(),
            &doc.text,
            offset,
        )))
    }

    fn formatting(&mut self, p: lt::DocumentFormattingParams) -> Option<Vec<lt::TextEdit>> {
        let doc = self.docs.get(&p.text_document.uri)?;
        let formatted = crate::syntax::format_source(crate::diag::FileId(0), &doc.text).ok()?;
        if formatted == doc.text {
            return Some(Vec::new());
        }
        Some(vec![lt::TextEdit {
            range: doc.index.range(&doc.text, 0, doc.text.len()),
            new_text: formatted,
        }])
    }

    fn code_actions(&mut self, p: lt::CodeActionParams) -> Option<Vec<lt::CodeActionOrCommand>> {
        let uri = p.text_document.uri;
        let a = self.analysis(&uri)?;
        let doc = &self.docs[&uri];
        let (start, end) = (
            doc.index.offset(&doc.text, p.range.start),
            doc.index.offset(&doc.text, p.range.end),
        );
        let mut out = Vec::new();
        for d in a.partial.diagnostics.iter().filter(|d| d.file == a.root) {
            if (d.span.end as usize) < start || (d.span.start as usize) > end {
                continue;
            }
            for fix in &d.fixes {
                let edits = fix
                    .edits
                    .iter()
                    .map(|e| lt::TextEdit {
                        range: doc.index.range(&doc.text, e.start as usize, e.end as usize),
                        new_text: e.replacement.clone(),
                    })
                    .collect();
                out.push(lt::CodeActionOrCommand::CodeAction(lt::CodeAction {
                    title: fix.description.clone(),
                    kind: Some(lt::CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![self.lsp_diagnostic(&a, &doc.index, d)]),
                    edit: Some(lt::WorkspaceEdit {
                        changes: Some(HashMap::from([(uri.clone(), edits)])),
                        ..lt::WorkspaceEdit::default()
                    }),
                    is_preferred: Some(d.fixes.len() == 1),
                    ..lt::CodeAction::default()
                }));
            }
        }
        Some(out)
    }
}

impl Server {
    /// Colours from the compiler's reading of the document ([`tokens`]).
    fn semantic_tokens(&mut self, p: lt::SemanticTokensParams) -> Option<lt::SemanticTokensResult> {
        let a = self.analysis(&p.text_document.uri)?;
        Some(lt::SemanticTokensResult::Tokens(lt::SemanticTokens {
            result_id: None,
            data: tokens::tokens(&a),
        }))
    }

    /// The outline of a document: its items, and an architecture's inputs and values.
    fn document_symbols(
        &mut self,
        p: lt::DocumentSymbolParams,
    ) -> Option<lt::DocumentSymbolResponse> {
        let a = self.analysis(&p.text_document.uri)?;
        let text = a.sources.text(a.root);
        let index = LineIndex::new(text);
        let range =
            |span: crate::span::Span| index.range(text, span.start as usize, span.end as usize);
        #[allow(deprecated)] // `deprecated` is a required field of the protocol type
        let symbol = |name: &str, detail: Option<String>, kind, span, name_span, children| {
            lt::DocumentSymbol {
                name: name.to_string(),
                detail,
                kind,
                tags: None,
                deprecated: None,
                range: range(span),
                selection_range: range(name_span),
                children,
            }
        };
        let mut out = Vec::new();
        for item in &a.tree().items {
            let Some(name) = item.name() else { continue };
            let (kind, detail, children) = match item {
                crate::syntax::Item::Hardware(h) => (
                    lt::SymbolKind::STRUCT,
                    h.extends.as_ref().map(|e| format!("extends {}", e.name)),
                    None,
                ),
                crate::syntax::Item::Arch(arch) => {
                    let values = arch
                        .body
                        .entries
                        .iter()
                        .filter_map(|e| match e {
                            crate::syntax::Entry::Input(i) => Some(symbol(
                                &i.name.name,
                                Some("input".into()),
                                lt::SymbolKind::VARIABLE,
                                i.span,
                                i.name.span,
                                None,
                            )),
                            crate::syntax::Entry::Field(f) => Some(symbol(
                                &f.key.name,
                                None,
                                lt::SymbolKind::VARIABLE,
                                f.span,
                                f.key.span,
                                None,
                            )),
                            _ => None,
                        })
                        .collect();
                    (
                        lt::SymbolKind::FUNCTION,
                        Some(format!("on {}", arch.hardware.name)),
                        Some(values),
                    )
                }
                crate::syntax::Item::Task(_) => (lt::SymbolKind::OBJECT, None, None),
                crate::syntax::Item::Search(_) => (lt::SymbolKind::EVENT, None, None),
                _ => (lt::SymbolKind::NAMESPACE, None, None),
            };
            out.push(symbol(
                &name.name,
                detail,
                kind,
                item.span(),
                name.span,
                children,
            ));
        }
        Some(lt::DocumentSymbolResponse::Nested(out))
    }

    /// The name under the cursor and its definition, if it can be renamed: defined, and
    /// not in the (read-only) standard library.
    fn renamable(
        &mut self,
        p: &lt::TextDocumentPositionParams,
    ) -> Result<Option<Renamable>, RequestError> {
        let Some((a, offset)) = self.at(p) else {
            return Ok(None);
        };
        let Some(sym) = a.sym_at(offset) else {
            return Ok(None);
        };
        let Some(def) = a.definition(sym) else {
            return Err((
                ErrorCode::RequestFailed,
                format!(
                    "`{}` is not defined, so there is nothing to rename",
                    sym.name
                ),
            ));
        };
        let file = a.sources.name(def.file);
        if let Some(rel) = file.strip_prefix("<stdlib>/") {
            return Err((
                ErrorCode::RequestFailed,
                format!(
                    "`{}` is defined in the standard library ({rel}), which is read-only; to change it, write your own (`hardware my_{} extends {} {{ … }}`) and use that",
                    sym.name, sym.name, sym.name
                ),
            ));
        }
        let (sym, def) = (sym.clone(), def.clone());
        Ok(Some(Renamable { a, sym, def }))
    }

    fn prepare_rename(
        &mut self,
        p: lt::TextDocumentPositionParams,
    ) -> Result<Option<lt::PrepareRenameResponse>, RequestError> {
        let Some(Renamable { sym, .. }) = self.renamable(&p)? else {
            return Ok(None);
        };
        let doc = &self.docs[&p.text_document.uri];
        Ok(Some(lt::PrepareRenameResponse::Range(doc.index.range(
            &doc.text,
            sym.span.start as usize,
            sym.span.end as usize,
        ))))
    }

    /// Renames a name everywhere the compiler sees it: its definition and every use in
    /// this document, the files it `use`s, and the other open documents that use the
    /// same definition. A new name that is not a name, or is taken, is refused.
    fn rename(&mut self, p: lt::RenameParams) -> Result<Option<lt::WorkspaceEdit>, RequestError> {
        let Some(Renamable { a, sym, def }) = self.renamable(&p.text_document_position)? else {
            return Ok(None);
        };
        let sym = &sym;
        let new = p.new_name.as_str();
        if !crate::syntax::is_name(new) {
            return Err((
                ErrorCode::InvalidParams,
                format!("`{new}` is not a name: a letter or `_`, then letters, digits and `_`, and not a keyword"),
            ));
        }
        if sym.name == new {
            return Ok(Some(lt::WorkspaceEdit::default()));
        }
        let what = match &sym.ns {
            analysis::Ns::Item(kind) if kind.starts_with(['a', 'e']) => format!("an {kind}"),
            analysis::Ns::Item(kind) => format!("a {kind}"),
            analysis::Ns::Value { .. } => "a value of this arch".to_string(),
        };
        if a.syms
            .iter()
            .any(|s| s.def && s.ns == sym.ns && s.name == new)
        {
            return Err((
                ErrorCode::RequestFailed,
                format!("{what} named `{new}` exists already; choose another name"),
            ));
        }
        // By name and offset: `Span`s compare equal to every span.
        let def_at = (a.sources.name(def.file).to_string(), def.span.start);
        let mut changes: HashMap<Url, Vec<lt::TextEdit>> = HashMap::new();
        let mut add = |server: &Self, an: &Analysis, s: &analysis::Sym| {
            if let Some(loc) = server.location(an, s.file, s.span) {
                let edits = changes.entry(loc.uri).or_default();
                if !edits.iter().any(|e| e.range == loc.range) {
                    edits.push(lt::TextEdit {
                        range: loc.range,
                        new_text: new.to_string(),
                    });
                }
            }
        };
        for s in a.references(sym) {
            add(self, &a, s);
        }
        // Items are shared across files: open documents that `use` the definition's file
        // name it too. (Values are local to their arch.)
        if let analysis::Ns::Item(_) = sym.ns {
            let root = p.text_document_position.text_document.uri.clone();
            let others: Vec<Url> = self.docs.keys().filter(|u| **u != root).cloned().collect();
            for uri in others {
                let Some(other) = self.analysis(&uri) else {
                    continue;
                };
                for s in other
                    .syms
                    .iter()
                    .filter(|s| s.ns == sym.ns && s.name == sym.name)
                {
                    let same = other.definition(s).is_some_and(|d| {
                        (other.sources.name(d.file), d.span.start) == (def_at.0.as_str(), def_at.1)
                    });
                    if same {
                        add(self, &other, s);
                    }
                }
            }
        }
        Ok(Some(lt::WorkspaceEdit {
            changes: Some(changes),
            ..lt::WorkspaceEdit::default()
        }))
    }
}

/// A name that can be renamed: the analysis it was found in, the occurrence under the
/// cursor and its definition.
struct Renamable {
    a: Rc<Analysis>,
    sym: analysis::Sym,
    def: analysis::Sym,
}

/// A request's failure: the JSON-RPC error code and the message the editor shows.
type RequestError = (ErrorCode, String);

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn initialize_result() -> lt::InitializeResult {
    lt::InitializeResult {
        capabilities: lt::ServerCapabilities {
            position_encoding: Some(lt::PositionEncodingKind::UTF16),
            text_document_sync: Some(lt::TextDocumentSyncCapability::Options(
                lt::TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(lt::TextDocumentSyncKind::INCREMENTAL),
                    save: Some(lt::TextDocumentSyncSaveOptions::Supported(true)),
                    ..lt::TextDocumentSyncOptions::default()
                },
            )),
            hover_provider: Some(lt::HoverProviderCapability::Simple(true)),
            definition_provider: Some(lt::OneOf::Left(true)),
            references_provider: Some(lt::OneOf::Left(true)),
            completion_provider: Some(lt::CompletionOptions {
                trigger_characters: Some(vec!["(".into(), "=".into(), " ".into(), "[".into()]),
                ..lt::CompletionOptions::default()
            }),
            document_formatting_provider: Some(lt::OneOf::Left(true)),
            code_action_provider: Some(lt::CodeActionProviderCapability::Simple(true)),
            document_symbol_provider: Some(lt::OneOf::Left(true)),
            semantic_tokens_provider: Some(
                lt::SemanticTokensServerCapabilities::SemanticTokensOptions(
                    lt::SemanticTokensOptions {
                        legend: tokens::legend(),
                        full: Some(lt::SemanticTokensFullOptions::Bool(true)),
                        range: None,
                        work_done_progress_options: lt::WorkDoneProgressOptions::default(),
                    },
                ),
            ),
            rename_provider: Some(lt::OneOf::Right(lt::RenameOptions {
                prepare_provider: Some(true),
                work_done_progress_options: lt::WorkDoneProgressOptions::default(),
            })),
            ..lt::ServerCapabilities::default()
        },
        server_info: Some(lt::ServerInfo {
            name: "uhc".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
    }
}

/// Serves the protocol on stdin/stdout until `exit` or the end of input; returns the exit
/// code (0 after `shutdown` + `exit`, 1 otherwise, as the protocol says).
pub fn run_stdio() -> i32 {
    use std::io::Write;
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        while let Ok(Some(m)) = transport::read(&mut input) {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    let mut server = Server::new(stdlib_dir());
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = if server.has_pending() {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => {
                    server.flush();
                    None
                }
                Err(RecvTimeoutError::Disconnected) => return server.exit_code().unwrap_or(1),
            }
        } else {
            match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return server.exit_code().unwrap_or(1),
            }
        };
        let written = match next {
            Some(transport::Incoming::Message(m)) => {
                server.handle(m);
                Ok(())
            }
            Some(transport::Incoming::Malformed { id, code, message }) => {
                transport::write_error(&mut stdout, id, code, &message)
            }
            None => Ok(()),
        };
        let mut ok = written.is_ok();
        for m in server.take_output() {
            ok &= transport::write(&mut stdout, &m).is_ok();
        }
        ok &= stdout.flush().is_ok();
        if let Some(code) = server.exit_code() {
            return code;
        }
        if !ok {
            // The client is gone.
            return 1;
        }
    }
}
