//! Dense complex linear algebra the mesh code needs: Householder QR with the full `Q`,
//! Haar-random unitaries, the SVD (nalgebra), fidelity and error measures.

use super::MziError;
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64 as C64;
use rand::Rng;
use rand_distr::StandardNormal;
use std::f64::consts::FRAC_1_SQRT_2;

const ONE: C64 = C64::new(1.0, 0.0);

/// Householder QR of an `m×n` matrix: `A = Q R` with `Q` the full `m×m` unitary and `R` `m×n`
/// upper triangular. Used for Haar sampling and for completing a thin unitary to a square one.
pub(crate) fn householder_qr(a: ArrayView2<C64>) -> (Array2<C64>, Array2<C64>) {
    let (m, n) = a.dim();
    let mut r = a.to_owned();
    let mut reflectors: Vec<(usize, Vec<C64>)> = Vec::new();
    for j in 0..n.min(m.saturating_sub(1)) {
        let norm = (j..m).map(|i| r[[i, j]].norm_sqr()).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let x0 = r[[j, j]];
        let phase = if x0.norm() > 0.0 { x0 / x0.norm() } else { ONE };
        let mut v: Vec<C64> = (j..m).map(|i| r[[i, j]]).collect();
        // Reflect x onto −phase·‖x‖·e₁: no cancellation in v₀.
        v[0] += phase * norm;
        let vnorm = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        v.iter_mut().for_each(|z| *z /= vnorm);
        reflect(&mut r, j, &v, j..n);
        reflectors.push((j, v));
    }
    let mut q = Array2::<C64>::eye(m);
    for (j, v) in reflectors.iter().rev() {
        reflect(&mut q, *j, v, 0..m);
    }
    (q, r)
}

/// `A[j.., cols] ← (I − 2 v v†) A[j.., cols]`.
fn reflect(a: &mut Array2<C64>, j: usize, v: &[C64], cols: std::ops::Range<usize>) {
    for col in cols {
        let s: C64 = v
            .iter()
            .enumerate()
            .map(|(i, vi)| vi.conj() * a[[j + i, col]])
            .sum();
        let s2 = s * 2.0;
        for (i, vi) in v.iter().enumerate() {
            a[[j + i, col]] -= vi * s2;
        }
    }
}

/// A Haar-random `n×n` unitary: QR of a complex Ginibre matrix with the phases of `diag(R)`
/// moved into `Q` (Mezzadri, Notices AMS 2007), which makes the result exactly Haar.
pub fn haar_unitary<R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array2<C64> {
    let z = Array2::from_shape_fn((n, n), |_| {
        let re: f64 = rng.sample(StandardNormal);
        let im: f64 = rng.sample(StandardNormal);
        C64::new(re, im) * FRAC_1_SQRT_2
    });
    let (mut q, r) = householder_qr(z.view());
    for j in 0..n {
        let d = r[[j, j]];
        let phase = if d.norm() > 0.0 { d / d.norm() } else { ONE };
        q.column_mut(j).mapv_inplace(|x| x * phase);
    }
    q
}

/// `(U, σ, V†)` of a full SVD.
pub(crate) type Svd = (Array2<C64>, Vec<f64>, Array2<C64>);

/// Full SVD `W = U diag(σ) V†` with square unitaries `U` (`m×m`) and `V†` (`n×n`) and
/// `min(m, n)` singular values in decreasing order.
pub(crate) fn svd_full(w: ArrayView2<C64>) -> Result<Svd, MziError> {
    let (m, n) = w.dim();
    let k = m.min(n);
    let mat = nalgebra::DMatrix::<C64>::from_fn(m, n, |i, j| w[[i, j]]);
    // nalgebra's implicit-shift QR; 2000 sweeps is far beyond what any finite input needs.
    let svd = nalgebra::SVD::try_new(mat, true, true, f64::EPSILON, 2000)
        .ok_or(MziError::SvdFailed { rows: m, cols: n })?;
    let (Some(u), Some(vt)) = (svd.u, svd.v_t) else {
        return Err(MziError::SvdFailed { rows: m, cols: n });
    };
    let sigma: Vec<f64> = svd.singular_values.iter().copied().collect();
    let u_thin = Array2::from_shape_fn((m, k), |(i, j)| u[(i, j)]);
    let v_thin = Array2::from_shape_fn((n, k), |(i, j)| vt[(j, i)].conj());
    let u_full = complete_unitary(u_thin.view());
    let v_full = complete_unitary(v_thin.view());
    let vh = v_full.t().mapv(|z| z.conj());
    Ok((u_full, sigma, vh))
}

/// Extends `m×k` orthonormal columns to an `m×m` unitary whose first `k` columns are them.
fn complete_unitary(thin: ArrayView2<C64>) -> Array2<C64> {
    let (m, k) = thin.dim();
    if k == m {
        return thin.to_owned();
    }
    // For orthonormal columns R's top k×k block is diagonal with unit-modulus entries, so
    // Q's trailing columns span exactly the orthogonal complement.
    let (mut q, _) = householder_qr(thin);
    q.slice_mut(ndarray::s![.., ..k]).assign(&thin);
    q
}

/// Unitary fidelity `F = |Tr(U† U₀) / N|²` (1 for equal matrices, phase-insensitive).
pub fn fidelity(u: ArrayView2<C64>, u0: ArrayView2<C64>) -> Result<f64, MziError> {
    let n = u.nrows();
    for dim in [u.dim(), u0.dim()] {
        if dim != (n, n) || n == 0 {
            return Err(MziError::Shape {
                what: "fidelity operand",
                expected: (n.max(1), n.max(1)),
                got: dim,
            });
        }
    }
    let tr: C64 = u.iter().zip(u0.iter()).map(|(a, b)| a.conj() * b).sum();
    Ok((tr / n as f64).norm_sqr())
}

/// `‖A − B‖_F / ‖B‖_F` (absolute error if `B = 0`).
pub fn relative_error(a: ArrayView2<C64>, b: ArrayView2<C64>) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).norm_sqr())
        .sum();
    let base: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    if base > 0.0 {
        (diff / base).sqrt()
    } else {
        diff.sqrt()
    }
}

/// `‖U†U − I‖_F`.
pub(crate) fn unitarity_deviation(u: ArrayView2<C64>) -> f64 {
    let n = u.ncols();
    let g = u.t().mapv(|z| z.conj()).dot(&u);
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..n {
            let e = if i == j { ONE } else { C64::new(0.0, 0.0) };
            s += (g[[i, j]] - e).norm_sqr();
        }
    }
    s.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn ginibre(m: usize, n: usize, rng: &mut StdRng) -> Array2<C64> {
        Array2::from_shape_fn((m, n), |_| {
            C64::new(rng.sample(StandardNormal), rng.sample(StandardNormal))
        })
    }

    #[test]
    fn qr_reconstructs_and_q_is_unitary() {
        let mut rng = StdRng::seed_from_u64(1);
        for &(m, n) in &[(5, 5), (7, 3), (3, 6), (1, 1)] {
            let a = ginibre(m, n, &mut rng);
            let (q, r) = householder_qr(a.view());
            assert!(unitarity_deviation(q.view()) < 1e-13);
            assert!(relative_error(q.dot(&r).view(), a.view()) < 1e-14);
            for i in 0..m {
                for j in 0..i.min(n) {
                    assert!(r[[i, j]].norm() < 1e-13, "R not triangular at ({i},{j})");
                }
            }
        }
    }

    #[test]
    fn haar_unitary_is_unitary_and_seeded() {
        let u = haar_unitary(16, &mut StdRng::seed_from_u64(7));
        assert!(unitarity_deviation(u.view()) < 1e-13);
        let v = haar_unitary(16, &mut StdRng::seed_from_u64(7));
        assert_eq!(u, v);
    }

    #[test]
    fn svd_full_reconstructs_rectangular_matrices() {
        let mut rng = StdRng::seed_from_u64(3);
        for &(m, n) in &[(6, 4), (4, 6), (5, 5), (1, 3), (3, 1)] {
            let w = ginibre(m, n, &mut rng);
            let (u, s, vh) = svd_full(w.view()).unwrap();
            assert_eq!(u.dim(), (m, m));
            assert_eq!(vh.dim(), (n, n));
            assert_eq!(s.len(), m.min(n));
            assert!(s.windows(2).all(|p| p[0] >= p[1]));
            assert!(unitarity_deviation(u.view()) < 1e-13);
            assert!(unitarity_deviation(vh.view()) < 1e-13);
            let mut sig = Array2::<C64>::zeros((m, n));
            for (i, &x) in s.iter().enumerate() {
                sig[[i, i]] = C64::new(x, 0.0);
            }
            assert!(relative_error(u.dot(&sig).dot(&vh).view(), w.view()) < 1e-13);
        }
    }

    #[test]
    fn fidelity_is_one_for_equal_up_to_phase_and_low_for_unrelated() {
        let mut rng = StdRng::seed_from_u64(5);
        let u = haar_unitary(8, &mut rng);
        let v = u.mapv(|z| z * C64::from_polar(1.0, 0.3));
        assert!((fidelity(u.view(), v.view()).unwrap() - 1.0).abs() < 1e-14);
        let w = haar_unitary(8, &mut rng);
        assert!(fidelity(u.view(), w.view()).unwrap() < 0.5);
        let bad = Array2::<C64>::zeros((3, 3));
        assert!(fidelity(u.view(), bad.view()).is_err());
    }
}
