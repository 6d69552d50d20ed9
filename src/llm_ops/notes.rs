//! Design notes: what helped and hurt on this hardware, asked once per generation.

use super::*;

impl LlmProposer {
    pub(super) fn refresh_notes(
        &mut self,
        cx: &SearchContext,
        archive: &[CandidateRecord],
        rng_seed: u64,
    ) {
        let (previous, failures, front) = {
            let s = lock(&self.shared);
            let failures: Vec<String> = s
                .failures
                .iter()
                .map(|f| {
                    format!(
                        "- {} rejected ({}): {}",
                        f.operator,
                        f.reason,
                        cut(f.diagnostics.lines().next().unwrap_or(""), 200)
                    )
                })
                .collect();
            (s.notes.join("\n"), failures.join("\n"), s.front.clone())
        };
        let last_gen = archive.iter().map(|c| c.generation).max().unwrap_or(0);
        let recent: String = archive
            .iter()
            .filter(|c| c.generation == last_gen)
            .take(12)
            .map(|c| format!("- {}\n", prompt::metrics_line(cx, c)))
            .collect();
        let front_text: String = front
            .iter()
            .take(self.settings.front_shown)
            .map(|c| prompt::candidate_block(cx, c))
            .collect();
        let sections = vec![
            prompt::hardware_section(cx),
            prompt::task_section(cx),
            Section::droppable("Previous notes", if previous.is_empty() { "(none yet)".into() } else { previous }, 3),
            Section::droppable("Rejected proposals", if failures.is_empty() { "(none)".into() } else { failures }, 0),
            Section::droppable(format!("Generation {last_gen} results"), recent, 2),
            Section::droppable("Pareto front", front_text, 1),
            Section::keep(
                "Your task",
                "Summarise in at most 10 bullet lines, each starting with `- `, what helped and what hurt on this hardware \
                 (optical depth versus loss, sensitivity to noise, energy, width). Be concrete; no code.",
            ),
        ];
        let system = "You analyse the results of a hardware-aware architecture search for photonic hardware.".to_string();
        let user = prompt::assemble(&sections, system.chars().count(), self.char_budget());
        let mut r = ChatRequest::new(vec![Message::system(system), Message::user(user)])
            .with_seed(rng_seed);
        if let Some(m) = self.settings.max_tokens {
            r = r.with_max_tokens(m);
        }
        let mut buf = Vec::new();
        match self.settings.backend.chat(&r) {
            Ok(c) => {
                self.calibrate(&c.exchange);
                let notes = parse_notes(&c.text);
                self.log(
                    &mut buf,
                    NOTES_OPERATOR,
                    &c.exchange,
                    CallOutcome::new(false, Reply::Notes),
                );
                if !notes.is_empty() {
                    lock(&self.shared).notes = notes;
                }
            }
            Err(f) => {
                self.note_failure(&f.error);
                self.log(
                    &mut buf,
                    NOTES_OPERATOR,
                    &f.exchange,
                    CallOutcome::new(false, Reply::NotesError(error_kind(&f.error))),
                );
            }
        }
        self.pending.extend(buf);
    }
}

/// At most 10 bullet lines of a reply, each at most 240 characters.
pub(super) fn parse_notes(reply: &str) -> Vec<String> {
    let lines: Vec<&str> = reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect();
    let bullet = |l: &str| -> Option<String> {
        let rest = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .or_else(|| l.strip_prefix("• "))
            .or_else(|| {
                let digits = l.chars().take_while(char::is_ascii_digit).count();
                (digits > 0)
                    .then(|| {
                        l[digits..]
                            .strip_prefix(". ")
                            .or_else(|| l[digits..].strip_prefix(") "))
                    })
                    .flatten()
            })?;
        Some(rest.trim().to_string())
    };
    let bullets: Vec<String> = lines.iter().filter_map(|l| bullet(l)).collect();
    let chosen: Vec<String> = if bullets.is_empty() {
        lines.iter().map(|l| l.to_string()).collect()
    } else {
        bullets
    };
    chosen
        .into_iter()
        .filter(|l| !l.is_empty())
        .take(10)
        .map(|l| format!("- {}", cut(&l, 240)))
        .collect()
}
