//! Numerically exact core of the MZI-mesh backend: layouts, decomposition, non-idealities,
//! the forward transfer matrix and reverse-mode gradients. Pure f64 / `Complex64`, no I/O.
//!
//! # Conventions
//!
//! **MZI.** neuroptica's 2×2 transfer matrix (`neuroptica/components.py`):
//!
//! ```text
//! T(θ,φ) = ½ [[e^{iφ}(e^{iθ} − 1),  i e^{iφ}(1 + e^{iθ})],
//!             [i (e^{iθ} + 1),       1 − e^{iθ}        ]]
//!        = diag(e^{iφ}, 1) · BS · diag(e^{iθ}, 1) · BS,   BS = [[r, i t], [i t, r]]
//! ```
//!
//! with `r = cos(π/4 + ε)`, `t = sin(π/4 + ε)`, ε = 0 ideally. θ = 0 is the full *cross*
//! state, θ = π the *bar* state; φ sits on the top *output*. A non-ideal MZI has its own
//! splitter errors ε₁ (input splitter), ε₂ (output splitter) and an amplitude factor
//! `a = 10^(−dB/20)` on both outputs.
//!
//! **Mesh.** `M = T_K ⋯ T_1 · diag(e^{iγ})`: the MZIs in index order (see [`MeshLayout`]),
//! each on adjacent modes `(top, top+1)`, after an *input* phase screen γ of `N` phases.
//! The screen is on the input because φ is on each MZI's output: an output screen would
//! duplicate the last column's φ and miss the input phases (for `N = 2`, `diag(d)·T` has 3
//! free parameters, U(2) has 4). neuroptica's `ClementsLayer` also puts its phase-shifter
//! layer first. Fields are column vectors; a batch is an `N × B` block, one sample per
//! column.
//!
//! **Gradients.** For a real loss `L` of a complex matrix `M`, the gradient is passed as
//! `G = ∂L/∂Re M + i ∂L/∂Im M` (= `2 ∂L/∂M̄` in Wirtinger terms; e.g. `G = 2M` for
//! `L = ‖M‖²_F`). Then `dL/dp = Re Σ conj(G) ∘ ∂M/∂p` for a real parameter
//! `p`; for `Y = M X`, `G_X = M† G_Y` and `G_M = G_Y X†`.
//!
//! **Non-idealities.** See [`NonIdeal`] for the model and order of effects. Detector noise
//! is not modelled here (the runtime adds it).
//!
//! # Use
//!
//! ```
//! use uhc::backend::mzi::{MeshLayout, NonIdeal, Topology};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let layout = MeshLayout::new(Topology::Clements, 8)?;
//! let mut rng = StdRng::seed_from_u64(0);
//! let phases = layout.haar_phases(&mut rng);                   // nominal parameters
//! let chip = layout.realise(&phases, &NonIdeal::realistic(), &mut rng)?;
//! let x = ndarray::Array2::from_elem((8, 32), num_complex::Complex64::new(0.5, 0.0));
//! let y = chip.apply(x.view())?;                                // 8×32 output fields
//! let g_m = uhc::backend::mzi::matrix_grad(x.view(), y.view())?; // ∂(½‖Y‖²)/∂M
//! let grads = chip.backward(g_m.view())?;                       // ∂L/∂θ, ∂L/∂φ, ∂L/∂γ
//! assert_eq!(grads.theta.len(), layout.mzi_count());
//! # Ok::<(), uhc::backend::mzi::MziError>(())
//! ```

#[cfg(target_arch = "x86_64")]
mod avx2;
mod cell;
mod decompose;
mod kernels;
mod layout;
mod linalg;
mod mesh;
mod nonideal;
pub mod prims;
mod svd;
mod target;
mod trig;
mod weights;

pub use layout::{MeshLayout, MziSite, Topology};
pub(crate) use linalg::svd_full;
pub use linalg::{fidelity, haar_unitary, relative_error};
pub use mesh::{matrix_grad, MeshPhases, Realisation, Transfer};
pub use nonideal::NonIdeal;
pub use prims::topology;
pub use svd::{SvdLayout, SvdPhases, SvdRealisation};
pub use target::{Mzi, MziSpec};

/// Errors of the MZI backend; each message says what was wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MziError {
    #[error("a mesh needs at least one port; use ports ≥ 1")]
    ZeroPorts,
    #[error("{what} must be {}×{}, got {}×{}", expected.0, expected.1, got.0, got.1)]
    Shape {
        what: &'static str,
        expected: (usize, usize),
        got: (usize, usize),
    },
    #[error("{what} must have {expected} rows (one per port), got {got}")]
    Rows {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "phase vectors have lengths θ {theta}, φ {phi}, γ {gamma}; this layout needs \
         {mzis}, {mzis} and {ports} (use MeshPhases::zeros(&layout) as a template)"
    )]
    PhaseLength {
        theta: usize,
        phi: usize,
        gamma: usize,
        mzis: usize,
        ports: usize,
    },
    #[error("{what} contain NaN or infinite values")]
    NonFinite { what: &'static str },
    #[error(
        "matrix is not unitary (‖U†U − I‖_F = {deviation:.2e}); a mesh can only realise \
         unitaries: map general matrices with SvdLayout::decompose"
    )]
    NotUnitary { deviation: f64 },
    #[error("invalid non-ideality `{field}` = {value}: expected {expected}")]
    InvalidNonIdeal {
        field: &'static str,
        value: f64,
        expected: &'static str,
    },
    #[error("the SVD of the {rows}×{cols} matrix did not converge; check it for extreme values")]
    SvdFailed { rows: usize, cols: usize },
}

impl From<MziError> for crate::backend::kernel::KernelError {
    fn from(e: MziError) -> Self {
        crate::backend::kernel::KernelError::Device {
            backend: "mzi",
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
