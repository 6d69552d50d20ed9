//! Every example and stdlib file checks clean; the checked model of each is snapshotted.

use uhc::driver::FsResolver;

/// The checked and lowered model of a clean file, as text: archs with their graphs,
/// energy, hash and nodes; tasks; searches.
fn summary(path: &std::path::Path) -> String {
    let name = super::rel(path);
    let text = std::fs::read_to_string(path).expect("example is UTF-8");
    let full = path.display().to_string();
    let (checked, diags, sources) = uhc::check_source_with(&full, &text, &FsResolver);
    assert!(
        diags.is_empty(),
        "{name} is not clean:\n{}",
        sources.render_plain(&diags)
    );
    let compiled = checked.expect("clean file yields a program");
    let checked = &compiled.checked;
    let mut summary = String::new();
    for a in &checked.archs {
        summary.push_str(&format!("arch {} on {}\n", a.name, a.hardware));
        let g = compiled.graph(&a.name).expect("every arch is lowered");
        summary.push_str(&g.dump());
        summary.push_str(&uhc::ir::energy::render(&uhc::ir::energy_report(g)));
        summary.push_str(&format!("hash {}\n", uhc::ir::structural_hash(g)));
        for n in &a.nodes {
            let inputs: Vec<&str> = n.inputs.iter().map(|&i| a.nodes[i].name.as_str()).collect();
            summary.push_str(&format!(
                "  {} : {} = {:?} {:?}\n",
                n.name, n.ty, n.op, inputs
            ));
        }
    }
    for t in &checked.tasks {
        summary.push_str(&format!("task {}: {:?}\n", t.name, t));
    }
    for s in &checked.searches {
        summary.push_str(&format!("search {}: {:?}\n", s.name, s));
    }
    summary
}

/// Each example is its own snapshot (`snapshots/examples/example@NAME.uh.snap`): `glob!`
/// runs them all and reports every mismatch, not the first.
#[test]
fn examples_check_clean() {
    assert!(
        !super::uh_files("examples").is_empty(),
        "examples/ has .uh files"
    );
    insta::glob!("../../examples", "*.uh", |path| {
        let summary = summary(path);
        insta::with_settings!({ snapshot_path => "snapshots/examples", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("example", summary);
        });
    });
}

#[test]
fn stdlib_checks_clean() {
    for path in super::uh_files("stdlib") {
        summary(&path);
    }
}
