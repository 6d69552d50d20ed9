//! Number formats of digital hardware, emulated in f64: values are rounded to what the
//! format can hold, arithmetic then runs in f64 (an fp32/fp16 accumulator is wider than its
//! storage on real hardware too). Gradients pass the rounding straight through.

use crate::check::model::DType;

/// Largest finite binary16 value.
const F16_MAX: f64 = 65504.0;

/// Rounds to the nearest IEEE 754 binary16 value (ties to even), subnormals included.
/// Values beyond ±65504 saturate there instead of becoming infinite: a saturating
/// conversion keeps one outlier from turning a whole training run into NaNs.
pub fn round_f16(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let a = x.abs();
    if a >= F16_MAX {
        return F16_MAX.copysign(x);
    }
    // Unbiased binary exponent of |x| (|x| ≥ 2^-1022 here or it rounds to 0 below anyway).
    let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    // 10 fraction bits for normals (e ≥ −14); a fixed quantum 2^-24 for subnormals.
    let q = f64::powi(2.0, e.max(-14) - 10);
    let r = (a / q).round_ties_even() * q;
    r.min(F16_MAX).copysign(x)
}

/// Rounds to the nearest f32.
pub fn round_f32(x: f64) -> f64 {
    x as f32 as f64
}

/// Symmetric per-tensor int8 quantisation: scale `max|x| / 127`, levels −127..=127.
pub fn quantise_int8(xs: &mut [f64]) {
    let m = xs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if m == 0.0 || !m.is_finite() {
        return;
    }
    let s = m / 127.0;
    for v in xs {
        *v = (*v / s).round().clamp(-127.0, 127.0) * s;
    }
}

/// Rounds a tensor in place to `dtype` (int8 with one scale over the whole slice).
pub fn quantise(dtype: DType, xs: &mut [f64]) {
    match dtype {
        DType::Fp32 => xs.iter_mut().for_each(|v| *v = round_f32(*v)),
        DType::Fp16 => xs.iter_mut().for_each(|v| *v = round_f16(*v)),
        DType::Int8 => quantise_int8(xs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_the_format() {
        // Exactly representable values survive.
        for v in [
            1.0,
            -2.5,
            0.0999755859375,
            65504.0,
            6.103515625e-5,
            5.960464477539063e-8,
        ] {
            assert_eq!(round_f16(v), v, "{v}");
        }
        // Spacing at 1 is 2^-10: half a step ties to even (down), 3/2 step ties up.
        let ulp = 2f64.powi(-10);
        assert_eq!(round_f16(1.0 + ulp / 2.0), 1.0);
        assert_eq!(round_f16(1.0 + 1.5 * ulp), 1.0 + 2.0 * ulp);
        assert_eq!(round_f16(1.0 + 0.6 * ulp), 1.0 + ulp);
        // 0.1 → 0.0999755859375 (the binary16 nearest, 0x2E66).
        assert_eq!(round_f16(0.1), 0.0999755859375);
        // Subnormal quantum 2^-24; below half of it → 0.
        assert_eq!(round_f16(2f64.powi(-26)), 0.0);
        assert_eq!(round_f16(3.0 * 2f64.powi(-25)), 2.0 * 2f64.powi(-24));
        assert_eq!(round_f16(1e9), 65504.0);
        assert_eq!(round_f16(-1e9), -65504.0);
        // Relative error bound 2^-11 over a range of normals.
        for i in 0..1000 {
            let x = 1.37f64.powi(i % 40 - 20) * (1.0 + i as f64 * 1e-3);
            assert!((round_f16(x) - x).abs() <= x * 2f64.powi(-11) * (1.0 + 1e-12));
        }
    }

    #[test]
    fn int8_uses_a_symmetric_scale() {
        let mut v = vec![1.27, -0.635, 0.004, 0.0];
        quantise_int8(&mut v);
        assert!((v[0] - 1.27).abs() < 1e-15);
        assert!((v[1] + 0.64).abs() < 1e-12, "{}", v[1]); // −63.5 rounds away from zero → −64
        assert_eq!(v[2], 0.0);
        assert_eq!(v[3], 0.0);
        let mut z = vec![0.0; 3];
        quantise_int8(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }

    #[test]
    fn f32_rounding_is_the_cast() {
        assert_eq!(round_f32(0.1), 0.1f32 as f64);
        assert_ne!(round_f32(0.1), 0.1);
    }
}
