//! A structural hash of the lowered graph: stable across formatting, comments and the
//! names of layers, so the search never evaluates the same network twice.

use super::{Graph, Prim};
use std::fmt::Write as _;

/// FNV-1a, 64 bit: tiny, stable across platforms and Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The canonical text the hash is taken of: primitives, shapes, parameters and edges, no names.
pub fn canonical_form(g: &Graph) -> String {
    let mut s = format!("{}|{}|{}\n", g.backend.as_str(), g.hardware, g.phase_bits);
    for n in &g.nodes {
        // `Prim`'s Debug is derived over plain values, so it is stable.
        let prim: &Prim = &n.prim;
        let prim = format!("{prim:?}");
        let _ = writeln!(s, "{prim}|{}|{}|{:?}", n.in_width, n.ty, n.inputs);
    }
    let _ = write!(s, "in{:?}out{}", g.inputs, g.output);
    s
}

/// 32 hex digits.
pub fn structural_hash(g: &Graph) -> String {
    text_hash(&canonical_form(g))
}

/// 32 hex digits of a text (two FNV-1a lanes): stable across platforms and Rust versions,
/// for fingerprints of specifications (a task, a search) stored in files.
pub fn text_hash(text: &str) -> String {
    // Two independent 64-bit lanes make accidental collisions negligible for a run's archive.
    let a = fnv1a(text.as_bytes());
    let b = fnv1a(&[text.as_bytes(), b"#uhc"].concat());
    format!("{a:016x}{b:016x}")
}
