//! `uhc worker --db postgres://…`: evaluates a shared run's queued candidates until the
//! run is finished or the queue stays empty for `--idle-exit`.

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use std::sync::Arc;
use std::time::Duration;
use uhc::search::engine::Evaluator;
use uhc::search::store::Location;
use uhc::search::worker::{self, WorkerOptions};

/// `uhc worker`'s arguments.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// The run: `postgres://user@host/db[?schema=NAME]` (or UHC_DB), as given to the
    /// coordinator's `uhc search --db`.
    #[arg(long)]
    pub db: Option<String>,
    /// Candidates evaluated at once (1 to 1024), each on its own connection.
    #[arg(long, default_value_t = 1, value_parser = super::positive(1024))]
    pub jobs: usize,
    /// Leave after claiming this many candidates (1 to 10000000).
    #[arg(long, value_parser = super::positive(10_000_000))]
    pub max_candidates: Option<usize>,
    /// Leave once the queue has been empty this long, e.g. `60s`, `5m` (default 60s); a
    /// run its coordinator marked finished is left at once.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub idle_exit: Duration,
    /// Lease on each claimed candidate, renewed by a heartbeat every third of it (default
    /// 30s): how long a killed worker's candidate waits before another worker re-runs it.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub lease: Duration,
}

/// `90`, `90s`, `250ms`, `5m`, `1h`: a duration above zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as `60s`, `500ms` or `5m`"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{unit}` is not a unit of time (ms, s, m, h)")),
    };
    let secs = value * scale;
    if secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("`{s}` must be above zero and below 30 years"))
    }
}

pub fn run(args: WorkerArgs, evaluator: Arc<dyn Evaluator>) -> u8 {
    let Some(db) = args
        .db
        .clone()
        .or_else(|| std::env::var("UHC_DB").ok().filter(|v| !v.is_empty()))
    else {
        eprintln!("error: give the run with --db postgres://user@host/db (or set UHC_DB)");
        return EXIT_USAGE;
    };
    let location = match Location::parse(&db) {
        Ok(Location::File(path)) => {
            eprintln!(
                "error: {} is a file; workers share a PostgreSQL run (--db postgres://…), while an SQLite run is evaluated by its own `uhc search --jobs N`",
                path.display()
            );
            return EXIT_USAGE;
        }
        Ok(mut l) => {
            if let Location::Postgres(t) = &mut l {
                t.set_application_name(&format!("uhc-worker-{}", std::process::id()));
            }
            l
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let options = WorkerOptions {
        jobs: args.jobs,
        max_candidates: args.max_candidates,
        idle_exit: args.idle_exit,
        lease: args.lease,
        heartbeat: args.lease / 3,
        ..WorkerOptions::default()
    };
    let stop = super::signals::install();
    let log = |line: String| eprintln!("{line}");
    match worker::run(&location, evaluator, &options, stop, &log) {
        Ok(r) => {
            eprintln!(
                "worker done: {} claimed = {} evaluated + {} failed + {} lost to expired leases",
                r.claimed, r.evaluated, r.failed, r.lost
            );
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                super::signals::EXIT_SIGNALLED
            } else {
                EXIT_OK
            }
        }
        Err(e @ worker::WorkerError::Store(_)) => {
            eprintln!("error: {e}");
            EXIT_PROBLEMS
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
