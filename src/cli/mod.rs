//! Subcommand drivers: the edge where files are read and diagnostics rendered.

pub mod experiment;
pub mod grammar;
pub mod report;
pub mod search;
pub mod signals;
pub mod train;
pub mod worker;

use crate::{Emit, Format};
use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use uhc::diag::{code, Diagnostic, FileId, Severity, Sources};
use uhc::driver::{read_text, FsResolver};
use uhc::syntax::Span;

/// Exit codes: 0 clean, 1 problems found, 2 usage or I/O errors.
pub const EXIT_OK: u8 = 0;
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A clap parser for a count that must be at least 1 and at most `max`: `--draws 0`,
/// `--epochs 0`, `--budget 0` and `--jobs 0` are refused with the allowed range.
pub fn positive(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}

pub fn check(paths: &[PathBuf], format: Format, deny_warnings: bool) -> u8 {
    let Some(files) = collect(paths) else {
        return EXIT_USAGE;
    };
    check_files(&files, format, deny_warnings)
}

/// Checks files already collected, prints their diagnostics and a summary, and returns
/// the exit code (shared by `check` and by `fix`, which reports what is left).
fn check_files(files: &[PathBuf], format: Format, deny_warnings: bool) -> u8 {
    let mut sources = Sources::new();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut io_error = false;
    for path in files {
        let name = path.display().to_string();
        match read_text(path) {
            Ok(text) => {
                let root = sources.add(name, text);
                let (_, diags) = uhc::compile(&mut sources, root, &FsResolver);
                all.extend(diags);
            }
            Err(e) => match e.lossy {
                Some(lossy) => {
                    let id = sources.add(name, lossy);
                    let at = e.utf8_at.unwrap_or(0);
                    all.push(
                        Diagnostic::error(
                            code::UTF8,
                            id,
                            Span::new(at, at + 1),
                            "this file is not valid UTF-8 text",
                        )
                        .with_label("invalid byte")
                        .with_help("save the file as UTF-8; `.uh` files are text"),
                    );
                }
                None => {
                    eprintln!("error: {}", e.message);
                    io_error = true;
                }
            },
        }
    }
    let all = dedup(&sources, all);
    emit(&sources, &all, format);
    let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = all.len() - errors;
    if format == Format::Human {
        eprintln!(
            "checked {} file(s): {errors} error(s), {warnings} warning(s)",
            files.len()
        );
    }
    if io_error {
        EXIT_USAGE
    } else if errors > 0 || (deny_warnings && warnings > 0) {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

/// The files `paths` names, with the walk's notes on stderr; `None` (reported) on error.
fn collect(paths: &[PathBuf]) -> Option<Vec<PathBuf>> {
    match uhc::driver::collect(paths) {
        Ok(c) => {
            for note in &c.notes {
                eprintln!("note: {note}");
            }
            Some(c.files)
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// An imported file checked from two roots reports its problems once.
fn dedup(sources: &Sources, diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = HashSet::new();
    diags
        .into_iter()
        .filter(|d| {
            seen.insert((
                sources.name(d.file).to_string(),
                d.code,
                d.span.start,
                d.span.end,
                d.message.clone(),
            ))
        })
        .collect()
}

fn emit(sources: &Sources, diags: &[Diagnostic], format: Format) {
    let mut out = std::io::stdout().lock();
    let text = match format {
        Format::Human => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            sources.render_human(diags, color)
        }
        Format::Json => {
            let json = sources.render_json(diags);
            serde_json::to_string_pretty(&json).unwrap_or_else(|_| "[]".into()) + "\n"
        }
        Format::Github => sources.render_github(diags),
    };
    let _ = out.write_all(text.as_bytes());
}

/// `uhc fix`: applies every unambiguous fix the checker offers, re-checking between rounds
/// (`uhc::fix::fix_source`), then reports what is left the way `uhc check` does, with the
/// same exit codes. `--dry-run` writes nothing: it lists the fixes and prints a diff, and
/// exits as `uhc check` would on the files as they are.
pub fn fix(paths: &[PathBuf], dry_run: bool) -> u8 {
    let Some(files) = collect(paths) else {
        return EXIT_USAGE;
    };
    let mut status = EXIT_OK;
    let (mut fixed, mut changed_files, mut remaining) = (0, 0, 0);
    for path in &files {
        let name = path.display().to_string();
        let text = match read_text(path) {
            Ok(t) => t,
            Err(e) => {
                // Not UTF-8: nothing to fix safely; `check_files` reports it.
                if e.lossy.is_none() {
                    eprintln!("error: {}", e.message);
                    status = EXIT_USAGE;
                } else {
                    remaining += 1;
                }
                continue;
            }
        };
        let (outcome, _) = uhc::fix::fix_source(&name, &text, &FsResolver);
        remaining += outcome.diagnostics.iter().filter(|d| d.is_error()).count();
        if outcome.applied.is_empty() {
            continue;
        }
        let verb = if dry_run { "would apply" } else { "applied" };
        for a in &outcome.applied {
            println!("{name}:{}: {verb} fix: {}", a.line, a.description);
        }
        fixed += outcome.applied.len();
        changed_files += 1;
        if dry_run {
            print!("{}", diff(&name, &text, &outcome.text));
        } else if let Err(e) = std::fs::write(path, &outcome.text) {
            eprintln!("error: cannot write {name}: {e}");
            status = EXIT_USAGE;
        }
    }
    if dry_run {
        eprintln!(
            "would fix {fixed} problem(s) in {changed_files} file(s); {remaining} error(s) would remain"
        );
        return if status == EXIT_USAGE {
            EXIT_USAGE
        } else if fixed > 0 || remaining > 0 {
            EXIT_PROBLEMS
        } else {
            EXIT_OK
        };
    }
    eprintln!("fixed {fixed} problem(s) in {changed_files} file(s)");
    status.max(check_files(&files, Format::Human, false))
}

/// A unified diff of a fixed file: one hunk per run of changed lines, without context
/// (fixes never add or remove lines, so lines pair up; otherwise one hunk covers the rest).
fn diff(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut out = format!("--- {name}\n+++ {name} (fixed)\n");
    let mut hunk = |at_a: usize, old: &[&str], at_b: usize, new: &[&str]| {
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            at_a + 1,
            old.len(),
            at_b + 1,
            new.len()
        ));
        for l in old {
            out.push_str(&format!("-{l}\n"));
        }
        for l in new {
            out.push_str(&format!("+{l}\n"));
        }
    };
    if a_mid.len() != b_mid.len() {
        hunk(prefix, a_mid, prefix, b_mid);
        return out;
    }
    let mut i = 0;
    while i < a_mid.len() {
        if a_mid[i] == b_mid[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < a_mid.len() && a_mid[i] != b_mid[i] {
            i += 1;
        }
        hunk(
            prefix + start,
            &a_mid[start..i],
            prefix + start,
            &b_mid[start..i],
        );
    }
    out
}

pub fn fmt(paths: &[PathBuf], check_only: bool) -> u8 {
    if paths.len() == 1 && paths[0].as_os_str() == "-" {
        let limit = uhc::driver::MAX_SOURCE_FILE_BYTES;
        let mut text = String::new();
        if std::io::stdin()
            .take(limit + 1)
            .read_to_string(&mut text)
            .is_err()
        {
            eprintln!("error: standard input is not valid UTF-8 text");
            return EXIT_USAGE;
        }
        if text.len() as u64 > limit {
            eprintln!(
                "error: standard input is larger than {}, the most uhc reads from one file",
                uhc::driver::human_bytes(limit)
            );
            return EXIT_USAGE;
        }
        return match uhc::syntax::format_source(FileId(0), &text) {
            Ok(formatted) => {
                print!("{formatted}");
                if check_only && formatted != text {
                    EXIT_PROBLEMS
                } else {
                    EXIT_OK
                }
            }
            Err(diags) => {
                let mut sources = Sources::new();
                sources.add("<stdin>", text);
                emit(&sources, &diags, Format::Human);
                EXIT_PROBLEMS
            }
        };
    }
    let Some(files) = collect(paths) else {
        return EXIT_USAGE;
    };
    let mut status = EXIT_OK;
    for path in files {
        let text = match read_text(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}", e.message);
                status = EXIT_USAGE;
                continue;
            }
        };
        match uhc::syntax::format_source(FileId(0), &text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                if check_only {
                    println!("would reformat {}", path.display());
                    status = status.max(EXIT_PROBLEMS);
                } else if let Err(e) = std::fs::write(&path, formatted) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    status = EXIT_USAGE;
                } else {
                    println!("formatted {}", path.display());
                }
            }
            Err(diags) => {
                let mut sources = Sources::new();
                sources.add(path.display().to_string(), text);
                emit(&sources, &diags, Format::Human);
                status = status.max(EXIT_PROBLEMS);
            }
        }
    }
    status
}

/// Reads and compiles one file, printing its diagnostics. `None` when it has errors.
fn load_compiled(path: &std::path::Path) -> Result<(uhc::Compiled, Sources), u8> {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", e.message);
            return Err(EXIT_USAGE);
        }
    };
    let mut sources = Sources::new();
    let root = sources.add(path.display().to_string(), text);
    let (compiled, diags) = uhc::compile(&mut sources, root, &FsResolver);
    if !diags.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", sources.render_human(&diags, color));
    }
    compiled.map(|c| (c, sources)).ok_or(EXIT_PROBLEMS)
}

/// Picks the architecture named by `--arch`, or the only one in the file.
fn pick_arch<'c>(
    compiled: &'c uhc::Compiled,
    arch: Option<&str>,
) -> Result<&'c uhc::check::ArchGraph, u8> {
    let archs = &compiled.checked.archs;
    let names: Vec<&str> = archs.iter().map(|a| a.name.as_str()).collect();
    match arch {
        Some(name) => archs.iter().find(|a| a.name == name).ok_or_else(|| {
            eprintln!(
                "error: no architecture named `{name}`; the file has: {}",
                names.join(", ")
            );
            EXIT_USAGE
        }),
        None if archs.len() == 1 => Ok(&archs[0]),
        None if archs.is_empty() => {
            eprintln!("error: the file defines no architecture");
            Err(EXIT_USAGE)
        }
        None => {
            eprintln!(
                "error: the file defines several architectures ({}); choose one with --arch",
                names.join(", ")
            );
            Err(EXIT_USAGE)
        }
    }
}

pub fn compile(
    path: &std::path::Path,
    arch: Option<&str>,
    hardware: Option<&str>,
    emit: Emit,
) -> u8 {
    let (compiled, sources) = match load_compiled(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let a = match pick_arch(&compiled, arch) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let Some(own) = compiled.graph(&a.name) else {
        return EXIT_PROBLEMS;
    };
    let hw_name = hardware.unwrap_or(&a.hardware);
    let Some(hw) = compiled.checked.hardware(hw_name) else {
        eprintln!("error: no hardware profile named `{hw_name}` is in scope of this file");
        return EXIT_USAGE;
    };
    if hw.backend.kind() != own.backend {
        eprintln!(
            "error: `{}` is {} hardware but `{}` was checked for {} hardware; pick a profile of the same kind",
            hw.name,
            hw.backend.kind().as_str(),
            a.name,
            own.backend.as_str()
        );
        return EXIT_USAGE;
    }
    let lowered;
    let graph = if hw.name == own.hardware {
        own
    } else {
        lowered = uhc::ir::lower(a, hw);
        // The file was checked on its own profile: the laser budget on this one is new.
        let laser = uhc::ir::decide_laser_budget(a, &lowered);
        eprint!("{}", sources.render_human(&laser, false));
        &lowered
    };
    let report = uhc::ir::energy_report(graph);
    let text = match emit {
        Emit::Ir => graph.dump(),
        Emit::Energy => {
            let mut text = uhc::ir::energy::render(&report);
            for b in uhc::ir::energy::laser_budget(graph) {
                let power = uhc::ir::energy::format_power;
                text.push_str(&format!(
                    "  laser budget of segment {}: loss {:.1} dB, needs {} of light, source delivers at most {}{}\n",
                    b.segment,
                    b.loss_db,
                    power(b.needed_w),
                    power(b.limit_w),
                    if b.exceeded() { ": INFEASIBLE" } else { "" }
                ));
            }
            text
        }
        Emit::Json => {
            let value = serde_json::json!({
                "hash": uhc::ir::structural_hash(graph),
                "graph": graph,
                "energy": energy_json(&report),
                "hardware": hw,
            });
            serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
        }
    };
    print!("{text}");
    EXIT_OK
}

/// The energy report as JSON with the unit in every field name: energies in joules
/// (`_j`), powers in watts (`_w`), levels in dBm (`_dbm`).
fn energy_json(r: &uhc::ir::energy::EnergyReport) -> serde_json::Value {
    let components = |c: &uhc::ir::energy::ComponentEnergy| {
        serde_json::json!({
            "laser_j": c.laser,
            "dac_j": c.dac,
            "modulator_j": c.modulator,
            "detection_j": c.detection,
            "adc_j": c.adc,
            "phase_shifters_j": c.phase_shifters,
            "digital_j": c.digital,
        })
    };
    serde_json::json!({
        "total_j": r.total,
        "components": components(&r.components),
        "per_node": r.per_node.iter().map(|(name, c)| {
            let mut v = components(c);
            v["node"] = serde_json::Value::from(name.as_str());
            v["total_j"] = serde_json::Value::from(c.total());
            v
        }).collect::<Vec<_>>(),
        "segments": r.segments.iter().map(|s| serde_json::json!({
            "nodes": s.nodes,
            "width": s.width,
            "depth": s.depth,
            "laser_dbm": s.laser_dbm,
            "laser_electrical_w": s.laser_w,
        })).collect::<Vec<_>>(),
    })
}
