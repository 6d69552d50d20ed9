//! The runtime kernels of the MZI backend's own primitives: meshes, the attenuator column
//! of an SVD-mapped layer, and `diag`. Under a noise draw every mesh is realised from it
//! ([`MeshLayout::realise`]: quantisation to the graph's phase bits, crosstalk, phase noise,
//! splitter errors, insertion loss), collapsed to its `N×N` matrix once and applied to the
//! whole batch. Uniform insertion loss is calibrated out (mesh outputs × a^(−depth),
//! attenuators × a^(−1), see [`NonIdeal::loss_gain`]). Attenuators get a relative
//! amplitude error `σ_φ/2 · z` (the first-order amplitude change of an MZI attenuator
//! `cos(θ/2)` for a θ error of σ_φ); `Diag` phases get `σ_φ · z`.

use super::{MeshLayout, MeshPhases, NonIdeal, Realisation, Topology};
use crate::backend::kernel::{
    aux, aux_of, Aux, Block, Kernel, KernelError, NoiseDraw, Spare, Step,
};
use crate::backend::MeshKind;
use crate::ir::{IrNode, Prim};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// The kernel of one of the MZI backend's primitives (`None` for the shared ones). Dense
/// products appear in the weight-space twin of a graph ([`super::weights`]): exact f64.
pub(crate) fn kernel(node: &IrNode) -> Option<Result<Arc<dyn Kernel>, KernelError>> {
    if let Some(k) = crate::backend::digital::prims::kernel(node, None) {
        return Some(Ok(k));
    }
    let w = node.ty.width;
    Some(Ok(match node.prim {
        Prim::Mesh { .. } => match Mesh::of(node)? {
            Ok(m) => Arc::new(m),
            Err(e) => return Some(Err(e)),
        },
        Prim::Attenuate => Arc::new(Attenuate {
            k: node.in_width.min(w),
        }),
        Prim::Diag => Arc::new(Diag),
        _ => return None,
    }))
}

/// The mesh non-idealities of a draw (the MZI backend's noise model); ideal for a draw
/// without one, e.g. made by hand with detector noise only.
fn mesh_model(d: &NoiseDraw) -> &NonIdeal {
    d.model::<NonIdeal>().unwrap_or(&NonIdeal::IDEAL)
}

/// The mesh topology of a lowered `mesh` prim.
pub fn topology(kind: MeshKind) -> Topology {
    match kind {
        MeshKind::Clements => Topology::Clements,
        MeshKind::Reck => Topology::Reck,
    }
}

/// One unitary mesh; parameters θ (per MZI, mesh order), φ (per MZI), γ (per port),
/// initialised Haar-random.
#[derive(Clone, Debug)]
pub struct Mesh(pub MeshLayout);

/// The instance a mesh's forward ran on and its loss-calibration gain.
struct MeshAux {
    real: Realisation,
    gain: f64,
}

impl Mesh {
    /// The kernel of a `mesh` node (`None` for another primitive).
    pub fn of(node: &IrNode) -> Option<Result<Mesh, KernelError>> {
        let Prim::Mesh { layout } = node.prim else {
            return None;
        };
        Some(
            MeshLayout::new(topology(layout), node.ty.width)
                .map(Mesh)
                .map_err(KernelError::from),
        )
    }

    /// A parameter block split into the mesh's phases (θ, φ, γ).
    pub fn phases(&self, p: &[f64]) -> Result<MeshPhases, KernelError> {
        let k = self.0.mzi_count();
        let expected = 2 * k + self.0.ports();
        if p.len() != expected {
            return Err(KernelError::ParamShape {
                expected,
                got: p.len(),
            });
        }
        Ok(MeshPhases {
            theta: p[..k].to_vec(),
            phi: p[k..2 * k].to_vec(),
            gamma: p[2 * k..].to_vec(),
        })
    }

    /// The `N×N` unitary the phases `p` program on ideal hardware.
    pub fn matrix(&self, p: &[f64]) -> Result<Array2<C64>, KernelError> {
        Ok(self.0.ideal(&self.phases(p)?)?.matrix().to_owned())
    }

    /// The parameter block that programs the unitary `u` (exact Clements/Reck
    /// decomposition).
    pub fn program(&self, u: ArrayView2<C64>) -> Result<Vec<f64>, KernelError> {
        let p = self.0.decompose(u)?;
        Ok([p.theta, p.phi, p.gamma].concat())
    }
}

impl Kernel for Mesh {
    fn fields(&self, _node: &IrNode) -> Vec<(&'static str, usize)> {
        let k = self.0.mzi_count();
        vec![("theta", k), ("phi", k), ("gamma", self.0.ports())]
    }

    fn init(&self, _node: &IrNode, rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        let p = self.0.haar_phases(rng);
        Ok([p.theta, p.phi, p.gamma].concat())
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        mut spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let l = &self.0;
        let phases = self.phases(p)?;
        let old = spare
            .aux
            .take()
            .and_then(|a| a.downcast::<MeshAux>().ok())
            .map(|a| a.real);
        let (mut real, gain) = match s.draw {
            Some(d) => {
                let mesh = mesh_model(d);
                (
                    l.realise_reusing(&phases, mesh, &mut d.rng(s.index, 0), old)?,
                    mesh.loss_gain(l.depth()),
                )
            }
            None => (l.ideal_reusing(&phases, old)?, 1.0),
        };
        real.prepare(s.for_backward);
        let mut y = spare.value((s.node.ty.width, s.batch));
        real.transfer().apply_into(x.view(), y.view_mut())?;
        if gain != 1.0 {
            y.mapv_inplace(|v| v * gain);
        }
        Ok((y, aux(MeshAux { real, gain })))
    }

    fn backward(
        &self,
        _node: &IrNode,
        x: &Block,
        _y: &Block,
        mut g: Block,
        aux: &Aux,
        _p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let Some(MeshAux { real, gain }) = aux_of::<MeshAux>(aux) else {
            return Ok(Block::zeros(x.dim()));
        };
        // y = gain · M x: the mesh sees the output gradient times the gain.
        if *gain != 1.0 {
            g.mapv_inplace(|v| v * *gain);
        }
        let (d, gx) = real.backward_apply(x.view(), g.view())?;
        let k = self.0.mzi_count();
        gp[..k].copy_from_slice(&d.theta);
        gp[k..2 * k].copy_from_slice(&d.phi);
        gp[2 * k..].copy_from_slice(&d.gamma);
        Ok(gx)
    }
}

/// diag(σ) between the meshes of an SVD-mapped layer; σ kept in `[−1, 1]`, initially 1.
#[derive(Clone, Debug)]
struct Attenuate {
    k: usize,
}

/// Effective per-mode factors, and d(effective)/d(nominal) per mode.
struct AttenAux {
    eff: Vec<f64>,
    slope: Vec<f64>,
}

impl Kernel for Attenuate {
    fn fields(&self, _node: &IrNode) -> Vec<(&'static str, usize)> {
        vec![("sigma", self.k)]
    }

    fn init(&self, _node: &IrNode, _rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        Ok(vec![1.0; self.k])
    }

    fn project(&self, p: &mut [f64]) {
        p.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let k = self.k;
        let (eff, slope) = match s.draw {
            Some(d) => {
                let mesh = mesh_model(d);
                let a = mesh.amplitude() * mesh.loss_gain(1);
                let sd = mesh.phase_sigma / 2.0;
                let mut rng = d.rng(s.index, 1);
                let f: Vec<f64> = (0..k)
                    .map(|_| a * (1.0 + sd * rng.sample::<f64, _>(StandardNormal)))
                    .collect();
                (p.iter().zip(&f).map(|(v, f)| v * f).collect(), f)
            }
            None => (p.to_vec(), vec![1.0; k]),
        };
        let mut y = Block::zeros((s.node.ty.width, s.batch));
        for (r, &e) in eff.iter().enumerate() {
            y.row_mut(r)
                .iter_mut()
                .zip(x.row(r))
                .for_each(|(o, &v)| *o = v * e);
        }
        Ok((y, aux(AttenAux { eff, slope })))
    }

    fn backward(
        &self,
        _node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        aux: &Aux,
        _p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let mut gx = Block::zeros(x.dim());
        let Some(AttenAux { eff, slope }) = aux_of::<AttenAux>(aux) else {
            return Ok(gx);
        };
        for r in 0..self.k {
            let mut acc = 0.0;
            for (c, &gv) in g.row(r).iter().enumerate() {
                acc += (gv.conj() * x[[r, c]]).re;
                gx[[r, c]] = gv * eff[r];
            }
            gp[r] = acc * slope[r];
        }
        Ok(gx)
    }
}

/// A column of attenuators with phase shifters: amplitude per mode (in `[−1, 1]`, initially
/// 1), then phase (initially 0).
#[derive(Clone, Debug)]
struct Diag;

struct DiagAux {
    amp: Vec<f64>,
    slope: Vec<f64>,
    phase: Vec<f64>,
}

impl Kernel for Diag {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        let w = node.ty.width;
        vec![("amplitude", w), ("phase", w)]
    }

    fn init(&self, node: &IrNode, _rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        let w = node.ty.width;
        Ok([vec![1.0; w], vec![0.0; w]].concat())
    }

    fn project(&self, p: &mut [f64]) {
        let w = p.len() / 2;
        p[..w].iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0));
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let w = s.node.ty.width;
        let (amp0, ph0) = p.split_at(w);
        let (mut amp, mut slope, mut phase) = (amp0.to_vec(), vec![1.0; w], ph0.to_vec());
        if let Some(d) = s.draw {
            draw_diag(d, s.index, &mut amp, &mut slope, &mut phase);
        }
        let mut y = x.clone();
        for (j, mut row) in y.outer_iter_mut().enumerate() {
            let c = C64::from_polar(amp[j], phase[j]);
            row.mapv_inplace(|v| v * c);
        }
        Ok((y, aux(DiagAux { amp, slope, phase })))
    }

    fn backward(
        &self,
        node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        aux: &Aux,
        _p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let w = node.ty.width;
        let mut gx = Block::zeros(x.dim());
        let Some(DiagAux { amp, slope, phase }) = aux_of::<DiagAux>(aux) else {
            return Ok(gx);
        };
        for j in 0..w {
            let e = C64::from_polar(1.0, phase[j]);
            let c = e * amp[j];
            let (mut ga, mut gph) = (0.0, 0.0);
            for (col, &gv) in g.row(j).iter().enumerate() {
                let xv = x[[j, col]];
                ga += (gv.conj() * e * xv).re;
                gph += (gv.conj() * C64::i() * c * xv).re;
                gx[[j, col]] = c.conj() * gv;
            }
            gp[j] = ga * slope[j];
            gp[w + j] = gph;
        }
        Ok(gx)
    }
}

fn draw_diag(d: &NoiseDraw, index: usize, amp: &mut [f64], slope: &mut [f64], phase: &mut [f64]) {
    let mesh = mesh_model(d);
    let a = mesh.amplitude() * mesh.loss_gain(1);
    let s = mesh.phase_sigma;
    let mut rng = d.rng(index, 2);
    for j in 0..amp.len() {
        let za: f64 = rng.sample(StandardNormal);
        let zp: f64 = rng.sample(StandardNormal);
        slope[j] = a * (1.0 + s / 2.0 * za);
        amp[j] *= slope[j];
        phase[j] += s * zp;
    }
}
