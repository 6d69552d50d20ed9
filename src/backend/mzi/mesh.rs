//! Mesh phases, realisations, the forward collapse, batched application and reverse mode.

use super::cell::{splitter_products, Cell, I};
use super::kernels::{gemm3m, plane_sum, reverse_step, Packed, Planes, Signed};
use super::layout::NONE;
use super::trig::sincos;
use super::{MeshLayout, MziError, NonIdeal};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use num_complex::Complex64 as C64;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_4;
use std::sync::OnceLock;

/// The tunable phases of a mesh, indexed like [`MeshLayout::sites`]: `theta[k]`, `phi[k]` of
/// MZI `k`, and `gamma[j]`, the input phase screen on mode `j`. Gradients use the same type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeshPhases {
    pub theta: Vec<f64>,
    pub phi: Vec<f64>,
    pub gamma: Vec<f64>,
}

impl MeshPhases {
    /// All phases zero (every MZI in the cross state).
    pub fn zeros(layout: &MeshLayout) -> Self {
        MeshPhases {
            theta: vec![0.0; layout.mzi_count()],
            phi: vec![0.0; layout.mzi_count()],
            gamma: vec![0.0; layout.ports()],
        }
    }

    pub(crate) fn check(&self, layout: &MeshLayout) -> Result<(), MziError> {
        let (k, n) = (layout.mzi_count(), layout.ports());
        if self.theta.len() != k || self.phi.len() != k || self.gamma.len() != n {
            return Err(MziError::PhaseLength {
                theta: self.theta.len(),
                phi: self.phi.len(),
                gamma: self.gamma.len(),
                mzis: k,
                ports: n,
            });
        }
        let all = self.theta.iter().chain(&self.phi).chain(&self.gamma);
        if all.into_iter().any(|x| !x.is_finite()) {
            return Err(MziError::NonFinite {
                what: "mesh phases",
            });
        }
        Ok(())
    }
}

/// `p + c · A p` with `A` the same-column adjacency of the layout's MZIs. `A` is symmetric,
/// so the same map is its own transpose (used for gradients).
fn couple_mzis(layout: &MeshLayout, p: &[f64], c: f64) -> Vec<f64> {
    let at = |j: usize| if j == NONE { 0.0 } else { p[j] };
    layout
        .neighbour_pairs()
        .iter()
        .zip(p)
        .map(|(&[up, down], &x)| x + c * (at(up) + at(down)))
        .collect()
}

/// `p + c · A p` with `A` the chain adjacency `j ∓ 1` (input screen, attenuator column).
pub(crate) fn couple_chain(p: &[f64], c: f64) -> Vec<f64> {
    let n = p.len();
    (0..n)
        .map(|j| {
            let up = if j > 0 { p[j - 1] } else { 0.0 };
            let down = if j + 1 < n { p[j + 1] } else { 0.0 };
            p[j] + c * (up + down)
        })
        .collect()
}

/// `σ z`, `z` standard normal truncated to `|z| ≤ clip` by rejection, so the draws consumed
/// depend on the seed only, not on σ.
pub(crate) fn phase_noise<R: Rng + ?Sized>(rng: &mut R, sigma: f64, clip: Option<f64>) -> f64 {
    loop {
        let z: f64 = rng.sample(StandardNormal);
        if clip.is_none_or(|c| z.abs() <= c) {
            return sigma * z;
        }
    }
}

/// Programmed (wrapped, quantised, crosstalk-coupled) and noisy phases of a chain of
/// shifters. Used by the SVD attenuators; the mesh uses the same steps with its own adjacency.
pub(crate) fn realise_chain<R: Rng + ?Sized>(
    nominal: &[f64],
    ni: &NonIdeal,
    rng: &mut R,
) -> Vec<f64> {
    let programmed = ni.program(nominal);
    let mut eff = if ni.crosstalk != 0.0 {
        couple_chain(&programmed, ni.crosstalk)
    } else {
        programmed
    };
    if ni.phase_sigma > 0.0 {
        for x in &mut eff {
            *x += phase_noise(rng, ni.phase_sigma, ni.phase_noise_clip);
        }
    }
    eff
}

/// Splitter errors `[ε₁, ε₂]` for `count` MZIs (zeros when off, drawing nothing).
pub(crate) fn splitter_errors<R: Rng + ?Sized>(
    count: usize,
    ni: &NonIdeal,
    rng: &mut R,
) -> Vec<[f64; 2]> {
    let mut eps = vec![[0.0; 2]; count];
    if ni.splitter_sigma > 0.0 {
        for e in &mut eps {
            let a: f64 = rng.sample(StandardNormal);
            let b: f64 = rng.sample(StandardNormal);
            *e = [ni.splitter_sigma * a, ni.splitter_sigma * b];
        }
    }
    eps
}

impl MeshLayout {
    /// Draws one hardware instance of the mesh programmed with `nominal`: effective θ, φ, ε₁,
    /// ε₂ and amplitude per MZI and effective input phases (see [`NonIdeal`] for the model).
    ///
    /// Random numbers are consumed in a fixed order, and only for enabled effects: splitter
    /// errors (ε₁, ε₂ per MZI in index order), then phase noise (θ, φ per MZI, then γ per
    /// mode). The same seed and config therefore give the same instance.
    pub fn realise<R: Rng + ?Sized>(
        &self,
        nominal: &MeshPhases,
        ni: &NonIdeal,
        rng: &mut R,
    ) -> Result<Realisation, MziError> {
        nominal.check(self)?;
        ni.validate()?;
        let eps = splitter_errors(self.mzi_count(), ni, rng);
        let (mut theta, mut phi, mut gamma) = (
            ni.program(&nominal.theta),
            ni.program(&nominal.phi),
            ni.program(&nominal.gamma),
        );
        if ni.crosstalk != 0.0 {
            theta = couple_mzis(self, &theta, ni.crosstalk);
            phi = couple_mzis(self, &phi, ni.crosstalk);
            gamma = couple_chain(&gamma, ni.crosstalk);
        }
        if ni.phase_sigma > 0.0 {
            for (t, p) in theta.iter_mut().zip(phi.iter_mut()) {
                *t += phase_noise(rng, ni.phase_sigma, ni.phase_noise_clip);
                *p += phase_noise(rng, ni.phase_sigma, ni.phase_noise_clip);
            }
            for g in &mut gamma {
                *g += phase_noise(rng, ni.phase_sigma, ni.phase_noise_clip);
            }
        }
        Ok(Realisation::assemble(
            self,
            &theta,
            &phi,
            &eps,
            ni.amplitude(),
            gamma,
            ni.crosstalk,
        ))
    }

    /// The ideal mesh (bit-identical to `realise` with [`NonIdeal::IDEAL`]).
    pub fn ideal(&self, phases: &MeshPhases) -> Result<Realisation, MziError> {
        phases.check(self)?;
        let eps = vec![[0.0; 2]; self.mzi_count()];
        Ok(Realisation::assemble(
            self,
            &phases.theta,
            &phases.phi,
            &eps,
            1.0,
            phases.gamma.clone(),
            0.0,
        ))
    }
}

/// One hardware instance of a mesh: effective parameters of every MZI and of the input
/// screen. Its transfer matrix is `M = T_K ⋯ T_1 · diag(e^{iγ})`, `T_k` acting on modes
/// `(top_k, top_k + 1)`.
#[derive(Clone, Debug)]
pub struct Realisation {
    layout: MeshLayout,
    cells: Vec<Cell>,
    gamma: Vec<f64>,
    screen: Vec<C64>,
    crosstalk: f64,
    transfer: OnceLock<Transfer>,
}

impl Realisation {
    fn assemble(
        layout: &MeshLayout,
        theta: &[f64],
        phi: &[f64],
        eps: &[[f64; 2]],
        amp: f64,
        gamma: Vec<f64>,
        crosstalk: f64,
    ) -> Self {
        let k = theta.len();
        let mut sin = vec![0.0; 2 * k];
        let mut cos = vec![0.0; 2 * k];
        let (st, sp) = sin.split_at_mut(k);
        let (ct, cp) = cos.split_at_mut(k);
        sincos(theta, st, ct);
        sincos(phi, sp, cp);
        let ideal_splitters = eps.iter().all(|e| e[0] == 0.0 && e[1] == 0.0);
        let mut split = vec![[0.5; 4]; k];
        if !ideal_splitters {
            let angles: Vec<f64> = eps
                .iter()
                .flat_map(|e| [FRAC_PI_4 + e[0], FRAC_PI_4 + e[1]])
                .collect();
            let (mut s, mut c) = (vec![0.0; 2 * k], vec![0.0; 2 * k]);
            sincos(&angles, &mut s, &mut c);
            for (i, sp) in split.iter_mut().enumerate() {
                let ideal = eps[i][0] == 0.0 && eps[i][1] == 0.0;
                *sp = splitter_products(ideal, (s[2 * i], c[2 * i]), (s[2 * i + 1], c[2 * i + 1]));
            }
        }
        let cells = (0..k)
            .map(|i| {
                Cell::from_parts(
                    theta[i],
                    phi[i],
                    C64::new(ct[i], st[i]),
                    C64::new(cp[i], sp[i]),
                    split[i],
                    amp,
                )
            })
            .collect();
        let (mut gs, mut gc) = (vec![0.0; gamma.len()], vec![0.0; gamma.len()]);
        sincos(&gamma, &mut gs, &mut gc);
        let screen = gc.iter().zip(&gs).map(|(&c, &s)| C64::new(c, s)).collect();
        Realisation {
            layout: layout.clone(),
            cells,
            gamma,
            screen,
            crosstalk,
            transfer: OnceLock::new(),
        }
    }

    pub fn layout(&self) -> &MeshLayout {
        &self.layout
    }

    /// The effective phases of this instance (after quantisation, crosstalk and noise).
    pub fn effective_phases(&self) -> MeshPhases {
        MeshPhases {
            theta: self.cells.iter().map(|c| c.theta).collect(),
            phi: self.cells.iter().map(|c| c.phi).collect(),
            gamma: self.gamma.clone(),
        }
    }

    /// The collapsed transfer matrix with its fast product; computed on first use, O(N³).
    pub fn transfer(&self) -> &Transfer {
        self.transfer
            .get_or_init(|| Transfer::new(self.collapse().to_complex()))
    }

    /// The `N×N` transfer matrix `M`.
    pub fn matrix(&self) -> &Array2<C64> {
        self.transfer().matrix()
    }

    /// `M` by sweeping the MZIs over `D`, touching only entries inside each row's light cone
    /// (rows start as `e_j` and spread by one mode per MZI; see `MeshLayout::cones`).
    fn collapse(&self) -> Planes {
        let n = self.layout.ports();
        let mut b = Planes::zeros(n, n);
        for (j, z) in self.screen.iter().enumerate() {
            b.re[j * n + j] = z.re;
            b.im[j * n + j] = z.im;
        }
        let sites = self.layout.sites();
        for ((cell, site), c) in self.cells.iter().zip(sites).zip(self.layout.cones()) {
            b.rotate(site.top, &cell.t, c[0].min(c[2]), c[1].max(c[3]));
        }
        b
    }

    /// `Y = M X` for an `N×B` block of fields (columns are samples). Below `B = N/2` it
    /// sweeps the MZIs over the block (O(N² B)); otherwise it multiplies by the cached
    /// transfer matrix (collapsed once, then one 3M complex product).
    pub fn apply(&self, x: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let n = self.layout.ports();
        check_rows("input fields", n, x.nrows())?;
        if 2 * x.ncols() < n {
            let mut p = Planes::from_complex(x);
            for (j, &z) in self.screen.iter().enumerate() {
                p.scale_row(j, z);
            }
            for (cell, site) in self.cells.iter().zip(self.layout.sites()) {
                p.rotate(site.top, &cell.t, 0, p.cols);
            }
            Ok(p.to_complex())
        } else {
            self.transfer().apply(x)
        }
    }

    /// `M† G`: the gradient of a real loss with respect to the input of [`apply`](Self::apply)
    /// given `G` for its output (same convention as [`backward`](Self::backward)).
    pub fn apply_adjoint(&self, g: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let n = self.layout.ports();
        check_rows("output gradient", n, g.nrows())?;
        if 2 * g.ncols() < n {
            let mut p = Planes::from_complex(g);
            for (cell, site) in self.cells.iter().zip(self.layout.sites()).rev() {
                p.rotate(site.top, &cell.adjoint(), 0, p.cols);
            }
            for (j, &z) in self.screen.iter().enumerate() {
                p.scale_row(j, z.conj());
            }
            Ok(p.to_complex())
        } else {
            self.transfer().apply_adjoint(g)
        }
    }

    /// Reverse mode to the *nominal* phases: given `G = ∂L/∂Re M + i ∂L/∂Im M` (equivalently
    /// `2 ∂L/∂M̄`) for a real loss `L`, returns `∂L/∂θ`, `∂L/∂φ`, `∂L/∂γ`. Chains through the
    /// realisation: straight-through for wrapping and quantisation, the transpose of the
    /// crosstalk coupling, identity for additive noise.
    pub fn backward(&self, g: ArrayView2<C64>) -> Result<MeshPhases, MziError> {
        let eff = self.backward_effective(g)?;
        Ok(self.chain_to_nominal(eff))
    }

    /// `∂L/∂(effective phases)` of this instance, for `G` as in [`backward`](Self::backward).
    ///
    /// With `M = P_k T_k Q_k` for MZI `k`, `∂L/∂p = Re Σ conj(H) ∘ ∂T_k/∂p` where
    /// `H = P_k† G Q_k†` restricted to the MZI's 2×2 block. One backward sweep keeps
    /// `Y = P_k† G` (row updates by `T†`) and `Q_k` (peeled from `M` by `T⁻¹ = T†/a²`), so the
    /// whole pass is O(N³) with two `N×N` buffers and no allocation per MZI.
    pub fn backward_effective(&self, g: ArrayView2<C64>) -> Result<MeshPhases, MziError> {
        let n = self.layout.ports();
        if g.dim() != (n, n) {
            return Err(MziError::Shape {
                what: "gradient of the transfer matrix",
                expected: (n, n),
                got: g.dim(),
            });
        }
        let k_total = self.cells.len();
        // Q_{K+1} = M, from the cached transfer matrix (collapsed here if not yet).
        let mut b = Planes::from_complex(self.matrix().view());
        let mut y = Planes::from_complex(g);
        let mut grad_theta = vec![0.0; k_total];
        let mut grad_phi = vec![0.0; k_total];
        let sites = self.layout.sites();
        let cones = self.layout.cones();
        for k in (0..k_total).rev() {
            let cell = &self.cells[k];
            let m = sites[k].top;
            let [lo_a, hi_a, lo_b, hi_b] = cones[k];
            let (lo, hi) = (lo_a.min(lo_b), hi_a.max(hi_b));
            // Peel T_k off Q (exact zeros restored outside the cones), take the 2×2 block
            // of Y Q†, and move Y past T_k: one fused pass.
            let h = reverse_step(&mut b, &mut y, m, &cell.inverse(), &cell.adjoint(), lo, hi);
            b.clear_outside(m, (lo, hi), (lo_a, hi_a));
            b.clear_outside(m + 1, (lo, hi), (lo_b, hi_b));
            let (dt, dp) = (cell.d_theta(), cell.d_phi());
            let re_dot = |d: [C64; 4]| -> f64 {
                h[0].re * d[0].re
                    + h[0].im * d[0].im
                    + h[1].re * d[1].re
                    + h[1].im * d[1].im
                    + h[2].re * d[2].re
                    + h[2].im * d[2].im
                    + h[3].re * d[3].re
                    + h[3].im * d[3].im
            };
            grad_theta[k] = re_dot(dt);
            grad_phi[k] = re_dot(dp);
        }
        // Y = (T_K ⋯ T_1)† G; ∂M/∂γ_j = (T_K ⋯ T_1) e_j e_jᵀ i e^{iγ_j}.
        let grad_gamma = (0..n)
            .map(|j| (y.get(j, j).conj() * I * self.screen[j]).re)
            .collect();
        Ok(MeshPhases {
            theta: grad_theta,
            phi: grad_phi,
            gamma: grad_gamma,
        })
    }

    fn chain_to_nominal(&self, eff: MeshPhases) -> MeshPhases {
        if self.crosstalk == 0.0 {
            return eff;
        }
        MeshPhases {
            theta: couple_mzis(&self.layout, &eff.theta, self.crosstalk),
            phi: couple_mzis(&self.layout, &eff.phi, self.crosstalk),
            gamma: couple_chain(&eff.gamma, self.crosstalk),
        }
    }
}

fn check_rows(what: &'static str, expected: usize, got: usize) -> Result<(), MziError> {
    if expected == got {
        Ok(())
    } else {
        Err(MziError::Rows {
            what,
            expected,
            got,
        })
    }
}

/// A fixed complex matrix prepared for fast batched products `M X` and `M† G`: packed once
/// for the fused 3M kernel (three real products instead of four; AVX2 + FMA when the CPU
/// has them, matrixmultiply's dgemm otherwise). The adjoint is packed on first use.
#[derive(Clone, Debug)]
pub struct Transfer {
    fwd: Packed,
    adj: OnceLock<Packed>,
}

impl Transfer {
    /// Prepares any `rows × cols` complex matrix.
    pub fn new(m: Array2<C64>) -> Self {
        Transfer {
            fwd: Packed::new(m),
            adj: OnceLock::new(),
        }
    }

    pub fn matrix(&self) -> &Array2<C64> {
        self.fwd.matrix()
    }

    /// `M X` for `X` with `cols(M)` rows.
    pub fn apply(&self, x: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let mut y = Array2::<C64>::zeros((self.matrix().nrows(), x.ncols()));
        self.apply_into(x, y.view_mut())?;
        Ok(y)
    }

    /// `Y ← M X` into a caller's buffer (reuse it across batches to avoid fresh pages).
    pub fn apply_into(&self, x: ArrayView2<C64>, y: ArrayViewMut2<C64>) -> Result<(), MziError> {
        let (rows, cols) = self.matrix().dim();
        check_rows("input fields", cols, x.nrows())?;
        check_shape("output buffer", (rows, x.ncols()), y.dim())?;
        self.fwd.apply_into(x, y);
        Ok(())
    }

    /// `M† G` for `G` with `rows(M)` rows.
    pub fn apply_adjoint(&self, g: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        let mut y = Array2::<C64>::zeros((self.matrix().ncols(), g.ncols()));
        self.apply_adjoint_into(g, y.view_mut())?;
        Ok(y)
    }

    /// `Y ← M† G` into a caller's buffer.
    pub fn apply_adjoint_into(
        &self,
        g: ArrayView2<C64>,
        y: ArrayViewMut2<C64>,
    ) -> Result<(), MziError> {
        let (rows, cols) = self.matrix().dim();
        check_rows("output gradient", rows, g.nrows())?;
        check_shape("output buffer", (cols, g.ncols()), y.dim())?;
        let adj = self
            .adj
            .get_or_init(|| Packed::new(self.matrix().t().mapv(|z| z.conj())));
        adj.apply_into(g, y);
        Ok(())
    }
}

fn check_shape(
    what: &'static str,
    expected: (usize, usize),
    got: (usize, usize),
) -> Result<(), MziError> {
    if expected == got {
        Ok(())
    } else {
        Err(MziError::Shape {
            what,
            expected,
            got,
        })
    }
}

/// `G_M = G_Y X†`: the gradient with respect to `M` of a real loss of `Y = M X`, given `G_Y`
/// (both in the `∂L/∂Re + i ∂L/∂Im` convention). Feed it to [`Realisation::backward`].
pub fn matrix_grad(x: ArrayView2<C64>, grad_y: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
    if x.ncols() != grad_y.ncols() {
        return Err(MziError::Shape {
            what: "output gradient (same batch as the input)",
            expected: (grad_y.nrows(), x.ncols()),
            got: grad_y.dim(),
        });
    }
    let mut out = Array2::<C64>::zeros((grad_y.nrows(), x.nrows()));
    let g = grad_y.split_complex();
    let xs = x.split_complex();
    // X† = xrᵀ − i xiᵀ.
    gemm3m(
        g.re,
        Signed { m: g.im, sign: 1.0 },
        plane_sum(grad_y, 1.0).view(),
        xs.re.t(),
        Signed {
            m: xs.im.t(),
            sign: -1.0,
        },
        plane_sum(x, -1.0).t(),
        out.view_mut(),
    );
    Ok(out)
}
