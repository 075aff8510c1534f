//! One delivery: its verdict and diagnosis, headers, body, Replay and pin.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;

use super::{event_link, fetch, pin_form, pin_notice, seq_of, verdict_badge};
use crate::components::{csrf_field, exact_bytes, json_tree, notice, time};
use crate::dev::{Deliveries, Verdict};
use crate::reply::html_response;
use crate::request::Req;
use crate::state::Console;

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
