//! Hover text, in Markdown, from the compiler's own tables: the op catalog, the profile
//! field table, the checked types and the energy model.

use super::analysis::{contains, Analysis, Ns};
use crate::check::ops;
use crate::check::profile_fields::{self as fields, FieldInfo};
use crate::check::units::{format_si, Dim};
use crate::check::{default_energy, default_precision, HardwareProfile, Noise};
use crate::syntax::{self, Entry, Expr, Item};
use std::fmt::Write as _;

/// Hover text for the root of `a` at a byte offset.
pub fn hover(a: &Analysis, offset: usize) -> Option<String> {
    if let Some((arch, call)) = call_at(a.tree(), offset) {
        return Some(op(a, arch, &call.func.name));
    }
    if let Some(sym) = a.sym_at(offset) {
        return match &sym.ns {
            Ns::Value { .. } => value(a, sym),
            Ns::Item("arch") => arch(a, &sym.name),
            Ns::Item("hardware") => hardware(a, &sym.name),
            Ns::Item("task") => task(a, &sym.name),
            Ns::Item(_) => None,
        };
    }
    if let Some((hw, section, key)) = hardware_field_at(a.tree(), offset) {
        return field(a, hw, section, key);
    }
    if let Some(u) = a.use_at(offset) {
        let name = a
            .sources
            .ids()
            .map(|id| a.sources.name(id))
            .find(|n| n.ends_with(u.path.value.trim_start_matches("./")))?;
        return Some(format!("`use`: loads `{name}`"));
    }
    None
}

/// The call whose op name is under `offset`, with its architecture.
fn call_at(tree: &syntax::File, offset: usize) -> Option<(&syntax::Arch, &syntax::Call)> {
    fn find(e: &Expr, offset: usize) -> Option<&syntax::Call> {
        match e {
            Expr::Call(c) if contains(c.func.span, offset) => Some(c),
            Expr::Call(c) => c.args.iter().find_map(|x| find(&x.value, offset)),
            Expr::List(l) => l.items.iter().find_map(|x| find(x, offset)),
            _ => None,
        }
    }
    tree.items.iter().find_map(|i| match i {
        Item::Arch(a) if contains(a.body.span, offset) => a.body.entries.iter().find_map(|e| {
            let value = match e {
                Entry::Field(f) => &f.value,
                Entry::Output(o) => &o.value,
                _ => return None,
            };
            find(value, offset).map(|c| (a, c))
        }),
        _ => None,
    })
}

fn op(a: &Analysis, arch: &syntax::Arch, name: &str) -> String {
    let Some(spec) = ops::lookup(name) else {
        return format!(
            "`{name}`: not an operation; the operations are {}",
            ops::names().join(", ")
        );
    };
    let mut s = format!("```\n{}\n```\n{}", spec.signature, spec.doc);
    for p in spec.params {
        let default = p
            .default
            .map_or(String::from("required"), |d| format!("default {d}"));
        let _ = write!(s, "\n- `{}` ({default}): {}", p.name, p.doc);
    }
    let hw = &arch.hardware.name;
    if let Some(profile) = a.partial.checked.hardware(hw) {
        let offered = if profile.supports(name) {
            "offers"
        } else {
            "does not offer"
        };
        let _ = write!(s, "\n\n`{hw}` {offered} `{name}`.");
    }
    s
}

fn value(a: &Analysis, sym: &super::analysis::Sym) -> Option<String> {
    let Ns::Value { file, arch } = &sym.ns else {
        return None;
    };
    let arch_name = a
        .sources
        .text(*file)
        .get(arch.0 as usize..arch.1 as usize)?;
    let graph = a
        .partial
        .checked
        .archs
        .iter()
        .find(|g| g.name == arch_name && g.file == *file)?;
    let node = graph.nodes.iter().find(|n| n.name == sym.name)?;
    Some(format!("```\n{}: {}\n```", sym.name, node.ty))
}

fn arch(a: &Analysis, name: &str) -> Option<String> {
    let checked = &a.partial.checked;
    let Some(i) = checked.archs.iter().position(|g| g.name == name) else {
        return Some(format!(
            "**arch `{name}`**\n\nnot checked yet: its costs show once its errors are fixed"
        ));
    };
    let g = &checked.archs[i];
    let inputs: Vec<String> = g
        .inputs
        .iter()
        .map(|&n| format!("{}: {}", g.nodes[n].name, g.nodes[n].ty))
        .collect();
    let mut s = format!(
        "**arch `{name}`** on `{}`\n\n{} → {}",
        g.hardware,
        inputs.join(", "),
        g.output_type()
    );
    if let Some(ir) = a.partial.graphs.get(i).and_then(Option::as_ref) {
        let cost = ir.total_cost();
        let energy = crate::ir::energy_report(ir).total;
        let _ = write!(
            s,
            "\n\n| | |\n|---|---|\n| MZIs | {} |\n| optical depth | {} |\n| parameters | {} |\n| energy per inference | {} |",
            cost.mzis,
            ir.optical_depth(),
            cost.params,
            format_si(energy, Dim::Energy)
        );
    }
    Some(s)
}

fn hardware(a: &Analysis, name: &str) -> Option<String> {
    let p = a.partial.checked.hardware(name)?;
    let be = p.backend.backend();
    let mut s = format!("**hardware `{name}`**");
    if let Some(base) = &p.extends {
        let _ = write!(s, " extends `{base}`");
    }
    let _ = write!(
        s,
        "\n\n{}\n\nprecision: phase {} bit, DAC {} bit, ADC {} bit\n\nops: {}",
        be.describe(&p.backend),
        p.precision.phase,
        p.precision.dac,
        p.precision.adc,
        p.ops.join(", ")
    );
    Some(s)
}

fn task(a: &Analysis, name: &str) -> Option<String> {
    let t = a.partial.checked.task(name)?;
    let features = t.features.map_or(String::from("?"), |f| f.to_string());
    Some(format!(
        "**task `{name}`**\n\n{features} features → {} classes; split {}/{}/{} (seed {})",
        t.classes, t.split.train, t.split.validation, t.split.test, t.split.seed
    ))
}

/// The field key under `offset` inside a hardware profile's section.
pub fn hardware_field_at(
    tree: &syntax::File,
    offset: usize,
) -> Option<(&syntax::Hardware, &syntax::Section, &syntax::Ident)> {
    tree.items.iter().find_map(|i| {
        let Item::Hardware(h) = i else { return None };
        h.body.entries.iter().find_map(|e| {
            let Entry::Section(s) = e else { return None };
            s.body.entries.iter().find_map(|e| match e {
                Entry::Field(f) if contains(f.key.span, offset) => Some((h, s, &f.key)),
                _ => None,
            })
        })
    })
}

fn show(v: f64, dim: Dim) -> String {
    if dim == Dim::None {
        format!("{v}")
    } else {
        format_si(v, dim)
    }
}

fn field(
    a: &Analysis,
    hw: &syntax::Hardware,
    section: &syntax::Section,
    key: &syntax::Ident,
) -> Option<String> {
    if section.name.name == "backend" {
        let be = crate::backend::by_name(&section.kind.as_ref()?.name)?;
        let f = be.fields().iter().find(|f| f.name == key.name)?;
        let kind = match f.kind {
            crate::backend::FieldKind::Choice(c) => format!("one of {}", c.join(", ")),
            crate::backend::FieldKind::Count { min, max } => {
                format!("a whole number from {min} to {max}")
            }
            crate::backend::FieldKind::Real { dim, min, max, .. } => format!(
                "{} from {} to {}",
                dim.describe(),
                show(min, dim),
                show(max, dim)
            ),
        };
        return Some(format!(
            "**`{}`** of {}: {kind}\n\n{}",
            key.name,
            be.block_name(),
            f.doc
        ));
    }
    let f: &FieldInfo = fields::field(&section.name.name, &key.name)?;
    let default = (f.get)(&default_precision(), &Noise::default(), &default_energy());
    let mut s = format!(
        "**`{}.{}`**: {}\n\ndimension: {} (e.g. `{}`)\n\nbuilt-in default: {} (source: {})",
        f.section,
        f.name,
        f.doc,
        f.dim.describe(),
        f.dim.example_unit(),
        show(default, f.dim),
        f.source
    );
    if let Some(p) = a.partial.checked.hardware(&hw.name.name) {
        let _ = write!(s, "\n\nin `{}`: {}", p.name, show(value_of(f, p), f.dim));
    }
    if let Some(base) = &hw.extends {
        match set_in_chain(a, &base.name, f) {
            Some(owner) => {
                let _ = write!(s, " (overrides `{owner}`'s value)");
            }
            None => {
                let _ = write!(s, " (overrides the built-in default; no parent sets it)");
            }
        }
    }
    Some(s)
}

fn value_of(f: &FieldInfo, p: &HardwareProfile) -> f64 {
    (f.get)(&p.precision, &p.noise, &p.energy)
}

/// The first profile up the `extends` chain from `name` that sets the field.
pub fn set_in_chain(a: &Analysis, name: &str, f: &FieldInfo) -> Option<String> {
    let mut name = name.to_string();
    for _ in 0..64 {
        let hw = a.files.iter().find_map(|(_, t)| {
            t.items.iter().find_map(|i| match i {
                Item::Hardware(h) if h.name.name == name => Some(h),
                _ => None,
            })
        })?;
        let sets = hw.body.entries.iter().any(|e| match e {
            Entry::Section(s) if s.name.name == f.section => s
                .body
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Field(x) if x.key.name == f.name)),
            _ => false,
        });
        if sets {
            return Some(name);
        }
        name = hw.extends.as_ref()?.name.clone();
    }
    None
}
