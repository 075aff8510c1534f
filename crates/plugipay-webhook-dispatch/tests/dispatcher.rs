//! The dispatcher's outcomes, with the in-memory store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::{
    BoxFuture, Claim, ClaimToken, DedupStore, Dispatcher, EventKey, MemoryStore, Outcome,
    StoreError,
};

fn event(event_type: &str, id: &str) -> WebhookEvent {
    TestDelivery::new("whsec_t", event_type)
        .id(id)
        .object(serde_json::json!({"id": "inv_1", "total": 4200}))
        .verify_with(&Verifier::new("whsec_t"))
        .expect("verifies")
}

const PAID: &str = "plugipay.invoice.paid.v1";

fn counting(
    runs: &Arc<AtomicUsize>,
) -> impl Fn(WebhookEvent) -> BoxFuture<'static, Result<(), std::io::Error>> + Send + Sync + 'static
{
    let runs = runs.clone();
    move |_e| {
        let runs = runs.clone();
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn outcomes_map_to_the_contracts_statuses() {
    let table = [
        (Outcome::Handled, 204, "", None),
        (Outcome::Duplicate, 204, "", None),
        (Outcome::Unknown, 204, "", None),
        (
            Outcome::InProgress,
            409,
            r#"{"error":"in_progress"}"#,
            Some(5),
        ),
        (
            Outcome::HandlerFailed,
            500,
            r#"{"error":"handler_failed"}"#,
            None,
        ),
        (
            Outcome::StoreUnavailable,
            503,
            r#"{"error":"store_unavailable"}"#,
            Some(5),
        ),
    ];
    for (o, status, body, retry) in table {
        assert_eq!(
            (o.status().as_u16(), o.body(), o.retry_after()),
            (status, body, retry),
            "{o:?}"
        );
        let resp = o.to_response();
        assert_eq!(resp.status().as_u16(), status, "{o:?}");
        assert_eq!(&resp.body()[..], body.as_bytes(), "{o:?}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            retry.map(|s: u32| s.to_string()),
            "{o:?}"
        );
        assert_eq!(
            resp.headers().get("content-type").is_some(),
            !body.is_empty(),
            "{o:?}"
        );
    }
}

#[tokio::test]
async fn handled_once_then_duplicates_unknown_types_acknowledged() {
    let runs = Arc::new(AtomicUsize::new(0));
    let d = Dispatcher::builder(MemoryStore::new())
        .on(PAID, counting(&runs))
        .build()
        .expect("build");
    let ev = event(PAID, "evt_1");
    assert_eq!(d.dispatch(&ev).await, Outcome::Handled);
    assert_eq!(d.dispatch(&ev).await, Outcome::Duplicate);
    assert_eq!(d.dispatch(&ev).await, Outcome::Duplicate);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        d.dispatch(&event("plugipay.brand.new.v1", "evt_2")).await,
        Outcome::Unknown
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_run_the_handler_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let d = Dispatcher::builder(MemoryStore::new())
        .on(PAID, move |_e| {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .expect("build");
    let ev = event(PAID, "evt_c");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (d, ev) = (d.clone(), ev.clone());
            tokio::spawn(async move { d.dispatch(&ev).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("join"));
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Handled).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::InProgress)
            .count(),
        19
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(d.dispatch(&ev).await, Outcome::Duplicate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_panics_and_timeouts_release_the_claim() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let finished_late = Arc::new(AtomicUsize::new(0));
    let (a, f) = (attempts.clone(), finished_late.clone());
    let d = Dispatcher::builder(MemoryStore::new())
        .lease(Duration::from_secs(2))
        .handler_timeout(Duration::from_millis(300))
        .on(PAID, move |_e| {
            let (a, f) = (a.clone(), f.clone());
            async move {
                match a.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(std::io::Error::other("boom")),
                    1 => panic!("handler bug"),
                    2 => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        f.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        })
        .build()
        .expect("build");
    let ev = event(PAID, "evt_f");
    assert_eq!(d.dispatch(&ev).await, Outcome::HandlerFailed, "error");
    assert_eq!(
        d.dispatch(&ev).await,
        Outcome::HandlerFailed,
        "panic is contained"
    );
    assert_eq!(d.dispatch(&ev).await, Outcome::HandlerFailed, "timeout");
    assert_eq!(
        d.dispatch(&ev).await,
        Outcome::Handled,
        "each failure released the claim"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        finished_late.load(Ordering::SeqCst),
        0,
        "the timed-out handler was aborted"
    );
}

#[tokio::test]
async fn typed_and_blocking_handlers() {
    #[derive(serde::Deserialize)]
    struct Invoice {
        id: String,
        total: u64,
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let d = Dispatcher::builder(MemoryStore::new())
        .on_object(PAID, move |inv: Invoice, _e| {
            let s = s1.clone();
            async move {
                s.lock()
                    .expect("lock")
                    .push(format!("{} {}", inv.id, inv.total));
                Ok::<_, std::io::Error>(())
            }
        })
        .on_blocking("plugipay.refund.succeeded.v1", move |e| {
            s2.lock().expect("lock").push(format!("refund {}", e.id()));
            Ok::<_, std::io::Error>(())
        })
        .on_object("plugipay.payout.paid.v1", |_: Vec<u8>, _e| async {
            Ok::<_, std::io::Error>(())
        })
        .build()
        .expect("build");
    assert_eq!(d.dispatch(&event(PAID, "e1")).await, Outcome::Handled);
    assert_eq!(
        d.dispatch(&event("plugipay.refund.succeeded.v1", "e2"))
            .await,
        Outcome::Handled
    );
    // An object that does not fit the handler's type is a handler failure.
    assert_eq!(
        d.dispatch(&event("plugipay.payout.paid.v1", "e3")).await,
        Outcome::HandlerFailed
    );
    assert_eq!(*seen.lock().expect("lock"), ["inv_1 4200", "refund e2"]);
}

#[test]
fn configuration_is_checked() {
    let err = Dispatcher::builder(MemoryStore::new())
        .lease(Duration::from_secs(10))
        .handler_timeout(Duration::from_secs(10))
        .build()
        .expect_err("timeout must be shorter than the lease");
    assert!(err.to_string().contains("shorter than the lease"));
    let d = Dispatcher::builder(MemoryStore::new())
        .on("plugipay.invoice.paid.v1", |_e| async {
            Ok::<_, std::io::Error>(())
        })
        .on("plugipay.invoice.paid.v2", |_e| async {
            Ok::<_, std::io::Error>(())
        })
        .build()
        .expect("build");
    assert_eq!(
        d.version_conflicts(),
        [(
            "plugipay.invoice.paid.v1".to_owned(),
            "plugipay.invoice.paid.v2".to_owned()
        )]
    );
}

/// A store that is down.
struct Down;

impl DedupStore for Down {
    fn claim<'a>(
        &'a self,
        _: &'a EventKey,
        _: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn complete<'a>(
        &'a self,
        _: &'a EventKey,
        _: &'a ClaimToken,
        _: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn release<'a>(
        &'a self,
        _: &'a EventKey,
        _: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
    fn kind(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn an_unreachable_store_is_503_and_the_handler_does_not_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let d = Dispatcher::builder(Down)
        .on(PAID, counting(&runs))
        .build()
        .expect("build");
    assert_eq!(
        d.dispatch(&event(PAID, "e")).await,
        Outcome::StoreUnavailable
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_memory_store_evicts_done_records_oldest_first_never_live_claims() {
    let store = MemoryStore::with_capacity(8);
    let long = Duration::from_secs(3600);
    // Eight done records, completed one second apart.
    for i in 0..8 {
        let k = EventKey::new(format!("done{i}"), "t");
        let Claim::Acquired(t) = store.claim(&k, long).await.expect("claim") else {
            panic!()
        };
        assert!(store.complete(&k, &t, long).await.expect("complete"));
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    // A new event evicts the oldest done record (an eighth of capacity: one).
    assert!(matches!(
        store.claim(&EventKey::new("new0", "t"), long).await,
        Ok(Claim::Acquired(_))
    ));
    assert!(
        matches!(
            store.claim(&EventKey::new("done0", "t"), long).await,
            Ok(Claim::Acquired(_))
        ),
        "oldest evicted"
    );
    assert_eq!(
        store
            .claim(&EventKey::new("done7", "t"), long)
            .await
            .expect("claim"),
        Claim::Done,
        "newest kept"
    );

    // Only live claims: refuse (503) rather than drop one.
    let full = MemoryStore::with_capacity(4);
    for i in 0..4 {
        assert!(matches!(
            full.claim(&EventKey::new(format!("c{i}"), "t"), long).await,
            Ok(Claim::Acquired(_))
        ));
    }
    assert!(full.claim(&EventKey::new("c4", "t"), long).await.is_err());
    for i in 0..4 {
        assert_eq!(
            full.claim(&EventKey::new(format!("c{i}"), "t"), long)
                .await
                .expect("claim"),
            Claim::InProgress
        );
    }
    // Once the leases lapse, the room comes back by itself.
    tokio::time::advance(long + Duration::from_secs(1)).await;
    assert!(matches!(
        full.claim(&EventKey::new("c4", "t"), long).await,
        Ok(Claim::Acquired(_))
    ));
}

/// A handler whose synchronous part panics (before it returns a future) is
/// a handler failure like any other: 500, claim released, the retry runs it.
#[tokio::test]
async fn a_panic_before_the_handlers_future_is_a_failure_and_releases_the_claim() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let d = Dispatcher::builder(MemoryStore::new())
        .on(PAID, move |_e| {
            assert!(
                c.fetch_add(1, Ordering::SeqCst) > 0,
                "the first call panics synchronously"
            );
            async { Ok::<_, std::io::Error>(()) }
        })
        .build()
        .expect("build");
    let ev = event(PAID, "evt_sync_panic");
    assert_eq!(d.dispatch(&ev).await, Outcome::HandlerFailed);
    assert_eq!(d.dispatch(&ev).await, Outcome::Handled, "claim released");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// `retention(Duration::MAX)` — "forever" — neither panics nor poisons the
/// memory store: every later delivery is still answered.
#[tokio::test]
async fn duration_max_is_forever_not_a_poisoned_store() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let d = Dispatcher::builder_shared(store.clone())
        .retention(Duration::MAX)
        .lease(Duration::MAX)
        .on(PAID, counting(&runs))
        .build()
        .expect("forever is a valid retention");
    let ev = event(PAID, "evt_forever");
    assert_eq!(d.dispatch(&ev).await, Outcome::Handled);
    assert_eq!(d.dispatch(&ev).await, Outcome::Duplicate);
    assert_eq!(
        d.dispatch(&event(PAID, "evt_after")).await,
        Outcome::Handled
    );
    // The store itself, called directly with Duration::MAX.
    let key = EventKey::new("evt_direct", PAID);
    let Ok(Claim::Acquired(t)) = store.claim(&key, Duration::MAX).await else {
        panic!("claim")
    };
    assert!(store
        .complete(&key, &t, Duration::MAX)
        .await
        .expect("complete"));
    assert_eq!(
        store.claim(&key, Duration::MAX).await.expect("claim"),
        Claim::Done
    );
    // A handler timeout of "forever" is still refused: it must be shorter
    // than the lease.
    assert!(Dispatcher::builder(MemoryStore::new())
        .handler_timeout(Duration::MAX)
        .lease(Duration::MAX)
        .build()
        .is_err());
}

/// The server drops the request future when the client disconnects: the
/// handler must run to its end anyway and the event be marked done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_dispatch_future_does_not_cut_the_handler_in_half() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let d = Dispatcher::builder(MemoryStore::new())
        .on(PAID, move |_e| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .expect("build");
    let ev = event(PAID, "evt_disconnect");
    // The "client" goes away 50 ms into the handler.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), d.dispatch(&ev))
            .await
            .is_err(),
        "dispatch was still running"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the handler ran to its end"
    );
    assert_eq!(
        d.dispatch(&ev).await,
        Outcome::Duplicate,
        "and the event was marked done"
    );
}

/// A blocking handler past its timeout is never run a second time while
/// the first run goes on (the claim is kept, extended past the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_blocking_handler_keeps_its_claim_until_it_returns() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (r, m, n) = (running.clone(), most.clone(), runs.clone());
    let d = Dispatcher::builder(MemoryStore::new())
        .lease(Duration::from_millis(300))
        .handler_timeout(Duration::from_millis(100))
        .on_blocking(PAID, move |_e| {
            let attempt = n.fetch_add(1, Ordering::SeqCst);
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(900));
            r.fetch_sub(1, Ordering::SeqCst);
            if attempt == 0 {
                Err(std::io::Error::other("the slow first run fails"))
            } else {
                Ok(())
            }
        })
        .build()
        .expect("build");
    let ev = event(PAID, "evt_blocking_slow");
    assert_eq!(d.dispatch(&ev).await, Outcome::HandlerFailed, "timed out");
    let mut seen = Vec::new();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen.push(d.dispatch(&ev).await);
    }
    assert!(seen.iter().all(|o| *o == Outcome::InProgress), "{seen:?}");
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two runs at once");
    // The first run failed when it returned: the claim was released, so
    // the next redelivery runs the handler again (once).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        d.dispatch(&ev).await,
        Outcome::HandlerFailed,
        "second run also outlives the timeout"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        d.dispatch(&ev).await,
        Outcome::Duplicate,
        "its success was recorded"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[test]
fn claim_tokens_are_128_random_bits_and_debug_never_panics() {
    let mut seen = std::collections::HashSet::new();
    let mut ones = [0u32; 128];
    for _ in 0..4096 {
        let t = ClaimToken::new();
        let s = t.as_str();
        assert_eq!(s.len(), 32, "{s}");
        let n = u128::from_str_radix(s, 16).expect("hex");
        for (bit, count) in ones.iter_mut().enumerate() {
            *count += u32::from((n >> bit) & 1 == 1);
        }
        assert!(seen.insert(s.to_owned()));
    }
    // Every bit is random: each is set in about half of 4096 tokens (a
    // token made of time, pid and a counter has fixed or biased bits).
    for (bit, count) in ones.iter().enumerate() {
        assert!(
            (1700..2400).contains(count),
            "bit {bit} set {count}/4096 times"
        );
    }
    // Debug shows a prefix of any stored text, multi-byte characters included.
    for stored in ["aéééé", "ü", "", "0123456789abcdef"] {
        let shown = format!("{:?}", ClaimToken::from_string(stored.to_owned()));
        assert!(shown.starts_with("ClaimToken("), "{shown}");
    }
}
