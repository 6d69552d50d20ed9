//! Training and evaluation of a [`Program`]: the loss, Adam, the seeded mini-batch loop
//! (optionally noise-aware), Monte Carlo robustness, and the [`Trainer`] the search calls.
//!
//! Everything is single-threaded and seeded: the same graph, data, spec and seed give
//! bit-identical parameters and scores.

mod data;
pub mod file;
mod loss;

pub use data::{load_task, HeldOut, TaskData};
pub use loss::{accuracy, cross_entropy, DEFAULT_TEMPERATURE};

use crate::backend::WeightSpace;
use crate::check::model::{TaskSpec, TrainSpec};
use crate::data::{BatchSampler, DataError};
use crate::ir::Graph;
use crate::runtime::{gather_rows, mix, NoiseDraw, Params, Program, RuntimeError, Workspace};
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex};

/// When to give up training: asked before every mini-batch. Training reads no clock; the
/// search gives it its per-candidate deadline as one of these.
#[derive(Clone)]
pub struct Stop(Arc<dyn Fn() -> bool + Send + Sync>);

impl Stop {
    pub fn when(f: impl Fn() -> bool + Send + Sync + 'static) -> Stop {
        Stop(Arc::new(f))
    }
    pub fn now(&self) -> bool {
        (self.0)()
    }
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stop(..)")
    }
}

/// Two stop conditions are equal when they are the same one.
impl PartialEq for Stop {
    fn eq(&self, other: &Stop) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Errors of training and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The caller's [`Stop`] said stop (in a search: the per-candidate deadline).
    #[error("the evaluation deadline passed after {steps} training steps; raise the search's `timeout` or lower `epochs`")]
    Deadline { steps: usize },
    #[error("architecture `{arch}` has {outputs} outputs but task `{task}` has {classes} classes; end the architecture with a width-{classes} layer")]
    Classes {
        arch: String,
        task: String,
        outputs: usize,
        classes: usize,
    },
    #[error("the training loss became non-finite at epoch {epoch}; lower the learning rate")]
    Diverged { epoch: usize },
    #[error("invalid training setting: {0}")]
    Setting(String),
    #[error("no architecture `{0}` in the compiled file")]
    UnknownArch(String),
    #[error("task data: {0}")]
    Data(#[from] DataError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Settings beyond the `train` item.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Softmax temperature on normalised intensities (see [`cross_entropy`]).
    pub temperature: f64,
    /// Given up with [`TrainError::Deadline`] once it says stop (asked before every batch).
    pub stop: Option<Stop>,
    /// Cosine decay of the learning rate from `lr` to 0 over the run (Loshchilov & Hutter
    /// 2017): large early steps, fine ones at the end. On by default: on `digits4` (3 seeds,
    /// 20 epochs, lr 0.01, weight space) `digits_small` reaches 0.908 with it and 0.879
    /// without; the fp32 MLP 0.927 and 0.932. Noise-aware training's two halves each get
    /// their own decay.
    pub cosine: bool,
    /// Train in the space the backend offers ([`WeightSpace`]; MZI: each `linear` as a
    /// complex matrix, programmed onto phases afterwards). Noise-aware training then spends
    /// its first half of the epochs this way, clean, and the second half on the phases with
    /// noise. On by default: on `digits4` (3 seeds, 20 epochs, lr 0.005), `digits_small`
    /// reaches 0.894 clean instead of 0.850, and noise-aware on `mzi_worst` 0.831 noisy
    /// instead of 0.754 (constant lr).
    pub weight_space: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            temperature: DEFAULT_TEMPERATURE,
            stop: None,
            cosine: true,
            weight_space: true,
        }
    }
}

/// One epoch's figures, for progress output.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Clean accuracy on the validation split (the test split when validation is empty).
    pub accuracy: f64,
    /// `"validation"` or `"test"`.
    pub split: &'static str,
}

/// Adam (Kingma & Ba 2015) with the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate of the next step.
    pub lr: f64,
    m: Params,
    v: Params,
    t: i32,
}

impl Adam {
    pub fn new(params: &Params, lr: f64) -> Adam {
        Adam {
            lr,
            m: params.zeros_like(),
            v: params.zeros_like(),
            t: 0,
        }
    }

    /// One step on `p` with gradient `g` (same shape).
    pub fn step(&mut self, p: &mut Params, g: &Params) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        for (((pb, gb), mb), vb) in p
            .blocks
            .iter_mut()
            .zip(&g.blocks)
            .zip(&mut self.m.blocks)
            .zip(&mut self.v.blocks)
        {
            for (((x, &gr), m), v) in pb.iter_mut().zip(gb).zip(mb.iter_mut()).zip(vb.iter_mut()) {
                *m = B1 * *m + (1.0 - B1) * gr;
                *v = B2 * *v + (1.0 - B2) * gr * gr;
                *x -= self.lr * (*m / c1) / ((*v / c2).sqrt() + EPS);
            }
        }
    }
}

/// Trains `program` in place on `data.train` for `spec.epochs` epochs of Adam with
/// mini-batches of `spec.batch` drawn by [`BatchSampler`] from `seed`. With
/// `spec.noise_aware` every mini-batch runs on a fresh [`NoiseDraw`] of the graph's target. Calls
/// `on_epoch` (when given) after each epoch with the loss and a clean held-out accuracy.
/// With `opts.weight_space`, a backend that offers a [`WeightSpace`] (MZI: `linear`s as
/// matrices) trains in it for all epochs, or for the first half before noise-aware
/// training on the hardware's own parameters.
pub fn train(
    program: &mut Program,
    data: &TaskData,
    spec: &TrainSpec,
    seed: u64,
    opts: &TrainOptions,
    mut on_epoch: Option<&mut dyn FnMut(&EpochStats)>,
) -> Result<Vec<f64>, TrainError> {
    if opts.weight_space {
        if let Some(mut twin) = Twin::of(program)? {
            if !spec.noise_aware {
                let losses = train_loop(
                    &mut twin.program,
                    data,
                    spec,
                    seed,
                    opts,
                    0,
                    on_epoch,
                    Some(twin.space.as_mut()),
                )?;
                twin.program_onto(program)?;
                return Ok(losses);
            }
            // Noise-aware: the first half of the epochs clean in weight space (a good
            // starting point fast), the rest on the phases with a noise draw per batch.
            let warm = TrainSpec {
                epochs: spec.epochs / 2,
                noise_aware: false,
                ..spec.clone()
            };
            let mut losses = train_loop(
                &mut twin.program,
                data,
                &warm,
                seed,
                opts,
                0,
                on_epoch.as_deref_mut(),
                Some(twin.space.as_mut()),
            )?;
            twin.program_onto(program)?;
            let rest = TrainSpec {
                epochs: spec.epochs - warm.epochs,
                ..spec.clone()
            };
            losses.extend(train_loop(
                program,
                data,
                &rest,
                seed,
                opts,
                warm.epochs,
                on_epoch,
                None,
            )?);
            return Ok(losses);
        }
    }
    train_loop(program, data, spec, seed, opts, 0, on_epoch, None)
}

/// A program's twin in its backend's [`WeightSpace`]: the space and the twin graph's
/// program, holding the parameters trained instead of the hardware's.
struct Twin {
    space: Box<dyn WeightSpace>,
    program: Program,
}

impl Twin {
    /// The twin of `hardware` computing what it computes, or `None` when its backend
    /// trains its own parameters directly.
    fn of(hardware: &Program) -> Result<Option<Twin>, TrainError> {
        let g = hardware.graph();
        let Some((space, blocks)) = g
            .target
            .backend
            .backend()
            .weight_space(g, &hardware.params.blocks)
            .map_err(RuntimeError::from)?
        else {
            return Ok(None);
        };
        // The seed is irrelevant: the twin's parameters are replaced at once.
        let mut program = Program::new(space.graph(), 0)?;
        program.set_params(Params { blocks })?;
        Ok(Some(Twin { space, program }))
    }

    /// Programs the twin's trained parameters onto `hardware`.
    fn program_onto(&mut self, hardware: &mut Program) -> Result<(), TrainError> {
        let blocks = self
            .space
            .program(&mut self.program.params.blocks, &hardware.params.blocks)
            .map_err(RuntimeError::from)?;
        hardware.set_params(Params { blocks })?;
        Ok(())
    }
}

/// The mini-batch loop of [`train`] over epochs `first_epoch..first_epoch + spec.epochs`
/// (which picks the batch orders and numbers the progress); `space` keeps a twin's
/// parameters physical.
#[allow(clippy::too_many_arguments)]
fn train_loop<'f>(
    program: &mut Program,
    data: &TaskData,
    spec: &TrainSpec,
    seed: u64,
    opts: &TrainOptions,
    first_epoch: usize,
    mut on_epoch: Option<&mut (dyn FnMut(&EpochStats) + 'f)>,
    mut space: Option<&mut dyn WeightSpace>,
) -> Result<Vec<f64>, TrainError> {
    if !(spec.lr.is_finite() && spec.lr > 0.0) {
        return Err(TrainError::Setting(format!(
            "lr = {} must be a positive number",
            spec.lr
        )));
    }
    check_classes(program, data)?;
    let sampler = BatchSampler::new(data.train_y.len(), spec.batch, mix(seed, 2))?;
    let mut noise_rng = StdRng::seed_from_u64(mix(seed, 3));
    let mut adam = Adam::new(&program.params, spec.lr);
    let intensities = program.outputs_intensities();
    let mut losses = Vec::with_capacity(spec.epochs);
    let mut steps = 0;
    let total = (spec.epochs * sampler.batches_per_epoch()).max(1) as f64;
    // Row-major once, so gathering a mini-batch copies contiguous rows.
    let train_x = data.train_x.as_standard_layout();
    let mut ws = Workspace::default();
    for epoch in first_epoch..first_epoch + spec.epochs {
        let order = sampler.epoch(epoch as u64);
        let (mut sum, mut count) = (0.0, 0usize);
        for idx in order.batches() {
            if opts.stop.as_ref().is_some_and(Stop::now) {
                return Err(TrainError::Deadline { steps });
            }
            let x = gather_rows(train_x.view(), idx);
            let y: Vec<usize> = idx.iter().map(|&i| data.train_y[i]).collect();
            let draw = spec.noise_aware.then(|| {
                let g = program.graph();
                NoiseDraw::sample(&g.target, g.phase_bits, &mut noise_rng)
            });
            let (scores, tape) = program.forward_tape_in(x.view(), draw.as_ref(), &mut ws)?;
            let (l, g) = cross_entropy(scores.view(), &y, intensities, opts.temperature);
            if !l.is_finite() {
                return Err(TrainError::Diverged { epoch: epoch + 1 });
            }
            let grads = program.backward(&tape, g.view())?;
            ws.recycle(tape);
            if opts.cosine {
                adam.lr = spec.lr * 0.5 * (1.0 + (PI * steps as f64 / total).cos());
            }
            adam.step(&mut program.params, &grads);
            program.project();
            if let Some(space) = space.as_deref_mut() {
                space.project(&mut program.params.blocks);
            }
            sum += l * idx.len() as f64;
            count += idx.len();
            steps += 1;
        }
        let mean = sum / count.max(1) as f64;
        losses.push(mean);
        if let Some(cb) = on_epoch.as_deref_mut() {
            let (x, y, split) = data.held_out();
            let s = program.forward(x, None)?;
            cb(&EpochStats {
                epoch: epoch + 1,
                loss: mean,
                accuracy: accuracy(s.view(), y),
                split,
            });
        }
    }
    Ok(losses)
}

fn check_classes(program: &Program, data: &TaskData) -> Result<(), TrainError> {
    if program.output_width() != data.classes {
        return Err(TrainError::Classes {
            arch: program.graph().arch.clone(),
            task: data.name.clone(),
            outputs: program.output_width(),
            classes: data.classes,
        });
    }
    Ok(())
}

/// Accuracy figures an evaluation measures by training and Monte Carlo testing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    pub noisy_accuracy_mean: f64,
    pub noisy_accuracy_std: f64,
    pub noisy_accuracy_p5: f64,
}

/// Accuracy on clean hardware and over Monte Carlo hardware instances.
#[derive(Clone, Debug, PartialEq)]
pub struct Robustness {
    pub accuracy: f64,
    /// Accuracy on each noise draw.
    pub noisy: Vec<f64>,
    pub noisy_mean: f64,
    /// Sample standard deviation (n − 1); 0 for fewer than two draws.
    pub noisy_std: f64,
    /// 5th percentile, linear interpolation between order statistics (NumPy's default).
    pub noisy_p5: f64,
}

impl Robustness {
    /// Clean accuracy minus the mean noisy accuracy.
    pub fn drop(&self) -> f64 {
        self.accuracy - self.noisy_mean
    }

    pub fn scores(&self) -> Scores {
        Scores {
            accuracy: self.accuracy,
            noisy_accuracy_mean: self.noisy_mean,
            noisy_accuracy_std: self.noisy_std,
            noisy_accuracy_p5: self.noisy_p5,
        }
    }
}

/// Clean accuracy on `(x, y)`, then accuracy on `draws` instances of the graph's target seeded
/// from `seed` (one instance per draw, applied to the whole set).
pub fn robustness(
    program: &Program,
    x: ArrayView2<f64>,
    y: &[usize],
    draws: usize,
    seed: u64,
) -> Result<Robustness, TrainError> {
    let accuracy = accuracy(program.forward(x, None)?.view(), y);
    let mut rng = StdRng::seed_from_u64(mix(seed, 4));
    let mut noisy = Vec::with_capacity(draws);
    let mut ws = Workspace::default();
    for _ in 0..draws {
        let d = NoiseDraw::sample(
            &program.graph().target,
            program.graph().phase_bits,
            &mut rng,
        );
        noisy.push(self::accuracy(
            program.forward_in(x, Some(&d), &mut ws)?.view(),
            y,
        ));
    }
    let (noisy_mean, noisy_std, noisy_p5) = summary(&noisy);
    Ok(Robustness {
        accuracy,
        noisy,
        noisy_mean,
        noisy_std,
        noisy_p5,
    })
}

/// Mean, sample standard deviation and 5th percentile (NaN for an empty slice).
fn summary(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = 0.05 * (n - 1.0);
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    let p5 = s[lo] + (pos - lo as f64) * (s[hi] - s[lo]);
    (mean, std, p5)
}

/// Result of [`Trainer::run`]: the trained program, per-epoch losses, the scores.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub program: Program,
    pub losses: Vec<f64>,
    pub robustness: Robustness,
}

/// Trains and scores candidates; caches each task's prepared data (the search evaluates
/// many candidates on one task). The search's `Evaluator` is implemented for it in
/// `search::engine` (training knows nothing of the search).
#[derive(Default)]
pub struct Trainer {
    cache: Mutex<HashMap<String, Arc<TaskData>>>,
    pub options: TrainOptions,
}

impl Trainer {
    pub fn new(options: TrainOptions) -> Trainer {
        Trainer {
            cache: Mutex::new(HashMap::new()),
            options,
        }
    }

    /// The task's prepared data, loaded once per task definition.
    pub fn data(&self, task: &TaskSpec) -> Result<Arc<TaskData>, TrainError> {
        let key = serde_json::to_string(task).unwrap_or_else(|_| task.name.clone());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = cache.get(&key) {
            return Ok(d.clone());
        }
        let d = Arc::new(load_task(task)?);
        cache.insert(key, d.clone());
        Ok(d)
    }

    /// Builds, trains and scores `graph` on `task`: parameters initialised and trained
    /// from `seed`, robustness measured on the split `on` with `draws` instances. The
    /// same request scored on either split trains the same parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        graph: &Graph,
        task: &TaskSpec,
        spec: &TrainSpec,
        draws: usize,
        seed: u64,
        on: HeldOut,
        stop: Option<Stop>,
        on_epoch: Option<&mut dyn FnMut(&EpochStats)>,
    ) -> Result<Outcome, TrainError> {
        let data = self.data(task)?;
        let mut program = Program::new(graph, mix(seed, 1))?;
        let opts = TrainOptions {
            stop,
            ..self.options.clone()
        };
        let losses = train(&mut program, &data, spec, seed, &opts, on_epoch)?;
        let (x, y, _) = data.split(on);
        let robustness = robustness(&program, x, y, draws, seed)?;
        Ok(Outcome {
            program,
            losses,
            robustness,
        })
    }
}

/// Scores of `program` on `x` as a row per sample (kept public for the CLI and benches).
pub fn predict(program: &Program, x: ArrayView2<f64>) -> Result<Array2<f64>, TrainError> {
    Ok(program.forward(x, None)?)
}

#[cfg(test)]
mod tests;
