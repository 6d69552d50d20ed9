//! Physical units. Quantities are stored in SI base units (J, W, Hz, rad, s); decibels
//! stay logarithmic (dB, dBm) because that is how loss budgets are added up.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A plain number (also accepts `%`).
    None,
    Angle,
    Energy,
    Power,
    Frequency,
    Time,
    /// Electrical conductance (device states of resistive memories).
    Conductance,
    Bits,
    /// A ratio in decibels (loss, gain).
    Decibel,
    /// Absolute power in dBm (sensitivity).
    DecibelMilliwatt,
}

impl Dim {
    pub fn describe(self) -> &'static str {
        match self {
            Dim::None => "a plain number",
            Dim::Angle => "an angle (rad, mrad, deg)",
            Dim::Energy => "an energy (J, mJ, uJ, nJ, pJ, fJ, aJ, zJ)",
            Dim::Power => "a power (W, mW, uW, nW)",
            Dim::Frequency => "a frequency (Hz, kHz, MHz, GHz, THz)",
            Dim::Time => "a time (s, ms, us, ns, ps, h, day, year)",
            Dim::Conductance => "a conductance (S, mS, uS, nS)",
            Dim::Bits => "a bit count (bit)",
            Dim::Decibel => "a ratio in dB",
            Dim::DecibelMilliwatt => "a power in dBm",
        }
    }
    /// The unit used in examples and help texts.
    pub fn example_unit(self) -> &'static str {
        match self {
            Dim::None => "",
            Dim::Angle => "rad",
            Dim::Energy => "pJ",
            Dim::Power => "mW",
            Dim::Frequency => "GHz",
            Dim::Time => "s",
            Dim::Conductance => "uS",
            Dim::Bits => "bit",
            Dim::Decibel => "dB",
            Dim::DecibelMilliwatt => "dBm",
        }
    }
}

/// `(unit, dimension, factor to SI)`.
pub const UNITS: &[(&str, Dim, f64)] = &[
    ("%", Dim::None, 0.01),
    ("rad", Dim::Angle, 1.0),
    ("mrad", Dim::Angle, 1e-3),
    ("deg", Dim::Angle, std::f64::consts::PI / 180.0),
    ("J", Dim::Energy, 1.0),
    ("mJ", Dim::Energy, 1e-3),
    ("uJ", Dim::Energy, 1e-6),
    ("nJ", Dim::Energy, 1e-9),
    ("pJ", Dim::Energy, 1e-12),
    ("fJ", Dim::Energy, 1e-15),
    ("aJ", Dim::Energy, 1e-18),
    ("zJ", Dim::Energy, 1e-21),
    ("W", Dim::Power, 1.0),
    ("mW", Dim::Power, 1e-3),
    ("uW", Dim::Power, 1e-6),
    ("nW", Dim::Power, 1e-9),
    ("Hz", Dim::Frequency, 1.0),
    ("kHz", Dim::Frequency, 1e3),
    ("MHz", Dim::Frequency, 1e6),
    ("GHz", Dim::Frequency, 1e9),
    ("THz", Dim::Frequency, 1e12),
    ("s", Dim::Time, 1.0),
    ("ms", Dim::Time, 1e-3),
    ("us", Dim::Time, 1e-6),
    ("ns", Dim::Time, 1e-9),
    ("ps", Dim::Time, 1e-12),
    // Long times (resistive-memory drift is read after hours to years); never chosen by
    // `format_si`, which keeps times in seconds and below.
    ("h", Dim::Time, 3600.0),
    ("day", Dim::Time, 86400.0),
    // The Julian year.
    ("year", Dim::Time, 365.25 * 86400.0),
    ("S", Dim::Conductance, 1.0),
    ("mS", Dim::Conductance, 1e-3),
    ("uS", Dim::Conductance, 1e-6),
    ("nS", Dim::Conductance, 1e-9),
    ("bit", Dim::Bits, 1.0),
    ("bits", Dim::Bits, 1.0),
    ("dB", Dim::Decibel, 1.0),
    ("dBm", Dim::DecibelMilliwatt, 1.0),
];

pub fn lookup(unit: &str) -> Option<(Dim, f64)> {
    UNITS.iter().find(|u| u.0 == unit).map(|u| (u.1, u.2))
}

/// Formats an SI value with the most readable prefix of its dimension.
pub fn format_si(value: f64, dim: Dim) -> String {
    let candidates: Vec<&(&str, Dim, f64)> = UNITS
        .iter()
        .filter(|u| u.1 == dim && !["bits", "deg", "h", "day", "year"].contains(&u.0))
        .collect();
    if candidates.is_empty() || dim == Dim::None {
        return format!("{value}");
    }
    let mut best = candidates[0];
    for c in &candidates {
        if value.abs() >= c.2 * 0.9999 && (best.2 > value.abs() || c.2 > best.2) {
            best = c;
        }
    }
    let v = value / best.2;
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {}", best.0)
}
