//! What the console reads: a listing filtered by id prefix and by a time
//! range, and the activity per bucket (received, done).

use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use plugipay_webhook_dispatch::inbox::{Inbox, ListFilter, State};

use crate::bed::{unique, Bed};
use crate::cases::{case, ensure, Case, Ran};
use crate::{deliver, event, quiescent, Shared, PAID};

pub(crate) fn cases() -> Vec<Case> {
    vec![case(
        "listing: id prefix, time range and activity",
        prefix_range_activity,
    )]
}

async fn prefix_range_activity(bed: Arc<Bed>) -> Result<Ran, String> {
    let seen = Shared::default();
    let inbox = crate::cases::builder(&bed, &seen)
        .on(PAID, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
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
