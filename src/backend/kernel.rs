//! Runtime kernels: how one IR primitive runs, its forward and its backward side by side.
//!
//! A backend builds the kernels of the primitives it lowers to
//! ([`Backend::kernel`](super::Backend::kernel)); the runtime builds the rest (input,
//! encode, detect and the element-wise activations `ir::lower` emits itself) and drives
//! them all in graph order. Values are `width × batch` blocks of `Complex64`, one sample
//! per column; real values keep a zero imaginary part. Gradients follow
//! [`crate::backend::mzi`]: `G = ∂L/∂Re + i ∂L/∂Im`.

use super::mzi::{MziError, NonIdeal};
use crate::ir::{IrNode, Target};
use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::any::Any;
use std::fmt::Debug;

/// One value of the graph on a batch: `width × batch`, a sample per column.
pub type Block = Array2<C64>;

/// What a kernel's forward pass keeps for its backward pass (its own type, boxed).
pub type Aux = Option<Box<dyn Any + Send>>;

/// A kernel's failure; the runtime adds which node it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("parameter block has {got} values, expected {expected}")]
    ParamShape { expected: usize, got: usize },
    #[error(transparent)]
    Mzi(#[from] MziError),
}

/// One hardware instance drawn from a profile's noise: a seed plus the model the target's
/// backend gives ([`Backend::noise_model`](super::Backend::noise_model)). Kernels derive
/// their random streams from the seed with [`NoiseDraw::rng`].
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseDraw {
    /// Seeds every random number of this instance.
    pub seed: u64,
    /// Mesh non-idealities (phase bits, phase noise, splitters, loss, crosstalk).
    pub mesh: NonIdeal,
    /// Relative Gaussian detector noise.
    pub detector_sigma: f64,
}

impl NoiseDraw {
    /// The profile's noise with phases quantised to `phase_bits`, seeded from `rng`.
    pub fn sample<R: Rng + ?Sized>(target: &Target, phase_bits: u32, rng: &mut R) -> Self {
        let seed = rng.random();
        let (mesh, detector_sigma) = target.backend.backend().noise_model(target, phase_bits);
        NoiseDraw {
            seed,
            mesh,
            detector_sigma,
        }
    }

    /// The calibrated gain that undoes the nominal insertion loss of `mzis` MZIs in series.
    ///
    /// Uniform loss is a known power scale: the laser power [`crate::ir::energy`] charges
    /// for grows with the optical depth exactly to bring the light back to the detectors'
    /// sensitivity, and each stage's electronics (detector gain, activation threshold)
    /// are set for the power that reaches them. So a simulated instance applies this gain
    /// per mesh and per attenuator, and what remains of insertion loss is its
    /// path-dependent part (modes that skip MZIs at a mesh's edges, Reck's unequal paths).
    /// Without it an activation threshold set in loss-free units would see a field ~33 dB
    /// weaker on `mzi_worst` and cut every sample to zero.
    pub fn loss_gain(&self, mzis: usize) -> f64 {
        self.mesh
            .amplitude()
            .powi(-(mzis.min(i32::MAX as usize) as i32))
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

    /// For callers that need a backend's own view of a kernel (mesh phases).
    fn as_any(&self) -> &dyn Any;
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
