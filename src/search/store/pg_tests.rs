//! The PostgreSQL store against a real server (`UHC_TEST_POSTGRES_URL`), each test in a
//! schema of its own. Without the variable every test says it was skipped and passes.

use super::tests::{candidate, evaluation_for, TempDir};
use super::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;

fn open(scratch: &PgScratch) -> Store {
    Store::open_or_create_at(&scratch.location(), "cfg", 7, StoreOptions::default())
        .unwrap()
        .0
}

/// A candidate record without the fields that depend on when or where it ran.
fn timeless(mut c: CandidateRecord) -> CandidateRecord {
    c.created_ms = 0;
    c.updated_ms = 0;
    c.started_ms = c.started_ms.map(|_| 0);
    c.finished_ms = c.finished_ms.map(|_| 0);
    c.lease_expires_ms = c.lease_expires_ms.map(|_| 0);
    if let Some(e) = &mut c.evaluation {
        e.recorded_ms = 0;
    }
    c
}

/// The same life story told to both stores: proposals, a duplicate, a rejection, claims,
/// a release, results, a failure, an exchange.
fn story(store: &mut Store) -> Vec<i64> {
    let mut ids = Vec::new();
    for (k, g) in [("a", 0), ("b", 0), ("c", 1), ("d", 1)] {
        ids.push(
            store
                .insert_proposal(&candidate(k, g), &Disposition::Queued)
                .unwrap()
                .id(),
        );
    }
    let dup = store
        .insert_proposal(&candidate("a", 2), &Disposition::Queued)
        .unwrap();
    assert_eq!(
        dup,
        Inserted::Duplicate {
            id: ids[0],
            state: CandidateState::Queued
        }
    );
    let rejected = store
        .insert_proposal(
            &candidate("e", 1),
            &Disposition::Rejected {
                reason: "bad".into(),
                diagnostics: "error[x]".into(),
            },
        )
        .unwrap()
        .id();
    ids.push(rejected);
    let lease = Duration::from_secs(600);
    let first = store.claim_next("w1", lease).unwrap().unwrap();
    assert_eq!((first.id, first.attempts), (ids[0], 1));
    store.heartbeat(first.id, "w1", lease).unwrap();
    assert!(matches!(
        store.heartbeat(first.id, "w2", lease),
        Err(StoreError::LeaseLost { .. })
    ));
    store.release(first.id, "w1").unwrap();
    let again = store.claim_next("w2", lease).unwrap().unwrap();
    assert_eq!(
        (again.id, again.attempts),
        (ids[0], 1),
        "a release is not an attempt"
    );
    store
        .record_evaluation(again.id, "w2", &evaluation_for(again.id))
        .unwrap();
    let second = store.claim_next("w1", lease).unwrap().unwrap();
    store
        .record_failure(second.id, "w1", Failure::Timeout, "slow")
        .unwrap();
    let third = store.claim_next("w1", lease).unwrap().unwrap();
    assert_eq!(third.generation, 1, "oldest generation first");
    store
        .record_evaluation(third.id, "w1", &evaluation_for(third.id))
        .unwrap();
    assert!(matches!(
        store.enqueue(third.id),
        Err(StoreError::InvalidTransition { .. })
    ));
    assert!(matches!(
        store.enqueue(999),
        Err(StoreError::UnknownCandidate { id: 999 })
    ));
    store
        .record_exchange(&Exchange {
            operator: "llm_mutate".into(),
            model: "m".into(),
            prompt: "p".into(),
            response: "r".into(),
            prompt_tokens: 3,
            completion_tokens: 4,
            tokens_estimated: true,
            latency_ms: 5,
            outcome: "ok".into(),
            candidate_id: Some(third.id),
        })
        .unwrap();
    assert!(matches!(
        store.record_exchange(&Exchange {
            operator: "llm_mutate".into(),
            model: "m".into(),
            prompt: "p".into(),
            response: "r".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            tokens_estimated: false,
            latency_ms: 0,
            outcome: "ok".into(),
            candidate_id: Some(12345),
        }),
        Err(StoreError::InvalidInput { .. })
    ));
    ids
}

#[test]
fn postgres_and_sqlite_tell_the_same_story() {
    let Some(scratch) = PgScratch::from_env("postgres_and_sqlite_tell_the_same_story") else {
        return;
    };
    let dir = TempDir::new("pg-story");
    let mut lite =
        Store::create(dir.file("run.sqlite"), "cfg", 7, StoreOptions::default()).unwrap();
    let mut pg = open(&scratch);
    assert!(pg.is_shared() && !lite.is_shared());
    assert_eq!(story(&mut lite), story(&mut pg));
    let all = |s: &Store| -> Vec<CandidateRecord> {
        CandidateState::ALL
            .iter()
            .flat_map(|&st| s.candidates_in_state(st).unwrap())
            .map(timeless)
            .collect()
    };
    assert_eq!(all(&lite), all(&pg));
    let archive = |s: &Store| {
        s.load_archive()
            .unwrap()
            .into_iter()
            .map(timeless)
            .collect::<Vec<_>>()
    };
    assert_eq!(archive(&lite).len(), 2);
    assert_eq!(archive(&lite), archive(&pg));
    assert_eq!(
        lite.counts_by_state().unwrap(),
        pg.counts_by_state().unwrap()
    );
    assert_eq!(
        lite.exchange_totals().unwrap(),
        pg.exchange_totals().unwrap()
    );
    assert_eq!(
        lite.last_generation().unwrap(),
        pg.last_generation().unwrap()
    );
    assert_eq!(
        lite.find_by_hash("c").unwrap(),
        pg.find_by_hash("c").unwrap()
    );
    let (a, b) = (lite.run_info().unwrap(), pg.run_info().unwrap());
    assert_eq!((a.config, a.seed), (b.config, b.seed));
    // The source a worker rebuilds the search from round-trips on both.
    let source = RunSource {
        file: "s.uh".into(),
        text: "search s {}".into(),
        search: "s".into(),
        uses: vec![UsedFile {
            importer: "s.uh".into(),
            path: "lib.uh".into(),
            name: "/x/lib.uh".into(),
            text: "hardware h {}".into(),
        }],
        operators: vec![("mutate".into(), 1.0)],
        uhc_version: "0.1.0".into(),
        stdlib_hash: "h".into(),
    };
    for s in [&mut lite, &mut pg] {
        assert_eq!(s.source().unwrap(), None);
        s.set_source(&source).unwrap();
        assert_eq!(s.source().unwrap(), Some(source.clone()));
    }
}

#[test]
fn postgres_refuses_what_is_not_a_current_run() {
    let Some(scratch) = PgScratch::from_env("postgres_refuses_what_is_not_a_current_run") else {
        return;
    };
    let loc = scratch.location();
    let err = Store::open_at(&loc, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::NoPostgresRun { .. }), "{err}");
    assert!(err.to_string().contains("holds no uhc run"), "{err}");
    drop(open(&scratch));
    let (_, opened) = Store::open_or_create_at(&loc, "cfg", 7, StoreOptions::default()).unwrap();
    assert_eq!(opened, Opened::Resumed);
    let mut admin = scratch.admin();
    admin
        .execute(
            &format!(
                "UPDATE {}.uhc_meta SET value = '99' WHERE key = 'schema_version'",
                scratch.schema
            ),
            &[],
        )
        .unwrap();
    let err = Store::open_at(&loc, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    // A schema of another application.
    let other = PgScratch::new(&std::env::var(PgScratch::ENV).unwrap());
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.accounts (id int)",
            other.schema
        ))
        .unwrap();
    let err =
        Store::open_or_create_at(&other.location(), "c", 1, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::ForeignPostgres { .. }), "{err}");
    // A bad URL and an unreachable server are told apart.
    let err = Location::parse("postgres://root@127.0.0.1/test?schema=Bad-Name").unwrap_err();
    assert!(err.to_string().contains("lower-case"), "{err}");
    let dead = Location::parse("postgres://root@127.0.0.1:1/test").unwrap();
    let err = Store::open_at(&dead, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::CannotConnect { .. }), "{err}");
}

/// Leases run on the server's clock: a zero lease has expired by the next statement, so
/// no test waits for time.
#[test]
fn postgres_leases_expire_and_attempts_are_bounded() {
    let Some(scratch) = PgScratch::from_env("postgres_leases_expire_and_attempts_are_bounded")
    else {
        return;
    };
    let mut store = open(&scratch);
    let id = store
        .insert_proposal(&candidate("x", 0), &Disposition::Queued)
        .unwrap()
        .id();
    for attempt in 1..=3 {
        let c = store
            .claim_next(&format!("w{attempt}"), Duration::ZERO)
            .unwrap()
            .unwrap();
        assert_eq!((c.id, c.attempts), (id, attempt));
        if attempt > 1 {
            assert_eq!(
                c.reason.as_deref(),
                Some(format!("worker lost during attempt {}; requeued", attempt - 1).as_str())
            );
            // The worker that lost it cannot record a result any more.
            let err = store
                .record_evaluation(id, &format!("w{}", attempt - 1), &evaluation_for(id))
                .unwrap_err();
            assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
        }
    }
    // The third lease expires too: out of attempts, the candidate fails with its reason.
    let recovered = store.recover(Recovery::ExpiredLeases).unwrap();
    assert_eq!(recovered.failed, vec![id]);
    let c = store.candidate(id).unwrap().unwrap();
    assert_eq!(c.state, CandidateState::Failed);
    assert_eq!(
        c.reason.as_deref(),
        Some("worker lost during attempt 3 of 3; not retried")
    );
    assert!(c.evaluation.is_none());
    assert!(store.claim_next("w4", Duration::ZERO).unwrap().is_none());
}

/// Eight workers, each on its own connection, drain one queue: no candidate is held by
/// two of them at once, each is evaluated once, and the attempts add up to the claims
/// minus the releases.
#[test]
fn postgres_eight_workers_share_one_queue() {
    let Some(scratch) = PgScratch::from_env("postgres_eight_workers_share_one_queue") else {
        return;
    };
    const N: usize = 160;
    let mut store = open(&scratch);
    for k in 0..N {
        store
            .insert_proposal(
                &candidate(&format!("c{k}"), (k / 40) as u32),
                &Disposition::Queued,
            )
            .unwrap();
    }
    let held: Mutex<HashSet<i64>> = Mutex::new(HashSet::new());
    let released: Mutex<HashSet<i64>> = Mutex::new(HashSet::new());
    let (claims, releases, recorded) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (held, released, loc) = (&held, &released, scratch.location());
                scope.spawn(move || {
                    let mut s = Store::open_at(&loc, StoreOptions::default()).unwrap();
                    let owner = format!("w{w}");
                    let (mut claims, mut releases, mut recorded) = (0, 0, Vec::new());
                    while let Some(c) = s.claim_next(&owner, Duration::from_secs(600)).unwrap() {
                        claims += 1;
                        assert!(held.lock().unwrap().insert(c.id), "{} claimed twice", c.id);
                        assert_eq!(c.lease_owner.as_deref(), Some(owner.as_str()));
                        // About every seventh candidate is handed back once (a worker
                        // shutting down); a release does not count as an attempt.
                        let release =
                            (c.id + w as i64) % 7 == 0 && released.lock().unwrap().insert(c.id);
                        assert!(held.lock().unwrap().remove(&c.id));
                        if release {
                            s.release(c.id, &owner).unwrap();
                            releases += 1;
                        } else {
                            s.record_evaluation(c.id, &owner, &evaluation_for(c.id))
                                .unwrap();
                            recorded.push(c.id);
                        }
                    }
                    (claims, releases, recorded)
                })
            })
            .collect();
        let mut totals = (0, 0, Vec::new());
        for w in workers {
            let (c, r, ids) = w.join().unwrap();
            totals.0 += c;
            totals.1 += r;
            totals.2.extend(ids);
        }
        totals
    });
    let mut unique = recorded.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), N, "every candidate evaluated");
    assert_eq!(recorded.len(), N, "none evaluated twice");
    let archive = store.load_archive().unwrap();
    assert_eq!(archive.len(), N);
    let attempts: u32 = archive.iter().map(|c| c.attempts).sum();
    assert_eq!(attempts as usize, claims - releases);
    assert_eq!(claims, N + releases);
    let mut admin = scratch.admin();
    let evaluations: i64 = admin
        .query_one(
            &format!("SELECT count(*) FROM {}.evaluations", scratch.schema),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(evaluations as usize, N);
}

/// A worker's connection is terminated by the server while its write waits inside a
/// transaction: the store reconnects and repeats the transaction, and the result lands.
#[test]
fn postgres_terminated_connection_reconnects_and_keeps_the_result() {
    let Some(scratch) =
        PgScratch::from_env("postgres_terminated_connection_reconnects_and_keeps_the_result")
    else {
        return;
    };
    let mut store = open(&scratch);
    let id = store
        .insert_proposal(&candidate("t", 0), &Disposition::Queued)
        .unwrap()
        .id();
    let c = store
        .claim_next("w", Duration::from_secs(600))
        .unwrap()
        .unwrap();
    let Store::Postgres(pg) = &store else {
        unreachable!()
    };
    let victim = pg.backend_pid().unwrap();
    // Hold the candidate's row so the worker's recording transaction blocks mid-way.
    let mut admin = scratch.admin();
    let mut blocker = scratch.admin();
    let mut hold = blocker.transaction().unwrap();
    hold.execute(
        &format!(
            "SELECT 1 FROM {}.candidates WHERE id = $1 FOR UPDATE",
            scratch.schema
        ),
        &[&id],
    )
    .unwrap();
    std::thread::scope(|scope| {
        let recording = scope.spawn(|| store.record_evaluation(c.id, "w", &evaluation_for(c.id)));
        // Wait (bounded) until the worker's statement is waiting on the lock, then end
        // its connection from the server side.
        let start = std::time::Instant::now();
        loop {
            let waiting: bool = admin
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 \
                     AND wait_event_type = 'Lock')",
                    &[&victim],
                )
                .unwrap()
                .get(0);
            if waiting {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "worker never blocked"
            );
            std::thread::yield_now();
        }
        let killed: bool = admin
            .query_one("SELECT pg_terminate_backend($1)", &[&victim])
            .unwrap()
            .get(0);
        assert!(killed);
        hold.rollback().unwrap();
        recording.join().unwrap().unwrap();
    });
    let Store::Postgres(pg) = &store else {
        unreachable!()
    };
    assert_ne!(pg.backend_pid().unwrap(), victim, "a new connection");
    let done = store.candidate(id).unwrap().unwrap();
    assert_eq!(done.state, CandidateState::Done);
    assert_eq!(done.evaluation.unwrap().metrics, evaluation_for(id).metrics);
    // Repeating the call after a commit nobody acknowledged is not an error.
    store
        .record_evaluation(id, "w", &evaluation_for(id))
        .unwrap();
    assert_eq!(store.load_archive().unwrap().len(), 1);
}

#[test]
fn postgres_has_one_coordinator_per_run() {
    let Some(scratch) = PgScratch::from_env("postgres_has_one_coordinator_per_run") else {
        return;
    };
    let mut first = open(&scratch);
    let mut second = open(&scratch);
    let me = Writer::this_process();
    assert_eq!(first.writer().unwrap(), None);
    first.acquire_writer(&me).unwrap();
    assert_eq!(second.writer().unwrap(), Some(me.clone()));
    let other = Writer {
        pid: me.pid + 1,
        ..me.clone()
    };
    let err = second.acquire_writer(&other).unwrap_err();
    assert!(matches!(err, StoreError::CoordinatorBusy { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "already has a coordinator (process {} on host",
            me.pid
        )),
        "{err}"
    );
    // A coordinator that dies (its connection closes) leaves the run to the next one.
    drop(first);
    let start = std::time::Instant::now();
    while second.acquire_writer(&other).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "lock never released"
        );
        std::thread::yield_now();
    }
    assert_eq!(second.writer().unwrap(), Some(other.clone()));
    second.release_writer(&other).unwrap();
    assert_eq!(second.writer().unwrap(), None);
}

const KILL_CHILD_ENV: &str = "UHC_PG_KILL_CHILD_URL";

/// A worker killed with SIGKILL while it holds a lease: the candidate returns to the
/// queue when the lease expires, another worker evaluates it, and it is counted once.
#[test]
fn postgres_sigkilled_worker_loses_its_lease_not_the_candidate() {
    use std::process::{Command, Stdio};
    if let Ok(url) = std::env::var(KILL_CHILD_ENV) {
        // Child: claim with a short lease, say so, then "evaluate" until killed (bounded).
        let loc = Location::parse(&url).unwrap();
        let mut s = Store::open_at(&loc, StoreOptions::default()).unwrap();
        let c = s
            .claim_next("doomed", Duration::from_millis(500))
            .unwrap()
            .unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "claimed {}", c.id).unwrap();
        out.flush().unwrap();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    let Some(scratch) =
        PgScratch::from_env("postgres_sigkilled_worker_loses_its_lease_not_the_candidate")
    else {
        return;
    };
    let mut store = open(&scratch);
    let id = store
        .insert_proposal(&candidate("k", 0), &Disposition::Queued)
        .unwrap()
        .id();
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    let name = format!("{module}::postgres_sigkilled_worker_loses_its_lease_not_the_candidate");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(KILL_CHILD_ENV, scratch.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let claimed = BufReader::new(stdout)
        .lines()
        .map_while(|l| l.ok())
        // The harness prints "test NAME ... " on the same line first.
        .find_map(|l| {
            l.rsplit_once("claimed ")
                .map(|(_, n)| n.trim().parse::<i64>().unwrap())
        });
    assert_eq!(claimed, Some(id));
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    // No one else gets it while the lease runs; after it, the next claim does.
    let start = std::time::Instant::now();
    let c = loop {
        if let Some(c) = store
            .claim_next("survivor", Duration::from_secs(600))
            .unwrap()
        {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "lease never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((c.id, c.attempts), (id, 2));
    assert_eq!(
        c.reason.as_deref(),
        Some("worker lost during attempt 1; requeued")
    );
    store
        .record_evaluation(id, "survivor", &evaluation_for(id))
        .unwrap();
    let archive = store.load_archive().unwrap();
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0].evaluation.as_ref().unwrap().worker, "survivor");
    assert!(matches!(
        store.record_evaluation(id, "doomed", &evaluation_for(id)),
        Err(StoreError::LeaseLost { .. })
    ));
}
