//! Drives every example receiver binary as a user would: started with the
//! environment variables, sent real HTTP requests, its stdout read back.

use std::process::Command;
use std::time::Duration;

use plugipay_webhook::testing::{self, TestDelivery};
use plugipay_webhook_conformance::{send, BodyPlan, RawRequest, RawResponse};

const SECRET: &str = "whsec_example_tests";
const ROUTE: &str = "/webhooks/plugipay";
const TIMEOUT: Duration = Duration::from_secs(15);

mod common;
use common::{Running, BINARIES};

trait Deliver {
    fn post(&self, body: &[u8], header: Option<&str>) -> RawResponse;
    fn deliver(&self, d: &TestDelivery) -> RawResponse;
}

impl Deliver for Running {
    fn post(&self, body: &[u8], header: Option<&str>) -> RawResponse {
        let mut req =
            RawRequest::post(ROUTE, body.to_vec()).header("Content-Type", "application/json");
        if let Some(h) = header {
            req = req.header("X-Plugipay-Signature", h);
        }
        send(self.addr, &req, TIMEOUT).expect("a response")
    }

    fn deliver(&self, d: &TestDelivery) -> RawResponse {
        let (body, header) = d.clone().into_parts();
        self.post(&body, Some(&header))
    }
}

fn error_of(resp: &RawResponse) -> (u16, String) {
    (resp.status, resp.text())
}

#[test]
fn receivers_refuse_to_start_without_a_secret() {
    for (name, bin) in BINARIES {
        for value in [None, Some(""), Some(" , ")] {
            let mut cmd = Command::new(bin);
            cmd.env_remove("PLUGIPAY_WEBHOOK_SECRET").env("PORT", "0");
            if let Some(v) = value {
                cmd.env("PLUGIPAY_WEBHOOK_SECRET", v);
            }
            let out = cmd.output().expect("run");
            assert!(
                !out.status.success(),
                "{name} started without a secret ({value:?})"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("PLUGIPAY_WEBHOOK_SECRET"),
                "{name}: unclear message {err:?}"
            );
            assert!(
                out.stdout.is_empty(),
                "{name} printed to stdout: {:?}",
                out.stdout
            );
        }
    }
}

#[test]
fn receivers_verify_dispatch_and_deduplicate() {
    for (name, bin) in BINARIES {
        let rx = Running::start(bin, SECRET, &[]);

        let paid = TestDelivery::new(SECRET, "plugipay.invoice.paid.v1")
            .id("evt_paid_1")
            .object(serde_json::json!({"id": "inv_1", "total": 4200}));
        assert_eq!(rx.deliver(&paid).status, 204, "{name}");
        assert_eq!(
            rx.deliver(&paid).status,
            204,
            "{name}: a duplicate is acknowledged"
        );
        // Same id, other type: a different event (v1/v2 of one occurrence).
        let v2 = TestDelivery::new(SECRET, "plugipay.payout.paid.v1").id("evt_paid_1");
        assert_eq!(rx.deliver(&v2).status, 204, "{name}");
        let unknown = TestDelivery::new(SECRET, "plugipay.something.new.v1").id("evt_unknown");
        assert_eq!(
            rx.deliver(&unknown).status,
            204,
            "{name}: unknown types are acknowledged"
        );
        assert_eq!(
            rx.drain(),
            [
                "handled evt_paid_1 plugipay.invoice.paid.v1",
                "duplicate evt_paid_1",
                "handled evt_paid_1 plugipay.payout.paid.v1",
                // evt_unknown: acknowledged and logged on stderr, nothing on stdout.
            ],
            "{name}"
        );

        // Failures never reach the handler and answer the shared JSON.
        let (body, header) = TestDelivery::new(SECRET, "plugipay.refund.succeeded.v1").into_parts();
        let tampered = String::from_utf8_lossy(&body).replace("acc_test", "acc_evil");
        assert_eq!(
            error_of(&rx.post(tampered.as_bytes(), Some(&header))),
            (400, r#"{"error":"signature_invalid"}"#.into()),
            "{name}"
        );
        let stale = TestDelivery::new(SECRET, "plugipay.refund.succeeded.v1")
            .timestamp(testing_now() - 301);
        assert_eq!(
            error_of(&rx.deliver(&stale)),
            (400, r#"{"error":"signature_stale"}"#.into()),
            "{name}"
        );
        assert_eq!(
            error_of(&rx.post(&body, None)),
            (400, r#"{"error":"signature_missing"}"#.into()),
            "{name}"
        );
        let big = vec![b' '; 1024 * 1024 + 1];
        let big_header = testing::sign_header(SECRET, testing_now(), &big);
        let resp = rx.post(&big, Some(&big_header));
        assert_eq!(
            error_of(&resp),
            (413, r#"{"error":"payload_too_large"}"#.into()),
            "{name}"
        );
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json"),
            "{name}"
        );
        assert!(
            rx.drain().is_empty(),
            "{name}: a rejected delivery reached the handler"
        );

        // Concurrent duplicates: exactly one delivery runs the handler. A
        // duplicate arriving while it runs gets 409 in_progress with
        // Retry-After; like Plugipay, the sender retries until a 2xx.
        let once = TestDelivery::new(SECRET, "plugipay.payout.paid.v1").id("evt_concurrent");
        let (body, header) = once.into_parts();
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        let req = RawRequest {
                            path: ROUTE.into(),
                            headers: vec![(
                                "X-Plugipay-Signature".into(),
                                header.clone().into_bytes(),
                            )],
                            body: BodyPlan::Full(body.to_vec()),
                            close: true,
                        };
                        for _ in 0..200 {
                            match send(rx.addr, &req, TIMEOUT) {
                                Ok(r) if r.status == 409 => {
                                    assert_eq!(r.header("retry-after").as_deref(), Some("5"));
                                    assert_eq!(r.text(), r#"{"error":"in_progress"}"#);
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                Ok(r) => return r.status,
                                Err(_) => return 0,
                            }
                        }
                        0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        assert!(statuses.iter().all(|&s| s == 204), "{name}: {statuses:?}");
        let lines = rx.drain();
        let handled = lines
            .iter()
            .filter(|l| *l == "handled evt_concurrent plugipay.payout.paid.v1")
            .count();
        let duplicates = lines
            .iter()
            .filter(|l| *l == "duplicate evt_concurrent")
            .count();
        assert_eq!(
            (handled, duplicates, lines.len()),
            (1, 15, 16),
            "{name}: {lines:?}"
        );
    }
}

fn testing_now() -> i64 {
    plugipay_webhook::Verifier::new("x").now()
}

/// `POST /tenants/{tenant}/webhooks/plugipay`, with each tenant's keyring from
/// `PLUGIPAY_TENANT_SECRETS`; an unknown tenant is 404 before the body.
#[test]
fn receivers_serve_the_tenant_route_with_per_tenant_secrets() {
    let tenants = "acme=whsec_acme_new,whsec_acme_old;globex=whsec_globex";
    for (name, bin) in BINARIES {
        let rx = Running::start(bin, SECRET, &[("PLUGIPAY_TENANT_SECRETS", tenants)]);
        let to = |path: &str, d: &TestDelivery| {
            let (body, header) = d.clone().into_parts();
            let req = RawRequest::post(path, body.to_vec()).header("X-Plugipay-Signature", header);
            send(rx.addr, &req, TIMEOUT).expect("a response")
        };
        let acme = "/tenants/acme/webhooks/plugipay";
        let new = TestDelivery::new("whsec_acme_new", "plugipay.invoice.paid.v1").id("evt_acme_1");
        assert_eq!(to(acme, &new).status, 204, "{name}");
        let old = TestDelivery::new("whsec_acme_old", "plugipay.invoice.paid.v1").id("evt_acme_2");
        assert_eq!(to(acme, &old).status, 204, "{name}: rotation keyring");
        let globex =
            TestDelivery::new("whsec_globex", "plugipay.payout.paid.v1").id("evt_globex_1");
        assert_eq!(
            to("/tenants/globex/webhooks/plugipay", &globex).status,
            204,
            "{name}"
        );
        // Another tenant's secret, the main secret, an unknown tenant.
        assert_eq!(
            error_of(&to(acme, &globex)),
            (400, r#"{"error":"signature_invalid"}"#.into()),
            "{name}"
        );
        let main = TestDelivery::new(SECRET, "plugipay.invoice.paid.v1");
        assert_eq!(
            error_of(&to(acme, &main)),
            (400, r#"{"error":"signature_invalid"}"#.into()),
            "{name}"
        );
        let unknown = to("/tenants/initech/webhooks/plugipay", &new);
        assert_eq!(
            error_of(&unknown),
            (404, r#"{"error":"endpoint_unknown"}"#.into()),
            "{name}"
        );
        assert_eq!(
            unknown.header("content-type").as_deref(),
            Some("application/json"),
            "{name}"
        );
        // Before the body: a head declaring 50 MiB is answered at once.
        let head_only = RawRequest {
            path: "/tenants/initech/webhooks/plugipay".into(),
            headers: vec![("X-Plugipay-Signature".into(), b"t=1,v1=00".to_vec())],
            body: BodyPlan::Declared {
                content_length: 50 << 20,
                // Rocket peeks at 14 body bytes before routing.
                sent: b"{\"id\":\"evt_x\",".to_vec(),
            },
            close: false,
        };
        assert_eq!(
            error_of(&send(rx.addr, &head_only, TIMEOUT).expect("a response")),
            (404, r#"{"error":"endpoint_unknown"}"#.into()),
            "{name}"
        );
        // The main route keeps its own secret.
        assert_eq!(rx.deliver(&main).status, 204, "{name}");
        assert_eq!(
            rx.drain(),
            [
                // A tenant's delivery names its tenant last.
                "handled evt_acme_1 plugipay.invoice.paid.v1 tenant=acme",
                "handled evt_acme_2 plugipay.invoice.paid.v1 tenant=acme",
                "handled evt_globex_1 plugipay.payout.paid.v1 tenant=globex",
                format!("handled {} plugipay.invoice.paid.v1", main.event_id()).as_str(),
            ],
            "{name}"
        );
    }
    // Without PLUGIPAY_TENANT_SECRETS every tenant is unknown.
    let rx = Running::start(BINARIES[0].1, SECRET, &[]);
    let (body, header) = TestDelivery::new("whsec_acme_new", "t.v1").into_parts();
    let req = RawRequest::post("/tenants/acme/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    assert_eq!(
        send(rx.addr, &req, TIMEOUT).expect("a response").status,
        404
    );
}
