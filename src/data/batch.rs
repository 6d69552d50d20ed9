//! Seeded mini-batches: a fresh permutation of sample indices per epoch.
//!
//! Only indices are shuffled (one `Vec<usize>` per epoch); the caller gathers a batch's rows
//! with `features.select(Axis(0), batch)` or [`super::Dataset::subset`]. Epoch `e` uses its own
//! generator seeded from `(seed, e)`, so any epoch can be replayed alone (after a restart, say)
//! and yields the same batches as in the full run.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::DataError;

/// Plans the batches of every epoch over `n` samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSampler {
    n: usize,
    batch_size: usize,
    drop_last: bool,
    seed: u64,
}

impl BatchSampler {
    /// Batches of `batch_size` (≥ 1) over `n` samples; the last batch of an epoch may be
    /// smaller unless [`Self::drop_last`] is set.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::invalid("batch size must be at least 1"));
        }
        Ok(BatchSampler {
            n,
            batch_size,
            drop_last: false,
            seed,
        })
    }

    /// Skip the final short batch of each epoch (keeps every step the same size).
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.n / self.batch_size
        } else {
            self.n.div_ceil(self.batch_size)
        }
    }

    /// The shuffled order of epoch `epoch` (0-based).
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let mut order: Vec<usize> = (0..self.n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(self.seed, epoch)));
        if self.drop_last {
            order.truncate(self.batches_per_epoch() * self.batch_size);
        }
        Epoch {
            order,
            batch_size: self.batch_size,
        }
    }
}

/// SplitMix64 finaliser over `seed` and the epoch (Steele et al., OOPSLA 2014): distinct,
/// well-mixed seeds for consecutive epochs.
fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One epoch's sample order, cut into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    order: Vec<usize>,
    batch_size: usize,
}

impl Epoch {
    /// All indices visited this epoch, in order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The batches, as slices of sample indices.
    pub fn batches(&self) -> std::slice::Chunks<'_, usize> {
        self.order.chunks(self.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_permutation_cut_into_batches() {
        let s = BatchSampler::new(10, 4, 1).unwrap();
        assert_eq!(s.batches_per_epoch(), 3);
        let e = s.epoch(0);
        let sizes: Vec<usize> = e.batches().map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let mut seen: Vec<usize> = e.batches().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());

        let d = s.clone().drop_last(true);
        assert_eq!(d.batches_per_epoch(), 2);
        let e = d.epoch(3);
        assert!(e.batches().all(|b| b.len() == 4));
        assert_eq!(e.batches().count(), 2);
        // Dropping the tail keeps the same shuffle.
        assert_eq!(e.order(), &s.epoch(3).order()[..8]);
    }

    #[test]
    fn epochs_are_reproducible_and_differ_from_each_other() {
        let s = BatchSampler::new(100, 16, 7).unwrap();
        assert_eq!(s.epoch(5), BatchSampler::new(100, 16, 7).unwrap().epoch(5));
        assert_ne!(s.epoch(0).order(), s.epoch(1).order());
        assert_ne!(
            s.epoch(0).order(),
            BatchSampler::new(100, 16, 8).unwrap().epoch(0).order()
        );
        assert!(s.epoch(0).order() != (0..100).collect::<Vec<_>>().as_slice());
    }

    #[test]
    fn edge_cases() {
        assert!(BatchSampler::new(10, 0, 0).is_err());
        let s = BatchSampler::new(0, 4, 0).unwrap();
        assert_eq!(s.batches_per_epoch(), 0);
        assert_eq!(s.epoch(0).batches().count(), 0);
        let s = BatchSampler::new(3, 8, 0).unwrap().drop_last(true);
        assert_eq!(s.epoch(0).batches().count(), 0);
    }
}
