//! `uhc grammar FILE [--search S] [--format gbnf|lark]`: the decoding grammar the LLM
//! operators send, for people who serve models themselves.

use super::{read_text, EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use std::path::Path;
use uhc::check::grammar::cfg::Dialect;
use uhc::check::grammar::{ArchGrammar, Names};
use uhc::driver::FsResolver;
use uhc::Sources;

pub fn run(
    file: &Path,
    search: Option<&str>,
    dialect: Dialect,
    max_layers: usize,
    names: Names,
) -> u8 {
    let text = match read_text(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return EXIT_USAGE;
        }
    };
    let mut sources = Sources::new();
    let root = sources.add(file.display().to_string(), text);
    let (compiled, diags) = uhc::compile(&mut sources, root, &FsResolver);
    if !diags.is_empty() {
        eprint!("{}", sources.render_human(&diags, false));
    }
    let Some(compiled) = compiled else {
        return EXIT_PROBLEMS;
    };
    let searches = &compiled.checked.searches;
    let spec = match search {
        Some(name) => searches.iter().find(|s| s.name == name),
        None if searches.len() == 1 => searches.first(),
        None => None,
    };
    let Some(spec) = spec else {
        let names: Vec<&str> = searches.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: {}; the file has {}",
            match search {
                Some(n) => format!("no search named `{n}`"),
                None => "choose a search with --search".to_string(),
            },
            if names.is_empty() {
                "no `search` item".to_string()
            } else {
                names.join(", ")
            }
        );
        return EXIT_USAGE;
    };
    let (Some(hw), Some(task)) = (
        compiled.checked.hardware(&spec.hardware),
        compiled.checked.task(&spec.task),
    ) else {
        eprintln!("error: the search's hardware or task is missing");
        return EXIT_PROBLEMS;
    };
    let grammar = ArchGrammar::for_task(hw, task).and_then(|mut g| {
        g.max_layers = max_layers;
        g.names = names;
        g.build()
    });
    match grammar {
        Ok(g) => {
            print!("{}", g.render(dialect));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_PROBLEMS
        }
    }
}
