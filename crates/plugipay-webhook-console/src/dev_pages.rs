//! The development receiver's pages: deliveries, one delivery (verdict,
//! diagnosis, headers, body, Replay, pin), and the diff of two. Composed in
//! maud's `html!` from `components`: every value from a delivery — a
//! rejected delivery is anybody's — is escaped.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::{html, Markup};
use serde_json::Value;

use crate::components::{csrf_field, exact_bytes, hidden, json_tree, notice, time};
use crate::dev::{Deliveries, Delivery, DeliveryError, DeliveryQuery, Verdict};
use crate::diff::{diff, Change};
use crate::form::{self, query};
use crate::html::cut;
use crate::pages::{event_href, message};
use crate::reply::{html_response, redirect};
use crate::request::Req;
use crate::state::Console;

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

fn verdict_badge(v: &Verdict) -> Markup {
    let class = match v {
        Verdict::Verified { .. } => "done",
        Verdict::Rejected { .. } => "dead",
    };
    html! { span class={ "state " (class) } { (v.name()) } }
}

/// A verified delivery's event: its id linked to its page, and its type.
fn event_link(c: &Console, id: &str, event_type: &str, tenant: Option<&str>) -> Markup {
    html! {
        a href=(event_href(c, id, event_type, tenant.unwrap_or(""))) { (id) } " " (event_type)
    }
}

fn seq_of(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| t.trim().parse().ok())
}

fn pin_form(c: &Console, d: &Delivery, back: &str) -> Markup {
    if c.read_only() {
        return html! {};
    }
    let (value, label) = if d.pinned {
        ("no", "Unpin")
    } else {
        ("yes", "Pin")
    };
    html! {
        form method="post" action={ (c.base()) "/deliveries/" (d.seq) "/pin" } class="inline" {
            (csrf_field(c.csrf()))
            (hidden("pinned", value))
            (hidden("back", back))
            button type="submit" aria-label={ (label) " delivery #" (d.seq) } { (label) }
        }
    }
}

/// The status line a `?notice=` asks for (pins; a replay's outcome).
fn pin_notice(req: &Req) -> Option<Markup> {
    match req.q("notice") {
        Some("pinned") => Some(notice(html! { "Pinned." })),
        Some("unpinned") => Some(notice(html! { "Unpinned." })),
        _ => None,
    }
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
    let older = match (more, found.last()) {
        (true, Some(last)) => {
            let before = last.seq.to_string();
            Some(query(&[
                ("pinned", req.q("pinned")),
                ("verdict", req.q("verdict")),
                ("before", Some(&before)),
            ]))
        }
        _ => None,
    };
    let choice = |value: &str, label: &str| {
        html! {
            option value=(value) selected[req.q("verdict").unwrap_or("") == value] { (label) }
        }
    };
    let (a, b) = match found.as_slice() {
        [newest, previous, ..] => (previous.seq.to_string(), newest.seq.to_string()),
        _ => (String::new(), String::new()),
    };
    let body = html! {
        h1 { "Deliveries" }
        @if let Some(n) = pin_notice(req) { (n) }
        p {
            "Every request this receiver was sent, verified or not, newest first. \
             Pinned deliveries are kept; the oldest others go when the receiver holds too many."
        }
        p.note data-skipped-note {
            "The events that verified are also kept in this receiver's inbox ("
            a href={ (base) "/" } { "Overview" } ", " a href={ (base) "/events" } { "Events" }
            "), where each is " code { "skipped" } ": that inbox has no handlers, so it stores \
             and shows them and never runs anything. Your application's handlers run where "
            code { "--forward-to" } " sends each delivery."
        }
        form.filters method="get" action={ (base) "/deliveries" } role="search" {
            p {
                label for="f-verdict" { "Verdict" }
                select id="f-verdict" name="verdict" {
                    (choice("", "any")) (choice("verified", "verified")) (choice("rejected", "rejected"))
                }
            }
            p {
                label for="f-pinned" { "Pinned only" }
                input id="f-pinned" name="pinned" type="checkbox" value="1" checked[pinned_only];
            }
            p { button type="submit" { "Filter" } " " a href={ (base) "/deliveries" } { "Clear" } }
        }
        form.filters method="get" action={ (base) "/deliveries/diff" } {
            p {
                label for="d-a" { "Compare delivery" }
                input id="d-a" name="a" type="number" min="1" value=(a) required;
            }
            p {
                label for="d-b" { "with delivery" }
                input id="d-b" name="b" type="number" min="1" value=(b) required;
            }
            p { button type="submit" { "Compare" } }
        }
        table.events {
            caption { "Newest first" }
            thead { tr {
                th scope="col" { "Delivery" } th scope="col" { "Received (UTC)" }
                th scope="col" { "Request" } th scope="col" { "Verdict" }
                th scope="col" { "Event or reason" } th scope="col" { "Answered" }
                th scope="col" { "Pin" }
            } }
            tbody {
                @for d in &found {
                    tr data-delivery=(d.seq) data-verdict=(d.verdict.name())
                        data-pinned=[d.pinned.then_some("yes")] {
                        td {
                            a href={ (base) "/deliveries/" (d.seq) } { "#" (d.seq) }
                            @if d.pinned { " " span.pin { "pinned" } }
                        }
                        td { (time(d.received_at_ms)) }
                        td { code { (d.method) " " (cut(&d.path, 80)) } }
                        td { (verdict_badge(&d.verdict)) }
                        td {
                            @match &d.verdict {
                                Verdict::Verified { id, event_type, tenant, .. } => {
                                    (event_link(c, id, event_type, tenant.as_deref()))
                                }
                                Verdict::Rejected { message, .. } => {
                                    span.error { (cut(message, 120)) }
                                }
                            }
                        }
                        td { @if let Some(s) = d.answered { (s) } }
                        td { (pin_form(c, d, &back)) }
                    }
                }
                @if found.is_empty() {
                    tr { td colspan="7" { "No delivery yet: send one to this receiver." } }
                }
            }
        }
        nav aria-label="Pages" class="pager" {
            @if req.q("before").is_some() { a href=(back) { "Newest" } " " }
            @if let Some(q) = &older {
                a href={ (base) "/deliveries" (q) } rel="next" { "Older" }
            }
        }
    };
    html_response(
        StatusCode::OK,
        c.frame("Deliveries", "deliveries").page(body),
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
    let status = match req.q("notice") {
        Some("replayed") => Some(notice(html! {
            "Replayed: " (d.last_replay.as_deref().unwrap_or("sent")) "."
        })),
        _ => pin_notice(req),
    };
    let replay_target = dev.replay_target();
    let body = html! {
        h1 { "Delivery #" (d.seq) }
        @if let Some(s) = status { (s) }
        @if !c.read_only() {
            @match (&d.verdict, &replay_target) {
                (Verdict::Verified { .. }, Some(target)) => {
                    form method="post" action={ (here) "/replay" } class="action" {
                        (csrf_field(c.csrf()))
                        p { "Sends the same bytes again, signed afresh, to " code { (target) } "." }
                        button type="submit" { "Replay" }
                    }
                }
                (Verdict::Verified { .. }, None) => {
                    p { "Replay needs a receiver started with " code { "--forward-to URL" } "." }
                }
                (Verdict::Rejected { .. }, _) => {
                    p {
                        "Only a delivery that verified can be replayed: signing afresh would \
                         hide what was wrong with it."
                    }
                }
            }
            (pin_form(c, &d, &here))
        }
        @if d.seq > 1 {
            p {
                a href={ (base) "/deliveries/diff?a=" (d.seq - 1) "&b=" (d.seq) } {
                    "Compare with delivery #" (d.seq - 1)
                }
            }
        }
        section aria-labelledby="fields" {
            h2 id="fields" { "Delivery" }
            dl {
                dt { "Received" } dd { (time(d.received_at_ms)) }
                dt { "Request" } dd { code { (d.method) " " (d.path) } }
                dt { "Verdict" } dd { span data-verdict=(d.verdict.name()) { (verdict_badge(&d.verdict)) } }
                @match &d.verdict {
                    Verdict::Verified { id, event_type, tenant, matched_secret } => {
                        dt { "Event" } dd { (event_link(c, id, event_type, tenant.as_deref())) }
                        @if let Some(t) = tenant { dt { "Tenant" } dd { (t) } }
                        dt { "Matched secret" } dd { "#" (matched_secret) }
                    }
                    Verdict::Rejected { status, message, .. } => {
                        dt { "Refused with" } dd { (status) ": " span.error { (message) } }
                    }
                }
                @if let Some(s) = d.answered { dt { "Answered" } dd { (s) } }
                @if let Some(f) = &d.forwarded { dt { "Forwarded" } dd { (f) } }
                @if d.replays > 0 {
                    dt { "Replays" }
                    dd { (d.replays) "; the last: " (d.last_replay.as_deref().unwrap_or("")) }
                }
            }
        }
        @if !d.explain.is_empty() {
            section aria-labelledby="explain" {
                h2 id="explain" { "Diagnosis" }
                p { "What " code { "plugipay-webhook verify --explain" } " makes of it:" }
                ul.explain { @for line in &d.explain { li { (line) } } }
            }
        }
        section aria-labelledby="headers" {
            h2 id="headers" { "Headers" }
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                tbody {
                    @for (name, value) in &d.headers {
                        tr { th scope="row" { (name) } td { code { (value) } } }
                    }
                }
            }
        }
        section aria-labelledby="body" {
            h2 id="body" { "Body (" (d.body.len()) " bytes)" }
            (json_tree(&d.body))
            (exact_bytes(&d.body))
        }
    };
    html_response(
        StatusCode::OK,
        c.frame(&format!("Delivery #{}", d.seq), "deliveries")
            .page(body),
    )
}

fn json_cell(v: &Value) -> Markup {
    let text = serde_json::to_string(v).unwrap_or_default();
    html! { code { (cut(&text, 300)) } }
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
    let link = |d: &Delivery| html! { a href={ (base) "/deliveries/" (d.seq) } { "#" (d.seq) } };
    let body_diff = match (
        serde_json::from_slice::<Value>(&a.body),
        serde_json::from_slice::<Value>(&b.body),
    ) {
        _ if a.body == b.body => html! { p { "The bodies are the same bytes." } },
        (Ok(va), Ok(vb)) => {
            let (changes, total) = diff(&va, &vb);
            if changes.is_empty() {
                html! {
                    p {
                        "The bodies hold the same JSON, in other bytes (" (a.body.len()) " and "
                        (b.body.len()) " bytes): whitespace, key order or escapes differ — a \
                         signature covers the bytes, so only one of them can verify."
                    }
                }
            } else {
                html! {
                    table.diff {
                        caption { (total) " change" @if total != 1 { "s" } " in the body" }
                        thead { tr {
                            th scope="col" { "Path" } th scope="col" { "Change" }
                            th scope="col" { "In " (link(&a)) } th scope="col" { "In " (link(&b)) }
                        } }
                        tbody {
                            @for (path, change) in &changes {
                                @let (kind, old, new) = match change {
                                    Change::Added(v) => ("added", None, Some(v)),
                                    Change::Removed(v) => ("removed", Some(v), None),
                                    Change::Changed(x, y) => ("changed", Some(x), Some(y)),
                                };
                                tr data-change=(kind) {
                                    th scope="row" { code { (path) } }
                                    td { (kind) }
                                    td { @if let Some(v) = old { (json_cell(v)) } }
                                    td { @if let Some(v) = new { (json_cell(v)) } }
                                }
                            }
                        }
                    }
                    @if total > changes.len() {
                        p { (total - changes.len()) " more changes are not shown." }
                    }
                }
            }
        }
        _ => html! {
            p {
                "At least one body is not JSON (" (a.body.len()) " and " (b.body.len())
                " bytes); they differ."
            }
            h3 { "Body of " (link(&a)) }
            pre.raw { (cut(&String::from_utf8_lossy(&a.body), 4000)) }
            h3 { "Body of " (link(&b)) }
            pre.raw { (cut(&String::from_utf8_lossy(&b.body), 4000)) }
        },
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
    let differing: Vec<(&String, String, String)> = names
        .iter()
        .map(|name| (name, values(&a, name), values(&b, name)))
        .filter(|(_, x, y)| x != y)
        .collect();
    let body = html! {
        h1 { "Delivery #" (a.seq) " and #" (b.seq) }
        p { (link(&a)) " " (verdict_badge(&a.verdict)) " · " (link(&b)) " " (verdict_badge(&b.verdict)) }
        section aria-labelledby="bodydiff" { h2 id="bodydiff" { "Body" } (body_diff) }
        section aria-labelledby="headerdiff" {
            h2 id="headerdiff" { "Headers" }
            @if differing.is_empty() {
                p { "The same headers." }
            } @else {
                table {
                    caption { "Headers that differ" }
                    thead { tr {
                        th scope="col" { "Header" }
                        th scope="col" { "In " (link(&a)) } th scope="col" { "In " (link(&b)) }
                    } }
                    tbody {
                        @for (name, x, y) in &differing {
                            tr {
                                th scope="row" { (name) }
                                td { code { (cut(x, 300)) } }
                                td { code { (cut(y, 300)) } }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        c.frame("Compare deliveries", "deliveries").page(body),
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
