//! The analog in-memory computing (AIMC) backend: weights as conductances of resistive
//! devices (PCM, RRAM) in crossbar tiles; a matrix-vector product is one analog read (DACs
//! drive the rows, the column currents sum, ADCs read them). `linear` layers map onto
//! tiles, split over rows and columns with partial sums added digitally; activations are
//! digital. The noise of a draw is IBM aihwkit's PCM statistical model ([`model`]), run by
//! the crossbar kernel ([`prims`]).

pub mod model;
pub mod prims;
#[cfg(test)]
mod tests;

use super::kernel::{Kernel, KernelError, NoiseModel};
use super::{
    Backend, BackendKind, BackendSpec, Dim, FieldKind, FieldValue, MissingField, SchemaField,
    MAX_WIDTH,
};
use crate::check::model::{Domain, Node, OpKind};
use crate::check::ops::OpSpec;
use crate::ir::energy::{ComponentEnergy, SegmentEnergy};
use crate::ir::{Cost, Graph, IrNode, Lowering, Prim, Target};
use serde::Serialize;
use std::sync::Arc;

/// The AIMC backend.
pub struct Aimc;

/// The name of the crossbar primitive in dumps, hashes and weight files.
pub const CROSSBAR: &str = "crossbar";

/// A checked `backend aimc { … }` block. Times in s, conductance in S, energies in J.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AimcSpec {
    pub tile_rows: usize,
    pub tile_cols: usize,
    pub max_width: usize,
    pub g_max: f64,
    pub out_noise: f64,
    pub out_bound: f64,
    pub prog_noise: bool,
    pub prog_noise_scale: f64,
    pub drift: bool,
    pub t0: f64,
    pub read_noise: bool,
    pub t_read: f64,
    pub t_inference: f64,
    pub drift_compensation: bool,
    pub mvm_energy: f64,
    pub mac_energy: f64,
    pub dac_energy: f64,
    pub adc_energy: f64,
    pub digital_energy: f64,
}

impl AimcSpec {
    pub fn max_width(&self) -> usize {
        self.max_width
    }

    /// The defaults: IBM's 64-core PCM chip (Le Gallo et al., Nature Electronics 6, 680,
    /// 2023, arXiv 2212.02872) with aihwkit's PCM model; see [`FIELDS`] for each source.
    pub const DEFAULT: AimcSpec = AimcSpec {
        tile_rows: 256,
        tile_cols: 256,
        max_width: MAX_WIDTH as usize,
        g_max: 25e-6,
        out_noise: 0.06,
        out_bound: 12.0,
        prog_noise: true,
        prog_noise_scale: 1.0,
        drift: true,
        t0: 20.0,
        read_noise: true,
        t_read: 250e-9,
        t_inference: 86400.0,
        drift_compensation: true,
        mvm_energy: 0.0,
        // 2 ops per MAC at 9.76 TOPS/W (one-phase read, 8-bit I/O, converters and tile
        // periphery included): 0.205 pJ, so a full 256×256 tile MVM costs 13.43 nJ.
        mac_energy: 2.0 / 9.76e12,
        dac_energy: 0.0,
        adc_energy: 0.0,
        // A 32-bit integer add, 0.1 pJ (Horowitz, ISSCC 2014, 45 nm): one per ADC output,
        // into its partial sum or with the bias.
        digital_energy: 0.1e-12,
    };

    /// Tiles along the inputs (rows) and the outputs (columns) of an `nin → nout` layer.
    pub fn tiles(&self, nin: usize, nout: usize) -> (usize, usize) {
        (nin.div_ceil(self.tile_rows), nout.div_ceil(self.tile_cols))
    }
}

const ON_OFF: FieldKind = FieldKind::Choice(&["true", "false"]);
const TIME_WHY: &str = "a time after programming, 0 s or more";
const ENERGY_WHY: &str = "an energy per operation is 0 or more";

/// The `backend aimc { … }` fields, each with its default's source.
pub const FIELDS: &[SchemaField] = &[
    SchemaField {
        name: "tile_rows",
        kind: FieldKind::Count { min: 1, max: MAX_WIDTH },
        doc: "inputs (word lines) per crossbar tile; default 256 (Le Gallo et al. 2023: 256×256 tiles)",
    },
    SchemaField {
        name: "tile_cols",
        kind: FieldKind::Count { min: 1, max: MAX_WIDTH },
        doc: "outputs (bit lines) per tile, one differential pair per weight; default 256 (Le Gallo et al. 2023)",
    },
    SchemaField {
        name: "max_width",
        kind: FieldKind::Count { min: 1, max: MAX_WIDTH },
        doc: "widest layer (split over tiles); default 4096 (the simulator's limit)",
    },
    SchemaField {
        name: "g_max",
        kind: FieldKind::Real { dim: Dim::Conductance, min: 1e-9, max: 1e-2, why: "a device conductance is positive (typical: 25 uS for PCM)" },
        doc: "conductance the largest |weight| of a layer maps to; default 25 uS (aihwkit's g_max; its PCM fits scale with it, so noise relative to g_max does not depend on it)",
    },
    SchemaField {
        name: "out_noise",
        kind: FieldKind::Real { dim: Dim::None, min: 0.0, max: 1.0, why: "output noise is a standard deviation in units of a full-scale weight times a full-scale input, 0 to 1 (typical: 0.02 to 0.06)" },
        doc: "Gaussian noise per tile output per read, in units of one full-scale weight times one full-scale input; default 0.06 (aihwkit IOParameters.out_noise)",
    },
    SchemaField {
        name: "out_bound",
        kind: FieldKind::Real { dim: Dim::None, min: 1e-3, max: 1e6, why: "the ADC's range is positive (typical: 12)" },
        doc: "ADC range (± this many full-scale products); default 12 (aihwkit IOParameters.out_bound)",
    },
    SchemaField {
        name: "prog_noise",
        kind: ON_OFF,
        doc: "programming noise σ_prog(g_T) = max(0.26348 + 1.9650 x − 1.1731 x², 0) µS at g_max = 25 uS; default true (aihwkit PCMLikeNoiseModel)",
    },
    SchemaField {
        name: "prog_noise_scale",
        kind: FieldKind::Real { dim: Dim::None, min: 0.0, max: 100.0, why: "a scale of the measured programming noise, 0 or more (1: as measured)" },
        doc: "factor on σ_prog; default 1 (aihwkit prog_noise_scale)",
    },
    SchemaField {
        name: "drift",
        kind: ON_OFF,
        doc: "conductance drift g (t/t0)^(−ν), ν drawn per device from N(μ_ν(g_T), σ_ν(g_T)); default true (aihwkit PCMLikeNoiseModel)",
    },
    SchemaField {
        name: "t0",
        kind: FieldKind::Real { dim: Dim::Time, min: 1e-9, max: 1e9, why: "the drift reference time is positive (aihwkit: 20 s)" },
        doc: "drift reference time, the first read after programming; default 20 s (aihwkit t_0)",
    },
    SchemaField {
        name: "read_noise",
        kind: ON_OFF,
        doc: "1/f read noise per MVM, σ = |g(t)| Q_s √ln((t + t_read)/(2 t_read)); default true (aihwkit PCMLikeNoiseModel)",
    },
    SchemaField {
        name: "t_read",
        kind: FieldKind::Real { dim: Dim::Time, min: 1e-15, max: 1.0, why: "a read pulse lasts a positive time (aihwkit: 250 ns)" },
        doc: "read duration of the 1/f fit; default 250 ns (aihwkit t_read)",
    },
    SchemaField {
        name: "t_inference",
        kind: FieldKind::Real { dim: Dim::Time, min: 0.0, max: 1e10, why: TIME_WHY },
        doc: "time since programming at which the network runs; default 1 day (an operating point, not a measurement)",
    },
    SchemaField {
        name: "drift_compensation",
        kind: ON_OFF,
        doc: "global drift compensation: outputs scaled by an all-ones read after programming over one at t_inference; default true (aihwkit InferenceRPUConfig's GlobalDriftCompensation)",
    },
    SchemaField {
        name: "mvm_energy",
        kind: FieldKind::Real { dim: Dim::Energy, min: 0.0, max: 1.0, why: ENERGY_WHY },
        doc: "fixed energy of one tile MVM, whatever its occupancy; default 0 (charged per MAC)",
    },
    SchemaField {
        name: "mac_energy",
        kind: FieldKind::Real { dim: Dim::Energy, min: 0.0, max: 1.0, why: ENERGY_WHY },
        doc: "energy per analog multiply-accumulate; default 0.205 pJ = 2 ops at 9.76 TOPS/W (Le Gallo et al. 2023, one-phase read, 8-bit I/O, converters and periphery included; 13.43 nJ per full 256×256 tile)",
    },
    SchemaField {
        name: "dac_energy",
        kind: FieldKind::Real { dim: Dim::Energy, min: 0.0, max: 1.0, why: ENERGY_WHY },
        doc: "energy per input conversion; default 0 (in mac_energy)",
    },
    SchemaField {
        name: "adc_energy",
        kind: FieldKind::Real { dim: Dim::Energy, min: 0.0, max: 1.0, why: ENERGY_WHY },
        doc: "energy per output conversion; default 0 (in mac_energy)",
    },
    SchemaField {
        name: "digital_energy",
        kind: FieldKind::Real { dim: Dim::Energy, min: 0.0, max: 1.0, why: ENERGY_WHY },
        doc: "digital periphery per op (a partial-sum or bias add per ADC output); default 0.1 pJ (Horowitz, ISSCC 2014: 32-bit add, 45 nm)",
    },
];

impl Backend for Aimc {
    fn kind(&self) -> BackendKind {
        BackendKind::Aimc
    }

    fn block_name(&self) -> &'static str {
        "an `aimc` backend"
    }

    fn fields(&self) -> &'static [SchemaField] {
        FIELDS
    }

    fn spec(
        &self,
        inherited: Option<BackendSpec>,
        set: &[(&str, FieldValue<'_>)],
    ) -> Result<BackendSpec, MissingField> {
        let mut s = match inherited {
            Some(BackendSpec::Aimc(s)) => s,
            _ => AimcSpec::DEFAULT,
        };
        for &(name, value) in set {
            match value {
                FieldValue::Count(n) => {
                    let n = n as usize;
                    match name {
                        "tile_rows" => s.tile_rows = n,
                        "tile_cols" => s.tile_cols = n,
                        _ => s.max_width = n,
                    }
                }
                FieldValue::Choice(c) => {
                    let on = c == "true";
                    match name {
                        "prog_noise" => s.prog_noise = on,
                        "drift" => s.drift = on,
                        "read_noise" => s.read_noise = on,
                        _ => s.drift_compensation = on,
                    }
                }
                FieldValue::Real(v) => match name {
                    "g_max" => s.g_max = v,
                    "out_noise" => s.out_noise = v,
                    "out_bound" => s.out_bound = v,
                    "prog_noise_scale" => s.prog_noise_scale = v,
                    "t0" => s.t0 = v,
                    "t_read" => s.t_read = v,
                    "t_inference" => s.t_inference = v,
                    "mvm_energy" => s.mvm_energy = v,
                    "mac_energy" => s.mac_energy = v,
                    "dac_energy" => s.dac_energy = v,
                    "adc_energy" => s.adc_energy = v,
                    _ => s.digital_energy = v,
                },
            }
        }
        Ok(BackendSpec::Aimc(s))
    }

    fn optical(&self) -> bool {
        false
    }

    /// A crossbar reads its converters' bits from `precision`; its noise and energies are
    /// in its own block.
    fn reads(&self, section: &str, field: &str) -> bool {
        section == "precision" && matches!(field, "dac" | "adc")
    }

    fn ignored_hint(&self, section: &str) -> &'static str {
        match section {
            "noise" => "analog noise is set in the `backend aimc { … }` block: `prog_noise`, `read_noise`, `out_noise`, `drift` and `t_inference`",
            "energy" => "AIMC energies are set in the `backend aimc { … }` block: `mac_energy`, `mvm_energy`, `dac_energy`, `adc_energy` and `digital_energy`",
            _ => "a crossbar has no phase shifters: its converters are `precision { dac = …, adc = … }`",
        }
    }

    fn requires_mac_energy(&self) -> bool {
        false
    }

    /// `linear` on the crossbars and the digital activations; nothing that needs light
    /// or complex values.
    fn offers(&self, op: &OpSpec) -> bool {
        matches!(op.name, "linear" | "relu" | "tanh" | "sigmoid")
    }

    fn result_domain(&self, op: &str, input: crate::check::model::Domain) -> Option<Domain> {
        match (op, input) {
            ("linear" | "relu" | "tanh" | "sigmoid", Domain::Real) => Some(Domain::Real),
            _ => None,
        }
    }

    fn width_words(&self) -> (&'static str, &'static str, &'static str) {
        ("crossbar layer", "values", "max_width")
    }

    fn describe(&self, spec: &BackendSpec) -> String {
        let s = aimc(spec);
        format!(
            "an analog in-memory crossbar accelerator ({}×{} tiles of resistive devices, read {} after programming; linear layers are analog and noisy, activations digital), at most {} values per layer",
            s.tile_rows,
            s.tile_cols,
            crate::check::units::format_si(s.t_inference, Dim::Time),
            s.max_width
        )
    }

    fn lower(
        &self,
        spec: &BackendSpec,
        n: &Node,
        ins: Vec<usize>,
        in_width: usize,
        out: &mut Lowering<'_>,
    ) -> usize {
        let s = aimc(spec);
        let name = n.name.clone();
        match n.op {
            OpKind::Linear { out: width } => {
                let (r, c) = s.tiles(in_width, width);
                let cost = Cost {
                    tiles: r * c,
                    mvms: r * c,
                    // Every tile has its own DACs and ADCs: inputs are converted once per
                    // column of tiles, outputs once per row of tiles.
                    dac: in_width * c,
                    adc: width * r,
                    macs: in_width * width,
                    params: in_width * width + width,
                    ..Cost::default()
                };
                out.push(
                    name,
                    Prim::Own { name: CROSSBAR },
                    ins,
                    in_width,
                    n.ty,
                    cost,
                )
            }
            OpKind::Input => out.push(name, Prim::Input, vec![], n.ty.width, n.ty, Cost::default()),
            _ => unreachable!("the checker refuses ops the AIMC backend does not offer"),
        }
    }

    fn node_energy(&self, hw: &Target, cost: &Cost) -> ComponentEnergy {
        let s = aimc(&hw.backend);
        ComponentEnergy {
            array: cost.mvms as f64 * s.mvm_energy + cost.macs as f64 * s.mac_energy,
            dac: cost.dac as f64 * s.dac_energy,
            adc: cost.adc as f64 * s.adc_energy,
            digital: cost.adc as f64 * s.digital_energy,
            ..ComponentEnergy::default()
        }
    }

    fn laser_segments(&self, _g: &Graph) -> Vec<SegmentEnergy> {
        Vec::new()
    }

    fn kernel(
        &self,
        target: &Target,
        node: &IrNode,
    ) -> Option<Result<Arc<dyn Kernel>, KernelError>> {
        match node.prim {
            Prim::Own { name: CROSSBAR } => Some(Ok(Arc::new(prims::Crossbar::new(target)))),
            _ => None,
        }
    }

    /// A draw is a seed: the crossbar kernel samples every device from it with the
    /// profile's model; nothing optical.
    fn noise_model(&self, _target: &Target, _phase_bits: u32) -> (Option<NoiseModel>, f64) {
        (None, 0.0)
    }
}

/// The spec of an AIMC profile.
pub fn aimc(spec: &BackendSpec) -> AimcSpec {
    match spec {
        BackendSpec::Aimc(s) => *s,
        _ => unreachable!("the AIMC backend got another backend's profile"),
    }
}

/// Weights on the crossbars over the cells of the tiles they occupy (1: every cell used).
pub fn utilisation(g: &Graph) -> f64 {
    let s = aimc(&g.target.backend);
    let (mut used, mut tiles) = (0usize, 0usize);
    for n in &g.nodes {
        if n.prim == (Prim::Own { name: CROSSBAR }) {
            used += n.cost.macs;
            tiles += n.cost.tiles;
        }
    }
    used as f64 / (tiles * s.tile_rows * s.tile_cols).max(1) as f64
}
