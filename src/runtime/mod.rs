//! The executable graph: an IR [`Graph`] with trainable parameters, run forward on a batch
//! (optionally on one noisy hardware instance) and differentiated in reverse mode.
//!
//! # Layout and conventions
//!
//! Every value is a `width × batch` block of `Complex64`, one sample per column (the mesh
//! module's convention); real values keep a zero imaginary part and real ops read only the
//! real part. Gradients follow [`crate::backend::mzi`]: `G = ∂L/∂Re + i ∂L/∂Im`.
//!
//! # Parameters
//!
//! Each node owns one flat block of `f64` in [`Params::blocks`]:
//!
//! | prim | block | init |
//! |---|---|---|
//! | `Mesh` | θ (per MZI, mesh order), φ (per MZI), γ (per port) | Haar-random unitary |
//! | `Attenuate` | σ per attenuator | 1 |
//! | `Diag` | amplitude per mode, then phase | 1, 0 |
//! | `ModRelu` | threshold `b` per mode | the op's `bias` |
//! | `MatMul` real | `W` (out × in, row-major), then bias | Glorot uniform, 0 |
//! | `MatMul` complex | `Re W`, then `Im W` | Glorot (variance split over re/im) |
//! | `Scale` | real parts, then imaginary parts | 1, 0 |
//!
//! Attenuator amplitudes are kept in `[−1, 1]` (a passive MZI cannot amplify; the sign is
//! a π phase its phase shifter supplies): the optimiser projects onto that interval after
//! each step ([`Program::project`]). Starting at σ = 1 with Haar meshes makes each layer a
//! (truncated) unitary, the optical analogue of an orthogonal initialisation, and the loss
//! normalises intensities, so the overall power scale needs no gain.
//!
//! # Kernels
//!
//! Each node runs through a [`Kernel`]: its forward and backward side by side. A backend
//! builds the kernels of its own primitives ([`crate::backend::Backend::kernel`]: meshes in
//! `backend::mzi::prims`, dense products in `backend::digital::prims`); the shared ones
//! (encode, detect, activations) are in `prims`. This module only drives them in graph
//! order and accumulates gradients.
//!
//! # Noise
//!
//! A [`NoiseDraw`] is one hardware instance: a seed plus the model the target's backend
//! gives. Each kernel derives its random streams from the seed and its node index, so a
//! draw is reproducible. Without a draw the hardware is ideal; see each backend's kernels
//! for what a draw does to it. Digital hardware has no noise; its number format applies
//! to every run.
//!
//! # Buffers
//!
//! A training loop runs thousands of mini-batches of the same shapes. Passing a
//! [`Workspace`] to [`Program::forward_tape_in`] and handing each tape back with
//! [`Workspace::recycle`] after the backward pass lets the meshes reuse their realisation,
//! collapse and packing buffers and their output arrays (`MeshLayout::realise_reusing`);
//! results are bit-identical to [`Program::forward_tape`].

pub use crate::backend::kernel::{mix, NoiseDraw};

use crate::backend::kernel::{Aux, Block, Kernel, KernelError, Spare, Step};
use crate::ir::{Domain, Graph, Prim};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;

mod prims;

/// Errors of building or running a program; each says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("the input batch has {got} features per sample, but architecture `{arch}` takes {expected}; encode the task's data to {expected} features or change the input width")]
    InputWidth {
        arch: String,
        expected: usize,
        got: usize,
    },
    #[error("the output gradient is {got:?} (samples × outputs), expected {expected:?}")]
    GradShape {
        expected: (usize, usize),
        got: (usize, usize),
    },
    #[error("parameter block {index} ({name}) has {got} values, expected {expected}; the weights do not belong to this architecture")]
    ParamShape {
        index: usize,
        name: String,
        expected: usize,
        got: usize,
    },
    #[error("{0} non-finite values in the parameters; lower the learning rate")]
    NonFinite(usize),
    /// A backend's own failure (an MZI mesh that cannot be built or decomposed, …).
    #[error("node {node} is a {prim} primitive, which the `{backend}` backend of `{hardware}` cannot run; lower the architecture for this hardware instead of reusing another's graph")]
    NoKernel {
        node: usize,
        prim: String,
        hardware: String,
        backend: &'static str,
    },
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Trainable parameters: one flat block per graph node (empty for parameter-free nodes).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub blocks: Vec<Vec<f64>>,
}

impl Params {
    /// Zeros of the same shape (a gradient accumulator).
    pub fn zeros_like(&self) -> Params {
        Params {
            blocks: self.blocks.iter().map(|b| vec![0.0; b.len()]).collect(),
        }
    }
    /// Number of trainable real values.
    pub fn count(&self) -> usize {
        self.blocks.iter().map(Vec::len).sum()
    }
}

/// How a node executes: data entering at a column offset, or a kernel.
#[derive(Clone, Debug)]
enum Exec {
    Input { offset: usize },
    Kernel(Arc<dyn Kernel>),
}

/// The forward pass's record for [`Program::backward`].
pub struct Tape {
    values: Vec<Block>,
    aux: Vec<Aux>,
    batch: usize,
}

/// Buffers of an earlier forward pass for the next one to reuse ([`Program::forward_tape_in`],
/// [`Program::forward_in`]): a training loop then allocates almost nothing per mini-batch.
/// Results never depend on what a workspace holds.
#[derive(Default)]
pub struct Workspace {
    spare: Option<Tape>,
}

impl Workspace {
    /// Hands a tape, once its backward pass is done, to the next forward pass.
    pub fn recycle(&mut self, tape: Tape) {
        self.spare = Some(tape);
    }

    /// What node `i` had in the recycled tape (its kernel decides what to reuse).
    fn take(&mut self, i: usize) -> Spare {
        let Some(t) = self.spare.as_mut() else {
            return Spare::default();
        };
        Spare {
            aux: t.aux.get_mut(i).and_then(Option::take),
            value: t.values.get_mut(i).map(std::mem::take),
        }
    }
}

/// An IR graph made executable, with its parameters.
#[derive(Clone, Debug)]
pub struct Program {
    graph: Graph,
    exec: Vec<Exec>,
    /// Exact f64 arithmetic: number formats and converters off (see
    /// [`with_exact_arithmetic`](Self::with_exact_arithmetic)).
    exact: bool,
    input_width: usize,
    pub params: Params,
}

impl Program {
    /// Builds the program and initialises its parameters from `seed` (see the module docs).
    /// The graph carries its target, so the graph and the hardware cannot disagree.
    pub fn new(graph: &Graph, seed: u64) -> Result<Program, RuntimeError> {
        let target = &graph.target;
        let backend = target.backend.backend();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut exec = Vec::with_capacity(graph.nodes.len());
        let mut blocks = Vec::with_capacity(graph.nodes.len());
        let mut offsets = vec![usize::MAX; graph.nodes.len()];
        let mut offset = 0;
        for &i in &graph.inputs {
            offsets[i] = offset;
            offset += graph.nodes[i].ty.width;
        }
        for (i, n) in graph.nodes.iter().enumerate() {
            if let Prim::Input = n.prim {
                exec.push(Exec::Input { offset: offsets[i] });
                blocks.push(vec![]);
                continue;
            }
            // Lowering gives every primitive a kernel (the backend's, else a shared one); a
            // graph built or edited by hand may pair a primitive with the wrong backend.
            let k = match backend.kernel(target, n) {
                Some(k) => k.map_err(|e| node_err(graph, i, e))?,
                None => prims::kernel(&n.prim).ok_or_else(|| RuntimeError::NoKernel {
                    node: i,
                    prim: format!("{:?}", n.prim),
                    hardware: graph.hardware.clone(),
                    backend: target.backend.kind().as_str(),
                })?,
            };
            blocks.push(k.init(n, &mut rng).map_err(|e| node_err(graph, i, e))?);
            exec.push(Exec::Kernel(k));
        }
        Ok(Program {
            graph: graph.clone(),
            exec,
            exact: false,
            input_width: offset,
            params: Params { blocks },
        })
    }

    /// Turns off number formats and converters (exact f64 arithmetic). For gradient checks:
    /// rounding is piecewise constant, so finite differences through it are meaningless.
    pub fn with_exact_arithmetic(mut self) -> Self {
        self.exact = true;
        self
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Features per sample the program takes.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Width of the score vector.
    pub fn output_width(&self) -> usize {
        self.graph.nodes[self.graph.output].ty.width
    }

    /// Whether the scores are detected optical intensities (≥ 0) rather than logits.
    pub fn outputs_intensities(&self) -> bool {
        let o = &self.graph.nodes[self.graph.output];
        matches!(o.prim, Prim::Detect) || o.ty.domain == Domain::Complex
    }

    /// The kernel of node `i` (none for inputs).
    pub fn kernel(&self, i: usize) -> Option<&dyn Kernel> {
        match self.exec.get(i)? {
            Exec::Kernel(k) => Some(k.as_ref()),
            Exec::Input { .. } => None,
        }
    }

    /// Named fields of node `i`'s parameter block, in storage order, with their lengths
    /// (each kernel's layout; used to write and read weight files).
    pub fn param_fields(&self, i: usize) -> Vec<(&'static str, usize)> {
        match (self.kernel(i), self.graph.nodes.get(i)) {
            (Some(k), Some(node)) => k.fields(node),
            _ => vec![],
        }
    }

    /// Replaces the parameters, checking every block's length.
    pub fn set_params(&mut self, p: Params) -> Result<(), RuntimeError> {
        check_like(&self.graph, &self.params, &p)?;
        let bad = p.blocks.iter().flatten().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(RuntimeError::NonFinite(bad));
        }
        self.params = p;
        Ok(())
    }

    /// Projects parameters onto their physical range (e.g. attenuator amplitudes into
    /// [−1, 1]); each kernel knows its own.
    pub fn project(&mut self) {
        for (e, b) in self.exec.iter().zip(&mut self.params.blocks) {
            if let Exec::Kernel(k) = e {
                k.project(b);
            }
        }
    }

    /// Scores (`samples × outputs`) for features `x` (`samples × input_width`, a row per
    /// sample), on the ideal hardware or on the instance `draw`.
    pub fn forward(
        &self,
        x: ArrayView2<f64>,
        draw: Option<&NoiseDraw>,
    ) -> Result<Array2<f64>, RuntimeError> {
        Ok(self.run(x, draw, false, &mut Workspace::default())?.0)
    }

    /// [`forward`](Self::forward) reusing (and refilling) the buffers in `ws`.
    pub fn forward_in(
        &self,
        x: ArrayView2<f64>,
        draw: Option<&NoiseDraw>,
        ws: &mut Workspace,
    ) -> Result<Array2<f64>, RuntimeError> {
        let (scores, tape) = self.run(x, draw, false, ws)?;
        ws.recycle(tape);
        Ok(scores)
    }

    /// [`forward`](Self::forward), also returning the tape for [`backward`](Self::backward).
    pub fn forward_tape(
        &self,
        x: ArrayView2<f64>,
        draw: Option<&NoiseDraw>,
    ) -> Result<(Array2<f64>, Tape), RuntimeError> {
        self.run(x, draw, true, &mut Workspace::default())
    }

    /// [`forward_tape`](Self::forward_tape) reusing the buffers in `ws`; hand the tape back
    /// with [`Workspace::recycle`] after the backward pass.
    pub fn forward_tape_in(
        &self,
        x: ArrayView2<f64>,
        draw: Option<&NoiseDraw>,
        ws: &mut Workspace,
    ) -> Result<(Array2<f64>, Tape), RuntimeError> {
        self.run(x, draw, true, ws)
    }

    /// The forward pass; with `for_backward`, kernels also record what their reverse pass
    /// needs.
    fn run(
        &self,
        x: ArrayView2<f64>,
        draw: Option<&NoiseDraw>,
        for_backward: bool,
        ws: &mut Workspace,
    ) -> Result<(Array2<f64>, Tape), RuntimeError> {
        if x.ncols() != self.input_width {
            return Err(RuntimeError::InputWidth {
                arch: self.graph.arch.clone(),
                expected: self.input_width,
                got: x.ncols(),
            });
        }
        let batch = x.nrows();
        let n = self.graph.nodes.len();
        let mut values: Vec<Block> = Vec::with_capacity(n);
        let mut aux = Vec::with_capacity(n);
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let w = node.ty.width;
            let input = node.inputs.first().map(|&j| &values[j]);
            let (v, a) = match (&self.exec[i], input) {
                (Exec::Input { offset }, _) => {
                    let cols = x.slice(ndarray::s![.., *offset..*offset + w]);
                    (cols.t().mapv(|v| C64::new(v, 0.0)), None)
                }
                // Lowering gives every non-input node an input; without one, zeros.
                (_, None) => (Array2::zeros((w, batch)), None),
                (Exec::Kernel(k), Some(z)) => {
                    let step = Step {
                        index: i,
                        node,
                        batch,
                        draw,
                        exact: self.exact,
                        for_backward,
                    };
                    k.forward(&step, z, &self.params.blocks[i], ws.take(i))
                        .map_err(|e| node_err(&self.graph, i, e))?
                }
            };
            values.push(v);
            aux.push(a);
        }
        let out = &values[self.graph.output];
        let scores = if self.graph.nodes[self.graph.output].ty.domain == Domain::Complex {
            out.t().mapv(|c| c.norm_sqr())
        } else {
            out.t().mapv(|c| c.re)
        };
        Ok((scores, Tape { values, aux, batch }))
    }

    /// Reverse mode: `∂L/∂params` given `∂L/∂scores` (`samples × outputs`) of the forward pass
    /// that made `tape`. Each kernel chains through what its forward ran on (meshes through
    /// their noisy realisation to the nominal phases; rounding straight through).
    pub fn backward(&self, tape: &Tape, g_scores: ArrayView2<f64>) -> Result<Params, RuntimeError> {
        let o = self.graph.output;
        let expected = (tape.batch, self.output_width());
        if g_scores.dim() != expected {
            return Err(RuntimeError::GradShape {
                expected,
                got: g_scores.dim(),
            });
        }
        let n = self.graph.nodes.len();
        let mut grads: Vec<Option<Block>> = vec![None; n];
        let mut pg = self.params.zeros_like();
        grads[o] = Some(if self.graph.nodes[o].ty.domain == Domain::Complex {
            // scores = |z|²: G_z = 2 g z.
            let z = &tape.values[o];
            Array2::from_shape_fn(z.dim(), |(r, c)| z[[r, c]] * (2.0 * g_scores[[c, r]]))
        } else {
            g_scores.t().mapv(|g| C64::new(g, 0.0))
        });
        for i in (0..n).rev() {
            let Some(g) = grads[i].take() else { continue };
            let node = &self.graph.nodes[i];
            let (Some(&src), Exec::Kernel(k)) = (node.inputs.first(), &self.exec[i]) else {
                continue;
            };
            let gx = k
                .backward(
                    node,
                    &tape.values[src],
                    &tape.values[i],
                    g,
                    &tape.aux[i],
                    &self.params.blocks[i],
                    &mut pg.blocks[i],
                )
                .map_err(|e| node_err(&self.graph, i, e))?;
            match &mut grads[src] {
                Some(acc) => *acc += &gx,
                slot @ None => *slot = Some(gx),
            }
        }
        Ok(pg)
    }
}

/// A kernel's error at node `i`.
fn node_err(graph: &Graph, i: usize, e: KernelError) -> RuntimeError {
    match e {
        KernelError::ParamShape { expected, got } => shape_err(i, &graph.nodes[i], expected, got),
        e => RuntimeError::Kernel(e),
    }
}

fn shape_err(i: usize, node: &crate::ir::IrNode, expected: usize, got: usize) -> RuntimeError {
    RuntimeError::ParamShape {
        index: i,
        name: node.name.clone(),
        expected,
        got,
    }
}

fn check_like(graph: &Graph, a: &Params, b: &Params) -> Result<(), RuntimeError> {
    if a.blocks.len() != b.blocks.len() {
        return Err(RuntimeError::ParamShape {
            index: b.blocks.len(),
            name: "(block count)".into(),
            expected: a.blocks.len(),
            got: b.blocks.len(),
        });
    }
    for (i, (x, y)) in a.blocks.iter().zip(&b.blocks).enumerate() {
        if x.len() != y.len() {
            return Err(shape_err(i, &graph.nodes[i], x.len(), y.len()));
        }
    }
    Ok(())
}

/// Rows of `x` picked by `idx` (a mini-batch). Panics if an index is out of bounds, as
/// `select` does; indices come from a sampler over `x`'s rows. Fastest on a row-major `x`.
pub fn gather_rows(x: ArrayView2<f64>, idx: &[usize]) -> Array2<f64> {
    let mut out = Array2::zeros((idx.len(), x.ncols()));
    for (mut row, &i) in out.outer_iter_mut().zip(idx) {
        row.assign(&x.row(i));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
