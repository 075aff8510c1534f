//! The peers, run as `bench/inbox` runs the inbox: N events enqueued by C
//! concurrent callers (each one commit), then W concurrent jobs, each
//! inserting the event's ledger row. One JSON line, as the inbox's.
//!
//! - `sqlxmq`: the job's ledger insert and its completion in one
//!   transaction (`complete_with_transaction`): as transactional as the
//!   inbox's `on_tx`.
//! - `graphile_worker`: the ledger insert on its own connection, then the
//!   job completed by the worker (it offers no transaction to a task):
//!   at-least-once, not effectively-once.
//!
//! ```sh
//! inbox-peers sqlxmq --url postgres://… --migrations DIR [--events 20000] [--callers 16] [--workers 16]
//! ```

// Shared with the inbox's harness; not all of it is used here.
#[allow(dead_code)]
#[path = "../../src/measure.rs"]
mod measure;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{
    body, client_cpu, enqueue_all, fresh_ledger, ledger_count, pg, server_cpu, until_done, Args,
    Outcome,
};

fn main() {
    // `--migrations DIR` is this binary's own; the rest is the inbox's.
    let mut raw: Vec<String> = std::env::args().collect();
    let migrations = raw.iter().position(|a| a == "--migrations").map(|i| {
        let dir = raw.remove(i + 1);
        raw.remove(i);
        dir
    });
    let args = Args::parse_from(raw.into_iter().skip(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let result = rt.block_on(async {
        match args.system.as_str() {
            "sqlxmq" => {
                sqlxmq_run(
                    &args,
                    &migrations.expect("--migrations: sqlxmq's migrations directory"),
                )
                .await
            }
            "graphile_worker" => graphile(&args).await,
            other => panic!("unknown system {other}"),
        }
    });
    println!("{}", result.to_json());
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// The ledger row of a job's payload.
fn ledger_row(payload: &serde_json::Value) -> (String, i64) {
    (
        payload["id"].as_str().unwrap_or_default().to_owned(),
        payload["data"]["object"]["total"].as_i64().unwrap_or(0),
    )
}

#[sqlxmq::job(retries = 3)]
async fn ledger_job(
    mut current: sqlxmq::CurrentJob,
) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    let payload: serde_json::Value = current.json()?.unwrap_or_default();
    let (id, total) = ledger_row(&payload);
    let mut tx = current.pool().begin().await?;
    sqlx::query("INSERT INTO bench_ledger (event_id, amount) VALUES ($1, $2)")
        .bind(id)
        .bind(total)
        .execute(&mut *tx)
        .await?;
    current.complete_with_transaction(tx).await?;
    Ok(())
}

async fn sqlxmq_run(args: &Args, migrations: &str) -> Outcome {
    let c = pg(&args.url).await;
    fresh_ledger(&c, &["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"]).await;
    let mut files: Vec<_> = std::fs::read_dir(migrations)
        .expect("sqlxmq's migrations")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".up.sql"))
        .collect();
    files.sort();
    for f in files {
        c.batch_execute(&std::fs::read_to_string(&f).expect("a migration"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    fresh_ledger(&c, &[]).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections((args.callers + args.workers + 4) as u32)
        .connect(&args.url)
        .await
        .expect("a pool");
    let bodies: Arc<Vec<serde_json::Value>> = Arc::new(
        (0..args.events)
            .map(|i| serde_json::from_str(&body(i)).expect("json"))
            .collect(),
    );
    let cpu0 = (server_cpu(), client_cpu());
    let (p, b) = (pool.clone(), bodies.clone());
    let enqueued = enqueue_all(args.events, args.callers, move |i| {
        let (pool, bodies) = (p.clone(), b.clone());
        async move {
            ledger_job
                .builder()
                .set_json(&bodies[i])
                .expect("json")
                .spawn(&pool)
                .await
                .expect("spawned");
        }
    })
    .await;
    let cpu1 = (server_cpu(), client_cpu());
    let start = Instant::now();
    let registry = sqlxmq::JobRegistry::new(&[ledger_job]);
    let runner = registry
        .runner(&pool)
        .set_concurrency(args.workers / 2, args.workers)
        .run()
        .await
        .expect("a runner");
    let c = Arc::new(c);
    let counter = c.clone();
    let process_s = until_done(start, args.events, move || {
        let c = counter.clone();
        async move { ledger_count(&c).await }
    })
    .await;
    let cpu2 = (server_cpu(), client_cpu());
    drop(runner);
    Outcome::of(
        "sqlxmq",
        format!(
            "ledger insert and completion in one transaction; set_concurrency({}, {})",
            args.workers / 2,
            args.workers
        ),
        args,
        enqueued,
        process_s,
        [cpu0, cpu1, cpu2],
    )
}

/// graphile_worker's poll interval and LocalQueue size (its settings for
/// throughput).
const GRAPHILE_POLL_MS: u64 = 20;
const GRAPHILE_BATCH: usize = 64;

/// The handlers' connections, taken in turn.
#[derive(Clone)]
struct Ledger {
    clients: Arc<Vec<tokio_postgres::Client>>,
    next: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct LedgerTask(serde_json::Value);

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl graphile_worker_task_handler::TaskHandler for LedgerTask {
    const IDENTIFIER: &'static str = "ledger";

    async fn run(
        self,
        ctx: graphile_worker::WorkerContext,
    ) -> impl graphile_worker::IntoTaskHandlerResult {
        let ledger = ctx.get_ext::<Ledger>().expect("the ledger");
        let i = ledger.next.fetch_add(1, Ordering::Relaxed) % ledger.clients.len();
        let (id, total) = ledger_row(&self.0);
        ledger.clients[i]
            .execute(
                "INSERT INTO bench_ledger (event_id, amount) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, &total],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

async fn graphile(args: &Args) -> Outcome {
    let c = pg(&args.url).await;
    fresh_ledger(&c, &["DROP SCHEMA IF EXISTS graphile_worker CASCADE"]).await;
    let mut clients = Vec::new();
    for _ in 0..args.workers {
        clients.push(pg(&args.url).await);
    }
    let ledger = Ledger {
        clients: Arc::new(clients),
        next: Arc::new(AtomicUsize::new(0)),
    };
    let worker = Arc::new(
        graphile_worker::WorkerOptions::default()
            .concurrency(args.workers)
            .schema("graphile_worker")
            .define_job::<LedgerTask>()
            .database_url(&args.url)
            .max_pg_conn((args.callers + args.workers + 4) as u32)
            .add_extension(ledger)
            // Its defaults poll once a second and take one job per slot
            // per poll when the jobs were there before the worker started
            // (16/s here): its docs' throughput settings instead, a short
            // poll and the batch-fetching LocalQueue.
            .poll_interval(Duration::from_millis(GRAPHILE_POLL_MS))
            .local_queue(graphile_worker::LocalQueueConfig::default().with_size(GRAPHILE_BATCH))
            .init()
            .await
            .expect("a worker"),
    );
    c.batch_execute("CHECKPOINT").await.expect("checkpoint");
    let bodies: Arc<Vec<serde_json::Value>> = Arc::new(
        (0..args.events)
            .map(|i| serde_json::from_str(&body(i)).expect("json"))
            .collect(),
    );
    let utils = Arc::new(worker.create_utils());
    let cpu0 = (server_cpu(), client_cpu());
    let (u, b) = (utils.clone(), bodies.clone());
    let enqueued = enqueue_all(args.events, args.callers, move |i| {
        let (utils, bodies) = (u.clone(), b.clone());
        async move {
            utils
                .add_job(LedgerTask(bodies[i].clone()), Default::default())
                .await
                .expect("added");
        }
    })
    .await;
    let cpu1 = (server_cpu(), client_cpu());
    let start = Instant::now();
    let running = worker.clone();
    let run = tokio::spawn(async move { running.run().await });
    let c = Arc::new(c);
    let counter = c.clone();
    let process_s = until_done(start, args.events, move || {
        let c = counter.clone();
        async move { ledger_count(&c).await }
    })
    .await;
    let cpu2 = (server_cpu(), client_cpu());
    run.abort();
    Outcome::of("graphile_worker", format!("ledger insert on its own connection, then the job completed by the worker (no transaction offered); poll {GRAPHILE_POLL_MS} ms, LocalQueue size {GRAPHILE_BATCH}"), args, enqueued, process_s, [cpu0, cpu1, cpu2])
}
