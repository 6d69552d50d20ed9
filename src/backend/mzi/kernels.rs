//! Inner loops: 2×2 row rotations and fused inner products on split real/imaginary planes,
//! and the 3M complex matrix product.
//!
//! Rows are stored as separate `re` and `im` planes so the loops vectorise without shuffles.
//! On x86-64 with AVX2 and FMA (checked at run time) the same code is compiled a second time
//! with those features and explicit fused multiply-adds; elsewhere it runs as plain f64 code.

#[cfg(target_arch = "x86_64")]
use super::avx2;
use super::layout::{padded_width, Step};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use num_complex::Complex64 as C64;

/// A row-major complex matrix split into real and imaginary planes, rows `stride ≥ cols`
/// doubles apart (columns `cols..stride` are padding and stay zero).
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    pub re: Vec<f64>,
    pub im: Vec<f64>,
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl Planes {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::with_stride(rows, cols, cols)
    }

    /// Zeros with rows padded to whole 4-lane vectors, as the mesh's `N×N` buffers are.
    pub fn padded(rows: usize, cols: usize) -> Self {
        Self::with_stride(rows, cols, padded_width(cols))
    }

    fn with_stride(rows: usize, cols: usize, stride: usize) -> Self {
        Planes {
            re: vec![0.0; rows * stride],
            im: vec![0.0; rows * stride],
            rows,
            cols,
            stride,
        }
    }

    pub fn from_complex(a: ArrayView2<C64>) -> Self {
        let mut p = Planes::zeros(a.nrows(), a.ncols());
        p.fill_from(a);
        p
    }

    /// [`from_complex`](Self::from_complex) into padded rows.
    pub fn from_complex_padded(a: ArrayView2<C64>) -> Self {
        let mut p = Planes::padded(a.nrows(), a.ncols());
        p.fill_from(a);
        p
    }

    fn fill_from(&mut self, a: ArrayView2<C64>) {
        for (r, row) in a.outer_iter().enumerate() {
            let o = r * self.stride;
            for ((z, re), im) in row
                .iter()
                .zip(&mut self.re[o..o + self.cols])
                .zip(&mut self.im[o..o + self.cols])
            {
                *re = z.re;
                *im = z.im;
            }
        }
    }

    pub fn to_complex(&self) -> Array2<C64> {
        Array2::from_shape_fn((self.rows, self.cols), |(r, c)| self.get(r, c))
    }

    pub fn get(&self, r: usize, c: usize) -> C64 {
        C64::new(self.re[r * self.stride + c], self.im[r * self.stride + c])
    }

    /// Multiplies row `r` by `z`.
    pub fn scale_row(&mut self, r: usize, z: C64) {
        let s = r * self.stride..r * self.stride + self.cols;
        for (a, b) in self.re[s.clone()].iter_mut().zip(&mut self.im[s]) {
            let (x, y) = (*a, *b);
            *a = z.re * x - z.im * y;
            *b = z.re * y + z.im * x;
        }
    }

    /// Rows `m` and `m + 1`, restricted to columns `lo..hi`, as `(m.re, m.im, m1.re, m1.im)`.
    #[inline]
    fn pair_mut(&mut self, m: usize, lo: usize, hi: usize) -> RowPair<'_> {
        let c = self.stride;
        let (re_a, re_b) = self.re[m * c..(m + 2) * c].split_at_mut(c);
        let (im_a, im_b) = self.im[m * c..(m + 2) * c].split_at_mut(c);
        (
            &mut re_a[lo..hi],
            &mut im_a[lo..hi],
            &mut re_b[lo..hi],
            &mut im_b[lo..hi],
        )
    }

    /// Rows `(m, m+1) ← t · rows(m, m+1)` on columns `lo..hi`; `t` is row-major 2×2.
    pub fn rotate(&mut self, m: usize, t: &[C64; 4], lo: usize, hi: usize) {
        let (ar, ai, br, bi) = self.pair_mut(m, lo, hi);
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { rotate_avx2(t, ar, ai, br, bi) };
            return;
        }
        rotate_kernel::<Plain>(t, ar, ai, br, bi);
    }

    /// Appends rows `m`, `m + 1` on columns `lo..hi` to `tape` as `[m.re, m.im, m1.re, m1.im]`.
    pub fn record(&self, m: usize, lo: usize, hi: usize, tape: &mut Vec<f64>) {
        let c = self.stride;
        for r in [m, m + 1] {
            tape.extend_from_slice(&self.re[r * c + lo..r * c + hi]);
            tape.extend_from_slice(&self.im[r * c + lo..r * c + hi]);
        }
    }

    /// [`rotate`](Self::rotate) on whole 4-lane vectors (`lo`, `hi` multiples of 4), first
    /// appending the rows' old values to `tape` as [`record`](Self::record) does. Both
    /// modes compute the same rotated values.
    #[inline]
    pub fn rotate_block(
        &mut self,
        m: usize,
        t: &[C64; 4],
        lo: usize,
        hi: usize,
        tape: Option<&mut Vec<f64>>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() && lo.is_multiple_of(4) && hi.is_multiple_of(4) {
            let w = hi - lo;
            let (ar, ai, br, bi) = self.pair_mut(m, lo, hi);
            match tape {
                Some(tape) => {
                    tape.reserve(4 * w);
                    let spare = &mut tape.spare_capacity_mut()[..4 * w];
                    // SAFETY: the CPU supports AVX2 and FMA (checked above); the kernel
                    // writes all 4w spare values, so they are initialised for `set_len`.
                    unsafe {
                        avx2::rotate_record([ar, ai, br, bi], t, Some(spare));
                        tape.set_len(tape.len() + 4 * w);
                    }
                }
                // SAFETY: as above.
                None => unsafe { avx2::rotate_record([ar, ai, br, bi], t, None) },
            }
            return;
        }
        if let Some(tape) = tape {
            self.record(m, lo, hi, tape);
        }
        self.rotate(m, t, lo, hi);
    }
}

type RowPair<'a> = (&'a mut [f64], &'a mut [f64], &'a mut [f64], &'a mut [f64]);

/// One step of the reverse sweep for the MZI on rows `(m, m+1)`, given its recorded input
/// rows `q = [q0.re, q0.im, q1.re, q1.im]` on columns `lo..lo + q[0].len()` (zero elsewhere):
/// returns `H = Y[m..m+2, ·] · Q†` (row-major 2×2), then sets `Y[m..m+2, cols] ← adj · Y[..]`
/// on the columns `cols`, which must contain the segment. One pass over the rows;
/// vectorised when all these bounds are whole 4-lane vectors.
#[inline]
pub(crate) fn reverse_tape_step(
    y: &mut Planes,
    m: usize,
    q: [&[f64]; 4],
    lo: usize,
    cols: (usize, usize),
    adj: &[C64; 4],
) -> [C64; 4] {
    let (a, b) = cols;
    let (yr, yi, ybr, ybi) = y.pair_mut(m, a, b);
    let lo = lo - a;
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma()
        && (b - a).is_multiple_of(4)
        && lo.is_multiple_of(4)
        && q[0].len().is_multiple_of(4)
    {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); lengths are asserted
        // inside.
        return unsafe { avx2::reverse_tape([yr, yi, ybr, ybi], q, lo, adj) };
    }
    reverse_tape_portable([yr, yi, ybr, ybi], q, lo, adj)
}

pub(crate) fn reverse_tape_portable(
    y: [&mut [f64]; 4],
    q: [&[f64]; 4],
    lo: usize,
    adj: &[C64; 4],
) -> [C64; 4] {
    let [y0r, y0i, y1r, y1i] = y;
    let w = q[0].len();
    let mut h = [C64::new(0.0, 0.0); 4];
    for j in 0..y0r.len() {
        let u = C64::new(y0r[j], y0i[j]);
        let v = C64::new(y1r[j], y1i[j]);
        if (lo..lo + w).contains(&j) {
            let o = j - lo;
            let q0 = C64::new(q[0][o], -q[1][o]);
            let q1 = C64::new(q[2][o], -q[3][o]);
            h[0] += u * q0;
            h[1] += u * q1;
            h[2] += v * q0;
            h[3] += v * q1;
        }
        let (nu, nv) = (adj[0] * u + adj[1] * v, adj[2] * u + adj[3] * v);
        (y0r[j], y0i[j], y1r[j], y1i[j]) = (nu.re, nu.im, nv.re, nv.im);
    }
    h
}

/// The collapse's sweep over all MZIs (see `Realisation::collapse_into`): rows
/// `(top, top+1)` of `b` become `t(k)` times themselves on the segment `lo..hi`, MZI by MZI;
/// with `tape` (emptied first), their old values are recorded there, segment after segment.
/// One AVX2 loop over the whole mesh when the CPU has it.
pub(crate) fn collapse_steps(
    b: &mut Planes,
    steps: &[Step],
    t: impl Fn(usize) -> [C64; 4],
    tape: Option<&mut Vec<f64>>,
) {
    // The records tile the tape: each starts where the previous one ends.
    let mut len = 0;
    for st in steps {
        assert!(st.at == len && st.lo <= st.hi, "inconsistent mesh steps");
        len += 4 * (st.hi - st.lo);
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() && b.stride.is_multiple_of(4) {
        let (rows, stride) = (b.rows, b.stride);
        let planes = (&mut b.re[..], &mut b.im[..]);
        match tape {
            Some(tape) => {
                tape.clear();
                tape.reserve(len);
                // SAFETY: the CPU supports AVX2 and FMA (checked above); the kernel checks
                // every step against the planes and the reserved length, and the records
                // tile all `len` values (checked above), so they are initialised for
                // `set_len`.
                unsafe {
                    avx2::collapse(
                        planes,
                        rows,
                        stride,
                        steps,
                        t,
                        Some(&mut tape.spare_capacity_mut()[..len]),
                    );
                    tape.set_len(len);
                }
            }
            // SAFETY: as above.
            None => unsafe { avx2::collapse(planes, rows, stride, steps, t, None) },
        }
        return;
    }
    let mut tape = tape;
    if let Some(tape) = tape.as_deref_mut() {
        tape.clear();
        tape.reserve(len);
    }
    for (k, st) in steps.iter().enumerate() {
        b.rotate_block(st.top, &t(k), st.lo, st.hi, tape.as_deref_mut());
    }
}

/// The reverse sweep over all MZIs, `k = K−1, …, 0` (see `Realisation::sweep`): the 2×2
/// block of MZI `k` into `blocks[k]`, then its rows of `y` moved past it (`adj(k)` = `T_k†`)
/// on its sweep range. One AVX2 loop over the whole mesh when the CPU has it.
pub(crate) fn sweep_steps(
    y: &mut Planes,
    steps: &[Step],
    adj: impl Fn(usize) -> [C64; 4],
    tape: &[f64],
    blocks: &mut [[C64; 4]],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() && y.stride.is_multiple_of(4) {
        let (rows, stride) = (y.rows, y.stride);
        // SAFETY: the CPU supports AVX2 and FMA (checked just above); the kernel checks
        // every step against the planes and the tape.
        unsafe {
            avx2::sweep(
                (&mut y.re, &mut y.im),
                rows,
                stride,
                steps,
                adj,
                tape,
                blocks,
            )
        };
        return;
    }
    for (k, (st, h)) in steps.iter().zip(blocks.iter_mut()).enumerate().rev() {
        let w = st.hi - st.lo;
        let (q0, rest) = tape[st.at..st.at + 4 * w].split_at(w);
        let (q1, rest) = rest.split_at(w);
        let (q2, q3) = rest.split_at(w);
        *h = reverse_tape_step(y, st.top, [q0, q1, q2, q3], st.lo, (st.a, st.b), &adj(k));
    }
}

/// `out ← G X†` into padded planes (`G`: `rows × b`, `X`: `cols × b`, `out`: `rows × cols`):
/// the gradient of a real loss of `Y = M X` with respect to `M`, given `G = G_Y`.
pub(crate) fn outer_grad(g: ArrayView2<C64>, x: ArrayView2<C64>, out: &mut Planes) {
    let (rows, b) = g.dim();
    let cols = x.nrows();
    debug_assert!(x.ncols() == b && out.rows == rows && out.cols == cols);
    let s = out.stride;
    // Xᵀ as planes, b × stride (padding zero), so a row of the output is a vector sweep.
    let mut xt = Planes::with_stride(b, cols, s);
    let x = x.as_standard_layout();
    if let Some(xs) = x.as_slice() {
        for (j, (re, im)) in xt
            .re
            .chunks_exact_mut(s)
            .zip(xt.im.chunks_exact_mut(s))
            .enumerate()
        {
            for (c, (re, im)) in re[..cols].iter_mut().zip(&mut im[..cols]).enumerate() {
                let z = xs[c * b + j];
                (*re, *im) = (z.re, z.im);
            }
        }
    }
    let g = g.as_standard_layout();
    let gs = g.as_slice().unwrap_or(&[]);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() && s.is_multiple_of(4) && gs.len() == rows * b {
        // SAFETY: the CPU supports AVX2 and FMA; `gs` is rows × b, `xt` b × s, `out` rows × s.
        unsafe { avx2::outer_grad(gs, rows, b, &xt.re, &xt.im, s, &mut out.re, &mut out.im) };
        return;
    }
    for r in 0..rows {
        let (or, oi) = (
            &mut out.re[r * s..(r + 1) * s],
            &mut out.im[r * s..(r + 1) * s],
        );
        or.fill(0.0);
        oi.fill(0.0);
        for (j, gz) in g.row(r).iter().enumerate() {
            let (xr, xi) = (&xt.re[j * s..(j + 1) * s], &xt.im[j * s..(j + 1) * s]);
            for c in 0..s {
                // g · conj(x)
                or[c] += gz.re * xr[c] + gz.im * xi[c];
                oi[c] += gz.im * xr[c] - gz.re * xi[c];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(test)]
    if PORTABLE.with(std::cell::Cell::get) {
        return false;
    }
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(all(test, target_arch = "x86_64"))]
thread_local! {
    /// Set by a test to run this thread on the portable kernels.
    pub(crate) static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `a·b + c`, fused or not.
trait MulAdd {
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
}

struct Plain;
impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

#[cfg(target_arch = "x86_64")]
struct Fused;
#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

#[inline(always)]
fn rotate_kernel<F: MulAdd>(
    t: &[C64; 4],
    ar: &mut [f64],
    ai: &mut [f64],
    br: &mut [f64],
    bi: &mut [f64],
) {
    let n = ar.len();
    let (ai, br, bi) = (&mut ai[..n], &mut br[..n], &mut bi[..n]);
    let [p, q, r, s] = *t;
    for j in 0..n {
        let (xr, xi, yr, yi) = (ar[j], ai[j], br[j], bi[j]);
        // (p x + q y, r x + s y), complex.
        ar[j] = F::mul_add(
            p.re,
            xr,
            F::mul_add(-p.im, xi, F::mul_add(q.re, yr, -q.im * yi)),
        );
        ai[j] = F::mul_add(
            p.re,
            xi,
            F::mul_add(p.im, xr, F::mul_add(q.re, yi, q.im * yr)),
        );
        br[j] = F::mul_add(
            r.re,
            xr,
            F::mul_add(-r.im, xi, F::mul_add(s.re, yr, -s.im * yi)),
        );
        bi[j] = F::mul_add(
            r.re,
            xi,
            F::mul_add(r.im, xr, F::mul_add(s.re, yi, s.im * yr)),
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rotate_avx2(
    t: &[C64; 4],
    ar: &mut [f64],
    ai: &mut [f64],
    br: &mut [f64],
    bi: &mut [f64],
) {
    rotate_kernel::<Fused>(t, ar, ai, br, bi)
}

/// One real factor of a 3M product: a real matrix view and a sign it enters with.
pub(crate) struct Signed<'a> {
    pub m: ArrayView2<'a, f64>,
    pub sign: f64,
}

/// `Y = A X` for complex `A = ar + i·ai`, `X = xr + i·xi` with three real products
/// (the 3M method): `T1 = ar xr`, `T2 = ai xi`, `T3 = (ar + ai)(xr + xi)`,
/// `Re Y = T1 − T2`, `Im Y = T3 − T1 − T2`. `a_sum` must equal `ar + ai` and `x_sum`
/// `xr + xi` (with the signs applied). 25 % fewer flops than four real products; the extra
/// rounding is a few ulps of `‖A‖‖X‖`.
pub(crate) fn gemm3m(
    ar: ArrayView2<f64>,
    ai: Signed<'_>,
    a_sum: ArrayView2<f64>,
    xr: ArrayView2<f64>,
    xi: Signed<'_>,
    x_sum: ArrayView2<f64>,
    y: ArrayViewMut2<C64>,
) {
    let mut y = y;
    let mut t2 = Array2::<f64>::zeros(y.dim());
    {
        let parts = y.view_mut().split_complex();
        let (mut yr, mut yi) = (parts.re, parts.im);
        general_mat_mul(1.0, &ar, &xr, 0.0, &mut yr);
        general_mat_mul(1.0, &a_sum, &x_sum, 0.0, &mut yi);
    }
    general_mat_mul(ai.sign * xi.sign, &ai.m, &xi.m, 0.0, &mut t2);
    Zip::from(&mut y).and(&t2).for_each(|y, &t2| {
        let t1 = y.re;
        *y = C64::new(t1 - t2, y.im - t1 - t2);
    });
}

/// A fixed complex matrix (or its conjugate transpose) laid out for `Y = A X`: when the CPU
/// has AVX2 and FMA, packed in two-row blocks for the fused 3M kernel; otherwise empty, and
/// the product runs on the matrix itself.
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    rows: usize,
    cols: usize,
    /// Whether this is the conjugate transpose of the matrix passed to `apply_into`.
    adjoint: bool,
    /// Empty when the portable path is used.
    blocks: Vec<f64>,
}

impl Packed {
    /// `A` (`adjoint = false`) or `A†` of `a`.
    pub fn new(a: ArrayView2<C64>, adjoint: bool) -> Self {
        if adjoint {
            Self::from_fn(a.ncols(), a.nrows(), true, |i, k| a[[k, i]].conj())
        } else {
            Self::from_fn(a.nrows(), a.ncols(), false, |i, k| a[[i, k]])
        }
    }

    /// The `rows × cols` matrix with entries `at(i, k)`.
    pub fn from_fn(
        rows: usize,
        cols: usize,
        adjoint: bool,
        at: impl Fn(usize, usize) -> C64,
    ) -> Self {
        Self::from_fn_in(rows, cols, adjoint, at, Vec::new())
    }

    /// [`from_fn`](Self::from_fn) into the allocation of `buf` (its contents are ignored).
    pub fn from_fn_in(
        rows: usize,
        cols: usize,
        adjoint: bool,
        at: impl Fn(usize, usize) -> C64,
        buf: Vec<f64>,
    ) -> Self {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            let mut v = buf;
            v.clear();
            v.reserve(rows.div_ceil(2) * cols * avx2::PACK);
            let zero = C64::new(0.0, 0.0);
            for i in (0..rows).step_by(2) {
                for k in 0..cols {
                    // Rows i and i + 1 (zero past the end), as `avx2::PACK` lays them out.
                    let (a, b) = (at(i, k), if i + 1 < rows { at(i + 1, k) } else { zero });
                    v.extend_from_slice(&[a.re, b.re, a.im, b.im, a.re + a.im, b.re + b.im]);
                }
            }
            return Packed {
                rows,
                cols,
                adjoint,
                blocks: v,
            };
        }
        let _ = (at, buf);
        Packed {
            rows,
            cols,
            adjoint,
            blocks: Vec::new(),
        }
    }

    /// The packing's allocation, for reuse.
    pub fn into_blocks(self) -> Vec<f64> {
        self.blocks
    }

    /// `y ← A x` (or `A† x`) with `a` giving the matrix this was made from (only the
    /// portable path calls it); shapes are checked by the caller (`x`: cols × b, `y`:
    /// rows × b).
    pub fn apply_into<'m>(
        &self,
        a: impl FnOnce() -> ArrayView2<'m, C64>,
        x: ArrayView2<C64>,
        mut y: ArrayViewMut2<C64>,
    ) {
        let (rows, cols) = (self.rows, self.cols);
        let b = x.ncols();
        if rows == 0 || b == 0 {
            return;
        }
        if cols == 0 {
            y.fill(C64::new(0.0, 0.0));
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if !self.blocks.is_empty() {
            let x = x.as_standard_layout();
            if let (Some(xs), Some(ys)) = (x.as_slice(), y.as_slice_mut()) {
                // SAFETY: blocks exist only when AVX2 and FMA were detected; they pack a
                // rows × cols matrix, `xs` holds cols × b values and `ys` rows × b.
                unsafe { avx2::gemm_3m(&self.blocks, rows, cols, xs, b, ys.as_mut_ptr().cast()) };
                return;
            }
            let mut tmp = Array2::<C64>::zeros((rows, b));
            self.apply_into(a, x.view(), tmp.view_mut());
            y.assign(&tmp);
            return;
        }
        self.apply_portable(a(), x, y);
    }

    /// `A x` as a new array when the fused kernel is available (writing every entry of
    /// fresh memory, so nothing is zeroed first); `None` on the portable path. `x` must have
    /// `cols` rows.
    pub fn apply_new(&self, x: ArrayView2<C64>) -> Option<Array2<C64>> {
        #[cfg(target_arch = "x86_64")]
        if !self.blocks.is_empty() && self.rows > 0 && self.cols > 0 {
            let b = x.ncols();
            let x = x.as_standard_layout();
            let xs = x.as_slice()?;
            let mut out = Vec::<C64>::with_capacity(self.rows * b);
            // SAFETY: blocks exist only when AVX2 and FMA were detected; they pack a
            // rows × cols matrix, `xs` holds cols × b values, and the kernel writes all
            // rows × b outputs to the reserved capacity before `set_len`.
            unsafe {
                if b > 0 {
                    let y = out.spare_capacity_mut().as_mut_ptr().cast();
                    avx2::gemm_3m(&self.blocks, self.rows, self.cols, xs, b, y);
                }
                out.set_len(self.rows * b);
            }
            return Array2::from_shape_vec((self.rows, b), out).ok();
        }
        let _ = x;
        None
    }

    /// `y ← A x` through three matrixmultiply dgemm calls on strided views.
    fn apply_portable(&self, a: ArrayView2<C64>, x: ArrayView2<C64>, y: ArrayViewMut2<C64>) {
        let a = if self.adjoint {
            a.t().mapv(|z| z.conj())
        } else {
            a.to_owned()
        };
        let re = a.mapv(|z| z.re);
        let im = a.mapv(|z| z.im);
        let sum = &re + &im;
        let parts = x.split_complex();
        gemm3m(
            re.view(),
            Signed {
                m: im.view(),
                sign: 1.0,
            },
            sum.view(),
            parts.re,
            Signed {
                m: parts.im,
                sign: 1.0,
            },
            plane_sum(x, 1.0).view(),
            y,
        );
    }
}

/// `x_sum = xr ± xi` of a complex view, as a contiguous real matrix.
pub(crate) fn plane_sum(x: ArrayView2<C64>, sign: f64) -> Array2<f64> {
    x.mapv(|z| z.re + sign * z.im)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ShapeBuilder;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<C64> {
        Array2::from_shape_fn((rows, cols), |_| {
            C64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0))
        })
    }

    #[test]
    fn rotate_matches_complex_arithmetic_on_both_paths() {
        let mut rng = StdRng::seed_from_u64(2);
        let a = random(3, 13, &mut rng);
        let t = [
            C64::new(0.3, -0.2),
            C64::new(-0.7, 0.1),
            C64::new(0.05, 0.9),
            C64::new(0.4, 0.4),
        ];
        let mut p = Planes::from_complex(a.view());
        p.rotate(1, &t, 2, 11);
        let mut q = Planes::from_complex(a.view());
        {
            let (ar, ai, br, bi) = q.pair_mut(1, 2, 11);
            rotate_kernel::<Plain>(&t, ar, ai, br, bi);
        }
        for j in 0..13 {
            let (x, y) = (a[[1, j]], a[[2, j]]);
            let (ex, ey) = if (2..11).contains(&j) {
                (t[0] * x + t[1] * y, t[2] * x + t[3] * y)
            } else {
                (x, y)
            };
            assert!((p.get(1, j) - ex).norm() < 1e-15);
            assert!((p.get(2, j) - ey).norm() < 1e-15);
            assert!((q.get(1, j) - ex).norm() < 1e-15);
            assert_eq!(p.get(0, j), a[[0, j]]);
        }
    }

    /// `H = Y[m..m+2] Q†` and `adj · Y[m..m+2]` by plain complex arithmetic.
    fn reverse_naive(
        y: &Array2<C64>,
        q: &Array2<C64>,
        m: usize,
        adj: &[C64; 4],
    ) -> ([C64; 4], Array2<C64>) {
        let mut h = [C64::new(0.0, 0.0); 4];
        for r in 0..2 {
            for c in 0..2 {
                h[2 * r + c] = (0..y.ncols())
                    .map(|j| y[[m + r, j]] * q[[c, j]].conj())
                    .sum();
            }
        }
        let mut out = y.clone();
        for j in 0..y.ncols() {
            let (u, v) = (y[[m, j]], y[[m + 1, j]]);
            out[[m, j]] = adj[0] * u + adj[1] * v;
            out[[m + 1, j]] = adj[2] * u + adj[3] * v;
        }
        (h, out)
    }

    #[test]
    fn reverse_tape_step_matches_complex_arithmetic_on_both_paths() {
        let mut rng = StdRng::seed_from_u64(5);
        let coeffs = random(1, 4, &mut rng);
        let adj = [
            coeffs[[0, 0]],
            coeffs[[0, 1]],
            coeffs[[0, 2]],
            coeffs[[0, 3]],
        ];
        // (columns, segment lo, segment hi): padded and ragged strides, full and partial
        // segments; the recorded rows are zero outside the segment.
        for (cols, lo, hi) in [(16, 0, 16), (16, 4, 12), (12, 8, 12), (7, 2, 5), (9, 0, 0)] {
            let y0 = random(5, cols, &mut rng);
            let mut q = random(2, cols, &mut rng);
            for j in (0..cols).filter(|j| !(lo..hi).contains(j)) {
                q[[0, j]] = C64::new(0.0, 0.0);
                q[[1, j]] = C64::new(0.0, 0.0);
            }
            let (h_want, y_want) = reverse_naive(&y0, &q, 2, &adj);
            let mut tape = Vec::new();
            Planes::from_complex(q.view()).record(0, lo, hi, &mut tape);
            let w = hi - lo;
            let seg = [
                &tape[..w],
                &tape[w..2 * w],
                &tape[2 * w..3 * w],
                &tape[3 * w..],
            ];
            let mut fast = Planes::from_complex(y0.view());
            let h_fast = reverse_tape_step(&mut fast, 2, seg, lo, (0, cols), &adj);
            let mut plain = Planes::from_complex(y0.view());
            let (a, b, c, d) = plain.pair_mut(2, 0, cols);
            let h_plain = reverse_tape_portable([a, b, c, d], seg, lo, &adj);
            for (h, y) in [(h_fast, &fast), (h_plain, &plain)] {
                for k in 0..4 {
                    assert!((h[k] - h_want[k]).norm() < 1e-13, "{cols} {lo} {hi}");
                }
                assert!(
                    y.to_complex()
                        .iter()
                        .zip(&y_want)
                        .all(|(u, v)| (u - v).norm() < 1e-14),
                    "{cols} {lo} {hi}"
                );
            }
        }
    }

    #[test]
    fn outer_grad_matches_the_complex_product_on_padded_rows() {
        let mut rng = StdRng::seed_from_u64(4);
        for (rows, cols, b) in [(16, 16, 32), (10, 10, 7), (3, 5, 1), (4, 9, 0), (5, 8, 300)] {
            let g = random(rows, b, &mut rng);
            let x = random(cols, b, &mut rng);
            let want = g.dot(&x.t().mapv(|z| z.conj()));
            let mut out = Planes::padded(rows, cols);
            out.re.fill(7.0); // stale contents are overwritten
            outer_grad(g.view(), x.view(), &mut out);
            let got = out.to_complex();
            for (u, v) in got.iter().zip(&want) {
                assert!((u - v).norm() < 1e-13, "{rows} {cols} {b}");
            }
            for r in 0..rows {
                for c in cols..out.stride {
                    assert_eq!(out.get(r, c), C64::new(0.0, 0.0));
                }
            }
            // Column-major inputs give the same result.
            let mut out2 = Planes::padded(rows, cols);
            let (gf, xf) = (
                g.t().as_standard_layout().t().to_owned(),
                x.t().as_standard_layout().t().to_owned(),
            );
            outer_grad(gf.view(), xf.view(), &mut out2);
            assert_eq!(out2.re, out.re);
        }
    }

    #[test]
    fn packed_product_matches_on_both_paths_for_ragged_shapes() {
        let mut rng = StdRng::seed_from_u64(8);
        for &(m, k, b) in &[(1, 1, 1), (5, 3, 9), (4, 7, 8), (7, 7, 17), (2, 5, 0)] {
            let a = random(m, k, &mut rng);
            let x = random(k, b, &mut rng);
            let p = Packed::new(a.view(), false);
            let want = a.dot(&x);
            let run = |x: ArrayView2<C64>, portable: bool| {
                let mut y = Array2::<C64>::from_elem((m, x.ncols()), C64::new(9.0, 9.0));
                if portable {
                    p.apply_portable(a.view(), x, y.view_mut());
                } else {
                    p.apply_into(|| a.view(), x, y.view_mut());
                }
                y
            };
            let mut fortran = Array2::<C64>::from_elem((m, b).f(), C64::new(9.0, 9.0));
            p.apply_into(|| a.view(), x.view(), fortran.view_mut());
            for y in [run(x.view(), false), run(x.view(), true), fortran] {
                assert_eq!(y.dim(), (m, b));
                for (u, v) in y.iter().zip(want.iter()) {
                    assert!((u - v).norm() < 1e-14);
                }
            }
            // A non-contiguous input takes the copying route.
            let wide = random(k, 2 * b, &mut rng);
            let strided = wide.slice(ndarray::s![.., ..;2]);
            let y = run(strided, false);
            let want = a.dot(&strided);
            for (u, v) in y.iter().zip(want.iter()) {
                assert!((u - v).norm() < 1e-14);
            }
        }
    }

    #[test]
    fn gemm3m_matches_complex_product_with_signs() {
        let mut rng = StdRng::seed_from_u64(6);
        let a = random(5, 4, &mut rng);
        let x = random(4, 9, &mut rng);
        for (sa, sx) in [(1.0, 1.0), (-1.0, 1.0), (1.0, -1.0)] {
            // A' = ar + i·sa·ai, X' = xr + i·sx·xi.
            let ap = a.mapv(|z| C64::new(z.re, sa * z.im));
            let xp = x.mapv(|z| C64::new(z.re, sx * z.im));
            let (ar, ai) = (a.mapv(|z| z.re), a.mapv(|z| z.im));
            let (xr, xi) = (x.mapv(|z| z.re), x.mapv(|z| z.im));
            let mut y = Array2::<C64>::zeros((5, 9));
            gemm3m(
                ar.view(),
                Signed {
                    m: ai.view(),
                    sign: sa,
                },
                plane_sum(a.view(), sa).view(),
                xr.view(),
                Signed {
                    m: xi.view(),
                    sign: sx,
                },
                plane_sum(x.view(), sx).view(),
                y.view_mut(),
            );
            let e = ap.dot(&xp);
            for (u, v) in y.iter().zip(e.iter()) {
                assert!((u - v).norm() < 1e-14);
            }
        }
    }
}
