//! Lowering and the energy model against hand-computed values.

use uhc::ir::{energy_report, structural_hash};

fn compile(text: &str) -> uhc::Compiled {
    let (compiled, diags, sources) = uhc::check_source("t.uh", text);
    compiled.unwrap_or_else(|| panic!("does not compile:\n{}", sources.render_plain(&diags)))
}

fn linear_arch(n: usize, m: usize, hw: &str) -> String {
    format!("use \"hw/mzi.uh\"\nuse \"hw/digital.uh\"\narch a on {hw} {{\n input x: real[{n}]\n y = linear(x, {m})\n output detect(y)\n}}\n")
}

#[test]
fn mzi_count_of_an_svd_mapped_layer() {
    for (n, m) in [(2, 2), (4, 3), (3, 7), (16, 10), (16, 16)] {
        let c = compile(&linear_arch(n, m, "mzi_realistic"));
        let g = &c.graphs[0];
        let expected = m * (m - 1) / 2 + n * (n - 1) / 2 + n.min(m);
        assert_eq!(g.total_cost().mzis, expected, "{n}→{m}");
        // Clements: depth N per mesh, plus one attenuator column.
        assert_eq!(g.optical_depth(), n + 1 + m, "{n}→{m}");
        assert_eq!(g.total_cost().dac, n);
        assert_eq!(g.total_cost().adc, m);
    }
}

#[test]
fn reck_meshes_are_deeper() {
    let c = compile(&linear_arch(8, 8, "mzi_reck"));
    assert_eq!(c.graphs[0].optical_depth(), 2 * (2 * 8 - 3) + 1);
}

#[test]
fn laser_energy_matches_the_loss_budget_by_hand() {
    let c = compile(&linear_arch(16, 10, "mzi_realistic"));
    let g = &c.graphs[0];
    let r = energy_report(g);
    // depth 16 + 1 + 10 = 27 columns, width 16, 0.2 dB per MZI, S_PD −25 dBm, IL_mod 1.2 dB.
    let dbm = -25.0 + 1.2 + 0.2 * 28.0 + 10.0 * 16f64.log10();
    let watts = 10f64.powf(dbm / 10.0) * 1e-3 / 0.2 * 256.0;
    assert_eq!(r.segments.len(), 1);
    assert!((r.segments[0].laser_dbm - dbm).abs() < 1e-12);
    assert!(
        (r.components.laser - watts / 5e9).abs() < 1e-24,
        "{} vs {}",
        r.components.laser,
        watts / 5e9
    );
    // 16 DACs at 3.6 pJ and 16 × 8 bits × 450 fJ of modulation; 10 × (1.1 + 3) mW / 5 GHz + 10 × 1.5 pJ.
    assert!((r.components.dac - 16.0 * 3.6e-12).abs() < 1e-20);
    assert!((r.components.modulator - 16.0 * 8.0 * 450e-15).abs() < 1e-20);
    assert!((r.components.detection - 10.0 * 4.1e-3 / 5e9).abs() < 1e-20);
    assert!((r.components.adc - 10.0 * 1.5e-12).abs() < 1e-20);
    let sum = r.components.laser
        + r.components.dac
        + r.components.modulator
        + r.components.detection
        + r.components.adc;
    assert!((r.total - sum).abs() < 1e-20);
}

#[test]
fn converter_energy_scales_with_bits() {
    let base = "use \"hw/mzi.uh\"\nhardware six extends mzi_realistic { precision { dac = 6 bit, adc = 6 bit } }\n";
    let c8 = compile(&format!(
        "{base}{}",
        linear_arch(4, 4, "mzi_realistic").replace("use \"hw/mzi.uh\"\n", "")
    ));
    let c6 = compile(&format!(
        "{base}{}",
        linear_arch(4, 4, "six").replace("use \"hw/mzi.uh\"\n", "")
    ));
    let e = |c: &uhc::Compiled| energy_report(&c.graphs[0]);
    let (r8, r6) = (e(&c8), e(&c6));
    // DAC ∝ 2^b/b, ADC ∝ b, laser ∝ 2^b.
    assert!((r6.components.dac / r8.components.dac - (64.0 / 6.0) / 32.0).abs() < 1e-12);
    assert!((r6.components.adc / r8.components.adc - 6.0 / 8.0).abs() < 1e-12);
    assert!((r6.components.laser / r8.components.laser - 0.25).abs() < 1e-12);
}

#[test]
fn lossier_and_deeper_meshes_cost_more() {
    let e = |text: String| {
        let c = compile(&text);
        energy_report(&c.graphs[0]).total
    };
    assert!(e(linear_arch(8, 8, "mzi_worst")) > e(linear_arch(8, 8, "mzi_realistic")));
    assert!(e(linear_arch(8, 8, "mzi_reck")) > e(linear_arch(8, 8, "mzi_realistic")));
    assert!(e(linear_arch(16, 16, "mzi_realistic")) > e(linear_arch(8, 8, "mzi_realistic")));
}

#[test]
fn digital_energy_is_macs_times_energy_per_mac() {
    let c = compile("use \"hw/digital.uh\"\narch m on cpu_fp32 { input x: real[16]\n h = linear(x, 16)\n a = relu(h)\n output linear(a, 10) }");
    let g = &c.graphs[0];
    assert_eq!(g.total_cost().macs, 16 * 16 + 16 * 10);
    let r = energy_report(g);
    assert!((r.total - 416.0 * 91.7e-12).abs() < 1e-18);
    assert!(r.segments.is_empty());
}

#[test]
fn energy_constraints_are_decided_by_check() {
    let text = linear_arch(16, 10, "mzi_realistic").replace(
        "output detect(y)",
        "output detect(y)\n constraint energy <= 100 pJ",
    );
    let (compiled, diags, _) = uhc::check_source("t.uh", &text);
    assert!(compiled.is_none());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].code, "uh::check::constraint");
    assert!(
        diags[0].message.contains("energy is"),
        "{}",
        diags[0].message
    );
    let ok = linear_arch(16, 10, "mzi_realistic").replace(
        "output detect(y)",
        "output detect(y)\n constraint energy <= 1 nJ",
    );
    assert!(uhc::check_source("t.uh", &ok).0.is_some());
}

#[test]
fn structural_hash_ignores_names_layout_and_comments() {
    let a = "use \"hw/mzi.uh\"\narch a on mzi_realistic {\n input x: real[8]\n h = linear(x, 8)\n a = modrelu(h, bias = 0.1)\n y = linear(a, 4)\n output detect(y)\n}\n";
    let b = "use \"hw/mzi.uh\"\n// renamed and reformatted\narch other on mzi_realistic { input pixels: real[8], hidden = linear(pixels, 8), act = modrelu(hidden, bias = 0.1)\n out = linear(act, 4) // last\n output detect(out) }";
    let wider = a.replace("linear(x, 8)", "linear(x, 6)");
    let other_hw = a.replace("on mzi_realistic", "on mzi_worst");
    let h = |t: &str| structural_hash(&compile(t).graphs[0]);
    assert_eq!(h(a), h(b));
    assert_ne!(h(a), h(&wider));
    assert_ne!(h(a), h(&other_hw));
    assert_eq!(h(a).len(), 32);
}

/// `uh::check::ignored` never lies: a shared profile field that a backend says it does not
/// read (`Backend::reads`) changes nothing a run reports on that backend: not the energy
/// report, the laser budget, nor the outputs on a noisy draw. And the checker warns
/// exactly for those fields. (The structural hash is left out: it includes the graph's
/// phase bits on every backend, and stored hashes must not change; within one search the
/// hardware is fixed, so no deduplication sees the difference.)
#[test]
fn fields_a_backend_does_not_read_change_nothing() {
    use rand::SeedableRng;
    // A value other than the default for each field; every field of the checker's table
    // (`check::profile_fields::FIELDS`) must have one, so a new field is checked too.
    const VALUES: &[(&str, &str, &str)] = &[
        ("precision", "phase", "4 bit"),
        ("precision", "dac", "4 bit"),
        ("precision", "adc", "4 bit"),
        ("noise", "phase_sigma", "0.1 rad"),
        ("noise", "splitter_sigma", "0.05"),
        ("noise", "loss_per_mzi", "1 dB"),
        ("noise", "crosstalk", "0.05"),
        ("noise", "detector_noise", "0.05"),
        ("energy", "dac", "5 pJ"),
        ("energy", "adc", "5 pJ"),
        ("energy", "modulator", "5 pJ"),
        ("energy", "mac", "5 pJ"),
        ("energy", "photodetector", "5 mW"),
        ("energy", "tia", "5 mW"),
        ("energy", "phase_shifter", "5 mW"),
        ("energy", "laser_efficiency", "0.05"),
        ("energy", "max_laser_power", "5 mW"),
        ("energy", "sensitivity", "-10 dBm"),
        ("energy", "modulator_loss", "3 dB"),
        ("energy", "clock", "1 GHz"),
    ];
    let cases = [
        (
            "hw/mzi.uh",
            "mzi_realistic",
            "h = linear(x, 8)\n a = modrelu(h)\n output detect(linear(a, 4))",
        ),
        (
            "hw/digital.uh",
            "cpu_fp32",
            "h = linear(x, 8)\n a = relu(h)\n output linear(a, 4)",
        ),
        (
            "hw/aimc.uh",
            "aimc_pcm",
            "h = linear(x, 8)\n a = relu(h)\n output linear(a, 4)",
        ),
    ];
    let x = ndarray::Array2::from_shape_fn((5, 8), |(i, j)| ((i * 8 + j) as f64 * 0.37).sin());
    let observed = |text: &str| {
        let (c, diags, sources) = uhc::check_source("t.uh", text);
        let c = c.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
        let g = c.graph("a").expect("graph").clone();
        let program = uhc::runtime::Program::new(&g, 1).expect("program");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let draw = uhc::backend::kernel::NoiseDraw::sample(&g.target, g.phase_bits, &mut rng);
        let out = program.forward(x.view(), Some(&draw)).expect("forward");
        let warned = diags.iter().any(|d| d.code == uhc::diag::code::IGNORED);
        let seen = format!(
            "{:?} {:?} {:?}",
            energy_report(&g),
            uhc::ir::energy::laser_budget(&g),
            out
        );
        (seen, warned, g.target.backend.backend())
    };
    let mut checked = 0;
    for (file, base, body) in cases {
        let arch = |hw: &str| format!("arch a on {hw} {{\n input x: real[8]\n {body}\n}}\n");
        let (reference, warned, backend) = observed(&format!("use \"{file}\"\n{}", arch(base)));
        assert!(!warned, "{base} itself is warned");
        for f in uhc::check::profile_fields::FIELDS {
            let (section, field) = (f.section, f.name);
            let value = VALUES
                .iter()
                .find(|v| (v.0, v.1) == (section, field))
                .unwrap_or_else(|| panic!("give {section}.{field} a value in VALUES"))
                .2;
            let text = format!(
                "use \"{file}\"\nhardware v extends {base} {{\n {section} {{ {field} = {value} }}\n}}\n{}",
                arch("v")
            );
            let (seen, warned, _) = observed(&text);
            let read = backend.reads(section, field);
            assert_eq!(warned, !read, "{base}: {section}.{field} warned {warned}");
            if !read {
                assert_eq!(
                    seen, reference,
                    "{base}: {section}.{field} is said to be ignored"
                );
                checked += 1;
            }
        }
    }
    // Digital reads 1 of the 20 fields and AIMC 2: 19 + 18 claims checked.
    assert_eq!(checked, 37);
}
