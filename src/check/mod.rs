//! The checker: resolves imports and names, and checks every item against the rules of
//! its kind and every architecture against its hardware. Pure: files come in through a
//! [`Resolver`], and every problem found is reported, not only the first.

mod arch;
pub mod grammar;
mod hardware;
pub mod model;
pub mod ops;
mod plan;
pub mod suggest;
pub mod units;
mod values;

pub use hardware::{default_energy, default_precision, SECTIONS as PROFILE_SECTIONS};
pub use model::*;
pub use plan::{seeds_for, task_shape, SEARCH_FIELDS, TASK_FIELDS};

/// The table of profile section fields editors read (`lsp`), held to the checker.
pub mod profile_fields {
    pub use super::hardware::{field, FieldInfo, FIELDS};
}

use crate::diag::{code, Diagnostic, FileId, Sources};
use crate::syntax::{self, Ident, Item, Span};
use std::collections::HashMap;

/// Supplies the text of `use`d files. Implementations do the I/O; the checker does none.
pub trait Resolver {
    /// Resolves `path` as written in a `use` inside `importer` (a file name). Returns a
    /// canonical name (used to load each file once) and the text.
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String>;
}

/// Resolves only the standard library compiled into the binary.
pub struct StdlibResolver;

impl Resolver for StdlibResolver {
    fn resolve(&self, _importer: &str, path: &str) -> Result<(String, String), String> {
        crate::stdlib::get(path)
            .map(|text| (format!("<stdlib>/{path}"), text.to_string()))
            .ok_or_else(|| {
                format!(
                    "the standard library has no `{path}`; it has {}",
                    crate::stdlib::list()
                )
            })
    }
}

/// An item together with the file it came from.
pub(crate) struct Located<'a, T> {
    pub file: FileId,
    pub node: &'a T,
}

impl<T> Clone for Located<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Located<'_, T> {}

/// Checks `root` (already added to `sources`) and everything it imports.
pub fn check(
    sources: &mut Sources,
    root: FileId,
    resolver: &dyn Resolver,
) -> (Checked, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let files = load_files(
        sources,
        root,
        resolver,
        &mut diags,
        &mut HashMap::new(),
        None,
    );
    let mut cx = Cx::new(&mut diags);
    cx.folders = files
        .iter()
        .map(|(id, _)| (*id, folder_of(sources.name(*id))))
        .collect();
    cx.collect_names(&files);
    let checked = cx.run(Resolved::new(None));
    diags.sort_by_key(|d| (d.file != root, d.file, d.span.start));
    (checked, diags)
}

/// Items checked once that later texts are checked against: a search's `use` and
/// `hardware` items, which every candidate of the search needs. Checking a candidate in
/// an environment ([`check_in`]) gives the diagnostics checking the environment's text
/// followed by the candidate's would, minus the environment's own, with the candidate's
/// own line numbers, and without parsing or resolving the environment's profiles again.
#[derive(Clone, Debug)]
pub struct Env {
    sources: Sources,
    files: Vec<(FileId, syntax::File)>,
    /// Canonical names of the files loaded, so a candidate's `use` of one is not a second copy.
    loaded: HashMap<String, FileId>,
    /// Every profile of the environment, resolved (`None`: broken).
    resolved: HashMap<String, Option<HardwareProfile>>,
}

impl Env {
    /// Checks `root` (already in `sources`) and what it imports as an environment; returns
    /// the environment and the problems found in it.
    pub fn new(
        mut sources: Sources,
        root: FileId,
        resolver: &dyn Resolver,
    ) -> (Env, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut loaded = HashMap::new();
        let files = load_files(&mut sources, root, resolver, &mut diags, &mut loaded, None);
        let mut resolved = Resolved::new(None);
        {
            let mut cx = Cx::new(&mut diags);
            cx.collect_names(&files);
            for h in Cx::ordered(&cx.hardware, |h| h.span) {
                cx.hardware_profile(&h.node.name.name, &mut resolved, &mut Vec::new());
            }
        }
        let resolved = resolved.own;
        diags.sort_by_key(|d| (d.file != root, d.file, d.span.start));
        let env = Env {
            sources,
            files,
            loaded,
            resolved,
        };
        (env, diags)
    }

    /// The sources of the environment (its files keep their ids in every [`check_in`]).
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// A profile of the environment, if it resolved.
    pub fn hardware(&self, name: &str) -> Option<&HardwareProfile> {
        self.resolved.get(name).and_then(Option::as_ref)
    }
}

/// Checks the text `name` in `env`. Returns the sources (the environment's files and the
/// new one, `root`), the result and the new text's diagnostics (and those of any file it
/// imports that the environment did not have). The result lists the new text's items (and
/// those of files it imports that the environment did not have), plus the environment's
/// profiles its architectures run on.
///
/// `parsed` is the text's tree when the caller has parsed it already, without errors.
pub fn check_in(
    env: &Env,
    name: &str,
    text: &str,
    parsed: Option<syntax::File>,
    resolver: &dyn Resolver,
) -> (Sources, FileId, Checked, Vec<Diagnostic>) {
    let mut sources = env.sources.clone();
    let root = sources.add(name, text);
    let mut diags = Vec::new();
    let mut loaded = env.loaded.clone();
    let files = load_files(
        &mut sources,
        root,
        resolver,
        &mut diags,
        &mut loaded,
        parsed,
    );
    let mut cx = Cx::new(&mut diags);
    cx.folders = env
        .files
        .iter()
        .chain(&files)
        .map(|(id, _)| (*id, folder_of(sources.name(*id))))
        .collect();
    // The environment's names come first, as its text would; its problems were reported
    // when it was built.
    let before = cx.diags.len();
    cx.collect_names(&env.files);
    cx.diags.truncate(before);
    cx.inherited = env.files.iter().map(|(id, _)| *id).collect();
    cx.collect_names(&files);
    let checked = cx.run(Resolved::new(Some(&env.resolved)));
    diags.sort_by_key(|d| (d.file != root, d.file, d.span.start));
    (sources, root, checked, diags)
}

/// The folder a file name is in (a pure path operation, no I/O); empty for the standard
/// library and other names in angle brackets.
fn folder_of(name: &str) -> std::path::PathBuf {
    if name.starts_with('<') {
        return std::path::PathBuf::new();
    }
    std::path::Path::new(name)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// Parses the root and, transitively, every file it `use`s.
/// Files whose canonical name is in `loaded` are not loaded again (they are in an
/// environment already); `loaded` gains the files loaded now.
fn load_files(
    sources: &mut Sources,
    root: FileId,
    resolver: &dyn Resolver,
    diags: &mut Vec<Diagnostic>,
    loaded: &mut HashMap<String, FileId>,
    mut root_ast: Option<syntax::File>,
) -> Vec<(FileId, syntax::File)> {
    let mut files = Vec::new();
    let mut queue = vec![root];
    loaded.insert(sources.name(root).to_string(), root);
    while let Some(id) = queue.pop() {
        let given = if id == root { root_ast.take() } else { None };
        let (ast, parse_diags) =
            match given.or_else(|| stdlib_ast(sources.name(id), sources.text(id))) {
                Some(ast) => (ast, Vec::new()),
                None => syntax::parse(id, sources.text(id)),
            };
        diags.extend(parse_diags);
        for item in &ast.items {
            let Item::Use(u) = item else { continue };
            let importer = sources.name(id).to_string();
            match resolver.resolve(&importer, &u.path.value) {
                Ok((name, text)) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = loaded.entry(name) {
                        let new_id = sources.add(slot.key().clone(), text);
                        slot.insert(new_id);
                        queue.push(new_id);
                    }
                }
                Err(why) => diags.push(
                    Diagnostic::error(code::IMPORT, id, u.path.span, format!("cannot import `{}`: {why}", u.path.value))
                        .with_label("not found")
                        .with_help(format!(
                            "paths are resolved next to the importing file, then in the standard library ({})",
                            crate::stdlib::list()
                        )),
                ),
            }
        }
        files.push((id, ast));
    }
    files
}

/// Standard-library files parse once per process: every candidate of a search imports
/// them, and their trees (spans only, no file ids) are the same each time.
fn stdlib_ast(name: &str, text: &str) -> Option<syntax::File> {
    use std::sync::OnceLock;
    static CACHE: OnceLock<Vec<(String, syntax::File)>> = OnceLock::new();
    let path = name.strip_prefix("<stdlib>/")?;
    let cache = CACHE.get_or_init(|| {
        crate::stdlib::FILES
            .iter()
            .filter_map(|(p, t)| {
                let (ast, diags) = syntax::parse(crate::diag::FileId(0), t);
                diags.is_empty().then(|| (p.to_string(), ast))
            })
            .collect()
    });
    let (_, ast) = cache.iter().find(|(p, _)| p == path)?;
    // The text must be the stdlib's own (a resolver could serve other text under the name).
    (crate::stdlib::get(path) == Some(text)).then(|| ast.clone())
}

/// Checking context shared by the item checkers.
pub(crate) struct Cx<'a> {
    pub diags: &'a mut Vec<Diagnostic>,
    pub hardware: HashMap<&'a str, Located<'a, syntax::Hardware>>,
    pub archs: HashMap<&'a str, Located<'a, syntax::Arch>>,
    pub tasks: HashMap<&'a str, Located<'a, syntax::Task>>,
    pub searches: HashMap<&'a str, Located<'a, syntax::Search>>,
    pub experiments: HashMap<&'a str, Located<'a, syntax::Experiment>>,
    /// Every item name, for duplicate detection and suggestions.
    pub names: HashMap<&'a str, (FileId, &'a Ident, &'static str)>,
    /// The folder of each file, as its name gives it (empty for the standard library and
    /// names without one): relative data paths are resolved against it, as `use` paths are.
    pub folders: HashMap<FileId, std::path::PathBuf>,
    /// Files of an environment ([`check_in`]): their items are known (names, profiles)
    /// but were checked when the environment was built, and are not listed again.
    pub inherited: Vec<FileId>,
}

/// Profiles resolved so far (`None`: broken): an environment's, read-only, and this
/// check's own.
pub(crate) struct Resolved<'e> {
    base: Option<&'e HashMap<String, Option<HardwareProfile>>>,
    own: HashMap<String, Option<HardwareProfile>>,
}

impl<'e> Resolved<'e> {
    pub fn new(base: Option<&'e HashMap<String, Option<HardwareProfile>>>) -> Self {
        Resolved {
            base,
            own: HashMap::new(),
        }
    }
    pub fn get(&self, name: &str) -> Option<&Option<HardwareProfile>> {
        self.own
            .get(name)
            .or_else(|| self.base.and_then(|b| b.get(name)))
    }
    pub fn insert(&mut self, name: String, profile: Option<HardwareProfile>) {
        self.own.insert(name, profile);
    }
}

impl<'a> Cx<'a> {
    fn new(diags: &'a mut Vec<Diagnostic>) -> Self {
        Cx {
            diags,
            hardware: HashMap::new(),
            archs: HashMap::new(),
            tasks: HashMap::new(),
            searches: HashMap::new(),
            experiments: HashMap::new(),
            names: HashMap::new(),
            folders: HashMap::new(),
            inherited: Vec::new(),
        }
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn collect_names(&mut self, files: &'a [(FileId, syntax::File)]) {
        for (file, ast) in files {
            for item in &ast.items {
                let Some(name) = item.name() else { continue };
                if let Some((prev_file, prev, kind)) = self.names.get(name.name.as_str()) {
                    let d = Diagnostic::error(
                        code::DUPLICATE,
                        *file,
                        name.span,
                        format!("`{}` is defined more than once", name.name),
                    )
                    .with_label(format!("second definition (an item of kind `{}`)", item.keyword()))
                    .with_related(
                        *prev_file,
                        prev.span,
                        format!("first defined here (`{kind}`)"),
                    )
                    .with_help("rename one of them (item names share one namespace); to change a standard-library profile, derive a new one with `hardware NAME extends BASE { … }`");
                    self.diags.push(d);
                    continue;
                }
                self.names.insert(&name.name, (*file, name, item.keyword()));
                match item {
                    Item::Hardware(h) => {
                        self.hardware.insert(
                            &h.name.name,
                            Located {
                                file: *file,
                                node: h,
                            },
                        );
                    }
                    Item::Arch(a) => {
                        self.archs.insert(
                            &a.name.name,
                            Located {
                                file: *file,
                                node: a,
                            },
                        );
                    }
                    Item::Task(t) => {
                        self.tasks.insert(
                            &t.name.name,
                            Located {
                                file: *file,
                                node: t,
                            },
                        );
                    }
                    Item::Search(s) => {
                        self.searches.insert(
                            &s.name.name,
                            Located {
                                file: *file,
                                node: s,
                            },
                        );
                    }
                    Item::Experiment(e) => {
                        self.experiments.insert(
                            &e.name.name,
                            Located {
                                file: *file,
                                node: e,
                            },
                        );
                    }
                    Item::Use(_) => {}
                }
            }
        }
    }

    /// Items of one kind in source order (file, then position), for deterministic output.
    fn ordered<T>(
        map: &HashMap<&'a str, Located<'a, T>>,
        span: impl Fn(&T) -> Span,
    ) -> Vec<Located<'a, T>> {
        let mut v: Vec<Located<'a, T>> = map.values().copied().collect();
        v.sort_by_key(|l| (l.file, span(l.node).start));
        v
    }

    /// Checks every item; `resolved` holds profiles resolved already (an environment's).
    fn run(&mut self, mut resolved: Resolved<'_>) -> Checked {
        let mut checked = Checked::default();
        for h in Self::ordered(&self.hardware, |h| h.span) {
            if self.inherited.contains(&h.file) {
                continue;
            }
            let profile = self.hardware_profile(&h.node.name.name, &mut resolved, &mut Vec::new());
            if let Some(p) = profile {
                checked.hardware.push(p);
            }
        }
        for t in Self::ordered(&self.tasks, |t| t.span) {
            if self.inherited.contains(&t.file) {
                continue;
            }
            if let Some(task) = self.task(t) {
                checked.tasks.push(task);
            }
        }
        for a in Self::ordered(&self.archs, |a| a.span) {
            if self.inherited.contains(&a.file) {
                continue;
            }
            let hw_name = &a.node.hardware;
            let Some(hw) = resolved.get(hw_name.name.as_str()) else {
                self.undefined(
                    a.file,
                    hw_name,
                    "hardware profile",
                    self.hardware.keys().copied().collect(),
                );
                continue;
            };
            // A broken profile has been reported already.
            let Some(hw) = hw else { continue };
            if let Some(graph) = self.arch(a, hw, true) {
                // An environment's profile is listed with the archs that use it.
                if !checked.hardware.iter().any(|h| h.name == hw.name) {
                    checked.hardware.push(hw.clone());
                }
                checked.archs.push(graph);
            }
        }
        for s in Self::ordered(&self.searches, |s| s.span) {
            if self.inherited.contains(&s.file) {
                continue;
            }
            if let Some(spec) = self.search(s, &checked, &resolved) {
                checked.searches.push(spec);
            }
        }
        for e in Self::ordered(&self.experiments, |e| e.span) {
            if self.inherited.contains(&e.file) {
                continue;
            }
            if let Some(spec) = self.experiment(e, &checked, &resolved) {
                checked.experiments.push(spec);
            }
        }
        checked
    }

    /// Reports a reference to an undefined name, with a suggestion.
    pub fn undefined(&mut self, file: FileId, name: &Ident, what: &str, mut candidates: Vec<&str>) {
        candidates.sort_unstable();
        let d = Diagnostic::error(
            code::UNDEFINED,
            file,
            name.span,
            format!("no {what} named `{}`", name.name),
        )
        .with_label("not defined");
        let stdlib = crate::stdlib::defining(&name.name).filter(|_| what == "hardware profile");
        self.push(match stdlib {
            Some(path) => d.with_help(format!(
                "the standard library defines `{}` in `{path}`: add `use \"{path}\"` at the top",
                name.name
            )),
            None => d.with_suggestion(&name.name, name.span, &candidates, what),
        });
    }
}

/// Parses and checks one source text (no lowering; see `uhc::check_source` for the full front end).
pub fn check_only(name: &str, text: &str) -> (Option<Checked>, Vec<Diagnostic>, Sources) {
    check_only_with(name, text, &StdlibResolver)
}

/// As [`check_only`], with a caller-chosen resolver for `use`.
pub fn check_only_with(
    name: &str,
    text: &str,
    resolver: &dyn Resolver,
) -> (Option<Checked>, Vec<Diagnostic>, Sources) {
    let mut sources = Sources::new();
    let root = sources.add(name, text);
    let (checked, diags) = check(&mut sources, root, resolver);
    let ok = !diags.iter().any(|d| d.is_error());
    (ok.then_some(checked), diags, sources)
}
