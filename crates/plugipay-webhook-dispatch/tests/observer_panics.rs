//! A panicking observer (`observe`, `on_processed`) never takes a worker
//! down: the panic is caught and logged, the event's outcome stays stored,
//! and the same worker goes on with the next events. (Before: the worker
//! task died on the first panic and was never restarted; receivers kept
//! answering 202 while every later event stayed pending forever.)

#![cfg(feature = "sqlite")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox, State};
use plugipay_webhook_dispatch::Outcome;

const SECRET: &str = "whsec_observer_panics";

fn event(id: &str) -> WebhookEvent {
    TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
        .id(id)
        .verify_with(&Verifier::new(SECRET))
        .expect("verifies")
}

async fn all_done(inbox: &Inbox, n: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = inbox.stats().await.map_err(|e| e.to_string())?;
        if stats.count(State::Done) == n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {n} done after 10 s",
                stats.count(State::Done)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_leaves_its_worker_running() {
    for which in ["observe", "on_processed"] {
        let dir =
            std::env::temp_dir().join(format!("plugipay-observer-{}-{which}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let builder = Inbox::builder(
            SqliteInbox::open(dir.join("inbox.db"))
                .await
                .expect("inbox"),
        )
        .on("plugipay.invoice.paid.v1", |_e: WebhookEvent| async {
            Ok::<_, std::convert::Infallible>(())
        });
        let builder = if which == "observe" {
            builder.observe(move |_id, _type, _processed| {
                assert!(
                    c.fetch_add(1, Ordering::SeqCst) != 0,
                    "the observer's first call panics"
                );
            })
        } else {
            builder.on_processed(move |_p| {
                assert!(
                    c.fetch_add(1, Ordering::SeqCst) != 0,
                    "the observer's first call panics"
                );
            })
        };
        let inbox = builder.build().expect("inbox");
        // One worker: if it dies, nothing else processes.
        let workers = inbox.start_workers(1);
        assert_eq!(inbox.receive(&event("first")).await, Outcome::Stored);
        all_done(&inbox, 1).await.expect(which);
        for i in 0..5 {
            assert_eq!(
                inbox.receive(&event(&format!("later_{i}"))).await,
                Outcome::Stored
            );
        }
        all_done(&inbox, 6).await.expect(which);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "{which}: every event observed"
        );
        workers.shutdown(Duration::from_secs(5)).await;
    }
}
