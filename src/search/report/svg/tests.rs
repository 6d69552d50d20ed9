use super::*;
use crate::search::store::{CandidateRecord, CandidateState, EvaluationRecord, Metrics};

/// The round value (1, 2 or 5 × 10ⁿ) `step` is, to a relative 1e-6, if any.
fn round_step(step: f64) -> Option<f64> {
    let exp = step.log10().floor();
    let f = step / 10f64.powf(exp);
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .find(|m| (f - *m).abs() < 1e-6 * *m)
        .map(|m| m * 10f64.powf(exp))
}

/// No NaN or infinity written as a number.
fn no_bad_numbers(svg: &str) -> bool {
    svg.split(|c: char| c.is_whitespace() || "\",()<>=".contains(c))
        .all(|t| !matches!(t, "NaN" | "inf" | "-inf"))
}

/// Ticks equally spaced by a round step, each a whole multiple of it, covering [lo, hi].
fn assert_good_ticks(lo: f64, hi: f64, max: usize) {
    let t = nice_ticks(lo, hi, max);
    assert!(t.len() >= 2, "{lo}..{hi}: {t:?}");
    assert!(t.iter().all(|v| v.is_finite()), "{lo}..{hi}: {t:?}");
    assert!(
        t.len() <= 2 * max + 3,
        "{lo}..{hi}: {} ticks for max {max}",
        t.len()
    );
    let step = round_step(t[1] - t[0]);
    let step = step.unwrap_or_else(|| panic!("{lo}..{hi}: step {} is not round", t[1] - t[0]));
    for w in t.windows(2) {
        assert!(
            ((w[1] - w[0]) - step).abs() <= step * 1e-6,
            "{lo}..{hi}: uneven {t:?}"
        );
    }
    for v in &t {
        let k = v / step;
        assert!(
            (k - k.round()).abs() <= 1e-9 * k.abs().max(1.0),
            "{v} is not a multiple of {step}"
        );
    }
    // Finite ends are covered (beyond ±1e300, the clamped ends).
    let ends: Vec<f64> = [lo, hi]
        .into_iter()
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(-1e300, 1e300))
        .collect();
    for e in ends {
        assert!(t[0] <= e && *t.last().unwrap() >= e, "{t:?} misses {e}");
    }
}

#[test]
fn ticks_fall_on_round_values() {
    // The error axis that used to read 48 %, 38 %, 29 %.
    assert_eq!(nice_ticks(0.0, 0.48, 5), vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5]);
    assert_eq!(
        nice_ticks(0.0, 260.0, 6),
        vec![0.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0]
    );
    assert_eq!(nice_ticks(0.0, 3.0, 3), vec![0.0, 1.0, 2.0, 3.0]);
    for (lo, hi, max) in [
        (0.0, 0.48, 5),
        (0.0, 1.0, 5),
        (-3.7, 12.2, 6),
        (0.013, 0.017, 4),
        (0.0, 2.58, 5),
        (1e-12, 3e-12, 5),
        (1e200, 5e200, 5),
        (-1e308, 1e308, 5),
        (0.0, 1e-300, 4),
        (123456.0, 123457.0, 5),
        (7.0, 3.0, 5),
    ] {
        assert_good_ticks(lo, hi, max);
    }
}

#[test]
fn degenerate_and_non_finite_ranges_do_not_panic() {
    for (lo, hi) in [
        (5.0, 5.0),
        (0.0, 0.0),
        (-2.0, -2.0),
        (f64::NAN, 1.0),
        (0.0, f64::NAN),
        (f64::NAN, f64::NAN),
        (f64::NEG_INFINITY, f64::INFINITY),
        (f64::MIN_POSITIVE, f64::MIN_POSITIVE),
        (1.0, 1.0 + f64::EPSILON),
        (f64::MAX, f64::MAX),
    ] {
        assert_good_ticks(lo, hi, 5);
    }
    // Equal ends get a range around them; nothing at all gets [0, 1].
    let t = nice_ticks(5.0, 5.0, 5);
    assert!(t[0] < 5.0 && *t.last().unwrap() > 5.0, "{t:?}");
    let t = nice_ticks(f64::NAN, f64::NAN, 5);
    assert!(t[0] <= 0.0 && *t.last().unwrap() >= 1.0, "{t:?}");
    assert_eq!(nice_ticks(0.0, 1.0, 0).len(), 2, "max 0 is treated as 1");
}

#[test]
fn tick_labels_show_the_step_and_no_float_noise() {
    let t = nice_ticks(0.0, 0.48, 5);
    let labels: Vec<String> = t.iter().map(|&v| tick_label(v * 100.0, 10.0)).collect();
    assert_eq!(labels, ["0", "10", "20", "30", "40", "50"]);
    assert_eq!(tick_label(0.1 + 0.2, 0.1), "0.3");
    assert_eq!(tick_label(0.25, 0.05), "0.25");
    assert_eq!(tick_label(-0.0, 1.0), "0");
    assert_eq!(
        tick_label(0.0, 0.5),
        "0.0",
        "as many decimals as the other labels"
    );
    assert_eq!(tick_label(-1e-17, 0.1), "0.0");
    assert_eq!(tick_label(2e7, 1e7), "2e7");
    assert_eq!(tick_label(f64::NAN, 1.0), "");
}

#[test]
fn energy_axes_are_decades_in_one_unit() {
    // 30 pJ .. 4 nJ: padded, ends snapped to 20 pJ and 10 nJ, written in nJ.
    let a = energy_axis(30f64.log10(), 4000f64.log10());
    assert!(
        (a.lo - 20f64.log10()).abs() < 1e-9 && (a.hi - 4.0).abs() < 1e-9,
        "{}..{}",
        a.lo,
        a.hi
    );
    assert_eq!(a.unit, "nJ");
    let labels: Vec<&str> = a.major.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(labels, ["0.1", "1", "10"]);
    // Minor ticks at 2..9 × each decade, strictly inside the axis and off the labels.
    assert_eq!(a.minor.len(), 23);
    assert!(a.minor.iter().all(|&m| m > a.lo && m < a.hi));
    // The data never sits on the frame.
    assert!(a.lo < 30f64.log10() - 0.05 && a.hi > 4000f64.log10() + 0.05);
    // One value: less than a decade around it, labelled at 1, 2 and 5; microjoules with µ.
    let a = energy_axis(6.0, 6.0);
    assert!(
        a.lo < 6.0 && a.hi > 6.0 && a.hi - a.lo < 1.0,
        "{}..{}",
        a.lo,
        a.hi
    );
    assert_eq!(a.unit, "µJ");
    let labels: Vec<&str> = a.major.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(labels, ["0.5", "1", "2"]);
    // 200 pJ .. 1.8 nJ: under two decades, so 2 and 5 × 10ⁿ are labelled too.
    let a = energy_axis(200f64.log10(), 1800f64.log10());
    let labels: Vec<&str> = a.major.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(labels, ["0.1", "0.2", "0.5", "1", "2", "5"]);
    // Twenty decades: at most about eight labels, superscripts beyond 10 000, no minor ticks.
    let a = energy_axis(-9.0, 11.0);
    assert!(a.major.len() <= 9, "{:?}", a.major);
    assert!(a.minor.is_empty());
    assert!(a.major.iter().any(|m| m.1.contains('⁻')), "{:?}", a.major);
    // NaN and infinities fall back without panicking.
    for (lo, hi) in [
        (f64::NAN, f64::NAN),
        (f64::NEG_INFINITY, 2.0),
        (f64::INFINITY, f64::INFINITY),
    ] {
        let a = energy_axis(lo, hi);
        assert!(
            a.lo < a.hi && a.major.len() >= 2,
            "{lo}..{hi}: {:?}",
            a.major
        );
    }
}

#[test]
fn power_labels_are_plain_near_one_and_superscript_far_away() {
    assert_eq!(power_label(0), "1");
    assert_eq!(power_label(3), "1000");
    assert_eq!(power_label(-3), "0.001");
    assert_eq!(power_label(5), "10⁵");
    assert_eq!(power_label(-12), "10⁻¹²");
    assert_eq!(mantissa_label(5, -1), "0.5");
    assert_eq!(mantissa_label(2, 3), "2000");
    assert_eq!(mantissa_label(2, 7), "2×10⁷");
}

#[test]
fn wrapping_keeps_every_word_within_the_width() {
    let text = "digits_mzi on mzi_realistic: mutate + seeds, a label long enough to wrap twice over in a legend of this width";
    let lines = wrap(text, 30);
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
    assert_eq!(lines.join(" "), text);
    // A word longer than a line is cut, not lost.
    let long = "x".repeat(70);
    let lines = wrap(&long, 30);
    assert_eq!(lines.concat(), long);
    assert!(lines.iter().all(|l| l.chars().count() <= 30));
    assert_eq!(wrap("", 30), vec![String::new()]);
}

#[test]
fn series_differ_in_more_than_colour() {
    for i in 0..30 {
        for j in 0..i {
            let (a, b) = (style(i), style(j));
            assert!(a.dash != b.dash || a.marker != b.marker, "{i} and {j}");
            if i < 5 {
                assert!(a.color != b.color && a.dash != b.dash && a.marker != b.marker);
            }
        }
    }
}

fn candidate(id: i64, operator: &str, err: f64, pj: f64) -> CandidateRecord {
    let metrics = Metrics {
        accuracy: 1.0 - err,
        noisy_accuracy_mean: 1.0 - err,
        noisy_accuracy_std: 0.0,
        noisy_accuracy_p5: 1.0 - err,
        accuracy_drop: 0.0,
        energy_pj: pj,
        mzi_count: None,
        depth: 1,
        params: 1,
        violations: Vec::new(),
        extras: Default::default(),
    };
    CandidateRecord {
        id,
        text: String::new(),
        canonical_text: None,
        structural_hash: Some(format!("h{id}")),
        parents: Vec::new(),
        operator: operator.into(),
        generation: 0,
        state: CandidateState::Done,
        diagnostics: None,
        reason: None,
        attempts: 1,
        lease_owner: None,
        lease_expires_ms: None,
        created_ms: 0,
        updated_ms: 0,
        started_ms: None,
        finished_ms: Some(id),
        evaluation: Some(EvaluationRecord {
            metrics,
            wall_time_s: 0.0,
            worker: String::new(),
            recorded_ms: 0,
        }),
    }
}

fn run(label: &str, points: &[(f64, f64)]) -> RunData {
    RunData {
        label: label.into(),
        candidates: points
            .iter()
            .enumerate()
            .map(|(i, &(e, j))| candidate(i as i64 + 1, "mutate", e, j))
            .collect(),
        config: serde_json::Value::Null,
        store: None,
        test: Default::default(),
    }
}

/// The text of every `<text>` element, in order.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.to_string()))
        .collect()
}

#[test]
fn pareto_names_runs_in_full_and_its_split_in_the_title() {
    let long = "fashion_clements64 on clements64, operators mutate(0.7) + crossover(0.3), seed 2";
    let runs = [
        run(long, &[(0.48, 30.0), (0.38, 300.0), (0.29, 4000.0)]),
        run("random on clements64", &[(0.5, 20.0), (0.3, 5000.0)]),
    ];
    let svg = pareto_svg(&runs, "validation");
    let t = texts(&svg);
    assert!(
        t[0].contains("validation split"),
        "title names the split: {t:?}"
    );
    assert!(t
        .iter()
        .any(|s| s == "error under noise, validation split (%)"));
    assert!(t
        .iter()
        .any(|s| s == "energy per inference (nJ, log scale)"));
    // The long label is wrapped across legend lines, every word kept, none clipped.
    let legend = t.join(" ");
    for word in long.split_whitespace() {
        assert!(legend.contains(word), "{word} missing from {t:?}");
    }
    let max_chars = chars_in(RIGHT - LEFT - SAMPLE - 10.0, LEGEND_SIZE);
    assert!(t.iter().all(|s| s.chars().count() <= max_chars.max(70)));
    // Round y ticks: 0 % to 50 % by 10.
    for v in ["0", "10", "20", "30", "40", "50"] {
        assert!(t.iter().any(|s| s == v), "tick {v} missing: {t:?}");
    }
    assert!(no_bad_numbers(&svg));
    // The document is as tall as its legend needs.
    let h: f64 = svg
        .split("height=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("height");
    let last_y = svg
        .rsplit("<text x=\"")
        .next()
        .and_then(|s| s.split("y=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse::<f64>().ok())
        .expect("last text y");
    assert!(last_y < h, "legend at {last_y} below the {h} px document");
}

#[test]
fn the_test_split_is_named_when_the_caller_says_so() {
    let svg = pareto_svg(&[run("r", &[(0.2, 10.0)])], "test");
    assert!(texts(&svg)[0].contains("test split"));
    let svg = hypervolume_svg(&[("r".into(), vec![(1, 0.5)])], "test");
    assert!(texts(&svg)[0].contains("test split"));
}

#[test]
fn empty_and_nan_inputs_draw_without_panicking() {
    assert!(
        !no_bad_numbers("<circle cx=\"NaN\" r=\"-inf\"/>"),
        "the check can fail"
    );
    let svg = pareto_svg(&[], "validation");
    assert!(svg.contains("nothing evaluated yet"));
    let svg = pareto_svg(
        &[run("r", &[(f64::NAN, 10.0), (0.1, f64::NAN)])],
        "validation",
    );
    assert!(no_bad_numbers(&svg));
    let svg = hypervolume_svg(&[], "validation");
    assert!(svg.starts_with("<svg") && no_bad_numbers(&svg));
    let svg = hypervolume_svg(
        &[(
            "a".into(),
            vec![(1, f64::NAN), (2, 0.0), (3, f64::INFINITY)],
        )],
        "validation",
    );
    assert!(no_bad_numbers(&svg));
}

#[test]
fn hypervolume_legend_tells_operator_curves_apart() {
    let labels = [
        "digits_mzi on mzi_realistic (all)",
        "digits_mzi on mzi_realistic: crossover + seeds",
        "digits_mzi on mzi_realistic: mutate + seeds",
    ];
    let curves: Vec<(String, Vec<(usize, f64)>)> = labels
        .iter()
        .enumerate()
        .map(|(k, l)| {
            (
                l.to_string(),
                (1..=40)
                    .map(|n| (n, (n as f64).ln() * 0.1 * (k + 1) as f64))
                    .collect(),
            )
        })
        .collect();
    let svg = hypervolume_svg(&curves, "validation");
    let t = texts(&svg).join(" ");
    for l in labels {
        assert!(t.contains(l), "{l} not in full in {t}");
    }
    // Three styles: a solid line and two dash patterns.
    assert_eq!(
        svg.matches("stroke-dasharray=\"9 4\"").count(),
        2,
        "line and its legend sample"
    );
    assert_eq!(svg.matches("stroke-dasharray=\"2 3\"").count(), 2);
    // x ticks at 0, 10, 20, 30, 40 evaluations.
    for v in ["0", "10", "20", "30", "40"] {
        assert!(texts(&svg).iter().any(|s| s == v), "{v}");
    }
}
