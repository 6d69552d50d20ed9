//! Architectures: a typed dataflow graph checked against one hardware profile.

use super::hardware::MAX_WIDTH;
use super::model::*;
use super::ops::{self, ParamKind};
use super::units::Dim;
use super::{suggest, Cx, Located};
use crate::diag::{code, Diagnostic, FileId, Fix, Severity};
use crate::syntax::{self, Arg, Call, Entry, Expr, Span};
use std::collections::HashMap;

struct Builder<'h> {
    hw: &'h HardwareProfile,
    file: FileId,
    nodes: Vec<Node>,
    /// `None` marks a value whose definition failed: uses of it report nothing more.
    bindings: HashMap<String, (Option<NodeId>, Span)>,
    used: Vec<bool>,
    /// `linear` layers wider than the hardware: (index of the ports diagnostic, the layer,
    /// the span of its width argument, the hardware's width). Whether clamping is a safe
    /// fix is known only once the layers after it are.
    too_wide: Vec<(usize, NodeId, Span, usize)>,
    /// Names defined by the entries not yet checked: a use before its definition is a
    /// misordering, not a misspelling, so it gets no rename fix.
    later: Vec<String>,
}

impl Builder<'_> {
    fn add(
        &mut self,
        name: String,
        op: OpKind,
        inputs: Vec<NodeId>,
        ty: ValueType,
        span: Span,
    ) -> NodeId {
        for &i in &inputs {
            self.used[i] = true;
        }
        self.nodes.push(Node {
            name,
            op,
            inputs,
            ty,
            span,
        });
        self.used.push(false);
        self.nodes.len() - 1
    }
}

impl Cx<'_> {
    /// Checks one architecture against `hw`. Returns the graph when it has no errors.
    pub(crate) fn arch(
        &mut self,
        a: Located<'_, syntax::Arch>,
        hw: &HardwareProfile,
        _primary: bool,
    ) -> Option<ArchGraph> {
        let file = a.file;
        let arch = a.node;
        let errors_before = self.error_count();
        let mut b = Builder {
            hw,
            file,
            nodes: Vec::new(),
            bindings: HashMap::new(),
            used: Vec::new(),
            too_wide: Vec::new(),
            later: arch.body.entries.iter().filter_map(defines).collect(),
        };
        let mut inputs = Vec::new();
        // The output's node, its line, and its value expression.
        let mut output: Option<(NodeId, Span, Span)> = None;
        let mut phase_bits = None;
        let mut constraints = Vec::new();

        for entry in &arch.body.entries {
            if let Some(name) = defines(entry) {
                if let Some(i) = b.later.iter().position(|l| *l == name) {
                    b.later.swap_remove(i);
                }
            }
            match entry {
                Entry::Input(i) => {
                    if let Some(&(_, first)) = b.bindings.get(&i.name.name) {
                        self.redefined(file, &i.name, first);
                        continue;
                    }
                    let Some(ty) = self.input_type(file, &i.ty, hw) else {
                        // Reported; its uses report nothing more.
                        b.bindings.insert(i.name.name.clone(), (None, i.name.span));
                        continue;
                    };
                    let id = b.add(i.name.name.clone(), OpKind::Input, Vec::new(), ty, i.span);
                    b.bindings
                        .insert(i.name.name.clone(), (Some(id), i.name.span));
                    inputs.push(id);
                }
                Entry::Field(f) => {
                    if let Some(&(_, first)) = b.bindings.get(&f.key.name) {
                        self.redefined(file, &f.key, first);
                        continue;
                    }
                    let node = match &f.value {
                        Expr::Call(c) => self.call(&mut b, c, &f.key.name),
                        Expr::Ident(_) => self.value(&mut b, &f.value, &f.key.name),
                        other => {
                            self.push(
                                Diagnostic::error(
                                    code::VALUE,
                                    file,
                                    other.span(),
                                    format!(
                                        "`{}` must be computed by an operation, not {}",
                                        f.key.name,
                                        super::values::describe(other)
                                    ),
                                )
                                .with_label("expected an operation call")
                                .with_help(format!(
                                    "write a layer like `{} = linear(x, 16)`",
                                    f.key.name
                                )),
                            );
                            None
                        }
                    };
                    b.bindings.insert(f.key.name.clone(), (node, f.key.span));
                }
                Entry::Output(o) => {
                    if let Some((_, first, _)) = output {
                        self.push(
                            Diagnostic::error(
                                code::STRUCTURE,
                                file,
                                o.span,
                                "an architecture has exactly one output",
                            )
                            .with_label("second output")
                            .with_related(file, first, "first output here")
                            .with_help("remove one of the `output` lines"),
                        );
                        continue;
                    }
                    if let Some(id) = self.value(&mut b, &o.value, "out") {
                        b.used[id] = true;
                        output = Some((id, o.span, o.value.span()));
                    }
                }
                Entry::Section(s) if s.name.name == "precision" => {
                    phase_bits = self.arch_precision(file, s, hw);
                }
                Entry::Constraint(c) => {
                    if let Some(mc) = self.metric_constraint(file, c, true) {
                        constraints.push(mc);
                    }
                }
                Entry::Section(s) => self.unknown_key(
                    file,
                    &s.name,
                    "an architecture",
                    &["input", "output", "constraint", "precision"],
                ),
            }
        }

        if inputs.is_empty()
            && arch
                .body
                .entries
                .iter()
                .all(|e| !matches!(e, Entry::Input(_)))
        {
            self.push(
                Diagnostic::error(
                    code::STRUCTURE,
                    file,
                    arch.name.span,
                    format!("architecture `{}` has no input", arch.name.name),
                )
                .with_label("no `input`")
                .with_help("declare one, e.g. `input x: real[16]`"),
            );
        }
        if output.is_none()
            && arch
                .body
                .entries
                .iter()
                .all(|e| !matches!(e, Entry::Output(_)))
        {
            self.push(
                Diagnostic::error(
                    code::STRUCTURE,
                    file,
                    arch.name.span,
                    format!("architecture `{}` has no output", arch.name.name),
                )
                .with_label("no `output`")
                .with_help("end with an output, e.g. `output detect(y)`"),
            );
        }
        if let Some((id, span, output_value)) = output {
            let ty = b.nodes[id].ty;
            if ty.domain == Domain::Complex {
                // `detect` is the only way from light to numbers, so wrapping is the fix.
                let fix = hw.supports("detect").then(|| {
                    Fix::wrap(
                        output_value,
                        "detect(",
                        ")",
                        "wrap the output in `detect(…)`",
                    )
                });
                self.push(
                    Diagnostic::error(code::TYPE, file, span, format!("the output is an optical field ({ty}); class scores must be electronic"))
                        .with_label("still light")
                        .with_help("detect it: `output detect(…)` measures |z|² on each port")
                        .with_fixes(fix),
                );
            }
        }
        self.clamp_fixes(&b, output.map(|o| o.0));
        // Unused values: warnings, reported once the graph is complete.
        let mut unused: Vec<(String, Span)> = b
            .bindings
            .iter()
            .filter_map(|(name, (id, span))| Some((name, (id.as_ref()?, span))))
            .filter(|(_, (id, _))| !b.used[**id])
            .map(|(name, (_, span))| (name.clone(), *span))
            .collect();
        unused.sort_by_key(|u| u.1.start);
        for (name, span) in unused {
            self.push(
                Diagnostic::warning(
                    code::UNUSED,
                    file,
                    span,
                    format!("`{name}` is computed but never used"),
                )
                .with_label("unused")
                .with_help("use it in a later layer or the output, or remove the line"),
            );
        }

        if self.error_count() > errors_before {
            return None;
        }
        let (output, _, _) = output?;
        let graph = ArchGraph {
            name: arch.name.name.clone(),
            hardware: hw.name.clone(),
            nodes: b.nodes,
            inputs,
            output,
            phase_bits,
            constraints,
            file,
            span: arch.span,
        };
        Some(graph)
    }

    /// Offers "set the width to the hardware's" on a too-wide `linear` only when another
    /// `linear` re-sets the width on every path to the output: then no width downstream
    /// (the output's, which must match the task's classes) depends on this one.
    fn clamp_fixes(&mut self, b: &Builder<'_>, output: Option<NodeId>) {
        let Some(output) = output else { return };
        for &(diag, layer, width, have) in &b.too_wide {
            // Nodes are in definition order, so one forward pass finds everything reached
            // from `layer` without passing through another `linear`.
            let mut direct = vec![false; b.nodes.len()];
            let mut reached = vec![false; b.nodes.len()];
            if layer >= b.nodes.len() || output >= b.nodes.len() {
                continue;
            }
            direct[layer] = true;
            reached[layer] = true;
            for k in layer + 1..b.nodes.len() {
                let node = &b.nodes[k];
                reached[k] = node.inputs.iter().any(|&i| reached[i]);
                direct[k] = !matches!(node.op, OpKind::Linear { .. })
                    && node.inputs.iter().any(|&i| direct[i]);
            }
            if reached[output] && !direct[output] {
                if let Some(d) = self.diags.get_mut(diag) {
                    d.fixes.push(Fix::replace(
                        width,
                        have.to_string(),
                        format!("set the width to {have}, the hardware's limit"),
                    ));
                }
            }
        }
    }

    pub(crate) fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    fn redefined(&mut self, file: FileId, name: &crate::syntax::Ident, first: Span) {
        self.push(
            Diagnostic::error(
                code::DUPLICATE,
                file,
                name.span,
                format!("`{}` is defined twice in this architecture", name.name),
            )
            .with_label("defined again")
            .with_related(file, first, "first defined here")
            .with_help("values are defined once: give the new one another name"),
        );
    }

    fn input_type(
        &mut self,
        file: FileId,
        ty: &syntax::Type,
        hw: &HardwareProfile,
    ) -> Option<ValueType> {
        let domain = match ty.domain.name.as_str() {
            "real" => Domain::Real,
            "complex" => Domain::Complex,
            other => {
                self.push(
                    Diagnostic::error(
                        code::TYPE,
                        file,
                        ty.domain.span,
                        format!("unknown value type `{other}`"),
                    )
                    .with_label("unknown type")
                    .with_suggestion(
                        other,
                        ty.domain.span,
                        &["real", "complex"],
                        "type",
                    ),
                );
                return None;
            }
        };
        let w = ty.width.value;
        if w.fract() != 0.0 || w < 1.0 || w > MAX_WIDTH as f64 {
            self.push(
                Diagnostic::error(
                    code::SHAPE,
                    file,
                    ty.width.span,
                    format!(
                        "width `{}` must be a whole number from 1 to {MAX_WIDTH}",
                        ty.width.text
                    ),
                )
                .with_label("bad width")
                .with_help("e.g. `input x: real[16]`"),
            );
            return None;
        }
        let width = w as usize;
        if domain == Domain::Complex || !hw.backend.backend().optical() {
            self.check_ports(file, ty.span, "input", width, width, hw);
        }
        Some(ValueType { domain, width })
    }

    /// Evaluates a value expression: a name or a call.
    fn value(&mut self, b: &mut Builder<'_>, e: &Expr, binding: &str) -> Option<NodeId> {
        match e {
            Expr::Ident(id) => match b.bindings.get(&id.name) {
                Some(&(node, _)) => node,
                None => {
                    let mut names: Vec<&str> = b.bindings.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    let (help, fix) = if b.later.contains(&id.name) {
                        let help = format!(
                            "`{}` is defined further down: move its line above this one",
                            id.name
                        );
                        (help, None)
                    } else if ops::lookup(&id.name).is_some() {
                        let help = format!(
                            "`{}` is an operation: call it, e.g. `{}(x)`",
                            id.name, id.name
                        );
                        (help, None)
                    } else {
                        let by_name = suggest::unique_closest(&id.name, names.iter().copied());
                        match (by_name, only_unused(b)) {
                            // A near name and a different unused value: no guess is safe.
                            (Some(n), Some(u)) if n != u => {
                                (suggest::help_for(&id.name, &names, "value"), None)
                            }
                            (Some(n), _) => (format!("did you mean `{n}`?"), Some(n)),
                            (None, Some(u)) => (
                                format!(
                                    "`{u}` is the only value not used yet: did you mean `{u}`?"
                                ),
                                Some(u),
                            ),
                            (None, None) => (suggest::help_for(&id.name, &names, "value"), None),
                        }
                    };
                    let fix = fix.map(|to| {
                        Fix::replace(id.span, to, format!("replace `{}` with `{to}`", id.name))
                    });
                    self.push(
                        Diagnostic::error(
                            code::UNDEFINED,
                            b.file,
                            id.span,
                            format!("no value named `{}` is defined before this line", id.name),
                        )
                        .with_label("not defined")
                        .with_help(help)
                        .with_fixes(fix),
                    );
                    None
                }
            },
            Expr::Call(c) => self.call(b, c, binding),
            other => {
                self.push(
                    Diagnostic::error(
                        code::VALUE,
                        b.file,
                        other.span(),
                        format!(
                            "expected a value (a name or an operation call), found {}",
                            super::values::describe(other)
                        ),
                    )
                    .with_label("not a value")
                    .with_help("pass a previously defined value, e.g. `relu(h)`"),
                );
                None
            }
        }
    }

    fn call(&mut self, b: &mut Builder<'_>, c: &Call, binding: &str) -> Option<NodeId> {
        let file = b.file;
        let Some(spec) = ops::lookup(&c.func.name) else {
            let names = ops::names();
            self.push(
                Diagnostic::error(
                    code::OP,
                    file,
                    c.func.span,
                    format!("unknown operation `{}`", c.func.name),
                )
                .with_label("unknown operation")
                .with_suggestion(&c.func.name, c.func.span, &names, "operation"),
            );
            // The values it reads are used, whatever the operation was meant to be: no
            // "unused" warning on top of the misspelt name.
            mark_read(b, &c.args);
            return None;
        };
        let hw = b.hw;
        if !hw.supports(spec.name) {
            let kind = hw.backend.kind().as_str();
            let listed: Vec<&str> = hw.ops.iter().map(String::as_str).collect();
            let help = if hw.backend.backend().offers(spec) {
                format!(
                    "`{}` offers {}; add `{}` to its `ops` list if the device has it",
                    hw.name,
                    quote_list(&listed),
                    spec.name
                )
            } else {
                format!(
                    "the `{kind}` backend cannot do this at all; it offers {}",
                    quote_list(&listed)
                )
            };
            self.push(
                Diagnostic::error(
                    code::OP,
                    file,
                    c.func.span,
                    format!(
                        "hardware `{}` ({kind} backend) does not support `{}`",
                        hw.name, spec.name
                    ),
                )
                .with_label("unsupported on this hardware")
                .with_help(help),
            );
        }

        // Split arguments: the first positional is the input value.
        let mut positional: Vec<&Arg> = Vec::new();
        let mut named: Vec<&Arg> = Vec::new();
        for a in &c.args {
            if a.name.is_some() {
                named.push(a);
            } else if !named.is_empty() {
                self.push(
                    Diagnostic::error(
                        code::ARGS,
                        file,
                        a.span,
                        "a positional argument follows a named one",
                    )
                    .with_label("positional after named")
                    .with_help("put positional arguments first: `linear(x, 16)`"),
                );
                return None;
            } else {
                positional.push(a);
            }
        }
        let Some(first) = positional.first() else {
            self.push(
                Diagnostic::error(
                    code::ARGS,
                    file,
                    c.span,
                    format!("`{}` needs an input value", spec.name),
                )
                .with_label("no input")
                .with_help(format!("signature: {}", spec.signature)),
            );
            return None;
        };
        let input = self.value(b, &first.value, binding);
        if let Some(i) = input {
            b.used[i] = true;
        }

        // Parameters.
        let mut values: HashMap<&str, (f64, Option<String>)> = HashMap::new();
        let positional_params: Vec<&ops::Param> = spec
            .params
            .iter()
            .filter(|p| p.kind == ParamKind::Width)
            .collect();
        let mut ok = true;
        for (i, a) in positional.iter().skip(1).enumerate() {
            match positional_params.get(i) {
                Some(p) => ok &= self.param(file, spec, p, &a.value, &mut values),
                None => {
                    let help = if spec.params.is_empty() {
                        format!("`{}` takes only its input: {}", spec.name, spec.signature)
                    } else {
                        format!("name the extra argument; signature: {}", spec.signature)
                    };
                    self.push(
                        Diagnostic::error(
                            code::ARGS,
                            file,
                            a.span,
                            format!("too many arguments to `{}`", spec.name),
                        )
                        .with_label("unexpected argument")
                        .with_help(help),
                    );
                    ok = false;
                }
            }
        }
        for a in &named {
            let Some(name) = &a.name else { continue };
            match spec.params.iter().find(|p| p.name == name.name) {
                Some(p) if values.contains_key(p.name) => {
                    self.push(
                        Diagnostic::error(
                            code::ARGS,
                            file,
                            a.span,
                            format!("`{}` is given twice", p.name),
                        )
                        .with_label("given again")
                        .with_help("keep one of them"),
                    );
                    ok = false;
                }
                Some(p) => ok &= self.param(file, spec, p, &a.value, &mut values),
                None => {
                    let params: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
                    // Renaming onto a parameter given elsewhere would only trade errors.
                    let free: Vec<&str> = params
                        .iter()
                        .copied()
                        .filter(|p| {
                            !named
                                .iter()
                                .any(|o| o.name.as_ref().is_some_and(|n| n.name == *p))
                        })
                        .collect();
                    let help = if params.is_empty() {
                        format!("`{}` takes no parameters: {}", spec.name, spec.signature)
                    } else {
                        format!(
                            "{} (signature: {})",
                            suggest::help_for(&name.name, &params, "parameter"),
                            spec.signature
                        )
                    };
                    self.push(
                        Diagnostic::error(
                            code::ARGS,
                            file,
                            name.span,
                            format!("`{}` has no parameter `{}`", spec.name, name.name),
                        )
                        .with_label("unknown parameter")
                        .with_help(help)
                        .with_fixes(suggest::rename_fix(&name.name, name.span, &free)),
                    );
                    ok = false;
                }
            }
        }
        for p in spec.params {
            if p.default.is_none() && !values.contains_key(p.name) && ok {
                self.push(
                    Diagnostic::error(
                        code::ARGS,
                        file,
                        c.span,
                        format!("`{}` needs its `{}` argument", spec.name, p.name),
                    )
                    .with_label(format!("missing `{}`", p.name))
                    .with_help(format!("signature: {}", spec.signature)),
                );
                ok = false;
            }
        }
        let input = input?;
        if !ok {
            return None;
        }
        let real = |name: &str, default: f64| values.get(name).map_or(default, |v| v.0);
        let choice = |name: &str| values.get(name).and_then(|v| v.1.clone());

        let in_ty = b.nodes[input].ty;
        let node_name =
            if b.bindings.contains_key(binding) || b.nodes.iter().any(|n| n.name == binding) {
                format!("{binding}.{}{}", spec.name, b.nodes.len())
            } else {
                binding.to_string()
            };
        let optical = |cx: &mut Self, b: &mut Builder<'_>, input: NodeId| -> NodeId {
            // Real values entering an optical op are modulated onto light: an explicit node.
            if b.nodes[input].ty.domain == Domain::Real {
                let ty = ValueType {
                    domain: Domain::Complex,
                    width: b.nodes[input].ty.width,
                };
                if b.hw.backend.backend().optical() {
                    cx.check_ports(b.file, c.span, spec.name, ty.width, ty.width, b.hw);
                }
                let name = format!("{}.encode", b.nodes[input].name);
                b.add(
                    name,
                    OpKind::Encode {
                        mode: EncodeMode::Amplitude,
                        implicit: true,
                    },
                    vec![input],
                    ty,
                    c.span,
                )
            } else {
                input
            }
        };
        let mut too_wide: Option<(usize, Span)> = None;
        let (op, inputs, ty) = match spec.name {
            "encode" => {
                if in_ty.domain == Domain::Complex {
                    self.push(
                        Diagnostic::error(code::TYPE, file, first.span, format!("`encode` takes electronic values, but this is already light ({in_ty})"))
                            .with_label("already optical")
                            .with_help("remove `encode`: the value is already an optical field"),
                    );
                    return None;
                }
                let mode = if choice("mode").as_deref() == Some("phase") {
                    EncodeMode::Phase
                } else {
                    EncodeMode::Amplitude
                };
                if hw.backend.backend().optical() {
                    self.check_ports(file, c.span, "encode", in_ty.width, in_ty.width, hw);
                }
                (
                    OpKind::Encode {
                        mode,
                        implicit: false,
                    },
                    vec![input],
                    ValueType {
                        domain: Domain::Complex,
                        width: in_ty.width,
                    },
                )
            }
            "linear" => {
                let out = real("width", 0.0) as usize;
                let width_arg = named
                    .iter()
                    .find(|a| a.name.as_ref().is_some_and(|n| n.name == "width"))
                    .or(positional.get(1))
                    .map(|a| a.value.span());
                let digital_real = !hw.backend.backend().optical() && in_ty.domain == Domain::Real;
                let (x, domain) = if digital_real {
                    (input, Domain::Real)
                } else {
                    (optical(self, b, input), Domain::Complex)
                };
                if self.check_ports(file, c.span, "linear", out, out, hw) {
                    too_wide = width_arg.map(|w| (self.diags.len() - 1, w));
                }
                (
                    OpKind::Linear { out },
                    vec![x],
                    ValueType { domain, width: out },
                )
            }
            "unitary" | "diag" | "modrelu" | "eo_activation" => {
                let x = optical(self, b, input);
                let op = match spec.name {
                    "unitary" => OpKind::Unitary,
                    "diag" => OpKind::Diag,
                    "modrelu" => OpKind::ModRelu {
                        bias: real("bias", 0.1),
                    },
                    _ => OpKind::EoActivation {
                        alpha: real("alpha", 0.1),
                        gain: real("gain", 0.05),
                        bias_phase: real("bias_phase", std::f64::consts::PI),
                    },
                };
                (
                    op,
                    vec![x],
                    ValueType {
                        domain: Domain::Complex,
                        width: in_ty.width,
                    },
                )
            }
            "detect" => {
                if in_ty.domain == Domain::Real {
                    self.push(
                        Diagnostic::error(
                            code::TYPE,
                            file,
                            first.span,
                            format!(
                                "`detect` measures light, but this value is electronic ({in_ty})"
                            ),
                        )
                        .with_label("already electronic")
                        .with_help("remove `detect`: the value is already real"),
                    );
                    return None;
                }
                (
                    OpKind::Detect,
                    vec![input],
                    ValueType {
                        domain: Domain::Real,
                        width: in_ty.width,
                    },
                )
            }
            electronic => {
                if in_ty.domain == Domain::Complex {
                    self.push(
                        Diagnostic::error(code::TYPE, file, first.span, format!("`{electronic}` is electronic, but this value is light ({in_ty})"))
                            .with_label("optical value")
                            .with_help(format!("detect it first, `{electronic}(detect(…))`, or stay optical with `modrelu`")),
                    );
                    return None;
                }
                let op = match electronic {
                    "relu" => OpKind::Relu,
                    "tanh" => OpKind::Tanh,
                    _ => OpKind::Sigmoid,
                };
                (op, vec![input], in_ty)
            }
        };
        let id = b.add(node_name, op, inputs, ty, c.span);
        if let Some((diag, width)) = too_wide {
            b.too_wide.push((diag, id, width, hw.backend.max_width()));
        }
        Some(id)
    }

    fn param(
        &mut self,
        file: FileId,
        spec: &ops::OpSpec,
        p: &ops::Param,
        e: &Expr,
        values: &mut HashMap<&'static str, (f64, Option<String>)>,
    ) -> bool {
        let what = format!("{}.{}", spec.name, p.name);
        match p.kind {
            ParamKind::Width => match self.integer(file, e, &what, Dim::None, 1, MAX_WIDTH) {
                Some(w) => {
                    values.insert(p.name, (w as f64, None));
                    true
                }
                None => false,
            },
            ParamKind::Real => match self.quantity(file, e, &what, Dim::None) {
                Some(v) => {
                    values.insert(p.name, (v, None));
                    true
                }
                None => false,
            },
            ParamKind::Choice(choices) => match self.choice(file, e, &what, choices) {
                Some(c) => {
                    values.insert(p.name, (0.0, Some(c.to_string())));
                    true
                }
                None => false,
            },
        }
    }

    /// The mesh (or digital array) must be at least as wide as the layer. True when it is
    /// not (the diagnostic is then the last one pushed).
    fn check_ports(
        &mut self,
        file: FileId,
        span: Span,
        op: &str,
        n_in: usize,
        n_out: usize,
        hw: &HardwareProfile,
    ) -> bool {
        let need = n_in.max(n_out);
        let have = hw.backend.max_width();
        if need <= have {
            return false;
        }
        let be = hw.backend.backend();
        let (what, unit, field) = be.width_words();
        self.push(
            Diagnostic::error(
                code::PORTS,
                file,
                span,
                format!("`{op}` needs a {need}-{} {what}, but `{}` has {have} {unit}", unit.trim_end_matches('s'), hw.name),
            )
            .with_label(format!("{need} {unit} needed"))
            .with_related(hw.file, hw.span, format!("`{}` is {have} {unit} wide", hw.name))
            .with_help(format!("make the layer at most {have} wide, or use a profile with `{field} >= {need}` (e.g. `hardware big extends {} {{ backend {} {{ {field} = {need} }} }}`)", hw.name, be.kind().as_str())),
        );
        true
    }

    fn arch_precision(
        &mut self,
        file: FileId,
        s: &syntax::Section,
        hw: &HardwareProfile,
    ) -> Option<u32> {
        let mut phase = None;
        for e in &s.body.entries {
            match e {
                Entry::Field(f) if f.key.name == "phase" => {
                    let Some(bits) = self.bits(file, &f.value, "phase") else {
                        continue;
                    };
                    if !hw.backend.backend().optical() {
                        self.push(
                            Diagnostic::error(
                                code::PRECISION,
                                file,
                                f.span,
                                format!("`{}` is digital: it has no phase shifters", hw.name),
                            )
                            .with_label("no phases on digital hardware")
                            .with_help(
                                "remove the `precision` section, or choose an `mzi` profile",
                            ),
                        );
                    } else if bits > hw.precision.phase {
                        self.push(
                            Diagnostic::error(
                                code::PRECISION,
                                file,
                                f.value.span(),
                                format!("{bits}-bit phases requested, but `{}` has {}-bit phase shifters", hw.name, hw.precision.phase),
                            )
                            .with_label("more bits than the hardware has")
                            .with_related(hw.file, hw.span, format!("`{}` has {} bits", hw.name, hw.precision.phase))
                            .with_help(format!("ask for at most {} bit, or use a more precise profile", hw.precision.phase)),
                        );
                    } else {
                        phase = Some(bits);
                    }
                }
                Entry::Field(f) => {
                    self.unknown_key(file, &f.key, "an architecture's `precision`", &["phase"])
                }
                other => self.misplaced_entry(file, other, "`precision`"),
            }
        }
        phase
    }

    /// `constraint METRIC OP BOUND`; `static_only` for architectures (decidable without training).
    pub(crate) fn metric_constraint(
        &mut self,
        file: FileId,
        c: &syntax::Constraint,
        static_only: bool,
    ) -> Option<MetricConstraint> {
        let Some(metric) = Metric::from_name(&c.metric.name) else {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.0).collect();
            self.push(
                Diagnostic::error(
                    code::CONSTRAINT,
                    file,
                    c.metric.span,
                    format!("unknown metric `{}`", c.metric.name),
                )
                .with_label("unknown metric")
                .with_suggestion(&c.metric.name, c.metric.span, &names, "metric"),
            );
            return None;
        };
        if static_only && !metric.is_static() {
            self.push(
                Diagnostic::error(code::CONSTRAINT, file, c.metric.span, format!("`{}` is known only after training", c.metric.name))
                    .with_label("not decidable at compile time")
                    .with_help("architectures constrain energy, mzi_count, optical_depth and params; put accuracy constraints in a `search`"),
            );
            return None;
        }
        let dim = if metric == Metric::Energy {
            Dim::Energy
        } else {
            Dim::None
        };
        let bound = self.quantity(file, &c.bound, c.metric.name.as_str(), dim)?;
        Some(MetricConstraint {
            metric,
            op: c.op,
            bound,
            span: c.span,
        })
    }
}

/// The name an architecture entry defines, if any.
fn defines(e: &Entry) -> Option<String> {
    match e {
        Entry::Input(i) => Some(i.name.name.clone()),
        Entry::Field(f) => Some(f.key.name.clone()),
        _ => None,
    }
}

/// The one value defined so far and not used yet, if there is exactly one and no definition
/// failed (a failed one might be the value that was meant).
fn only_unused<'b>(b: &'b Builder<'_>) -> Option<&'b str> {
    let mut unused = None;
    for (name, (node, _)) in &b.bindings {
        match node {
            None => return None,
            Some(id) if !b.used.get(*id).copied().unwrap_or(true) => {
                if unused.replace(name.as_str()).is_some() {
                    return None;
                }
            }
            Some(_) => {}
        }
    }
    unused
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks every value named in `args` (at any depth of nested calls) as used.
fn mark_read(b: &mut Builder<'_>, args: &[Arg]) {
    for a in args {
        match &a.value {
            Expr::Ident(i) => {
                if let Some(&(Some(id), _)) = b.bindings.get(&i.name) {
                    if let Some(u) = b.used.get_mut(id) {
                        *u = true;
                    }
                }
            }
            Expr::Call(c) => mark_read(b, &c.args),
            _ => {}
        }
    }
}
