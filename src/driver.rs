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

/// The most bytes read from one source file: the parser's own limit.
pub const MAX_SOURCE_FILE_BYTES: u64 = crate::syntax::MAX_SOURCE_BYTES as u64;

/// Reads at most `limit` bytes of `path`; a longer input is an error of kind
/// [`std::io::ErrorKind::FileTooLarge`], found after reading `limit + 1` bytes, so
/// `/dev/zero` or a FIFO with an endless writer costs at most `limit` bytes of memory.
///
/// Any kind of file is read when it is named: a regular file, a character device, or a
/// FIFO. Opening a FIFO waits for a writer, as `cat` does (the folder walk never opens
/// one: it skips every file that is not regular).
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a folder",
            ));
        }
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!(
                "it is larger than {}, the most uhc reads from one file",
                human_bytes(limit)
            ),
        ));
    }
    Ok(bytes)
}

/// `16 MiB`, `1 GiB`, or a byte count.
pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// Reads a `.uh` source through [`read_bounded`] with the parser's size limit.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bounded(path, MAX_SOURCE_FILE_BYTES).map_err(|e| ReadError {
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

/// The `.uh` files a set of paths names, and what the walk skipped.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files named explicitly, then the `.uh` files below each folder, sorted per folder.
    pub files: Vec<PathBuf>,
    /// One line per skipped entry: a folder already walked (a symlink loop or a second
    /// link to it), or a `.uh` entry that is not a regular file (FIFO, socket, device,
    /// broken link).
    pub notes: Vec<String>,
}

/// Expands folders to the `.uh` files below them, sorted for stable output.
pub fn collect_uh_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    collect(paths).map(|c| c.files)
}

/// Expands folders to the `.uh` files below them. Links are followed, but each folder is
/// walked once (by canonical path), so a link to `.` or two links to each other end the
/// walk instead of repeating it; entries that are not regular files are skipped, noted.
/// A path named explicitly is kept whatever it is (it is read with the size bound).
pub fn collect(paths: &[PathBuf]) -> Result<Collected, String> {
    let mut out = Collected::default();
    let mut visited = std::collections::HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut out, &mut visited)
                .map_err(|e| format!("cannot read folder {}: {e}", p.display()))?,
            Ok(_) => out.files.push(p.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("no such file or folder: {}", p.display()))
            }
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        }
    }
    Ok(out)
}

fn walk(
    dir: &Path,
    out: &mut Collected,
    visited: &mut std::collections::HashSet<PathBuf>,
) -> std::io::Result<()> {
    let canonical = dir.canonicalize()?;
    if !visited.insert(canonical.clone()) {
        out.notes.push(format!(
            "skipped {}: it leads to {}, which is already walked (a symlink loop or a second link)",
            dir.display(),
            canonical.display()
        ));
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let is_uh = p.extension().is_some_and(|e| e == "uh");
        // Follows links; a broken link or a loop of file links fails here.
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, out, visited)?,
            Ok(m) if m.is_file() && is_uh => out.files.push(p),
            Ok(m) if is_uh => out.notes.push(format!(
                "skipped {}: not a regular file ({})",
                p.display(),
                file_kind(&m)
            )),
            Err(e) if is_uh => out.notes.push(format!("skipped {}: {e}", p.display())),
            _ => {}
        }
    }
    Ok(())
}

/// "a FIFO", "a socket", "a device" for a file that is neither a folder nor regular.
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    let _ = m;
    "a special file"
}

/// `task` with the paths of its data files made canonical (absolute, links resolved) where
/// the files exist, so its hash (recorded in weight files and run stores) does not depend
/// on the folder uhc was started from. Missing files keep their path, which errors name.
pub fn canonical_data_paths(task: &crate::check::model::TaskSpec) -> crate::check::model::TaskSpec {
    let at = |p: &String| -> String {
        Path::new(p)
            .canonicalize()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| p.clone())
    };
    let dataset = task.dataset.map_paths(|p| at(&p.to_string()));
    crate::check::model::TaskSpec {
        dataset,
        ..task.clone()
    }
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
