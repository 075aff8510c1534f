//! One inbox (SQLite, in a temporary directory) with events in every state
//! a console shows, and the console over it.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_console::{dev, Auth, Console};
use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox, State, Workers};
use plugipay_webhook_dispatch::Outcome;

pub const SECRET: &str = "whsec_console_test";
pub const TOKEN: &str = "console-test-token-0123456789";
pub const PAID: &str = "plugipay.invoice.paid.v1";
/// Its handler fails each event's first attempt (max 1 attempt: dead), then
/// succeeds: a retry from the console makes it done.
pub const REFUND: &str = "plugipay.refund.succeeded.v1";
/// No handler: skipped.
pub const PAYOUT: &str = "plugipay.payout.paid.v1";
pub const XSS: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";

pub struct Fixture {
    pub inbox: Inbox,
    pub workers: Option<Workers>,
    pub dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An event as an adapter hands it over: received over "HTTP", so that its
/// signature header is kept.
pub async fn event(event_type: &str, id: &str, object: serde_json::Value) -> WebhookEvent {
    let request: http::Request<bytes::Bytes> = TestDelivery::new(SECRET, event_type)
        .id(id)
        .occurred_at(Some("2026-12-01T10:00:00Z"))
        .object(object)
        .into_request("/webhooks/plugipay");
    let (parts, body) = request.into_parts();
    let head = plugipay_webhook::http::HttpHead::new("/webhooks/plugipay", &parts.headers);
    let verifier = Verifier::new(SECRET);
    plugipay_webhook::http::receive(Some(&verifier), &head, One(Some(body)))
        .await
        .expect("verifies")
}

/// A body stream of one chunk.
struct One(Option<bytes::Bytes>);

impl futures_core::Stream for One {
    type Item = Result<bytes::Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take().map(Ok))
    }
}

static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The inbox: `paid` invoice.paid events (done), two refunds (dead), one
/// payout (skipped), one invoice whose note holds markup (done); workers
/// running.
pub async fn fixture(paid: usize) -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "plugipay-console-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let backend = SqliteInbox::open(dir.join("inbox.sqlite3"))
        .await
        .expect("sqlite inbox");
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let inbox = Inbox::builder(backend)
        .max_attempts(1)
        .poll_interval(Duration::from_millis(50))
        .on(PAID, |_e: WebhookEvent| async {
            Ok::<_, std::io::Error>(())
        })
        .on(REFUND, move |e: WebhookEvent| {
            let first = failed_once.lock().unwrap().insert(e.id().to_owned());
            async move {
                if first {
                    Err(std::io::Error::other("ledger: account <locked> & frozen"))
                } else {
                    Ok(())
                }
            }
        })
        .build()
        .expect("inbox");
    for i in 0..paid {
        let id = format!("evt_paid_{i:04}");
        let object = serde_json::json!({"id": format!("inv_{}", i % 3), "total": 4200 + i});
        assert_eq!(
            inbox.receive(&event(PAID, &id, object).await).await,
            Outcome::Stored
        );
    }
    for id in ["evt_refund_a", "evt_refund_b"] {
        let object = serde_json::json!({"id": format!("re_{id}"), "amount": 500});
        assert_eq!(
            inbox.receive(&event(REFUND, id, object).await).await,
            Outcome::Stored
        );
    }
    let object = serde_json::json!({"id": "po_1", "amount": 9000});
    assert_eq!(
        inbox
            .receive(&event(PAYOUT, "evt_payout", object).await)
            .await,
        Outcome::Stored
    );
    let object = serde_json::json!({"id": "inv_0", "total": 1, "note": XSS});
    assert_eq!(
        inbox
            .receive(&event(PAID, "evt_markup", object).await)
            .await,
        Outcome::Stored
    );
    let workers = inbox.start_workers(1);
    let fixture = Fixture {
        inbox,
        workers: Some(workers),
        dir,
    };
    fixture.settle().await;
    fixture
}

impl Fixture {
    /// Waits until nothing is pending or running.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.inbox.stats().await.unwrap();
            if s.count(State::Pending) + s.count(State::Running) == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the inbox never settled: {s:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn state_of(&self, id: &str) -> State {
        self.inbox.get(id).await.unwrap()[0].state
    }

    pub fn console(&self, read_only: bool) -> Console {
        Console::builder(self.inbox.clone(), Auth::bearer(TOKEN))
            .verifier(Verifier::new(SECRET))
            .read_only(read_only)
            .build()
            .expect("console")
    }
}

/// A development receiver's deliveries, in memory: Replay counts and
/// answers `204`.
#[derive(Default, Clone)]
pub struct MemoryDeliveries {
    pub all: Arc<Mutex<Vec<dev::Delivery>>>,
}

pub fn delivery(seq: u64, body: &str, verdict: dev::Verdict, explain: &[&str]) -> dev::Delivery {
    use dev::{Delivery, Verdict};
    let sig = plugipay_webhook::testing::sign_header(SECRET, 1_796_000_000, body.as_bytes());
    Delivery {
        seq,
        received_at_ms: 1_796_000_000_000 + seq as i64 * 1000,
        method: "POST".into(),
        path: "/webhooks/plugipay".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-plugipay-signature".into(), sig),
        ],
        body: bytes::Bytes::from(body.to_owned()),
        answered: Some(if matches!(verdict, Verdict::Verified { .. }) {
            204
        } else {
            400
        }),
        verdict,
        explain: explain.iter().map(|s| (*s).to_owned()).collect(),
        forwarded: None,
        pinned: false,
        replays: 0,
        last_replay: None,
    }
}

impl dev::Deliveries for MemoryDeliveries {
    fn list(
        &self,
        q: dev::DeliveryQuery,
    ) -> dev::BoxFuture<'_, Result<Vec<dev::Delivery>, dev::DeliveryError>> {
        use dev::Verdict;
        let all = self.all.lock().unwrap();
        let mut out: Vec<_> = all
            .iter()
            .rev()
            .filter(|d| q.before.is_none_or(|b| d.seq < b))
            .filter(|d| !q.pinned_only || d.pinned)
            .filter(|d| {
                q.verified
                    .is_none_or(|v| v == matches!(d.verdict, Verdict::Verified { .. }))
            })
            .cloned()
            .collect();
        out.truncate(q.limit);
        Box::pin(async move { Ok(out) })
    }

    fn get(
        &self,
        seq: u64,
    ) -> dev::BoxFuture<'_, Result<Option<dev::Delivery>, dev::DeliveryError>> {
        let found = self
            .all
            .lock()
            .unwrap()
            .iter()
            .find(|d| d.seq == seq)
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn set_pinned(
        &self,
        seq: u64,
        pinned: bool,
    ) -> dev::BoxFuture<'_, Result<bool, dev::DeliveryError>> {
        let mut all = self.all.lock().unwrap();
        let found = all
            .iter_mut()
            .find(|d| d.seq == seq)
            .map(|d| d.pinned = pinned);
        Box::pin(async move { Ok(found.is_some()) })
    }

    fn replay_target(&self) -> Option<String> {
        Some("http://127.0.0.1:4000/webhooks".into())
    }

    fn replay(&self, seq: u64) -> dev::BoxFuture<'_, Result<String, dev::DeliveryError>> {
        let mut all = self.all.lock().unwrap();
        let found = all.iter_mut().find(|d| d.seq == seq).map(|d| {
            d.replays += 1;
            d.last_replay = Some("204 in 1.2 ms".into());
            "204 in 1.2 ms".to_owned()
        });
        Box::pin(async move { found.ok_or_else(|| dev::DeliveryError("no such delivery".into())) })
    }
}

impl Fixture {
    /// The console as `listen --ui` builds it: deliveries, no retries.
    pub fn dev_console(&self, deliveries: MemoryDeliveries) -> Console {
        Console::builder(self.inbox.clone(), Auth::bearer(TOKEN))
            .verifier(Verifier::new(SECRET))
            .retries(false)
            .deliveries(deliveries)
            .build()
            .expect("console")
    }
}
