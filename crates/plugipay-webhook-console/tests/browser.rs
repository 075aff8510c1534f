//! The console in a real browser: Debian's headless Chromium, driven over
//! WebDriver by its ChromeDriver (both installed by `scripts/browser`, which
//! `scripts/test` runs). Signs in with the login link, reads the overview's
//! counts, filters by type, opens a dead event, clicks Retry and sees it
//! done; a POST without the CSRF token from the signed-in page is refused; a
//! body holding `<script>` is shown as text and never runs; every control
//! is labelled and reachable by keyboard. One screenshot per page is saved
//! to `target/console-screenshots/` (and to `docs/console/` with
//! `PLUGIPAY_CONSOLE_SCREENSHOTS=docs`).
//!
//! Without Chromium the test fails and says how to install it, unless
//! `PLUGIPAY_TEST_NO_BROWSER=1` (then it says, loudly, that it skipped).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use plugipay_webhook_dispatch::inbox::State;
use plugipay_webhook_dispatch::Outcome;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    child: tokio::process::Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn chromedriver() -> Option<Driver> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("PLUGIPAY_TEST_NO_BROWSER").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: no Chromium (PLUGIPAY_TEST_NO_BROWSER=1): the console's browser tests did not run");
            return None;
        }
        panic!("{CHROMIUM} and {CHROMEDRIVER} are needed: run scripts/browser (Debian's chromium and chromium-driver), or set PLUGIPAY_TEST_NO_BROWSER=1 to skip");
    }
    let port = free_port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A profile of its own: tests run at once, and cookies ignore ports.
    static PROFILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "plugipay-chromium-{}-{}",
        std::process::id(),
        PROFILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    Some(Driver {
        child,
        port,
        profile,
    })
}

async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", driver.profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

async fn serve(console: plugipay_webhook_console::Console) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().merge(console.router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn screenshots() -> Vec<PathBuf> {
    let mut dirs =
        vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")];
    if std::env::var("PLUGIPAY_CONSOLE_SCREENSHOTS").is_ok_and(|v| v == "docs") {
        dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console"));
    }
    dirs
}

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    for dir in screenshots() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    }
}

/// The text of the first element matching `css` (found again while a
/// navigation replaces the page).
async fn text(c: &Client, css: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: {last}")
}

/// Controls without a label, and whether the page has tables without
/// header cells: the page's accessibility basics.
async fn accessibility(c: &Client, page: &str) {
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => !e.labels || e.labels.length === 0).map(e => e.name)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!([]), "{page}: unlabelled controls");
    let headless = c
        .execute(
            "return [...document.querySelectorAll('table')].filter(t => !t.querySelector('th')).length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(headless, json!(0), "{page}: a table without header cells");
    let nameless = c
        .execute(
            "return [...document.querySelectorAll('button, a')].filter(e => !e.textContent.trim()).length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        nameless,
        json!(0),
        "{page}: a button or link without a name"
    );
}

/// Waits (15 s at most) until the browser's address holds `needle`, after
/// the form `what` posted and the console redirected; the deadline used.
async fn until_url(c: &Client, needle: &str, what: &str) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !c.current_url().await.unwrap().as_str().contains(needle) {
        if Instant::now() > deadline {
            panic!(
                "no redirect after {what}: at {} with {}",
                c.current_url().await.unwrap(),
                text(c, "main").await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deadline
}

/// The text of `css` once it is `want` (15 s at most), or what it was.
async fn until_text(c: &Client, css: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = text(c, css).await;
        if now == want || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tabs through the page until the focused element's text is `name`.
async fn tab_to(c: &Client, name: &str) -> bool {
    let body = c.find(Locator::Css("body")).await.unwrap();
    for _ in 0..60 {
        body.send_keys("\u{E004}").await.unwrap();
        let focused = c.active_element().await.unwrap();
        if focused.text().await.unwrap_or_default().trim() == name {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let f = fixture(3).await;
    let url = serve(f.console(false)).await;
    let c = browser(&driver).await;
    let result = run(&c, &f, &url).await;
    let _ = c.close().await;
    result.unwrap();
}

async fn run(c: &Client, f: &Fixture, url: &str) -> Result<(), String> {
    // Unauthenticated: to the login page, never an event's data.
    c.goto(&format!("{url}/console/events/evt_refund_a"))
        .await
        .unwrap();
    let here = c.current_url().await.unwrap();
    assert_eq!(here.path(), "/console/login", "{here}");
    assert!(!c.source().await.unwrap().contains("evt_refund_a"));
    accessibility(c, "login").await;

    // The login form: the token, then the overview.
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Signed in once the login page is left.
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.current_url().await.unwrap().path() == "/console/login" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let here = c.current_url().await.unwrap();
    assert_eq!(here.path(), "/console/", "{here}");
    for (state, n) in [
        ("done", "4"),
        ("dead", "2"),
        ("skipped", "1"),
        ("pending", "0"),
    ] {
        assert_eq!(
            text(c, &format!("[data-state-count='{state}']")).await,
            n,
            "{state}"
        );
    }
    // The session cookie is not readable by a script.
    let cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(cookies, json!(""), "the cookie is HttpOnly");
    accessibility(c, "overview").await;
    shoot(c, "overview").await;

    // Events, filtered by type through the form.
    c.find(Locator::XPath("//nav//a[normalize-space()='Events']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("f-type"))
        .await
        .unwrap()
        .send_keys(REFUND)
        .await
        .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Filter']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_url(c, "type=", "Filter").await;
    let rows = c.find_all(Locator::Css("tr[data-event-id]")).await.unwrap();
    let mut shown = Vec::new();
    for r in &rows {
        shown.push((
            r.attr("data-event-id").await.unwrap().unwrap(),
            r.attr("data-state").await.unwrap().unwrap(),
        ));
    }
    assert_eq!(
        shown,
        [
            ("evt_refund_b".to_owned(), "dead".to_owned()),
            ("evt_refund_a".to_owned(), "dead".to_owned())
        ]
    );
    accessibility(c, "events").await;
    shoot(c, "events").await;

    // A dead event: Retry, reached by keyboard, then done.
    c.find(Locator::LinkText("evt_refund_a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(c, "dl [data-state]").await, "dead");
    assert!(text(c, ".verdict")
        .await
        .contains("verify against the stored header"));
    accessibility(c, "event").await;
    shoot(c, "event-dead").await;
    assert!(
        tab_to(c, "Retry").await,
        "Retry is not reachable by keyboard"
    );
    let retry = c.active_element().await.unwrap();
    assert_eq!(retry.tag_name().await.unwrap(), "button");
    assert!(retry.attr("aria-label").await.unwrap().is_none());
    retry.send_keys("\u{E007}").await.unwrap(); // Enter
                                                // The form posts, then the console sends the browser back to the event.
    let deadline = until_url(c, "notice=retried", "Retry").await;
    assert!(text(c, "[role=status]").await.contains("Pending again"));
    loop {
        if text(c, "dl [data-state]").await == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retried event never showed done"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.refresh().await.unwrap();
    }
    assert_eq!(f.state_of("evt_refund_a").await, State::Done);
    shoot(c, "event-done").await;

    // From the signed-in page, a POST without the CSRF token is refused
    // (the cookie goes with it: same origin). The page's CSP forbids even a
    // fetch, so the form itself goes, its token field removed.
    c.goto(&format!("{url}/console/events/evt_refund_b"))
        .await
        .unwrap();
    let blocked = c
        .execute(
            "return fetch('/console/').then(() => 'fetched', () => 'blocked')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(blocked, json!("blocked"), "connect-src is 'none'");
    c.execute(
        "document.querySelector('main input[name=csrf]').remove()",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Retry']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The old page stays until the answer lands: wait for the new heading.
    assert_eq!(until_text(c, "h1", "Refused").await, "Refused");
    assert!(text(c, "main").await.contains("CSRF token"));
    assert_eq!(f.state_of("evt_refund_b").await, State::Dead);
    shoot(c, "csrf-refused").await;

    // A body holding <script>: shown as text, never run.
    c.goto(&format!("{url}/console/events/evt_markup"))
        .await
        .unwrap();
    let title = c.title().await.unwrap();
    assert_ne!(title, "pwned");
    let leaf = c
        .find(Locator::XPath(
            "//span[contains(., \"<script>document.title='pwned'</script>\")]",
        ))
        .await;
    assert!(leaf.is_ok(), "the note is not shown as text");
    let injected = c
        .execute(
            "return document.querySelectorAll('main script, main img').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(0));
    shoot(c, "event-body").await;

    // An id and a type with no place to break them: the events table still
    // fits a 1280 px window (no sideways scrolling of the whole page).
    let long = format!("evt_{}", "x".repeat(180));
    let object = serde_json::json!({"id": format!("inv_{}", "y".repeat(120))});
    let outcome = f
        .inbox
        .receive(&common::event(PAID, &long, object).await)
        .await;
    assert_eq!(outcome, Outcome::Stored);
    c.goto(&format!("{url}/console/events")).await.unwrap();
    let fits = c
        .execute(
            "const e = document.documentElement; return [e.scrollWidth, e.clientWidth]",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, client) = (fits[0].as_u64().unwrap(), fits[1].as_u64().unwrap());
    if scroll > client {
        return Err(format!(
            "the events page is {scroll} px wide in a {client} px window"
        ));
    }

    // Sign out: back to the form, and the session no longer opens a page.
    c.find(Locator::XPath(
        "//header//button[normalize-space()='Sign out']",
    ))
    .await
    .map_err(|e| format!("no Sign out button: {e}"))?
    .click()
    .await
    .unwrap();
    until_url(c, "/console/login", "Sign out").await;
    c.goto(&format!("{url}/console/events")).await.unwrap();
    let here = c.current_url().await.unwrap();
    if here.path() != "/console/login" {
        return Err(format!("after Sign out the events page opened: {here}"));
    }
    Ok(())
}

/// The development receiver's pages (`listen --ui`): deliveries with their
/// verdicts, a rejected one's diagnosis and a body with markup shown as
/// text, the diff of two, Pin and Replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_views_in_chromium() {
    use plugipay_webhook_console::dev::Verdict;
    let Some(driver) = chromedriver().await else {
        return;
    };
    let f = fixture(1).await;
    let deliveries = MemoryDeliveries::default();
    {
        let mut all = deliveries.all.lock().unwrap();
        for (seq, amount) in [(1, 100), (2, 250)] {
            all.push(delivery(
                seq,
                &format!(
                    r#"{{"id":"evt_dev_1","type":"{PAID}","data":{{"object":{{"id":"inv_1","amount":{amount}}}}}}}"#
                ),
                Verdict::Verified {
                    id: "evt_dev_1".into(),
                    event_type: PAID.into(),
                    tenant: None,
                    matched_secret: 0,
                },
                &[],
            ));
        }
        all.push(delivery(
            3,
            &format!(r#"{{"id":"evt_dev_2","note":"{}"}}"#, XSS.replace('"', "\\\"")),
            Verdict::Rejected {
                status: 400,
                code: "signature_invalid".into(),
                message: "no signature matched <b>any</b> secret".into(),
            },
            &["the body was pretty-printed or re-indented after signing: Plugipay signs the compact bytes — the unaltered body verifies with secret #0"],
        ));
    }
    let url = serve(f.dev_console(deliveries.clone())).await;
    let c = browser(&driver).await;
    let result = dev_run(&c, &deliveries, &url).await;
    let _ = c.close().await;
    result.unwrap();
}

async fn dev_run(c: &Client, deliveries: &MemoryDeliveries, url: &str) -> Result<(), String> {
    c.goto(&format!("{url}/console/login?token={TOKEN}"))
        .await
        .unwrap();
    // A development receiver's console opens on its deliveries, and says
    // why its events are `skipped`.
    until_url(c, "/console/deliveries", "the login's landing").await;
    let note = c
        .find(Locator::Css("[data-skipped-note]"))
        .await
        .map_err(|e| format!("the skipped note: {e}"))?
        .text()
        .await
        .unwrap();
    if !note.contains("skipped") || !note.contains("--forward-to") {
        return Err(format!("the skipped note says: {note}"));
    }
    c.find(Locator::XPath("//nav//a[normalize-space()='Deliveries']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_url(c, "/console/deliveries", "the Deliveries link").await;
    let rows = c.find_all(Locator::Css("tr[data-delivery]")).await.unwrap();
    let mut shown = Vec::new();
    for r in &rows {
        shown.push((
            r.attr("data-delivery").await.unwrap().unwrap(),
            r.attr("data-verdict").await.unwrap().unwrap(),
        ));
    }
    assert_eq!(
        shown,
        [
            ("3".to_owned(), "signature_invalid".to_owned()),
            ("2".to_owned(), "verified".to_owned()),
            ("1".to_owned(), "verified".to_owned()),
        ]
    );
    accessibility(c, "deliveries").await;
    shoot(c, "deliveries").await;

    // The rejected one: its diagnosis, and its markup as text.
    c.find(Locator::LinkText("#3"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text(c, "dl [data-verdict]").await, "signature_invalid");
    assert!(text(c, ".explain").await.contains("pretty-printed"));
    assert!(text(c, "main")
        .await
        .contains("no signature matched <b>any</b> secret"));
    let injected = c
        .execute(
            "return document.querySelectorAll('main script, main img, main b').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(0), "markup from a delivery became elements");
    assert_ne!(c.title().await.unwrap(), "pwned");
    assert!(
        c.find(Locator::XPath("//button[normalize-space()='Replay']"))
            .await
            .is_err(),
        "a rejected delivery offers no Replay"
    );
    accessibility(c, "delivery").await;
    shoot(c, "delivery-rejected").await;

    // The diff of 1 and 2, through the compare form.
    c.goto(&format!("{url}/console/deliveries")).await.unwrap();
    for (id, value) in [("d-a", "1"), ("d-b", "2")] {
        let field = c.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }
    c.find(Locator::XPath("//button[normalize-space()='Compare']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        until_text(c, "h1", "Delivery #1 and #2").await,
        "Delivery #1 and #2"
    );
    let changes = c.find_all(Locator::Css("tr[data-change]")).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(text(c, "tr[data-change=changed]")
        .await
        .starts_with("/data/object/amount"));
    accessibility(c, "diff").await;
    shoot(c, "deliveries-diff").await;

    // Pin, then Replay reached by keyboard.
    c.goto(&format!("{url}/console/deliveries/1"))
        .await
        .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Pin']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "[role=status]").await.contains("Pinned"));
    assert!(deliveries.all.lock().unwrap()[0].pinned);
    assert!(
        tab_to(c, "Replay").await,
        "Replay is not reachable by keyboard"
    );
    c.active_element()
        .await
        .unwrap()
        .send_keys("\u{E007}")
        .await
        .unwrap();
    until_url(c, "notice=replayed", "Replay").await;
    assert!(text(c, "[role=status]")
        .await
        .contains("Replayed: 204 in 1.2 ms"));
    assert_eq!(deliveries.all.lock().unwrap()[0].replays, 1);
    shoot(c, "delivery-replayed").await;
    Ok(())
}
