//! What every run shares, ours and the peers' (peers/ includes this file):
//! arguments, timing the enqueue phase and the processing phase, the
//! server's CPU, the ledger, the JSON line.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "whsec_inbox_bench";
pub const TYPE: &str = "plugipay.invoice.paid.v1";

/// The command line.
pub struct Args {
    pub system: String,
    pub url: String,
    pub events: usize,
    pub callers: usize,
    pub workers: usize,
    /// The receive path's connections (our PostgreSQL inbox).
    pub connections: usize,
    /// Our SQLite inbox's group-commit window, in µs (`None`: its default;
    /// 0: each delivery commits alone).
    pub receive_window_us: Option<usize>,
}

impl Args {
    pub fn parse() -> Args {
        Args::parse_from(std::env::args().skip(1))
    }

    pub fn parse_from(args: impl Iterator<Item = String>) -> Args {
        let mut it = args;
        let mut args = Args {
            system: it.next().expect(
                "a system: plugipay, plugipay-sqlite, plugipay-redis, sqlxmq, graphile_worker",
            ),
            url: String::new(),
            events: 20_000,
            callers: 16,
            workers: 16,
            connections: 0,
            receive_window_us: None,
        };
        while let Some(flag) = it.next() {
            let value = it.next().unwrap_or_else(|| panic!("{flag} takes a value"));
            let n = || {
                value
                    .parse::<usize>()
                    .unwrap_or_else(|_| panic!("{flag} {value}"))
            };
            match flag.as_str() {
                "--url" => args.url = value.clone(),
                "--events" => args.events = n(),
                "--callers" => args.callers = n(),
                "--workers" => args.workers = n(),
                "--connections" => args.connections = n(),
                "--receive-window-us" => args.receive_window_us = Some(n()),
                _ => panic!("unknown flag {flag}"),
            }
        }
        args
    }
}

/// CPU seconds used so far by every process named `postgres` (the server's
/// backends, WAL writer, checkpointer): for the server's CPU per event.
pub fn server_cpu() -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid … utime(14) stime(15)
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.len() > 12 {
            total +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    total as f64 / ticks
}

/// CPU seconds this process (the client: callers and workers) used so far.
pub fn client_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// What one run measured.
#[derive(Default)]
pub struct Outcome {
    pub system: String,
    pub note: String,
    pub events: usize,
    pub callers: usize,
    pub workers: usize,
    pub enqueue_s: f64,
    pub ack_ms: Vec<f64>,
    pub enqueue_cpu_s: f64,
    pub process_s: f64,
    pub process_cpu_s: f64,
    /// The client's CPU in each phase.
    pub client_enqueue_cpu_s: f64,
    pub client_process_cpu_s: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Outcome {
    /// A run's outcome from its two phases: the enqueue phase's wall time
    /// and latencies, the processing phase's wall time, and `cpu`, the
    /// (server, client) CPU seconds at the start, after enqueueing and
    /// after processing.
    pub fn of(
        system: &str,
        note: String,
        args: &Args,
        (enqueue_s, ack_ms): (f64, Vec<f64>),
        process_s: f64,
        cpu: [(f64, f64); 3],
    ) -> Outcome {
        Outcome {
            system: system.to_owned(),
            note,
            events: args.events,
            callers: args.callers,
            workers: args.workers,
            enqueue_s,
            ack_ms,
            enqueue_cpu_s: cpu[1].0 - cpu[0].0,
            process_s,
            process_cpu_s: cpu[2].0 - cpu[1].0,
            client_enqueue_cpu_s: cpu[1].1 - cpu[0].1,
            client_process_cpu_s: cpu[2].1 - cpu[1].1,
        }
    }

    pub fn to_json(&self) -> String {
        let mut ack = self.ack_ms.clone();
        ack.sort_by(f64::total_cmp);
        let n = self.events as f64;
        serde_json::json!({
            "system": self.system,
            "note": self.note,
            "events": self.events,
            "callers": self.callers,
            "workers": self.workers,
            "received_per_s": (n / self.enqueue_s).round(),
            "ack_p50_ms": (percentile(&ack, 0.50) * 100.0).round() / 100.0,
            "ack_p99_ms": (percentile(&ack, 0.99) * 100.0).round() / 100.0,
            "processed_per_s": (n / self.process_s).round(),
            "server_cpu_ms_per_received": (self.enqueue_cpu_s * 1000.0 / n * 1000.0).round() / 1000.0,
            "server_cpu_ms_per_processed": (self.process_cpu_s * 1000.0 / n * 1000.0).round() / 1000.0,
            "client_cpu_ms_per_received": (self.client_enqueue_cpu_s * 1000.0 / n * 1000.0).round() / 1000.0,
            "client_cpu_ms_per_processed": (self.client_process_cpu_s * 1000.0 / n * 1000.0).round() / 1000.0,
        })
        .to_string()
    }
}

/// Runs `enqueue(i)` for every `i < n` from `callers` tasks at once; the
/// wall time and each call's latency in ms.
pub async fn enqueue_all<F, Fut>(n: usize, callers: usize, enqueue: F) -> (f64, Vec<f64>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let enqueue = Arc::new(enqueue);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (next, enqueue) = (next.clone(), enqueue.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return lat;
                }
                let t = Instant::now();
                enqueue(i).await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("a caller"));
    }
    (start.elapsed().as_secs_f64(), all)
}

/// Waits until `done()` reaches `n` (polled every 10 ms); the seconds since
/// `start`.
pub async fn until_done<F, Fut>(start: Instant, n: usize, done: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = usize>,
{
    let deadline = start + Duration::from_secs(600);
    loop {
        if done().await >= n {
            return start.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "not processed in 10 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A plain client for set-up and counting.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("postgres");
    tokio::spawn(conn);
    client
}

/// A fresh ledger table, and a checkpoint so that no run pays for the last
/// one's dirty pages.
pub async fn fresh_ledger(c: &tokio_postgres::Client, drop_also: &[&str]) {
    let mut sql =
        String::from("SET client_min_messages = warning; DROP TABLE IF EXISTS bench_ledger;");
    for extra in drop_also {
        sql.push_str(extra);
        sql.push(';');
    }
    sql.push_str(
        "CREATE TABLE bench_ledger (event_id text PRIMARY KEY, amount bigint NOT NULL); CHECKPOINT;",
    );
    c.batch_execute(&sql).await.expect("set-up");
}

pub async fn ledger_count(c: &tokio_postgres::Client) -> usize {
    c.query_one("SELECT count(*) FROM bench_ledger", &[])
        .await
        .map(|r| r.get::<_, i64>(0) as usize)
        .unwrap_or(0)
}

/// Event `i`'s body: the same bytes for every system.
pub fn body(i: usize) -> String {
    format!(
        r#"{{"id":"evt_bench_{i:08}","type":"{TYPE}","account_id":"acc_bench","occurred_at":"2026-12-06T10:00:00Z","data":{{"object":{{"id":"inv_{i}","object":"invoice","total":{},"currency":"usd"}}}}}}"#,
        4200 + i
    )
}
