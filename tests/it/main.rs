//! The one integration-test binary (see matklad's "Delete Cargo Integration Tests").

mod cli_search;
mod cli_train;
mod distributed;
mod docs;
mod examples;
mod experiments;
mod fix;
mod grammar;
mod ir;
mod llm_client;
mod llm_ops;
mod llm_server;
mod lsp;
mod lying;
mod newcomer;
mod nvim;
mod report_browser;
mod robustness;
mod roundtrip;
mod search;
mod tidy;
mod ui;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.uh` files below a folder of the repository, sorted.
pub fn uh_files(dir: &str) -> Vec<PathBuf> {
    let mut out = uhc::driver::collect_uh_files(&[root().join(dir)]).expect("test folder exists");
    out.sort();
    out
}

/// A path relative to the repository root with `/` separators, for stable snapshots.
pub fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
