//! The MZI-mesh backend behind the [`Backend`] interface: which ops it offers, how they
//! lower to meshes, attenuators and converters, and what they cost in energy.

use super::NonIdeal;
use crate::backend::kernel::{Kernel, KernelError, NoiseModel};
use crate::backend::{
    Backend, BackendKind, BackendSpec, FieldKind, FieldValue, MeshKind, MissingField, SchemaField,
    WeightSpace, WeightTwin, MAX_WIDTH,
};
use crate::check::model::{Domain, Node, OpKind, ValueType};
use crate::check::ops::OpSpec;
use crate::ir::energy::{self, ComponentEnergy, SegmentEnergy};
use crate::ir::{mesh_cost, Cost, Graph, IrNode, Lowering, Prim, Target};
use serde::Serialize;
use std::sync::Arc;

/// The MZI-mesh (photonic) backend.
pub struct Mzi;

/// A checked `backend mzi { … }` block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MziSpec {
    pub mesh: MeshKind,
    pub max_ports: usize,
}

impl MziSpec {
    pub fn max_width(&self) -> usize {
        self.max_ports
    }
}

impl Backend for Mzi {
    fn kind(&self) -> BackendKind {
        BackendKind::Mzi
    }

    fn block_name(&self) -> &'static str {
        "an `mzi` backend"
    }

    fn fields(&self) -> &'static [SchemaField] {
        &[
            SchemaField {
                name: "mesh",
                kind: FieldKind::Choice(&["clements", "reck"]),
                doc: "mesh layout; default clements (depth N, Clements et al., Optica 2016), reck is triangular (depth 2N−3)",
            },
            SchemaField {
                name: "max_ports",
                kind: FieldKind::Count {
                    min: 2,
                    max: MAX_WIDTH,
                },
                doc: "optical ports of the mesh, the widest layer; required",
            },
        ]
    }

    fn spec(
        &self,
        inherited: Option<BackendSpec>,
        set: &[(&str, FieldValue<'_>)],
    ) -> Result<BackendSpec, MissingField> {
        let (mut mesh, mut ports) = match inherited {
            Some(BackendSpec::Mzi(s)) => (s.mesh, s.max_ports),
            _ => (MeshKind::Clements, 0),
        };
        for (name, value) in set {
            match (*name, *value) {
                ("mesh", FieldValue::Choice(m)) => {
                    mesh = if m == "reck" {
                        MeshKind::Reck
                    } else {
                        MeshKind::Clements
                    };
                }
                (_, FieldValue::Count(n)) => ports = n as usize,
                _ => {}
            }
        }
        if ports == 0 {
            return Err(MissingField {
                message: "the `mzi` backend needs `max_ports`",
                label: "mesh size unknown",
                help: "add `max_ports = 16` (the number of optical ports of the mesh)",
            });
        }
        Ok(BackendSpec::Mzi(MziSpec {
            mesh,
            max_ports: ports,
        }))
    }

    fn optical(&self) -> bool {
        true
    }

    fn offers(&self, _op: &OpSpec) -> bool {
        true
    }

    fn width_words(&self) -> (&'static str, &'static str, &'static str) {
        ("mesh", "ports", "max_ports")
    }

    fn describe(&self, spec: &BackendSpec) -> String {
        format!(
            "an optical mesh of MZIs ({} layout), at most {} ports per layer",
            mesh(spec).as_str(),
            spec.max_width()
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
        let mesh = mesh(spec);
        let w = n.ty.width;
        let complex = ValueType {
            domain: Domain::Complex,
            width: w,
        };
        let name = n.name.clone();
        match n.op {
            OpKind::Input => {
                // A field given as input is modulated onto light: one DAC per value.
                let cost = if n.ty.domain == Domain::Complex {
                    Cost {
                        dac: w,
                        ..Cost::default()
                    }
                } else {
                    Cost::default()
                };
                out.push(name, Prim::Input, vec![], w, n.ty, cost)
            }
            OpKind::Encode { mode, .. } => out.push(
                name,
                Prim::Encode { mode },
                ins,
                in_width,
                n.ty,
                Cost {
                    dac: w,
                    ..Cost::default()
                },
            ),
            OpKind::Linear { out: width } => {
                let v = out.push(
                    format!("{name}.V"),
                    Prim::Mesh { layout: mesh },
                    ins,
                    in_width,
                    ValueType {
                        domain: Domain::Complex,
                        width: in_width,
                    },
                    mesh_cost(in_width, mesh),
                );
                let k = in_width.min(width);
                let s = out.push(
                    format!("{name}.sigma"),
                    Prim::Attenuate,
                    vec![v],
                    in_width,
                    ValueType {
                        domain: Domain::Complex,
                        width,
                    },
                    Cost {
                        mzis: k,
                        phase_shifters: k,
                        optical_columns: 1,
                        params: k,
                        ..Cost::default()
                    },
                );
                out.push(
                    format!("{name}.U"),
                    Prim::Mesh { layout: mesh },
                    vec![s],
                    width,
                    complex,
                    mesh_cost(width, mesh),
                )
            }
            OpKind::Unitary => out.push(
                name,
                Prim::Mesh { layout: mesh },
                ins,
                w,
                complex,
                mesh_cost(w, mesh),
            ),
            OpKind::Diag => out.push(
                name,
                Prim::Diag,
                ins,
                w,
                complex,
                Cost {
                    mzis: w,
                    phase_shifters: 2 * w,
                    optical_columns: 1,
                    params: 2 * w,
                    ..Cost::default()
                },
            ),
            OpKind::Detect => out.push(
                name,
                Prim::Detect,
                ins,
                w,
                n.ty,
                Cost {
                    adc: w,
                    ..Cost::default()
                },
            ),
            _ => unreachable!("ir::lower lowers element-wise ops itself"),
        }
    }

    fn node_energy(&self, hw: &Target, cost: &Cost) -> ComponentEnergy {
        let e = &hw.energy;
        let f = e.clock;
        ComponentEnergy {
            dac: cost.dac as f64 * energy::dac_energy(hw),
            modulator: cost.dac as f64 * e.modulator * hw.precision.dac as f64,
            detection: cost.adc as f64 * (e.photodetector + e.tia) / f,
            adc: cost.adc as f64 * energy::adc_energy(hw),
            phase_shifters: cost.phase_shifters as f64 * e.phase_shifter / f,
            digital: cost.macs as f64 * e.mac,
            laser: 0.0,
            array: 0.0,
        }
    }

    fn laser_segments(&self, g: &Graph) -> Vec<SegmentEnergy> {
        energy::optical_segments(g)
    }

    fn kernel(
        &self,
        _target: &Target,
        node: &IrNode,
    ) -> Option<Result<Arc<dyn Kernel>, KernelError>> {
        super::prims::kernel(node)
    }

    /// The mesh non-idealities of the profile's `noise` section, phases quantised to
    /// `phase_bits`; the detector noise as written.
    fn noise_model(&self, target: &Target, phase_bits: u32) -> (Option<NoiseModel>, f64) {
        let n = target.noise;
        let mesh = NonIdeal {
            phase_bits: (1..=32).contains(&phase_bits).then_some(phase_bits),
            phase_sigma: n.phase_sigma,
            splitter_sigma: n.splitter_sigma,
            loss_db_per_mzi: n.loss_per_mzi_db,
            crosstalk: n.crosstalk,
            ..NonIdeal::IDEAL
        };
        (Some(Arc::new(mesh)), n.detector_noise)
    }

    /// Each `linear` trains as a complex matrix (`mzi/weights.rs`).
    fn weight_space(
        &self,
        graph: &Graph,
        blocks: &[Vec<f64>],
    ) -> Result<Option<WeightTwin>, KernelError> {
        Ok(super::weights::MatrixSpace::new(graph, blocks)?
            .map(|(space, twin)| (Box::new(space) as Box<dyn WeightSpace>, twin)))
    }
}

fn mesh(spec: &BackendSpec) -> MeshKind {
    match *spec {
        BackendSpec::Mzi(s) => s.mesh,
        _ => unreachable!("the MZI backend got another backend's profile"),
    }
}
