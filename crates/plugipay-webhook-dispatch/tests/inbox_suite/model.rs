//! A model-based property test: random interleavings of receives,
//! duplicates, workers starting, handlers that succeed, fail, panic, time
//! out or crash their worker — against the real backend, and against a
//! small model of the state machine. The final states must agree.
//!
//! Each event has a script: what its handler does on its 1st, 2nd, … run
//! (`Ok` after the script ends). A `Crash` hangs the handler and its worker
//! is abandoned at once (as a killed process is), so its lease lapses and
//! the next claim counts the attempt. The model:
//!
//! - each run is one attempt; a failure with attempts < max is retried;
//!   with attempts = max the event is dead;
//! - a crash with attempts = max leaves it for the next claim, which makes
//!   it dead without running it (exhaust);
//! - a redelivery of a dead event revives it (attempts reset), and its
//!   script continues;
//! - a transactional handler's row exists exactly when the event is done.
//!
//! With injected store faults (an error at a random transition for a
//! while) the attempts are no longer predictable — a claim that committed
//! and was never answered counts one — so that variant checks what holds
//! whatever the faults: every event ends done or dead, a done event's
//! handler succeeded (its row is there exactly once), a dead one has its
//! error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::inbox::{Inbox, InboxBuilder, SqlValue, State, Workers};
use proptest::prelude::*;

use crate::bed::{unique, At, Bed, Fault, Kind, OwnRedis};
use crate::{deliver, event, quiescent, records, Shared, PAID};

const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Ok,
    Err,
    Panic,
    Timeout,
    Crash,
}

#[derive(Debug, Clone)]
struct Plan {
    /// Per event: its script, and whether it is redelivered once settled.
    events: Vec<(Vec<Step>, bool)>,
    /// Receives in this order (indexes into `events`; repeats are
    /// duplicates, only of events the model says never die).
    receives: Vec<usize>,
    /// How many workers (each alone in its group, so a crash takes one).
    workers: usize,
    /// After how many receives the workers start.
    start_after: usize,
    /// An injected fault: (transition, after how many receives).
    fault: Option<(usize, usize)>,
}

/// The model: the final state and attempts of a script, from attempts = 0
/// and run `from`; and how many runs it took.
fn predict(script: &[Step], from: usize) -> (State, u32, usize) {
    let mut attempts = 0;
    let mut run = from;
    loop {
        let step = script.get(run).copied().unwrap_or(Step::Ok);
        if attempts >= MAX_ATTEMPTS {
            // Claimed with the attempts exhausted (after a crash).
            return (State::Dead, attempts, run);
        }
        attempts += 1;
        run += 1;
        match step {
            Step::Ok => return (State::Done, attempts, run),
            Step::Err | Step::Panic | Step::Timeout if attempts >= MAX_ATTEMPTS => {
                return (State::Dead, attempts, run)
            }
            Step::Err | Step::Panic | Step::Timeout | Step::Crash => {}
        }
    }
}

/// The final state after the whole plan: settled, then a redelivery.
fn predict_event(script: &[Step], redeliver: bool) -> (State, u32) {
    let (state, attempts, runs) = predict(script, 0);
    if state == State::Dead && redeliver {
        let (state, attempts, _) = predict(script, runs);
        return (state, attempts);
    }
    (state, attempts)
}

fn step() -> impl Strategy<Value = Step> {
    // Weighted so that scripts reach the maximum attempts often, by
    // failures and by crashes (the exhaust rule), within a few cases.
    prop_oneof![
        2 => Just(Step::Ok),
        2 => Just(Step::Err),
        1 => Just(Step::Panic),
        1 => Just(Step::Timeout),
        2 => Just(Step::Crash),
    ]
}

fn plan(faults: bool) -> impl Strategy<Value = Plan> {
    let events = prop::collection::vec((prop::collection::vec(step(), 0..7), any::<bool>()), 1..5);
    (events, 1..3usize, any::<u64>(), any::<bool>()).prop_map(
        move |(events, workers, seed, fault)| {
            // Receives: each event once, plus duplicates of the ones that never
            // die, in an order drawn from the seed.
            let mut receives: Vec<usize> = (0..events.len()).collect();
            for (i, (script, _)) in events.iter().enumerate() {
                if predict(script, 0).0 == State::Done && seed.rotate_left(i as u32) % 3 == 0 {
                    receives.push(i);
                }
            }
            let mut x = seed | 1;
            for i in (1..receives.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                receives.swap(i, (x % (i as u64 + 1)) as usize);
            }
            // A duplicate placed before its first delivery is that delivery.
            let start_after = (seed % (receives.len() as u64 + 1)) as usize;
            let fault = (faults && fault).then(|| {
                (
                    (seed >> 8) as usize % 3,
                    (seed >> 16) as usize % receives.len(),
                )
            });
            Plan {
                events,
                receives,
                workers,
                start_after,
                fault,
            }
        },
    )
}

/// Worker groups of one worker each; a group whose handler crashed is
/// abandoned at once (its lease lapses) and replaced — by a healer task
/// the crashing handler wakes, before any handler timeout could fire.
struct Pool {
    groups: Vec<(Workers, Arc<AtomicBool>)>,
    make: Box<dyn Fn(Arc<AtomicBool>) -> Inbox + Send + Sync>,
}

impl Pool {
    fn grow(&mut self, n: usize) {
        while self.groups.len() < n {
            let crashed = Arc::new(AtomicBool::new(false));
            let inbox = (self.make)(crashed.clone());
            self.groups.push((inbox.start_workers(1), crashed));
        }
    }

    /// Abandons crashed groups and starts fresh ones in their place.
    async fn heal(&mut self) {
        let n = self.groups.len();
        let mut kept = Vec::new();
        for (workers, crashed) in self.groups.drain(..) {
            if crashed.load(Ordering::SeqCst) {
                workers.shutdown(Duration::ZERO).await;
            } else {
                kept.push((workers, crashed));
            }
        }
        self.groups = kept;
        self.grow(n);
    }

    async fn stop(self) {
        for (workers, _) in self.groups {
            workers.shutdown(Duration::ZERO).await;
        }
    }
}

fn inbox_for(
    bed: &Arc<Bed>,
    scripts: Arc<HashMap<String, Vec<Step>>>,
    runs: Arc<Mutex<HashMap<String, usize>>>,
    crashed: Arc<AtomicBool>,
    crash: Arc<tokio::sync::Notify>,
) -> Inbox {
    let b: InboxBuilder = Inbox::builder(bed.backend.clone())
        .lease(Duration::from_millis(500))
        .handler_timeout(Duration::from_millis(200))
        .max_attempts(MAX_ATTEMPTS)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .poll_interval(Duration::from_millis(25));
    let next = move |id: &str| -> Step {
        let mut runs = runs.lock().unwrap();
        let n = runs.entry(id.to_owned()).or_default();
        let step = scripts
            .get(id)
            .and_then(|s| s.get(*n))
            .copied()
            .unwrap_or(Step::Ok);
        *n += 1;
        step
    };
    async fn act(
        step: Step,
        crashed: &AtomicBool,
        crash: &tokio::sync::Notify,
    ) -> Result<(), String> {
        match step {
            Step::Ok => Ok(()),
            Step::Err => Err("scripted failure".into()),
            Step::Panic => panic!("scripted panic"),
            Step::Timeout => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            }
            Step::Crash => {
                crashed.store(true, Ordering::SeqCst);
                crash.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }
    let built = if bed.kind.transactional() {
        let insert = format!("INSERT INTO \"{}\" (event_id) VALUES ($1)", bed.ledger);
        b.on_tx(PAID, move |tx, e: WebhookEvent| {
            let (insert, crashed, crash, step) =
                (insert.clone(), crashed.clone(), crash.clone(), next(e.id()));
            Box::pin(async move {
                tx.execute(&insert, &[SqlValue::from(e.id())]).await?;
                act(step, &crashed, &crash).await.map_err(Into::into)
            })
        })
    } else {
        b.on(PAID, move |e: WebhookEvent| {
            let (crashed, crash, step) = (crashed.clone(), crash.clone(), next(e.id()));
            async move {
                act(step, &crashed, &crash)
                    .await
                    .map_err(std::io::Error::other)
            }
        })
    };
    built.build().expect("builds")
}

/// Runs `plan` on a fresh inbox of `kind`; `Err` describes a disagreement.
async fn run_plan(kind: Kind, redis: Option<Arc<OwnRedis>>, plan: Plan) -> Result<(), String> {
    let Some(bed) = Bed::fresh(kind, redis).await else {
        return Ok(());
    };
    let bed = Arc::new(bed);
    let ids: Vec<String> = (0..plan.events.len())
        .map(|i| unique(&format!("m{i}")))
        .collect();
    let scripts: Arc<HashMap<String, Vec<Step>>> = Arc::new(
        ids.iter()
            .cloned()
            .zip(plan.events.iter().map(|(s, _)| s.clone()))
            .collect(),
    );
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = Shared::default();
    let crash = Arc::new(tokio::sync::Notify::new());
    let receiver = inbox_for(
        &bed,
        scripts.clone(),
        runs.clone(),
        Arc::new(AtomicBool::new(false)),
        crash.clone(),
    );
    let (b, s, r, c) = (bed.clone(), scripts.clone(), runs.clone(), crash.clone());
    let pool = Arc::new(tokio::sync::Mutex::new(Pool {
        groups: Vec::new(),
        make: Box::new(move |crashed| inbox_for(&b, s.clone(), r.clone(), crashed, c.clone())),
    }));
    let healer = {
        let (pool, crash) = (pool.clone(), crash.clone());
        tokio::spawn(async move {
            loop {
                crash.notified().await;
                pool.lock().await.heal().await;
            }
        })
    };
    let faults = [At::Claim, At::Done, At::Fail];
    for (n, i) in plan.receives.iter().enumerate() {
        if n == plan.start_after {
            pool.lock().await.grow(plan.workers);
        }
        if let Some((at, after)) = plan.fault {
            if n == after && bed.can(Fault::Error, faults[at]).is_ok() {
                bed.prepare(Fault::Error, faults[at]).await;
                bed.strike(faults[at]).await;
            }
        }
        deliver(&receiver, &event(&ids[*i]), &seen, Duration::from_secs(10)).await;
    }
    pool.lock().await.grow(plan.workers);
    // Settle (healing crashed workers), redeliver, settle again.
    let settled = settle(&receiver, &seen).await;
    if settled.is_ok() {
        for (i, (_, redeliver)) in plan.events.iter().enumerate() {
            if *redeliver {
                deliver(&receiver, &event(&ids[i]), &seen, Duration::from_secs(10)).await;
            }
        }
    }
    let settled = match settled {
        Ok(_) => settle(&receiver, &seen).await,
        Err(e) => Err(e),
    };
    healer.abort();
    let pool = std::mem::replace(
        &mut *pool.lock().await,
        Pool {
            groups: Vec::new(),
            make: Box::new(|_| unreachable!("the run is over")),
        },
    );
    pool.stop().await;
    settled?;
    let records = records(&receiver).await;
    let ledger = bed.ledger().await;
    let mut broken = Vec::new();
    for (i, (script, redeliver)) in plan.events.iter().enumerate() {
        let id = &ids[i];
        let Some(r) = records.iter().find(|r| &r.id == id) else {
            broken.push(format!("{id}: lost"));
            continue;
        };
        let rows = ledger.get(id).copied().unwrap_or(0);
        if bed.kind.transactional() && rows != i64::from(r.state == State::Done) {
            broken.push(format!("{id}: {} with {rows} rows", r.state));
        }
        if plan.fault.is_none() {
            let want = predict_event(script, *redeliver);
            if (r.state, r.attempts) != want {
                broken.push(format!(
                    "{id} {script:?} redeliver={redeliver}: {} after {} attempts, the model says {want:?}",
                    r.state, r.attempts
                ));
            }
        } else {
            match r.state {
                State::Done | State::Dead => {}
                other => broken.push(format!("{id}: left {other}")),
            }
            if r.state == State::Dead && r.last_error.is_none() {
                broken.push(format!("{id}: dead without an error"));
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

/// Until every acknowledged event is terminal (the healer replacing
/// crashed workers meanwhile).
async fn settle(
    receiver: &Inbox,
    seen: &Shared,
) -> Result<Vec<plugipay_webhook_dispatch::inbox::Record>, String> {
    quiescent(receiver, seen, Duration::from_secs(40)).await
}

fn cases() -> u32 {
    std::env::var("PLUGIPAY_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// Runs the property on `kind`, each case on its own runtime.
fn property(kind: Kind, faults: bool) {
    crate::init_logs();
    let needs = match kind {
        Kind::Sqlite => None,
        Kind::Postgres => Some("PLUGIPAY_TEST_POSTGRES_URL"),
        Kind::Redis => Some("PLUGIPAY_TEST_REDIS_URL"),
    };
    if needs.is_some_and(|v| plugipay_webhook_conformance::plumbing::server_url(v).is_none()) {
        return;
    }
    let redis = (kind == Kind::Redis).then(|| Arc::new(OwnRedis::start()));
    let config = ProptestConfig {
        cases: cases(),
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(plan in plan(faults))| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(run_plan(kind, redis.clone(), plan.clone()));
        prop_assert!(result.is_ok(), "{plan:?}: {}", result.unwrap_err());
    });
}

#[test]
fn sqlite_agrees_with_the_model() {
    property(Kind::Sqlite, false);
}

#[test]
fn postgres_agrees_with_the_model() {
    property(Kind::Postgres, false);
}

#[test]
fn redis_agrees_with_the_model() {
    property(Kind::Redis, false);
}

#[test]
fn sqlite_keeps_the_invariants_under_injected_faults() {
    property(Kind::Sqlite, true);
}

#[test]
fn postgres_keeps_the_invariants_under_injected_faults() {
    property(Kind::Postgres, true);
}

#[test]
fn redis_keeps_the_invariants_under_injected_faults() {
    property(Kind::Redis, true);
}

#[test]
fn the_model_itself() {
    use Step::*;
    assert_eq!(predict_event(&[], false), (State::Done, 1));
    assert_eq!(predict_event(&[Err, Err, Ok], false), (State::Done, 3));
    assert_eq!(predict_event(&[Err, Err, Err], false), (State::Dead, 3));
    assert_eq!(
        predict_event(&[Crash, Crash, Crash], false),
        (State::Dead, 3),
        "exhausted at the 4th claim"
    );
    assert_eq!(
        predict_event(&[Crash, Timeout, Panic], true),
        (State::Done, 1),
        "revived: the script goes on"
    );
    assert_eq!(
        predict_event(&[Err, Err, Err, Err, Err, Err], true),
        (State::Dead, 3)
    );
}
