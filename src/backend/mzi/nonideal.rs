//! Non-ideality configuration: which hardware errors a realisation draws, and how strongly.

use super::MziError;
use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// Hardware non-idealities of an MZI mesh. Every effect is off at its zero value, and
/// [`NonIdeal::IDEAL`] (the default) realises the nominal mesh bit-exactly.
///
/// A realisation (see [`MeshLayout::realise`](super::MeshLayout::realise)) turns nominal phases
/// into effective ones in this order, per phase shifter (θ and φ of each MZI, and each input
/// phase γ):
/// 1. *programming*: if quantisation or crosstalk is on, the phase is wrapped into `[0, 2π)`
///    (a heater is driven within one period), then rounded to the nearest multiple of
///    `2π / 2^b` (level `2^b` wraps to 0);
/// 2. *thermal crosstalk*: add `c ×` the sum of the programmed phases of the physically
///    adjacent shifters of the same kind (θ with θ, φ with φ, γ with γ). Adjacent means the
///    MZIs on the neighbouring mode pairs (`top ∓ 2`) in the same column, and the neighbouring
///    modes `j ∓ 1` for the input phases;
/// 3. *phase noise*: add `σ z`, `z` a standard normal truncated to `|z| ≤ phase_noise_clip`.
///
/// Each MZI also gets two splitter errors `ε₁, ε₂ ~ N(0, σ_bs²)` (not truncated: fabrication
/// spread) and the amplitude factor `a = 10^(−dB/20)` on both outputs.
///
/// Gradients pass through steps 1 and 3 unchanged (straight-through for the rounding) and
/// through step 2 by the transpose of `I + cA`, `A` the symmetric adjacency.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NonIdeal {
    /// Phase DAC resolution in bits; `None` = continuous phases.
    pub phase_bits: Option<u32>,
    /// Standard deviation of additive Gaussian phase noise (rad), drawn per shifter per
    /// realisation.
    pub phase_sigma: f64,
    /// Truncation of the phase noise in units of σ; `None` = untruncated. Default 2 because
    /// torchonn truncates its phase noise at ±2σ (`shared/guide/domain.md`, non-idealities).
    pub phase_noise_clip: Option<f64>,
    /// Standard deviation of each splitter's angle error ε (rad): `r = cos(π/4 + ε)`.
    pub splitter_sigma: f64,
    /// Insertion loss per MZI (dB), on both outputs.
    pub loss_db_per_mzi: f64,
    /// Thermal crosstalk coefficient `c`.
    pub crosstalk: f64,
}

impl Default for NonIdeal {
    fn default() -> Self {
        Self::IDEAL
    }
}

impl NonIdeal {
    /// No errors at all.
    pub const IDEAL: NonIdeal = NonIdeal {
        phase_bits: None,
        phase_sigma: 0.0,
        phase_noise_clip: Some(2.0),
        splitter_sigma: 0.0,
        loss_db_per_mzi: 0.0,
        crosstalk: 0.0,
    };

    /// "Realistic" values, from the domain table (`shared/guide/domain.md`): 8-bit phases
    /// (UH-NAS MZI backend), σ = 0.01 rad, σ_bs = 0.01, 0.2 dB per MZI, c = 0.01 (torchonn's
    /// default crosstalk).
    pub fn realistic() -> Self {
        NonIdeal {
            phase_bits: Some(8),
            phase_sigma: 0.01,
            phase_noise_clip: Some(2.0),
            splitter_sigma: 0.01,
            loss_db_per_mzi: 0.2,
            crosstalk: 0.01,
        }
    }

    /// "Worst-case" values from the same table: 6-bit phases (the table gives 4–6), σ = 0.05,
    /// σ_bs = 0.02, 1.0 dB per MZI, c = 0.02.
    pub fn worst_case() -> Self {
        NonIdeal {
            phase_bits: Some(6),
            phase_sigma: 0.05,
            phase_noise_clip: Some(2.0),
            splitter_sigma: 0.02,
            loss_db_per_mzi: 1.0,
            crosstalk: 0.02,
        }
    }

    /// Checks every field; the message says which one is wrong and what it must be.
    pub fn validate(&self) -> Result<(), MziError> {
        let bad = |field, value, expected| {
            Err(MziError::InvalidNonIdeal {
                field,
                value,
                expected,
            })
        };
        if let Some(b) = self.phase_bits {
            if !(1..=32).contains(&b) {
                return bad(
                    "phase_bits",
                    f64::from(b),
                    "an integer from 1 to 32, or none",
                );
            }
        }
        for (field, v) in [
            ("phase_sigma", self.phase_sigma),
            ("splitter_sigma", self.splitter_sigma),
            ("loss_db_per_mzi", self.loss_db_per_mzi),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, v, "a finite value ≥ 0");
            }
        }
        if let Some(c) = self.phase_noise_clip {
            if !(c.is_finite() && c >= 0.1) {
                return bad(
                    "phase_noise_clip",
                    c,
                    "a finite value ≥ 0.1 (in σ), or none",
                );
            }
        }
        if !(self.crosstalk.is_finite() && self.crosstalk.abs() <= 1.0) {
            return bad("crosstalk", self.crosstalk, "a finite value in [-1, 1]");
        }
        Ok(())
    }

    /// Amplitude factor of one MZI, `10^(−dB/20)`.
    pub fn amplitude(&self) -> f64 {
        10f64.powf(-self.loss_db_per_mzi / 20.0)
    }

    /// The calibrated gain that undoes the nominal insertion loss of `mzis` MZIs in series.
    ///
    /// Uniform loss is a known power scale: the laser power [`crate::ir::energy`] charges
    /// for grows with the optical depth exactly to bring the light back to the detectors'
    /// sensitivity, and each stage's electronics (detector gain, activation threshold)
    /// are set for the power that reaches them. So a simulated instance applies this gain
    /// per mesh and per attenuator, and what remains of insertion loss is its
    /// path-dependent part (modes that skip MZIs at a mesh's edges, Reck's unequal paths).
    /// Without it an activation threshold set in loss-free units would see a field ~33 dB
    /// weaker on `mzi_worst` and cut every sample to zero.
    pub fn loss_gain(&self, mzis: usize) -> f64 {
        self.amplitude().powi(-(mzis.min(i32::MAX as usize) as i32))
    }

    /// The phases actually programmed for nominal ones (step 1 above).
    pub(crate) fn program(&self, x: &[f64]) -> Vec<f64> {
        match (self.phase_bits, self.crosstalk != 0.0) {
            (None, false) => x.to_vec(),
            (None, true) => x.iter().map(|&v| wrap(v)).collect(),
            (Some(b), _) => {
                let levels = 1i64 << b;
                let step = TAU / levels as f64;
                let inv = levels as f64 / TAU;
                x.iter()
                    .map(|&v| {
                        let u = v * inv;
                        if u.abs() < 1e15 {
                            // Nearest level, modulo 2^b (level 2^b is phase 0 again); the mask
                            // is the Euclidean remainder for a power of two.
                            ((u + 0.5).floor_fast() & (levels - 1)) as f64 * step
                        } else {
                            (((wrap(v) * inv).round() as i64) & (levels - 1)) as f64 * step
                        }
                    })
                    .collect()
            }
        }
    }
}

/// `x mod 2π` into `[0, 2π)`, without a libm call for moderate `x`.
fn wrap(x: f64) -> f64 {
    if x.abs() < 1e15 {
        let k = (x / TAU).floor_fast();
        let w = x - k as f64 * TAU;
        if w < 0.0 {
            w + TAU
        } else if w >= TAU {
            w - TAU
        } else {
            w
        }
    } else {
        x.rem_euclid(TAU)
    }
}

/// `floor` for `|x| < 2⁶³` through integer truncation (a plain `floor` is a libm call on
/// baseline x86-64).
trait FloorFast {
    fn floor_fast(self) -> i64;
}

impl FloorFast for f64 {
    #[inline]
    fn floor_fast(self) -> i64 {
        let t = self as i64;
        if (t as f64) > self {
            t - 1
        } else {
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_bad_values_are_named() {
        NonIdeal::IDEAL.validate().unwrap();
        NonIdeal::realistic().validate().unwrap();
        NonIdeal::worst_case().validate().unwrap();
        let e = NonIdeal {
            phase_sigma: -0.1,
            ..NonIdeal::IDEAL
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("phase_sigma"), "{e}");
        let e = NonIdeal {
            phase_bits: Some(0),
            ..NonIdeal::IDEAL
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("phase_bits"), "{e}");
        assert!(NonIdeal {
            crosstalk: f64::NAN,
            ..NonIdeal::IDEAL
        }
        .validate()
        .is_err());
    }

    impl NonIdeal {
        fn program_one(&self, x: f64) -> f64 {
            self.program(&[x])[0]
        }
    }

    #[test]
    fn quantisation_rounds_to_grid_and_wraps() {
        let q = NonIdeal {
            phase_bits: Some(3),
            ..NonIdeal::IDEAL
        };
        let step = TAU / 8.0;
        assert_eq!(q.program_one(0.0), 0.0);
        assert_eq!(q.program_one(0.4 * step), 0.0);
        assert_eq!(q.program_one(0.6 * step), step);
        assert_eq!(q.program_one(TAU - 0.1 * step), 0.0);
        assert_eq!(q.program_one(-0.6 * step), 7.0 * step);
        assert!((q.program_one(3.0 * step + 5.0 * TAU) - 3.0 * step).abs() < 1e-12);
        // Error never exceeds half a step.
        for i in 0..1000 {
            let x = i as f64 * 0.0137;
            let d = (q.program_one(x) - x).rem_euclid(TAU);
            assert!(d.min(TAU - d) <= step / 2.0 + 1e-12);
        }
        // Without quantisation or crosstalk the phase passes untouched (no rounding).
        assert_eq!(NonIdeal::IDEAL.program_one(7.3), 7.3);
    }

    #[test]
    fn serde_round_trip_with_defaults() {
        let v: NonIdeal = serde_json::from_str(r#"{"phase_sigma": 0.02}"#).unwrap();
        assert_eq!(v.phase_sigma, 0.02);
        assert_eq!(v.phase_bits, None);
        let s = serde_json::to_string(&NonIdeal::realistic()).unwrap();
        assert_eq!(
            serde_json::from_str::<NonIdeal>(&s).unwrap(),
            NonIdeal::realistic()
        );
        assert!(serde_json::from_str::<NonIdeal>(r#"{"sigma": 1}"#).is_err());
    }
}
