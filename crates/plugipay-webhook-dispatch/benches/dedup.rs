//! Added latency per delivery of each de-duplication backend: one
//! `Dispatcher::dispatch` of a fresh event (claim, no-op handler, complete).
//!
//! eval "$(scripts/services)"   # PostgreSQL and Redis on 127.0.0.1
//! cargo bench -p plugipay-webhook-dispatch --all-features --bench dedup

use std::sync::Arc;

use criterion::{criterion_main, BatchSize, Criterion};
use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook::{Verifier, WebhookEvent};
use plugipay_webhook_dispatch::{
    DedupStore, Dispatcher, MemoryStore, PostgresStore, RedisStore, SqliteStore,
};

/// A fresh event (a new id), built outside the timed part.
fn fresh(verifier: &Verifier) -> WebhookEvent {
    TestDelivery::new("whsec_bench", "plugipay.invoice.paid.v1")
        .verify_with(verifier)
        .expect("verifies")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut stores: Vec<(&str, Arc<dyn DedupStore>)> =
        vec![("memory", Arc::new(MemoryStore::with_capacity(10_000_000)))];
    let dir = std::env::temp_dir().join(format!("plugipay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    stores.push((
        "sqlite",
        Arc::new(
            rt.block_on(SqliteStore::open(dir.join("bench.sqlite3")))
                .expect("sqlite"),
        ),
    ));
    match std::env::var("PLUGIPAY_TEST_POSTGRES_URL") {
        Ok(url) => stores.push(("postgres", Arc::new(rt.block_on(PostgresStore::connect(&url)).expect("postgres")))),
        Err(_) => eprintln!("*** postgres skipped: PLUGIPAY_TEST_POSTGRES_URL unset (eval \"$(scripts/services)\") ***"),
    }
    match std::env::var("PLUGIPAY_TEST_REDIS_URL") {
        Ok(url) => stores.push((
            "redis",
            Arc::new(rt.block_on(RedisStore::connect(&url)).expect("redis")),
        )),
        Err(_) => eprintln!(
            "*** redis skipped: PLUGIPAY_TEST_REDIS_URL unset (eval \"$(scripts/services)\") ***"
        ),
    }
    let verifier = Verifier::new("whsec_bench");
    let mut group = c.benchmark_group("dispatch_fresh_event");
    for (name, store) in stores {
        let dispatcher = Dispatcher::builder_shared(store)
            .on("plugipay.invoice.paid.v1", |_e| async {
                Ok::<_, std::io::Error>(())
            })
            .build()
            .expect("build");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || (dispatcher.clone(), fresh(&verifier)),
                |(d, ev)| async move { d.dispatch(&ev).await },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
