//! The runtime kernels of the digital backend's own primitives: dense products and the
//! per-element scale, with weights, biases and inputs rounded to the number format
//! ([`super::quant`]) unless the step asks for exact arithmetic. Rounding is passed
//! straight through in the backward pass.

use super::quant;
use crate::backend::kernel::{
    aux, aux_of, complex, real, Aux, Block, Kernel, KernelError, Spare, Step,
};
use crate::backend::DType;
use crate::ir::{IrNode, Prim};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::Rng;
use std::sync::Arc;

/// The kernel of one of the digital backend's primitives (`None` for the shared ones);
/// `dtype: None` computes in exact f64 (the MZI backend's weight-space twin).
pub(crate) fn kernel(node: &IrNode, dtype: Option<DType>) -> Option<Arc<dyn Kernel>> {
    Some(match node.prim {
        Prim::MatMul { complex: false, .. } => Arc::new(Dense { dtype }),
        Prim::MatMul { complex: true, .. } => Arc::new(ComplexDense { dtype }),
        Prim::Scale { .. } => Arc::new(Scale { dtype }),
        _ => return None,
    })
}

/// `y = W x + b`: `W` (out × in, row-major), then `b`; Glorot uniform, 0.
#[derive(Clone, Debug)]
struct Dense {
    dtype: Option<DType>,
}

/// The matrix and input a dense product used (rounded, or as programmed on a crossbar):
/// all its reverse needs ([`dense_backward_aux`]).
pub struct DenseAux {
    pub w: Array2<f64>,
    pub x: Array2<f64>,
}

impl Kernel for Dense {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        dense_fields(node)
    }

    fn init(&self, node: &IrNode, rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        Ok(dense_init(node, rng))
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let (mut wm, bias) = dense_params(s.node, p)?;
        let mut bias = bias.to_vec();
        let mut xr = real(x);
        if let Some(dt) = self.dtype.filter(|_| !s.exact) {
            quantise_array(dt, &mut wm);
            quantise_array(dt, &mut xr);
            quant::quantise(dt, &mut bias);
        }
        let mut y = wm.dot(&xr);
        for (mut row, b) in y.outer_iter_mut().zip(&bias) {
            row.mapv_inplace(|v| v + b);
        }
        Ok((complex(&y), aux(DenseAux { w: wm, x: xr })))
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
        Ok(dense_backward_aux(node, x, g, aux, gp))
    }
}

/// Glorot & Bengio 2010: uniform ±√(6/(n+m)).
pub fn glorot(nin: usize, nout: usize) -> f64 {
    (6.0 / (nin + nout) as f64).sqrt()
}

/// A real dense layer's parameter fields, shared by every backend that has one (digital
/// `Dense`, the AIMC crossbar): `weights` (out × in, row-major), then `bias`.
pub fn dense_fields(node: &IrNode) -> Vec<(&'static str, usize)> {
    let (w, nin) = (node.ty.width, node.in_width);
    vec![("weights", w * nin), ("bias", w)]
}

/// Glorot-uniform weights and a zero bias, in [`dense_fields`] order.
pub fn dense_init(node: &IrNode, rng: &mut StdRng) -> Vec<f64> {
    let (w, nin) = (node.ty.width, node.in_width);
    let limit = glorot(nin, w);
    let mut b: Vec<f64> = (0..w * nin)
        .map(|_| rng.random_range(-limit..limit))
        .collect();
    b.extend(std::iter::repeat_n(0.0, w));
    b
}

/// The dense parameters `p` as the weight matrix and the bias, or the shape error.
pub fn dense_params<'p>(
    node: &IrNode,
    p: &'p [f64],
) -> Result<(Array2<f64>, &'p [f64]), KernelError> {
    let (w, nin) = (node.ty.width, node.in_width);
    if p.len() != w * nin + w {
        return Err(KernelError::ParamShape {
            expected: w * nin + w,
            got: p.len(),
        });
    }
    Ok((crate::backend::kernel::matrix(p, w, nin)?, &p[w * nin..]))
}

/// The reverse of `y = W x + b` given the matrix and input the forward used: writes
/// `∂L/∂W` (row-major) and `∂L/∂b` into `gp`, returns `∂L/∂x = Wᵀ G`.
pub fn dense_backward(
    node: &IrNode,
    wm: &Array2<f64>,
    xr: &Array2<f64>,
    g: &Block,
    gp: &mut [f64],
) -> Block {
    let (w, nin) = (node.ty.width, node.in_width);
    let gr = real(g);
    let gw = gr.dot(&xr.t());
    for ((r, c), v) in gw.indexed_iter() {
        gp[r * nin + c] = *v;
    }
    for (r, row) in gr.outer_iter().enumerate() {
        gp[w * nin + r] = row.sum();
    }
    complex(&wm.t().dot(&gr))
}

/// [`dense_backward`] with the matrix and input a forward kept as a [`DenseAux`]; zero
/// input gradient when the forward kept none.
pub fn dense_backward_aux(node: &IrNode, x: &Block, g: Block, aux: &Aux, gp: &mut [f64]) -> Block {
    match aux_of::<DenseAux>(aux) {
        Some(DenseAux { w, x: xr }) => dense_backward(node, w, xr, &g, gp),
        None => Block::zeros(x.dim()),
    }
}

/// A complex product: `Re W`, then `Im W`; Glorot with the variance split over re/im.
#[derive(Clone, Debug)]
struct ComplexDense {
    dtype: Option<DType>,
}

struct ComplexAux {
    w: Array2<C64>,
    x: Array2<C64>,
}

impl Kernel for ComplexDense {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        let (w, nin) = (node.ty.width, node.in_width);
        vec![("weights_re", w * nin), ("weights_im", w * nin)]
    }

    fn init(&self, node: &IrNode, rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        let (w, nin) = (node.ty.width, node.in_width);
        let l = glorot(nin, w) / 2f64.sqrt();
        Ok((0..2 * w * nin).map(|_| rng.random_range(-l..l)).collect())
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let (w, nin) = (s.node.ty.width, s.node.in_width);
        let (re, im, xz) = rounded_complex(self.dtype.filter(|_| !s.exact), p, w * nin, x)?;
        let wm = complex_matrix(&re, &im, w, nin);
        Ok((wm.dot(&xz), aux(ComplexAux { w: wm, x: xz })))
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
        let Some(ComplexAux { w: wm, x: xz }) = aux_of::<ComplexAux>(aux) else {
            return Ok(Block::zeros(x.dim()));
        };
        // G_W = G X†, G_X = W† G.
        let gw = g.dot(&xz.t().mapv(|c| c.conj()));
        let (w, nin) = (node.ty.width, node.in_width);
        for ((r, c), v) in gw.indexed_iter() {
            gp[r * nin + c] = v.re;
            gp[w * nin + r * nin + c] = v.im;
        }
        Ok(wm.t().mapv(|c| c.conj()).dot(&g))
    }
}

/// A per-element complex scale: real parts, then imaginary parts; 1, 0.
#[derive(Clone, Debug)]
struct Scale {
    dtype: Option<DType>,
}

struct ScaleAux {
    c: Vec<C64>,
    x: Array2<C64>,
}

impl Kernel for Scale {
    fn fields(&self, node: &IrNode) -> Vec<(&'static str, usize)> {
        let w = node.ty.width;
        vec![("re", w), ("im", w)]
    }

    fn init(&self, node: &IrNode, _rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        let w = node.ty.width;
        Ok([vec![1.0; w], vec![0.0; w]].concat())
    }

    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        _spare: Spare,
    ) -> Result<(Block, Aux), KernelError> {
        let (re, im, xz) = rounded_complex(self.dtype.filter(|_| !s.exact), p, s.node.ty.width, x)?;
        let c: Vec<C64> = re.iter().zip(&im).map(|(&a, &b)| C64::new(a, b)).collect();
        let mut y = xz.clone();
        for (mut row, &cj) in y.outer_iter_mut().zip(&c) {
            row.mapv_inplace(|v| v * cj);
        }
        Ok((y, aux(ScaleAux { c, x: xz })))
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
        let mut gx = Block::zeros(x.dim());
        let Some(ScaleAux { c, x: xz }) = aux_of::<ScaleAux>(aux) else {
            return Ok(gx);
        };
        let w = node.ty.width;
        for j in 0..w {
            let mut acc = C64::new(0.0, 0.0);
            for (col, &gv) in g.row(j).iter().enumerate() {
                acc += gv * xz[[j, col]].conj();
                gx[[j, col]] = c[j].conj() * gv;
            }
            gp[j] = acc.re;
            gp[w + j] = acc.im;
        }
        Ok(gx)
    }
}

/// The `rows × cols` complex matrix stored row-major as real parts `re` and imaginary
/// parts `im` (the layout of a complex `MatMul` block).
pub fn complex_matrix(re: &[f64], im: &[f64], rows: usize, cols: usize) -> Array2<C64> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        C64::new(re[r * cols + c], im[r * cols + c])
    })
}

/// A complex parameter block `[Re…, Im…]` of `n` values each and the input `z`, both
/// rounded to the number format `dt`, if any.
fn rounded_complex(
    dt: Option<DType>,
    p: &[f64],
    n: usize,
    z: &Block,
) -> Result<(Vec<f64>, Vec<f64>, Block), KernelError> {
    if p.len() < 2 * n {
        return Err(KernelError::ParamShape {
            expected: 2 * n,
            got: p.len(),
        });
    }
    let (re, im) = p.split_at(n);
    let (mut re, mut im) = (re.to_vec(), im[..n].to_vec());
    let mut xz = z.clone();
    if let Some(dt) = dt {
        quant::quantise(dt, &mut re);
        quant::quantise(dt, &mut im);
        quantise_complex(dt, &mut xz);
    }
    Ok((re, im, xz))
}

fn quantise_array(dt: DType, a: &mut Array2<f64>) {
    match a.as_slice_mut() {
        Some(s) => quant::quantise(dt, s),
        None => {
            let mut v = a.iter().copied().collect::<Vec<_>>();
            quant::quantise(dt, &mut v);
            a.iter_mut().zip(v).for_each(|(o, n)| *o = n);
        }
    }
}

/// Rounds real and imaginary parts (int8: one scale over both).
fn quantise_complex(dt: DType, a: &mut Array2<C64>) {
    let mut v: Vec<f64> = a.iter().flat_map(|c| [c.re, c.im]).collect();
    quant::quantise(dt, &mut v);
    a.iter_mut()
        .zip(v.chunks_exact(2))
        .for_each(|(o, p)| *o = C64::new(p[0], p[1]));
}
