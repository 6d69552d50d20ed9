//! The syntax tree of a `.uh` file.
//!
//! Every item shares one shape (a header and a block of entries), so the printer, the
//! checker and the search's AST mutations walk one small set of types. Spans never take
//! part in equality: two trees that say the same thing are equal wherever they were
//! written, which is what the round-trip property `parse(print(ast)) == ast` needs.

pub use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Use(Use),
    Hardware(Hardware),
    Arch(Arch),
    Task(Task),
    Search(Search),
    Experiment(Experiment),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Use(u) => u.span,
            Item::Hardware(h) => h.span,
            Item::Arch(a) => a.span,
            Item::Task(t) => t.span,
            Item::Search(s) => s.span,
            Item::Experiment(e) => e.span,
        }
    }
    /// The name the item defines (`use` defines none).
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Item::Use(_) => None,
            Item::Hardware(h) => Some(&h.name),
            Item::Arch(a) => Some(&a.name),
            Item::Task(t) => Some(&t.name),
            Item::Search(s) => Some(&s.name),
            Item::Experiment(e) => Some(&e.name),
        }
    }
    pub fn keyword(&self) -> &'static str {
        match self {
            Item::Use(_) => "use",
            Item::Hardware(_) => "hardware",
            Item::Arch(_) => "arch",
            Item::Task(_) => "task",
            Item::Search(_) => "search",
            Item::Experiment(_) => "experiment",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Use {
    pub path: Str,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hardware {
    pub name: Ident,
    pub extends: Option<Ident>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arch {
    pub name: Ident,
    pub hardware: Ident,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub name: Ident,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    pub name: Ident,
    pub body: Block,
    pub span: Span,
}

/// A grid of runs of one search: hardware, operator mixes, budgets, repeats.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    pub name: Ident,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Block {
    pub entries: Vec<Entry>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// `key = value`, or `key [a, b]`.
    Field(Field),
    /// `name { ... }` or `name kind { ... }`.
    Section(Section),
    /// `input x: real[16]`
    Input(Input),
    /// `output detect(y)`
    Output(Output),
    /// `constraint energy <= 2 nJ`
    Constraint(Constraint),
}

impl Entry {
    pub fn span(&self) -> Span {
        match self {
            Entry::Field(f) => f.span,
            Entry::Section(s) => s.span,
            Entry::Input(i) => i.span,
            Entry::Output(o) => o.span,
            Entry::Constraint(c) => c.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub name: Ident,
    pub kind: Option<Ident>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub name: Ident,
    pub ty: Type,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Type {
    pub domain: Ident,
    pub width: Number,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Le,
    Ge,
    Lt,
    Gt,
    Eq,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Eq => "==",
        }
    }
    /// Whether `lhs op rhs` holds.
    pub fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CmpOp::Le => lhs <= rhs,
            CmpOp::Ge => lhs >= rhs,
            CmpOp::Lt => lhs < rhs,
            CmpOp::Gt => lhs > rhs,
            CmpOp::Eq => lhs == rhs,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub metric: Ident,
    pub op: CmpOp,
    pub op_span: Span,
    pub bound: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number with an optional unit: `16`, `0.2 dB`.
    Quantity(Quantity),
    Ident(Ident),
    Str(Str),
    List(List),
    Call(Call),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Quantity(q) => q.span,
            Expr::Ident(i) => i.span,
            Expr::Str(s) => s.span,
            Expr::List(l) => l.span,
            Expr::Call(c) => c.span,
        }
    }
}

/// A number as written; printing keeps the lexeme so formatting never changes a value.
#[derive(Clone, Debug)]
pub struct Number {
    pub value: f64,
    pub text: String,
    pub span: Span,
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.value.to_bits() == other.value.to_bits()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    pub number: Number,
    pub unit: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Str {
    /// The unescaped value.
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct List {
    pub items: Vec<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}
