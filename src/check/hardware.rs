//! Hardware profiles: fields, units, physical ranges, `extends` chains, supported ops.

use super::model::*;
use super::ops;
use super::units::Dim;
use super::Cx;
use crate::backend::{Backend, FieldKind, FieldValue};
use crate::diag::{code, Diagnostic, FileId};
use crate::syntax::{Entry, Expr, Section};
use std::collections::HashMap;

pub const SECTIONS: &[&str] = &["backend", "precision", "noise", "energy", "ops"];
const PRECISION_FIELDS: &[&str] = &["phase", "dac", "adc"];
const NOISE_FIELDS: &[&str] = &[
    "phase_sigma",
    "splitter_sigma",
    "loss_per_mzi",
    "crosstalk",
    "detector_noise",
];
const ENERGY_FIELDS: &[&str] = &[
    "dac",
    "adc",
    "modulator",
    "photodetector",
    "tia",
    "phase_shifter",
    "laser_efficiency",
    "max_laser_power",
    "sensitivity",
    "modulator_loss",
    "clock",
    "mac",
];

pub use crate::backend::MAX_WIDTH;

/// A field of a profile's `precision`, `noise` or `energy` section as editors show it: its
/// dimension, a line of doc, and where its value sits in a resolved profile. The checker
/// keeps its own per-field ranges; `tests::field_table_matches_the_checker` holds the
/// names and dimensions here to it.
#[derive(Clone, Copy)]
pub struct FieldInfo {
    pub section: &'static str,
    pub name: &'static str,
    pub dim: Dim,
    pub doc: &'static str,
    /// Where the built-in default comes from (see `default_energy`, `default_precision`).
    pub source: &'static str,
    /// The value in a resolved profile (SI units; dB and dBm stay logarithmic).
    pub get: fn(&Precision, &Noise, &EnergySpec) -> f64,
}

pub const FIELDS: &[FieldInfo] = &[
    FieldInfo {
        section: "precision",
        name: "phase",
        dim: Dim::Bits,
        doc: "phase-shifter resolution",
        source: "8-bit phases and converters, as UH-NAS's MZI backend (King and Leleu 2026)",
        get: |p, _, _| p.phase.into(),
    },
    FieldInfo {
        section: "precision",
        name: "dac",
        dim: Dim::Bits,
        doc: "DAC resolution (scales DAC energy)",
        source: "8-bit phases and converters, as UH-NAS's MZI backend (King and Leleu 2026)",
        get: |p, _, _| p.dac.into(),
    },
    FieldInfo {
        section: "precision",
        name: "adc",
        dim: Dim::Bits,
        doc: "ADC resolution (scales ADC energy)",
        source: "8-bit phases and converters, as UH-NAS's MZI backend (King and Leleu 2026)",
        get: |p, _, _| p.adc.into(),
    },
    FieldInfo {
        section: "noise",
        name: "phase_sigma",
        dim: Dim::Angle,
        doc: "Gaussian phase error per phase shifter per draw",
        source: "none: a profile without a `noise` section is ideal hardware",
        get: |_, n, _| n.phase_sigma,
    },
    FieldInfo {
        section: "noise",
        name: "splitter_sigma",
        dim: Dim::None,
        doc: "beamsplitter angle error ε in r = cos(π/4+ε)",
        source: "none: a profile without a `noise` section is ideal hardware",
        get: |_, n, _| n.splitter_sigma,
    },
    FieldInfo {
        section: "noise",
        name: "loss_per_mzi",
        dim: Dim::Decibel,
        doc: "insertion loss per MZI passed",
        source: "none: a profile without a `noise` section is ideal hardware",
        get: |_, n, _| n.loss_per_mzi_db,
    },
    FieldInfo {
        section: "noise",
        name: "crosstalk",
        dim: Dim::None,
        doc: "thermal crosstalk coefficient to neighbouring phase shifters",
        source: "none: a profile without a `noise` section is ideal hardware",
        get: |_, n, _| n.crosstalk,
    },
    FieldInfo {
        section: "noise",
        name: "detector_noise",
        dim: Dim::None,
        doc: "relative Gaussian detector noise",
        source: "none: a profile without a `noise` section is ideal hardware",
        get: |_, n, _| n.detector_noise,
    },
    FieldInfo {
        section: "energy",
        name: "dac",
        dim: Dim::Energy,
        doc: "energy per DAC conversion at the profile's DAC bits",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.dac,
    },
    FieldInfo {
        section: "energy",
        name: "adc",
        dim: Dim::Energy,
        doc: "energy per ADC conversion at the profile's ADC bits",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.adc,
    },
    FieldInfo {
        section: "energy",
        name: "modulator",
        dim: Dim::Energy,
        doc: "modulator energy per bit",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.modulator,
    },
    FieldInfo {
        section: "energy",
        name: "photodetector",
        dim: Dim::Power,
        doc: "photodetector power",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.photodetector,
    },
    FieldInfo {
        section: "energy",
        name: "tia",
        dim: Dim::Power,
        doc: "transimpedance amplifier power",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.tia,
    },
    FieldInfo {
        section: "energy",
        name: "phase_shifter",
        dim: Dim::Power,
        doc: "static power per phase shifter",
        source: "MEMS or electro-optic shifters hold their phase at about 0 static power",
        get: |_, _, e| e.phase_shifter,
    },
    FieldInfo {
        section: "energy",
        name: "laser_efficiency",
        dim: Dim::None,
        doc: "laser wall-plug efficiency",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.laser_efficiency,
    },
    FieldInfo {
        section: "energy",
        name: "max_laser_power",
        dim: Dim::Power,
        doc: "largest optical power the laser source delivers into the chip",
        source: "about forty channels of an integrated DFB laser array (Nie et al., Chin. Opt. Lett. 23, 071406, 2025)",
        get: |_, _, e| e.max_laser_power,
    },
    FieldInfo {
        section: "energy",
        name: "sensitivity",
        dim: Dim::DecibelMilliwatt,
        doc: "photodetector sensitivity",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.sensitivity_dbm,
    },
    FieldInfo {
        section: "energy",
        name: "modulator_loss",
        dim: Dim::Decibel,
        doc: "modulator insertion loss",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.modulator_loss_db,
    },
    FieldInfo {
        section: "energy",
        name: "clock",
        dim: Dim::Frequency,
        doc: "clock frequency (one inference per cycle per value)",
        source: "the Lightening-Transformer simulator (zhuhanqing/Lightening-Transformer, hardware_simulator/)",
        get: |_, _, e| e.clock,
    },
    FieldInfo {
        section: "energy",
        name: "mac",
        dim: Dim::Energy,
        doc: "energy per multiply-accumulate on digital hardware",
        source: "none: digital profiles set their own (e.g. 4.6 pJ fp32 at 45 nm, Horowitz, ISSCC 2014)",
        get: |_, _, e| e.mac,
    },
];

/// The field `name` of `section`, if the table has it.
pub fn field(section: &str, name: &str) -> Option<&'static FieldInfo> {
    FIELDS
        .iter()
        .find(|f| f.section == section && f.name == name)
}

/// Defaults for a profile that sets nothing. Sources: the Lightening-Transformer simulator
/// (zhuhanqing/Lightening-Transformer, `hardware_simulator/`) for converters, detectors,
/// laser and clock; 8-bit phases as in UH-NAS's MZI backend (King and Leleu 2026).
pub fn default_energy() -> EnergySpec {
    EnergySpec {
        // 50 mW at 14 GS/s for an 8-bit DAC → 3.57 pJ per conversion.
        dac: 50e-3 / 14e9,
        // SAR ADC 14.8 mW at 10 GS/s for 8 bits → 1.48 pJ per conversion.
        adc: 14.8e-3 / 10e9,
        // 450 fJ per bit.
        modulator: 450e-15,
        photodetector: 1.1e-3,
        tia: 3e-3,
        // MEMS / electro-optic shifters hold their phase at ≈ 0 static power.
        phase_shifter: 0.0,
        laser_efficiency: 0.2,
        // Optical output of the source(s) feeding the chip: 1 W, about forty channels of an
        // integrated DFB laser array at the >25 mW per channel of Nie et al., "Compact
        // power-equalized multi-wavelength DFB laser ... for optical I/O", Chin. Opt. Lett.
        // 23, 071406 (2025). Real on-chip sources give tens to hundreds of mW each.
        max_laser_power: 1.0,
        sensitivity_dbm: -25.0,
        modulator_loss_db: 1.2,
        clock: 5e9,
        mac: 0.0,
    }
}

pub fn default_precision() -> Precision {
    Precision {
        phase: 8,
        dac: 8,
        adc: 8,
    }
}

impl Cx<'_> {
    /// Resolves a profile through its `extends` chain (memoised; `None` when broken).
    pub(crate) fn hardware_profile(
        &mut self,
        name: &str,
        resolved: &mut super::Resolved<'_>,
        stack: &mut Vec<String>,
    ) -> Option<HardwareProfile> {
        if let Some(done) = resolved.get(name) {
            return done.clone();
        }
        let located = *self.hardware.get(name)?;
        let (file, hw) = (located.file, located.node);
        stack.push(name.to_string());
        let parent = match &hw.extends {
            None => None,
            Some(base) if stack.iter().any(|s| s == &base.name) => {
                self.push(
                    Diagnostic::error(
                        code::EXTENDS,
                        file,
                        base.span,
                        format!(
                            "`{}` extends itself through `{}`",
                            hw.name.name,
                            stack.join("` → `")
                        ),
                    )
                    .with_label("cycle")
                    .with_help("a profile must extend a different, complete profile"),
                );
                stack.pop();
                resolved.insert(name.to_string(), None);
                return None;
            }
            Some(base) if !self.hardware.contains_key(base.name.as_str()) => {
                let candidates: Vec<&str> = self.hardware.keys().copied().collect();
                self.undefined(file, base, "hardware profile", candidates);
                None
            }
            Some(base) => self.hardware_profile(&base.name, resolved, stack),
        };
        stack.pop();
        // With a broken parent, the profile's own entries are still checked, but it
        // yields nothing (and no "missing backend" on top of the real problem).
        let parent_broken = hw.extends.is_some() && parent.is_none();
        let profile = self
            .build_profile(file, hw, parent, parent_broken)
            .filter(|_| !parent_broken);
        resolved.insert(name.to_string(), profile.clone());
        profile
    }

    fn build_profile(
        &mut self,
        file: FileId,
        hw: &crate::syntax::Hardware,
        parent: Option<HardwareProfile>,
        parent_broken: bool,
    ) -> Option<HardwareProfile> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let mut backend = parent.as_ref().map(|p| p.backend);
        let mut precision = parent
            .as_ref()
            .map_or_else(default_precision, |p| p.precision);
        let mut noise = parent.as_ref().map_or_else(Noise::default, |p| p.noise);
        let mut energy = parent.as_ref().map_or_else(default_energy, |p| p.energy);
        let mut ops_list = parent.as_ref().map(|p| p.ops.clone());
        let mut ops_span = None;
        let mut seen: HashMap<&str, crate::syntax::Span> = HashMap::new();

        for entry in &hw.body.entries {
            let (key, span) = match entry {
                Entry::Section(s) => (&s.name, s.span),
                Entry::Field(f) => (&f.key, f.span),
                other => {
                    self.misplaced_entry(file, other, "a hardware profile");
                    continue;
                }
            };
            if let Some(first) = seen.get(key.name.as_str()) {
                self.duplicate_key(file, key, *first);
                continue;
            }
            seen.insert(&key.name, span);
            match (entry, key.name.as_str()) {
                (Entry::Section(s), "backend") => backend = self.backend(file, s, backend),
                (Entry::Section(s), "precision") => self.precision(file, s, &mut precision),
                (Entry::Section(s), "noise") => self.noise(file, s, &mut noise),
                (Entry::Section(s), "energy") => self.energy(file, s, &mut energy),
                (Entry::Field(f), "ops") => {
                    ops_span = Some(f.value.span());
                    ops_list = self.ops_list(file, &f.value);
                }
                (Entry::Field(f), name) if SECTIONS.contains(&name) => {
                    self.push(
                        Diagnostic::error(
                            code::VALUE,
                            file,
                            f.key.span,
                            format!("`{name}` is a section, not a field"),
                        )
                        .with_label("expected `{ … }`")
                        .with_help(format!("write `{name} {{ … }}`")),
                    );
                }
                (Entry::Section(s), "ops") => {
                    self.push(
                        Diagnostic::error(
                            code::VALUE,
                            file,
                            s.name.span,
                            "`ops` is a list, not a section",
                        )
                        .with_label("expected `[ … ]`")
                        .with_help("write `ops [linear, modrelu, detect]`"),
                    );
                }
                _ => self.unknown_key(file, key, "a hardware profile", SECTIONS),
            }
        }

        let Some(backend) = backend else {
            if parent_broken {
                return None;
            }
            self.push(
                Diagnostic::error(code::MISSING_FIELD, file, hw.name.span, format!("`{}` has no backend", hw.name.name))
                    .with_label("no `backend` section")
                    .with_help("add `backend mzi { mesh = clements, max_ports = 16 }` or `backend digital { dtype = fp32 }`, or `extends` a complete profile"),
            );
            return None;
        };
        let kind = backend.kind();
        let be = crate::backend::of(&backend);
        let ops = match ops_list {
            Some(list) => {
                for op in &list {
                    if let Some(spec) = ops::lookup(op) {
                        if !be.offers(spec) {
                            let span = ops_span.unwrap_or(hw.name.span);
                            self.push(
                                Diagnostic::error(
                                    code::OP,
                                    file,
                                    span,
                                    format!(
                                        "the `{}` backend cannot perform `{op}`",
                                        kind.as_str()
                                    ),
                                )
                                .with_label("unsupported operation")
                                .with_help(format!(
                                    "`{}` backends support: {}",
                                    kind.as_str(),
                                    ops::supported_list(be)
                                )),
                            );
                        }
                    }
                }
                list
            }
            None => ops::CATALOG
                .iter()
                .filter(|o| be.offers(o))
                .map(|o| o.name.to_string())
                .collect(),
        };
        self.ignored_fields(file, hw, be);
        if be.requires_mac_energy()
            && energy.mac <= 0.0
            && !seen.contains_key("energy")
            && parent.is_none()
        {
            self.push(
                Diagnostic::error(
                    code::MISSING_FIELD,
                    file,
                    hw.name.span,
                    format!("digital profile `{}` has no MAC energy", hw.name.name),
                )
                .with_label("energy per MAC unknown")
                .with_help(
                    "add `energy { mac = 4.6 pJ }` (Horowitz, ISSCC 2014: fp32 MAC at 45 nm)",
                ),
            );
        }
        let errors_after = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        Some(HardwareProfile {
            name: hw.name.name.clone(),
            extends: hw.extends.as_ref().map(|e| e.name.clone()),
            backend,
            precision,
            noise,
            energy,
            ops,
            file,
            span: hw.name.span,
        })
    }

    /// Warns of the fields of this profile's own `precision`, `noise` and `energy`
    /// sections that its backend never reads (`Backend::reads`), one warning per section.
    fn ignored_fields(&mut self, file: FileId, hw: &crate::syntax::Hardware, be: &dyn Backend) {
        for entry in &hw.body.entries {
            let Entry::Section(s) = entry else { continue };
            let section = s.name.name.as_str();
            let known = match section {
                "precision" => PRECISION_FIELDS,
                "noise" => NOISE_FIELDS,
                "energy" => ENERGY_FIELDS,
                _ => continue,
            };
            let ignored: Vec<&crate::syntax::Ident> = s
                .body
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Field(f) => Some(&f.key),
                    _ => None,
                })
                .filter(|k| known.contains(&k.name.as_str()) && !be.reads(section, &k.name))
                .collect();
            let Some(first) = ignored.first() else {
                continue;
            };
            let names: Vec<String> = ignored.iter().map(|k| format!("`{}`", k.name)).collect();
            let list = names.join(", ");
            let whole = ignored.len() == s.body.entries.len();
            let (message, span) = if whole {
                (
                    format!("the `{section}` section has no effect on `{}`: the `{}` backend never reads {list}", hw.name.name, be.kind().as_str()),
                    s.name.span,
                )
            } else {
                let (noun, verb, pronoun) = if names.len() == 1 {
                    ("field", "has", "it")
                } else {
                    ("fields", "have", "them")
                };
                (
                    format!("`{section}` {noun} {list} {verb} no effect on `{}`: the `{}` backend never reads {pronoun}", hw.name.name, be.kind().as_str()),
                    first.span,
                )
            };
            self.push(
                Diagnostic::warning(code::IGNORED, file, span, message)
                    .with_label("ignored")
                    .with_help(format!(
                        "remove {}; {}",
                        if whole || names.len() == 1 {
                            "it"
                        } else {
                            "them"
                        },
                        be.ignored_hint(section)
                    )),
            );
        }
    }

    pub fn misplaced_entry(&mut self, file: FileId, entry: &Entry, place: &str) {
        let (what, help) = match entry {
            Entry::Input(_) => ("`input`", "inputs belong in an `arch`"),
            Entry::Output(_) => ("`output`", "outputs belong in an `arch`"),
            Entry::Constraint(_) => (
                "`constraint`",
                "constraints belong in an `arch` or a `search`",
            ),
            Entry::Section(_) => ("this section", "remove it"),
            Entry::Field(_) => ("this field", "remove it"),
        };
        self.push(
            Diagnostic::error(
                code::UNKNOWN_FIELD,
                file,
                entry.span(),
                format!("{what} is not allowed in {place}"),
            )
            .with_label("not allowed here")
            .with_help(help),
        );
    }

    /// Fields of a section, each reported once when unknown or repeated.
    fn section_fields<'s>(
        &mut self,
        file: FileId,
        s: &'s Section,
        known: &[&str],
        place: &str,
    ) -> Vec<(&'s str, &'s Expr)> {
        let mut out = Vec::new();
        let mut seen: HashMap<&str, crate::syntax::Span> = HashMap::new();
        for e in &s.body.entries {
            match e {
                Entry::Field(f) => {
                    if let Some(first) = seen.get(f.key.name.as_str()) {
                        self.duplicate_key(file, &f.key, *first);
                    } else if !known.contains(&f.key.name.as_str()) {
                        self.unknown_key(file, &f.key, place, known);
                    } else {
                        seen.insert(&f.key.name, f.span);
                        out.push((f.key.name.as_str(), &f.value));
                    }
                }
                other => self.misplaced_entry(file, other, place),
            }
        }
        if let Some(kind) = &s.kind {
            if s.name.name != "backend" {
                self.push(
                    Diagnostic::error(
                        code::SYNTAX,
                        file,
                        kind.span,
                        format!("`{}` takes no kind name", s.name.name),
                    )
                    .with_label("unexpected name")
                    .with_help(format!("write `{} {{ … }}`", s.name.name)),
                );
            }
        }
        out
    }

    fn backend(
        &mut self,
        file: FileId,
        s: &Section,
        inherited: Option<BackendSpec>,
    ) -> Option<BackendSpec> {
        let Some(kind) = &s.kind else {
            self.push(
                Diagnostic::error(
                    code::BACKEND,
                    file,
                    s.name.span,
                    "the backend section does not name a backend",
                )
                .with_label("which backend?")
                .with_help("write `backend mzi { … }` or `backend digital { … }`"),
            );
            return None;
        };
        let Some(backend) = crate::backend::by_name(&kind.name) else {
            let names = crate::backend::names();
            self.push(
                Diagnostic::error(
                    code::BACKEND,
                    file,
                    kind.span,
                    format!("unknown backend `{}`", kind.name),
                )
                .with_label("unknown backend")
                .with_suggestion(&kind.name, kind.span, &names, "backend"),
            );
            return None;
        };
        // The block's fields, checked against the backend's schema; values that fail their
        // check are reported and left out.
        let schema = backend.fields();
        let known: Vec<&str> = schema.iter().map(|f| f.name).collect();
        let mut set = Vec::new();
        for (k, v) in self.section_fields(file, s, &known, backend.block_name()) {
            let Some(field) = schema.iter().find(|f| f.name == k) else {
                continue;
            };
            let value = match field.kind {
                FieldKind::Choice(choices) => self
                    .choice(file, v, field.name, choices)
                    .map(FieldValue::Choice),
                FieldKind::Count { min, max } => self
                    .integer(file, v, field.name, Dim::None, min, max)
                    .map(FieldValue::Count),
                FieldKind::Real { dim, min, max, why } => self
                    .number_in(file, v, field.name, dim, (min, max), why)
                    .map(FieldValue::Real),
            };
            if let Some(value) = value {
                set.push((field.name, value));
            }
        }
        match backend.spec(inherited, &set) {
            Ok(spec) => Some(spec),
            Err(missing) => {
                self.push(
                    Diagnostic::error(code::MISSING_FIELD, file, s.span, missing.message)
                        .with_label(missing.label)
                        .with_help(missing.help),
                );
                None
            }
        }
    }

    fn precision(&mut self, file: FileId, s: &Section, p: &mut Precision) {
        for (k, v) in self.section_fields(file, s, PRECISION_FIELDS, "`precision`") {
            let Some(bits) = self.bits(file, v, k) else {
                continue;
            };
            match k {
                "phase" => p.phase = bits,
                "dac" => p.dac = bits,
                _ => p.adc = bits,
            }
        }
    }

    /// A bit count from 1 to 32.
    pub fn bits(&mut self, file: FileId, v: &Expr, what: &str) -> Option<u32> {
        self.integer(file, v, what, Dim::Bits, 1, 32)
            .map(|b| b as u32)
    }

    fn noise(&mut self, file: FileId, s: &Section, n: &mut Noise) {
        use std::f64::consts::PI;
        for (k, v) in self.section_fields(file, s, NOISE_FIELDS, "`noise`") {
            match k {
                "phase_sigma" => {
                    if let Some(x) = self.number_in(file, v, k, Dim::Angle, (0.0, PI), "a phase standard deviation is between 0 and π rad (typical: 0.01 realistic, 0.05 worst case)") {
                        n.phase_sigma = x;
                    }
                }
                "splitter_sigma" => {
                    if let Some(x) = self.number_in(file, v, k, Dim::None, (0.0, 0.4999), "splitter error ε (r = cos(π/4+ε)) must be at least 0 and below 0.5 (typical: 0.01–0.02)") {
                        n.splitter_sigma = x;
                    }
                }
                "loss_per_mzi" => {
                    if let Some(x) = self.number_in(file, v, k, Dim::Decibel, (0.0, 30.0), "insertion loss per MZI is a loss: 0 dB or more (typical: 0.2 dB realistic, 1 dB worst case)") {
                        n.loss_per_mzi_db = x;
                    }
                }
                "crosstalk" => {
                    if let Some(x) = self.number_in(file, v, k, Dim::None, (0.0, 0.999), "thermal crosstalk coefficient is at least 0 and below 1 (typical: 0.01)") {
                        n.crosstalk = x;
                    }
                }
                _ => {
                    if let Some(x) = self.number_in(file, v, k, Dim::None, (0.0, 1.0), "relative detector noise is between 0 and 1 (typical: 0.01)") {
                        n.detector_noise = x;
                    }
                }
            }
        }
    }

    fn energy(&mut self, file: FileId, s: &Section, e: &mut EnergySpec) {
        const ENERGY_WHY: &str = "an energy per operation is 0 or more";
        const POWER_WHY: &str = "a power is 0 or more";
        for (k, v) in self.section_fields(file, s, ENERGY_FIELDS, "`energy`") {
            let slot = match k {
                "dac" => self
                    .number_in(file, v, k, Dim::Energy, (0.0, 1.0), ENERGY_WHY)
                    .map(|x| e.dac = x),
                "adc" => self
                    .number_in(file, v, k, Dim::Energy, (0.0, 1.0), ENERGY_WHY)
                    .map(|x| e.adc = x),
                "modulator" => self
                    .number_in(file, v, k, Dim::Energy, (0.0, 1.0), ENERGY_WHY)
                    .map(|x| e.modulator = x),
                "mac" => self
                    .number_in(file, v, k, Dim::Energy, (0.0, 1.0), ENERGY_WHY)
                    .map(|x| e.mac = x),
                "photodetector" => self
                    .number_in(file, v, k, Dim::Power, (0.0, 1e3), POWER_WHY)
                    .map(|x| e.photodetector = x),
                "tia" => self
                    .number_in(file, v, k, Dim::Power, (0.0, 1e3), POWER_WHY)
                    .map(|x| e.tia = x),
                "phase_shifter" => self
                    .number_in(file, v, k, Dim::Power, (0.0, 1e3), POWER_WHY)
                    .map(|x| e.phase_shifter = x),
                "laser_efficiency" => self
                    .number_in(
                        file,
                        v,
                        k,
                        Dim::None,
                        (1e-6, 1.0),
                        "wall-plug efficiency is above 0 and at most 1 (typical: 0.2)",
                    )
                    .map(|x| e.laser_efficiency = x),
                "max_laser_power" => self
                    .number_in(
                        file,
                        v,
                        k,
                        Dim::Power,
                        (1e-9, 1e6),
                        "the laser's largest optical output power is above 0 (typical: tens to hundreds of mW per source; default 1 W)",
                    )
                    .map(|x| e.max_laser_power = x),
                "sensitivity" => self
                    .number_in(
                        file,
                        v,
                        k,
                        Dim::DecibelMilliwatt,
                        (-100.0, 30.0),
                        "photodetector sensitivity is between -100 and 30 dBm (typical: -25 dBm)",
                    )
                    .map(|x| e.sensitivity_dbm = x),
                "modulator_loss" => self
                    .number_in(
                        file,
                        v,
                        k,
                        Dim::Decibel,
                        (0.0, 30.0),
                        "modulator insertion loss is 0 dB or more (typical: 1.2 dB)",
                    )
                    .map(|x| e.modulator_loss_db = x),
                _ => self
                    .number_in(
                        file,
                        v,
                        k,
                        Dim::Frequency,
                        (1.0, 1e13),
                        "the clock is a positive frequency (typical: 5 GHz)",
                    )
                    .map(|x| e.clock = x),
            };
            let _ = slot;
        }
    }

    fn ops_list(&mut self, file: FileId, v: &Expr) -> Option<Vec<String>> {
        let Expr::List(list) = v else {
            self.wrong_kind(
                file,
                v,
                "ops",
                "a list of operations",
                "[linear, modrelu, detect]",
            );
            return None;
        };
        let mut out = Vec::new();
        let names = ops::names();
        for item in &list.items {
            match item {
                Expr::Ident(id) if ops::lookup(&id.name).is_some() => {
                    if !out.contains(&id.name) {
                        out.push(id.name.clone());
                    }
                }
                Expr::Ident(id) => {
                    self.push(
                        Diagnostic::error(
                            code::OP,
                            file,
                            id.span,
                            format!("unknown operation `{}`", id.name),
                        )
                        .with_label("unknown operation")
                        .with_suggestion(
                            &id.name,
                            id.span,
                            &names,
                            "operation",
                        ),
                    );
                }
                other => self.wrong_kind(
                    file,
                    other,
                    "ops",
                    "a list of operation names",
                    "[linear, modrelu, detect]",
                ),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the table is one the checker knows, in its dimension: a value in a
    /// unit of another dimension is refused with `uh::check::unit`, and one in the
    /// table's own unit is not.
    #[test]
    fn field_table_matches_the_checker() {
        let known = |section: &str| -> &[&str] {
            match section {
                "precision" => PRECISION_FIELDS,
                "noise" => NOISE_FIELDS,
                _ => ENERGY_FIELDS,
            }
        };
        for section in ["precision", "noise", "energy"] {
            let table: Vec<&str> = FIELDS
                .iter()
                .filter(|f| f.section == section)
                .map(|f| f.name)
                .collect();
            assert_eq!(table, known(section), "the table's `{section}` fields");
        }
        let default =
            |f: &FieldInfo| (f.get)(&default_precision(), &Noise::default(), &default_energy());
        for f in FIELDS {
            let wrong = if f.dim == Dim::Energy {
                "1 GHz"
            } else {
                "1 pJ"
            };
            let own = crate::check::units::format_si(default(f).max(0.0), f.dim);
            for (value, refused) in [(wrong, true), (own.as_str(), false)] {
                let text = format!(
                    "hardware h {{\n backend mzi {{ mesh = clements, max_ports = 4 }}\n {} {{ {} = {value} }}\n}}\n",
                    f.section, f.name
                );
                let (_, diags, _) = crate::check_source("t.uh", &text);
                let unit = diags.iter().any(|d| d.code == crate::diag::code::UNIT);
                assert_eq!(
                    unit, refused,
                    "{}.{} = {value}: {diags:?}",
                    f.section, f.name
                );
            }
        }
    }
}
