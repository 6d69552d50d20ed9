//! The digital backend: a dense accelerator (CPU, GPU, int8 array) emulated in f64 with
//! its number format ([`quant`]). No light: encode and detect are free identities, every
//! product is counted in multiply-accumulates.

pub mod prims;
pub mod quant;

use super::{
    Backend, BackendKind, BackendSpec, DType, FieldKind, FieldValue, MissingField, SchemaField,
    MAX_WIDTH,
};
use crate::backend::kernel::{Kernel, KernelError};
use crate::check::model::{Domain, Node, OpKind, ValueType};
use crate::check::ops::OpSpec;
use crate::ir::energy::{ComponentEnergy, SegmentEnergy};
use crate::ir::{Cost, Graph, IrNode, Lowering, Prim, Target};
use serde::Serialize;
use std::sync::Arc;

/// The digital backend.
pub struct Digital;

/// A checked `backend digital { … }` block.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DigitalSpec {
    pub dtype: DType,
    pub max_width: usize,
}

impl DigitalSpec {
    pub fn max_width(&self) -> usize {
        self.max_width
    }
}

impl Backend for Digital {
    fn kind(&self) -> BackendKind {
        BackendKind::Digital
    }

    fn block_name(&self) -> &'static str {
        "a `digital` backend"
    }

    fn fields(&self) -> &'static [SchemaField] {
        &[
            SchemaField {
                name: "dtype",
                kind: FieldKind::Choice(&["fp32", "fp16", "int8"]),
                doc: "number format of weights and activations; default fp32",
            },
            SchemaField {
                name: "max_width",
                kind: FieldKind::Count {
                    min: 1,
                    max: MAX_WIDTH,
                },
                doc: "widest layer; default 4096 (the simulator's limit)",
            },
        ]
    }

    fn spec(
        &self,
        inherited: Option<BackendSpec>,
        set: &[(&str, FieldValue<'_>)],
    ) -> Result<BackendSpec, MissingField> {
        let (mut dtype, mut width) = match inherited {
            Some(BackendSpec::Digital(s)) => (s.dtype, s.max_width),
            _ => (DType::Fp32, MAX_WIDTH as usize),
        };
        for (name, value) in set {
            match (*name, *value) {
                ("dtype", FieldValue::Choice(d)) => {
                    dtype = match d {
                        "fp16" => DType::Fp16,
                        "int8" => DType::Int8,
                        _ => DType::Fp32,
                    };
                }
                (_, FieldValue::Count(n)) => width = n as usize,
                _ => {}
            }
        }
        Ok(BackendSpec::Digital(DigitalSpec {
            dtype,
            max_width: width,
        }))
    }

    /// Digital arithmetic is its number format and its energy is per MAC.
    fn reads(&self, section: &str, field: &str) -> bool {
        (section, field) == ("energy", "mac")
    }

    fn ignored_hint(&self, section: &str) -> &'static str {
        match section {
            "energy" => "a digital profile is charged per MAC alone: keep `energy { mac = … }`",
            "noise" => "digital arithmetic is exact up to its number format (`backend digital { dtype = … }`)",
            _ => "a digital backend computes in its number format: set `backend digital { dtype = … }`",
        }
    }

    fn optical(&self) -> bool {
        false
    }

    fn offers(&self, op: &OpSpec) -> bool {
        !op.optical_only
    }

    fn result_domain(&self, op: &str, input: Domain) -> Option<Domain> {
        match (op, input) {
            ("linear", Domain::Real) => Some(Domain::Real),
            _ => crate::check::ops::common_result_domain(op, input),
        }
    }

    fn width_words(&self) -> (&'static str, &'static str, &'static str) {
        ("array", "lanes", "max_width")
    }

    fn describe(&self, spec: &BackendSpec) -> String {
        format!(
            "a digital accelerator ({}), at most {} values per layer",
            dtype(spec).as_str(),
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
        let dtype = dtype(spec);
        let w = n.ty.width;
        let complex = ValueType {
            domain: Domain::Complex,
            width: w,
        };
        let name = n.name.clone();
        match n.op {
            OpKind::Input => out.push(name, Prim::Input, vec![], w, n.ty, Cost::default()),
            OpKind::Encode { mode, .. } => out.push(
                name,
                Prim::Encode { mode },
                ins,
                in_width,
                n.ty,
                Cost::default(),
            ),
            OpKind::Linear { out: width } => {
                let is_complex = n.ty.domain == Domain::Complex;
                let macs = in_width * width * if is_complex { 4 } else { 1 };
                let params = if is_complex {
                    2 * in_width * width
                } else {
                    in_width * width + width
                };
                out.push(
                    name,
                    Prim::MatMul {
                        dtype,
                        complex: is_complex,
                    },
                    ins,
                    in_width,
                    n.ty,
                    Cost {
                        macs,
                        params,
                        ..Cost::default()
                    },
                )
            }
            OpKind::Unitary => out.push(
                name,
                Prim::MatMul {
                    dtype,
                    complex: true,
                },
                ins,
                w,
                complex,
                Cost {
                    macs: 4 * w * w,
                    params: w * w,
                    ..Cost::default()
                },
            ),
            OpKind::Diag => out.push(
                name,
                Prim::Scale { dtype },
                ins,
                w,
                complex,
                Cost {
                    macs: 4 * w,
                    params: 2 * w,
                    ..Cost::default()
                },
            ),
            OpKind::Detect => out.push(name, Prim::Detect, ins, w, n.ty, Cost::default()),
            _ => unreachable!("ir::lower lowers element-wise ops itself"),
        }
    }

    fn node_energy(&self, hw: &Target, cost: &Cost) -> ComponentEnergy {
        ComponentEnergy {
            digital: cost.macs as f64 * hw.energy.mac,
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
        prims::kernel(node, Some(dtype(&target.backend))).map(Ok)
    }
}

fn dtype(spec: &BackendSpec) -> DType {
    match *spec {
        BackendSpec::Digital(s) => s.dtype,
        _ => unreachable!("the digital backend got another backend's profile"),
    }
}
