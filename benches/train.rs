//! Training throughput and the cost of one candidate evaluation, the search's unit of work.
//!
//! `cargo bench --bench train` measures; without `--bench` (as `cargo test --all-targets`
//! runs it) it does a smoke run (one epoch, one draw). The network is `examples/digits_small.uh`
//! (linear 16 → modReLU → linear 10 → detect on a 16-port Clements mesh) on 4×4-pooled
//! digits. Baseline, measured in the same run: a plain ndarray complex forward + backward of
//! the same shapes (two dense complex matrices, modReLU, |z|², gradients of both matrices)
//! over the same samples in the same batches, i.e. what the net costs as free complex
//! matrices without meshes, noise or the graph interpreter.
//!
//! Every figure is the median of several repetitions, in wall-clock time (what a search
//! waits for) and in this thread's CPU time (which excludes the time other processes hold
//! the core, so it is the steadier figure on a shared machine); the ratio of the two says
//! how loaded the machine was.
//!
//! "training" is the default path (each `linear` trained as a matrix, then programmed onto
//! phases, see `uhc::backend::WeightSpace`); "training on phases" is `--phase-space`, the mesh
//! path noise-aware training also takes.

use ndarray::Array2;
use num_complex::Complex64 as C64;
use std::hint::black_box;
use std::time::Instant;
use uhc::check::model::TrainSpec;
use uhc::train::{TrainOptions, Trainer};

mod common;
use common::thread_cpu;

const FILE: &str = include_str!("../examples/digits_small.uh");

/// One epoch of the baseline over `n` samples in batches of `b`.
fn baseline_epoch(w1: &Array2<C64>, w2: &Array2<C64>, x: &Array2<C64>, b: usize) -> f64 {
    let n = x.ncols();
    let mut acc = 0.0;
    let mut start = 0;
    while start < n {
        let end = (start + b).min(n);
        let xb = x.slice(ndarray::s![.., start..end]);
        let h = w1.dot(&xb);
        let a = h.mapv(|z| {
            let r = z.norm();
            if r > 0.1 {
                z * ((r - 0.1) / r)
            } else {
                C64::new(0.0, 0.0)
            }
        });
        let y = w2.dot(&a);
        let i = y.mapv(|z| z.norm_sqr());
        // L = Σ I: G_y = 2 y, G_W2 = G_y a†, G_a = W2† G_y, modReLU ≈ identity, G_W1 = G_a x†.
        let gy = y.mapv(|z| z * 2.0);
        let gw2 = gy.dot(&a.t().mapv(|z| z.conj()));
        let ga = w2.t().mapv(|z| z.conj()).dot(&gy);
        let gw1 = ga.dot(&xb.t().mapv(|z| z.conj()));
        acc += i.sum() + gw1[[0, 0]].re + gw2[[0, 0]].re;
        start = end;
    }
    acc
}

/// Median wall-clock and median CPU seconds of `reps` calls of `f`.
fn median_times(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let (t, c) = (Instant::now(), thread_cpu());
        f();
        cpu.push(thread_cpu() - c);
        wall.push(t.elapsed().as_secs_f64());
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[reps / 2], cpu[reps / 2])
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let (compiled, diags, _) = uhc::check_source("digits_small.uh", FILE);
    let compiled = compiled.unwrap_or_else(|| panic!("example must compile: {diags:?}"));
    let graph = compiled.graph("digits_small").expect("arch");
    let task = compiled.checked.task("digits4").expect("task");
    let trainer = Trainer::new(TrainOptions::default());
    let data = trainer.data(task).expect("digits4 loads");
    let n = data.train_y.len();
    let (epochs, draws, reps) = if measure { (20, 20, 7) } else { (1, 1, 1) };
    let spec = TrainSpec {
        epochs,
        ..TrainSpec::default()
    };

    // Full candidate evaluation: train `epochs` + `draws` Monte Carlo draws (data cached).
    let mut acc = 0.0;
    let mut rep = 0u64;
    let (eval_s, eval_cpu) = median_times(reps, || {
        let o = trainer
            .run(
                graph,
                task,
                &spec,
                draws,
                rep,
                uhc::train::HeldOut::Test,
                None,
                None,
            )
            .expect("training runs");
        acc = o.robustness.accuracy;
        rep += 1;
    });

    // Training alone (no draws): samples per second.
    let (train_s, train_cpu) = median_times(reps, || {
        black_box(
            trainer
                .run(
                    graph,
                    task,
                    &spec,
                    0,
                    99,
                    uhc::train::HeldOut::Test,
                    None,
                    None,
                )
                .expect("training runs"),
        );
    });
    let samples_per_s = (epochs * n) as f64 / train_s;

    // The same on the phases (`--phase-space`; the path noise-aware training takes through
    // meshes): every batch realises four meshes and differentiates through them.
    let phase_trainer = Trainer::new(TrainOptions {
        weight_space: false,
        ..TrainOptions::default()
    });
    let (phase_s, phase_cpu) = median_times(reps, || {
        black_box(
            phase_trainer
                .run(
                    graph,
                    task,
                    &spec,
                    0,
                    99,
                    uhc::train::HeldOut::Test,
                    None,
                    None,
                )
                .expect("training runs"),
        );
    });
    let phase_rate = (epochs * n) as f64 / phase_s;

    // Baseline: the same shapes as free complex matrices, same samples and batches.
    let x = data.train_x.t().mapv(|v| C64::new(v, 0.0));
    let w1 = Array2::from_shape_fn((16, 16), |(r, c)| C64::new(0.1 * r as f64, 0.05 * c as f64));
    let w2 = Array2::from_shape_fn((10, 16), |(r, c)| C64::new(0.02 * c as f64, 0.1 * r as f64));
    let (base_s, base_cpu) = median_times(reps, || {
        for _ in 0..epochs {
            black_box(baseline_epoch(&w1, &w2, &x, spec.batch));
        }
    });
    let base_rate = (epochs * n) as f64 / base_s;

    if measure {
        println!(
            "train bench: digits_small (16-port Clements, 431 MZIs), {n} training samples, batch {}; medians of {reps}, wall [CPU]",
            spec.batch
        );
        println!(
            "  training            {samples_per_s:>10.0} samples/s  ({epochs} epochs in {train_s:.3} s [{train_cpu:.3} s])"
        );
        println!(
            "  training on phases  {phase_rate:>10.0} samples/s  ({epochs} epochs in {phase_s:.3} s [{phase_cpu:.3} s]), {:.2}× [{:.2}×] the baseline's time",
            phase_s / base_s,
            phase_cpu / base_cpu
        );
        println!(
            "  baseline (ndarray)  {base_rate:>10.0} samples/s  ({epochs} epochs in {base_s:.3} s [{base_cpu:.3} s])"
        );
        println!(
            "  ratio training / baseline time: {:.2}× [{:.2}×]",
            train_s / base_s,
            train_cpu / base_cpu
        );
        println!(
            "  one candidate evaluation ({epochs} epochs + {draws} draws): {eval_s:.3} s [{eval_cpu:.3} s] (target ≤ 0.15 s), {:.2}× [{:.2}×] the baseline's {epochs} epochs; test accuracy {acc:.3}",
            eval_s / base_s,
            eval_cpu / base_cpu
        );
        println!(
            "  load: wall / CPU = {:.2} (1 on an idle core)",
            eval_s / eval_cpu
        );
    }
}
