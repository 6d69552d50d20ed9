//! The statistics an experiment report states: mean and spread of a few repeats, a
//! bootstrap confidence interval, and the Mann–Whitney U test between two sets of runs.
//! Repeats are few (3 to 10 seeds), so the test is exact (every relabelling enumerated)
//! wherever that is affordable, and intervals come from a seeded bootstrap, so a report is
//! the same every time it is written.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Arithmetic mean; NaN for no values.
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (n − 1); 0 for fewer than two values.
pub fn std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Resamples of a bootstrap: enough for stable 95 % bounds to two or three digits.
const RESAMPLES: usize = 10_000;

/// Percentile bootstrap interval of `stat` over resamples of `x` (with replacement) at
/// level `level` (e.g. 0.95); `None` for no values.
fn bootstrap(x: &[f64], level: f64, seed: u64, stat: impl Fn(&[f64]) -> f64) -> Option<(f64, f64)> {
    if x.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0.0; x.len()];
    let mut stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = x[rng.random_range(0..x.len())];
            }
            stat(&buf)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let lo = ((1.0 - level) / 2.0 * (RESAMPLES - 1) as f64).round() as usize;
    let hi = ((1.0 + level) / 2.0 * (RESAMPLES - 1) as f64).round() as usize;
    Some((stats[lo], stats[hi]))
}

/// Percentile bootstrap interval of the mean of `x`.
pub fn bootstrap_mean_ci(x: &[f64], level: f64, seed: u64) -> Option<(f64, f64)> {
    bootstrap(x, level, seed, mean)
}

/// Percentile bootstrap interval of mean(a) − mean(b), each resampled on its own.
pub fn bootstrap_difference_ci(a: &[f64], b: &[f64], level: f64, seed: u64) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    let mut d: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for v in ra.iter_mut() {
                *v = a[rng.random_range(0..a.len())];
            }
            for v in rb.iter_mut() {
                *v = b[rng.random_range(0..b.len())];
            }
            mean(&ra) - mean(&rb)
        })
        .collect();
    d.sort_by(f64::total_cmp);
    let lo = ((1.0 - level) / 2.0 * (RESAMPLES - 1) as f64).round() as usize;
    let hi = ((1.0 + level) / 2.0 * (RESAMPLES - 1) as f64).round() as usize;
    Some((d[lo], d[hi]))
}

/// A Mann–Whitney U test of `a` against `b`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of `a`: pairs (x in a, y in b) with x > y, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// True when every relabelling was enumerated (exact, ties included); false for the
    /// normal approximation with tie correction.
    pub exact: bool,
}

/// Relabellings enumerated at most for an exact test (C(20, 10) = 184 756).
const EXACT_LIMIT: u64 = 200_000;

fn u_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut u = 0.0;
    for x in a {
        for y in b {
            u += if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    u
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
    }
    c
}

/// Mann–Whitney U test, two-sided; `None` when either side is empty or a value is NaN.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let (n1, n2) = (a.len(), b.len());
    let u = u_statistic(a, b);
    let centre = (n1 * n2) as f64 / 2.0;
    let observed = (u - centre).abs();
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let n = all.len();
    if binomial(n as u64, n1 as u64) <= EXACT_LIMIT {
        // Every way of labelling n1 of the pooled values `a`: the p-value is the share of
        // labellings at least as far from the centre as the one observed.
        let (mut extreme, mut total) = (0u64, 0u64);
        let mut pick: Vec<usize> = (0..n1).collect();
        loop {
            let mut chosen = vec![false; n];
            for &i in &pick {
                chosen[i] = true;
            }
            let xa: Vec<f64> = (0..n).filter(|&i| chosen[i]).map(|i| all[i]).collect();
            let xb: Vec<f64> = (0..n).filter(|&i| !chosen[i]).map(|i| all[i]).collect();
            total += 1;
            if (u_statistic(&xa, &xb) - centre).abs() >= observed - 1e-9 {
                extreme += 1;
            }
            // Next combination of n1 indices out of n, in lexicographic order.
            let mut i = n1;
            loop {
                if i == 0 {
                    return Some(MannWhitney {
                        u,
                        p: extreme as f64 / total as f64,
                        exact: true,
                    });
                }
                i -= 1;
                if pick[i] < n - n1 + i {
                    pick[i] += 1;
                    for j in i + 1..n1 {
                        pick[j] = pick[j - 1] + 1;
                    }
                    break;
                }
            }
        }
    }
    // Normal approximation with the tie correction of the variance and a continuity
    // correction of 0.5.
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let (f1, f2, nf) = (n1 as f64, n2 as f64, n as f64);
    let var = f1 * f2 / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)));
    let p = if var <= 0.0 {
        1.0
    } else {
        let z = ((observed - 0.5).max(0.0)) / var.sqrt();
        (2.0 * normal_upper_tail(z)).min(1.0)
    };
    Some(MannWhitney { u, p, exact: false })
}

/// P(Z > z) for a standard normal Z (Abramowitz and Stegun 7.1.26 erfc, |error| < 1.5e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert!((std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138_089_935).abs() < 1e-9);
        assert_eq!(std(&[3.0]), 0.0);
    }

    #[test]
    fn exact_mann_whitney_matches_the_tables() {
        // Complete separation: U = 0; two-sided exact p = 2 / C(6, 3) = 0.1 (SciPy's
        // mannwhitneyu(method="exact") gives 0.1), and 2 / C(10, 5) = 0.0079365 for 5 vs 5.
        let t = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(t.u, 0.0);
        assert!(t.exact);
        assert!((t.p - 0.1).abs() < 1e-12, "{}", t.p);
        let t = mann_whitney(&[6.0, 7.0, 8.0, 9.0, 10.0], &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(t.u, 25.0);
        assert!((t.p - 2.0 / 252.0).abs() < 1e-12, "{}", t.p);
        // Interleaved samples: no evidence either way.
        let t = mann_whitney(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0]).unwrap();
        assert_eq!(t.u, 3.0);
        assert!(t.p > 0.6, "{}", t.p);
        // Identical samples: p = 1.
        let t = mann_whitney(&[1.0, 1.0], &[1.0, 1.0]).unwrap();
        assert_eq!(t.p, 1.0);
    }

    #[test]
    fn the_normal_approximation_agrees_with_the_exact_test() {
        // 12 vs 12 is enumerated (C(24, 12) = 2.7 M > the limit, so this one is normal);
        // compare with 9 vs 9 done both ways by shifting the same data.
        let a: Vec<f64> = (0..9).map(|i| i as f64 * 1.3 + 0.2).collect();
        let b: Vec<f64> = (0..9).map(|i| i as f64 * 1.1 + 2.0).collect();
        let exact = mann_whitney(&a, &b).unwrap();
        assert!(exact.exact);
        // The same statistic through the approximation (forced by the formula directly).
        let n = 18.0;
        let var = 81.0 / 12.0 * (n + 1.0);
        let z = ((exact.u - 40.5).abs() - 0.5) / f64::sqrt(var);
        let approx = 2.0 * normal_upper_tail(z);
        assert!((approx - exact.p).abs() < 0.02, "{approx} vs {}", exact.p);
        let big_a: Vec<f64> = (0..15).map(|i| i as f64).collect();
        let big_b: Vec<f64> = (0..15).map(|i| i as f64 + 100.0).collect();
        let t = mann_whitney(&big_a, &big_b).unwrap();
        assert!(!t.exact);
        assert!(t.p < 1e-4, "{}", t.p);
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(-1.0) - 0.841_344_746).abs() < 1e-6);
    }

    #[test]
    fn bootstrap_intervals_cover_the_mean_and_are_seeded() {
        let x = [0.70, 0.72, 0.74, 0.71, 0.73];
        let (lo, hi) = bootstrap_mean_ci(&x, 0.95, 7).unwrap();
        assert!(lo <= mean(&x) && mean(&x) <= hi);
        assert!(lo >= 0.70 && hi <= 0.74);
        assert_eq!(bootstrap_mean_ci(&x, 0.95, 7), Some((lo, hi)));
        let (dlo, dhi) =
            bootstrap_difference_ci(&[1.0, 1.1, 0.9], &[0.0, 0.1, -0.1], 0.95, 1).unwrap();
        assert!(dlo > 0.7 && dhi < 1.3, "{dlo} {dhi}");
        assert_eq!(bootstrap_mean_ci(&[], 0.95, 1), None);
        assert!(mann_whitney(&[f64::NAN], &[1.0]).is_none());
    }
}
