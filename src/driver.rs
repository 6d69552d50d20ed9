//! The edge of the library where files are read: `use` resolution from the file system.
//! Everything before this (syntax, check, lowering, runtime) does no I/O.

use crate::check::Resolver;
use std::path::{Path, PathBuf};

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
        crate::check::StdlibResolver.resolve(importer, path)
    }
}

pub struct ReadError {
    pub message: String,
    /// Byte offset of the first invalid UTF-8 sequence, when that is the problem.
    pub utf8_at: Option<usize>,
    pub lossy: Option<String>,
}

pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError {
        message: format!("cannot read {}: {e}", path.display()),
        utf8_at: None,
        lossy: None,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        ReadError {
            message: format!(
                "{} is not valid UTF-8 text (invalid byte at offset {at})",
                path.display()
            ),
            utf8_at: Some(at),
            lossy: Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    })
}

/// Expands folders to the `.uh` files below them, sorted for stable output.
pub fn collect_uh_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
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
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
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

/// For candidate text (LLM output included): `use` resolves only in the standard library
/// and inside one folder (the search file's), never through `..` or an absolute path.
pub struct SandboxResolver {
    pub root: PathBuf,
}

impl Resolver for SandboxResolver {
    fn resolve(&self, importer: &str, path: &str) -> Result<(String, String), String> {
        let p = Path::new(path);
        let escapes = p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if !escapes {
            let candidate = self.root.join(p);
            if candidate.is_file() {
                let text = read_text(&candidate).map_err(|e| e.message)?;
                return Ok((candidate.display().to_string(), text));
            }
        } else if crate::stdlib::get(path).is_none() {
            return Err("candidates may only import the standard library or files inside the search's folder".into());
        }
        crate::check::StdlibResolver.resolve(importer, path)
    }
}
