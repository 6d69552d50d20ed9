//! The MZI backend's training space ([`Backend::weight_space`](crate::backend::Backend::weight_space)):
//! `linear` layers trained as matrices, programmed onto phases afterwards.
//!
//! Adam on mesh phases converges slowly and to worse points than Adam on the matrix the
//! mesh realises: on `digits4` a single `linear(x, 10)` reaches 0.796 test accuracy
//! trained in phase space and 0.833 as a free complex matrix, over 20 epochs, and neither
//! more epochs, other learning rates nor SGD closed the gap. torchonn's `MZIBlockLinear`
//! trains in weight space by default for the same reason. So clean training here replaces
//! every `linear` (mesh `V†`, attenuators, mesh `U`, lowered from one source node) by one
//! complex matrix `W`, trains that graph, and maps each `W` back with its SVD:
//! `W = U diag(σ) V†`, each unitary programmed onto its mesh by the exact Clements/Reck
//! decomposition, σ onto the attenuators.
//!
//! A passive mesh cannot amplify, so every `W` is kept at spectral norm ≤ 1 during
//! training (after each step, by power iteration warm-started from the previous step's
//! vector), and the attenuators receive σ ≤ 1. Nothing else changes: standalone meshes
//! (`unitary`), `diag`, activations and their parameters train as they would in phase space.
//! Noise-aware training stays in phase space, where the noise lives.

use super::prims::Mesh;
use super::svd_full;
use crate::backend::digital::prims::complex_matrix;
use crate::backend::kernel::KernelError;
use crate::backend::WeightSpace;
use crate::check::model::DType;
use crate::ir::{Graph, Prim};
use ndarray::Array2;
use num_complex::Complex64 as C64;

/// Parameters, one flat block per graph node.
type Blocks = Vec<Vec<f64>>;

/// One `linear` lowered to `V†` mesh, attenuators, `U` mesh (node indices in the phase
/// graph), and its matrix node in the weight graph.
#[derive(Clone, Debug)]
struct Linear {
    v: usize,
    atten: usize,
    u: usize,
    matrix: usize,
    /// The kernels of the `V†` and `U` meshes (they read and program the phases).
    meshes: (Mesh, Mesh),
}

/// The weight-space twin of a phase-space graph, and how to map between them.
#[derive(Clone, Debug)]
pub struct MatrixSpace {
    /// The twin: each `linear` one complex matrix node.
    graph: Graph,
    linears: Vec<Linear>,
    /// For each weight-graph node, the phase-graph node it stands for (the `U` mesh's for
    /// a matrix: the node whose output it replaces).
    origin: Vec<usize>,
    /// Warm-start vectors of the power iteration, one per matrix.
    top: Vec<Vec<C64>>,
}

/// The weight-space graph of `graph`, or `None` when it has no `linear` on meshes.
fn weight_graph(graph: &Graph) -> Option<(Graph, Vec<Linear>, Vec<usize>)> {
    let nodes = &graph.nodes;
    let is_mesh = |i: usize| matches!(nodes[i].prim, Prim::Mesh { .. });
    let mut linears = Vec::new();
    let mut i = 0;
    let mut out = Vec::with_capacity(nodes.len());
    let mut origin = Vec::with_capacity(nodes.len());
    // Index of each phase node in the weight graph (the triple maps to its matrix).
    let mut remap = vec![usize::MAX; nodes.len()];
    while i < nodes.len() {
        let triple = i + 2 < nodes.len()
            && is_mesh(i)
            && matches!(nodes[i + 1].prim, Prim::Attenuate)
            && is_mesh(i + 2)
            && nodes[i + 1].inputs == [i]
            && nodes[i + 2].inputs == [i + 1]
            && nodes[i].source == nodes[i + 2].source
            && nodes[i + 1].source == nodes[i].source
            // The inner values must feed nothing else.
            && !nodes.iter().enumerate().any(|(j, n)| {
                (j != i + 1 && n.inputs.contains(&i)) || (j != i + 2 && n.inputs.contains(&(i + 1)))
            });
        // A mesh that cannot be built stays in the twin, where building its program
        // reports it.
        let meshes = match triple {
            true => match (Mesh::of(&nodes[i]), Mesh::of(&nodes[i + 2])) {
                (Some(Ok(v)), Some(Ok(u))) => Some((v, u)),
                _ => None,
            },
            false => None,
        };
        if let Some(meshes) = meshes {
            let mut n = nodes[i + 2].clone();
            n.prim = Prim::MatMul {
                // Unused: a program on optical hardware computes in exact f64.
                dtype: DType::Fp32,
                complex: true,
            };
            n.in_width = nodes[i].in_width;
            n.inputs = nodes[i].inputs.iter().map(|&j| remap[j]).collect();
            let idx = out.len();
            linears.push(Linear {
                v: i,
                atten: i + 1,
                u: i + 2,
                matrix: idx,
                meshes,
            });
            remap[i] = idx;
            remap[i + 1] = idx;
            remap[i + 2] = idx;
            out.push(n);
            origin.push(i + 2);
            i += 3;
        } else {
            let mut n = nodes[i].clone();
            n.inputs = n.inputs.iter().map(|&j| remap[j]).collect();
            remap[i] = out.len();
            out.push(n);
            origin.push(i);
            i += 1;
        }
    }
    if linears.is_empty() {
        return None;
    }
    let g = Graph {
        nodes: out,
        inputs: graph.inputs.iter().map(|&j| remap[j]).collect(),
        output: remap[graph.output],
        ..graph.clone()
    };
    Some((g, linears, origin))
}

impl MatrixSpace {
    /// The weight-space twin of `phase` with parameters `blocks` (same hardware; each
    /// `linear` as the matrix its current phases realise) and the twin's parameters, or
    /// `None` when there is nothing to gain.
    pub fn new(
        phase: &Graph,
        blocks: &[Vec<f64>],
    ) -> Result<Option<(MatrixSpace, Blocks)>, KernelError> {
        let Some((graph, linears, origin)) = weight_graph(phase) else {
            return Ok(None);
        };
        if blocks.len() != phase.nodes.len() {
            return Err(KernelError::ParamShape {
                expected: phase.nodes.len(),
                got: blocks.len(),
            });
        }
        let mut twin = Vec::with_capacity(origin.len());
        for (k, &o) in origin.iter().enumerate() {
            match linears.iter().find(|l| l.matrix == k) {
                Some(l) => {
                    let w = phase_matrix(l, blocks)?;
                    let (re, im): (Vec<f64>, Vec<f64>) = w.iter().map(|z| (z.re, z.im)).unzip();
                    twin.push([re, im].concat());
                }
                None => twin.push(blocks[o].clone()),
            }
        }
        let top = linears
            .iter()
            .map(|l| {
                let n = graph.nodes[l.matrix].in_width;
                vec![C64::new(1.0 / (n as f64).sqrt(), 0.0); n]
            })
            .collect();
        Ok(Some((
            MatrixSpace {
                graph,
                linears,
                origin,
                top,
            },
            twin,
        )))
    }

    /// Scales every matrix whose spectral norm exceeds 1 back to 1, by `iters` power
    /// iterations per matrix warm-started from the last estimate.
    fn cap_with(&mut self, twin: &mut [Vec<f64>], iters: usize) {
        for (l, v) in self.linears.iter().zip(&mut self.top) {
            let node = &self.graph.nodes[l.matrix];
            let (rows, cols) = (node.ty.width, node.in_width);
            let Some(block) = twin.get_mut(l.matrix) else {
                continue;
            };
            if block.len() != 2 * rows * cols {
                continue;
            }
            let norm = spectral_norm(block, rows, cols, v, iters);
            if norm > 1.0 {
                block.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }
}

impl WeightSpace for MatrixSpace {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Caps every matrix at spectral norm 1: a few warm-started power iterations,
    /// accurate because a step moves `W` little.
    fn project(&mut self, twin: &mut [Vec<f64>]) {
        self.cap_with(twin, 4);
    }

    /// Each matrix (first capped with a converged power iteration, so the phases compute
    /// what the twin computes) through its SVD onto meshes and attenuators, everything
    /// else copied. The SVD's σ_max can still exceed 1 by rounding; the attenuators are
    /// scaled by it then.
    fn program(
        &mut self,
        twin: &mut [Vec<f64>],
        hardware: &[Vec<f64>],
    ) -> Result<Vec<Vec<f64>>, KernelError> {
        let shape = |expected: usize, got: usize| KernelError::ParamShape { expected, got };
        if twin.len() != self.graph.nodes.len() {
            return Err(shape(self.graph.nodes.len(), twin.len()));
        }
        // The last twin node stands for the hardware graph's last node.
        let nodes = self.origin.last().map_or(0, |&o| o + 1);
        if hardware.len() != nodes {
            return Err(shape(nodes, hardware.len()));
        }
        self.cap_with(twin, 200);
        let mut p = hardware.to_vec();
        for (k, &o) in self.origin.iter().enumerate() {
            if !self.linears.iter().any(|l| l.matrix == k) {
                p[o] = twin[k].clone();
            }
        }
        for l in &self.linears {
            let (vm, um) = &l.meshes;
            let node = &self.graph.nodes[l.matrix];
            let (rows, cols) = (node.ty.width, node.in_width);
            let block = &twin[l.matrix];
            if block.len() != 2 * rows * cols {
                return Err(shape(2 * rows * cols, block.len()));
            }
            let (re, im) = block.split_at(rows * cols);
            let w = complex_matrix(re, im, rows, cols);
            let (u, sigma, vh) = svd_full(w.view())?;
            let top = sigma.first().copied().unwrap_or(0.0).max(1.0);
            p[l.v] = vm.program(vh.view())?;
            p[l.atten] = sigma.iter().map(|s| s / top).collect();
            p[l.u] = um.program(u.view())?;
        }
        Ok(p)
    }
}

/// The matrix `U diag(σ) V†` that `linear` `l` with parameters `blocks` realises on ideal
/// hardware.
fn phase_matrix(l: &Linear, blocks: &[Vec<f64>]) -> Result<Array2<C64>, KernelError> {
    let (vm, um) = &l.meshes;
    let (vh, u) = (vm.matrix(&blocks[l.v])?, um.matrix(&blocks[l.u])?);
    let sigma = &blocks[l.atten];
    let (rows, cols) = (u.nrows(), vh.ncols());
    let k = rows.min(cols);
    if sigma.len() != k {
        return Err(KernelError::ParamShape {
            expected: k,
            got: sigma.len(),
        });
    }
    Ok(Array2::from_shape_fn((rows, cols), |(r, c)| {
        sigma
            .iter()
            .enumerate()
            .map(|(j, &s)| u[[r, j]] * s * vh[[j, c]])
            .sum()
    }))
}

/// Largest singular value of the `rows × cols` complex matrix stored as `[Re, Im]`
/// row-major in `block`, by `iters` steps of power iteration on `W†W` from `v` (updated
/// in place to the new estimate of the top right singular vector).
fn spectral_norm(block: &[f64], rows: usize, cols: usize, v: &mut [C64], iters: usize) -> f64 {
    let (re, im) = block.split_at(rows * cols);
    let at = |r: usize, c: usize| C64::new(re[r * cols + c], im[r * cols + c]);
    let mut u = vec![C64::new(0.0, 0.0); rows];
    let mut norm = 0.0;
    for _ in 0..iters.max(1) {
        for (r, ur) in u.iter_mut().enumerate() {
            *ur = (0..cols).map(|c| at(r, c) * v[c]).sum();
        }
        norm = u.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        for (c, vc) in v.iter_mut().enumerate() {
            *vc = (0..rows).map(|r| at(r, c).conj() * u[r]).sum();
        }
        let vn = v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        if !(vn > 0.0 && vn.is_finite()) {
            // W v = 0 or garbage: restart from a fixed vector next time.
            let e = 1.0 / (cols as f64).sqrt();
            v.iter_mut().for_each(|z| *z = C64::new(e, 0.0));
            return norm;
        }
        v.iter_mut().for_each(|z| *z /= vn);
    }
    norm
}

#[cfg(test)]
mod tests;
