//! The durable, resumable, queryable run store: one SQLite file per search run.
//!
//! # What it holds
//! - `run`: the run's configuration text, seed and creation time (one row).
//! - `candidates`: every proposed `.uh` text with its canonical text, structural hash
//!   (unique: a structure is evaluated once per run), parents, operator, generation, state,
//!   diagnostics/reason, lease and timestamps.
//! - `evaluations`: one row per `done` candidate, every metric in its own column, extras as
//!   JSON. Failed and timed-out candidates never get a row: they have no score, ever.
//! - `exchanges`: every LLM exchange (prompt, response, tokens, latency, outcome).
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
//! # Towards PostgreSQL
//! The schema uses only portable types (INTEGER, REAL, TEXT; JSON kept as text; times as
//! integer milliseconds since the Unix epoch). A PostgreSQL backend keeps one schema per run
//! and claims with `UPDATE candidates SET … WHERE id = (SELECT id FROM candidates WHERE
//! state = 'queued' ORDER BY generation, id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING …`;
//! the lease columns and transitions here are the same.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

/// `PRAGMA application_id` of a uhc run store: the bytes "uhcS".
pub const APPLICATION_ID: i32 = 0x7568_6353;
/// `PRAGMA user_version` of the schema this code writes.
pub const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE run (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    config  TEXT    NOT NULL,
    seed    INTEGER NOT NULL,
    created INTEGER NOT NULL
) STRICT;

CREATE TABLE candidates (
    id              INTEGER PRIMARY KEY,
    text            TEXT    NOT NULL,
    canonical_text  TEXT,
    structural_hash TEXT    UNIQUE,
    parents         TEXT    NOT NULL CHECK (json_valid(parents)),
    operator        TEXT    NOT NULL,
    generation      INTEGER NOT NULL CHECK (generation >= 0),
    state           TEXT    NOT NULL CHECK (state IN
                        ('proposed', 'rejected', 'queued', 'running', 'done', 'failed', 'timeout')),
    diagnostics     TEXT,
    reason          TEXT,
    lease_owner     TEXT,
    lease_expires   INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created         INTEGER NOT NULL,
    updated         INTEGER NOT NULL,
    started         INTEGER,
    finished        INTEGER,
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires IS NOT NULL))
) STRICT;
CREATE INDEX candidates_queue ON candidates (state, generation, id);
CREATE INDEX candidates_generation ON candidates (generation, id);

CREATE TABLE evaluations (
    candidate_id        INTEGER PRIMARY KEY REFERENCES candidates (id),
    accuracy            REAL,
    noisy_accuracy_mean REAL,
    noisy_accuracy_std  REAL,
    noisy_accuracy_p5   REAL,
    accuracy_drop       REAL,
    energy_pj           REAL,
    mzi_count           INTEGER,
    depth               INTEGER NOT NULL,
    params              INTEGER NOT NULL,
    total_violation     REAL    NOT NULL,
    violations          TEXT    NOT NULL CHECK (json_valid(violations)),
    extras              TEXT    NOT NULL CHECK (json_valid(extras)),
    wall_time_s         REAL    NOT NULL,
    worker              TEXT    NOT NULL,
    created             INTEGER NOT NULL
) STRICT;

CREATE TABLE exchanges (
    id                INTEGER PRIMARY KEY,
    operator          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt            TEXT    NOT NULL,
    response          TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens INTEGER NOT NULL CHECK (completion_tokens >= 0),
    tokens_estimated  INTEGER NOT NULL CHECK (tokens_estimated IN (0, 1)),
    latency_ms        INTEGER NOT NULL CHECK (latency_ms >= 0),
    outcome           TEXT    NOT NULL,
    candidate_id      INTEGER REFERENCES candidates (id),
    created           INTEGER NOT NULL
) STRICT;
CREATE INDEX exchanges_candidate ON exchanges (candidate_id);
";

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

/// Where a candidate is in its life (module docs draw the transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateState {
    /// Stored, not yet checked or not yet queued.
    Proposed,
    /// Refused by the compiler or a constraint check; `diagnostics` says why.
    Rejected,
    /// Waiting for a worker.
    Queued,
    /// Leased to a worker.
    Running,
    /// Evaluated; has an evaluation row.
    Done,
    /// Evaluation failed (error, divergence, worker lost too often); no score.
    Failed,
    /// Evaluation exceeded its wall-clock limit; no score.
    Timeout,
}

impl CandidateState {
    pub const ALL: [CandidateState; 7] = [
        CandidateState::Proposed,
        CandidateState::Rejected,
        CandidateState::Queued,
        CandidateState::Running,
        CandidateState::Done,
        CandidateState::Failed,
        CandidateState::Timeout,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateState::Proposed => "proposed",
            CandidateState::Rejected => "rejected",
            CandidateState::Queued => "queued",
            CandidateState::Running => "running",
            CandidateState::Done => "done",
            CandidateState::Failed => "failed",
            CandidateState::Timeout => "timeout",
        }
    }
}

impl fmt::Display for CandidateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CandidateState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        CandidateState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::BadRow {
                detail: format!("unknown candidate state {s:?}"),
            })
    }
}

/// A candidate to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCandidate {
    /// The text as proposed.
    pub text: String,
    /// The compiler's canonical text; `None` if it did not get that far.
    pub canonical_text: Option<String>,
    /// The compiler's structural hash; `None` if it did not get that far. Unique per run.
    pub structural_hash: Option<String>,
    /// Ids of the candidates it was derived from.
    pub parents: Vec<i64>,
    /// The operator that produced it (e.g. "llm-mutate", "seed").
    pub operator: String,
    pub generation: u32,
}

/// The state a new candidate is stored in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Disposition {
    /// To be checked or queued later ([`Store::enqueue`], [`Store::reject`]).
    Proposed,
    /// Ready for evaluation.
    Queued,
    /// Refused, with a one-line reason and the full diagnostics.
    Rejected { reason: String, diagnostics: String },
}

/// Result of [`Store::insert_proposal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Inserted {
    /// Stored under this new id.
    New(i64),
    /// A candidate with the same structural hash exists already: its id and state.
    Duplicate { id: i64, state: CandidateState },
}

impl Inserted {
    /// The id of the stored candidate, new or existing.
    pub fn id(&self) -> i64 {
        match *self {
            Inserted::New(id) | Inserted::Duplicate { id, .. } => id,
        }
    }
}

/// One violated constraint and by how much (in the constraint's own units, ≥ 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub constraint: String,
    pub amount: f64,
}

/// What an evaluation measured. NaN is allowed in the float metrics (stored as NULL and read
/// back as NaN); violation amounts must be finite and non-negative.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Clean test accuracy in [0, 1].
    pub accuracy: f64,
    /// Monte Carlo accuracy under non-idealities: mean, standard deviation, 5th percentile.
    pub noisy_accuracy_mean: f64,
    pub noisy_accuracy_std: f64,
    pub noisy_accuracy_p5: f64,
    /// Clean minus noisy mean accuracy.
    pub accuracy_drop: f64,
    /// Energy per inference in picojoules.
    pub energy_pj: f64,
    /// MZIs used; `None` on backends without them.
    pub mzi_count: Option<u64>,
    /// Optical depth (MZI columns passed) or layer depth on digital backends.
    pub depth: u64,
    /// Trainable parameters.
    pub params: u64,
    /// Violated constraints; empty when feasible.
    pub violations: Vec<Violation>,
    /// Anything else, kept as JSON.
    pub extras: serde_json::Map<String, serde_json::Value>,
}

impl Metrics {
    /// Sum of the violation amounts: the `violation` that NSGA-II's constraint domination uses.
    pub fn total_violation(&self) -> f64 {
        self.violations.iter().map(|v| v.amount).sum()
    }
}

/// A finished evaluation as written by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub metrics: Metrics,
    /// Wall-clock time the evaluation took, seconds.
    pub wall_time_s: f64,
}

/// A stored evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub metrics: Metrics,
    pub wall_time_s: f64,
    /// The lease owner that recorded it.
    pub worker: String,
    pub recorded_ms: i64,
}

/// A stored candidate, with its evaluation if it is `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    pub id: i64,
    pub text: String,
    pub canonical_text: Option<String>,
    pub structural_hash: Option<String>,
    pub parents: Vec<i64>,
    pub operator: String,
    pub generation: u32,
    pub state: CandidateState,
    pub diagnostics: Option<String>,
    pub reason: Option<String>,
    /// Claims so far.
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Time of the latest claim.
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub evaluation: Option<EvaluationRecord>,
}

/// How a failed evaluation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    Failed,
    Timeout,
}

impl Failure {
    fn state(self) -> CandidateState {
        match self {
            Failure::Failed => CandidateState::Failed,
            Failure::Timeout => CandidateState::Timeout,
        }
    }
}

/// Which `running` candidates [`Store::recover`] treats as abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovery {
    /// Those whose lease has expired (workers share the store).
    ExpiredLeases,
    /// All of them (the single process that ran them has restarted).
    AllRunning,
}

/// What [`Store::recover`] (or a claim) did with abandoned work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    /// Back in the queue.
    pub requeued: Vec<i64>,
    /// Out of attempts, now `failed`.
    pub failed: Vec<i64>,
}

/// Number of candidates in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub proposed: u64,
    pub rejected: u64,
    pub queued: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
    pub timeout: u64,
}

impl StateCounts {
    pub fn get(&self, state: CandidateState) -> u64 {
        match state {
            CandidateState::Proposed => self.proposed,
            CandidateState::Rejected => self.rejected,
            CandidateState::Queued => self.queued,
            CandidateState::Running => self.running,
            CandidateState::Done => self.done,
            CandidateState::Failed => self.failed,
            CandidateState::Timeout => self.timeout,
        }
    }

    fn slot(&mut self, state: CandidateState) -> &mut u64 {
        match state {
            CandidateState::Proposed => &mut self.proposed,
            CandidateState::Rejected => &mut self.rejected,
            CandidateState::Queued => &mut self.queued,
            CandidateState::Running => &mut self.running,
            CandidateState::Done => &mut self.done,
            CandidateState::Failed => &mut self.failed,
            CandidateState::Timeout => &mut self.timeout,
        }
    }

    pub fn total(&self) -> u64 {
        CandidateState::ALL.iter().map(|&s| self.get(s)).sum()
    }
}

/// One LLM exchange to log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub operator: String,
    pub model: String,
    pub prompt: String,
    pub response: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Token counts were estimated (the server did not report usage).
    pub tokens_estimated: bool,
    pub latency_ms: u64,
    /// e.g. "ok", "invalid", "duplicate", "error: …".
    pub outcome: String,
    /// The candidate the exchange produced, if any.
    pub candidate_id: Option<i64>,
}

/// A logged exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    pub id: i64,
    pub created_ms: i64,
    pub exchange: Exchange,
}

/// Totals over the exchange log, for token budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeTotals {
    pub exchanges: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Exchanges whose token counts were estimated.
    pub estimated: u64,
}

/// The `run` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub config: String,
    pub seed: u64,
    pub created_ms: i64,
    pub schema_version: i32,
}

/// Whether [`Store::open_or_create`] made a new run or found one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Opened {
    Created,
    Resumed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Create,
    OpenOrCreate,
}

/// A connection to one run store. Writes take `&mut self`; each is one short transaction.
/// Several `Store`s (threads or processes) may share a file on local disk.
#[derive(Debug)]
pub struct Store {
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

impl Store {
    /// Creates a new run store at `path`; fails if a non-empty file is there.
    pub fn create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<Store> {
        Ok(Store::open_mode(path.as_ref(), Some((config, seed)), options, Mode::Create)?.0)
    }

    /// Opens an existing run store.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Ok(Store::open_mode(path.as_ref(), None, options, Mode::Open)?.0)
    }

    /// Opens the run store at `path`, creating it with `config` and `seed` if it does not
    /// exist. A resumed run keeps its stored config and seed: compare [`Store::run_info`]
    /// with the current ones to decide whether resuming makes sense.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<(Store, Opened)> {
        Store::open_mode(
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
    pub fn open_read_only(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
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
        let store = Store {
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
    ) -> Result<(Store, Opened)> {
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
        let mut store = Store {
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

    fn identity(&self) -> Result<(i32, i32)> {
        let read = |name: &str| {
            self.conn
                .pragma_query_value(None, name, |row| row.get::<_, i32>(0))
                .map_err(|e| open_error(&self.path, e, "reading the file header"))
        };
        Ok((read("application_id")?, read("user_version")?))
    }

    fn is_blank(&self) -> Result<bool> {
        let objects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| open_error(&self.path, e, "reading the schema"))?;
        Ok(objects == 0)
    }

    fn check_identity(&self) -> Result<()> {
        let path = self.path.clone();
        let (app_id, version) = self.identity()?;
        if app_id != APPLICATION_ID {
            if app_id == 0 && version == 0 && self.is_blank()? {
                return Err(StoreError::EmptyDatabase { path });
            }
            return Err(StoreError::ForeignDatabase {
                path,
                found: app_id,
                expected: APPLICATION_ID,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    fn set_pragmas(&self) -> Result<()> {
        // A store already in WAL mode needs no switch (and the switch needs an exclusive
        // lock, which a second process starting at the same moment may not get at once).
        let current: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| open_error(&self.path, e, "reading the journal mode"))?;
        let mode = if current.eq_ignore_ascii_case("wal") {
            current
        } else {
            self.switch_to_wal()?
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::InvalidInput {
                field: "run store location",
                problem: format!(
                    "SQLite refused WAL mode for {} (journal mode stays {mode}); keep the run \
                     store on a local file system",
                    self.path.display()
                ),
            });
        }
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .ctx("setting synchronous = NORMAL")?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .ctx("enabling foreign keys")?;
        Ok(())
    }

    /// `PRAGMA journal_mode = WAL`, retried while another connection holds the lock (SQLite
    /// does not always call the busy handler for it), up to the busy timeout.
    fn switch_to_wal(&self) -> Result<String> {
        let start = std::time::Instant::now();
        loop {
            match self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            {
                Ok(mode) => return Ok(mode),
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) && start.elapsed() < self.options.busy_timeout =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(open_error(&self.path, e, "switching to WAL mode")),
            }
        }
    }

    /// Creates the schema if the file is still blank; false if someone else already did.
    fn initialise(&mut self, config: &str, seed: u64) -> Result<bool> {
        let now = self.now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting to create the run store")?;
        let objects: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .ctx("reading the schema")?;
        if objects != 0 {
            return Ok(false);
        }
        tx.execute_batch(SCHEMA).ctx("creating the schema")?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .ctx("setting the application id")?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .ctx("setting the schema version")?;
        // The seed is stored as the i64 with the same bits.
        tx.execute(
            "INSERT INTO run (id, config, seed, created) VALUES (1, ?1, ?2, ?3)",
            params![config, seed as i64, now],
        )
        .ctx("recording the run")?;
        tx.commit().ctx("committing the new run store")?;
        Ok(true)
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored run configuration, seed and creation time.
    pub fn run_info(&self) -> Result<RunInfo> {
        let (config, seed, created_ms) = self
            .conn
            .query_row(
                "SELECT config, seed, created FROM run WHERE id = 1",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?)),
            )
            .ctx("reading the run row")?;
        Ok(RunInfo {
            config,
            seed: seed as u64,
            created_ms,
            schema_version: SCHEMA_VERSION,
        })
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

    /// Stores a candidate. If its structural hash is already stored, nothing is written and
    /// the existing candidate's id and state are returned.
    pub fn insert_proposal(
        &mut self,
        candidate: &NewCandidate,
        disposition: &Disposition,
    ) -> Result<Inserted> {
        let parents =
            serde_json::to_string(&candidate.parents).map_err(|e| StoreError::InvalidInput {
                field: "parents",
                problem: e.to_string(),
            })?;
        let (state, reason, diagnostics) = match disposition {
            Disposition::Proposed => (CandidateState::Proposed, None, None),
            Disposition::Queued => (CandidateState::Queued, None, None),
            Disposition::Rejected {
                reason,
                diagnostics,
            } => (
                CandidateState::Rejected,
                Some(reason.as_str()),
                Some(diagnostics.as_str()),
            ),
        };
        self.write("storing a proposal", |tx, now| {
            if let Some(hash) = &candidate.structural_hash {
                if let Some((id, state)) = tx
                    .query_row(
                        "SELECT id, state FROM candidates WHERE structural_hash = ?1",
                        [hash],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                    )
                    .optional()
                    .ctx("looking up the structural hash")?
                {
                    return Ok(Inserted::Duplicate {
                        id,
                        state: state.parse()?,
                    });
                }
            }
            let finished = (state == CandidateState::Rejected).then_some(now);
            tx.execute(
                "INSERT INTO candidates (text, canonical_text, structural_hash, parents, \
                 operator, generation, state, diagnostics, reason, created, updated, finished) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
                params![
                    candidate.text,
                    candidate.canonical_text,
                    candidate.structural_hash,
                    parents,
                    candidate.operator,
                    i64::from(candidate.generation),
                    state.as_str(),
                    diagnostics,
                    reason,
                    now,
                    finished,
                ],
            )
            .ctx("storing a proposal")?;
            Ok(Inserted::New(tx.last_insert_rowid()))
        })
    }

    /// Moves a `proposed` candidate to the queue.
    pub fn enqueue(&mut self, id: i64) -> Result<()> {
        self.write("queueing a candidate", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET state = 'queued', updated = ?2 \
                     WHERE id = ?1 AND state = 'proposed'",
                    params![id, now],
                )
                .ctx("queueing a candidate")?;
            if changed == 0 {
                return Err(transition_error(tx, id, CandidateState::Queued)?);
            }
            Ok(())
        })
    }

    /// Marks a `proposed` or `queued` candidate rejected, with a one-line reason and the
    /// full diagnostics (kept for the LLM's repair prompt and for reports).
    pub fn reject(&mut self, id: i64, reason: &str, diagnostics: &str) -> Result<()> {
        self.write("rejecting a candidate", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET state = 'rejected', reason = ?2, diagnostics = ?3, \
                     updated = ?4, finished = ?4 \
                     WHERE id = ?1 AND state IN ('proposed', 'queued')",
                    params![id, reason, diagnostics, now],
                )
                .ctx("rejecting a candidate")?;
            if changed == 0 {
                return Err(transition_error(tx, id, CandidateState::Rejected)?);
            }
            Ok(())
        })
    }

    /// Leases the oldest queued candidate (lowest generation, then id) to `owner` for
    /// `lease`. Expired leases are recovered first, in the same transaction. `None` when the
    /// queue is empty.
    pub fn claim_next(&mut self, owner: &str, lease: Duration) -> Result<Option<CandidateRecord>> {
        check_owner(owner)?;
        let max_attempts = self.options.max_attempts;
        let lease = duration_ms(lease);
        let claimed = self.write("claiming work", |tx, now| {
            recover_in(tx, now, max_attempts, Recovery::ExpiredLeases)?;
            let next: Option<i64> = tx
                .query_row(
                    "SELECT id FROM candidates WHERE state = 'queued' \
                     ORDER BY generation, id LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .ctx("finding queued work")?;
            let Some(id) = next else { return Ok(None) };
            tx.execute(
                "UPDATE candidates SET state = 'running', lease_owner = ?2, \
                 lease_expires = ?3, attempts = attempts + 1, started = ?4, updated = ?4 \
                 WHERE id = ?1",
                params![id, owner, now.saturating_add(lease), now],
            )
            .ctx("claiming work")?;
            Ok(Some(id))
        })?;
        match claimed {
            Some(id) => self.candidate(id),
            None => Ok(None),
        }
    }

    /// Extends `owner`'s lease on `id` to `lease` from now.
    pub fn heartbeat(&mut self, id: i64, owner: &str, lease: Duration) -> Result<()> {
        let lease = duration_ms(lease);
        self.write("renewing a lease", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET lease_expires = ?3, updated = ?4 \
                     WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
                    params![id, owner, now.saturating_add(lease), now],
                )
                .ctx("renewing a lease")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?);
            }
            Ok(())
        })
    }

    /// Gives a claimed candidate back to the queue without counting the attempt (a worker
    /// shutting down cleanly).
    pub fn release(&mut self, id: i64, owner: &str) -> Result<()> {
        self.write("releasing a lease", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET state = 'queued', lease_owner = NULL, \
                     lease_expires = NULL, attempts = max(attempts - 1, 0), updated = ?3 \
                     WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
                    params![id, owner, now],
                )
                .ctx("releasing a lease")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?);
            }
            Ok(())
        })
    }

    /// Records the evaluation of a candidate leased to `owner` and marks it `done`, in one
    /// transaction. Fails with [`StoreError::LeaseLost`] if the lease was taken back; a result
    /// that arrives after the lease expired is still accepted while nobody has reclaimed it.
    pub fn record_evaluation(
        &mut self,
        id: i64,
        owner: &str,
        evaluation: &Evaluation,
    ) -> Result<()> {
        let row = EvaluationRow::new(evaluation)?;
        self.write("recording an evaluation", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET state = 'done', lease_owner = NULL, \
                     lease_expires = NULL, updated = ?3, finished = ?3 \
                     WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
                    params![id, owner, now],
                )
                .ctx("recording an evaluation")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?);
            }
            let m = &evaluation.metrics;
            tx.execute(
                "INSERT INTO evaluations (candidate_id, accuracy, noisy_accuracy_mean, \
                 noisy_accuracy_std, noisy_accuracy_p5, accuracy_drop, energy_pj, mzi_count, \
                 depth, params, total_violation, violations, extras, wall_time_s, worker, \
                 created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    id,
                    m.accuracy,
                    m.noisy_accuracy_mean,
                    m.noisy_accuracy_std,
                    m.noisy_accuracy_p5,
                    m.accuracy_drop,
                    m.energy_pj,
                    row.mzi_count,
                    row.depth,
                    row.params,
                    row.total_violation,
                    row.violations,
                    row.extras,
                    evaluation.wall_time_s,
                    owner,
                    now,
                ],
            )
            .ctx("recording an evaluation")?;
            Ok(())
        })
    }

    /// Marks a candidate leased to `owner` failed or timed out, with a reason. No score is
    /// stored, ever.
    pub fn record_failure(
        &mut self,
        id: i64,
        owner: &str,
        failure: Failure,
        reason: &str,
    ) -> Result<()> {
        let state = failure.state();
        self.write("recording a failure", |tx, now| {
            let changed = tx
                .execute(
                    "UPDATE candidates SET state = ?3, reason = ?4, lease_owner = NULL, \
                     lease_expires = NULL, updated = ?5, finished = ?5 \
                     WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
                    params![id, owner, state.as_str(), reason, now],
                )
                .ctx("recording a failure")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?);
            }
            Ok(())
        })
    }

    /// Puts abandoned `running` candidates back in the queue, or marks them `failed` once
    /// they have had [`StoreOptions::max_attempts`] claims.
    pub fn recover(&mut self, scope: Recovery) -> Result<Recovered> {
        let max_attempts = self.options.max_attempts;
        self.write("recovering abandoned work", |tx, now| {
            recover_in(tx, now, max_attempts, scope)
        })
    }

    /// Logs one LLM exchange; returns its id.
    pub fn record_exchange(&mut self, exchange: &Exchange) -> Result<i64> {
        let prompt_tokens = to_i64("prompt_tokens", exchange.prompt_tokens)?;
        let completion_tokens = to_i64("completion_tokens", exchange.completion_tokens)?;
        let latency_ms = to_i64("latency_ms", exchange.latency_ms)?;
        self.write("logging an LLM exchange", |tx, now| {
            tx.execute(
                "INSERT INTO exchanges (operator, model, prompt, response, prompt_tokens, \
                 completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id, \
                 created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    exchange.operator,
                    exchange.model,
                    exchange.prompt,
                    exchange.response,
                    prompt_tokens,
                    completion_tokens,
                    exchange.tokens_estimated,
                    latency_ms,
                    exchange.outcome,
                    exchange.candidate_id,
                    now,
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => StoreError::InvalidInput {
                    field: "candidate_id",
                    problem: format!(
                        "exchange names candidate {:?}, which is not in this run",
                        exchange.candidate_id
                    ),
                },
                _ => StoreError::Sqlite {
                    action: "logging an LLM exchange",
                    source: e,
                },
            })?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Exchanges that produced candidate `id`, oldest first.
    pub fn exchanges_for_candidate(&self, id: i64) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("WHERE candidate_id = ?1 ORDER BY id", Some(id))
    }

    /// The whole exchange log, oldest first.
    pub fn exchanges(&self) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("ORDER BY id", None)
    }

    fn exchanges_where(&self, clause: &str, id: Option<i64>) -> Result<Vec<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, created, operator, model, prompt, response, prompt_tokens, \
             completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id \
             FROM exchanges {clause}"
        );
        let mut stmt = self.conn.prepare(&sql).ctx("reading the exchange log")?;
        let mut rows = match id {
            Some(id) => stmt.query([id]),
            None => stmt.query([]),
        }
        .ctx("reading the exchange log")?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().ctx("reading the exchange log")? {
            let get_u64 = |i: usize, name: &str| -> Result<u64> {
                let v: i64 = r.get(i).ctx("reading the exchange log")?;
                u64::try_from(v).map_err(|_| StoreError::BadRow {
                    detail: format!("negative {name} {v}"),
                })
            };
            out.push(ExchangeRecord {
                id: r.get(0).ctx("reading the exchange log")?,
                created_ms: r.get(1).ctx("reading the exchange log")?,
                exchange: Exchange {
                    operator: r.get(2).ctx("reading the exchange log")?,
                    model: r.get(3).ctx("reading the exchange log")?,
                    prompt: r.get(4).ctx("reading the exchange log")?,
                    response: r.get(5).ctx("reading the exchange log")?,
                    prompt_tokens: get_u64(6, "prompt_tokens")?,
                    completion_tokens: get_u64(7, "completion_tokens")?,
                    tokens_estimated: r.get(8).ctx("reading the exchange log")?,
                    latency_ms: get_u64(9, "latency_ms")?,
                    outcome: r.get(10).ctx("reading the exchange log")?,
                    candidate_id: r.get(11).ctx("reading the exchange log")?,
                },
            });
        }
        Ok(out)
    }

    /// Token totals over the exchange log.
    pub fn exchange_totals(&self) -> Result<ExchangeTotals> {
        let (exchanges, prompt, completion, estimated) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0), \
                 coalesce(sum(completion_tokens), 0), coalesce(sum(tokens_estimated), 0) \
                 FROM exchanges",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .ctx("summing the exchange log")?;
        let u = |v: i64| {
            u64::try_from(v).map_err(|_| StoreError::BadRow {
                detail: format!("negative token total {v}"),
            })
        };
        Ok(ExchangeTotals {
            exchanges: u(exchanges)?,
            prompt_tokens: u(prompt)?,
            completion_tokens: u(completion)?,
            estimated: u(estimated)?,
        })
    }

    /// Every `done` candidate with its evaluation, in id order: the archive a resumed search
    /// starts from.
    pub fn load_archive(&self) -> Result<Vec<CandidateRecord>> {
        self.candidates_where("WHERE c.state = 'done' ORDER BY c.id", &[])
    }

    /// All candidates of one generation, in id order.
    pub fn candidates_in_generation(&self, generation: u32) -> Result<Vec<CandidateRecord>> {
        self.candidates_where(
            "WHERE c.generation = ?1 ORDER BY c.id",
            &[&i64::from(generation)],
        )
    }

    /// All candidates in one state, in id order (e.g. `proposed` ones left by a crash).
    pub fn candidates_in_state(&self, state: CandidateState) -> Result<Vec<CandidateRecord>> {
        self.candidates_where("WHERE c.state = ?1 ORDER BY c.id", &[&state.as_str()])
    }

    /// One candidate, if it exists.
    pub fn candidate(&self, id: i64) -> Result<Option<CandidateRecord>> {
        Ok(self
            .candidates_where("WHERE c.id = ?1", &[&id])?
            .into_iter()
            .next())
    }

    /// The id of the candidate with this structural hash, if any.
    pub fn find_by_hash(&self, structural_hash: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT id FROM candidates WHERE structural_hash = ?1",
                [structural_hash],
                |r| r.get(0),
            )
            .optional()
            .ctx("looking up a structural hash")
    }

    /// The highest generation stored, if any candidate is.
    pub fn last_generation(&self) -> Result<Option<u32>> {
        let g: Option<i64> = self
            .conn
            .query_row("SELECT max(generation) FROM candidates", [], |r| r.get(0))
            .ctx("reading the last generation")?;
        g.map(|g| to_u32("generation", g)).transpose()
    }

    /// Number of candidates in each state.
    pub fn counts_by_state(&self) -> Result<StateCounts> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM candidates GROUP BY state")
            .ctx("counting candidates")?;
        let mut rows = stmt.query([]).ctx("counting candidates")?;
        let mut counts = StateCounts::default();
        while let Some(r) = rows.next().ctx("counting candidates")? {
            let state: CandidateState =
                r.get::<_, String>(0).ctx("counting candidates")?.parse()?;
            let n: i64 = r.get(1).ctx("counting candidates")?;
            *counts.slot(state) = u64::try_from(n).unwrap_or(0);
        }
        Ok(counts)
    }

    /// `PRAGMA integrity_check`: an empty list when the file is sound, else SQLite's findings.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .ctx("checking integrity")?;
        let mut rows = stmt.query([]).ctx("checking integrity")?;
        let mut problems = Vec::new();
        while let Some(r) = rows.next().ctx("checking integrity")? {
            let line: String = r.get(0).ctx("checking integrity")?;
            if line != "ok" {
                problems.push(line);
            }
        }
        Ok(problems)
    }

    fn candidates_where(
        &self,
        clause: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<CandidateRecord>> {
        let sql = format!("{CANDIDATE_SELECT} {clause}");
        let mut stmt = self.conn.prepare(&sql).ctx("reading candidates")?;
        let mut rows = stmt.query(params).ctx("reading candidates")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().ctx("reading candidates")? {
            out.push(read_candidate(row)?);
        }
        Ok(out)
    }
}

/// Maps errors met while opening and identifying a file to the plain ones.
/// The process that writes a run: one at a time (see [`Store::acquire_writer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub pid: u32,
    pub host: String,
    /// When it took the run, milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`, field 22),
    /// so a recycled PID is not mistaken for the writer; empty where there is no `/proc`.
    pub process_start: String,
}

impl Writer {
    /// This process, now.
    pub fn this_process() -> Writer {
        let pid = std::process::id();
        Writer {
            pid,
            host: host_name(),
            since_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            process_start: process_start(pid).unwrap_or_default(),
        }
    }

    fn host_is_this(&self) -> bool {
        self.host == host_name()
    }

    /// Whether the process still runs. Another host's process cannot be seen, so it counts
    /// as alive: a live writer's run is never taken over.
    pub fn is_alive(&self) -> bool {
        if !self.host_is_this() || !Path::new("/proc/self/stat").exists() {
            return true;
        }
        match process_start(self.pid) {
            None => false,
            Some(start) => self.process_start.is_empty() || start == self.process_start,
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Field 22 of `/proc/PID/stat` (start time), `None` when the process does not exist.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// `2026-12-06 12:55:55 UTC` for milliseconds since the Unix epoch.
fn utc_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const WRITER_TABLE: &str = "CREATE TABLE IF NOT EXISTS writer (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pid           INTEGER NOT NULL,
    host          TEXT    NOT NULL,
    since         INTEGER NOT NULL,
    process_start TEXT    NOT NULL
)";

impl Store {
    /// Makes `me` the run's only writer. The rule: one process writes a run at a time.
    /// A writer row left by a process that no longer runs (on this host) is taken over;
    /// a live one, or one of another host, is not: the call fails with
    /// [`StoreError::Busy`], naming the process, host and time. The table is created on
    /// first use, so older stores need no migration (and older uhc versions ignore it).
    pub fn acquire_writer(&mut self, me: &Writer) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("taking the run for writing")?;
        tx.execute_batch(WRITER_TABLE)
            .ctx("creating the writer table")?;
        let current = tx
            .query_row(
                "SELECT pid, host, since, process_start FROM writer WHERE id = 1",
                [],
                |r| {
                    Ok(Writer {
                        pid: r.get::<_, i64>(0)? as u32,
                        host: r.get(1)?,
                        since_ms: r.get(2)?,
                        process_start: r.get(3)?,
                    })
                },
            )
            .optional()
            .ctx("reading the run's writer")?;
        if let Some(w) = current {
            let me_again = w.pid == me.pid && w.host == me.host;
            if !me_again && w.is_alive() {
                return Err(StoreError::Busy {
                    path: self.path.clone(),
                    writer: w,
                });
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO writer (id, pid, host, since, process_start) \
             VALUES (1, ?1, ?2, ?3, ?4)",
            params![me.pid as i64, me.host, me.since_ms, me.process_start],
        )
        .ctx("recording the run's writer")?;
        tx.commit().ctx("taking the run for writing")
    }

    /// Gives the run up (when `me` holds it; otherwise nothing changes).
    pub fn release_writer(&mut self, me: &Writer) -> Result<()> {
        let exists: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'writer'",
                [],
                |r| r.get(0),
            )
            .ctx("reading the schema")?;
        if exists == 0 {
            return Ok(());
        }
        self.conn
            .execute(
                "DELETE FROM writer WHERE id = 1 AND pid = ?1 AND host = ?2",
                params![me.pid as i64, me.host],
            )
            .ctx("giving the run up")?;
        Ok(())
    }

    /// The process that holds the run for writing, if any (works read-only).
    pub fn writer(&self) -> Result<Option<Writer>> {
        let exists: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'writer'",
                [],
                |r| r.get(0),
            )
            .ctx("reading the schema")?;
        if exists == 0 {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT pid, host, since, process_start FROM writer WHERE id = 1",
                [],
                |r| {
                    Ok(Writer {
                        pid: r.get::<_, i64>(0)? as u32,
                        host: r.get(1)?,
                        since_ms: r.get(2)?,
                        process_start: r.get(3)?,
                    })
                },
            )
            .optional()
            .ctx("reading the run's writer")
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

fn current_state(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<Option<CandidateState>> {
    tx.query_row("SELECT state FROM candidates WHERE id = ?1", [id], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .ctx("reading a candidate's state")?
    .map(|s| s.parse())
    .transpose()
}

fn transition_error(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    to: CandidateState,
) -> Result<StoreError> {
    Ok(match current_state(tx, id)? {
        None => StoreError::UnknownCandidate { id },
        Some(from) => StoreError::InvalidTransition { id, from, to },
    })
}

fn lease_error(tx: &rusqlite::Transaction<'_>, id: i64, owner: &str) -> Result<StoreError> {
    Ok(match current_state(tx, id)? {
        None => StoreError::UnknownCandidate { id },
        Some(state) => StoreError::LeaseLost {
            id,
            owner: owner.to_string(),
            state,
        },
    })
}

fn recover_in(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    max_attempts: u32,
    scope: Recovery,
) -> Result<Recovered> {
    let all = scope == Recovery::AllRunning;
    let mut stmt = tx
        .prepare(
            "UPDATE candidates SET \
               state = CASE WHEN attempts < ?1 THEN 'queued' ELSE 'failed' END, \
               reason = CASE WHEN attempts < ?1 \
                 THEN 'worker lost during attempt ' || attempts || '; requeued' \
                 ELSE 'worker lost during attempt ' || attempts || ' of ' || ?1 \
                      || '; not retried' END, \
               finished = CASE WHEN attempts < ?1 THEN finished ELSE ?2 END, \
               lease_owner = NULL, lease_expires = NULL, updated = ?2 \
             WHERE state = 'running' AND (?3 OR lease_expires <= ?2) \
             RETURNING id, state",
        )
        .ctx("recovering abandoned work")?;
    let mut rows = stmt
        .query(params![i64::from(max_attempts), now, all])
        .ctx("recovering abandoned work")?;
    let mut recovered = Recovered::default();
    while let Some(r) = rows.next().ctx("recovering abandoned work")? {
        let id: i64 = r.get(0).ctx("recovering abandoned work")?;
        let state: String = r.get(1).ctx("recovering abandoned work")?;
        if state == "queued" {
            recovered.requeued.push(id);
        } else {
            recovered.failed.push(id);
        }
    }
    recovered.requeued.sort_unstable();
    recovered.failed.sort_unstable();
    Ok(recovered)
}

/// The non-float columns of an evaluation, checked and converted before writing.
struct EvaluationRow {
    mzi_count: Option<i64>,
    depth: i64,
    params: i64,
    total_violation: f64,
    violations: String,
    extras: String,
}

impl EvaluationRow {
    fn new(evaluation: &Evaluation) -> Result<Self> {
        let m = &evaluation.metrics;
        for v in &m.violations {
            if !(v.amount.is_finite() && v.amount >= 0.0) {
                return Err(StoreError::InvalidInput {
                    field: "constraint violation",
                    problem: format!(
                        "constraint {:?} has amount {}; amounts must be finite and ≥ 0",
                        v.constraint, v.amount
                    ),
                });
            }
        }
        if !(evaluation.wall_time_s.is_finite() && evaluation.wall_time_s >= 0.0) {
            return Err(StoreError::InvalidInput {
                field: "wall_time_s",
                problem: format!("{} is not a duration", evaluation.wall_time_s),
            });
        }
        let json = |field: &'static str, r: serde_json::Result<String>| {
            r.map_err(|e| StoreError::InvalidInput {
                field,
                problem: e.to_string(),
            })
        };
        Ok(EvaluationRow {
            mzi_count: m.mzi_count.map(|c| to_i64("mzi_count", c)).transpose()?,
            depth: to_i64("depth", m.depth)?,
            params: to_i64("params", m.params)?,
            total_violation: m.total_violation(),
            violations: json("violations", serde_json::to_string(&m.violations))?,
            extras: json("extras", serde_json::to_string(&m.extras))?,
        })
    }
}

fn read_candidate(r: &rusqlite::Row<'_>) -> Result<CandidateRecord> {
    const A: &str = "reading candidates";
    let parents_json: String = r.get(4).ctx(A)?;
    let parents: Vec<i64> =
        serde_json::from_str(&parents_json).map_err(|e| StoreError::BadRow {
            detail: format!("parents {parents_json:?}: {e}"),
        })?;
    let state: CandidateState = r.get::<_, String>(7).ctx(A)?.parse()?;
    let evaluation = match r.get::<_, Option<i64>>(17).ctx(A)? {
        None => None,
        Some(_) => {
            // SQLite stores NaN as NULL; read it back as NaN.
            let float = |i: usize| -> Result<f64> {
                Ok(r.get::<_, Option<f64>>(i).ctx(A)?.unwrap_or(f64::NAN))
            };
            let violations_json: String = r.get(27).ctx(A)?;
            let extras_json: String = r.get(28).ctx(A)?;
            let metrics = Metrics {
                accuracy: float(18)?,
                noisy_accuracy_mean: float(19)?,
                noisy_accuracy_std: float(20)?,
                noisy_accuracy_p5: float(21)?,
                accuracy_drop: float(22)?,
                energy_pj: float(23)?,
                mzi_count: r
                    .get::<_, Option<i64>>(24)
                    .ctx(A)?
                    .map(|v| to_u64("mzi_count", v))
                    .transpose()?,
                depth: to_u64("depth", r.get(25).ctx(A)?)?,
                params: to_u64("params", r.get(26).ctx(A)?)?,
                violations: serde_json::from_str(&violations_json).map_err(|e| {
                    StoreError::BadRow {
                        detail: format!("violations {violations_json:?}: {e}"),
                    }
                })?,
                extras: serde_json::from_str(&extras_json).map_err(|e| StoreError::BadRow {
                    detail: format!("extras {extras_json:?}: {e}"),
                })?,
            };
            Some(EvaluationRecord {
                metrics,
                wall_time_s: r.get(29).ctx(A)?,
                worker: r.get(30).ctx(A)?,
                recorded_ms: r.get(31).ctx(A)?,
            })
        }
    };
    Ok(CandidateRecord {
        id: r.get(0).ctx(A)?,
        text: r.get(1).ctx(A)?,
        canonical_text: r.get(2).ctx(A)?,
        structural_hash: r.get(3).ctx(A)?,
        parents,
        operator: r.get(5).ctx(A)?,
        generation: to_u32("generation", r.get(6).ctx(A)?)?,
        state,
        diagnostics: r.get(8).ctx(A)?,
        reason: r.get(9).ctx(A)?,
        attempts: to_u32("attempts", r.get(10).ctx(A)?)?,
        lease_owner: r.get(11).ctx(A)?,
        lease_expires_ms: r.get(12).ctx(A)?,
        created_ms: r.get(13).ctx(A)?,
        updated_ms: r.get(14).ctx(A)?,
        started_ms: r.get(15).ctx(A)?,
        finished_ms: r.get(16).ctx(A)?,
        evaluation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::AtomicUsize;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, AtomicOrdering::SeqCst);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "uhc-store-{tag}-{}-{n}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn options_with(clock: &ManualClock, max_attempts: u32) -> StoreOptions {
        StoreOptions {
            max_attempts,
            clock: Arc::new(clock.clone()),
            ..StoreOptions::default()
        }
    }

    fn candidate(hash: &str, generation: u32) -> NewCandidate {
        NewCandidate {
            text: format!("model m {{ mesh {hash} }}"),
            canonical_text: Some(format!("model m {{\n  mesh {hash}\n}}\n")),
            structural_hash: Some(hash.to_string()),
            parents: vec![],
            operator: "seed".into(),
            generation,
        }
    }

    /// Distinct, exactly representable metrics for candidate `id`.
    fn evaluation_for(id: i64) -> Evaluation {
        let x = id as f64;
        let mut extras = serde_json::Map::new();
        extras.insert("phase_sigma".into(), serde_json::json!(0.01));
        extras.insert("id".into(), serde_json::json!(id));
        Evaluation {
            metrics: Metrics {
                accuracy: 0.5 + x / 1024.0,
                noisy_accuracy_mean: 0.25 + x / 2048.0,
                noisy_accuracy_std: x / 4096.0,
                noisy_accuracy_p5: 0.125,
                accuracy_drop: 0.25 + x / 2048.0,
                energy_pj: 1000.0 * x + 0.5,
                mzi_count: Some(6 * id as u64),
                depth: 4,
                params: 100 + id as u64,
                violations: if id % 2 == 0 {
                    vec![]
                } else {
                    vec![Violation {
                        constraint: "max_mzi".into(),
                        amount: x,
                    }]
                },
                extras,
            },
            wall_time_s: 1.5,
        }
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    #[test]
    fn create_open_and_resume_identity() {
        let dir = TempDir::new("identity");
        let path = dir.file("run.sqlite");
        assert!(matches!(
            Store::open(&path, StoreOptions::default()),
            Err(StoreError::NotFound { .. })
        ));
        let clock = ManualClock::new(1_700_000_000_000);
        let store = Store::create(
            &path,
            "population = 20",
            u64::MAX - 1,
            options_with(&clock, 3),
        )
        .unwrap();
        let info = store.run_info().unwrap();
        assert_eq!(info.config, "population = 20");
        assert_eq!(info.seed, u64::MAX - 1);
        assert_eq!(info.created_ms, 1_700_000_000_000);
        drop(store);
        assert!(matches!(
            Store::create(&path, "x", 1, StoreOptions::default()),
            Err(StoreError::AlreadyExists { .. })
        ));
        let (store, opened) =
            Store::open_or_create(&path, "other config", 5, StoreOptions::default()).unwrap();
        assert_eq!(opened, Opened::Resumed);
        // A resumed run keeps what it was created with.
        assert_eq!(store.run_info().unwrap().seed, u64::MAX - 1);
        let conn = raw(&path);
        let app: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
        assert_eq!(mode, "wal");
        let sync: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "synchronous = NORMAL");

        let fresh = dir.file("fresh.sqlite");
        let (_, opened) = Store::open_or_create(&fresh, "c", 1, StoreOptions::default()).unwrap();
        assert_eq!(opened, Opened::Created);
        // A zero-length file is adopted as a new store.
        let empty = dir.file("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        let (_, opened) = Store::open_or_create(&empty, "c", 1, StoreOptions::default()).unwrap();
        assert_eq!(opened, Opened::Created);
        assert!(matches!(
            Store::open_or_create(
                &fresh,
                "c",
                1,
                StoreOptions {
                    max_attempts: 0,
                    ..StoreOptions::default()
                }
            ),
            Err(StoreError::InvalidInput {
                field: "max_attempts",
                ..
            })
        ));
    }

    #[test]
    fn random_bytes_file_is_refused_and_left_alone() {
        use rand::{RngCore, SeedableRng};
        let dir = TempDir::new("random");
        let path = dir.file("noise.sqlite");
        let mut bytes = vec![0u8; 8192];
        rand::rngs::StdRng::seed_from_u64(3).fill_bytes(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        let err = Store::open(&path, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
        assert!(err.to_string().contains("not an SQLite database"));
        let err = Store::open_or_create(&path, "c", 1, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn sqlite_file_of_another_application_is_refused_and_left_alone() {
        let dir = TempDir::new("foreign");
        let path = dir.file("other.db");
        {
            let conn = raw(&path);
            conn.pragma_update(None, "application_id", 0x1234_5678)
                .unwrap();
            conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
                .unwrap();
        }
        let err = Store::open_or_create(&path, "c", 1, StoreOptions::default()).unwrap_err();
        match &err {
            StoreError::ForeignDatabase {
                found, expected, ..
            } => {
                assert_eq!(*found, 0x1234_5678);
                assert_eq!(*expected, APPLICATION_ID);
            }
            other => panic!("expected ForeignDatabase, got {other}"),
        }
        assert!(err.to_string().contains("0x12345678"), "{err}");
        // Untouched: still in rollback-journal mode, data intact.
        let conn = raw(&path);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let body: String = conn
            .query_row("SELECT body FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(body, "hi");

        // An application that sets no id but has tables is foreign too.
        let plain = dir.file("plain.db");
        raw(&plain)
            .execute_batch("CREATE TABLE t (x INTEGER);")
            .unwrap();
        assert!(matches!(
            Store::open(&plain, StoreOptions::default()),
            Err(StoreError::ForeignDatabase { found: 0, .. })
        ));
        // An SQLite database with nothing in it is not a store yet.
        let blank = dir.file("blank.db");
        raw(&blank)
            .execute_batch("CREATE TABLE t (x INTEGER); DROP TABLE t;")
            .unwrap();
        assert!(std::fs::metadata(&blank).unwrap().len() > 0);
        assert!(matches!(
            Store::open(&blank, StoreOptions::default()),
            Err(StoreError::EmptyDatabase { .. })
        ));
    }

    #[test]
    fn newer_or_unknown_schema_version_is_refused() {
        let dir = TempDir::new("schema");
        let path = dir.file("run.sqlite");
        drop(Store::create(&path, "c", 1, StoreOptions::default()).unwrap());
        raw(&path)
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = Store::open(&path, StoreOptions::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{err}"
        );
        assert!(err.to_string().contains("newer uhc"));
        raw(&path).pragma_update(None, "user_version", 0).unwrap();
        assert!(matches!(
            Store::open(&path, StoreOptions::default()),
            Err(StoreError::UnsupportedSchema { found: 0, .. })
        ));
    }

    #[test]
    fn proposals_duplicates_rejections_and_transitions() {
        let dir = TempDir::new("lifecycle");
        let clock = ManualClock::new(1000);
        let mut store =
            Store::create(dir.file("run.sqlite"), "c", 1, options_with(&clock, 3)).unwrap();
        let a = store
            .insert_proposal(&candidate("h-a", 0), &Disposition::Queued)
            .unwrap();
        let Inserted::New(a) = a else {
            panic!("first insert must be new")
        };
        // Same structure again, even with another text and operator: the existing id.
        let mut again = candidate("h-a", 3);
        again.text = "a different spelling".into();
        again.operator = "llm-mutate".into();
        assert_eq!(
            store.insert_proposal(&again, &Disposition::Queued).unwrap(),
            Inserted::Duplicate {
                id: a,
                state: CandidateState::Queued
            }
        );
        // Rejected texts without a hash never collide.
        let unparsable = NewCandidate {
            text: "model {".into(),
            canonical_text: None,
            structural_hash: None,
            parents: vec![a],
            operator: "llm-mutate".into(),
            generation: 1,
        };
        let rejected = Disposition::Rejected {
            reason: "parse error".into(),
            diagnostics: "error[E0001]: expected `}`".into(),
        };
        let r1 = store.insert_proposal(&unparsable, &rejected).unwrap();
        let r2 = store.insert_proposal(&unparsable, &rejected).unwrap();
        assert!(matches!((r1, r2), (Inserted::New(x), Inserted::New(y)) if x != y));
        let rec = store.candidate(r1.id()).unwrap().unwrap();
        assert_eq!(rec.state, CandidateState::Rejected);
        assert_eq!(rec.parents, vec![a]);
        assert_eq!(
            rec.diagnostics.as_deref(),
            Some("error[E0001]: expected `}`")
        );
        assert_eq!(rec.reason.as_deref(), Some("parse error"));
        assert!(rec.evaluation.is_none());

        // proposed → queued, proposed → rejected; invalid moves are errors.
        let p = store
            .insert_proposal(&candidate("h-p", 1), &Disposition::Proposed)
            .unwrap()
            .id();
        let q = store
            .insert_proposal(&candidate("h-q", 1), &Disposition::Proposed)
            .unwrap()
            .id();
        store.enqueue(p).unwrap();
        store
            .reject(q, "too many MZIs", "mesh needs 300 MZIs, limit 256")
            .unwrap();
        assert!(matches!(
            store.enqueue(q),
            Err(StoreError::InvalidTransition {
                from: CandidateState::Rejected,
                to: CandidateState::Queued,
                ..
            })
        ));
        assert!(matches!(
            store.enqueue(9999),
            Err(StoreError::UnknownCandidate { id: 9999 })
        ));
        assert_eq!(store.find_by_hash("h-q").unwrap(), Some(q));
        assert_eq!(store.find_by_hash("nope").unwrap(), None);

        let counts = store.counts_by_state().unwrap();
        assert_eq!((counts.queued, counts.rejected, counts.total()), (2, 3, 5));
        assert_eq!(store.last_generation().unwrap(), Some(1));
        let gen1: Vec<i64> = store
            .candidates_in_generation(1)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(gen1, vec![r1.id(), r2.id(), p, q]);
        assert_eq!(
            store
                .candidates_in_state(CandidateState::Queued)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn evaluations_round_trip_and_failures_get_no_score() {
        let dir = TempDir::new("eval");
        let clock = ManualClock::new(5_000);
        let mut store =
            Store::create(dir.file("run.sqlite"), "c", 1, options_with(&clock, 3)).unwrap();
        // Claims come in generation order, then id order.
        let late = store
            .insert_proposal(&candidate("late", 2), &Disposition::Queued)
            .unwrap()
            .id();
        let early = store
            .insert_proposal(&candidate("early", 0), &Disposition::Queued)
            .unwrap()
            .id();
        let third = store
            .insert_proposal(&candidate("third", 2), &Disposition::Queued)
            .unwrap()
            .id();
        let lease = Duration::from_secs(60);
        let c = store.claim_next("w1", lease).unwrap().unwrap();
        assert_eq!(c.id, early);
        assert_eq!(c.state, CandidateState::Running);
        assert_eq!(c.attempts, 1);
        assert_eq!(c.lease_owner.as_deref(), Some("w1"));
        assert_eq!(c.lease_expires_ms, Some(65_000));
        assert_eq!(
            c.canonical_text.as_deref(),
            Some("model m {\n  mesh early\n}\n")
        );

        // NaN and infinities survive the trip; mzi_count may be absent.
        let mut eval = evaluation_for(early);
        eval.metrics.noisy_accuracy_std = f64::NAN;
        eval.metrics.energy_pj = f64::INFINITY;
        eval.metrics.accuracy_drop = f64::NEG_INFINITY;
        eval.metrics.mzi_count = None;
        clock.advance(Duration::from_secs(2));
        store.record_evaluation(early, "w1", &eval).unwrap();
        let rec = store.candidate(early).unwrap().unwrap();
        assert_eq!(rec.state, CandidateState::Done);
        assert_eq!(rec.lease_owner, None);
        assert_eq!(rec.finished_ms, Some(7_000));
        let got = rec.evaluation.unwrap();
        assert!(got.metrics.noisy_accuracy_std.is_nan());
        assert_eq!(got.metrics.energy_pj, f64::INFINITY);
        assert_eq!(got.metrics.accuracy_drop, f64::NEG_INFINITY);
        // NaN ≠ NaN: compare the rest with that field set equal.
        let (mut got_rest, mut expected) = (got.metrics.clone(), eval.metrics.clone());
        got_rest.noisy_accuracy_std = 0.0;
        expected.noisy_accuracy_std = 0.0;
        assert_eq!(got_rest, expected);
        assert_eq!(
            (got.worker.as_str(), got.wall_time_s, got.recorded_ms),
            ("w1", 1.5, 7_000)
        );
        // Done is final: no second evaluation, no failure afterwards.
        assert!(matches!(
            store.record_evaluation(early, "w1", &eval),
            Err(StoreError::LeaseLost {
                state: CandidateState::Done,
                ..
            })
        ));
        assert!(matches!(
            store.record_failure(early, "w1", Failure::Failed, "late"),
            Err(StoreError::LeaseLost { .. })
        ));

        // Timeout and failure store a reason and no evaluation.
        let c = store.claim_next("w1", lease).unwrap().unwrap();
        assert_eq!(c.id, late);
        store
            .record_failure(late, "w1", Failure::Timeout, "exceeded 600 s wall clock")
            .unwrap();
        let c = store.claim_next("w2", lease).unwrap().unwrap();
        assert_eq!(c.id, third);
        // Only the lease holder may finish it.
        assert!(matches!(
            store.record_evaluation(third, "w1", &evaluation_for(third)),
            Err(StoreError::LeaseLost {
                state: CandidateState::Running,
                ..
            })
        ));
        store
            .record_failure(third, "w2", Failure::Failed, "loss diverged to NaN")
            .unwrap();
        assert!(store.claim_next("w1", lease).unwrap().is_none());

        let late_rec = store.candidate(late).unwrap().unwrap();
        assert_eq!(late_rec.state, CandidateState::Timeout);
        assert_eq!(
            late_rec.reason.as_deref(),
            Some("exceeded 600 s wall clock")
        );
        assert!(late_rec.evaluation.is_none());
        assert_eq!(
            store.candidate(third).unwrap().unwrap().state,
            CandidateState::Failed
        );
        let evaluations: i64 = store
            .conn
            .query_row("SELECT count(*) FROM evaluations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(evaluations, 1);
        let archive = store.load_archive().unwrap();
        assert_eq!(archive.len(), 1);
        assert_eq!(archive[0].id, early);

        // Bad metrics are refused before anything is written.
        store
            .insert_proposal(&candidate("bad", 3), &Disposition::Queued)
            .unwrap();
        let c = store.claim_next("w1", lease).unwrap().unwrap();
        let mut bad = evaluation_for(c.id);
        bad.metrics.violations = vec![Violation {
            constraint: "energy".into(),
            amount: f64::NAN,
        }];
        assert!(matches!(
            store.record_evaluation(c.id, "w1", &bad),
            Err(StoreError::InvalidInput {
                field: "constraint violation",
                ..
            })
        ));
        let mut huge = evaluation_for(c.id);
        huge.metrics.params = u64::MAX;
        assert!(matches!(
            store.record_evaluation(c.id, "w1", &huge),
            Err(StoreError::InvalidInput {
                field: "params",
                ..
            })
        ));
        assert_eq!(
            store.candidate(c.id).unwrap().unwrap().state,
            CandidateState::Running
        );
        assert!(matches!(
            store.claim_next("  ", lease),
            Err(StoreError::InvalidInput {
                field: "lease owner",
                ..
            })
        ));
    }

    #[test]
    fn leases_expire_and_are_retried_a_bounded_number_of_times() {
        let dir = TempDir::new("lease");
        let clock = ManualClock::new(0);
        let path = dir.file("run.sqlite");
        let mut a = Store::create(&path, "c", 1, options_with(&clock, 2)).unwrap();
        let mut b = Store::open(&path, options_with(&clock, 2)).unwrap();
        let id = a
            .insert_proposal(&candidate("x", 0), &Disposition::Queued)
            .unwrap()
            .id();
        let lease = Duration::from_secs(10);
        assert_eq!(a.claim_next("A", lease).unwrap().unwrap().id, id);

        // Heartbeats keep the lease alive past its first expiry.
        clock.advance(Duration::from_secs(8));
        a.heartbeat(id, "A", lease).unwrap();
        clock.advance(Duration::from_secs(8));
        assert!(b.claim_next("B", lease).unwrap().is_none());
        assert_eq!(
            b.recover(Recovery::ExpiredLeases).unwrap(),
            Recovered::default()
        );

        // A stops beating; once the lease is past, B's claim recovers and takes the work.
        clock.advance(Duration::from_secs(11));
        let c = b.claim_next("B", lease).unwrap().unwrap();
        assert_eq!((c.id, c.attempts), (id, 2));
        assert_eq!(
            c.reason.as_deref(),
            Some("worker lost during attempt 1; requeued")
        );
        // A's late result and heartbeat are refused.
        assert!(matches!(
            a.record_evaluation(id, "A", &evaluation_for(id)),
            Err(StoreError::LeaseLost {
                state: CandidateState::Running,
                ..
            })
        ));
        assert!(matches!(
            a.heartbeat(id, "A", lease),
            Err(StoreError::LeaseLost { .. })
        ));

        // B dies too: that was the last attempt, so the candidate fails, with no score.
        clock.advance(Duration::from_secs(11));
        let rec = a.recover(Recovery::ExpiredLeases).unwrap();
        assert_eq!(
            rec,
            Recovered {
                requeued: vec![],
                failed: vec![id]
            }
        );
        let c = a.candidate(id).unwrap().unwrap();
        assert_eq!(c.state, CandidateState::Failed);
        assert_eq!(
            c.reason.as_deref(),
            Some("worker lost during attempt 2 of 2; not retried")
        );
        assert!(c.evaluation.is_none());
        assert!(a.claim_next("A", lease).unwrap().is_none());

        // A clean release does not use up an attempt.
        let id2 = a
            .insert_proposal(&candidate("y", 0), &Disposition::Queued)
            .unwrap()
            .id();
        a.claim_next("A", lease).unwrap().unwrap();
        assert!(matches!(
            b.release(id2, "B"),
            Err(StoreError::LeaseLost { .. })
        ));
        a.release(id2, "A").unwrap();
        let c = b.claim_next("B", lease).unwrap().unwrap();
        assert_eq!((c.id, c.attempts), (id2, 1));
    }

    #[test]
    fn reopening_resumes_with_everything_finished() {
        let dir = TempDir::new("resume");
        let path = dir.file("run.sqlite");
        let lease = Duration::from_secs(3600);
        let mut ids = Vec::new();
        {
            let (mut store, opened) =
                Store::open_or_create(&path, "cfg", 9, StoreOptions::default()).unwrap();
            assert_eq!(opened, Opened::Created);
            for (k, gen) in [0u32, 0, 0, 1, 1].into_iter().enumerate() {
                let mut c = candidate(&format!("r{k}"), gen);
                c.parents = if gen == 1 {
                    vec![ids[0], ids[1]]
                } else {
                    vec![]
                };
                ids.push(
                    store
                        .insert_proposal(&c, &Disposition::Queued)
                        .unwrap()
                        .id(),
                );
            }
            for _ in 0..2 {
                let c = store.claim_next("solo", lease).unwrap().unwrap();
                store
                    .record_evaluation(c.id, "solo", &evaluation_for(c.id))
                    .unwrap();
            }
            let c = store.claim_next("solo", lease).unwrap().unwrap();
            store
                .record_failure(c.id, "solo", Failure::Failed, "NaN loss")
                .unwrap();
            // Claimed and then the process "dies" with the lease far from expiry.
            store.claim_next("solo", lease).unwrap().unwrap();
        }
        let (mut store, opened) =
            Store::open_or_create(&path, "cfg", 9, StoreOptions::default()).unwrap();
        assert_eq!(opened, Opened::Resumed);
        let archive = store.load_archive().unwrap();
        assert_eq!(archive.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..2]);
        for c in &archive {
            assert_eq!(
                c.evaluation.as_ref().unwrap().metrics,
                evaluation_for(c.id).metrics
            );
        }
        // The lease has not expired, so only the single-process rule recovers it.
        assert_eq!(
            store.recover(Recovery::ExpiredLeases).unwrap(),
            Recovered::default()
        );
        let rec = store.recover(Recovery::AllRunning).unwrap();
        assert_eq!(rec.requeued, vec![ids[3]]);
        let counts = store.counts_by_state().unwrap();
        assert_eq!(
            (counts.done, counts.failed, counts.queued, counts.running),
            (2, 1, 2, 0)
        );
        // The requeued candidate keeps its parents and is claimed again (attempt 2).
        let c = store.claim_next("solo-2", lease).unwrap().unwrap();
        assert_eq!(
            (c.id, c.attempts, c.parents.clone()),
            (ids[3], 2, vec![ids[0], ids[1]])
        );
    }

    #[test]
    fn exchanges_are_logged_and_summed() {
        let dir = TempDir::new("exchanges");
        let mut store =
            Store::create(dir.file("run.sqlite"), "c", 1, StoreOptions::default()).unwrap();
        let id = store
            .insert_proposal(&candidate("e", 0), &Disposition::Queued)
            .unwrap()
            .id();
        let mut ex = Exchange {
            operator: "llm-mutate".into(),
            model: "smollm2-135m".into(),
            prompt: "Improve this mesh: …".into(),
            response: "model m { … }".into(),
            prompt_tokens: 812,
            completion_tokens: 95,
            tokens_estimated: false,
            latency_ms: 1400,
            outcome: "ok".into(),
            candidate_id: Some(id),
        };
        let first = store.record_exchange(&ex).unwrap();
        ex.candidate_id = None;
        ex.outcome = "invalid".into();
        ex.tokens_estimated = true;
        ex.prompt_tokens = 10;
        store.record_exchange(&ex).unwrap();
        let totals = store.exchange_totals().unwrap();
        assert_eq!(
            totals,
            ExchangeTotals {
                exchanges: 2,
                prompt_tokens: 822,
                completion_tokens: 190,
                estimated: 1
            }
        );
        let linked = store.exchanges_for_candidate(id).unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].id, first);
        assert_eq!(linked[0].exchange.prompt, "Improve this mesh: …");
        assert_eq!(store.exchanges().unwrap()[1].exchange, ex);
        ex.candidate_id = Some(4242);
        assert!(matches!(
            store.record_exchange(&ex),
            Err(StoreError::InvalidInput {
                field: "candidate_id",
                ..
            })
        ));
        ex.candidate_id = None;
        ex.latency_ms = u64::MAX;
        assert!(matches!(
            store.record_exchange(&ex),
            Err(StoreError::InvalidInput {
                field: "latency_ms",
                ..
            })
        ));
        assert_eq!(store.exchange_totals().unwrap().exchanges, 2);
    }

    #[test]
    fn concurrent_workers_never_claim_the_same_candidate() {
        let dir = TempDir::new("workers");
        let path = dir.file("run.sqlite");
        let total = 60;
        {
            let mut store = Store::create(&path, "c", 1, StoreOptions::default()).unwrap();
            for k in 0..total {
                store
                    .insert_proposal(&candidate(&format!("w{k}"), 0), &Disposition::Queued)
                    .unwrap();
            }
        }
        let handles: Vec<_> = (0..3)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let owner = format!("worker-{w}");
                    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
                    let mut mine = Vec::new();
                    while let Some(c) = store.claim_next(&owner, Duration::from_secs(600)).unwrap()
                    {
                        store
                            .record_evaluation(c.id, &owner, &evaluation_for(c.id))
                            .unwrap();
                        mine.push(c.id);
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "a candidate was evaluated twice");
        assert_eq!(all.len(), total);
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let archive = store.load_archive().unwrap();
        assert_eq!(archive.len(), total);
        assert!(archive.iter().all(|c| c.attempts == 1));
    }

    const CRASH_CHILD_ENV: &str = "UHC_STORE_CRASH_CHILD_DB";

    /// Child mode of `crash_safety_sigkill`: evaluate candidates in a loop, printing each id
    /// only after its evaluation has committed, until killed (bounded in count and time).
    /// The `phase` lines are flushed between transactions so the parent, woken by each,
    /// kills the child at varying points of an iteration.
    fn crash_child(db: &Path) {
        let mut store = Store::open(db, StoreOptions::default()).unwrap();
        let prompt = "p".repeat(64 * 1024);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut out = std::io::stdout().lock();
        for k in 0..100_000u32 {
            if std::time::Instant::now() > deadline {
                break;
            }
            store
                .insert_proposal(
                    &candidate(&format!("crash-{}-{k}", std::process::id()), k / 10),
                    &Disposition::Queued,
                )
                .unwrap();
            writeln!(out, "phase inserted").unwrap();
            out.flush().unwrap();
            let c = store
                .claim_next("child", Duration::from_secs(3600))
                .unwrap()
                .unwrap();
            store
                .record_exchange(&Exchange {
                    operator: "llm-mutate".into(),
                    model: "m".into(),
                    prompt: prompt.clone(),
                    response: "r".into(),
                    prompt_tokens: 1,
                    completion_tokens: 1,
                    tokens_estimated: true,
                    latency_ms: 1,
                    outcome: "ok".into(),
                    candidate_id: Some(c.id),
                })
                .unwrap();
            writeln!(out, "phase exchanged").unwrap();
            out.flush().unwrap();
            store
                .record_evaluation(c.id, "child", &evaluation_for(c.id))
                .unwrap();
            writeln!(out, "committed {}", c.id).unwrap();
            out.flush().unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn one_writer_per_run() {
        let dir = TempDir::new("writer");
        let db = dir.file("run.sqlite");
        let mut store = Store::create(&db, "c", 1, StoreOptions::default()).unwrap();
        assert_eq!(store.writer().unwrap(), None);
        let me = Writer::this_process();
        store.acquire_writer(&me).unwrap();
        // Taking it again from the same process is fine.
        store.acquire_writer(&me).unwrap();
        assert_eq!(store.writer().unwrap(), Some(me.clone()));
        // A live process of this host (pid 1 always runs) is never taken over.
        let live = Writer {
            pid: 1,
            process_start: String::new(),
            since_ms: 0,
            ..me.clone()
        };
        store.release_writer(&me).unwrap();
        store.acquire_writer(&live).unwrap();
        let err = store.acquire_writer(&me).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }));
        assert!(
            err.to_string().contains(&format!(
                "is being written by process 1 on host {} since 1970-01-01 00:00:00 UTC",
                me.host
            )),
            "{err}"
        );
        // Nor is another host's: it cannot be seen.
        let remote = Writer {
            host: format!("{}-elsewhere", me.host),
            pid: u32::MAX - 1,
            ..me.clone()
        };
        store.release_writer(&live).unwrap();
        store.acquire_writer(&remote).unwrap();
        let err = store.acquire_writer(&me).unwrap_err().to_string();
        assert!(
            err.contains("cannot see processes on another host"),
            "{err}"
        );
        // A process that has ended (a reaped child) is taken over.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Writer { pid, ..me.clone() };
        store.release_writer(&remote).unwrap();
        store.acquire_writer(&dead).unwrap();
        store.acquire_writer(&me).unwrap();
        assert_eq!(store.writer().unwrap().map(|w| w.pid), Some(me.pid));
        store.release_writer(&me).unwrap();
        assert_eq!(store.writer().unwrap(), None);
    }

    #[test]
    fn utc_text_is_civil_time() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn crash_safety_sigkill() {
        use std::os::unix::process::ExitStatusExt;
        use std::process::{Command, Stdio};

        if let Some(db) = std::env::var_os(CRASH_CHILD_ENV) {
            crash_child(Path::new(&db));
            return;
        }
        let dir = TempDir::new("crash");
        let db = dir.file("run.sqlite");
        drop(Store::create(&db, "c", 1, StoreOptions::default()).unwrap());
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        let name = format!("{module}::crash_safety_sigkill");

        // Several children on the same file, each killed after a different number of
        // commits, so the kill lands in different phases (inside a write transaction,
        // between transactions, during a WAL checkpoint), and each resume starts from a
        // file the previous kill left behind.
        let mut all_committed: Vec<i64> = Vec::new();
        for kill_after in [5usize, 17, 40, 61] {
            // Re-run this very test in a child process, in child mode.
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CRASH_CHILD_ENV, &db)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut committed: Vec<i64> = Vec::new();
            let mut killed = false;
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(id) = line.strip_prefix("committed ") {
                    committed.push(id.trim().parse().unwrap());
                    if !killed && committed.len() >= kill_after {
                        child.kill().unwrap(); // SIGKILL on Unix
                        killed = true;
                    }
                }
            }
            let status = child.wait().unwrap();
            assert!(
                killed,
                "child ended after {} commits, before the kill",
                committed.len()
            );
            assert_eq!(
                status.signal(),
                Some(9),
                "child must die by SIGKILL: {status:?}"
            );
            all_committed.extend(committed);

            let mut store = Store::open(&db, StoreOptions::default()).unwrap();
            assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
            for &id in &all_committed {
                let c = store.candidate(id).unwrap().unwrap();
                assert_eq!(c.state, CandidateState::Done, "candidate {id}");
                assert_eq!(
                    c.evaluation.unwrap().metrics,
                    evaluation_for(id).metrics,
                    "candidate {id}"
                );
                // A candidate whose worker was killed after logging its exchange is retried
                // by the next child, which logs another: at least the committed one is there.
                assert!(
                    !store.exchanges_for_candidate(id).unwrap().is_empty(),
                    "candidate {id}"
                );
            }
            // At most the one candidate in flight is left running; a restart recovers it.
            let counts = store.counts_by_state().unwrap();
            assert!(counts.done >= all_committed.len() as u64);
            // A child claims the oldest queued candidate (a previous round's leftover,
            // requeued by `recover`) before its own fresh one, so one of each may remain;
            // and the kill is asynchronous, so the child may have inserted its next
            // proposal after the commit the parent saw (on a loaded machine it does).
            assert!(
                counts.running <= 1 && counts.queued <= 2 && counts.running + counts.queued <= 2,
                "{counts:?}"
            );
            store.recover(Recovery::AllRunning).unwrap();
            assert_eq!(store.counts_by_state().unwrap().running, 0);
        }
    }
}
