//! Decoding grammars against the compiler: what a grammar lets a model write must check,
//! and what people wrote must be in the grammar.

use rand::SeedableRng;
use uhc::check::grammar::cfg::{Dialect, Grammar};
use uhc::check::grammar::{fenced_canonical, ArchGrammar, Names, DEF_NAME, REF_NAME};
use uhc::check::model::{BackendKind, Domain, HardwareProfile};
use uhc::check::ops;
use uhc::syntax::{self, Item};

/// The stdlib's profiles, plus narrow ones with few ops, from one checked file.
fn profiles() -> Vec<HardwareProfile> {
    let text = r#"use "hw/mzi.uh"
use "hw/digital.uh"
use "hw/aimc.uh"
hardware narrow_mzi extends mzi_realistic {
    backend mzi { max_ports = 8 }
    ops [linear, detect]
}
hardware relu_only extends cpu_fp32 {
    backend digital { max_width = 12 }
    ops [linear, relu]
}
"#;
    let (compiled, diags, sources) = uhc::check_source("profiles.uh", text);
    let compiled = compiled.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
    compiled.checked.hardware
}

/// The prelude a candidate is compiled after, as in a search.
const PRELUDE: &str = "use \"hw/mzi.uh\"\nuse \"hw/digital.uh\"\nuse \"hw/aimc.uh\"\nhardware narrow_mzi extends mzi_realistic {\n    backend mzi { max_ports = 8 }\n    ops [linear, detect]\n}\nhardware relu_only extends cpu_fp32 {\n    backend digital { max_width = 12 }\n    ops [linear, relu]\n}\n";

/// The arch inside a sampled sentence's fence.
fn unfence(s: &str) -> &str {
    s.trim_start_matches("```uh\n").trim_end_matches("```")
}

/// Binds names the way a context-free grammar cannot: every definition gets a fresh
/// name, every reference the name defined on the line before.
fn binder() -> impl FnMut(&str, &str) -> Option<String> {
    let mut defs: Vec<(usize, String)> = Vec::new();
    move |rule: &str, so_far: &str| {
        let line = so_far.matches('\n').count();
        match rule {
            DEF_NAME => {
                let name = format!("v{}", defs.len());
                defs.push((line, name.clone()));
                Some(name)
            }
            REF_NAME => defs
                .iter()
                .rev()
                .find(|(l, _)| *l < line)
                .map(|(_, n)| n.clone()),
            _ => None,
        }
    }
}

struct Verdict {
    errors: Vec<&'static str>,
    shape: Option<(usize, usize, Domain)>,
}

fn check_candidate(arch: &str) -> Verdict {
    let text = format!("{PRELUDE}{arch}");
    let (compiled, diags, _) = uhc::check_source("candidate.uh", &text);
    let errors: Vec<&'static str> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect();
    let shape = compiled.and_then(|c| {
        let g = c.checked.archs.first()?.clone();
        Some((
            g.input_width(),
            g.output_type().width,
            g.output_type().domain,
        ))
    });
    Verdict { errors, shape }
}

#[test]
fn every_example_arch_is_a_sentence_of_its_grammar() {
    let mut checked = 0;
    for path in crate::uh_files("examples") {
        let text = std::fs::read_to_string(&path).expect("example is readable");
        let (compiled, diags, sources) = uhc::check_source(&crate::rel(&path), &text);
        let compiled = compiled.unwrap_or_else(|| panic!("{}", sources.render_plain(&diags)));
        let Some(task) = compiled.checked.tasks.first() else {
            continue;
        };
        let (ast, _) = syntax::parse(uhc::diag::FileId(0), &text);
        for item in &ast.items {
            let Item::Arch(a) = item else { continue };
            let hw = compiled
                .checked
                .hardware(&a.hardware.name)
                .expect("arch hardware is checked");
            let grammar = ArchGrammar::for_task(hw, task)
                .and_then(|g| {
                    ArchGrammar {
                        names: Names::Free,
                        ..g
                    }
                    .build()
                })
                .expect("grammar builds");
            let sentence = fenced_canonical(a);
            assert!(
                grammar.accepts(&sentence),
                "{}: arch `{}` is not accepted by its grammar:\n{sentence}",
                crate::rel(&path),
                a.name.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} example archs were checked");
}

#[test]
fn grammars_render_without_undefined_rules_and_refuse_impossible_tasks() {
    for hw in profiles() {
        let g = ArchGrammar {
            hardware: &hw,
            features: 8,
            classes: 3,
            max_layers: 6,
            names: Names::Positional,
        }
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", hw.name));
        assert!(
            g.undefined_refs().is_empty(),
            "{}: {:?}",
            hw.name,
            g.undefined_refs()
        );
        let gbnf = g.render(Dialect::Gbnf);
        assert!(
            gbnf.starts_with("root ::= \"```uh\\narch \" ident"),
            "{gbnf}"
        );
        assert!(gbnf.contains(&format!(" on {} {{", hw.name)));
        let lark = g.render(Dialect::Lark);
        assert!(lark.starts_with("start: "));
        assert!(!lark.contains("::="));
        let too_wide = hw.backend.max_width() + 1;
        let err = ArchGrammar {
            hardware: &hw,
            features: too_wide,
            classes: 3,
            max_layers: 6,
            names: Names::Free,
        }
        .build()
        .expect_err("input wider than the hardware");
        assert!(err.contains(&format!("{too_wide} features")), "{err}");
    }
}

/// The shapes of tasks the derivations run on: (features, classes).
const SHAPES: [(usize, usize); 4] = [(8, 3), (6, 6), (4, 8), (8, 2)];

/// Every derivation checks clean with the task's shape: positional names as sampled,
/// free names once bound (what a context-free grammar cannot do).
#[test]
fn random_derivations_check_and_have_the_task_shape() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6BAD);
    let mut total = 0;
    for hw in profiles() {
        for (features, classes) in SHAPES {
            for names in [Names::Positional, Names::Free] {
                let grammar: Grammar = ArchGrammar {
                    hardware: &hw,
                    features,
                    classes,
                    max_layers: 6,
                    names,
                }
                .build()
                .unwrap_or_else(|e| panic!("{}: {e}", hw.name));
                for _ in 0..25 {
                    let sentence = match names {
                        Names::Positional => grammar.sample(&mut rng, &mut |_, _| None, 10_000),
                        Names::Free => grammar.sample(&mut rng, &mut binder(), 10_000),
                    }
                    .expect("derivations are finite");
                    assert!(
                        grammar.accepts(&sentence),
                        "sampled but refused:\n{sentence}"
                    );
                    let v = check_candidate(unfence(&sentence));
                    assert!(
                        v.errors.is_empty(),
                        "{} {features}->{classes} {names:?}: {:?}\n{sentence}",
                        hw.name,
                        v.errors
                    );
                    assert_eq!(
                        v.shape,
                        Some((features, classes, Domain::Real)),
                        "{}:\n{sentence}",
                        hw.name
                    );
                    total += 1;
                }
            }
        }
    }
    assert!(total >= 1000, "{total} derivations");
}

/// Whether every value line of `arch` defines a new name and takes the value defined on
/// the line before, and the output takes the last one: the chain rule a context-free
/// grammar cannot state.
fn chained(arch: &str) -> bool {
    use uhc::syntax::{Entry, Expr};
    let (file, _) = syntax::parse(uhc::diag::FileId(0), arch);
    let Some(Item::Arch(a)) = file.items.into_iter().next() else {
        return false;
    };
    fn innermost(e: &Expr) -> Option<&str> {
        match e {
            Expr::Ident(i) => Some(&i.name),
            Expr::Call(c) => innermost(&c.args.first()?.value),
            _ => None,
        }
    }
    let mut defined: Vec<String> = Vec::new();
    for e in &a.body.entries {
        let (name, value) = match e {
            Entry::Input(i) => {
                defined.push(i.name.name.clone());
                continue;
            }
            Entry::Field(f) => (Some(&f.key.name), &f.value),
            Entry::Output(o) => (None, &o.value),
            _ => return false,
        };
        if innermost(value) != defined.last().map(String::as_str) {
            return false;
        }
        if let Some(n) = name {
            if defined.contains(n) {
                return false;
            }
            defined.push(n.clone());
        }
    }
    true
}

/// Without binding, a derivation fails only where it breaks the chain rule (a name used
/// before it is bound, bound twice, or another value than the last one taken): what a
/// context-free grammar cannot say. Their share is the documented residue.
#[test]
fn unbound_derivations_fail_only_where_names_break_the_chain() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let (mut n, mut residue, mut chained_ok) = (0, 0, 0);
    for hw in profiles() {
        for (features, classes) in SHAPES {
            let grammar = ArchGrammar {
                hardware: &hw,
                features,
                classes,
                max_layers: 6,
                names: Names::Free,
            }
            .build()
            .expect("grammar builds");
            for _ in 0..30 {
                let sentence = grammar
                    .sample(&mut rng, &mut |_, _| None, 10_000)
                    .expect("derivations are finite");
                let arch = unfence(&sentence);
                let v = check_candidate(arch);
                n += 1;
                if chained(arch) {
                    assert!(
                        v.errors.is_empty(),
                        "{}: {:?}\n{sentence}",
                        hw.name,
                        v.errors
                    );
                    chained_ok += 1;
                } else if !v.errors.is_empty() {
                    residue += 1;
                }
            }
        }
    }
    eprintln!(
        "grammar residue: {residue} of {n} unbound derivations fail, all on names ({chained_ok} happened to chain and checked clean)"
    );
    assert!(
        residue > 0,
        "random names never broke the chain: the test saw no residue"
    );
}

/// The grammar's domain table is the checker's: every op, on each backend kind, for
/// each input domain, is accepted exactly when the profile offers it and
/// [`ops::result_domain`] says so, with the domain it says.
#[test]
fn result_domain_agrees_with_the_checker() {
    let profiles = profiles();
    for (hw, kind) in [
        ("mzi_realistic", BackendKind::Mzi),
        ("cpu_fp32", BackendKind::Digital),
        ("aimc_pcm", BackendKind::Aimc),
    ] {
        let profile = profiles
            .iter()
            .find(|p| p.name == hw)
            .expect("stdlib profile");
        assert_eq!(profile.backend.kind(), kind);
        for op in ops::CATALOG {
            for (ty, domain) in [("real", Domain::Real), ("complex", Domain::Complex)] {
                let args = if ops::sets_width(op.name) { ", 4" } else { "" };
                let mut accepted = None;
                for output in ["y", "detect(y)"] {
                    let arch = format!(
                        "arch t on {hw} {{\n    input x: {ty}[4]\n    y = {}(x{args})\n    output {output}\n}}\n",
                        op.name
                    );
                    let text = format!("{PRELUDE}{arch}");
                    let (compiled, _, _) = uhc::check_source("t.uh", &text);
                    if let Some(c) = compiled {
                        let g = &c.checked.archs[0];
                        let y = g.nodes.iter().find(|n| n.name == "y").expect("y is a node");
                        accepted = Some(y.ty.domain);
                    }
                }
                let expected = if profile.supports(op.name) {
                    ops::result_domain(op.name, uhc::backend::by_kind(kind), domain)
                } else {
                    None
                };
                assert_eq!(accepted, expected, "{} of {ty} on {hw}", op.name);
            }
        }
    }
}
