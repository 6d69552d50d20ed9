//! One LLM operator: its prompts, the repair loop and the `Proposer` it implements.

use super::*;

pub(super) struct LlmProposer {
    pub(super) kind: Kind,
    pub(super) settings: Arc<Settings>,
    pub(super) shared: Arc<Mutex<Shared>>,
    pub(super) pending: Vec<store::Exchange>,
}

/// The compact style's reply cap, tokens. A seed of the digits search in its fence is 70
/// SmolLM2 tokens, so an arch with some prose around it fits several times over; what a
/// small model writes past that is rambling that costs generation time (SmolLM2-135M's
/// replies ran to 256-470 tokens under the full style's 1 024 cap).
pub const COMPACT_MAX_TOKENS: u32 = 384;

/// An operator's sampling temperature unless the search or a flag sets one. Low
/// temperatures make copies: at 0.2 (SmolLM2's model card value) 44 of 68 first replies
/// of the 135M model were candidates already evaluated. With the decoding grammar
/// keeping replies well-formed, sampling can explore: 0.8-1.0 gave 22 new valid
/// architectures in 28 calls (shared/guide/domain.md). `best_of_n` samples
/// independently from the seeds alone, so it runs hottest; crossover stays closest to
/// its parents.
pub fn default_temperature(operator: &str) -> f64 {
    match operator {
        "best_of_n" => 1.0,
        "llm_crossover" => 0.7,
        _ => 0.8,
    }
}

/// Share of the prompt bound a first-round prompt may use; the rest is kept for a repair
/// round (the refused program and the compiler's diagnostics).
const FIRST_ROUND_SHARE: f64 = 0.75;

const SYSTEM: &str = "You design neural-network architectures for physical photonic hardware, written in the .uh language. \
Reply with exactly one `arch` item inside one ```uh fenced block. Use only the operations listed below and only those the hardware supports.";

/// `s` in at most `max` characters, the marker `\n[...]` included when it is cut.
pub(super) fn cut(s: &str, max: usize) -> String {
    const MARK: &str = "\n[...]";
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max <= MARK.len() {
        return s.chars().take(max).collect();
    }
    let mut t: String = s.chars().take(max - MARK.len()).collect();
    t.push_str(MARK);
    t
}

/// Canonical candidate text: `use` items dropped (the prelude has them), the arch put on
/// the search's hardware and renamed if its name is taken. Unparsable text is returned
/// as is, for the compiler to explain.
fn prepare(cx: &SearchContext, text: &str, names: &HashSet<String>, fresh: &mut u64) -> String {
    let (file, diags) = syntax::parse(FileId(0), text);
    if diags.iter().any(|d| d.is_error()) {
        return text.to_string();
    }
    let mut items: Vec<Item> = file
        .items
        .into_iter()
        .filter(|i| !matches!(i, Item::Use(_)))
        .collect();
    for item in &mut items {
        if let Item::Arch(a) = item {
            a.hardware.name = cx.hardware.name.clone();
            if names.contains(&a.name.name) {
                let base = a.name.name.clone();
                loop {
                    *fresh += 1;
                    let candidate = format!("{base}_v{fresh}");
                    if !names.contains(&candidate) {
                        a.name.name = candidate;
                        break;
                    }
                }
            }
        }
    }
    syntax::print_file(&syntax::File { items })
}

fn arch_name(text: &str) -> Option<String> {
    let (file, _) = syntax::parse(FileId(0), text);
    file.items.into_iter().find_map(|i| match i {
        Item::Arch(a) => Some(a.name.name),
        _ => None,
    })
}

/// The kind of a failed call, as its outcome names it (`timeout`, `http_error:429`, …).
pub(super) fn error_kind(e: &LlmError) -> String {
    match e.outcome() {
        Outcome::HttpError { status } => format!("http_error:{status}"),
        o => o.name().to_string(),
    }
}

impl LlmProposer {
    /// One proposal with its repair rounds; `&self` so a batch can run several at once.
    /// Returns the text to store (the last attempt if none compiled) and the exchanges.
    fn propose_one(
        &self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> (Option<String>, Vec<store::Exchange>) {
        let mut buf = Vec::new();
        if lock(&self.shared).exhausted || parents.len() < self.arity() {
            return (None, buf);
        }
        let op = self.kind.name();
        let (system, user) = self.first_prompt(cx, parents);
        let mut messages = vec![Message::system(system), Message::user(user)];
        let mut last_invalid: Option<String> = None;
        for round in 0..=self.settings.repair_rounds {
            let repair = round > 0;
            let request = self.request(cx, messages.clone(), rng);
            let reply = match self.settings.backend.chat(&request) {
                Ok(c) => {
                    self.calibrate(&c.exchange);
                    c
                }
                Err(f) => {
                    self.note_failure(&f.error);
                    self.log(
                        &mut buf,
                        op,
                        &f.exchange,
                        CallOutcome::new(repair, Reply::Error(error_kind(&f.error))),
                    );
                    return (last_invalid, buf);
                }
            };
            let found = extract::candidates(&reply.text);
            if found.is_empty() {
                self.log(
                    &mut buf,
                    op,
                    &reply.exchange,
                    CallOutcome::new(repair, Reply::NoProgram),
                );
                messages = self.repair_messages(
                    &self.refit(cx, parents, messages),
                    &reply.text,
                    None,
                    "Your reply contained no .uh program.",
                    "",
                    "Reply with one complete `arch` item in one ```uh block.",
                );
                continue;
            }
            let (names, mut fresh) = {
                let s = lock(&self.shared);
                (s.known_names.clone(), s.fresh)
            };
            let mut first_error: Option<(String, String, String)> = None;
            let mut compiled = None;
            let mut fixed = false;
            for cand in &found {
                let text = prepare(cx, &cand.text, &names, &mut fresh);
                match cx.compile_candidate(&text) {
                    Ok(c) => {
                        compiled = Some((text, c.hash));
                        break;
                    }
                    Err(rejection) => {
                        first_error.get_or_insert((
                            text,
                            rejection.reason().to_string(),
                            rejection.diagnostics(),
                        ));
                    }
                }
            }
            // The compiler's own unambiguous fixes before a repair round: free, and what
            // a small model gets wrong most (a typo'd name, a reference to the one unused
            // value, a missing `detect`).
            if compiled.is_none() {
                if let Some((text, ..)) = &first_error {
                    let outcome = crate::fix::fix_with(text, crate::fix::MAX_ROUNDS, |t| {
                        cx.candidate_diagnostics(t)
                    });
                    if !outcome.applied.is_empty() {
                        if let Ok(c) = cx.compile_candidate(&outcome.text) {
                            compiled = Some((outcome.text, c.hash));
                            fixed = true;
                        }
                    }
                }
            }
            lock(&self.shared).fresh = fresh;
            match (compiled, first_error) {
                (Some((text, hash)), _) => {
                    let copied = {
                        let mut s = lock(&self.shared);
                        match s.known_hashes.get(&hash) {
                            Some(known) => Some(known.clone()),
                            None => {
                                s.known_hashes.insert(hash, None);
                                None
                            }
                        }
                    };
                    let duplicate = copied.is_some();
                    let verdict = |reply: Reply| CallOutcome {
                        repair,
                        fixed,
                        reply,
                    };
                    if duplicate && round < self.settings.repair_rounds {
                        self.log(&mut buf, op, &reply.exchange, verdict(Reply::Duplicate));
                        // One line, cheaper than a repair round: which design it copied.
                        let which = match copied.flatten() {
                            Some((id, line)) => {
                                format!("That is candidate #{id}, already evaluated: {line}.")
                            }
                            None => {
                                "That design was already proposed in this generation.".to_string()
                            }
                        };
                        messages = self.repair_messages(
                            &self.refit(cx, parents, messages),
                            &reply.text,
                            Some(&text),
                            &which,
                            "",
                            "Make a different change (other widths, depth or operations) and reply in one ```uh block.",
                        );
                        last_invalid = Some(text);
                        continue;
                    }
                    self.log(
                        &mut buf,
                        op,
                        &reply.exchange,
                        verdict(if duplicate {
                            Reply::Duplicate
                        } else {
                            Reply::Ok
                        }),
                    );
                    if let Some(name) = arch_name(&text) {
                        lock(&self.shared).known_names.insert(name);
                    }
                    return (Some(text), buf);
                }
                (None, Some((text, reason, diagnostics))) => {
                    self.log(
                        &mut buf,
                        op,
                        &reply.exchange,
                        CallOutcome::new(repair, Reply::Invalid(reason.clone())),
                    );
                    {
                        let mut s = lock(&self.shared);
                        s.failures.push_back(Rejected {
                            operator: op,
                            reason: reason.clone(),
                            text: text.clone(),
                            diagnostics: diagnostics.clone(),
                        });
                        while s.failures.len() > self.settings.recent_failures {
                            s.failures.pop_front();
                        }
                    }
                    messages = self.repair_messages(
                        &self.refit(cx, parents, messages),
                        &reply.text,
                        Some(&text),
                        &format!("The compiler rejected it ({reason}):\n"),
                        &diagnostics,
                        "Fix every error and reply with the whole corrected arch in one ```uh block.",
                    );
                    last_invalid = Some(text);
                }
                (None, None) => return (last_invalid, buf),
            }
        }
        // Out of rounds: hand back the last attempt so the engine stores it as rejected
        // (or counts it as a duplicate) with its diagnostics.
        (last_invalid, buf)
    }

    /// A proposal request: a fresh seed per call (servers that honour seeds would
    /// otherwise answer the same prompt the same way), the operator's temperature, the
    /// reply cap, and the decoding grammar where the backend takes one.
    fn request(&self, cx: &SearchContext, messages: Vec<Message>, rng: &mut StdRng) -> ChatRequest {
        let temperature = self
            .settings
            .temperature
            .unwrap_or_else(|| default_temperature(self.kind.name()));
        let mut r = ChatRequest::new(messages)
            .with_seed(rng.random::<u32>() as u64)
            .with_temperature(temperature);
        if let Some(m) = self.settings.max_tokens {
            r = r.with_max_tokens(m);
        }
        if let Some((dialect, text)) = self.grammar(cx) {
            r = r.with_grammar(dialect, text);
        }
        r
    }

    /// The run's decoding grammar in the backend's dialect, built once.
    fn grammar(&self, cx: &SearchContext) -> Option<(Dialect, String)> {
        let dialect = self.settings.backend.grammar_dialect()?;
        let mut s = lock(&self.shared);
        if !matches!(&s.grammar, Some((d, _)) if *d == dialect) {
            let built = ArchGrammar::for_task(&cx.hardware, &cx.task).and_then(|mut g| {
                g.max_layers = self.settings.max_layers;
                g.build()
            });
            s.grammar = Some((dialect, built.map(|g| g.render(dialect))));
        }
        match &s.grammar {
            Some((d, Ok(text))) => Some((*d, text.clone())),
            _ => None,
        }
    }

    pub(super) fn log(
        &self,
        buf: &mut Vec<store::Exchange>,
        operator: &str,
        ex: &Exchange,
        outcome: CallOutcome,
    ) {
        let outcome = outcome.to_string();
        lock(&self.shared)
            .log
            .push((operator.to_string(), outcome.clone()));
        buf.push(to_store(operator, ex, outcome));
    }

    /// Characters per token for estimates: the densest ratio a server reported in this
    /// run, else the configured prior.
    fn chars_per_token(&self) -> f64 {
        lock(&self.shared)
            .chars_per_token
            .unwrap_or(self.settings.chars_per_token)
    }

    /// Characters a whole request may hold: the token bound at the current ratio, capped
    /// by `max_prompt_chars`.
    pub(super) fn char_budget(&self) -> usize {
        prompt::chars_for_tokens(self.settings.max_prompt_tokens, self.chars_per_token())
            .min(self.settings.max_prompt_chars)
    }

    /// Learns the tokenizer's density from a reply's reported usage (estimated usage
    /// teaches nothing). The minimum over the run is kept, so estimates stay on the
    /// long side for every prompt seen.
    pub(super) fn calibrate(&self, ex: &Exchange) {
        if ex.usage.estimated || ex.usage.prompt_tokens == 0 {
            return;
        }
        let ratio = ex.request.content_chars() as f64 / ex.usage.prompt_tokens as f64;
        if ratio.is_finite() && ratio > 0.0 {
            let mut s = lock(&self.shared);
            let ratio = ratio.clamp(0.5, 8.0);
            s.chars_per_token = Some(s.chars_per_token.map_or(ratio, |r| r.min(ratio)));
        }
    }

    /// Characters a first-round prompt may use now.
    fn first_round_budget(&self) -> usize {
        (self.char_budget() as f64 * FIRST_ROUND_SHARE) as usize
    }

    /// The conversation so far, with its first round built again if it no longer fits
    /// (a server reported a denser tokenizer than assumed when it was built); earlier
    /// repair rounds go with it.
    fn refit(
        &self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        messages: Vec<Message>,
    ) -> Vec<Message> {
        let first: usize = messages
            .iter()
            .take(2)
            .map(|m| m.content.chars().count())
            .sum();
        if first <= self.first_round_budget() {
            return messages;
        }
        let (system, user) = self.first_prompt(cx, parents);
        vec![Message::system(system), Message::user(user)]
    }

    /// The messages of a repair round within the budget: the first round (system and
    /// user), the model's last reply and the compiler's answer. Earlier rounds go first,
    /// oldest first, when the bound is reached; then the reply is cut to the program the
    /// compiler refused, and both it and the diagnostics are shortened to fit.
    pub(super) fn repair_messages(
        &self,
        history: &[Message],
        reply: &str,
        program: Option<&str>,
        feedback_head: &str,
        diagnostics: &str,
        feedback_tail: &str,
    ) -> Vec<Message> {
        let budget = self.char_budget();
        let chars = |m: &[Message]| m.iter().map(|m| m.content.chars().count()).sum::<usize>();
        let mut kept: Vec<Message> = history.to_vec();
        let fixed = feedback_head.chars().count() + feedback_tail.chars().count() + 1;
        let diagnostics = cut(diagnostics, self.settings.diagnostics_chars);
        let want = reply.chars().count() + diagnostics.chars().count() + fixed;
        // Drop whole earlier rounds (pairs after the first two messages) while over.
        while kept.len() > 2 && chars(&kept) + want > budget {
            kept.drain(2..4.min(kept.len()));
        }
        let room = budget.saturating_sub(chars(&kept) + fixed);
        let reply = if reply.chars().count() + diagnostics.chars().count() <= room {
            reply.to_string()
        } else {
            let program = program.map_or_else(
                || reply.to_string(),
                |p| format!("```uh\n{}\n```", p.trim()),
            );
            cut(
                &program,
                (room / 2).max(room.saturating_sub(diagnostics.chars().count())),
            )
        };
        let diagnostics = cut(&diagnostics, room.saturating_sub(reply.chars().count()));
        kept.push(Message::assistant(reply));
        kept.push(Message::user(format!(
            "{feedback_head}{diagnostics}\n{feedback_tail}"
        )));
        kept
    }

    /// Marks the run exhausted on budget errors and when a replay has run out.
    pub(super) fn note_failure(&self, e: &LlmError) {
        if e.is_budget_exhausted() || matches!(e, LlmError::Replay { .. }) {
            lock(&self.shared).exhausted = true;
        }
    }

    fn first_prompt(&self, cx: &SearchContext, parents: &[&CandidateRecord]) -> (String, String) {
        let compact = self.settings.style == PromptStyle::Compact;
        let reference = if compact {
            prompt::compact_reference(&cx.hardware, cx.seeds.first().map(String::as_str))
        } else {
            prompt::language_reference()
        };
        let system = format!("{SYSTEM}\n\n{reference}");
        let budget = self.first_round_budget();
        let hardware = if compact {
            prompt::compact_hardware_section(cx)
        } else {
            prompt::hardware_section(cx)
        };
        let (program_chars, diagnostics_chars) = if compact { (800, 400) } else { (1500, 800) };
        let shared = lock(&self.shared);
        let mut sections = vec![hardware, prompt::task_section(cx)];
        let evolving = self.kind != Kind::BestOfN;
        if evolving {
            if !shared.notes.is_empty() {
                sections.push(Section::droppable(
                    "Design notes from earlier generations",
                    shared.notes.join("\n"),
                    100,
                ));
            }
            if !shared.front.is_empty() {
                let front: String = shared
                    .front
                    .iter()
                    .take(self.settings.front_shown)
                    .map(|c| prompt::candidate_block(cx, c))
                    .collect();
                sections.push(Section::droppable("Current Pareto front", front, 50));
            }
            for (i, f) in shared.failures.iter().enumerate() {
                sections.push(Section::droppable(
                    format!("Rejected earlier ({}, {})", f.operator, f.reason),
                    format!(
                        "```uh\n{}\n```\nCompiler said:\n{}",
                        cut(&f.text, program_chars),
                        cut(&f.diagnostics, diagnostics_chars)
                    ),
                    i as u32,
                ));
            }
        }
        let instruction = match self.kind {
            Kind::Mutate => {
                if let Some(p) = parents.first() {
                    sections.push(Section::keep("Parent", prompt::candidate_block(cx, p)));
                    let near = tried_near(&shared.tried, p.id, TRIED_SHOWN);
                    if !near.is_empty() {
                        sections.push(Section::droppable(
                            "Already tried from this parent (do not repeat these)",
                            near,
                            60,
                        ));
                    }
                }
                "Write one new architecture derived from the parent: change a few things (widths, depth, activations, operations) \
                 to improve the objectives on this hardware while meeting the constraints. Give it a new name."
            }
            Kind::Crossover => {
                for (i, p) in parents.iter().enumerate() {
                    sections.push(Section::keep(
                        format!("Parent {}", i + 1),
                        prompt::candidate_block(cx, p),
                    ));
                }
                "Write one new architecture that combines the strengths of the parents (for example the front of one and the \
                 back of the other) to improve the objectives on this hardware while meeting the constraints. Give it a new name."
            }
            Kind::BestOfN => {
                let seeds: String = cx
                    .seeds
                    .iter()
                    .map(|s| format!("```uh\n{}\n```\n", s.trim()))
                    .collect();
                sections.push(Section::keep("Example architectures", seeds));
                "Write one new architecture for this task and hardware that you expect to do well on the objectives while \
                 meeting the constraints. Give it a new name."
            }
        };
        sections.push(Section::keep(
            "Your task",
            format!("{instruction}\nReply with the arch in one ```uh block."),
        ));
        let user = prompt::assemble(&sections, system.chars().count(), budget);
        (system, user)
    }
}

/// Designs listed as "already tried" near a parent.
const TRIED_SHOWN: usize = 8;

/// One line per design already derived from `parent` (newest first), `#id: chain`.
fn tried_near(tried: &HashMap<i64, (Vec<i64>, String)>, parent: i64, max: usize) -> String {
    let mut near: Vec<(&i64, &String)> = tried
        .iter()
        .filter(|(_, (parents, _))| parents.contains(&parent))
        .map(|(id, (_, chain))| (id, chain))
        .collect();
    near.sort_by(|a, b| b.0.cmp(a.0));
    near.iter()
        .take(max)
        .map(|(id, chain)| format!("- #{id}: {chain}\n"))
        .collect()
}

impl Proposer for LlmProposer {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn arity(&self) -> usize {
        match self.kind {
            Kind::Mutate => 1,
            Kind::Crossover => 2,
            Kind::BestOfN => 0,
        }
    }

    fn propose(
        &mut self,
        cx: &SearchContext,
        parents: &[&CandidateRecord],
        rng: &mut StdRng,
    ) -> Option<String> {
        let (text, exchanges) = self.propose_one(cx, parents, rng);
        self.pending.extend(exchanges);
        text
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency
    }

    /// Up to `concurrency` proposals in flight at once, one thread each (the HTTP client
    /// is shared and bounds its own connections). Results come back in job order.
    fn propose_batch(
        &mut self,
        cx: &SearchContext,
        jobs: &[engine::BatchJob<'_>],
    ) -> Vec<(Option<String>, Vec<store::Exchange>)> {
        let this: &LlmProposer = self;
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(this.settings.concurrency.max(1)) {
            let results: Vec<(Option<String>, Vec<store::Exchange>)> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .map(|job| {
                            scope.spawn(move || {
                                let mut rng =
                                    <StdRng as rand::SeedableRng>::seed_from_u64(job.seed);
                                this.propose_one(cx, &job.parents, &mut rng)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            // A proposal that panicked panics here, as it would in line.
                            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
                        })
                        .collect()
                });
            out.extend(results);
        }
        out
    }

    fn observe(&mut self, cx: &SearchContext, archive: &[CandidateRecord]) {
        let (front_idx, _) = engine::front_and_hypervolume(cx, archive);
        let refresh = {
            let mut s = lock(&self.shared);
            for c in archive {
                if let Some(h) = &c.structural_hash {
                    let known = c
                        .evaluation
                        .as_ref()
                        .map(|_| (c.id, prompt::metrics_line(cx, c)));
                    match s.known_hashes.get_mut(h) {
                        Some(slot @ None) => *slot = known,
                        Some(Some(_)) => {}
                        None => {
                            s.known_hashes.insert(h.clone(), known);
                        }
                    }
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = s.tried.entry(c.id) {
                    if let Some(chain) = prompt::chain(&c.text) {
                        slot.insert((c.parents.clone(), chain));
                    }
                }
            }
            if s.known_names.is_empty() || s.notes_key != Some(archive.len()) {
                for c in archive {
                    if let Some(n) = arch_name(&c.text) {
                        s.known_names.insert(n);
                    }
                }
                for seed in &cx.seeds {
                    if let Some(n) = arch_name(seed) {
                        s.known_names.insert(n);
                    }
                }
            }
            let mut front: Vec<CandidateRecord> =
                front_idx.iter().map(|&i| archive[i].clone()).collect();
            if let Some(o) = cx.spec.objectives.first() {
                let key = |c: &CandidateRecord| {
                    c.evaluation
                        .as_ref()
                        .map_or(f64::NAN, |e| engine::metric_value(&e.metrics, o.metric))
                };
                front.sort_by(|a, b| {
                    let (x, y) = (key(a), key(b));
                    let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                    if o.direction == crate::check::model::Direction::Maximize {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
            s.front = front;
            let due = self.settings.design_notes
                && self.kind != Kind::BestOfN
                && !s.exhausted
                && s.notes_key != Some(archive.len());
            if due {
                s.notes_key = Some(archive.len());
            }
            due
        };
        if refresh {
            self.refresh_notes(cx, archive, archive.len() as u64);
        }
    }

    fn drain_exchanges(&mut self) -> Vec<store::Exchange> {
        std::mem::take(&mut self.pending)
    }

    fn exhausted(&self) -> bool {
        lock(&self.shared).exhausted
    }
}
