//! One MZI: its 2×2 transfer matrix and the derivatives the reverse pass needs.
//!
//! `T = a · diag(e^{iφ}, 1) · BS(ε₂) · diag(e^{iθ}, 1) · BS(ε₁)`, `BS(ε) = [[r, i t], [i t, r]]`,
//! `r = cos(π/4 + ε)`, `t = sin(π/4 + ε)`. Multiplied out, with `e = e^{iθ}`:
//!
//! ```text
//! T = a · [[e^{iφ}(r₁r₂ e − t₁t₂),  i e^{iφ}(r₂t₁ e + t₂r₁)],
//!          [i (t₂r₁ e + r₂t₁),       r₁r₂ − t₁t₂ e        ]]
//! ```
//!
//! which for ε₁ = ε₂ = 0 is neuroptica's `½[[e^{iφ}(e^{iθ}−1), i e^{iφ}(1+e^{iθ})], [i(e^{iθ}+1), 1−e^{iθ}]]`.

use num_complex::Complex64 as C64;
use std::f64::consts::FRAC_PI_4;

pub(crate) const I: C64 = C64::new(0.0, 1.0);

/// Splitter products `[r₁r₂, t₁t₂, r₂t₁, t₂r₁]` from `(t, r) = (sin, cos)(π/4 + ε)` of both
/// splitters; exactly `½` each for ideal 50:50 splitters, so an ideal MZI carries no
/// rounding from `cos(π/4)`.
pub(crate) fn splitter_products(
    ideal: bool,
    (t1, r1): (f64, f64),
    (t2, r2): (f64, f64),
) -> [f64; 4] {
    if ideal {
        return [0.5; 4];
    }
    [r1 * r2, t1 * t2, r2 * t1, t2 * r1]
}

fn splitter_products_of(eps1: f64, eps2: f64) -> [f64; 4] {
    splitter_products(
        eps1 == 0.0 && eps2 == 0.0,
        (FRAC_PI_4 + eps1).sin_cos(),
        (FRAC_PI_4 + eps2).sin_cos(),
    )
}

/// The effective (realised) parameters of one MZI and its transfer matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cell {
    pub theta: f64,
    pub phi: f64,
    pub amp: f64,
    /// `e^{iθ}`, `e^{iφ}`, kept so the reverse pass needs no trigonometry.
    eth: C64,
    eph: C64,
    /// `[r₁r₂, t₁t₂, r₂t₁, t₂r₁]`.
    sp: [f64; 4],
    /// Row-major transfer matrix `[t00, t01, t10, t11]`.
    pub t: [C64; 4],
}

impl Cell {
    #[cfg(test)]
    pub fn new(theta: f64, phi: f64, eps1: f64, eps2: f64, amp: f64) -> Self {
        let (s, c) = theta.sin_cos();
        let (s2, c2) = phi.sin_cos();
        Cell::from_parts(
            theta,
            phi,
            C64::new(c, s),
            C64::new(c2, s2),
            splitter_products_of(eps1, eps2),
            amp,
        )
    }

    /// From precomputed `e^{iθ}`, `e^{iφ}` and splitter products.
    pub fn from_parts(theta: f64, phi: f64, eth: C64, eph: C64, sp: [f64; 4], amp: f64) -> Self {
        let [rr, tt, rt, tr] = sp;
        let t = [
            eph * (eth * rr - tt) * amp,
            I * eph * (eth * rt + tr) * amp,
            I * (eth * tr + rt) * amp,
            (C64::new(rr, 0.0) - eth * tt) * amp,
        ];
        Cell {
            theta,
            phi,
            amp,
            eth,
            eph,
            sp,
            t,
        }
    }

    /// `∂T/∂θ` (the reference for [`phase_grads`](Self::phase_grads)).
    #[cfg(test)]
    pub fn d_theta(&self) -> [C64; 4] {
        let [rr, tt, rt, tr] = self.sp;
        let k = I * self.eth * self.amp;
        [
            k * self.eph * rr,
            k * I * self.eph * rt,
            k * I * tr,
            -k * tt,
        ]
    }

    /// `(Re Σ conj(H) ∘ ∂T/∂θ, Re Σ conj(H) ∘ ∂T/∂φ)` for the 2×2 block `h` (row-major): the
    /// two phase gradients of this MZI. The same arithmetic as contracting `h` with
    /// [`d_theta`](Self::d_theta) and [`d_phi`](Self::d_phi) term by term (exact products by
    /// `i` and zero terms left out), without building them.
    #[inline]
    pub fn phase_grads(&self, h: &[C64; 4]) -> (f64, f64) {
        let [rr, tt, rt, tr] = self.sp;
        // k = i e^{iθ} a, ke = k e^{iφ}; ∂T/∂θ = [ke rr, i ke rt, i k tr, −k tt].
        let k = C64::new(-self.eth.im * self.amp, self.eth.re * self.amp);
        let ke = k * self.eph;
        let d = [
            (ke.re * rr, ke.im * rr),
            (-ke.im * rt, ke.re * rt),
            (-k.im * tr, k.re * tr),
            (-k.re * tt, -k.im * tt),
        ];
        let theta = h[0].re * d[0].0
            + h[0].im * d[0].1
            + h[1].re * d[1].0
            + h[1].im * d[1].1
            + h[2].re * d[2].0
            + h[2].im * d[2].1
            + h[3].re * d[3].0
            + h[3].im * d[3].1;
        // ∂T/∂φ = [i t00, i t01, 0, 0].
        let [t0, t1, _, _] = self.t;
        let phi = h[0].re * -t0.im + h[0].im * t0.re + h[1].re * -t1.im + h[1].im * t1.re;
        (theta, phi)
    }

    /// `∂T/∂φ` (only the top row depends on φ).
    #[cfg(test)]
    pub fn d_phi(&self) -> [C64; 4] {
        [
            I * self.t[0],
            I * self.t[1],
            C64::new(0.0, 0.0),
            C64::new(0.0, 0.0),
        ]
    }

    /// `T†`.
    pub fn adjoint(&self) -> [C64; 4] {
        let [a, b, c, d] = self.t;
        [a.conj(), c.conj(), b.conj(), d.conj()]
    }
}

/// A single-port attenuator built from one MZI used bar-to-bar (top in, top out), φ unused:
/// `τ = a (r₁r₂ e^{iθ} − t₁t₂)`, ideally `i e^{iθ/2} sin(θ/2)`, so `|τ| = sin(θ/2)` for θ ∈ [0, π].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Attenuator {
    pub theta: f64,
    eth: C64,
    amp: f64,
    rr: f64,
    /// Complex amplitude transmission.
    pub tau: C64,
}

impl Attenuator {
    pub fn new(theta: f64, eps1: f64, eps2: f64, amp: f64) -> Self {
        let [rr, tt, _, _] = splitter_products_of(eps1, eps2);
        let (s, c) = theta.sin_cos();
        let eth = C64::new(c, s);
        Attenuator {
            theta,
            eth,
            amp,
            rr,
            tau: (eth * rr - tt) * amp,
        }
    }

    /// `∂τ/∂θ`.
    pub fn d_theta(&self) -> C64 {
        I * self.eth * (self.rr * self.amp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn close(a: C64, b: C64, tol: f64) -> bool {
        (a - b).norm() <= tol
    }

    /// neuroptica's closed form, written independently of `Cell::new`.
    fn neuroptica(theta: f64, phi: f64) -> [C64; 4] {
        let e = C64::from_polar(1.0, theta);
        let p = C64::from_polar(1.0, phi);
        let one = C64::new(1.0, 0.0);
        [
            p * (e - one) * 0.5,
            I * p * (one + e) * 0.5,
            I * (e + one) * 0.5,
            (one - e) * 0.5,
        ]
    }

    #[test]
    fn ideal_cell_matches_neuroptica_closed_form() {
        for &(th, ph) in &[(0.3, 1.1), (2.0, -0.7), (PI, 0.0), (0.0, 2.5), (5.9, 4.4)] {
            let c = Cell::new(th, ph, 0.0, 0.0, 1.0);
            let r = neuroptica(th, ph);
            for (k, (&got, &want)) in c.t.iter().zip(&r).enumerate() {
                assert!(close(got, want, 1e-15), "θ={th} φ={ph} entry {k}");
            }
        }
    }

    #[test]
    fn product_form_matches_splitter_sandwich() {
        // diag(e^{iφ},1)·BS(ε₂)·diag(e^{iθ},1)·BS(ε₁), multiplied out numerically.
        let (th, ph, e1, e2, a) = (1.3, 0.4, 0.05, -0.08, 0.9);
        let bs = |e: f64| {
            let (t, r) = (FRAC_PI_4 + e).sin_cos();
            [C64::new(r, 0.0), I * t, I * t, C64::new(r, 0.0)]
        };
        let mul = |x: [C64; 4], y: [C64; 4]| {
            [
                x[0] * y[0] + x[1] * y[2],
                x[0] * y[1] + x[1] * y[3],
                x[2] * y[0] + x[3] * y[2],
                x[2] * y[1] + x[3] * y[3],
            ]
        };
        let one = C64::new(1.0, 0.0);
        let zero = C64::new(0.0, 0.0);
        let dth = [C64::from_polar(1.0, th), zero, zero, one];
        let dph = [C64::from_polar(1.0, ph), zero, zero, one];
        let r = mul(dph, mul(bs(e2), mul(dth, bs(e1))));
        let c = Cell::new(th, ph, e1, e2, a);
        for (&got, &want) in c.t.iter().zip(&r) {
            assert!(close(got, want * a, 1e-15));
        }
    }

    #[test]
    fn cross_and_bar_states() {
        // θ = 0: full cross, |T01| = |T10| = 1, diagonal zero.
        let c = Cell::new(0.0, 0.7, 0.0, 0.0, 1.0);
        assert!(c.t[0].norm() < 1e-16 && c.t[3].norm() < 1e-16);
        assert!((c.t[1].norm() - 1.0).abs() < 1e-15 && (c.t[2].norm() - 1.0).abs() < 1e-15);
        // θ = π: bar, |T00| = |T11| = 1, off-diagonal zero; T00 = −e^{iφ}, T11 = 1.
        let b = Cell::new(PI, 0.7, 0.0, 0.0, 1.0);
        assert!(b.t[1].norm() < 1e-15 && b.t[2].norm() < 1e-15);
        assert!(close(b.t[0], -C64::from_polar(1.0, 0.7), 1e-15));
        assert!(close(b.t[3], C64::new(1.0, 0.0), 1e-15));
    }

    #[test]
    fn cell_is_amplitude_times_unitary() {
        let c = Cell::new(0.9, 2.1, 0.03, -0.02, 0.8);
        let [a, b, cc, d] = c.t;
        // Columns orthogonal with squared norm a².
        assert!(((a.norm_sqr() + cc.norm_sqr()) - 0.64).abs() < 1e-15);
        assert!(((b.norm_sqr() + d.norm_sqr()) - 0.64).abs() < 1e-15);
        assert!((a.conj() * b + cc.conj() * d).norm() < 1e-15);
        // T† T = a² I.
        let adj = c.adjoint();
        let p00 = adj[0] * a + adj[1] * cc;
        let p01 = adj[0] * b + adj[1] * d;
        assert!(close(p00, C64::new(0.64, 0.0), 1e-15) && p01.norm() < 1e-15);
    }

    #[test]
    fn phase_grads_equal_the_contraction_with_the_derivatives() {
        let c = Cell::new(1.3, -2.2, 0.02, -0.05, 0.9);
        let h = [
            C64::new(0.3, -1.2),
            C64::new(-0.7, 0.4),
            C64::new(2.1, 0.05),
            C64::new(-0.2, -0.9),
        ];
        let dot = |d: [C64; 4]| -> f64 { (0..4).map(|k| (h[k].conj() * d[k]).re).sum() };
        let (gt, gp) = c.phase_grads(&h);
        assert!((gt - dot(c.d_theta())).abs() < 1e-15);
        assert!((gp - dot(c.d_phi())).abs() < 1e-15);
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let (th, ph, e1, e2, a) = (1.1, -0.6, 0.04, 0.07, 0.95);
        let h = 1e-6;
        let c = Cell::new(th, ph, e1, e2, a);
        let (dt, dp) = (c.d_theta(), c.d_phi());
        let tp = Cell::new(th + h, ph, e1, e2, a).t;
        let tm = Cell::new(th - h, ph, e1, e2, a).t;
        let pp = Cell::new(th, ph + h, e1, e2, a).t;
        let pm = Cell::new(th, ph - h, e1, e2, a).t;
        for k in 0..4 {
            assert!(close((tp[k] - tm[k]) / (2.0 * h), dt[k], 1e-9));
            assert!(close((pp[k] - pm[k]) / (2.0 * h), dp[k], 1e-9));
        }
        let at = Attenuator::new(th, e1, e2, a);
        let fd = (Attenuator::new(th + h, e1, e2, a).tau - Attenuator::new(th - h, e1, e2, a).tau)
            / (2.0 * h);
        assert!(close(fd, at.d_theta(), 1e-9));
    }

    #[test]
    fn ideal_attenuator_transmits_sin_half_theta() {
        for &th in &[0.0, 0.5, 1.5, PI] {
            let at = Attenuator::new(th, 0.0, 0.0, 1.0);
            assert!((at.tau.norm() - (th / 2.0).sin()).abs() < 1e-15);
            // Its phase is i·e^{iθ/2}, which the SVD mapping folds into the next mesh.
            assert!(close(
                at.tau,
                I * C64::from_polar((th / 2.0).sin(), th / 2.0),
                1e-15
            ));
        }
    }
}
