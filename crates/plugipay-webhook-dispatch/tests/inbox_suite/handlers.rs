//! Several named handlers per type: each (event, handler) pair has its own
//! state, attempts and history; a success is never rerun because a sibling
//! failed; a dead handler is alerted once; a retry by handler runs only it;
//! a handler's concurrency limit does not hold the others back; a typed
//! transactional handler fails, not panics, on a body that does not fit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::inbox::{
    AttemptOutcome, DeadLetter, HandlerState, Inbox, InboxBuilder, Record, RetryFilter, SqlValue,
    State,
};

use crate::bed::{unique, Bed};
use crate::cases::{case, ensure, Case, Ran};
use crate::{deliver, event, quiescent, Shared, PAID};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case(
            "handlers: a failing sibling never reruns a success",
            sibling_fails,
        ),
        case(
            "handlers: one dead, one alert, a retry runs it alone",
            one_dead,
        ),
        case("handlers: a capped handler holds no one back", capped),
        case(
            "handlers: a deferral spends no attempt, each dead pair is alerted once",
            deferred_last_attempt,
        ),
        case(
            "handlers: a typed handler's bad body fails with its path",
            typed_path,
        ),
    ]
}

/// Runs per (event, handler): started and succeeded.
#[derive(Default)]
struct Runs {
    started: HashMap<(String, String), usize>,
    ok: HashMap<(String, String), usize>,
}

type SharedRuns = Arc<Mutex<Runs>>;

fn count(runs: &SharedRuns, id: &str, handler: &str, ok: bool) {
    let mut r = runs.lock().unwrap();
    let map = if ok { &mut r.ok } else { &mut r.started };
    *map.entry((id.to_owned(), handler.to_owned())).or_default() += 1;
}

fn get(runs: &SharedRuns, id: &str, handler: &str, ok: bool) -> usize {
    let r = runs.lock().unwrap();
    let map = if ok { &r.ok } else { &r.started };
    map.get(&(id.to_owned(), handler.to_owned()))
        .copied()
        .unwrap_or(0)
}

/// The suite's usual options (`Done` reports counted), `max_attempts`.
fn builder(bed: &Bed, seen: &Shared, max_attempts: u32) -> InboxBuilder {
    crate::cases::builder(bed, seen).max_attempts(max_attempts)
}

/// Runs `n` workers until every acknowledged event is terminal (at most
/// `secs`), then stops them: the records.
async fn settle(inbox: &Inbox, seen: &Shared, n: usize, secs: u64) -> Result<Vec<Record>, String> {
    let workers = inbox.start_workers(n);
    let settled = quiescent(inbox, seen, Duration::from_secs(secs)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled
}

/// `ledger` for [`PAID`]: a row in the inbox's transaction on the SQL
/// inboxes, a counted run on Redis.
fn with_ledger(b: InboxBuilder, bed: &Arc<Bed>, runs: &SharedRuns) -> InboxBuilder {
    let runs = runs.clone();
    if bed.kind.transactional() {
        let insert = format!("INSERT INTO \"{}\" (event_id) VALUES ($1)", bed.ledger);
        b.on_tx((PAID, "ledger"), move |tx, event| {
            let (insert, runs) = (insert.clone(), runs.clone());
            Box::pin(async move {
                count(&runs, event.id(), "ledger", false);
                tx.execute(&insert, &[SqlValue::from(event.id())]).await?;
                count(&runs, event.id(), "ledger", true);
                Ok(())
            })
        })
    } else {
        b.on((PAID, "ledger"), move |event: WebhookEvent| {
            let runs = runs.clone();
            async move {
                count(&runs, event.id(), "ledger", false);
                count(&runs, event.id(), "ledger", true);
                Ok::<_, std::io::Error>(())
            }
        })
    }
}

/// `notify` for [`PAID`]: fails its first `fail` attempts of every event.
fn with_notify(b: InboxBuilder, runs: &SharedRuns, fail: usize) -> InboxBuilder {
    let runs = runs.clone();
    b.on((PAID, "notify"), move |event: WebhookEvent| {
        let runs = runs.clone();
        async move {
            count(&runs, event.id(), "notify", false);
            if get(&runs, event.id(), "notify", false) <= fail {
                return Err(std::io::Error::other("smtp: connection refused"));
            }
            count(&runs, event.id(), "notify", true);
            Ok(())
        }
    })
}

fn handler<'r>(
    r: &'r Record,
    name: &str,
) -> Result<&'r plugipay_webhook_dispatch::inbox::HandlerStatus, String> {
    r.handlers
        .iter()
        .find(|h| h.name == name)
        .ok_or_else(|| format!("{}: no state for {name}: {:?}", r.id, r.handlers))
}

async fn sibling_fails(bed: Arc<Bed>) -> Result<Ran, String> {
    let (seen, runs) = (Shared::default(), SharedRuns::default());
    let b = with_ledger(builder(&bed, &seen, 10), &bed, &runs);
    let inbox = with_notify(b, &runs, 2)
        .build()
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("evt{i}"))).collect();
    for id in &ids {
        deliver(&inbox, &event(id), &seen, Duration::from_secs(5)).await;
    }
    let settled = settle(&inbox, &seen, 2, 15).await;
    let records = settled?;
    let ledger = bed.ledger().await;
    for r in &records {
        let id = &r.id;
        ensure(r.state == State::Done, || format!("{id}: {}", r.state))?;
        ensure(get(&runs, id, "ledger", false) == 1, || {
            format!("{id}: ledger ran {} times", get(&runs, id, "ledger", false))
        })?;
        if bed.kind.transactional() {
            ensure(ledger.get(id) == Some(&1), || {
                format!("{id}: {:?} ledger rows", ledger.get(id))
            })?;
        }
        ensure(get(&runs, id, "notify", true) == 1, || {
            format!("{id}: notified twice")
        })?;
        let (l, n) = (handler(r, "ledger")?, handler(r, "notify")?);
        ensure(l.state == HandlerState::Done && l.attempts == 1, || {
            format!("{id}: ledger {l:?}")
        })?;
        ensure(n.state == HandlerState::Done && n.attempts == 3, || {
            format!("{id}: notify {n:?}")
        })?;
        let outcomes: Vec<AttemptOutcome> = n.history.iter().map(|a| a.outcome).collect();
        ensure(
            outcomes
                == [
                    AttemptOutcome::Failed,
                    AttemptOutcome::Failed,
                    AttemptOutcome::Done,
                ],
            || format!("{id}: notify's history {:?}", n.history),
        )?;
        ensure(
            n.history[0].error.as_deref() == Some("handler error: smtp: connection refused"),
            || format!("{id}: notify's first error {:?}", n.history[0].error),
        )?;
        let reports = seen.lock().unwrap().done_reports.get(id).copied();
        ensure(reports == Some(1), || {
            format!("{id}: Done reported {reports:?}")
        })?;
    }
    Ok(Ran::Passed)
}

async fn one_dead(bed: Arc<Bed>) -> Result<Ran, String> {
    let (seen, runs) = (Shared::default(), SharedRuns::default());
    let alerts: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let a = alerts.clone();
    let b = with_ledger(builder(&bed, &seen, 3), &bed, &runs).on_dead(move |dead| {
        let a = a.clone();
        async move { a.lock().unwrap().push(dead) }
    });
    let inbox = with_notify(b, &runs, usize::MAX)
        .build()
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = (0..2).map(|i| unique(&format!("evt{i}"))).collect();
    for id in &ids {
        deliver(&inbox, &event(id), &seen, Duration::from_secs(5)).await;
    }
    let settled = settle(&inbox, &seen, 2, 15).await;
    let records = settled?;
    for r in &records {
        let id = &r.id;
        ensure(r.state == State::Dead, || format!("{id}: {}", r.state))?;
        let (l, n) = (handler(r, "ledger")?, handler(r, "notify")?);
        ensure(l.state == HandlerState::Done && l.attempts == 1, || {
            format!("{id}: ledger {l:?}")
        })?;
        ensure(n.state == HandlerState::Dead && n.attempts == 3, || {
            format!("{id}: notify {n:?}")
        })?;
        let mine: Vec<(String, u32)> = alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|d| &d.id == id)
            .map(|d| (d.handler.clone(), d.attempts))
            .collect();
        ensure(mine == [("notify".to_owned(), 3)], || {
            format!("{id}: alerts {mine:?}")
        })?;
        ensure(get(&runs, id, "ledger", false) == 1, || {
            format!("{id}: ledger rerun")
        })?;
    }
    let alert = alerts.lock().unwrap()[0].clone();
    ensure(
        alert.error.contains("smtp: connection refused")
            && alert.event.as_ref().map(WebhookEvent::id) == Some(alert.id.as_str()),
        || format!("the alert: {alert:?}"),
    )?;

    // A retry of `notify` (now healed) runs only `notify`.
    let (seen2, runs2) = (Shared::default(), SharedRuns::default());
    let b = with_ledger(builder(&bed, &seen2, 3), &bed, &runs2);
    let inbox = with_notify(b, &runs2, 0)
        .build()
        .map_err(|e| e.to_string())?;
    let moved = inbox
        .retry(&RetryFilter {
            dead: true,
            handler: Some("notify".into()),
            ..RetryFilter::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(moved == 2, || format!("retry moved {moved}"))?;
    seen2.lock().unwrap().acked.extend(ids.iter().cloned());
    let settled = settle(&inbox, &seen2, 2, 15).await;
    let records = settled?;
    let ledger = bed.ledger().await;
    for r in &records {
        let id = &r.id;
        ensure(r.state == State::Done, || {
            format!("{id}: {} after the retry", r.state)
        })?;
        ensure(get(&runs2, id, "ledger", false) == 0, || {
            format!("{id}: the retry of notify ran ledger")
        })?;
        ensure(get(&runs2, id, "notify", true) == 1, || {
            format!("{id}: notify not run")
        })?;
        if bed.kind.transactional() {
            ensure(ledger.get(id) == Some(&1), || {
                format!("{id}: {:?} ledger rows", ledger.get(id))
            })?;
        }
    }

    // A handler added later: done events are not rerun by themselves; a
    // retry by its name backfills it — and only it.
    let (seen3, runs3) = (Shared::default(), SharedRuns::default());
    let r3 = runs3.clone();
    let b = with_ledger(builder(&bed, &seen3, 3), &bed, &runs3);
    let inbox = with_notify(b, &runs3, 0)
        .on((PAID, "audit"), move |event: WebhookEvent| {
            let r3 = r3.clone();
            async move {
                count(&r3, event.id(), "audit", true);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let moved = inbox
        .retry(&RetryFilter {
            done: true,
            handler: Some("audit".into()),
            event_type: Some(PAID.into()),
            since_ms: Some(0),
            ..RetryFilter::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(moved == 2, || format!("backfill moved {moved}"))?;
    seen3.lock().unwrap().acked.extend(ids.iter().cloned());
    let settled = settle(&inbox, &seen3, 2, 15).await;
    for r in &settled? {
        let id = &r.id;
        ensure(r.state == State::Done, || {
            format!("{id}: {} after backfill", r.state)
        })?;
        ensure(get(&runs3, id, "audit", true) == 1, || {
            format!("{id}: audit not backfilled")
        })?;
        ensure(
            get(&runs3, id, "ledger", false) + get(&runs3, id, "notify", false) == 0,
            || format!("{id}: the backfill reran another handler"),
        )?;
    }
    Ok(Ran::Passed)
}

async fn capped(bed: Arc<Bed>) -> Result<Ran, String> {
    let (seen, runs) = (Shared::default(), SharedRuns::default());
    // The order things happened in: ("ledger" | "notify", id).
    let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (l2, f2, m2) = (log.clone(), in_flight.clone(), most.clone());
    let (l3, r3) = (log.clone(), runs.clone());
    let inbox = builder(&bed, &seen, 50)
        .on((PAID, "ledger"), move |event: WebhookEvent| {
            let (l3, r3) = (l3.clone(), r3.clone());
            async move {
                count(&r3, event.id(), "ledger", true);
                l3.lock().unwrap().push("ledger");
                Ok::<_, std::io::Error>(())
            }
        })
        .on((PAID, "notify"), move |_event: WebhookEvent| {
            let (l2, f2, m2) = (l2.clone(), f2.clone(), m2.clone());
            async move {
                let now = f2.fetch_add(1, Ordering::SeqCst) + 1;
                m2.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                f2.fetch_sub(1, Ordering::SeqCst);
                l2.lock().unwrap().push("notify");
                Ok::<_, std::io::Error>(())
            }
        })
        .concurrency("notify", 1)
        .build()
        .map_err(|e| e.to_string())?;
    let n = 6;
    for i in 0..n {
        deliver(
            &inbox,
            &event(&unique(&format!("evt{i}"))),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    let settled = settle(&inbox, &seen, 4, 20).await;
    let records = settled?;
    ensure(records.iter().all(|r| r.state == State::Done), || {
        "not all done".into()
    })?;
    ensure(most.load(Ordering::SeqCst) == 1, || {
        format!(
            "{} notify runs at once under a limit of 1",
            most.load(Ordering::SeqCst)
        )
    })?;
    // With the limit waited for, each worker would hold its event until the
    // one notify before it finished: every ledger could not have finished
    // before the second notify did.
    let log = log.lock().unwrap().clone();
    let before_second_notify = log
        .iter()
        .take_while({
            let mut notified = 0;
            move |s| {
                if **s == "notify" {
                    notified += 1;
                }
                notified < 2
            }
        })
        .filter(|s| **s == "ledger")
        .count();
    ensure(before_second_notify == n, || {
        format!("only {before_second_notify} of {n} ledger runs before the second notify: {log:?}")
    })?;
    for r in &records {
        ensure(get(&runs, &r.id, "ledger", true) == 1, || {
            format!("{}: ledger rerun", r.id)
        })?;
    }
    Ok(Ran::Passed)
}

/// `fails` always fails; `capped` (one at a time) takes 300 ms and then
/// succeeds or fails: with several events at once, it is at its limit —
/// deferred — on some of their attempts, the last one included. A deferral
/// is no attempt: `capped` runs `max_attempts` times at most (once when it
/// succeeds) on every event, each dead (event, handler) pair is alerted
/// exactly once, and the event ends dead only after both have run out.
async fn deferred_last_attempt(bed: Arc<Bed>) -> Result<Ran, String> {
    for (max_attempts, capped_ok) in [(1u32, true), (2, false)] {
        let (seen, runs) = (Shared::default(), SharedRuns::default());
        let alerts: Arc<Mutex<Vec<(String, String, u32)>>> = Arc::default();
        let (a, r1, r2) = (alerts.clone(), runs.clone(), runs.clone());
        let inbox = builder(&bed, &seen, max_attempts)
            .on((PAID, "fails"), move |event: WebhookEvent| {
                let r1 = r1.clone();
                async move {
                    count(&r1, event.id(), "fails", false);
                    Err::<(), _>(std::io::Error::other("ledger down"))
                }
            })
            .on((PAID, "capped"), move |event: WebhookEvent| {
                let r2 = r2.clone();
                async move {
                    count(&r2, event.id(), "capped", false);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if capped_ok {
                        count(&r2, event.id(), "capped", true);
                        Ok(())
                    } else {
                        Err(std::io::Error::other("smtp down"))
                    }
                }
            })
            .concurrency("capped", 1)
            .on_dead(move |dead| {
                let a = a.clone();
                async move {
                    a.lock()
                        .unwrap()
                        .push((dead.id.clone(), dead.handler.clone(), dead.attempts))
                }
            })
            .build()
            .map_err(|e| e.to_string())?;
        let ids: Vec<String> = (0..3).map(|i| unique(&format!("def{i}"))).collect();
        for id in &ids {
            deliver(&inbox, &event(id), &seen, Duration::from_secs(5)).await;
        }
        let records = settle(&inbox, &seen, 3, 20).await?;
        let alerts = alerts.lock().unwrap().clone();
        let what = format!("max_attempts {max_attempts}");
        for id in &ids {
            let r = records
                .iter()
                .find(|r| &r.id == id)
                .ok_or_else(|| format!("{what}: {id} not stored"))?;
            ensure(r.state == State::Dead, || {
                format!("{what}: {id} {}", r.state)
            })?;
            let (f, c) = (handler(r, "fails")?, handler(r, "capped")?);
            let runs_of = |h: &str| get(&runs, id, h, false);
            ensure(
                runs_of("fails") == max_attempts as usize
                    && f.state == HandlerState::Dead
                    && f.attempts == max_attempts,
                || format!("{what}: {id}: fails ran {}, {f:?}", runs_of("fails")),
            )?;
            let mut mine: Vec<(String, u32)> = alerts
                .iter()
                .filter(|(a, _, _)| a == id)
                .map(|(_, h, n)| (h.clone(), *n))
                .collect();
            mine.sort();
            if capped_ok {
                ensure(
                    runs_of("capped") == 1
                        && get(&runs, id, "capped", true) == 1
                        && c.state == HandlerState::Done,
                    || {
                        format!(
                            "{what}: {id}: capped ran {} times, {c:?}",
                            runs_of("capped")
                        )
                    },
                )?;
                ensure(mine == [("fails".to_owned(), max_attempts)], || {
                    format!("{what}: {id}: alerts {mine:?}")
                })?;
            } else {
                ensure(
                    runs_of("capped") == max_attempts as usize
                        && c.state == HandlerState::Dead
                        && c.attempts == max_attempts,
                    || {
                        format!(
                            "{what}: {id}: capped ran {} times, {c:?}",
                            runs_of("capped")
                        )
                    },
                )?;
                let want = [
                    ("capped".to_owned(), max_attempts),
                    ("fails".to_owned(), max_attempts),
                ];
                ensure(mine == want, || format!("{what}: {id}: alerts {mine:?}"))?;
            }
        }
    }
    Ok(Ran::Passed)
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code, reason = "deserialised, not read")]
struct Invoice {
    id: String,
    total: String,
}

async fn typed_path(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let e2 = errors.clone();
    let b = builder(&bed, &seen, 2).on_processed(move |p| {
        if let Some(e) = p.error {
            e2.lock().unwrap().push(e.to_owned());
        }
    });
    let b = if bed.kind.transactional() {
        b.on_tx_object((PAID, "ledger"), |_tx, _invoice: Invoice, _event| {
            Box::pin(async { Ok(()) })
        })
    } else {
        b.on_object((PAID, "ledger"), |_invoice: Invoice, _event| async {
            Ok::<_, std::io::Error>(())
        })
    };
    let inbox = b.build().map_err(|e| e.to_string())?;
    deliver(
        &inbox,
        &event(&unique("evt")),
        &seen,
        Duration::from_secs(5),
    )
    .await;
    let settled = settle(&inbox, &seen, 1, 10).await;
    let records = settled?;
    ensure(records[0].state == State::Dead, || {
        format!("{}", records[0].state)
    })?;
    let errors = errors.lock().unwrap().clone();
    ensure(
        errors.len() == 2
            && errors
                .iter()
                .all(|e| e.contains("data.object.total: invalid type")),
        || format!("errors: {errors:?}"),
    )?;
    Ok(Ran::Passed)
}
