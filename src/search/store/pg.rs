//! The run store on a PostgreSQL server, shared by one coordinator and many workers.
//!
//! Same tables, states and transitions as the SQLite store; what differs:
//! - **Times are the server's.** Every timestamp and lease deadline is computed from the
//!   server's `clock_timestamp()` inside the statement, so clock skew between hosts does not
//!   move a lease. [`StoreOptions::clock`] is not used here.
//! - **Claims skip locked rows.** `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1` inside the
//!   claiming `UPDATE`: concurrent workers never wait for each other's claim, and a row is
//!   leased to one worker at a time (its `UPDATE` holds the row lock until commit).
//! - **One run per schema.** A URL's `?schema=NAME` (or the connection's `search_path`)
//!   names the schema that holds the run; a worker needs only that URL.
//! - **One coordinator per run** holds a session advisory lock, which the server drops when
//!   the coordinator's connection ends, however it died.
//! - **Connections come back.** A call that finds its connection closed (server restart,
//!   `pg_terminate_backend`, network cut) reconnects with exponential backoff and repeats
//!   its transaction, which either committed entirely or not at all. A result whose commit
//!   was acknowledged to no one is recognised on the repeat (same worker) and not refused.

use super::lifecycle::{disposition_columns, EvaluationRow};
use super::*;
use postgres::error::SqlState;
use postgres::{Client, NoTls, Row, Transaction};
use std::cell::RefCell;

/// The newest schema version this code writes; `MIGRATIONS` lists how to get there.
pub const PG_SCHEMA_VERSION: i32 = 1;
/// What `uhc_meta.application` holds in a uhc run store.
const APPLICATION: &str = "uhc run store";
/// First key of every advisory lock uhc takes ("uhcS", as the SQLite application id).
const LOCK_SPACE: i32 = APPLICATION_ID;

/// Each migration takes the schema from the previous version to its own, in one
/// transaction. A store records the version it reached in `uhc_meta`.
const MIGRATIONS: &[(i32, &str)] = &[(1, SCHEMA_V1)];

const SCHEMA_V1: &str = "
CREATE TABLE uhc_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE run (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    config   TEXT    NOT NULL,
    seed     BIGINT  NOT NULL,
    created  BIGINT  NOT NULL,
    finished BIGINT,
    -- Evaluations the run may claim in all (NULL: no cap): workers stop at the budget.
    budget   BIGINT
);
CREATE TABLE candidates (
    id              BIGSERIAL PRIMARY KEY,
    text            TEXT    NOT NULL,
    canonical_text  TEXT,
    structural_hash TEXT    UNIQUE,
    parents         TEXT    NOT NULL,
    operator        TEXT    NOT NULL,
    generation      BIGINT  NOT NULL CHECK (generation >= 0),
    state           TEXT    NOT NULL CHECK (state IN
                        ('proposed', 'rejected', 'queued', 'running', 'done', 'failed', 'timeout')),
    diagnostics     TEXT,
    reason          TEXT,
    lease_owner     TEXT,
    lease_expires   BIGINT,
    attempts        BIGINT  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created         BIGINT  NOT NULL,
    updated         BIGINT  NOT NULL,
    started         BIGINT,
    finished        BIGINT,
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires IS NOT NULL))
);
-- The claim reads the head of this partial index; it holds queued rows only.
CREATE INDEX candidates_queue ON candidates (generation, id) WHERE state = 'queued';
-- Lease recovery scans running rows by deadline.
CREATE INDEX candidates_leases ON candidates (lease_expires) WHERE state = 'running';
CREATE INDEX candidates_state ON candidates (state, id);
CREATE INDEX candidates_generation ON candidates (generation, id);
CREATE TABLE evaluations (
    candidate_id        BIGINT PRIMARY KEY REFERENCES candidates (id),
    accuracy            DOUBLE PRECISION,
    noisy_accuracy_mean DOUBLE PRECISION,
    noisy_accuracy_std  DOUBLE PRECISION,
    noisy_accuracy_p5   DOUBLE PRECISION,
    accuracy_drop       DOUBLE PRECISION,
    energy_pj           DOUBLE PRECISION,
    mzi_count           BIGINT,
    depth               BIGINT NOT NULL,
    params              BIGINT NOT NULL,
    total_violation     DOUBLE PRECISION NOT NULL,
    violations          TEXT   NOT NULL,
    extras              TEXT   NOT NULL,
    wall_time_s         DOUBLE PRECISION NOT NULL,
    worker              TEXT   NOT NULL,
    created             BIGINT NOT NULL
);
CREATE TABLE exchanges (
    id                BIGSERIAL PRIMARY KEY,
    operator          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt            TEXT    NOT NULL,
    response          TEXT    NOT NULL,
    prompt_tokens     BIGINT  NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens BIGINT  NOT NULL CHECK (completion_tokens >= 0),
    tokens_estimated  BOOLEAN NOT NULL,
    latency_ms        BIGINT  NOT NULL CHECK (latency_ms >= 0),
    outcome           TEXT    NOT NULL,
    candidate_id      BIGINT  REFERENCES candidates (id),
    created           BIGINT  NOT NULL
);
CREATE INDEX exchanges_candidate ON exchanges (candidate_id);
CREATE TABLE test_scores (
    candidate_id        BIGINT PRIMARY KEY REFERENCES candidates (id),
    accuracy            DOUBLE PRECISION NOT NULL,
    noisy_accuracy_mean DOUBLE PRECISION NOT NULL,
    noisy_accuracy_std  DOUBLE PRECISION NOT NULL,
    noisy_accuracy_p5   DOUBLE PRECISION NOT NULL,
    created             BIGINT NOT NULL
);
CREATE TABLE run_source (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);
CREATE TABLE coordinator (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pid           BIGINT NOT NULL,
    host          TEXT   NOT NULL,
    since         BIGINT NOT NULL,
    process_start TEXT   NOT NULL
);
";

/// The server's wall clock in milliseconds since the Unix epoch, as SQL.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Where a PostgreSQL run lives: the connection settings and the schema.
#[derive(Debug, Clone)]
pub struct PgTarget {
    config: postgres::Config,
    schema: Option<String>,
    /// The URL without its password, for messages.
    shown: String,
}

impl PgTarget {
    /// Parses `postgres://user[:password]@host[:port]/db[?schema=NAME&…]`. `schema` is
    /// uhc's own parameter (stripped before the client sees the rest).
    pub fn parse(url: &str) -> Result<PgTarget> {
        let bad = |problem: String| StoreError::InvalidInput {
            field: "PostgreSQL URL",
            problem,
        };
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut schema = None;
        let mut rest = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("schema", name)) => schema = Some(name.to_string()),
                _ if pair.is_empty() => {}
                _ => rest.push(pair),
            }
        }
        if let Some(s) = &schema {
            let ok = !s.is_empty()
                && s.len() <= 63
                && s.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(format!(
                    "schema `{s}` must be 1 to 63 lower-case letters, digits or `_`, not \
                     starting with a digit"
                )));
            }
        }
        let client_url = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: postgres::Config = client_url
            .parse()
            .map_err(|e: postgres::Error| bad(format!("{e} (in `{}`)", mask(url))))?;
        if config.get_application_name().is_none() {
            config.application_name(&format!("uhc-{}", std::process::id()));
        }
        config.connect_timeout(Duration::from_secs(10));
        Ok(PgTarget {
            config,
            schema,
            shown: mask(url),
        })
    }

    /// The URL as shown in messages (password removed).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Names the connection in `pg_stat_activity` (workers name themselves).
    pub fn set_application_name(&mut self, name: &str) {
        self.config.application_name(name);
    }
}

/// `url` with the password between `:` and `@` replaced by `***`.
fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// One connection to a run on a PostgreSQL server.
pub struct PgStore {
    client: RefCell<Client>,
    target: PgTarget,
    options: StoreOptions,
    /// The coordinator this connection holds the run's lock for, re-taken on reconnect.
    coordinator: Option<Writer>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target.shown)
            .finish_non_exhaustive()
    }
}

/// Errors that a new connection may cure.
fn is_connection_error(e: &postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::CONNECTION_FAILURE
                || *c == SqlState::CONNECTION_EXCEPTION
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        )
}

fn pg(action: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { action, source }
}

type PgResult<T> = std::result::Result<T, Failed>;

/// An error inside a transaction body: the server's (retried if the connection is at
/// fault) or the store's own (returned as is).
enum Failed {
    Pg(&'static str, postgres::Error),
    Store(StoreError),
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

trait PgContext<T> {
    fn at(self, action: &'static str) -> PgResult<T>;
}

impl<T> PgContext<T> for std::result::Result<T, postgres::Error> {
    fn at(self, action: &'static str) -> PgResult<T> {
        self.map_err(|e| Failed::Pg(action, e))
    }
}

/// How long reconnecting keeps trying before giving up: 0.1 s doubling to 5 s a try.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

impl PgStore {
    /// Connects to the run at `target`. `init` creates the run when the schema is blank
    /// (`Mode::Create` refuses an existing one, `Mode::Open` a missing one).
    pub(super) fn open_mode(
        target: &PgTarget,
        init: Option<(&str, u64)>,
        options: StoreOptions,
        mode: Mode,
    ) -> Result<(PgStore, Opened)> {
        if options.max_attempts == 0 {
            return Err(StoreError::InvalidInput {
                field: "max_attempts",
                problem: "must be at least 1 (one claim per candidate)".into(),
            });
        }
        let client = connect(target, mode != Mode::Open)?;
        let store = PgStore {
            client: RefCell::new(client),
            target: target.clone(),
            options,
            coordinator: None,
        };
        let opened = store.prepare_schema(init, mode)?;
        Ok((store, opened))
    }

    /// The URL as shown in messages.
    pub fn shown(&self) -> &str {
        &self.target.shown
    }

    fn not_a_store(&self, detail: &str) -> StoreError {
        StoreError::ForeignPostgres {
            run: self.target.shown.clone(),
            detail: detail.to_string(),
        }
    }

    /// Checks the schema's identity and version, migrating an older one and creating a
    /// blank one (under a transaction-scoped advisory lock, so two processes starting
    /// together create it once).
    fn prepare_schema(&self, init: Option<(&str, u64)>, mode: Mode) -> Result<Opened> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction().map_err(pg("opening the run"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&(LOCK_SPACE + 1)],
        )
        .map_err(pg("locking the schema"))?;
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
                &[],
            )
            .map_err(pg("reading the schema"))?
            .get(0);
        let has_meta: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'uhc_meta')",
                &[],
            )
            .map_err(pg("reading the schema"))?
            .get(0);
        let opened = if tables == 0 {
            let Some((config, seed)) = init.filter(|_| mode != Mode::Open) else {
                return Err(StoreError::NoPostgresRun {
                    run: self.target.shown.clone(),
                });
            };
            migrate(&mut tx, 0)?;
            tx.execute(
                &format!(
                    "INSERT INTO run (id, config, seed, created) VALUES (1, $1, $2, {NOW_MS})"
                ),
                &[&config, &(seed as i64)],
            )
            .map_err(pg("recording the run"))?;
            Opened::Created
        } else {
            if !has_meta {
                return Err(self.not_a_store(&format!(
                    "its schema holds {tables} tables but no uhc_meta table"
                )));
            }
            let meta = |key: &str, tx: &mut Transaction<'_>| -> Result<Option<String>> {
                Ok(tx
                    .query_opt("SELECT value FROM uhc_meta WHERE key = $1", &[&key])
                    .map_err(pg("reading uhc_meta"))?
                    .map(|r| r.get(0)))
            };
            if meta("application", &mut tx)?.as_deref() != Some(APPLICATION) {
                return Err(self.not_a_store("uhc_meta does not name a uhc run store"));
            }
            let version: i32 = meta("schema_version", &mut tx)?
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| self.not_a_store("uhc_meta has no schema version"))?;
            if version > PG_SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: PathBuf::from(&self.target.shown),
                    found: version,
                    supported: PG_SCHEMA_VERSION,
                });
            }
            migrate(&mut tx, version)?;
            if mode == Mode::Create {
                return Err(StoreError::AlreadyExists {
                    path: PathBuf::from(&self.target.shown),
                });
            }
            Opened::Resumed
        };
        tx.commit().map_err(pg("opening the run"))?;
        Ok(opened)
    }

    /// Runs `f` in one transaction, reconnecting and repeating it while the connection is
    /// what failed (up to [`RECONNECT_FOR`]).
    fn tx<T>(
        &self,
        action: &'static str,
        mut f: impl FnMut(&mut Transaction<'_>) -> PgResult<T>,
    ) -> Result<T> {
        let start = std::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = {
                let mut client = self.client.borrow_mut();
                let result = match client.transaction() {
                    Ok(mut tx) => match f(&mut tx) {
                        Ok(v) => tx.commit().map(|()| v).map_err(|e| Failed::Pg(action, e)),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(Failed::Pg(action, e)),
                };
                result
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(Failed::Store(e)) => return Err(e),
                Err(Failed::Pg(action, e)) => {
                    if !is_connection_error(&e) || start.elapsed() > RECONNECT_FOR {
                        return Err(StoreError::Postgres { action, source: e });
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    // A failed reconnect is retried on the next round, within the bound;
                    // a coordinator whose run was taken over meanwhile stops here.
                    if let Err(e @ StoreError::CoordinatorBusy { .. }) = self.reconnect() {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn reconnect(&self) -> Result<()> {
        let client = connect(&self.target, false)?;
        *self.client.borrow_mut() = client;
        if let Some(me) = &self.coordinator {
            self.lock_coordinator(me)?;
        }
        Ok(())
    }

    pub fn insert_proposal(
        &mut self,
        candidate: &NewCandidate,
        disposition: &Disposition,
    ) -> Result<Inserted> {
        let parents = json_text("parents", &candidate.parents)?;
        let (state, reason, diagnostics) = disposition_columns(disposition);
        self.tx("storing a proposal", |tx| {
            if let Some(hash) = &candidate.structural_hash {
                if let Some(r) = tx
                    .query_opt(
                        "SELECT id, state FROM candidates WHERE structural_hash = $1",
                        &[hash],
                    )
                    .at("looking up the structural hash")?
                {
                    return Ok(Inserted::Duplicate {
                        id: r.get(0),
                        state: r.get::<_, String>(1).parse()?,
                    });
                }
            }
            // Two coordinators never run at once, so no one inserts the same hash between
            // the look-up and the insert; the UNIQUE constraint is the backstop.
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO candidates (text, canonical_text, structural_hash, parents, \
                         operator, generation, state, diagnostics, reason, created, updated, \
                         finished) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, n, n, \
                                CASE WHEN $7 = 'rejected' THEN n END \
                         FROM (SELECT {NOW_MS} AS n) now RETURNING id"
                    ),
                    &[
                        &candidate.text,
                        &candidate.canonical_text,
                        &candidate.structural_hash,
                        &parents,
                        &candidate.operator,
                        &i64::from(candidate.generation),
                        &state.as_str(),
                        &diagnostics,
                        &reason,
                    ],
                )
                .at("storing a proposal")?;
            Ok(Inserted::New(row.get(0)))
        })
    }

    pub fn enqueue(&mut self, id: i64) -> Result<()> {
        self.tx("queueing a candidate", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET state = 'queued', updated = {NOW_MS} \
                         WHERE id = $1 AND state = 'proposed'"
                    ),
                    &[&id],
                )
                .at("queueing a candidate")?;
            if changed == 0 {
                return Err(transition_error(tx, id, CandidateState::Queued)?.into());
            }
            Ok(())
        })
    }

    pub fn reject(&mut self, id: i64, reason: &str, diagnostics: &str) -> Result<()> {
        self.tx("rejecting a candidate", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET state = 'rejected', reason = $2, diagnostics = $3, \
                         updated = {NOW_MS}, finished = {NOW_MS} \
                         WHERE id = $1 AND state IN ('proposed', 'queued')"
                    ),
                    &[&id, &reason, &diagnostics],
                )
                .at("rejecting a candidate")?;
            if changed == 0 {
                return Err(transition_error(tx, id, CandidateState::Rejected)?.into());
            }
            Ok(())
        })
    }

    /// Leases the oldest queued candidate that no other transaction is claiming. Expired
    /// leases are recovered first, skipping rows another worker is recovering.
    pub fn claim_next(&mut self, owner: &str, lease: Duration) -> Result<Option<CandidateRecord>> {
        check_owner(owner)?;
        let max_attempts = i64::from(self.options.max_attempts);
        let lease = duration_ms(lease);
        let claimed = self.tx("claiming work", |tx| {
            recover_in(tx, max_attempts, Recovery::ExpiredLeases)?;
            let row = tx
                .query_opt(
                    // The budget cap is read without a lock: claims racing for the
                    // last slot may pass it by at most one each.
                    &format!(
                        "WITH next AS ( \
                           SELECT id FROM candidates WHERE state = 'queued' \
                           ORDER BY generation, id FOR UPDATE SKIP LOCKED LIMIT 1), \
                         now AS (SELECT {NOW_MS} AS n), \
                         cap AS (SELECT budget FROM run WHERE id = 1), \
                         used AS (SELECT count(*) AS n FROM candidates \
                                  WHERE state IN ('running', 'done', 'failed', 'timeout')) \
                         UPDATE candidates c SET state = 'running', lease_owner = $1, \
                           lease_expires = now.n + $2, attempts = c.attempts + 1, \
                           started = now.n, updated = now.n \
                         FROM next, now, cap, used \
                         WHERE c.id = next.id AND (cap.budget IS NULL OR used.n < cap.budget) \
                         RETURNING c.id"
                    ),
                    &[&owner, &lease],
                )
                .at("claiming work")?;
            Ok(row.map(|r| r.get::<_, i64>(0)))
        })?;
        match claimed {
            Some(id) => self.candidate(id),
            None => Ok(None),
        }
    }

    pub fn heartbeat(&mut self, id: i64, owner: &str, lease: Duration) -> Result<()> {
        let lease = duration_ms(lease);
        self.tx("renewing a lease", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET lease_expires = {NOW_MS} + $3, \
                         updated = {NOW_MS} \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2"
                    ),
                    &[&id, &owner, &lease],
                )
                .at("renewing a lease")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?.into());
            }
            Ok(())
        })
    }

    pub fn release(&mut self, id: i64, owner: &str) -> Result<()> {
        self.tx("releasing a lease", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET state = 'queued', lease_owner = NULL, \
                         lease_expires = NULL, attempts = greatest(attempts - 1, 0), \
                         updated = {NOW_MS} \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2"
                    ),
                    &[&id, &owner],
                )
                .at("releasing a lease")?;
            if changed == 0 {
                return Err(lease_error(tx, id, owner)?.into());
            }
            Ok(())
        })
    }

    /// As [`SqliteStore::record_evaluation`]. Repeating a call whose commit was not
    /// acknowledged (the connection died) finds the same worker's evaluation and succeeds.
    pub fn record_evaluation(
        &mut self,
        id: i64,
        owner: &str,
        evaluation: &Evaluation,
    ) -> Result<()> {
        let row = EvaluationRow::new(evaluation)?;
        let m = &evaluation.metrics;
        let nan_null = |x: f64| (!x.is_nan()).then_some(x);
        self.tx("recording an evaluation", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET state = 'done', lease_owner = NULL, \
                         lease_expires = NULL, updated = {NOW_MS}, finished = {NOW_MS} \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2"
                    ),
                    &[&id, &owner],
                )
                .at("recording an evaluation")?;
            if changed == 0 {
                if already_recorded(tx, id, owner)? {
                    return Ok(());
                }
                return Err(lease_error(tx, id, owner)?.into());
            }
            tx.execute(
                &format!(
                    "INSERT INTO evaluations (candidate_id, accuracy, noisy_accuracy_mean, \
                     noisy_accuracy_std, noisy_accuracy_p5, accuracy_drop, energy_pj, \
                     mzi_count, depth, params, total_violation, violations, extras, \
                     wall_time_s, worker, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     {NOW_MS})"
                ),
                &[
                    &id,
                    &nan_null(m.accuracy),
                    &nan_null(m.noisy_accuracy_mean),
                    &nan_null(m.noisy_accuracy_std),
                    &nan_null(m.noisy_accuracy_p5),
                    &nan_null(m.accuracy_drop),
                    &nan_null(m.energy_pj),
                    &row.mzi_count,
                    &row.depth,
                    &row.params,
                    &row.total_violation,
                    &row.violations,
                    &row.extras,
                    &evaluation.wall_time_s,
                    &owner,
                ],
            )
            .at("recording an evaluation")?;
            Ok(())
        })
    }

    pub fn record_failure(
        &mut self,
        id: i64,
        owner: &str,
        failure: Failure,
        reason: &str,
    ) -> Result<()> {
        let state = failure.state();
        self.tx("recording a failure", |tx| {
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE candidates SET state = $3, reason = $4, lease_owner = NULL, \
                         lease_expires = NULL, updated = {NOW_MS}, finished = {NOW_MS} \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2"
                    ),
                    &[&id, &owner, &state.as_str(), &reason],
                )
                .at("recording a failure")?;
            if changed == 0 {
                let now: Option<String> = tx
                    .query_opt(
                        "SELECT reason FROM candidates WHERE id = $1 AND state = $2",
                        &[&id, &state.as_str()],
                    )
                    .at("recording a failure")?
                    .and_then(|r| r.get(0));
                if now.as_deref() == Some(reason) {
                    return Ok(());
                }
                return Err(lease_error(tx, id, owner)?.into());
            }
            Ok(())
        })
    }

    /// On a shared run other processes' live leases are not this process's dead work: the
    /// engine asks for [`Recovery::ExpiredAndCoordinators`]. `AllRunning` is honoured (an
    /// operator who knows every worker is gone).
    pub fn recover(&mut self, scope: Recovery) -> Result<Recovered> {
        let max_attempts = i64::from(self.options.max_attempts);
        self.tx("recovering abandoned work", |tx| {
            recover_in(tx, max_attempts, scope)
        })
    }

    pub fn record_exchange(&mut self, exchange: &Exchange) -> Result<i64> {
        let prompt_tokens = to_i64("prompt_tokens", exchange.prompt_tokens)?;
        let completion_tokens = to_i64("completion_tokens", exchange.completion_tokens)?;
        let latency_ms = to_i64("latency_ms", exchange.latency_ms)?;
        self.tx("logging an LLM exchange", |tx| {
            let r = tx.query_one(
                &format!(
                    "INSERT INTO exchanges (operator, model, prompt, response, prompt_tokens, \
                     completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id, \
                     created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {NOW_MS}) \
                     RETURNING id"
                ),
                &[
                    &exchange.operator,
                    &exchange.model,
                    &exchange.prompt,
                    &exchange.response,
                    &prompt_tokens,
                    &completion_tokens,
                    &exchange.tokens_estimated,
                    &latency_ms,
                    &exchange.outcome,
                    &exchange.candidate_id,
                ],
            );
            match r {
                Ok(r) => Ok(r.get(0)),
                Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    Err(Failed::Store(StoreError::InvalidInput {
                        field: "candidate_id",
                        problem: format!(
                            "exchange names candidate {:?}, which is not in this run",
                            exchange.candidate_id
                        ),
                    }))
                }
                Err(e) => Err(Failed::Pg("logging an LLM exchange", e)),
            }
        })
    }

    pub fn exchanges_for_candidate(&self, id: i64) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("WHERE candidate_id = $1 ORDER BY id", Some(id))
    }

    pub fn exchanges(&self) -> Result<Vec<ExchangeRecord>> {
        self.exchanges_where("ORDER BY id", None)
    }

    fn exchanges_where(&self, clause: &str, id: Option<i64>) -> Result<Vec<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, created, operator, model, prompt, response, prompt_tokens, \
             completion_tokens, tokens_estimated, latency_ms, outcome, candidate_id \
             FROM exchanges {clause}"
        );
        let rows = self.tx("reading the exchange log", |tx| match id {
            Some(id) => tx.query(&sql, &[&id]).at("reading the exchange log"),
            None => tx.query(&sql, &[]).at("reading the exchange log"),
        })?;
        rows.iter()
            .map(|r| {
                Ok(ExchangeRecord {
                    id: r.get(0),
                    created_ms: r.get(1),
                    exchange: Exchange {
                        operator: r.get(2),
                        model: r.get(3),
                        prompt: r.get(4),
                        response: r.get(5),
                        prompt_tokens: to_u64("prompt_tokens", r.get(6))?,
                        completion_tokens: to_u64("completion_tokens", r.get(7))?,
                        tokens_estimated: r.get(8),
                        latency_ms: to_u64("latency_ms", r.get(9))?,
                        outcome: r.get(10),
                        candidate_id: r.get(11),
                    },
                })
            })
            .collect()
    }

    pub fn exchange_totals(&self) -> Result<ExchangeTotals> {
        let r = self.tx("summing the exchange log", |tx| {
            tx.query_one(
                "SELECT count(*), coalesce(sum(prompt_tokens), 0)::bigint, \
                 coalesce(sum(completion_tokens), 0)::bigint, \
                 count(*) FILTER (WHERE tokens_estimated) FROM exchanges",
                &[],
            )
            .at("summing the exchange log")
        })?;
        Ok(ExchangeTotals {
            exchanges: to_u64("exchange count", r.get(0))?,
            prompt_tokens: to_u64("prompt tokens", r.get(1))?,
            completion_tokens: to_u64("completion tokens", r.get(2))?,
            estimated: to_u64("estimated count", r.get(3))?,
        })
    }

    pub fn run_info(&self) -> Result<RunInfo> {
        let r = self.tx("reading the run row", |tx| {
            tx.query_one("SELECT config, seed, created FROM run WHERE id = 1", &[])
                .at("reading the run row")
        })?;
        Ok(RunInfo {
            config: r.get(0),
            seed: r.get::<_, i64>(1) as u64,
            created_ms: r.get(2),
            schema_version: PG_SCHEMA_VERSION,
        })
    }

    pub fn load_archive(&self) -> Result<Vec<CandidateRecord>> {
        self.candidates_where("WHERE c.state = 'done' ORDER BY c.id", None)
    }

    pub fn candidates_in_generation(&self, generation: u32) -> Result<Vec<CandidateRecord>> {
        self.candidates_where(
            "WHERE c.generation = $1 ORDER BY c.id",
            Some(Param::I64(i64::from(generation))),
        )
    }

    pub fn candidates_in_state(&self, state: CandidateState) -> Result<Vec<CandidateRecord>> {
        self.candidates_where(
            "WHERE c.state = $1 ORDER BY c.id",
            Some(Param::Text(state.as_str().to_string())),
        )
    }

    pub fn candidate(&self, id: i64) -> Result<Option<CandidateRecord>> {
        Ok(self
            .candidates_where("WHERE c.id = $1", Some(Param::I64(id)))?
            .into_iter()
            .next())
    }

    pub fn find_by_hash(&self, structural_hash: &str) -> Result<Option<i64>> {
        self.tx("looking up a structural hash", |tx| {
            Ok(tx
                .query_opt(
                    "SELECT id FROM candidates WHERE structural_hash = $1",
                    &[&structural_hash],
                )
                .at("looking up a structural hash")?
                .map(|r| r.get(0)))
        })
    }

    pub fn last_generation(&self) -> Result<Option<u32>> {
        let g: Option<i64> = self.tx("reading the last generation", |tx| {
            Ok(tx
                .query_one("SELECT max(generation) FROM candidates", &[])
                .at("reading the last generation")?
                .get(0))
        })?;
        g.map(|g| to_u32("generation", g)).transpose()
    }

    pub fn counts_by_state(&self) -> Result<StateCounts> {
        let rows = self.tx("counting candidates", |tx| {
            tx.query("SELECT state, count(*) FROM candidates GROUP BY state", &[])
                .at("counting candidates")
        })?;
        let mut counts = StateCounts::default();
        for r in rows {
            let state: CandidateState = r.get::<_, String>(0).parse()?;
            *counts.slot(state) = u64::try_from(r.get::<_, i64>(1)).unwrap_or(0);
        }
        Ok(counts)
    }

    fn candidates_where(&self, clause: &str, param: Option<Param>) -> Result<Vec<CandidateRecord>> {
        let sql = format!("{CANDIDATE_SELECT} {clause}");
        let rows = self.tx("reading candidates", |tx| match &param {
            Some(Param::I64(v)) => tx.query(&sql, &[v]).at("reading candidates"),
            Some(Param::Text(v)) => tx.query(&sql, &[v]).at("reading candidates"),
            None => tx.query(&sql, &[]).at("reading candidates"),
        })?;
        rows.iter().map(read_candidate).collect()
    }

    /// As [`SqliteStore::record_test_scores`].
    pub fn record_test_scores(&mut self, id: i64, t: &TestScores) -> Result<()> {
        self.tx("recording test-split scores", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO test_scores (candidate_id, accuracy, noisy_accuracy_mean, \
                     noisy_accuracy_std, noisy_accuracy_p5, created) \
                     SELECT $1, $2, $3, $4, $5, {NOW_MS} FROM candidates \
                     WHERE id = $1 AND state = 'done' \
                     ON CONFLICT (candidate_id) DO UPDATE SET accuracy = EXCLUDED.accuracy, \
                     noisy_accuracy_mean = EXCLUDED.noisy_accuracy_mean, \
                     noisy_accuracy_std = EXCLUDED.noisy_accuracy_std, \
                     noisy_accuracy_p5 = EXCLUDED.noisy_accuracy_p5, created = EXCLUDED.created"
                ),
                &[
                    &id,
                    &t.accuracy,
                    &t.noisy_accuracy_mean,
                    &t.noisy_accuracy_std,
                    &t.noisy_accuracy_p5,
                ],
            )
            .at("recording test-split scores")?;
            Ok(())
        })
    }

    pub fn test_scores(&self) -> Result<std::collections::HashMap<i64, TestScores>> {
        let rows = self.tx("reading test-split scores", |tx| {
            tx.query(
                "SELECT candidate_id, accuracy, noisy_accuracy_mean, noisy_accuracy_std, \
                 noisy_accuracy_p5 FROM test_scores",
                &[],
            )
            .at("reading test-split scores")
        })?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    TestScores {
                        accuracy: r.get(1),
                        noisy_accuracy_mean: r.get(2),
                        noisy_accuracy_std: r.get(3),
                        noisy_accuracy_p5: r.get(4),
                    },
                )
            })
            .collect())
    }

    /// Stores what a worker needs to rebuild the search (once; later calls replace it).
    pub fn set_source(&mut self, source: &RunSource) -> Result<()> {
        let doc = json_text("run source", source)?;
        self.tx("storing the run's source", |tx| {
            tx.execute(
                "INSERT INTO run_source (id, doc) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
                &[&doc],
            )
            .at("storing the run's source")?;
            Ok(())
        })
    }

    pub fn source(&self) -> Result<Option<RunSource>> {
        let doc: Option<String> = self.tx("reading the run's source", |tx| {
            Ok(tx
                .query_opt("SELECT doc FROM run_source WHERE id = 1", &[])
                .at("reading the run's source")?
                .map(|r| r.get(0)))
        })?;
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|e| StoreError::BadRow {
                detail: format!("run source: {e}"),
            })
        })
        .transpose()
    }

    /// Marks the run finished (the coordinator is done): idle workers leave at once.
    pub fn set_finished(&mut self, finished: bool) -> Result<()> {
        self.tx("marking the run finished", |tx| {
            tx.execute(
                &format!("UPDATE run SET finished = CASE WHEN $1 THEN {NOW_MS} END WHERE id = 1"),
                &[&finished],
            )
            .at("marking the run finished")?;
            Ok(())
        })
    }

    /// Caps the evaluations claimed in all (`None`: no cap). The coordinator sets its
    /// budget, so workers do not evaluate queued candidates the search will not use.
    pub fn set_budget(&mut self, budget: Option<u64>) -> Result<()> {
        let budget = budget.map(|b| to_i64("budget", b)).transpose()?;
        self.tx("recording the run's budget", |tx| {
            tx.execute("UPDATE run SET budget = $1 WHERE id = 1", &[&budget])
                .at("recording the run's budget")?;
            Ok(())
        })
    }

    pub fn is_finished(&self) -> Result<bool> {
        self.tx("reading the run row", |tx| {
            Ok(tx
                .query_one("SELECT finished IS NOT NULL FROM run WHERE id = 1", &[])
                .at("reading the run row")?
                .get(0))
        })
    }

    /// Makes `me` the run's one coordinator: a session advisory lock (released by the
    /// server when this connection ends, however the process died) plus a row naming it.
    pub fn acquire_writer(&mut self, me: &Writer) -> Result<()> {
        self.lock_coordinator(me)?;
        self.coordinator = Some(me.clone());
        Ok(())
    }

    fn lock_coordinator(&self, me: &Writer) -> Result<()> {
        let mut client = self.client.borrow_mut();
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                &[&LOCK_SPACE],
            )
            .map_err(pg("taking the run's coordinator lock"))?
            .get(0);
        if !got {
            let holder = client
                .query_opt(
                    "SELECT pid, host, since, process_start FROM coordinator WHERE id = 1",
                    &[],
                )
                .map_err(pg("reading the run's coordinator"))?
                .map(|r| writer_of(&r));
            return Err(StoreError::CoordinatorBusy {
                run: self.target.shown.clone(),
                holder,
            });
        }
        client
            .execute(
                "INSERT INTO coordinator (id, pid, host, since, process_start) \
                 VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, \
                 host = EXCLUDED.host, since = EXCLUDED.since, \
                 process_start = EXCLUDED.process_start",
                &[
                    &i64::from(me.pid),
                    &me.host,
                    &me.since_ms,
                    &me.process_start,
                ],
            )
            .map_err(pg("recording the run's coordinator"))?;
        Ok(())
    }

    pub fn release_writer(&mut self, me: &Writer) -> Result<()> {
        if self.coordinator.as_ref() != Some(me) {
            return Ok(());
        }
        self.coordinator = None;
        let mut client = self.client.borrow_mut();
        client
            .execute(
                "DELETE FROM coordinator WHERE id = 1 AND pid = $1 AND host = $2",
                &[&i64::from(me.pid), &me.host],
            )
            .map_err(pg("giving the run up"))?;
        client
            .query_one(
                "SELECT pg_advisory_unlock($1, hashtext(current_schema()))",
                &[&LOCK_SPACE],
            )
            .map_err(pg("giving the run up"))?;
        Ok(())
    }

    /// The coordinator holding the run, if one does (its lock is live).
    pub fn writer(&self) -> Result<Option<Writer>> {
        self.tx("reading the run's coordinator", |tx| {
            let held: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                     AND granted AND classid = $1::int::oid \
                     AND objid = hashtext(current_schema())::oid AND objsubid = 2 \
                     AND database = (SELECT oid FROM pg_database \
                                     WHERE datname = current_database()))",
                    &[&LOCK_SPACE],
                )
                .at("reading the run's coordinator")?
                .get(0);
            if !held {
                return Ok(None);
            }
            Ok(tx
                .query_opt(
                    "SELECT pid, host, since, process_start FROM coordinator WHERE id = 1",
                    &[],
                )
                .at("reading the run's coordinator")?
                .map(|r| writer_of(&r)))
        })
    }

    /// The server's process ids of this store's connection (tests terminate it).
    pub fn backend_pid(&self) -> Result<i32> {
        self.tx("reading the backend pid", |tx| {
            Ok(tx
                .query_one("SELECT pg_backend_pid()", &[])
                .at("reading the backend pid")?
                .get(0))
        })
    }
}

enum Param {
    I64(i64),
    Text(String),
}

fn writer_of(r: &Row) -> Writer {
    Writer {
        pid: r.get::<_, i64>(0) as u32,
        host: r.get(1),
        since_ms: r.get(2),
        process_start: r.get(3),
    }
}

fn connect(target: &PgTarget, create_schema: bool) -> Result<Client> {
    let mut client = target
        .config
        .connect(NoTls)
        .map_err(|e| StoreError::CannotConnect {
            run: target.shown.clone(),
            detail: e.to_string(),
        })?;
    if let Some(schema) = &target.schema {
        // The name was checked to be a plain identifier in `PgTarget::parse`.
        let mut sql = String::new();
        if create_schema {
            sql.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; "));
        }
        sql.push_str(&format!("SET search_path TO {schema}"));
        client
            .batch_execute(&sql)
            .map_err(pg("choosing the run's schema"))?;
    }
    Ok(client)
}

fn migrate(tx: &mut Transaction<'_>, from: i32) -> Result<()> {
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        tx.batch_execute(sql)
            .map_err(pg("migrating the run's schema"))?;
        tx.execute(
            "INSERT INTO uhc_meta (key, value) VALUES ('application', $1), \
             ('schema_version', $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&APPLICATION, &version.to_string()],
        )
        .map_err(pg("recording the schema version"))?;
    }
    Ok(())
}

fn json_text(field: &'static str, value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidInput {
        field,
        problem: e.to_string(),
    })
}

fn current_state(tx: &mut Transaction<'_>, id: i64) -> PgResult<Option<CandidateState>> {
    let s: Option<String> = tx
        .query_opt("SELECT state FROM candidates WHERE id = $1", &[&id])
        .at("reading a candidate's state")?
        .map(|r| r.get(0));
    Ok(s.map(|s| s.parse()).transpose()?)
}

fn transition_error(tx: &mut Transaction<'_>, id: i64, to: CandidateState) -> PgResult<StoreError> {
    Ok(match current_state(tx, id)? {
        None => StoreError::UnknownCandidate { id },
        Some(from) => StoreError::InvalidTransition { id, from, to },
    })
}

fn lease_error(tx: &mut Transaction<'_>, id: i64, owner: &str) -> PgResult<StoreError> {
    Ok(match current_state(tx, id)? {
        None => StoreError::UnknownCandidate { id },
        Some(state) => StoreError::LeaseLost {
            id,
            owner: owner.to_string(),
            state,
        },
    })
}

fn already_recorded(tx: &mut Transaction<'_>, id: i64, owner: &str) -> PgResult<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM evaluations WHERE candidate_id = $1 AND worker = $2",
            &[&id, &owner],
        )
        .at("recording an evaluation")?
        .is_some())
}

/// Owners of the leases a coordinator takes on its own evaluations.
pub const COORDINATOR_OWNER: &str = "coordinator:";

fn recover_in(tx: &mut Transaction<'_>, max_attempts: i64, scope: Recovery) -> PgResult<Recovered> {
    let all = scope == Recovery::AllRunning;
    let coordinators = scope == Recovery::ExpiredAndCoordinators;
    let rows = tx
        .query(
            &format!(
                "WITH now AS (SELECT {NOW_MS} AS n), \
                 lost AS (SELECT id FROM candidates, now WHERE state = 'running' \
                          AND ($2 OR lease_expires <= now.n \
                               OR ($3 AND starts_with(lease_owner, $4))) \
                          FOR UPDATE OF candidates SKIP LOCKED) \
                 UPDATE candidates c SET \
                   state = CASE WHEN c.attempts < $1 THEN 'queued' ELSE 'failed' END, \
                   reason = CASE WHEN c.attempts < $1 \
                     THEN 'worker lost during attempt ' || c.attempts || '; requeued' \
                     ELSE 'worker lost during attempt ' || c.attempts || ' of ' || $1 \
                          || '; not retried' END, \
                   finished = CASE WHEN c.attempts < $1 THEN c.finished ELSE now.n END, \
                   lease_owner = NULL, lease_expires = NULL, updated = now.n \
                 FROM lost, now WHERE c.id = lost.id RETURNING c.id, c.state"
            ),
            &[&max_attempts, &all, &coordinators, &COORDINATOR_OWNER],
        )
        .at("recovering abandoned work")?;
    let mut recovered = Recovered::default();
    for r in rows {
        let id: i64 = r.get(0);
        if r.get::<_, String>(1) == "queued" {
            recovered.requeued.push(id);
        } else {
            recovered.failed.push(id);
        }
    }
    recovered.requeued.sort_unstable();
    recovered.failed.sort_unstable();
    Ok(recovered)
}

fn read_candidate(r: &Row) -> Result<CandidateRecord> {
    let parents_json: String = r.get(4);
    let evaluation = match r.get::<_, Option<i64>>(17) {
        None => None,
        Some(_) => {
            let float = |i: usize| r.get::<_, Option<f64>>(i).unwrap_or(f64::NAN);
            let violations: String = r.get(27);
            let extras: String = r.get(28);
            Some(EvaluationRecord {
                metrics: Metrics {
                    accuracy: float(18),
                    noisy_accuracy_mean: float(19),
                    noisy_accuracy_std: float(20),
                    noisy_accuracy_p5: float(21),
                    accuracy_drop: float(22),
                    energy_pj: float(23),
                    mzi_count: r
                        .get::<_, Option<i64>>(24)
                        .map(|v| to_u64("mzi_count", v))
                        .transpose()?,
                    depth: to_u64("depth", r.get(25))?,
                    params: to_u64("params", r.get(26))?,
                    violations: parse_json("violations", &violations)?,
                    extras: parse_json("extras", &extras)?,
                },
                wall_time_s: r.get(29),
                worker: r.get(30),
                recorded_ms: r.get(31),
            })
        }
    };
    Ok(CandidateRecord {
        id: r.get(0),
        text: r.get(1),
        canonical_text: r.get(2),
        structural_hash: r.get(3),
        parents: parse_json("parents", &parents_json)?,
        operator: r.get(5),
        generation: to_u32("generation", r.get(6))?,
        state: r.get::<_, String>(7).parse()?,
        diagnostics: r.get(8),
        reason: r.get(9),
        attempts: to_u32("attempts", r.get(10))?,
        lease_owner: r.get(11),
        lease_expires_ms: r.get(12),
        created_ms: r.get(13),
        updated_ms: r.get(14),
        started_ms: r.get(15),
        finished_ms: r.get(16),
        evaluation,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::BadRow {
        detail: format!("{field} {text:?}: {e}"),
    })
}

/// A throwaway schema on a real server, dropped (with everything in it) on drop: what the
/// tests and the distributed bench run in, so that runs in parallel never meet.
#[derive(Debug)]
pub struct PgScratch {
    base: String,
    pub schema: String,
}

impl PgScratch {
    /// The variable that names the test server; tests that need one are skipped (and say
    /// so) without it.
    pub const ENV: &'static str = "UHC_TEST_POSTGRES_URL";

    /// A fresh schema on the server `UHC_TEST_POSTGRES_URL` names, or `None` (with a line
    /// on stderr saying the test `what` was skipped) when the variable is not set.
    pub fn from_env(what: &str) -> Option<PgScratch> {
        match std::env::var(Self::ENV) {
            Ok(url) if !url.is_empty() => Some(PgScratch::new(&url)),
            _ => {
                eprintln!("skipped: {what} needs PostgreSQL; set {} (e.g. postgres://root@127.0.0.1/test)", Self::ENV);
                None
            }
        }
    }

    /// A fresh, uniquely named schema on the server at `base` (created on first use).
    pub fn new(base: &str) -> PgScratch {
        use std::sync::atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!(
            "uhc_t_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, AtomicOrdering::SeqCst)
        );
        PgScratch {
            base: base.to_string(),
            schema,
        }
    }

    /// The run's URL: the base with `schema=` added.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={}", self.base, self.schema)
    }

    pub fn location(&self) -> Location {
        Location::parse(&self.url()).expect("a scratch URL parses")
    }

    /// A plain connection to the server (no schema chosen), for what tests do behind the
    /// store's back.
    pub fn admin(&self) -> Client {
        let t = PgTarget::parse(&self.base).expect("the test URL parses");
        t.config
            .connect(NoTls)
            .expect("the test server accepts connections")
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        if let Ok(t) = PgTarget::parse(&self.base) {
            if let Ok(mut c) = t.config.connect(NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
            }
        }
    }
}
