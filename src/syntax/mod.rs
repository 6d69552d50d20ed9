//! The language front end: grammar, syntax tree, and the canonical printer (`uhc fmt`).

mod ast;
mod parse;
mod print;

pub use ast::*;
pub use parse::{parse, MAX_NESTING, MAX_SOURCE_BYTES};
pub use print::{format_parsed, format_source, print_file};
