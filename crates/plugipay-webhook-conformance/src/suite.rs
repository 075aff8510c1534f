//! The HTTP conformance suite: every vector plus the HTTP-only cases of
//! SPEC.md section 6, sent over a real socket to a real server.
//!
//! An adapter joins by implementing [`Adapter`] (start a server with a
//! verifier and a recording handler) and calling [`run`] from a test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::{testing, Verifier, WebhookEvent};

use crate::client::{send, BodyPlan, RawRequest, RawResponse};
use crate::vectors::{load_vectors, Expect, Vector};

/// The route every adapter's test server verifies.
pub const WEBHOOK_PATH: &str = "/webhook";

/// Records what the handler received. The handler calls
/// [`record`](Recorder::record) and answers `204 No Content`.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<WebhookEvent>>>);

impl Recorder {
    /// Called by the test server's handler with the verified event.
    pub fn record(&self, event: &WebhookEvent) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }

    pub(crate) fn take(&self) -> Vec<WebhookEvent> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// A framework adapter under test.
pub trait Adapter {
    /// Its name in the report.
    fn name(&self) -> &'static str;

    /// Starts a server on `127.0.0.1` (any free port) that serves
    /// `POST` [`WEBHOOK_PATH`]: verify with `verifier` (with no verifier
    /// configured at all when `None`), then call `recorder.record(&event)` and
    /// answer `204`. The server keeps running until the process exits.
    fn start(&self, verifier: Option<Verifier>, recorder: Recorder) -> SocketAddr;

    /// `Some(why)` when the framework rules out a missing verifier before
    /// serving (a compile error, a refused launch), so the 500 case cannot
    /// arise and is skipped.
    fn missing_verifier_ruled_out(&self) -> Option<&'static str> {
        None
    }

    /// How many body bytes the framework itself waits for before any
    /// adapter code runs (Rocket 0.5 peeks at 14 for every request). Cases
    /// that send a head without its body send this many body bytes first, so
    /// they test the adapter rather than hang in the framework; the report
    /// lists them as deviations.
    fn body_bytes_read_before_guards(&self) -> usize {
        0
    }

    /// A documented, framework-imposed deviation for the named case: the
    /// answer this framework gives instead (e.g. its HTTP server refusing the
    /// request before any adapter code runs).
    fn known_deviation(&self, _case: &str) -> Option<Expected> {
        None
    }
}

/// The answer a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Our answer: this status and `{"error":"<code>"}` as JSON.
    Ours {
        /// Status.
        status: u16,
        /// Error code.
        code: String,
    },
    /// The HTTP server's own answer, before any adapter code: this status,
    /// and not our JSON.
    Server(u16),
    /// Verified and handed to the handler (`204` from the suite's handler).
    Accepted,
}

impl Expected {
    /// Our answer.
    #[must_use]
    pub fn ours(status: u16, code: &str) -> Expected {
        Expected::Ours {
            status,
            code: code.to_owned(),
        }
    }

    /// The HTTP server's own answer.
    #[must_use]
    pub fn server(status: u16) -> Expected {
        Expected::Server(status)
    }

    fn describe(&self) -> String {
        match self {
            Expected::Ours { status, code } => format!("{status} {code}"),
            Expected::Server(status) => format!("{status} from the HTTP server"),
            Expected::Accepted => "204 accepted".to_owned(),
        }
    }
}

/// What one run of the suite found.
#[derive(Debug, Default)]
pub struct Report {
    /// Adapter name.
    pub adapter: &'static str,
    /// Cases that behaved as the contract says.
    pub passed: Vec<String>,
    /// Cases that did not, with what happened.
    pub failed: Vec<(String, String)>,
    /// Cases that cannot arise for this adapter, with why.
    pub skipped: Vec<(String, String)>,
    /// Cases answered with a documented deviation.
    pub deviations: Vec<String>,
}

impl Report {
    /// One line per failure, and the counts.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} cases passed, {} failed, {} skipped, {} documented deviations",
            self.adapter,
            self.passed.len(),
            self.failed.len(),
            self.skipped.len(),
            self.deviations.len()
        );
        for (name, why) in &self.failed {
            let _ = write!(s, "\n  FAILED {name}: {why}");
        }
        for (name, why) in &self.skipped {
            let _ = write!(s, "\n  skipped {name}: {why}");
        }
        for name in &self.deviations {
            let _ = write!(s, "\n  deviation {name}");
        }
        s
    }

    /// Panics with the summary unless every case passed.
    ///
    /// # Panics
    /// When any case failed.
    pub fn assert_all_passed(&self) {
        println!("{}", self.summary());
        assert!(self.failed.is_empty(), "{}", self.summary());
        assert!(
            self.passed.len() > 100,
            "suspiciously few cases ran: {}",
            self.summary()
        );
    }
}

const SECRET: &str = "whsec_test_conformance";
const TIMEOUT: Duration = Duration::from_secs(15);

struct Server {
    addr: SocketAddr,
    recorder: Recorder,
}

/// Runs the whole suite against `adapter`.
pub fn run(adapter: &dyn Adapter) -> Report {
    let mut report = Report {
        adapter: adapter.name(),
        ..Report::default()
    };
    let capturing = crate::logs::install();
    let file = load_vectors();
    let mut servers: BTreeMap<(Vec<String>, u64, i64), Server> = BTreeMap::new();
    let mut server_for = |v: &Vector| -> (SocketAddr, Recorder) {
        let key = (v.secrets.clone(), v.tolerance, v.now);
        let s = servers.entry(key).or_insert_with(|| {
            let recorder = Recorder::default();
            let addr = adapter.start(Some(v.verifier()), recorder.clone());
            Server { addr, recorder }
        });
        (s.addr, s.recorder.clone())
    };

    // 1. Every vector that can travel over HTTP.
    for v in file.vectors.iter().filter(|v| v.http) {
        let (addr, recorder) = server_for(v);
        let mut req = RawRequest::post(WEBHOOK_PATH, v.body.clone())
            .header("Content-Type", "application/json");
        if let Some(enc) = &v.content_encoding {
            req = req.header("Content-Encoding", enc.as_bytes());
        }
        for h in &v.headers {
            req = req.header("X-Plugipay-Signature", h.clone());
        }
        let (status, code) = v.expected_http();
        let name = format!("vector {}", v.name);
        let result = send(addr, &req, TIMEOUT);
        let got = recorder.take();
        let verdict = judge(adapter, &name, &result, status, code, &mut report).and_then(|()| {
            match &v.expect {
                Expect::Ok(_) => handler_saw(&got, v),
                Expect::Error(_) => none_handled(&got),
            }
        });
        record(&mut report, name, verdict);
    }

    // 2. HTTP-only cases, against a server with the default limits.
    let base = file
        .vectors
        .iter()
        .find(|v| v.name == "valid")
        .cloned()
        .expect("the `valid` vector exists");
    let now = base.now;
    let limit = plugipay_webhook::DEFAULT_BODY_LIMIT;
    let (addr, recorder) = server_for(&base);
    let signed = |body: &[u8]| testing::sign_header(SECRET, now, body);
    let valid = || RawRequest::post(WEBHOOK_PATH, base.body.clone());

    let cases: Vec<(&str, RawRequest, u16, Option<&str>, bool)> = vec![
        (
            "lower-case header name",
            valid().header("x-plugipay-signature", signed(&base.body)),
            204,
            None,
            false,
        ),
        (
            "upper-case header name",
            valid().header("X-PLUGIPAY-SIGNATURE", signed(&base.body)),
            204,
            None,
            false,
        ),
        (
            "request content-type is ignored",
            valid()
                .header("Content-Type", "text/plain")
                .header("X-Plugipay-Signature", signed(&base.body)),
            204,
            None,
            false,
        ),
        (
            "body of exactly the limit is accepted",
            padded_request(&base, limit, &signed, false),
            204,
            None,
            false,
        ),
        (
            "chunked body of exactly the limit is accepted",
            padded_request(&base, limit, &signed, true),
            204,
            None,
            false,
        ),
        (
            "content-length one over the limit is 413 before the body is sent",
            RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: vec![(
                    "X-Plugipay-Signature".into(),
                    signed(&base.body).into_bytes(),
                )],
                body: BodyPlan::Declared {
                    content_length: limit as u64 + 1,
                    sent: Vec::new(),
                },
                close: false,
            },
            413,
            Some("payload_too_large"),
            true,
        ),
        (
            "body one byte over the limit with content-length is 413",
            padded_request(&base, limit + 1, &signed, false),
            413,
            Some("payload_too_large"),
            true,
        ),
        (
            "chunked body over the limit is 413",
            padded_request(&base, limit + 64 * 1024, &signed, true),
            413,
            Some("payload_too_large"),
            true,
        ),
        (
            "header rules are decided before the content-length limit (malformed)",
            RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: vec![("X-Plugipay-Signature".into(), b"v1=abc".to_vec())],
                body: BodyPlan::Declared {
                    content_length: 50 * 1024 * 1024,
                    sent: Vec::new(),
                },
                close: false,
            },
            400,
            Some("signature_malformed"),
            false,
        ),
        (
            "header rules are decided before the content-length limit (missing)",
            RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: Vec::new(),
                body: BodyPlan::Declared {
                    content_length: 50 * 1024 * 1024,
                    sent: Vec::new(),
                },
                close: false,
            },
            400,
            Some("signature_missing"),
            false,
        ),
    ];
    for (name, req, status, code, must_close) in cases {
        let name = format!("http {name}");
        let req = framework_prefix(adapter, &name, req, &base.body, &mut report);
        let result = send(addr, &req, TIMEOUT);
        let got = recorder.take();
        let verdict = judge(adapter, &name, &result, status, code, &mut report)
            .and_then(|()| closes_if(&result, must_close))
            .and_then(|()| {
                if status == 204 {
                    if got.len() == 1 {
                        Ok(())
                    } else {
                        Err(format!("handler ran {} times, want once", got.len()))
                    }
                } else {
                    none_handled(&got)
                }
            });
        record(&mut report, name, verdict);
    }

    // 3. The read deadline: a body that stalls.
    {
        let recorder = Recorder::default();
        let verifier = base.verifier().read_timeout(Duration::from_secs(1));
        let addr = adapter.start(Some(verifier), recorder.clone());
        let req = RawRequest {
            path: WEBHOOK_PATH.into(),
            headers: vec![(
                "X-Plugipay-Signature".into(),
                signed(&base.body).into_bytes(),
            )],
            body: BodyPlan::Declared {
                content_length: base.body.len() as u64,
                sent: base.body[..10].to_vec(),
            },
            close: false,
        };
        let name = "http body not complete within the read deadline is 408".to_owned();
        let req = framework_prefix(adapter, &name, req, &base.body, &mut report);
        let result = send(addr, &req, TIMEOUT);
        let verdict = judge(
            adapter,
            &name,
            &result,
            408,
            Some("body_timeout"),
            &mut report,
        )
        .and_then(|()| closes_if(&result, true))
        .and_then(|()| none_handled(&recorder.take()));
        record(&mut report, name, verdict);

        // The same server still serves a complete delivery afterwards.
        let name = "http server keeps serving after a timed-out body".to_owned();
        let req = valid().header("X-Plugipay-Signature", signed(&base.body));
        let result = send(addr, &req, TIMEOUT);
        let verdict = judge(adapter, &name, &result, 204, None, &mut report).and_then(|()| {
            let got = recorder.take();
            if got.len() == 1 {
                Ok(())
            } else {
                Err(format!("handler ran {} times", got.len()))
            }
        });
        record(&mut report, name, verdict);
    }

    // 4. No verifier configured.
    let name = "http no verifier configured is 500 verifier_missing".to_owned();
    if let Some(why) = adapter.missing_verifier_ruled_out() {
        report.skipped.push((name, why.to_owned()));
    } else {
        let recorder = Recorder::default();
        let addr = adapter.start(None, recorder.clone());
        let req = valid().header("X-Plugipay-Signature", signed(&base.body));
        let result = send(addr, &req, TIMEOUT);
        let verdict = judge(
            adapter,
            &name,
            &result,
            500,
            Some("verifier_missing"),
            &mut report,
        )
        .and_then(|()| none_handled(&recorder.take()));
        record(&mut report, name, verdict);
    }

    // 5. The bad-input catalogue.
    crate::hostile::run(adapter, &base, addr, &recorder, &mut report);

    // 6. After all that, every server still answers a valid delivery.
    let name = "http servers keep serving after every case".to_owned();
    let (addr, recorder) = server_for(&base);
    let req = valid().header("X-Plugipay-Signature", signed(&base.body));
    let result = send(addr, &req, TIMEOUT);
    let verdict = judge(adapter, &name, &result, 204, None, &mut report)
        .and_then(|()| handler_saw(&recorder.take(), &base));
    record(&mut report, name, verdict);

    // 7. Nothing secret in the logs of all of the above.
    let name = "logs hold no secret and no expected signature".to_owned();
    if capturing {
        let verdict = no_secrets_in(&crate::logs::captured(), &file.vectors);
        record(&mut report, name, verdict);
    } else {
        report.skipped.push((
            name,
            "another tracing subscriber was installed first".to_owned(),
        ));
    }

    report
}

/// Checks `logs` (captured at TRACE level) for any configured secret and any
/// signature a request carried or that a secret would produce.
fn no_secrets_in(logs: &str, vectors: &[Vector]) -> Result<(), String> {
    if !logs.contains("plugipay webhook rejected") {
        return Err("no rejection was logged at all: is the capture working?".to_owned());
    }
    let mut needles: Vec<String> = Vec::new();
    for v in vectors {
        for s in v.secrets.iter().filter(|s| !s.is_empty()) {
            needles.push(s.clone());
            needles.push(testing::sign(s, v.now, &v.body));
        }
        for h in &v.headers {
            let h = String::from_utf8_lossy(h);
            needles.extend(
                h.split(',')
                    .filter_map(|i| i.trim().strip_prefix("v1="))
                    .map(str::trim)
                    .filter(|s| s.len() == 64)
                    .map(str::to_owned),
            );
        }
    }
    needles.sort();
    needles.dedup();
    match needles.iter().find(|n| logs.contains(n.as_str())) {
        Some(n) => Err(format!("the logs contain {}…", &n[..n.len().min(12)])),
        None => Ok(()),
    }
}

/// A valid envelope padded with whitespace to exactly `size` bytes (when
/// `size` exceeds the limit, the body is simply that large).
fn padded_request(
    base: &Vector,
    size: usize,
    signed: &dyn Fn(&[u8]) -> String,
    chunked: bool,
) -> RawRequest {
    let mut body = base.body.clone();
    let close = body.pop().expect("non-empty body"); // the final `}`
    body.resize(size - 1, b' ');
    body.push(close);
    let header = signed(&body);
    let plan = if chunked {
        BodyPlan::Chunked {
            body,
            chunk: 16 * 1024,
        }
    } else {
        BodyPlan::Full(body)
    };
    RawRequest {
        path: WEBHOOK_PATH.into(),
        headers: vec![("X-Plugipay-Signature".into(), header.into_bytes())],
        body: plan,
        // Over the limit, leave the connection open: the server must close it.
        close: size <= plugipay_webhook::DEFAULT_BODY_LIMIT,
    }
}

/// Gives a head-only (or short-body) request the body bytes the framework
/// waits for before any adapter code runs, noting the deviation.
fn framework_prefix(
    adapter: &dyn Adapter,
    name: &str,
    mut req: RawRequest,
    filler: &[u8],
    report: &mut Report,
) -> RawRequest {
    let needed = adapter.body_bytes_read_before_guards();
    if let BodyPlan::Declared {
        sent,
        content_length,
    } = &mut req.body
    {
        if sent.len() < needed {
            let n = needed.min(usize::try_from(*content_length).unwrap_or(usize::MAX));
            *sent = filler.iter().copied().cycle().take(n).collect();
            report.deviations.push(format!(
                "{name}: sent {n} body bytes first (the framework reads them before routing)"
            ));
        }
    }
    req
}

pub(crate) fn record(report: &mut Report, name: String, verdict: Result<(), String>) {
    match verdict {
        Ok(()) => report.passed.push(name),
        Err(why) => report.failed.push((name, why)),
    }
}

/// Status, `Content-Type` and exact body of the response.
fn judge(
    adapter: &dyn Adapter,
    name: &str,
    result: &std::io::Result<RawResponse>,
    status: u16,
    code: Option<&str>,
    report: &mut Report,
) -> Result<(), String> {
    let expected = match code {
        Some(code) => Expected::ours(status, code),
        None if status == 204 => Expected::Accepted,
        None => Expected::server(status),
    };
    judge_case(adapter, name, result, &expected, report)
}

/// Judges a response against `expected`, or against the adapter's
/// documented deviation for this case.
pub(crate) fn judge_case(
    adapter: &dyn Adapter,
    name: &str,
    result: &std::io::Result<RawResponse>,
    expected: &Expected,
    report: &mut Report,
) -> Result<(), String> {
    let mut expected = expected.clone();
    if let Some(instead) = adapter.known_deviation(name) {
        report.deviations.push(format!(
            "{name}: {} instead of {}",
            instead.describe(),
            expected.describe()
        ));
        expected = instead;
    }
    let resp = result
        .as_ref()
        .map_err(|e| format!("request failed: {e}"))?;
    let (status, code) = match &expected {
        Expected::Ours { status, code } => (*status, Some(code.as_str())),
        Expected::Server(status) => (*status, None),
        Expected::Accepted => (204, None),
    };
    if resp.status != status {
        return Err(format!(
            "status {} (body {:?}), want {}",
            resp.status,
            resp.text(),
            expected.describe()
        ));
    }
    match code {
        Some(code) => {
            let want = format!(r#"{{"error":"{code}"}}"#);
            if resp.text() != want {
                return Err(format!("body {:?}, want {want:?}", resp.text()));
            }
            let ct = resp.header("content-type").unwrap_or_default();
            if ct != "application/json" {
                return Err(format!("content-type {ct:?}, want application/json"));
            }
        }
        None if matches!(expected, Expected::Server(_))
            && resp.text().starts_with(r#"{"error":"#) =>
        {
            return Err(format!(
                "answered by the adapter ({:?}), expected the server's own answer",
                resp.text()
            ));
        }
        None => {}
    }
    Ok(())
}

fn closes_if(result: &std::io::Result<RawResponse>, must_close: bool) -> Result<(), String> {
    let Ok(resp) = result else { return Ok(()) };
    if must_close {
        if !resp
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return Err("no `Connection: close` on the response".into());
        }
        if !resp.closed {
            return Err("the server kept the connection open".into());
        }
    }
    Ok(())
}

pub(crate) fn none_handled(got: &[WebhookEvent]) -> Result<(), String> {
    if got.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the handler ran {} times on a rejected delivery",
            got.len()
        ))
    }
}

fn handler_saw(got: &[WebhookEvent], v: &Vector) -> Result<(), String> {
    let [ev] = got else {
        return Err(format!("handler ran {} times, want once", got.len()));
    };
    let Expect::Ok(want) = &v.expect else {
        return Err("vector is not a success".into());
    };
    let ok = ev.id() == want.id
        && ev.event_type() == want.event_type
        && ev.account_id() == want.account_id.as_deref()
        && ev.occurred_at() == want.occurred_at.as_deref()
        && ev.object() == &want.object
        && ev.matched_secret() == want.matched_secret
        && ev.raw_body()[..] == v.body[..];
    if ok {
        Ok(())
    } else {
        Err(format!(
            "handler saw {ev:?} with object {}, want {want:?}",
            ev.object()
        ))
    }
}
