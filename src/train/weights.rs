//! Weight-space training of MZI `linear` layers, programmed onto phases afterwards.
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

use crate::backend::mzi::{svd_full, MeshLayout, MziError, Topology};
use crate::check::model::DType;
use crate::ir::{Graph, Prim};
use crate::runtime::{complex_matrix, topology, Params, Program, RuntimeError};
use ndarray::Array2;
use num_complex::Complex64 as C64;

/// One `linear` lowered to `V†` mesh, attenuators, `U` mesh (node indices in the phase
/// graph), and its matrix node in the weight graph.
#[derive(Clone, Debug)]
struct Linear {
    v: usize,
    atten: usize,
    u: usize,
    matrix: usize,
}

/// The weight-space twin of a phase-space program, and how to map between them.
#[derive(Clone, Debug)]
pub struct WeightSpace {
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
        if triple {
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

/// The topology of mesh node `i` (Clements for anything else; only meshes are asked).
fn mesh_topology(graph: &Graph, i: usize) -> Topology {
    match graph.nodes[i].prim {
        Prim::Mesh { layout } => topology(layout),
        _ => Topology::Clements,
    }
}

impl WeightSpace {
    /// The weight-space twin of `phase` (same hardware and parameters, each `linear` as
    /// the matrix its current phases realise), or `None` when there is nothing to gain.
    pub fn new(phase: &Program) -> Result<Option<(WeightSpace, Program)>, RuntimeError> {
        let Some((graph, linears, origin)) = weight_graph(phase.graph()) else {
            return Ok(None);
        };
        let mut program = Program::new(&graph, 0)?;
        let mut blocks = Vec::with_capacity(origin.len());
        for (k, &o) in origin.iter().enumerate() {
            match linears.iter().find(|l| l.matrix == k) {
                Some(l) => {
                    let w = phase_matrix(phase, l)?;
                    let (re, im): (Vec<f64>, Vec<f64>) = w.iter().map(|z| (z.re, z.im)).unzip();
                    blocks.push([re, im].concat());
                }
                None => blocks.push(phase.params.blocks[o].clone()),
            }
        }
        program.set_params(Params { blocks })?;
        let top = linears
            .iter()
            .map(|l| {
                let n = graph.nodes[l.matrix].in_width;
                vec![C64::new(1.0 / (n as f64).sqrt(), 0.0); n]
            })
            .collect();
        Ok(Some((
            WeightSpace {
                linears,
                origin,
                top,
            },
            program,
        )))
    }

    /// Scales every matrix whose spectral norm exceeds 1 back to 1 (after an optimiser step:
    /// a few warm-started power iterations, accurate because a step moves `W` little).
    pub fn cap(&mut self, program: &mut Program) {
        self.cap_with(program, 4);
    }

    /// [`cap`](Self::cap) with `iters` power iterations per matrix.
    fn cap_with(&mut self, program: &mut Program, iters: usize) {
        for (l, v) in self.linears.iter().zip(&mut self.top) {
            let node = &program.graph().nodes[l.matrix];
            let (rows, cols) = (node.ty.width, node.in_width);
            let block = &mut program.params.blocks[l.matrix];
            let norm = spectral_norm(block, rows, cols, v, iters);
            if norm > 1.0 {
                block.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }

    /// Programs the trained weight-space parameters onto `phase`: each matrix (first capped
    /// with a converged power iteration) through its SVD onto meshes and attenuators,
    /// everything else copied. The SVD's σ_max can still exceed 1 by rounding; the
    /// attenuators are scaled by it then.
    pub fn program_phases(
        &mut self,
        weights: &mut Program,
        phase: &mut Program,
    ) -> Result<(), RuntimeError> {
        // Converged power iteration first, so the phases compute what `weights` computes.
        self.cap_with(weights, 200);
        let mut p = phase.params.clone();
        for (k, &o) in self.origin.iter().enumerate() {
            if !self.linears.iter().any(|l| l.matrix == k) {
                p.blocks[o] = weights.params.blocks[k].clone();
            }
        }
        let g = phase.graph();
        for l in &self.linears {
            let node = &weights.graph().nodes[l.matrix];
            let (rows, cols) = (node.ty.width, node.in_width);
            let block = &weights.params.blocks[l.matrix];
            let (re, im) = block.split_at(rows * cols);
            let w = complex_matrix(re, im, rows, cols);
            let (u, sigma, vh) = svd_full(w.view())?;
            let top = sigma.first().copied().unwrap_or(0.0).max(1.0);
            let vl = MeshLayout::new(mesh_topology(g, l.v), cols)?;
            let ul = MeshLayout::new(mesh_topology(g, l.u), rows)?;
            let vp = vl.decompose(vh.view())?;
            let up = ul.decompose(u.view())?;
            p.blocks[l.v] = [vp.theta, vp.phi, vp.gamma].concat();
            p.blocks[l.atten] = sigma.iter().map(|s| s / top).collect();
            p.blocks[l.u] = [up.theta, up.phi, up.gamma].concat();
        }
        phase.set_params(p)
    }
}

/// The matrix `U diag(σ) V†` that `linear` `l` of `phase` realises on ideal hardware.
fn phase_matrix(phase: &Program, l: &Linear) -> Result<Array2<C64>, RuntimeError> {
    let g = phase.graph();
    let mesh = |i: usize| -> Result<Array2<C64>, RuntimeError> {
        let layout = MeshLayout::new(mesh_topology(g, i), g.nodes[i].ty.width)?;
        let phases = phase
            .mesh_phases(i)
            .ok_or(RuntimeError::Mzi(MziError::NonFinite { what: "mesh node" }))?;
        Ok(layout.ideal(&phases)?.matrix().to_owned())
    };
    let (vh, u) = (mesh(l.v)?, mesh(l.u)?);
    let sigma = &phase.params.blocks[l.atten];
    let (rows, cols) = (u.nrows(), vh.ncols());
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
