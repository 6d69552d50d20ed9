//! Prompts of the LLM operators. The language reference is generated from the grammar,
//! the op catalogue, the unit table and the metric list, so what the model is told cannot
//! drift from what the compiler accepts. Pure: no I/O.

use crate::check::model::{Direction, Metric};
use crate::check::{ops, units};
use crate::search::engine::{metric_value, SearchContext};
use crate::search::store::CandidateRecord;

/// The grammar the parser is generated from.
const GRAMMAR: &str = include_str!("../../grammar/uh.pest");

/// Default bound on a prompt's characters (system and user text together). About 6 000
/// tokens at four characters per token: fits the 8k context of small local models
/// (SmolLM2 has 8 192) with room for a reply.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 24_000;

/// A compact reference of the `.uh` language for the model.
pub fn language_reference() -> String {
    let mut out = String::from(
        "# The .uh language\n\n## Grammar (PEG; `~` is sequence, `?` optional, `*` repetition)\n",
    );
    for line in GRAMMAR.lines() {
        let line = line.trim_end();
        if line.is_empty()
            || line.trim_start().starts_with("//")
            || line.starts_with("WHITESPACE")
            || line.starts_with("COMMENT")
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(
        "Comments start with `//`. In an `arch` block: `input NAME: real[WIDTH]` declares the input, \
         `NAME = op(args)` binds a value, `output op(...)` is the result. Each value is used after it is bound.\n\n## Operations\n",
    );
    for op in ops::CATALOG {
        out.push_str(&format!("- `{}`: {}", op.signature, op.doc));
        for p in op.params {
            match p.default {
                Some(d) => out.push_str(&format!(" `{}` (default {d}): {}.", p.name, p.doc)),
                None => out.push_str(&format!(" `{}` (required): {}.", p.name, p.doc)),
            }
        }
        out.push('\n');
    }
    out.push_str("\n## Units (write a number, a space, the unit: `0.2 dB`)\n");
    let mut by_dim: Vec<(units::Dim, Vec<&str>)> = Vec::new();
    for &(unit, dim, _) in units::UNITS {
        match by_dim.iter_mut().find(|(d, _)| *d == dim) {
            Some((_, v)) => v.push(unit),
            None => by_dim.push((dim, vec![unit])),
        }
    }
    for (dim, list) in by_dim {
        out.push_str(&format!("- {}: {}\n", dim.describe(), list.join(", ")));
    }
    out.push_str("\n## Metrics (objectives and constraints)\n");
    out.push_str(
        &Metric::ALL
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push('\n');
    out
}

/// One part of a prompt. Droppable parts are removed when the prompt is over its bound,
/// lowest `drop_order` first (give older material lower numbers).
#[derive(Clone, Debug)]
pub struct Section {
    pub title: String,
    pub body: String,
    /// `None`: always kept.
    pub drop_order: Option<u32>,
}

impl Section {
    pub fn keep(title: impl Into<String>, body: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            body: body.into(),
            drop_order: None,
        }
    }
    pub fn droppable(title: impl Into<String>, body: impl Into<String>, drop_order: u32) -> Self {
        Section {
            title: title.into(),
            body: body.into(),
            drop_order: Some(drop_order),
        }
    }
    fn render(&self) -> String {
        format!("## {}\n{}\n", self.title, self.body.trim_end())
    }
}

/// Joins sections into a user message of at most `max_chars` characters (`system_chars`
/// already spent). Droppable sections go first, by `drop_order`; if the kept ones are still too long, the text before the last section (the
/// instruction) is cut from its start, keeping its most recent part.
pub fn assemble(sections: &[Section], system_chars: usize, max_chars: usize) -> String {
    let budget = max_chars.saturating_sub(system_chars);
    let mut live: Vec<bool> = vec![true; sections.len()];
    let total = |live: &[bool]| {
        sections
            .iter()
            .zip(live)
            .filter(|(_, l)| **l)
            .map(|(s, _)| s.render().chars().count() + 1)
            .sum::<usize>()
    };
    let mut order: Vec<(u32, usize)> = sections
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.drop_order.map(|o| (o, i)))
        .collect();
    order.sort_unstable();
    for (_, i) in order {
        if total(&live) <= budget {
            break;
        }
        live[i] = false;
    }
    let kept: Vec<String> = sections
        .iter()
        .zip(&live)
        .filter(|(_, l)| **l)
        .map(|(s, _)| s.render())
        .collect();
    let text = kept.join("\n");
    if text.chars().count() <= budget {
        return text;
    }
    let last = kept.last().cloned().unwrap_or_default();
    let head_budget = budget.saturating_sub(last.chars().count() + 30);
    let head = kept[..kept.len().saturating_sub(1)].join("\n");
    let n = head.chars().count();
    let tail: String = head.chars().skip(n.saturating_sub(head_budget)).collect();
    format!("[earlier context truncated]\n{tail}\n{last}")
}

/// The hardware, as the search file says it and as the compiler resolved it.
pub fn hardware_section(cx: &SearchContext) -> Section {
    let resolved =
        serde_json::to_string(&cx.hardware).unwrap_or_else(|_| format!("{:?}", cx.hardware));
    Section::keep(
        format!("Hardware `{}`", cx.hardware.name),
        format!(
            "Search file prelude:\n```uh\n{}\n```\nResolved profile (SI units: J, W, Hz, rad; dB for losses):\n{resolved}\n\
             Every MZI an optical signal passes adds insertion loss, phase noise and crosstalk: deep meshes lose accuracy under noise.",
            cx.prelude.trim()
        ),
    )
}

/// The task, objectives and constraints, and the required interface of a candidate.
pub fn task_section(cx: &SearchContext) -> Section {
    let features = cx
        .task
        .features
        .map_or("(the task's feature count)".to_string(), |f| f.to_string());
    let objectives: Vec<String> = cx
        .spec
        .objectives
        .iter()
        .map(|o| {
            format!(
                "{}({})",
                if o.direction == Direction::Maximize {
                    "maximize"
                } else {
                    "minimize"
                },
                o.metric.name()
            )
        })
        .collect();
    let constraints: Vec<String> = cx
        .spec
        .constraints
        .iter()
        .map(|c| format!("{} {} {} (SI)", c.metric.name(), c.op.as_str(), c.bound))
        .collect();
    Section::keep(
        format!("Task `{}`", cx.task.name),
        format!(
            "{features} input features, {} classes. A candidate is exactly one item:\n\
             `arch NAME on {} {{ input x: real[{features}] ... output detect(y) }}` where `y` has width {}.\n\
             Objectives: {}. Constraints: {}.",
            cx.task.classes,
            cx.hardware.name,
            cx.task.classes,
            objectives.join(", "),
            if constraints.is_empty() { "none".into() } else { constraints.join(", ") }
        ),
    )
}

/// One line of figures for an evaluated candidate.
pub fn metrics_line(cx: &SearchContext, c: &CandidateRecord) -> String {
    let Some(e) = &c.evaluation else {
        return format!("#{} (not evaluated)", c.id);
    };
    let m = &e.metrics;
    let objectives: Vec<String> = cx
        .spec
        .objectives
        .iter()
        .map(|o| format!("{}={:.4e}", o.metric.name(), metric_value(m, o.metric)))
        .collect();
    format!(
        "#{} accuracy={:.3} noisy_accuracy={:.3} lost_to_noise={:.3} energy={:.3} pJ depth={} mzis={} params={}{} [{}]",
        c.id,
        m.accuracy,
        m.noisy_accuracy_mean,
        m.accuracy_drop,
        m.energy_pj,
        m.depth,
        m.mzi_count.map_or("-".into(), |v| v.to_string()),
        m.params,
        if m.violations.is_empty() { String::new() } else { format!(" violates {}", m.violations.iter().map(|v| v.constraint.as_str()).collect::<Vec<_>>().join(", ")) },
        objectives.join(" ")
    )
}

/// A candidate's figures and its text.
pub fn candidate_block(cx: &SearchContext, c: &CandidateRecord) -> String {
    format!(
        "{}\n```uh\n{}\n```\n",
        metrics_line(cx, c),
        c.canonical_text.as_deref().unwrap_or(&c.text).trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_names_every_op_unit_and_metric() {
        let r = language_reference();
        for op in ops::CATALOG {
            assert!(r.contains(op.signature), "missing op {}", op.name);
        }
        for (unit, _, _) in units::UNITS {
            assert!(
                r.contains(&format!(" {unit},")) || r.contains(&format!(" {unit}\n")),
                "missing unit {unit}"
            );
        }
        for (m, _) in Metric::ALL {
            assert!(r.contains(m), "missing metric {m}");
        }
        assert!(r.contains("arch_item"), "grammar rules are included");
        assert!(!r.contains("WHITESPACE"));
    }

    #[test]
    fn assemble_drops_oldest_droppable_sections_first() {
        let s = vec![
            Section::droppable("new", "b".repeat(100), 1),
            Section::droppable("old", "a".repeat(100), 0),
            Section::keep("instruction", "do it"),
        ];
        let all = assemble(&s, 0, 10_000);
        assert!(all.contains("## old") && all.contains("## new"));
        let one = assemble(&s, 0, 200);
        assert!(!one.contains("## old") && one.contains("## new") && one.contains("do it"));
        assert!(one.chars().count() <= 200);
        let none = assemble(&s, 0, 60);
        assert!(!none.contains("## new") && none.contains("do it"));
        // Required text alone over the bound: the instruction survives, the head is cut.
        let tight = vec![
            Section::keep("ref", "r".repeat(500)),
            Section::keep("instruction", "do it"),
        ];
        let cut = assemble(&tight, 100, 300);
        assert!(cut.ends_with("do it\n") && cut.starts_with("[earlier context truncated]"));
        assert!(cut.chars().count() <= 200 + 1, "{}", cut.chars().count());
    }
}
