//! Prompts of the LLM operators. The language reference is generated from the grammar,
//! the op catalogue, the unit table and the metric list, so what the model is told cannot
//! drift from what the compiler accepts. Two styles ([`PromptStyle`]): the full reference
//! for hosted models, and a compact one for small local models. Pure: no I/O.

use crate::check::model::{Direction, HardwareProfile, Metric};
use crate::check::units::Dim;
use crate::check::{ops, units};
use crate::search::engine::SearchContext;
use crate::search::store::CandidateRecord;

pub use crate::llm::PromptStyle;

/// The grammar the parser is generated from.
const GRAMMAR: &str = include_str!("../../grammar/uh.pest");

/// A safety cap on a prompt's characters (system and user text together), on top of the
/// token bound.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 24_000;

/// Default bound on every request's prompt tokens in the full style: fits the 8 192-token
/// context of small local models (SmolLM2) with a 1 024-token reply and slack for the chat
/// template.
pub const DEFAULT_MAX_PROMPT_TOKENS: usize = 6_000;

/// Default bound in the compact style. Its first-round prompts measure 1 000-1 600
/// SmolLM2 tokens (the full style's 2 750-3 250); the rest is room for a repair round (the
/// reply and the diagnostics).
pub const DEFAULT_MAX_PROMPT_TOKENS_COMPACT: usize = 2_048;

/// Characters per token assumed until a server reports real usage. SmolLM2's tokenizer
/// gives 2.06 on the JSON-heavy design-notes prompt and 2.5-2.6 on proposal prompts
/// (measured on uhc's prompts with its GGUF vocabulary); OpenAI's rule of thumb is 4 for
/// English prose. 2.0 errs on the short side.
pub const PRIOR_CHARS_PER_TOKEN: f64 = 2.0;

/// Tokens in `chars` characters at `chars_per_token`, rounded up.
pub fn estimate_tokens(chars: usize, chars_per_token: f64) -> usize {
    (chars as f64 / chars_per_token.max(0.5)).ceil() as usize
}

/// Characters that fit in `tokens` at `chars_per_token`, rounded down.
pub fn chars_for_tokens(tokens: usize, chars_per_token: f64) -> usize {
    (tokens as f64 * chars_per_token.max(0.5)).floor() as usize
}

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

/// The short reference of the compact style: how an arch is written, with `example` (a
/// valid arch, e.g. a seed of the search) as the worked example, and the ops `hw`
/// supports from the op catalogue, each with its signature and the first sentence of its
/// description.
pub fn compact_reference(hw: &HardwareProfile, example: Option<&str>) -> String {
    let mut out = String::from(
        "# Writing an arch in .uh\n\
         An arch is one block: `arch NAME on HARDWARE { ... }`. Inside, one statement per line:\n\
         - `input x: real[WIDTH]` declares the input (the only line with a `:`);\n\
         - `NAME = op(VALUE, ...)` applies an operation to a value bound on an earlier line;\n\
         - `output detect(NAME)` ends it.\n\
         Names are a letter or `_` followed by letters, digits or `_`. Named arguments are \
         written `name = value`. Comments start with `//`.\n",
    );
    if let Some(example) = example {
        out.push_str(&format!(
            "\nA valid arch (it compiles):\n```uh\n{}\n```\n",
            example.trim()
        ));
    }
    out.push_str(&format!("\n## Operations on `{}`\n", hw.name));
    for op in ops::CATALOG.iter().filter(|op| hw.supports(op.name)) {
        out.push_str(&format!(
            "- `{}`: {}\n",
            op.signature,
            first_sentence(op.doc)
        ));
    }
    out
}

/// The text up to and including the first `. ` that ends a sentence (not "et al. ",
/// "e.g. ", "i.e. "), or all of it.
fn first_sentence(doc: &str) -> &str {
    let mut from = 0;
    while let Some(i) = doc[from..].find(". ").map(|i| from + i) {
        let before = &doc[..i];
        if !["et al", "e.g", "i.e"].iter().any(|a| before.ends_with(a)) {
            return &doc[..=i];
        }
        from = i + 2;
    }
    doc
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

/// The hardware in one paragraph, for the compact style: the backend, the width limit,
/// the noise and loss that punish depth.
pub fn compact_hardware_section(cx: &SearchContext) -> Section {
    let hw = &cx.hardware;
    let backend = hw.backend.backend().describe(&hw.backend);
    let n = &hw.noise;
    let noise = if hw.backend.backend().optical() {
        format!(
            " Each MZI a signal passes adds {} dB loss and {} rad phase noise: deep meshes lose accuracy under noise.",
            n.loss_per_mzi_db, n.phase_sigma
        )
    } else {
        String::new()
    };
    Section::keep(
        format!("Hardware `{}`", hw.name),
        format!("{backend}.{noise}"),
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
        .map(|c| {
            format!(
                "{} {} {}",
                c.metric.name(),
                c.op.as_str(),
                units::format_si(c.bound, metric_dim(c.metric))
            )
        })
        .collect();
    let output = if cx.hardware.backend.backend().optical() {
        "output detect(y)"
    } else {
        "output y"
    };
    Section::keep(
        format!("Task `{}`", cx.task.name),
        format!(
            "{features} input features, {} classes. A candidate is exactly one item:\n\
             `arch NAME on {} {{ input x: real[{features}] ... {output} }}` where `y` has width {}.\n\
             Objectives: {}. Constraints: {}.",
            cx.task.classes,
            cx.hardware.name,
            cx.task.classes,
            objectives.join(", "),
            if constraints.is_empty() { "none".into() } else { constraints.join(", ") }
        ),
    )
}

/// One line of figures for an evaluated candidate, in the units a reader uses.
pub fn metrics_line(_cx: &SearchContext, c: &CandidateRecord) -> String {
    let Some(e) = &c.evaluation else {
        return format!("#{} (not evaluated)", c.id);
    };
    let m = &e.metrics;
    let violations = if m.violations.is_empty() {
        String::new()
    } else {
        format!(
            ", violates {}",
            m.violations
                .iter()
                .map(|v| v.constraint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "#{} accuracy {:.3}, under noise {:.3} (lost {:.3}), energy {} per inference, depth {}{}, {} parameters{violations}",
        c.id,
        m.accuracy,
        m.noisy_accuracy_mean,
        m.accuracy_drop,
        units::format_si(m.energy_pj * 1e-12, Dim::Energy),
        m.depth,
        m.mzi_count.map_or(String::new(), |v| format!(", {v} MZIs")),
        m.params,
    )
}

/// The dimension a metric's bound is written in.
fn metric_dim(metric: Metric) -> Dim {
    if metric == Metric::Energy {
        Dim::Energy
    } else {
        Dim::None
    }
}

/// A candidate's layers in one line, `linear 16 > modrelu > linear 10 > detect`: what a
/// model needs to tell designs apart, in a few tokens. `None` for text that does not
/// parse to an `arch`.
pub fn chain(text: &str) -> Option<String> {
    use crate::syntax::{Entry, Expr, Item};
    let (file, _) = crate::syntax::parse(crate::diag::FileId(0), text);
    let arch = file.items.into_iter().find_map(|i| match i {
        Item::Arch(a) => Some(a),
        _ => None,
    })?;
    fn calls(e: &Expr, out: &mut Vec<String>) {
        if let Expr::Call(c) = e {
            // Inner calls first: `detect(linear(a, 10))` is linear, then detect.
            if let Some(first) = c.args.first() {
                calls(&first.value, out);
            }
            let width = c
                .args
                .iter()
                .skip(1)
                .find_map(|a| match (&a.name, &a.value) {
                    (None, Expr::Quantity(q)) => Some(q.number.text.clone()),
                    _ => None,
                });
            out.push(match width {
                Some(w) => format!("{} {w}", c.func.name),
                None => c.func.name.clone(),
            });
        }
    }
    let mut out = Vec::new();
    for e in &arch.body.entries {
        match e {
            Entry::Field(f) => calls(&f.value, &mut out),
            Entry::Output(o) => calls(&o.value, &mut out),
            _ => {}
        }
    }
    (!out.is_empty()).then(|| out.join(" > "))
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

    fn profile(name: &str) -> HardwareProfile {
        let (compiled, diags, _) =
            crate::check_source("t.uh", "use \"hw/mzi.uh\"\nuse \"hw/digital.uh\"\n");
        assert!(diags.is_empty(), "{diags:?}");
        compiled
            .and_then(|c| c.checked.hardware(name).cloned())
            .expect("profile")
    }

    #[test]
    fn compact_reference_lists_exactly_the_ops_the_hardware_offers() {
        let example = "arch a on mzi_realistic {\n    input x: real[16]\n    y = linear(x, 10)\n    output detect(y)\n}";
        for name in ["mzi_realistic", "cpu_fp32"] {
            let hw = profile(name);
            let r = compact_reference(&hw, Some(example));
            let mut listed = 0;
            for op in ops::CATALOG {
                assert_eq!(
                    r.contains(op.signature),
                    hw.supports(op.name),
                    "{name}: {}",
                    op.name
                );
                listed += usize::from(hw.supports(op.name));
            }
            assert!(listed >= 4, "{name}: {listed} ops");
            assert!(r.contains(&format!("```uh\n{example}\n```")));
            assert!(!r.contains("Grammar") && !r.contains("dBm"));
            // Under two fifths of the full reference (1 500 against 4 300 characters).
            assert!(
                5 * r.chars().count() < 2 * language_reference().chars().count(),
                "{name}: {} characters",
                r.chars().count()
            );
        }
        assert!(!compact_reference(&profile("cpu_fp32"), None).contains("```"));
    }

    #[test]
    fn first_sentence_skips_abbreviations() {
        assert_eq!(
            first_sentence("Dense layer. On a mesh: more."),
            "Dense layer."
        );
        assert_eq!(
            first_sentence("Activation (Williamson et al. 2019): x. Then y."),
            "Activation (Williamson et al. 2019): x."
        );
        assert_eq!(first_sentence("No full stop"), "No full stop");
        assert_eq!(first_sentence("Ends here."), "Ends here.");
    }

    #[test]
    fn token_estimates_round_to_the_safe_side() {
        assert_eq!(estimate_tokens(10, 2.5), 4);
        assert_eq!(estimate_tokens(11, 2.5), 5);
        assert_eq!(chars_for_tokens(4, 2.5), 10);
        assert_eq!(chars_for_tokens(3, 2.6), 7);
        for chars in [0, 1, 999, 24_000] {
            for cpt in [1.0, 2.06, 2.5, 4.0] {
                assert!(chars_for_tokens(estimate_tokens(chars, cpt), cpt) >= chars);
            }
        }
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
