//! Parse + check + lower throughput, the search's per-candidate front-end cost.
//!
//! `cargo bench --bench check` measures; without `--bench` (as `cargo test --all-targets`
//! runs it) it does one smoke iteration. Figures are reported against a baseline measured
//! in the same run: a plain scan of the same bytes (counting newlines), so the ratio says
//! how many "memchr passes" the front end costs.

use std::hint::black_box;
use std::time::{Duration, Instant};

const TYPICAL: &str = include_str!("../examples/digits_search.uh");

/// A file of `n` architectures (about 8 lines each) on the stdlib MZI profile.
fn big_file(lines: usize) -> String {
    let mut s = String::from("use \"hw/mzi.uh\"\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "arch a{i} on mzi_realistic {{\n    input x: real[16]\n    h = linear(x, 16)\n    a = modrelu(h, bias = 0.1)\n    h2 = unitary(a)\n    y = linear(h2, 10)\n    output detect(y)\n}}\n"
        ));
        i += 1;
    }
    s
}

fn time<F: FnMut()>(mut f: F, budget: Duration) -> (f64, u64) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || n < 3 {
        f();
        n += 1;
    }
    (start.elapsed().as_secs_f64() / n as f64, n)
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let budget = if measure {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(1)
    };
    let big = big_file(5_000);
    for (name, text) in [
        ("typical (examples/digits_search.uh)", TYPICAL.to_string()),
        ("5 000 lines", big),
    ] {
        let (compiled, diags, _) = uhc::check_source("bench.uh", &text);
        assert!(
            compiled.is_some() && diags.is_empty(),
            "bench input must be clean: {diags:?}"
        );
        let (t_check, n) = time(
            || {
                black_box(uhc::check_source("bench.uh", black_box(&text)));
            },
            budget,
        );
        let (t_scan, _) = time(
            || {
                black_box(
                    black_box(text.as_bytes())
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count(),
                );
            },
            budget,
        );
        println!(
            "{name}: {} lines, {} bytes: parse+check+lower {:.1} µs/file ({n} runs), {:.0}× a newline scan of the same bytes ({:.2} µs)",
            text.lines().count(),
            text.len(),
            t_check * 1e6,
            t_check / t_scan,
            t_scan * 1e6
        );
    }
    candidate(budget);
}

/// What the search pays per candidate: one `arch` (a seed of the typical search) compiled
/// for its search (`SearchContext::compile_candidate`: shape, check, lower, task shape,
/// hash, canonical text), against the same newline-scan baseline.
fn candidate(budget: Duration) {
    let (compiled, diags, _) = uhc::check_source("digits_search.uh", TYPICAL);
    assert!(diags.is_empty(), "{diags:?}");
    let compiled = compiled.expect("typical search compiles");
    let cx = uhc::search::engine::SearchContext::new(
        "digits_search.uh",
        TYPICAL,
        &compiled,
        None,
        std::sync::Arc::new(uhc::check::StdlibResolver),
    )
    .expect("search context");
    let text = cx.seeds[0].clone();
    assert!(cx.compile_candidate(&text).is_ok(), "the seed compiles");
    let (t, n) = time(
        || {
            black_box(cx.compile_candidate(black_box(&text)).is_ok());
        },
        budget,
    );
    let (t_scan, _) = time(
        || {
            black_box(
                black_box(text.as_bytes())
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count(),
            );
        },
        budget,
    );
    println!(
        "search candidate ({} lines, {} bytes): compile_candidate {:.1} µs ({n} runs), {:.0}× a newline scan of the same bytes ({:.2} µs)",
        text.lines().count(),
        text.len(),
        t * 1e6,
        t / t_scan,
        t_scan * 1e6
    );
}
