//! A candidate's life: proposal, queue, claim under a lease, result, recovery.

use super::*;

impl SqliteStore {
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
        let (state, reason, diagnostics) = disposition_columns(disposition);
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
    // Alone on its file, a restarted process owns every running row.
    let all = scope != Recovery::ExpiredLeases;
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

/// The state, reason and diagnostics a new candidate is stored with.
pub(super) fn disposition_columns(
    disposition: &Disposition,
) -> (CandidateState, Option<&str>, Option<&str>) {
    match disposition {
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
    }
}

/// The non-float columns of an evaluation, checked and converted before writing.
pub(super) struct EvaluationRow {
    pub(super) mzi_count: Option<i64>,
    pub(super) depth: i64,
    pub(super) params: i64,
    pub(super) total_violation: f64,
    pub(super) violations: String,
    pub(super) extras: String,
}

impl EvaluationRow {
    pub(super) fn new(evaluation: &Evaluation) -> Result<Self> {
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
