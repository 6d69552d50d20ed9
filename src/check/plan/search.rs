//! `search` items: seeds, objectives, operators, budgets and settings.

use super::*;

pub const SEARCH_FIELDS: &[&str] = &[
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
    "reference",
];
/// Metrics a hypervolume reference may be declared for: the unbounded minimised ones
/// (fractions have their natural reference, 1).
pub(crate) const REFERENCE_FIELDS: &[&str] = &["energy", "mzi_count", "optical_depth", "params"];
const LLM_FIELDS: &[&str] = &["grammar", "temperature", "concurrency"];
const TRAIN_FIELDS: &[&str] = &["epochs", "batch", "lr", "noise_aware"];
const EVAL_FIELDS: &[&str] = &["draws"];

impl Cx<'_> {
    pub(super) fn reference<'n>(
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
        resolved: &crate::check::Resolved<'_>,
    ) -> Option<SearchSpec> {
        let file = s.file;
        let errors_before = self.error_count();
        let mut task = None;
        let mut hardware: Option<&Ident> = None;
        let mut seeds: Vec<&Ident> = Vec::new();
        let mut seeds_by_kind: Vec<(&Ident, Vec<&Ident>)> = Vec::new();
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
            reference: Vec::new(),
            seeds_by_kind: Vec::new(),
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
            if let (true, Entry::Section(sec)) = (name == "seeds", e) {
                // `seeds { mzi = [a], digital = [b] }`: seeds per backend kind, so that
                // one search runs on hardware of several kinds (experiments).
                let kinds = crate::backend::names();
                for (k, e2) in keyed(self, file, &sec.body.entries, &kinds, "`seeds`", false) {
                    let Some(v) = self.field_value(file, e2) else {
                        continue;
                    };
                    let list = self.seed_list(file, v);
                    seeds_by_kind.push((k, list));
                }
                continue;
            }
            if name == "reference" {
                if let Some(r) = self.references(file, e) {
                    spec.reference = r;
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
                "seeds" => seeds = self.seed_list(file, v),
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
            self.missing_reference(file, &s.node.body, &s.node.name, "search", "task");
            return None;
        };
        if seeds.is_empty() && seeds_by_kind.is_empty() && self.error_count() == errors_before {
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
                .or_else(|| seeds_by_kind.first().and_then(|k| k.1.first()))
                .and_then(|id| self.archs.get(id.name.as_str()))
                .map(|a| a.node.hardware.name.clone())
                .unwrap_or_default(),
        };
        spec.seeds_by_kind = seeds_by_kind
            .iter()
            .map(|(k, ids)| (k.name.clone(), ids.iter().map(|i| i.name.clone()).collect()))
            .collect();
        if !seeds_by_kind.is_empty() {
            let kind = resolved
                .get(hw_name.as_str())
                .cloned()
                .flatten()
                .map(|h| h.backend.kind().as_str());
            match seeds_by_kind
                .iter()
                .find(|k| Some(k.0.name.as_str()) == kind)
            {
                Some((_, ids)) => seeds = ids.clone(),
                None => {
                    if let Some(kind) = kind {
                        self.push(
                            Diagnostic::error(
                                code::SEARCH,
                                file,
                                s.node.name.span,
                                format!(
                                    "search `{}` runs on `{hw_name}` ({kind} hardware) but gives no seeds for {kind}",
                                    s.node.name.name
                                ),
                            )
                            .with_label("no seeds for its own hardware")
                            .with_help(format!("add `{kind} = [NAME, …]` to its `seeds {{ … }}`")),
                        );
                    }
                }
            }
        }
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
        if let Some(t) = task_spec.as_ref().filter(|t| t.split.validation <= 0.0) {
            let sp = &t.split;
            let mut d = Diagnostic::error(
                code::SEARCH,
                file,
                task_id.span,
                format!(
                    "search `{}` would select on test data: task `{}` has no validation split",
                    spec.name, t.name
                ),
            )
            .with_label("selects on this task's held-out data");
            if let Some(task) = self.tasks.get(t.name.as_str()) {
                d = d.with_related(task.file, t.span, "the task is defined here");
            }
            self.push(
                d.with_help(format!(
                    "carve a validation split from the training data, e.g. `split {{ train = {}, validation = 0.1, test = {} }}`; the search selects on it and only the final front is scored on the test split",
                    fmt_fraction(sp.train - 0.1),
                    fmt_fraction(sp.test)
                )),
            );
            return None;
        }
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
    pub(super) fn retarget(
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
                .with_label("does not fit this hardware")
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

    /// `[a, b]`: architectures named as seeds.
    fn seed_list<'n>(&mut self, file: FileId, v: &'n Expr) -> Vec<&'n Ident> {
        let known: Vec<String> = self.archs.keys().map(|k| k.to_string()).collect();
        let expected = ("a list of architectures", "[small, deep]");
        self.name_list(file, v, "seeds", "architecture", expected, &known)
    }

    /// `[a, b]`: names of `what` items, each one of `known` (reported otherwise);
    /// `expected` is what to say (and show) when the value is not a list.
    pub(super) fn name_list<'n>(
        &mut self,
        file: FileId,
        v: &'n Expr,
        field: &str,
        what: &str,
        (expected, example): (&str, &str),
        known: &[String],
    ) -> Vec<&'n Ident> {
        let Expr::List(l) = v else {
            self.wrong_kind(file, v, field, expected, example);
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in &l.items {
            let exists = matches!(item, Expr::Ident(i) if known.contains(&i.name));
            let names = known.iter().map(String::as_str).collect();
            if let Some(id) = self.reference(file, item, what, names, exists) {
                out.push(id);
            }
        }
        out
    }

    /// `reference { energy = 5 nJ, … }`: the hypervolume reference of unbounded metrics.
    pub(crate) fn references(&mut self, file: FileId, e: &Entry) -> Option<Vec<(Metric, f64)>> {
        let body = self.section_body(file, e)?;
        let mut out = Vec::new();
        for (k, e2) in keyed(self, file, body, REFERENCE_FIELDS, "`reference`", false) {
            let Some(v) = self.field_value(file, e2) else {
                continue;
            };
            let Some(metric) = Metric::from_name(&k.name) else {
                continue;
            };
            let dim = if metric == Metric::Energy {
                Dim::Energy
            } else {
                Dim::None
            };
            if let Some(x) = self.number_in(
                file,
                v,
                &k.name,
                dim,
                (1e-30, 1e30),
                "a reference is a positive value, e.g. `energy = 5 nJ`",
            ) {
                if x > 0.0 {
                    out.push((metric, x));
                }
            }
        }
        Some(out)
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

    pub(super) fn operators(&mut self, file: FileId, v: &Expr) -> Option<Vec<OperatorWeight>> {
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

/// A split fraction as a user would write it (two decimals at most).
fn fmt_fraction(x: f64) -> String {
    let s = format!("{:.2}", x.max(0.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
