//! `uhc train` and `uhc eval`: train an architecture on a task from the same file, write
//! or read its weights, and report accuracy under Monte Carlo hardware noise.
//!
//! The weight-file format and its checks live in [`uhc::train::file`].

use super::{load_compiled, pick_arch, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use std::path::{Path, PathBuf};
use uhc::check::model::{HardwareProfile, TaskSpec, TrainSpec};
use uhc::data::DataError;
use uhc::ir::Graph;
use uhc::runtime::Program;
use uhc::train::file::{self as weight_file, Provenance};
use uhc::train::{robustness, EpochStats, TrainError, TrainOptions, Trainer};

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
    /// Epochs (1 to 100000; default: the `train` item's default, 20).
    #[arg(long, value_parser = super::positive(100_000))]
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
    // Canonical data paths: the task hash in weight files does not depend on the folder.
    let task = uhc::driver::canonical_data_paths(&task);
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
        .run(&s.graph, &s.task, &spec, 0, c.seed, None, Some(&mut cb))
        .map(|o| o.program)
        .map_err(|e| {
            eprintln!("error: {e}");
            train_error_code(&e)
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
    let file = weight_file::to_file(
        &program,
        &s.task,
        Provenance {
            seed: c.seed,
            epochs: spec.epochs,
            noise_aware: spec.noise_aware,
        },
    );
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

/// Loads `path` into `program`. Exit 2 when the file cannot be read (as for a missing data
/// file), 1 when it is read but lies (another graph or task, a node missing or twice, a
/// value not finite or not physical).
fn load_weights(
    path: &Path,
    s: &Setup,
    program: &mut Program,
    allow_task_mismatch: bool,
) -> Result<(), u8> {
    let fail = |code: u8, msg: String| {
        eprintln!("error: {msg}");
        code
    };
    let bytes = uhc::driver::read_bounded(path, weight_file::MAX_WEIGHT_FILE_BYTES)
        .map_err(|e| fail(EXIT_USAGE, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(
            EXIT_PROBLEMS,
            format!("{} is not UTF-8 text, so not a weight file", path.display()),
        )
    })?;
    let file = weight_file::parse(&text).map_err(|e| {
        fail(
            EXIT_PROBLEMS,
            format!("{} is not a valid uhc weight file: {e}", path.display()),
        )
    })?;
    let warnings = weight_file::load(&file, program, &s.task, allow_task_mismatch)
        .map_err(|e| fail(EXIT_PROBLEMS, format!("{}: {e}", path.display())))?;
    for w in warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(())
}

/// Exit 2 for a data file that cannot be read (an I/O error, like a missing weight file),
/// 1 for everything else that stops training.
fn train_error_code(e: &TrainError) -> u8 {
    match e {
        TrainError::Data(DataError::Io { .. }) => EXIT_USAGE,
        _ => EXIT_PROBLEMS,
    }
}

/// `uhc eval`: trains (or loads `weights`) and prints accuracy, robustness and cost.
pub fn eval(
    c: &Common,
    weights: Option<&Path>,
    allow_task_mismatch: bool,
    draws: usize,
    json: bool,
) -> u8 {
    let s = match setup(c) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let trainer = c.trainer();
    let program = match weights {
        Some(path) => {
            let mut p = match Program::new(&s.graph, 0) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return EXIT_PROBLEMS;
                }
            };
            if let Err(code) = load_weights(path, &s, &mut p, allow_task_mismatch) {
                return code;
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
            return train_error_code(&e);
        }
    };
    let r = match robustness(&program, data.test_x.view(), &data.test_y, draws, c.seed) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_PROBLEMS;
        }
    };
    let cost = s.graph.total_cost();
    let energy_pj = uhc::ir::energy_report(&s.graph).total * 1e12;
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
