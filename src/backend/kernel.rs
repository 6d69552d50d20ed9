//! Runtime kernels: how one IR primitive runs, its forward and its backward side by side.
//!
//! A backend builds the kernels of the primitives it lowers to
//! ([`Backend::kernel`](super::Backend::kernel)); the runtime builds the rest (input,
//! encode, detect and the element-wise activations `ir::lower` emits itself) and drives
//! them all in graph order. Values are `width × batch` blocks of `Complex64`, one sample
//! per column; real values keep a zero imaginary part. Gradients follow
//! [`crate::backend::mzi`]: `G = ∂L/∂Re + i ∂L/∂Im`.

use crate::ir::{IrNode, Target};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// One value of the graph on a batch: `width × batch`, a sample per column.
pub type Block = Array2<C64>;

/// What a kernel's forward pass keeps for its backward pass (its own type, boxed).
pub type Aux = Option<Box<dyn Any + Send>>;

/// A kernel's failure; the runtime adds which node it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("parameter block has {got} values, expected {expected}")]
    ParamShape { expected: usize, got: usize },
    /// The backend's own numerics failed (a mesh decomposition, a non-finite phase): which
    /// backend, and its message, which says what was wrong and how to fix it. A string, so
    /// that the error every kernel shares names no backend's types.
    #[error("{message}")]
    Device {
        backend: &'static str,
        message: String,
    },
}

/// A backend's own noise model, as a [`NoiseDraw`] carries it: only the backend's kernels
/// know its type, and read it back with [`NoiseDraw::model`].
pub type NoiseModel = Arc<dyn Any + Send + Sync>;

/// One hardware instance drawn from a profile's noise: a seed plus what the target's
/// backend gives ([`Backend::noise_model`](super::Backend::noise_model)). Every backend
/// shares this type, so the model it carries is opaque here; kernels derive their random
/// streams from the seed with [`NoiseDraw::rng`].
#[derive(Clone, Debug)]
pub struct NoiseDraw {
    /// Seeds every random number of this instance.
    pub seed: u64,
    /// The backend's own model (the MZI backend's mesh non-idealities), if it has one.
    pub model: Option<NoiseModel>,
    /// Relative Gaussian detector noise (the shared `detect` kernel's).
    pub detector_sigma: f64,
}

impl NoiseDraw {
    /// The profile's noise with phases quantised to `phase_bits`, seeded from `rng`.
    pub fn sample<R: Rng + ?Sized>(target: &Target, phase_bits: u32, rng: &mut R) -> Self {
        let seed = rng.random();
        let (model, detector_sigma) = target.backend.backend().noise_model(target, phase_bits);
        NoiseDraw {
            seed,
            model,
            detector_sigma,
        }
    }

    /// The backend's model as its type, or `None` if the draw carries none or another.
    pub fn model<T: Any>(&self) -> Option<&T> {
        self.model.as_deref()?.downcast_ref::<T>()
    }

    /// The random stream of node `node`, sub-stream `salt`: independent of every other.
    pub fn rng(&self, node: usize, salt: u64) -> StdRng {
        StdRng::seed_from_u64(mix(mix(self.seed, node as u64), salt))
    }
}

/// SplitMix64 finaliser of `a` and `b`: independent seeds for sub-streams.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a kernel call knows besides its operands.
pub struct Step<'a> {
    /// The node's index in the graph (seeds its noise streams).
    pub index: usize,
    pub node: &'a IrNode,
    pub batch: usize,
    /// The hardware instance, or `None` for ideal hardware.
    pub draw: Option<&'a NoiseDraw>,
    /// Exact f64 arithmetic: number formats and converters off (gradient checks).
    pub exact: bool,
    /// The forward pass will be differentiated (meshes then keep what their reverse needs).
    pub for_backward: bool,
}

/// The buffers this node had in an earlier forward pass, for the kernel to reuse.
#[derive(Default)]
pub struct Spare {
    pub aux: Aux,
    pub value: Option<Block>,
}

impl Spare {
    /// The old value if it has shape `dim`, else zeros.
    pub fn value(&mut self, dim: (usize, usize)) -> Block {
        match self.value.take() {
            Some(v) if v.dim() == dim => v,
            _ => Block::zeros(dim),
        }
    }
}

/// One primitive's execution. Parameters are one flat `f64` block per node.
pub trait Kernel: Debug + Send + Sync {
    /// Named fields of the parameter block, in storage order, with their lengths (the
    /// layout weight files are written and read in).
    fn fields(&self, _node: &IrNode) -> Vec<(&'static str, usize)> {
        Vec::new()
    }

    /// The initial parameter block. Kernels draw from `rng` in graph order, so the same
    /// seed initialises the same graph identically.
    fn init(&self, _node: &IrNode, _rng: &mut StdRng) -> Result<Vec<f64>, KernelError> {
        Ok(Vec::new())
    }

    /// Projects parameters onto their physical range after an optimiser step.
    fn project(&self, _p: &mut [f64]) {}

    /// The output for input `x` (the node's first input) with parameters `p`.
    fn forward(
        &self,
        s: &Step<'_>,
        x: &Block,
        p: &[f64],
        spare: Spare,
    ) -> Result<(Block, Aux), KernelError>;

    /// Given the output gradient `g`, writes `∂L/∂p` into `gp` and returns `∂L/∂x`;
    /// `x`, `y` and `aux` are what [`Kernel::forward`] saw and made.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        node: &IrNode,
        x: &Block,
        y: &Block,
        g: Block,
        aux: &Aux,
        p: &[f64],
        gp: &mut [f64],
    ) -> Result<Block, KernelError>;
}

/// The aux a kernel's forward made, as its type, or `None` if the forward made another.
pub fn aux_of<T: 'static>(aux: &Aux) -> Option<&T> {
    aux.as_ref()?.downcast_ref::<T>()
}

/// A boxed aux.
pub fn aux<T: Any + Send>(t: T) -> Aux {
    Some(Box::new(t))
}

/// The `rows × cols` real matrix stored row-major at the start of `p`.
pub fn matrix(p: &[f64], rows: usize, cols: usize) -> Result<Array2<f64>, KernelError> {
    let n = rows * cols;
    let got = p.len();
    p.get(..n)
        .and_then(|s| Array2::from_shape_vec((rows, cols), s.to_vec()).ok())
        .ok_or(KernelError::ParamShape { expected: n, got })
}

/// Real parts of a block.
pub fn real(x: &Block) -> Array2<f64> {
    x.mapv(|c| c.re)
}

/// A real matrix as a block.
pub fn complex(x: &Array2<f64>) -> Block {
    x.mapv(|v| C64::new(v, 0.0))
}
