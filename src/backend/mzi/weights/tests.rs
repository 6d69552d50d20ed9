use super::*;
use crate::backend::mzi::haar_unitary;
use crate::runtime::{Params, Program};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn compile(body: &str, arch: &str) -> (Graph, crate::ir::Target) {
    crate::runtime::tests::compile(body, arch)
}

/// The weight space of `phase` and the twin's program, as `train` builds them.
fn twin(phase: &Program) -> Option<(MatrixSpace, Program)> {
    let (ws, blocks) = MatrixSpace::new(phase.graph(), &phase.params.blocks).unwrap()?;
    let mut weights = Program::new(ws.graph(), 0).unwrap();
    weights.set_params(Params { blocks }).unwrap();
    Some((ws, weights))
}

/// Programs `weights` onto `phase`, as `train` does.
fn program(ws: &mut MatrixSpace, weights: &mut Program, phase: &mut Program) {
    let blocks = ws
        .program(&mut weights.params.blocks, &phase.params.blocks)
        .unwrap();
    phase.set_params(Params { blocks }).unwrap();
}

fn random_x(n: usize, d: usize, seed: u64) -> ndarray::Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    ndarray::Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0))
}

fn max_diff(a: &ndarray::Array2<f64>, b: &ndarray::Array2<f64>) -> f64 {
    (a - b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v))
}

const NET: &str = "arch net on mzi_realistic {
    input x: real[6]
    h = linear(x, 6)
    a = modrelu(h, bias = 0.1)
    u = unitary(a)
    y = linear(u, 4)
    output detect(y)
}
arch wide on mzi_reck {
    input x: real[3]
    output detect(linear(x, 5))
}";

#[test]
fn the_weight_twin_computes_what_the_phases_compute() {
    for arch in ["net", "wide"] {
        let (g, _) = compile(NET, arch);
        let phase = Program::new(&g, 7).unwrap();
        let (_, weights) = twin(&phase).expect("has linears");
        // Two linears become two matrices; the unitary stays a mesh.
        let meshes = |p: &Program| {
            p.graph()
                .nodes
                .iter()
                .filter(|n| matches!(n.prim, Prim::Mesh { .. }))
                .count()
        };
        assert_eq!(meshes(&weights), if arch == "net" { 1 } else { 0 });
        let x = random_x(9, phase.input_width(), 1);
        let a = phase.forward(x.view(), None).unwrap();
        let b = weights.forward(x.view(), None).unwrap();
        assert!(max_diff(&a, &b) < 1e-12, "{arch}: {}", max_diff(&a, &b));
    }
}

#[test]
fn trained_matrices_program_back_onto_phases_exactly() {
    // Random weights at spectral norm ≤ 1 (the cap), then SVD + mesh decomposition: the
    // phase program must compute the same scores (reconstruction error ~ 1e-12).
    for arch in ["net", "wide"] {
        let (g, _) = compile(NET, arch);
        let mut phase = Program::new(&g, 3).unwrap();
        let (mut ws, mut weights) = twin(&phase).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        for b in &mut weights.params.blocks {
            b.iter_mut().for_each(|v| *v += rng.random_range(-0.3..0.3));
        }
        let x = random_x(8, phase.input_width(), 2);
        program(&mut ws, &mut weights, &mut phase);
        let a = weights.forward(x.view(), None).unwrap();
        let b = phase.forward(x.view(), None).unwrap();
        let scale = a.mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        assert!(
            max_diff(&a, &b) < 1e-9 * scale.max(1.0),
            "{arch}: {}",
            max_diff(&a, &b)
        );
        // Attenuators are physical, and the cap bound: the largest is 1.
        for l in &ws.linears {
            let att = &phase.params.blocks[l.atten];
            assert!(att.iter().all(|s| s.abs() <= 1.0), "{att:?}");
            let top = att.iter().fold(0.0f64, |m, s| m.max(s.abs()));
            assert!((top - 1.0).abs() < 1e-9, "{att:?}");
        }
    }
}

#[test]
fn power_iteration_finds_the_largest_singular_value() {
    let mut rng = StdRng::seed_from_u64(5);
    let (rows, cols) = (7, 5);
    // W = U diag(σ) V† with known σ.
    let u = haar_unitary(rows, &mut rng);
    let v = haar_unitary(cols, &mut rng);
    let sigma = [2.5, 1.2, 0.7, 0.3, 0.1];
    let w = Array2::from_shape_fn((rows, cols), |(r, c)| {
        (0..cols)
            .map(|j| u[[r, j]] * sigma[j] * v[[c, j]].conj())
            .sum::<C64>()
    });
    let block: Vec<f64> = w
        .iter()
        .map(|z| z.re)
        .chain(w.iter().map(|z| z.im))
        .collect();
    let mut vec = vec![C64::new(1.0 / (cols as f64).sqrt(), 0.0); cols];
    let est = spectral_norm(&block, rows, cols, &mut vec, 60);
    assert!((est - 2.5).abs() < 1e-9, "{est}");
    // Warm-started, a few steps stay accurate.
    assert!((spectral_norm(&block, rows, cols, &mut vec, 2) - 2.5).abs() < 1e-9);
}

#[test]
fn graphs_without_linears_have_no_twin() {
    let (g, _) = compile(
        "arch u on mzi_realistic { input x: real[4]\n output detect(unitary(x)) }",
        "u",
    );
    let p = Program::new(&g, 1).unwrap();
    assert!(twin(&p).is_none());
}

#[test]
fn the_backend_offers_the_space_and_only_the_mzi_backend_does() {
    let (g, _) = compile(NET, "net");
    let p = Program::new(&g, 2).unwrap();
    let mzi = g.target.backend.backend();
    let (ws, blocks) = mzi.weight_space(&g, &p.params.blocks).unwrap().unwrap();
    assert_eq!(blocks.len(), ws.graph().nodes.len());
    let (d, _) = compile(
        "arch d on cpu_fp32 { input x: real[4]\n output linear(x, 3) }",
        "d",
    );
    let q = Program::new(&d, 2).unwrap();
    let digital = d.target.backend.backend();
    assert!(digital
        .weight_space(&d, &q.params.blocks)
        .unwrap()
        .is_none());
}

#[test]
fn wrong_parameter_blocks_are_errors_not_panics() {
    let (g, _) = compile(NET, "net");
    let phase = Program::new(&g, 5).unwrap();
    let blocks = &phase.params.blocks;
    // Too few blocks, a short mesh block, a long attenuator block.
    assert!(MatrixSpace::new(&g, &blocks[1..]).is_err());
    let first = |p: fn(&Prim) -> bool| g.nodes.iter().position(|n| p(&n.prim)).unwrap();
    let mesh = first(|p| matches!(p, Prim::Mesh { .. }));
    let atten = first(|p| matches!(p, Prim::Attenuate));
    let mut short = blocks.clone();
    short[mesh].pop();
    assert!(MatrixSpace::new(&g, &short).is_err());
    let mut long = blocks.clone();
    long[atten].push(0.5);
    assert!(MatrixSpace::new(&g, &long).is_err());
    // Programming from or onto blocks of the wrong shape.
    let (mut ws, mut weights) = twin(&phase).unwrap();
    assert!(ws
        .program(&mut weights.params.blocks, &blocks[1..])
        .is_err());
    let matrix = ws.linears[0].matrix;
    let mut bad = weights.params.blocks.clone();
    bad[matrix].pop();
    assert!(ws.program(&mut bad, blocks).is_err());
    assert!(ws.program(&mut bad[1..], blocks).is_err());
    ws.project(&mut bad); // skips what it cannot read
}
