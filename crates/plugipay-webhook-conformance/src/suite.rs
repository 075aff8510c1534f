//! The HTTP conformance suite: tables of cases ([`crate::cases`]) sent over a
//! real socket to a real server of each adapter, and one small runner.
//!
//! An adapter joins by implementing [`Adapter`] (start a server with a
//! verifier source and a recording handler) and calling [`run`] from a test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugipay_webhook::{testing, WebhookEvent};

use crate::cases::{self, Case, Check, Server};
use crate::client::{send, BodyPlan, RawRequest, RawResponse};
use crate::model::{Expected, Source, WEBHOOK_PATH};
use crate::vectors::{load_vectors, Vector};

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

    /// Starts a server on `127.0.0.1` (any free port) that serves `POST` on
    /// **every path**: verify with `source`, then call
    /// `recorder.record(&event)` and answer `204`. The server keeps running
    /// until the process exits. `Source::None` is only asked for when
    /// [`missing_verifier_ruled_out`](Adapter::missing_verifier_ruled_out)
    /// is `None`.
    fn start(&self, source: Source, recorder: Recorder) -> SocketAddr;

    /// As [`start`](Adapter::start), with the catch-all route mounted under
    /// `prefix` the framework's way (axum's `nest`, actix-web's `scope`,
    /// Rocket's `mount`, a warp path prefix) — the adapter must still see
    /// the whole request path. `None` where the framework has no such thing
    /// (a bare tower stack sees whatever path it is handed).
    fn start_mounted(
        &self,
        prefix: &str,
        source: Source,
        recorder: Recorder,
    ) -> Option<SocketAddr> {
        let _ = (prefix, source, recorder);
        None
    }

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

    /// Whether the framework answers `Expect: 100-continue` with `100
    /// Continue` before any adapter code runs (actix-web, Rocket): then a
    /// request the adapter refuses before its body gets the interim response
    /// first, recorded as a documented deviation.
    fn sends_continue_before_handlers(&self) -> bool {
        false
    }

    /// A documented, framework-imposed deviation for the named case: the
    /// answer this framework gives instead (e.g. its HTTP server refusing the
    /// request before any adapter code runs).
    fn known_deviation(&self, _case: &str) -> Option<Expected> {
        None
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

    fn record(&mut self, name: String, verdict: Result<(), String>) {
        match verdict {
            Ok(()) => self.passed.push(name),
            Err(why) => self.failed.push((name, why)),
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(15);

/// The servers a run has started, by what they were started with.
struct Servers<'a> {
    adapter: &'a dyn Adapter,
    base: &'a Vector,
    started: BTreeMap<Server, (SocketAddr, Recorder)>,
}

impl Servers<'_> {
    /// The server, started on first use; `None` when the adapter cannot
    /// start it (no mount points).
    fn get(&mut self, server: &Server) -> Option<(SocketAddr, Recorder)> {
        if let Some(s) = self.started.get(server) {
            return Some(s.clone());
        }
        let recorder = Recorder::default();
        let source = cases::source(server, self.base);
        let addr = if *server == Server::Mounted {
            self.adapter
                .start_mounted(cases::MOUNT, source, recorder.clone())?
        } else {
            self.adapter.start(source, recorder.clone())
        };
        self.started
            .insert(server.clone(), (addr, recorder.clone()));
        Some((addr, recorder))
    }
}

/// Runs the whole suite against `adapter`.
pub fn run(adapter: &dyn Adapter) -> Report {
    let mut report = Report {
        adapter: adapter.name(),
        ..Report::default()
    };
    let capturing = crate::logs::install();
    let file = load_vectors();
    let base = file
        .vectors
        .iter()
        .find(|v| v.name == "valid")
        .cloned()
        .expect("the `valid` vector exists");
    let mut servers = Servers {
        adapter,
        base: &base,
        started: BTreeMap::new(),
    };

    for case in cases::all(&file, &base) {
        if matches!(case.server, Server::NoVerifier) {
            if let Some(why) = adapter.missing_verifier_ruled_out() {
                report.skipped.push((case.name, why.to_owned()));
                continue;
            }
        }
        let Some((addr, recorder)) = servers.get(&case.server) else {
            report.skipped.push((
                case.name,
                "the framework has no mount points: the adapter sees the path it is handed"
                    .to_owned(),
            ));
            continue;
        };
        let verdict = run_case(adapter, &case, addr, &recorder, &mut report);
        report.record(case.name, verdict);
    }

    // A client trickling its body past the read deadline: 408, and other
    // deliveries are served meanwhile.
    let (addr, recorder) = servers
        .get(&Server::ReadTimeout(3000))
        .expect("every adapter starts a plain server");
    let verdict = trickle_while_others_are_served(adapter, &base, addr, &recorder, &mut report);
    report.record(
        "hostile body trickled past the read deadline".to_owned(),
        verdict,
    );

    // Nothing secret in the logs of all of the above.
    let name = "logs hold no secret and no expected signature".to_owned();
    if capturing {
        let verdict = no_secrets_in(&crate::logs::captured(), &file.vectors);
        report.record(name, verdict);
    } else {
        report.skipped.push((
            name,
            "another tracing subscriber was installed first".to_owned(),
        ));
    }
    report
}

/// Sends one case and judges the answer, and what the handler saw.
fn run_case(
    adapter: &dyn Adapter,
    case: &Case,
    addr: SocketAddr,
    recorder: &Recorder,
    report: &mut Report,
) -> Result<(), String> {
    let request = framework_prefix(adapter, &case.name, case.request.clone(), report);
    let result = send(addr, &request, TIMEOUT);
    let got = recorder.take();
    judge(adapter, &case.name, &result, &case.expected, report)?;
    let resp = result.as_ref().map_err(|e| e.to_string())?;
    for check in &case.checks {
        match check {
            Check::Closes => closes(resp)?,
            Check::NoInterim if adapter.sends_continue_before_handlers() => {
                if !resp.interim.is_empty() {
                    report.deviations.push(format!(
                        "{}: the framework sent {:?} before the adapter ran",
                        case.name, resp.interim
                    ));
                }
            }
            Check::NoInterim => {
                if !resp.interim.is_empty() {
                    return Err(format!(
                        "interim {:?} before the final answer: the body was asked for",
                        resp.interim
                    ));
                }
            }
            Check::Event(vector) => handler_saw(&got, vector)?,
            Check::Tenant(want) => {
                let saw: Vec<Option<&str>> = got.iter().map(WebhookEvent::tenant).collect();
                if saw != [*want] {
                    return Err(format!("the handler saw tenants {saw:?}, want [{want:?}]"));
                }
            }
        }
    }
    let accepted = matches!(
        adapter
            .known_deviation(&case.name)
            .as_ref()
            .unwrap_or(&case.expected),
        Expected::Accepted
    );
    match (accepted, got.len()) {
        (true, 1) | (false, 0) => Ok(()),
        (true, n) => Err(format!("the handler ran {n} times, want once")),
        (false, n) => Err(format!("the handler ran {n} times on a rejected delivery")),
    }
}

/// Status, `Content-Type`, exact body and `Retry-After` of the response,
/// against `expected` or the adapter's documented deviation for the case.
fn judge(
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
            let retry = resp.header("retry-after");
            let want_retry = (code == "verifier_unavailable").then(|| "5".to_owned());
            if retry != want_retry {
                return Err(format!("retry-after {retry:?}, want {want_retry:?}"));
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

fn closes(resp: &RawResponse) -> Result<(), String> {
    if !resp
        .header("connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    {
        return Err("no `Connection: close` on the response".into());
    }
    if !resp.closed {
        return Err("the server kept the connection open".into());
    }
    Ok(())
}

fn handler_saw(got: &[WebhookEvent], v: &Vector) -> Result<(), String> {
    let [ev] = got else {
        return Err(format!("handler ran {} times, want once", got.len()));
    };
    let crate::vectors::Expect::Ok(want) = &v.expect else {
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

/// Gives a head-only (or short-body) request the body bytes the framework
/// waits for before any adapter code runs, noting the deviation.
fn framework_prefix(
    adapter: &dyn Adapter,
    name: &str,
    mut req: RawRequest,
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
            *sent = b"{\"id\":\"evt_prefix\""
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect();
            report.deviations.push(format!(
                "{name}: sent {n} body bytes first (the framework reads them before routing)"
            ));
        }
    }
    req
}

/// A client trickles its body past a 3 s read deadline while ten other
/// deliveries are served by the same server.
fn trickle_while_others_are_served(
    adapter: &dyn Adapter,
    base: &Vector,
    slow: SocketAddr,
    recorder: &Recorder,
    report: &mut Report,
) -> Result<(), String> {
    let name = "hostile body trickled past the read deadline";
    let signature = testing::sign_header(cases::SECRET, base.now, &base.body);
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
    let trickler = std::thread::spawn(move || send(slow, &trickle, TIMEOUT));
    std::thread::sleep(Duration::from_millis(100));
    let mut served = 0;
    for _ in 0..10 {
        let req = RawRequest::post(WEBHOOK_PATH, base.body.clone())
            .header("X-Plugipay-Signature", signature.clone());
        if send(slow, &req, TIMEOUT).is_ok_and(|r| r.status == 204) {
            served += 1;
        }
    }
    let still_trickling = !trickler.is_finished();
    let result = trickler
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("client thread panicked")));
    let handled = recorder.take();
    judge(
        adapter,
        name,
        &result,
        &Expected::ours(408, "body_timeout"),
        report,
    )?;
    if served == 10 && still_trickling && handled.len() == 10 {
        Ok(())
    } else {
        Err(format!(
            "while one client trickled, {served}/10 other deliveries were served \
             (trickler still running: {still_trickling}; handler ran {} times)",
            handled.len()
        ))
    }
}

/// Checks `logs` (captured at TRACE level) for any configured secret and any
/// signature a request carried or that a secret would produce.
fn no_secrets_in(logs: &str, vectors: &[Vector]) -> Result<(), String> {
    if !logs.contains("plugipay webhook rejected") {
        return Err("no rejection was logged at all: is the capture working?".to_owned());
    }
    let mut needles: Vec<String> = cases::TENANT_SECRETS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
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
