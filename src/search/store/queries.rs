//! Reads: the run row, candidates, the archive, counts.

use super::*;

impl SqliteStore {
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
