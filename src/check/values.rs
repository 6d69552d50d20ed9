//! Reading typed values out of expressions, with a diagnostic for each way it can fail.

use super::suggest;
use super::units::{self, Dim};
use super::Cx;
use crate::diag::{code, Diagnostic, FileId, Fix};
use crate::syntax::{Expr, Ident, Span};

/// What kind of expression something is, in words.
pub fn describe(e: &Expr) -> &'static str {
    match e {
        Expr::Quantity(q) if q.unit.is_some() => "a quantity with a unit",
        Expr::Quantity(_) => "a number",
        Expr::Ident(_) => "a name",
        Expr::Str(_) => "a string",
        Expr::List(_) => "a list",
        Expr::Call(_) => "a call",
    }
}

/// Units to suggest for an unknown one: those of the expected dimension when it has units,
/// so `mw` for a power becomes `mW` and never `ms`.
fn unit_candidates(dim: Dim) -> Vec<&'static str> {
    let of_dim: Vec<&str> = units::UNITS
        .iter()
        .filter(|u| u.1 == dim && dim != Dim::None)
        .map(|u| u.0)
        .collect();
    if of_dim.is_empty() {
        units::UNITS.iter().map(|u| u.0).collect()
    } else {
        of_dim
    }
}

/// True when `from` → `to` only changes the case of a prefix letter that means something
/// else in the other case (`M` mega vs `m` milli, `P` peta vs `p` pico, `Z` zetta vs `z`
/// zepto): a scale change of many orders of magnitude is not a spelling fix.
fn swaps_prefix(from: &str, to: &str) -> bool {
    match (from.chars().next(), to.chars().next()) {
        (Some(a), Some(b)) => {
            a != b
                && a.eq_ignore_ascii_case(&b)
                && matches!(b.to_ascii_lowercase(), 'm' | 'p' | 'z')
        }
        _ => false,
    }
}

impl Cx<'_> {
    pub fn wrong_kind(
        &mut self,
        file: FileId,
        e: &Expr,
        what: &str,
        expected: &str,
        example: &str,
    ) {
        self.push(
            Diagnostic::error(
                code::VALUE,
                file,
                e.span(),
                format!("`{what}` must be {expected}, not {}", describe(e)),
            )
            .with_label(format!("expected {expected}"))
            .with_help(format!("write it like `{what} = {example}`")),
        );
    }

    /// A quantity in SI units, checking its dimension.
    pub fn quantity(&mut self, file: FileId, e: &Expr, what: &str, dim: Dim) -> Option<f64> {
        let Expr::Quantity(q) = e else {
            let example = format!("1 {}", dim.example_unit());
            self.wrong_kind(file, e, what, dim.describe(), example.trim());
            return None;
        };
        let value = q.number.value;
        match &q.unit {
            None if dim == Dim::None => Some(value),
            None => {
                self.push(
                    Diagnostic::error(
                        code::UNIT,
                        file,
                        q.span,
                        format!(
                            "`{what}` is {} but `{}` has no unit",
                            dim.describe(),
                            q.number.text
                        ),
                    )
                    .with_label("unit missing")
                    .with_help(format!(
                        "write `{} {}`",
                        q.number.text,
                        dim.example_unit()
                    )),
                );
                None
            }
            Some(u) => match units::lookup(&u.name) {
                None => {
                    let names = unit_candidates(dim);
                    let help = match suggest::closest(&u.name, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? `{what}` is {}", dim.describe()),
                        None => format!("`{what}` is {}", dim.describe()),
                    };
                    let fix = suggest::unique_closest(&u.name, names.iter().copied())
                        .filter(|s| !swaps_prefix(&u.name, s))
                        .map(|s| {
                            Fix::replace(u.span, s, format!("replace `{}` with `{s}`", u.name))
                        });
                    self.push(
                        Diagnostic::error(
                            code::UNIT,
                            file,
                            u.span,
                            format!("unknown unit `{}`", u.name),
                        )
                        .with_label("unknown unit")
                        .with_help(help)
                        .with_fixes(fix),
                    );
                    None
                }
                Some((d, factor)) if d == dim => Some(value * factor),
                Some((d, _)) => {
                    let help = if dim == Dim::None {
                        format!("`{what}` is a plain number: remove `{}`", u.name)
                    } else {
                        format!(
                            "use a unit of {}, e.g. `{} {}`",
                            dim.describe(),
                            q.number.text,
                            dim.example_unit()
                        )
                    };
                    self.push(
                        Diagnostic::error(
                            code::UNIT,
                            file,
                            u.span,
                            format!(
                                "`{what}` is {}, but `{}` is {}",
                                dim.describe(),
                                u.name,
                                d.describe()
                            ),
                        )
                        .with_label("wrong dimension")
                        .with_help(help),
                    );
                    None
                }
            },
        }
    }

    /// A plain number within `[lo, hi]`.
    pub fn number_in(
        &mut self,
        file: FileId,
        e: &Expr,
        what: &str,
        dim: Dim,
        (lo, hi): (f64, f64),
        why: &str,
    ) -> Option<f64> {
        let v = self.quantity(file, e, what, dim)?;
        if v < lo || v > hi || v.is_nan() {
            self.range_error(file, e.span(), what, v, dim, why);
            return None;
        }
        Some(v)
    }

    pub fn range_error(
        &mut self,
        file: FileId,
        span: Span,
        what: &str,
        v: f64,
        dim: Dim,
        why: &str,
    ) {
        self.push(
            Diagnostic::error(
                code::RANGE,
                file,
                span,
                format!(
                    "`{what}` = {} is outside its physical range",
                    units::format_si(v, dim)
                ),
            )
            .with_label("out of range")
            .with_help(why.to_string()),
        );
    }

    /// A whole number within `[lo, hi]`.
    pub fn integer(
        &mut self,
        file: FileId,
        e: &Expr,
        what: &str,
        dim: Dim,
        lo: u64,
        hi: u64,
    ) -> Option<u64> {
        let v = self.quantity(file, e, what, dim)?;
        if v.fract() != 0.0 {
            self.push(
                Diagnostic::error(
                    code::VALUE,
                    file,
                    e.span(),
                    format!("`{what}` must be a whole number, not {v}"),
                )
                .with_label("not a whole number")
                .with_help(format!("round it, e.g. `{}`", v.round())),
            );
            return None;
        }
        if v < lo as f64 || v > hi as f64 {
            self.push(
                Diagnostic::error(
                    code::RANGE,
                    file,
                    e.span(),
                    format!("`{what}` = {v} is outside {lo}..={hi}"),
                )
                .with_label("out of range")
                .with_help(format!("use a value from {lo} to {hi}")),
            );
            return None;
        }
        Some(v as u64)
    }

    /// One of a fixed set of names.
    pub fn choice<'c>(
        &mut self,
        file: FileId,
        e: &Expr,
        what: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let Expr::Ident(id) = e else {
            let example = choices.first().copied().unwrap_or("name");
            self.wrong_kind(file, e, what, "a name", example);
            return None;
        };
        if let Some(c) = choices.iter().find(|c| **c == id.name) {
            return Some(c);
        }
        self.unknown_choice(file, id, what, choices);
        None
    }

    pub fn unknown_choice(&mut self, file: FileId, id: &Ident, what: &str, choices: &[&str]) {
        self.push(
            Diagnostic::error(
                code::VALUE,
                file,
                id.span,
                format!("`{}` is not a valid `{what}`", id.name),
            )
            .with_label("unknown value")
            .with_suggestion(&id.name, id.span, choices, "value"),
        );
    }

    pub fn boolean(&mut self, file: FileId, e: &Expr, what: &str) -> Option<bool> {
        self.choice(file, e, what, &["true", "false"])
            .map(|c| c == "true")
    }

    /// Reports a field or section that has no meaning where it stands.
    pub fn unknown_key(&mut self, file: FileId, key: &Ident, place: &str, known: &[&str]) {
        self.push(
            Diagnostic::error(
                code::UNKNOWN_FIELD,
                file,
                key.span,
                format!("`{}` is not a field of {place}", key.name),
            )
            .with_label("unknown here")
            .with_suggestion(&key.name, key.span, known, "field"),
        );
    }

    pub fn duplicate_key(&mut self, file: FileId, key: &Ident, first: Span) {
        self.push(
            Diagnostic::error(
                code::DUPLICATE,
                file,
                key.span,
                format!("`{}` is set twice", key.name),
            )
            .with_label("set again here")
            .with_related(file, first, "first set here")
            .with_help("keep one of them"),
        );
    }
}
