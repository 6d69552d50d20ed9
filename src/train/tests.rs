use super::*;
use crate::search::engine::{EvalError, EvalRequest, Evaluator};
use ndarray::Array2;
use rand::Rng;
use std::time::{Duration, Instant};

const FILE: &str = r#"
use "hw/mzi.uh"
use "hw/digital.uh"
task digits4 {
    dataset = digits
    encode [pool(2), standardize]
    classes = 10
    split { train = 0.7, validation = 0.1, test = 0.2, seed = 0 }
}
arch small on mzi_worst {
    input x: real[16]
    h = linear(x, 8)
    a = modrelu(h, bias = 0.1)
    output detect(linear(a, 10))
}
arch mlp on cpu_fp32 {
    input x: real[16]
    output linear(relu(linear(x, 8)), 10)
}
"#;

fn compiled() -> crate::Compiled {
    let (c, diags, sources) = crate::check_source("t.uh", FILE);
    c.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)))
}

fn random(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.random_range(0.05..1.0))
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let s = random(4, 5, 1);
    let y = [0, 3, 4, 1];
    for (intens, t) in [(true, 10.0), (true, 3.0), (false, 1.0)] {
        let (_, g) = cross_entropy(s.view(), &y, intens, t);
        let h = 1e-6;
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for ix in ndarray::indices_of(&s) {
            let mut a = s.clone();
            a[ix] += h;
            let up = cross_entropy(a.view(), &y, intens, t).0;
            a[ix] -= 2.0 * h;
            let down = cross_entropy(a.view(), &y, intens, t).0;
            let fd = (up - down) / (2.0 * h);
            num += (fd - g[ix]).powi(2);
            den += g[ix].powi(2);
        }
        assert!(num.sqrt() / den.sqrt() < 1e-6, "{intens} {t}");
    }
    // Known value: uniform logits over 5 classes → ln 5.
    let (l, _) = cross_entropy(Array2::<f64>::ones((2, 5)).view(), &[1, 2], false, 1.0);
    assert!((l - 5f64.ln()).abs() < 1e-15);
    // Scale invariance on intensities.
    let a = cross_entropy(s.view(), &y, true, 10.0).0;
    let b = cross_entropy((&s * 7.0).view(), &y, true, 10.0).0;
    assert!((a - b).abs() < 1e-9);
}

#[test]
fn accuracy_and_summary_statistics() {
    let s = ndarray::array![[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]];
    assert_eq!(accuracy(s.view(), &[1, 0, 0]), 2.0 / 3.0);
    let v: Vec<f64> = (0..21).map(f64::from).collect();
    let (m, sd, p5) = summary(&v);
    assert_eq!(m, 10.0);
    // Sample std of 0..=20: √(Σ(i−10)²/20) = √38.5.
    assert!((sd - 38.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(p5, 1.0); // position 0.05·20 = 1
    let (_, _, p) = summary(&[3.0, 1.0, 2.0]);
    assert!((p - 1.1).abs() < 1e-12); // position 0.1 between 1 and 2
}

#[test]
fn adam_first_step_is_lr_and_it_minimises_a_quadratic() {
    let mut p = Params {
        blocks: vec![vec![3.0, -2.0], vec![], vec![0.5]],
    };
    let mut adam = Adam::new(&p, 0.1);
    let g = |p: &Params| Params {
        blocks: p
            .blocks
            .iter()
            .map(|b| b.iter().map(|x| 2.0 * x).collect())
            .collect(),
    };
    let g0 = g(&p);
    adam.step(&mut p, &g0);
    // Bias correction makes the first step exactly lr·sign(g) (up to ε).
    assert!((p.blocks[0][0] - 2.9).abs() < 1e-8);
    assert!((p.blocks[0][1] + 1.9).abs() < 1e-8);
    for _ in 0..2000 {
        let gr = g(&p);
        adam.step(&mut p, &gr);
    }
    assert!(p.blocks.iter().flatten().all(|x| x.abs() < 1e-2), "{p:?}");
}

#[test]
fn training_is_deterministic_and_learns() {
    let c = compiled();
    let task = c.checked.task("digits4").unwrap();
    let trainer = Trainer::default();
    let spec = TrainSpec {
        epochs: 2,
        noise_aware: true,
        ..TrainSpec::default()
    };
    let g = c.graph("small").unwrap();
    let mut seen = Vec::new();
    let mut cb = |e: &EpochStats| seen.push(e.clone());
    let a = trainer
        .run(g, task, &spec, 3, 7, HeldOut::Test, None, Some(&mut cb))
        .unwrap();
    let b = trainer
        .run(g, task, &spec, 3, 7, HeldOut::Test, None, None)
        .unwrap();
    // Scored on the validation split instead, the same request trains the very same
    // network (same losses, epoch by epoch) and scores it on other samples.
    let v = trainer
        .run(g, task, &spec, 3, 7, HeldOut::Validation, None, None)
        .unwrap();
    assert_eq!(v.losses, b.losses);
    let data = trainer.data(task).unwrap();
    assert!(!data.validation_y.is_empty());
    assert_eq!(data.split(HeldOut::Validation).2, "validation");
    assert_eq!(data.split(HeldOut::Test).1.len(), data.test_y.len());
    assert_eq!(a.program.params, b.program.params);
    assert_eq!(a.robustness, b.robustness);
    assert_eq!(a.losses, b.losses);
    let other = trainer
        .run(g, task, &spec, 3, 8, HeldOut::Test, None, None)
        .unwrap();
    assert_ne!(a.program.params, other.program.params);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].split, "validation");
    assert!(a.losses[1] < a.losses[0]);
    // Ten classes: chance is 0.1; two clean epochs of a width-8 net already do far better.
    let clean = TrainSpec {
        noise_aware: false,
        ..spec.clone()
    };
    let c = trainer
        .run(g, task, &clean, 0, 7, HeldOut::Test, None, None)
        .unwrap();
    assert!(c.robustness.accuracy > 0.5, "{:?}", c.robustness);
    assert!(c.robustness.noisy.is_empty() && c.robustness.noisy_mean.is_nan());
    assert_eq!(a.robustness.noisy.len(), 3);
    assert!(
        (a.robustness.drop() - (a.robustness.accuracy - a.robustness.noisy_mean)).abs() < 1e-15
    );
    // The attenuators stayed physical.
    for (n, b) in g.nodes.iter().zip(&a.program.params.blocks) {
        if matches!(n.prim, crate::ir::Prim::Attenuate) {
            assert!(b.iter().all(|v| v.abs() <= 1.0));
        }
    }
}

#[test]
fn evaluator_scores_digital_and_honours_the_deadline() {
    let c = compiled();
    let task = c.checked.task("digits4").unwrap();
    let trainer = Trainer::default();
    let spec = TrainSpec {
        epochs: 2,
        ..TrainSpec::default()
    };
    let mut req = EvalRequest {
        compiled: &c,
        arch: "mlp",
        task,
        train: &spec,
        draws: 4,
        seed: 1,
        deadline: Instant::now() + Duration::from_secs(600),
        split: HeldOut::Test,
    };
    let s = trainer.evaluate(&req).unwrap();
    assert!(s.accuracy > 0.5);
    // Digital hardware has no noise: every draw equals the clean accuracy.
    assert_eq!(s.noisy_accuracy_mean, s.accuracy);
    assert_eq!(s.noisy_accuracy_std, 0.0);
    req.deadline = Instant::now();
    let e = trainer.evaluate(&req).unwrap_err();
    assert!(
        matches!(e, EvalError::Train(TrainError::Deadline { .. })),
        "{e}"
    );
    assert_eq!(e.failure(), crate::search::store::Failure::Timeout);
    req.arch = "nope";
    assert!(matches!(
        trainer.evaluate(&req),
        Err(EvalError::Train(TrainError::UnknownArch(a))) if a == "nope"
    ));
}

#[test]
fn class_mismatch_and_bad_settings_are_errors() {
    let c = compiled();
    let mut task = c.checked.task("digits4").unwrap().clone();
    let g = c.graph("mlp").unwrap();
    let trainer = Trainer::default();
    let spec = TrainSpec {
        epochs: 1,
        ..TrainSpec::default()
    };
    let bad_lr = TrainSpec {
        lr: -1.0,
        ..spec.clone()
    };
    assert!(matches!(
        trainer.run(g, &task, &bad_lr, 1, 0, HeldOut::Test, None, None),
        Err(TrainError::Setting(_))
    ));
    task.classes = 9;
    task.name = "digits9".into();
    assert!(matches!(
        trainer.run(g, &task, &spec, 1, 0, HeldOut::Test, None, None),
        Err(TrainError::Classes { .. }) | Err(TrainError::Data(_))
    ));
}
