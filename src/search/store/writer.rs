//! One writer per run: the `writer` row and the process it names.

use super::*;

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

    pub(super) fn host_is_this(&self) -> bool {
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
pub(super) fn utc_text(ms: i64) -> String {
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

impl SqliteStore {
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
        let current = writer_row(&tx).ctx("reading the run's writer")?;
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
        writer_row(&self.conn).ctx("reading the run's writer")
    }
}

const SOURCE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS run_source (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)";

impl SqliteStore {
    /// Stores what a worker needs to rebuild the search. The table is created on first use,
    /// as the writer's, so stores of schema version 1 need no migration.
    pub fn set_source(&mut self, source: &RunSource) -> Result<()> {
        let doc = serde_json::to_string(source).map_err(|e| StoreError::InvalidInput {
            field: "run source",
            problem: e.to_string(),
        })?;
        self.write("storing the run's source", |tx, _| {
            tx.execute_batch(SOURCE_TABLE)
                .ctx("creating the source table")?;
            tx.execute(
                "INSERT OR REPLACE INTO run_source (id, doc) VALUES (1, ?1)",
                [doc.as_str()],
            )
            .ctx("storing the run's source")?;
            Ok(())
        })
    }

    /// The run's source, if its coordinator stored one.
    pub fn source(&self) -> Result<Option<RunSource>> {
        let exists: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'run_source'",
                [],
                |r| r.get(0),
            )
            .ctx("reading the schema")?;
        if exists == 0 {
            return Ok(None);
        }
        let doc: Option<String> = self
            .conn
            .query_row("SELECT doc FROM run_source WHERE id = 1", [], |r| r.get(0))
            .optional()
            .ctx("reading the run's source")?;
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|e| StoreError::BadRow {
                detail: format!("run source: {e}"),
            })
        })
        .transpose()
    }
}

/// The run's writer row, if any: one query for taking the run and for reading it.
fn writer_row(conn: &rusqlite::Connection) -> rusqlite::Result<Option<Writer>> {
    conn.query_row(
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
}
