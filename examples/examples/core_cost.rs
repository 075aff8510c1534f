//! What the verified route costs outside any framework: the core's
//! `http::receive` — the one call every adapter makes: header parse, the
//! per-delivery span and counter, body collection, verify — over a body that
//! is already in memory, the example receiver's dispatch (memory
//! de-duplication; after the first delivery every one is a duplicate, as
//! under `wrk`) and the response the adapters send (`Outcome::to_response`),
//! with the tracing subscriber and metrics recorder the receivers install.
//! Prints the CPU time per delivery in µs — `scripts/http-bench --cpu`
//! subtracts it from the verified route's server CPU per request; what is
//! left is the framework and its adapter.
//!
//! PLUGIPAY_WEBHOOK_SECRET=… cargo run --release -p plugipay-webhook-examples \
//!     --example core_cost -- BODY_FILE SIGNATURE_HEADER [ITERATIONS]

use std::time::Instant;

use http_body_util::{BodyDataStream, Full};
use plugipay_webhook::http::{receive, HttpHead};
use plugipay_webhook::{Bytes, Verifier};
use plugipay_webhook_examples::{init_tracing, Receiver, WEBHOOK_ROUTE};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, body, header, rest @ ..] = args.as_slice() else {
        eprintln!("usage: core_cost BODY_FILE SIGNATURE_HEADER [ITERATIONS]");
        std::process::exit(2);
    };
    let iterations: u32 = rest.first().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let body = Bytes::from(std::fs::read(body).expect("body file"));
    init_tracing();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let verifier = Verifier::from_env().expect("PLUGIPAY_WEBHOOK_SECRET");
        let receiver = Receiver::from_env_or_exit().await;
        let mut headers = http::HeaderMap::new();
        headers.insert("x-plugipay-signature", header.parse().expect("header"));
        headers.insert("content-type", "application/json".parse().expect("header"));
        headers.insert("content-length", body.len().into());
        let once = |body: Bytes| {
            let (verifier, receiver, headers) = (&verifier, receiver.clone(), &headers);
            async move {
                let head = HttpHead::new(WEBHOOK_ROUTE, headers);
                let stream = BodyDataStream::new(Full::new(body));
                let event = receive(Some(verifier), &head, stream)
                    .await
                    .expect("verifies");
                receiver.handle(&event).await.to_response()
            }
        };
        for _ in 0..iterations / 10 {
            once(body.clone()).await;
        }
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        for _ in 0..iterations {
            once(body.clone()).await;
        }
        let cpu = cpu_seconds() - cpu;
        let per = |s: f64| s * 1e6 / f64::from(iterations);
        println!(
            "{{\"cpu_us\": {:.3}, \"wall_us\": {:.3}, \"iterations\": {iterations}}}",
            per(cpu),
            per(wall.elapsed().as_secs_f64())
        );
    });
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / 100.0
}
