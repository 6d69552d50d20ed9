//! `uhc fmt` is idempotent, keeps comments, and never changes meaning:
//! parse(print(ast)) == ast and fmt(fmt(x)) == fmt(x).

use proptest::prelude::*;
use uhc::diag::FileId;
use uhc::syntax::{format_source, parse, print_file};

fn corpus() -> Vec<(String, String)> {
    let mut files = super::uh_files("examples");
    files.extend(super::uh_files("stdlib"));
    files.extend(super::uh_files("tests/ui"));
    files
        .into_iter()
        .map(|p| (super::rel(&p), std::fs::read_to_string(&p).expect("UTF-8")))
        .collect()
}

fn assert_roundtrip(name: &str, text: &str) {
    let (ast, diags) = parse(FileId(0), text);
    if diags.iter().any(|d| d.is_error()) {
        return; // Only parseable text has a canonical form.
    }
    let printed = print_file(&ast);
    let (reparsed, diags2) = parse(FileId(0), &printed);
    assert!(
        diags2.is_empty(),
        "{name}: printed text does not parse:\n{printed}"
    );
    assert_eq!(ast, reparsed, "{name}: parse(print(ast)) != ast");

    let once = format_source(FileId(0), text).expect("parseable text formats");
    let twice = format_source(FileId(0), &once).expect("formatted text parses");
    assert_eq!(once, twice, "{name}: fmt is not idempotent");
    let (formatted_ast, _) = parse(FileId(0), &once);
    assert_eq!(ast, formatted_ast, "{name}: fmt changed the meaning");
    // Every comment survives, in order.
    let comments = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.find("//").map(|i| l[i..].trim_end().to_string()))
            .collect()
    };
    assert_eq!(
        comments(text),
        comments(&once),
        "{name}: fmt lost or reordered comments"
    );
}

#[test]
fn corpus_roundtrips() {
    let corpus = corpus();
    assert!(corpus.len() > 10);
    for (name, text) in &corpus {
        assert_roundtrip(name, text);
    }
}

#[test]
fn fmt_normalises_layout() {
    let messy = "use \"hw/mzi.uh\"\narch  a on mzi_realistic{input x:real[4] ,h=linear( x,4 )\n\n\n output detect(h)}";
    let formatted = format_source(FileId(0), messy).expect("parses");
    assert_eq!(
        formatted,
        "use \"hw/mzi.uh\"\n\narch a on mzi_realistic {\n    input x: real[4]\n    h = linear(x, 4)\n\n    output detect(h)\n}\n"
    );
}

#[test]
fn fmt_refuses_unparseable_text() {
    let err = format_source(FileId(0), "arch a on b { input x: }").expect_err("does not parse");
    assert_eq!(err[0].code, "uh::syntax::parse");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Whatever a mutation leaves parseable still round-trips.
    #[test]
    fn mutated_files_roundtrip(file_ix in 0usize..64, ops in prop::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4)) {
        let corpus = corpus();
        let (name, text) = &corpus[file_ix % corpus.len()];
        let mutated = super::robustness::mutate(text, &ops);
        assert_roundtrip(name, &mutated);
    }
}
