//! Machine-applicable fixes: each kind repairs its ui case, fixing twice changes nothing,
//! only fixes inside the candidate's region apply, `uhc fix` edits files, and no input
//! makes fixing panic.

use proptest::prelude::*;
use std::process::Command;
use uhc::check::StdlibResolver;
use uhc::diag::Sources;
use uhc::fix::{fix_source, fix_with, Region, MAX_ROUNDS};

fn errors(text: &str) -> usize {
    let (_, diags, _) = uhc::check_source_with("input.uh", text, &StdlibResolver);
    diags.iter().filter(|d| d.is_error()).count()
}

fn ui_case(name: &str) -> (String, String) {
    let path = format!("tests/ui/{name}.uh");
    let text = std::fs::read_to_string(super::root().join(&path)).expect("ui case exists");
    (path, text)
}

/// One ui case per kind of fix, the fix it must get, and after fixing the file is clean.
const FIXED_CLEAN: &[(&str, &str)] = &[
    ("op_misspelt", "replace `modrelo` with `modrelu`"),
    ("backend_misspelt", "replace `digtal` with `digital`"),
    ("undefined_value_typo", "replace `hiden` with `hidden`"),
    (
        "undefined_extends_typo",
        "replace `mzi_realstic` with `mzi_realistic`",
    ),
    ("undefined_task_typo", "replace `digts` with `digits`"),
    (
        "unknown_field_typo_fixable",
        "replace `phase_sigmaa` with `phase_sigma`",
    ),
    (
        "undefined_output_only_unused",
        "replace `out` with `logits`",
    ),
    ("undefined_value_only_unused", "replace `hidden` with `h`"),
    ("ports_linear_too_wide", "set the width to 16"),
    ("ports_digital_max_width", "set the width to 64"),
    ("type_output_not_detected", "wrap the output in `detect(…)`"),
    ("unit_wrong_case", "replace `mw` with `mW`"),
    ("unit_misspelt", "replace `rads` with `rad`"),
];

/// Cases where a fix would be a guess: they must get none.
const NO_FIX: &[&str] = &[
    "undefined_value_two_unused",
    "undefined_value_used_before_definition",
    "ports_last_linear_too_wide",
    "unit_prefix_case_swap",
    "search_unknown_metric",
];

#[test]
fn each_fix_kind_repairs_its_case_and_is_idempotent() {
    for (case, expected) in FIXED_CLEAN {
        let (name, text) = ui_case(case);
        assert!(errors(&text) > 0, "{case} has an error to fix");
        let (once, _) = fix_source(&name, &text, &StdlibResolver);
        let what: Vec<&str> = once
            .applied
            .iter()
            .map(|a| a.description.as_str())
            .collect();
        assert!(
            what.iter().any(|w| w.starts_with(expected)),
            "{case}: expected `{expected}`, applied {what:?}"
        );
        assert!(once.converged, "{case}");
        assert_eq!(errors(&once.text), 0, "{case} after fixing:\n{}", once.text);
        // Comments and every other line survive: only the fixed lines differ.
        let changed = text
            .lines()
            .zip(once.text.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, once.applied.len(), "{case}:\n{}", once.text);
        assert_eq!(text.lines().count(), once.text.lines().count(), "{case}");
        let (twice, _) = fix_source(&name, &once.text, &StdlibResolver);
        assert!(twice.applied.is_empty(), "{case}: {:?}", twice.applied);
        assert_eq!(twice.text, once.text, "{case}");
    }
}

#[test]
fn ambiguous_cases_get_no_fix() {
    for case in NO_FIX {
        let (name, text) = ui_case(case);
        let (_, diags, _) = uhc::check_source_with(&name, &text, &StdlibResolver);
        let fixes: Vec<_> = diags.iter().flat_map(|d| &d.fixes).collect();
        assert!(fixes.is_empty(), "{case}: {fixes:?}");
    }
}

/// Over every ui case: a fix never adds errors, and fixing a fixed file changes nothing.
#[test]
fn every_ui_case_fixes_to_fewer_errors() {
    let mut fixed = 0;
    for path in super::uh_files("tests/ui") {
        let name = super::rel(&path);
        let text = std::fs::read_to_string(&path).expect("ui case is UTF-8");
        let (once, _) = fix_source(&name, &text, &StdlibResolver);
        if once.applied.is_empty() {
            assert_eq!(once.text, text, "{name}");
            continue;
        }
        fixed += 1;
        assert!(
            errors(&once.text) < errors(&text),
            "{name}: {} → {} errors:\n{}",
            errors(&text),
            errors(&once.text),
            once.text
        );
        let (twice, _) = fix_source(&name, &once.text, &StdlibResolver);
        assert_eq!(twice.text, once.text, "{name}");
    }
    assert!(fixed >= FIXED_CLEAN.len(), "{fixed} ui cases got fixes");
}

/// The search checks a candidate appended to its prelude: only the candidate's fixes
/// apply, in the candidate's own offsets.
#[test]
fn a_candidate_is_fixed_inside_its_region_only() {
    // The prelude has a fixable typo of its own (`mzi_realstic`), which is not ours to fix.
    let prelude = "use \"hw/mzi.uh\"\nhardware mine extends mzi_realstic {}\n";
    let candidate = "arch c on mzi_realistic {\n    input x: real[16] // pixels\n    h = modrelo(linear(x, 16))\n    y = linear(h, 10)\n    output y\n}\n";
    let outcome = fix_with(candidate, MAX_ROUNDS, |t| {
        let mut sources = Sources::new();
        let root = sources.add("search.uh#candidate", format!("{prelude}\n{t}"));
        let (_, diags) = uhc::compile(&mut sources, root, &StdlibResolver);
        let region = Region {
            file: root,
            start: prelude.len() as u32 + 1,
        };
        (region, diags)
    });
    assert_eq!(
        outcome.text,
        candidate
            .replace("modrelo", "modrelu")
            .replace("output y", "output detect(y)")
    );
    assert_eq!(outcome.applied.len(), 2, "{:?}", outcome.applied);
    // What remains is the prelude's problem.
    assert!(
        outcome
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .all(|d| d.message.contains("mzi_realstic")),
        "{:?}",
        outcome.diagnostics
    );
}

#[test]
fn json_diagnostics_carry_fixes_as_single_replacements() {
    let (name, text) = ui_case("type_output_not_detected");
    let (_, diags, sources) = uhc::check_source_with(&name, &text, &StdlibResolver);
    let json = serde_json::to_value(sources.render_json(&diags)).expect("serializes");
    let fixed = json
        .as_array()
        .expect("array")
        .iter()
        .find(|d| !d["fixes"].as_array().expect("fixes").is_empty())
        .expect("a diagnostic with a fix");
    let fix = &fixed["fixes"][0];
    let (start, end) = (fix["start"].as_u64().unwrap(), fix["end"].as_u64().unwrap());
    assert_eq!(&text[start as usize..end as usize], "y");
    assert_eq!(fix["replacement"], "detect(y)");
    assert_eq!(fix["description"], "wrap the output in `detect(…)`");
    assert_eq!(fix["line"], 8);
}

fn uhc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uhc"))
        .args(args)
        .output()
        .expect("uhc runs")
}

#[test]
fn cli_fix_dry_run_then_in_place() {
    let dir = std::env::temp_dir().join(format!("uhc-it-cli-fix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let file = dir.join("nested/net.uh");
    let original = ui_case("op_misspelt").1.replace(
        "    h = linear(x, 16)",
        "    // a comment that must survive\n    h = linear(x, 16)",
    );
    std::fs::write(&file, &original).unwrap();
    let dirs = dir.to_str().unwrap();

    let dry = uhc(&["fix", "--dry-run", dirs]);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "fixable problems remain on disk"
    );
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        stdout.contains("net.uh:8: would apply fix: replace `modrelo` with `modrelu`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-    a = modrelo(h, bias = 0.1)\n+    a = modrelu(h, bias = 0.1)\n"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    let fix = uhc(&["fix", dirs]);
    let stdout = String::from_utf8_lossy(&fix.stdout);
    assert_eq!(fix.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("net.uh:8: applied fix: replace `modrelo` with `modrelu`"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        original.replace("modrelo(", "modrelu(")
    );

    let again = uhc(&["fix", dirs]);
    assert_eq!(again.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&again.stdout).contains("applied"));

    // A problem no fix can solve: exit 1, file untouched, the problem reported.
    let stuck = dir.join("stuck.uh");
    let stuck_text = ui_case("undefined_value_two_unused").1;
    std::fs::write(&stuck, &stuck_text).unwrap();
    let out = uhc(&["fix", stuck.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("uh::check::undefined"));
    assert_eq!(std::fs::read_to_string(&stuck).unwrap(), stuck_text);

    let missing = uhc(&["fix", dir.join("missing.uh").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));

    let json = uhc(&["check", "--format", "json", stuck.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON array");
    assert!(v.as_array().unwrap().iter().all(|d| d["fixes"].is_array()));
    let _ = std::fs::remove_dir_all(&dir);
}

fn example_text() -> String {
    std::fs::read_to_string(super::root().join("examples/digits_small.uh")).expect("example exists")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Fixing mutated files never panics, and a converged result is a fixed point.
    #[test]
    fn fixing_mutations_never_panics(ops in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..6)) {
        let text = super::robustness::mutate(&example_text(), &ops);
        let (once, _) = fix_source("input.uh", &text, &StdlibResolver);
        if once.converged {
            let (twice, _) = fix_source("input.uh", &once.text, &StdlibResolver);
            prop_assert_eq!(twice.text, once.text);
        }
    }
}
