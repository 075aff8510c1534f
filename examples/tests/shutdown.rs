//! Operating the example receivers: `HOST`, `GET /healthz`, `GET /metrics`, and a graceful
//! stop — a delivery whose handler is running when SIGTERM arrives is
//! finished, answered and recorded as done before the process exits.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};

mod common;
use common::{get, Running, BINARIES};

const SECRET: &str = "whsec_shutdown_tests";
const TIMEOUT: Duration = Duration::from_secs(30);

fn deliver(addr: SocketAddr, d: &TestDelivery) -> u16 {
    let (body, header) = d.clone().into_parts();
    let req = RawRequest::post("/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    send(addr, &req, TIMEOUT).map_or(0, |r| r.status)
}

#[test]
fn receivers_finish_in_flight_deliveries_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("plugipay-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, bin) in BINARIES {
        let db = dir.join(format!("{name}.sqlite3"));
        let url = format!("sqlite://{}", db.display());
        let env = [
            ("PLUGIPAY_DEDUP_URL", url.as_str()),
            ("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", "1500"),
            ("HOST", "127.0.0.2"),
        ];
        let mut rx = Running::start(bin, SECRET, &env);
        assert_eq!(rx.addr.ip().to_string(), "127.0.0.2", "{name}: HOST");
        assert_eq!(
            get(rx.addr, "/healthz"),
            (200, r#"{"status":"ok"}"#.to_owned()),
            "{name}"
        );

        // GET /metrics: the delivery counters, in Prometheus text format.
        let forged = TestDelivery::new("whsec_not_ours", "plugipay.invoice.paid.v1");
        assert_eq!(deliver(rx.addr, &forged), 400, "{name}");
        let (status, metrics) = get(rx.addr, "/metrics");
        assert_eq!(status, 200, "{name}");
        assert!(
            metrics.contains(r#"plugipay_webhook_deliveries_total{outcome="signature_invalid"} 1"#),
            "{name}: {metrics}"
        );

        let event = TestDelivery::new(SECRET, "plugipay.invoice.paid.v1");
        let addr = rx.addr;
        let in_flight = {
            let event = event.clone();
            std::thread::spawn(move || deliver(addr, &event))
        };
        // The handler is running (it takes 1.5 s) when SIGTERM arrives.
        std::thread::sleep(Duration::from_millis(500));
        let pid = rx.process.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        assert_eq!(in_flight.join().expect("join"), 204, "{name}: answered");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = rx.process.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: still running 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{name}: exit {status:?}");
        let handled = format!("handled {} plugipay.invoice.paid.v1", event.event_id());
        assert!(
            rx.drain().contains(&handled),
            "{name}: {handled} not printed"
        );

        // Marked done: after a restart on the same store, a duplicate.
        let rx = Running::start(bin, SECRET, &[("PLUGIPAY_DEDUP_URL", url.as_str())]);
        assert_eq!(deliver(rx.addr, &event), 204, "{name}");
        assert_eq!(
            rx.drain(),
            [format!("duplicate {}", event.event_id())],
            "{name}: the in-flight delivery was recorded as done"
        );
    }
}
