//! The development receiver's pages: deliveries, one delivery (verdict,
//! diagnosis, headers, body, Replay, pin), and the diff of two. Every value
//! from a delivery goes through [`esc`]: a rejected delivery is anybody's.

use std::fmt::Write;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;

use crate::dev::{Deliveries, Delivery, DeliveryError, DeliveryQuery, Verdict};
use crate::diff::{diff, Change};
use crate::form::{self, query};
use crate::html::{cut, esc, exact_bytes, json_tree, time};
use crate::pages::{csrf_field, event_href, hidden, message};
use crate::{html_response, redirect, Console, Req};

/// A page of deliveries.
const PAGE: usize = 50;

fn unavailable(c: &Console, e: &DeliveryError) -> Response<Bytes> {
    message(
        c,
        StatusCode::SERVICE_UNAVAILABLE,
        "The deliveries cannot be read",
        &format!("{e}. Reload to try again."),
    )
}

fn verdict_badge(v: &Verdict) -> String {
    let class = match v {
        Verdict::Verified { .. } => "done",
        Verdict::Rejected { .. } => "dead",
    };
    format!("<span class=\"state {class}\">{}</span>", esc(v.name()))
}

/// A verified delivery's event: its id linked to its page, and its type.
fn event_link(c: &Console, id: &str, event_type: &str, tenant: Option<&str>) -> String {
    format!(
        "<a href=\"{}\">{}</a> {}",
        esc(&event_href(c, id, event_type, tenant.unwrap_or(""))),
        esc(id),
        esc(event_type)
    )
}

fn seq_of(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| t.trim().parse().ok())
}

fn pin_form(c: &Console, d: &Delivery, back: &str) -> String {
    if c.read_only() {
        return String::new();
    }
    let (value, label) = if d.pinned {
        ("no", "Unpin")
    } else {
        ("yes", "Pin")
    };
    format!(
        "<form method=\"post\" action=\"{}/deliveries/{}/pin\" class=\"inline\">{}{}{}\
         <button type=\"submit\" aria-label=\"{label} delivery #{seq}\">{label}</button></form>",
        c.base(),
        d.seq,
        csrf_field(c),
        hidden("pinned", value),
        hidden("back", back),
        seq = d.seq,
    )
}

pub(crate) async fn list(c: &Console, dev: &dyn Deliveries, req: &Req) -> Response<Bytes> {
    let base = c.base();
    let pinned_only = req.q("pinned") == Some("1");
    let verified = match req.q("verdict") {
        Some("verified") => Some(true),
        Some("rejected") => Some(false),
        _ => None,
    };
    let mut found = match dev
        .list(DeliveryQuery {
            before: seq_of(req.q("before")),
            pinned_only,
            verified,
            limit: PAGE + 1,
        })
        .await
    {
        Ok(d) => d,
        Err(e) => return unavailable(c, &e),
    };
    let more = found.len() > PAGE;
    found.truncate(PAGE);
    let keep = [("pinned", req.q("pinned")), ("verdict", req.q("verdict"))];
    let back = format!("{base}/deliveries{}", query(&keep));
    let mut rows = String::new();
    for d in &found {
        let event = match &d.verdict {
            Verdict::Verified {
                id,
                event_type,
                tenant,
                ..
            } => event_link(c, id, event_type, tenant.as_deref()),
            Verdict::Rejected { message, .. } => {
                format!("<span class=\"error\">{}</span>", esc(&cut(message, 120)))
            }
        };
        let _ = write!(
            rows,
            "<tr data-delivery=\"{seq}\" data-verdict=\"{verdict}\"{pinned}>\
             <td><a href=\"{base}/deliveries/{seq}\">#{seq}</a>{star}</td><td>{received}</td>\
             <td><code>{method} {path}</code></td><td>{badge}</td><td>{event}</td><td>{answered}</td>\
             <td>{pin}</td></tr>",
            seq = d.seq,
            verdict = esc(d.verdict.name()),
            pinned = if d.pinned { " data-pinned=\"yes\"" } else { "" },
            star = if d.pinned { " <span class=\"pin\">pinned</span>" } else { "" },
            received = time(d.received_at_ms),
            method = esc(&d.method),
            path = esc(&cut(&d.path, 80)),
            badge = verdict_badge(&d.verdict),
            answered = d.answered.map(|s| s.to_string()).unwrap_or_default(),
            pin = pin_form(c, d, &back),
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"7\">No delivery yet: send one to this receiver.</td></tr>"
            .to_owned();
    }
    let mut pager = String::new();
    if req.q("before").is_some() {
        let _ = write!(pager, "<a href=\"{}\">Newest</a> ", esc(&back));
    }
    if let (true, Some(last)) = (more, found.last()) {
        let before = last.seq.to_string();
        let _ = write!(
            pager,
            "<a href=\"{base}/deliveries{}\" rel=\"next\">Older</a>",
            esc(&query(&[
                ("pinned", req.q("pinned")),
                ("verdict", req.q("verdict")),
                ("before", Some(&before))
            ]))
        );
    }
    let choice = |value: &str, label: &str| {
        let selected = if req.q("verdict").unwrap_or("") == value {
            " selected"
        } else {
            ""
        };
        format!("<option value=\"{value}\"{selected}>{label}</option>")
    };
    let filters = format!(
        "<form class=\"filters\" method=\"get\" action=\"{base}/deliveries\" role=\"search\">\
         <p><label for=\"f-verdict\">Verdict</label><select id=\"f-verdict\" name=\"verdict\">{}{}{}</select></p>\
         <p><label for=\"f-pinned\">Pinned only</label>\
         <input id=\"f-pinned\" name=\"pinned\" type=\"checkbox\" value=\"1\"{}></p>\
         <p><button type=\"submit\">Filter</button> <a href=\"{base}/deliveries\">Clear</a></p></form>",
        choice("", "any"),
        choice("verified", "verified"),
        choice("rejected", "rejected"),
        if pinned_only { " checked" } else { "" },
    );
    let (a, b) = match found.as_slice() {
        [newest, previous, ..] => (previous.seq.to_string(), newest.seq.to_string()),
        _ => (String::new(), String::new()),
    };
    let compare = format!(
        "<form class=\"filters\" method=\"get\" action=\"{base}/deliveries/diff\">\
         <p><label for=\"d-a\">Compare delivery</label>\
         <input id=\"d-a\" name=\"a\" type=\"number\" min=\"1\" value=\"{a}\" required></p>\
         <p><label for=\"d-b\">with delivery</label>\
         <input id=\"d-b\" name=\"b\" type=\"number\" min=\"1\" value=\"{b}\" required></p>\
         <p><button type=\"submit\">Compare</button></p></form>"
    );
    let notice = match req.q("notice") {
        Some("pinned") => "<p role=\"status\" class=\"notice\">Pinned.</p>",
        Some("unpinned") => "<p role=\"status\" class=\"notice\">Unpinned.</p>",
        _ => "",
    };
    let body = format!(
        "<h1>Deliveries</h1>{notice}\
         <p>Every request this receiver was sent, verified or not, newest first. \
         Pinned deliveries are kept; the oldest others go when the receiver holds too many.</p>\
         <p class=\"note\" data-skipped-note>The events that verified are also kept in this \
         receiver's inbox (<a href=\"{base}/\">Overview</a>, <a href=\"{base}/events\">Events</a>), \
         where each is <code>skipped</code>: that inbox has no handlers, so it stores and shows \
         them and never runs anything. Your application's handlers run where \
         <code>--forward-to</code> sends each delivery.</p>\
         {filters}{compare}\
         <table class=\"events\"><caption>Newest first</caption><thead><tr>\
         <th scope=\"col\">Delivery</th><th scope=\"col\">Received (UTC)</th><th scope=\"col\">Request</th>\
         <th scope=\"col\">Verdict</th><th scope=\"col\">Event or reason</th><th scope=\"col\">Answered</th>\
         <th scope=\"col\">Pin</th></tr></thead><tbody>{rows}</tbody></table>\
         <nav aria-label=\"Pages\" class=\"pager\">{pager}</nav>"
    );
    html_response(
        StatusCode::OK,
        c.frame("Deliveries", "deliveries").render(&body),
    )
}

async fn fetch(
    c: &Console,
    dev: &dyn Deliveries,
    seq: Option<u64>,
) -> Result<Delivery, Response<Bytes>> {
    let missing = || {
        message(
            c,
            StatusCode::NOT_FOUND,
            "No such delivery",
            "This receiver holds no delivery with that number.",
        )
    };
    let Some(seq) = seq else {
        return Err(missing());
    };
    match dev.get(seq).await {
        Ok(Some(d)) => Ok(d),
        Ok(None) => Err(missing()),
        Err(e) => Err(unavailable(c, &e)),
    }
}

pub(crate) async fn one(
    c: &Console,
    dev: &dyn Deliveries,
    req: &Req,
    seq: &str,
) -> Response<Bytes> {
    let d = match fetch(c, dev, seq_of(Some(seq))).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = c.base();
    let here = format!("{base}/deliveries/{}", d.seq);
    let notice = match req.q("notice") {
        Some("replayed") => format!(
            "<p role=\"status\" class=\"notice\">Replayed: {}.</p>",
            esc(d.last_replay.as_deref().unwrap_or("sent"))
        ),
        Some("pinned") => "<p role=\"status\" class=\"notice\">Pinned.</p>".to_owned(),
        Some("unpinned") => "<p role=\"status\" class=\"notice\">Unpinned.</p>".to_owned(),
        _ => String::new(),
    };
    let mut fields = String::new();
    let mut field = |name: &str, value: String| {
        let _ = write!(fields, "<dt>{name}</dt><dd>{value}</dd>");
    };
    field("Received", time(d.received_at_ms));
    field(
        "Request",
        format!("<code>{} {}</code>", esc(&d.method), esc(&d.path)),
    );
    field(
        "Verdict",
        format!(
            "<span data-verdict=\"{}\">{}</span>",
            esc(d.verdict.name()),
            verdict_badge(&d.verdict)
        ),
    );
    match &d.verdict {
        Verdict::Verified {
            id,
            event_type,
            tenant,
            matched_secret,
        } => {
            field("Event", event_link(c, id, event_type, tenant.as_deref()));
            if let Some(t) = tenant {
                field("Tenant", esc(t));
            }
            field("Matched secret", format!("#{matched_secret}"));
        }
        Verdict::Rejected {
            status, message, ..
        } => {
            field(
                "Refused with",
                format!("{status}: <span class=\"error\">{}</span>", esc(message)),
            );
        }
    }
    if let Some(s) = d.answered {
        field("Answered", s.to_string());
    }
    if let Some(f) = &d.forwarded {
        field("Forwarded", esc(f));
    }
    if d.replays > 0 {
        field(
            "Replays",
            format!(
                "{}; the last: {}",
                d.replays,
                esc(d.last_replay.as_deref().unwrap_or(""))
            ),
        );
    }
    let explain = if d.explain.is_empty() {
        String::new()
    } else {
        let mut items = String::new();
        for line in &d.explain {
            let _ = write!(items, "<li>{}</li>", esc(line));
        }
        format!(
            "<section aria-labelledby=\"explain\"><h2 id=\"explain\">Diagnosis</h2>\
             <p>What <code>plugipay-webhook verify --explain</code> makes of it:</p>\
             <ul class=\"explain\">{items}</ul></section>"
        )
    };
    let mut actions = String::new();
    if !c.read_only() {
        match (&d.verdict, dev.replay_target()) {
            (Verdict::Verified { .. }, Some(target)) => {
                let _ = write!(
                    actions,
                    "<form method=\"post\" action=\"{here}/replay\" class=\"action\">{}\
                     <p>Sends the same bytes again, signed afresh, to <code>{}</code>.</p>\
                     <button type=\"submit\">Replay</button></form>",
                    csrf_field(c),
                    esc(&target)
                );
            }
            (Verdict::Verified { .. }, None) => actions.push_str(
                "<p>Replay needs a receiver started with <code>--forward-to URL</code>.</p>",
            ),
            (Verdict::Rejected { .. }, _) => actions
                .push_str("<p>Only a delivery that verified can be replayed: signing afresh would hide what was wrong with it.</p>"),
        }
        actions.push_str(&pin_form(c, &d, &here));
    }
    let compare = if d.seq > 1 {
        format!(
            "<p><a href=\"{base}/deliveries/diff?a={}&amp;b={}\">Compare with delivery #{}</a></p>",
            d.seq - 1,
            d.seq,
            d.seq - 1
        )
    } else {
        String::new()
    };
    let mut headers = String::new();
    for (name, value) in &d.headers {
        let _ = write!(
            headers,
            "<tr><th scope=\"row\">{}</th><td><code>{}</code></td></tr>",
            esc(name),
            esc(value)
        );
    }
    let body = format!(
        "<h1>Delivery #{seq}</h1>{notice}{actions}{compare}\
         <section aria-labelledby=\"fields\"><h2 id=\"fields\">Delivery</h2><dl>{fields}</dl></section>\
         {explain}\
         <section aria-labelledby=\"headers\"><h2 id=\"headers\">Headers</h2>\
         <table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Value</th></tr></thead>\
         <tbody>{headers}</tbody></table></section>\
         <section aria-labelledby=\"body\"><h2 id=\"body\">Body ({len} bytes)</h2>{tree}{exact}</section>",
        seq = d.seq,
        len = d.body.len(),
        tree = json_tree(&d.body),
        exact = exact_bytes(&d.body),
    );
    html_response(
        StatusCode::OK,
        c.frame(&format!("Delivery #{}", d.seq), "deliveries")
            .render(&body),
    )
}

fn json_cell(v: &Value) -> String {
    let text = serde_json::to_string(v).unwrap_or_default();
    format!("<code>{}</code>", esc(&cut(&text, 300)))
}

pub(crate) async fn compare(c: &Console, dev: &dyn Deliveries, req: &Req) -> Response<Bytes> {
    let a = match fetch(c, dev, seq_of(req.q("a"))).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let b = match fetch(c, dev, seq_of(req.q("b"))).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let base = c.base();
    let link = |d: &Delivery| format!("<a href=\"{base}/deliveries/{s}\">#{s}</a>", s = d.seq);
    let body_diff = match (
        serde_json::from_slice::<Value>(&a.body),
        serde_json::from_slice::<Value>(&b.body),
    ) {
        _ if a.body == b.body => "<p>The bodies are the same bytes.</p>".to_owned(),
        (Ok(va), Ok(vb)) => {
            let (changes, total) = diff(&va, &vb);
            if changes.is_empty() {
                format!(
                    "<p>The bodies hold the same JSON, in other bytes ({} and {} bytes): \
                     whitespace, key order or escapes differ — a signature covers the bytes, \
                     so only one of them can verify.</p>",
                    a.body.len(),
                    b.body.len()
                )
            } else {
                let mut rows = String::new();
                for (path, change) in &changes {
                    let (kind, old, new) = match change {
                        Change::Added(v) => ("added", String::new(), json_cell(v)),
                        Change::Removed(v) => ("removed", json_cell(v), String::new()),
                        Change::Changed(x, y) => ("changed", json_cell(x), json_cell(y)),
                    };
                    let _ = write!(
                        rows,
                        "<tr data-change=\"{kind}\"><th scope=\"row\"><code>{}</code></th><td>{kind}</td>\
                         <td>{old}</td><td>{new}</td></tr>",
                        esc(path)
                    );
                }
                let more = if total > changes.len() {
                    format!("<p>{} more changes are not shown.</p>", total - changes.len())
                } else {
                    String::new()
                };
                format!(
                    "<table class=\"diff\"><caption>{total} change{} in the body</caption><thead><tr>\
                     <th scope=\"col\">Path</th><th scope=\"col\">Change</th>\
                     <th scope=\"col\">In {}</th><th scope=\"col\">In {}</th></tr></thead>\
                     <tbody>{rows}</tbody></table>{more}",
                    if total == 1 { "" } else { "s" },
                    link(&a),
                    link(&b)
                )
            }
        }
        _ => format!(
            "<p>At least one body is not JSON ({} and {} bytes); they differ.</p>\
             <h3>Body of {}</h3><pre class=\"raw\">{}</pre><h3>Body of {}</h3><pre class=\"raw\">{}</pre>",
            a.body.len(),
            b.body.len(),
            link(&a),
            esc(&cut(&String::from_utf8_lossy(&a.body), 4000)),
            link(&b),
            esc(&cut(&String::from_utf8_lossy(&b.body), 4000)),
        ),
    };
    // Headers by name (case-insensitive), those that differ.
    let mut names: Vec<String> = a
        .headers
        .iter()
        .chain(&b.headers)
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let values = |d: &Delivery, name: &str| {
        d.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut header_rows = String::new();
    for name in &names {
        let (x, y) = (values(&a, name), values(&b, name));
        if x != y {
            let _ = write!(
                header_rows,
                "<tr><th scope=\"row\">{}</th><td><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(name),
                esc(&cut(&x, 300)),
                esc(&cut(&y, 300))
            );
        }
    }
    let headers = if header_rows.is_empty() {
        "<p>The same headers.</p>".to_owned()
    } else {
        format!(
            "<table><caption>Headers that differ</caption><thead><tr><th scope=\"col\">Header</th>\
             <th scope=\"col\">In {}</th><th scope=\"col\">In {}</th></tr></thead>\
             <tbody>{header_rows}</tbody></table>",
            link(&a),
            link(&b)
        )
    };
    let verdicts = format!(
        "<p>{} {} · {} {}</p>",
        link(&a),
        verdict_badge(&a.verdict),
        link(&b),
        verdict_badge(&b.verdict)
    );
    let body = format!(
        "<h1>Delivery #{} and #{}</h1>{verdicts}\
         <section aria-labelledby=\"bodydiff\"><h2 id=\"bodydiff\">Body</h2>{body_diff}</section>\
         <section aria-labelledby=\"headerdiff\"><h2 id=\"headerdiff\">Headers</h2>{headers}</section>",
        a.seq, b.seq
    );
    html_response(
        StatusCode::OK,
        c.frame("Compare deliveries", "deliveries").render(&body),
    )
}

pub(crate) async fn pin(
    c: &Console,
    dev: &dyn Deliveries,
    seq: &str,
    f: &[(String, String)],
) -> Response<Bytes> {
    let Some(seq) = seq_of(Some(seq)) else {
        return crate::pages::not_found(c);
    };
    let pinned = form::get(f, "pinned") != Some("no");
    match dev.set_pinned(seq, pinned).await {
        Ok(true) => {
            let default = format!("{}/deliveries/{seq}", c.base());
            // Back to the page the form was on: only the console's own.
            let back = form::get(f, "back")
                .filter(|b| {
                    b.starts_with(&format!("{}/deliveries", c.base()))
                        && !b.contains("//")
                        && !b.chars().any(char::is_control)
                })
                .unwrap_or(&default);
            let sep = if back.contains('?') { '&' } else { '?' };
            let notice = if pinned { "pinned" } else { "unpinned" };
            redirect(&format!("{back}{sep}notice={notice}"))
        }
        Ok(false) => message(
            c,
            StatusCode::NOT_FOUND,
            "No such delivery",
            "This receiver holds no delivery with that number.",
        ),
        Err(e) => unavailable(c, &e),
    }
}

pub(crate) async fn replay(c: &Console, dev: &dyn Deliveries, seq: &str) -> Response<Bytes> {
    let d = match fetch(c, dev, seq_of(Some(seq))).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match dev.replay(d.seq).await {
        Ok(_) => redirect(&format!(
            "{}/deliveries/{}?notice=replayed",
            c.base(),
            d.seq
        )),
        Err(e) => message(c, StatusCode::BAD_GATEWAY, "Not replayed", &e.0),
    }
}
