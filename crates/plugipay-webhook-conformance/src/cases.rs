//! The suite's cases, as data: every vector, the HTTP rules of section 6,
//! the bad-input catalogue, and the per-route and per-tenant endpoints.

use std::time::Duration;

use plugipay_webhook::http::{Tenant, Verifiers};
use plugipay_webhook::{testing, Verifier};

use crate::client::{BodyPlan, RawRequest};
use crate::model::{Expected, Source, WEBHOOK_PATH};
use crate::vectors::{Expect, Vector, VectorFile};

/// The secret of the suite's default server (the `valid` vector's).
pub(crate) const SECRET: &str = "whsec_test_conformance";

const ROUTE_A: &str = "whsec_route_a";
const ROUTE_B: &str = "whsec_route_b";
const ACME_NEW: &str = "whsec_acme_new";
const ACME_OLD: &str = "whsec_acme_old";
const GLOBEX: &str = "whsec_globex";

/// Every secret the endpoint cases configure (the log check looks for them).
pub(crate) const TENANT_SECRETS: [&str; 5] = [ROUTE_A, ROUTE_B, ACME_NEW, ACME_OLD, GLOBEX];

/// The per-tenant route of the endpoint cases.
const TENANT_PATTERN: &str = "/tenants/{tenant}/webhooks/plugipay";

/// What a case's server is started with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Server {
    /// A verifier as a vector configures it (secrets, tolerance, clock).
    Vector {
        secrets: Vec<String>,
        tolerance: u64,
        now: i64,
    },
    /// The default server's verifier with this read deadline (ms).
    ReadTimeout(u64),
    /// No verifier at all.
    NoVerifier,
    /// Two routes, two secrets.
    Routes,
    /// Tenants in the path, from `acme=…,…;globex=…`.
    Tenants,
    /// Tenants in a header, looked up asynchronously; `down` fails.
    TenantLookup,
    /// The tenants of `Tenants`, unknown ones answered as a failed
    /// verification.
    HiddenTenants,
    /// Tenants in a header whose lookup never answers for `slow`, bounded
    /// to 300 ms.
    SlowLookup,
    /// Tenants and a named route under the mount point `/api`, the
    /// framework's way (axum's `nest`, actix-web's `scope`, Rocket's
    /// `mount`, a warp path prefix): the patterns name the whole path.
    Mounted,
}

/// Where [`Server::Mounted`] mounts its router.
pub(crate) const MOUNT: &str = "/api";

impl Server {
    fn of(v: &Vector) -> Server {
        Server::Vector {
            secrets: v.secrets.clone(),
            tolerance: v.tolerance,
            now: v.now,
        }
    }
}

/// A check beyond status and body.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// `Connection: close`, and the server really closes.
    Closes,
    /// No interim `100 Continue` before the final answer.
    NoInterim,
    /// The handler saw exactly the vector's event.
    Event(Box<Vector>),
    /// The handler's event carried this tenant.
    Tenant(Option<&'static str>),
}

/// One request, the server it goes to, and the answer it must get. A case
/// expecting [`Expected::Accepted`] must reach the handler exactly once;
/// every other case never.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) server: Server,
    pub(crate) request: RawRequest,
    pub(crate) expected: Expected,
    pub(crate) checks: Vec<Check>,
}

impl Case {
    fn new(name: &str, server: &Server, request: RawRequest, expected: Expected) -> Case {
        Case {
            name: name.to_owned(),
            server: server.clone(),
            request,
            expected,
            checks: Vec::new(),
        }
    }

    fn check(mut self, check: Check) -> Case {
        self.checks.push(check);
        self
    }
}

/// The verifier source a server is started with.
pub(crate) fn source(server: &Server, base: &Vector) -> Source {
    let base_verifier = || Server::of(base);
    match server {
        Server::Vector {
            secrets,
            tolerance,
            now,
        } => Source::Verifier(crate::vectors::verifier(secrets, *tolerance, *now)),
        Server::ReadTimeout(ms) => match source(&base_verifier(), base) {
            Source::Verifier(v) => Source::Verifier(v.read_timeout(Duration::from_millis(*ms))),
            other => other,
        },
        Server::NoVerifier => Source::None,
        Server::Routes => Source::Verifiers(
            Verifiers::by_route()
                .route("/routes/a", Verifier::new(ROUTE_A))
                .route("/routes/b", Verifier::new(ROUTE_B)),
        ),
        Server::Tenants => Source::Verifiers(Verifiers::by_tenant(
            Tenant::in_path(TENANT_PATTERN),
            Verifiers::parse_tenant_secrets(&format!("acme={ACME_NEW},{ACME_OLD};globex={GLOBEX}"))
                .expect("valid tenant secrets"),
        )),
        Server::HiddenTenants => match source(&Server::Tenants, base) {
            Source::Verifiers(v) => Source::Verifiers(v.hide_unknown_tenants()),
            other => other,
        },
        Server::SlowLookup => Source::Verifiers(
            Verifiers::by_tenant_with(
                Tenant::in_header("x-plugipay-tenant"),
                |tenant: String| async move {
                    if tenant == "slow" {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, std::io::Error>(Some(Verifier::new(ACME_NEW)))
                },
            )
            .lookup_timeout(Duration::from_millis(300)),
        ),
        Server::Mounted => Source::Verifiers(
            Verifiers::by_tenant(
                Tenant::in_path(&format!("{MOUNT}{TENANT_PATTERN}")),
                Verifiers::parse_tenant_secrets(&format!("acme={ACME_NEW}"))
                    .expect("valid tenant secrets"),
            )
            .or(Verifiers::by_route().route_for_tenant(
                &format!("{MOUNT}/routes/a"),
                "route-a",
                Verifier::new(ROUTE_A),
            )),
        ),
        Server::TenantLookup => Source::Verifiers(Verifiers::by_tenant_with(
            Tenant::in_header("x-plugipay-tenant"),
            |tenant: String| async move {
                // A lookup that takes a moment, as a database's would.
                tokio::time::sleep(Duration::from_millis(5)).await;
                match tenant.as_str() {
                    "acme" => Ok(Some(Verifier::new(ACME_NEW))),
                    "down" => Err(std::io::Error::other("tenant database unreachable")),
                    _ => Ok(None),
                }
            },
        )),
    }
}

/// Every case, in the order they run (some rely on it: "keeps serving"
/// cases follow the failures they are about).
pub(crate) fn all(file: &VectorFile, base: &Vector) -> Vec<Case> {
    let mut all = vectors(file);
    all.extend(http(base));
    all.extend(hostile(base));
    all.extend(endpoints(base));
    all.push(
        Case::new(
            "http servers keep serving after every case",
            &Server::of(base),
            signed(WEBHOOK_PATH, &base.body, SECRET, base.now),
            Expected::Accepted,
        )
        .check(Check::Event(Box::new(base.clone()))),
    );
    all
}

/// `POST path` with `body`, signed with `secret` at `t`.
fn signed(path: &str, body: &[u8], secret: &str, t: i64) -> RawRequest {
    RawRequest::post(path, body.to_vec()).header(
        "X-Plugipay-Signature",
        testing::sign_header(secret, t, body),
    )
}

/// A request head declaring `content_length`, its body never sent.
fn head_only(path: &str, headers: &[(&str, &[u8])], content_length: u64) -> RawRequest {
    RawRequest {
        path: path.into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect(),
        body: BodyPlan::Declared {
            content_length,
            sent: Vec::new(),
        },
        close: false,
    }
}

/// Every vector that can travel over HTTP (1).
fn vectors(file: &VectorFile) -> Vec<Case> {
    file.vectors
        .iter()
        .filter(|v| v.http)
        .map(|v| {
            let mut request = RawRequest::post(WEBHOOK_PATH, v.body.clone())
                .header("Content-Type", "application/json");
            if let Some(enc) = &v.content_encoding {
                request = request.header("Content-Encoding", enc.as_bytes());
            }
            for h in &v.headers {
                request = request.header("X-Plugipay-Signature", h.clone());
            }
            let name = format!("vector {}", v.name);
            match &v.expect {
                Expect::Ok(_) => Case::new(&name, &Server::of(v), request, Expected::Accepted)
                    .check(Check::Event(Box::new(v.clone()))),
                Expect::Error(code) => {
                    Case::new(&name, &Server::of(v), request, Expected::ours(400, code))
                }
            }
        })
        .collect()
}

/// A valid envelope padded with whitespace to exactly `size` bytes.
fn padded(base: &Vector, size: usize, chunked: bool) -> RawRequest {
    let mut body = base.body.clone();
    let close = body.pop().expect("non-empty body"); // the final `}`
    body.resize(size - 1, b' ');
    body.push(close);
    let header = testing::sign_header(SECRET, base.now, &body);
    RawRequest {
        path: WEBHOOK_PATH.into(),
        headers: vec![("X-Plugipay-Signature".into(), header.into_bytes())],
        body: if chunked {
            BodyPlan::Chunked {
                body,
                chunk: 16 * 1024,
            }
        } else {
            BodyPlan::Full(body)
        },
        // Over the limit, leave the connection open: the server must close it.
        close: size <= plugipay_webhook::DEFAULT_BODY_LIMIT,
    }
}

/// Section 6's HTTP rules (2), against a server with the default limits.
fn http(base: &Vector) -> Vec<Case> {
    let server = Server::of(base);
    let limit = plugipay_webhook::DEFAULT_BODY_LIMIT;
    let sig = testing::sign_header(SECRET, base.now, &base.body);
    let valid = || RawRequest::post(WEBHOOK_PATH, base.body.clone());
    let too_large = limit as u64 + 1;
    let slow = Server::ReadTimeout(1000);
    let case = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(&format!("http {name}"), &server, request, expected)
    };
    vec![
        case(
            "lower-case header name",
            valid().header("x-plugipay-signature", sig.clone()),
            Expected::Accepted,
        ),
        case(
            "upper-case header name",
            valid().header("X-PLUGIPAY-SIGNATURE", sig.clone()),
            Expected::Accepted,
        ),
        case(
            "request content-type is ignored",
            valid()
                .header("Content-Type", "text/plain")
                .header("X-Plugipay-Signature", sig.clone()),
            Expected::Accepted,
        ),
        case(
            "body of exactly the limit is accepted",
            padded(base, limit, false),
            Expected::Accepted,
        ),
        case(
            "chunked body of exactly the limit is accepted",
            padded(base, limit, true),
            Expected::Accepted,
        ),
        case(
            "content-length one over the limit is 413 before the body is sent",
            head_only(
                WEBHOOK_PATH,
                &[("X-Plugipay-Signature", sig.as_bytes())],
                too_large,
            ),
            Expected::ours(413, "payload_too_large"),
        )
        .check(Check::Closes),
        case(
            "body one byte over the limit with content-length is 413",
            padded(base, limit + 1, false),
            Expected::ours(413, "payload_too_large"),
        )
        .check(Check::Closes),
        case(
            "chunked body over the limit is 413",
            padded(base, limit + 64 * 1024, true),
            Expected::ours(413, "payload_too_large"),
        )
        .check(Check::Closes),
        case(
            "header rules are decided before the content-length limit (malformed)",
            head_only(
                WEBHOOK_PATH,
                &[("X-Plugipay-Signature", b"v1=abc")],
                50 << 20,
            ),
            Expected::ours(400, "signature_malformed"),
        ),
        case(
            "header rules are decided before the content-length limit (missing)",
            head_only(WEBHOOK_PATH, &[], 50 << 20),
            Expected::ours(400, "signature_missing"),
        ),
        case(
            "Expect: 100-continue with a malformed header gets 400, not 100 Continue",
            head_only(
                WEBHOOK_PATH,
                &[
                    ("X-Plugipay-Signature", b"v1=abc"),
                    ("Expect", b"100-continue"),
                ],
                base.body.len() as u64,
            ),
            Expected::ours(400, "signature_malformed"),
        )
        .check(Check::NoInterim),
        case(
            "Expect: 100-continue over the limit gets 413, not 100 Continue",
            head_only(
                WEBHOOK_PATH,
                &[
                    ("X-Plugipay-Signature", sig.as_bytes()),
                    ("Expect", b"100-continue"),
                ],
                too_large,
            ),
            Expected::ours(413, "payload_too_large"),
        )
        .check(Check::NoInterim)
        .check(Check::Closes),
        case(
            "Expect: 100-continue with a valid delivery is accepted",
            valid()
                .header("X-Plugipay-Signature", sig.clone())
                .header("Expect", "100-continue"),
            Expected::Accepted,
        ),
        Case::new(
            "http body not complete within the read deadline is 408",
            &slow,
            RawRequest {
                path: WEBHOOK_PATH.into(),
                headers: vec![("X-Plugipay-Signature".into(), sig.clone().into_bytes())],
                body: BodyPlan::Declared {
                    content_length: base.body.len() as u64,
                    sent: base.body[..10].to_vec(),
                },
                close: false,
            },
            Expected::ours(408, "body_timeout"),
        )
        .check(Check::Closes),
        Case::new(
            "http server keeps serving after a timed-out body",
            &slow,
            valid().header("X-Plugipay-Signature", sig.clone()),
            Expected::Accepted,
        ),
        Case::new(
            "http no verifier configured is 500 verifier_missing",
            &Server::NoVerifier,
            valid().header("X-Plugipay-Signature", sig),
            Expected::ours(500, "verifier_missing"),
        ),
    ]
}

/// The bad-input catalogue (3): what anyone on the internet can send a
/// public webhook URL. Where the HTTP server answers before any adapter code
/// runs, its own answer is expected.
fn hostile(base: &Vector) -> Vec<Case> {
    let server = Server::of(base);
    let now = base.now;
    let body = base.body.clone();
    let signature = testing::sign_header(SECRET, now, &body);
    let post = || RawRequest::post(WEBHOOK_PATH, body.clone());
    let with_signature = |b: &[u8]| signed(WEBHOOK_PATH, b, SECRET, now);

    let mut huge_header = signature.clone().into_bytes();
    huge_header.extend_from_slice(b",x=");
    huge_header.resize(64 * 1024, b'a');

    let mut many_v1 = signature.clone();
    for _ in 0..300 {
        many_v1.push_str(",v1=00");
    }

    let mut thousands = with_signature(&body);
    for i in 0..5000 {
        thousands = thousands.header(&format!("X-Junk-{i}"), "x");
    }

    let mut nul = signature.clone().into_bytes();
    nul.extend_from_slice(b",x=\0");

    let mut longer_than_declared = body.clone();
    longer_than_declared.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");

    let declared = |content_length: u64, sent: Vec<u8>, truncated: bool| RawRequest {
        path: WEBHOOK_PATH.into(),
        headers: vec![(
            "X-Plugipay-Signature".into(),
            signature.clone().into_bytes(),
        )],
        body: if truncated {
            BodyPlan::Truncated {
                content_length,
                sent,
            }
        } else {
            BodyPlan::Declared {
                content_length,
                sent,
            }
        },
        close: false,
    };

    let case = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(&format!("hostile {name}"), &server, request, expected)
    };
    vec![
        case(
            "64 KiB header value",
            post().header("X-Plugipay-Signature", huge_header),
            Expected::ours(400, "signature_malformed"),
        ),
        case(
            "hundreds of v1 items",
            post().header("X-Plugipay-Signature", many_v1),
            Expected::ours(400, "signature_malformed"),
        ),
        case(
            "thousands of header fields",
            thousands,
            Expected::server(431),
        ),
        case(
            "NUL byte in the signature header",
            post().header("X-Plugipay-Signature", nul),
            Expected::server(400),
        ),
        case(
            "non-ASCII bytes in the signature header",
            post().header(
                "X-Plugipay-Signature",
                format!("{signature},x=\u{e9}\u{1F600}"),
            ),
            Expected::ours(400, "signature_malformed"),
        ),
        case(
            "wrong Content-Type",
            with_signature(&body).header("Content-Type", "application/x-www-form-urlencoded"),
            Expected::Accepted,
        ),
        case(
            "empty body",
            with_signature(b""),
            Expected::ours(400, "signature_invalid"),
        ),
        case(
            "client disconnects mid-body",
            declared(body.len() as u64, body[..body.len() / 2].to_vec(), true),
            Expected::ours(400, "body_read_failed"),
        ),
        // The declared bytes are verified: a truncated body never matches.
        case(
            "Content-Length smaller than the body sent",
            declared((body.len() - 10) as u64, longer_than_declared, false),
            Expected::ours(400, "signature_invalid"),
        ),
        case(
            "gzip-encoded body (verified as sent, never decoded)",
            with_signature(&body).header("Content-Encoding", "gzip"),
            Expected::Accepted,
        ),
    ]
}

/// Verifiers chosen per request (4): two routes with two secrets, tenants
/// in the path (with a rotation), tenants looked up asynchronously.
fn endpoints(base: &Vector) -> Vec<Case> {
    let body = &base.body;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let tenant = |name: &str| format!("/tenants/{name}/webhooks/plugipay");
    let sig = |secret: &str| testing::sign_header(secret, now, body);
    let by_header = |name: &str, secret: &str| {
        signed("/lookup", body, secret, now).header("X-Plugipay-Tenant", name)
    };
    let routes = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(&format!("route {name}"), &Server::Routes, request, expected)
    };
    let tenants = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(
            &format!("tenant {name}"),
            &Server::Tenants,
            request,
            expected,
        )
    };
    let lookup = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(
            &format!("tenant lookup {name}"),
            &Server::TenantLookup,
            request,
            expected,
        )
    };
    let unknown = || Expected::ours(404, "endpoint_unknown");
    let hidden = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(
            &format!("hidden tenants: {name}"),
            &Server::HiddenTenants,
            request,
            expected,
        )
    };
    let mounted = |name: &str, request: RawRequest, expected: Expected| {
        Case::new(
            &format!("mounted under {MOUNT}: {name}"),
            &Server::Mounted,
            request,
            expected,
        )
    };
    vec![
        routes(
            "a verifies with a's secret, and carries no tenant",
            signed("/routes/a", body, ROUTE_A, now),
            Expected::Accepted,
        )
        .check(Check::Tenant(None)),
        routes(
            "b verifies with b's secret",
            signed("/routes/b", body, ROUTE_B, now),
            Expected::Accepted,
        ),
        routes(
            "a refuses b's secret",
            signed("/routes/a", body, ROUTE_B, now),
            Expected::ours(400, "signature_invalid"),
        ),
        routes(
            "unknown is 404 before the body is read",
            head_only(
                "/routes/c",
                &[("X-Plugipay-Signature", sig(ROUTE_A).as_bytes())],
                50 << 20,
            ),
            unknown(),
        ),
        routes(
            "unknown is 404 before the header rules",
            head_only("/routes/c", &[], 10),
            unknown(),
        ),
        tenants(
            "acme with its new secret, the event carrying the tenant",
            signed(&tenant("acme"), body, ACME_NEW, now),
            Expected::Accepted,
        )
        .check(Check::Tenant(Some("acme"))),
        tenants(
            "acme with its old secret during a rotation",
            signed(&tenant("acme"), body, ACME_OLD, now),
            Expected::Accepted,
        ),
        tenants(
            "globex refuses acme's secret",
            signed(&tenant("globex"), body, ACME_NEW, now),
            Expected::ours(400, "signature_invalid"),
        ),
        tenants(
            "header rules apply once the tenant is known",
            head_only(&tenant("acme"), &[("X-Plugipay-Signature", b"v1=abc")], 10),
            Expected::ours(400, "signature_malformed"),
        ),
        tenants(
            "unknown is 404 before the body is read",
            head_only(
                &tenant("initech"),
                &[("X-Plugipay-Signature", sig(ACME_NEW).as_bytes())],
                50 << 20,
            ),
            unknown(),
        ),
        tenants(
            "a path naming no tenant is 404",
            signed("/tenants/acme/other", body, ACME_NEW, now),
            unknown(),
        ),
        tenants(
            "unknown with Expect: 100-continue gets 404, not 100 Continue",
            head_only(
                &tenant("initech"),
                &[
                    ("X-Plugipay-Signature", sig(ACME_NEW).as_bytes()),
                    ("Expect", b"100-continue"),
                ],
                body.len() as u64,
            ),
            unknown(),
        )
        .check(Check::NoInterim),
        lookup(
            "finds acme",
            by_header("acme", ACME_NEW),
            Expected::Accepted,
        ),
        lookup(
            "acme refuses another secret",
            by_header("acme", GLOBEX),
            Expected::ours(400, "signature_invalid"),
        ),
        lookup(
            "not found is 404",
            by_header("initech", ACME_NEW),
            unknown(),
        ),
        lookup(
            "failing is 503 with Retry-After, before the body is read",
            head_only(
                "/lookup",
                &[
                    ("X-Plugipay-Signature", sig(ACME_NEW).as_bytes()),
                    ("X-Plugipay-Tenant", b"down"),
                ],
                50 << 20,
            ),
            Expected::ours(503, "verifier_unavailable"),
        ),
        lookup(
            "no tenant header is 404",
            signed("/lookup", body, ACME_NEW, now),
            unknown(),
        ),
        Case::new(
            "tenant lookup that never answers is 503 within its timeout",
            &Server::SlowLookup,
            signed("/lookup", body, ACME_NEW, now).header("X-Plugipay-Tenant", "slow"),
            Expected::ours(503, "verifier_unavailable"),
        ),
        Case::new(
            "tenant lookup bounded still finds a tenant in time",
            &Server::SlowLookup,
            signed("/lookup", body, ACME_NEW, now).header("X-Plugipay-Tenant", "acme"),
            Expected::Accepted,
        )
        .check(Check::Tenant(Some("acme"))),
        hidden(
            "acme is served as usual",
            signed(&tenant("acme"), body, ACME_NEW, now),
            Expected::Accepted,
        ),
        hidden(
            "an unknown tenant signed well is signature_invalid, as a wrong secret is",
            signed(&tenant("initech"), body, ACME_NEW, now),
            Expected::ours(400, "signature_invalid"),
        ),
        hidden(
            "an unknown tenant without a signature is signature_missing, as a known one is",
            RawRequest::post(&tenant("initech"), body.to_vec()),
            Expected::ours(400, "signature_missing"),
        ),
        hidden(
            "an unknown tenant's oversized body is 413, as a known one's is",
            head_only(
                &tenant("initech"),
                &[("X-Plugipay-Signature", sig(ACME_NEW).as_bytes())],
                50 << 20,
            ),
            Expected::ours(413, "payload_too_large"),
        ),
        mounted(
            "a tenant route sees the whole path",
            signed(&format!("{MOUNT}{}", tenant("acme")), body, ACME_NEW, now),
            Expected::Accepted,
        )
        .check(Check::Tenant(Some("acme"))),
        mounted(
            "a named route sees the whole path",
            signed(&format!("{MOUNT}/routes/a"), body, ROUTE_A, now),
            Expected::Accepted,
        )
        .check(Check::Tenant(Some("route-a"))),
        mounted(
            "an unknown tenant is 404",
            signed(
                &format!("{MOUNT}{}", tenant("initech")),
                body,
                ACME_NEW,
                now,
            ),
            unknown(),
        ),
    ]
}
