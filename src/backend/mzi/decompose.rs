//! Programming a mesh to a given unitary (Reck 1994; Clements et al., Optica 2016).
//!
//! The mesh computes `U = T_K ⋯ T_1 · D` with neuroptica MZIs `T = diag(e^{iφ},1) X(θ)` and
//! the input screen `D`. Transposing gives `V = Uᵀ = D · C_1 ⋯ C_K` with
//! `C = Tᵀ = X(θ) diag(e^{iφ}, 1)` (phase on the *input*), which is exactly the form the
//! Clements/Reck nulling produces: right-multiplying `V` by `C⁻¹` zeroes an entry with column
//! operations, left-multiplying by `C` zeroes one with row operations. After all nullings
//! `L_p ⋯ L_1 V R_1⁻¹ ⋯ R_q⁻¹ = D`; each `L⁻¹ D` is rewritten as `D' C(θ, φ')` with
//!
//! ```text
//! C(θ,φ)⁻¹ · diag(d₁,d₂) = diag(−e^{−i(θ+φ)} d₂, −e^{−iθ} d₂) · C(θ, arg(d₁/d₂))
//! ```
//!
//! (checked entry by entry from `X(θ) = i e^{iθ/2} [[s, c], [c, −s]]`, `s, c = sin, cos θ/2`),
//! so `V = D' C'_1 ⋯ C'_p R_q ⋯ R_1` and `U = R_1ᵀ ⋯ R_qᵀ C'_pᵀ ⋯ C'_1ᵀ D'`: every factor is
//! one of our MZIs with the same (θ, φ). No numerical solving, O(N³) in total.

use super::cell::I;
use super::layout::{schedule, Topology};
use super::linalg::{haar_unitary, unitarity_deviation};
use super::{MeshLayout, MeshPhases, MziError};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::Rng;
use std::f64::consts::{PI, TAU};

/// `‖U†U − I‖_F` above `UNITARY_TOL · N` is rejected: the nulling assumes unitarity, and a
/// matrix that far off would be programmed silently wrong.
const UNITARY_TOL: f64 = 1e-8;

/// Which side a nulling step multiplies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// `V ← C V` on rows `(top, top+1)`, zeroing `V[top+1, col]`.
    Left { col: usize },
    /// `V ← V C⁻¹` on columns `(top, top+1)`, zeroing `V[row, top]`.
    Right { row: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub side: Side,
    pub top: usize,
}

/// The nulling sequence for a topology. Clements nulls the sub-diagonals of `V`, alternating
/// column and row operations; for even `N` it starts with row operations, which puts column
/// 0 of the resulting mesh on the pairs from mode 0 (the mirror image otherwise).
pub(crate) fn plan(topology: Topology, n: usize) -> Vec<Step> {
    let mut steps = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    match topology {
        Topology::Reck => {
            for row in (1..n).rev() {
                for top in 0..row {
                    steps.push(Step {
                        side: Side::Right { row },
                        top,
                    });
                }
            }
        }
        Topology::Clements => {
            let rows_first = n.is_multiple_of(2);
            for i in 1..n {
                if (i % 2 == 1) != rows_first {
                    // Diagonal i from its bottom-right end: zero V[n−1−j, i−1−j].
                    for j in 0..i {
                        steps.push(Step {
                            side: Side::Right { row: n - 1 - j },
                            top: i - 1 - j,
                        });
                    }
                } else {
                    // Diagonal i from its top-left end: zero V[n−i+j, j].
                    for j in 0..i {
                        steps.push(Step {
                            side: Side::Left { col: j },
                            top: n - 1 - i + j,
                        });
                    }
                }
            }
        }
    }
    steps
}

/// Circuit order of the plan's MZIs (first applied first): the commuted left steps in nulling
/// order, then the right steps in reverse.
pub(crate) fn circuit_order(steps: &[Step]) -> Vec<usize> {
    let lefts = (0..steps.len()).filter(|&k| matches!(steps[k].side, Side::Left { .. }));
    let rights = (0..steps.len())
        .rev()
        .filter(|&k| matches!(steps[k].side, Side::Right { .. }));
    lefts.chain(rights).collect()
}

/// The layout's MZI index of each plan step.
pub(crate) fn step_to_site(layout: &MeshLayout, steps: &[Step]) -> Vec<usize> {
    let order = circuit_order(steps);
    let sites = schedule(layout.ports(), order.iter().map(|&k| steps[k].top));
    let mut map = vec![0; steps.len()];
    for (&k, s) in order.iter().zip(&sites) {
        // The layout is built from this same plan, so every site exists.
        map[k] = layout.site_index(s.column, s.top).unwrap_or(usize::MAX);
    }
    map
}

/// `(θ, φ)` of `C⁻¹` that zeroes `a` when multiplying `(a, b)` from the right: needs
/// `e^{−iφ} s a + c b = 0`.
fn right_angles(a: C64, b: C64) -> (f64, f64) {
    let theta = 2.0 * b.norm().atan2(a.norm());
    (theta, a.arg() - b.arg() + PI)
}

/// `(θ, φ)` of `C` that zeroes the lower entry of `C (a, b)ᵀ`: needs `c e^{iφ} a = s b`.
fn left_angles(a: C64, b: C64) -> (f64, f64) {
    let theta = 2.0 * a.norm().atan2(b.norm());
    (theta, b.arg() - a.arg())
}

impl MeshLayout {
    /// Phases that make the ideal mesh equal `u` (an `N×N` unitary, checked to
    /// `‖U†U − I‖_F ≤ 10⁻⁸ N`). θ comes out in `[0, π]`, φ and γ in `[0, 2π)`.
    pub fn decompose(&self, u: ArrayView2<C64>) -> Result<MeshPhases, MziError> {
        let n = self.ports();
        if u.dim() != (n, n) {
            return Err(MziError::Shape {
                what: "unitary to decompose",
                expected: (n, n),
                got: u.dim(),
            });
        }
        if u.iter().any(|z| !(z.re.is_finite() && z.im.is_finite())) {
            return Err(MziError::NonFinite {
                what: "unitary to decompose",
            });
        }
        let deviation = unitarity_deviation(u);
        if deviation > UNITARY_TOL * n as f64 {
            return Err(MziError::NotUnitary { deviation });
        }
        Ok(self.decompose_unitary(u))
    }

    /// Phases of a Haar-random mesh: the decomposition of a Haar-random unitary. Each θ then
    /// follows its position-dependent law (for Reck, `cos²(θ/2) ~ Beta(c+1, 1)` for the MZI on
    /// modes `(c, c+1)`; Russell et al. 2017, Pai et al. 2019), every φ and γ is uniform, and
    /// the mesh is exactly Haar-distributed, unlike uniform θ, which concentrates power near
    /// the diagonal.
    pub fn haar_phases<R: Rng + ?Sized>(&self, rng: &mut R) -> MeshPhases {
        let u = haar_unitary(self.ports(), rng);
        self.decompose_unitary(u.view())
    }

    fn decompose_unitary(&self, u: ArrayView2<C64>) -> MeshPhases {
        let n = self.ports();
        let steps = plan(self.topology(), n);
        let mut v: Array2<C64> = u.t().to_owned();
        let mut angles = Vec::with_capacity(steps.len());
        for step in &steps {
            let m = step.top;
            match step.side {
                Side::Right { row } => {
                    let (theta, phi) = right_angles(v[[row, m]], v[[row, m + 1]]);
                    // V ← V C⁻¹, C⁻¹ = diag(e^{−iφ},1) · (−i e^{−iθ/2}) [[s, c], [c, −s]].
                    let (s, c) = (theta / 2.0).sin_cos();
                    let k = -I * C64::from_polar(1.0, -theta / 2.0);
                    let e = C64::from_polar(1.0, -phi);
                    for i in 0..n {
                        let (x, y) = (v[[i, m]] * e, v[[i, m + 1]]);
                        v[[i, m]] = k * (x * s + y * c);
                        v[[i, m + 1]] = k * (x * c - y * s);
                    }
                    v[[row, m]] = C64::new(0.0, 0.0);
                    angles.push((theta, phi));
                }
                Side::Left { col } => {
                    let (theta, phi) = left_angles(v[[m, col]], v[[m + 1, col]]);
                    // V ← C V, C = (i e^{iθ/2}) [[s, c], [c, −s]] · diag(e^{iφ},1).
                    let (s, c) = (theta / 2.0).sin_cos();
                    let k = I * C64::from_polar(1.0, theta / 2.0);
                    let e = C64::from_polar(1.0, phi);
                    for j in 0..n {
                        let (x, y) = (v[[m, j]] * e, v[[m + 1, j]]);
                        v[[m, j]] = k * (x * s + y * c);
                        v[[m + 1, j]] = k * (x * c - y * s);
                    }
                    v[[m + 1, col]] = C64::new(0.0, 0.0);
                    angles.push((theta, phi));
                }
            }
        }
        // Push D out through the left steps, innermost (last) first.
        let mut d: Vec<C64> = (0..n).map(|i| v[[i, i]]).collect();
        for (step, ang) in steps.iter().zip(angles.iter_mut()).rev() {
            if let Side::Left { .. } = step.side {
                let (theta, phi) = *ang;
                let m = step.top;
                let (d1, d2) = (d[m], d[m + 1]);
                let k = -C64::from_polar(1.0, -theta);
                d[m] = k * C64::from_polar(1.0, -phi) * d2;
                d[m + 1] = k * d2;
                ang.1 = (d1 / d2).arg();
            }
        }
        let map = step_to_site(self, &steps);
        let mut phases = MeshPhases::zeros(self);
        for (&k, &(theta, phi)) in map.iter().zip(&angles) {
            if let (Some(t), Some(p)) = (phases.theta.get_mut(k), phases.phi.get_mut(k)) {
                *t = theta;
                *p = phi.rem_euclid(TAU);
            }
        }
        for (g, z) in phases.gamma.iter_mut().zip(&d) {
            *g = z.arg().rem_euclid(TAU);
        }
        phases
    }
}
