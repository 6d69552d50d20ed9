//! The grammar-aware view of an architecture that the built-in operators edit: the live
//! chain of layers from the input to the output. Every checked architecture has one (each
//! op takes one value), so any candidate, hand-written or LLM-written, can be mutated.
//! Edits produce `.uh` text; the compiler remains the judge of validity.

use crate::check::model::{ArchGraph, Domain, HardwareProfile, OpKind};
use rand::seq::IndexedRandom;
use rand::Rng;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Linear(usize),
    Unitary,
    Diag,
    ModRelu(f64),
    EoActivation,
    Relu,
    Tanh,
    Detect,
}

impl Step {
    fn is_activation(&self) -> bool {
        matches!(
            self,
            Step::ModRelu(_) | Step::EoActivation | Step::Relu | Step::Tanh
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Genome {
    pub input_width: usize,
    pub input_complex: bool,
    pub steps: Vec<Step>,
}

impl Genome {
    /// The live chain from the output back to the input (implicit encodes dropped).
    pub fn from_graph(g: &ArchGraph) -> Genome {
        let mut steps = Vec::new();
        let mut id = g.output;
        loop {
            let node = &g.nodes[id];
            let step = match &node.op {
                OpKind::Input => break,
                OpKind::Encode { .. } => None,
                OpKind::Linear { out } => Some(Step::Linear(*out)),
                OpKind::Unitary => Some(Step::Unitary),
                OpKind::Diag => Some(Step::Diag),
                OpKind::ModRelu { bias } => Some(Step::ModRelu(*bias)),
                OpKind::EoActivation { .. } => Some(Step::EoActivation),
                OpKind::Detect => Some(Step::Detect),
                OpKind::Relu => Some(Step::Relu),
                OpKind::Tanh | OpKind::Sigmoid => Some(Step::Tanh),
            };
            steps.extend(step);
            match node.inputs.first() {
                Some(&next) => id = next,
                None => break,
            }
        }
        steps.reverse();
        let input = &g.nodes[id];
        Genome {
            input_width: input.ty.width,
            input_complex: input.ty.domain == Domain::Complex,
            steps,
        }
    }

    /// `.uh` text for this genome as architecture `name` on `hardware`.
    pub fn to_text(&self, name: &str, hardware: &str) -> String {
        let mut s = format!("arch {name} on {hardware} {{\n");
        let ty = if self.input_complex {
            "complex"
        } else {
            "real"
        };
        let _ = writeln!(s, "    input x: {ty}[{}]", self.input_width);
        let mut prev = "x".to_string();
        let last = self.steps.len().saturating_sub(1);
        for (i, step) in self.steps.iter().enumerate() {
            let call = match step {
                Step::Linear(w) => format!("linear({prev}, {w})"),
                Step::Unitary => format!("unitary({prev})"),
                Step::Diag => format!("diag({prev})"),
                Step::ModRelu(b) => format!("modrelu({prev}, bias = {})", fmt_bias(*b)),
                Step::EoActivation => format!("eo_activation({prev})"),
                Step::Relu => format!("relu({prev})"),
                Step::Tanh => format!("tanh({prev})"),
                Step::Detect => format!("detect({prev})"),
            };
            if i == last {
                let _ = writeln!(s, "    output {call}");
            } else {
                let name = format!("v{}", i + 1);
                let _ = writeln!(s, "    {name} = {call}");
                prev = name;
            }
        }
        if self.steps.is_empty() {
            let _ = writeln!(s, "    output x");
        }
        s.push_str("}\n");
        s
    }

    fn output_width(&self) -> usize {
        self.steps
            .iter()
            .rev()
            .find_map(|s| {
                if let Step::Linear(w) = s {
                    Some(*w)
                } else {
                    None
                }
            })
            .unwrap_or(self.input_width)
    }

    /// Index of the last linear layer: its width is the class count and stays fixed.
    fn last_linear(&self) -> Option<usize> {
        self.steps
            .iter()
            .rposition(|s| matches!(s, Step::Linear(_)))
    }
}

fn fmt_bias(b: f64) -> String {
    let s = format!("{b:.3}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

fn supports(hw: &HardwareProfile, op: &str) -> bool {
    hw.supports(op)
}

fn hidden_width<R: Rng>(max: usize, rng: &mut R) -> usize {
    let choices: Vec<usize> = [4, 6, 8, 10, 12, 16, 24, 32, 48, 64]
        .into_iter()
        .filter(|&w| w <= max)
        .collect();
    choices.choose(rng).copied().unwrap_or(max.max(2))
}

fn activation<R: Rng>(hw: &HardwareProfile, optical: bool, rng: &mut R) -> Step {
    let mut options = Vec::new();
    if optical {
        if supports(hw, "modrelu") {
            options.push(Step::ModRelu(0.1));
        }
        if supports(hw, "eo_activation") {
            options.push(Step::EoActivation);
        }
    } else {
        if supports(hw, "relu") {
            options.push(Step::Relu);
        }
        if supports(hw, "tanh") {
            options.push(Step::Tanh);
        }
    }
    options.choose(rng).cloned().unwrap_or(if optical {
        Step::ModRelu(0.1)
    } else {
        Step::Relu
    })
}

fn is_optical(hw: &HardwareProfile) -> bool {
    hw.backend.backend().optical()
}

/// A random valid-looking network: 0–2 hidden layers, widths within the hardware's limit.
pub fn random<R: Rng>(
    hw: &HardwareProfile,
    features: usize,
    classes: usize,
    rng: &mut R,
) -> Genome {
    let optical = is_optical(hw);
    let max = hw.backend.max_width();
    let hidden = rng.random_range(0..=2);
    let mut steps = Vec::new();
    for _ in 0..hidden {
        steps.push(Step::Linear(hidden_width(max, rng)));
        if optical && supports(hw, "unitary") && rng.random_bool(0.2) {
            steps.push(Step::Unitary);
        }
        steps.push(activation(hw, optical, rng));
    }
    steps.push(Step::Linear(classes));
    if optical {
        steps.push(Step::Detect);
    }
    Genome {
        input_width: features,
        input_complex: false,
        steps,
    }
}

/// One random edit: resize, insert, delete, swap an activation, or retune a bias.
pub fn mutate<R: Rng>(g: &Genome, hw: &HardwareProfile, rng: &mut R) -> Genome {
    let optical = is_optical(hw);
    let max = hw.backend.max_width();
    let mut out = g.clone();
    let last = out.last_linear();
    for _attempt in 0..8 {
        match rng.random_range(0..5) {
            // Resize a hidden linear layer.
            0 => {
                let hidden: Vec<usize> = (0..out.steps.len())
                    .filter(|&i| matches!(out.steps[i], Step::Linear(_)) && Some(i) != last)
                    .collect();
                if let Some(&i) = hidden.choose(rng) {
                    let w = hidden_width(max, rng);
                    if out.steps[i] != Step::Linear(w) {
                        out.steps[i] = Step::Linear(w);
                        return out;
                    }
                }
            }
            // Insert a hidden layer (linear + activation, or a unitary) before the last linear.
            1 => {
                let at = last.unwrap_or(0);
                let mut new = vec![
                    Step::Linear(hidden_width(max, rng)),
                    activation(hw, optical, rng),
                ];
                if optical && supports(hw, "unitary") && rng.random_bool(0.3) {
                    new = vec![Step::Unitary, activation(hw, optical, rng)];
                }
                out.steps.splice(at..at, new);
                return out;
            }
            // Delete a hidden layer with its activation.
            2 => {
                let hidden: Vec<usize> = (0..out.steps.len())
                    .filter(|&i| {
                        matches!(out.steps[i], Step::Linear(_) | Step::Unitary | Step::Diag)
                            && Some(i) != last
                    })
                    .collect();
                if let Some(&i) = hidden.choose(rng) {
                    let end = if out.steps.get(i + 1).is_some_and(Step::is_activation) {
                        i + 2
                    } else {
                        i + 1
                    };
                    out.steps.drain(i..end);
                    return out;
                }
            }
            // Swap an activation for another the hardware has.
            3 => {
                let acts: Vec<usize> = (0..out.steps.len())
                    .filter(|&i| out.steps[i].is_activation())
                    .collect();
                if let Some(&i) = acts.choose(rng) {
                    let new = activation(
                        hw,
                        matches!(out.steps[i], Step::ModRelu(_) | Step::EoActivation),
                        rng,
                    );
                    if std::mem::discriminant(&new) != std::mem::discriminant(&out.steps[i]) {
                        out.steps[i] = new;
                        return out;
                    }
                }
            }
            // Retune a modReLU threshold.
            _ => {
                let acts: Vec<usize> = (0..out.steps.len())
                    .filter(|&i| matches!(out.steps[i], Step::ModRelu(_)))
                    .collect();
                if let Some(&i) = acts.choose(rng) {
                    if let Step::ModRelu(b) = out.steps[i] {
                        out.steps[i] =
                            Step::ModRelu((b * rng.random_range(0.5..2.0)).clamp(0.001, 2.0));
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// Splices a prefix of `a` onto a suffix of `b` that starts at a linear layer (which takes
/// any input width), so the child keeps `b`'s output shape.
pub fn crossover<R: Rng>(a: &Genome, b: &Genome, rng: &mut R) -> Genome {
    let cuts_a: Vec<usize> = (0..=a.steps.len())
        .filter(|&i| i == 0 || !matches!(a.steps[i - 1], Step::Detect))
        .collect();
    let cuts_b: Vec<usize> = (0..b.steps.len())
        .filter(|&j| matches!(b.steps[j], Step::Linear(_)))
        .collect();
    let (Some(&i), Some(&j)) = (cuts_a.choose(rng), cuts_b.choose(rng)) else {
        return a.clone();
    };
    let mut steps = a.steps[..i].to_vec();
    steps.extend_from_slice(&b.steps[j..]);
    let child = Genome {
        input_width: a.input_width,
        input_complex: a.input_complex,
        steps,
    };
    debug_assert_eq!(child.output_width(), b.output_width());
    child
}
