//! Deciding an architecture's static constraints on its lowered graph: MZI count, optical
//! depth, parameters, and energy per inference from the runtime's model.

use super::{energy_report, Graph};
use crate::check::model::{ArchGraph, Metric};
use crate::check::units::{format_si, Dim};
use crate::diag::{code, Diagnostic};

pub fn decide_constraints(arch: &ArchGraph, g: &Graph) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &arch.constraints {
        let (value, shown, help) = match c.metric {
            Metric::MziCount => {
                let v = g.total_cost().mzis as f64;
                (v, v.to_string(), "narrow or remove optical layers (a linear n→m layer costs n(n−1)/2 + m(m−1)/2 + min(n,m) MZIs)")
            }
            Metric::OpticalDepth => {
                let v = g.optical_depth() as f64;
                (v, v.to_string(), "use fewer or narrower meshes in a row, or a Clements mesh (depth N) instead of Reck (2N−3)")
            }
            Metric::Params => {
                let v = g.total_cost().params as f64;
                (v, v.to_string(), "narrow or remove layers")
            }
            Metric::Energy => {
                let v = energy_report(g).total;
                (v, format_si(v, Dim::Energy), "shallower or narrower meshes need less laser power; fewer converters cost less; see `uhc compile --emit energy`")
            }
            _ => continue,
        };
        if !c.op.holds(value, c.bound) {
            let bound = if c.metric == Metric::Energy {
                format_si(c.bound, Dim::Energy)
            } else {
                c.bound.to_string()
            };
            out.push(
                Diagnostic::error(
                    code::CONSTRAINT,
                    arch.file,
                    c.span,
                    format!(
                        "constraint not met: {} is {shown}, which is not {} {bound}",
                        c.metric.name(),
                        c.op.as_str()
                    ),
                )
                .with_label("violated")
                .with_help(help),
            );
        }
    }
    out
}
