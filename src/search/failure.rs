//! Why a candidate gets no scores: refused before evaluation ([`Rejection`]) or failed in
//! it ([`EvalError`]). Both are typed so that callers branch on what happened (an LLM
//! repair round, a timeout row, a retry) rather than on message text; the store keeps
//! their one-line reason and message, written here and nowhere else.

use super::store::Failure;
use crate::train::TrainError;

/// Why [`SearchContext::compile_candidate`](super::engine::SearchContext::compile_candidate)
/// refused a candidate. [`reason`](Self::reason) is the one-line code the store keeps
/// (and LLM outcomes carry as `invalid:<reason>`); [`diagnostics`](Self::diagnostics) is
/// the full text an LLM gets back for its repair round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The text is not exactly one `arch` item: `archs` of them and these other items.
    NotOneArch {
        archs: usize,
        others: Vec<&'static str>,
    },
    /// The `arch` names other hardware than the search's.
    OtherHardware {
        arch: String,
        found: String,
        expected: String,
    },
    /// The compiler's diagnostics: the first error's code, and all of them rendered with
    /// the candidate's own line numbers.
    Diagnostics {
        code: &'static str,
        rendered: String,
    },
    /// Checked, but lowering gave no graph for it.
    NotLowered,
}

impl Rejection {
    /// The one-line reason stored with the candidate: a diagnostic code, or `shape`,
    /// `hardware`, `lower` for what is refused before or after the checker.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NotOneArch { .. } => "shape",
            Rejection::OtherHardware { .. } => "hardware",
            Rejection::Diagnostics { code, .. } => code,
            Rejection::NotLowered => "lower",
        }
    }

    /// What the author (a person or an LLM) is told: the rendered diagnostics, or one
    /// sentence saying what to write instead.
    pub fn diagnostics(&self) -> String {
        match self {
            Rejection::NotOneArch { archs: 0, others } if others.is_empty() => {
                "the candidate defines no architecture".into()
            }
            Rejection::NotOneArch { archs, others } => format!(
                "a candidate is exactly one `arch` item (found {archs} arch items and {} other items: {})",
                others.len(),
                others.join(", ")
            ),
            Rejection::OtherHardware {
                arch,
                found,
                expected,
            } => format!(
                "the candidate runs on `{found}`, but this search's hardware is `{expected}`: write `arch {arch} on {expected}`"
            ),
            Rejection::Diagnostics { rendered, .. } => rendered.clone(),
            Rejection::NotLowered => "the candidate could not be lowered".into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.diagnostics(), self.reason())
    }
}

impl std::error::Error for Rejection {}

/// Why an [`Evaluator`](super::engine::Evaluator) returned no scores.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Training or scoring failed; [`TrainError::Deadline`] is the evaluator's own timeout.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The evaluator panicked (caught by the engine, with the panic's message).
    #[error("evaluator panicked: {0}")]
    Panicked(String),
    /// An evaluator other than training failed (a remote service, a test's stand-in).
    #[error("{0}")]
    Failed(String),
}

impl EvalError {
    /// How the store records it: a training run that gave up at the deadline is a
    /// timeout, like an evaluation the engine stopped waiting for; anything else failed.
    pub fn failure(&self) -> Failure {
        match self {
            EvalError::Train(TrainError::Deadline { .. }) => Failure::Timeout,
            _ => Failure::Failed,
        }
    }

    /// The error of a caught panic payload.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        EvalError::Panicked(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_keep_the_stored_reasons_and_say_what_to_write() {
        let none = Rejection::NotOneArch {
            archs: 0,
            others: vec![],
        };
        assert_eq!(none.reason(), "shape");
        assert_eq!(none.diagnostics(), "the candidate defines no architecture");
        let two = Rejection::NotOneArch {
            archs: 2,
            others: vec!["hardware"],
        };
        assert_eq!(
            two.diagnostics(),
            "a candidate is exactly one `arch` item (found 2 arch items and 1 other items: hardware)"
        );
        let hw = Rejection::OtherHardware {
            arch: "a".into(),
            found: "x".into(),
            expected: "y".into(),
        };
        assert_eq!(hw.reason(), "hardware");
        assert!(hw.diagnostics().ends_with("write `arch a on y`"));
        let d = Rejection::Diagnostics {
            code: crate::diag::code::SHAPE,
            rendered: "widths".into(),
        };
        assert_eq!(d.reason(), "uh::check::shape");
        assert_eq!(Rejection::NotLowered.reason(), "lower");
    }

    #[test]
    fn a_deadline_is_stored_as_a_timeout_and_panics_keep_their_message() {
        assert_eq!(
            EvalError::from(TrainError::Deadline { steps: 3 }).failure(),
            Failure::Timeout
        );
        assert_eq!(
            EvalError::from(TrainError::Diverged { epoch: 1 }).failure(),
            Failure::Failed
        );
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        let e = EvalError::from_panic(caught.as_ref());
        assert_eq!(e.to_string(), "evaluator panicked: boom 1");
        assert_eq!(e.failure(), Failure::Failed);
    }
}
