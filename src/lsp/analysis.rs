//! One document as the compiler sees it: `uhc::compile_partial` on its text (the same
//! diagnostics as `uhc check`), the syntax trees of every file it loaded, and an index of
//! the names defined and used in them, which definition, references and hover read.

use crate::check::Resolver;
use crate::diag::{FileId, Sources};
use crate::syntax::{self, Entry, Expr, Item, Span};
use crate::Partial;

pub struct Analysis {
    pub sources: Sources,
    pub root: FileId,
    pub partial: Partial,
    /// The syntax tree of every loaded file (the root first), as the parser recovered it.
    pub files: Vec<(FileId, syntax::File)>,
    pub syms: Vec<Sym>,
}

/// What a name is: an item of a kind (`hardware`, `arch`, `task`, `search`), or a value
/// inside one architecture (the file and the byte range of the arch's name: a range, not
/// a `Span`, because spans are equal to every span so that trees compare by content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ns {
    Item(&'static str),
    Value { file: FileId, arch: (u32, u32) },
}

/// One occurrence of a name.
#[derive(Clone, Debug)]
pub struct Sym {
    pub ns: Ns,
    pub name: String,
    pub file: FileId,
    pub span: Span,
    pub def: bool,
}

impl Analysis {
    pub fn new(name: &str, text: &str, resolver: &dyn Resolver) -> Analysis {
        let mut sources = Sources::new();
        let root = sources.add(name, text);
        let partial = crate::compile_partial(&mut sources, root, resolver);
        let files: Vec<(FileId, syntax::File)> = sources
            .ids()
            .map(|id| (id, syntax::parse(id, sources.text(id)).0))
            .collect();
        let mut syms = Vec::new();
        for (id, f) in &files {
            index(*id, f, &mut syms);
        }
        Analysis {
            sources,
            root,
            partial,
            files,
            syms,
        }
    }

    /// The root's syntax tree.
    pub fn tree(&self) -> &syntax::File {
        &self.files[0].1
    }

    /// The names of the other files this one loaded (its `use`s, transitively).
    pub fn dependencies(&self) -> Vec<String> {
        self.sources
            .ids()
            .filter(|&id| id != self.root)
            .map(|id| self.sources.name(id).to_string())
            .collect()
    }

    /// The name under a byte offset of the root (the end of a name counts, where the
    /// cursor sits after typing it).
    pub fn sym_at(&self, offset: usize) -> Option<&Sym> {
        self.syms.iter().find(|s| {
            s.file == self.root && s.span.start as usize <= offset && offset <= s.span.end as usize
        })
    }

    pub fn definition(&self, sym: &Sym) -> Option<&Sym> {
        self.syms
            .iter()
            .find(|d| d.def && d.ns == sym.ns && d.name == sym.name)
    }

    /// Every occurrence of the name `sym` is an occurrence of, definition first.
    pub fn references(&self, sym: &Sym) -> Vec<&Sym> {
        let mut out: Vec<&Sym> = self
            .syms
            .iter()
            .filter(|d| d.ns == sym.ns && d.name == sym.name)
            .collect();
        out.sort_by_key(|s| (!s.def, s.file != self.root, s.file, s.span.start));
        out
    }

    /// The `use` item whose path string is under `offset`, with the path.
    pub fn use_at(&self, offset: usize) -> Option<&syntax::Use> {
        self.tree().items.iter().find_map(|i| match i {
            Item::Use(u) if contains(u.path.span, offset) => Some(u),
            _ => None,
        })
    }
}

pub fn contains(span: Span, offset: usize) -> bool {
    span.start as usize <= offset && offset <= span.end as usize
}

fn push(out: &mut Vec<Sym>, ns: Ns, id: &syntax::Ident, file: FileId, def: bool) {
    out.push(Sym {
        ns,
        name: id.name.clone(),
        file,
        span: id.span,
        def,
    });
}

fn index(file: FileId, tree: &syntax::File, out: &mut Vec<Sym>) {
    for item in &tree.items {
        if let Some(name) = item.name() {
            push(out, Ns::Item(item.keyword()), name, file, true);
        }
        match item {
            Item::Hardware(h) => {
                if let Some(base) = &h.extends {
                    push(out, Ns::Item("hardware"), base, file, false);
                }
            }
            Item::Arch(a) => {
                push(out, Ns::Item("hardware"), &a.hardware, file, false);
                index_values(file, a, out);
            }
            Item::Search(syntax::Search { body, .. })
            | Item::Experiment(syntax::Experiment { body, .. }) => {
                for e in &body.entries {
                    let Entry::Field(f) = e else { continue };
                    let ns = match f.key.name.as_str() {
                        "task" => "task",
                        "hardware" => "hardware",
                        "seeds" => "arch",
                        "search" => "search",
                        _ => continue,
                    };
                    let idents: Vec<&syntax::Ident> = match &f.value {
                        Expr::Ident(i) => vec![i],
                        Expr::List(l) => l
                            .items
                            .iter()
                            .filter_map(|x| match x {
                                Expr::Ident(i) => Some(i),
                                _ => None,
                            })
                            .collect(),
                        _ => continue,
                    };
                    for i in idents {
                        push(out, Ns::Item(ns), i, file, false);
                    }
                }
            }
            Item::Use(_) | Item::Task(_) => {}
        }
    }
}

/// Values of an architecture: inputs and `name = op(…)` entries define, arguments and
/// the output use.
fn index_values(file: FileId, a: &syntax::Arch, out: &mut Vec<Sym>) {
    let ns = Ns::Value {
        file,
        arch: (a.name.span.start, a.name.span.end),
    };
    let mut defined = Vec::new();
    for e in &a.body.entries {
        match e {
            Entry::Input(i) => defined.push(&i.name),
            Entry::Field(f) if matches!(f.value, Expr::Call(_) | Expr::Ident(_)) => {
                defined.push(&f.key)
            }
            _ => {}
        }
    }
    for d in &defined {
        push(out, ns.clone(), d, file, true);
    }
    let mut uses = Vec::new();
    for e in &a.body.entries {
        match e {
            Entry::Field(f) => idents(&f.value, &mut uses),
            Entry::Output(o) => idents(&o.value, &mut uses),
            _ => {}
        }
    }
    for u in uses {
        if defined.iter().any(|d| d.name == u.name) {
            push(out, ns.clone(), u, file, false);
        }
    }
}

fn idents<'a>(e: &'a Expr, out: &mut Vec<&'a syntax::Ident>) {
    match e {
        Expr::Ident(i) => out.push(i),
        Expr::Call(c) => c.args.iter().for_each(|a| idents(&a.value, out)),
        Expr::List(l) => l.items.iter().for_each(|x| idents(x, out)),
        Expr::Quantity(_) | Expr::Str(_) => {}
    }
}
