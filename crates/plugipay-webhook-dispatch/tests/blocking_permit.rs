//! A blocking handler's concurrency slot is held until its thread ends:
//! when the worker gives the lease up (another worker took the event) the
//! thread cannot be stopped, so a second run of the same handler must wait
//! for it — `concurrency(name, 1)` means one at a time, whatever happens to
//! the lease. (Before: the permit was released with the worker's future and
//! a second run started beside the first.)

#![cfg(feature = "sqlite")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox};
use plugipay_webhook_dispatch::Outcome;

const SECRET: &str = "whsec_blocking_permit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_keeps_the_blocking_handlers_slot_until_its_thread_ends() {
    let dir = std::env::temp_dir().join(format!("plugipay-blocking-permit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("inbox.db");
    let (running, most, runs) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (r, m, n) = (running.clone(), most.clone(), runs.clone());
    let inbox = Inbox::builder(SqliteInbox::open(&file).await.expect("inbox"))
        .lease(Duration::from_millis(600))
        .handler_timeout(Duration::from_millis(500))
        .concurrency("slow", 1)
        .on_blocking(
            ("plugipay.invoice.paid.v1", "slow"),
            move |_e: &WebhookEvent| {
                n.fetch_add(1, Ordering::SeqCst);
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1500));
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            },
        )
        .build()
        .expect("inbox");
    let event = TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
        .id("evt_slow")
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies");
    assert_eq!(inbox.receive(&event).await, Outcome::Stored);
    let workers = inbox.start_workers(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the handler never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another worker "takes" the event: the running one's next renewal
    // finds the lease gone and gives the event up; the event is due now.
    let side = rusqlite::Connection::open(&file).unwrap();
    side.busy_timeout(Duration::from_secs(5)).unwrap();
    side.execute(
        "UPDATE plugipay_webhook_inbox SET lease_owner = 'another', due_at = 0 WHERE event_id = 'evt_slow'",
        [],
    )
    .unwrap();
    // Long enough for the other worker to claim it while the first thread
    // still sleeps, and for both runs to end.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert!(
        runs.load(Ordering::SeqCst) >= 2,
        "the event ran again after its lease was taken"
    );
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "concurrency(\"slow\", 1): two runs of the handler at once"
    );
}
