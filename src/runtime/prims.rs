//! The kernels of the primitives every backend shares: encoding onto light, detection, and
//! the element-wise activations `ir::lower` emits itself. A backend's own primitives come
//! from [`crate::backend::Backend::kernel`].

use crate::backend::kernel::{aux, aux_of, Aux, Block, Kernel, KernelError, Spare, Step};
use crate::ir::{EncodeMode, IrNode, Prim};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;
use std::f64::consts::PI;
use std::sync::Arc;

/// The shared kernel of `prim`, or `None` if it is a backend's own (or the input).
pub(super) fn kernel(prim: &Prim) -> Option<Arc<dyn Kernel>> {
    Some(match *prim {
        Prim::Encode { mode } => Arc::new(Encode(mode)),
        Prim::ModRelu { bias } => Arc::new(ModRelu { bias }),
        Prim::EoActivation {
            alpha,
            gain,
            bias_phase,
        } => Arc::new(Eo {
            alpha,
            gain,
            bias_phase,
        }),
        Prim::Detect => Arc::new(Detect),
        Prim::Relu => Arc::new(Pointwise::Relu),
        Prim::Tanh => Arc::new(Pointwise::Tanh),
        Prim::Sigmoid => Arc::new(Pointwise::Sigmoid),
        _ => return None,
    })
}

/// Electronics → light: `x` as the field amplitude, or `e^{iπx}`.
#[derive(Debug)]
struct Encode(EncodeMode);

impl Kernel for Encode {
    fn forward(
        &self,
        _s: &Step<'_>,
        z: &Block,
        _p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let v = match self.0 {
            EncodeMode::Amplitude => z.mapv(|c| C64::new(c.re, 0.0)),
            EncodeMode::Phase => z.mapv(|c| C64::from_polar(1.0, PI * c.re)),
        };
        Ok((v, None))
    }

    fn backward(
        &self,
        _node: &IrNode,
        _x: &Block,
        y: &Block,
        g: Block,
        _aux: &Aux,
        _p: &[f64],
        _gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        Ok(match self.0 {
            EncodeMode::Amplitude => g.mapv(|c| C64::new(c.re, 0.0)),
            // dz/dx = iπ z: ∂L/∂x = Re(conj(G) iπ z).
            EncodeMode::Phase => Array2::from_shape_fn(g.dim(), |ix| {
                C64::new((g[ix].conj() * C64::new(0.0, PI) * y[ix]).re, 0.0)
            }),
        })
    }
}

/// modReLU: `(|z| − b) z/|z|` where `|z| > b`, else 0; the threshold `b` per mode is
/// trainable, initially the op's `bias`.
#[derive(Debug)]
struct ModRelu {
    bias: f64,
}

impl Kernel for ModRelu {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        vec![("threshold", node.ty.width)]
    }

    fn init(&self, node: &IrNode, _rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        Ok(vec![self.bias; node.ty.width])
    }

    fn forward(
        &self,
        _s: &Step<'_>,
        z: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let mut y = z.clone();
        for (j, mut row) in y.outer_iter_mut().enumerate() {
            let b = p[j];
            row.mapv_inplace(|v| {
                let r = modulus(v);
                if r > b && r > 0.0 {
                    v * ((r - b) / r)
                } else {
                    C64::new(0.0, 0.0)
                }
            });
        }
        Ok((y, None))
    }

    fn backward(
        &self,
        node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        _aux: &Aux,
        p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let mut gx = Block::zeros(x.dim());
        for j in 0..node.ty.width {
            let b = p[j];
            let mut gb = 0.0;
            for (col, &gv) in g.row(j).iter().enumerate() {
                let z = x[[j, col]];
                let r = modulus(z);
                if r > b && r > 0.0 {
                    let re = (gv.conj() * z).re;
                    gx[[j, col]] = gv * (1.0 - b / r) + z * (b / (r * r * r) * re);
                    gb -= re / r;
                }
            }
            gp[j] = gb;
        }
        Ok(gx)
    }
}

/// The electro-optic activation of Williamson et al. 2019 (see [`eo_h`]).
#[derive(Debug)]
struct Eo {
    alpha: f64,
    gain: f64,
    bias_phase: f64,
}

impl Kernel for Eo {
    fn forward(
        &self,
        _s: &Step<'_>,
        z: &Block,
        _p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let y = z.mapv(|v| eo_h(self.alpha, self.gain, self.bias_phase, v.norm_sqr()) * v);
        Ok((y, None))
    }

    fn backward(
        &self,
        _node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        _aux: &Aux,
        _p: &[f64],
        _gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let (alpha, gain, bias_phase) = (self.alpha, self.gain, self.bias_phase);
        Ok(Array2::from_shape_fn(g.dim(), |ix| {
            let z = x[ix];
            let s = z.norm_sqr();
            let h = eo_h(alpha, gain, bias_phase, s);
            let dh = eo_dh(alpha, gain, bias_phase, s);
            h.conj() * g[ix] + z * (2.0 * (g[ix].conj() * dh * z).re)
        }))
    }
}

/// Light → electronics: `|z|² (1 + σ_d ξ)`, ξ standard normal per sample and port under a
/// draw with detector noise.
#[derive(Debug)]
struct Detect;

/// The multiplicative detector factors `1 + σ_d ξ` (width × batch).
struct DetectAux(Array2<f64>);

impl Kernel for Detect {
    fn forward(
        &self,
        s: &Step<'_>,
        z: &Block,
        _p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let mut y = z.mapv(|v| C64::new(v.norm_sqr(), 0.0));
        match s.draw {
            Some(d) if d.detector_sigma > 0.0 => {
                let mut rng = d.rng(s.index, 3);
                let f = Array2::from_shape_fn((s.node.ty.width, s.batch), |_| {
                    1.0 + d.detector_sigma * rng.sample::<f64, _>(StandardNormal)
                });
                y.zip_mut_with(&f, |v, f| v.re *= f);
                Ok((y, aux(DetectAux(f))))
            }
            _ => Ok((y, None)),
        }
    }

    fn backward(
        &self,
        _node: &IrNode,
        x: &Block,
        _y: &Block,
        g: Block,
        aux: &Aux,
        _p: &[f64],
        _gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        let noise = aux_of::<DetectAux>(aux);
        Ok(Array2::from_shape_fn(g.dim(), |ix| {
            let f = noise.map_or(1.0, |f| f.0[ix]);
            x[ix] * (2.0 * f * g[ix].re)
        }))
    }
}

/// The real element-wise activations.
#[derive(Debug)]
enum Pointwise {
    Relu,
    Tanh,
    Sigmoid,
}

impl Kernel for Pointwise {
    fn forward(
        &self,
        _s: &Step<'_>,
        z: &Block,
        _p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let y = match self {
            Pointwise::Relu => z.mapv(|c| C64::new(c.re.max(0.0), 0.0)),
            Pointwise::Tanh => z.mapv(|c| C64::new(c.re.tanh(), 0.0)),
            Pointwise::Sigmoid => z.mapv(|c| C64::new(sigmoid(c.re), 0.0)),
        };
        Ok((y, None))
    }

    fn backward(
        &self,
        _node: &IrNode,
        x: &Block,
        y: &Block,
        g: Block,
        _aux: &Aux,
        _p: &[f64],
        _gp: &mut [f64],
    ) -> Result<Block, KernelError> {
        Ok(match self {
            Pointwise::Relu => Array2::from_shape_fn(g.dim(), |ix| {
                C64::new(if x[ix].re > 0.0 { g[ix].re } else { 0.0 }, 0.0)
            }),
            Pointwise::Tanh => Array2::from_shape_fn(g.dim(), |ix| {
                let t = y[ix].re;
                C64::new(g[ix].re * (1.0 - t * t), 0.0)
            }),
            Pointwise::Sigmoid => Array2::from_shape_fn(g.dim(), |ix| {
                let s = y[ix].re;
                C64::new(g[ix].re * s * (1.0 - s), 0.0)
            }),
        })
    }
}

/// `|z| = √(re² + im²)`, within an ulp of `Complex::norm` (libm's `hypot`, which guards
/// against overflow beyond |z| ≈ 1e154 that fields never reach) at a fraction of its cost:
/// `hypot` was 12% of a training run.
#[inline]
fn modulus(z: C64) -> f64 {
    z.norm_sqr().sqrt()
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Williamson et al. 2019: `f(z) = h(|z|²) z`, `h(s) = i√(1−α) e^{−iφ} cos φ` with
/// `φ = (g s + φ_b)/2`, i.e. `h(s) = (i√(1−α)/2)(1 + e^{−2iφ})`.
fn eo_h(alpha: f64, gain: f64, bias_phase: f64, s: f64) -> C64 {
    let phi = (gain * s + bias_phase) / 2.0;
    C64::new(0.0, (1.0 - alpha).max(0.0).sqrt() / 2.0) * (1.0 + C64::from_polar(1.0, -2.0 * phi))
}

/// `h'(s) = √(1−α) (g/2) e^{−2iφ}`.
fn eo_dh(alpha: f64, gain: f64, bias_phase: f64, s: f64) -> C64 {
    let phi = (gain * s + bias_phase) / 2.0;
    C64::from_polar((1.0 - alpha).max(0.0).sqrt() * gain / 2.0, -2.0 * phi)
}
