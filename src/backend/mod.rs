//! The backend interface: everything that depends on *which* hardware a graph runs on is
//! asked of a [`Backend`], and only the modules under `src/backend/` answer by kind.
//!
//! A backend is a unit struct implementing the trait with a spec type of its own (its
//! checked `backend NAME { … }` block), registered by one line of `registry!` below, which
//! makes [`ALL`], [`BackendKind`] and [`BackendSpec`]; a profile's [`BackendSpec`] finds
//! its backend with [`of`]. Adding a backend is its module and that line; the trait's
//! required methods are the list of what it must say. The tidy test
//! `tests::no_backend_matches_outside_backend` holds the rest of the crate to asking.
//!
//! A backend owns: the schema of its profile block (fields, ranges, defaults, what is
//! required), the ops it offers and their result domains (the checker and the
//! decoding grammar ask), the width-limit vocabulary of its diagnostics, the lowering of
//! its ops to primitives with their static costs, the energy of those costs, the runtime
//! kernels of its primitives with their number format ([`kernel`]), the noise model a draw
//! samples, the space its parameters train in ([`WeightSpace`], when not their own), and
//! the one-paragraph description the LLM prompt shows.

pub mod aimc;
pub mod digital;
pub mod kernel;
pub mod mzi;

use crate::check::model::{Domain, Node};
use crate::check::ops::{self, OpSpec};
pub use crate::check::units::Dim;
use crate::ir::energy::{ComponentEnergy, SegmentEnergy};
use crate::ir::{Cost, Graph, IrNode, Lowering, Target};
use kernel::{Kernel, KernelError, NoiseModel};
use serde::Serialize;
use std::sync::Arc;

/// Widest layer any backend may declare: beyond this a dense simulation is meaningless here.
pub const MAX_WIDTH: u64 = 4096;

/// One field of a profile's `backend NAME { … }` block.
#[derive(Clone, Copy, Debug)]
pub struct SchemaField {
    pub name: &'static str,
    pub kind: FieldKind,
    /// What it sets, its default and the default's source (for the book and the prompt).
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub enum FieldKind {
    /// One of a set of names.
    Choice(&'static [&'static str]),
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
    /// A quantity of dimension `dim` in `min..=max` (SI units); `why` says why the range
    /// is what it is, shown with a value outside it.
    Real {
        dim: Dim,
        min: f64,
        max: f64,
        why: &'static str,
    },
}

/// A field's checked value.
#[derive(Clone, Copy, Debug)]
pub enum FieldValue<'a> {
    Choice(&'a str),
    Count(u64),
    /// In SI units.
    Real(f64),
}

/// A required field a `backend` block left unset (and no parent profile gave).
#[derive(Clone, Debug)]
pub struct MissingField {
    pub message: &'static str,
    pub label: &'static str,
    pub help: &'static str,
}

/// One kind of hardware. Implemented by unit structs; see [`ALL`] and [`of`].
pub trait Backend: Sync {
    /// The kind, as written in a profile's `backend NAME { … }` block.
    fn kind(&self) -> BackendKind;

    /// The block as diagnostics name it (`an `mzi` backend`).
    fn block_name(&self) -> &'static str;

    /// The fields of its `backend NAME { … }` block.
    fn fields(&self) -> &'static [SchemaField];

    /// The spec a block describes: `set` (checked values of its fields, in order) on top
    /// of `inherited` (the parent profile's spec, whatever its kind) or the defaults.
    fn spec(
        &self,
        inherited: Option<BackendSpec>,
        set: &[(&str, FieldValue<'_>)],
    ) -> Result<BackendSpec, MissingField>;

    /// Computes on light: values may be complex fields, real inputs are modulated onto
    /// light (DAC + modulator), an output must be detected, meshes need laser power and
    /// the profile's noise (phase error, loss, crosstalk) applies. False for electronics.
    fn optical(&self) -> bool;

    /// Whether a profile must give `energy { mac = … }` (its products are charged per
    /// digital MAC). By default electronics do.
    fn requires_mac_energy(&self) -> bool {
        !self.optical()
    }

    /// Whether this backend reads `field` of the shared profile section `section`
    /// (`precision`, `noise` or `energy`). A profile that writes a field its backend never
    /// reads is warned (`uh::check::ignored`): it would claim hardware that no simulation
    /// or energy figure uses. By default every field is read.
    fn reads(&self, _section: &str, _field: &str) -> bool {
        true
    }

    /// Where this backend takes what an ignored field of `section` would have said: the
    /// help line of `uh::check::ignored`.
    fn ignored_hint(&self, _section: &str) -> &'static str {
        "remove the fields"
    }

    /// Whether the backend can perform `op` at all (a profile lists the subset it has).
    fn offers(&self, op: &OpSpec) -> bool;

    /// The domain of `op`'s result for an input in `input`, or `None` where the checker
    /// refuses the pairing. See [`ops::result_domain`].
    fn result_domain(&self, op: &str, input: Domain) -> Option<Domain> {
        ops::common_result_domain(op, input)
    }

    /// The words of the width-limit diagnostic: the device (`mesh`) and its unit (`ports`),
    /// and the profile field that sets the limit (`max_ports`).
    fn width_words(&self) -> (&'static str, &'static str, &'static str);

    /// The backend in one sentence, for the compact LLM prompt.
    fn describe(&self, spec: &BackendSpec) -> String;

    /// Lowers one node whose op is hardware-specific (`input`, `encode`, `linear`,
    /// `unitary`, `diag`, `detect`) to primitives with their static costs; returns the
    /// IR node holding its value. Element-wise activations are lowered by `ir::lower`.
    fn lower(
        &self,
        spec: &BackendSpec,
        n: &Node,
        ins: Vec<usize>,
        in_width: usize,
        out: &mut Lowering<'_>,
    ) -> usize;

    /// Energy per inference of one node's static cost on `target` (laser power excepted).
    fn node_energy(&self, hw: &Target, cost: &Cost) -> ComponentEnergy;

    /// The optical segments of a graph with their laser power (from the graph's target);
    /// empty for electronics.
    fn laser_segments(&self, g: &Graph) -> Vec<SegmentEnergy>;

    /// The runtime kernel of `node` if its primitive is one of this backend's own (`None`
    /// for the shared ones: encode, detect, element-wise activations). The kernel holds
    /// its forward and backward together, and what the target says about noise and number
    /// format; see [`kernel`].
    fn kernel(
        &self,
        target: &Target,
        node: &IrNode,
    ) -> Option<Result<Arc<dyn Kernel>, KernelError>>;

    /// The noise model one hardware instance is drawn from (the runtime's `NoiseDraw`
    /// adds the seed): the backend's own model, which only its kernels read (phases are
    /// quantised to `phase_bits` where the backend has phases), and the relative detector
    /// noise of the shared `detect` kernel. By default no model of its own and the
    /// profile's `detector_noise`.
    fn noise_model(&self, target: &Target, _phase_bits: u32) -> (Option<NoiseModel>, f64) {
        (None, target.noise.detector_noise)
    }

    /// The space this backend's parameters of `graph` (currently `blocks`) train better in,
    /// and the twin's initial parameters (computing what `blocks` compute), or `None` when
    /// they train directly, as most do. Asked by `train` before clean training.
    fn weight_space(
        &self,
        _graph: &Graph,
        _blocks: &[Vec<f64>],
    ) -> Result<Option<WeightTwin>, KernelError> {
        Ok(None)
    }
}

/// What [`Backend::weight_space`] offers: the space, and the twin graph's initial
/// parameters (one block per node), computing what the hardware's parameters compute.
pub type WeightTwin = (Box<dyn WeightSpace>, Vec<Vec<f64>>);

/// A reparametrisation a backend's parameters train better in: a twin graph whose
/// parameters an optimiser moves freely, kept physical by [`project`](Self::project) and
/// mapped back onto the hardware's parameters by [`program`](Self::program) (MZI: each
/// `linear` as a complex matrix of spectral norm ≤ 1, programmed onto phases by SVD).
/// It works on graphs and parameter blocks, so the runtime stays above the backend.
pub trait WeightSpace: Send + std::fmt::Debug {
    /// The twin graph trained instead of the hardware graph (same target).
    fn graph(&self) -> &Graph;

    /// Brings the twin's parameters back into the physical set after an optimiser step.
    fn project(&mut self, twin: &mut [Vec<f64>]);

    /// The hardware graph's parameters that compute what `twin` computes; `hardware` (the
    /// current ones) gives the blocks the twin leaves unchanged. May project `twin` first,
    /// more precisely than [`project`](Self::project).
    fn program(
        &mut self,
        twin: &mut [Vec<f64>],
        hardware: &[Vec<f64>],
    ) -> Result<Vec<Vec<f64>>, KernelError>;
}

/// The registry: one line per backend (its kind, its name in `backend NAME { … }`, its unit
/// struct and its checked spec). Generates [`ALL`], [`BackendKind`], [`BackendSpec`] and the
/// lookups between them, so a backend is registered in one place.
macro_rules! registry {
    ($($kind:ident: $name:literal => $unit:expr, $spec:ty;)*) => {
        /// Every backend, in the order documentation lists them.
        pub const ALL: &[&dyn Backend] = &[$(&$unit),*];

        /// The backend of a kind.
        pub fn by_kind(kind: BackendKind) -> &'static dyn Backend {
            match kind {
                $(BackendKind::$kind => &$unit,)*
            }
        }

        /// A profile's `backend NAME { … }` block, checked: the named backend's own spec.
        #[derive(Clone, Copy, Debug, PartialEq, Serialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum BackendSpec {
            $($kind($spec),)*
        }

        impl BackendSpec {
            pub fn kind(&self) -> BackendKind {
                match self {
                    $(BackendSpec::$kind(_) => BackendKind::$kind,)*
                }
            }
            /// The widest layer the profile takes.
            pub fn max_width(&self) -> usize {
                match self {
                    $(BackendSpec::$kind(s) => s.max_width(),)*
                }
            }
        }

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum BackendKind {
            $($kind,)*
        }

        impl BackendKind {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(BackendKind::$kind => $name,)*
                }
            }
        }
    };
}

registry! {
    Mzi: "mzi" => mzi::Mzi, mzi::MziSpec;
    Digital: "digital" => digital::Digital, digital::DigitalSpec;
    Aimc: "aimc" => aimc::Aimc, aimc::AimcSpec;
}

/// The backend a profile's `backend NAME { … }` block names.
pub fn by_name(name: &str) -> Option<&'static dyn Backend> {
    ALL.iter().copied().find(|b| b.kind().as_str() == name)
}

/// The names of every backend (`mzi`, `digital`).
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.kind().as_str()).collect()
}

/// The backend a profile's spec names.
pub fn of(spec: &BackendSpec) -> &'static dyn Backend {
    by_kind(spec.kind())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshKind {
    /// Rectangular, depth N (Clements et al., Optica 2016).
    Clements,
    /// Triangular, depth 2N−3 (Reck et al., PRL 1994).
    Reck,
}

impl MeshKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MeshKind::Clements => "clements",
            MeshKind::Reck => "reck",
        }
    }
    /// Optical depth (MZI columns) of an n-port mesh.
    pub fn depth(self, n: usize) -> usize {
        match self {
            MeshKind::Clements => n,
            MeshKind::Reck => (2 * n).saturating_sub(3).max(usize::from(n >= 2)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    Fp32,
    Fp16,
    Int8,
}

impl DType {
    pub fn as_str(self) -> &'static str {
        match self {
            DType::Fp32 => "fp32",
            DType::Fp16 => "fp16",
            DType::Int8 => "int8",
        }
    }
}

impl BackendSpec {
    /// The backend this spec names.
    pub fn backend(&self) -> &'static dyn Backend {
        of(self)
    }
}
