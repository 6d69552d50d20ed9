//! The schema, its version and the file's identity: what makes a file a uhc run store.

use super::*;

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

impl SqliteStore {
    pub(super) fn identity(&self) -> Result<(i32, i32)> {
        let read = |name: &str| {
            self.conn
                .pragma_query_value(None, name, |row| row.get::<_, i32>(0))
                .map_err(|e| open_error(&self.path, e, "reading the file header"))
        };
        Ok((read("application_id")?, read("user_version")?))
    }

    pub(super) fn is_blank(&self) -> Result<bool> {
        let objects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(|e| open_error(&self.path, e, "reading the schema"))?;
        Ok(objects == 0)
    }

    pub(super) fn check_identity(&self) -> Result<()> {
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

    pub(super) fn set_pragmas(&self) -> Result<()> {
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
    pub(super) fn initialise(&mut self, config: &str, seed: u64) -> Result<bool> {
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
        tx.execute_batch(super::test_scores::SCHEMA)
            .ctx("creating the schema")?;
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
}
