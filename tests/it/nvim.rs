//! A real editor: Debian's Neovim, headless, with the config of `editors/neovim/uhc.lua`,
//! opens an example with an error and gets uhc's diagnostic (code and line) and a hover.
//! Under tmux the same session is captured as the screen a person sees (the book's
//! "Editor support" chapter shows it; `UPDATE_DOCS=1` rewrites it).
//!
//! Skipped, with a message, where `nvim` is absent, unless `UHC_REQUIRE_EDITORS` is set
//! (`.ci/run` sets it and installs the packages).

use super::lsp::{find, scratch};
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    let flag = if tool == "tmux" { "-V" } else { "--version" };
    let found = Command::new(tool).arg(flag).output().is_ok();
    if !found && std::env::var_os("UHC_REQUIRE_EDITORS").is_some() {
        panic!("`{tool}` is not installed, and UHC_REQUIRE_EDITORS is set (apt-get install neovim tmux)");
    }
    if !found {
        eprintln!(
            "skipped: `{tool}` is not installed (apt-get install neovim tmux runs this test)"
        );
    }
    found
}

/// The example with an error: `digits_small.uh` with `linear` misspelt on line 14.
fn example(dir: &Path) -> String {
    let text = std::fs::read_to_string(super::root().join("examples/digits_small.uh"))
        .expect("example")
        .replace(
            "h = linear(x, 16) // W = U diag(s) V*: two meshes and attenuators",
            "h = linaer(x, 16)",
        );
    std::fs::write(dir.join("small.uh"), &text).expect("write example");
    text
}

fn env(cmd: &mut Command, dir: &Path, text: &str, out: &str) {
    let (line, col) = find(text, "modrelu");
    cmd.current_dir(dir)
        .env("UHC", env!("CARGO_BIN_EXE_uhc"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("UHC_NVIM_OUT", dir.join(out))
        .env("UHC_HOVER_LINE", line.to_string())
        .env("UHC_HOVER_COL", (col + 2).to_string());
}

fn nvim_args() -> Vec<String> {
    let cfg = super::root().join("editors/neovim");
    vec![
        "--clean".into(),
        "-u".into(),
        cfg.join("uhc.lua").display().to_string(),
        "-c".into(),
        format!("luafile {}", cfg.join("check.lua").display()),
        "small.uh".into(),
    ]
}

fn check_report(report: &str) {
    assert!(
        report.contains("diagnostic uh::check::op line 14: unknown operation `linaer`"),
        "{report}"
    );
    assert!(
        report.contains("hover ``` | modrelu(x, bias = 0.1)"),
        "{report}"
    );
}

#[test]
fn neovim_shows_uhc_diagnostics_and_hover() {
    if !have("nvim") {
        return;
    }
    let dir = scratch("nvim");
    let text = example(&dir);
    let mut cmd = Command::new("timeout");
    cmd.args(["300", "nvim", "--headless"]).args(nvim_args());
    env(&mut cmd, &dir, &text, "report.txt");
    let out = cmd.output().expect("nvim runs");
    assert!(out.status.success(), "nvim: {out:?}");
    let report = std::fs::read_to_string(dir.join("report.txt")).expect("the Lua script's report");
    check_report(&report);
}

/// The screen under tmux, once the diagnostic is shown.
#[test]
fn neovim_screen_under_tmux() {
    if !have("nvim") || !have("tmux") {
        return;
    }
    let dir = scratch("nvim-tmux");
    let text = example(&dir);
    let socket = format!("uhc-it-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("timeout")
            .arg("300")
            .args(["tmux", "-L", &socket])
            .args(args)
            .output()
            .expect("tmux runs")
    };
    // The session's command line: the environment, then nvim.
    let mut probe = Command::new("nvim");
    env(&mut probe, &dir, &text, "report.txt");
    let mut line: Vec<String> = vec!["env".into()];
    for (k, v) in probe.get_envs() {
        line.push(format!(
            "{}={}",
            k.to_string_lossy(),
            v.map(|v| v.to_string_lossy().to_string())
                .unwrap_or_default()
        ));
    }
    line.extend([
        "UHC_TMUX_SIGNAL=uhc-diag".into(),
        "UHC_NVIM_STAY=1".into(),
        "nvim".into(),
    ]);
    line.extend(nvim_args());
    let quoted: Vec<String> = line
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let dir_s = dir.display().to_string();
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "100",
        "-y",
        "22",
        "-c",
        &dir_s,
        "-s",
        "uhc",
        &quoted.join(" "),
    ]);
    assert!(started.status.success(), "{started:?}");
    let waited = tmux(&["wait-for", "uhc-diag"]);
    let screen =
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "uhc"]).stdout).to_string();
    let _ = tmux(&["kill-server"]);
    assert!(
        waited.status.success(),
        "nvim never signalled: {waited:?}\n{screen}"
    );
    check_report(&std::fs::read_to_string(dir.join("report.txt")).expect("report"));
    let error_line = screen
        .lines()
        .find(|l| l.contains("linaer"))
        .unwrap_or_else(|| panic!("the error line on screen:\n{screen}"));
    assert!(
        error_line.starts_with('E') && error_line.contains("unknown operation"),
        "{screen}"
    );
    let shot = super::root().join("book/src/editors-neovim-screen.txt");
    let trimmed: String = screen
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&shot, &trimmed).expect("write the book's capture");
    } else {
        let book = std::fs::read_to_string(&shot).unwrap_or_default();
        assert!(
            book.lines().any(|l| l.starts_with('E')
                && l.contains("linaer")
                && l.contains("unknown operation")),
            "the book's capture ({}) shows the diagnostic; UPDATE_DOCS=1 rewrites it",
            shot.display()
        );
    }
}
