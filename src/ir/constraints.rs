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

/// `uh::check::laser`: a warning for every optical segment whose laser would have to
/// deliver more light than the profile's source can (`energy { max_laser_power }`), from
/// [`super::energy::laser_budget`]. The search counts the same excess as a violated
/// constraint, so such an architecture is never on a front.
pub fn decide_laser_budget(arch: &ArchGraph, g: &Graph) -> Vec<Diagnostic> {
    let hw = &g.target;
    let mut out = Vec::new();
    for b in super::energy::laser_budget(g) {
        if !b.exceeded() {
            continue;
        }
        // The segment's layers, by their source names (`h.V`, `h.U` → `h`), in order.
        let mut names: Vec<&str> = Vec::new();
        for &i in &b.nodes {
            let n = g.nodes[i].name.split('.').next().unwrap_or("");
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        let span = b
            .nodes
            .iter()
            .filter_map(|&i| arch.nodes.get(g.nodes[i].source))
            .map(|n| n.span)
            .find(|s| s.end > s.start)
            .unwrap_or(arch.span);
        let bits = hw.precision.adc;
        let limit = super::energy::format_power(b.limit_w);
        out.push(
            Diagnostic::warning(
                code::LASER,
                arch.file,
                span,
                format!(
                    "optical segment {} ({}) needs {} of laser light, more than the {limit} its source delivers: width {}, depth {} MZI columns, loss budget {:.1} dB at {bits}-bit precision",
                    b.segment,
                    names.join(" → "),
                    super::energy::format_power(b.needed_w),
                    b.width,
                    b.depth,
                    b.loss_db,
                ),
            )
            .with_label("this optical segment starts here")
            .with_help(format!(
                "every MZI column costs {} dB and every bit doubles the light: make the segment narrower or shallower (fewer or smaller `linear` layers between `encode` and `detect`), detect and re-encode in between, use fewer ADC bits, or a lower-loss profile; or raise `max_laser_power` (now {limit}) if the source really delivers more",
                hw.noise.loss_per_mzi_db
            )),
        );
    }
    out
}
