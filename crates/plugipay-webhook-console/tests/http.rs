//! The console over HTTP, through the axum router as an app nests it:
//! authentication, the login cookie, CSRF and cross-site refusals, the
//! security headers, escaping, filters, keyset pages and retries.

mod common;

use axum::body::Body;
use axum::Router;
use common::*;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use plugipay_webhook_console::{Console, CONTENT_SECURITY_POLICY};
use plugipay_webhook_dispatch::inbox::State;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

fn app(console: &Console) -> Router {
    Router::new()
        .route("/", axum::routing::get(|| async { "the app" }))
        .merge(console.router())
}

async fn send(console: &Console, req: Request<Body>) -> Answer {
    let res = app(console).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    }
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path).header(header::HOST, "console.test")
}

fn authed(path: &str) -> Request<Body> {
    get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, form: &str) -> http::request::Builder {
    let _ = form;
    Request::post(path)
        .header(header::HOST, "console.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_nothing_is_shown() {
    let f = fixture(2).await;
    let console = f.console(false);
    for path in [
        "/console/",
        "/console/events",
        "/console/events/evt_refund_a",
        "/console/retry?state=dead&type=plugipay.refund.succeeded.v1",
        "/console/nothing-here",
    ] {
        // An API client: 401 with a challenge, and no event data.
        let a = send(&console, get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(a.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(!a.body.contains("evt_"), "{path}: {}", a.body);
        // A browser: to the login page.
        let a = send(
            &console,
            get(path)
                .header(header::ACCEPT, "text/html,application/xhtml+xml")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.headers[header::LOCATION], "/console/login");
        // A wrong token is no token.
        let a = send(
            &console,
            get(path)
                .header(
                    header::AUTHORIZATION,
                    "Bearer console-test-token-012345678X",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let a = send(
        &console,
        post("/console/events/evt_refund_a/retry", "")
            .body(Body::from("csrf=x"))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.state_of("evt_refund_a").await, State::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_expiring_secure_session_and_sign_out_ends_it() {
    let f = fixture(1).await;
    let console = f.console(false);
    // A wrong token in a link: to the form, the token off the URL.
    let a = send(
        &console,
        get("/console/login?token=not-the-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/console/login?failed=1");
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let a = send(
        &console,
        get("/console/login?failed=1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.body
            .contains("<form method=\"post\" action=\"/console/login\">"),
        "{}",
        a.body
    );

    // The form posts the token; a link signs in too, redirected at once to
    // a URL without it.
    let form_login = send(
        &console,
        post("/console/login", "")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    let link_login = send(
        &console,
        get(&format!("/console/login?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let mut sessions = Vec::new();
    for a in [&form_login, &link_login] {
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.headers[header::LOCATION], "/console/");
        let cookie = a.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=43200",
            "Secure",
        ] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(
            !cookie.contains(TOKEN),
            "the cookie is not the token: {cookie}"
        );
        sessions.push(cookie.split(';').next().unwrap().to_owned());
    }
    let wrong_post = send(
        &console,
        post("/console/login", "")
            .body(Body::from("token=not-the-token"))
            .unwrap(),
    )
    .await;
    assert_eq!(wrong_post.status, StatusCode::UNAUTHORIZED);
    let cross = send(
        &console,
        post("/console/login", "")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(format!("token={TOKEN}")))
            .unwrap(),
    )
    .await;
    assert_eq!(
        cross.status,
        StatusCode::FORBIDDEN,
        "a sign-in from another site"
    );

    let page = |session: &str| get("/console/events/evt_refund_a").header(header::COOKIE, session);
    let (a, b) = (&sessions[0], &sessions[1]);
    let shown = send(&console, page(a).body(Body::empty()).unwrap()).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.body.contains("Sign out"), "{}", shown.body);
    // Each session's forms carry a token of its own: one session's token is
    // refused in another.
    let (csrf_a, csrf_b) = (
        csrf_of(&shown.body),
        csrf_of(
            &send(&console, page(b).body(Body::empty()).unwrap())
                .await
                .body,
        ),
    );
    assert_ne!(csrf_a, csrf_b);
    let retry = |session: &str, csrf: &str| {
        post("/console/events/evt_refund_a/retry", "")
            .header(header::COOKIE, session)
            .body(Body::from(format!("type={REFUND}&csrf={csrf}")))
            .unwrap()
    };
    assert_eq!(
        send(&console, retry(b, &csrf_a)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(f.state_of("evt_refund_a").await, State::Dead);

    // Sign out: the cookie cleared, the session refused from now on.
    let out = send(
        &console,
        post("/console/logout", "")
            .header(header::COOKIE, a)
            .body(Body::from(format!("csrf={csrf_a}")))
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(out.headers[header::LOCATION], "/console/login");
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = send(&console, page(a).body(Body::empty()).unwrap()).await;
    assert_ne!(after.status, StatusCode::OK, "an ended session");
    assert!(!after.body.contains("evt_refund_a"));
    // The other session lives on.
    assert_eq!(
        send(&console, page(b).body(Body::empty()).unwrap())
            .await
            .status,
        StatusCode::OK
    );

    // A short lifetime is the cookie's Max-Age; at the root, over HTTPS,
    // the name takes the __Host- prefix; plain-HTTP development opts out of
    // Secure.
    let root = plugipay_webhook_console::Console::builder(
        f.inbox.clone(),
        plugipay_webhook_console::Auth::bearer(TOKEN),
    )
    .base("/")
    .session_lifetime(std::time::Duration::from_secs(600))
    .build()
    .unwrap();
    // (At the root the test app's own `/` would collide: asked directly.)
    let a = root
        .respond(
            http::Request::get(format!("/login?token={TOKEN}"))
                .header(header::HOST, "console.test")
                .body(bytes::Bytes::new())
                .unwrap(),
        )
        .await;
    let a = Answer {
        status: a.status(),
        headers: a.headers().clone(),
        body: String::new(),
    };
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-plugipay_console_"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=600") && cookie.contains("Path=/;"),
        "{cookie}"
    );
    let plain = plugipay_webhook_console::Console::builder(
        f.inbox.clone(),
        plugipay_webhook_console::Auth::bearer(TOKEN),
    )
    .secure_cookie(false)
    .build()
    .unwrap();
    let a = send(
        &plain,
        get(&format!("/console/login?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        !cookie.contains("Secure") && cookie.starts_with("plugipay_console_"),
        "{cookie}"
    );
    // A token under 128 bits is refused.
    assert!(plugipay_webhook_console::Console::builder(
        f.inbox.clone(),
        plugipay_webhook_console::Auth::bearer("long-enough-token")
    )
    .build()
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_sent_with_the_security_headers_and_no_script() {
    let f = fixture(3).await;
    let console = f.console(false);
    for path in [
        "/console/",
        "/console/events",
        "/console/events/evt_markup",
        "/console/events/evt_refund_a",
        "/console/retry?state=dead&type=plugipay.refund.succeeded.v1",
        "/console/login",
    ] {
        let a = send(&console, authed(path)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_eq!(
            a.headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(a.headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(a.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
        assert!(!a.body.contains("<script"), "{path}");
        assert!(!a.body.contains(" style="), "{path}: an inline style");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_holding_markup_is_shown_as_text() {
    let f = fixture(1).await;
    let a = send(&f.console(false), authed("/console/events/evt_markup")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        !a.body.contains("<script") && !a.body.contains("<img"),
        "{}",
        a.body
    );
    assert!(
        a.body
            // maud escapes `&`, `<`, `>` and `"`; a `'` is text here (every
            // attribute is double-quoted), so it stays as it is.
            .contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{}",
        a.body
    );
    // The refund's error holds markup too.
    let a = send(&f.console(false), authed("/console/events/evt_refund_a")).await;
    assert!(
        a.body
            .contains("ledger: account &lt;locked&gt; &amp; frozen"),
        "{}",
        a.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_what_the_inbox_holds() {
    let f = fixture(4).await;
    let a = send(&f.console(false), authed("/console/")).await;
    for (state, n) in [("done", 5), ("dead", 2), ("skipped", 1), ("pending", 0)] {
        let needle = format!("data-state-count=\"{state}\">{n}<");
        assert!(a.body.contains(&needle), "{needle}: {}", a.body);
    }
    // The chart counts the last hour: 8 received, 5 done.
    assert!(a.body.contains("8 received, 5 processed"), "{}", a.body);
    // The failing type, with its last error.
    assert!(a.body.contains(REFUND) && a.body.contains("account &lt;locked&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_and_pages_by_key() {
    let f = fixture(120).await;
    let console = f.console(false);
    let rows = |page: &str| -> Vec<String> {
        page.split("<tr data-event-id=\"")
            .skip(1)
            .map(|r| r[..r.find('"').unwrap()].to_owned())
            .collect()
    };
    let a = send(&console, authed(&format!("/console/events?type={REFUND}"))).await;
    assert_eq!(rows(&a.body), ["evt_refund_b", "evt_refund_a"]);
    let a = send(&console, authed("/console/events?state=skipped")).await;
    assert_eq!(rows(&a.body), ["evt_payout"]);
    let a = send(
        &console,
        authed("/console/events?object=inv_2&id=evt_paid_001"),
    )
    .await;
    assert_eq!(
        rows(&a.body),
        ["evt_paid_0017", "evt_paid_0014", "evt_paid_0011"]
    );
    let a = send(
        &console,
        authed("/console/events?from=2000-01-01T00%3A00&to=2000-01-02T00%3A00"),
    )
    .await;
    assert!(rows(&a.body).is_empty());

    // All 124 events, 50 at a time, each once, newest first.
    let mut seen = Vec::new();
    let mut path = "/console/events".to_owned();
    for _ in 0..5 {
        let a = send(&console, authed(&path)).await;
        assert_eq!(a.status, StatusCode::OK);
        seen.extend(rows(&a.body));
        match a.body.find("rel=\"next\"") {
            Some(_) => {
                let at = a.body.find("<a href=\"/console/events?after=").unwrap() + 9;
                let href = &a.body[at..at + a.body[at..].find('"').unwrap()];
                path = href.replace("&amp;", "&");
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 124, "{seen:?}");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 124);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_needs_the_csrf_token_and_the_same_site() {
    let f = fixture(1).await;
    let console = f.console(false);
    let page = send(&console, authed("/console/events/evt_refund_a"))
        .await
        .body;
    assert!(
        page.contains("<button type=\"submit\">Retry</button>"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let bearer = format!("Bearer {TOKEN}");
    let attempt = |body: String, site: Option<&'static str>| {
        let mut b =
            post("/console/events/evt_refund_a/retry", "").header(header::AUTHORIZATION, &bearer);
        if let Some(site) = site {
            b = b.header("sec-fetch-site", site);
        }
        b.body(Body::from(body)).unwrap()
    };
    for (body, site) in [
        (format!("type={REFUND}"), None),
        (format!("type={REFUND}&csrf=0000"), None),
        (format!("type={REFUND}&csrf={csrf}"), Some("cross-site")),
    ] {
        let a = send(&console, attempt(body, site)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        assert_eq!(f.state_of("evt_refund_a").await, State::Dead);
    }
    let a = send(
        &console,
        attempt(format!("type={REFUND}&csrf={csrf}"), Some("same-origin")),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    f.settle().await;
    assert_eq!(f.state_of("evt_refund_a").await, State::Done);
    assert_eq!(f.state_of("evt_refund_b").await, State::Dead);
    // A GET never writes.
    let a = send(&console, authed("/console/events/evt_refund_b/retry")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dead_event_of_a_type_after_a_confirmation() {
    let f = fixture(1).await;
    let console = f.console(false);
    let page = send(
        &console,
        authed(&format!("/console/retry?state=dead&type={REFUND}")),
    )
    .await
    .body;
    assert!(page.contains("Retry 2 dead events of type"), "{page}");
    let csrf = csrf_of(&page);
    let form = format!("csrf={csrf}&state=dead&type={REFUND}");
    let bearer = format!("Bearer {TOKEN}");
    let a = send(
        &console,
        post("/console/retry", "")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from(form.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "unconfirmed: {}", a.body);
    let a = send(
        &console,
        post("/console/retry", "")
            .header(header::AUTHORIZATION, &bearer)
            .body(Body::from(format!("{form}&confirm=yes")))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert!(a.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .contains("retried=2"));
    f.settle().await;
    assert_eq!(f.state_of("evt_refund_a").await, State::Done);
    assert_eq!(f.state_of("evt_refund_b").await, State::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_console_changes_nothing() {
    let f = fixture(1).await;
    let writable = f.console(false);
    let csrf = csrf_of(
        &send(&writable, authed("/console/events/evt_refund_a"))
            .await
            .body,
    );
    let console = f.console(true);
    let page = send(&console, authed("/console/events/evt_refund_a"))
        .await
        .body;
    assert!(
        !page.contains("Retry</button>") && page.contains("Read-only"),
        "{page}"
    );
    let a = send(
        &console,
        post("/console/events/evt_refund_a/retry", "")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from(format!("csrf={csrf}&type={REFUND}")))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(f.state_of("evt_refund_a").await, State::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_page_verifies_its_stored_bytes_and_lists_its_object() {
    let f = fixture(6).await;
    let a = send(&f.console(false), authed("/console/events/evt_paid_0003")).await;
    assert!(
        a.body
            .contains("The stored bytes verify against the stored header"),
        "{}",
        a.body
    );
    assert!(a.body.contains("X-Plugipay-Signature: t="));
    // inv_0: evt_paid_0000, evt_paid_0003, evt_markup.
    let section = &a.body[a.body.find("Events of inv_0").expect("the object's events")..];
    for id in ["evt_paid_0000", "evt_paid_0003", "evt_markup"] {
        assert!(section.contains(id), "{id}: {section}");
    }
    // A console without the secret says so rather than guessing.
    let blind = Console::builder(
        f.inbox.clone(),
        plugipay_webhook_console::Auth::bearer(TOKEN),
    )
    .build()
    .unwrap();
    let a = send(&blind, authed("/console/events/evt_paid_0003")).await;
    assert!(a.body.contains("Not re-verified"), "{}", a.body);
    let a = send(&blind, authed("/console/events/evt_nope")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_form_is_refused_before_it_is_read() {
    let f = fixture(1).await;
    let a = send(
        &f.console(false),
        post("/console/retry", "")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from(vec![b'a'; 64 * 1024]))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// `Auth::LocalOnly` answers a loopback `Host` only: a page that rebinds its
/// own name to 127.0.0.1 sends that name, and can neither read events nor
/// post a retry (before: both worked, the page's Origin matching its Host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_console_refuses_a_rebound_host() {
    let f = common::fixture(2).await;
    let local = Console::builder(
        f.inbox.clone(),
        plugipay_webhook_console::Auth::local_only(),
    )
    .build()
    .unwrap();
    let at = |host: &'static str, path: &str| {
        Request::get(path)
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    let a = send(&local, at("localhost:8080", "/console/events")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("evt_paid_0000"));
    let a = send(&local, at("evil.example:8080", "/console/events")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(!a.body.contains("evt_paid_0000"));
    let retry = Request::post("/console/events/evt_paid_0000/retry")
        .header(header::HOST, "evil.example:8080")
        .header(header::ORIGIN, "http://evil.example:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("csrf=x"))
        .unwrap();
    assert_eq!(send(&local, retry).await.status, StatusCode::FORBIDDEN);
}

/// Every stored event has a page its link reaches: ids `.` and `..` would
/// resolve as dot segments (to the event list, or the overview) and an
/// empty id cannot be a path segment at all, so their links carry the id
/// in the query instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_has_a_page_its_link_reaches_dot_ids_and_empty_included() {
    let f = common::fixture(0).await;
    // A type no handler takes: skipped, so each page offers Retry.
    for id in [".", "..", ""] {
        let ev = common::event(common::PAYOUT, id, serde_json::json!({"id": "inv_dot"})).await;
        f.inbox.receive(&ev).await;
    }
    let console = f.console(false);
    let list = send(&console, authed("/console/events")).await;
    assert_eq!(list.status, StatusCode::OK);
    for id in [".", "..", ""] {
        // The row of the event, and the first link in it, followed as a
        // browser follows it (dot segments resolved).
        let row_at = list
            .body
            .find(&format!("<tr data-event-id=\"{id}\""))
            .unwrap_or_else(|| panic!("no row for {id:?}"));
        let row = &list.body[row_at..];
        let at = row.find("href=\"").expect("a link in the row") + 6;
        let raw = row[at..at + row[at..].find('"').unwrap()].replace("&amp;", "&");
        let href = &browser_resolved(&raw);
        let page = send(&console, authed(href)).await;
        assert_eq!(page.status, StatusCode::OK, "{raw} → {href}: {}", page.body);
        assert!(
            page.body
                .contains(&format!("<h1>Event <code>{id}</code></h1>")),
            "{href} shows event {id:?}: {}",
            page.body
        );
        // Its Retry form, submitted as a browser submits it.
        let form_at = page
            .body
            .find("<form method=\"post\" action=\"")
            .expect("a Retry form")
            + 28;
        let form = &page.body[form_at..];
        let action = browser_resolved(&form[..form.find('"').unwrap()].replace("&amp;", "&"));
        let form = &form[..form.find("</form>").unwrap()];
        let fields: Vec<String> = form
            .match_indices("type=\"hidden\" name=\"")
            .map(|(at, _)| {
                let rest = &form[at + 20..];
                let name = &rest[..rest.find('"').unwrap()];
                let v_at = rest.find("value=\"").unwrap() + 7;
                let value = &rest[v_at..v_at + rest[v_at..].find('"').unwrap()];
                format!("{name}={}", value.replace("&amp;", "&").replace('.', "%2E"))
            })
            .collect();
        let post = Request::post(action.as_str())
            .header(header::HOST, "console.test")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(fields.join("&")))
            .unwrap();
        let a = send(&console, post).await;
        assert_eq!(
            a.status,
            StatusCode::SEE_OTHER,
            "{action} for {id:?}: {}",
            a.body
        );
    }
}

/// A path as a browser requests it: `.` and `..` segments (also written
/// `%2E`) resolved, per the URL standard.
fn browser_resolved(href: &str) -> String {
    let (path, query) = href
        .split_once('?')
        .map_or((href, None), |(p, q)| (p, Some(q)));
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match seg.to_ascii_lowercase().as_str() {
            "." | "%2e" => {
                if last {
                    out.push("");
                }
            }
            ".." | ".%2e" | "%2e." | "%2e%2e" => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            _ => out.push(seg),
        }
    }
    let path = format!("/{}", out.join("/"));
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Retrying a stale event says what will really happen to it: with the
/// default policy the next claim records it stale again (no handler runs);
/// with `Stale::Deliver` its handler runs, told it is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_stale_event_says_what_happens_to_it() {
    use plugipay_webhook::testing::TestDelivery;
    use plugipay_webhook::Verifier;
    use plugipay_webhook_console::Auth;
    use plugipay_webhook_dispatch::inbox::{Inbox, OrderKey, SqliteInbox, Stale};
    use std::time::{Duration, Instant};

    for (policy, says) in [
        (Stale::Skip, "records it as <code>stale</code> again"),
        (Stale::Deliver, "its handlers are told it is stale"),
    ] {
        let dir = std::env::temp_dir().join(format!(
            "plugipay-console-stale-{}-{policy:?}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let inbox = Inbox::builder(SqliteInbox::open(dir.join("inbox.sqlite3")).await.unwrap())
            .order_by(OrderKey::object())
            .reorder_window(Duration::ZERO)
            .on_stale(policy)
            .poll_interval(Duration::from_millis(20))
            .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
            .build()
            .unwrap();
        let at = |id: &str, when: &str| {
            TestDelivery::new(SECRET, PAID)
                .id(id)
                .occurred_at(Some(when))
                .object(serde_json::json!({"id": "inv_stale"}))
                .verify_with(&Verifier::new(SECRET))
                .unwrap()
        };
        let workers = inbox.start_workers(1);
        inbox.receive(&at("evt_new", "2026-12-01T10:00:00Z")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while inbox.stats().await.unwrap().count(State::Done) < 1 {
            assert!(Instant::now() < deadline, "the newer event is never done");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        workers.shutdown(Duration::from_secs(5)).await;
        // Stale: stored with the policy that skips, then retried under the
        // policy of this round (a stale row only comes from a claim).
        let skipping = Inbox::builder(SqliteInbox::open(dir.join("inbox.sqlite3")).await.unwrap())
            .order_by(OrderKey::object())
            .reorder_window(Duration::ZERO)
            .poll_interval(Duration::from_millis(20))
            .on(PAID, |_e| async { Ok::<_, std::io::Error>(()) })
            .build()
            .unwrap();
        skipping
            .receive(&at("evt_old", "2026-12-01T09:00:00Z"))
            .await;
        let w = skipping.start_workers(1);
        while inbox.stats().await.unwrap().count(State::Stale) < 1 {
            assert!(Instant::now() < deadline, "the older event is never stale");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.shutdown(Duration::from_secs(5)).await;

        let console = Console::builder(inbox.clone(), Auth::bearer(TOKEN))
            .build()
            .unwrap();
        let page = send(
            &console,
            authed(&format!("/console/events/evt_old?type={PAID}")),
        )
        .await
        .body;
        let csrf = csrf_of(&page);
        let retried = send(
            &console,
            post("/console/events/evt_old/retry", "")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::from(format!("type={PAID}&tenant=&csrf={csrf}")))
                .unwrap(),
        )
        .await;
        assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
        let to = retried.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(to.contains("notice=retried_stale"), "{to}");
        let shown = send(&console, authed(&to)).await.body;
        assert!(shown.contains(says), "{policy:?}: {shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Beside the parsed view, the exact bytes: a newline added after the JSON
/// (the same parsed value) shows as `\n`, a carriage return as `\u{d}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_page_shows_the_exact_bytes_too() {
    use plugipay_webhook::testing::TestDelivery;
    use plugipay_webhook::Verifier;
    let f = fixture(1).await;
    let body = format!("{{\"id\":\"evt_exact\",\"type\":\"{PAID}\",\"data\":{{\"object\":{{\"id\":\"inv_9\"}}}}}}\r\n");
    let event = TestDelivery::new(SECRET, PAID)
        .raw_body(body.clone())
        .verify_with(&Verifier::new(SECRET))
        .unwrap();
    assert_eq!(
        f.inbox.receive(&event).await,
        plugipay_webhook_dispatch::Outcome::Stored
    );
    let a = send(&f.console(false), authed("/console/events/evt_exact")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let shown = format!(
        "data-exact-bytes>{{&quot;id&quot;:&quot;evt_exact&quot;,&quot;type&quot;:&quot;{PAID}&quot;,&quot;data&quot;:{{&quot;object&quot;:{{&quot;id&quot;:&quot;inv_9&quot;}}}}}}\\u{{d}}\\n\n</pre>"
    );
    assert!(a.body.contains(&shown), "{}", a.body);
}

/// A running event — also one a crashed worker holds — shows when its
/// lease lapses, on the overview and on its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_events_show_when_their_lease_lapses() {
    use plugipay_webhook_console::Auth;
    use plugipay_webhook_dispatch::inbox::{Inbox, SqliteInbox};
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("plugipay-console-lapse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inbox = Inbox::builder(SqliteInbox::open(dir.join("inbox.sqlite3")).await.unwrap())
        .lease(Duration::from_secs(60))
        .handler_timeout(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(20))
        .on(PAID, |_e| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        })
        .build()
        .unwrap();
    inbox
        .receive(&event(PAID, "evt_held", serde_json::json!({"id": "inv_1"})).await)
        .await;
    let workers = inbox.start_workers(1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while inbox.stats().await.unwrap().count(State::Running) < 1 {
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let console = Console::builder(inbox.clone(), Auth::bearer(TOKEN))
        .build()
        .unwrap();
    let overview = send(&console, authed("/console/")).await.body;
    assert!(
        overview.contains("<span data-lease-lapse>1 running; the first lease lapses in"),
        "{overview}"
    );
    let page = send(
        &console,
        authed(&format!("/console/events/evt_held?type={PAID}")),
    )
    .await
    .body;
    assert!(
        page.contains("Lease lapses") && page.contains("data-lease-lapses"),
        "{page}"
    );
    workers.shutdown(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
}
