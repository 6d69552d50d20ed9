pub mod mzi;
