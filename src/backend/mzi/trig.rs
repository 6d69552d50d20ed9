//! `sin` and `cos` of many phases at once.
//!
//! Realising a 64-port mesh evaluates about 8 000 sines and cosines; the libm call per value
//! dominated the realisation. This is fdlibm's method (Cody–Waite reduction by π/2 in three
//! 33-bit pieces, then the `__kernel_sin` / `__kernel_cos` minimax polynomials on
//! `[−π/4, π/4]`) written without branches so the loop vectorises: about 1 ulp, checked
//! against `f64::sin_cos` in the tests. Arguments beyond `|x| < 2¹⁹` (or non-finite) fall back
//! to the library call.

// fdlibm's constants (`e_rem_pio2.c`, `k_sin.c`, `k_cos.c`) as published: the decimals
// round to the intended doubles, so the extra digits are kept for checking against the source.
const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
#[allow(clippy::excessive_precision)]
const PIO2_1: f64 = 1.570_796_326_734_125_614_17e0;
#[allow(clippy::excessive_precision)]
const PIO2_2: f64 = 6.077_100_506_303_965_976_60e-11;
#[allow(clippy::excessive_precision)]
const PIO2_3: f64 = 2.022_266_248_711_166_455_80e-21;
#[allow(clippy::excessive_precision)]
const PIO2_3T: f64 = 8.478_427_660_368_899_569_97e-32;
#[allow(clippy::excessive_precision)]
const S: [f64; 6] = [
    -1.666_666_666_666_663_243_48e-1,
    8.333_333_333_322_489_461_24e-3,
    -1.984_126_982_985_794_931_34e-4,
    2.755_731_370_707_006_767_89e-6,
    -2.505_076_025_340_686_341_95e-8,
    1.589_690_995_211_550_102_21e-10,
];
#[allow(clippy::excessive_precision)]
const C: [f64; 6] = [
    4.166_666_666_666_660_190_37e-2,
    -1.388_888_888_887_410_957_49e-3,
    2.480_158_728_947_672_941_78e-5,
    -2.755_731_435_139_066_330_35e-7,
    2.087_572_321_298_174_827_90e-9,
    -1.135_964_755_778_819_482_65e-11,
];
/// Adding then subtracting `1.5 · 2⁵²` rounds to the nearest integer, and leaves that
/// integer in the low mantissa bits (for `|k| < 2⁵¹`).
const ROUNDER: f64 = 6_755_399_441_055_744.0;
const LIMIT: f64 = 524_288.0;

#[inline(always)]
fn sincos_one(x: f64) -> (f64, f64) {
    let shifted = x * TWO_OVER_PI + ROUNDER;
    let k = shifted - ROUNDER;
    let q = shifted.to_bits() & 3;
    // k·PIO2_i is exact for |k| < 2²⁰ (33-bit pieces).
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * (PIO2_3 + PIO2_3T);
    let z = r * r;
    let s = r + r * z * (S[0] + z * (S[1] + z * (S[2] + z * (S[3] + z * (S[4] + z * S[5])))));
    let p = z * (C[0] + z * (C[1] + z * (C[2] + z * (C[3] + z * (C[4] + z * C[5])))));
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let c = w + (((1.0 - w) - hz) + z * p);
    let (s1, c1) = if q & 1 == 1 { (c, s) } else { (s, c) };
    let s2 = if q & 2 == 2 { -s1 } else { s1 };
    let c2 = if (q + 1) & 2 == 2 { -c1 } else { c1 };
    (s2, c2)
}

/// `sin[i], cos[i] = sin x[i], cos x[i]`.
pub(crate) fn sincos(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    let n = x.len();
    let (sin, cos) = (&mut sin[..n], &mut cos[..n]);
    #[cfg(target_arch = "x86_64")]
    if super::kernels::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { sincos_avx2(x, sin, cos) };
        fix_large(x, sin, cos);
        return;
    }
    sincos_loop(x, sin, cos);
    fix_large(x, sin, cos);
}

/// The same loop compiled for 4-lane vectors (results are identical: no contraction).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sincos_avx2(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    sincos_loop(x, sin, cos)
}

#[inline(always)]
fn sincos_loop(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    let n = x.len();
    let (sin, cos) = (&mut sin[..n], &mut cos[..n]);
    for i in 0..n {
        let (s, c) = sincos_one(x[i]);
        sin[i] = s;
        cos[i] = c;
    }
}

fn fix_large(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    let n = x.len();
    for i in 0..n {
        if x[i].is_nan() || x[i].abs() >= LIMIT {
            (sin[i], cos[i]) = x[i].sin_cos();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

    #[test]
    fn matches_libm_to_an_ulp_or_two() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut x: Vec<f64> = (0..20_000).map(|_| rng.random_range(-50.0..50.0)).collect();
        x.extend((0..2000).map(|_| rng.random_range(-1e-3..1e-3)));
        x.extend([
            0.0,
            -0.0,
            PI,
            -PI,
            FRAC_PI_2,
            FRAC_PI_4,
            2.0 * PI,
            1e5,
            4e5,
            1e7,
            -3e9,
        ]);
        x.extend([f64::NAN, f64::INFINITY]);
        let (mut s, mut c) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sincos(&x, &mut s, &mut c);
        let (mut s2, mut c2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sincos_loop(&x, &mut s2, &mut c2);
        fix_large(&x, &mut s2, &mut c2);
        for i in 0..x.len() {
            assert!(s[i].to_bits() == s2[i].to_bits() || s[i].is_nan());
            assert!(c[i].to_bits() == c2[i].to_bits() || c[i].is_nan());
            let (ws, wc) = x[i].sin_cos();
            if !x[i].is_finite() {
                assert!(s[i].is_nan() && c[i].is_nan());
                continue;
            }
            assert!(
                (s[i] - ws).abs() <= 2.3e-16,
                "sin({}) = {} vs {}",
                x[i],
                s[i],
                ws
            );
            assert!(
                (c[i] - wc).abs() <= 2.3e-16,
                "cos({}) = {} vs {}",
                x[i],
                c[i],
                wc
            );
        }
    }
}
