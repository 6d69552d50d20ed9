//! Energy per inference, analytic, every coefficient from the hardware profile.
//!
//! The photonic model is the Lightening-Transformer simulator's (zhuhanqing/
//! Lightening-Transformer, `hardware_simulator/`), the group behind torchonn and ADEPT:
//!
//! E = Σ_segments [ n_in·(E_DAC(b) + b·E_mod) + n_out·((P_PD + P_TIA)/f + E_ADC(b))
//!                  + (P_laser + N_ps·P_ps)/f ] + MACs·E_MAC
//!
//! - E_DAC(b) = E_DAC(8)·(2^b/b)/(2^8/8) and E_ADC(b) = E_ADC(8)·b/8: the profile gives
//!   the 8-bit reference energies.
//! - P_laser\[dBm\] = S_PD + IL_mod + IL_MZI·(depth+1) + 10·log10(width), then
//!   P\[W\] = 10^(P/10)·1 mW / η · 2^b for b-bit SNR (b = ADC bits). Deeper and lossier
//!   meshes need exponentially more light: the trade-off the search has to find.
//! - A segment is a connected optical region from its encoders to its detectors; its
//!   depth is the longest chain of MZI columns inside it and its width the widest port
//!   count in it. Static phase-shifter power is held for one clock period per inference.

use super::{Graph, Prim, Target};
use crate::check::model::Domain;
use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ComponentEnergy {
    pub dac: f64,
    pub modulator: f64,
    pub detection: f64,
    pub adc: f64,
    pub laser: f64,
    pub phase_shifters: f64,
    pub digital: f64,
    /// Reads of in-memory compute arrays (analog crossbars).
    pub array: f64,
}

impl ComponentEnergy {
    pub fn total(&self) -> f64 {
        self.dac
            + self.modulator
            + self.detection
            + self.adc
            + self.laser
            + self.phase_shifters
            + self.digital
            + self.array
    }
    fn add(&mut self, o: &ComponentEnergy) {
        self.dac += o.dac;
        self.modulator += o.modulator;
        self.detection += o.detection;
        self.adc += o.adc;
        self.laser += o.laser;
        self.phase_shifters += o.phase_shifters;
        self.digital += o.digital;
        self.array += o.array;
    }
}

/// One optical segment's loss budget and laser power.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentEnergy {
    pub nodes: Vec<usize>,
    pub width: usize,
    pub depth: usize,
    pub laser_dbm: f64,
    pub laser_w: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnergyReport {
    /// Joules per inference.
    pub total: f64,
    pub components: ComponentEnergy,
    /// Per IR node (laser and phase-shifter energy are attributed per segment instead).
    pub per_node: Vec<(String, ComponentEnergy)>,
    pub segments: Vec<SegmentEnergy>,
}

pub fn dac_energy(hw: &Target) -> f64 {
    let b = hw.precision.dac as f64;
    hw.energy.dac * (2f64.powf(b) / b) / (256.0 / 8.0)
}

pub fn adc_energy(hw: &Target) -> f64 {
    hw.energy.adc * hw.precision.adc as f64 / 8.0
}

/// Energy per inference of `g` on its target.
pub fn energy_report(g: &Graph) -> EnergyReport {
    let hw = &g.target;
    let f = hw.energy.clock;
    let mut per_node = Vec::with_capacity(g.nodes.len());
    let mut components = ComponentEnergy::default();
    let backend = hw.backend.backend();
    for n in &g.nodes {
        let c = backend.node_energy(hw, &n.cost);
        components.add(&c);
        per_node.push((n.name.clone(), c));
    }
    let segments = backend.laser_segments(g);
    for s in &segments {
        components.laser += s.laser_w / f;
    }
    EnergyReport {
        total: components.total(),
        components,
        per_node,
        segments,
    }
}

/// Groups optical nodes into connected segments (union-find over optical edges), each
/// with its laser power.
pub fn optical_segments(g: &Graph) -> Vec<SegmentEnergy> {
    let hw = &g.target;
    let n = g.nodes.len();
    let optical = |i: usize| {
        let node = &g.nodes[i];
        node.ty.domain == Domain::Complex || matches!(node.prim, Prim::Detect)
    };
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (i, node) in g.nodes.iter().enumerate() {
        if !optical(i) {
            continue;
        }
        for &j in &node.inputs {
            if g.nodes[j].ty.domain == Domain::Complex {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    // Columns of light crossed from the segment's start to each node.
    let mut depth = vec![0usize; n];
    for (i, node) in g.nodes.iter().enumerate() {
        let before = node
            .inputs
            .iter()
            .filter(|&&j| g.nodes[j].ty.domain == Domain::Complex)
            .map(|&j| depth[j])
            .max()
            .unwrap_or(0);
        depth[i] = before + node.cost.optical_columns;
    }
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in (0..n).filter(|&i| optical(i)) {
        let root = find(&mut parent, i);
        match groups.iter_mut().find(|g| g.0 == root) {
            Some(g) => g.1.push(i),
            None => groups.push((root, vec![i])),
        }
    }
    let e = &hw.energy;
    groups
        .into_iter()
        .map(|(_, nodes)| {
            let width = nodes
                .iter()
                .map(|&i| g.nodes[i].ty.width.max(g.nodes[i].in_width))
                .max()
                .unwrap_or(1);
            let depth = nodes.iter().map(|&i| depth[i]).max().unwrap_or(0);
            let laser_dbm = e.sensitivity_dbm
                + e.modulator_loss_db
                + hw.noise.loss_per_mzi_db * (depth as f64 + 1.0)
                + 10.0 * (width as f64).log10();
            let laser_w = 10f64.powf(laser_dbm / 10.0) * 1e-3 / e.laser_efficiency
                * 2f64.powi(hw.precision.adc as i32);
            SegmentEnergy {
                nodes,
                width,
                depth,
                laser_dbm,
                laser_w,
            }
        })
        .collect()
}

/// A readable breakdown (`uhc compile --emit energy`).
pub fn render(r: &EnergyReport) -> String {
    use crate::check::units::{format_si, Dim};
    use std::fmt::Write as _;
    let e = |j: f64| format_si(j, Dim::Energy);
    let mut out = format!("energy per inference: {}\n", e(r.total));
    let c = &r.components;
    let total = r.total.max(f64::MIN_POSITIVE);
    for (name, v) in [
        ("laser", c.laser),
        ("dac", c.dac),
        ("modulator", c.modulator),
        ("detection (PD + TIA)", c.detection),
        ("adc", c.adc),
        ("phase shifters", c.phase_shifters),
        ("digital MACs", c.digital),
        ("analog arrays", c.array),
    ] {
        if v > 0.0 {
            let _ = writeln!(
                out,
                "  {name:<22} {:>12}  {:>5.1}%",
                e(v),
                100.0 * v / total
            );
        }
    }
    for (i, s) in r.segments.iter().enumerate() {
        let _ = writeln!(
            out,
            "  optical segment {i}: width {}, depth {} MZI columns, laser {:.2} dBm = {} electrical",
            s.width,
            s.depth,
            s.laser_dbm,
            format_power(s.laser_w)
        );
    }
    out.push_str("  per node (without laser):\n");
    for (name, ce) in &r.per_node {
        let t = ce.total();
        if t > 0.0 {
            let _ = writeln!(out, "    {name:<20} {:>12}", e(t));
        }
    }
    out
}

/// One optical segment's laser budget against the source's limit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LaserBudget {
    /// Index among the graph's segments (as in [`EnergyReport::segments`]).
    pub segment: usize,
    /// Its IR nodes, in graph order.
    pub nodes: Vec<usize>,
    pub width: usize,
    /// MZI columns on its longest path.
    pub depth: usize,
    /// Insertion loss on the way to the detectors: IL_mod + IL_MZI·(depth + 1), dB.
    pub loss_db: f64,
    /// Optical power the laser must deliver (W): 10^(P_laser\[dBm\]/10) mW · 2^b.
    pub needed_w: f64,
    /// The profile's `max_laser_power` (W, optical).
    pub limit_w: f64,
}

impl LaserBudget {
    pub fn exceeded(&self) -> bool {
        self.needed_w > self.limit_w
    }
}

/// The laser power each optical segment needs, against the most the profile's source can
/// deliver (`energy { max_laser_power }`): one entry per segment, empty off optical
/// hardware. A segment with [`LaserBudget::exceeded`] cannot be run at the profile's ADC
/// precision: the checker reports it and the search counts it as a violated constraint.
pub fn laser_budget(g: &Graph) -> Vec<LaserBudget> {
    let hw = &g.target;
    let e = &hw.energy;
    hw.backend
        .backend()
        .laser_segments(g)
        .into_iter()
        .enumerate()
        .map(|(segment, s)| LaserBudget {
            segment,
            width: s.width,
            depth: s.depth,
            loss_db: e.modulator_loss_db + hw.noise.loss_per_mzi_db * (s.depth as f64 + 1.0),
            // The electrical power times the wall-plug efficiency: the light itself.
            needed_w: s.laser_w * e.laser_efficiency,
            limit_w: e.max_laser_power,
            nodes: s.nodes,
        })
        .collect()
}

/// A power with an SI prefix, kW and MW included (the units of `.uh` files stop at W, but
/// an infeasible laser budget reaches kilowatts): `283.374 mW`, `5.169 W`, `21.496 kW`.
pub fn format_power(w: f64) -> String {
    use crate::check::units::{format_si, Dim};
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.3}");
        format!("{} {unit}", s.trim_end_matches('0').trim_end_matches('.'))
    };
    if w.abs() >= 1e6 {
        trim(w / 1e6, "MW")
    } else if w.abs() >= 1e3 {
        trim(w / 1e3, "kW")
    } else {
        format_si(w, Dim::Power)
    }
}
