//! Where the MZIs of a mesh sit: topologies, columns, neighbours.

use super::decompose::{circuit_order, plan};
use super::MziError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How the `N(N−1)/2` MZIs of a universal mesh are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Rectangular (Clements et al., Optica 2016): column `c` couples pairs starting at mode
    /// `c mod 2`; depth `N` (1 for `N = 2`). Paths are nearly balanced, so loss hurts less.
    Clements,
    /// Triangular (Reck et al., PRL 1994): depth `2N − 3`; paths through it differ widely in
    /// length, so per-MZI loss distorts the matrix more than in a Clements mesh.
    Reck,
}

/// One MZI's place: the column it sits in and its upper mode (it couples `top` and `top + 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MziSite {
    pub column: usize,
    pub top: usize,
}

/// The placement of MZIs in a mesh. Cheap to clone (shared).
///
/// MZIs are indexed in order of `(column, top)`; that index is the index into
/// [`MeshPhases::theta`](super::MeshPhases) and `phi`. Applying them in index order is a
/// valid order of the optical circuit.
#[derive(Clone, Debug)]
pub struct MeshLayout {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topology: Topology,
    ports: usize,
    sites: Vec<MziSite>,
    depth: usize,
    /// `lookup[column * ports + top]` = MZI index, or `NONE`.
    lookup: Vec<usize>,
    /// The MZIs directly above and below in the same column (`NONE` if absent).
    neighbours: Vec<[usize; 2]>,
    /// Per MZI, the column ranges of the collapse and the reverse sweep (see [`Step`]).
    steps: Vec<Step>,
    /// Length of that tape: `Σ 4 (hi − lo)` doubles.
    tape_len: usize,
}

pub(crate) const NONE: usize = usize::MAX;

/// What the collapse and the reverse sweep do at one MZI, in padded columns: its upper row
/// `top`; its segment `lo..hi`, the columns outside which its two rows of the partial
/// product `T_{k−1} ⋯ T_1 D` are exactly zero (the union of their light cones, widened to
/// whole 4-lane vectors), recorded at `at` in the collapse's tape for the reverse pass; and
/// its sweep range `a..b ⊇ lo..hi`, the columns of its two rows the reverse sweep must keep
/// (see `sweep_ranges`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub top: usize,
    pub lo: usize,
    pub hi: usize,
    pub at: usize,
    pub a: usize,
    pub b: usize,
}

/// The reverse sweep's column range per MZI. The sweep runs `k = K−1, …, 0` over
/// `Y = P_k† G`, reading rows `(m, m+1)` of `Y` on MZI `k`'s segment and finally the diagonal
/// (for the input phases). Columns evolve independently, so an entry never read later need
/// not be updated: walking the MZIs in the opposite order (from the end of the sweep), keep
/// per row the column interval it must still be valid on, starting from the diagonal; MZI
/// `k` must update its rows on the union of both rows' intervals, and before it they must
/// be valid there and on its segment. Narrow early in the mesh, where cones are narrow.
fn sweep_ranges(n: usize, sites: &[MziSite], segments: &[[usize; 3]]) -> Vec<[usize; 2]> {
    let stride = padded_width(n);
    let mut valid: Vec<[usize; 2]> = (0..n).map(|r| [r / 4 * 4, r / 4 * 4 + 4]).collect();
    sites
        .iter()
        .zip(segments)
        .map(|(s, seg)| {
            let (a, b) = (valid[s.top], valid[s.top + 1]);
            let range = [
                a[0].min(b[0]).min(seg[0]),
                a[1].max(b[1]).max(seg[1]).min(stride),
            ];
            valid[s.top] = range;
            valid[s.top + 1] = range;
            range
        })
        .collect()
}

/// Row length of an `N`-column buffer padded to whole 4-lane vectors (the padding stays 0).
pub(crate) fn padded_width(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl PartialEq for MeshLayout {
    fn eq(&self, other: &Self) -> bool {
        self.inner.topology == other.inner.topology && self.inner.ports == other.inner.ports
    }
}

impl Eq for MeshLayout {}

/// As-soon-as-possible column assignment of MZIs given in circuit order (by upper mode).
pub(crate) fn schedule(ports: usize, tops: impl IntoIterator<Item = usize>) -> Vec<MziSite> {
    // next[m] = first column in which mode m is free.
    let mut next = vec![0usize; ports];
    tops.into_iter()
        .map(|top| {
            let column = next[top].max(next[top + 1]);
            next[top] = column + 1;
            next[top + 1] = column + 1;
            MziSite { column, top }
        })
        .collect()
}

impl MeshLayout {
    /// A universal `ports`-port mesh of the given topology.
    pub fn new(topology: Topology, ports: usize) -> Result<Self, MziError> {
        if ports == 0 {
            return Err(MziError::ZeroPorts);
        }
        let n = ports;
        // The circuit the decomposition produces defines the layout, so programming a mesh
        // from a unitary always lands on existing sites.
        let steps = plan(topology, n);
        let mut sites = schedule(n, circuit_order(&steps).into_iter().map(|k| steps[k].top));
        sites.sort_by_key(|s| (s.column, s.top));
        let depth = sites.last().map_or(0, |s| s.column + 1);
        let mut lookup = vec![NONE; depth * n];
        for (k, s) in sites.iter().enumerate() {
            lookup[s.column * n + s.top] = k;
        }
        let neighbours = sites
            .iter()
            .map(|s| {
                let above = if s.top >= 2 {
                    lookup[s.column * n + s.top - 2]
                } else {
                    NONE
                };
                let below = if s.top + 2 < n {
                    lookup[s.column * n + s.top + 2]
                } else {
                    NONE
                };
                [above, below]
            })
            .collect();
        let mut lo: Vec<usize> = (0..n).collect();
        let mut hi: Vec<usize> = (1..=n).collect();
        // Per MZI, the column ranges [lo_top, hi_top, lo_bottom, hi_bottom] (light cones).
        let cones = sites
            .iter()
            .map(|s| {
                let m = s.top;
                let cone = [lo[m], hi[m], lo[m + 1], hi[m + 1]];
                let (l, h) = (lo[m].min(lo[m + 1]), hi[m].max(hi[m + 1]));
                (lo[m], lo[m + 1], hi[m], hi[m + 1]) = (l, l, h, h);
                cone
            })
            .collect::<Vec<_>>();
        let stride = padded_width(n);
        let mut tape_len = 0;
        let segments = cones
            .iter()
            .map(|c| {
                let lo = c[0].min(c[2]) / 4 * 4;
                let hi = (c[1].max(c[3]).div_ceil(4) * 4).min(stride);
                let seg = [lo, hi, tape_len];
                tape_len += 4 * (hi - lo);
                seg
            })
            .collect::<Vec<_>>();
        let sweep = sweep_ranges(n, &sites, &segments);
        let steps = sites
            .iter()
            .zip(&segments)
            .zip(&sweep)
            .map(|((s, &[lo, hi, at]), &[a, b])| Step {
                top: s.top,
                lo,
                hi,
                at,
                a,
                b,
            })
            .collect();
        Ok(MeshLayout {
            inner: Arc::new(Inner {
                topology,
                ports,
                sites,
                depth,
                lookup,
                neighbours,
                steps,
                tape_len,
            }),
        })
    }

    pub fn topology(&self) -> Topology {
        self.inner.topology
    }

    /// Number of optical modes `N`.
    pub fn ports(&self) -> usize {
        self.inner.ports
    }

    /// `N(N−1)/2` for both topologies.
    pub fn mzi_count(&self) -> usize {
        self.inner.sites.len()
    }

    /// Optical depth: the number of MZI columns (`N` for Clements with `N ≥ 3`, `2N − 3` for
    /// Reck with `N ≥ 2`). The longest path crosses at most this many MZIs.
    pub fn depth(&self) -> usize {
        self.inner.depth
    }

    /// All MZI sites, in index order.
    pub fn sites(&self) -> &[MziSite] {
        &self.inner.sites
    }

    /// The index of the MZI at `(column, top)`, if there is one.
    pub fn site_index(&self, column: usize, top: usize) -> Option<usize> {
        if column >= self.inner.depth || top >= self.inner.ports {
            return None;
        }
        match self.inner.lookup[column * self.inner.ports + top] {
            NONE => None,
            k => Some(k),
        }
    }

    /// The MZIs physically next to MZI `k`: those on the neighbouring mode pairs (`top ∓ 2`)
    /// in the same column. Thermal crosstalk couples exactly these.
    pub fn neighbours(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.inner.neighbours[k]
            .iter()
            .copied()
            .filter(|&j| j != NONE)
    }

    pub(crate) fn steps(&self) -> &[Step] {
        &self.inner.steps
    }

    pub(crate) fn tape_len(&self) -> usize {
        self.inner.tape_len
    }

    pub(crate) fn neighbour_pairs(&self) -> &[[usize; 2]] {
        &self.inner.neighbours
    }

    /// Number of MZIs a signal crosses if it stays on `mode` from input to output (every MZI
    /// in the bar state). With per-MZI loss `L` dB it loses `L ×` this.
    pub fn mzis_on_mode(&self, mode: usize) -> usize {
        self.inner
            .sites
            .iter()
            .filter(|s| s.top == mode || s.top + 1 == mode)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_depths() {
        for n in 1..=12 {
            for topo in [Topology::Clements, Topology::Reck] {
                let l = MeshLayout::new(topo, n).unwrap();
                assert_eq!(l.mzi_count(), n * (n - 1) / 2, "{topo:?} {n}");
                let depth = match (topo, n) {
                    (_, 1) => 0,
                    (_, 2) => 1,
                    (Topology::Clements, _) => n,
                    (Topology::Reck, _) => 2 * n - 3,
                };
                assert_eq!(l.depth(), depth, "{topo:?} {n}");
                if topo == Topology::Clements {
                    // Canonical rectangle: column c couples the pairs starting at c mod 2.
                    for s in l.sites() {
                        assert_eq!(s.top % 2, s.column % 2, "N={n}");
                    }
                }
                // No two MZIs of a column share a mode; index order is (column, top).
                for w in l.sites().windows(2) {
                    assert!((w[0].column, w[0].top) < (w[1].column, w[1].top));
                    if w[0].column == w[1].column {
                        assert!(w[1].top >= w[0].top + 2);
                    }
                }
            }
        }
        assert_eq!(
            MeshLayout::new(Topology::Clements, 0),
            Err(MziError::ZeroPorts)
        );
    }

    #[test]
    fn clements_columns_alternate_from_mode_zero() {
        let l = MeshLayout::new(Topology::Clements, 6).unwrap();
        for s in l.sites() {
            assert_eq!(s.top % 2, s.column % 2);
        }
        assert_eq!(l.site_index(0, 0), Some(0));
        assert_eq!(l.site_index(1, 1), Some(3));
        assert_eq!(l.site_index(1, 0), None);
        // Middle modes cross one MZI per column; edge modes every other column.
        assert_eq!(l.mzis_on_mode(2), 6);
        assert_eq!(l.mzis_on_mode(0), 3);
    }

    #[test]
    fn reck_is_a_triangle() {
        let l = MeshLayout::new(Topology::Reck, 4).unwrap();
        let sites: Vec<(usize, usize)> = l.sites().iter().map(|s| (s.column, s.top)).collect();
        assert_eq!(sites, vec![(0, 0), (1, 1), (2, 0), (2, 2), (3, 1), (4, 0)]);
        assert_eq!(l.mzis_on_mode(0), 3);
        assert_eq!(l.mzis_on_mode(1), 5);
    }

    #[test]
    fn sweep_ranges_cover_every_entry_the_reverse_sweep_reads() {
        // The same backward dataflow with exact column sets: rows must be valid on the
        // diagonal at the end, and before MZI k on what it reads (its segment) and on what
        // its outputs must be valid on.
        for topo in [Topology::Clements, Topology::Reck] {
            for n in 1..=17 {
                let l = MeshLayout::new(topo, n).unwrap();
                let stride = padded_width(n);
                let mut valid: Vec<Vec<bool>> = (0..n)
                    .map(|r| (0..stride).map(|c| c == r).collect())
                    .collect();
                let mut width = 0;
                let mut at = 0;
                for (s, st) in l.sites().iter().zip(l.steps()) {
                    let (seg, a, b) = ([st.lo, st.hi], st.a, st.b);
                    assert_eq!(st.top, s.top);
                    assert!(a.is_multiple_of(4) && b.is_multiple_of(4));
                    assert!(a <= seg[0] && seg[1] <= b);
                    // Records tile the tape.
                    assert_eq!(st.at, at);
                    at += 4 * (st.hi - st.lo);
                    assert!(b <= stride, "{topo:?} N={n}");
                    let out: Vec<bool> = (0..stride)
                        .map(|c| valid[s.top][c] || valid[s.top + 1][c])
                        .collect();
                    for (c, &needed) in out.iter().enumerate() {
                        assert!(!needed || (a..b).contains(&c), "{topo:?} N={n} col {c}");
                    }
                    let before: Vec<bool> = (0..stride)
                        .map(|c| out[c] || (seg[0]..seg[1]).contains(&c))
                        .collect();
                    valid[s.top] = before.clone();
                    valid[s.top + 1] = before;
                    width += b - a;
                }
                assert_eq!(at, l.tape_len());
                // The ranges pay off: a Clements mesh of 16 updates under 80 % of full rows
                // (1472 of 1920 columns).
                if topo == Topology::Clements && n == 16 {
                    assert!(width * 5 < l.mzi_count() * stride * 4, "{width}");
                }
            }
        }
    }

    #[test]
    fn neighbours_are_same_column_adjacent_pairs() {
        let l = MeshLayout::new(Topology::Clements, 7).unwrap();
        let k = l.site_index(0, 2).unwrap();
        let nb: Vec<usize> = l.neighbours(k).collect();
        assert_eq!(
            nb,
            vec![l.site_index(0, 0).unwrap(), l.site_index(0, 4).unwrap()]
        );
        let edge = l.site_index(1, 1).unwrap();
        assert_eq!(
            l.neighbours(edge).collect::<Vec<_>>(),
            vec![l.site_index(1, 3).unwrap()]
        );
        // Symmetric relation.
        for k in 0..l.mzi_count() {
            for j in l.neighbours(k) {
                assert!(l.neighbours(j).any(|i| i == k));
            }
        }
    }
}
