//! Arbitrary `M×N` matrices on meshes via the SVD: `W = s · U · diag(τ) · V†`.
//!
//! `V†` is an `N`-port mesh, `U` an `M`-port mesh, and `diag(τ)` a column of `min(M, N)`
//! attenuator MZIs (transmission `|τ| = sin(θ/2) ≤ 1`, see the attenuator model in
//! `cell.rs`); the largest singular value becomes the real gain `s` (applied electronically,
//! exact). The attenuators' intrinsic phase `i e^{iθ/2}` is folded into `U`'s input screen.
//! MZI count: `M(M−1)/2 + N(N−1)/2 + min(M, N)`.

use super::cell::Attenuator;
use super::linalg::svd_full;
use super::mesh::{couple_chain, realise_chain, splitter_errors};
use super::{MeshLayout, MeshPhases, MziError, NonIdeal, Realisation, Topology};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_2;

/// Layout of an SVD-mapped `rows × cols` matrix: a `cols`-port mesh (`V†`), then
/// `min(rows, cols)` attenuators, then a `rows`-port mesh (`U`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvdLayout {
    rows: usize,
    cols: usize,
    u: MeshLayout,
    v: MeshLayout,
}

/// Parameters of an SVD-mapped matrix (gradients use the same type).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SvdPhases {
    /// The `cols`-port mesh implementing `V†` (applied first).
    pub v: MeshPhases,
    /// θ of each attenuator; amplitude `sin(θ/2)` ideally.
    pub atten: Vec<f64>,
    /// The `rows`-port mesh implementing `U`.
    pub u: MeshPhases,
    /// Output gain `s` (the largest singular value after decomposition).
    pub scale: f64,
}

impl SvdLayout {
    pub fn new(topology: Topology, rows: usize, cols: usize) -> Result<Self, MziError> {
        Ok(SvdLayout {
            rows,
            cols,
            u: MeshLayout::new(topology, rows)?,
            v: MeshLayout::new(topology, cols)?,
        })
    }

    /// `M` (output size).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `N` (input size).
    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn u(&self) -> &MeshLayout {
        &self.u
    }

    pub fn v(&self) -> &MeshLayout {
        &self.v
    }

    /// Number of attenuators, `min(M, N)`.
    pub fn attenuators(&self) -> usize {
        self.rows.min(self.cols)
    }

    /// `M(M−1)/2 + N(N−1)/2 + min(M, N)`.
    pub fn mzi_count(&self) -> usize {
        self.u.mzi_count() + self.v.mzi_count() + self.attenuators()
    }

    /// MZI columns a signal crosses at most: both meshes plus the attenuator column.
    pub fn depth(&self) -> usize {
        self.v.depth() + 1 + self.u.depth()
    }

    /// Parameters realising `w` exactly on the ideal hardware.
    pub fn decompose(&self, w: ArrayView2<C64>) -> Result<SvdPhases, MziError> {
        if w.dim() != (self.rows, self.cols) {
            return Err(MziError::Shape {
                what: "matrix to map",
                expected: (self.rows, self.cols),
                got: w.dim(),
            });
        }
        if w.iter().any(|z| !(z.re.is_finite() && z.im.is_finite())) {
            return Err(MziError::NonFinite {
                what: "matrix to map",
            });
        }
        let (mut u, sigma, vh) = svd_full(w)?;
        let scale = sigma.first().copied().unwrap_or(0.0);
        let atten: Vec<f64> = sigma
            .iter()
            .map(|&x| {
                if scale > 0.0 {
                    2.0 * (x / scale).clamp(0.0, 1.0).asin()
                } else {
                    0.0
                }
            })
            .collect();
        // Ideal τ = i e^{iθ/2} sin(θ/2): remove its phase from U's matching column.
        for (i, &th) in atten.iter().enumerate() {
            let fix = C64::from_polar(1.0, -(FRAC_PI_2 + th / 2.0));
            u.column_mut(i).mapv_inplace(|z| z * fix);
        }
        Ok(SvdPhases {
            v: self.v.decompose(vh.view())?,
            atten,
            u: self.u.decompose(u.view())?,
            scale,
        })
    }

    fn check(&self, p: &SvdPhases) -> Result<(), MziError> {
        if p.atten.len() != self.attenuators() {
            return Err(MziError::Rows {
                what: "attenuator phases",
                expected: self.attenuators(),
                got: p.atten.len(),
            });
        }
        if !p.scale.is_finite() || p.atten.iter().any(|x| !x.is_finite()) {
            return Err(MziError::NonFinite {
                what: "attenuator phases or scale",
            });
        }
        Ok(())
    }

    /// One hardware instance. Random numbers go to the `V†` mesh first, then the attenuators
    /// (splitter errors, then phase noise), then the `U` mesh.
    pub fn realise<R: Rng + ?Sized>(
        &self,
        p: &SvdPhases,
        ni: &NonIdeal,
        rng: &mut R,
    ) -> Result<SvdRealisation, MziError> {
        self.check(p)?;
        let v = self.v.realise(&p.v, ni, rng)?;
        let eps = splitter_errors(p.atten.len(), ni, rng);
        let theta = realise_chain(&p.atten, ni, rng);
        let amp = ni.amplitude();
        let att = theta
            .iter()
            .zip(&eps)
            .map(|(&t, e)| Attenuator::new(t, e[0], e[1], amp))
            .collect();
        let u = self.u.realise(&p.u, ni, rng)?;
        Ok(SvdRealisation {
            rows: self.rows,
            cols: self.cols,
            v,
            att,
            u,
            scale: p.scale,
            crosstalk: ni.crosstalk,
        })
    }

    /// The ideal hardware.
    pub fn ideal(&self, p: &SvdPhases) -> Result<SvdRealisation, MziError> {
        self.check(p)?;
        Ok(SvdRealisation {
            rows: self.rows,
            cols: self.cols,
            v: self.v.ideal(&p.v)?,
            att: p
                .atten
                .iter()
                .map(|&t| Attenuator::new(t, 0.0, 0.0, 1.0))
                .collect(),
            u: self.u.ideal(&p.u)?,
            scale: p.scale,
            crosstalk: 0.0,
        })
    }
}

/// One hardware instance of an SVD-mapped matrix.
#[derive(Clone, Debug)]
pub struct SvdRealisation {
    rows: usize,
    cols: usize,
    v: Realisation,
    att: Vec<Attenuator>,
    u: Realisation,
    scale: f64,
    crosstalk: f64,
}

impl SvdRealisation {
    pub fn v(&self) -> &Realisation {
        &self.v
    }

    pub fn u(&self) -> &Realisation {
        &self.u
    }

    /// Complex transmissions of the attenuators.
    pub fn attenuations(&self) -> Vec<C64> {
        self.att.iter().map(|a| a.tau).collect()
    }

    /// `diag(τ) · V†` as an `M×N` block (rows beyond `min(M, N)` are dark).
    fn atten_v(&self) -> Array2<C64> {
        let vm = self.v.matrix();
        let mut out = Array2::<C64>::zeros((self.rows, self.cols));
        for (i, a) in self.att.iter().enumerate() {
            out.row_mut(i).assign(&vm.row(i).mapv(|z| z * a.tau));
        }
        out
    }

    /// `U · diag(τ)` as an `M×N` block.
    fn u_atten(&self) -> Array2<C64> {
        let um = self.u.matrix();
        let mut out = Array2::<C64>::zeros((self.rows, self.cols));
        for (i, a) in self.att.iter().enumerate() {
            out.column_mut(i).assign(&um.column(i).mapv(|z| z * a.tau));
        }
        out
    }

    /// The realised `M×N` matrix `W = s U diag(τ) V†`.
    pub fn matrix(&self) -> Array2<C64> {
        self.u.matrix().dot(&self.atten_v()) * self.scale
    }

    /// `W X` for an `N×B` block.
    pub fn apply(&self, x: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let z = self.v.apply(x)?;
        let mut mid = Array2::<C64>::zeros((self.rows, x.ncols()));
        for (i, a) in self.att.iter().enumerate() {
            mid.row_mut(i).assign(&z.row(i).mapv(|v| v * a.tau));
        }
        Ok(self.u.apply(mid.view())? * self.scale)
    }

    /// `W† G` for an `M×B` block: the input gradient of [`apply`](Self::apply).
    pub fn apply_adjoint(&self, g: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let z = self.u.apply_adjoint(g)?;
        let mut mid = Array2::<C64>::zeros((self.cols, g.ncols()));
        for (i, a) in self.att.iter().enumerate() {
            mid.row_mut(i).assign(&z.row(i).mapv(|v| v * a.tau.conj()));
        }
        Ok(self.v.apply_adjoint(mid.view())? * self.scale)
    }

    /// Gradients with respect to the nominal [`SvdPhases`] (including `scale`), given
    /// `G = ∂L/∂Re W + i ∂L/∂Im W`.
    pub fn backward(&self, g: ArrayView2<C64>) -> Result<SvdPhases, MziError> {
        if g.dim() != (self.rows, self.cols) {
            return Err(MziError::Shape {
                what: "gradient of the mapped matrix",
                expected: (self.rows, self.cols),
                got: g.dim(),
            });
        }
        let adj = |a: &Array2<C64>| a.t().mapv(|z| z.conj());
        let av = self.atten_v();
        let ua = self.u_atten();
        let s = self.scale;
        // W = s U (A V): G_U = s G (AV)†; W = s (U A) V: G_V = s (UA)† G.
        let g_u = g.dot(&adj(&av)) * s;
        let g_v = adj(&ua).dot(&g) * s;
        // ∂W/∂θ_i = s U e_i ∂τ_i e_iᵀ V: needs (U† G V†)_ii.
        let um = self.u.matrix();
        let vm = self.v.matrix();
        let q = adj(um).dot(&g).dot(&adj(vm));
        let g_att: Vec<f64> = self
            .att
            .iter()
            .enumerate()
            .map(|(i, a)| s * (q[[i, i]].conj() * a.d_theta()).re)
            .collect();
        let unscaled = self.u.matrix().dot(&av);
        let g_scale: f64 = g
            .iter()
            .zip(unscaled.iter())
            .map(|(gi, wi)| (gi.conj() * wi).re)
            .sum();
        Ok(SvdPhases {
            v: self.v.backward(g_v.view())?,
            atten: if self.crosstalk != 0.0 {
                couple_chain(&g_att, self.crosstalk)
            } else {
                g_att
            },
            u: self.u.backward(g_u.view())?,
            scale: g_scale,
        })
    }
}
