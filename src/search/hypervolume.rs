//! Exact hypervolume indicator.
//!
//! The hypervolume of a point set is the measure of the region that the points dominate and
//! that dominates the reference point (Zitzler and Thiele 1998). Objectives are first turned
//! into minimisation ([`Direction::to_minimization`]); the reference point is given in the
//! objectives' own units and directions (for "maximise accuracy, minimise energy" a reference
//! of `[0.0, 1e6]` means "accuracy 0, energy 1 µJ").
//!
//! A point contributes only if it is strictly better than the reference in every objective;
//! points with a NaN coordinate contribute nothing (NaN is the worst value, as in
//! [`super::nsga2`]).
//!
//! Algorithms: two objectives by sort-and-sweep, O(n log n); more by HSO, "hypervolume by
//! slicing objectives" (While, Hingston, Barone and Huband, IEEE TEVC 10(1), 2006): sort by
//! the last objective, and sum slab thickness × the (d−1)-dimensional hypervolume of the
//! points below the slab, down to the 2-D sweep. That is O(n^(d−1) log n): polynomial in the
//! number of points for a fixed number of objectives (3-D: O(n² log n); 50 points on a
//! spherical front take about 4 ms in 3-D and 35 ms in 4-D in an unoptimised build);
//! dominated points are dropped at every level.

use super::nsga2::Direction;

/// Errors from [`hypervolume`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HypervolumeError {
    /// The objective list is empty.
    #[error("no objectives are configured: hypervolume needs at least one objective")]
    NoObjectives,
    /// The reference point has the wrong length.
    #[error(
        "the reference point has {found} coordinates but {expected} objectives are \
         configured: give one reference value per objective"
    )]
    ReferenceLength { found: usize, expected: usize },
    /// A reference coordinate is NaN or infinite.
    #[error(
        "reference coordinate {objective} is {value}: the reference point must be finite \
         (pick a value worse than every point you want to count)"
    )]
    NonFiniteReference { objective: usize, value: f64 },
    /// A point has the wrong length.
    #[error(
        "point {index} has {found} coordinates but {expected} objectives are configured: \
         give every point one value per objective"
    )]
    PointLength {
        index: usize,
        found: usize,
        expected: usize,
    },
    /// A point is infinitely good in some objective, so the volume would be infinite.
    #[error(
        "point {index} is infinitely good in objective {objective}, which makes the \
         hypervolume infinite: drop or clamp such points before measuring"
    )]
    Unbounded { index: usize, objective: usize },
}

/// Exact hypervolume of `points` with respect to `reference`, objectives taken in
/// `directions`. Returns 0 when no point is strictly better than the reference.
pub fn hypervolume<P: AsRef<[f64]>>(
    points: &[P],
    directions: &[Direction],
    reference: &[f64],
) -> Result<f64, HypervolumeError> {
    let d = directions.len();
    if d == 0 {
        return Err(HypervolumeError::NoObjectives);
    }
    if reference.len() != d {
        return Err(HypervolumeError::ReferenceLength {
            found: reference.len(),
            expected: d,
        });
    }
    if let Some((objective, &value)) = reference.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(HypervolumeError::NonFiniteReference { objective, value });
    }
    let reference: Vec<f64> = reference
        .iter()
        .zip(directions)
        .map(|(&r, dir)| dir.to_minimization(r))
        .collect();

    let mut kept: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    for (index, point) in points.iter().enumerate() {
        let point = point.as_ref();
        if point.len() != d {
            return Err(HypervolumeError::PointLength {
                index,
                found: point.len(),
                expected: d,
            });
        }
        if point.iter().any(|v| v.is_nan()) {
            continue;
        }
        let keys: Vec<f64> = point
            .iter()
            .zip(directions)
            .map(|(&v, dir)| dir.to_minimization(v))
            .collect();
        if !keys.iter().zip(&reference).all(|(k, r)| k < r) {
            continue;
        }
        if let Some(objective) = keys.iter().position(|k| k.is_infinite()) {
            return Err(HypervolumeError::Unbounded { index, objective });
        }
        kept.push(keys);
    }
    Ok(volume(kept, &reference))
}

/// Hypervolume of finite minimisation points, all strictly below `reference`.
fn volume(mut points: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    let d = reference.len();
    if points.is_empty() {
        return 0.0;
    }
    match d {
        1 => {
            let best = points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
            reference[0] - best
        }
        2 => sweep_2d(&mut points, reference),
        _ => {
            points = non_dominated(points);
            points.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
            let mut total = 0.0;
            let mut slice: Vec<Vec<f64>> = Vec::with_capacity(points.len());
            for (i, p) in points.iter().enumerate() {
                slice.push(p[..d - 1].to_vec());
                let top = points.get(i + 1).map_or(reference[d - 1], |q| q[d - 1]);
                let thickness = top - p[d - 1];
                if thickness > 0.0 {
                    total += thickness * volume(slice.clone(), &reference[..d - 1]);
                }
            }
            total
        }
    }
}

/// Two objectives: sort by the first, sweep, add each horizontal strip once.
fn sweep_2d(points: &mut [Vec<f64>], reference: &[f64]) -> f64 {
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut area = 0.0;
    let mut lowest = reference[1];
    for p in points.iter() {
        if p[1] < lowest {
            area += (reference[0] - p[0]) * (lowest - p[1]);
            lowest = p[1];
        }
    }
    area
}

/// Drops dominated points and duplicates (minimisation), O(d n²).
fn non_dominated(points: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let weakly_dominates = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x <= y);
    let mut kept: Vec<Vec<f64>> = Vec::with_capacity(points.len());
    for p in points {
        if kept.iter().any(|q| weakly_dominates(q, &p)) {
            continue;
        }
        kept.retain(|q| !weakly_dominates(&p, q));
        kept.push(p);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MIN2: [Direction; 2] = [Direction::Minimize, Direction::Minimize];
    const MIN3: [Direction; 3] = [Direction::Minimize; 3];

    /// Inclusion–exclusion over all subsets: exact, exponential, independent of HSO.
    fn inclusion_exclusion(points: &[Vec<f64>], reference: &[f64]) -> f64 {
        let n = points.len();
        let mut total = 0.0;
        for mask in 1u32..(1 << n) {
            let mut corner = vec![f64::NEG_INFINITY; reference.len()];
            for (i, p) in points.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    for (c, &v) in corner.iter_mut().zip(p) {
                        *c = c.max(v);
                    }
                }
            }
            let boxed: f64 = corner
                .iter()
                .zip(reference)
                .map(|(c, r)| (r - c).max(0.0))
                .product();
            if mask.count_ones() % 2 == 1 {
                total += boxed;
            } else {
                total -= boxed;
            }
        }
        total
    }

    #[test]
    fn single_box_in_every_dimension() {
        for d in 1..=5 {
            let point: Vec<f64> = (0..d).map(|k| k as f64).collect();
            let reference: Vec<f64> = (0..d).map(|k| 2.0 * k as f64 + 1.0).collect();
            let dirs = vec![Direction::Minimize; d];
            // Box sides (2k+1) - k = k + 1: volume d!.
            let expected: f64 = (1..=d).map(|k| k as f64).product();
            let hv = hypervolume(&[point], &dirs, &reference).unwrap();
            assert!((hv - expected).abs() < 1e-12, "d={d}: {hv} vs {expected}");
        }
    }

    #[test]
    fn two_d_staircase_analytic() {
        // Reference (4,4); points (1,3) (2,2) (3,1): union of boxes = 3 + 2·2 + 1·... strips:
        // x∈[1,4]×y∈[3,4] = 3, x∈[2,4]×[2,3] = 2, x∈[3,4]×[1,2] = 1 → 6.
        let pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
        assert_eq!(hypervolume(&pts, &MIN2, &[4.0, 4.0]).unwrap(), 6.0);
        // Mixed directions: maximise accuracy, minimise energy. Reference (0.0 acc, 10 pJ).
        // (0.9, 2) and (0.5, 1): boxes 0.9×8 and 0.5×9 overlapping 0.5×8 → 7.2 + 4.5 − 4 = 7.7.
        let dirs = [Direction::Maximize, Direction::Minimize];
        let pts = [[0.9, 2.0], [0.5, 1.0]];
        let hv = hypervolume(&pts, &dirs, &[0.0, 10.0]).unwrap();
        assert!((hv - 7.7).abs() < 1e-12, "{hv}");
    }

    #[test]
    fn three_d_union_of_boxes_analytic() {
        // Reference (2,2,2). (0,1,1) and (1,0,1) and (1,1,0): three 2×1×1 boxes; pairwise
        // overlaps 1×1×1, triple overlap 1: 3·2 − 3·1 + 1 = 4.
        let pts = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
        assert_eq!(hypervolume(&pts, &MIN3, &[2.0; 3]).unwrap(), 4.0);
        // Adding the ideal corner covers the whole 2×2×2 cube.
        let pts = [
            [0.0, 1.0, 1.0],
            [1.0, 0.0, 1.0],
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 0.0],
        ];
        assert_eq!(hypervolume(&pts, &MIN3, &[2.0; 3]).unwrap(), 8.0);
    }

    #[test]
    fn dominated_duplicate_and_outside_points_change_nothing() {
        let base = vec![
            vec![1.0, 3.0, 2.0],
            vec![2.0, 1.0, 3.0],
            vec![3.0, 2.0, 1.0],
        ];
        let reference = [4.0, 4.0, 4.0];
        let hv = hypervolume(&base, &MIN3, &reference).unwrap();
        let mut more = base.clone();
        more.push(vec![3.5, 3.5, 3.5]); // dominated
        more.push(vec![2.0, 1.0, 3.0]); // duplicate
        more.push(vec![0.5, 0.5, 4.0]); // on the reference plane: not strictly better
        more.push(vec![0.5, 5.0, 0.5]); // beyond the reference
        more.push(vec![f64::NAN, 0.0, 0.0]); // broken
        more.push(vec![f64::INFINITY, 0.0, 0.0]); // infinitely bad
        assert_eq!(hypervolume(&more, &MIN3, &reference).unwrap(), hv);
        assert_eq!(hv, inclusion_exclusion(&base, &reference));
        // Empty and all-outside sets.
        let none: [[f64; 3]; 0] = [];
        assert_eq!(hypervolume(&none, &MIN3, &reference).unwrap(), 0.0);
        assert_eq!(
            hypervolume(&[[5.0, 5.0, 5.0]], &MIN3, &reference).unwrap(),
            0.0
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            hypervolume(&[[1.0]], &[], &[]),
            Err(HypervolumeError::NoObjectives)
        );
        assert!(matches!(
            hypervolume(&[[1.0, 1.0]], &MIN2, &[2.0]),
            Err(HypervolumeError::ReferenceLength { .. })
        ));
        assert!(matches!(
            hypervolume(&[[1.0, 1.0]], &MIN2, &[2.0, f64::NAN]),
            Err(HypervolumeError::NonFiniteReference { objective: 1, .. })
        ));
        assert!(matches!(
            hypervolume(&[vec![1.0]], &MIN2, &[2.0, 2.0]),
            Err(HypervolumeError::PointLength { index: 0, .. })
        ));
        assert_eq!(
            hypervolume(&[[f64::NEG_INFINITY, 1.0]], &MIN2, &[2.0, 2.0]),
            Err(HypervolumeError::Unbounded {
                index: 0,
                objective: 0
            })
        );
        // Maximising: +inf accuracy is unbounded too.
        let dirs = [Direction::Maximize, Direction::Minimize];
        assert!(matches!(
            hypervolume(&[[f64::INFINITY, 1.0]], &dirs, &[0.0, 2.0]),
            Err(HypervolumeError::Unbounded { .. })
        ));
    }

    #[test]
    fn monte_carlo_cross_check_in_3d() {
        let mut rng = StdRng::seed_from_u64(2024);
        // 50 points on the sphere-like front x²+y²+z² = 1 in the positive octant, plus noise.
        let pts: Vec<Vec<f64>> = (0..50)
            .map(|_| {
                let v: Vec<f64> = (0..3).map(|_| rng.random_range(0.05..1.0)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect();
        let reference = [1.1, 1.1, 1.1];
        let exact = hypervolume(&pts, &MIN3, &reference).unwrap();
        let samples = 200_000;
        let mut hits = 0u32;
        for _ in 0..samples {
            let s: [f64; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.1));
            if pts.iter().any(|p| p.iter().zip(&s).all(|(a, b)| a <= b)) {
                hits += 1;
            }
        }
        let box_volume = 1.1f64.powi(3);
        let fraction = f64::from(hits) / samples as f64;
        let estimate = fraction * box_volume;
        let std_error = (fraction * (1.0 - fraction) / samples as f64).sqrt() * box_volume;
        assert!(
            (estimate - exact).abs() < 4.0 * std_error,
            "exact {exact}, Monte Carlo {estimate} ± {std_error}"
        );
    }

    #[test]
    fn maximisation_matches_mirrored_minimisation() {
        let pts = vec![
            vec![0.9, 0.2, 0.4],
            vec![0.5, 0.7, 0.1],
            vec![0.3, 0.3, 0.9],
        ];
        let mirrored: Vec<Vec<f64>> = pts.iter().map(|p| p.iter().map(|v| -v).collect()).collect();
        let a = hypervolume(&pts, &[Direction::Maximize; 3], &[0.0; 3]).unwrap();
        let b = hypervolume(&mirrored, &MIN3, &[0.0; 3]).unwrap();
        assert!((a - b).abs() < 1e-15);
        assert!((a - inclusion_exclusion(&mirrored, &[0.0; 3])).abs() < 1e-12);
    }

    fn arb_points(d: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
        proptest::collection::vec(
            proptest::collection::vec((0i32..8).prop_map(|v| f64::from(v) / 2.0), d),
            0..9,
        )
    }

    proptest! {
        #[test]
        fn hso_matches_inclusion_exclusion_3d(pts in arb_points(3)) {
            let reference = [4.0; 3];
            let hv = hypervolume(&pts, &MIN3, &reference).unwrap();
            let kept: Vec<Vec<f64>> = pts.into_iter().filter(|p| p.iter().all(|&v| v < 4.0)).collect();
            prop_assert!((hv - inclusion_exclusion(&kept, &reference)).abs() < 1e-9);
        }

        #[test]
        fn hso_matches_inclusion_exclusion_4d(pts in arb_points(4)) {
            let reference = [3.5; 4];
            let hv = hypervolume(&pts, &[Direction::Minimize; 4], &reference).unwrap();
            let kept: Vec<Vec<f64>> = pts.into_iter().filter(|p| p.iter().all(|&v| v < 3.5)).collect();
            prop_assert!((hv - inclusion_exclusion(&kept, &reference)).abs() < 1e-9);
        }

        #[test]
        fn adding_a_point_never_decreases_volume(pts in arb_points(3), extra in arb_points(3)) {
            let reference = [4.0; 3];
            let hv = hypervolume(&pts, &MIN3, &reference).unwrap();
            let mut all = pts.clone();
            all.extend(extra);
            prop_assert!(hypervolume(&all, &MIN3, &reference).unwrap() >= hv - 1e-12);
        }
    }
}
