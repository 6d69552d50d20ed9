//! The values the store reads and writes: candidates, their states, evaluations.

use super::*;

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
    /// The operator that produced it (e.g. "llm_mutate", "seed").
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
    pub(super) fn state(self) -> CandidateState {
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
    /// Expired ones, and those a coordinator leased itself (owner `coordinator:…`): a
    /// coordinator that holds the run knows every earlier coordinator is gone.
    ExpiredAndCoordinators,
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

    pub(super) fn slot(&mut self, state: CandidateState) -> &mut u64 {
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

/// The `run` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub config: String,
    pub seed: u64,
    pub created_ms: i64,
    pub schema_version: i32,
}

/// What a worker needs to rebuild a run's search with nothing but the store: the search
/// file's text, every file it `use`s (as the resolver answered), and the versions that
/// made the run. A worker of another uhc or standard library refuses the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSource {
    /// The search file's name as the coordinator was given it.
    pub file: String,
    pub text: String,
    /// The `search` item's name.
    pub search: String,
    /// Every `use` the compiler resolved: importer, path as written, canonical name, text.
    pub uses: Vec<UsedFile>,
    /// The operator mix (the identity includes it).
    pub operators: Vec<(String, f64)>,
    /// `CARGO_PKG_VERSION` of the coordinator's uhc.
    pub uhc_version: String,
    /// Hash of the standard library compiled into the coordinator's uhc.
    pub stdlib_hash: String,
}

/// One resolved `use`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedFile {
    pub importer: String,
    pub path: String,
    pub name: String,
    pub text: String,
}
