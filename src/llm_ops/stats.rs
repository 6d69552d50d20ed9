//! What the operators count: validity, novelty and repairs, live and from a stored log.

use super::*;

/// Reads the counters of a running set of operators.
#[derive(Clone)]
pub struct StatsHandle(pub(super) Arc<Mutex<Shared>>);

impl StatsHandle {
    pub fn get(&self) -> LlmStats {
        let s = lock(&self.0);
        tally(
            s.log
                .iter()
                .map(|(op, outcome)| (op.as_str(), outcome.as_str())),
        )
    }
}

/// Validity, novelty and repair counts. A proposal is one first-round call that got a
/// reply, with its follow-up rounds. `valid` means it compiled (a copy of a known design
/// included); `new` means valid and not a copy: only those are worth an evaluation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmStats {
    /// Chat calls, design notes included.
    pub calls: usize,
    /// Calls that got a reply (any round, notes excluded).
    pub replies: usize,
    /// Replies in which a program was found and parsed.
    pub replies_parsed: usize,
    pub proposals: usize,
    /// Proposals whose first reply compiled as written.
    pub valid_first_try: usize,
    /// Proposals whose first reply compiled once the compiler's fixes were applied.
    pub valid_after_fixes: usize,
    /// Proposals invalid after the first round and valid after a follow-up round.
    pub valid_after_repair: usize,
    /// Proposals still invalid after every round.
    pub invalid: usize,
    /// Proposals whose first reply (fixes included) was valid and new.
    pub new_first_round: usize,
    /// Proposals that ended valid and new, in any round.
    pub new_valid: usize,
    /// Replies that compiled to a design already known.
    pub duplicates: usize,
    pub no_program: usize,
    /// Failed calls (HTTP, timeout, malformed reply, budget).
    pub errors: usize,
    pub notes: usize,
    /// Compiler reasons of invalid replies, all rounds.
    pub rejection_reasons: BTreeMap<String, usize>,
}

impl LlmStats {
    /// Fraction of proposals valid on the first reply, as written.
    pub fn first_try_rate(&self) -> f64 {
        self.valid_first_try as f64 / self.proposals.max(1) as f64
    }
    /// Fraction valid after fixes and repair rounds.
    pub fn final_rate(&self) -> f64 {
        (self.valid_first_try + self.valid_after_fixes + self.valid_after_repair) as f64
            / self.proposals.max(1) as f64
    }
    /// Fraction of proposals that were new and valid without a repair round.
    pub fn new_first_round_rate(&self) -> f64 {
        self.new_first_round as f64 / self.proposals.max(1) as f64
    }
    /// Fraction of proposals that ended new and valid.
    pub fn new_rate(&self) -> f64 {
        self.new_valid as f64 / self.proposals.max(1) as f64
    }
    /// Fraction of replies in which a program parsed.
    pub fn parse_rate(&self) -> f64 {
        self.replies_parsed as f64 / self.replies.max(1) as f64
    }
    /// Chat calls per new valid candidate (what an evaluation costs in calls).
    pub fn calls_per_new(&self) -> f64 {
        self.calls as f64 / self.new_valid.max(1) as f64
    }

    /// The summary line: validity and novelty side by side.
    pub fn summary(&self) -> String {
        format!(
            "{} proposals in {} calls: valid on the first reply {:.0}%, after fixes {:.0}%, after repair {:.0}%; \
             new and valid {} ({:.0}%, {:.0}% without a repair round); {} duplicates; replies parsed {:.0}%; \
             {:.2} calls per new candidate; {} failed calls",
            self.proposals,
            self.calls,
            100.0 * self.first_try_rate(),
            100.0 * (self.valid_first_try + self.valid_after_fixes) as f64 / self.proposals.max(1) as f64,
            100.0 * self.final_rate(),
            self.new_valid,
            100.0 * self.new_rate(),
            100.0 * self.new_first_round_rate(),
            self.duplicates,
            100.0 * self.parse_rate(),
            self.calls_per_new(),
            self.errors
        )
    }
}

/// Counts outcomes of an exchange log, given as `(operator, outcome)` in call order; the
/// outcomes are read as [`CallOutcome`]s.
pub fn tally<'a>(log: impl IntoIterator<Item = (&'a str, &'a str)>) -> LlmStats {
    /// The open proposal: its first round's verdicts and how it has ended so far.
    #[derive(Clone, Copy, Default)]
    struct Open {
        first_valid: bool,
        first_fixed: bool,
        first_new: bool,
        any_valid: bool,
        last_new: bool,
    }
    let mut s = LlmStats::default();
    let mut open: Option<Open> = None;
    let close = |s: &mut LlmStats, open: &mut Option<Open>| {
        if let Some(p) = open.take() {
            s.proposals += 1;
            if p.first_valid && !p.first_fixed {
                s.valid_first_try += 1;
            } else if p.first_valid {
                s.valid_after_fixes += 1;
            } else if p.any_valid {
                s.valid_after_repair += 1;
            } else {
                s.invalid += 1;
            }
            s.new_first_round += p.first_new as usize;
            s.new_valid += p.last_new as usize;
        }
    };
    for (op, text) in log {
        s.calls += 1;
        // A row that is not an operator's (another tool's) counts as a failed call.
        let Ok(outcome) = text.parse::<CallOutcome>() else {
            s.errors += 1;
            continue;
        };
        if op == NOTES_OPERATOR {
            if outcome.reply == Reply::Notes {
                s.notes += 1;
            } else {
                s.errors += 1;
            }
            continue;
        }
        let CallOutcome {
            repair,
            fixed,
            reply,
        } = outcome;
        if !repair {
            close(&mut s, &mut open);
        }
        let (valid, new) = match &reply {
            Reply::Error(_) | Reply::NotesError(_) | Reply::Notes => {
                s.errors += 1;
                continue; // no reply: not a proposal, nor a round of one
            }
            Reply::Ok => (true, true),
            Reply::Duplicate => {
                s.duplicates += 1;
                (true, false)
            }
            Reply::NoProgram => {
                s.no_program += 1;
                (false, false)
            }
            Reply::Invalid(reason) => {
                *s.rejection_reasons.entry(reason.clone()).or_default() += 1;
                (false, false)
            }
        };
        s.replies += 1;
        let parsed = match &reply {
            Reply::NoProgram => false,
            Reply::Invalid(r) => !r.starts_with("uh::syntax"),
            _ => true,
        };
        s.replies_parsed += parsed as usize;
        match (&mut open, repair) {
            (None, false) => {
                open = Some(Open {
                    first_valid: valid,
                    first_fixed: fixed,
                    first_new: new,
                    any_valid: valid,
                    last_new: new,
                })
            }
            (Some(p), true) => {
                p.any_valid |= valid;
                p.last_new = new;
            }
            _ => {}
        }
    }
    close(&mut s, &mut open);
    s
}
