//! Mesh phases, realisations, the forward collapse, batched application and reverse mode.

use super::cell::{splitter_products, Cell, I};
use super::kernels::{collapse_steps, outer_grad, sweep_steps, Packed, Planes};
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
        self.realise_reusing(nominal, ni, rng, None)
    }

    /// [`realise`](Self::realise) into the buffers of an `old` realisation of a mesh of this
    /// size (any other is dropped), so a training loop allocates nothing per mini-batch.
    /// The result does not depend on `old`.
    pub fn realise_reusing<R: Rng + ?Sized>(
        &self,
        nominal: &MeshPhases,
        ni: &NonIdeal,
        rng: &mut R,
        old: Option<Realisation>,
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
            [&theta, &phi, &gamma],
            &eps,
            ni.amplitude(),
            ni.crosstalk,
            self.spare_of(old),
        ))
    }

    /// The ideal mesh (bit-identical to `realise` with [`NonIdeal::IDEAL`]).
    pub fn ideal(&self, phases: &MeshPhases) -> Result<Realisation, MziError> {
        self.ideal_reusing(phases, None)
    }

    /// [`ideal`](Self::ideal) into the buffers of `old`, as in
    /// [`realise_reusing`](Self::realise_reusing).
    pub fn ideal_reusing(
        &self,
        phases: &MeshPhases,
        old: Option<Realisation>,
    ) -> Result<Realisation, MziError> {
        phases.check(self)?;
        Ok(Realisation::assemble(
            self,
            [&phases.theta, &phases.phi, &phases.gamma],
            &[],
            1.0,
            0.0,
            self.spare_of(old),
        ))
    }

    /// The buffers of `old` if it realised a mesh of this size.
    fn spare_of(&self, old: Option<Realisation>) -> Spare {
        old.filter(|r| r.layout.ports() == self.ports() && r.cells.len() == self.mzi_count())
            .map(Realisation::into_spare)
            .unwrap_or_default()
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
    /// The rows each MZI received during the collapse (its segment, see `layout::Step`),
    /// recorded when a reverse pass is expected.
    tape: OnceLock<Vec<f64>>,
    /// Buffers of an earlier realisation, for [`prepare`](Self::prepare) to fill.
    spare: Spare,
}

/// Allocations one realisation hands to the next (see [`MeshLayout::realise_reusing`]).
#[derive(Clone, Debug, Default)]
struct Spare {
    cells: Vec<Cell>,
    gamma: Vec<f64>,
    screen: Vec<C64>,
    /// Sines and cosines while assembling.
    trig: Vec<f64>,
    planes: Option<Planes>,
    tape: Vec<f64>,
    fwd: Vec<f64>,
    adj: Vec<f64>,
}

impl Realisation {
    /// The cells and input screen from effective `[θ, φ, γ]`; `eps` empty means ideal
    /// splitters.
    fn assemble(
        layout: &MeshLayout,
        [theta, phi, gamma]: [&[f64]; 3],
        eps: &[[f64; 2]],
        amp: f64,
        crosstalk: f64,
        mut spare: Spare,
    ) -> Self {
        let (k, n) = (theta.len(), gamma.len());
        let mut trig = std::mem::take(&mut spare.trig);
        // Overwritten below: no need to clear a reused buffer.
        trig.resize(4 * k + 2 * n, 0.0);
        let (st, rest) = trig.split_at_mut(k);
        let (ct, rest) = rest.split_at_mut(k);
        let (sp, rest) = rest.split_at_mut(k);
        let (cp, rest) = rest.split_at_mut(k);
        let (gs, gc) = rest.split_at_mut(n);
        sincos(theta, st, ct);
        sincos(phi, sp, cp);
        sincos(gamma, gs, gc);
        let ideal_splitters = eps.iter().all(|e| e[0] == 0.0 && e[1] == 0.0);
        let split: Vec<[f64; 4]> = if ideal_splitters {
            Vec::new()
        } else {
            let angles: Vec<f64> = eps
                .iter()
                .flat_map(|e| [FRAC_PI_4 + e[0], FRAC_PI_4 + e[1]])
                .collect();
            let (mut s, mut c) = (vec![0.0; 2 * k], vec![0.0; 2 * k]);
            sincos(&angles, &mut s, &mut c);
            (0..k)
                .map(|i| {
                    let ideal = eps[i][0] == 0.0 && eps[i][1] == 0.0;
                    splitter_products(ideal, (s[2 * i], c[2 * i]), (s[2 * i + 1], c[2 * i + 1]))
                })
                .collect()
        };
        let mut cells = std::mem::take(&mut spare.cells);
        cells.clear();
        cells.extend((0..k).map(|i| {
            Cell::from_parts(
                theta[i],
                phi[i],
                C64::new(ct[i], st[i]),
                C64::new(cp[i], sp[i]),
                split.get(i).copied().unwrap_or([0.5; 4]),
                amp,
            )
        }));
        let mut screen = std::mem::take(&mut spare.screen);
        screen.clear();
        screen.extend(gc.iter().zip(gs.iter()).map(|(&c, &s)| C64::new(c, s)));
        let mut gamma_eff = std::mem::take(&mut spare.gamma);
        gamma_eff.clear();
        gamma_eff.extend_from_slice(gamma);
        spare.trig = trig;
        Realisation {
            layout: layout.clone(),
            cells,
            gamma: gamma_eff,
            screen,
            crosstalk,
            transfer: OnceLock::new(),
            tape: OnceLock::new(),
            spare,
        }
    }

    /// Every allocation of this realisation, for the next one.
    fn into_spare(self) -> Spare {
        let mut spare = self.spare;
        spare.cells = self.cells;
        spare.gamma = self.gamma;
        spare.screen = self.screen;
        if let Some(t) = self.tape.into_inner() {
            spare.tape = t;
        }
        if let Some(t) = self.transfer.into_inner() {
            let (planes, fwd, adj) = t.into_parts();
            spare.planes = planes.or(spare.planes);
            spare.fwd = fwd;
            if let Some(a) = adj {
                spare.adj = a;
            }
        }
        spare
    }

    /// Collapses the mesh now, into the buffers this realisation was built from (see
    /// [`MeshLayout::realise_reusing`]); with `for_backward`, also records what the reverse
    /// pass needs and packs `M†`. Afterwards [`transfer`](Self::transfer) and
    /// [`backward`](Self::backward) do no O(N³) work of their own. Does nothing if done.
    pub fn prepare(&mut self, for_backward: bool) {
        let done = self.transfer.get().is_some();
        if done && (!for_backward || self.tape.get().is_some()) {
            return;
        }
        let n = self.layout.ports();
        let mut planes = match self.spare.planes.take() {
            Some(mut p) if p.rows == n && p.cols == n => {
                p.re.fill(0.0);
                p.im.fill(0.0);
                p
            }
            _ => Planes::padded(n, n),
        };
        let mut tape = std::mem::take(&mut self.spare.tape);
        tape.clear();
        self.collapse_into(&mut planes, for_backward.then_some(&mut tape));
        let transfer = Transfer::from_planes(
            planes,
            std::mem::take(&mut self.spare.fwd),
            for_backward.then(|| std::mem::take(&mut self.spare.adj)),
        );
        // If a transfer was set already, it holds the same values (the collapse is
        // deterministic).
        let _ = self.transfer.set(transfer);
        if for_backward {
            let _ = self.tape.set(tape);
        } else {
            self.spare.tape = tape;
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
            .get_or_init(|| Transfer::from_planes(self.collapse(None), Vec::new(), None))
    }

    /// [`transfer`](Self::transfer), also recording what the reverse pass
    /// ([`backward`](Self::backward)) needs, so it does not collapse the mesh again. Call it
    /// instead of `transfer` when gradients will follow.
    pub fn transfer_for_backward(&self) -> &Transfer {
        self.tape();
        self.transfer()
    }

    /// The rows each MZI received in the collapse; collapses (again) to record them.
    fn tape(&self) -> &[f64] {
        if let Some(t) = self.tape.get() {
            return t;
        }
        let mut t = Vec::with_capacity(self.layout.tape_len());
        let b = self.collapse(Some(&mut t));
        // Either set already holds the same values (the collapse is deterministic).
        let _ = self
            .transfer
            .set(Transfer::from_planes(b, Vec::new(), None));
        self.tape.get_or_init(|| t)
    }

    /// The `N×N` transfer matrix `M`.
    pub fn matrix(&self) -> &Array2<C64> {
        self.transfer().matrix()
    }

    /// `M` by sweeping the MZIs over `D`, touching only entries inside each row's light cone
    /// (rows start as `e_j` and spread by one mode per MZI; see `layout::Step`), widened
    /// to whole vectors: outside a cone the rows are exact zeros, and stay so. With `tape`,
    /// appends the two rows each MZI receives, on its segment, for the reverse pass.
    fn collapse(&self, tape: Option<&mut Vec<f64>>) -> Planes {
        let n = self.layout.ports();
        let mut b = Planes::padded(n, n);
        self.collapse_into(&mut b, tape);
        b
    }

    /// [`collapse`](Self::collapse) into zeroed padded `N×N` planes.
    fn collapse_into(&self, b: &mut Planes, tape: Option<&mut Vec<f64>>) {
        for (j, z) in self.screen.iter().enumerate() {
            b.re[j * b.stride + j] = z.re;
            b.im[j * b.stride + j] = z.im;
        }
        collapse_steps(b, self.layout.steps(), |k| self.cells[k].t, tape);
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
    /// `Y = P_k† G` (row updates by `T†`) and reads the two rows of `Q_k` the collapse
    /// recorded (see [`transfer_for_backward`](Self::transfer_for_backward)), so the pass is
    /// O(N³) with one `N×N` buffer.
    pub fn backward_effective(&self, g: ArrayView2<C64>) -> Result<MeshPhases, MziError> {
        let n = self.layout.ports();
        if g.dim() != (n, n) {
            return Err(MziError::Shape {
                what: "gradient of the transfer matrix",
                expected: (n, n),
                got: g.dim(),
            });
        }
        Ok(self.sweep(Planes::from_complex_padded(g)))
    }

    /// Reverse mode of [`apply`](Self::apply) in one call: given the input `X` (`N×B`) and
    /// `G_Y` for the output, returns `∂L/∂(nominal phases)` (as [`backward`](Self::backward)
    /// of `G_M = G_Y X†`) and `G_X = M† G_Y`. Forms `G_M` directly in the sweep's layout.
    pub fn backward_apply(
        &self,
        x: ArrayView2<C64>,
        gy: ArrayView2<C64>,
    ) -> Result<(MeshPhases, Array2<C64>), MziError> {
        let n = self.layout.ports();
        check_rows("input fields", n, x.nrows())?;
        check_rows("output gradient", n, gy.nrows())?;
        if x.ncols() != gy.ncols() {
            return Err(MziError::Shape {
                what: "output gradient (same batch as the input)",
                expected: (n, x.ncols()),
                got: gy.dim(),
            });
        }
        let mut gm = Planes::padded(n, n);
        outer_grad(gy, x, &mut gm);
        let eff = self.sweep(gm);
        let gx = self.transfer_for_backward().apply_adjoint(gy)?;
        Ok((self.chain_to_nominal(eff), gx))
    }

    /// The reverse sweep from `Y = G` (padded planes, consumed).
    fn sweep(&self, mut y: Planes) -> MeshPhases {
        let n = self.layout.ports();
        let tape = self.tape();
        let k_total = self.cells.len();
        // The 2×2 blocks first, the gradients from them after: off the sweep's critical path.
        // Rows are updated only on the columns still read (the steps' sweep ranges).
        let mut blocks = vec![[C64::new(0.0, 0.0); 4]; k_total];
        sweep_steps(
            &mut y,
            self.layout.steps(),
            |k| self.cells[k].adjoint(),
            tape,
            &mut blocks,
        );
        let (grad_theta, grad_phi) = self
            .cells
            .iter()
            .zip(&blocks)
            .map(|(cell, h)| cell.phase_grads(h))
            .unzip();
        // Y = (T_K ⋯ T_1)† G; ∂M/∂γ_j = (T_K ⋯ T_1) e_j e_jᵀ i e^{iγ_j}.
        let grad_gamma = (0..n)
            .map(|j| (y.get(j, j).conj() * I * self.screen[j]).re)
            .collect();
        MeshPhases {
            theta: grad_theta,
            phi: grad_phi,
            gamma: grad_gamma,
        }
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
    rows: usize,
    cols: usize,
    /// The matrix as given, or built on first use from the collapse's `planes`.
    m: OnceLock<Array2<C64>>,
    planes: Option<Planes>,
    fwd: Packed,
    adj: OnceLock<Packed>,
}

impl Transfer {
    /// Prepares any `rows × cols` complex matrix.
    pub fn new(m: Array2<C64>) -> Self {
        Transfer {
            rows: m.nrows(),
            cols: m.ncols(),
            fwd: Packed::new(m.view(), false),
            m: OnceLock::from(m),
            planes: None,
            adj: OnceLock::new(),
        }
    }

    /// From a collapse's planes, packing straight from them into the allocations `fwd` and,
    /// when given, `adj` (then `M†` is packed now rather than on first use).
    fn from_planes(p: Planes, fwd: Vec<f64>, adj: Option<Vec<f64>>) -> Self {
        let fwd = Packed::from_fn_in(p.rows, p.cols, false, |i, k| p.get(i, k), fwd);
        let adj = match adj {
            Some(buf) => OnceLock::from(Packed::from_fn_in(
                p.cols,
                p.rows,
                true,
                |i, k| p.get(k, i).conj(),
                buf,
            )),
            None => OnceLock::new(),
        };
        Transfer {
            rows: p.rows,
            cols: p.cols,
            m: OnceLock::new(),
            planes: Some(p),
            fwd,
            adj,
        }
    }

    /// The allocations of [`from_planes`](Self::from_planes), for reuse.
    fn into_parts(self) -> (Option<Planes>, Vec<f64>, Option<Vec<f64>>) {
        (
            self.planes,
            self.fwd.into_blocks(),
            self.adj.into_inner().map(Packed::into_blocks),
        )
    }

    pub fn matrix(&self) -> &Array2<C64> {
        self.m.get_or_init(|| match &self.planes {
            Some(p) => p.to_complex(),
            None => Array2::zeros((self.rows, self.cols)),
        })
    }

    /// `M X` for `X` with `cols(M)` rows.
    pub fn apply(&self, x: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        check_rows("input fields", self.cols, x.nrows())?;
        if let Some(y) = self.fwd.apply_new(x) {
            return Ok(y);
        }
        let mut y = Array2::<C64>::zeros((self.rows, x.ncols()));
        self.apply_into(x, y.view_mut())?;
        Ok(y)
    }

    /// `Y ← M X` into a caller's buffer (reuse it across batches to avoid fresh pages).
    pub fn apply_into(&self, x: ArrayView2<C64>, y: ArrayViewMut2<C64>) -> Result<(), MziError> {
        check_rows("input fields", self.cols, x.nrows())?;
        check_shape("output buffer", (self.rows, x.ncols()), y.dim())?;
        self.fwd.apply_into(|| self.matrix().view(), x, y);
        Ok(())
    }

    /// `M† G` for `G` with `rows(M)` rows.
    pub fn apply_adjoint(&self, g: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
        check_rows("output gradient", self.rows, g.nrows())?;
        if let Some(y) = self.adjoint_packed().apply_new(g) {
            return Ok(y);
        }
        let mut y = Array2::<C64>::zeros((self.cols, g.ncols()));
        self.apply_adjoint_into(g, y.view_mut())?;
        Ok(y)
    }

    fn adjoint_packed(&self) -> &Packed {
        self.adj
            .get_or_init(|| Packed::new(self.matrix().view(), true))
    }

    /// `Y ← M† G` into a caller's buffer.
    pub fn apply_adjoint_into(
        &self,
        g: ArrayView2<C64>,
        y: ArrayViewMut2<C64>,
    ) -> Result<(), MziError> {
        check_rows("output gradient", self.rows, g.nrows())?;
        check_shape("output buffer", (self.cols, g.ncols()), y.dim())?;
        self.adjoint_packed()
            .apply_into(|| self.matrix().view(), g, y);
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
/// (both in the `∂L/∂Re + i ∂L/∂Im` convention). Feed it to [`Realisation::backward`], or
/// use [`Realisation::backward_apply`], which skips this intermediate matrix.
pub fn matrix_grad(x: ArrayView2<C64>, grad_y: ArrayView2<C64>) -> Result<Array2<C64>, MziError> {
    if x.ncols() != grad_y.ncols() {
        return Err(MziError::Shape {
            what: "output gradient (same batch as the input)",
            expected: (grad_y.nrows(), x.ncols()),
            got: grad_y.dim(),
        });
    }
    let mut out = Planes::padded(grad_y.nrows(), x.nrows());
    outer_grad(grad_y, x, &mut out);
    Ok(out.to_complex())
}
