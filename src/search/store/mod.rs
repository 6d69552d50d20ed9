//! The durable, resumable, queryable run store: an SQLite file or a PostgreSQL schema per run.
//!
//! # What it holds
//! - `run`: the run's configuration text, seed and creation time (one row).
//! - `candidates`: every proposed `.uh` text with its canonical text, structural hash
//!   (unique: a structure is evaluated once per run), parents, operator, generation, state,
//!   diagnostics/reason, lease and timestamps.
//! - `evaluations`: one row per `done` candidate, every metric in its own column, extras as
//!   JSON. Failed and timed-out candidates never get a row: they have no score, ever.
//! - `exchanges`: every LLM exchange (prompt, response, tokens, latency, outcome).
//! - `test_scores`: test-split scores of the final front, written when the run ends (the
//!   search selects on the validation split and never reads them).
//!
//! # Life of a candidate
//! ```text
//! proposed ──► queued ──claim──► running ──► done | failed | timeout
//!    │            │                 │
//!    └──► rejected ◄┘                └─ lease lost ──► queued (attempts < max) | failed
//! ```
//! Work is claimed with a lease (`lease_owner`, `lease_expires`, `attempts`). A worker that
//! dies leaves its lease to expire; the next claim (or [`Store::recover`]) puts the candidate
//! back in the queue, at most [`StoreOptions::max_attempts`] claims in all, then marks it
//! `failed`. A single process that restarts knows every `running` row is its own dead work
//! and recovers them all at once ([`Recovery::AllRunning`]).
//!
//! # Durability
//! Every write is one short `BEGIN IMMEDIATE` transaction, committed before the call
//! returns: a result is on disk the moment `record_evaluation` returns, and a crash loses at
//! most the work in flight. `BEGIN IMMEDIATE` takes the write lock up front, so concurrent
//! writers wait in the busy handler instead of failing with `SQLITE_BUSY` on a lock upgrade.
//!
//! The journal is WAL (readers never block the writer, and a commit appends to one file)
//! with `synchronous=NORMAL`. In WAL mode NORMAL syncs at checkpoints rather than at every
//! commit (SQLite documentation, "PRAGMA synchronous"): a committed transaction survives any
//! crash of the process (the test `crash_safety_sigkill` kills a writer with SIGKILL), and
//! the file is never corrupted, but a power cut or kernel crash may roll back the last few
//! commits. In a search that only means those candidates are evaluated again after resume,
//! while FULL would pay an fsync on every claim, heartbeat and exchange of every worker.
//! SQLite files belong on local disk: file locking over NFS is unreliable.
//!
//! # Identity and versions
//! The file carries `PRAGMA application_id` = [`APPLICATION_ID`] and `PRAGMA user_version`
//! = [`SCHEMA_VERSION`]; a file that is not SQLite, belongs to another application or has a
//! newer schema is refused with an error that says so, and nothing in it is changed.
//!
//! # Two databases
//! [`Store`] is one interface over [`SqliteStore`] (this module's files: one SQLite file
//! per run, the embedded default) and [`PgStore`] (`pg.rs`: a run in a PostgreSQL schema,
//! shared by a coordinator and `uhc worker`s on many hosts). Same tables, states and
//! transitions; PostgreSQL takes its times from the server's clock and claims with
//! `FOR UPDATE SKIP LOCKED`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

mod dispatch;
mod exchanges;
mod lifecycle;
mod pg;
mod queries;
mod records;
mod schema;
mod test_scores;
mod writer;

pub use dispatch::{Location, Store};
pub use pg::{PgScratch, PgStore, PgTarget, COORDINATOR_OWNER, PG_SCHEMA_VERSION};

pub use exchanges::{Exchange, ExchangeRecord, ExchangeTotals};
pub use records::{
    CandidateRecord, CandidateState, Disposition, Evaluation, EvaluationRecord, Failure, Inserted,
    Metrics, NewCandidate, Recovered, Recovery, RunInfo, RunSource, StateCounts, UsedFile,
    Violation,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use test_scores::TestScores;
use writer::utc_text;
pub use writer::Writer;

/// Source of "now" in milliseconds since the Unix epoch. Tests use [`ManualClock`] so that
/// lease expiry needs no sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, AtomicOrdering::SeqCst);
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_ms(by), AtomicOrdering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(AtomicOrdering::SeqCst)
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Claims a candidate may receive before a lost lease marks it `failed`. Must be ≥ 1.
    /// Default 3: a worker lost twice on the same candidate (OOM kill, node loss) suggests
    /// the candidate itself is the cause, and one more try separates that from bad luck.
    pub max_attempts: u32,
    /// How long a write waits for another connection's write lock before failing.
    pub busy_timeout: Duration,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_attempts: 3,
            busy_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Errors from the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run store {path} does not exist: start a new run to create it, or check the path")]
    NotFound { path: PathBuf },
    #[error(
        "cannot open {path} ({detail}): check that its directory exists and is writable, \
         and that the path is not a directory"
    )]
    CannotOpen { path: PathBuf, detail: String },
    #[error("run store {path} already exists: resume it, or choose a new path for a new run")]
    AlreadyExists { path: PathBuf },
    #[error(
        "{path} is not an SQLite database (its header is wrong): it was written by another \
         program or is damaged; point uhc at a run store or at a new file"
    )]
    NotADatabase { path: PathBuf },
    #[error("{path} is damaged ({detail}): restore it from a copy or start a new run")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} is an SQLite database of another application (application_id {found:#010x}, \
         a uhc run store has {expected:#010x}): point uhc at a run store or at a new file"
    )]
    ForeignDatabase {
        path: PathBuf,
        found: i32,
        expected: i32,
    },
    #[error(
        "{path} is an empty SQLite database, not a uhc run store: start a new run on it, or \
         point uhc at an existing run store"
    )]
    EmptyDatabase { path: PathBuf },
    #[error(
        "{path} has run-store schema version {found}, newer than version {supported} that \
         this uhc reads: open it with a newer uhc"
    )]
    NewerSchema {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error(
        "{path} has run-store schema version {found}, which this uhc cannot read (it reads \
         version {supported}): the file is incomplete or damaged; start a new run"
    )]
    UnsupportedSchema {
        path: PathBuf,
        found: i32,
        supported: i32,
    },
    #[error("candidate {id} does not exist in this run")]
    UnknownCandidate { id: i64 },
    #[error("candidate {id} is {from}, so it cannot become {to}")]
    InvalidTransition {
        id: i64,
        from: CandidateState,
        to: CandidateState,
    },
    #[error(
        "candidate {id} is no longer leased to {owner} (it is {state}): the lease expired and \
         the work was handed back; discard this result and claim new work"
    )]
    LeaseLost {
        id: i64,
        owner: String,
        state: CandidateState,
    },
    #[error(
        "run {path} is being written by process {} on host {} since {}: one process writes a \
         run at a time; wait for it to finish or stop it (Ctrl-C), then run the same command \
         to resume{}",
        writer.pid,
        writer.host,
        utc_text(writer.since_ms),
        if writer.host_is_this() { "" } else {
            " (uhc cannot see processes on another host; if that one is gone, delete the row \
             with `sqlite3 RUN \"DELETE FROM writer\"`)"
        }
    )]
    Busy { path: PathBuf, writer: Writer },
    #[error("invalid {field}: {problem}")]
    InvalidInput {
        field: &'static str,
        problem: String,
    },
    #[error(
        "the run store holds a value it cannot read ({detail}): the file was edited by hand \
         or is damaged"
    )]
    BadRow { detail: String },
    #[error(
        "cannot connect to the PostgreSQL run store {run} ({detail}): check that the server \
         runs and accepts this user (`pg_isready -d URL`), and the URL's host, port and database"
    )]
    CannotConnect { run: String, detail: String },
    #[error(
        "{run} holds no uhc run: start the search there first (`uhc search FILE --db URL`), \
         or check the URL's database and `?schema=`"
    )]
    NoPostgresRun { run: String },
    #[error(
        "{run} is not a uhc run store ({detail}): point uhc at a run's schema (`?schema=NAME`) \
         or at an empty one"
    )]
    ForeignPostgres { run: String, detail: String },
    #[error(
        "run {run} already has a coordinator{}: one coordinator per run; stop it first, or run \
         `uhc worker --db URL` to add evaluation capacity to it",
        match holder {
            Some(w) => format!(" (process {} on host {} since {})", w.pid, w.host, utc_text(w.since_ms)),
            None => String::new(),
        }
    )]
    CoordinatorBusy { run: String, holder: Option<Writer> },
    #[error("PostgreSQL error while {action}: {source}")]
    Postgres {
        action: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("database error while {action}: {source}")]
    Sqlite {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

trait Context<T> {
    fn ctx(self, action: &'static str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, action: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Sqlite { action, source })
    }
}

/// Whether [`Store::open_or_create`] made a new run or found one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Opened {
    Created,
    Resumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Open,
    Create,
    OpenOrCreate,
}

/// A connection to one run store. Writes take `&mut self`; each is one short transaction.
/// Several `Store`s (threads or processes) may share a file on local disk.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
}

const CANDIDATE_SELECT: &str = "SELECT c.id, c.text, c.canonical_text, c.structural_hash, \
     c.parents, c.operator, c.generation, c.state, c.diagnostics, c.reason, c.attempts, \
     c.lease_owner, c.lease_expires, c.created, c.updated, c.started, c.finished, \
     e.candidate_id, e.accuracy, e.noisy_accuracy_mean, e.noisy_accuracy_std, \
     e.noisy_accuracy_p5, e.accuracy_drop, e.energy_pj, e.mzi_count, e.depth, e.params, \
     e.violations, e.extras, e.wall_time_s, e.worker, e.created \
     FROM candidates c LEFT JOIN evaluations e ON e.candidate_id = c.id";

impl SqliteStore {
    /// Creates a new run store at `path`; fails if a non-empty file is there.
    pub fn create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<SqliteStore> {
        Ok(SqliteStore::open_mode(path.as_ref(), Some((config, seed)), options, Mode::Create)?.0)
    }

    /// Opens an existing run store.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<SqliteStore> {
        Ok(SqliteStore::open_mode(path.as_ref(), None, options, Mode::Open)?.0)
    }

    /// Opens the run store at `path`, creating it with `config` and `seed` if it does not
    /// exist. A resumed run keeps its stored config and seed: compare [`Store::run_info`]
    /// with the current ones to decide whether resuming makes sense.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<(SqliteStore, Opened)> {
        SqliteStore::open_mode(
            path.as_ref(),
            Some((config, seed)),
            options,
            Mode::OpenOrCreate,
        )
    }

    /// Opens an existing run store for reading only (reports, listings, dashboards): the
    /// file is never written, its journal mode is left alone, and no `-wal` or `-shm` file
    /// is created. While a search writes the store (its `-wal` file exists), the reader
    /// shares the writer's WAL and sees every committed evaluation (`mode=ro`); otherwise
    /// the file is opened `immutable`, which needs no lock files, so this works on a 444
    /// store in a read-only folder. (A writer that starts in the middle of such a read is
    /// not seen; a report is taken in milliseconds.)
    pub fn open_read_only(path: impl AsRef<Path>, options: StoreOptions) -> Result<SqliteStore> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(_) => {
                return Err(StoreError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::EmptyDatabase {
                    path: path.to_path_buf(),
                })
            }
            Ok(_) => {}
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let live = Path::new(&wal).exists();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let uri = format!(
            "file:{}?mode=ro{}",
            uri_escape(&absolute),
            if live { "" } else { "&immutable=1" }
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&uri, flags)
            .map_err(|e| open_error(path, e, "opening the run store read-only"))?;
        conn.busy_timeout(options.busy_timeout)
            .ctx("setting the busy timeout")?;
        let store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            options,
        };
        store.check_identity()?;
        Ok(store)
    }

    fn open_mode(
        path: &Path,
        init: Option<(&str, u64)>,
        options: StoreOptions,
        mode: Mode,
    ) -> Result<(SqliteStore, Opened)> {
        if options.max_attempts == 0 {
            return Err(StoreError::InvalidInput {
                field: "max_attempts",
                problem: "must be at least 1 (one claim per candidate)".into(),
            });
        }
        let existing_len = std::fs::metadata(path).map(|m| m.len()).ok();
        match (mode, existing_len) {
            (Mode::Open, None) => {
                return Err(StoreError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            (Mode::Create, Some(len)) if len > 0 => {
                return Err(StoreError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            _ => {}
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if mode != Mode::Open {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| open_error(path, e, "opening the run store"))?;
        conn.busy_timeout(options.busy_timeout)
            .ctx("setting the busy timeout")?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            options,
        };

        // Identify the file before changing anything in it.
        let (app_id, version) = store.identity()?;
        let opened = if app_id == 0 && version == 0 && store.is_blank()? {
            match (mode, init) {
                (Mode::Open, _) | (_, None) => {
                    return Err(StoreError::EmptyDatabase {
                        path: path.to_path_buf(),
                    })
                }
                (_, Some((config, seed))) => {
                    store.set_pragmas()?;
                    if store.initialise(config, seed)? {
                        Opened::Created
                    } else {
                        // Another process initialised it first.
                        store.check_identity()?;
                        Opened::Resumed
                    }
                }
            }
        } else {
            store.check_identity()?;
            if mode == Mode::Create {
                return Err(StoreError::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
            store.set_pragmas()?;
            Opened::Resumed
        };
        Ok((store, opened))
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it.
    fn write<T>(
        &mut self,
        action: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let now = self.now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(action)?;
        let value = f(&tx, now)?;
        tx.commit().ctx(action)?;
        Ok(value)
    }
}

/// `path` for a SQLite `file:` URI: `%`, `?`, `#` and every byte outside printable
/// ASCII percent-encoded.
fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Maps errors met while opening and identifying a file to the plain ones.
fn open_error(path: &Path, e: rusqlite::Error, action: &'static str) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        Some(ErrorCode::CannotOpen) => StoreError::CannotOpen {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite { action, source: e },
    }
}

fn check_owner(owner: &str) -> Result<()> {
    if owner.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "lease owner",
            problem: "must name the worker (e.g. host:pid)".into(),
        });
    }
    Ok(())
}

fn to_i64(field: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput {
        field,
        problem: format!("{v} is larger than the store's limit {}", i64::MAX),
    })
}

fn to_u32(field: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::BadRow {
        detail: format!("{field} {v} out of range"),
    })
}

fn to_u64(field: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::BadRow {
        detail: format!("negative {field} {v}"),
    })
}

#[cfg(test)]
mod pg_tests;
#[cfg(test)]
mod tests;
