//! A structural hash of the lowered graph: stable across formatting, comments and the
//! names of layers, so the search never evaluates the same network twice.

use super::{Graph, Prim};
use crate::check::model::{DType, EncodeMode, MeshKind};
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
///
/// Hashes are stored (a run's archive, weight files), so this text is spelt out here and
/// depends on no derived `Debug` output. It is, byte for byte, the text the earlier
/// `Debug`-based form produced (`Mesh { layout: Clements }`, reals as `{:?}` printed them),
/// so stored hashes stay valid; `tests::canonical_form_is_pinned` holds it there.
pub fn canonical_form(g: &Graph) -> String {
    let mut s = format!("{}|{}|{}\n", g.backend.as_str(), g.hardware, g.phase_bits);
    for n in &g.nodes {
        prim(&mut s, &n.prim);
        let _ = write!(s, "|{}|{}|", n.in_width, n.ty);
        list(&mut s, &n.inputs);
        s.push('\n');
    }
    s.push_str("in");
    list(&mut s, &g.inputs);
    let _ = write!(s, "out{}", g.output);
    s
}

fn prim(s: &mut String, p: &Prim) {
    let _ = match p {
        Prim::Input => write!(s, "Input"),
        Prim::Encode { mode } => write!(s, "Encode {{ mode: {} }}", encode_mode(*mode)),
        Prim::Mesh { layout } => write!(s, "Mesh {{ layout: {} }}", mesh_kind(*layout)),
        Prim::Attenuate => write!(s, "Attenuate"),
        Prim::Diag => write!(s, "Diag"),
        Prim::ModRelu { bias } => write!(s, "ModRelu {{ bias: {} }}", real(*bias)),
        Prim::EoActivation {
            alpha,
            gain,
            bias_phase,
        } => write!(
            s,
            "EoActivation {{ alpha: {}, gain: {}, bias_phase: {} }}",
            real(*alpha),
            real(*gain),
            real(*bias_phase)
        ),
        Prim::Detect => write!(s, "Detect"),
        Prim::MatMul { dtype, complex } => {
            write!(
                s,
                "MatMul {{ dtype: {}, complex: {complex} }}",
                dtype_name(*dtype)
            )
        }
        Prim::Scale { dtype } => write!(s, "Scale {{ dtype: {} }}", dtype_name(*dtype)),
        Prim::Relu => write!(s, "Relu"),
        Prim::Tanh => write!(s, "Tanh"),
        Prim::Sigmoid => write!(s, "Sigmoid"),
        Prim::Own { name } => write!(s, "Own {{ name: {name} }}"),
    };
}

fn encode_mode(m: EncodeMode) -> &'static str {
    match m {
        EncodeMode::Amplitude => "Amplitude",
        EncodeMode::Phase => "Phase",
    }
}

fn mesh_kind(m: MeshKind) -> &'static str {
    match m {
        MeshKind::Clements => "Clements",
        MeshKind::Reck => "Reck",
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::Fp32 => "Fp32",
        DType::Fp16 => "Fp16",
        DType::Int8 => "Int8",
    }
}

/// `[a, b, c]`.
fn list(s: &mut String, xs: &[usize]) {
    s.push('[');
    for (i, x) in xs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{x}");
    }
    s.push(']');
}

/// A real in its shortest round-trip digits: exponent form below 1e-4 and from 1e16 on
/// (`1e-5`, `1.5e20`), else decimal with at least one fractional digit (`1.0`, `0.1`).
fn real(x: f64) -> String {
    let a = x.abs();
    if x != 0.0 && x.is_finite() && !(1e-4..1e16).contains(&a) {
        return format!("{x:e}");
    }
    let mut t = format!("{x}");
    if x.is_finite() && !t.contains('.') {
        t.push_str(".0");
    }
    t
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_are_written_as_before() {
        for x in [
            0.1,
            1.0,
            -0.0,
            0.0,
            2.71,
            100.0,
            1e-5,
            1.5e20,
            1e16,
            9.9e15,
            1e-4,
            -2.5e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            123456.789,
        ] {
            // The form the stored hashes were taken with.
            assert_eq!(real(x), format!("{x:?}"), "{x}");
        }
    }

    #[test]
    fn canonical_form_is_pinned() {
        let text = "use \"hw/mzi.uh\"\narch a on mzi_realistic {\n    input x: real[4]\n    h = linear(x, 3)\n    a = modrelu(h, bias = 0.1)\n    e = eo_activation(a)\n    output detect(e)\n}\n";
        let (c, diags, _) = crate::check_source("t.uh", text);
        let c = c.unwrap_or_else(|| panic!("{diags:?}"));
        let g = &c.graphs[0];
        let form = canonical_form(g);
        let mut old = format!("{}|{}|{}\n", g.backend.as_str(), g.hardware, g.phase_bits);
        for n in &g.nodes {
            old.push_str(&format!(
                "{:?}|{}|{}|{:?}\n",
                n.prim, n.in_width, n.ty, n.inputs
            ));
        }
        old.push_str(&format!("in{:?}out{}", g.inputs, g.output));
        assert_eq!(form, old);
        assert_eq!(
            form.lines().nth(2),
            Some("Encode { mode: Amplitude }|4|complex[4]|[0]")
        );
    }
}
