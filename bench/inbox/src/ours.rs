//! plugipay-webhook's inbox: `Inbox::receive` for each event, then workers
//! whose transactional handler inserts the ledger row in the same
//! transaction as the event's move to `done` (SQL backends).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugipay_webhook_dispatch::inbox::{Inbox, PostgresInbox, RedisInbox, SqlValue, SqliteInbox};
use plugipay_webhook_dispatch::Outcome as Stored;

use plugipay_webhook::{Verifier, WebhookEvent};

use crate::measure::{
    body, client_cpu, enqueue_all, fresh_ledger, ledger_count, pg, server_cpu, until_done, Args,
    Outcome, SECRET, TYPE,
};

/// `n` verified events as an adapter hands them over (the body of
/// [`body`], its signature header kept), built before anything is timed.
pub async fn events(n: usize) -> Vec<WebhookEvent> {
    let verifier = Verifier::new(SECRET);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let body = bytes::Bytes::from(body(i));
        let signature = plugipay_webhook::testing::sign_header_now(SECRET, &body);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            plugipay_webhook::SIGNATURE_HEADER,
            signature.parse().expect("a header"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let head = plugipay_webhook::http::HttpHead::new("/webhooks/plugipay", &headers);
        out.push(
            plugipay_webhook::http::receive(Some(&verifier), &head, One(Some(body)))
                .await
                .expect("verifies"),
        );
    }
    out
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

fn ledger_handler(
    b: plugipay_webhook_dispatch::inbox::InboxBuilder,
) -> plugipay_webhook_dispatch::inbox::InboxBuilder {
    b.on_tx(TYPE, |tx, event| {
        Box::pin(async move {
            let total = event.object()["total"].as_i64().unwrap_or(0);
            tx.execute(
                "INSERT INTO bench_ledger (event_id, amount) VALUES ($1, $2)",
                &[SqlValue::from(event.id()), SqlValue::from(total)],
            )
            .await?;
            Ok(())
        })
    })
}

async fn run(
    args: &Args,
    system: &str,
    note: String,
    inbox: Inbox,
    done: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>>,
) -> Outcome {
    let evs = Arc::new(events(args.events).await);
    let cpu0 = (server_cpu(), client_cpu());
    let receiver = inbox.clone();
    let list = evs.clone();
    let enqueued = enqueue_all(args.events, args.callers, move |i| {
        let (inbox, list) = (receiver.clone(), list.clone());
        async move {
            assert_eq!(inbox.receive(&list[i]).await, Stored::Stored);
        }
    })
    .await;
    let cpu1 = (server_cpu(), client_cpu());
    let start = Instant::now();
    let workers = inbox.start_workers(args.workers);
    let process_s = until_done(start, args.events, done).await;
    let cpu2 = (server_cpu(), client_cpu());
    workers.shutdown(Duration::from_secs(10)).await;
    Outcome::of(system, note, args, enqueued, process_s, [cpu0, cpu1, cpu2])
}

pub async fn postgres(args: &Args) -> Outcome {
    let c = Arc::new(pg(&args.url).await);
    fresh_ledger(&c, &["DROP TABLE IF EXISTS plugipay_webhook_inbox"]).await;
    let mut builder = PostgresInbox::builder(&args.url);
    if args.connections > 0 {
        builder = builder.connections(args.connections);
    }
    let backend = builder.connect().await.expect("the inbox");
    c.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let inbox = ledger_handler(Inbox::builder(backend).poll_interval(Duration::from_millis(100)))
        .build()
        .expect("inbox");
    let note = format!(
        "on_tx ledger insert; receive connections {}",
        if args.connections > 0 {
            args.connections
        } else {
            1
        }
    );
    run(args, "plugipay", note, inbox, move || {
        let c = c.clone();
        Box::pin(async move { ledger_count(&c).await })
    })
    .await
}

pub async fn sqlite(args: &Args) -> Outcome {
    let path = std::path::PathBuf::from(&args.url);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut builder = SqliteInbox::builder(&path);
    if let Some(us) = args.receive_window_us {
        builder = builder.receive_window(Duration::from_micros(us as u64));
    }
    let backend = builder.open().await.expect("sqlite inbox");
    let window = args
        .receive_window_us
        .map_or_else(|| "default".to_owned(), |us| format!("{us} µs"));
    let inbox = ledger_handler(Inbox::builder(backend).poll_interval(Duration::from_millis(100)))
        .build()
        .expect("inbox");
    inbox
        .execute("CREATE TABLE bench_ledger (event_id TEXT PRIMARY KEY, amount INTEGER NOT NULL)")
        .await
        .expect("ledger");
    let counter = inbox.clone();
    run(
        args,
        "plugipay-sqlite",
        format!("on_tx ledger insert; synchronous=FULL; receive window {window}"),
        inbox,
        move || {
            let inbox = counter.clone();
            Box::pin(async move {
                inbox
                    .stats()
                    .await
                    .map(|s| s.count(plugipay_webhook_dispatch::inbox::State::Done) as usize)
                    .unwrap_or(0)
            })
        },
    )
    .await
}

pub async fn redis(args: &Args) -> Outcome {
    let backend = RedisInbox::builder(&args.url)
        .prefix(&format!("bench{}", std::process::id()))
        .connect()
        .await
        .expect("redis inbox");
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let inbox = Inbox::builder(backend)
        .poll_interval(Duration::from_millis(100))
        .on(TYPE, move |_event| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                Ok::<_, std::io::Error>(())
            }
        })
        .build()
        .expect("inbox");
    let counter = inbox.clone();
    let out = run(
        args,
        "plugipay-redis",
        "plain handler (no transactions on Redis)".into(),
        inbox,
        move || {
            let inbox = counter.clone();
            Box::pin(async move {
                inbox
                    .stats()
                    .await
                    .map(|s| s.count(plugipay_webhook_dispatch::inbox::State::Done) as usize)
                    .unwrap_or(0)
            })
        },
    )
    .await;
    assert!(handled.load(Ordering::Relaxed) >= args.events);
    out
}
