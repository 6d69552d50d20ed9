//! MZI mesh throughput: forward from phases (realise + collapse + apply), the collapse alone
//! and the reverse pass, each against a plain complex matrix product (ndarray `dot`, which
//! calls matrixmultiply's zgemm) of the same shapes timed in the same run.
//!
//! `cargo bench --bench mesh` measures; without `--bench` (as `cargo test --all-targets` runs
//! it) it does a tiny smoke run and exits.

use ndarray::Array2;
use num_complex::Complex64 as C64;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};
use uhc::backend::mzi::{matrix_grad, MeshLayout, NonIdeal, Topology};

mod common;
use common::thread_cpu;

/// Median CPU seconds per call over `runs` runs of at least `min_time` each, the ratio of
/// wall-clock to CPU time in that run (≈ 1 on an idle machine), and the fastest run.
fn time(min_time: Duration, runs: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    f();
    let mut per_call: Vec<(f64, f64)> = (0..runs)
        .map(|_| {
            let (wall, cpu) = (Instant::now(), thread_cpu());
            let mut calls = 0u32;
            while thread_cpu() - cpu < min_time.as_secs_f64() || calls == 0 {
                f();
                calls += 1;
            }
            let c = (thread_cpu() - cpu) / f64::from(calls);
            (c, wall.elapsed().as_secs_f64() / f64::from(calls) / c)
        })
        .collect();
    per_call.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, wall) = per_call[runs / 2];
    (median, wall, per_call[0].0)
}

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<C64> {
    Array2::from_shape_fn((rows, cols), |_| {
        C64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (ports, batch, min_time, runs) = if full {
        (vec![16, 64], 1024, Duration::from_millis(300), 7)
    } else {
        (vec![8], 64, Duration::from_millis(1), 1)
    };
    let ni = NonIdeal::realistic();
    println!("MZI mesh bench: Clements, NonIdeal::realistic(), batch {batch}, one thread.");
    println!(
        "Times are this thread's CPU time, median of {runs} runs {{best run}}; \
         [w] = wall/CPU ratio (1 when idle)."
    );
    for n in ports {
        let layout = MeshLayout::new(Topology::Clements, n).expect("valid layout");
        let mut rng = StdRng::seed_from_u64(1);
        let phases = layout.haar_phases(&mut rng);
        let x = random(n, batch, &mut rng);
        let m = random(n, n, &mut rng);
        let sq = random(n, n, &mut rng);
        let gy = random(n, batch, &mut rng);
        let g = random(n, n, &mut rng);
        let chip = layout.realise(&phases, &ni, &mut rng).expect("realise");
        // Never collapsed: its clones start without a cached matrix.
        let fresh = chip.clone();
        let mut out = Array2::<C64>::zeros((n, batch));

        let dot = time(min_time, runs, || {
            black_box(m.dot(&x));
        });
        let fwd = time(min_time, runs, || {
            let r = layout.realise(&phases, &ni, &mut rng).expect("realise");
            black_box(r.apply(x.view()).expect("apply"));
        });
        let fwd_into = time(min_time, runs, || {
            let r = layout.realise(&phases, &ni, &mut rng).expect("realise");
            r.transfer()
                .apply_into(x.view(), out.view_mut())
                .expect("apply");
            black_box(&out);
        });
        let realise = time(min_time, runs, || {
            black_box(layout.realise(&phases, &ni, &mut rng).expect("realise"));
        });
        let apply = time(min_time, runs, || {
            chip.transfer()
                .apply_into(x.view(), out.view_mut())
                .expect("apply");
            black_box(&out);
        });
        let sqdot = time(min_time, runs, || {
            black_box(m.dot(&sq));
        });
        let matrix = time(min_time, runs, || {
            black_box(fresh.clone().matrix()[[0, 0]]);
        });
        let back = time(min_time, runs, || {
            black_box(chip.backward(g.view()).expect("backward"));
        });
        let vjp = time(min_time, runs, || {
            black_box(chip.apply_adjoint(gy.view()).expect("adjoint"));
            black_box(matrix_grad(x.view(), gy.view()).expect("matrix_grad"));
        });

        let ms = |t: (f64, f64, f64)| batch as f64 / t.0 / 1e6;
        let best = |t: (f64, f64, f64)| batch as f64 / t.2 / 1e6;
        println!("N = {n}");
        println!(
            "  baseline: ndarray dot {n}×{n} · {n}×{batch}      {:9.1} µs {:7.2} M samples/s {{{:.2}}} [w {:.1}]",
            dot.0 * 1e6,
            ms(dot),
            best(dot),
            dot.1
        );
        for (name, t) in [
            ("forward from phases (realise+collapse+apply)", fwd),
            ("  same, output into a reused buffer", fwd_into),
        ] {
            println!(
                "  {name:45} {:9.1} µs {:7.2} M samples/s {{{:.2}}} = {:.2}× baseline [w {:.1}]",
                t.0 * 1e6,
                ms(t),
                best(t),
                dot.0 / t.0,
                t.1
            );
        }
        println!(
            "    parts: realise {:.1} µs, matrix() {:.1} µs, apply on the collapsed matrix {:.1} µs ({:.2}× baseline)",
            realise.0 * 1e6,
            matrix.0 * 1e6,
            apply.0 * 1e6,
            dot.0 / apply.0
        );
        println!(
            "  matrix() alone (collapse, O(N³))              {:9.1} µs = {:.2}× an {n}×{n}·{n}×{n} dot ({:.1} µs) [w {:.1}]",
            matrix.0 * 1e6,
            sqdot.0 / matrix.0,
            sqdot.0 * 1e6,
            matrix.1
        );
        println!(
            "  backward: ∂L/∂phases from G (O(N³))           {:9.1} µs = {:.2}× the {n}×{n}·{n}×{n} dot [w {:.1}]",
            back.0 * 1e6,
            sqdot.0 / back.0,
            back.1
        );
        println!(
            "  batch VJP: M†G_Y and G_Y X† (two products)    {:9.1} µs = {:.2}× two baseline dots [w {:.1}]",
            vjp.0 * 1e6,
            2.0 * dot.0 / vjp.0,
            vjp.1
        );
    }
}
