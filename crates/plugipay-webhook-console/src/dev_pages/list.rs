//! Every delivery, verified or not, newest first: filters, pins, a pager.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;

use super::{event_link, pin_form, pin_notice, seq_of, unavailable, verdict_badge, PAGE};
use crate::components::time;
use crate::dev::{Deliveries, DeliveryQuery, Verdict};
use crate::form::query;
use crate::html::cut;
use crate::reply::html_response;
use crate::request::Req;
use crate::state::Console;

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
