//! Lowering: a checked architecture becomes a graph of backend primitives with typed
//! ports and explicit conversions, each node carrying the numbers the energy model and
//! the simulator need. The IR is what gets hashed for deduplication, costed, and run.

mod constraints;
pub mod energy;
mod hash;

/// The value types of the IR's ports (defined by the checker, which produces them).
pub use crate::check::model::{Domain, EncodeMode, ValueType};
pub use constraints::{decide_constraints, decide_laser_budget};
pub use energy::{energy_report, EnergyReport};
pub use hash::{canonical_form, structural_hash, text_hash};

use crate::check::model::*;
use crate::syntax::Span;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "prim", rename_all = "snake_case")]
pub enum Prim {
    /// Data enters: electronic values, or a field already on light.
    Input,
    /// DAC + modulator per value: electronics → light.
    Encode {
        mode: EncodeMode,
    },
    /// One unitary mesh of MZIs (a V†, U or a free-standing unitary).
    Mesh {
        layout: MeshKind,
    },
    /// diag(σ) between the meshes of an SVD-mapped layer: min(n, m) attenuating MZIs.
    /// Ports beyond min(n, m) are dropped (n > m) or dark (m > n).
    Attenuate,
    /// A column of attenuators with phase shifters (the `diag` op).
    Diag,
    ModRelu {
        bias: f64,
    },
    EoActivation {
        alpha: f64,
        gain: f64,
        bias_phase: f64,
    },
    /// Photodetection |z|² + TIA + ADC per port: light → electronics.
    Detect,
    /// A dense product on digital hardware (complex when the value is a field).
    MatMul {
        dtype: DType,
        complex: bool,
    },
    /// A per-element complex scale on digital hardware (`diag`).
    Scale {
        dtype: DType,
    },
    Relu,
    Tanh,
    Sigmoid,
    /// A primitive only its backend knows: the backend lowers to it and runs it with its
    /// own kernel ([`crate::backend::Backend::kernel`]); `name` is how dumps, hashes and
    /// weight files write it.
    Own {
        name: &'static str,
    },
}

/// What a node costs, counted from its shape: the energy model's inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub mzis: usize,
    pub phase_shifters: usize,
    /// MZI columns light crosses in this node.
    pub optical_columns: usize,
    pub dac: usize,
    pub adc: usize,
    pub macs: usize,
    pub params: usize,
    /// Memory arrays (crossbar tiles) the node's weights occupy.
    pub tiles: usize,
    /// Array reads (matrix-vector products) per inference.
    pub mvms: usize,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.mzis += o.mzis;
        self.phase_shifters += o.phase_shifters;
        self.optical_columns += o.optical_columns;
        self.dac += o.dac;
        self.adc += o.adc;
        self.macs += o.macs;
        self.params += o.params;
        self.tiles += o.tiles;
        self.mvms += o.mvms;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IrNode {
    /// Source name, with `.V`, `.sigma`, `.U` for the parts of a lowered layer.
    pub name: String,
    #[serde(flatten)]
    pub prim: Prim,
    pub inputs: Vec<usize>,
    pub in_width: usize,
    pub ty: ValueType,
    pub cost: Cost,
    /// Index of the checked-graph node this came from.
    pub source: NodeId,
    #[serde(skip)]
    pub span: Span,
}

/// What a graph runs on: its profile's backend, precision, noise and energy coefficients.
/// The graph carries it, so the runtime, the energy model and training take a graph alone.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Target {
    pub backend: BackendSpec,
    pub precision: Precision,
    pub noise: Noise,
    pub energy: EnergySpec,
}

impl Target {
    /// The target of a checked profile.
    pub fn of(hw: &HardwareProfile) -> Target {
        Target {
            backend: hw.backend,
            precision: hw.precision,
            noise: hw.noise,
            energy: hw.energy,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    pub arch: String,
    /// The profile's name (the target is its content).
    pub hardware: String,
    pub backend: BackendKind,
    /// Not in `--emit json` (the profile is in the source); in memory for every consumer.
    #[serde(skip)]
    pub target: Target,
    pub nodes: Vec<IrNode>,
    pub inputs: Vec<usize>,
    pub output: usize,
    /// Phase bits in effect (the architecture's request, else the hardware's).
    pub phase_bits: u32,
}

impl Graph {
    pub fn total_cost(&self) -> Cost {
        let mut c = Cost::default();
        for n in &self.nodes {
            c += n.cost;
        }
        c
    }

    /// Longest chain of MZI columns from any input to the output.
    pub fn optical_depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            depth[i] =
                n.inputs.iter().map(|&j| depth[j]).max().unwrap_or(0) + n.cost.optical_columns;
        }
        depth.get(self.output).copied().unwrap_or(0)
    }

    /// A readable dump, one node a line (`uhc compile --emit ir`).
    pub fn dump(&self) -> String {
        // Phase precision means something only where there are phase shifters.
        let phases = if self.target.backend.backend().optical() {
            format!(", {}-bit phases", self.phase_bits)
        } else {
            String::new()
        };
        let mut out = format!(
            "graph {} on {} ({} backend{phases})\n",
            self.arch,
            self.hardware,
            self.backend.as_str(),
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let args: Vec<String> = n.inputs.iter().map(|j| format!("%{j}")).collect();
            let prim = match &n.prim {
                Prim::Input => "input".to_string(),
                Prim::Encode { mode } => format!(
                    "encode.{}",
                    match mode {
                        EncodeMode::Amplitude => "amplitude",
                        EncodeMode::Phase => "phase",
                    }
                ),
                Prim::Mesh { layout } => format!("mesh.{}", layout.as_str()),
                Prim::Attenuate => "attenuate".into(),
                Prim::Diag => "diag".into(),
                Prim::ModRelu { bias } => format!("modrelu(bias={bias})"),
                Prim::EoActivation {
                    alpha,
                    gain,
                    bias_phase,
                } => format!("eo_activation(alpha={alpha}, gain={gain}, bias_phase={bias_phase})"),
                Prim::Detect => "detect".into(),
                Prim::MatMul { dtype, complex } => format!(
                    "matmul.{}{}",
                    dtype.as_str(),
                    if *complex { ".complex" } else { "" }
                ),
                Prim::Scale { dtype } => format!("scale.{}", dtype.as_str()),
                Prim::Relu => "relu".into(),
                Prim::Tanh => "tanh".into(),
                Prim::Sigmoid => "sigmoid".into(),
                Prim::Own { name } => name.to_string(),
            };
            let _ = write!(
                out,
                "  %{i} = {prim}({}) : {} -> {}  // {}",
                args.join(", "),
                n.in_width,
                n.ty,
                n.name
            );
            let c = n.cost;
            let mut parts = Vec::new();
            for (label, v) in [
                ("mzi", c.mzis),
                ("ps", c.phase_shifters),
                ("cols", c.optical_columns),
                ("dac", c.dac),
                ("adc", c.adc),
                ("mac", c.macs),
                ("params", c.params),
                ("tiles", c.tiles),
                ("mvm", c.mvms),
            ] {
                if v > 0 {
                    parts.push(format!("{label}={v}"));
                }
            }
            if !parts.is_empty() {
                let _ = write!(out, " [{}]", parts.join(" "));
            }
            out.push('\n');
        }
        let t = self.total_cost();
        let _ = writeln!(
            out,
            "  output %{}\n  total: {} MZIs, {} phase shifters, optical depth {}, {} DAC + {} ADC conversions, {} MACs, {} parameters",
            self.output,
            t.mzis,
            t.phase_shifters,
            self.optical_depth(),
            t.dac,
            t.adc,
            t.macs,
            t.params
        );
        out
    }
}

fn tri(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// Cost of one n-port mesh: N(N−1)/2 MZIs (two phase shifters each) and N output phases.
pub fn mesh_cost(n: usize, layout: MeshKind) -> Cost {
    Cost {
        mzis: tri(n),
        phase_shifters: 2 * tri(n) + n,
        optical_columns: layout.depth(n),
        params: n * n,
        ..Cost::default()
    }
}

/// Where a backend's lowering of one checked node puts its primitives.
pub struct Lowering<'a> {
    nodes: &'a mut Vec<IrNode>,
    /// The checked node being lowered.
    pub source: NodeId,
    pub span: Span,
}

impl Lowering<'_> {
    /// Appends a primitive; returns its index.
    pub fn push(
        &mut self,
        name: String,
        prim: Prim,
        inputs: Vec<usize>,
        in_width: usize,
        ty: ValueType,
        cost: Cost,
    ) -> usize {
        self.nodes.push(IrNode {
            name,
            prim,
            inputs,
            in_width,
            ty,
            cost,
            source: self.source,
            span: self.span,
        });
        self.nodes.len() - 1
    }
}

/// Lowers a checked architecture for its hardware. Total: the checker has ruled out every
/// shape and support problem, so lowering cannot fail. Hardware-specific ops are lowered
/// by the profile's [`crate::backend::Backend`]; element-wise activations here.
pub fn lower(arch: &ArchGraph, hw: &HardwareProfile) -> Graph {
    let mut nodes: Vec<IrNode> = Vec::with_capacity(arch.nodes.len() * 2);
    let mut map = vec![0usize; arch.nodes.len()];
    let phase_bits = arch.phase_bits.unwrap_or(hw.precision.phase);
    let backend = hw.backend.backend();
    for (i, n) in arch.nodes.iter().enumerate() {
        let ins: Vec<usize> = n.inputs.iter().map(|&j| map[j]).collect();
        let in_width = n
            .inputs
            .first()
            .map_or(n.ty.width, |&j| arch.nodes[j].ty.width);
        let w = n.ty.width;
        let complex = ValueType {
            domain: Domain::Complex,
            width: w,
        };
        let mut out = Lowering {
            nodes: &mut nodes,
            source: i,
            span: n.span,
        };
        let name = n.name.clone();
        map[i] = match &n.op {
            OpKind::Input
            | OpKind::Encode { .. }
            | OpKind::Linear { .. }
            | OpKind::Unitary
            | OpKind::Diag
            | OpKind::Detect => backend.lower(&hw.backend, n, ins, in_width, &mut out),
            OpKind::ModRelu { bias } => out.push(
                name,
                Prim::ModRelu { bias: *bias },
                ins,
                w,
                complex,
                Cost {
                    params: w,
                    ..Cost::default()
                },
            ),
            OpKind::EoActivation {
                alpha,
                gain,
                bias_phase,
            } => out.push(
                name,
                Prim::EoActivation {
                    alpha: *alpha,
                    gain: *gain,
                    bias_phase: *bias_phase,
                },
                ins,
                w,
                complex,
                Cost::default(),
            ),
            OpKind::Relu => out.push(name, Prim::Relu, ins, w, n.ty, Cost::default()),
            OpKind::Tanh => out.push(name, Prim::Tanh, ins, w, n.ty, Cost::default()),
            OpKind::Sigmoid => out.push(name, Prim::Sigmoid, ins, w, n.ty, Cost::default()),
        };
    }
    Graph {
        arch: arch.name.clone(),
        hardware: hw.name.clone(),
        backend: hw.backend.kind(),
        target: Target::of(hw),
        inputs: arch.inputs.iter().map(|&i| map[i]).collect(),
        output: map[arch.output],
        nodes,
        phase_bits,
    }
}
