use super::*;
use crate::backend::mzi::NonIdeal;
use crate::check::model::Noise;
use crate::ir::Target;
use rand::Rng;
use std::sync::Arc;

/// Compiles `body` (architecture items) after the standard hardware imports.
pub(crate) fn compile(body: &str, arch: &str) -> (Graph, Target) {
    let text = format!("use \"hw/mzi.uh\"\nuse \"hw/digital.uh\"\n{body}");
    let (c, diags, sources) = crate::check_source("test.uh", &text);
    let c = c.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
    let g = c.graph(arch).expect("arch").clone();
    let target = g.target;
    (g, target)
}

fn random_x(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0))
}

/// A noise draw with every continuous effect on and quantisation off (rounding is
/// piecewise constant, so finite differences cannot see through it).
fn smooth_draw() -> NoiseDraw {
    NoiseDraw {
        seed: 99,
        model: Some(Arc::new(NonIdeal {
            phase_bits: None,
            phase_sigma: 0.05,
            splitter_sigma: 0.02,
            loss_db_per_mzi: 1.0,
            crosstalk: 0.02,
            ..NonIdeal::IDEAL
        })),
        detector_sigma: 0.05,
    }
}

/// The mesh model a draw carries.
fn mesh_model(d: &NoiseDraw) -> &NonIdeal {
    d.model::<NonIdeal>().expect("an MZI draw")
}

/// Checks `backward` against central differences of `L = Σ c ∘ scores` for every
/// parameter (f64, h = 1e-6): ‖fd − analytic‖ / ‖analytic‖ < 1e-6 per block.
fn gradient_check(p: &Program, x: &Array2<f64>, draw: Option<&NoiseDraw>) {
    let (s, tape) = p.forward_tape(x.view(), draw).unwrap();
    let c = random_x(s.nrows(), s.ncols(), 5);
    let g = p.backward(&tape, c.view()).unwrap();
    let loss = |q: &Program| (&q.forward(x.view(), draw).unwrap() * &c).sum();
    let h = 1e-6;
    let mut checked = 0;
    for (b, block) in p.params.blocks.iter().enumerate() {
        if block.is_empty() {
            continue;
        }
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for k in 0..block.len() {
            let mut q = p.clone();
            q.params.blocks[b][k] += h;
            let up = loss(&q);
            q.params.blocks[b][k] -= 2.0 * h;
            let down = loss(&q);
            let fd = (up - down) / (2.0 * h);
            num += (fd - g.blocks[b][k]).powi(2);
            den += g.blocks[b][k].powi(2);
        }
        let rel = num.sqrt() / den.sqrt().max(1e-300);
        assert!(
            den > 0.0,
            "block {b} ({}) has zero gradient",
            p.graph.nodes[b].name
        );
        assert!(
            rel < 1e-6,
            "block {b} ({}): relative error {rel:.2e}",
            p.graph.nodes[b].name
        );
        checked += 1;
    }
    assert!(checked > 0);
}

const OPTICAL: &str = r#"
arch net on mzi_realistic {
    input x: real[6]
    h = linear(x, 5)
    a = modrelu(h, bias = 0.05)
    u = unitary(a)
    d = diag(u)
    e = eo_activation(d, alpha = 0.1, gain = 2.0, bias_phase = 1.0)
    w = linear(e, 7)
    output detect(linear(w, 4))
}
arch phased on mzi_realistic {
    input x: real[5]
    z = encode(x, mode = phase)
    h = linear(z, 5)
    output detect(h)
}
arch cdig on cpu_fp32 {
    input x: real[5]
    z = encode(x)
    u = unitary(z)
    d = diag(u)
    a = modrelu(d, bias = 0.05)
    h = linear(a, 3)
    output detect(h)
}
arch mlp on cpu_fp32 {
    input x: real[6]
    h = linear(x, 8)
    a = relu(h)
    t = tanh(linear(a, 7))
    s = sigmoid(linear(t, 5))
    output linear(s, 4)
}
arch mlp16 on gpu_fp16 {
    input x: real[6]
    h = linear(x, 8)
    output linear(relu(h), 4)
}
"#;

#[test]
fn optical_gradients_match_finite_differences_ideal_and_noisy() {
    let (g, _) = compile(OPTICAL, "net");
    let mut p = Program::new(&g, 3).unwrap();
    // Move attenuators off σ = 1 so their gradients are generic.
    for (n, b) in g.nodes.iter().zip(&mut p.params.blocks) {
        if matches!(n.prim, Prim::Attenuate | Prim::Diag) {
            b.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.9 - 0.05 * i as f64);
        }
    }
    let x = random_x(7, 6, 1);
    gradient_check(&p, &x, None);
    gradient_check(&p, &x, Some(&smooth_draw()));
}

#[test]
fn phase_encoding_gradients() {
    let (g, _) = compile(OPTICAL, "phased");
    let p = Program::new(&g, 4).unwrap();
    let x = random_x(6, 5, 2).mapv(|v| (v + 1.0) / 2.0);
    gradient_check(&p, &x, None);
    gradient_check(&p, &x, Some(&smooth_draw()));
}

#[test]
fn digital_gradients_match_finite_differences() {
    for arch in ["mlp", "cdig"] {
        let (g, _) = compile(OPTICAL, arch);
        let mut p = Program::new(&g, 5).unwrap().with_exact_arithmetic();
        // Non-zero biases and a non-trivial complex scale.
        for b in &mut p.params.blocks {
            let n = b.len();
            b.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v += 0.03 * ((i * 7 % 11) as f64 - 5.0) / n as f64);
        }
        let x = random_x(5, p.input_width(), 3);
        gradient_check(&p, &x, None);
    }
}

#[test]
fn ideal_square_layer_conserves_power() {
    // linear(x, 6) on 6 ports with σ = 1 is a unitary: total detected power = input power.
    let (g, _) = compile(
        "arch sq on mzi_realistic { input x: real[6]\n output detect(linear(x, 6)) }",
        "sq",
    );
    let p = Program::new(&g, 1).unwrap();
    let x = random_x(9, 6, 7);
    let s = p.forward(x.view(), None).unwrap();
    for (row, xr) in s.outer_iter().zip(x.outer_iter()) {
        let pin: f64 = xr.iter().map(|v| v * v).sum();
        assert!((row.sum() - pin).abs() < 1e-12 * pin.max(1.0));
    }
    // Loss-only hardware, calibrated (`NonIdeal::loss_gain`): each mesh column is unitary
    // MZI blocks times a, scaled by 1/a, plus the edge modes that skip an MZI (factor 1/a ≥ 1),
    // so every singular value lies in [1, a^(-depth)] and power never drops below the input;
    // the attenuators are calibrated exactly.
    let draw = NoiseDraw {
        seed: 1,
        model: Some(Arc::new(NonIdeal {
            loss_db_per_mzi: 0.5,
            ..NonIdeal::IDEAL
        })),
        detector_sigma: 0.0,
    };
    let s = p.forward(x.view(), Some(&draw)).unwrap();
    let ceiling = mesh_model(&draw).loss_gain(2 * 6).powi(2);
    let mut gained = false;
    for (row, xr) in s.outer_iter().zip(x.outer_iter()) {
        let pin: f64 = xr.iter().map(|v| v * v).sum();
        assert!(row.sum() >= pin * (1.0 - 1e-12), "{} < {pin}", row.sum());
        assert!(row.sum() <= pin * ceiling);
        gained |= row.sum() > pin * (1.0 + 1e-6);
    }
    assert!(
        gained,
        "edge modes skip MZIs, so some sample must gain power"
    );
}

#[test]
fn calibrated_uniform_loss_leaves_a_two_port_layer_ideal() {
    // On 2 ports every path crosses exactly one MZI per mesh: the calibration undoes the
    // loss exactly, so a loss-only instance computes the ideal layer.
    let (g, _) = compile(
        "arch two on mzi_realistic { input x: real[2]\n output detect(linear(x, 2)) }",
        "two",
    );
    let p = Program::new(&g, 4).unwrap();
    let x = random_x(7, 2, 8);
    let draw = NoiseDraw {
        seed: 2,
        model: Some(Arc::new(NonIdeal {
            loss_db_per_mzi: 3.0,
            ..NonIdeal::IDEAL
        })),
        detector_sigma: 0.0,
    };
    let ideal = p.forward(x.view(), None).unwrap();
    let lossy = p.forward(x.view(), Some(&draw)).unwrap();
    let diff = (&ideal - &lossy)
        .mapv(f64::abs)
        .fold(0.0f64, |m, &v| m.max(v));
    assert!(diff < 1e-12, "max difference {diff}");
    assert!((mesh_model(&draw).loss_gain(1) - 10f64.powf(3.0 / 20.0)).abs() < 1e-12);
}

#[test]
fn digital_formats_round_and_stay_close() {
    let (g, _) = compile(OPTICAL, "mlp16");
    let p = Program::new(&g, 2).unwrap();
    let exact = p.clone().with_exact_arithmetic();
    let x = random_x(8, 6, 3);
    let a = p.forward(x.view(), None).unwrap();
    let b = exact.forward(x.view(), None).unwrap();
    let diff = (&a - &b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
    let scale = b.mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
    assert!(diff > 0.0, "fp16 rounding had no effect");
    assert!(
        diff < 1e-2 * scale,
        "fp16 error {diff} too large for scale {scale}"
    );
}

#[test]
fn noise_draws_are_reproducible_and_distinct() {
    let (g, _) = compile(OPTICAL, "net");
    let p = Program::new(&g, 3).unwrap();
    let x = random_x(4, 6, 1);
    let hw_noise = Target {
        noise: Noise {
            phase_sigma: 0.05,
            splitter_sigma: 0.02,
            loss_per_mzi_db: 1.0,
            crosstalk: 0.02,
            detector_noise: 0.05,
        },
        ..g.target
    };
    let mut rng = StdRng::seed_from_u64(0);
    let d1 = NoiseDraw::sample(&hw_noise, g.phase_bits, &mut rng);
    let d2 = NoiseDraw::sample(&hw_noise, g.phase_bits, &mut rng);
    let a = p.forward(x.view(), Some(&d1)).unwrap();
    assert_eq!(a, p.forward(x.view(), Some(&d1)).unwrap());
    assert_ne!(a, p.forward(x.view(), Some(&d2)).unwrap());
    assert_ne!(a, p.forward(x.view(), None).unwrap());
}

#[test]
fn bad_inputs_are_errors() {
    let (g, _) = compile(OPTICAL, "net");
    let mut p = Program::new(&g, 3).unwrap();
    assert!(matches!(
        p.forward(random_x(2, 5, 0).view(), None),
        Err(RuntimeError::InputWidth { .. })
    ));
    let (s, tape) = p.forward_tape(random_x(2, 6, 0).view(), None).unwrap();
    assert!(matches!(
        p.backward(&tape, s.t()),
        Err(RuntimeError::GradShape { .. })
    ));
    let mut bad = p.params.clone();
    bad.blocks[2].pop();
    assert!(matches!(
        p.set_params(bad),
        Err(RuntimeError::ParamShape { .. })
    ));
    // A graph carries its target: a digital graph runs digitally, whatever else is around.
    let (gd, _) = compile(OPTICAL, "mlp");
    assert!(!gd.target.backend.backend().optical());
    // A mesh graph given a digital target by hand is refused, not a panic.
    let mut swapped = g.clone();
    swapped.target = gd.target;
    let err = Program::new(&swapped, 3).unwrap_err();
    assert!(
        matches!(
            &err,
            RuntimeError::NoKernel {
                backend: "digital",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot run"), "{err}");
}

#[test]
fn reusing_a_workspace_changes_no_bit() {
    let (g, _) = compile(OPTICAL, "net");
    let p = Program::new(&g, 3).unwrap();
    // Start from another program's tape: mismatched buffers must simply be replaced.
    let (gp, _) = compile(OPTICAL, "phased");
    let other = Program::new(&gp, 4).unwrap();
    let mut ws = Workspace::default();
    let xo = random_x(5, 5, 0).mapv(|v| (v + 1.0) / 2.0);
    ws.recycle(other.forward_tape(xo.view(), None).unwrap().1);
    let draw = smooth_draw();
    for (i, (n, d)) in [
        (7, None),
        (7, Some(&draw)),
        (3, None),
        (7, Some(&draw)),
        (7, None),
    ]
    .into_iter()
    .enumerate()
    {
        let x = random_x(n, 6, i as u64);
        let (s, tape) = p.forward_tape_in(x.view(), d, &mut ws).unwrap();
        let (s0, tape0) = p.forward_tape(x.view(), d).unwrap();
        assert_eq!(s, s0);
        let c = random_x(n, s.ncols(), 9);
        assert_eq!(
            p.backward(&tape, c.view()).unwrap(),
            p.backward(&tape0, c.view()).unwrap()
        );
        ws.recycle(tape);
        assert_eq!(p.forward_in(x.view(), d, &mut ws).unwrap(), s0);
    }
}
