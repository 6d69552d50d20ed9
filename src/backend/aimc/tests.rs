//! The AIMC backend held to the published model (aihwkit's PCM fits), to its chip's energy
//! figure, to finite differences, and to the physics a noise draw should show.

use super::model::*;
use super::prims::Crossbar;
use super::*;
use crate::backend::kernel::NoiseDraw;
use crate::runtime::{Params, Program};
use crate::train::{robustness, HeldOut, Trainer};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TASK: &str = r#"
task digits4 {
    dataset = digits
    encode [pool(2), standardize]
    classes = 10
    split { train = 0.8, validation = 0.0, test = 0.2, seed = 0 }
}
"#;

fn compile(body: &str) -> crate::Compiled {
    let text = format!("use \"hw/aimc.uh\"\n{TASK}\n{body}");
    let (c, diags, sources) = crate::check_source("t.uh", &text);
    c.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)))
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-300)
}

#[test]
fn programming_noise_matches_aihwkits_polynomial_at_five_points() {
    // 0.26348 + 1.9650 x − 1.1731 x², worked by hand at x = g_T / 25 µS.
    for (g_t, want) in [
        (0.0, 0.26348),
        (6.25, 0.681_411_25),
        (12.5, 0.952_705),
        (18.75, 1.077_361_25),
        (25.0, 1.05538),
    ] {
        let got = prog_sigma_us(g_t, 25.0);
        assert!(
            close(got, want, 1e-12),
            "σ_prog({g_t} µS) = {got}, want {want}"
        );
        // Relative to g_max it does not depend on g_max (aihwkit rescales by g_max / 25).
        assert!(close(prog_sigma_us(2.0 * g_t, 50.0), 2.0 * want, 1e-12));
        assert!(close(prog_sigma(g_t / 25.0), want / 25.0, 1e-12));
    }
}

#[test]
fn drift_exponent_statistics_clamp_where_the_fits_say() {
    // At g_T = g_max both fits fall below their floors: 0.0244 → 0.049, −0.0059 → 0.008.
    assert_eq!(drift_mu(1.0), 0.049);
    assert_eq!(drift_sigma(1.0), 0.008);
    // At g_T = 1e-3 g_max both exceed their ceilings (0.1271 → 0.1, 0.0804 → 0.045);
    // a device programmed to 0 is clipped to the same.
    assert_eq!(drift_mu(1e-3), 0.1);
    assert_eq!(drift_sigma(1e-3), 0.045);
    assert_eq!(drift_mu(0.0), 0.1);
    assert_eq!(drift_sigma(0.0), 0.045);
    // In between the fits apply: ln x = −3 gives 0.0465 + 0.0244 and 0.0375 − 0.0059.
    let x = (-3.0f64).exp();
    assert!(close(drift_mu(x), 0.0709, 1e-12));
    assert!(close(drift_sigma(x), 0.0316, 1e-12));
    // The mean is continuous at both corners and never leaves [0.049, 0.1].
    for k in 0..=200 {
        let x = 10f64.powf(-4.0 + 4.0 * k as f64 / 200.0);
        assert!((0.049..=0.1).contains(&drift_mu(x)));
        assert!((0.008..=0.045).contains(&drift_sigma(x)));
    }
}

#[test]
fn read_noise_sigma_follows_the_formula() {
    // x_prog = 0.5: Q_s = 0.0088 / 0.5^0.65; t = 1 h + t0 = 3620 s, t_read = 250 ns.
    let q = 0.0088 / 0.5f64.powf(0.65);
    assert!(close(q_s(0.5), q, 1e-12));
    let t: f64 = 3620.0;
    let want = 0.4 * q * ((t + 250e-9) / (2.0 * 250e-9)).ln().sqrt();
    assert!(close(read_sigma(0.4, 0.5, t, 250e-9), want, 1e-12));
    // ≈ 0.4 · 0.013809 · √22.703 = 0.02632.
    assert!(close(read_sigma(0.4, 0.5, t, 250e-9), 0.026_32, 1e-3));
    // Q_s is capped at 0.2 for small conductances, and σ grows as √ln t.
    assert_eq!(q_s(1e-4), 0.2);
    assert!(read_sigma(0.4, 0.5, 1e7, 250e-9) > read_sigma(0.4, 0.5, 1e3, 250e-9));
    // Drift: (t / t0)^(−ν), and nothing before t0.
    assert!(close(
        drift_factor(2000.0, 20.0, 0.05),
        100f64.powf(-0.05),
        1e-12
    ));
    assert_eq!(drift_factor(10.0, 20.0, 0.05), 1.0);
}

/// A crossbar kernel on `aimc_pcm` with only the named effects on.
fn crossbar(settings: &str) -> Crossbar {
    let c = compile(&format!(
        "hardware hw extends aimc_pcm {{ backend aimc {{ {settings} }} }}\n\
         arch a on hw {{ input x: real[4]\n output linear(x, 2) }}"
    ));
    Crossbar::new(&c.graph("a").unwrap().target)
}

#[test]
fn programmed_devices_have_the_models_statistics() {
    // 20 000 weights at x = 0.6: programming noise only, then drift only.
    let x = 0.6;
    let wn = Array2::from_elem((100, 200), x);
    let n = wn.len() as f64;
    let p = crossbar("drift = false, read_noise = false, drift_compensation = false")
        .program(&wn, &mut StdRng::seed_from_u64(1));
    let mean = p.g.sum() / n;
    let sd = (p.g.mapv(|g| (g - mean).powi(2)).sum() / (n - 1.0)).sqrt();
    // g⁻ targets 0 and is clipped at 0: max(σ₀ z, 0) has mean σ₀/√(2π) and variance
    // σ₀² (1/2 − 1/(2π)).
    let s0 = prog_sigma(0.0);
    let tau = 2.0 * std::f64::consts::PI;
    let half_mean = s0 / tau.sqrt();
    let half_var = s0 * s0 * (0.5 - 1.0 / tau);
    let want_sd = (prog_sigma(x).powi(2) + half_var).sqrt();
    assert!(
        (mean - (x - half_mean)).abs() < 4.0 * want_sd / n.sqrt(),
        "mean {mean}"
    );
    assert!(close(sd, want_sd, 0.03), "sd {sd} vs {want_sd}");
    // Drift only: the log of the decay of a device is −ν ln((t_inf + t0)/t0), ν ~ |N(μ, σ)|.
    let d = crossbar(
        "prog_noise = false, read_noise = false, drift_compensation = false, t_inference = 1 day",
    )
    .program(&wn, &mut StdRng::seed_from_u64(2));
    let l = ((86400.0 + 20.0) / 20.0f64).ln();
    let nus: Vec<f64> = d.g.iter().map(|g| -(g / x).ln() / l).collect();
    let mu = nus.iter().sum::<f64>() / n;
    let sigma = (nus.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!(
        (mu - drift_mu(x)).abs() < 4.0 * drift_sigma(x) / n.sqrt(),
        "μ_ν {mu}"
    );
    assert!(close(sigma, drift_sigma(x), 0.03), "σ_ν {sigma}");
    // Compensation undoes the mean decay: α ≈ E[(t/t0)^ν] over the array.
    let c = crossbar("prog_noise = false, read_noise = false, t_inference = 1 day")
        .program(&wn, &mut StdRng::seed_from_u64(2));
    assert!(close(c.alpha * c.g.sum() / n, x, 1e-9), "α {}", c.alpha);
    assert!(c.alpha > 1.5);
}

#[test]
fn one_256_by_256_mvm_costs_the_profiles_figures() {
    let c = compile(
        "arch pcm on aimc_pcm { input x: real[256]\n output linear(x, 256) }\n\
         arch rram on aimc_rram { input x: real[256]\n output linear(x, 256) }",
    );
    let pcm = c.graph("pcm").unwrap();
    let t = pcm.total_cost();
    assert_eq!(
        (t.tiles, t.mvms, t.dac, t.adc, t.macs),
        (1, 1, 256, 256, 65536)
    );
    // aimc_pcm: 0.205 pJ per MAC (2 ops at 9.76 TOPS/W, converters included), 13.43 nJ
    // for the full tile, plus 256 digital adds of 0.1 pJ.
    let e = crate::ir::energy_report(pcm).total;
    assert!(
        close(e, 65536.0 * 0.205e-12 + 256.0 * 0.1e-12, 1e-12),
        "{e}"
    );
    assert!(close(
        65536.0 * AimcSpec::DEFAULT.mac_energy,
        13.43e-9,
        1e-3
    ));
    // aimc_rram: 128×128 tiles, so 2 × 2 tiles; 100 fJ per MAC, 5.92 pJ per ADC output.
    let rram = c.graph("rram").unwrap();
    let t = rram.total_cost();
    assert_eq!((t.tiles, t.mvms, t.dac, t.adc), (4, 4, 512, 512));
    let e = crate::ir::energy_report(rram).total;
    let want = 65536.0 * 100e-15 + 512.0 * 5.92e-12 + 512.0 * 0.1e-12;
    assert!(close(e, want, 1e-12), "{e} vs {want}");
}

#[test]
fn large_layers_split_over_tiles_with_their_utilisation() {
    let c = compile(
        "arch a on aimc_pcm { input x: real[300]\n h = relu(linear(x, 600))\n output linear(h, 10) }",
    );
    let g = c.graph("a").unwrap();
    let costs: Vec<Cost> = g
        .nodes
        .iter()
        .filter(|n| n.prim == (Prim::Own { name: CROSSBAR }))
        .map(|n| n.cost)
        .collect();
    // 300 → 600: 2 row tiles × 3 column tiles; 600 → 10: 3 × 1.
    assert_eq!((costs[0].tiles, costs[0].dac, costs[0].adc), (6, 900, 1200));
    assert_eq!((costs[1].tiles, costs[1].dac, costs[1].adc), (3, 600, 30));
    let want = (300.0 * 600.0 + 600.0 * 10.0) / (9.0 * 65536.0);
    assert!(close(utilisation(g), want, 1e-12));
}

#[test]
fn gradients_match_finite_differences() {
    let c = compile(
        "arch a on aimc_pcm { input x: real[5]\n h = tanh(linear(x, 4))\n output linear(h, 3) }",
    );
    let p = Program::new(c.graph("a").unwrap(), 3)
        .unwrap()
        .with_exact_arithmetic();
    let mut rng = StdRng::seed_from_u64(4);
    let x = Array2::from_shape_fn((6, 5), |_| rng.random_range(-1.0..1.0));
    let w = Array2::from_shape_fn((6, 3), |_| rng.random_range(-1.0..1.0));
    let (s, tape) = p.forward_tape(x.view(), None).unwrap();
    let g = p.backward(&tape, w.view()).unwrap();
    let loss = |q: &Program| (&q.forward(x.view(), None).unwrap() * &w).sum();
    let _ = s;
    let h = 1e-6;
    for (b, block) in p.params.blocks.iter().enumerate() {
        for k in 0..block.len() {
            let mut q = p.clone();
            q.params.blocks[b][k] += h;
            let up = loss(&q);
            q.params.blocks[b][k] -= 2.0 * h;
            let fd = (up - loss(&q)) / (2.0 * h);
            assert!(
                (fd - g.blocks[b][k]).abs() < 1e-6 * (1.0 + fd.abs()),
                "block {b}[{k}]: fd {fd} vs {}",
                g.blocks[b][k]
            );
        }
    }
    assert!(g.blocks.iter().flatten().any(|v| v.abs() > 1e-3));
}

#[test]
fn draws_are_seeded_reproducible_and_noisy() {
    let c =
        compile("arch a on aimc_pcm { input x: real[8]\n output linear(relu(linear(x, 6)), 3) }");
    let g = c.graph("a").unwrap();
    let p = Program::new(g, 1).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let x = Array2::from_shape_fn((4, 8), |_| rng.random_range(-1.0..1.0));
    let mut r = StdRng::seed_from_u64(0);
    let d1 = NoiseDraw::sample(&g.target, g.phase_bits, &mut r);
    let d2 = NoiseDraw::sample(&g.target, g.phase_bits, &mut r);
    let a = p.forward(x.view(), Some(&d1)).unwrap();
    assert_eq!(a, p.forward(x.view(), Some(&d1)).unwrap());
    assert_ne!(a, p.forward(x.view(), Some(&d2)).unwrap());
    let clean = p.forward(x.view(), None).unwrap();
    assert_ne!(a, clean);
    // Without noise only the 8-bit converters act: near the exact product (the ADC's step
    // is out_bound / 127 = 0.094 full-scale products, a few % of these outputs).
    let exact = p
        .clone()
        .with_exact_arithmetic()
        .forward(x.view(), None)
        .unwrap();
    let err = (&clean - &exact).mapv(f64::abs).sum() / exact.mapv(f64::abs).sum();
    assert!(err > 0.0 && err < 0.1, "converter error {err}");
}

/// Test accuracy of `params` on `profile` (same arch) averaged over `draws` noise draws.
fn noisy_accuracy(body: &str, arch: &str, params: &Params, draws: usize) -> f64 {
    let c = compile(body);
    let task = c.checked.task("digits4").unwrap();
    let data = Trainer::default().data(task).unwrap();
    let mut p = Program::new(c.graph(arch).unwrap(), 0).unwrap();
    p.set_params(params.clone()).unwrap();
    robustness(&p, data.test_x.view(), &data.test_y, draws, 11)
        .unwrap()
        .noisy_mean
}

#[test]
fn accuracy_falls_with_time_and_drift_compensation_recovers_it() {
    // One network trained clean on the PCM chip, then read 1 s, 1 h, 1 day and 1 year after
    // programming, without and with global drift compensation: 12 draws each (fixed seeds).
    let times = [
        ("1 s", "t1s"),
        ("1 h", "t1h"),
        ("1 day", "t1d"),
        ("1 year", "t1y"),
    ];
    let mut body = String::new();
    for (t, name) in times {
        for comp in ["false", "true"] {
            body.push_str(&format!(
                "hardware {name}_{comp} extends aimc_pcm {{ backend aimc {{ t_inference = {t}, drift_compensation = {comp} }} }}\n\
                 arch {name}_{comp}_net on {name}_{comp} {{ input x: real[16]\n h = relu(linear(x, 24))\n output linear(h, 10) }}\n"
            ));
        }
    }
    let c = compile(&body);
    let task = c.checked.task("digits4").unwrap();
    let spec = crate::check::model::TrainSpec {
        epochs: 15,
        ..Default::default()
    };
    let out = Trainer::default()
        .run(
            c.graph("t1s_true_net").unwrap(),
            task,
            &spec,
            0,
            7,
            HeldOut::Test,
            None,
            None,
        )
        .unwrap();
    assert!(
        out.robustness.accuracy > 0.8,
        "clean {}",
        out.robustness.accuracy
    );
    let acc = |name: &str, comp: &str| {
        noisy_accuracy(
            &body,
            &format!("{name}_{comp}_net"),
            &out.program.params,
            12,
        )
    };
    let plain: Vec<f64> = times.iter().map(|(_, n)| acc(n, "false")).collect();
    let comp: Vec<f64> = times.iter().map(|(_, n)| acc(n, "true")).collect();
    for w in plain.windows(2) {
        assert!(w[1] < w[0], "accuracy does not fall with time: {plain:?}");
    }
    assert!(
        plain[0] - plain[3] > 0.1,
        "a year of drift costs little: {plain:?}"
    );
    assert!(
        comp[3] > plain[3] + 0.05,
        "compensation does not help: {comp:?} vs {plain:?}"
    );
}

#[test]
fn hardware_aware_training_injects_the_noise_and_learns() {
    let c = compile("arch a on aimc_worst { input x: real[16]\n h = relu(linear(x, 24))\n output linear(h, 10) }");
    let task = c.checked.task("digits4").unwrap();
    let g = c.graph("a").unwrap();
    let spec = |noise_aware| crate::check::model::TrainSpec {
        epochs: 6,
        noise_aware,
        ..Default::default()
    };
    let t = Trainer::default();
    let aware = t
        .run(g, task, &spec(true), 8, 3, HeldOut::Test, None, None)
        .unwrap();
    let again = t
        .run(g, task, &spec(true), 8, 3, HeldOut::Test, None, None)
        .unwrap();
    assert_eq!(aware.program.params, again.program.params);
    assert!(
        aware.losses.last() < aware.losses.first(),
        "{:?}",
        aware.losses
    );
    let clean = t
        .run(g, task, &spec(false), 8, 3, HeldOut::Test, None, None)
        .unwrap();
    // The noise is in the forward pass: the same seed trains to other weights.
    assert_ne!(aware.program.params, clean.program.params);
    // On the worst case, training through the noise pays off under noise.
    let (a, c) = (aware.robustness.noisy_mean, clean.robustness.noisy_mean);
    assert!(
        a > c && a > 0.5,
        "noisy accuracy: hardware-aware {a}, clean-trained {c}"
    );
}
