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
    /// miette's graphical report, with a summary on standard error.
    Human,
    /// One JSON array of diagnostics.
    Json,
    /// GitHub Actions workflow commands (annotations).
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

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum GrammarNames {
    Positional,
    Free,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum GrammarFormat {
    /// llama.cpp's GBNF.
    Gbnf,
    /// Lark EBNF (vLLM guided decoding).
    Lark,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Check `.uh` files (folders are searched recursively) against their hardware.
    Check {
        /// `.uh` files, or folders searched recursively for them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How diagnostics are printed: for people, one JSON array, or GitHub annotations.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Lower an architecture and print its IR, its JSON, or its energy breakdown.
    Compile {
        /// The `.uh` file with the architecture.
        file: PathBuf,
        /// The architecture (optional when the file has one).
        #[arg(long)]
        arch: Option<String>,
        /// Lower onto this hardware profile instead of the architecture's (same backend
        /// kind), e.g. to compare a network's energy across profiles.
        #[arg(long)]
        hardware: Option<String>,
        /// What to print.
        #[arg(long, value_enum, default_value_t = Emit::Ir)]
        emit: Emit,
    },
    /// Run (or resume) a co-design search: the main job.
    Search {
        #[command(flatten)]
        args: cli::search::SearchArgs,
    },
    /// Evaluate the queued candidates of a shared (PostgreSQL) search run.
    Worker {
        #[command(flatten)]
        args: cli::worker::WorkerArgs,
    },
    /// Run an experiment's grid (hardware × operator mixes × budgets × repeats), each run
    /// resumable, and write the comparison.
    Experiment {
        #[command(flatten)]
        args: cli::experiment::ExperimentArgs,
    },
    /// Write a Markdown + HTML report (with SVG figures) of one or more search runs, or
    /// of an experiment (give its `.uh` file).
    Report {
        /// Run stores written by `uhc search` (`.sqlite` files or `postgres://` URLs);
        /// several are overlaid. Or one `.uh` file with an `experiment`: its runs (in the
        /// folder named after it) are compared.
        #[arg(required = true)]
        dbs: Vec<PathBuf>,
        /// Folder the report (`report.md`, `report.html`, SVG figures) is written to.
        #[arg(long, default_value = "report")]
        out: PathBuf,
        /// Energy of the hypervolume reference point, e.g. `5nJ`; beats the searches'
        /// own (`reference { energy = … }`, else their energy constraint). Without either,
        /// it is derived from the runs given, and said to be.
        #[arg(long, value_parser = parse_energy)]
        reference_energy: Option<f64>,
    },
    /// Train an architecture on a task of the same file and write its weights (JSON).
    Train {
        #[command(flatten)]
        common: cli::train::Common,
        /// Where the weights (JSON) are written.
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
        /// Repeat a search candidate's evaluation from this run store, with the seed and
        /// settings its row recorded (FILE is then the search file); needs --candidate.
        #[arg(
            long,
            requires = "candidate",
            conflicts_with_all = ["weights", "task", "arch", "hardware", "epochs", "noise_aware", "phase_space", "seed", "draws"]
        )]
        from: Option<String>,
        /// The candidate's id in the store given by --from.
        #[arg(long, requires = "from")]
        candidate: Option<i64>,
    },
    /// Print the decoding grammar of a search's candidates (one `arch` on its hardware for
    /// its task), as the LLM operators send it to servers that constrain sampling.
    Grammar {
        /// The `.uh` file with the `search` item.
        file: PathBuf,
        /// The `search` item (optional when the file has one).
        #[arg(long)]
        search: Option<String>,
        /// gbnf (llama.cpp, llama-cpp-python) or lark (vLLM guided decoding).
        #[arg(long, value_enum, default_value_t = GrammarFormat::Gbnf)]
        format: GrammarFormat,
        /// Layer lines an architecture may have.
        #[arg(long, default_value_t = uhc::check::grammar::DEFAULT_MAX_LAYERS as u32, value_parser = clap::value_parser!(u32).range(1..=64))]
        max_layers: u32,
        /// positional (`x`, `h1`, `h2`…: every sentence binds its names; what the LLM
        /// operators send) or free (any name: every hand-written arch is a sentence).
        #[arg(long, value_enum, default_value_t = GrammarNames::Positional)]
        names: GrammarNames,
    },
    /// Apply the fixes diagnostics offer (only unambiguous ones) to `.uh` files in place.
    Fix {
        /// `.uh` files, or folders searched recursively for them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Do not write; list the fixes and print a diff.
        #[arg(long)]
        dry_run: bool,
    },
    /// Format `.uh` files in place (`-` reads standard input and writes standard output).
    Fmt {
        /// `.uh` files, folders searched recursively for them, or `-` for standard input.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Do not write; exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Serve the Language Server Protocol on standard input and output, for editors
    /// (diagnostics, hover, definition, references, rename, outline, completion, formatting,
    /// fixes, semantic colours).
    Lsp,
}

/// An energy such as `5nJ`, `5 nJ` or `200 pJ`, in pJ.
fn parse_energy(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not an energy such as `5nJ`"))?;
    let joules = match uhc::check::units::lookup(unit) {
        Some((uhc::check::units::Dim::Energy, scale)) => value * scale,
        _ => {
            return Err(format!(
                "`{unit}` is not an energy unit (pJ, nJ, uJ, mJ, J)"
            ))
        }
    };
    if joules > 0.0 && joules.is_finite() {
        Ok(joules * 1e12)
    } else {
        Err(format!("`{s}` is not a positive energy"))
    }
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
        Command::Lsp => u8::try_from(uhc::lsp::run_stdio()).unwrap_or(1),
        Command::Grammar {
            file,
            search,
            format,
            max_layers,
            names,
        } => {
            let dialect = match format {
                GrammarFormat::Gbnf => uhc::check::grammar::cfg::Dialect::Gbnf,
                GrammarFormat::Lark => uhc::check::grammar::cfg::Dialect::Lark,
            };
            let names = match names {
                GrammarNames::Positional => uhc::check::grammar::Names::Positional,
                GrammarNames::Free => uhc::check::grammar::Names::Free,
            };
            cli::grammar::run(
                &file,
                search.as_deref(),
                dialect,
                max_layers as usize,
                names,
            )
        }
        Command::Fix { paths, dry_run } => cli::fix(&paths, dry_run),
        Command::Compile {
            file,
            arch,
            hardware,
            emit,
        } => cli::compile(&file, arch.as_deref(), hardware.as_deref(), emit),
        Command::Report {
            dbs,
            out,
            reference_energy,
        } => cli::report::run(&dbs, &out, reference_energy),
        Command::Search { args } => {
            cli::search::run(args, std::sync::Arc::new(uhc::train::Trainer::default()))
        }
        Command::Worker { args } => {
            cli::worker::run(args, std::sync::Arc::new(uhc::train::Trainer::default()))
        }
        Command::Experiment { args } => {
            cli::experiment::run(args, std::sync::Arc::new(uhc::train::Trainer::default()))
        }
        Command::Train { common, out } => cli::train::train(&common, &out),
        Command::Eval {
            common,
            json,
            from: Some(db),
            candidate: Some(id),
            ..
        } => cli::train::eval_from(&common.file, &db, id, json),
        Command::Eval {
            common,
            weights,
            allow_task_mismatch,
            draws,
            json,
            ..
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
