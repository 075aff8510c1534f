//! The bad-input catalogue: what anyone on the internet can send a public
//! webhook URL. Every case has an expected answer; none may reach the
//! handler; the server must keep serving afterwards.

use std::net::SocketAddr;
use std::time::Duration;

use plugipay_webhook::testing;

use crate::client::{send, BodyPlan, RawRequest};
use crate::suite::{
    judge_case, none_handled, record, Adapter, Expected, Recorder, Report, WEBHOOK_PATH,
};
use crate::vectors::Vector;

const SECRET: &str = "whsec_test_conformance";

/// One hostile request and the answer the contract (or, where the HTTP server
/// answers before any adapter code runs, the framework) gives.
struct Case {
    name: &'static str,
    request: RawRequest,
    expected: Expected,
}

fn with_signature(body: &[u8], now: i64) -> RawRequest {
    RawRequest::post(WEBHOOK_PATH, body.to_vec()).header(
        "X-Plugipay-Signature",
        testing::sign_header(SECRET, now, body),
    )
}

fn cases(base: &Vector) -> Vec<Case> {
    let now = base.now;
    let body = base.body.clone();
    let signature = testing::sign_header(SECRET, now, &body);

    let mut huge_header = signature.clone().into_bytes();
    huge_header.extend_from_slice(b",x=");
    huge_header.resize(64 * 1024, b'a');

    let mut many_v1 = signature.clone();
    for _ in 0..300 {
        many_v1.push_str(",v1=00");
    }

    let mut thousands = with_signature(&body, now);
    for i in 0..5000 {
        thousands = thousands.header(&format!("X-Junk-{i}"), "x");
    }

    let mut nul = signature.clone().into_bytes();
    nul.extend_from_slice(b",x=\0");

    let mut longer_than_declared = body.clone();
    longer_than_declared.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");

    vec![
        Case {
            name: "64 KiB header value",
            request: RawRequest::post(WEBHOOK_PATH, body.clone())
                .header("X-Plugipay-Signature", huge_header),
            expected: Expected::ours(400, "signature_malformed"),
        },
        Case {
            name: "hundreds of v1 items",
            request: RawRequest::post(WEBHOOK_PATH, body.clone())
                .header("X-Plugipay-Signature", many_v1),
            expected: Expected::ours(400, "signature_malformed"),
        },
        Case {
            name: "thousands of header fields",
            request: thousands,
            expected: Expected::server(431),
        },
        Case {
            name: "NUL byte in the signature header",
            request: RawRequest::post(WEBHOOK_PATH, body.clone())
                .header("X-Plugipay-Signature", nul),
            expected: Expected::server(400),
        },
        Case {
            name: "non-ASCII bytes in the signature header",
            request: RawRequest::post(WEBHOOK_PATH, body.clone()).header(
                "X-Plugipay-Signature",
                format!("{signature},x=\u{e9}\u{1F600}"),
            ),
            expected: Expected::ours(400, "signature_malformed"),
        },
        Case {
            name: "wrong Content-Type",
            request: with_signature(&body, now)
                .header("Content-Type", "application/x-www-form-urlencoded"),
            expected: Expected::Accepted,
        },
        Case {
            name: "empty body",
            request: with_signature(b"", now),
            expected: Expected::ours(400, "signature_invalid"),
        },
        Case {
            name: "client disconnects mid-body",
            request: RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: vec![(
                    "X-Plugipay-Signature".into(),
                    signature.clone().into_bytes(),
                )],
                body: BodyPlan::Truncated {
                    content_length: body.len() as u64,
                    sent: body[..body.len() / 2].to_vec(),
                },
                close: false,
            },
            expected: Expected::ours(400, "body_read_failed"),
        },
        Case {
            name: "Content-Length smaller than the body sent",
            request: RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: vec![(
                    "X-Plugipay-Signature".into(),
                    signature.clone().into_bytes(),
                )],
                body: BodyPlan::Declared {
                    content_length: (body.len() - 10) as u64,
                    sent: longer_than_declared,
                },
                close: false,
            },
            // The declared bytes are verified: a truncated body never matches.
            expected: Expected::ours(400, "signature_invalid"),
        },
        Case {
            name: "gzip-encoded body (verified as sent, never decoded)",
            request: with_signature(&body, now).header("Content-Encoding", "gzip"),
            expected: Expected::Accepted,
        },
    ]
}

/// Runs the catalogue; the trickle case uses a 3 s read deadline (long
/// enough that ten other deliveries finish first even on a loaded machine).
pub(crate) fn run(
    adapter: &dyn Adapter,
    base: &Vector,
    addr: SocketAddr,
    recorder: &Recorder,
    report: &mut Report,
) {
    for case in cases(base) {
        let name = format!("hostile {}", case.name);
        let req = case.request;
        let result = send(addr, &req, Duration::from_secs(15));
        let got = recorder.take();
        let verdict = judge_case(adapter, &name, &result, &case.expected, report).and_then(|()| {
            match case.expected {
                Expected::Accepted => {
                    if got.len() == 1 {
                        Ok(())
                    } else {
                        Err(format!("handler ran {} times, want once", got.len()))
                    }
                }
                _ => none_handled(&got),
            }
        });
        record(report, name, verdict);
    }

    // A client trickling its body past the read deadline: 408, and other
    // deliveries are served meanwhile.
    let recorder = Recorder::default();
    let slow = adapter.start(
        Some(base.verifier().read_timeout(Duration::from_secs(3))),
        recorder.clone(),
    );
    let name = "hostile body trickled past the read deadline".to_owned();
    let signature = testing::sign_header(SECRET, base.now, &base.body);
    let trickle = RawRequest {
        path: WEBHOOK_PATH.into(),
        headers: vec![(
            "X-Plugipay-Signature".into(),
            signature.clone().into_bytes(),
        )],
        body: BodyPlan::Trickle {
            body: base.body.clone(),
            every: Duration::from_millis(50),
        },
        close: false,
    };
    let trickler = std::thread::spawn(move || send(slow, &trickle, Duration::from_secs(15)));
    // While it trickles, other deliveries are answered.
    std::thread::sleep(Duration::from_millis(100));
    let mut served = 0;
    for _ in 0..10 {
        let req = RawRequest::post(WEBHOOK_PATH, base.body.clone())
            .header("X-Plugipay-Signature", signature.clone());
        if send(slow, &req, Duration::from_secs(15)).is_ok_and(|r| r.status == 204) {
            served += 1;
        }
    }
    let still_trickling = !trickler.is_finished();
    let result = trickler
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("client thread panicked")));
    let handled = recorder.take();
    let verdict = judge_case(
        adapter,
        &name,
        &result,
        &Expected::ours(408, "body_timeout"),
        report,
    )
    .and_then(|()| {
        if served == 10 && still_trickling && handled.len() == 10 {
            Ok(())
        } else {
            Err(format!(
                "while one client trickled, {served}/10 other deliveries were served \
                 (trickler still running: {still_trickling}; handler ran {} times)",
                handled.len()
            ))
        }
    });
    record(report, name, verdict);
}
