//! `uhc train` and `uhc eval`: train an architecture on a task from the same file, write
//! or read its weights, and report accuracy under Monte Carlo hardware noise.
//!
//! # Weight files (`uhc-weights/1`, JSON)
//!
//! ```text
//! { "format": "uhc-weights/1", "arch": "...", "hardware": "...", "task": "...",
//!   "hash": "<ir::structural_hash of the lowered graph>", "seed": 0, "epochs": 20,
//!   "noise_aware": false,
//!   "nodes": [ { "node": 1, "name": "h.V", "prim": "mesh",
//!                "fields": { "theta": [...], "phi": [...], "gamma": [...] } }, ... ] }
//! ```
//!
//! One entry per node with parameters, in graph order. Fields, all plain numbers:
//! `mesh`: θ and φ per MZI in mesh order (radians), γ per input port (radians);
//! `attenuate`: `sigma` per attenuator (amplitude in [−1, 1]); `diag`: `amplitude`,
//! `phase` (radians); `modrelu`: `threshold` per mode; `matmul`: `weights` (row-major,
//! out × in) and `bias`, or `weights_re`, `weights_im` when complex; `scale`: `re`, `im`.
//! Loading checks the hash, so weights only load into the graph they were trained for.

use super::{load_compiled, pick_arch, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uhc::check::model::{HardwareProfile, TaskSpec, TrainSpec};
use uhc::ir::Graph;
use uhc::runtime::{Params, Program};
use uhc::train::{robustness, EpochStats, TrainOptions, Trainer};

const FORMAT: &str = "uhc-weights/1";

#[derive(Serialize, Deserialize)]
struct WeightFile {
    format: String,
    arch: String,
    hardware: String,
    task: String,
    hash: String,
    seed: u64,
    epochs: usize,
    noise_aware: bool,
    nodes: Vec<NodeWeights>,
}

#[derive(Serialize, Deserialize)]
struct NodeWeights {
    node: usize,
    name: String,
    prim: String,
    fields: BTreeMap<String, Vec<f64>>,
}

/// Options shared by `uhc train` and `uhc eval`.
#[derive(clap::Args, Debug)]
pub struct Common {
    pub file: PathBuf,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long)]
    pub task: String,
    /// Run on this hardware profile instead of the architecture's (same backend kind).
    #[arg(long)]
    pub hardware: Option<String>,
    /// Epochs (default: the `train` item's default, 20).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on a fresh hardware noise draw per mini-batch.
    #[arg(long)]
    pub noise_aware: bool,
    /// Train MZI `linear` layers on their phases instead of as matrices programmed onto
    /// the phases afterwards (slower to converge; for comparison).
    #[arg(long)]
    pub phase_space: bool,
}

impl Common {
    fn trainer(&self) -> Trainer {
        Trainer::new(TrainOptions {
            weight_space: !self.phase_space,
            ..TrainOptions::default()
        })
    }
}

struct Setup {
    graph: Graph,
    hw: HardwareProfile,
    task: TaskSpec,
}

fn setup(c: &Common) -> Result<Setup, u8> {
    let (compiled, _) = load_compiled(&c.file)?;
    let arch = pick_arch(&compiled, c.arch.as_deref())?;
    let task = compiled.checked.task(&c.task).cloned().ok_or_else(|| {
        let names: Vec<&str> = compiled
            .checked
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        eprintln!(
            "error: no task named `{}` in {}; it has: {}",
            c.task,
            c.file.display(),
            if names.is_empty() {
                "no tasks (add a `task` item)".to_string()
            } else {
                names.join(", ")
            }
        );
        EXIT_USAGE
    })?;
    let hw_name = c.hardware.as_deref().unwrap_or(&arch.hardware);
    let Some(hw) = compiled.checked.hardware(hw_name).cloned() else {
        eprintln!("error: no hardware profile named `{hw_name}` is in scope of this file");
        return Err(EXIT_USAGE);
    };
    let own = compiled.graph(&arch.name).ok_or(EXIT_PROBLEMS)?;
    if hw.backend.kind() != own.backend {
        eprintln!(
            "error: `{}` is {} hardware but `{}` was checked for {} hardware; pick a profile of the same kind",
            hw.name,
            hw.backend.kind().as_str(),
            arch.name,
            own.backend.as_str()
        );
        return Err(EXIT_USAGE);
    }
    let graph = if hw.name == own.hardware {
        own.clone()
    } else {
        uhc::ir::lower(arch, &hw)
    };
    Ok(Setup { graph, hw, task })
}

fn spec(c: &Common) -> TrainSpec {
    let d = TrainSpec::default();
    TrainSpec {
        epochs: c.epochs.unwrap_or(d.epochs),
        noise_aware: c.noise_aware || d.noise_aware,
        ..d
    }
}

fn progress(total: usize) -> impl FnMut(&EpochStats) {
    move |e: &EpochStats| {
        eprintln!(
            "epoch {:>3}/{total}  loss {:.4}  {} accuracy {:.4}",
            e.epoch, e.loss, e.split, e.accuracy
        );
    }
}

fn train_program(c: &Common, s: &Setup, trainer: &Trainer) -> Result<Program, u8> {
    let spec = spec(c);
    let mut cb = progress(spec.epochs);
    trainer
        .run(
            &s.graph,
            &s.hw,
            &s.task,
            &spec,
            0,
            c.seed,
            None,
            Some(&mut cb),
        )
        .map(|o| o.program)
        .map_err(|e| {
            eprintln!("error: {e}");
            EXIT_PROBLEMS
        })
}

/// `uhc train`: trains and writes the weights to `out`.
pub fn train(c: &Common, out: &Path) -> u8 {
    let s = match setup(c) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let trainer = c.trainer();
    let program = match train_program(c, &s, &trainer) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let spec = spec(c);
    let file = WeightFile {
        format: FORMAT.into(),
        arch: s.graph.arch.clone(),
        hardware: s.hw.name.clone(),
        task: s.task.name.clone(),
        hash: uhc::ir::structural_hash(&s.graph),
        seed: c.seed,
        epochs: spec.epochs,
        noise_aware: spec.noise_aware,
        nodes: s
            .graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !program.params.blocks[*i].is_empty())
            .map(|(i, n)| {
                let mut fields = BTreeMap::new();
                let mut at = 0;
                for (name, len) in program.param_fields(i) {
                    fields.insert(
                        name.to_string(),
                        program.params.blocks[i][at..at + len].to_vec(),
                    );
                    at += len;
                }
                NodeWeights {
                    node: i,
                    name: n.name.clone(),
                    prim: prim_name(&n.prim).into(),
                    fields,
                }
            })
            .collect(),
    };
    let text = match serde_json::to_string_pretty(&file) {
        Ok(t) => t + "\n",
        Err(e) => {
            eprintln!("error: could not serialise the weights: {e}");
            return EXIT_PROBLEMS;
        }
    };
    if let Err(e) = std::fs::write(out, text) {
        eprintln!("error: cannot write {}: {e}", out.display());
        return EXIT_USAGE;
    }
    eprintln!("wrote {}", out.display());
    EXIT_OK
}

fn prim_name(p: &uhc::ir::Prim) -> &'static str {
    use uhc::ir::Prim;
    match p {
        Prim::Mesh { .. } => "mesh",
        Prim::Attenuate => "attenuate",
        Prim::Diag => "diag",
        Prim::ModRelu { .. } => "modrelu",
        Prim::MatMul { .. } => "matmul",
        Prim::Scale { .. } => "scale",
        _ => "other",
    }
}

fn load_weights(path: &Path, s: &Setup, program: &mut Program) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: WeightFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a uhc weight file: {e}", path.display()))?;
    if file.format != FORMAT {
        return Err(format!(
            "{} has format `{}`; this uhc reads `{FORMAT}`",
            path.display(),
            file.format
        ));
    }
    let hash = uhc::ir::structural_hash(&s.graph);
    if file.hash != hash {
        return Err(format!(
            "the weights were trained for arch `{}` on `{}` (hash {}), which differs from `{}` on `{}` (hash {hash}); retrain with `uhc train`",
            file.arch, file.hardware, file.hash, s.graph.arch, s.hw.name
        ));
    }
    let mut p = Params {
        blocks: program.params.blocks.clone(),
    };
    for n in &file.nodes {
        let fields = program.param_fields(n.node);
        if fields.is_empty() {
            return Err(format!("node {} (`{}`) has no parameters", n.node, n.name));
        }
        let mut block = Vec::new();
        for (name, len) in fields {
            let v = n.fields.get(name).ok_or_else(|| {
                format!("node {} (`{}`) lacks the field `{name}`", n.node, n.name)
            })?;
            if v.len() != len {
                return Err(format!(
                    "node {} (`{}`) field `{name}` has {} values, expected {len}",
                    n.node,
                    n.name,
                    v.len()
                ));
            }
            block.extend_from_slice(v);
        }
        p.blocks[n.node] = block;
    }
    program.set_params(p).map_err(|e| e.to_string())
}

/// `uhc eval`: trains (or loads `weights`) and prints accuracy, robustness and cost.
pub fn eval(c: &Common, weights: Option<&Path>, draws: usize, json: bool) -> u8 {
    let s = match setup(c) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let trainer = c.trainer();
    let program = match weights {
        Some(path) => {
            let mut p = match Program::new(&s.graph, &s.hw, 0) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_PROBLEMS;
                }
            };
            if let Err(e) = load_weights(path, &s, &mut p) {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
            p
        }
        None => match train_program(c, &s, &trainer) {
            Ok(p) => p,
            Err(code) => return code,
        },
    };
    let data = match trainer.data(&s.task) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_PROBLEMS;
        }
    };
    let r = match robustness(
        &program,
        &s.hw,
        data.test_x.view(),
        &data.test_y,
        draws,
        c.seed,
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_PROBLEMS;
        }
    };
    let cost = s.graph.total_cost();
    let energy_pj = uhc::ir::energy_report(&s.graph, &s.hw).total * 1e12;
    if json {
        let v = serde_json::json!({
            "arch": s.graph.arch,
            "hardware": s.hw.name,
            "task": s.task.name,
            "hash": uhc::ir::structural_hash(&s.graph),
            "draws": draws,
            "accuracy": r.accuracy,
            "noisy_accuracy_mean": r.noisy_mean,
            "noisy_accuracy_std": r.noisy_std,
            "noisy_accuracy_p5": r.noisy_p5,
            "accuracy_drop": r.drop(),
            "energy_pj": energy_pj,
            "mzi_count": cost.mzis,
            "optical_depth": s.graph.optical_depth(),
            "params": cost.params,
        });
        println!("{v}");
    } else {
        println!(
            "{} on {} ({} task, {} test samples)",
            s.graph.arch,
            s.hw.name,
            s.task.name,
            data.test_y.len()
        );
        println!("  accuracy             {:.4}", r.accuracy);
        println!(
            "  noisy accuracy       {:.4} ± {:.4} (p5 {:.4}, {draws} draws)",
            r.noisy_mean, r.noisy_std, r.noisy_p5
        );
        println!("  accuracy drop        {:.4}", r.drop());
        println!("  energy / inference   {energy_pj:.3} pJ");
        println!(
            "  MZIs {}, optical depth {}, parameters {}",
            cost.mzis,
            s.graph.optical_depth(),
            cost.params
        );
    }
    EXIT_OK
}
