//! One run of one system at the library level (no HTTP): N verified events
//! enqueued by C concurrent callers — each call one durable commit, its
//! latency the acknowledgement's — then processed by W workers, each event
//! inserting one ledger row (inside the job's transaction where the system
//! has one). Prints one JSON line.
//!
//! ```sh
//! inbox-bench plugipay --url postgres://… [--events 20000] [--callers 16] [--workers 16]
//! ```
//!
//! Systems: `plugipay` (PostgreSQL), `plugipay-sqlite` (`--url` a file),
//! `plugipay-redis`; the peers are `peers/`' binary. `bench/inbox/run`
//! runs them in turn.

mod measure;
mod ours;

use std::time::Duration;

use measure::Args;

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let result = rt.block_on(async {
        match args.system.as_str() {
            "plugipay" => ours::postgres(&args).await,
            "plugipay-sqlite" => ours::sqlite(&args).await,
            "plugipay-redis" => ours::redis(&args).await,
            other => panic!("unknown system {other}"),
        }
    });
    println!("{}", result.to_json());
    rt.shutdown_timeout(Duration::from_secs(5));
}
