//! AVX2 + FMA inner loops (x86-64 only, selected at run time by `kernels`).
//!
//! Every function here is `unsafe` because it must only run on a CPU with AVX2 and FMA;
//! callers check that with `is_x86_feature_detected!`. Memory accesses go through slices
//! whose lengths are asserted on entry, or through pointers whose extents are stated in the
//! SAFETY comments.

use num_complex::Complex64 as C64;
use std::arch::x86_64::*;

/// Horizontal sum of the four lanes.
#[inline(always)]
unsafe fn hsum(v: __m256d) -> f64 {
    let mut a = [0.0f64; 4];
    _mm256_storeu_pd(a.as_mut_ptr(), v);
    (a[0] + a[1]) + (a[2] + a[3])
}

/// The 2×2 block `H[r][c] = Σ_j y_r[j] · conj(b_c[j])` from planar rows
/// `ys = [y0.re, y0.im, y1.re, y1.im]`, `bs` likewise, all of one length.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn cross_block(ys: [&[f64]; 4], bs: [&[f64]; 4]) -> [C64; 4] {
    let n = ys[0].len();
    assert!(ys.iter().chain(bs.iter()).all(|s| s.len() == n));
    let [y0r, y0i, y1r, y1i] = ys.map(<[f64]>::as_ptr);
    let [b0r, b0i, b1r, b1i] = bs.map(<[f64]>::as_ptr);
    let mut re = [_mm256_setzero_pd(); 4];
    let mut im = [_mm256_setzero_pd(); 4];
    let full = n / 4 * 4;
    let mut j = 0;
    while j < full {
        // SAFETY: j + 4 ≤ n, and every slice has n elements.
        let (ar, ai) = (_mm256_loadu_pd(y0r.add(j)), _mm256_loadu_pd(y0i.add(j)));
        let (cr, ci) = (_mm256_loadu_pd(y1r.add(j)), _mm256_loadu_pd(y1i.add(j)));
        let (pr, pi) = (_mm256_loadu_pd(b0r.add(j)), _mm256_loadu_pd(b0i.add(j)));
        let (qr, qi) = (_mm256_loadu_pd(b1r.add(j)), _mm256_loadu_pd(b1i.add(j)));
        // y · conj(b) = (yr br + yi bi) + i (yi br − yr bi)
        for (k, (yr, yi, br, bi)) in [
            (ar, ai, pr, pi),
            (ar, ai, qr, qi),
            (cr, ci, pr, pi),
            (cr, ci, qr, qi),
        ]
        .into_iter()
        .enumerate()
        {
            re[k] = _mm256_fmadd_pd(yr, br, _mm256_fmadd_pd(yi, bi, re[k]));
            im[k] = _mm256_fmadd_pd(yi, br, _mm256_fnmadd_pd(yr, bi, im[k]));
        }
        j += 4;
    }
    let mut out = [C64::new(0.0, 0.0); 4];
    for k in 0..4 {
        out[k] = C64::new(hsum(re[k]), hsum(im[k]));
    }
    for j in full..n {
        let y0 = C64::new(ys[0][j], ys[1][j]);
        let y1 = C64::new(ys[2][j], ys[3][j]);
        let b0 = C64::new(bs[0][j], -bs[1][j]);
        let b1 = C64::new(bs[2][j], -bs[3][j]);
        out[0] += y0 * b0;
        out[1] += y0 * b1;
        out[2] += y1 * b0;
        out[3] += y1 * b1;
    }
    out
}

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
    let mut panel = vec![0.0f64; 3 * k * TILE];
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

/// The fused part of one reverse step on columns where both buffers are live: rows
/// `b = [b0.re, b0.im, b1.re, b1.im]` become `inv · b`, the block `Σ y · conj(new b)` is
/// accumulated, and rows `y` become `adj · y`. All eight slices have one length.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn reverse_fused(
    b: [&mut [f64]; 4],
    y: [&mut [f64]; 4],
    inv: &[C64; 4],
    adj: &[C64; 4],
) -> [C64; 4] {
    let n = b[0].len();
    assert!(b.iter().chain(y.iter()).all(|s| s.len() == n));
    let [b0r, b0i, b1r, b1i] = b.map(<[f64]>::as_mut_ptr);
    let [y0r, y0i, y1r, y1i] = y.map(<[f64]>::as_mut_ptr);
    let (i0, i1, i2, i3) = (splat(inv[0]), splat(inv[1]), splat(inv[2]), splat(inv[3]));
    let (a0, a1, a2, a3) = (splat(adj[0]), splat(adj[1]), splat(adj[2]), splat(adj[3]));
    let mut re = [_mm256_setzero_pd(); 4];
    let mut im = [_mm256_setzero_pd(); 4];
    let full = n / 4 * 4;
    let mut j = 0;
    while j < full {
        // SAFETY: j + 4 ≤ n for all eight rows.
        let bx = [_mm256_loadu_pd(b0r.add(j)), _mm256_loadu_pd(b0i.add(j))];
        let by = [_mm256_loadu_pd(b1r.add(j)), _mm256_loadu_pd(b1i.add(j))];
        let nb0 = cmix(i0, i1, bx, by);
        let nb1 = cmix(i2, i3, bx, by);
        _mm256_storeu_pd(b0r.add(j), nb0[0]);
        _mm256_storeu_pd(b0i.add(j), nb0[1]);
        _mm256_storeu_pd(b1r.add(j), nb1[0]);
        _mm256_storeu_pd(b1i.add(j), nb1[1]);
        let yx = [_mm256_loadu_pd(y0r.add(j)), _mm256_loadu_pd(y0i.add(j))];
        let yy = [_mm256_loadu_pd(y1r.add(j)), _mm256_loadu_pd(y1i.add(j))];
        for (k, (yv, bv)) in [(yx, nb0), (yx, nb1), (yy, nb0), (yy, nb1)]
            .into_iter()
            .enumerate()
        {
            re[k] = _mm256_fmadd_pd(yv[0], bv[0], _mm256_fmadd_pd(yv[1], bv[1], re[k]));
            im[k] = _mm256_fmadd_pd(yv[1], bv[0], _mm256_fnmadd_pd(yv[0], bv[1], im[k]));
        }
        let ny0 = cmix(a0, a1, yx, yy);
        let ny1 = cmix(a2, a3, yx, yy);
        _mm256_storeu_pd(y0r.add(j), ny0[0]);
        _mm256_storeu_pd(y0i.add(j), ny0[1]);
        _mm256_storeu_pd(y1r.add(j), ny1[0]);
        _mm256_storeu_pd(y1i.add(j), ny1[1]);
        j += 4;
    }
    let mut h = [C64::new(0.0, 0.0); 4];
    for k in 0..4 {
        h[k] = C64::new(hsum(re[k]), hsum(im[k]));
    }
    for j in full..n {
        let (x, z) = (
            C64::new(*b0r.add(j), *b0i.add(j)),
            C64::new(*b1r.add(j), *b1i.add(j)),
        );
        let (nb0, nb1) = (inv[0] * x + inv[1] * z, inv[2] * x + inv[3] * z);
        (*b0r.add(j), *b0i.add(j), *b1r.add(j), *b1i.add(j)) = (nb0.re, nb0.im, nb1.re, nb1.im);
        let (u, v) = (
            C64::new(*y0r.add(j), *y0i.add(j)),
            C64::new(*y1r.add(j), *y1i.add(j)),
        );
        h[0] += u * nb0.conj();
        h[1] += u * nb1.conj();
        h[2] += v * nb0.conj();
        h[3] += v * nb1.conj();
        let (nu, nv) = (adj[0] * u + adj[1] * v, adj[2] * u + adj[3] * v);
        (*y0r.add(j), *y0i.add(j), *y1r.add(j), *y1i.add(j)) = (nu.re, nu.im, nv.re, nv.im);
    }
    h
}
