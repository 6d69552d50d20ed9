//! `experiment` items: a grid of runs of one search (hardware × operator mixes × budgets,
//! each repeated), checked before anything runs, so that a grid does not fail in its
//! tenth cell.

use super::*;

const EXPERIMENT_FIELDS: &[&str] = &[
    "search",
    "hardware",
    "operators",
    "budgets",
    "repeats",
    "reference",
];

impl Cx<'_> {
    pub(crate) fn experiment(
        &mut self,
        e: Located<'_, syntax::Experiment>,
        checked: &Checked,
        resolved: &crate::check::Resolved<'_>,
    ) -> Option<ExperimentSpec> {
        let file = e.file;
        let errors_before = self.error_count();
        let mut search: Option<&Ident> = None;
        let mut hardware: Vec<&Ident> = Vec::new();
        let mut mixes: Vec<OperatorMix> = Vec::new();
        let mut spec = ExperimentSpec {
            name: e.node.name.name.clone(),
            search: String::new(),
            hardware: Vec::new(),
            mixes: Vec::new(),
            budgets: Vec::new(),
            // Three seeds: the fewest with which a spread can be stated at all.
            repeats: 3,
            reference: Vec::new(),
            span: e.node.span,
        };
        for (key, entry) in keyed(
            self,
            file,
            &e.node.body.entries,
            EXPERIMENT_FIELDS,
            "an experiment",
            false,
        ) {
            match key.name.as_str() {
                "reference" => {
                    if let Some(r) = self.references(file, entry) {
                        spec.reference = r;
                    }
                }
                "operators" => {
                    let Some(body) = self.section_body(file, entry) else {
                        continue;
                    };
                    let names: Vec<String> = body
                        .iter()
                        .filter_map(|x| match x {
                            Entry::Field(f) => Some(f.key.name.clone()),
                            _ => None,
                        })
                        .collect();
                    let known: Vec<&str> = names.iter().map(String::as_str).collect();
                    for (k, e2) in keyed(self, file, body, &known, "`operators`", false) {
                        let Some(v) = self.field_value(file, e2) else {
                            continue;
                        };
                        if let Some(ops) = self.operators(file, v) {
                            mixes.push(OperatorMix {
                                name: k.name.clone(),
                                operators: ops,
                            });
                        }
                    }
                }
                name => {
                    let Some(v) = self.field_value(file, entry) else {
                        continue;
                    };
                    match name {
                        "search" => {
                            search = self.reference(
                                file,
                                v,
                                "search",
                                self.searches.keys().copied().collect(),
                                matches!(v, Expr::Ident(i) if self.searches.contains_key(i.name.as_str())),
                            )
                        }
                        "hardware" => {
                            let known: Vec<String> =
                                self.hardware.keys().map(|k| k.to_string()).collect();
                            hardware = self.name_list(
                                file,
                                v,
                                "hardware",
                                "hardware profile",
                                ("a list of hardware profiles", "[mzi_realistic, cpu_fp32]"),
                                &known,
                            );
                        }
                        "budgets" => {
                            let Expr::List(l) = v else {
                                self.wrong_kind(file, v, "budgets", "a list of evaluation budgets", "[60, 120]");
                                continue;
                            };
                            for item in &l.items {
                                if let Some(b) =
                                    self.integer(file, item, "budget", Dim::None, 1, 10_000_000)
                                {
                                    spec.budgets.push(b as usize);
                                }
                            }
                        }
                        _ => {
                            if let Some(r) = self.integer(file, v, "repeats", Dim::None, 1, 1000) {
                                spec.repeats = r as usize;
                            }
                        }
                    }
                }
            }
        }
        let Some(search_id) = search else {
            self.missing_reference(file, &e.node.body, &e.node.name, "experiment", "search");
            return None;
        };
        // A search that failed its own check has been reported already.
        let s = checked.search(&search_id.name)?.clone();
        spec.search = s.name.clone();
        spec.hardware = if hardware.is_empty() {
            vec![s.hardware.clone()]
        } else {
            hardware.iter().map(|h| h.name.clone()).collect()
        };
        spec.mixes = if mixes.is_empty() {
            vec![OperatorMix {
                name: "search".into(),
                operators: s.operators.clone(),
            }]
        } else {
            mixes
        };
        if spec.budgets.is_empty() {
            spec.budgets.push(s.budget);
        }
        // Every hardware of the grid needs seeds of its backend kind that fit it.
        for id in &hardware {
            let Some(Some(hw)) = resolved.get(id.name.as_str()).cloned() else {
                continue;
            };
            let kind = hw.backend.kind().as_str();
            let seeds = seeds_for(&s, kind);
            if seeds.is_empty() {
                self.push(
                    Diagnostic::error(
                        code::SEARCH,
                        file,
                        id.span,
                        format!(
                            "search `{}` has no seeds for `{}`, which is {kind} hardware",
                            s.name, id.name
                        ),
                    )
                    .with_label("no seeds for this hardware")
                    .with_help(format!(
                        "give the search seeds per backend kind: `seeds {{ {} = [...], {kind} = [...] }}`",
                        checked
                            .hardware(&s.hardware)
                            .map_or("mzi", |h| h.backend.kind().as_str())
                    )),
                );
                continue;
            }
            for seed in seeds {
                let Some(&arch) = self.archs.get(seed.as_str()) else {
                    continue;
                };
                if arch.node.hardware.name == hw.name {
                    continue;
                }
                let seed_id = Ident {
                    name: seed.clone(),
                    span: id.span,
                };
                self.retarget(file, &seed_id, arch, &hw);
            }
        }
        if self.error_count() > errors_before {
            return None;
        }
        Some(spec)
    }
}

/// The seeds a search starts from on hardware of backend `kind`: those given for that
/// kind, or its plain list.
pub fn seeds_for<'s>(s: &'s SearchSpec, kind: &str) -> &'s [String] {
    if s.seeds_by_kind.is_empty() {
        &s.seeds
    } else {
        s.seeds_by_kind
            .iter()
            .find(|k| k.0 == kind)
            .map_or(&[][..], |k| &k.1)
    }
}
