//! Test-split scores of a run's final front. The search selects on the validation split;
//! these rows are written only when the run ends, for the candidates on its final front,
//! and nothing that selects reads them (reports and `uhc eval` show them).

use super::*;

/// A candidate's accuracy on the test split, trained exactly as its evaluation was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestScores {
    pub accuracy: f64,
    pub noisy_accuracy_mean: f64,
    pub noisy_accuracy_std: f64,
    pub noisy_accuracy_p5: f64,
}

/// Stores made before test scores existed gain the table on their first write.
const TABLE: &str = "CREATE TABLE IF NOT EXISTS test_scores (
    candidate_id        INTEGER PRIMARY KEY REFERENCES candidates (id),
    accuracy            REAL NOT NULL,
    noisy_accuracy_mean REAL NOT NULL,
    noisy_accuracy_std  REAL NOT NULL,
    noisy_accuracy_p5   REAL NOT NULL,
    created             INTEGER NOT NULL
) STRICT;";

pub(super) const SCHEMA: &str = TABLE;

impl SqliteStore {
    /// Records (or replaces) a `done` candidate's test-split scores.
    pub fn record_test_scores(&mut self, id: i64, s: &TestScores) -> Result<()> {
        self.write("recording test-split scores", |tx, now| {
            tx.execute_batch(TABLE)
                .ctx("creating the test-score table")?;
            tx.execute(
                "INSERT OR REPLACE INTO test_scores (candidate_id, accuracy, \
                 noisy_accuracy_mean, noisy_accuracy_std, noisy_accuracy_p5, created) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM candidates WHERE id = ?1 AND state = 'done'",
                params![
                    id,
                    s.accuracy,
                    s.noisy_accuracy_mean,
                    s.noisy_accuracy_std,
                    s.noisy_accuracy_p5,
                    now
                ],
            )
            .ctx("recording test-split scores")?;
            Ok(())
        })
    }

    /// Every test-split score recorded, by candidate id (none in a store that has none).
    pub fn test_scores(&self) -> Result<std::collections::HashMap<i64, TestScores>> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'test_scores'",
                [],
                |r| r.get(0),
            )
            .ctx("reading test-split scores")?;
        if !exists {
            return Ok(Default::default());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT candidate_id, accuracy, noisy_accuracy_mean, noisy_accuracy_std, \
                 noisy_accuracy_p5 FROM test_scores",
            )
            .ctx("reading test-split scores")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    TestScores {
                        accuracy: r.get(1)?,
                        noisy_accuracy_mean: r.get(2)?,
                        noisy_accuracy_std: r.get(3)?,
                        noisy_accuracy_p5: r.get(4)?,
                    },
                ))
            })
            .ctx("reading test-split scores")?;
        rows.collect::<rusqlite::Result<_>>()
            .ctx("reading test-split scores")
    }
}
