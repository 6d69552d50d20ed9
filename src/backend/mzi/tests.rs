//! Tests of meshes as a whole: decomposition, physics of the realisation, gradients.

use super::*;
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::f64::consts::{PI, TAU};

const TOPOLOGIES: [Topology; 2] = [Topology::Clements, Topology::Reck];

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn random_phases(layout: &MeshLayout, rng: &mut StdRng, lo: f64, hi: f64) -> MeshPhases {
    let mut draw = |n: usize| (0..n).map(|_| rng.random_range(lo..hi)).collect::<Vec<_>>();
    MeshPhases {
        theta: draw(layout.mzi_count()),
        phi: draw(layout.mzi_count()),
        gamma: draw(layout.ports()),
    }
}

fn random_matrix(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<C64> {
    Array2::from_shape_fn((rows, cols), |_| {
        C64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))
    })
}

fn adjoint(a: &Array2<C64>) -> Array2<C64> {
    a.t().mapv(|z| z.conj())
}

fn max_abs_diff(a: ArrayView2<C64>, b: ArrayView2<C64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------
// Decomposition

#[test]
fn decomposition_reproduces_haar_unitaries() {
    let mut r = rng(11);
    for topo in TOPOLOGIES {
        for &n in &[1usize, 2, 3, 4, 5, 6, 7, 16] {
            for _ in 0..3 {
                let layout = MeshLayout::new(topo, n).unwrap();
                let u = haar_unitary(n, &mut r);
                let p = layout.decompose(u.view()).unwrap();
                let m = layout.ideal(&p).unwrap();
                let err = relative_error(m.matrix().view(), u.view());
                assert!(err < 1e-10, "{topo:?} N={n}: error {err:e}");
                assert!(p.theta.iter().all(|&t| (0.0..=PI).contains(&t)));
                assert!(p
                    .phi
                    .iter()
                    .chain(&p.gamma)
                    .all(|&x| (0.0..TAU).contains(&x)));
            }
        }
    }
}

#[test]
fn decomposition_reproduces_64_port_unitaries() {
    let mut r = rng(12);
    for topo in TOPOLOGIES {
        let layout = MeshLayout::new(topo, 64).unwrap();
        let u = haar_unitary(64, &mut r);
        let p = layout.decompose(u.view()).unwrap();
        let err = relative_error(layout.ideal(&p).unwrap().matrix().view(), u.view());
        assert!(err < 1e-10, "{topo:?}: error {err:e}");
    }
}

#[test]
fn decomposition_handles_permutations_and_rejects_bad_input() {
    // A permutation has many exact zeros: the degenerate nulling branches.
    let n = 5;
    let mut perm = Array2::<C64>::zeros((n, n));
    for (i, j) in [(0, 3), (1, 0), (2, 4), (3, 1), (4, 2)] {
        perm[[i, j]] = C64::new(0.0, 1.0);
    }
    for topo in TOPOLOGIES {
        let layout = MeshLayout::new(topo, n).unwrap();
        let p = layout.decompose(perm.view()).unwrap();
        let err = relative_error(layout.ideal(&p).unwrap().matrix().view(), perm.view());
        assert!(err < 1e-12, "{topo:?}: {err:e}");
        let not_unitary = perm.mapv(|z| z * 1.1);
        assert!(matches!(
            layout.decompose(not_unitary.view()),
            Err(MziError::NotUnitary { .. })
        ));
        assert!(matches!(
            layout.decompose(Array2::<C64>::eye(4).view()),
            Err(MziError::Shape { .. })
        ));
        let mut nan = Array2::<C64>::eye(n);
        nan[[0, 0]] = C64::new(f64::NAN, 0.0);
        assert!(matches!(
            layout.decompose(nan.view()),
            Err(MziError::NonFinite { .. })
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Analytic physics

#[test]
fn ideal_mesh_is_unitary() {
    let mut r = rng(13);
    for topo in TOPOLOGIES {
        for &n in &[2usize, 7, 16] {
            let layout = MeshLayout::new(topo, n).unwrap();
            let p = random_phases(&layout, &mut r, -10.0, 10.0);
            let m = layout.ideal(&p).unwrap();
            let g = adjoint(m.matrix()).dot(m.matrix());
            let dev = max_abs_diff(g.view(), Array2::<C64>::eye(n).view());
            assert!(dev < 1e-12, "{topo:?} {n}: {dev:e}");
        }
    }
}

#[test]
fn bar_state_mesh_is_diagonal_and_cross_state_mesh_is_a_permutation() {
    for topo in TOPOLOGIES {
        let n = 6;
        let layout = MeshLayout::new(topo, n).unwrap();
        let mut p = MeshPhases::zeros(&layout);
        p.theta.iter_mut().for_each(|t| *t = PI);
        p.phi.iter_mut().for_each(|f| *f = 0.3);
        p.gamma = (0..n).map(|j| 0.1 * j as f64).collect();
        let m = layout.ideal(&p).unwrap();
        for i in 0..n {
            for j in 0..n {
                let want = if i == j {
                    // Bar: top mode gets −e^{iφ}, bottom mode 1, per MZI crossed.
                    let tops = layout.sites().iter().filter(|s| s.top == i).count() as i32;
                    C64::from_polar(1.0, 0.1 * i as f64) * (-C64::from_polar(1.0, 0.3)).powi(tops)
                } else {
                    C64::new(0.0, 0.0)
                };
                assert!(
                    (m.matrix()[[i, j]] - want).norm() < 1e-12,
                    "{topo:?} ({i},{j})"
                );
            }
        }
        // Cross: every MZI swaps its modes; follow each input through the swaps.
        let m = layout.ideal(&MeshPhases::zeros(&layout)).unwrap();
        for input in 0..n {
            let mut mode = input;
            for s in layout.sites() {
                if mode == s.top {
                    mode += 1;
                } else if mode == s.top + 1 {
                    mode -= 1;
                }
            }
            for out in 0..n {
                let want = if out == mode { 1.0 } else { 0.0 };
                assert!((m.matrix()[[out, input]].norm() - want).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn insertion_loss_scales_power_by_depth() {
    let loss = 0.37; // dB per MZI
    let ni = NonIdeal {
        loss_db_per_mzi: loss,
        ..NonIdeal::IDEAL
    };
    for topo in TOPOLOGIES {
        let n = 8;
        let layout = MeshLayout::new(topo, n).unwrap();
        let mut p = MeshPhases::zeros(&layout);
        p.theta.iter_mut().for_each(|t| *t = PI);
        let m = layout.realise(&p, &ni, &mut rng(1)).unwrap();
        for j in 0..n {
            let d = layout.mzis_on_mode(j) as f64;
            let power = m.matrix()[[j, j]].norm_sqr();
            assert!(
                (power - 10f64.powf(-loss * d / 10.0)).abs() < 1e-13,
                "{topo:?} {j}"
            );
        }
        if topo == Topology::Clements {
            // Middle modes of a Clements mesh cross one MZI per column: L·depth dB.
            let d = layout.depth() as f64;
            let power = m.matrix()[[3, 3]].norm_sqr();
            assert!((power - 10f64.powf(-loss * d / 10.0)).abs() < 1e-13);
        }
    }
    // Any phases: a single lossy MZI passes exactly a² of the power.
    let layout = MeshLayout::new(Topology::Clements, 2).unwrap();
    let p = random_phases(&layout, &mut rng(2), 0.0, TAU);
    let m = layout.realise(&p, &ni, &mut rng(1)).unwrap();
    let g = adjoint(m.matrix()).dot(m.matrix());
    let a2 = 10f64.powf(-loss / 10.0);
    assert!(max_abs_diff(g.view(), (Array2::<C64>::eye(2) * a2).view()) < 1e-14);
}

#[test]
fn unitary_fidelity_of_a_realisation_drops_with_noise() {
    let layout = MeshLayout::new(Topology::Clements, 8).unwrap();
    let p = layout.haar_phases(&mut rng(3));
    let ideal = layout.ideal(&p).unwrap();
    let f_small = fidelity(
        layout
            .realise(
                &p,
                &NonIdeal {
                    phase_sigma: 0.01,
                    ..NonIdeal::IDEAL
                },
                &mut rng(4),
            )
            .unwrap()
            .matrix()
            .view(),
        ideal.matrix().view(),
    )
    .unwrap();
    let f_large = fidelity(
        layout
            .realise(
                &p,
                &NonIdeal {
                    phase_sigma: 0.2,
                    ..NonIdeal::IDEAL
                },
                &mut rng(4),
            )
            .unwrap()
            .matrix()
            .view(),
        ideal.matrix().view(),
    )
    .unwrap();
    assert!(f_small > 0.99 && f_small < 1.0, "{f_small}");
    assert!(f_large < f_small, "{f_large} vs {f_small}");
}

// ---------------------------------------------------------------------------------------
// Realisation

#[test]
fn zero_noise_realisation_is_bit_identical_to_ideal_and_deterministic() {
    let layout = MeshLayout::new(Topology::Clements, 9).unwrap();
    let p = random_phases(&layout, &mut rng(5), -4.0, 9.0);
    let a = layout.realise(&p, &NonIdeal::IDEAL, &mut rng(1)).unwrap();
    let b = layout.realise(&p, &NonIdeal::IDEAL, &mut rng(2)).unwrap();
    let c = layout.ideal(&p).unwrap();
    assert_eq!(a.matrix(), c.matrix());
    assert_eq!(b.matrix(), c.matrix());
    assert_eq!(a.effective_phases(), p);
}

#[test]
fn same_seed_same_noise_and_different_seed_different_noise() {
    let layout = MeshLayout::new(Topology::Reck, 6).unwrap();
    let p = random_phases(&layout, &mut rng(6), 0.0, TAU);
    let ni = NonIdeal::worst_case();
    let a = layout.realise(&p, &ni, &mut rng(42)).unwrap();
    let b = layout.realise(&p, &ni, &mut rng(42)).unwrap();
    let c = layout.realise(&p, &ni, &mut rng(43)).unwrap();
    assert_eq!(a.matrix(), b.matrix());
    assert_eq!(a.effective_phases(), b.effective_phases());
    assert!(max_abs_diff(a.matrix().view(), c.matrix().view()) > 1e-3);
}

#[test]
fn vanishing_noise_converges_linearly_to_the_ideal_mesh() {
    let layout = MeshLayout::new(Topology::Clements, 8).unwrap();
    let p = layout.haar_phases(&mut rng(7));
    let ideal = layout.ideal(&p).unwrap();
    // The same seed draws the same standard normals, so the error is linear in σ: err/σ
    // settles to a constant (first-order term) as σ → 0.
    let ratios: Vec<f64> = [1e-4, 1e-6, 1e-8]
        .iter()
        .map(|&sigma| {
            let ni = NonIdeal {
                phase_sigma: sigma,
                splitter_sigma: sigma,
                ..NonIdeal::IDEAL
            };
            let m = layout.realise(&p, &ni, &mut rng(8)).unwrap();
            relative_error(m.matrix().view(), ideal.matrix().view()) / sigma
        })
        .collect();
    assert!(ratios[2] > 0.1 && ratios[2] < 20.0, "{ratios:?}");
    assert!((ratios[1] / ratios[2] - 1.0).abs() < 1e-3, "{ratios:?}");
    assert!((ratios[0] / ratios[2] - 1.0).abs() < 1e-2, "{ratios:?}");
}

#[test]
fn noise_is_truncated_at_the_clip() {
    let layout = MeshLayout::new(Topology::Clements, 16).unwrap();
    let p = MeshPhases::zeros(&layout);
    let ni = NonIdeal {
        phase_sigma: 0.1,
        phase_noise_clip: Some(2.0),
        ..NonIdeal::IDEAL
    };
    let mut max: f64 = 0.0;
    let mut sum_sq = 0.0;
    let mut count = 0.0;
    for seed in 0..20 {
        let e = layout
            .realise(&p, &ni, &mut rng(seed))
            .unwrap()
            .effective_phases();
        for x in e.theta.iter().chain(&e.phi).chain(&e.gamma) {
            max = max.max(x.abs());
            sum_sq += x * x;
            count += 1.0;
        }
    }
    assert!(max <= 0.2 + 1e-15);
    // Variance of N(0,1) truncated at ±2 is 0.774; σ² times that.
    let var = sum_sq / count;
    assert!((var / 0.01 - 0.774).abs() < 0.05, "{var}");
}

#[test]
fn quantisation_and_crosstalk_follow_the_documented_model() {
    let layout = MeshLayout::new(Topology::Clements, 7).unwrap();
    let p = random_phases(&layout, &mut rng(9), -7.0, 7.0);
    let q = NonIdeal {
        phase_bits: Some(5),
        ..NonIdeal::IDEAL
    };
    let e = layout
        .realise(&p, &q, &mut rng(1))
        .unwrap()
        .effective_phases();
    let step = TAU / 32.0;
    for (x, x0) in e.theta.iter().zip(&p.theta) {
        let k = x / step;
        assert!((k - k.round()).abs() < 1e-9 && (0.0..TAU).contains(x));
        let d = (x - x0).rem_euclid(TAU);
        assert!(d.min(TAU - d) <= step / 2.0 + 1e-12);
    }
    let c = 0.03;
    let xt = NonIdeal {
        crosstalk: c,
        ..NonIdeal::IDEAL
    };
    let e = layout
        .realise(&p, &xt, &mut rng(1))
        .unwrap()
        .effective_phases();
    let k = layout.site_index(0, 2).unwrap();
    let (up, down) = (
        layout.site_index(0, 0).unwrap(),
        layout.site_index(0, 4).unwrap(),
    );
    let w = |x: f64| x.rem_euclid(TAU);
    let want = w(p.theta[k]) + c * (w(p.theta[up]) + w(p.theta[down]));
    assert!((e.theta[k] - want).abs() < 1e-12);
    let want_phi = w(p.phi[k]) + c * (w(p.phi[up]) + w(p.phi[down]));
    assert!((e.phi[k] - want_phi).abs() < 1e-12);
    let want_gamma = w(p.gamma[3]) + c * (w(p.gamma[2]) + w(p.gamma[4]));
    assert!((e.gamma[3] - want_gamma).abs() < 1e-12);
}

#[test]
fn realise_rejects_mismatched_phases_and_bad_configs() {
    let layout = MeshLayout::new(Topology::Clements, 4).unwrap();
    let mut p = MeshPhases::zeros(&layout);
    p.gamma.pop();
    assert!(matches!(
        layout.realise(&p, &NonIdeal::IDEAL, &mut rng(0)),
        Err(MziError::PhaseLength { .. })
    ));
    let mut p = MeshPhases::zeros(&layout);
    p.theta[0] = f64::INFINITY;
    assert!(layout.ideal(&p).is_err());
    let bad = NonIdeal {
        loss_db_per_mzi: -1.0,
        ..NonIdeal::IDEAL
    };
    assert!(matches!(
        layout.realise(&MeshPhases::zeros(&layout), &bad, &mut rng(0)),
        Err(MziError::InvalidNonIdeal { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Forward products

#[test]
fn apply_and_adjoint_match_the_matrix_on_both_paths() {
    let mut r = rng(10);
    for topo in TOPOLOGIES {
        let n = 9;
        let layout = MeshLayout::new(topo, n).unwrap();
        let p = random_phases(&layout, &mut r, 0.0, TAU);
        let m = layout.realise(&p, &NonIdeal::worst_case(), &mut r).unwrap();
        let mm = m.matrix().clone();
        for batch in [1usize, 3, 9, 40] {
            let x = random_matrix(n, batch, &mut r);
            let y = m.apply(x.view()).unwrap();
            assert!(max_abs_diff(y.view(), mm.dot(&x).view()) < 1e-13, "{batch}");
            let g = m.apply_adjoint(x.view()).unwrap();
            assert!(max_abs_diff(g.view(), adjoint(&mm).dot(&x).view()) < 1e-13);
        }
        assert!(matches!(
            m.apply(random_matrix(n + 1, 4, &mut r).view()),
            Err(MziError::Rows { .. })
        ));
    }
    // Transfer works for rectangular matrices too.
    let a = random_matrix(5, 3, &mut r);
    let t = Transfer::new(a.clone());
    let x = random_matrix(3, 7, &mut r);
    let g = random_matrix(5, 7, &mut r);
    assert!(max_abs_diff(t.apply(x.view()).unwrap().view(), a.dot(&x).view()) < 1e-14);
    assert!(
        max_abs_diff(
            t.apply_adjoint(g.view()).unwrap().view(),
            adjoint(&a).dot(&g).view()
        ) < 1e-14
    );
    let gm = matrix_grad(x.view(), g.view()).unwrap();
    assert!(max_abs_diff(gm.view(), g.dot(&adjoint(&x)).view()) < 1e-14);
    // Empty batches, and a column-major input.
    assert_eq!(t.apply(Array2::zeros((3, 0)).view()).unwrap().dim(), (5, 0));
    assert_eq!(
        t.apply_adjoint(Array2::zeros((5, 0)).view()).unwrap().dim(),
        (3, 0)
    );
    let xf = x.t().as_standard_layout().t().to_owned();
    assert_eq!(t.apply(xf.view()).unwrap(), t.apply(x.view()).unwrap());
}

// ---------------------------------------------------------------------------------------
// Gradients against central finite differences

/// A real, nonlinear loss of a matrix and its gradient `G = ∂L/∂Re + i ∂L/∂Im`:
/// `L = Σ w |M|² + Re Σ c M`, `G = 2 w M + conj(c)`.
struct Loss {
    w: Array2<f64>,
    c: Array2<C64>,
}

impl Loss {
    fn new(rows: usize, cols: usize, r: &mut StdRng) -> Self {
        Loss {
            w: Array2::from_shape_fn((rows, cols), |_| r.random_range(0.1..1.0)),
            c: random_matrix(rows, cols, r),
        }
    }
    fn value(&self, m: ArrayView2<C64>) -> f64 {
        let mut s = 0.0;
        for ((z, w), c) in m.iter().zip(&self.w).zip(&self.c) {
            s += w * z.norm_sqr() + (c * z).re;
        }
        s
    }
    fn grad(&self, m: ArrayView2<C64>) -> Array2<C64> {
        let mut g = self.c.mapv(|c| c.conj());
        for ((gi, z), w) in g.iter_mut().zip(m.iter()).zip(&self.w) {
            *gi += z * (2.0 * w);
        }
        g
    }
}

/// `max |fd − g| / max |g|` over all parameters.
fn fd_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    let scale = analytic.iter().fold(0.0f64, |a, x| a.max(x.abs()));
    let err = analytic
        .iter()
        .zip(numeric)
        .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
    err / scale
}

fn flatten(p: &MeshPhases) -> Vec<f64> {
    p.theta
        .iter()
        .chain(&p.phi)
        .chain(&p.gamma)
        .copied()
        .collect()
}

fn unflatten(layout: &MeshLayout, v: &[f64]) -> MeshPhases {
    let k = layout.mzi_count();
    MeshPhases {
        theta: v[..k].to_vec(),
        phi: v[k..2 * k].to_vec(),
        gamma: v[2 * k..].to_vec(),
    }
}

fn central_difference(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let x0 = x[i];
            x[i] = x0 + h;
            let fp = f(&x);
            x[i] = x0 - h;
            let fm = f(&x);
            x[i] = x0;
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

#[test]
fn mesh_gradients_match_finite_differences_with_all_non_idealities() {
    let configs = [
        NonIdeal::IDEAL,
        NonIdeal {
            phase_sigma: 0.05,
            splitter_sigma: 0.05,
            loss_db_per_mzi: 0.5,
            crosstalk: 0.04,
            ..NonIdeal::IDEAL
        },
    ];
    let mut r = rng(20);
    for topo in TOPOLOGIES {
        for &n in &[5usize, 6] {
            let layout = MeshLayout::new(topo, n).unwrap();
            let loss = Loss::new(n, n, &mut r);
            // Away from 0 and 2π, where crosstalk's wrapping would jump.
            let p = random_phases(&layout, &mut r, 0.3, TAU - 0.3);
            for ni in &configs {
                let seed = r.random::<u64>();
                let value = |v: &[f64]| {
                    let q = unflatten(&layout, v);
                    let m = layout.realise(&q, ni, &mut rng(seed)).unwrap();
                    loss.value(m.matrix().view())
                };
                let m = layout.realise(&p, ni, &mut rng(seed)).unwrap();
                let g = m.backward(loss.grad(m.matrix().view()).view()).unwrap();
                let fd = central_difference(value, &flatten(&p), 1e-5);
                let err = fd_error(&flatten(&g), &fd);
                assert!(err < 1e-6, "{topo:?} N={n} {ni:?}: {err:e}");
            }
        }
    }
}

#[test]
fn without_crosstalk_nominal_and_effective_gradients_coincide() {
    // With noise, splitter errors and loss but no crosstalk, effective = nominal + fixed
    // noise, so the chain rule to the nominal phases is the identity.
    let mut r = rng(21);
    let layout = MeshLayout::new(Topology::Clements, 4).unwrap();
    let ni = NonIdeal {
        phase_sigma: 0.1,
        splitter_sigma: 0.1,
        loss_db_per_mzi: 1.0,
        ..NonIdeal::IDEAL
    };
    let p = random_phases(&layout, &mut r, 0.0, TAU);
    let m = layout.realise(&p, &ni, &mut rng(3)).unwrap();
    let loss = Loss::new(4, 4, &mut r);
    let g = loss.grad(m.matrix().view());
    assert_eq!(
        m.backward(g.view()).unwrap(),
        m.backward_effective(g.view()).unwrap()
    );
}

#[test]
fn apply_gradients_match_finite_differences() {
    // L(Y) with Y = M X: input gradient M† G_Y and phase gradient via matrix_grad.
    let mut r = rng(22);
    let n = 6;
    let layout = MeshLayout::new(Topology::Clements, n).unwrap();
    let ni = NonIdeal {
        splitter_sigma: 0.05,
        loss_db_per_mzi: 0.3,
        crosstalk: 0.02,
        ..NonIdeal::IDEAL
    };
    let p = random_phases(&layout, &mut r, 0.3, TAU - 0.3);
    for batch in [2usize, 10] {
        let x = random_matrix(n, batch, &mut r);
        let loss = Loss::new(n, batch, &mut r);
        let m = layout.realise(&p, &ni, &mut rng(5)).unwrap();
        let y = m.apply(x.view()).unwrap();
        let gy = loss.grad(y.view());
        // Input gradient: perturb real and imaginary parts of every entry.
        let gx = m.apply_adjoint(gy.view()).unwrap();
        let flat_x: Vec<f64> = x.iter().flat_map(|z| [z.re, z.im]).collect();
        let value_x = |v: &[f64]| {
            let xv = Array2::from_shape_fn((n, batch), |(i, j)| {
                let k = 2 * (i * batch + j);
                C64::new(v[k], v[k + 1])
            });
            loss.value(m.apply(xv.view()).unwrap().view())
        };
        let fd = central_difference(value_x, &flat_x, 1e-6);
        let an: Vec<f64> = gx.iter().flat_map(|z| [z.re, z.im]).collect();
        assert!(fd_error(&an, &fd) < 1e-6, "input gradient, batch {batch}");
        // Phase gradient.
        let g = m
            .backward(matrix_grad(x.view(), gy.view()).unwrap().view())
            .unwrap();
        let value_p = |v: &[f64]| {
            let q = unflatten(&layout, v);
            let mq = layout.realise(&q, &ni, &mut rng(5)).unwrap();
            loss.value(mq.apply(x.view()).unwrap().view())
        };
        let fd = central_difference(value_p, &flatten(&p), 1e-5);
        assert!(
            fd_error(&flatten(&g), &fd) < 1e-6,
            "phase gradient, batch {batch}"
        );
    }
}

#[test]
fn quantised_gradient_is_straight_through() {
    let mut r = rng(23);
    let layout = MeshLayout::new(Topology::Reck, 5).unwrap();
    let p = random_phases(&layout, &mut r, 0.0, TAU);
    let q = NonIdeal {
        phase_bits: Some(4),
        ..NonIdeal::IDEAL
    };
    let m = layout.realise(&p, &q, &mut rng(0)).unwrap();
    let loss = Loss::new(5, 5, &mut r);
    let g = loss.grad(m.matrix().view());
    // The nominal gradient equals the gradient at the quantised (effective) phases.
    let at_grid = layout.ideal(&m.effective_phases()).unwrap();
    assert_eq!(
        m.backward(g.view()).unwrap(),
        at_grid.backward(g.view()).unwrap()
    );
}

#[test]
fn realisations_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Realisation>();
    assert_send_sync::<SvdRealisation>();
    assert_send_sync::<MeshLayout>();
}

// ---------------------------------------------------------------------------------------
// Haar initialisation

#[test]
fn haar_phases_give_haar_moments_and_uniform_theta_does_not() {
    let n = 6;
    let draws = 600;
    let layout = MeshLayout::new(Topology::Clements, n).unwrap();
    let mut r = rng(30);
    let mut m2 = Array2::<f64>::zeros((n, n));
    let mut m4 = 0.0;
    let mut m2_uniform = Array2::<f64>::zeros((n, n));
    for _ in 0..draws {
        let u = layout.ideal(&layout.haar_phases(&mut r)).unwrap();
        for (acc, z) in m2.iter_mut().zip(u.matrix().iter()) {
            *acc += z.norm_sqr() / draws as f64;
            m4 += z.norm_sqr().powi(2) / (draws * n * n) as f64;
        }
        let v = layout
            .ideal(&random_phases(&layout, &mut r, 0.0, TAU))
            .unwrap();
        for (acc, z) in m2_uniform.iter_mut().zip(v.matrix().iter()) {
            *acc += z.norm_sqr() / draws as f64;
        }
    }
    // Haar: E|U_ij|² = 1/N for every entry (sd of |U_ij|² is ≈ 1/N here, so the standard
    // error of each mean is ≈ 0.007), E|U_ij|⁴ = 2/(N(N+1)).
    let dev = m2
        .iter()
        .fold(0.0f64, |a, x| a.max((x - 1.0 / n as f64).abs()));
    assert!(dev < 0.035, "max deviation of E|U_ij|² from 1/N: {dev}");
    let want4 = 2.0 / (n * (n + 1)) as f64;
    assert!(
        (m4 - want4).abs() < 0.1 * want4,
        "E|U|⁴ = {m4}, Haar {want4}"
    );
    // Uniform θ leaves some entries far from 1/N.
    let dev_uniform = m2_uniform
        .iter()
        .fold(0.0f64, |a, x| a.max((x - 1.0 / n as f64).abs()));
    assert!(dev_uniform > 0.08, "uniform θ deviation {dev_uniform}");
}

#[test]
fn reck_haar_thetas_follow_the_beta_law_of_their_position() {
    // cos²(θ/2) of an MZI on modes (c, c+1) is Beta(c+1, 1): mean (c+1)/(c+2).
    let n = 6;
    let layout = MeshLayout::new(Topology::Reck, n).unwrap();
    let mut r = rng(31);
    let mut sum = vec![0.0; n - 1];
    let mut count = vec![0.0; n - 1];
    for _ in 0..400 {
        let p = layout.haar_phases(&mut r);
        for (s, t) in layout.sites().iter().zip(&p.theta) {
            sum[s.top] += (t / 2.0).cos().powi(2);
            count[s.top] += 1.0;
        }
    }
    for c in 0..n - 1 {
        let a = (c + 1) as f64;
        let mean = a / (a + 1.0);
        let var = a / ((a + 1.0).powi(2) * (a + 2.0));
        let se = (var / count[c]).sqrt();
        let got = sum[c] / count[c];
        assert!(
            (got - mean).abs() < 4.0 * se,
            "pair {c}: {got} vs {mean} ± {se}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// SVD mapping

#[test]
fn svd_mapping_reconstructs_rectangular_matrices_with_the_right_mzi_count() {
    let mut r = rng(40);
    for topo in TOPOLOGIES {
        for &(rows, cols) in &[(4usize, 6usize), (6, 4), (5, 5), (16, 8), (1, 3), (3, 1)] {
            let layout = SvdLayout::new(topo, rows, cols).unwrap();
            assert_eq!(
                layout.mzi_count(),
                rows * (rows - 1) / 2 + cols * (cols - 1) / 2 + rows.min(cols)
            );
            let w = random_matrix(rows, cols, &mut r) * 3.0;
            let p = layout.decompose(w.view()).unwrap();
            let m = layout.ideal(&p).unwrap();
            let err = relative_error(m.matrix().view(), w.view());
            assert!(err < 1e-10, "{topo:?} {rows}×{cols}: {err:e}");
            let x = random_matrix(cols, 5, &mut r);
            assert!(max_abs_diff(m.apply(x.view()).unwrap().view(), w.dot(&x).view()) < 1e-12);
        }
    }
    // Real and zero matrices.
    let layout = SvdLayout::new(Topology::Clements, 3, 4).unwrap();
    let real = random_matrix(3, 4, &mut r).mapv(|z| C64::new(z.re, 0.0));
    let p = layout.decompose(real.view()).unwrap();
    assert!(relative_error(layout.ideal(&p).unwrap().matrix().view(), real.view()) < 1e-10);
    let zero = Array2::<C64>::zeros((3, 4));
    let p = layout.decompose(zero.view()).unwrap();
    assert_eq!(p.scale, 0.0);
    assert!(layout
        .ideal(&p)
        .unwrap()
        .matrix()
        .iter()
        .all(|z| z.norm() == 0.0));
    assert!(layout
        .decompose(Array2::<C64>::zeros((4, 3)).view())
        .is_err());
}

#[test]
fn svd_gradients_match_finite_differences() {
    let mut r = rng(41);
    let ni = NonIdeal {
        phase_sigma: 0.03,
        splitter_sigma: 0.05,
        loss_db_per_mzi: 0.4,
        crosstalk: 0.03,
        ..NonIdeal::IDEAL
    };
    for &(rows, cols) in &[(3usize, 5usize), (5, 3)] {
        let layout = SvdLayout::new(Topology::Clements, rows, cols).unwrap();
        let w = random_matrix(rows, cols, &mut r);
        let mut p = layout.decompose(w.view()).unwrap();
        // Keep attenuator phases off the wrap points 0 and 2π.
        p.atten.iter_mut().for_each(|t| *t = t.clamp(0.3, PI - 0.3));
        let loss = Loss::new(rows, cols, &mut r);
        let flat = |q: &SvdPhases| -> Vec<f64> {
            let mut v = flatten(&q.v);
            v.extend(&q.atten);
            v.extend(flatten(&q.u));
            v.push(q.scale);
            v
        };
        let kv = 2 * layout.v().mzi_count() + cols;
        let ka = layout.attenuators();
        let ku = 2 * layout.u().mzi_count() + rows;
        let unflat = |v: &[f64]| SvdPhases {
            v: unflatten(layout.v(), &v[..kv]),
            atten: v[kv..kv + ka].to_vec(),
            u: unflatten(layout.u(), &v[kv + ka..kv + ka + ku]),
            scale: v[kv + ka + ku],
        };
        let m = layout.realise(&p, &ni, &mut rng(9)).unwrap();
        let g = m.backward(loss.grad(m.matrix().view()).view()).unwrap();
        let value = |v: &[f64]| {
            let q = unflat(v);
            loss.value(
                layout
                    .realise(&q, &ni, &mut rng(9))
                    .unwrap()
                    .matrix()
                    .view(),
            )
        };
        let fd = central_difference(value, &flat(&p), 1e-5);
        let err = fd_error(&flat(&g), &fd);
        assert!(err < 1e-6, "{rows}×{cols}: {err:e}");
        // apply / apply_adjoint agree with the realised matrix.
        let x = random_matrix(cols, 4, &mut r);
        let mm = m.matrix();
        assert!(max_abs_diff(m.apply(x.view()).unwrap().view(), mm.dot(&x).view()) < 1e-12);
        let gy = random_matrix(rows, 4, &mut r);
        let want = adjoint(&mm).dot(&gy);
        assert!(max_abs_diff(m.apply_adjoint(gy.view()).unwrap().view(), want.view()) < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------
// The reverse sweep against dense products, and buffer reuse

/// `T` of MZI `k` embedded in an `N×N` identity.
fn embedded(n: usize, top: usize, t: &[C64; 4]) -> Array2<C64> {
    let mut e = Array2::<C64>::eye(n);
    e[[top, top]] = t[0];
    e[[top, top + 1]] = t[1];
    e[[top + 1, top]] = t[2];
    e[[top + 1, top + 1]] = t[3];
    e
}

#[test]
fn reverse_sweep_matches_dense_partial_products() {
    sweep_against_dense_products();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn portable_kernels_match_dense_products_and_the_simd_kernels() {
    let ni = NonIdeal::worst_case();
    let mut r = rng(33);
    let cases: Vec<_> = [(Topology::Clements, 16usize), (Topology::Reck, 7)]
        .into_iter()
        .map(|(topo, n)| {
            let layout = MeshLayout::new(topo, n).unwrap();
            let p = random_phases(&layout, &mut r, 0.0, TAU);
            let (x, gy) = (random_matrix(n, 20, &mut r), random_matrix(n, 20, &mut r));
            (layout, p, x, gy)
        })
        .collect();
    // Per mesh: M, M X, the phase gradients and M† G_Y.
    type Outputs = (Array2<C64>, Array2<C64>, MeshPhases, Array2<C64>);
    let run = || -> Vec<Outputs> {
        cases
            .iter()
            .map(|(layout, p, x, gy)| {
                let mut m = layout.realise(p, &ni, &mut rng(3)).unwrap();
                m.prepare(true);
                let (d, gx) = m.backward_apply(x.view(), gy.view()).unwrap();
                (m.matrix().clone(), m.apply(x.view()).unwrap(), d, gx)
            })
            .collect()
    };
    let simd = run();
    kernels::PORTABLE.with(|f| f.set(true));
    let plain = run();
    sweep_against_dense_products();
    kernels::PORTABLE.with(|f| f.set(false));
    for ((m, y, d, gx), (m2, y2, d2, gx2)) in simd.iter().zip(&plain) {
        assert!(max_abs_diff(m.view(), m2.view()) < 1e-13);
        assert!(max_abs_diff(y.view(), y2.view()) < 1e-12);
        assert!(max_abs_diff(gx.view(), gx2.view()) < 1e-12);
        let (a, b) = (flatten(d), flatten(d2));
        let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        assert!(a.iter().zip(&b).all(|(u, v)| (u - v).abs() < 1e-12 * scale));
    }
}

/// ∂L/∂p_k = Re Σ conj(G) ∘ (P_k ∂T_k/∂p Q_k) with P_k, Q_k the dense products after and
/// before MZI k; ∂L/∂γ_j = Re Σ_r conj(G_rj) i M_rj. Loss and phase noise, no splitter
/// errors, so the cells follow from the effective phases and the amplitude.
fn sweep_against_dense_products() {
    let ni = NonIdeal {
        phase_sigma: 0.05,
        loss_db_per_mzi: 0.4,
        ..NonIdeal::IDEAL
    };
    let mut r = rng(31);
    for topo in TOPOLOGIES {
        for n in [2usize, 6, 9, 16] {
            let layout = MeshLayout::new(topo, n).unwrap();
            let p = random_phases(&layout, &mut r, 0.0, TAU);
            let m = layout.realise(&p, &ni, &mut r).unwrap();
            let g = random_matrix(n, n, &mut r);
            let got = m.backward_effective(g.view()).unwrap();
            let eff = m.effective_phases();
            let cells: Vec<cell::Cell> = (0..layout.mzi_count())
                .map(|k| cell::Cell::new(eff.theta[k], eff.phi[k], 0.0, 0.0, ni.amplitude()))
                .collect();
            let sites = layout.sites();
            let screen = Array2::from_diag(&ndarray::Array1::from_shape_fn(n, |j| {
                C64::from_polar(1.0, eff.gamma[j])
            }));
            // prefix[k] = T_k ⋯ T_1 D (prefix[0] = D); suffix[k] = T_K ⋯ T_{k+1}.
            let mut prefix = vec![screen];
            for (c, s) in cells.iter().zip(sites) {
                let next = embedded(n, s.top, &c.t).dot(prefix.last().unwrap());
                prefix.push(next);
            }
            let mut suffix = vec![Array2::<C64>::eye(n); cells.len() + 1];
            for k in (0..cells.len()).rev() {
                suffix[k] = suffix[k + 1].dot(&embedded(n, sites[k].top, &cells[k].t));
            }
            let contract = |d: Array2<C64>| -> f64 {
                g.iter().zip(d.iter()).map(|(a, b)| (a.conj() * b).re).sum()
            };
            let scale = got
                .theta
                .iter()
                .chain(&got.phi)
                .chain(&got.gamma)
                .fold(0.0f64, |a, v| a.max(v.abs()));
            for (k, (c, s)) in cells.iter().zip(sites).enumerate() {
                let zero = [C64::new(0.0, 0.0); 4];
                for (d, want) in [(c.d_theta(), got.theta[k]), (c.d_phi(), got.phi[k])] {
                    // ∂T/∂p embedded: zero outside the 2×2 block.
                    let mut e = embedded(n, s.top, &zero);
                    e[[s.top, s.top]] = d[0];
                    e[[s.top, s.top + 1]] = d[1];
                    e[[s.top + 1, s.top]] = d[2];
                    e[[s.top + 1, s.top + 1]] = d[3];
                    for j in (0..n).filter(|&j| j != s.top && j != s.top + 1) {
                        e[[j, j]] = C64::new(0.0, 0.0);
                    }
                    let reference = contract(suffix[k + 1].dot(&e).dot(&prefix[k]));
                    assert!(
                        (reference - want).abs() < 1e-12 * scale,
                        "{topo:?} N={n} MZI {k}: {want} vs {reference}"
                    );
                }
            }
            let full = prefix.last().unwrap();
            for j in 0..n {
                let reference: f64 = (0..n)
                    .map(|row| (g[[row, j]].conj() * C64::i() * full[[row, j]]).re)
                    .sum();
                assert!(
                    (reference - got.gamma[j]).abs() < 1e-12 * scale,
                    "{topo:?} N={n} γ{j}"
                );
            }
        }
    }
}

#[test]
fn reused_buffers_and_eager_collapse_change_no_bit() {
    let ni = NonIdeal::worst_case();
    let mut r = rng(32);
    for topo in TOPOLOGIES {
        for n in [3usize, 8, 10] {
            let layout = MeshLayout::new(topo, n).unwrap();
            let p = random_phases(&layout, &mut r, 0.0, TAU);
            let x = random_matrix(n, 13, &mut r);
            let gy = random_matrix(n, 13, &mut r);
            let fresh = layout.realise(&p, &ni, &mut rng(7)).unwrap();
            let (want_d, want_gx) = fresh.backward_apply(x.view(), gy.view()).unwrap();
            let want_y = fresh.apply(x.view()).unwrap();
            // An old realisation of other phases and noise, used forward and backward; one
            // of another size; and none.
            let mut old = layout
                .realise(&random_phases(&layout, &mut r, 0.0, TAU), &ni, &mut r)
                .unwrap();
            old.prepare(true);
            old.backward_apply(x.view(), gy.view()).unwrap();
            let other = MeshLayout::new(topo, n + 1).unwrap();
            let stranger = other.ideal(&MeshPhases::zeros(&other)).unwrap();
            for (spare, eager) in [(Some(old), true), (Some(stranger), false), (None, true)] {
                let mut m = layout.realise_reusing(&p, &ni, &mut rng(7), spare).unwrap();
                if eager {
                    m.prepare(true);
                }
                assert_eq!(m.matrix(), fresh.matrix());
                assert_eq!(m.apply(x.view()).unwrap(), want_y);
                let (d, gx) = m.backward_apply(x.view(), gy.view()).unwrap();
                assert_eq!((d, gx), (want_d.clone(), want_gx.clone()));
            }
            // backward_apply is matrix_grad, then backward, then apply_adjoint.
            let gm = matrix_grad(x.view(), gy.view()).unwrap();
            assert_eq!(fresh.backward(gm.view()).unwrap(), want_d);
            assert_eq!(fresh.apply_adjoint(gy.view()).unwrap(), want_gx);
            // Ideal meshes too, preparing forward only and then backward.
            let mut ideal = layout.ideal_reusing(&p, Some(fresh)).unwrap();
            ideal.prepare(false);
            let plain = layout.ideal(&p).unwrap();
            assert_eq!(ideal.matrix(), plain.matrix());
            assert_eq!(
                ideal.backward(gm.view()).unwrap(),
                plain.backward(gm.view()).unwrap()
            );
        }
    }
}
