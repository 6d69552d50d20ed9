//! The operation vocabulary: one table that the checker, the book and the LLM prompt's
//! language reference are all generated from, so they cannot drift apart.

use super::model::Domain;
use crate::backend::Backend;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A positive whole number (a width).
    Width,
    /// A plain real number.
    Real,
    /// One of a set of names.
    Choice(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    /// Default as written in the language reference; `None` means required.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    pub name: &'static str,
    /// The signature as shown to users, e.g. `linear(x, width) : complex[n] → complex[width]`.
    pub signature: &'static str,
    /// Parameters after the input value; `Width` ones may be given positionally.
    pub params: &'static [Param],
    /// Needs light (an optical backend, see [`Backend::optical`]).
    pub optical_only: bool,
    pub doc: &'static str,
}

const BOTH: bool = false;
const OPTICAL: bool = true;

pub const CATALOG: &[OpSpec] = &[
    OpSpec {
        name: "encode",
        signature: "encode(x, mode = amplitude) : real[n] → complex[n]",
        params: &[Param {
            name: "mode",
            kind: ParamKind::Choice(&["amplitude", "phase"]),
            default: Some("amplitude"),
            doc: "amplitude: x is the field amplitude; phase: x ∈ [0, 1] becomes e^{iπx}",
        }],
        optical_only: BOTH,
        doc: "Modulates electronic values onto light (DAC + modulator per value). Optical ops insert it implicitly for real inputs.",
    },
    OpSpec {
        name: "linear",
        signature: "linear(x, width) : complex[n] → complex[width] (real[n] → real[width] on digital)",
        params: &[Param { name: "width", kind: ParamKind::Width, default: None, doc: "output width" }],
        optical_only: BOTH,
        doc: "Dense layer. On an MZI mesh: W = U·diag(σ)·V†, an n-port mesh, min(n, width) attenuators and a width-port mesh.",
    },
    OpSpec {
        name: "unitary",
        signature: "unitary(x) : complex[n] → complex[n]",
        params: &[],
        optical_only: BOTH,
        doc: "One n-port mesh: a trainable unitary (lossless on ideal hardware).",
    },
    OpSpec {
        name: "diag",
        signature: "diag(x) : complex[n] → complex[n]",
        params: &[],
        optical_only: BOTH,
        doc: "A column of attenuators with phase shifters: per-mode amplitude and phase.",
    },
    OpSpec {
        name: "modrelu",
        signature: "modrelu(x, bias = 0.1) : complex[n] → complex[n]",
        params: &[Param { name: "bias", kind: ParamKind::Real, default: Some("0.1"), doc: "initial threshold b (trainable)" }],
        optical_only: BOTH,
        doc: "(|z| ≥ b)·(|z| − b)·z/|z|: a ReLU on the modulus that keeps the phase.",
    },
    OpSpec {
        name: "eo_activation",
        signature: "eo_activation(x, alpha = 0.1, gain = 0.05, bias_phase = 3.14159) : complex[n] → complex[n]",
        params: &[
            Param { name: "alpha", kind: ParamKind::Real, default: Some("0.1"), doc: "fraction of power tapped to the detector" },
            Param { name: "gain", kind: ParamKind::Real, default: Some("0.05"), doc: "g = π·α·R·responsivity / V_π-derived phase gain per unit power" },
            Param { name: "bias_phase", kind: ParamKind::Real, default: Some("3.14159"), doc: "φ_b = π·V_bias/V_π" },
        ],
        optical_only: OPTICAL,
        doc: "Electro-optic activation (Williamson et al. 2019): i√(1−α)·e^{−i(g|z|²+φ_b)/2}·cos(g|z|²/2 + φ_b/2)·z.",
    },
    OpSpec {
        name: "detect",
        signature: "detect(x) : complex[n] → real[n]",
        params: &[],
        optical_only: BOTH,
        doc: "|z|² photodetection (+ TIA + ADC per output): light back to electronics.",
    },
    OpSpec {
        name: "relu",
        signature: "relu(x) : real[n] → real[n]",
        params: &[],
        optical_only: BOTH,
        doc: "Electronic ReLU.",
    },
    OpSpec {
        name: "tanh",
        signature: "tanh(x) : real[n] → real[n]",
        params: &[],
        optical_only: BOTH,
        doc: "Electronic tanh.",
    },
    OpSpec {
        name: "sigmoid",
        signature: "sigmoid(x) : real[n] → real[n]",
        params: &[],
        optical_only: BOTH,
        doc: "Electronic logistic sigmoid.",
    },
];

pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    CATALOG.iter().find(|o| o.name == name)
}

pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|o| o.name).collect()
}

/// `a, b, c` of the ops a backend can perform.
pub fn supported_list(backend: &dyn Backend) -> String {
    CATALOG
        .iter()
        .filter(|o| backend.offers(o))
        .map(|o| format!("`{}`", o.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The domain of `op`'s result for an input in `input` on `backend`, or `None` where the
/// checker refuses the pairing (`detect` of a real value, `relu` of light, `encode` of
/// light). Every op keeps its input's width except `linear`. Optical ops take real inputs
/// through an implicit `encode`. The decoding grammar is built from this table; a test
/// holds it to the checker.
pub fn result_domain(op: &str, backend: &dyn Backend, input: Domain) -> Option<Domain> {
    backend.result_domain(op, input)
}

/// The result domains every backend shares (a backend overrides
/// [`Backend::result_domain`] where it differs: digital `linear` stays real).
pub fn common_result_domain(op: &str, input: Domain) -> Option<Domain> {
    match (op, input) {
        ("encode", Domain::Real) => Some(Domain::Complex),
        ("encode", Domain::Complex) => None,
        ("linear" | "unitary" | "diag" | "modrelu" | "eo_activation", _) => Some(Domain::Complex),
        ("detect", Domain::Complex) => Some(Domain::Real),
        ("relu" | "tanh" | "sigmoid", Domain::Real) => Some(Domain::Real),
        _ => None,
    }
}

/// Whether `op` sets its output width (from its `Width` parameter) rather than keeping
/// its input's.
pub fn sets_width(op: &str) -> bool {
    lookup(op).is_some_and(|o| o.params.iter().any(|p| p.kind == ParamKind::Width))
}
