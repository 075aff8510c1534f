//! One event: its delivery, signature verdict, handlers and attempts, body,
//! the other events of its object, and Retry.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::{html, Markup};
use plugipay_webhook_dispatch::inbox::{
    occurred_at_ms, AttemptOutcome, HandlerState, ListFilter, Record, Stale, State,
};
use plugipay_webhook_dispatch::StoreError;

use super::{event_href, message, unavailable};
use crate::components::{csrf_field, exact_bytes, hidden, json_tree, notice, state_badge, time};
use crate::form::encode;
use crate::reply::html_response;
use crate::request::Req;
use crate::state::Console;

pub(crate) async fn event(c: &Console, req: &Req, id: &str) -> Response<Bytes> {
    let records = match c.inbox().get(id).await {
        Ok(r) => r,
        Err(e) => return unavailable(c, &e),
    };
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| req.q("type").is_none_or(|t| r.event_type == t))
        .filter(|r| req.q("tenant").is_none_or(|t| r.tenant == t))
        .collect();
    let r = match records.as_slice() {
        [] => {
            return message(
                c,
                StatusCode::NOT_FOUND,
                "No such event",
                &format!("The inbox holds no event {id} of that type and tenant."),
            )
        }
        [one] => one,
        several => {
            let body = html! {
                h1 { (several.len()) " events share the id " (id) }
                ul {
                    @for r in several {
                        li {
                            a href=(event_href(c, &r.id, &r.event_type, &r.tenant)) {
                                (r.id) " " (r.event_type)
                                @if !r.tenant.is_empty() { " for tenant " (r.tenant) }
                            }
                            " (" (r.state.as_str()) ")"
                        }
                    }
                }
            };
            return html_response(StatusCode::OK, c.frame(id, "events").page(body));
        }
    };
    let base = c.base();
    let status = match req.q("notice") {
        Some("retried") => Some(notice(html! { "Pending again: the workers will run it." })),
        // What really happens to a stale event made pending: it is still
        // older than its key's newest done event.
        Some("retried_stale") => Some(html! {
            p role="status" class="notice" data-notice="retried_stale" {
                @if c.inbox().stale_events() == Stale::Deliver {
                    "Pending again: the workers will run it, and its handlers are told it is \
                     stale (" code { "is_stale()" } "): a later event of its key is done already."
                } @else {
                    "Pending again — but a later event of its key is done already, so the next \
                     claim records it as " code { "stale" } " again without running a handler. \
                     To have it run, the inbox must hand stale events over ("
                    code { "on_stale(Stale::Deliver)" } ")."
                }
            }
        }),
        Some("unchanged") => Some(notice(html! {
            "Nothing changed: the event is " (r.state.as_str()) "."
        })),
        _ => None,
    };
    let retry = (c.can_retry() && matches!(r.state, State::Dead | State::Skipped | State::Stale))
        .then(|| {
            // An id no path segment can carry (see `event_href`) is posted
            // as a field instead.
            let by_field = matches!(r.id.as_str(), "" | "." | "..");
            let action = if by_field {
                format!("{base}/event/retry")
            } else {
                format!("{base}/events/{}/retry", encode(&r.id))
            };
            html! {
                form method="post" action=(action) class="action" {
                    @if by_field { (hidden("id", &r.id)) }
                    (csrf_field(c.csrf()))
                    (hidden("type", &r.event_type))
                    (hidden("tenant", &r.tenant))
                    p {
                        "Makes this " (r.state.as_str()) " event pending again, its attempts \
                         reset; handlers that succeeded do not run again."
                    }
                    button type="submit" { "Retry" }
                }
            }
        });
    let (vclass, vtext) = verdict(c, r);
    let timeline = match &r.object_id {
        Some(object) => match same_object(c, r, object).await {
            Ok(t) => Some(t),
            Err(e) => return unavailable(c, &e),
        },
        None => None,
    };
    let body = html! {
        h1 { "Event " code { (r.id) } }
        @if let Some(s) = status { (s) }
        @if let Some(form) = retry { (form) }
        section aria-labelledby="fields" {
            h2 id="fields" { "Delivery" }
            dl {
                dt { "Id" } dd { code { (r.id) } }
                dt { "Type" } dd { (r.event_type) }
                dt { "Tenant" } dd { @if r.tenant.is_empty() { "none" } @else { (r.tenant) } }
                dt { "State" } dd { span data-state=(r.state.as_str()) { (state_badge(r.state.as_str())) } }
                dt { "Attempts" } dd { (r.attempts) }
                dt { "Received" } dd { (time(r.received_at_ms)) }
                @match r.state {
                    State::Pending => { dt { "Next attempt" } dd { (time(r.due_at_ms)) } }
                    // A running event's due time is its lease's expiry:
                    // until then its worker holds it — also a worker that
                    // crashed or was killed.
                    State::Running => {
                        dt { "Lease lapses" }
                        dd { span data-lease-lapses {
                            (time(r.due_at_ms)) " — until then the worker that took it \
                            holds it (one that stopped is noticed then, and the event runs again)"
                        } }
                    }
                    _ => {}
                }
                dt { "Last change" } dd { (time(r.updated_at_ms)) }
                @if let Some(e) = &r.last_error { dt { "Last error" } dd { span.error { (e) } } }
                @if let Some(a) = &r.account_id { dt { "Account" } dd { (a) } }
                @if let Some(o) = &r.occurred_at { dt { "Occurred at" } dd { (o) } }
                @if let Some(o) = &r.object_id {
                    dt { "Object" } dd { a href={ (base) "/events?object=" (encode(o)) } { (o) } }
                }
            }
        }
        section aria-labelledby="signature" {
            h2 id="signature" { "Signature" }
            p { code.sig { "X-Plugipay-Signature: " (r.signature) } }
            p class={ "verdict " (vclass) } { (vtext) }
        }
        section aria-labelledby="handlers" {
            h2 id="handlers" { "Handlers and attempts" }
            (handlers(r))
        }
        section aria-labelledby="body" {
            h2 id="body" { "Body (" (r.body.len()) " bytes)" }
            (json_tree(&r.body))
            (exact_bytes(&r.body))
        }
        @if let Some(t) = timeline { (t) }
    };
    html_response(StatusCode::OK, c.frame(&r.id, "events").page(body))
}

/// Whether the stored bytes still verify against the stored header at the
/// time they were received: `(class, sentence)`.
fn verdict(c: &Console, r: &Record) -> (&'static str, String) {
    let whose = r
        .tenant()
        .map(|t| format!("tenant {t}'s"))
        .unwrap_or_else(|| "the".to_owned());
    match c.verifier_for(r.tenant()) {
        None => (
            "unknown",
            format!("Not re-verified: {whose} secret is not configured for the console."),
        ),
        Some(v) => match v.verify_at(&r.body[..], Some(&r.signature), r.received_at_ms / 1000) {
            Ok(e) => (
                "ok",
                format!(
                    "The stored bytes verify against the stored header ({whose} secret #{}) at the time they were received.",
                    e.matched_secret()
                ),
            ),
            Err(e) => (
                "bad",
                format!("The stored bytes DO NOT VERIFY with {whose} secrets: {e}"),
            ),
        },
    }
}

fn handlers(r: &Record) -> Markup {
    if r.handlers.is_empty() {
        return html! { p { "No handler has run yet." } };
    }
    let state_name = |s: HandlerState| match s {
        HandlerState::Pending => "pending",
        HandlerState::Done => "done",
        HandlerState::Failed => "failed",
        HandlerState::Dead => "dead",
        _ => "unknown",
    };
    let outcome_name = |o: AttemptOutcome| match o {
        AttemptOutcome::Done => "done",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::CutShort => "cut-short",
        _ => "other",
    };
    html! {
        table {
            thead { tr {
                th scope="col" { "Handler" } th scope="col" { "State" }
                th scope="col" { "Attempts" } th scope="col" { "Last error" }
            } }
            tbody {
                @for h in &r.handlers {
                    tr {
                        th scope="row" { (h.name) }
                        td { (state_badge(state_name(h.state))) }
                        td { (h.attempts) }
                        td.error { (h.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @for h in r.handlers.iter().filter(|h| !h.history.is_empty()) {
            details {
                summary {
                    (h.history.len()) " attempt" @if h.history.len() != 1 { "s" } " of " (h.name)
                }
                table {
                    caption { "Newest first" }
                    thead { tr {
                        th scope="col" { "Started (UTC)" } th scope="col" { "Took" }
                        th scope="col" { "Outcome" } th scope="col" { "Error" }
                    } }
                    tbody {
                        @for a in h.history.iter().rev() {
                            tr {
                                td { (time(a.started_at_ms)) }
                                // A cut-short attempt's length is unknown
                                // (it was noticed later).
                                td {
                                    @if a.outcome == AttemptOutcome::CutShort { "unknown" }
                                    @else { (a.took_ms) " ms" }
                                }
                                td { (state_badge(outcome_name(a.outcome))) }
                                td.error { (a.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The other events of `r`'s object, in `occurred_at` order.
async fn same_object(c: &Console, r: &Record, object: &str) -> Result<Markup, StoreError> {
    let mut others = c
        .inbox()
        .list_with(&ListFilter {
            object_id: Some(object.to_owned()),
            tenant: Some(r.tenant.clone()),
            // The newest 200 (sorted below): on Redis a listing by object
            // examines a bounded number of events, the newest first.
            newest_first: true,
            limit: 200,
            ..Default::default()
        })
        .await?;
    others.sort_by_key(|o| {
        (
            o.occurred_at
                .as_deref()
                .and_then(occurred_at_ms)
                .unwrap_or(i64::MAX),
            o.received_at_ms,
        )
    });
    Ok(html! {
        section aria-labelledby="object" {
            h2 id="object" { "Events of " (object) " in occurred_at order" }
            table {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Type" }
                    th scope="col" { "Occurred at" } th scope="col" { "State" }
                } }
                tbody {
                    @for o in &others {
                        @let this = o.id == r.id && o.event_type == r.event_type;
                        tr class=[this.then_some("this")] {
                            td {
                                a href=(event_href(c, &o.id, &o.event_type, &o.tenant))
                                    aria-current=[this.then_some("page")] { (o.id) }
                            }
                            td { (o.event_type) }
                            td { (o.occurred_at.as_deref().unwrap_or("")) }
                            td { (state_badge(o.state.as_str())) }
                        }
                    }
                }
            }
        }
    })
}
