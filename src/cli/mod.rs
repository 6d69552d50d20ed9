//! Subcommand drivers: the edge where files are read and diagnostics rendered.

use crate::Format;
use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use uhc::check::Resolver;
use uhc::diag::{code, Diagnostic, FileId, Severity, Sources};
use uhc::syntax::Span;

/// Exit codes: 0 clean, 1 problems found, 2 usage or I/O errors.
pub const EXIT_OK: u8 = 0;
pub const EXIT_PROBLEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Resolves `use` next to the importing file, then in the stdlib.
pub struct FsResolver;

impl Resolver for FsResolver {
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String> {
        if !importer.starts_with("<stdlib>") {
            let base = Path::new(importer).parent().unwrap_or(Path::new("."));
            let candidate = base.join(path);
            if candidate.is_file() {
                let canonical = candidate.canonicalize().unwrap_or(candidate.clone());
                let text = read_text(&candidate).map_err(|e| e.message)?;
                return Ok((canonical.display().to_string(), text));
            }
        }
        uhc::check::StdlibResolver.resolve(importer, path)
    }
}

pub struct ReadError {
    pub message: String,
    /// Byte offset of the first invalid UTF-8 sequence, when that is the problem.
    pub utf8_at: Option<usize>,
    pub lossy: Option<String>,
}

pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError { message: format!("cannot read {}: {e}", path.display()), utf8_at: None, lossy: None })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ReadError {
            message: format!("{} is not valid UTF-8 text (invalid byte at offset {at})", path.display()),
            utf8_at: Some(at),
            lossy: Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    })
}

/// Expands folders to the `.uh` files below them, sorted for stable output.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("cannot read folder {}: {e}", p.display()))?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("no such file or folder: {}", p.display()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "uh") {
            out.push(p);
        }
    }
    Ok(())
}

pub fn check(paths: &[PathBuf], format: Format, deny_warnings: bool) -> u8 {
    let files = match collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut sources = Sources::new();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut io_error = false;
    for path in &files {
        let name = path.display().to_string();
        match read_text(path) {
            Ok(text) => {
                let root = sources.add(name, text);
                let (_, diags) = uhc::check::check(&mut sources, root, &FsResolver);
                all.extend(diags);
            }
            Err(e) => match e.lossy {
                Some(lossy) => {
                    let id = sources.add(name, lossy);
                    let at = e.utf8_at.unwrap_or(0);
                    all.push(
                        Diagnostic::error(code::UTF8, id, Span::new(at, at + 1), "this file is not valid UTF-8 text")
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
        eprintln!("checked {} file(s): {errors} error(s), {warnings} warning(s)", files.len());
    }
    if io_error {
        EXIT_USAGE
    } else if errors > 0 || (deny_warnings && warnings > 0) {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

/// An imported file checked from two roots reports its problems once.
fn dedup(sources: &Sources, diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = HashSet::new();
    diags
        .into_iter()
        .filter(|d| seen.insert((sources.name(d.file).to_string(), d.code, d.span.start, d.span.end, d.message.clone())))
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

pub fn fmt(paths: &[PathBuf], check_only: bool) -> u8 {
    if paths.len() == 1 && paths[0].as_os_str() == "-" {
        let mut text = String::new();
        if std::io::stdin().read_to_string(&mut text).is_err() {
            eprintln!("error: standard input is not valid UTF-8 text");
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
    let files = match collect_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
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
