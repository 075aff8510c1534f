//! The table of cases: the state machine's paths, and every (transition ×
//! fault) pair, each with the handler that reaches that transition.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::inbox::{
    current_attempt, AttemptOutcome, Inbox, InboxBuilder, ListFilter, Processed, PruneFilter,
    Record, RetryFilter, SqlValue, State,
};
use plugipay_webhook_dispatch::Outcome;

use crate::bed::{unique, At, Bed, Fault};
use crate::{deliver, event, event_of, invariants, quiescent, records, Shared, PAID, SECRET};

/// An event id and the attempt a handler saw.
type Seen2 = (String, Option<u32>);
/// The tenant and id a handler saw.
type TenantAndId = (Option<String>, String);

pub(crate) enum Ran {
    Passed,
    NotApplicable(&'static str),
}

type Run = Box<dyn Fn(Arc<Bed>) -> Pin<Box<dyn Future<Output = Result<Ran, String>> + Send>>>;

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) run: Run,
}

pub(crate) fn case<F, Fut>(name: impl Into<String>, f: F) -> Case
where
    F: Fn(Arc<Bed>) -> Fut + 'static,
    Fut: Future<Output = Result<Ran, String>> + Send + 'static,
{
    Case {
        name: name.into(),
        run: Box::new(move |bed| Box::pin(f(bed))),
    }
}

/// How a case's handler behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    /// Succeeds (arming a `done` fault first).
    Async,
    /// Writes its ledger row in the inbox's transaction, then succeeds.
    Tx,
    /// Runs past a third of the lease, so the lease is extended meanwhile.
    Long,
    /// Fails its first attempt (arming a `fail` fault first), then succeeds.
    FailFirst,
}

impl Handler {
    fn name(self) -> &'static str {
        match self {
            Handler::Async => "async",
            Handler::Tx => "tx",
            Handler::Long => "long",
            Handler::FailFirst => "fail-first",
        }
    }
}

/// The whole table.
pub(crate) fn all() -> Vec<Case> {
    let mut cases = vec![
        case("store then acknowledge; duplicates", store_then_acknowledge),
        case(
            "retries, dead, a redelivery revives",
            retries_dead_and_revival,
        ),
        case(
            "unknown type skipped, retried after deploy",
            skipped_then_retried,
        ),
        case("retry moves dead and skipped only", retry_scope),
        case(
            "a retry runs when it said, not at the next poll",
            retry_on_time,
        ),
        case(
            "transactional: commit with done, roll back",
            tx_commit_and_rollback,
        ),
        case(
            "a swallowed failed statement is no Done",
            swallowed_statement,
        ),
        case(
            "a handler that ends the transaction itself is no Done",
            handler_ends_transaction,
        ),
        case(
            "a handler's transaction has its session's settings",
            handler_settings,
        ),
        case(
            "a lapsed lease is due from its expiry",
            lapsed_lease_in_due_order,
        ),
        case(
            "a lapsed lease behind 12 live ones",
            lapsed_lease_behind_live_ones,
        ),
        case("a lost lease cancels the handler", lost_lease_cancels),
        case("crashed attempts exhaust to dead", crashes_exhaust_attempts),
        case(
            "a cut-short attempt is in the history",
            cut_short_in_history,
        ),
        case("shutdown finishes in-flight, abandons late", shutdown),
        case("prune: done only, 7-day floor, never dead", prune_scope),
        case("tenants: one id under two tenants is two", tenants_apart),
        case("a NUL in a stored text is 400, nothing stored", nul_in_text),
        case(
            "stats say when a running event's lease lapses",
            lease_lapse_in_stats,
        ),
    ];
    cases.extend(crate::ordering::cases());
    cases.extend(crate::handlers::cases());
    cases.extend(crate::listing::cases());
    for fault in [Fault::Error, Fault::Delay, Fault::Drop] {
        for (at, handler) in [
            (At::Claim, Handler::Tx),
            (At::Done, Handler::Async),
            (At::Done, Handler::Tx),
            (At::Fail, Handler::FailFirst),
            (At::Extend, Handler::Long),
            (At::Commit, Handler::Tx),
        ] {
            cases.push(case(
                format!(
                    "fault: {} at {} ({})",
                    fault.name(),
                    at.name(),
                    handler.name()
                ),
                move |bed| fault_case(bed, fault, at, handler),
            ));
        }
    }
    cases
}

pub(crate) fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// The suite's usual options: short leases and backoffs, so that faults
/// heal within the case.
pub(crate) fn builder(bed: &Bed, seen: &Shared) -> InboxBuilder {
    let seen = seen.clone();
    Inbox::builder(bed.backend.clone())
        .lease(Duration::from_millis(1500))
        .max_attempts(20)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .poll_interval(Duration::from_millis(50))
        .observe(move |id, _ty, processed| {
            if processed == Processed::Done {
                *seen
                    .lock()
                    .unwrap()
                    .done_reports
                    .entry(id.to_owned())
                    .or_default() += 1;
            }
        })
}

fn ran(seen: &Shared, id: &str, ok: bool) {
    let mut s = seen.lock().unwrap();
    if ok {
        *s.ok_runs.entry(id.to_owned()).or_default() += 1;
    } else {
        *s.runs.entry(id.to_owned()).or_default() += 1;
    }
}

fn runs(seen: &Shared, id: &str) -> usize {
    seen.lock().unwrap().runs.get(id).copied().unwrap_or(0)
}

/// `handler` registered for [`PAID`].
fn with_handler(b: InboxBuilder, bed: &Arc<Bed>, seen: &Shared, handler: Handler) -> InboxBuilder {
    let (bed, seen) = (bed.clone(), seen.clone());
    match handler {
        Handler::Tx => {
            let insert = format!("INSERT INTO \"{}\" (event_id) VALUES ($1)", bed.ledger);
            b.on_tx(PAID, move |tx, event| {
                let (bed, seen, insert) = (bed.clone(), seen.clone(), insert.clone());
                Box::pin(async move {
                    ran(&seen, event.id(), false);
                    tx.execute(&insert, &[SqlValue::from(event.id())]).await?;
                    bed.strike(At::Done).await;
                    ran(&seen, event.id(), true);
                    Ok(())
                })
            })
        }
        Handler::Async | Handler::Long | Handler::FailFirst => {
            b.on(PAID, move |event: WebhookEvent| {
                let (bed, seen) = (bed.clone(), seen.clone());
                async move {
                    ran(&seen, event.id(), false);
                    match handler {
                        Handler::Long => {
                            bed.strike(At::Extend).await;
                            tokio::time::sleep(Duration::from_millis(650)).await;
                        }
                        Handler::FailFirst if current_attempt() == Some(1) => {
                            bed.strike(At::Fail).await;
                            return Err(std::io::Error::other("the first attempt fails"));
                        }
                        _ => bed.strike(At::Done).await,
                    }
                    ran(&seen, event.id(), true);
                    Ok(())
                }
            })
        }
    }
}

async fn fault_case(bed: Arc<Bed>, fault: Fault, at: At, handler: Handler) -> Result<Ran, String> {
    if let Err(why) = bed.can(fault, at) {
        return Ok(Ran::NotApplicable(why));
    }
    let handler = if !bed.kind.transactional() && handler == Handler::Tx {
        Handler::Async
    } else {
        handler
    };
    let seen = Shared::default();
    let inbox = with_handler(builder(&bed, &seen), &bed, &seen, handler)
        .build()
        .map_err(|e| e.to_string())?;
    let events: Vec<WebhookEvent> = (0..6).map(|i| event(&unique(&format!("evt{i}")))).collect();
    let workers = if at == At::Claim {
        for e in &events {
            deliver(&inbox, e, &seen, Duration::from_secs(10)).await;
        }
        bed.prepare(fault, at).await;
        bed.strike(at).await;
        inbox.start_workers(2)
    } else {
        bed.prepare(fault, at).await;
        let workers = inbox.start_workers(2);
        for e in &events {
            deliver(&inbox, e, &seen, Duration::from_secs(10)).await;
        }
        workers
    };
    // Until the fault's window is over (one that never struck: now).
    let give_up = Instant::now() + Duration::from_secs(10);
    while bed.window_end().is_none_or(|end| Instant::now() < end) && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = bed.window_end().unwrap_or_else(Instant::now);
    let probe = event(&unique("probe"));
    if !deliver(&inbox, &probe, &seen, Duration::from_secs(15)).await {
        workers.shutdown(Duration::from_secs(5)).await;
        return Err("receive did not recover within 15 s of the fault ending".into());
    }
    let recovered = ended.elapsed();
    let settled = quiescent(&inbox, &seen, Duration::from_secs(30)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    let mut broken = invariants(&bed, &records, &seen, handler == Handler::Tx).await;
    if recovered > Duration::from_secs(5) {
        broken.push(format!(
            "receive recovered {recovered:.1?} after the fault ended"
        ));
    }
    if seen.lock().unwrap().acked.len() < events.len() + 1 {
        broken.push("not every event was acknowledged".into());
    }
    if broken.is_empty() {
        Ok(Ran::Passed)
    } else {
        Err(broken.join("; "))
    }
}

async fn store_then_acknowledge(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = with_handler(builder(&bed, &seen), &bed, &seen, Handler::Async)
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    for _ in 0..3 {
        let outcome = inbox.receive(&ev).await;
        ensure(
            outcome == Outcome::Stored && outcome.status() == 202,
            || format!("answered {outcome:?}"),
        )?;
    }
    ensure(runs(&seen, ev.id()) == 0, || {
        "a handler ran before the workers".into()
    })?;
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    ensure(stats.count(State::Pending) == 1, || {
        format!("duplicates added rows: {stats:?}")
    })?;
    seen.lock().unwrap().acked.insert(ev.id().to_owned());
    let workers = inbox.start_workers(2);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    ensure(runs(&seen, ev.id()) == 1, || "not processed once".into())?;
    ensure(records[0].state == State::Done, || {
        format!("{}", records[0].state)
    })?;
    // A listing carries no body; the event's own record does, unchanged.
    ensure(records[0].body.is_empty(), || {
        "a listing read the body".into()
    })?;
    let whole = inbox.get(ev.id()).await.map_err(|e| e.to_string())?;
    ensure(
        whole.len() == 1 && whole[0].body == ev.raw_body().clone(),
        || "the bytes changed".into(),
    )?;
    let broken = invariants(&bed, &records, &seen, false).await;
    ensure(broken.is_empty(), || broken.join("; "))?;
    Ok(Ran::Passed)
}

async fn retries_dead_and_revival(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let attempts: Arc<Mutex<Vec<Seen2>>> = Arc::default();
    let a = attempts.clone();
    let inbox = builder(&bed, &seen)
        .max_attempts(3)
        .on(PAID, move |e: WebhookEvent| {
            let a = a.clone();
            async move {
                a.lock()
                    .unwrap()
                    .push((e.id().to_owned(), current_attempt()));
                if e.id().starts_with("flaky") && current_attempt() == Some(3) {
                    return Ok(());
                }
                Err(std::io::Error::other("downstream unavailable"))
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let (flaky, broken) = (event(&unique("flaky")), event(&unique("broken")));
    deliver(&inbox, &flaky, &seen, Duration::from_secs(5)).await;
    deliver(&inbox, &broken, &seen, Duration::from_secs(5)).await;
    let workers = inbox.start_workers(2);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(15)).await;
    let records = match settled {
        Ok(r) => r,
        Err(e) => {
            workers.shutdown(Duration::ZERO).await;
            return Err(e);
        }
    };
    let of = |id: &str| records.iter().find(|r| r.id == id).cloned();
    let flaky_attempts: Vec<Option<u32>> = attempts
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id == flaky.id())
        .map(|(_, a)| *a)
        .collect();
    ensure(flaky_attempts == [Some(1), Some(2), Some(3)], || {
        format!("attempts seen {flaky_attempts:?}")
    })?;
    let dead = of(broken.id()).ok_or("broken lost")?;
    ensure(dead.state == State::Dead && dead.attempts == 3, || {
        format!("{} after {} attempts", dead.state, dead.attempts)
    })?;
    ensure(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("downstream unavailable")),
        || format!("last error {:?}", dead.last_error),
    )?;
    // A redelivery revives the dead one (three fresh attempts); a done one
    // stays done.
    let before = attempts.lock().unwrap().len();
    deliver(&inbox, &broken, &seen, Duration::from_secs(5)).await;
    deliver(&inbox, &flaky, &seen, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while attempts.lock().unwrap().len() < before + 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = quiescent(&inbox, &seen, Duration::from_secs(15)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    let again = records.iter().find(|r| r.id == broken.id()).ok_or("lost")?;
    ensure(again.state == State::Dead && again.attempts == 3, || {
        format!("revived: {} after {}", again.state, again.attempts)
    })?;
    let extra: Vec<_> = attempts.lock().unwrap()[before..]
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    ensure(extra.iter().all(|id| id == broken.id()), || {
        format!("a done event ran again: {extra:?}")
    })?;
    Ok(Ran::Passed)
}

async fn skipped_then_retried(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    const NEW: &str = "plugipay.brand.new.v1";
    let before = builder(&bed, &seen).build().map_err(|e| e.to_string())?;
    let ev = event_of(NEW, &unique("evt"));
    ensure(before.receive(&ev).await == Outcome::Stored, || {
        "not stored".into()
    })?;
    let stats = before.stats().await.map_err(|e| e.to_string())?;
    ensure(stats.count(State::Skipped) == 1, || format!("{stats:?}"))?;
    let s = seen.clone();
    let after = builder(&bed, &seen)
        .on(NEW, move |e: WebhookEvent| {
            let s = s.clone();
            async move {
                ran(&s, e.id(), true);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let workers = after.start_workers(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure(seen.lock().unwrap().ok_runs.is_empty(), || {
        "a skipped event ran by itself".into()
    })?;
    let moved = after
        .retry(&RetryFilter {
            skipped: true,
            event_type: Some(NEW.into()),
            ..RetryFilter::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(moved == 1, || format!("retry moved {moved}"))?;
    seen.lock().unwrap().acked.insert(ev.id().to_owned());
    let settled = quiescent(&after, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    ensure(records[0].state == State::Done, || {
        format!("{}", records[0].state)
    })?;
    Ok(Ran::Passed)
}

/// The delay a retry reports (logged as "again in N ms") is the one that
/// happens: the worker wakes when the retry is due, not at its next poll
/// (here 20 s away).
async fn retry_on_time(bed: Arc<Bed>) -> Result<Ran, String> {
    const POLL: Duration = Duration::from_secs(20);
    let seen = Shared::default();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let told: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let (s, t) = (starts.clone(), told.clone());
    let inbox = builder(&bed, &seen)
        .poll_interval(POLL)
        .retry_backoff(Duration::from_millis(600), Duration::from_millis(600))
        .on(PAID, move |_e: WebhookEvent| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(Instant::now());
                if current_attempt() == Some(1) {
                    return Err(std::io::Error::other("first attempt fails"));
                }
                Ok(())
            }
        })
        .on_processed(move |p| {
            if let Some(retry_in) = p.retry_in {
                t.lock().unwrap().push((Instant::now(), retry_in));
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    let workers = inbox.start_workers(2);
    // Both workers idle on the poll first, then the delivery wakes one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled?;
    let starts = starts.lock().unwrap().clone();
    let told = told.lock().unwrap().clone();
    ensure(starts.len() == 2 && told.len() == 1, || {
        format!("{} attempts, {} retries reported", starts.len(), told.len())
    })?;
    let (reported_at, retry_in) = told[0];
    let waited = starts[1].saturating_duration_since(reported_at);
    ensure(retry_in <= Duration::from_millis(600), || {
        format!("reported a retry in {retry_in:?} for a backoff of at most 600 ms")
    })?;
    // Not before it said (a millisecond clock's rounding aside), and long
    // before the next poll.
    ensure(
        waited + Duration::from_millis(20) >= retry_in && waited < retry_in + POLL / 4,
        || format!("said again in {retry_in:?}, ran {waited:?} later"),
    )?;
    Ok(Ran::Passed)
}

async fn retry_scope(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = with_handler(builder(&bed, &seen), &bed, &seen, Handler::Async)
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let workers = inbox.start_workers(1);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled?;
    for filter in [
        RetryFilter {
            id: Some(ev.id().to_owned()),
            ..RetryFilter::default()
        },
        RetryFilter {
            dead: true,
            skipped: true,
            ..RetryFilter::default()
        },
    ] {
        let moved = inbox.retry(&filter).await.map_err(|e| e.to_string())?;
        ensure(moved == 0, || {
            format!("retry moved a done event: {filter:?}")
        })?;
    }
    let r = records(&inbox).await;
    ensure(r[0].state == State::Done, || format!("{}", r[0].state))?;
    Ok(Ran::Passed)
}

async fn tx_commit_and_rollback(bed: Arc<Bed>) -> Result<Ran, String> {
    if !bed.kind.transactional() {
        let refused = Inbox::builder(bed.backend.clone())
            .on_tx(PAID, |_tx, _event| Box::pin(async { Ok(()) }))
            .build();
        return match refused {
            Err(e) if e.to_string().contains("not transactional") => Ok(Ran::Passed),
            other => Err(format!("on_tx on redis: {other:?}")),
        };
    }
    let seen = Shared::default();
    let insert = format!("INSERT INTO \"{}\" (event_id) VALUES ($1)", bed.ledger);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let inbox = builder(&bed, &seen)
        .on_tx(PAID, move |tx, event| {
            let (insert, c) = (insert.clone(), c.clone());
            Box::pin(async move {
                tx.execute(&insert, &[SqlValue::from(event.id())]).await?;
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err("failing after the insert".into());
                }
                Ok(())
            })
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let workers = inbox.start_workers(2);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    ensure(calls.load(Ordering::SeqCst) == 3, || {
        "not three attempts".into()
    })?;
    let broken = invariants(&bed, &records, &seen, true).await;
    ensure(broken.is_empty(), || broken.join("; "))?;
    Ok(Ran::Passed)
}

/// PostgreSQL: the worker's connection plans the inbox's own statements
/// with sorting, bitmap scans and custom plans off; the handler's statements,
/// on that same connection, see the settings the server gives any session.
async fn handler_settings(bed: Arc<Bed>) -> Result<Ran, String> {
    if bed.table_scans().await.is_none() {
        return Ok(Ran::NotApplicable("PostgreSQL's planner settings"));
    }
    let seen = Shared::default();
    let shown: Arc<Mutex<Vec<String>>> = Arc::default();
    let sh = shown.clone();
    let inbox = builder(&bed, &seen)
        .on_tx(PAID, move |tx, _event| {
            let sh = sh.clone();
            Box::pin(async move {
                // The application's own sqlx code, on the connection inside
                // the inbox's transaction.
                let pg = tx.pg().ok_or("not postgres")?;
                for setting in ["enable_sort", "enable_bitmapscan", "plan_cache_mode"] {
                    let value: String =
                        plugipay_webhook_dispatch::sqlx::query_scalar(&format!("SHOW {setting}"))
                            .fetch_one(&mut *pg)
                            .await?;
                    sh.lock().unwrap().push(format!("{setting}={value}"));
                }
                Ok(())
            })
        })
        .build()
        .map_err(|e| e.to_string())?;
    deliver(
        &inbox,
        &event(&unique("evt")),
        &seen,
        Duration::from_secs(5),
    )
    .await;
    let workers = inbox.start_workers(1);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled?;
    let shown = shown.lock().unwrap().join(" ");
    ensure(
        shown == "enable_sort=on enable_bitmapscan=on plan_cache_mode=auto",
        || format!("the handler saw {shown}"),
    )?;
    Ok(Ran::Passed)
}

/// One event through a transactional handler that writes its ledger row
/// and then, on its first attempt only, runs `then` (its result ignored) —
/// a statement that must keep that attempt from counting as done. The
/// records once settled, the suite's invariants held (one ledger row).
async fn first_attempt_also(
    bed: &Arc<Bed>,
    then: &'static str,
    lease: Option<Duration>,
) -> Result<Vec<plugipay_webhook_dispatch::inbox::Record>, String> {
    let seen = Shared::default();
    let insert = format!("INSERT INTO \"{}\" (event_id) VALUES ($1)", bed.ledger);
    let s = seen.clone();
    let mut builder = builder(bed, &seen).max_attempts(4);
    if let Some(lease) = lease {
        builder = builder.lease(lease).handler_timeout(lease * 3 / 4);
    }
    let inbox = builder
        .on_tx(PAID, move |tx, event| {
            let (insert, s) = (insert.clone(), s.clone());
            Box::pin(async move {
                ran(&s, event.id(), false);
                tx.execute(&insert, &[SqlValue::from(event.id())]).await?;
                if current_attempt() == Some(1) {
                    let _ = tx.execute(then, &[]).await;
                }
                ran(&s, event.id(), true);
                Ok(())
            })
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let workers = inbox.start_workers(1);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    let broken = invariants(bed, &records, &seen, true).await;
    ensure(broken.is_empty(), || broken.join("; "))?;
    Ok(records)
}

/// The "ignore the duplicate" idiom on PostgreSQL: a failed statement
/// leaves the transaction aborted, and COMMIT silently rolls back.
async fn swallowed_statement(bed: Arc<Bed>) -> Result<Ran, String> {
    if !bed.kind.transactional() {
        return Ok(Ran::NotApplicable("no transactions on redis"));
    }
    // Ignored, as "ignore the duplicate" code does.
    let records = first_attempt_also(&bed, "INSERT INTO no_such_table VALUES (1)", None).await?;
    ensure(records[0].state == State::Done, || {
        format!("{}", records[0].state)
    })?;
    Ok(Ran::Passed)
}

/// A handler that sends `ROLLBACK` itself (against the rule) and returns
/// `Ok`: its write is gone, and the move to done — now outside the
/// transaction the inbox began — is refused (PostgreSQL: the transaction id
/// no longer matches; SQLite: no transaction is open), so the event is not
/// reported done; it runs again once its lease lapses, and its write lands
/// once. Every SQL backend.
async fn handler_ends_transaction(bed: Arc<Bed>) -> Result<Ran, String> {
    if !bed.kind.transactional() {
        return Ok(Ran::NotApplicable("no transactions on redis"));
    }
    let records = first_attempt_also(&bed, "ROLLBACK", Some(Duration::from_millis(500))).await?;
    ensure(
        records[0].state == State::Done && records[0].attempts == 2,
        || {
            format!(
                "{} after {} attempts",
                records[0].state, records[0].attempts
            )
        },
    )?;
    Ok(Ran::Passed)
}

/// Issue: lapsed leases were looked for only when nothing else was due.
async fn lapsed_lease_in_due_order(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let hang = Arc::new(AtomicBool::new(true));
    let (o, h) = (order.clone(), hang.clone());
    let short = builder(&bed, &seen)
        .lease(Duration::from_millis(400))
        .handler_timeout(Duration::from_millis(300))
        .on(PAID, move |e: WebhookEvent| {
            let (o, h) = (o.clone(), h.clone());
            async move {
                if h.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                o.lock().unwrap().push(e.id().to_owned());
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let first = event(&unique("lapsed"));
    deliver(&short, &first, &seen, Duration::from_secs(5)).await;
    let w = short.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while records(&short).await[0].state != State::Running {
        ensure(Instant::now() < deadline, || "never claimed".into())?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.shutdown(Duration::ZERO).await; // the worker dies mid-handler
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Thirty events become due after its lease lapsed.
    for i in 0..30 {
        deliver(
            &short,
            &event(&unique(&format!("later{i:02}"))),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    hang.store(false, Ordering::SeqCst);
    let w = short.start_workers(1);
    let settled = quiescent(&short, &seen, Duration::from_secs(15)).await;
    w.shutdown(Duration::from_secs(5)).await;
    settled?;
    let order = order.lock().unwrap().clone();
    ensure(
        order.first().map(String::as_str) == Some(first.id()),
        || {
            let at = order.iter().position(|id| id == first.id());
            format!("the lapsed event ran at position {at:?} of {}", order.len())
        },
    )?;
    Ok(Ran::Passed)
}

/// Issue: Redis's `XAUTOCLAIM … COUNT 1` never found an idle entry behind
/// ten live ones.
async fn lapsed_lease_behind_live_ones(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let lease = Duration::from_millis(900);
    let busy_done = Arc::new(AtomicBool::new(false));
    let b = busy_done.clone();
    // Twelve live events: blocking handlers whose leases are kept alive.
    let busy = builder(&bed, &seen)
        .lease(lease)
        .handler_timeout(lease / 2)
        .on_blocking(PAID, move |e: &WebhookEvent| {
            if e.id().starts_with("busy") {
                let until = Instant::now() + Duration::from_secs(8);
                while !b.load(Ordering::SeqCst) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    for i in 0..12 {
        deliver(
            &busy,
            &event(&format!("busy{i:02}_{}", unique("e"))),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    let busy_workers = busy.start_workers(12);
    let deadline = Instant::now() + Duration::from_secs(10);
    while busy
        .stats()
        .await
        .map_err(|e| e.to_string())?
        .count(State::Running)
        < 12
    {
        ensure(Instant::now() < deadline, || {
            "the twelve were not all claimed".into()
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One more, claimed by a worker that dies.
    let hang = builder(&bed, &seen)
        .lease(lease)
        .handler_timeout(lease / 2)
        .on(PAID, |_e| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let lapsed = event(&unique("lapsed"));
    deliver(&hang, &lapsed, &seen, Duration::from_secs(5)).await;
    let w = hang.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while busy
        .stats()
        .await
        .map_err(|e| e.to_string())?
        .count(State::Running)
        < 13
    {
        ensure(Instant::now() < deadline, || {
            "the lapsed one was never claimed".into()
        })?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.shutdown(Duration::ZERO).await;
    // A fresh worker must take it over once its lease lapsed, while the
    // twelve are still running.
    let took = Arc::new(AtomicBool::new(false));
    let t = took.clone();
    let rescue = builder(&bed, &seen)
        .lease(lease)
        .handler_timeout(lease / 2)
        .on(PAID, move |_e| {
            let t = t.clone();
            async move {
                t.store(true, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let w = rescue.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !took.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rescued = took.load(Ordering::SeqCst);
    busy_done.store(true, Ordering::SeqCst);
    w.shutdown(Duration::from_secs(5)).await;
    let settled = quiescent(&busy, &seen, Duration::from_secs(15)).await;
    let bw = busy.start_workers(1);
    busy_workers.shutdown(Duration::from_secs(10)).await;
    bw.shutdown(Duration::from_secs(5)).await;
    ensure(rescued, || {
        "the lapsed event was not taken over within 5 s".into()
    })?;
    settled?;
    Ok(Ran::Passed)
}

/// Issue: `extend → Ok(false)` was ignored and the handler ran on.
async fn lost_lease_cancels(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let cancelled = Arc::new(AtomicBool::new(false));
    let finished_first = Arc::new(AtomicBool::new(false));
    let (c, f, b, s) = (
        cancelled.clone(),
        finished_first.clone(),
        bed.clone(),
        seen.clone(),
    );
    struct OnDrop(Arc<AtomicBool>, bool);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if !self.1 {
                self.0.store(true, Ordering::SeqCst);
            }
        }
    }
    let inbox = builder(&bed, &seen)
        .lease(Duration::from_millis(900))
        .handler_timeout(Duration::from_millis(800))
        .on(PAID, move |e: WebhookEvent| {
            let (c, f, b, s) = (c.clone(), f.clone(), b.clone(), s.clone());
            async move {
                ran(&s, e.id(), false);
                if current_attempt() == Some(1) {
                    let mut guard = OnDrop(c, false);
                    // Someone else holds the lease now.
                    b.steal_lease(e.id()).await;
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    guard.1 = true;
                    f.store(true, Ordering::SeqCst);
                }
                ran(&s, e.id(), true);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("evt"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let workers = inbox.start_workers(1);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(15)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    ensure(!finished_first.load(Ordering::SeqCst), || {
        "the first run went on to its end after its lease was lost".into()
    })?;
    ensure(cancelled.load(Ordering::SeqCst), || {
        "the first run was not cancelled".into()
    })?;
    ensure(
        records[0].state == State::Done && runs(&seen, ev.id()) == 2,
        || format!("{} after {} runs", records[0].state, runs(&seen, ev.id())),
    )?;
    Ok(Ran::Passed)
}

/// Issue: a poison event (its handler kills the worker) was claimed again
/// after every lease, forever.
async fn crashes_exhaust_attempts(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let s = seen.clone();
    let inbox = builder(&bed, &seen)
        .max_attempts(2)
        .lease(Duration::from_millis(400))
        .handler_timeout(Duration::from_millis(300))
        .on(PAID, move |e: WebhookEvent| {
            let s = s.clone();
            async move {
                ran(&s, e.id(), false);
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("poison"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    // Each run "crashes": its worker is abandoned mid-handler.
    for round in 0..4 {
        let w = inbox.start_workers(1);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let r = records(&inbox).await;
            if r[0].state == State::Dead || runs(&seen, ev.id()) > round {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.shutdown(Duration::ZERO).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let r = records(&inbox).await;
    ensure(runs(&seen, ev.id()) == 2, || {
        format!(
            "the handler ran {} times (max_attempts 2)",
            runs(&seen, ev.id())
        )
    })?;
    ensure(r[0].state == State::Dead, || {
        format!("{} after {} attempts", r[0].state, r[0].attempts)
    })?;
    ensure(
        r[0].last_error
            .as_deref()
            .is_some_and(|e| e.contains("attempts exhausted")),
        || format!("last error {:?}", r[0].last_error),
    )?;
    Ok(Ran::Passed)
}

/// Issue 34 item 14: a worker that stops mid-handler (its task dropped,
/// as a SIGKILL leaves it) left no trace: once its lease lapsed the event
/// ran again, and its history showed one attempt. The claim that takes the
/// lapsed lease notes it; the worker records a cut-short attempt.
async fn cut_short_in_history(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let s = seen.clone();
    let inbox = builder(&bed, &seen)
        .on(PAID, move |e: WebhookEvent| {
            let s = s.clone();
            async move {
                ran(&s, e.id(), false);
                if runs(&s, e.id()) == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let ev = event(&unique("cut"));
    deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await;
    let w = inbox.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(3);
    while runs(&seen, ev.id()) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The worker stops mid-handler: nothing of it is stored.
    w.shutdown(Duration::ZERO).await;
    let settled = settle_after_crash(&inbox, &seen).await;
    let r = settled?;
    let r = r
        .iter()
        .find(|r| r.id == ev.id())
        .ok_or("not stored")?
        .clone();
    ensure(runs(&seen, ev.id()) == 2 && r.state == State::Done, || {
        format!("{} runs, {}", runs(&seen, ev.id()), r.state)
    })?;
    let h = r.handlers.first().ok_or("no handler state")?;
    let outcomes: Vec<AttemptOutcome> = h.history.iter().map(|a| a.outcome).collect();
    ensure(
        outcomes == [AttemptOutcome::CutShort, AttemptOutcome::Done]
            && h.attempts == 1
            && r.attempts == 2,
        || {
            format!(
                "history {outcomes:?}, handler attempts {}, event attempts {}",
                h.attempts, r.attempts
            )
        },
    )?;
    ensure(
        h.history[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cut short")),
        || format!("{:?}", h.history[0]),
    )?;
    Ok(Ran::Passed)
}

/// Workers again after a crash: every acknowledged event terminal once
/// the lease has lapsed.
async fn settle_after_crash(inbox: &Inbox, seen: &Shared) -> Result<Vec<Record>, String> {
    let w = inbox.start_workers(1);
    let settled = quiescent(inbox, seen, Duration::from_secs(10)).await;
    w.shutdown(Duration::from_secs(5)).await;
    settled
}

async fn shutdown(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let s = seen.clone();
    let inbox = builder(&bed, &seen)
        .on(PAID, move |e: WebhookEvent| {
            let s = s.clone();
            async move {
                ran(&s, e.id(), false);
                tokio::time::sleep(Duration::from_millis(400)).await;
                ran(&s, e.id(), true);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    for i in 0..4 {
        deliver(
            &inbox,
            &event(&unique(&format!("evt{i}"))),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    let w = inbox.start_workers(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().runs.len() < 2 {
        ensure(Instant::now() < deadline, || "nothing ran".into())?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.shutdown(Duration::from_secs(5)).await;
    let r = records(&inbox).await;
    let done = r.iter().filter(|r| r.state == State::Done).count();
    let pending = r.iter().filter(|r| r.state == State::Pending).count();
    ensure(done == 2 && pending == 2, || {
        format!("after shutdown: {done} done, {pending} pending (want the two in flight finished, none claimed after)")
    })?;
    Ok(Ran::Passed)
}

/// Issue: prune deleted skipped events too, had no floor, and overflowed.
async fn prune_scope(bed: Arc<Bed>) -> Result<Ran, String> {
    const OTHER: &str = "plugipay.brand.new.v1";
    let seen = Shared::default();
    let inbox = builder(&bed, &seen)
        .max_attempts(1)
        .on(PAID, |e: WebhookEvent| async move {
            if e.id().starts_with("dead") {
                return Err(std::io::Error::other("fails"));
            }
            Ok(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let (done, dead) = (event(&unique("done")), event(&unique("dead")));
    let skipped = event_of(OTHER, &unique("skipped"));
    for e in [&done, &dead, &skipped] {
        deliver(&inbox, e, &seen, Duration::from_secs(5)).await;
    }
    let w = inbox.start_workers(1);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    w.shutdown(Duration::from_secs(5)).await;
    settled?;
    let pending = event(&unique("pending"));
    deliver(&inbox, &pending, &seen, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let short = Duration::from_millis(1);
    let refused = inbox.prune(short).await;
    ensure(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("7 days")),
        || format!("pruning under 7 days without force: {refused:?}"),
    )?;
    let force = |skipped| PruneFilter {
        older_than: short,
        skipped,
        force: true,
    };
    let n = inbox
        .prune_with(&force(false))
        .await
        .map_err(|e| e.to_string())?;
    ensure(n == 1, || {
        format!("prune deleted {n}, want the one done event")
    })?;
    let n = inbox
        .prune_with(&force(true))
        .await
        .map_err(|e| e.to_string())?;
    ensure(n == 1, || {
        format!("prune --skipped deleted {n}, want the one skipped event")
    })?;
    let left: Vec<(String, State)> = records(&inbox)
        .await
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    ensure(
        left.len() == 2
            && left.contains(&(dead.id().to_owned(), State::Dead))
            && left.contains(&(pending.id().to_owned(), State::Pending)),
        || format!("left after pruning: {left:?}"),
    )?;
    Ok(Ran::Passed)
}

/// Issue: the inbox keyed on (id, type) alone: a tenant could occupy
/// another's event, and workers could not tell tenants apart.
async fn tenants_apart(bed: Arc<Bed>) -> Result<Ran, String> {
    use plugipay_webhook::testing::TestDelivery;
    use plugipay_webhook::Verifier;
    let seen = Shared::default();
    let handled: Arc<Mutex<Vec<TenantAndId>>> = Arc::default();
    let h = handled.clone();
    let inbox = builder(&bed, &seen)
        .on(PAID, move |e: WebhookEvent| {
            let h = h.clone();
            async move {
                h.lock()
                    .unwrap()
                    .push((e.tenant().map(str::to_owned), e.id().to_owned()));
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let id = unique("shared");
    let as_tenant = |tenant: &str| {
        TestDelivery::new("whsec_t", PAID)
            .id(id.clone())
            .verify_for_tenant(&Verifier::new("whsec_t"), tenant)
            .expect("verifies")
    };
    let (acme, globex, plain) = (as_tenant("acme"), as_tenant("globex"), event(&id));
    for e in [&acme, &globex, &plain, &acme] {
        deliver(&inbox, e, &seen, Duration::from_secs(5)).await;
    }
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    ensure(stats.count(State::Pending) == 3, || {
        format!("three events, one duplicate: {stats:?}")
    })?;
    let w = inbox.start_workers(2);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(10)).await;
    w.shutdown(Duration::from_secs(5)).await;
    settled?;
    let mut ran = handled.lock().unwrap().clone();
    ran.sort();
    let want = vec![
        (None, id.clone()),
        (Some("acme".to_owned()), id.clone()),
        (Some("globex".to_owned()), id.clone()),
    ];
    ensure(ran == want, || format!("handlers saw {ran:?}"))?;
    let stored = inbox.get(&id).await.map_err(|e| e.to_string())?;
    let tenants: Vec<&str> = stored.iter().map(|r| r.tenant.as_str()).collect();
    ensure(tenants == ["", "acme", "globex"], || {
        format!("get: {tenants:?}")
    })?;
    let acme_only = inbox
        .list_with(&ListFilter {
            tenant: Some("acme".into()),
            ..ListFilter::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        acme_only.len() == 1 && acme_only[0].tenant() == Some("acme"),
        || format!("list --tenant acme: {acme_only:?}"),
    )?;
    Ok(Ran::Passed)
}

/// U+0000 in any text the inbox keeps (id, type, account id, occurred_at,
/// the object's id): PostgreSQL's text cannot hold it. Every backend answers
/// 400 `nul_in_text`, stores nothing, and goes on storing the next event
/// (no outage: before, PostgreSQL answered 503 forever and reported the
/// store down).
async fn nul_in_text(bed: Arc<Bed>) -> Result<Ran, String> {
    use plugipay_webhook::testing::TestDelivery;
    use plugipay_webhook::Verifier;
    let seen = Shared::default();
    let inbox = builder(&bed, &seen)
        .on(PAID, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let id = unique("nul");
    let signed = |d: TestDelivery| d.verify_with(&Verifier::new(SECRET)).expect("verifies");
    let cases = [
        (
            "id",
            signed(TestDelivery::new(SECRET, PAID).id(format!("{id}\0x"))),
        ),
        (
            "type",
            signed(TestDelivery::new(SECRET, "plugipay.invoice.paid\0.v1").id(&id)),
        ),
        (
            "account_id",
            signed(
                TestDelivery::new(SECRET, PAID)
                    .id(&id)
                    .account_id(Some("acc\0")),
            ),
        ),
        (
            "occurred_at",
            signed(
                TestDelivery::new(SECRET, PAID)
                    .id(&id)
                    .occurred_at(Some("2026-12-07T00:00:00Z\0")),
            ),
        ),
        (
            "data.object.id",
            signed(
                TestDelivery::new(SECRET, PAID)
                    .id(&id)
                    .object(serde_json::json!({"id": "inv\u{0}1"})),
            ),
        ),
    ];
    for (field, e) in &cases {
        let outcome = inbox.receive(e).await;
        ensure(
            outcome == Outcome::Unstorable
                && outcome.status() == 400
                && outcome.body() == r#"{"error":"nul_in_text"}"#,
            || format!("a NUL in its {field}: {outcome:?} {}", outcome.status()),
        )?;
    }
    let fine = event(&id);
    let outcome = inbox.receive(&fine).await;
    ensure(outcome == Outcome::Stored, || {
        format!("the next event after them: {outcome:?}")
    })?;
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    let stored: u64 = stats.counts.values().sum();
    ensure(stored == 1, || {
        format!("only the clean event is stored: {stats:?}")
    })?;
    inbox
        .health()
        .await
        .map_err(|e| format!("health after them: {e}"))?;
    Ok(Ran::Passed)
}

/// What a stopped worker holds stays `running` until its lease lapses:
/// stats say when (nothing running: none; held: within the lease; its
/// worker gone and the lease over: lapsed, how long ago).
async fn lease_lapse_in_stats(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = builder(&bed, &seen)
        .lease(Duration::from_millis(1000))
        .handler_timeout(Duration::from_millis(500))
        .on(PAID, |_e: WebhookEvent| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    ensure(stats.next_lease_lapse_ms.is_none(), || {
        format!("nothing runs yet: {stats:?}")
    })?;
    deliver(
        &inbox,
        &event(&unique("lapse")),
        &seen,
        Duration::from_secs(5),
    )
    .await;
    let w = inbox.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while records(&inbox).await[0].state != State::Running {
        ensure(Instant::now() < deadline, || "never claimed".into())?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    ensure(
        stats.count(State::Running) == 1
            && stats
                .next_lease_lapse_ms
                .is_some_and(|ms| ms > 0 && ms <= 1000),
        || format!("held: the lease lapses within a second: {stats:?}"),
    )?;
    // The worker dies mid-handler; its lease runs out.
    w.shutdown(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let stats = inbox.stats().await.map_err(|e| e.to_string())?;
    ensure(
        stats.count(State::Running) == 1 && stats.next_lease_lapse_ms.is_some_and(|ms| ms < 0),
        || format!("lapsed, waiting for a worker: {stats:?}"),
    )?;
    Ok(Ran::Passed)
}
