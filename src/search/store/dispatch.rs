//! One store interface over two databases: an SQLite file (embedded, the default) or a
//! run on a PostgreSQL server (shared by a coordinator and workers on many hosts).
//!
//! *Why an enum and not a trait object:* the two implementations are known and closed, the
//! engine, reports and CLI call one concrete type, and every method keeps its plain
//! signature (no `dyn`-compatibility limits on generic helpers). A method either database
//! lacks is a compile error in [`Store`]'s `match`, not a silent default.

use super::*;

/// Where a run is stored: a file path or a `postgres://` URL.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    Postgres(Box<PgTarget>),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is a server; anything else a file path.
    pub fn parse(text: &str) -> Result<Location> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Location::Postgres(Box::new(PgTarget::parse(text)?)))
        } else {
            Ok(Location::File(PathBuf::from(text)))
        }
    }

    /// The location as shown in messages (a URL without its password).
    pub fn shown(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Postgres(t) => t.shown().to_string(),
        }
    }
}

/// A connection to one run store, on either database.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Creates a new SQLite run store at `path` ([`SqliteStore::create`]).
    pub fn create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<Store> {
        SqliteStore::create(path, config, seed, options).map(Store::Sqlite)
    }

    /// Opens an existing SQLite run store.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        SqliteStore::open(path, options).map(Store::Sqlite)
    }

    /// Opens an SQLite run store read-only ([`SqliteStore::open_read_only`]).
    pub fn open_read_only(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        SqliteStore::open_read_only(path, options).map(Store::Sqlite)
    }

    /// Opens the SQLite run store at `path`, creating it if needed.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<(Store, Opened)> {
        SqliteStore::open_or_create(path, config, seed, options).map(|(s, o)| (Store::Sqlite(s), o))
    }

    /// Opens the run at `location`, creating it with `config` and `seed` if it does not
    /// exist.
    pub fn open_or_create_at(
        location: &Location,
        config: &str,
        seed: u64,
        options: StoreOptions,
    ) -> Result<(Store, Opened)> {
        match location {
            Location::File(p) => Store::open_or_create(p, config, seed, options),
            Location::Postgres(t) => {
                PgStore::open_mode(t, Some((config, seed)), options, Mode::OpenOrCreate)
                    .map(|(s, o)| (Store::Postgres(Box::new(s)), o))
            }
        }
    }

    /// Opens the existing run at `location` for reading and writing.
    pub fn open_at(location: &Location, options: StoreOptions) -> Result<Store> {
        match location {
            Location::File(p) => Store::open(p, options),
            Location::Postgres(t) => PgStore::open_mode(t, None, options, Mode::Open)
                .map(|(s, _)| Store::Postgres(Box::new(s))),
        }
    }

    /// Opens the existing run at `location` for reports: an SQLite file read-only; a
    /// PostgreSQL run as it is (reads there take no locks that block writers).
    pub fn open_read_only_at(location: &Location, options: StoreOptions) -> Result<Store> {
        match location {
            Location::File(p) => Store::open_read_only(p, options),
            Location::Postgres(_) => Store::open_at(location, options),
        }
    }

    /// Whether other processes evaluate this run's candidates at the same time (a
    /// PostgreSQL run with workers): then a `running` row may be someone else's live work.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    pub fn insert_proposal(
        &mut self,
        candidate: &NewCandidate,
        disposition: &Disposition,
    ) -> Result<Inserted> {
        each!(self, s => s.insert_proposal(candidate, disposition))
    }
    pub fn enqueue(&mut self, id: i64) -> Result<()> {
        each!(self, s => s.enqueue(id))
    }
    pub fn reject(&mut self, id: i64, reason: &str, diagnostics: &str) -> Result<()> {
        each!(self, s => s.reject(id, reason, diagnostics))
    }
    pub fn claim_next(&mut self, owner: &str, lease: Duration) -> Result<Option<CandidateRecord>> {
        each!(self, s => s.claim_next(owner, lease))
    }
    pub fn heartbeat(&mut self, id: i64, owner: &str, lease: Duration) -> Result<()> {
        each!(self, s => s.heartbeat(id, owner, lease))
    }
    pub fn release(&mut self, id: i64, owner: &str) -> Result<()> {
        each!(self, s => s.release(id, owner))
    }
    pub fn record_evaluation(
        &mut self,
        id: i64,
        owner: &str,
        evaluation: &Evaluation,
    ) -> Result<()> {
        each!(self, s => s.record_evaluation(id, owner, evaluation))
    }
    pub fn record_failure(
        &mut self,
        id: i64,
        owner: &str,
        failure: Failure,
        reason: &str,
    ) -> Result<()> {
        each!(self, s => s.record_failure(id, owner, failure, reason))
    }
    pub fn recover(&mut self, scope: Recovery) -> Result<Recovered> {
        each!(self, s => s.recover(scope))
    }
    pub fn record_exchange(&mut self, exchange: &Exchange) -> Result<i64> {
        each!(self, s => s.record_exchange(exchange))
    }
    pub fn exchanges_for_candidate(&self, id: i64) -> Result<Vec<ExchangeRecord>> {
        each!(self, s => s.exchanges_for_candidate(id))
    }
    pub fn exchanges(&self) -> Result<Vec<ExchangeRecord>> {
        each!(self, s => s.exchanges())
    }
    pub fn exchange_totals(&self) -> Result<ExchangeTotals> {
        each!(self, s => s.exchange_totals())
    }
    pub fn run_info(&self) -> Result<RunInfo> {
        each!(self, s => s.run_info())
    }
    pub fn load_archive(&self) -> Result<Vec<CandidateRecord>> {
        each!(self, s => s.load_archive())
    }
    pub fn candidates_in_generation(&self, generation: u32) -> Result<Vec<CandidateRecord>> {
        each!(self, s => s.candidates_in_generation(generation))
    }
    pub fn candidates_in_state(&self, state: CandidateState) -> Result<Vec<CandidateRecord>> {
        each!(self, s => s.candidates_in_state(state))
    }
    pub fn candidate(&self, id: i64) -> Result<Option<CandidateRecord>> {
        each!(self, s => s.candidate(id))
    }
    pub fn find_by_hash(&self, structural_hash: &str) -> Result<Option<i64>> {
        each!(self, s => s.find_by_hash(structural_hash))
    }
    pub fn last_generation(&self) -> Result<Option<u32>> {
        each!(self, s => s.last_generation())
    }
    pub fn counts_by_state(&self) -> Result<StateCounts> {
        each!(self, s => s.counts_by_state())
    }
    pub fn record_test_scores(&mut self, id: i64, scores: &TestScores) -> Result<()> {
        each!(self, s => s.record_test_scores(id, scores))
    }
    pub fn test_scores(&self) -> Result<std::collections::HashMap<i64, TestScores>> {
        each!(self, s => s.test_scores())
    }
    pub fn set_source(&mut self, source: &RunSource) -> Result<()> {
        each!(self, s => s.set_source(source))
    }
    pub fn source(&self) -> Result<Option<RunSource>> {
        each!(self, s => s.source())
    }
    /// Takes the run for this process: the one writer of an SQLite file, the one
    /// coordinator of a PostgreSQL run.
    pub fn acquire_writer(&mut self, me: &Writer) -> Result<()> {
        each!(self, s => s.acquire_writer(me))
    }
    pub fn release_writer(&mut self, me: &Writer) -> Result<()> {
        each!(self, s => s.release_writer(me))
    }
    pub fn writer(&self) -> Result<Option<Writer>> {
        each!(self, s => s.writer())
    }

    /// Problems the database finds in itself: SQLite's `integrity_check` (empty when the
    /// file is sound); a PostgreSQL server checks its pages itself, so none there.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.integrity_check(),
            Store::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// Marks a shared run finished or not (workers leave a finished run once idle); an
    /// SQLite run has no workers to tell.
    pub fn set_finished(&mut self, finished: bool) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.set_finished(finished),
        }
    }

    /// Caps the evaluations a shared run's workers claim in all (the coordinator's
    /// budget); an SQLite run's one process keeps to its budget itself.
    pub fn set_budget(&mut self, budget: Option<u64>) -> Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.set_budget(budget),
        }
    }

    /// Whether the coordinator marked the run finished (never, on SQLite).
    pub fn is_finished(&self) -> Result<bool> {
        match self {
            Store::Sqlite(_) => Ok(false),
            Store::Postgres(s) => s.is_finished(),
        }
    }
}
