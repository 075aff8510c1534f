//! SQLite group commit: deliveries received together share one
//! transaction, each in a savepoint of its own — a row the database refuses
//! fails its own delivery only (503), the others of its batch are stored
//! (202) and stay stored. Seen failing with a failed row ending the whole
//! batch: every delivery of the batch answered 503 and nothing stored. A
//! batch whose transaction stalls past the store timeout answers every one
//! of its deliveries 503 and stores none (seen failing with the batch
//! answered 202 when its transaction did not commit).

#![cfg(feature = "sqlite")]

use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox, State};
use plugipay_webhook_dispatch::Outcome;

const SECRET: &str = "whsec_group_commit";
const PAID: &str = "plugipay.invoice.paid.v1";

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, PAID)
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

/// A fresh SQLite inbox (its store timeout, its receive window) whose
/// table carries `trigger` — a row refused, or a statement kept busy — and
/// its directory.
async fn inbox_with(
    name: &str,
    timeout: Duration,
    window: Duration,
    trigger: &str,
) -> (Inbox, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("plugipay-group-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let backend = SqliteInbox::builder(dir.join("inbox.db"))
        .timeout(timeout)
        .receive_window(window)
        .open()
        .await
        .expect("inbox");
    let inbox = Inbox::builder(backend)
        .on(PAID, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
        .handler_timeout(timeout / 3)
        .build()
        .expect("builds");
    inbox.execute(trigger).await.expect("trigger");
    (inbox, dir)
}

/// A trigger that keeps the insert of an id ending in `suffix` busy for
/// `rows` steps of a recursive count.
fn busy_trigger(suffix: &str, rows: u64) -> String {
    format!(
        "CREATE TRIGGER busy BEFORE INSERT ON plugipay_webhook_inbox \
         WHEN NEW.event_id LIKE '%{suffix}' BEGIN SELECT count(*) FROM \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) \
         SELECT x FROM c); END"
    )
}

/// 40 deliveries at once, one of them refused: 39 answered 202 and stored,
/// the refused one 503 and absent — with and without group commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_fails_its_own_delivery_only() {
    for (name, window) in [
        ("grouped", Duration::from_millis(5)),
        ("alone", Duration::ZERO),
    ] {
        // The database refuses one delivery's row (a trigger, as a
        // constraint of the application's would).
        let (inbox, dir) = inbox_with(
            name,
            Duration::from_secs(5),
            window,
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON plugipay_webhook_inbox \
             WHEN NEW.event_id LIKE '%_bad' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .await;
        let ids: Vec<String> = (0..40)
            .map(|i| {
                if i == 17 {
                    format!("evt_{i}_bad")
                } else {
                    format!("evt_{i}")
                }
            })
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for id in &ids {
            let (inbox, ev) = (inbox.clone(), event(id));
            let id = id.clone();
            set.spawn(async move { (id, inbox.receive(&ev).await) });
        }
        let answers = set.join_all().await;
        for (id, outcome) in &answers {
            let want = if id.ends_with("_bad") {
                Outcome::StoreUnavailable
            } else {
                Outcome::Stored
            };
            assert_eq!(*outcome, want, "{name}: {id}");
        }
        let stored = inbox.list(Some(State::Pending), None, 100).await.unwrap();
        let mut got: Vec<String> = stored.into_iter().map(|r| r.id).collect();
        got.sort();
        let mut want: Vec<String> = ids
            .iter()
            .filter(|i| !i.ends_with("_bad"))
            .cloned()
            .collect();
        want.sort();
        assert_eq!(got, want, "{name}: the others are stored");
        // A second delivery of each is a duplicate: what was answered 202
        // stayed stored.
        for id in &want {
            assert_eq!(inbox.receive(&event(id)).await, Outcome::Stored, "{name}");
        }
        assert_eq!(
            inbox.stats().await.unwrap().count(State::Pending),
            39,
            "{name}: duplicates add nothing"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A statement that stalls inside a batch's transaction (one row's trigger
/// burns CPU past the store timeout): every delivery of the batch is
/// answered 503 and none is stored — the transaction rolls back with the
/// connection thrown away — and the inbox stores the next deliveries once
/// the stalled statement has ended. What was answered 202 is stored; what
/// was answered 503 is not (a sender retries it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_batch_answers_no_one_202_and_stores_nothing() {
    let (inbox, dir) = inbox_with(
        "stall",
        Duration::from_millis(300),
        Duration::from_millis(5),
        &busy_trigger("_slow", 30_000_000),
    )
    .await;
    let ids: Vec<String> = (0..12)
        .map(|i| {
            if i == 0 {
                format!("evt_{i}_slow")
            } else {
                format!("evt_{i}")
            }
        })
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for id in &ids {
        let (inbox, ev, id) = (inbox.clone(), event(id), id.clone());
        set.spawn(async move { (id, inbox.receive(&ev).await) });
    }
    let answers = set.join_all().await;
    let acked: Vec<&String> = answers
        .iter()
        .filter(|(_, o)| *o == Outcome::Stored)
        .map(|(id, _)| id)
        .collect();
    assert!(
        answers
            .iter()
            .any(|(id, o)| id.ends_with("_slow") && *o == Outcome::StoreUnavailable),
        "the stalled delivery: {answers:?}"
    );
    // Until the stalled statement ends and its connection closes, the file
    // is locked: the next delivery is stored once it has.
    let after = event("evt_after");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while inbox.receive(&after).await != Outcome::Stored {
        assert!(
            std::time::Instant::now() < deadline,
            "the inbox never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored: Vec<String> = inbox
        .list(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for (id, outcome) in &answers {
        let kept = stored.contains(id);
        match outcome {
            Outcome::Stored => assert!(kept, "{id} was answered 202 and is not stored"),
            _ => assert!(!kept, "{id} was answered 503 and is stored: {stored:?}"),
        }
    }
    assert!(
        acked.len() < ids.len() - 1,
        "the stalled row's batch shared its fate: {answers:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The caller committing a batch goes away mid-commit (its request
/// dropped: here its task aborted while a row's trigger runs): the batch
/// still commits, and its other callers are answered 202 with their rows
/// stored. Seen failing with the commit run by the caller itself: the
/// others were answered 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committing_caller_that_goes_away_does_not_take_its_batch_with_it() {
    // The first row's trigger keeps the batch's transaction busy (well
    // under the store timeout).
    let (inbox, dir) = inbox_with(
        "gone",
        Duration::from_secs(5),
        Duration::from_millis(100),
        &busy_trigger("_busy", 3_000_000),
    )
    .await;
    // The first caller takes the turn and waits the window; the others
    // join its batch meanwhile.
    let first = {
        let (inbox, ev) = (inbox.clone(), event("evt_0_busy"));
        tokio::spawn(async move { inbox.receive(&ev).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut others = tokio::task::JoinSet::new();
    for i in 1..6 {
        let (inbox, ev, id) = (
            inbox.clone(),
            event(&format!("evt_{i}")),
            format!("evt_{i}"),
        );
        others.spawn(async move { (id, inbox.receive(&ev).await) });
    }
    // Past the window, while the busy row runs: the first caller is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.abort();
    let answers = others.join_all().await;
    let stored: Vec<String> = inbox
        .list(None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for (id, outcome) in &answers {
        assert_eq!(*outcome, Outcome::Stored, "{id}: {answers:?}");
        assert!(stored.contains(id), "{id} answered 202, not stored");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
