//! The one space every hypervolume uhc prints is measured in, and its reference point.
//!
//! Each objective becomes a quantity to minimise:
//! - a fraction (accuracies, their spread) stays linear: error = 1 − accuracy for a
//!   maximised one, the value itself for a minimised one; its reference is 1, the worst a
//!   fraction can be;
//! - any other minimised metric (energy, counts) is taken in log10: they span decades
//!   across hardware, and halving the energy should count the same at 1 pJ as at 1 µJ;
//! - a maximised non-fraction is negated, with reference 0.
//!
//! The reference of a log axis is fixed before any run, so that the numbers of two runs
//! can be compared: declared in the search (`reference { energy = 5 nJ }`), else the bound
//! of the search's constraint on that metric. Only when neither exists is it derived from
//! the runs at hand (twice the worst value evaluated), and then it says so: such numbers
//! compare only within that set of runs. The progress line, the summary, `uhc report` and
//! experiment reports all measure through [`Space`].

use super::engine::metric_value;
use super::store::Metrics;
use crate::check::model::{Direction, Metric, SearchSpec};
use crate::syntax::CmpOp;

/// Where an axis's reference value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A fraction's natural worst value (1).
    Natural,
    /// `reference { … }` in the search or experiment.
    Declared,
    /// The bound of the search's constraint on the metric.
    Constraint,
    /// Twice the worst value among the runs measured: not comparable beyond them.
    Derived,
}

/// One objective of the space.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub metric: Metric,
    pub direction: Direction,
    /// The reference in the metric's own units (SI for energy).
    pub reference: f64,
    pub source: Source,
}

impl Axis {
    /// The metric's value as a coordinate to minimise; `None` when not finite (or not
    /// positive on a log axis).
    fn coordinate(&self, v: f64) -> Option<f64> {
        let c = match (self.metric.is_fraction(), self.direction) {
            (true, Direction::Maximize) => 1.0 - v,
            (true, Direction::Minimize) => v,
            (false, Direction::Minimize) => {
                if v <= 0.0 {
                    return None;
                }
                v.log10()
            }
            (false, Direction::Maximize) => -v,
        };
        c.is_finite().then_some(c)
    }

    fn reference_coordinate(&self) -> f64 {
        match (self.metric.is_fraction(), self.direction) {
            (true, _) => 1.0,
            (false, Direction::Minimize) => self.reference.max(f64::MIN_POSITIVE).log10(),
            (false, Direction::Maximize) => -self.reference,
        }
    }

    /// How the axis is measured, e.g. "log10 energy, reference 5 nJ (the search's
    /// constraint)".
    pub fn describe(&self) -> String {
        use crate::check::units::{format_si, Dim};
        let value = |v: f64| match self.metric {
            Metric::Energy => format_si(v, Dim::Energy),
            _ => format!("{v}"),
        };
        let name = match (self.metric.is_fraction(), self.direction) {
            (true, Direction::Maximize) => format!("1 − {}", self.metric.name()),
            (true, Direction::Minimize) => self.metric.name().to_string(),
            (false, Direction::Minimize) => format!("log10 {}", self.metric.name()),
            (false, Direction::Maximize) => format!("−{}", self.metric.name()),
        };
        let whence = match self.source {
            Source::Natural => "",
            Source::Declared => " (declared)",
            Source::Constraint => " (the search's constraint)",
            Source::Derived => " (derived: twice the worst value of the runs measured)",
        };
        let reference = if self.metric.is_fraction() {
            "1".to_string()
        } else {
            value(self.reference)
        };
        format!("{name} up to {reference}{whence}")
    }
}

/// The objectives of a comparison and their reference point.
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub axes: Vec<Axis>,
}

impl Space {
    /// The space of a search: its objectives, with references declared, taken from its
    /// constraints, or (last resort) derived from `measured`.
    pub fn for_search<'a>(
        spec: &SearchSpec,
        measured: impl IntoIterator<Item = &'a Metrics> + Clone,
    ) -> Space {
        Space::new(
            spec.objectives.iter().map(|o| (o.metric, o.direction)),
            &spec.reference,
            spec.constraints
                .iter()
                .filter(|c| matches!(c.op, CmpOp::Le | CmpOp::Lt))
                .map(|c| (c.metric, c.bound)),
            measured,
        )
    }

    /// A space from its parts; `declared` beats `bounds` (upper bounds of constraints),
    /// which beat a reference derived from `measured`.
    pub fn new<'a>(
        objectives: impl IntoIterator<Item = (Metric, Direction)>,
        declared: &[(Metric, f64)],
        bounds: impl IntoIterator<Item = (Metric, f64)> + Clone,
        measured: impl IntoIterator<Item = &'a Metrics> + Clone,
    ) -> Space {
        let axes = objectives
            .into_iter()
            .map(|(metric, direction)| {
                if metric.is_fraction() {
                    return Axis {
                        metric,
                        direction,
                        reference: 1.0,
                        source: Source::Natural,
                    };
                }
                let declared = declared.iter().find(|d| d.0 == metric).map(|d| d.1);
                let bound = bounds
                    .clone()
                    .into_iter()
                    .filter(|b| b.0 == metric && b.1 > 0.0)
                    .map(|b| b.1)
                    .reduce(f64::min);
                let (reference, source) = match (declared, bound, direction) {
                    (Some(r), _, _) => (r, Source::Declared),
                    (None, Some(b), Direction::Minimize) => (b, Source::Constraint),
                    (None, _, Direction::Maximize) => (0.0, Source::Natural),
                    (None, None, Direction::Minimize) => {
                        let worst = measured
                            .clone()
                            .into_iter()
                            .map(|m| metric_value(m, metric))
                            .filter(|v| v.is_finite() && *v > 0.0)
                            .fold(0.0f64, f64::max);
                        (if worst > 0.0 { 2.0 * worst } else { 1.0 }, Source::Derived)
                    }
                };
                Axis {
                    metric,
                    direction,
                    reference,
                    source,
                }
            })
            .collect();
        Space { axes }
    }

    /// The space of a stored run, from its configuration (`spec`: objectives, constraints,
    /// declared references; see `uhc search`), with `energy` (J), when given, as the
    /// declared energy reference. A run without a readable configuration is measured on
    /// the default objectives (noisy accuracy, energy).
    pub fn for_config<'a>(
        config: &serde_json::Value,
        energy: Option<f64>,
        measured: impl IntoIterator<Item = &'a Metrics> + Clone,
    ) -> Space {
        let spec = config.get("spec");
        let metric = |v: &serde_json::Value| v.as_str().and_then(Metric::from_name);
        let mut objectives: Vec<(Metric, Direction)> = spec
            .and_then(|s| s.get("objectives"))
            .and_then(|o| o.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|o| {
                        let m = metric(o.get("metric")?)?;
                        let d = match o.get("direction")?.as_str()? {
                            "maximize" => Direction::Maximize,
                            "minimize" => Direction::Minimize,
                            _ => return None,
                        };
                        Some((m, d))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if objectives.is_empty() {
            objectives = vec![
                (Metric::NoisyAccuracyMean, Direction::Maximize),
                (Metric::Energy, Direction::Minimize),
            ];
        }
        let bounds: Vec<(Metric, f64)> = spec
            .and_then(|s| s.get("constraints"))
            .and_then(|c| c.as_array())
            .map(|list| {
                list.iter()
                    .filter(|c| matches!(c.get("op").and_then(|o| o.as_str()), Some("<=" | "<")))
                    .filter_map(|c| Some((metric(c.get("metric")?)?, c.get("bound")?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut declared: Vec<(Metric, f64)> = spec
            .and_then(|s| s.get("reference"))
            .and_then(|r| r.as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|pair| {
                        let pair = pair.as_array()?;
                        Some((metric(pair.first()?)?, pair.get(1)?.as_f64()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(e) = energy {
            declared.retain(|d| d.0 != Metric::Energy);
            declared.push((Metric::Energy, e));
        }
        Space::new(objectives, &declared, bounds, measured)
    }

    /// True when some reference was derived from the runs measured.
    pub fn derived(&self) -> bool {
        self.axes.iter().any(|a| a.source == Source::Derived)
    }

    /// The candidate's coordinates, or `None` when a value is missing or not finite.
    pub fn point(&self, m: &Metrics) -> Option<Vec<f64>> {
        self.axes
            .iter()
            .map(|a| a.coordinate(metric_value(m, a.metric)))
            .collect()
    }

    /// The hypervolume dominated by the feasible candidates among `metrics` (infeasible
    /// ones, and points beyond the reference, add nothing). Units: the product of the axes'
    /// units (e.g. error × decades of energy).
    pub fn hypervolume<'a>(&self, metrics: impl IntoIterator<Item = &'a Metrics>) -> f64 {
        if self.axes.is_empty() {
            return 0.0;
        }
        let points: Vec<Vec<f64>> = metrics
            .into_iter()
            .filter(|m| m.total_violation() <= 0.0)
            .filter_map(|m| self.point(m))
            .collect();
        let dirs = vec![Direction::Minimize; self.axes.len()];
        let reference: Vec<f64> = self.axes.iter().map(Axis::reference_coordinate).collect();
        super::hypervolume::hypervolume(&points, &dirs, &reference).unwrap_or(0.0)
    }

    /// Hypervolume after each of `metrics` in turn (the order evaluations finished in).
    pub fn curve<'a>(&self, metrics: impl IntoIterator<Item = &'a Metrics>) -> Vec<f64> {
        let mut seen: Vec<&Metrics> = Vec::new();
        let mut out = Vec::new();
        for m in metrics {
            seen.push(m);
            out.push(self.hypervolume(seen.iter().copied()));
        }
        out
    }

    /// One line saying what the numbers measure.
    pub fn describe(&self) -> String {
        let axes: Vec<String> = self.axes.iter().map(Axis::describe).collect();
        format!("hypervolume of {}", axes.join(" × "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(acc: f64, energy_j: f64) -> Metrics {
        Metrics {
            accuracy: acc,
            noisy_accuracy_mean: acc,
            noisy_accuracy_std: 0.0,
            noisy_accuracy_p5: acc,
            accuracy_drop: 0.0,
            energy_pj: energy_j * 1e12,
            mzi_count: None,
            depth: 1,
            params: 1,
            violations: Vec::new(),
            extras: Default::default(),
        }
    }

    fn space(declared: &[(Metric, f64)], bounds: &[(Metric, f64)], measured: &[Metrics]) -> Space {
        Space::new(
            [
                (Metric::NoisyAccuracyMean, Direction::Maximize),
                (Metric::Energy, Direction::Minimize),
            ],
            declared,
            bounds.iter().copied(),
            measured,
        )
    }

    #[test]
    fn one_point_spans_the_box_to_the_reference() {
        // error 0.2, energy 1 nJ, reference (1, 100 nJ): 0.8 × 2 decades.
        let s = space(&[(Metric::Energy, 100e-9)], &[], &[]);
        let hv = s.hypervolume([&metrics(0.8, 1e-9)]);
        assert!((hv - 1.6).abs() < 1e-12, "{hv}");
        // A tenfold saving adds one decade at any scale.
        let hv10 = s.hypervolume([&metrics(0.8, 0.1e-9)]);
        assert!((hv10 - hv - 0.8).abs() < 1e-12, "{hv10}");
    }

    #[test]
    fn references_come_declared_then_from_constraints_then_derived() {
        let m = [metrics(0.5, 2e-9)];
        let declared = space(&[(Metric::Energy, 1e-6)], &[(Metric::Energy, 5e-9)], &m);
        assert_eq!(declared.axes[1].source, Source::Declared);
        assert_eq!(declared.axes[1].reference, 1e-6);
        let bound = space(&[], &[(Metric::Energy, 5e-9)], &m);
        assert_eq!(bound.axes[1].source, Source::Constraint);
        assert_eq!(bound.axes[1].reference, 5e-9);
        let derived = space(&[], &[], &m);
        assert_eq!(derived.axes[1].source, Source::Derived);
        assert!((derived.axes[1].reference - 4e-9).abs() < 1e-20);
        assert!(derived.derived() && !bound.derived());
        assert_eq!(bound.axes[0].source, Source::Natural);
    }

    #[test]
    fn a_fixed_reference_does_not_move_with_the_runs_measured() {
        let a = [metrics(0.5, 2e-9)];
        let b = [metrics(0.5, 2e-9), metrics(0.9, 40e-9)];
        let sa = space(&[], &[(Metric::Energy, 5e-9)], &a);
        let sb = space(&[], &[(Metric::Energy, 5e-9)], &b);
        assert_eq!(sa, sb);
        assert_eq!(sa.hypervolume(&a), sb.hypervolume(&a[..1]));
    }

    #[test]
    fn infeasible_and_out_of_box_points_add_nothing() {
        let s = space(&[(Metric::Energy, 10e-9)], &[], &[]);
        let mut bad = metrics(0.99, 1e-9);
        bad.violations.push(crate::search::store::Violation {
            constraint: "energy <= 5e-9".into(),
            amount: 1.0,
        });
        assert_eq!(s.hypervolume([&bad]), 0.0);
        assert_eq!(s.hypervolume([&metrics(0.9, 20e-9)]), 0.0);
        let curve = s.curve([
            &metrics(0.5, 1e-9),
            &metrics(0.4, 2e-9),
            &metrics(0.9, 1e-9),
        ]);
        assert_eq!(curve.len(), 3);
        assert!((curve[0] - 0.5).abs() < 1e-12);
        assert_eq!(curve[0], curve[1], "a dominated point changes nothing");
        assert!((curve[2] - 0.9).abs() < 1e-12);
    }
}
