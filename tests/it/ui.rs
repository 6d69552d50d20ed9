//! One bad input per file under `tests/ui/`; its first line names the expected code
//! (`// expect: uh::check::ports`). The rendered diagnostics are snapshotted.

use uhc::check::StdlibResolver;
use uhc::diag::{Severity, CODES};

fn expected_codes(text: &str) -> Vec<String> {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("// expect:"))
        .map(|rest| {
            rest.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ui_cases() {
    let files = super::uh_files("tests/ui");
    assert!(
        files.len() >= 40,
        "at least 40 ui cases, found {}",
        files.len()
    );
    // Each case is its own snapshot (`snapshots/ui/case@NAME.uh.snap`): `glob!` runs them
    // all and reports every mismatch, not the first.
    let mut failures = Vec::new();
    insta::glob!("../ui", "*.uh", |path| {
        let name = super::rel(path);
        let text = std::fs::read_to_string(path).expect("ui case is UTF-8");
        let expected = expected_codes(&text);
        if expected.is_empty() {
            failures.push(format!("{name}: first line must be `// expect: CODE`"));
            return;
        }
        let (checked, diags, sources) = uhc::check_source_with(&name, &text, &StdlibResolver);
        let got: Vec<&str> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error || expected.iter().any(|e| e == d.code))
            .map(|d| d.code)
            .collect();
        for e in &expected {
            if !got.contains(&e.as_str()) {
                failures.push(format!("{name}: expected {e}, got {got:?}"));
            }
        }
        if expected
            .iter()
            .any(|e| CODES.iter().find(|c| c.code == e).is_none())
        {
            failures.push(format!("{name}: expects an unregistered code {expected:?}"));
        }
        if diags.iter().any(|d| d.is_error()) == checked.is_some() {
            failures.push(format!(
                "{name}: a file with errors must not yield a checked program"
            ));
        }
        let rendered = sources.render_human(&diags, false);
        insta::with_settings!({ snapshot_path => "snapshots/ui", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("case", format!("{text}\n---\n{rendered}"));
        });
    });
    assert!(failures.is_empty(), "ui failures:\n{}", failures.join("\n"));
}

/// Every registered code has at least one ui case, so every diagnostic is exercised and
/// its rendering reviewed.
#[test]
fn every_code_has_a_ui_case() {
    let mut covered = std::collections::HashSet::new();
    for path in super::uh_files("tests/ui") {
        let text = std::fs::read_to_string(&path).expect("ui case is UTF-8");
        covered.extend(expected_codes(&text));
    }
    // Codes only the driver can produce (files it cannot read or decode) are covered by
    // the CLI tests instead; `too_large` needs a 16 MiB input, which `robustness.rs`
    // (`huge_file_gets_a_diagnostic`) generates rather than a checked-in file.
    let driver_only = ["uh::syntax::utf8", "uh::syntax::too_large"];
    let missing: Vec<&str> = CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| !covered.contains(*c) && !driver_only.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without a ui case: {missing:?}");
}

/// The book's diagnostics index has an entry for every code.
#[test]
fn every_code_is_in_the_book() {
    let index = std::fs::read_to_string(super::root().join("book/src/diagnostics.md"))
        .expect("book/src/diagnostics.md exists");
    let missing: Vec<&str> = CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| !index.contains(&format!("## `{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from book/src/diagnostics.md: {missing:?}"
    );
}
