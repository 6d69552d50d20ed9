//! Weight files (`uhc-weights/2`, JSON): what `uhc train` writes and `uhc eval --weights`
//! reads, and every check that keeps a file from lying about what it holds.
//!
//! ```text
//! { "format": "uhc-weights/2", "arch": "...", "hardware": "...", "task": "...",
//!   "task_hash": "<hash of the task: data set, encoders, classes, split>",
//!   "split": "train 0.8, validation 0, test 0.2, seed 0",
//!   "hash": "<ir::structural_hash of the lowered graph>", "seed": 0, "epochs": 20,
//!   "noise_aware": false,
//!   "nodes": [ { "node": 1, "name": "h.V", "prim": "mesh",
//!                "fields": { "theta": [...], "phi": [...], "gamma": [...] } }, ... ] }
//! ```
//!
//! One entry per node with parameters, in graph order. Fields, all plain numbers:
//! `mesh`: θ and φ per MZI in mesh order (radians), γ per input port (radians);
//! `attenuate`: `sigma` per attenuator (amplitude in [−1, 1]); `diag`: `amplitude` (in
//! [−1, 1]), `phase` (radians); `modrelu`: `threshold` per mode; `matmul`: `weights`
//! (row-major, out × in) and `bias`, or `weights_re`, `weights_im` when complex; `scale`:
//! `re`, `im`.
//!
//! Loading refuses, naming the node and field: another graph (structural hash), a node
//! missing, listed twice, unknown or of another primitive, a field missing, unknown or of
//! the wrong length, a value that is not finite or outside its physical range; and a
//! task or split other than the one asked for (a warning instead when the caller allows
//! it). Files of format `uhc-weights/1` (no task hash or split) still load, with a warning
//! that their task's split cannot be checked.

use crate::check::model::TaskSpec;
use crate::ir::Prim;
use crate::runtime::{Params, Program};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The format this code writes.
pub const FORMAT: &str = "uhc-weights/2";
/// The older format it still reads (no `task_hash`, no `split`).
pub const FORMAT_V1: &str = "uhc-weights/1";
/// The most bytes read from one weight file.
pub const MAX_WEIGHT_FILE_BYTES: u64 = 256 << 20;

/// Slack on physical ranges, for values that went through a decimal round trip.
const RANGE_SLACK: f64 = 1e-9;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WeightFile {
    pub format: String,
    pub arch: String,
    pub hardware: String,
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    pub hash: String,
    pub seed: u64,
    pub epochs: usize,
    pub noise_aware: bool,
    pub nodes: Vec<NodeWeights>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeWeights {
    pub node: usize,
    pub name: String,
    pub prim: String,
    pub fields: BTreeMap<String, Vec<f64>>,
}

/// How training went, recorded in the file.
#[derive(Clone, Copy, Debug)]
pub struct Provenance {
    pub seed: u64,
    pub epochs: usize,
    pub noise_aware: bool,
}

/// A stable hash of everything about a task that decides what its numbers mean: data
/// set, encoders, classes, encoding and split (not its name, compared on its own).
pub fn task_hash(task: &TaskSpec) -> String {
    let mut v = serde_json::to_value(task).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("name");
    }
    crate::ir::text_hash(&v.to_string())
}

/// The task's split in words, as a weight file records it.
pub fn split_text(task: &TaskSpec) -> String {
    let s = &task.split;
    format!(
        "train {}, validation {}, test {}, seed {}",
        s.train, s.validation, s.test, s.seed
    )
}

/// The name a weight file gives a primitive.
pub fn prim_name(p: &Prim) -> &'static str {
    match p {
        Prim::Mesh { .. } => "mesh",
        Prim::Attenuate => "attenuate",
        Prim::Diag => "diag",
        Prim::ModRelu { .. } => "modrelu",
        Prim::MatMul { .. } => "matmul",
        Prim::Scale { .. } => "scale",
        Prim::Own { name } => name,
        _ => "other",
    }
}

/// The weight file of `program` (trained on `task`, on its graph's hardware).
pub fn to_file(program: &Program, task: &TaskSpec, how: Provenance) -> WeightFile {
    let graph = program.graph();
    WeightFile {
        format: FORMAT.into(),
        arch: graph.arch.clone(),
        hardware: graph.hardware.clone(),
        task: task.name.clone(),
        task_hash: Some(task_hash(task)),
        split: Some(split_text(task)),
        hash: crate::ir::structural_hash(graph),
        seed: how.seed,
        epochs: how.epochs,
        noise_aware: how.noise_aware,
        nodes: graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !program.params.blocks[*i].is_empty())
            .map(|(i, n)| {
                let mut fields = BTreeMap::new();
                let mut at = 0;
                for (name, len) in program.param_fields(i) {
                    fields.insert(
                        name.to_string(),
                        program.params.blocks[i][at..at + len].to_vec(),
                    );
                    at += len;
                }
                NodeWeights {
                    node: i,
                    name: n.name.clone(),
                    prim: prim_name(&n.prim).into(),
                    fields,
                }
            })
            .collect(),
    }
}

/// Parses a weight file's text. JSON has no NaN or infinity, so a file holding one fails
/// here; the message then names the field (and node) the bad value is in.
pub fn parse(text: &str) -> Result<WeightFile, String> {
    serde_json::from_str(text).map_err(|e| {
        let at = offset(text, e.line(), e.column());
        match locate(text, at) {
            Some(place) if e.is_syntax() => {
                // serde_json's message ends with the position, which comes first here.
                let full = e.to_string();
                let what = full
                    .rsplit_once(" at line ")
                    .map_or(full.as_str(), |(m, _)| m);
                format!(
                    "line {} column {}: {place} is not a JSON number (NaN and infinities cannot be stored; retrain or fix the value): {what}",
                    e.line(),
                    e.column()
                )
            }
            _ => e.to_string(),
        }
    })
}

/// Byte offset of a 1-based line and column.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

/// "a value of field `sigma` of node `h.S`": the last key before `at` (the field) and the
/// last `"name"` before it (the node), when the error is inside a `fields` object.
fn locate(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let key_end = before.rfind("\":")?;
    let key_start = before[..key_end].rfind('"')? + 1;
    let key = &before[key_start..key_end];
    let node = before[..key_start].rfind("\"name\"").and_then(|i| {
        let rest = &before[i + 6..];
        let open = rest.find('"')? + 1;
        let close = rest[open..].find('"')?;
        Some(rest[open..open + close].to_string())
    });
    Some(match node {
        Some(n) if key != "name" => format!("a value of field `{key}` of node `{n}`"),
        _ => format!("the value of `{key}`"),
    })
}

/// What loading found acceptable but worth saying.
pub type Warnings = Vec<String>;

/// Checks `file` against the graph `program` runs (and its hardware) and the `task` asked
/// for, and installs its parameters. Every problem is an error naming the node and field;
/// a task or split mismatch is a warning instead when `allow_task_mismatch`.
pub fn load(
    file: &WeightFile,
    program: &mut Program,
    task: &TaskSpec,
    allow_task_mismatch: bool,
) -> Result<Warnings, String> {
    let mut warnings = Vec::new();
    if file.format != FORMAT && file.format != FORMAT_V1 {
        return Err(format!(
            "the file has format `{}`; this uhc reads `{FORMAT}` and `{FORMAT_V1}`",
            file.format
        ));
    }
    let graph = program.graph().clone();
    let hash = crate::ir::structural_hash(&graph);
    if file.hash != hash {
        return Err(format!(
            "the weights were trained for arch `{}` on `{}` (hash {}), which differs from `{}` on `{}` (hash {hash}); retrain with `uhc train`",
            file.arch, file.hardware, file.hash, graph.arch, graph.hardware
        ));
    }
    // The task: its name, then what it means (data, encoders, split).
    let mut task_problems = Vec::new();
    if file.task != task.name {
        task_problems.push(format!(
            "the weights were trained on task `{}`, not `{}`",
            file.task, task.name
        ));
    }
    match (&file.task_hash, &file.split) {
        (Some(h), split) if *h != task_hash(task) => {
            let theirs = split.as_deref().unwrap_or("not recorded");
            let ours = split_text(task);
            task_problems.push(if theirs != ours {
                format!("the split differs: the file's is {theirs}, task `{}`'s is {ours}", task.name)
            } else {
                format!(
                    "task `{}` differs from the one the weights were trained on (data set, encoders, classes or encoding)",
                    task.name
                )
            });
        }
        (Some(_), _) => {}
        (None, _) => warnings.push(format!(
            "the file (format `{}`) does not record its task's split, so only the task's name is checked",
            file.format
        )),
    }
    if !task_problems.is_empty() {
        let what = task_problems.join("; ");
        if allow_task_mismatch {
            let same_data = file.task_hash.as_deref() == Some(task_hash(task).as_str());
            warnings.push(format!(
                "{what} (accepted because of --allow-task-mismatch{})",
                if same_data {
                    ""
                } else {
                    ": the accuracy is measured on data the weights were not trained for"
                }
            ));
        } else {
            return Err(format!(
                "{what}; evaluate on the task the weights were trained on, retrain, or pass --allow-task-mismatch"
            ));
        }
    }
    // Coverage: every node with parameters exactly once, nothing else.
    let trainable: BTreeSet<usize> = (0..graph.nodes.len())
        .filter(|&i| !program.param_fields(i).is_empty())
        .collect();
    if file.nodes.is_empty() && !trainable.is_empty() {
        return Err(format!(
            "the file lists no nodes; `{}` has {} node(s) with parameters ({})",
            graph.arch,
            trainable.len(),
            trainable
                .iter()
                .map(|&i| format!("`{}`", graph.nodes[i].name))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut p = Params {
        blocks: program.params.blocks.clone(),
    };
    let mut seen = BTreeSet::new();
    for n in &file.nodes {
        let Some(node) = graph.nodes.get(n.node) else {
            return Err(format!(
                "node {} (`{}`) does not exist: `{}` has {} nodes",
                n.node,
                n.name,
                graph.arch,
                graph.nodes.len()
            ));
        };
        let here = format!("node {} (`{}`)", n.node, node.name);
        if n.name != node.name {
            return Err(format!(
                "{here} is called `{}` in the file; the file does not belong to this graph",
                n.name
            ));
        }
        if !seen.insert(n.node) {
            return Err(format!(
                "{here} is listed twice; each node must appear exactly once"
            ));
        }
        let prim = prim_name(&node.prim);
        if n.prim != prim {
            return Err(format!(
                "{here} is a `{prim}`, but the file has a `{}`",
                n.prim
            ));
        }
        let fields = program.param_fields(n.node);
        if fields.is_empty() {
            return Err(format!("{here} has no parameters, but the file lists it"));
        }
        if let Some(extra) = n
            .fields
            .keys()
            .find(|k| !fields.iter().any(|(f, _)| f == k))
        {
            let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
            return Err(format!(
                "{here} has a field `{extra}` that a `{prim}` does not have (it has {})",
                names.join(", ")
            ));
        }
        let mut block = Vec::new();
        for (name, len) in fields {
            let v = n
                .fields
                .get(name)
                .ok_or_else(|| format!("{here} lacks the field `{name}`"))?;
            if v.len() != len {
                return Err(format!(
                    "{here} field `{name}` has {} values, expected {len}",
                    v.len()
                ));
            }
            if let Some((k, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(format!("{here} field `{name}` value {k} is {x}"));
            }
            let bounded = match (prim, name) {
                ("attenuate", "sigma") => {
                    Some("an attenuator passes at most all the light: |σ| ≤ 1")
                }
                ("diag", "amplitude") => Some("a passive amplitude is at most 1: |a| ≤ 1"),
                _ => None,
            };
            if let Some(why) = bounded {
                if let Some((k, x)) = v
                    .iter()
                    .enumerate()
                    .find(|(_, x)| x.abs() > 1.0 + RANGE_SLACK)
                {
                    return Err(format!(
                        "{here} field `{name}` value {k} is {x}, outside [-1, 1] ({why}); the file is not physical for `{}`",
                        graph.hardware
                    ));
                }
            }
            block.extend_from_slice(v);
        }
        p.blocks[n.node] = block;
    }
    let missing: Vec<String> = trainable
        .difference(&seen)
        .map(|&i| {
            format!(
                "node {i} (`{}`, {})",
                graph.nodes[i].name,
                prim_name(&graph.nodes[i].prim)
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the file has no weights for {}; every node with parameters must be listed",
            missing.join(", ")
        ));
    }
    program.set_params(p).map_err(|e| e.to_string())?;
    Ok(warnings)
}
