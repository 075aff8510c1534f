//! What the console reads: a listing filtered by id prefix and by a time
//! range, and the activity per bucket (received, done).

use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::inbox::{Count, Inbox, ListFilter, RetryFilter, State};

use crate::bed::{unique, Bed};
use crate::cases::{case, ensure, Case, Ran};
use crate::{deliver, event, quiescent, Shared, PAID};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case(
            "listing: id prefix, time range and activity",
            prefix_range_activity,
        ),
        case(
            "listing: pages of one state, bounded counts, a bulk retry in batches",
            pages_counts_bulk_retry,
        ),
        case(
            "listing: the failing types come from the inbox",
            failing_types_aggregate,
        ),
    ]
}

/// An inbox whose one handler (for [`PAID`]) succeeds.
fn accepting(bed: &Bed, seen: &Shared) -> Result<Inbox, String> {
    crate::cases::builder(bed, seen)
        .on(PAID, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())
}

/// Two unhandled types stored `skipped`, interleaved, more than a Redis
/// retry batch (500) of each.
const EACH: usize = 550;

async fn pages_counts_bulk_retry(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = accepting(&bed, &seen)?;
    let stem = unique("pg");
    let (ta, tb) = ("listing.a", "listing.b");
    let all: Vec<(String, &str)> = (0..EACH)
        .flat_map(|i| [(format!("{stem}_a{i}"), ta), (format!("{stem}_b{i}"), tb)])
        .collect();
    for chunk in all.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for (id, ty) in chunk {
            let ev = crate::event_of(ty, id);
            let (inbox, seen) = (inbox.clone(), seen.clone());
            set.spawn(async move { deliver(&inbox, &ev, &seen, Duration::from_secs(5)).await });
        }
        for stored in set.join_all().await {
            ensure(stored, || "a delivery was refused".into())?;
        }
    }

    // Every page of one state and type, both orders: each event once, in
    // the listing's order, the last page saying there is no more.
    for (newest_first, limit) in [(true, 100u32), (false, 77)] {
        let mut filter = ListFilter {
            state: Some(State::Skipped),
            event_type: Some(ta.to_owned()),
            newest_first,
            limit,
            ..Default::default()
        };
        let (mut got, mut pages) = (Vec::new(), 0);
        loop {
            let page = inbox.list_page(&filter).await.map_err(|e| e.to_string())?;
            pages += 1;
            ensure(page.records.len() <= limit as usize, || {
                "an oversized page".into()
            })?;
            ensure(page.records.iter().all(|r| r.body.is_empty()), || {
                "a listing read bodies".into()
            })?;
            got.extend(page.records.into_iter().map(|r| r.cursor()));
            match page.next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
            ensure(pages < 100, || "the pages never end".into())?;
        }
        let mut want = got.clone();
        want.sort();
        if newest_first {
            want.reverse();
        }
        want.dedup();
        ensure(got.len() == EACH && got == want, || {
            format!(
                "newest first {newest_first}: {} cursors over {pages} pages, {} distinct, in order: {}",
                got.len(),
                want.len(),
                got == want
            )
        })?;
    }

    // Counts: bounded, exact under the bound.
    let count = |state: State, ty: Option<&str>, at_most: u64| {
        let inbox = &inbox;
        let filter = ListFilter {
            state: Some(state),
            event_type: ty.map(str::to_owned),
            ..Default::default()
        };
        async move {
            inbox
                .count(&filter, at_most)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let n = count(State::Skipped, None, 1000).await?;
    ensure(n == Count::AtLeast(1001), || {
        format!("skipped, at most 1000: {n:?}")
    })?;
    let n = count(State::Skipped, None, 5000).await?;
    ensure(n == Count::Exactly(2 * EACH as u64), || {
        format!("skipped: {n:?}")
    })?;
    let n = count(State::Skipped, Some(ta), 1000).await?;
    ensure(n == Count::Exactly(EACH as u64), || {
        format!("skipped {ta}: {n:?}")
    })?;
    let n = count(State::Skipped, Some(tb), 100).await?;
    ensure(n == Count::AtLeast(101), || {
        format!("skipped {tb}, at most 100: {n:?}")
    })?;

    // A bulk retry of one type, its events interleaved with the other's:
    // every one of them moves, none of the other type.
    let moved = inbox
        .retry(&RetryFilter {
            skipped: true,
            event_type: Some(ta.to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    ensure(moved == EACH as u64, || {
        format!("{moved} of {EACH} retried")
    })?;
    let pending = count(State::Pending, Some(ta), 5000).await?;
    let left = count(State::Skipped, None, 5000).await?;
    let left_b = count(State::Skipped, Some(tb), 5000).await?;
    ensure(
        pending == Count::Exactly(EACH as u64)
            && left == left_b
            && left == Count::Exactly(EACH as u64),
        || {
            format!(
                "after the retry: pending {ta} {pending:?}, skipped {left:?}, of {tb} {left_b:?}"
            )
        },
    )?;
    Ok(Ran::Passed)
}

async fn failing_types_aggregate(bed: Arc<Bed>) -> Result<Ran, String> {
    const DEAD: &str = "invoice.failed_for_good";
    const REFUNDED: &str = "invoice.refunded";
    let seen = Shared::default();
    let handlers = |b: plugipay_webhook_dispatch::inbox::InboxBuilder| {
        b.on(PAID, |e: WebhookEvent| async move {
            Err::<(), _>(std::io::Error::other(format!("ledger down for {}", e.id())))
        })
        .on(DEAD, |e: WebhookEvent| async move {
            Err::<(), _>(std::io::Error::other(format!(
                "no such customer in {}",
                e.id()
            )))
        })
        .on(REFUNDED, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
    };
    // One attempt each: the DEAD type's events die; then an inbox with
    // more attempts and a long backoff leaves PAID's events retrying.
    let once = handlers(crate::cases::builder(&bed, &seen).max_attempts(1))
        .build()
        .map_err(|e| e.to_string())?;
    let stem = unique("ft");
    for i in 0..3 {
        deliver(
            &once,
            &crate::event_of(DEAD, &format!("{stem}_d{i}")),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    for i in 0..4 {
        deliver(
            &once,
            &crate::event_of(REFUNDED, &format!("{stem}_r{i}")),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    let workers = once.start_workers(2);
    let settled = wait_for(&once, Duration::from_secs(15), |s| {
        s.count(State::Dead) == 3 && s.count(State::Done) == 4
    })
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled?;
    let patient = handlers(
        crate::cases::builder(&bed, &seen)
            .max_attempts(5)
            .retry_backoff(Duration::from_secs(600), Duration::from_secs(600)),
    )
    .build()
    .map_err(|e| e.to_string())?;
    for i in 0..2 {
        deliver(
            &patient,
            &event(&format!("{stem}_p{i}")),
            &seen,
            Duration::from_secs(5),
        )
        .await;
    }
    let workers = patient.start_workers(2);
    let settled = wait_for(&patient, Duration::from_secs(15), |s| {
        s.count(State::Pending) == 2 && s.count(State::Running) == 0 && s.oldest_due_ms == 0
    })
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
    settled?;
    // Not yet failed: a fresh pending event is not counted.
    deliver(
        &patient,
        &event(&format!("{stem}_fresh")),
        &seen,
        Duration::from_secs(5),
    )
    .await;

    let got = patient
        .failing_types(500, 10)
        .await
        .map_err(|e| e.to_string())?;
    let summary: Vec<(&str, u64, u64)> = got
        .iter()
        .map(|f| (f.event_type.as_str(), f.dead, f.retrying))
        .collect();
    ensure(summary == [(DEAD, 3, 0), (PAID, 0, 2)], || {
        format!("{summary:?}")
    })?;
    ensure(
        got[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no such customer in"))
            && got[1]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("ledger down for")),
        || format!("{got:?}"),
    )?;
    let top = patient
        .failing_types(500, 1)
        .await
        .map_err(|e| e.to_string())?;
    ensure(top.len() == 1 && top[0].event_type == DEAD, || {
        format!("top 1: {top:?}")
    })?;
    Ok(Ran::Passed)
}

/// Waits until the stats satisfy `done`.
async fn wait_for(
    inbox: &Inbox,
    within: Duration,
    done: impl Fn(&plugipay_webhook_dispatch::inbox::Stats) -> bool,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let stats = inbox.stats().await.map_err(|e| e.to_string())?;
        if done(&stats) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("not settled: {stats:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn prefix_range_activity(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = accepting(&bed, &seen)?;
    // Two families of ids, with a `%` and an `_` that a LIKE would take as
    // wildcards.
    let stem = unique("lst");
    let a: Vec<String> = (0..3).map(|i| format!("{stem}_a%{i}")).collect();
    let b: Vec<String> = (0..2).map(|i| format!("{stem}_ab{i}")).collect();
    for id in &a {
        deliver(&inbox, &event(id), &seen, Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for id in &b {
        deliver(&inbox, &event(id), &seen, Duration::from_secs(5)).await;
    }
    let ids = |f: ListFilter| {
        let inbox: &Inbox = &inbox;
        async move {
            let mut v: Vec<String> = inbox
                .list_with(&f)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| r.id)
                .collect();
            v.sort();
            Ok::<_, String>(v)
        }
    };
    let got = ids(ListFilter {
        id_prefix: Some(format!("{stem}_a%")),
        limit: 100,
        ..Default::default()
    })
    .await?;
    ensure(got == a, || format!("prefix {stem}_a%: {got:?}, not {a:?}"))?;
    let got = ids(ListFilter {
        id_prefix: Some(format!("{stem}_a")),
        limit: 100,
        ..Default::default()
    })
    .await?;
    ensure(got.len() == 5, || format!("prefix {stem}_a: {got:?}"))?;
    let got = ids(ListFilter {
        id_prefix: Some(stem.clone()),
        until_ms: Some(cut),
        newest_first: true,
        limit: 100,
        ..Default::default()
    })
    .await?;
    ensure(got == a, || format!("before the cut: {got:?}, not {a:?}"))?;
    let got = ids(ListFilter {
        id_prefix: Some(stem.clone()),
        since_ms: Some(cut),
        limit: 100,
        ..Default::default()
    })
    .await?;
    ensure(got == b, || format!("after the cut: {got:?}, not {b:?}"))?;

    // Activity: five received in the last buckets; five done once the
    // workers have run.
    let workers = inbox.start_workers(2);
    let settled = quiescent(&inbox, &seen, Duration::from_secs(15)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let records = settled?;
    let done = records
        .iter()
        .filter(|r| r.id.starts_with(&stem) && r.state == State::Done)
        .count();
    ensure(done == 5, || format!("{done} of 5 done"))?;
    let activity = inbox
        .activity(Duration::from_secs(60), 60)
        .await
        .map_err(|e| e.to_string())?;
    ensure(
        activity.received.len() == 60 && activity.processed.len() == 60,
        || format!("{activity:?}"),
    )?;
    let (received, processed): (u64, u64) = (
        activity.received.iter().sum(),
        activity.processed.iter().sum(),
    );
    // A fresh bed: exactly ours, in the last two buckets (the run may
    // cross a minute).
    ensure(received == 5 && processed == 5, || {
        format!("received {received}, processed {processed}: {activity:?}")
    })?;
    let recent: u64 = activity.received[58..].iter().sum();
    ensure(recent == 5, || {
        format!("received counted in old buckets: {activity:?}")
    })?;
    Ok(Ran::Passed)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
