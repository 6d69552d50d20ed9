//! What the checker hands to later stages: resolved, typed, defaults filled in.
//! Lowering, training and search read these and never the raw syntax tree.

use crate::diag::FileId;
use crate::syntax::{CmpOp, Span};
use serde::Serialize;

pub use crate::backend::{BackendKind, BackendSpec, DType, MeshKind};

/// Bits of the converters and phase shifters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Precision {
    pub phase: u32,
    pub dac: u32,
    pub adc: u32,
}

/// Non-idealities of the physical backend (all zero on digital hardware).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Default)]
pub struct Noise {
    /// Gaussian phase error per phase shifter per draw, rad.
    pub phase_sigma: f64,
    /// Beamsplitter angle error ε in r = cos(π/4+ε), rad.
    pub splitter_sigma: f64,
    /// Insertion loss per MZI passed, dB.
    pub loss_per_mzi_db: f64,
    /// Thermal crosstalk coefficient to neighbouring phase shifters.
    pub crosstalk: f64,
    /// Relative Gaussian detector noise.
    pub detector_noise: f64,
}

/// Energy-model coefficients, SI units (J, W, Hz) except the dB fields.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EnergySpec {
    /// Energy per DAC conversion at the profile's DAC bits.
    pub dac: f64,
    /// Energy per ADC conversion at the profile's ADC bits.
    pub adc: f64,
    /// Modulator energy per bit.
    pub modulator: f64,
    pub photodetector: f64,
    pub tia: f64,
    /// Static power per phase shifter.
    pub phase_shifter: f64,
    pub laser_efficiency: f64,
    /// The largest optical power (W) the laser source can deliver into the chip; a segment
    /// that needs more is infeasible (`ir::energy::laser_budget`).
    pub max_laser_power: f64,
    pub sensitivity_dbm: f64,
    pub modulator_loss_db: f64,
    pub clock: f64,
    /// Energy per multiply-accumulate on digital hardware.
    pub mac: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HardwareProfile {
    pub name: String,
    pub extends: Option<String>,
    pub backend: BackendSpec,
    pub precision: Precision,
    pub noise: Noise,
    pub energy: EnergySpec,
    pub ops: Vec<String>,
    #[serde(skip)]
    pub file: FileId,
    #[serde(skip)]
    pub span: Span,
}

impl HardwareProfile {
    pub fn supports(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Electronic values.
    Real,
    /// Optical field amplitudes.
    Complex,
}

impl Domain {
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Real => "real",
            Domain::Complex => "complex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ValueType {
    pub domain: Domain,
    pub width: usize,
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.domain.as_str(), self.width)
    }
}

/// Index of a node in [`ArchGraph::nodes`].
pub type NodeId = usize;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    Input,
    /// Real → complex: DAC + modulator. `implicit` when the checker inserted it.
    Encode {
        mode: EncodeMode,
        implicit: bool,
    },
    /// W = U·diag(σ)·V† on a mesh; a matrix product on digital hardware.
    Linear {
        out: usize,
    },
    /// One n-port mesh.
    Unitary,
    /// A column of attenuators with phases.
    Diag,
    ModRelu {
        bias: f64,
    },
    /// Williamson et al. 2019 electro-optic activation.
    EoActivation {
        alpha: f64,
        gain: f64,
        bias_phase: f64,
    },
    /// |z|² photodetection (+ TIA + ADC).
    Detect,
    Relu,
    Tanh,
    Sigmoid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodeMode {
    Amplitude,
    Phase,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// The name the source gave this value (generated for nested calls and implicit nodes).
    pub name: String,
    pub op: OpKind,
    pub inputs: Vec<NodeId>,
    pub ty: ValueType,
    #[serde(skip)]
    pub span: Span,
}

/// A search operator: what proposes candidates. The one table of their names, used by the
/// checker (`operators [...]`), the engine's built-in proposers, the LLM operators and the
/// CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Mutate,
    Crossover,
    Random,
    LlmMutate,
    LlmCrossover,
    BestOfN,
}

impl Operator {
    pub const ALL: [Operator; 6] = [
        Operator::Mutate,
        Operator::Crossover,
        Operator::Random,
        Operator::LlmMutate,
        Operator::LlmCrossover,
        Operator::BestOfN,
    ];

    /// The name written in a `search` item and stored with each candidate.
    pub const fn name(self) -> &'static str {
        match self {
            Operator::Mutate => "mutate",
            Operator::Crossover => "crossover",
            Operator::Random => "random",
            Operator::LlmMutate => "llm_mutate",
            Operator::LlmCrossover => "llm_crossover",
            Operator::BestOfN => "best_of_n",
        }
    }

    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Written by an LLM (it needs a server); the others are built in.
    pub const fn is_llm(self) -> bool {
        matches!(
            self,
            Operator::LlmMutate | Operator::LlmCrossover | Operator::BestOfN
        )
    }

    /// The names of the operators with `is_llm() == llm`, in table order.
    pub fn names(llm: Option<bool>) -> Vec<&'static str> {
        Operator::ALL
            .into_iter()
            .filter(|o| llm.is_none_or(|l| o.is_llm() == l))
            .map(Operator::name)
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    NoisyAccuracyMean,
    NoisyAccuracyStd,
    NoisyAccuracyP5,
    AccuracyDrop,
    Energy,
    MziCount,
    OpticalDepth,
    Params,
}

impl Metric {
    pub const ALL: &'static [(&'static str, Metric)] = &[
        ("accuracy", Metric::Accuracy),
        ("noisy_accuracy_mean", Metric::NoisyAccuracyMean),
        ("noisy_accuracy_std", Metric::NoisyAccuracyStd),
        ("noisy_accuracy_p5", Metric::NoisyAccuracyP5),
        ("accuracy_drop", Metric::AccuracyDrop),
        ("energy", Metric::Energy),
        ("mzi_count", Metric::MziCount),
        ("optical_depth", Metric::OpticalDepth),
        ("params", Metric::Params),
    ];
    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|m| m.1 == self)
            .map_or("?", |m| m.0)
    }
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().find(|m| m.0 == name).map(|m| m.1)
    }
    /// Metrics that are fractions in [0, 1] (accuracies and their spread).
    pub fn is_fraction(self) -> bool {
        matches!(
            self,
            Metric::Accuracy
                | Metric::NoisyAccuracyMean
                | Metric::NoisyAccuracyP5
                | Metric::AccuracyDrop
                | Metric::NoisyAccuracyStd
        )
    }
    /// Metrics the compiler can decide without training.
    pub fn is_static(self) -> bool {
        matches!(
            self,
            Metric::Energy | Metric::MziCount | Metric::OpticalDepth | Metric::Params
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricConstraint {
    pub metric: Metric,
    #[serde(serialize_with = "ser_cmp")]
    pub op: CmpOp,
    /// In SI units (J for energy).
    pub bound: f64,
    #[serde(skip)]
    pub span: Span,
}

fn ser_cmp<S: serde::Serializer>(op: &CmpOp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(op.as_str())
}

/// A checked architecture: a typed DAG in definition order (inputs first).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchGraph {
    pub name: String,
    pub hardware: String,
    pub nodes: Vec<Node>,
    pub inputs: Vec<NodeId>,
    pub output: NodeId,
    /// Phase bits the architecture asks for (≤ the hardware's), if any.
    pub phase_bits: Option<u32>,
    pub constraints: Vec<MetricConstraint>,
    #[serde(skip)]
    pub file: FileId,
    #[serde(skip)]
    pub span: Span,
}

impl ArchGraph {
    pub fn output_type(&self) -> ValueType {
        self.nodes[self.output].ty
    }
    pub fn input_width(&self) -> usize {
        self.inputs.iter().map(|&i| self.nodes[i].ty.width).sum()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DatasetSpec {
    Builtin {
        name: String,
    },
    Idx {
        images: String,
        labels: String,
    },
    Csv {
        path: String,
        label: String,
        header: bool,
    },
    Npy {
        features: String,
        labels: String,
    },
}

impl DatasetSpec {
    /// The same data set with each file path passed through `f` (the built-in sets have
    /// none): one place that knows which variants hold paths.
    pub fn map_paths(&self, f: impl Fn(&str) -> String) -> DatasetSpec {
        match self {
            DatasetSpec::Builtin { name } => DatasetSpec::Builtin { name: name.clone() },
            DatasetSpec::Idx { images, labels } => DatasetSpec::Idx {
                images: f(images),
                labels: f(labels),
            },
            DatasetSpec::Npy { features, labels } => DatasetSpec::Npy {
                features: f(features),
                labels: f(labels),
            },
            DatasetSpec::Csv {
                path,
                label,
                header,
            } => DatasetSpec::Csv {
                path: f(path),
                label: label.clone(),
                header: *header,
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Encoder {
    /// Average pooling of images by an integer factor.
    Pool {
        factor: usize,
    },
    /// Keep the k×k lowest spatial frequencies of the 2-D DFT: 2k² features (real, imaginary).
    Fft {
        k: usize,
    },
    Standardize,
    MinMax,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Split {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskSpec {
    pub name: String,
    pub dataset: DatasetSpec,
    pub encoders: Vec<Encoder>,
    pub classes: usize,
    /// Feature count after the encoders, when known at compile time.
    pub features: Option<usize>,
    pub optical_encoding: EncodeMode,
    pub split: Split,
    #[serde(skip)]
    pub span: Span,
}

/// Whether an objective is to be made large or small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Objective {
    pub metric: Metric,
    pub direction: Direction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub noise_aware: bool,
}

impl Default for TrainSpec {
    fn default() -> Self {
        // UH-NAS trains every candidate for 20 epochs (King and Leleu 2026). lr 0.01 with
        // the trainer's cosine decay: on digits4 (3 seeds) the MZI net digits_small reaches
        // 0.908 and the same-width fp32 MLP 0.927 (see the book's training chapter).
        TrainSpec {
            epochs: 20,
            batch: 32,
            lr: 0.01,
            noise_aware: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatorWeight {
    pub name: String,
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchSpec {
    pub name: String,
    pub task: String,
    pub hardware: String,
    pub seeds: Vec<String>,
    pub objectives: Vec<Objective>,
    pub constraints: Vec<MetricConstraint>,
    pub population: usize,
    pub offspring: usize,
    pub generations: usize,
    /// Evaluations; defaults to population + offspring × generations.
    pub budget: usize,
    pub train: TrainSpec,
    /// Monte Carlo noise draws per evaluation (Fang et al. 2019 use 20).
    pub draws: usize,
    pub operators: Vec<OperatorWeight>,
    /// Wall-clock limit per candidate evaluation, s.
    pub timeout: f64,
    pub seed: u64,
    /// The `llm { … }` section: settings of the LLM operators (flags beat them).
    pub llm: LlmSpec,
    /// `reference { energy = 5 nJ }`: hypervolume references declared for unbounded
    /// metrics, in SI units (see `search::indicator`).
    pub reference: Vec<(Metric, f64)>,
    /// `seeds { mzi = [a], digital = [b] }`: seeds per backend kind (empty for a plain
    /// list); `seeds` holds those of the search's own hardware.
    pub seeds_by_kind: Vec<(String, Vec<String>)>,
    #[serde(skip)]
    pub span: Span,
}

/// How the LLM operators of a search sample. `None` leaves the choice to the flags, then
/// the defaults (grammar `auto`, a per-operator temperature, concurrency by endpoint).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LlmSpec {
    /// `auto`, `gbnf`, `lark` or `off`: the decoding grammar sent with each request.
    pub grammar: Option<String>,
    /// Sampling temperature for every LLM operator.
    pub temperature: Option<f64>,
    /// LLM calls in flight at once within a generation.
    pub concurrency: Option<usize>,
}

/// Values of the `llm { grammar = … }` setting.
pub const GRAMMAR_MODES: &[&str] = &["auto", "gbnf", "lark", "off"];

/// Everything a file (with its imports) defines, checked.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Checked {
    pub hardware: Vec<HardwareProfile>,
    pub archs: Vec<ArchGraph>,
    pub tasks: Vec<TaskSpec>,
    pub searches: Vec<SearchSpec>,
    pub experiments: Vec<ExperimentSpec>,
}

/// A checked `experiment`: the grid of runs of one search. Each cell (hardware × operator
/// mix × budget) is run `repeats` times, with search seeds `seed`, `seed + 1`, ….
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExperimentSpec {
    pub name: String,
    pub search: String,
    /// Hardware profiles; the search's alone when the experiment names none.
    pub hardware: Vec<String>,
    /// Named operator mixes; the search's own (named `search`) when none are given.
    pub mixes: Vec<OperatorMix>,
    /// Evaluation budgets; the search's when none are given.
    pub budgets: Vec<usize>,
    pub repeats: usize,
    /// Hypervolume references shared by every cell (beat the search's).
    pub reference: Vec<(Metric, f64)>,
    #[serde(skip)]
    pub span: Span,
}

/// One operator mix of an experiment, e.g. `evolution = [mutate(0.7), crossover(0.3)]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatorMix {
    pub name: String,
    pub operators: Vec<OperatorWeight>,
}

impl Checked {
    pub fn hardware(&self, name: &str) -> Option<&HardwareProfile> {
        self.hardware.iter().find(|h| h.name == name)
    }
    pub fn arch(&self, name: &str) -> Option<&ArchGraph> {
        self.archs.iter().find(|a| a.name == name)
    }
    pub fn task(&self, name: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.name == name)
    }
    pub fn search(&self, name: &str) -> Option<&SearchSpec> {
        self.searches.iter().find(|s| s.name == name)
    }
    pub fn experiment(&self, name: &str) -> Option<&ExperimentSpec> {
        self.experiments.iter().find(|e| e.name == name)
    }
}
