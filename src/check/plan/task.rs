//! `task` items: data set, split, encoders, and an arch's fit to a task.

use super::*;

pub const TASK_FIELDS: &[&str] = &[
    "dataset", "encode", "classes", "features", "encoding", "split",
];
const SPLIT_FIELDS: &[&str] = &["train", "validation", "test", "seed"];
const ENCODERS: &[&str] = &["pool", "fft", "standardize", "minmax"];

impl Cx<'_> {
    pub(crate) fn task(&mut self, t: Located<'_, syntax::Task>) -> Option<TaskSpec> {
        let file = t.file;
        let errors_before = self.error_count();
        let mut dataset = None;
        let mut encoders = Vec::new();
        let mut classes = None;
        let mut features_decl = None;
        let mut encoding = EncodeMode::Amplitude;
        // A validation part by default: searches select on it, never on the test split
        // (Lindauer and Hutter, "Best practices for scientific research on NAS", JMLR 2020).
        let mut split = Split {
            train: 0.7,
            validation: 0.1,
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

    /// A block that gives any fraction gives the split: the parts it leaves out are 0
    /// (`split { train = 0.8, test = 0.2 }` has no validation part); one that gives none
    /// keeps the default fractions.
    fn split(&mut self, file: FileId, body: &[Entry], split: &mut Split, span: Span) {
        let gives = |name: &str| {
            body.iter()
                .any(|e| matches!(e, Entry::Field(f) if f.key.name == name))
        };
        if gives("train") || gives("validation") || gives("test") {
            for (name, part) in [
                ("train", &mut split.train),
                ("validation", &mut split.validation),
                ("test", &mut split.test),
            ] {
                if !gives(name) {
                    *part = 0.0;
                }
            }
        }
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
                                crate::check::suggest::help_for(&id.name, &builtin, "data set")
                            ))
                            .with_fixes(crate::check::suggest::rename_fix(&id.name, id.span, &builtin)),
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
