//! NSGA-II selection: fast non-dominated sorting, crowding distance, constraint domination,
//! environmental selection and binary tournament selection.
//!
//! Follows Deb, Pratap, Agarwal and Meyarivan, "A fast and elitist multiobjective genetic
//! algorithm: NSGA-II", IEEE TEVC 6(2), 2002, with the constraint handling of Deb, "An
//! efficient constraint handling method for genetic algorithms", CMAME 186, 2000:
//!
//! 1. a feasible individual (total violation 0) beats an infeasible one;
//! 2. between two infeasible individuals the smaller total violation wins (equal violations:
//!    neither wins);
//! 3. between two feasible individuals Pareto dominance decides.
//!
//! Choices this module makes where the papers are silent, so that results never depend on
//! the order of the input and a broken measurement never helps a candidate:
//!
//! - **NaN.** An individual with a NaN objective or a NaN violation is a broken measurement.
//!   It is dominated by every individual whose values are all numbers (this comes before
//!   rule 1), and among broken individuals a NaN objective counts as the worst possible
//!   value of that objective and a NaN violation as an infinite violation. Broken
//!   individuals therefore only ever fill the last fronts.
//! - **Violation ≤ 0** counts as feasible.
//! - **Duplicates** (identical objective vectors) never dominate each other, so they share a
//!   front. Crowding distance is computed over the distinct objective vectors and every copy
//!   gets its vector's distance; when the last front is truncated, first copies are taken
//!   before second copies, which keeps copies from crowding out distinct points.
//! - **Crowding ties.** Within an objective, points are ordered by that objective and then by
//!   their whole objective vector, so boundary points are well defined. An objective in which
//!   all points of a front are equal contributes nothing (it has no spread to preserve). A
//!   front with a single distinct point gives it infinite distance, as a boundary point.
//! - **Infinite values** (after NaN handling) are allowed. They sort to the ends of an
//!   objective; interior gaps are measured with values clamped to the finite span of that
//!   objective, so distances stay numbers.

use std::cmp::Ordering;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Objective directions are the language's (`maximize(…)`, `minimize(…)` in a `search`).
pub use crate::check::model::Direction;

impl Direction {
    /// `value` as a quantity to minimise: negated for [`Direction::Maximize`]; NaN becomes
    /// `+inf` (the worst value) and `-0.0` becomes `0.0` so equal values compare equal.
    pub fn to_minimization(self, value: f64) -> f64 {
        let v = match self {
            Direction::Maximize => -value,
            Direction::Minimize => value,
        };
        if v.is_nan() {
            f64::INFINITY
        } else if v == 0.0 {
            0.0
        } else {
            v
        }
    }
}

/// What NSGA-II needs to know about an individual.
pub trait Fitness {
    /// One value per configured objective, in the configured order.
    fn objectives(&self) -> &[f64];
    /// Total constraint violation; 0 (or less) means feasible.
    fn violation(&self) -> f64;
}

/// The plain individual: objective values and total constraint violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Individual {
    pub objectives: Vec<f64>,
    pub violation: f64,
}

impl Individual {
    /// A feasible individual.
    pub fn feasible(objectives: Vec<f64>) -> Self {
        Individual {
            objectives,
            violation: 0.0,
        }
    }
}

impl Fitness for Individual {
    fn objectives(&self) -> &[f64] {
        &self.objectives
    }
    fn violation(&self) -> f64 {
        self.violation
    }
}

impl<T: Fitness + ?Sized> Fitness for &T {
    fn objectives(&self) -> &[f64] {
        (**self).objectives()
    }
    fn violation(&self) -> f64 {
        (**self).violation()
    }
}

/// Errors from NSGA-II selection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Nsga2Error {
    /// The objective list is empty.
    #[error("no objectives are configured: list at least one objective with its direction")]
    NoObjectives,
    /// An individual's objective vector has the wrong length.
    #[error(
        "individual {index} has {found} objective values but {expected} objectives are \
         configured: give every individual one value per objective, in the configured order"
    )]
    ObjectiveCount {
        index: usize,
        found: usize,
        expected: usize,
    },
    /// Parents were requested from an empty population.
    #[error(
        "cannot select parents from an empty population: evaluate at least one candidate first"
    )]
    EmptyPopulation,
}

/// An individual in comparable form: all objectives to be minimised, no NaN anywhere.
#[derive(Debug, Clone)]
struct Normalized {
    keys: Vec<f64>,
    /// Had a NaN objective or violation.
    broken: bool,
    /// 0 for feasible, positive otherwise, `+inf` for a NaN violation.
    violation: f64,
}

fn normalize<T: Fitness>(
    population: &[T],
    directions: &[Direction],
) -> Result<Vec<Normalized>, Nsga2Error> {
    if directions.is_empty() {
        return Err(Nsga2Error::NoObjectives);
    }
    population
        .iter()
        .enumerate()
        .map(|(index, ind)| {
            let objectives = ind.objectives();
            if objectives.len() != directions.len() {
                return Err(Nsga2Error::ObjectiveCount {
                    index,
                    found: objectives.len(),
                    expected: directions.len(),
                });
            }
            let raw_violation = ind.violation();
            let broken = raw_violation.is_nan() || objectives.iter().any(|v| v.is_nan());
            let violation = if raw_violation.is_nan() {
                f64::INFINITY
            } else if raw_violation <= 0.0 {
                0.0
            } else {
                raw_violation
            };
            let keys = objectives
                .iter()
                .zip(directions)
                .map(|(&v, d)| d.to_minimization(v))
                .collect();
            Ok(Normalized {
                keys,
                broken,
                violation,
            })
        })
        .collect()
}

/// Pareto dominance on minimisation keys (no NaN): no worse anywhere, better somewhere.
fn pareto_dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly_better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            strictly_better = true;
        }
    }
    strictly_better
}

/// Constraint domination (module docs) on normalised individuals. A strict partial order.
fn constrained_dominates_norm(a: &Normalized, b: &Normalized) -> bool {
    if a.broken != b.broken {
        return !a.broken;
    }
    match (a.violation == 0.0, b.violation == 0.0) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => pareto_dominates(&a.keys, &b.keys),
    }
}

/// Whether `a` constraint-dominates `b` (module docs give the rules).
pub fn constrained_dominates<T: Fitness>(
    a: &T,
    b: &T,
    directions: &[Direction],
) -> Result<bool, Nsga2Error> {
    let pair = [a, b];
    let norm = normalize(&pair, directions)?;
    Ok(constrained_dominates_norm(&norm[0], &norm[1]))
}

/// Fast non-dominated sorting (Deb et al. 2002, section III-A), O(M N²).
/// Fronts are listed best first; indices within a front are ascending.
fn sort_fronts(norm: &[Normalized]) -> Vec<Vec<usize>> {
    let n = norm.len();
    let mut dominated: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut domination_count = vec![0usize; n];
    for i in 0..n {
        for j in (i + 1)..n {
            if constrained_dominates_norm(&norm[i], &norm[j]) {
                dominated[i].push(j);
                domination_count[j] += 1;
            } else if constrained_dominates_norm(&norm[j], &norm[i]) {
                dominated[j].push(i);
                domination_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| domination_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated[i] {
                domination_count[j] -= 1;
                if domination_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

fn lexicographic(a: &[f64], b: &[f64]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Crowding distance of the members of one front, aligned with `front`, plus each member's
/// copy index (0 for the first individual with its objective vector, 1 for the second, …).
fn crowding_in_front(front: &[usize], norm: &[Normalized]) -> (Vec<f64>, Vec<usize>) {
    // Group identical objective vectors; members of a group keep ascending index order.
    let mut order: Vec<usize> = (0..front.len()).collect();
    order.sort_by(|&a, &b| {
        lexicographic(&norm[front[a]].keys, &norm[front[b]].keys).then(front[a].cmp(&front[b]))
    });
    let mut group_of = vec![0usize; front.len()];
    let mut copy_index = vec![0usize; front.len()];
    let mut representatives: Vec<usize> = Vec::new(); // positions in `front`
    for (k, &pos) in order.iter().enumerate() {
        let same_as_previous = k > 0 && {
            let prev = order[k - 1];
            lexicographic(&norm[front[prev]].keys, &norm[front[pos]].keys).is_eq()
        };
        if same_as_previous {
            let prev = order[k - 1];
            group_of[pos] = group_of[prev];
            copy_index[pos] = copy_index[prev] + 1;
        } else {
            group_of[pos] = representatives.len();
            representatives.push(pos);
        }
    }

    let unique = representatives.len();
    let mut distance = vec![0.0f64; unique];
    if unique == 1 {
        distance[0] = f64::INFINITY;
    } else if unique > 1 {
        let objectives = norm[front[representatives[0]]].keys.len();
        let key = |g: usize, m: usize| norm[front[representatives[g]]].keys[m];
        let mut by_objective: Vec<usize> = (0..unique).collect();
        for m in 0..objectives {
            // `representatives` is already in lexicographic order, so a stable sort on
            // objective m breaks ties by the whole vector.
            by_objective.sort_by(|&a, &b| key(a, m).total_cmp(&key(b, m)));
            let first = by_objective[0];
            let last = by_objective[unique - 1];
            if key(first, m).total_cmp(&key(last, m)).is_eq() {
                continue; // no spread in this objective
            }
            distance[first] = f64::INFINITY;
            distance[last] = f64::INFINITY;
            let finite = by_objective
                .iter()
                .map(|&g| key(g, m))
                .filter(|v| v.is_finite());
            let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let span = hi - lo;
            if !(span.is_finite() && span > 0.0) {
                continue;
            }
            for w in 1..unique - 1 {
                let prev = key(by_objective[w - 1], m).clamp(lo, hi);
                let next = key(by_objective[w + 1], m).clamp(lo, hi);
                distance[by_objective[w]] += (next - prev) / span;
            }
        }
    }
    let per_member = group_of.iter().map(|&g| distance[g]).collect();
    (per_member, copy_index)
}

/// Non-dominated fronts, rank and crowding distance of every individual of a population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Indices into the population, best front first, ascending within a front.
    pub fronts: Vec<Vec<usize>>,
    /// Front number of each individual (0 = non-dominated).
    pub rank: Vec<usize>,
    /// Crowding distance of each individual within its front (`+inf` at the boundaries).
    pub crowding: Vec<f64>,
    /// 0 for the first individual with a given objective vector in its front, 1 for the
    /// second copy, and so on.
    pub copy_index: Vec<usize>,
}

impl Ranking {
    /// Number of ranked individuals.
    pub fn len(&self) -> usize {
        self.rank.len()
    }

    /// Whether the population was empty.
    pub fn is_empty(&self) -> bool {
        self.rank.is_empty()
    }

    /// The crowded-comparison operator ≺ₙ: lower rank first, then larger crowding distance.
    /// `Less` means `a` is preferred. Panics if an index is out of range.
    pub fn crowded_compare(&self, a: usize, b: usize) -> Ordering {
        self.rank[a]
            .cmp(&self.rank[b])
            .then_with(|| self.crowding[b].total_cmp(&self.crowding[a]))
    }
}

/// Ranks a population: non-dominated sorting under constraint domination, then crowding
/// distance within each front. An empty population gives an empty ranking.
pub fn rank_population<T: Fitness>(
    population: &[T],
    directions: &[Direction],
) -> Result<Ranking, Nsga2Error> {
    let norm = normalize(population, directions)?;
    let fronts = sort_fronts(&norm);
    let n = population.len();
    let mut rank = vec![0usize; n];
    let mut crowding = vec![0.0f64; n];
    let mut copy_index = vec![0usize; n];
    for (r, front) in fronts.iter().enumerate() {
        let (distances, copies) = crowding_in_front(front, &norm);
        for (k, &i) in front.iter().enumerate() {
            rank[i] = r;
            crowding[i] = distances[k];
            copy_index[i] = copies[k];
        }
    }
    Ok(Ranking {
        fronts,
        rank,
        crowding,
        copy_index,
    })
}

/// Non-dominated fronts only (see [`rank_population`]).
pub fn non_dominated_sort<T: Fitness>(
    population: &[T],
    directions: &[Direction],
) -> Result<Vec<Vec<usize>>, Nsga2Error> {
    Ok(sort_fronts(&normalize(population, directions)?))
}

/// The outcome of environmental selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survivors {
    /// Indices into the combined parents+offspring slice, best first.
    pub indices: Vec<usize>,
    /// Ranking of the survivors among themselves (indices are positions in `indices`),
    /// ready for [`binary_tournament`].
    pub ranking: Ranking,
}

/// NSGA-II environmental selection: keeps `size` individuals of `combined` (parents and
/// offspring), whole fronts first; the front that does not fit is cut by copy index (first
/// copies first), then by decreasing crowding distance, then by index. If `combined` has
/// `size` individuals or fewer, all are kept.
pub fn environmental_selection<T: Fitness>(
    combined: &[T],
    directions: &[Direction],
    size: usize,
) -> Result<Survivors, Nsga2Error> {
    let ranking = rank_population(combined, directions)?;
    let mut indices = Vec::with_capacity(size.min(combined.len()));
    for front in &ranking.fronts {
        let room = size - indices.len();
        if room == 0 {
            break;
        }
        if front.len() <= room {
            indices.extend_from_slice(front);
        } else {
            let mut last = front.clone();
            last.sort_by(|&a, &b| {
                ranking.copy_index[a]
                    .cmp(&ranking.copy_index[b])
                    .then_with(|| ranking.crowding[b].total_cmp(&ranking.crowding[a]))
                    .then(a.cmp(&b))
            });
            indices.extend_from_slice(&last[..room]);
            break;
        }
    }
    let chosen: Vec<&T> = indices.iter().map(|&i| &combined[i]).collect();
    let ranking = rank_population(&chosen, directions)?;
    Ok(Survivors { indices, ranking })
}

/// Binary tournament selection with the crowded-comparison operator: `count` times, draw two
/// distinct individuals uniformly (one if the population has one) and keep the preferred
/// one; a tie is decided by a fair coin. Returns indices into the ranked population.
pub fn binary_tournament<R: Rng + ?Sized>(
    ranking: &Ranking,
    count: usize,
    rng: &mut R,
) -> Result<Vec<usize>, Nsga2Error> {
    let n = ranking.len();
    if count == 0 {
        return Ok(Vec::new());
    }
    if n == 0 {
        return Err(Nsga2Error::EmptyPopulation);
    }
    let mut winners = Vec::with_capacity(count);
    for _ in 0..count {
        let a = rng.random_range(0..n);
        if n == 1 {
            winners.push(a);
            continue;
        }
        let mut b = rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        let winner = match ranking.crowded_compare(a, b) {
            Ordering::Less => a,
            Ordering::Greater => b,
            Ordering::Equal => {
                if rng.random_bool(0.5) {
                    a
                } else {
                    b
                }
            }
        };
        winners.push(winner);
    }
    Ok(winners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const MIN2: [Direction; 2] = [Direction::Minimize, Direction::Minimize];

    fn feasible(points: &[&[f64]]) -> Vec<Individual> {
        points
            .iter()
            .map(|p| Individual::feasible(p.to_vec()))
            .collect()
    }

    #[test]
    fn hand_built_fronts_ranks_and_crowding() {
        // Minimise both. Front 0: A(1,5) B(2,3) C(4,1); front 1: D(3,4) (dominated by B);
        // front 2: E(5,5) (dominated by D).
        let pop = feasible(&[
            &[1.0, 5.0],
            &[2.0, 3.0],
            &[4.0, 1.0],
            &[3.0, 4.0],
            &[5.0, 5.0],
        ]);
        let r = rank_population(&pop, &MIN2).unwrap();
        assert_eq!(r.fronts, vec![vec![0, 1, 2], vec![3], vec![4]]);
        assert_eq!(r.rank, vec![0, 0, 0, 1, 2]);
        // B: objective 1 gap (4-1)/(4-1) = 1, objective 2 gap (5-1)/(5-1) = 1.
        assert_eq!(r.crowding[0], f64::INFINITY);
        assert_eq!(r.crowding[2], f64::INFINITY);
        assert!((r.crowding[1] - 2.0).abs() < 1e-12);
        // Single-member fronts are their own boundary.
        assert_eq!(r.crowding[3], f64::INFINITY);
        assert_eq!(r.crowding[4], f64::INFINITY);
    }

    #[test]
    fn crowding_of_five_point_front_matches_hand_computation() {
        // Front on x + y = 10 with uneven spacing, both maximised.
        // x: 0, 1, 4, 8, 10 → y: 10, 9, 6, 2, 0. Range 10 in both objectives.
        // Interior distances: x gap/10 + y gap/10 = 2·gap/10.
        // x=1: gap 4-0=4 → 0.8; x=4: gap 8-1=7 → 1.4; x=8: gap 10-4=6 → 1.2.
        let dirs = [Direction::Maximize, Direction::Maximize];
        let pop = feasible(&[
            &[4.0, 6.0],
            &[0.0, 10.0],
            &[10.0, 0.0],
            &[1.0, 9.0],
            &[8.0, 2.0],
        ]);
        let r = rank_population(&pop, &dirs).unwrap();
        assert_eq!(r.fronts, vec![vec![0, 1, 2, 3, 4]]);
        let expected = [1.4, f64::INFINITY, f64::INFINITY, 0.8, 1.2];
        for (got, want) in r.crowding.iter().zip(expected) {
            if want.is_infinite() {
                assert_eq!(*got, want);
            } else {
                assert!((got - want).abs() < 1e-12, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn crowding_normalises_each_objective_by_its_range() {
        // Three points, objective 2 on a 1000× larger scale: normalisation makes the middle
        // point's distance (3-1)/(3-1) + (3000-1000)/(3000-1000) = 2.
        let pop = feasible(&[&[1.0, 3000.0], &[2.0, 2000.0], &[3.0, 1000.0]]);
        let r = rank_population(&pop, &MIN2).unwrap();
        assert!((r.crowding[1] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn constraint_domination_rules() {
        let dirs = [Direction::Maximize];
        let ind = |v: f64, viol: f64| Individual {
            objectives: vec![v],
            violation: viol,
        };
        // Feasible beats infeasible even with a far worse objective.
        assert!(constrained_dominates(&ind(0.1, 0.0), &ind(0.99, 0.5), &dirs).unwrap());
        assert!(!constrained_dominates(&ind(0.99, 0.5), &ind(0.1, 0.0), &dirs).unwrap());
        // Among infeasible the smaller violation wins, whatever the objectives.
        assert!(constrained_dominates(&ind(0.1, 0.2), &ind(0.9, 0.3), &dirs).unwrap());
        assert!(!constrained_dominates(&ind(0.9, 0.3), &ind(0.1, 0.2), &dirs).unwrap());
        // Equal violation: neither wins.
        assert!(!constrained_dominates(&ind(0.9, 0.3), &ind(0.1, 0.3), &dirs).unwrap());
        assert!(!constrained_dominates(&ind(0.1, 0.3), &ind(0.9, 0.3), &dirs).unwrap());
        // Among feasible, Pareto (maximise).
        assert!(constrained_dominates(&ind(0.9, 0.0), &ind(0.1, 0.0), &dirs).unwrap());
        // Negative violation counts as feasible.
        assert!(!constrained_dominates(&ind(0.5, -1.0), &ind(0.5, 0.0), &dirs).unwrap());
        // Identical individuals do not dominate each other.
        assert!(!constrained_dominates(&ind(0.5, 0.0), &ind(0.5, 0.0), &dirs).unwrap());
    }

    #[test]
    fn infeasible_individuals_rank_behind_feasible_by_violation() {
        let pop = vec![
            Individual {
                objectives: vec![0.0, 0.0],
                violation: 2.0,
            },
            Individual::feasible(vec![5.0, 5.0]),
            Individual {
                objectives: vec![9.0, 9.0],
                violation: 1.0,
            },
            Individual::feasible(vec![4.0, 6.0]),
        ];
        let r = rank_population(&pop, &MIN2).unwrap();
        assert_eq!(r.fronts, vec![vec![1, 3], vec![2], vec![0]]);
    }

    #[test]
    fn nan_objectives_never_win() {
        // The broken individual has the best energy by far but NaN accuracy.
        let dirs = [Direction::Maximize, Direction::Minimize];
        let pop = vec![
            Individual::feasible(vec![f64::NAN, 0.001]),
            Individual::feasible(vec![0.9, 10.0]),
            Individual {
                objectives: vec![0.2, 50.0],
                violation: 3.0,
            },
            Individual::feasible(vec![0.8, 5.0]),
        ];
        let r = rank_population(&pop, &dirs).unwrap();
        assert_eq!(r.fronts, vec![vec![1, 3], vec![2], vec![0]]);
        assert!(!constrained_dominates(&pop[0], &pop[2], &dirs).unwrap());
        assert!(constrained_dominates(&pop[2], &pop[0], &dirs).unwrap());
        // NaN violation is broken too.
        let nan_violation = Individual {
            objectives: vec![1.0, 0.0],
            violation: f64::NAN,
        };
        assert!(constrained_dominates(&pop[2], &nan_violation, &dirs).unwrap());
        // Two NaN individuals: NaN is the worst value of its objective.
        let a = Individual::feasible(vec![f64::NAN, 1.0]);
        let b = Individual::feasible(vec![f64::NAN, 2.0]);
        assert!(constrained_dominates(&a, &b, &dirs).unwrap());
        // Environmental selection drops the broken one first.
        let s = environmental_selection(&pop, &dirs, 3).unwrap();
        assert!(!s.indices.contains(&0));
        // Crowding stays a number or +inf.
        assert!(r.crowding.iter().all(|c| !c.is_nan()));
    }

    #[test]
    fn infinite_objectives_keep_crowding_finite_inside() {
        let pop = feasible(&[
            &[f64::NEG_INFINITY, 10.0],
            &[1.0, 3.0],
            &[2.0, 2.0],
            &[3.0, f64::NEG_INFINITY],
        ]);
        let r = rank_population(&pop, &MIN2).unwrap();
        assert_eq!(r.fronts, vec![vec![0, 1, 2, 3]]);
        assert_eq!(r.crowding[0], f64::INFINITY);
        assert_eq!(r.crowding[3], f64::INFINITY);
        // Objective 1, finite span [1, 3]: point 1 gap clamp(2)-clamp(-inf)=2-1=1 → 0.5;
        // point 2 gap 3-1=2 → 1. Objective 2, finite span [2, 10]: point 2 (sorted 2nd):
        // gap 3-clamp(-inf)=3-2=1 → 1/8; point 1: gap 10-2=8 → 1.
        assert!((r.crowding[1] - 1.5).abs() < 1e-12, "{}", r.crowding[1]);
        assert!((r.crowding[2] - 1.125).abs() < 1e-12, "{}", r.crowding[2]);
    }

    #[test]
    fn duplicates_share_front_and_distance_and_are_cut_last() {
        let pop = feasible(&[
            &[1.0, 5.0],
            &[3.0, 3.0],
            &[3.0, 3.0],
            &[3.0, 3.0],
            &[5.0, 1.0],
            &[4.0, 2.5],
        ]);
        let r = rank_population(&pop, &MIN2).unwrap();
        assert_eq!(r.fronts, vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(r.crowding[1], r.crowding[2]);
        assert_eq!(r.crowding[2], r.crowding[3]);
        assert_eq!(r.copy_index[1..4], [0, 1, 2]);
        // Keep 4 of 6: the boundaries, then the first copies (3,3) and (4,2.5).
        let s = environmental_selection(&pop, &MIN2, 4).unwrap();
        let mut kept = s.indices.clone();
        kept.sort_unstable();
        assert_eq!(kept, vec![0, 1, 4, 5]);
        // Same result whatever the order of the input.
        let reversed: Vec<Individual> = pop.iter().rev().cloned().collect();
        let r2 = rank_population(&reversed, &MIN2).unwrap();
        for i in 0..pop.len() {
            assert_eq!(r.crowding[i], r2.crowding[pop.len() - 1 - i]);
        }
    }

    #[test]
    fn flat_objective_contributes_nothing() {
        // All share objective 3, which must give no boundary bonus to anyone; objectives 1
        // and 2 each give the middle points (3-0)/4 = (4-1)/4 = 0.75.
        let pop = feasible(&[
            &[0.0, 4.0, 1.0],
            &[1.0, 3.0, 1.0],
            &[3.0, 1.0, 1.0],
            &[4.0, 0.0, 1.0],
        ]);
        let dirs = [Direction::Minimize; 3];
        let r = rank_population(&pop, &dirs).unwrap();
        assert_eq!(r.fronts.len(), 1);
        assert!((r.crowding[1] - 1.5).abs() < 1e-12, "{}", r.crowding[1]);
        assert!((r.crowding[2] - 1.5).abs() < 1e-12, "{}", r.crowding[2]);
        // A single distinct point is a boundary.
        let same = feasible(&[&[2.0, 2.0], &[2.0, 2.0]]);
        let r = rank_population(&same, &MIN2).unwrap();
        assert_eq!(r.crowding, vec![f64::INFINITY, f64::INFINITY]);
        assert_eq!(r.copy_index, vec![0, 1]);
    }

    #[test]
    fn empty_inputs_and_bad_shapes_are_errors_or_empty() {
        let empty: Vec<Individual> = Vec::new();
        let r = rank_population(&empty, &MIN2).unwrap();
        assert!(r.is_empty() && r.fronts.is_empty());
        let s = environmental_selection(&empty, &MIN2, 10).unwrap();
        assert!(s.indices.is_empty());
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            binary_tournament(&r, 2, &mut rng),
            Err(Nsga2Error::EmptyPopulation)
        );
        assert_eq!(binary_tournament(&r, 0, &mut rng), Ok(vec![]));
        let pop = feasible(&[&[1.0]]);
        assert_eq!(
            rank_population(&pop, &MIN2),
            Err(Nsga2Error::ObjectiveCount {
                index: 0,
                found: 1,
                expected: 2
            })
        );
        assert_eq!(rank_population(&pop, &[]), Err(Nsga2Error::NoObjectives));
        // Size zero keeps nobody; size above the population keeps everyone.
        let pop = feasible(&[&[1.0, 2.0], &[2.0, 1.0], &[3.0, 3.0]]);
        assert!(environmental_selection(&pop, &MIN2, 0)
            .unwrap()
            .indices
            .is_empty());
        assert_eq!(
            environmental_selection(&pop, &MIN2, 7).unwrap().indices,
            vec![0, 1, 2]
        );
    }

    #[test]
    fn tournament_prefers_better_rank_then_crowding() {
        // Two individuals: the non-dominated one must win every tournament.
        let pop = feasible(&[&[1.0, 1.0], &[2.0, 2.0]]);
        let r = rank_population(&pop, &MIN2).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let winners = binary_tournament(&r, 200, &mut rng).unwrap();
        assert!(winners.iter().all(|&w| w == 0));

        // Same rank, different crowding: the boundary points (infinite) beat the middle one.
        let pop = feasible(&[&[0.0, 4.0], &[1.0, 3.0], &[4.0, 0.0]]);
        let r = rank_population(&pop, &MIN2).unwrap();
        assert_eq!(r.crowded_compare(0, 1), Ordering::Less);
        let winners = binary_tournament(&r, 3000, &mut rng).unwrap();
        let middle = winners.iter().filter(|&&w| w == 1).count();
        // The middle point only wins if it is not drawn at all... it never wins a draw:
        // every pair contains a boundary point that beats it.
        assert_eq!(middle, 0);
        // Boundary points tie (both infinite) and split their shared duels by coin: each
        // wins its duels against the middle point (2/3 of its pairs) plus half of the
        // boundary-boundary duels (1/3 of all): expected share 1/2 each.
        let zeros = winners.iter().filter(|&&w| w == 0).count() as f64 / 3000.0;
        assert!((zeros - 0.5).abs() < 0.05, "{zeros}");

        // Seeded: the same seed gives the same parents.
        let mut a = StdRng::seed_from_u64(42);
        let mut b = StdRng::seed_from_u64(42);
        assert_eq!(
            binary_tournament(&r, 50, &mut a).unwrap(),
            binary_tournament(&r, 50, &mut b).unwrap()
        );
        // One individual: always itself.
        let one = rank_population(&feasible(&[&[3.0, 3.0]]), &MIN2).unwrap();
        assert_eq!(binary_tournament(&one, 4, &mut a).unwrap(), vec![0; 4]);
    }

    #[test]
    fn environmental_selection_keeps_whole_fronts_then_most_crowded() {
        // Front 0 has 5 points; keeping 3 must take both boundaries and the interior point
        // with the largest crowding distance (x=4, distance 1.4; see the hand computation).
        let dirs = [Direction::Maximize, Direction::Maximize];
        let pop = feasible(&[
            &[4.0, 6.0],
            &[0.0, 10.0],
            &[10.0, 0.0],
            &[1.0, 9.0],
            &[8.0, 2.0],
            &[0.0, 9.5],
        ]);
        let s = environmental_selection(&pop, &dirs, 3).unwrap();
        assert_eq!(s.indices, vec![1, 2, 0]);
        assert_eq!(s.ranking.len(), 3);
        assert_eq!(s.ranking.fronts, vec![vec![0, 1, 2]]);
        // Keeping 6 of 6 takes the dominated point last.
        let s = environmental_selection(&pop, &dirs, 6).unwrap();
        assert_eq!(s.indices, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(s.ranking.rank[5], 1);
    }

    fn arb_population() -> impl Strategy<Value = (Vec<Individual>, usize)> {
        (1usize..4).prop_flat_map(|m| {
            // Small integer grid so ties and duplicates are frequent; NaN and violations too.
            let value = prop_oneof![
                10 => (0i32..5).prop_map(f64::from),
                1 => Just(f64::NAN),
            ];
            let violation = prop_oneof![
                6 => Just(0.0),
                2 => (1i32..4).prop_map(f64::from),
                1 => Just(f64::NAN),
            ];
            (
                proptest::collection::vec(
                    (proptest::collection::vec(value, m), violation).prop_map(
                        |(objectives, violation)| Individual {
                            objectives,
                            violation,
                        },
                    ),
                    0..40,
                ),
                Just(m),
            )
        })
    }

    proptest! {
        #[test]
        fn fronts_partition_and_are_internally_non_dominated(
            (pop, m) in arb_population(),
            size in 0usize..45,
            seed in any::<u64>(),
        ) {
            let dirs: Vec<Direction> = (0..m)
                .map(|k| if k % 2 == 0 { Direction::Maximize } else { Direction::Minimize })
                .collect();
            let r = rank_population(&pop, &dirs).unwrap();
            // Partition: every index exactly once.
            let mut seen = vec![0usize; pop.len()];
            for front in &r.fronts {
                prop_assert!(!front.is_empty());
                for &i in front {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
            for (k, front) in r.fronts.iter().enumerate() {
                for &a in front {
                    prop_assert_eq!(r.rank[a], k);
                    prop_assert!(!r.crowding[a].is_nan() && r.crowding[a] >= 0.0);
                    for &b in front {
                        prop_assert!(!constrained_dominates(&pop[a], &pop[b], &dirs).unwrap());
                    }
                    // Everyone behind the first front is dominated by someone one front up.
                    if k > 0 {
                        let dominated = r.fronts[k - 1]
                            .iter()
                            .any(|&b| constrained_dominates(&pop[b], &pop[a], &dirs).unwrap());
                        prop_assert!(dominated);
                    }
                }
            }
            // Environmental selection: right size, whole earlier fronts.
            let s = environmental_selection(&pop, &dirs, size).unwrap();
            prop_assert_eq!(s.indices.len(), size.min(pop.len()));
            if let Some(worst) = s.indices.iter().map(|&i| r.rank[i]).max() {
                for front in &r.fronts[..worst] {
                    for i in front {
                        prop_assert!(s.indices.contains(i));
                    }
                }
            }
            // Tournament returns valid indices.
            let mut rng = StdRng::seed_from_u64(seed);
            if !pop.is_empty() {
                let w = binary_tournament(&r, 10, &mut rng).unwrap();
                prop_assert!(w.iter().all(|&i| i < pop.len()));
            }
        }
    }
}
