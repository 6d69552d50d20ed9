use super::notes::parse_notes;
use super::*;

#[test]
fn tally_groups_rounds_into_proposals() {
    let log = [
        ("llm_mutate", "ok"),
        ("llm_mutate", "invalid:uh::check::ports"),
        ("llm_mutate", "repair:ok"),
        ("llm_mutate", "no_program"),
        ("llm_mutate", "repair:invalid:uh::syntax::parse"),
        ("llm_mutate", "repair:error:http_error:500"),
        ("llm_notes", "notes"),
        ("llm_crossover", "error:timeout"),
        ("llm_crossover", "duplicate"),
        ("llm_crossover", "repair:duplicate"),
        ("best_of_n", "fixed:ok"),
        ("best_of_n", "duplicate"),
        ("best_of_n", "repair:fixed:ok"),
    ];
    let s = tally(log);
    assert_eq!(s.calls, 13);
    assert_eq!(s.proposals, 6);
    assert_eq!(
        (
            s.valid_first_try,
            s.valid_after_fixes,
            s.valid_after_repair,
            s.invalid
        ),
        (3, 1, 1, 1)
    );
    // New and valid: `ok`, `repair:ok`, `fixed:ok`, `repair:fixed:ok`; without a
    // repair round only the first and the third.
    assert_eq!((s.new_valid, s.new_first_round), (4, 2));
    assert_eq!(
        (s.duplicates, s.no_program, s.errors, s.notes),
        (3, 1, 2, 1)
    );
    // Replies: 10 (13 calls less the two failed and the notes); two did not parse.
    assert_eq!((s.replies, s.replies_parsed), (10, 8));
    assert_eq!(s.rejection_reasons.get("uh::check::ports"), Some(&1));
    assert_eq!(s.rejection_reasons.get("uh::syntax::parse"), Some(&1));
    assert!((s.first_try_rate() - 0.5).abs() < 1e-12);
    assert!((s.final_rate() - 5.0 / 6.0).abs() < 1e-12);
    assert!((s.calls_per_new() - 13.0 / 4.0).abs() < 1e-12);
    assert!(
        s.summary()
            .contains("new and valid 4 (67%, 33% without a repair round)"),
        "{}",
        s.summary()
    );
}

fn proposer(max_prompt_tokens: usize) -> LlmProposer {
    let backend = Arc::new(Replay::new(ReplayMode::ByRequest, []).expect("empty replay"));
    let mut setup = LlmSetup::new(backend).with_style(PromptStyle::Compact);
    setup.max_prompt_tokens = max_prompt_tokens;
    setup.max_prompt_chars = usize::MAX;
    LlmProposer {
        kind: Kind::Mutate,
        settings: Arc::new(Settings::of(&setup).expect("settings")),
        shared: Arc::default(),
        pending: Vec::new(),
    }
}

#[test]
fn cut_never_exceeds_its_bound() {
    let s = "x".repeat(100);
    for max in [0, 3, 6, 7, 50, 99, 100, 200] {
        let c = cut(&s, max);
        assert!(c.chars().count() <= max, "{max}: {}", c.chars().count());
        assert_eq!(c == s, max >= 100);
    }
    assert_eq!(cut(&s, 20), format!("{}\n[...]", "x".repeat(14)));
}

#[test]
fn repair_rounds_stay_under_the_bound_and_keep_the_newest_round() {
    let p = proposer(1000); // 2 000 characters at the prior of 2 per token
    assert_eq!(p.char_budget(), 2000);
    let first = vec![
        Message::system("s".repeat(700)),
        Message::user("u".repeat(800)),
    ];
    let chars = |m: &[Message]| m.iter().map(|m| m.content.chars().count()).sum::<usize>();
    let program = "arch a on m {\n    input x: real[4]\n}";
    let reply = format!("Sure! {}\n```uh\n{program}\n```", "blah ".repeat(40));
    // A round that fits is appended whole: the server can reuse its cached prefix.
    let m1 = p.repair_messages(
        &first,
        &reply,
        Some(program),
        "Rejected:\n",
        "E1 bad",
        "Fix it.",
    );
    assert_eq!(m1.len(), 4);
    assert_eq!(&m1[..2], &first[..]);
    assert_eq!(m1[2].content, reply);
    assert_eq!(m1[3].content, "Rejected:\nE1 bad\nFix it.");
    // The next one would not fit: the older round goes, the new one is kept.
    let m2 = p.repair_messages(
        &m1,
        &reply,
        Some(program),
        "Rejected:\n",
        "E2 worse",
        "Fix it.",
    );
    assert_eq!(m2.len(), 4);
    assert!(m2[3].content.contains("E2 worse") && chars(&m2) <= 2000);
    // Long diagnostics and a long reply: the reply shrinks to the refused program,
    // the diagnostics are cut, the instruction survives.
    let long = "diagnostic line\n".repeat(200);
    let m3 = p.repair_messages(
        &first,
        &"z".repeat(3000),
        Some(program),
        "Rejected:\n",
        &long,
        "Fix it.",
    );
    assert!(chars(&m3) <= 2000, "{}", chars(&m3));
    assert_eq!(m3[2].content, format!("```uh\n{program}\n```"));
    assert!(
        m3[3].content.starts_with("Rejected:\ndiagnostic line")
            && m3[3].content.ends_with("\nFix it.")
    );
    assert!(m3[3].content.contains("[...]"));
    // No program (a reply without code): the reply itself is cut.
    let m4 = p.repair_messages(
        &first,
        &"z".repeat(3000),
        None,
        "No program.",
        "",
        "Write one.",
    );
    assert!(chars(&m4) <= 2000 && m4[2].content.ends_with("[...]"));
}

#[test]
fn reported_usage_sets_the_ratio_to_the_densest_seen() {
    let p = proposer(1000);
    let ex = |chars: usize, tokens: u64, estimated: bool| Exchange {
        model: "m".into(),
        request_key: String::new(),
        request: ChatRequest::new(vec![Message::user("c".repeat(chars))]),
        response_text: Some(String::new()),
        finish_reason: None,
        error: None,
        outcome: Outcome::Ok,
        usage: Usage {
            prompt_tokens: tokens,
            completion_tokens: 1,
            estimated,
        },
        cost: 0.0,
        latency_ms: 0,
        attempts: 1,
        started_unix_ms: 0,
        replayed: false,
    };
    p.calibrate(&ex(3000, 1000, true));
    assert_eq!(p.char_budget(), 2000, "estimated usage teaches nothing");
    p.calibrate(&ex(3000, 1000, false));
    assert_eq!(p.char_budget(), 3000);
    p.calibrate(&ex(4000, 1000, false));
    assert_eq!(p.char_budget(), 3000, "the densest ratio is kept");
    p.calibrate(&ex(2500, 1000, false));
    assert_eq!(p.char_budget(), 2500);
    p.calibrate(&ex(10, 0, false));
    assert_eq!(p.char_budget(), 2500);
}

#[test]
fn notes_keep_at_most_ten_bullets() {
    let reply = format!(
        "Here are my notes:\n{}\n```\ncode\n```",
        (1..=14)
            .map(|i| format!("{i}. point {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let n = parse_notes(&reply);
    assert_eq!(n.len(), 10);
    assert_eq!(n[0], "- point 1");
    let plain = parse_notes("depth hurts\n\nwidth helps");
    assert_eq!(
        plain,
        vec!["- depth hurts".to_string(), "- width helps".to_string()]
    );
    assert!(parse_notes("").is_empty());
}

#[test]
fn stored_rows_replay_as_the_same_exchanges() {
    let request = ChatRequest::new(vec![Message::user("hi")]).with_seed(3);
    let ok = Exchange {
        model: "m".into(),
        request_key: request.key("m"),
        request: request.clone(),
        response_text: Some("reply".into()),
        finish_reason: None,
        error: None,
        outcome: Outcome::Ok,
        usage: Usage {
            prompt_tokens: 5,
            completion_tokens: 7,
            estimated: false,
        },
        cost: 0.0,
        latency_ms: 12,
        attempts: 1,
        started_unix_ms: 0,
        replayed: false,
    };
    let back = to_llm_exchange(&to_store("llm_mutate", &ok, "ok".into())).expect("replayable");
    assert_eq!(back.result(), Ok("reply"));
    assert_eq!(
        (back.request_key, back.usage),
        (ok.request_key.clone(), ok.usage)
    );
    let err = LlmError::Http {
        status: 500,
        body: "boom".into(),
    };
    let failed = Exchange {
        response_text: None,
        outcome: err.outcome(),
        error: Some(err.clone()),
        ..ok
    };
    let row = to_store(
        "llm_mutate",
        &failed,
        CallOutcome::new(false, Reply::Error(error_kind(&err))).to_string(),
    );
    assert_eq!(row.outcome, "error:http_error:500");
    assert_eq!(
        to_llm_exchange(&row).expect("replayable").result(),
        Err(err)
    );
}
