//! `task` and `search` items: the experiment plan that training and search consume.

use super::model::*;
use super::units::Dim;
use super::{Cx, Located};
use crate::diag::{code, Diagnostic, FileId};
use crate::syntax::{self, Entry, Expr, Ident, Span};
use std::collections::HashMap;

const TASK_FIELDS: &[&str] = &[
    "dataset", "encode", "classes", "features", "encoding", "split",
];
const SPLIT_FIELDS: &[&str] = &["train", "validation", "test", "seed"];
const SEARCH_FIELDS: &[&str] = &[
    "task",
    "hardware",
    "seeds",
    "objectives",
    "population",
    "offspring",
    "generations",
    "budget",
    "train",
    "eval",
    "operators",
    "timeout",
    "seed",
    "llm",
];
const LLM_FIELDS: &[&str] = &["grammar", "temperature", "concurrency"];
const TRAIN_FIELDS: &[&str] = &["epochs", "batch", "lr", "noise_aware"];
const EVAL_FIELDS: &[&str] = &["draws"];
const ENCODERS: &[&str] = &["pool", "fft", "standardize", "minmax"];

/// Entries of an item body as (key, entry) with duplicates and unknown keys reported.
fn keyed<'e>(
    cx: &mut Cx<'_>,
    file: FileId,
    entries: &'e [Entry],
    known: &[&str],
    place: &str,
    allow_constraints: bool,
) -> Vec<(&'e Ident, &'e Entry)> {
    let mut out = Vec::new();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    for e in entries {
        let key = match e {
            Entry::Field(f) => &f.key,
            Entry::Section(s) => &s.name,
            Entry::Constraint(_) if allow_constraints => continue,
            other => {
                cx.misplaced_entry(file, other, place);
                continue;
            }
        };
        if !known.contains(&key.name.as_str()) {
            cx.unknown_key(file, key, place, known);
            continue;
        }
        if let Some(first) = seen.get(key.name.as_str()) {
            cx.duplicate_key(file, key, *first);
            continue;
        }
        seen.insert(&key.name, e.span());
        out.push((key, e));
    }
    out
}

impl Cx<'_> {
    fn field_value<'e>(&mut self, file: FileId, e: &'e Entry) -> Option<&'e Expr> {
        match e {
            Entry::Field(f) => Some(&f.value),
            Entry::Section(s) => {
                self.push(
                    Diagnostic::error(
                        code::VALUE,
                        file,
                        s.name.span,
                        format!("`{}` is a field, not a section", s.name.name),
                    )
                    .with_label("expected `= value`")
                    .with_help(format!("write `{} = …`", s.name.name)),
                );
                None
            }
            _ => None,
        }
    }

    fn section_body<'e>(&mut self, file: FileId, e: &'e Entry) -> Option<&'e [Entry]> {
        match e {
            Entry::Section(s) => Some(&s.body.entries),
            Entry::Field(f) => {
                self.push(
                    Diagnostic::error(
                        code::VALUE,
                        file,
                        f.key.span,
                        format!("`{}` is a section, not a field", f.key.name),
                    )
                    .with_label("expected `{ … }`")
                    .with_help(format!("write `{} {{ … }}`", f.key.name)),
                );
                None
            }
            _ => None,
        }
    }

    pub(crate) fn task(&mut self, t: Located<'_, syntax::Task>) -> Option<TaskSpec> {
        let file = t.file;
        let errors_before = self.error_count();
        let mut dataset = None;
        let mut encoders = Vec::new();
        let mut classes = None;
        let mut features_decl = None;
        let mut encoding = EncodeMode::Amplitude;
        let mut split = Split {
            train: 0.8,
            validation: 0.0,
            test: 0.2,
            seed: 0,
        };
        for (key, e) in keyed(
            self,
            file,
            &t.node.body.entries,
            TASK_FIELDS,
            "a task",
            false,
        ) {
            match key.name.as_str() {
                "split" => {
                    let Some(body) = self.section_body(file, e) else {
                        continue;
                    };
                    self.split(file, body, &mut split, e.span());
                }
                name => {
                    let Some(v) = self.field_value(file, e) else {
                        continue;
                    };
                    match name {
                        "dataset" => {
                            dataset = self.dataset(file, v).map(|d| self.data_paths(file, d))
                        }
                        "encode" => encoders = self.encoders(file, v),
                        "classes" => {
                            classes = self
                                .integer(file, v, "classes", Dim::None, 2, 100_000)
                                .map(|c| c as usize)
                        }
                        "features" => {
                            features_decl = self
                                .integer(file, v, "features", Dim::None, 1, 1 << 24)
                                .map(|c| c as usize)
                        }
                        _ => {
                            if let Some(c) =
                                self.choice(file, v, "encoding", &["amplitude", "phase"])
                            {
                                encoding = if c == "phase" {
                                    EncodeMode::Phase
                                } else {
                                    EncodeMode::Amplitude
                                };
                            }
                        }
                    }
                }
            }
        }
        let Some(dataset) = dataset else {
            if self.error_count() == errors_before {
                self.push(
                    Diagnostic::error(code::MISSING_FIELD, file, t.node.name.span, format!("task `{}` has no dataset", t.node.name.name))
                        .with_label("no `dataset`")
                        .with_help("add `dataset = digits` (built in: digits, mnist5k) or `dataset = csv(\"data.csv\", label = last)`"),
                );
            }
            return None;
        };
        // Feature count after the encoders, when the data set's shape is known here.
        let mut side = None;
        let mut features = features_decl;
        if let DatasetSpec::Builtin { name } = &dataset {
            if let Some(d) = crate::stdlib::dataset(name) {
                side = Some(d.side);
                features = Some(d.features);
                if classes.is_none() {
                    classes = Some(d.classes);
                }
            }
        }
        for enc in &encoders {
            match (enc, side) {
                (Encoder::Pool { factor }, Some(s)) => {
                    if s % factor != 0 {
                        self.push(
                            Diagnostic::error(
                                code::TASK,
                                file,
                                t.node.span,
                                format!("`pool({factor})` does not divide the {s}×{s} images"),
                            )
                            .with_label("uneven pooling")
                            .with_help(format!("use a factor that divides {s}")),
                        );
                        return None;
                    }
                    side = Some(s / factor);
                    features = Some((s / factor) * (s / factor));
                }
                (Encoder::Fft { k }, Some(s)) => {
                    if *k > s {
                        self.push(
                            Diagnostic::error(code::TASK, file, t.node.span, format!("`fft({k})` keeps more frequencies than the {s}×{s} images have"))
                                .with_label("crop too large")
                                .with_help(format!("use at most fft({s})")),
                        );
                        return None;
                    }
                    // Real and imaginary parts of the k×k lowest frequencies.
                    side = None;
                    features = Some(2 * k * k);
                }
                (Encoder::Pool { .. } | Encoder::Fft { .. }, None) => features = features_decl,
                _ => {}
            }
        }
        if let (Some(decl), Some(derived), Some(_)) = (features_decl, features, side) {
            if decl != derived {
                self.push(
                    Diagnostic::error(
                        code::TASK,
                        file,
                        t.node.name.span,
                        format!("task declares {decl} features but its encoders produce {derived}"),
                    )
                    .with_label("feature count mismatch")
                    .with_help(format!("write `features = {derived}` or drop the field")),
                );
            }
        }
        let Some(classes) = classes else {
            self.push(
                Diagnostic::error(
                    code::MISSING_FIELD,
                    file,
                    t.node.name.span,
                    format!(
                        "task `{}` does not say how many classes it has",
                        t.node.name.name
                    ),
                )
                .with_label("no `classes`")
                .with_help("add `classes = 10`"),
            );
            return None;
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(TaskSpec {
            name: t.node.name.name.clone(),
            dataset,
            encoders,
            classes,
            features,
            optical_encoding: encoding,
            split,
            span: t.node.span,
        })
    }

    fn split(&mut self, file: FileId, body: &[Entry], split: &mut Split, span: Span) {
        let mut any_fraction = false;
        for (key, e) in keyed(self, file, body, SPLIT_FIELDS, "`split`", false) {
            let Some(v) = self.field_value(file, e) else {
                continue;
            };
            match key.name.as_str() {
                "seed" => {
                    if let Some(s) = self.integer(file, v, "seed", Dim::None, 0, u32::MAX as u64) {
                        split.seed = s;
                    }
                }
                name => {
                    let Some(f) = self.number_in(
                        file,
                        v,
                        name,
                        Dim::None,
                        (0.0, 1.0),
                        "a split fraction is between 0 and 1",
                    ) else {
                        continue;
                    };
                    any_fraction = true;
                    match name {
                        "train" => split.train = f,
                        "validation" => split.validation = f,
                        _ => split.test = f,
                    }
                }
            }
        }
        let sum = split.train + split.validation + split.test;
        if any_fraction && (sum - 1.0).abs() > 1e-9 {
            self.push(
                Diagnostic::error(
                    code::TASK,
                    file,
                    span,
                    format!("split fractions add up to {sum}, not 1"),
                )
                .with_label("fractions must sum to 1")
                .with_help("e.g. `split { train = 0.8, validation = 0.0, test = 0.2 }`"),
            );
        }
        if split.train <= 0.0 || split.test <= 0.0 {
            self.push(
                Diagnostic::error(
                    code::TASK,
                    file,
                    span,
                    "both the train and the test fraction must be above 0",
                )
                .with_label("empty split")
                .with_help("e.g. `split { train = 0.8, test = 0.2 }`"),
            );
        }
    }

    /// Relative data paths resolved against the folder of the file that names them, as
    /// `use` paths are (absolute paths and the built-in sets unchanged).
    fn data_paths(&self, file: FileId, d: DatasetSpec) -> DatasetSpec {
        let folder = self.folders.get(&file).cloned().unwrap_or_default();
        let at = |p: String| -> String {
            let path = std::path::Path::new(&p);
            if folder.as_os_str().is_empty() || path.is_absolute() {
                p
            } else {
                folder.join(path).to_string_lossy().into_owned()
            }
        };
        d.map_paths(|p| at(p.to_string()))
    }

    fn dataset(&mut self, file: FileId, v: &Expr) -> Option<DatasetSpec> {
        let builtin = crate::stdlib::dataset_names();
        match v {
            Expr::Ident(id) => {
                if builtin.contains(&id.name.as_str()) {
                    Some(DatasetSpec::Builtin {
                        name: id.name.clone(),
                    })
                } else {
                    self.push(
                        Diagnostic::error(code::TASK, file, id.span, format!("no built-in data set named `{}`", id.name))
                            .with_label("unknown data set")
                            .with_help(format!(
                                "{}; files load with `idx(\"images\", \"labels\")`, `csv(\"file.csv\", label = last)` or `npy(\"x.npy\", \"y.npy\")`",
                                super::suggest::help_for(&id.name, &builtin, "data set")
                            ))
                            .with_fixes(super::suggest::rename_fix(&id.name, id.span, &builtin)),
                    );
                    None
                }
            }
            Expr::Call(c) => {
                let strings: Vec<Option<String>> = c
                    .args
                    .iter()
                    .filter(|a| a.name.is_none())
                    .map(|a| match &a.value {
                        Expr::Str(s) => Some(s.value.clone()),
                        _ => None,
                    })
                    .collect();
                let named = |n: &str| {
                    c.args
                        .iter()
                        .find(|a| a.name.as_ref().is_some_and(|i| i.name == n))
                };
                let two = |cx: &mut Self, what: &str| -> Option<(String, String)> {
                    match strings.as_slice() {
                        [Some(a), Some(b)] => Some((a.clone(), b.clone())),
                        _ => {
                            cx.push(
                                Diagnostic::error(
                                    code::TASK,
                                    file,
                                    c.span,
                                    format!("`{what}` takes two file paths as strings"),
                                )
                                .with_label("expected two strings")
                                .with_help(format!("e.g. `{what}(\"images\", \"labels\")`")),
                            );
                            None
                        }
                    }
                };
                match c.func.name.as_str() {
                    "idx" => {
                        two(self, "idx").map(|(images, labels)| DatasetSpec::Idx { images, labels })
                    }
                    "npy" => two(self, "npy")
                        .map(|(features, labels)| DatasetSpec::Npy { features, labels }),
                    "csv" => {
                        let Some(Some(path)) = strings.first().cloned() else {
                            self.push(
                                Diagnostic::error(
                                    code::TASK,
                                    file,
                                    c.span,
                                    "`csv` takes the file path as a string",
                                )
                                .with_label("expected a path")
                                .with_help("e.g. `csv(\"data.csv\", label = last, header = true)`"),
                            );
                            return None;
                        };
                        let label = match named("label").map(|a| &a.value) {
                            None => "last".to_string(),
                            Some(Expr::Ident(i)) => i.name.clone(),
                            Some(Expr::Str(s)) => s.value.clone(),
                            Some(other) => {
                                self.wrong_kind(
                                    file,
                                    other,
                                    "label",
                                    "`first`, `last` or a column name",
                                    "last",
                                );
                                return None;
                            }
                        };
                        let header = match named("header") {
                            Some(a) => self.boolean(file, &a.value, "header")?,
                            None => false,
                        };
                        Some(DatasetSpec::Csv {
                            path,
                            label,
                            header,
                        })
                    }
                    other => {
                        self.push(
                            Diagnostic::error(
                                code::TASK,
                                file,
                                c.func.span,
                                format!("unknown data source `{other}`"),
                            )
                            .with_label("unknown source")
                            .with_suggestion(
                                other,
                                c.func.span,
                                &["idx", "csv", "npy"],
                                "data source",
                            ),
                        );
                        None
                    }
                }
            }
            other => {
                self.wrong_kind(
                    file,
                    other,
                    "dataset",
                    "a data set name or source",
                    "digits",
                );
                None
            }
        }
    }

    fn encoders(&mut self, file: FileId, v: &Expr) -> Vec<Encoder> {
        let Expr::List(list) = v else {
            self.wrong_kind(
                file,
                v,
                "encode",
                "a list of encoders",
                "[pool(2), standardize]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in &list.items {
            let (name, args) = match item {
                Expr::Ident(i) => (i, &[][..]),
                Expr::Call(c) => (&c.func, c.args.as_slice()),
                other => {
                    self.wrong_kind(
                        file,
                        other,
                        "encode",
                        "an encoder",
                        "[pool(2), standardize]",
                    );
                    continue;
                }
            };
            let arg = |cx: &mut Self, what: &str| -> Option<usize> {
                match args {
                    [a] if a.name.is_none() => cx
                        .integer(file, &a.value, what, Dim::None, 1, 1024)
                        .map(|v| v as usize),
                    _ => {
                        cx.push(
                            Diagnostic::error(
                                code::ARGS,
                                file,
                                item.span(),
                                format!("`{what}` takes one whole number"),
                            )
                            .with_label("expected one argument")
                            .with_help(format!("e.g. `{what}(2)`")),
                        );
                        None
                    }
                }
            };
            match name.name.as_str() {
                "pool" => out.extend(arg(self, "pool").map(|factor| Encoder::Pool { factor })),
                "fft" => out.extend(arg(self, "fft").map(|k| Encoder::Fft { k })),
                "standardize" => out.push(Encoder::Standardize),
                "minmax" => out.push(Encoder::MinMax),
                other => {
                    self.push(
                        Diagnostic::error(
                            code::TASK,
                            file,
                            name.span,
                            format!("unknown encoder `{other}`"),
                        )
                        .with_label("unknown encoder")
                        .with_suggestion(other, name.span, ENCODERS, "encoder"),
                    );
                }
            }
        }
        out
    }

    fn reference<'n>(
        &mut self,
        file: FileId,
        v: &'n Expr,
        what: &str,
        known: Vec<&str>,
        exists: bool,
    ) -> Option<&'n Ident> {
        let Expr::Ident(id) = v else {
            self.wrong_kind(file, v, what, "a name", "name");
            return None;
        };
        if !exists {
            self.undefined(file, id, what, known);
            return None;
        }
        Some(id)
    }

    pub(crate) fn search(
        &mut self,
        s: Located<'_, syntax::Search>,
        checked: &Checked,
        resolved: &super::Resolved<'_>,
    ) -> Option<SearchSpec> {
        let file = s.file;
        let errors_before = self.error_count();
        let mut task = None;
        let mut hardware: Option<&Ident> = None;
        let mut seeds: Vec<&Ident> = Vec::new();
        let mut objectives = Vec::new();
        let mut spec = SearchSpec {
            name: s.node.name.name.clone(),
            task: String::new(),
            hardware: String::new(),
            seeds: Vec::new(),
            objectives: Vec::new(),
            constraints: Vec::new(),
            // UH-NAS setup (King and Leleu 2026): population 20, 8 offspring, 30 generations.
            population: 20,
            offspring: 8,
            generations: 30,
            budget: 0,
            train: TrainSpec::default(),
            // Fang et al. (Optics Express 2019) use K = 20 Monte Carlo draws.
            draws: 20,
            operators: vec![
                OperatorWeight {
                    name: Operator::Mutate.name().into(),
                    weight: 0.7,
                },
                OperatorWeight {
                    name: Operator::Crossover.name().into(),
                    weight: 0.3,
                },
            ],
            timeout: 600.0,
            llm: LlmSpec::default(),
            seed: 0,
            span: s.node.span,
        };
        let mut budget = None;
        for e in &s.node.body.entries {
            if let Entry::Constraint(c) = e {
                if let Some(mc) = self.metric_constraint(file, c, false) {
                    spec.constraints.push(mc);
                }
            }
        }
        for (key, e) in keyed(
            self,
            file,
            &s.node.body.entries,
            SEARCH_FIELDS,
            "a search",
            true,
        ) {
            let name = key.name.as_str();
            if name == "llm" {
                let Some(body) = self.section_body(file, e) else {
                    continue;
                };
                for (k, e2) in keyed(self, file, body, LLM_FIELDS, "`llm`", false) {
                    let Some(v) = self.field_value(file, e2) else {
                        continue;
                    };
                    match k.name.as_str() {
                        "grammar" => {
                            spec.llm.grammar = self
                                .choice(file, v, "grammar", GRAMMAR_MODES)
                                .map(str::to_string)
                        }
                        "temperature" => {
                            spec.llm.temperature = self.number_in(
                                file,
                                v,
                                "temperature",
                                Dim::None,
                                (0.0, 2.0),
                                "a sampling temperature is from 0 to 2",
                            )
                        }
                        _ => {
                            spec.llm.concurrency = self
                                .integer(file, v, "concurrency", Dim::None, 1, 64)
                                .map(|x| x as usize)
                        }
                    }
                }
                continue;
            }
            if name == "train" || name == "eval" {
                let Some(body) = self.section_body(file, e) else {
                    continue;
                };
                let known = if name == "train" {
                    TRAIN_FIELDS
                } else {
                    EVAL_FIELDS
                };
                for (k, e2) in keyed(
                    self,
                    file,
                    body,
                    known,
                    if name == "train" { "`train`" } else { "`eval`" },
                    false,
                ) {
                    let Some(v) = self.field_value(file, e2) else {
                        continue;
                    };
                    match k.name.as_str() {
                        "epochs" => {
                            spec.train.epochs = self
                                .integer(file, v, "epochs", Dim::None, 1, 100_000)
                                .map_or(spec.train.epochs, |x| x as usize)
                        }
                        "batch" => {
                            spec.train.batch = self
                                .integer(file, v, "batch", Dim::None, 1, 1 << 20)
                                .map_or(spec.train.batch, |x| x as usize)
                        }
                        "lr" => {
                            spec.train.lr = self
                                .number_in(
                                    file,
                                    v,
                                    "lr",
                                    Dim::None,
                                    (1e-9, 10.0),
                                    "a learning rate is above 0 and at most 10",
                                )
                                .unwrap_or(spec.train.lr)
                        }
                        "noise_aware" => {
                            spec.train.noise_aware =
                                self.boolean(file, v, "noise_aware").unwrap_or(false)
                        }
                        _ => {
                            spec.draws = self
                                .integer(file, v, "draws", Dim::None, 1, 100_000)
                                .map_or(spec.draws, |x| x as usize)
                        }
                    }
                }
                continue;
            }
            let Some(v) = self.field_value(file, e) else {
                continue;
            };
            match name {
                "task" => {
                    task = self.reference(
                        file,
                        v,
                        "task",
                        self.tasks.keys().copied().collect(),
                        matches!(v, Expr::Ident(i) if self.tasks.contains_key(i.name.as_str())),
                    )
                }
                "hardware" => {
                    hardware = self.reference(
                        file,
                        v,
                        "hardware profile",
                        self.hardware.keys().copied().collect(),
                        matches!(v, Expr::Ident(i) if self.hardware.contains_key(i.name.as_str())),
                    )
                }
                "seeds" => {
                    let Expr::List(l) = v else {
                        self.wrong_kind(
                            file,
                            v,
                            "seeds",
                            "a list of architectures",
                            "[small, deep]",
                        );
                        continue;
                    };
                    for item in &l.items {
                        let exists = matches!(item, Expr::Ident(i) if self.archs.contains_key(i.name.as_str()));
                        if let Some(id) = self.reference(
                            file,
                            item,
                            "architecture",
                            self.archs.keys().copied().collect(),
                            exists,
                        ) {
                            seeds.push(id);
                        }
                    }
                }
                "objectives" => objectives = self.objectives(file, v),
                "population" => {
                    spec.population = self
                        .integer(file, v, name, Dim::None, 2, 100_000)
                        .map_or(spec.population, |x| x as usize)
                }
                "offspring" => {
                    spec.offspring = self
                        .integer(file, v, name, Dim::None, 1, 100_000)
                        .map_or(spec.offspring, |x| x as usize)
                }
                "generations" => {
                    spec.generations = self
                        .integer(file, v, name, Dim::None, 0, 100_000)
                        .map_or(spec.generations, |x| x as usize)
                }
                "budget" => {
                    budget = self
                        .integer(file, v, name, Dim::None, 1, 10_000_000)
                        .map(|x| x as usize)
                }
                "timeout" => {
                    spec.timeout = self
                        .number_in(
                            file,
                            v,
                            name,
                            Dim::Time,
                            (0.001, 1e7),
                            "a timeout is a positive time, e.g. `120 s`",
                        )
                        .unwrap_or(spec.timeout)
                }
                "seed" => {
                    spec.seed = self
                        .integer(file, v, name, Dim::None, 0, u32::MAX as u64)
                        .unwrap_or(0)
                }
                _ => {
                    if let Some(ops) = self.operators(file, v) {
                        spec.operators = ops;
                    }
                }
            }
        }
        let Some(task_id) = task else {
            if !s
                .node
                .body
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Field(f) if f.key.name == "task"))
            {
                self.push(
                    Diagnostic::error(
                        code::MISSING_FIELD,
                        file,
                        s.node.name.span,
                        format!("search `{}` names no task", s.node.name.name),
                    )
                    .with_label("no `task`")
                    .with_help("add `task = NAME` naming a `task` item"),
                );
            }
            return None;
        };
        if seeds.is_empty() && self.error_count() == errors_before {
            self.push(
                Diagnostic::error(
                    code::MISSING_FIELD,
                    file,
                    s.node.name.span,
                    format!("search `{}` has no seed architectures", s.node.name.name),
                )
                .with_label("no `seeds`")
                .with_help("add `seeds [NAME, …]` naming `arch` items to start from"),
            );
        }
        if objectives.is_empty() {
            objectives = vec![
                Objective {
                    metric: Metric::NoisyAccuracyMean,
                    direction: Direction::Maximize,
                },
                Objective {
                    metric: Metric::Energy,
                    direction: Direction::Minimize,
                },
            ];
        }
        let hw_name = match hardware {
            Some(h) => h.name.clone(),
            None => seeds
                .first()
                .and_then(|id| self.archs.get(id.name.as_str()))
                .map(|a| a.node.hardware.name.clone())
                .unwrap_or_default(),
        };
        spec.task = task_id.name.clone();
        spec.hardware = hw_name.clone();
        spec.objectives = objectives;
        spec.budget = budget.unwrap_or(spec.population + spec.offspring * spec.generations);
        spec.seeds = seeds.iter().map(|i| i.name.clone()).collect();
        if self.error_count() > errors_before {
            return None;
        }
        // Every seed must fit the search's hardware and the task's data.
        let task_spec = checked.task(&spec.task).cloned();
        let hw = resolved.get(hw_name.as_str()).cloned().flatten();
        for id in &seeds {
            let Some(&arch) = self.archs.get(id.name.as_str()) else {
                continue;
            };
            let graph = match &hw {
                Some(hw) if arch.node.hardware.name != hw.name => self.retarget(file, id, arch, hw),
                _ => checked.arch(&id.name).cloned(),
            };
            let (Some(g), Some(t)) = (graph, &task_spec) else {
                continue;
            };
            if let Some(f) = t.features {
                if g.input_width() != f {
                    self.push(
                        Diagnostic::error(
                            code::SHAPE,
                            file,
                            id.span,
                            format!(
                                "seed `{}` takes {} inputs but task `{}` has {f} features",
                                id.name,
                                g.input_width(),
                                t.name
                            ),
                        )
                        .with_label("input width mismatch")
                        .with_related(arch.file, g.nodes[g.inputs[0]].span, "input declared here")
                        .with_help(format!(
                            "declare `input x: real[{f}]`, or change the task's encoders"
                        )),
                    );
                }
            }
            let out = g.output_type().width;
            if out != t.classes {
                self.push(
                    Diagnostic::error(
                        code::SHAPE,
                        file,
                        id.span,
                        format!(
                            "seed `{}` has {out} outputs but task `{}` has {} classes",
                            id.name, t.name, t.classes
                        ),
                    )
                    .with_label("output width mismatch")
                    .with_related(arch.file, arch.node.span, "architecture here")
                    .with_help(format!("make the last layer {} wide", t.classes)),
                );
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        Some(spec)
    }

    /// Re-checks a seed on the search's hardware; its errors become one search error.
    fn retarget(
        &mut self,
        file: FileId,
        id: &Ident,
        arch: Located<'_, syntax::Arch>,
        hw: &HardwareProfile,
    ) -> Option<ArchGraph> {
        let mark = self.diags.len();
        let graph = self.arch(arch, hw, false);
        let new: Vec<Diagnostic> = self.diags.drain(mark..).filter(|d| d.is_error()).collect();
        if let Some(first) = new.first() {
            self.push(
                Diagnostic::error(
                    code::SEARCH,
                    file,
                    id.span,
                    format!(
                        "seed `{}` does not fit hardware `{}`: {}",
                        id.name, hw.name, first.message
                    ),
                )
                .with_label("does not fit the search's hardware")
                .with_related(first.file, first.span, first.message.clone())
                .with_help(
                    first
                        .help
                        .clone()
                        .unwrap_or_else(|| "adapt the seed to this hardware".into()),
                ),
            );
        }
        graph
    }

    fn objectives(&mut self, file: FileId, v: &Expr) -> Vec<Objective> {
        let Expr::List(l) = v else {
            self.wrong_kind(
                file,
                v,
                "objectives",
                "a list",
                "[maximize(noisy_accuracy_mean), minimize(energy)]",
            );
            return Vec::new();
        };
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.0).collect();
        let mut out: Vec<Objective> = Vec::new();
        for item in &l.items {
            let parsed = match item {
                Expr::Call(c) if c.args.len() == 1 && c.args[0].name.is_none() => {
                    match (&c.func.name[..], &c.args[0].value) {
                        ("maximize" | "minimize", Expr::Ident(m)) => {
                            Some((c.func.name.as_str(), m))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let Some((dir, m)) = parsed else {
                self.push(
                    Diagnostic::error(
                        code::SEARCH,
                        file,
                        item.span(),
                        "an objective is `maximize(METRIC)` or `minimize(METRIC)`",
                    )
                    .with_label("not an objective")
                    .with_help(
                        "e.g. `objectives [maximize(noisy_accuracy_mean), minimize(energy)]`",
                    ),
                );
                continue;
            };
            let Some(metric) = Metric::from_name(&m.name) else {
                self.push(
                    Diagnostic::error(
                        code::SEARCH,
                        file,
                        m.span,
                        format!("unknown metric `{}`", m.name),
                    )
                    .with_label("unknown metric")
                    .with_suggestion(&m.name, m.span, &names, "metric"),
                );
                continue;
            };
            if out.iter().any(|o| o.metric == metric) {
                self.push(
                    Diagnostic::error(
                        code::SEARCH,
                        file,
                        item.span(),
                        format!("`{}` appears twice among the objectives", m.name),
                    )
                    .with_label("repeated objective")
                    .with_help("keep one"),
                );
                continue;
            }
            let direction = if dir == "maximize" {
                Direction::Maximize
            } else {
                Direction::Minimize
            };
            out.push(Objective { metric, direction });
        }
        out
    }

    fn operators(&mut self, file: FileId, v: &Expr) -> Option<Vec<OperatorWeight>> {
        let Expr::List(l) = v else {
            self.wrong_kind(
                file,
                v,
                "operators",
                "a list",
                "[mutate(0.7), crossover(0.3)]",
            );
            return None;
        };
        let mut out = Vec::new();
        for item in &l.items {
            let (name, weight) = match item {
                Expr::Ident(i) => (i, 1.0),
                Expr::Call(c) if c.args.len() == 1 && c.args[0].name.is_none() => {
                    let Some(w) = self.number_in(
                        file,
                        &c.args[0].value,
                        &c.func.name,
                        Dim::None,
                        (0.0, 1e6),
                        "an operator weight is 0 or more",
                    ) else {
                        continue;
                    };
                    (&c.func, w)
                }
                other => {
                    self.wrong_kind(
                        file,
                        other,
                        "operators",
                        "operators with weights",
                        "[mutate(0.7), crossover(0.3)]",
                    );
                    continue;
                }
            };
            if Operator::from_name(&name.name).is_none() {
                self.unknown_choice(file, name, "operator", &Operator::names(None));
                continue;
            }
            out.push(OperatorWeight {
                name: name.name.clone(),
                weight,
            });
        }
        if !out.is_empty() && out.iter().all(|o| o.weight == 0.0) {
            self.push(
                Diagnostic::error(code::SEARCH, file, l.span, "every operator has weight 0")
                    .with_label("no operator can run")
                    .with_help("give at least one operator a positive weight"),
            );
            return None;
        }
        Some(out)
    }
}

/// An architecture against a task's data: its input width must be the task's feature
/// count and its output width the task's classes. The search applies this to every
/// candidate (so a wrong width is a compile error the LLM can repair from, never an
/// evaluation failure), and `uhc train`/`eval` before they load data.
pub fn task_shape(g: &ArchGraph, t: &TaskSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let (Some(f), Some(&input)) = (t.features, g.inputs.first()) {
        if g.input_width() != f {
            let at = g.nodes[input].span;
            out.push(
                Diagnostic::error(
                    code::SHAPE,
                    g.file,
                    at,
                    format!(
                        "`{}` takes {} inputs but task `{}` has {f} features",
                        g.name,
                        g.input_width(),
                        t.name
                    ),
                )
                .with_label(format!("{} inputs", g.input_width()))
                .with_help(format!(
                    "declare `input x: real[{f}]`, or change the task's encoders"
                )),
            );
        }
    }
    let width = g.output_type().width;
    if width != t.classes {
        out.push(
            Diagnostic::error(
                code::SHAPE,
                g.file,
                g.nodes[g.output].span,
                format!(
                    "`{}` has {width} outputs but task `{}` has {} classes",
                    g.name, t.name, t.classes
                ),
            )
            .with_label(format!("{width} outputs"))
            .with_help(format!(
                "make the last width-setting layer {} wide, e.g. `linear(h, {})`",
                t.classes, t.classes
            )),
        );
    }
    out
}
