//! The inbox's console in every example receiver (axum, tower, actix-web,
//! Rocket, warp), as outside checks drive it: mounted at `/console` with
//! `PLUGIPAY_CONSOLE_TOKEN`, absent (404) without. Unauthenticated requests
//! get 401 or the login page; the login link sets an `HttpOnly`,
//! `SameSite=Strict` cookie; the events list and the overview carry their
//! `data-` attributes; a retry without the CSRF token is refused and with it
//! runs the dead event again.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use plugipay_webhook::testing::TestDelivery;
use plugipay_webhook_conformance::{send, RawRequest};

mod common;
use common::{Running, BINARIES};

const SECRET: &str = "whsec_console_examples";
const TOKEN: &str = "example-console-token-0123456789";
const CUSTOMER: &str = "plugipay.customer.created.v1";

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// One request, `Connection: close`; the answer (status 0: none).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let none = || Answer {
        status: 0,
        head: String::new(),
        body: String::new(),
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return none();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if s.write_all(req.as_bytes()).is_err() {
        return none();
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, mut body) = raw
        .split_once("\r\n\r\n")
        .map_or((raw.clone(), String::new()), |(h, b)| {
            (h.to_owned(), b.to_owned())
        });
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer { status, head, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn deliver(addr: SocketAddr, id: &str) -> u16 {
    let (body, header) = TestDelivery::new(SECRET, CUSTOMER).id(id).into_parts();
    let req = RawRequest::post("/webhooks/plugipay", body.to_vec())
        .header("X-Plugipay-Signature", header);
    send(addr, &req, Duration::from_secs(10)).map_or(0, |r| r.status)
}

fn wait_for(rx: &Running, what: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        lines.extend(rx.drain());
        if lines.iter().filter(|l| l.starts_with(what)).count() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{count} × {what:?} never came: {lines:?}"
        );
    }
}

fn inbox(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(format!("{name}.sqlite3")).display())
}

#[test]
fn every_receiver_mounts_the_console_with_a_token_only() {
    let dir =
        std::env::temp_dir().join(format!("plugipay-console-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bin) in BINARIES {
        // Without the token: no console.
        let url = inbox(&dir, &format!("{name}-none"));
        let rx = Running::start(bin, SECRET, &[("PLUGIPAY_INBOX_URL", &url)]);
        for path in ["/console", "/console/", "/console/events"] {
            let a = request(
                rx.addr,
                "GET",
                path,
                &[("Authorization", &format!("Bearer {TOKEN}"))],
                "",
            );
            assert_eq!(a.status, 404, "{name} {path}: {}", a.body);
        }
        drop(rx);

        let url = inbox(&dir, name);
        let rx = Running::start(
            bin,
            SECRET,
            &[
                ("PLUGIPAY_INBOX_URL", &url),
                ("PLUGIPAY_CONSOLE_TOKEN", TOKEN),
                ("PLUGIPAY_INBOX_MAX_ATTEMPTS", "1"),
                ("PLUGIPAY_EXAMPLE_FAIL_FIRST", "1"),
            ],
        );
        let id = format!("evt_console_{}", name.replace('-', "_"));
        assert_eq!(deliver(rx.addr, &id), 202, "{name}");
        wait_for(&rx, &format!("dead {id} {CUSTOMER}"), 1);

        // Unauthenticated: 401 for a client, the login page for a browser,
        // never the event.
        for path in [
            "/console/",
            "/console/events",
            &format!("/console/events/{id}"),
        ] {
            let a = request(rx.addr, "GET", path, &[], "");
            assert_eq!(a.status, 401, "{name} {path}");
            assert!(!a.body.contains(&id), "{name} {path}");
            let a = request(rx.addr, "GET", path, &[("Accept", "text/html")], "");
            assert_eq!(a.status, 303, "{name} {path}");
            assert_eq!(
                a.header("location"),
                Some("/console/login"),
                "{name} {path}"
            );
        }

        // The bearer token: the overview's counts.
        let bearer = format!("Bearer {TOKEN}");
        let a = request(
            rx.addr,
            "GET",
            "/console/",
            &[("Authorization", &bearer)],
            "",
        );
        assert_eq!(a.status, 200, "{name}: {}", a.body);
        assert!(
            a.body.contains("data-state-count=\"dead\">1<"),
            "{name}: {}",
            a.body
        );
        assert!(
            a.header("content-security-policy")
                .is_some_and(|c| c.contains("default-src 'none'")),
            "{name}"
        );

        // The login link: a strict, HttpOnly cookie, then the pages.
        let a = request(
            rx.addr,
            "GET",
            &format!("/console/login?token={TOKEN}"),
            &[],
            "",
        );
        assert_eq!(a.status, 303, "{name}");
        assert_eq!(a.header("location"), Some("/console/"), "{name}");
        let cookie = a.header("set-cookie").unwrap_or_default().to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{name}: {cookie}"
        );
        let session = cookie.split(';').next().unwrap().to_owned();
        let a = request(
            rx.addr,
            "GET",
            &format!("/console/events?state=dead&type={CUSTOMER}"),
            &[("Cookie", &session)],
            "",
        );
        assert_eq!(a.status, 200, "{name}");
        assert!(
            a.body
                .contains(&format!("data-event-id=\"{id}\" data-state=\"dead\"")),
            "{name}: {}",
            a.body
        );

        // Retry: refused without the CSRF token, done with it.
        let page = request(
            rx.addr,
            "GET",
            &format!("/console/events/{id}"),
            &[("Cookie", &session)],
            "",
        )
        .body;
        assert!(
            page.contains("<button type=\"submit\">Retry</button>"),
            "{name}: {page}"
        );
        let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &page[at..at + 64];
        let form = [
            ("Cookie", session.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let path = format!("/console/events/{id}/retry");
        let a = request(rx.addr, "POST", &path, &form, &format!("type={CUSTOMER}"));
        assert_eq!(a.status, 403, "{name}: {}", a.body);
        let a = request(
            rx.addr,
            "POST",
            &path,
            &form,
            &format!("type={CUSTOMER}&csrf={csrf}"),
        );
        assert_eq!(a.status, 303, "{name}: {}", a.body);
        assert!(
            a.header("location")
                .is_some_and(|l| l.contains("notice=retried")),
            "{name}: {}",
            a.head
        );
        // It ran again (and, the receiver failing every first attempt, died again).
        wait_for(&rx, &format!("dead {id} {CUSTOMER}"), 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
