//! `GET /metrics` of the example receivers, held against the table in
//! `docs/operations.md`: after driving every outcome a test can cause —
//! rejections of each kind, an inbox's stored / duplicate / revived /
//! refused deliveries and its done / retrying / dead / skipped events, a
//! dispatcher's handled / duplicate / unknown / in-progress / refused ones —
//! every sample is a documented metric with exactly its documented labels and
//! values, every documented metric appears, and each driven outcome is
//! counted under its event type and tenant.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::plumbing::{through, Mode, Proxy};
use plugipay_webhook_conformance::{send, BodyPlan, RawRequest};

mod common;
use common::{fresh_schema, get, server_url, Running, BINARIES};

const SECRET: &str = "whsec_metrics_tests";
const ACME: &str = "whsec_metrics_acme";
const TENANTS: &str = "acme=whsec_metrics_acme;globex=whsec_metrics_globex";
const PAID: &str = "plugipay.invoice.paid.v1";
/// A type no example handler is registered for.
const NEW_TYPE: &str = "plugipay.brand.new.v1";
const ACME_PATH: &str = "/tenants/acme/webhooks/plugipay";
const PATH: &str = "/webhooks/plugipay";

/// A metric as `docs/operations.md` documents it: its type and, per label,
/// the values it may take (`None`: the values are described in prose).
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeMap<String, Option<BTreeSet<String>>>,
}

/// The table under "## Metrics" in `docs/operations.md`.
fn documented() -> BTreeMap<String, Documented> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .expect("docs/operations.md");
    let unquote = |s: &str| s.trim().trim_matches('`').to_owned();
    let mut table = BTreeMap::new();
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| `plugipay_webhook_"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        assert_eq!(cells.len(), 3, "a row of three cells: {line}");
        let mut labels = BTreeMap::new();
        for part in cells[2].split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once(':') {
                Some((name, values)) => {
                    let values = values.split(',').map(unquote).collect();
                    labels.insert(unquote(name), Some(values));
                }
                None => {
                    labels.insert(unquote(part), None);
                }
            }
        }
        table.insert(
            unquote(cells[0]),
            Documented {
                kind: cells[1].trim().to_owned(),
                labels,
            },
        );
    }
    assert!(table.len() >= 9, "the metrics table: {table:?}");
    table
}

/// One sample of a scrape: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Prometheus text format: the samples, and each `# TYPE`.
fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("k=\"v\"");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push(Sample {
            name,
            labels,
            value: value.parse().expect("a number"),
        });
    }
    (samples, types)
}

/// Every sample is documented, with exactly the documented label names and,
/// where the table lists them, one of its values; `event_type` and `tenant`
/// stay within their bounds. The documented names seen.
fn check_against_doc(
    who: &str,
    text: &str,
    doc: &BTreeMap<String, Documented>,
) -> (Vec<Sample>, BTreeSet<String>) {
    let (samples, types) = parse(text);
    let mut seen = BTreeSet::new();
    let types_of_handlers: BTreeSet<&str> = [
        "plugipay.customer.created.v1",
        PAID,
        "plugipay.checkout_session.succeeded.v1",
        "plugipay.subscription.cancelled.v1",
        "plugipay.refund.succeeded.v1",
        "plugipay.payout.paid.v1",
        "other",
    ]
    .into();
    for s in &samples {
        // A histogram is rendered as a summary (quantiles, `_sum`, `_count`)
        // or as buckets.
        let base = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|suffix| {
                s.name
                    .strip_suffix(suffix)
                    .filter(|b| doc.get(*b).is_some_and(|d| d.kind == "histogram"))
            })
            .unwrap_or(&s.name);
        let Some(d) = doc.get(base) else {
            panic!("{who}: {} is not in docs/operations.md:\n{text}", s.name);
        };
        seen.insert(base.to_owned());
        let kind = types.get(base).map(String::as_str);
        let kinds_ok = match d.kind.as_str() {
            "histogram" => matches!(kind, Some("summary" | "histogram")),
            k => kind == Some(k),
        };
        assert!(
            kinds_ok,
            "{who}: {base} is a {kind:?}, documented {}",
            d.kind
        );
        let names: BTreeSet<&str> = s
            .labels
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "quantile" && *k != "le")
            .collect();
        let documented: BTreeSet<&str> = d.labels.keys().map(String::as_str).collect();
        assert_eq!(names, documented, "{who}: the labels of {}", s.name);
        for (label, values) in &d.labels {
            let value = &s.labels[label];
            if let Some(values) = values {
                assert!(
                    values.contains(value),
                    "{who}: {base}{{{label}=\"{value}\"}} is not documented"
                );
            }
            match label.as_str() {
                "event_type" => assert!(
                    types_of_handlers.contains(value.as_str()),
                    "{who}: unbounded event_type {value:?}"
                ),
                "tenant" => assert!(
                    ["acme", "globex", "other", ""].contains(&value.as_str()),
                    "{who}: unbounded tenant {value:?}"
                ),
                _ => {}
            }
        }
    }
    (samples, seen)
}

/// The value of `name` whose labels include `labels` (summed), 0 if none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
        .sum()
}

fn scrape(addr: SocketAddr) -> String {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "GET /metrics");
    text
}

/// Scrapes until `ready` holds (the gauges are refreshed every 5 s).
fn scrape_until(addr: SocketAddr, what: &str, ready: impl Fn(&[Sample]) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(addr);
        if ready(&parse(&text).0) {
            return text;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `POST path`, signed with `secret`: the status (0: no answer).
fn post(addr: SocketAddr, path: &str, delivery: TestDelivery) -> u16 {
    let (body, header) = delivery.into_parts();
    let req = RawRequest::post(path, body.to_vec()).header("X-Plugipay-Signature", header);
    send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn paid(secret: &str, id: &str) -> TestDelivery {
    TestDelivery::new(secret, PAID).id(id)
}

/// Every rejection a client can cause, each answered with its status.
fn reject_each_way(addr: SocketAddr) {
    let (body, header) = paid(SECRET, "evt_rejected").into_parts();
    let body = body.to_vec();
    let raw = |headers: Vec<(&str, String)>, plan: BodyPlan| RawRequest {
        path: PATH.into(),
        headers: headers
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.into_bytes()))
            .collect(),
        body: plan,
        close: false,
    };
    let sig = || vec![("X-Plugipay-Signature", header.clone())];
    let (stale_body, stale) = paid(SECRET, "evt_stale")
        .timestamp(unix_now() - 3600)
        .into_parts();
    let cases = [
        (raw(vec![], BodyPlan::Full(body.clone())), 400),
        (
            raw(
                vec![("X-Plugipay-Signature", "t=oops".into())],
                BodyPlan::Full(body.clone()),
            ),
            400,
        ),
        (
            raw(
                vec![("X-Plugipay-Signature", stale)],
                BodyPlan::Full(stale_body.to_vec()),
            ),
            400,
        ),
        (
            raw(
                vec![(
                    "X-Plugipay-Signature",
                    paid("whsec_wrong", "evt_rejected").into_parts().1,
                )],
                BodyPlan::Full(body.clone()),
            ),
            400,
        ),
        (
            raw(
                sig(),
                BodyPlan::Declared {
                    content_length: 64 << 20,
                    sent: Vec::new(),
                },
            ),
            413,
        ),
        (
            raw(
                sig(),
                BodyPlan::Truncated {
                    content_length: body.len() as u64,
                    sent: body[..10].to_vec(),
                },
            ),
            400,
        ),
    ];
    for (req, status) in cases {
        let got = send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status);
        assert_eq!(got, status, "{:?}", req.headers);
    }
    let unknown = post(
        addr,
        "/tenants/initech/webhooks/plugipay",
        paid(ACME, "evt_x"),
    );
    assert_eq!(unknown, 404);
}

#[test]
fn metrics_match_the_documented_table_after_every_outcome() {
    let Some(base) = server_url("PLUGIPAY_TEST_POSTGRES_URL") else {
        return;
    };
    let doc = documented();
    let axum = BINARIES.iter().find(|(n, _)| *n == "axum").unwrap().1;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut check = |who: &str, text: &str| {
        let (samples, names) = check_against_doc(who, text, &doc);
        seen.extend(names);
        samples
    };

    // An inbox whose handlers fail each event's first attempt, behind a
    // proxy that can take its database away.
    let url = rt.block_on(fresh_schema(&base));
    let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
    let (via, _) = through(&url, proxy.addr);
    let inbox = Running::start(
        axum,
        SECRET,
        &[
            ("PLUGIPAY_TENANT_SECRETS", TENANTS),
            ("PLUGIPAY_INBOX_URL", &via),
            ("PLUGIPAY_INBOX_WORKERS", "1"),
            ("PLUGIPAY_INBOX_RETRY_BASE_MS", "100"),
            ("PLUGIPAY_EXAMPLE_FAIL_FIRST", "1"),
        ],
    );
    let addr = inbox.addr;
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_m_1")), 202);
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_m_1")), 202);
    assert_eq!(
        post(
            addr,
            PATH,
            TestDelivery::new(SECRET, NEW_TYPE).id("evt_m_new")
        ),
        202
    );
    reject_each_way(addr);
    let text = scrape_until(addr, "done", |s| {
        value(s, "plugipay_webhook_inbox_events", &[("state", "done")]) >= 1.0
            && value(s, "plugipay_webhook_inbox_events", &[("state", "skipped")]) >= 1.0
    });
    proxy.set(Mode::Down);
    // The proxy's forwarders drop their open connections on their own
    // threads: a request sent at once could still pass through one.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_m_down")), 503);
    proxy.set(Mode::Up);
    let text = format!("{text}\n{}", scrape(addr));
    let samples = check("inbox", &text);
    let acme_paid = [("event_type", PAID), ("tenant", "acme")];
    for (name, outcome, labels) in [
        (
            "plugipay_webhook_inbox_received_total",
            "stored",
            &acme_paid[..],
        ),
        (
            "plugipay_webhook_inbox_received_total",
            "duplicate",
            &acme_paid,
        ),
        (
            "plugipay_webhook_inbox_received_total",
            "store_unavailable",
            &acme_paid,
        ),
        (
            "plugipay_webhook_inbox_received_total",
            "stored",
            &[("event_type", "other"), ("tenant", "")],
        ),
        (
            "plugipay_webhook_inbox_processed_total",
            "retrying",
            &acme_paid,
        ),
        ("plugipay_webhook_inbox_processed_total", "done", &acme_paid),
        (
            "plugipay_webhook_inbox_processed_total",
            "skipped",
            &[("event_type", "other")],
        ),
        ("plugipay_webhook_deliveries_total", "verified", &[]),
        (
            "plugipay_webhook_deliveries_total",
            "signature_missing",
            &[],
        ),
        (
            "plugipay_webhook_deliveries_total",
            "signature_malformed",
            &[],
        ),
        ("plugipay_webhook_deliveries_total", "signature_stale", &[]),
        (
            "plugipay_webhook_deliveries_total",
            "signature_invalid",
            &[],
        ),
        (
            "plugipay_webhook_deliveries_total",
            "payload_too_large",
            &[],
        ),
        ("plugipay_webhook_deliveries_total", "body_read_failed", &[]),
        ("plugipay_webhook_deliveries_total", "endpoint_unknown", &[]),
    ] {
        let mut want = vec![("outcome", outcome)];
        want.extend_from_slice(labels);
        assert!(
            value(&samples, name, &want) >= 1.0,
            "inbox: {name} {want:?} not counted:\n{text}"
        );
    }
    assert!(
        value(
            &samples,
            "plugipay_webhook_inbox_handler_seconds_count",
            &[("event_type", PAID)]
        ) >= 2.0
    );
    drop(inbox);

    // An inbox with one attempt per event: dead, then revived by a
    // redelivery.
    let url = rt.block_on(fresh_schema(&base));
    let dead = Running::start(
        axum,
        SECRET,
        &[
            ("PLUGIPAY_TENANT_SECRETS", TENANTS),
            ("PLUGIPAY_INBOX_URL", &url),
            ("PLUGIPAY_INBOX_WORKERS", "1"),
            ("PLUGIPAY_INBOX_MAX_ATTEMPTS", "1"),
            ("PLUGIPAY_EXAMPLE_FAIL_FIRST", "1"),
        ],
    );
    assert_eq!(post(dead.addr, ACME_PATH, paid(ACME, "evt_m_dead")), 202);
    scrape_until(dead.addr, "dead", |s| {
        value(s, "plugipay_webhook_inbox_events", &[("state", "dead")]) >= 1.0
    });
    assert_eq!(post(dead.addr, ACME_PATH, paid(ACME, "evt_m_dead")), 202);
    let text = scrape_until(dead.addr, "dead twice", |s| {
        value(
            s,
            "plugipay_webhook_inbox_processed_total",
            &[("outcome", "dead")],
        ) >= 2.0
    });
    let samples = check("dead", &text);
    for outcome in ["stored", "revived"] {
        assert!(
            value(
                &samples,
                "plugipay_webhook_inbox_received_total",
                &[("outcome", outcome), ("tenant", "acme")]
            ) >= 1.0,
            "{outcome}:\n{text}"
        );
    }
    assert!(
        value(
            &samples,
            "plugipay_webhook_inbox_processed_total",
            &[
                ("outcome", "dead"),
                ("event_type", PAID),
                ("tenant", "acme")
            ]
        ) >= 2.0
    );
    drop(dead);

    // A de-duplicating dispatcher whose handlers take a while, behind a
    // proxy.
    let url = rt.block_on(fresh_schema(&base));
    let proxy = Proxy::start(through(&url, "127.0.0.1:1".parse().unwrap()).1);
    let (via, _) = through(&url, proxy.addr);
    let dispatch = Running::start(
        axum,
        SECRET,
        &[
            ("PLUGIPAY_TENANT_SECRETS", TENANTS),
            ("PLUGIPAY_DEDUP_URL", &via),
            ("PLUGIPAY_EXAMPLE_HANDLER_DELAY_MS", "1500"),
        ],
    );
    let addr = dispatch.addr;
    let first = std::thread::spawn(move || post(addr, ACME_PATH, paid(ACME, "evt_d_1")));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_d_1")), 409);
    assert_eq!(first.join().unwrap(), 204);
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_d_1")), 204);
    assert_eq!(
        post(
            addr,
            PATH,
            TestDelivery::new(SECRET, NEW_TYPE).id("evt_d_new")
        ),
        204
    );
    proxy.set(Mode::Down);
    // The proxy's forwarders drop their open connections on their own
    // threads: a request sent at once could still pass through one.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(addr, ACME_PATH, paid(ACME, "evt_d_down")), 503);
    proxy.set(Mode::Up);
    let text = scrape(addr);
    let samples = check("dispatcher", &text);
    for (outcome, labels) in [
        ("handled", &acme_paid[..]),
        ("in_progress", &acme_paid),
        ("duplicate", &acme_paid),
        ("store_unavailable", &acme_paid),
        ("unknown", &[("event_type", "other"), ("tenant", "")]),
    ] {
        let mut want = vec![("outcome", outcome)];
        want.extend_from_slice(labels);
        assert!(
            value(&samples, "plugipay_webhook_dispatch_total", &want) >= 1.0,
            "dispatcher: {want:?} not counted:\n{text}"
        );
    }
    drop(dispatch);

    let missing: Vec<&String> = doc.keys().filter(|name| !seen.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "documented but never exported: {missing:?}"
    );
}
