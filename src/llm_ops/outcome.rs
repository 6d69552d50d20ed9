//! What one call of an LLM operator came to. It is written to the exchange log as text
//! (`Display`) and read back through the same type (`FromStr`), by the tally and by replay,
//! so the format has one definition: `[repair:][fixed:]ok|duplicate`,
//! `[repair:]invalid:<reason>`, `[repair:]no_program`, `[repair:]error:<kind>`, and
//! `notes` / `notes:error:<kind>` for design-notes calls.

use std::fmt;

/// The reply's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Compiled, and a design the run did not have.
    Ok,
    /// Compiled, but a copy of a design already proposed.
    Duplicate,
    /// Did not compile; the reason (a diagnostic code such as `uh::check::ports`).
    Invalid(String),
    /// No `.uh` program could be found in the reply.
    NoProgram,
    /// No reply: the call failed (`timeout`, `http_error:429`, …).
    Error(String),
    /// A design-notes call that answered.
    Notes,
    /// A design-notes call that failed, with the failure's kind.
    NotesError(String),
}

/// A call's outcome: its verdict, whether it was a repair round, and whether the
/// compiler's own fixes made it valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    pub repair: bool,
    pub fixed: bool,
    pub reply: Reply,
}

impl CallOutcome {
    pub fn new(repair: bool, reply: Reply) -> CallOutcome {
        CallOutcome {
            repair,
            fixed: false,
            reply,
        }
    }

    /// The call got no reply (the request failed).
    pub fn failed(&self) -> bool {
        matches!(self.reply, Reply::Error(_) | Reply::NotesError(_))
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repair {
            f.write_str("repair:")?;
        }
        if self.fixed {
            f.write_str("fixed:")?;
        }
        match &self.reply {
            Reply::Ok => f.write_str("ok"),
            Reply::Duplicate => f.write_str("duplicate"),
            Reply::Invalid(r) => write!(f, "invalid:{r}"),
            Reply::NoProgram => f.write_str("no_program"),
            Reply::Error(k) => write!(f, "error:{k}"),
            Reply::Notes => f.write_str("notes"),
            Reply::NotesError(k) => write!(f, "notes:error:{k}"),
        }
    }
}

/// A stored outcome that is none of the forms above (written by another tool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownOutcome(pub String);

impl std::str::FromStr for CallOutcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<CallOutcome, UnknownOutcome> {
        let (repair, rest) = match s.strip_prefix("repair:") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (fixed, rest) = match rest.strip_prefix("fixed:") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let reply = match rest {
            "ok" => Reply::Ok,
            "duplicate" => Reply::Duplicate,
            "no_program" => Reply::NoProgram,
            "notes" => Reply::Notes,
            _ => {
                if let Some(k) = rest.strip_prefix("notes:error:") {
                    Reply::NotesError(k.to_string())
                } else if let Some(k) = rest.strip_prefix("error:") {
                    Reply::Error(k.to_string())
                } else if let Some(r) = rest.strip_prefix("invalid:") {
                    Reply::Invalid(r.to_string())
                } else {
                    return Err(UnknownOutcome(s.to_string()));
                }
            }
        };
        Ok(CallOutcome {
            repair,
            fixed,
            reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written() {
        let replies = [
            Reply::Ok,
            Reply::Duplicate,
            Reply::Invalid("uh::check::ports".into()),
            Reply::NoProgram,
            Reply::Error("http_error:429".into()),
            Reply::Notes,
            Reply::NotesError("timeout".into()),
        ];
        for reply in replies {
            for (repair, fixed) in [(false, false), (true, false), (false, true), (true, true)] {
                let o = CallOutcome {
                    repair,
                    fixed,
                    reply: reply.clone(),
                };
                let text = o.to_string();
                assert_eq!(text.parse::<CallOutcome>(), Ok(o.clone()), "{text}");
            }
        }
        // The texts stored by earlier versions read as they meant.
        assert_eq!(
            "repair:fixed:duplicate".parse::<CallOutcome>().unwrap(),
            CallOutcome {
                repair: true,
                fixed: true,
                reply: Reply::Duplicate
            }
        );
        assert!("repair:error:timeout"
            .parse::<CallOutcome>()
            .unwrap()
            .failed());
        assert!("notes:error:timeout"
            .parse::<CallOutcome>()
            .unwrap()
            .failed());
        assert!(!"invalid:uh::syntax::parse"
            .parse::<CallOutcome>()
            .unwrap()
            .failed());
        assert!("banana".parse::<CallOutcome>().is_err());
    }
}
