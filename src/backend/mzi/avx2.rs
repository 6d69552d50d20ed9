//! AVX2 + FMA inner loops (x86-64 only, selected at run time by `kernels`).
//!
//! Every function here is `unsafe` because it must only run on a CPU with AVX2 and FMA;
//! callers check that with `is_x86_feature_detected!`. Memory accesses go through slices
//! whose lengths are asserted on entry, or through pointers whose extents are stated in the
//! SAFETY comments.

use super::layout::Step;
use num_complex::Complex64 as C64;
use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Samples per column tile of the fused 3M product (two 4-lane vectors).
const TILE: usize = 8;
/// Doubles per packed column entry of a two-row block: `[re0, re1, im0, im1, sum0, sum1]`.
pub(crate) const PACK: usize = 6;

/// One register tile: two output rows × 8 samples, accumulating the three real products of
/// the 3M method over `k` columns, then writing interleaved complex results.
///
/// `a`: `k × PACK` doubles of one packed row block; `xr`, `xi`, `xs`: `k × TILE` doubles of the
/// real, imaginary and summed input planes; `y`: rows `rows ≤ 2` of the output, `ldy` doubles
/// apart, each with room for `TILE` complex values.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a register kernel: pointers and strides, no struct
unsafe fn tile(
    k: usize,
    a: *const f64,
    xr: *const f64,
    xi: *const f64,
    xs: *const f64,
    y: *mut f64,
    ldy: usize,
    rows: usize,
) {
    let mut t1 = [[_mm256_setzero_pd(); 2]; 2];
    let mut t2 = [[_mm256_setzero_pd(); 2]; 2];
    let mut t3 = [[_mm256_setzero_pd(); 2]; 2];
    for kk in 0..k {
        let ap = a.add(PACK * kk);
        let o = TILE * kk;
        let r0 = _mm256_loadu_pd(xr.add(o));
        let r1 = _mm256_loadu_pd(xr.add(o + 4));
        let i0 = _mm256_loadu_pd(xi.add(o));
        let i1 = _mm256_loadu_pd(xi.add(o + 4));
        let s0 = _mm256_loadu_pd(xs.add(o));
        let s1 = _mm256_loadu_pd(xs.add(o + 4));
        for r in 0..2 {
            let ar = _mm256_broadcast_sd(&*ap.add(r));
            t1[r][0] = _mm256_fmadd_pd(ar, r0, t1[r][0]);
            t1[r][1] = _mm256_fmadd_pd(ar, r1, t1[r][1]);
            let ai = _mm256_broadcast_sd(&*ap.add(2 + r));
            t2[r][0] = _mm256_fmadd_pd(ai, i0, t2[r][0]);
            t2[r][1] = _mm256_fmadd_pd(ai, i1, t2[r][1]);
            let asum = _mm256_broadcast_sd(&*ap.add(4 + r));
            t3[r][0] = _mm256_fmadd_pd(asum, s0, t3[r][0]);
            t3[r][1] = _mm256_fmadd_pd(asum, s1, t3[r][1]);
        }
    }
    for r in 0..rows {
        for c in 0..2 {
            let re = _mm256_sub_pd(t1[r][c], t2[r][c]);
            let im = _mm256_sub_pd(_mm256_sub_pd(t3[r][c], t1[r][c]), t2[r][c]);
            let lo = _mm256_unpacklo_pd(re, im); // re0 im0 re2 im2
            let hi = _mm256_unpackhi_pd(re, im); // re1 im1 re3 im3
            let p = y.add(r * ldy + 8 * c);
            _mm256_storeu_pd(p, _mm256_permute2f128_pd(lo, hi, 0x20));
            _mm256_storeu_pd(p.add(4), _mm256_permute2f128_pd(lo, hi, 0x31));
        }
    }
}

/// `Y = A X` by the 3M method in one pass: `A` (`rows × k`) packed in two-row blocks of
/// `[re0, re1, im0, im1, re0+im0, re1+im1]` per column; `x` row-major `k × b` complex;
/// `y` points to `rows × b` complex values (row-major), every one of which is written.
///
/// The input is repacked eight samples at a time into real, imaginary and summed planes
/// (3·8·k doubles, L1-resident), then every row block runs over that panel.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_3m(
    packed: &[f64],
    rows: usize,
    k: usize,
    x: &[C64],
    b: usize,
    y: *mut f64,
) {
    let blocks = rows.div_ceil(2);
    assert!(packed.len() == blocks * k * PACK && x.len() == k * b);
    let ldy = 2 * b;
    // The panel on the stack for small meshes (k ≤ 16: 3 KiB), else on the heap.
    let mut stack = [0.0f64; 3 * 16 * TILE];
    let mut heap = Vec::new();
    let panel: &mut [f64] = if k <= 16 {
        &mut stack[..3 * k * TILE]
    } else {
        heap.resize(3 * k * TILE, 0.0);
        &mut heap
    };
    let mut j = 0;
    while j < b {
        let w = TILE.min(b - j);
        {
            let (pr, rest) = panel.split_at_mut(k * TILE);
            let (pi, ps) = rest.split_at_mut(k * TILE);
            for kk in 0..k {
                let src = &x[kk * b + j..kk * b + j + w];
                let o = kk * TILE;
                if w == TILE {
                    // SAFETY: src has 8 complex = 16 doubles; each plane has TILE slots at o.
                    let sp = src.as_ptr().cast::<f64>();
                    for half in 0..2 {
                        let a = _mm256_loadu_pd(sp.add(8 * half)); // r0 i0 r1 i1
                        let c = _mm256_loadu_pd(sp.add(8 * half + 4)); // r2 i2 r3 i3
                        let re = _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, c), 0xD8);
                        let im = _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, c), 0xD8);
                        let at = o + 4 * half;
                        _mm256_storeu_pd(pr.as_mut_ptr().add(at), re);
                        _mm256_storeu_pd(pi.as_mut_ptr().add(at), im);
                        _mm256_storeu_pd(ps.as_mut_ptr().add(at), _mm256_add_pd(re, im));
                    }
                    continue;
                }
                for (t, z) in src.iter().enumerate() {
                    pr[o + t] = z.re;
                    pi[o + t] = z.im;
                    ps[o + t] = z.re + z.im;
                }
                for t in w..TILE {
                    pr[o + t] = 0.0;
                    pi[o + t] = 0.0;
                    ps[o + t] = 0.0;
                }
            }
        }
        let (pr, pi, ps) = (
            panel.as_ptr(),
            panel.as_ptr().add(k * TILE),
            panel.as_ptr().add(2 * k * TILE),
        );
        for blk in 0..blocks {
            let r = (rows - 2 * blk).min(2);
            let a = packed.as_ptr().add(blk * k * PACK);
            if w == TILE {
                // SAFETY: rows 2blk..2blk+r, samples j..j+8 lie inside the rows × b output.
                tile(k, a, pr, pi, ps, y.add(2 * blk * ldy + 2 * j), ldy, r);
            } else {
                let mut buf = [0.0f64; 2 * 2 * TILE];
                tile(k, a, pr, pi, ps, buf.as_mut_ptr(), 2 * TILE, r);
                for rr in 0..r {
                    // SAFETY: w < 8 samples left in each of the r rows.
                    std::ptr::copy_nonoverlapping(
                        buf.as_ptr().add(rr * 2 * TILE),
                        y.add((2 * blk + rr) * ldy + 2 * j),
                        2 * w,
                    );
                }
            }
        }
        j += w;
    }
}

/// `(p x + q y)` for complex broadcast coefficients on planar 4-lane vectors.
#[inline(always)]
unsafe fn cmix(p: [__m256d; 2], q: [__m256d; 2], x: [__m256d; 2], y: [__m256d; 2]) -> [__m256d; 2] {
    let re = _mm256_fnmadd_pd(
        q[1],
        y[1],
        _mm256_fmadd_pd(
            q[0],
            y[0],
            _mm256_fnmadd_pd(p[1], x[1], _mm256_mul_pd(p[0], x[0])),
        ),
    );
    let im = _mm256_fmadd_pd(
        q[1],
        y[0],
        _mm256_fmadd_pd(
            q[0],
            y[1],
            _mm256_fmadd_pd(p[1], x[0], _mm256_mul_pd(p[0], x[1])),
        ),
    );
    [re, im]
}

#[inline(always)]
unsafe fn splat(z: C64) -> [__m256d; 2] {
    [_mm256_set1_pd(z.re), _mm256_set1_pd(z.im)]
}

/// `H = Σ_j y_r[j] · conj(q_c[j])` (row-major 2×2) from four accumulator pairs, each
/// vector summed as `(l0 + l1) + (l2 + l3)`.
#[inline(always)]
unsafe fn reduce_block(re: [__m256d; 4], im: [__m256d; 4]) -> [C64; 4] {
    let h = |k: usize| _mm256_hadd_pd(re[k], im[k]); // [re01, im01, re23, im23]
    let (h0, h1, h2, h3) = (h(0), h(1), h(2), h(3));
    let s01 = _mm256_add_pd(
        _mm256_permute2f128_pd(h0, h1, 0x20),
        _mm256_permute2f128_pd(h0, h1, 0x31),
    );
    let s23 = _mm256_add_pd(
        _mm256_permute2f128_pd(h2, h3, 0x20),
        _mm256_permute2f128_pd(h2, h3, 0x31),
    );
    let mut out = [C64::new(0.0, 0.0); 4];
    // SAFETY: `[C64; 4]` is eight contiguous f64 (`Complex` is `repr(C)`).
    let p = out.as_mut_ptr().cast::<f64>();
    _mm256_storeu_pd(p, s01);
    _mm256_storeu_pd(p.add(4), s23);
    out
}

/// One reverse-sweep step on planar rows `y = [y0.re, y0.im, y1.re, y1.im]` (length `n`):
/// accumulates `H = Σ y · conj(q)` over the recorded rows `q` (columns `lo..lo + w`), then
/// sets `y ← adj · y` on all columns. `n`, `lo` and `w` are multiples of 4.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn reverse_tape(
    y: [&mut [f64]; 4],
    q: [&[f64]; 4],
    lo: usize,
    adj: &[C64; 4],
) -> [C64; 4] {
    let n = y[0].len();
    let w = q[0].len();
    assert!(y.iter().all(|s| s.len() == n) && q.iter().all(|s| s.len() == w));
    assert!(n.is_multiple_of(4) && lo.is_multiple_of(4) && w.is_multiple_of(4) && lo + w <= n);
    // SAFETY: the lengths were just checked.
    reverse_core(
        y.map(<[f64]>::as_mut_ptr),
        n,
        q.map(<[f64]>::as_ptr),
        lo,
        w,
        adj,
    )
}

/// [`reverse_tape`] on raw rows: `y` four rows of `n` doubles, `q` four of `w`, `lo + w ≤ n`,
/// all multiples of 4. Two passes (the block, then the rotation) so neither runs out of the
/// 16 vector registers.
#[inline(always)]
unsafe fn reverse_core(
    y: [*mut f64; 4],
    n: usize,
    q: [*const f64; 4],
    lo: usize,
    w: usize,
    adj: &[C64; 4],
) -> [C64; 4] {
    let [y0r, y0i, y1r, y1i] = y;
    let [q0r, q0i, q1r, q1i] = q;
    let mut re = [_mm256_setzero_pd(); 4];
    let mut im = [_mm256_setzero_pd(); 4];
    let mut o = 0;
    while o < w {
        // SAFETY (caller): o + 4 ≤ w for the recorded rows, and lo + o + 4 ≤ n for y.
        let j = lo + o;
        let yx = [_mm256_loadu_pd(y0r.add(j)), _mm256_loadu_pd(y0i.add(j))];
        let yy = [_mm256_loadu_pd(y1r.add(j)), _mm256_loadu_pd(y1i.add(j))];
        let qx = [_mm256_loadu_pd(q0r.add(o)), _mm256_loadu_pd(q0i.add(o))];
        let qy = [_mm256_loadu_pd(q1r.add(o)), _mm256_loadu_pd(q1i.add(o))];
        for (k, (yv, qv)) in [(yx, qx), (yx, qy), (yy, qx), (yy, qy)]
            .into_iter()
            .enumerate()
        {
            // y · conj(q) = (yr qr + yi qi) + i (yi qr − yr qi)
            re[k] = _mm256_fmadd_pd(yv[0], qv[0], _mm256_fmadd_pd(yv[1], qv[1], re[k]));
            im[k] = _mm256_fmadd_pd(yv[1], qv[0], _mm256_fnmadd_pd(yv[0], qv[1], im[k]));
        }
        o += 4;
    }
    let (a0, a1, a2, a3) = (splat(adj[0]), splat(adj[1]), splat(adj[2]), splat(adj[3]));
    let mut j = 0;
    while j < n {
        // SAFETY (caller): j + 4 ≤ n for the four rows of y.
        let yx = [_mm256_loadu_pd(y0r.add(j)), _mm256_loadu_pd(y0i.add(j))];
        let yy = [_mm256_loadu_pd(y1r.add(j)), _mm256_loadu_pd(y1i.add(j))];
        let ny0 = cmix(a0, a1, yx, yy);
        let ny1 = cmix(a2, a3, yx, yy);
        _mm256_storeu_pd(y0r.add(j), ny0[0]);
        _mm256_storeu_pd(y0i.add(j), ny0[1]);
        _mm256_storeu_pd(y1r.add(j), ny1[0]);
        _mm256_storeu_pd(y1i.add(j), ny1[1]);
        j += 4;
    }
    reduce_block(re, im)
}

/// Row pointers `[m.re, m.im, m1.re, m1.im]` of planes `re`, `im` (rows `stride` apart),
/// offset to column `c`.
#[inline(always)]
unsafe fn row_pair(re: *mut f64, im: *mut f64, stride: usize, m: usize, c: usize) -> [*mut f64; 4] {
    let (a, b) = (m * stride + c, (m + 1) * stride + c);
    [re.add(a), im.add(a), re.add(b), im.add(b)]
}

/// Checks an MZI's step against planes of `rows × stride` and a record of `tape` doubles:
/// its rows exist, its ranges are whole vectors inside the row, the segment inside the
/// sweep range, and its record inside the tape.
#[inline(always)]
fn check_step(st: &Step, rows: usize, stride: usize, tape: usize) {
    let w = st.hi - st.lo;
    assert!(
        st.top + 1 < rows
            && st.a <= st.lo
            && st.lo <= st.hi
            && st.hi <= st.b
            && st.b <= stride
            && (st.a | st.lo | st.hi | st.b).is_multiple_of(4)
            && st.at + 4 * w <= tape,
        "inconsistent mesh step"
    );
}

/// The whole reverse sweep of a mesh (see `Realisation::sweep`): for MZI `k = K−1, …, 0`,
/// [`reverse_tape`] on rows `(top, top+1)` of `y` over columns `a..b`, reading its record
/// at `tape[at..]`; `blocks[k]` receives the 2×2 block and `adj(k)` gives `T_k†`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sweep(
    y: (&mut [f64], &mut [f64]),
    rows: usize,
    stride: usize,
    steps: &[Step],
    adj: impl Fn(usize) -> [C64; 4],
    tape: &[f64],
    blocks: &mut [[C64; 4]],
) {
    let (re, im) = y;
    assert!(re.len() == rows * stride && im.len() == rows * stride);
    assert!(blocks.len() == steps.len());
    let (re, im) = (re.as_mut_ptr(), im.as_mut_ptr());
    for (k, (st, h)) in steps.iter().zip(blocks.iter_mut()).enumerate().rev() {
        check_step(st, rows, stride, tape.len());
        let w = st.hi - st.lo;
        let q = tape.as_ptr().add(st.at);
        // SAFETY: `check_step` puts the rows, both ranges and the record in bounds.
        *h = reverse_core(
            row_pair(re, im, stride, st.top, st.a),
            st.b - st.a,
            [q, q.add(w), q.add(2 * w), q.add(3 * w)],
            st.lo - st.a,
            w,
            &adj(k),
        );
    }
}

/// The whole collapse (see `Realisation::collapse_into`): for MZI `k` in order, rows
/// `(top, top+1)` of the planes become `t(k)` times themselves on columns `lo..hi`; with
/// `tape`, their old values are first written to `tape[at..at + 4(hi − lo)]`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn collapse(
    planes: (&mut [f64], &mut [f64]),
    rows: usize,
    stride: usize,
    steps: &[Step],
    t: impl Fn(usize) -> [C64; 4],
    tape: Option<&mut [MaybeUninit<f64>]>,
) {
    let (re, im) = planes;
    assert!(re.len() == rows * stride && im.len() == rows * stride);
    let (out, len) = match tape {
        Some(s) => (s.as_mut_ptr().cast::<f64>(), s.len()),
        None => (std::ptr::null_mut(), usize::MAX),
    };
    let (re, im) = (re.as_mut_ptr(), im.as_mut_ptr());
    for (k, st) in steps.iter().enumerate() {
        check_step(st, rows, stride, len);
        let rec = if out.is_null() { out } else { out.add(st.at) };
        // SAFETY: `check_step` puts the rows, the segment and the record in bounds.
        rotate_core(
            row_pair(re, im, stride, st.top, st.lo),
            st.hi - st.lo,
            &t(k),
            rec,
        );
    }
}

/// `R` rows × `V` vectors of `out = G X†` at row `r`, column `c`, summing samples
/// `js = (j0, j1)` onto zero (`first`) or onto what `out` holds: see [`outer_grad`].
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a register kernel: pointers and strides, no struct
unsafe fn outer_tile<const R: usize, const V: usize>(
    g: *const f64,
    b: usize,
    xr: *const f64,
    xi: *const f64,
    s: usize,
    or: *mut f64,
    oi: *mut f64,
    (r, c): (usize, usize),
    (j0, j1): (usize, usize),
    first: bool,
) {
    let mut ar = [[_mm256_setzero_pd(); V]; R];
    let mut ai = [[_mm256_setzero_pd(); V]; R];
    if !first {
        for rr in 0..R {
            for v in 0..V {
                let o = (r + rr) * s + c + 4 * v;
                ar[rr][v] = _mm256_loadu_pd(or.add(o));
                ai[rr][v] = _mm256_loadu_pd(oi.add(o));
            }
        }
    }
    for j in j0..j1 {
        let mut xv = [[_mm256_setzero_pd(); 2]; V];
        for (v, x) in xv.iter_mut().enumerate() {
            let o = j * s + c + 4 * v;
            *x = [_mm256_loadu_pd(xr.add(o)), _mm256_loadu_pd(xi.add(o))];
        }
        for rr in 0..R {
            let gp = g.add(2 * ((r + rr) * b + j));
            let (gr, gi) = (_mm256_broadcast_sd(&*gp), _mm256_broadcast_sd(&*gp.add(1)));
            for v in 0..V {
                // g · conj(x) = (gr xr + gi xi) + i (gi xr − gr xi)
                ar[rr][v] = _mm256_fmadd_pd(gr, xv[v][0], _mm256_fmadd_pd(gi, xv[v][1], ar[rr][v]));
                ai[rr][v] =
                    _mm256_fmadd_pd(gi, xv[v][0], _mm256_fnmadd_pd(gr, xv[v][1], ai[rr][v]));
            }
        }
    }
    for rr in 0..R {
        for v in 0..V {
            let o = (r + rr) * s + c + 4 * v;
            _mm256_storeu_pd(or.add(o), ar[rr][v]);
            _mm256_storeu_pd(oi.add(o), ai[rr][v]);
        }
    }
}

/// Samples per pass of [`outer_grad`]: `Xᵀ`'s rows of one pass stay in L2 (128 × 64 ports
/// × 16 bytes = 128 KiB) while every row block of `G` runs over them.
const OUTER_CHUNK: usize = 128;

/// `out = G X†` with `G` row-major `rows × b` complex, `Xᵀ` as planes `xr`, `xi` (`b × s`),
/// and `out` planes `rows × s`; `s` is a multiple of 4. Register tiles of 2 rows × 8
/// columns, over the samples in chunks of [`OUTER_CHUNK`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)] // planes and their shapes
pub(crate) unsafe fn outer_grad(
    g: &[C64],
    rows: usize,
    b: usize,
    xr: &[f64],
    xi: &[f64],
    s: usize,
    or: &mut [f64],
    oi: &mut [f64],
) {
    assert!(g.len() == rows * b && xr.len() == b * s && xi.len() == b * s);
    assert!(or.len() == rows * s && oi.len() == rows * s && s.is_multiple_of(4));
    let gp = g.as_ptr().cast::<f64>();
    let (xr, xi, or, oi) = (xr.as_ptr(), xi.as_ptr(), or.as_mut_ptr(), oi.as_mut_ptr());
    let mut j0 = 0;
    loop {
        let js = (j0, (j0 + OUTER_CHUNK).min(b));
        let first = j0 == 0;
        let mut r = 0;
        while r < rows {
            let two = rows - r >= 2;
            let mut c = 0;
            while c < s {
                let wide = s - c >= 8;
                let at = (r, c);
                // SAFETY: rows r..r+R < rows, columns c..c+4V ≤ s and samples js ⊆ 0..b,
                // by the checks above.
                match (two, wide) {
                    (true, true) => outer_tile::<2, 2>(gp, b, xr, xi, s, or, oi, at, js, first),
                    (true, false) => outer_tile::<2, 1>(gp, b, xr, xi, s, or, oi, at, js, first),
                    (false, true) => outer_tile::<1, 2>(gp, b, xr, xi, s, or, oi, at, js, first),
                    (false, false) => outer_tile::<1, 1>(gp, b, xr, xi, s, or, oi, at, js, first),
                }
                c += if wide { 8 } else { 4 };
            }
            r += if two { 2 } else { 1 };
        }
        j0 = js.1;
        if j0 >= b {
            break;
        }
    }
}

/// Rows `b = [b0.re, b0.im, b1.re, b1.im]` (one length, a multiple of 4) become `t · b`;
/// with `tape` (four times that length), their old values are first copied there, in the
/// same order.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn rotate_record(
    b: [&mut [f64]; 4],
    t: &[C64; 4],
    tape: Option<&mut [MaybeUninit<f64>]>,
) {
    let n = b[0].len();
    assert!(b.iter().all(|s| s.len() == n) && n.is_multiple_of(4));
    let out = match tape {
        Some(s) => {
            assert!(s.len() == 4 * n);
            s.as_mut_ptr().cast::<f64>()
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: the lengths were just checked.
    rotate_core(b.map(<[f64]>::as_mut_ptr), n, t, out);
}

/// [`rotate_record`] on raw rows of `n` doubles (a multiple of 4) and a record of `4n`
/// doubles at `out`, or none if it is null.
#[inline(always)]
unsafe fn rotate_core(b: [*mut f64; 4], n: usize, t: &[C64; 4], out: *mut f64) {
    let [b0r, b0i, b1r, b1i] = b;
    let (t0, t1, t2, t3) = (splat(t[0]), splat(t[1]), splat(t[2]), splat(t[3]));
    let mut j = 0;
    while j < n {
        // SAFETY (caller): j + 4 ≤ n for the four rows, and for each quarter of the record.
        let x = [_mm256_loadu_pd(b0r.add(j)), _mm256_loadu_pd(b0i.add(j))];
        let y = [_mm256_loadu_pd(b1r.add(j)), _mm256_loadu_pd(b1i.add(j))];
        if !out.is_null() {
            _mm256_storeu_pd(out.add(j), x[0]);
            _mm256_storeu_pd(out.add(n + j), x[1]);
            _mm256_storeu_pd(out.add(2 * n + j), y[0]);
            _mm256_storeu_pd(out.add(3 * n + j), y[1]);
        }
        let nx = cmix(t0, t1, x, y);
        let ny = cmix(t2, t3, x, y);
        _mm256_storeu_pd(b0r.add(j), nx[0]);
        _mm256_storeu_pd(b0i.add(j), nx[1]);
        _mm256_storeu_pd(b1r.add(j), ny[0]);
        _mm256_storeu_pd(b1i.add(j), ny[1]);
        j += 4;
    }
}
