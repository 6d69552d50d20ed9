//! IBM aihwkit's statistical PCM model (`aihwkit.inference.noise.pcm.PCMLikeNoiseModel`;
//! Nandakumar et al., ICECS 2019; Joshi et al., Nat. Commun. 11, 2473, 2020), calibrated on
//! about a million devices. Conductances here are normalised to `g_max` (`x = g / g_max`,
//! in [0, 1]) unless a name says µS; the fits were made in µS at `g_max = 25 µS` and
//! aihwkit rescales the programming fit by `g_max / 25 µS`, so every σ relative to `g_max`
//! is the same for any `g_max`.

/// aihwkit's programming-noise polynomial `c0 + c1 x + c2 x²` (µS at `g_max = 25 µS`).
pub const PROG_COEFF: [f64; 3] = [0.26348, 1.9650, -1.1731];
/// The `g_max` the programming fit was made at (aihwkit `prog_coeff_g_max_reference`).
pub const PROG_G_MAX_REF_US: f64 = 25.0;
/// Smallest relative conductance the drift fit is evaluated at (a device programmed to 0
/// still drifts with the clamped, largest ν). Any value below e^(−4.9) ≈ 0.0076 gives the
/// same clamped μ_ν and σ_ν.
pub const ZERO_CLIP: f64 = 1e-7;

/// Programming noise σ in µS of a device with target `g_t_us` on a `g_max_us` array:
/// `max(c0 + c1 x + c2 x², 0) · g_max / 25 µS`, `x = g_T / g_max`.
pub fn prog_sigma_us(g_t_us: f64, g_max_us: f64) -> f64 {
    let x = g_t_us / g_max_us;
    let [c0, c1, c2] = PROG_COEFF;
    (c0 + c1 * x + c2 * x * x).max(0.0) * g_max_us / PROG_G_MAX_REF_US
}

/// The same σ relative to `g_max` (independent of `g_max`).
pub fn prog_sigma(x: f64) -> f64 {
    prog_sigma_us(x * PROG_G_MAX_REF_US, PROG_G_MAX_REF_US) / PROG_G_MAX_REF_US
}

/// Mean drift exponent: `min(max(−0.0155 ln x + 0.0244, 0.049), 0.1)`.
pub fn drift_mu(x: f64) -> f64 {
    (-0.0155 * x.abs().max(ZERO_CLIP).ln() + 0.0244).clamp(0.049, 0.1)
}

/// Spread of the drift exponent: `min(max(−0.0125 ln x − 0.0059, 0.008), 0.045)`.
pub fn drift_sigma(x: f64) -> f64 {
    (-0.0125 * x.abs().max(ZERO_CLIP).ln() - 0.0059).clamp(0.008, 0.045)
}

/// The 1/f read-noise amplitude `Q_s = min(0.0088 / max(x^0.65, 1e-3), 0.2)` of a device
/// programmed to `x`.
pub fn q_s(x_prog: f64) -> f64 {
    (0.0088 / x_prog.abs().powf(0.65).max(1e-3)).min(0.2)
}

/// Read-noise σ (relative to `g_max`) of a device programmed to `x_prog` that has drifted
/// to `g_drift`, read `t` seconds after programming: `|g_drift| Q_s √ln((t + t_read) /
/// (2 t_read))` (0 before `t_read`).
pub fn read_sigma(g_drift: f64, x_prog: f64, t: f64, t_read: f64) -> f64 {
    let l = ((t + t_read) / (2.0 * t_read)).ln().max(0.0);
    g_drift.abs() * q_s(x_prog) * l.sqrt()
}

/// The drift factor `(t / t0)^(−ν)` at `t` seconds after programming (1 before `t0`).
pub fn drift_factor(t: f64, t0: f64, nu: f64) -> f64 {
    if t > t0 {
        (t / t0).powf(-nu)
    } else {
        1.0
    }
}
