//! The `uhc` command line. All the work happens in the library; this file parses
//! arguments, reads and writes files, and renders diagnostics.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "uhc",
    version,
    about = "Hardware-aware neural architecture search for physical neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Github,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Emit {
    /// A readable dump, one primitive a line.
    Ir,
    /// The lowered graph, its structural hash and energy report as JSON.
    Json,
    /// The energy per inference, by component, segment and node.
    Energy,
}

#[derive(Subcommand)]
enum Command {
    /// Check `.uh` files (folders are searched recursively) against their hardware.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Lower an architecture and print its IR, its JSON, or its energy breakdown.
    Compile {
        file: PathBuf,
        /// The architecture (optional when the file has one).
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, value_enum, default_value_t = Emit::Ir)]
        emit: Emit,
    },
    /// Run (or resume) a co-design search: the main job.
    Search {
        #[command(flatten)]
        args: cli::search::SearchArgs,
    },
    /// Write a Markdown + HTML report (with SVG figures) of one or more search runs.
    Report {
        #[arg(required = true)]
        dbs: Vec<PathBuf>,
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// Train an architecture on a task of the same file and write its weights (JSON).
    Train {
        #[command(flatten)]
        common: cli::train::Common,
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate accuracy under Monte Carlo hardware noise (trains first without --weights).
    Eval {
        #[command(flatten)]
        common: cli::train::Common,
        /// Weights from `uhc train`.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Accept weights trained on another task or split (a warning instead of an error).
        #[arg(long, requires = "weights")]
        allow_task_mismatch: bool,
        /// Monte Carlo noise draws (1 to 100000).
        #[arg(long, default_value_t = 20, value_parser = cli::positive(100_000))]
        draws: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Format `.uh` files in place (`-` reads standard input and writes standard output).
    Fmt {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Do not write; exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let code = match cli.command {
        Command::Check {
            paths,
            format,
            deny_warnings,
        } => cli::check(&paths, format, deny_warnings),
        Command::Fmt { paths, check } => cli::fmt(&paths, check),
        Command::Compile { file, arch, emit } => cli::compile(&file, arch.as_deref(), emit),
        Command::Report { dbs, out } => cli::report::run(&dbs, &out),
        Command::Search { args } => {
            cli::search::run(args, std::sync::Arc::new(uhc::train::Trainer::default()))
        }
        Command::Train { common, out } => cli::train::train(&common, &out),
        Command::Eval {
            common,
            weights,
            allow_task_mismatch,
            draws,
            json,
        } => cli::train::eval(
            &common,
            weights.as_deref(),
            allow_task_mismatch,
            draws,
            json,
        ),
    };
    ExitCode::from(code)
}
