//! Seeded stratified train/validation/test split.
//!
//! Per class, Hamilton's largest-remainder apportionment: each part gets `⌊q⌋` or `⌈q⌉` of
//! the class's samples, `q = fraction · class size`; ties between equal remainders go to the
//! part furthest behind its overall target, so the part sizes stay close to the fractions.
//! Then every class with at least as many samples as there are non-empty parts is given one
//! sample in each (taken from its largest part). Which samples go where comes from a per-class
//! shuffle with `StdRng::seed_from_u64(seed)`, and each part is shuffled at the end so no
//! part is sorted by class. Same seed and labels → same split (for a given `rand` version:
//! `StdRng`'s algorithm may change between its major releases).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::DataError;

/// Fractions of the data for training, validation and test: each in `[0, 1]`, summing to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    parts: [f64; 3],
}

impl SplitFractions {
    /// E.g. `(0.8, 0.0, 0.2)` or `(0.7, 0.1, 0.2)`.
    pub fn new(train: f64, validation: f64, test: f64) -> Result<Self, DataError> {
        let parts = [train, validation, test];
        if parts.iter().any(|f| !(0.0..=1.0).contains(f)) {
            return Err(DataError::invalid(format!(
                "split fractions must each be in [0, 1], got {train}/{validation}/{test}"
            )));
        }
        let sum: f64 = parts.iter().sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(DataError::invalid(format!(
                "split fractions must sum to 1, got {train} + {validation} + {test} = {sum}"
            )));
        }
        Ok(SplitFractions { parts })
    }

    pub fn train(&self) -> f64 {
        self.parts[0]
    }

    pub fn validation(&self) -> f64 {
        self.parts[1]
    }

    pub fn test(&self) -> f64 {
        self.parts[2]
    }
}

/// Sample indices of each part; together a partition of `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits samples with the given labels (each below `classes`).
pub fn stratified_split(
    labels: &[usize],
    classes: usize,
    fractions: SplitFractions,
    seed: u64,
) -> Result<Split, DataError> {
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(DataError::invalid(format!(
            "label {bad} is not below the class count {classes}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let f = fractions.parts;
    let active: Vec<usize> = (0..3).filter(|&p| f[p] > 0.0).collect();
    let mut carry = [0.0f64; 3]; // target − allocated so far, per part
    let mut parts: [Vec<usize>; 3] = Default::default();
    for members in &mut by_class {
        members.shuffle(&mut rng);
        let counts = apportion(members.len(), &f, &active, &carry);
        let mut start = 0;
        for p in 0..3 {
            carry[p] += f[p] * members.len() as f64 - counts[p] as f64;
            parts[p].extend_from_slice(&members[start..start + counts[p]]);
            start += counts[p];
        }
    }
    for part in &mut parts {
        part.shuffle(&mut rng);
    }
    let [train, validation, test] = parts;
    Ok(Split {
        train,
        validation,
        test,
    })
}

/// How many of `n` samples of one class go to each part (sums to `n`).
fn apportion(n: usize, f: &[f64; 3], active: &[usize], carry: &[f64; 3]) -> [usize; 3] {
    let quota = f.map(|fp| fp * n as f64);
    let mut counts = quota.map(|q| q.floor() as usize);
    // Fractions sum to 1 only within 1e-9: never hand out more than n.
    while counts.iter().sum::<usize>() > n {
        let big = (0..3).max_by_key(|&p| counts[p]).unwrap_or(0);
        counts[big] -= 1;
    }
    let extra = n - counts.iter().sum::<usize>();
    // Largest remainder first; equal remainders (within rounding) by the overall deficit.
    let mut order: Vec<usize> = active.to_vec();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quota[a] - quota[a].floor(), quota[b] - quota[b].floor());
        if (ra - rb).abs() > 1e-9 {
            rb.total_cmp(&ra)
        } else {
            carry[b].total_cmp(&carry[a]).then(a.cmp(&b))
        }
    });
    for &p in order.iter().cycle().take(extra) {
        counts[p] += 1;
    }
    // Every non-empty part gets at least one sample of the class when it has enough.
    if n >= active.len() {
        for &p in active {
            if counts[p] == 0 {
                let donor = active
                    .iter()
                    .copied()
                    .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(b.cmp(&a)))
                    .unwrap_or(p);
                counts[donor] -= 1;
                counts[p] += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(counts: &[usize]) -> Vec<usize> {
        // Interleaved, so indices of a class are not contiguous.
        let mut out = Vec::new();
        let mut left = counts.to_vec();
        while left.iter().any(|&c| c > 0) {
            for (c, l) in left.iter_mut().enumerate() {
                if *l > 0 {
                    out.push(c);
                    *l -= 1;
                }
            }
        }
        out
    }

    fn check_partition(split: &Split, n: usize) {
        let mut all: Vec<usize> = [&split.train, &split.validation, &split.test]
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    fn per_class(part: &[usize], y: &[usize], classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &i in part {
            c[y[i]] += 1;
        }
        c
    }

    #[test]
    fn each_class_is_split_by_the_fractions() {
        let sizes = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180, 3, 40];
        let y = labels(&sizes);
        for fr in [
            (0.8, 0.0, 0.2),
            (0.7, 0.1, 0.2),
            (0.5, 0.25, 0.25),
            (1.0, 0.0, 0.0),
        ] {
            let f = SplitFractions::new(fr.0, fr.1, fr.2).unwrap();
            let s = stratified_split(&y, sizes.len(), f, 0).unwrap();
            check_partition(&s, y.len());
            let fp = [fr.0, fr.1, fr.2];
            for (p, part) in [&s.train, &s.validation, &s.test].into_iter().enumerate() {
                let got = per_class(part, &y, sizes.len());
                for (c, &n) in sizes.iter().enumerate() {
                    let q = fp[p] * n as f64;
                    if n >= 10 {
                        // Pure apportionment: ⌊q⌋ or ⌈q⌉.
                        assert!((got[c] as f64 - q).abs() < 1.0, "{fr:?} part {p} class {c}");
                    }
                    if fp[p] > 0.0 {
                        assert!(got[c] >= 1, "{fr:?}: class {c} missing from part {p}");
                    } else {
                        assert_eq!(got[c], 0);
                    }
                }
                let total = fp[p] * y.len() as f64;
                assert!((part.len() as f64 - total).abs() <= 2.0, "{fr:?} part {p}");
            }
        }
    }

    #[test]
    fn small_classes_still_reach_every_non_empty_part() {
        let y = labels(&[3, 3, 4, 2]);
        let f = SplitFractions::new(0.7, 0.1, 0.2).unwrap();
        let s = stratified_split(&y, 4, f, 5).unwrap();
        check_partition(&s, y.len());
        for part in [&s.train, &s.validation, &s.test] {
            let c = per_class(part, &y, 4);
            assert!(c[..3].iter().all(|&k| k >= 1), "{c:?}");
        }
        // Class 3 has 2 samples for 3 parts: it cannot be everywhere, but none is lost.
        let c3: usize = [&s.train, &s.validation, &s.test]
            .iter()
            .map(|p| per_class(p, &y, 4)[3])
            .sum();
        assert_eq!(c3, 2);
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let y = labels(&[50, 60, 70]);
        let f = SplitFractions::new(0.6, 0.2, 0.2).unwrap();
        let a = stratified_split(&y, 3, f, 42).unwrap();
        assert_eq!(a, stratified_split(&y, 3, f, 42).unwrap());
        let b = stratified_split(&y, 3, f, 43).unwrap();
        assert_ne!(a.test, b.test);
        // Shuffled parts: the training part is not sorted by class or index.
        assert!(a.train.windows(2).any(|w| w[0] > w[1]));
        assert!(a.train.windows(2).any(|w| y[w[0]] != y[w[1]]));
    }

    #[test]
    fn bad_fractions_and_labels_are_rejected() {
        assert!(SplitFractions::new(0.8, 0.1, 0.2).is_err());
        assert!(SplitFractions::new(1.2, -0.2, 0.0).is_err());
        assert!(SplitFractions::new(f64::NAN, 0.5, 0.5).is_err());
        let f = SplitFractions::new(0.5, 0.0, 0.5).unwrap();
        assert_eq!((f.train(), f.validation(), f.test()), (0.5, 0.0, 0.5));
        assert!(stratified_split(&[0, 3], 2, f, 0).is_err());
        let empty = stratified_split(&[], 2, f, 0).unwrap();
        assert!(empty.train.is_empty() && empty.test.is_empty());
    }
}
