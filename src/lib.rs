//! uhc: hardware-aware neural architecture search for physical neural networks.
//!
//! The pipeline runs one way: text → [`syntax`] → [`check`] → [`ir`] → [`backend`] → scores.
//! Every stage before the driver is pure: no files, no network, no clocks.

pub mod backend;
pub mod check;
pub mod data;
pub mod diag;
pub mod driver;
pub mod fix;
pub mod ir;
pub mod llm;
pub mod llm_ops;
pub mod lsp;
pub mod runtime;
pub mod search;
pub mod span;
pub mod stdlib;
pub mod syntax;
pub mod train;

pub use check::Checked;
pub use diag::{Diagnostic, Sources};

use check::Resolver;
use diag::Diagnostic as Diag;

/// A checked file with every architecture lowered for its hardware.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub checked: Checked,
    /// `graphs[i]` is `checked.archs[i]` lowered.
    pub graphs: Vec<ir::Graph>,
}

impl Compiled {
    pub fn graph(&self, arch: &str) -> Option<&ir::Graph> {
        self.checked
            .archs
            .iter()
            .position(|a| a.name == arch)
            .map(|i| &self.graphs[i])
    }
}

/// The whole front end on one text: parse, check, lower, decide static constraints.
/// `use` resolves in the standard library only. This is what the search calls in-process
/// for every candidate.
pub fn check_source(name: &str, text: &str) -> (Option<Compiled>, Vec<Diag>, Sources) {
    check_source_with(name, text, &check::StdlibResolver)
}

/// As [`check_source`], with a caller-chosen resolver for `use`.
pub fn check_source_with(
    name: &str,
    text: &str,
    resolver: &dyn Resolver,
) -> (Option<Compiled>, Vec<Diag>, Sources) {
    let mut sources = Sources::new();
    let root = sources.add(name, text);
    let (compiled, diags) = compile(&mut sources, root, resolver);
    (compiled, diags, sources)
}

/// Checks and lowers `root` (already in `sources`).
pub fn compile(
    sources: &mut Sources,
    root: diag::FileId,
    resolver: &dyn Resolver,
) -> (Option<Compiled>, Vec<Diag>) {
    let (checked, diags) = check::check(sources, root, resolver);
    lower_checked(checked, diags)
}

/// What the front end made of a file, kept even when it has errors: the editor's view
/// (`lsp`), which hovers over what did check while the user fixes the rest.
#[derive(Clone, Debug)]
pub struct Partial {
    pub checked: Checked,
    /// `graphs[i]`: `checked.archs[i]` lowered, when its hardware resolved.
    pub graphs: Vec<Option<ir::Graph>>,
    /// The same diagnostics [`compile`] gives.
    pub diagnostics: Vec<Diag>,
}

/// As [`compile`], keeping the checked items and graphs when there are errors.
pub fn compile_partial(
    sources: &mut Sources,
    root: diag::FileId,
    resolver: &dyn Resolver,
) -> Partial {
    let (checked, diags) = check::check(sources, root, resolver);
    lower_all(checked, diags)
}

/// As [`compile`], for `text` checked in an environment checked once before
/// ([`check::Env`]): what the search does per candidate. Returns the sources (the
/// environment's and the new file `root`), so diagnostics carry `text`'s own lines.
/// `parsed`: `text`'s tree, if the caller parsed it already without errors.
pub fn compile_in(
    env: &check::Env,
    name: &str,
    text: &str,
    parsed: Option<syntax::File>,
    resolver: &dyn Resolver,
) -> (Option<Compiled>, Vec<Diag>, Sources, diag::FileId) {
    let (sources, root, checked, diags) = check::check_in(env, name, text, parsed, resolver);
    let (compiled, diags) = lower_checked(checked, diags);
    (compiled, diags, sources, root)
}

/// Lowers every checked architecture and decides its static constraints.
fn lower_checked(checked: Checked, diags: Vec<Diag>) -> (Option<Compiled>, Vec<Diag>) {
    let p = lower_all(checked, diags);
    let ok = !p.diagnostics.iter().any(|d| d.is_error()) && p.graphs.iter().all(Option::is_some);
    let compiled = ok.then(|| Compiled {
        graphs: p.graphs.into_iter().flatten().collect(),
        checked: p.checked,
    });
    (compiled, p.diagnostics)
}

/// Lowers every architecture whose hardware resolved and decides its static constraints.
fn lower_all(checked: Checked, mut diags: Vec<Diag>) -> Partial {
    let mut graphs = Vec::with_capacity(checked.archs.len());
    for a in &checked.archs {
        let Some(hw) = checked.hardware(&a.hardware) else {
            graphs.push(None);
            continue;
        };
        let g = ir::lower(a, hw);
        diags.extend(ir::decide_constraints(a, &g));
        diags.extend(ir::decide_laser_budget(a, &g));
        graphs.push(Some(g));
    }
    Partial {
        checked,
        graphs,
        diagnostics: diags,
    }
}
