//! What a run store belongs to: the identity of its search, recorded in the store's run
//! configuration when it is created and compared whenever a search opens it.
//!
//! The identity is the search's name, and a hash of each checked part that gives the
//! archive its meaning: the task (data set, encoders, classes, split), the hardware profile
//! (every number of it, not only its name), the objectives and constraints, the operator
//! mix, and how a candidate is evaluated (training settings and noise draws). The source
//! file's name and a hash of its text are recorded too, to say where a run came from.
//!
//! A search whose identity differs from the store's is refused, with what differs. A
//! different budget, population, offspring count, generation count, timeout or source
//! text (comments, other items) is allowed: none of them changes what a stored score means.
//! Stores written before identities were recorded (no `identity` key) are compared by the
//! names their configuration holds: search, task, hardware, objectives and operators.

use super::engine::SearchContext;
use crate::check::model::TaskSpec;
use crate::ir::text_hash;
use serde_json::{json, Value};

/// The parts compared, in the order a message names them, with their words.
const PARTS: [(&str, &str); 6] = [
    ("search", "the search's name"),
    ("task", "the task"),
    ("hardware", "the hardware profile"),
    ("objectives", "the objectives and constraints"),
    ("operators", "the operators"),
    (
        "evaluation",
        "the evaluation (training settings or noise draws)",
    ),
];

fn part(label: String, value: &impl serde::Serialize) -> Value {
    let text = serde_json::to_string(value).unwrap_or_default();
    json!({ "label": label, "hash": text_hash(&text) })
}

/// The identity of the search `cx` on `task` (its task, with data paths made canonical by
/// the caller: [`crate::driver::canonical_data_paths`]) run with `operators`, read from
/// `file` with `text`.
pub fn identity(
    cx: &SearchContext,
    task: &TaskSpec,
    operators: &[(String, f64)],
    file: &str,
    text: &str,
) -> Value {
    let s = &cx.spec;
    let ops: Vec<String> = operators.iter().map(|(n, w)| format!("{n}={w}")).collect();
    let objectives: Vec<String> = s
        .objectives
        .iter()
        .map(|o| format!("{:?} {:?}", o.direction, o.metric).to_lowercase())
        .collect();
    json!({
        "version": 1,
        "search": part(format!("`{}`", s.name), &s.name),
        "task": part(format!("`{}`", task.name), task),
        "hardware": part(format!("`{}`", cx.hardware.name), &cx.hardware),
        "objectives": part(objectives.join(", "), &(&s.objectives, &s.constraints)),
        "operators": part(ops.join(","), &ops),
        "evaluation": part(
            format!("{} epochs, {} draws", s.train.epochs, s.draws),
            &(&s.train, s.draws),
        ),
        "source": { "file": file, "hash": text_hash(text) },
    })
}

/// The comparable parts of a stored or current configuration: its `identity` when it has
/// one, else (`legacy`) what an older configuration holds by name.
fn parts(config: &Value, legacy: bool) -> Vec<(&'static str, String, String)> {
    let get = |key: &str| -> (String, String) {
        if !legacy {
            if let Some(p) = config.get("identity").and_then(|i| i.get(key)) {
                let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return (s("label"), s("hash"));
            }
        }
        let spec = config.get("spec").cloned().unwrap_or(Value::Null);
        let v = match key {
            "search" => config.get("search").cloned().unwrap_or(Value::Null),
            "task" => spec.get("task").cloned().unwrap_or(Value::Null),
            "hardware" => spec.get("hardware").cloned().unwrap_or(Value::Null),
            "objectives" => json!([spec.get("objectives"), spec.get("constraints")]),
            "operators" => config.get("operators").cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let label = match &v {
            Value::String(s) => format!("`{s}`"),
            other => other.to_string(),
        };
        (label, text_hash(&v.to_string()))
    };
    PARTS
        .iter()
        .filter(|(k, _)| !legacy || *k != "evaluation")
        .map(|&(k, _)| {
            let (label, hash) = get(k);
            (k, label, hash)
        })
        .collect()
}

/// What differs between the store's configuration and the current search's, one line
/// each ("the hardware profile: `mzi_realistic` → `cpu_fp32`"); empty when the search may
/// resume the store.
pub fn differences(stored: &Value, current: &Value) -> Vec<String> {
    differences_in(stored, current, &PARTS.map(|p| p.0))
}

/// [`differences`] in the parts named by `keys` only (e.g. task, hardware, objectives:
/// what makes two runs' fronts comparable). Compared by name when either configuration
/// has no identity.
pub fn differences_in(stored: &Value, current: &Value, keys: &[&str]) -> Vec<String> {
    let legacy = stored.get("identity").is_none() || current.get("identity").is_none();
    let old = parts(stored, legacy);
    let new = parts(current, legacy);
    let words = |k: &'static str| PARTS.iter().find(|p| p.0 == k).map_or(k, |p| p.1);
    old.iter()
        .zip(&new)
        .filter(|(a, _)| keys.contains(&a.0))
        .filter(|(a, b)| a.2 != b.2)
        .map(|(a, b)| {
            if a.1 == b.1 {
                format!("{}: {} is defined differently", words(a.0), a.1)
            } else {
                format!("{}: {} → {}", words(a.0), a.1, b.1)
            }
        })
        .collect()
}

/// "search `a` from a.uh", for messages.
pub fn describe(config: &Value) -> String {
    let search = config.get("search").and_then(Value::as_str).unwrap_or("?");
    match config.get("file").and_then(Value::as_str) {
        Some(f) => format!("search `{search}` from {f}"),
        None => format!("search `{search}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(search: &str, hardware: &str, ops: Value) -> Value {
        json!({
            "file": "a.uh",
            "search": search,
            "spec": { "task": "digits4", "hardware": hardware, "objectives": [], "constraints": [], "budget": 10 },
            "operators": ops,
        })
    }

    #[test]
    fn stores_without_an_identity_are_compared_by_name() {
        let stored = legacy("a", "mzi_realistic", json!([["mutate", 0.7]]));
        let mut current = legacy("a", "mzi_realistic", json!([["mutate", 0.7]]));
        current["spec"]["budget"] = json!(99);
        current["identity"] = json!({ "search": { "label": "`a`", "hash": "x" } });
        assert!(differences(&stored, &current).is_empty());
        current["spec"]["hardware"] = json!("mzi_worst");
        current["operators"] = json!([["crossover", 1.0]]);
        let d = differences(&stored, &current);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0], "the hardware profile: `mzi_realistic` → `mzi_worst`");
        assert!(d[1].starts_with("the operators: "), "{d:?}");
    }

    #[test]
    fn identities_are_compared_part_by_part() {
        let id = |task_hash: &str, label: &str| {
            json!({ "search": "s", "identity": {
                "search": { "label": "`s`", "hash": "1" },
                "task": { "label": label, "hash": task_hash },
                "hardware": { "label": "`h`", "hash": "2" },
                "objectives": { "label": "o", "hash": "3" },
                "operators": { "label": "m", "hash": "4" },
                "evaluation": { "label": "e", "hash": "5" },
                "source": { "file": "a.uh", "hash": "6" },
            }})
        };
        assert!(differences(&id("t", "`t`"), &id("t", "`t`")).is_empty());
        assert_eq!(
            differences(&id("t", "`t`"), &id("u", "`t`")),
            ["the task: `t` is defined differently"]
        );
        assert_eq!(
            differences(&id("t", "`t`"), &id("u", "`u`")),
            ["the task: `t` → `u`"]
        );
        assert_eq!(describe(&id("t", "`t`")), "search `s`");
    }
}
