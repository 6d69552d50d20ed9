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
use uhc::train::{robustness, EpochStats, HeldOut, TrainError, TrainOptions, Trainer};

/// Options shared by `uhc train` and `uhc eval`.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// The `.uh` file with the architecture and the task.
    pub file: PathBuf,
    /// The architecture (optional when the file has one).
    #[arg(long)]
    pub arch: Option<String>,
    /// The `task` item of the file: data set, encoders and split (required, except with
    /// `eval --from`, which takes the search's).
    #[arg(long)]
    pub task: Option<String>,
    /// Run on this hardware profile instead of the architecture's (same backend kind).
    #[arg(long)]
    pub hardware: Option<String>,
    /// Epochs (1 to 100000; default: the `train` item's default, 20).
    #[arg(long, value_parser = super::positive(100_000))]
    pub epochs: Option<usize>,
    /// Seed of the weight initialisation, mini-batch order and noise draws.
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
    let Some(task_name) = c.task.as_deref() else {
        eprintln!("error: --task is required: the `task` item of the file to train and test on");
        return Err(EXIT_USAGE);
    };
    let (compiled, sources) = load_compiled(&c.file)?;
    let arch = pick_arch(&compiled, c.arch.as_deref())?;
    let task = compiled.checked.task(task_name).cloned().ok_or_else(|| {
        let names: Vec<&str> = compiled
            .checked
            .tasks
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        eprintln!(
            "error: no task named `{}` in {}; it has: {}",
            task_name,
            c.file.display(),
            if names.is_empty() {
                "no tasks (add a `task` item)".to_string()
            } else {
                names.join(", ")
            }
        );
        EXIT_USAGE
    })?;
    // The architecture's input and output widths against the task, before any data is
    // loaded: the diagnostic a search item's candidates get.
    let shape = uhc::check::task_shape(arch, &task);
    if !shape.is_empty() {
        eprint!("{}", sources.render_human(&shape, false));
        if shape.iter().any(|d| d.is_error()) {
            return Err(EXIT_PROBLEMS);
        }
    }
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
        let g = uhc::ir::lower(arch, &hw);
        // The file was checked on its own profile: the laser budget on this one is new.
        let laser = uhc::ir::decide_laser_budget(arch, &g);
        eprint!("{}", sources.render_human(&laser, false));
        g
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
        .run(
            &s.graph,
            &s.task,
            &spec,
            0,
            c.seed,
            uhc::train::HeldOut::Test,
            None,
            Some(&mut cb),
        )
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
    let energy_j = uhc::ir::energy_report(&s.graph).total;
    if json {
        let v = serde_json::json!({
            "arch": s.graph.arch,
            "hardware": s.hw.name,
            "task": s.task.name,
            "hash": uhc::ir::structural_hash(&s.graph),
            "split": "test",
            "draws": draws,
            "accuracy": r.accuracy,
            "noisy_accuracy_mean": r.noisy_mean,
            "noisy_accuracy_std": r.noisy_std,
            "noisy_accuracy_p5": r.noisy_p5,
            "accuracy_drop": r.drop(),
            "energy_j": energy_j,
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
        println!(
            "  energy / inference   {}",
            uhc::check::units::format_si(energy_j, uhc::check::units::Dim::Energy)
        );
        println!(
            "  MZIs {}, optical depth {}, parameters {}",
            cost.mzis,
            s.graph.optical_depth(),
            cost.params
        );
    }
    EXIT_OK
}

/// `uhc eval SEARCH_FILE --from RUN.sqlite --candidate N`: repeats the evaluation of a
/// search candidate with the seed and settings its row recorded (`extras.training`), the
/// way the search ran it, and compares the scores with the stored ones bit for bit. Exit 0
/// when they agree, 1 when they differ or the row cannot be repeated, 2 on usage errors.
pub fn eval_from(file: &Path, db: &str, id: i64, json: bool) -> u8 {
    use uhc::search::engine::{EvalRequest, Evaluator, SearchContext};
    use uhc::search::store::{CandidateState, Location, Store, StoreOptions};
    let store = match Location::parse(db)
        .and_then(|l| Store::open_read_only_at(&l, StoreOptions::default()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", db);
            return EXIT_USAGE;
        }
    };
    let config: serde_json::Value = store
        .run_info()
        .ok()
        .and_then(|i| serde_json::from_str(&i.config).ok())
        .unwrap_or(serde_json::Value::Null);
    let record = match store.candidate(id) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: {} has no candidate {id}", db);
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", db);
            return EXIT_USAGE;
        }
    };
    let (Some(evaluation), CandidateState::Done) = (&record.evaluation, record.state) else {
        eprintln!(
            "error: candidate {id} of {} was not evaluated (its state is {}), so it has no row to reproduce",
            db,
            record.state.as_str()
        );
        return EXIT_PROBLEMS;
    };
    let stored = &evaluation.metrics;
    let training = stored.extras.get("training");
    let field = |k: &str| training.and_then(|t| t.get(k));
    let (Some(seed), Some(epochs), Some(batch), Some(lr), Some(noise_aware), Some(draws)) = (
        field("seed").and_then(|v| v.as_u64()),
        field("epochs").and_then(|v| v.as_u64()),
        field("batch").and_then(|v| v.as_u64()),
        field("lr").and_then(|v| v.as_f64()),
        field("noise_aware").and_then(|v| v.as_bool()),
        field("draws").and_then(|v| v.as_u64()),
    ) else {
        eprintln!(
            "error: candidate {id} of {} was evaluated by a uhc that did not record its training seed and settings, so its row cannot be repeated exactly; `uhc eval` on its text with --task gives a fresh evaluation",
            db
        );
        return EXIT_PROBLEMS;
    };
    let text = match uhc::driver::read_text(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return EXIT_USAGE;
        }
    };
    let name = file.display().to_string();
    let mut sources = uhc::Sources::new();
    let root = sources.add(name.clone(), text.clone());
    let (compiled, diags) = uhc::compile(&mut sources, root, &uhc::driver::FsResolver);
    if !diags.is_empty() {
        eprint!("{}", sources.render_human(&diags, false));
    }
    let Some(compiled) = compiled else {
        return EXIT_PROBLEMS;
    };
    let folder = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let resolver = std::sync::Arc::new(uhc::driver::SandboxResolver { root: folder });
    let search = config.get("search").and_then(|s| s.as_str());
    let cx = match SearchContext::new(&name, &text, &compiled, search, resolver) {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let cc = match cx.compile_candidate(record.canonical_text.as_deref().unwrap_or(&record.text)) {
        Ok(cc) => cc,
        Err(rejection) => {
            eprintln!(
                "error: candidate {id} no longer compiles against {name} ({}):\n{}",
                rejection.reason(),
                rejection.diagnostics()
            );
            return EXIT_PROBLEMS;
        }
    };
    if record.structural_hash.as_deref() != Some(cc.hash.as_str()) {
        eprintln!(
            "error: candidate {id} lowers to another graph against {name} than it did in the search (hash {} instead of {}); was the file or its hardware changed?",
            cc.hash,
            record.structural_hash.as_deref().unwrap_or("?")
        );
        return EXIT_PROBLEMS;
    }
    let train = TrainSpec {
        epochs: epochs as usize,
        batch: batch as usize,
        lr,
        noise_aware,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600);
    // The row was scored on the split it names (rows from before validation splits name
    // none and were scored on the test split); the test split is scored as well.
    let split = match field("split").and_then(|v| v.as_str()) {
        Some("validation") => HeldOut::Validation,
        _ => HeldOut::Test,
    };
    let trainer = Trainer::default();
    let evaluate = |on: HeldOut| {
        trainer.evaluate(&EvalRequest {
            compiled: &cc.compiled,
            arch: &cc.arch.name,
            task: &cx.task,
            train: &train,
            draws: draws as usize,
            seed,
            deadline,
            split: on,
        })
    };
    let (scores, test) = match (evaluate(split), split) {
        (Ok(s), HeldOut::Test) => (s, s),
        (Ok(s), HeldOut::Validation) => match evaluate(HeldOut::Test) {
            Ok(t) => (s, t),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_PROBLEMS;
            }
        },
        (Err(e), _) => {
            eprintln!("error: {e}");
            return EXIT_PROBLEMS;
        }
    };
    let pairs = [
        ("accuracy", scores.accuracy, stored.accuracy),
        (
            "noisy_accuracy_mean",
            scores.noisy_accuracy_mean,
            stored.noisy_accuracy_mean,
        ),
        (
            "noisy_accuracy_std",
            scores.noisy_accuracy_std,
            stored.noisy_accuracy_std,
        ),
        (
            "noisy_accuracy_p5",
            scores.noisy_accuracy_p5,
            stored.noisy_accuracy_p5,
        ),
    ];
    let differs: Vec<String> = pairs
        .iter()
        .filter(|p| p.1.to_bits() != p.2.to_bits())
        .map(|p| format!("{} {} (stored {})", p.0, p.1, p.2))
        .collect();
    let energy_j = stored.energy_pj * 1e-12;
    if json {
        let v = serde_json::json!({
            "candidate": id,
            "arch": cc.arch.name,
            "task": cx.task.name,
            "hash": cc.hash,
            "seed": seed,
            "epochs": epochs,
            "batch": batch,
            "lr": lr,
            "noise_aware": noise_aware,
            "draws": draws,
            "accuracy": scores.accuracy,
            "noisy_accuracy_mean": scores.noisy_accuracy_mean,
            "noisy_accuracy_std": scores.noisy_accuracy_std,
            "noisy_accuracy_p5": scores.noisy_accuracy_p5,
            "accuracy_drop": scores.accuracy - scores.noisy_accuracy_mean,
            "split": split.as_str(),
            "test": {
                "split": "test",
                "accuracy": test.accuracy,
                "noisy_accuracy_mean": test.noisy_accuracy_mean,
                "noisy_accuracy_std": test.noisy_accuracy_std,
                "noisy_accuracy_p5": test.noisy_accuracy_p5,
            },
            "energy_j": energy_j,
            "reproduced": differs.is_empty(),
        });
        println!("{v}");
    } else {
        println!(
            "candidate {id} ({}) of {}, {} task: seed {seed}, {epochs} epochs, batch {batch}, lr {lr}{}, {draws} draws",
            cc.arch.name,
            db,
            cx.task.name,
            if noise_aware { ", noise-aware" } else { "" }
        );
        let show = |label: &str, s: &uhc::train::Scores| {
            println!("  {label} split");
            println!("    accuracy           {:.4}", s.accuracy);
            println!(
                "    noisy accuracy     {:.4} ± {:.4} (p5 {:.4}, {draws} draws)",
                s.noisy_accuracy_mean, s.noisy_accuracy_std, s.noisy_accuracy_p5
            );
        };
        if split == HeldOut::Validation {
            show(
                "validation (the stored row; the search selected on it)",
                &scores,
            );
        }
        show("test", &test);
        println!(
            "  energy / inference   {}",
            uhc::check::units::format_si(energy_j, uhc::check::units::Dim::Energy)
        );
    }
    if differs.is_empty() {
        eprintln!("reproduces the stored row of candidate {id} bit for bit");
        EXIT_OK
    } else {
        eprintln!(
            "error: the scores differ from the stored row: {}",
            differs.join(", ")
        );
        EXIT_PROBLEMS
    }
}
