//! The pages: overview, events, one event, the retry confirmations, login.
//! Each composes `components` in maud's `html!`, which escapes every value
//! it is given; nothing here writes markup as text.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::{html, Markup};
use plugipay_webhook_dispatch::inbox::{
    occurred_at_ms, AttemptOutcome, Count, Cursor, HandlerState, ListFilter, Record, RetryFilter,
    Stale, State,
};
use plugipay_webhook_dispatch::StoreError;

use crate::components::{
    activity_chart, csrf_field, exact_bytes, hidden, json_tree, notice, state_badge, time,
};
use crate::form::{self, encode, query};
use crate::html::{age, cut};
use crate::{html_response, redirect, Console, Req};

/// A listing's page size.
const PAGE: u32 = 50;
/// How many of the newest dead and pending events the overview's failing
/// types are counted among.
const FAILING_SAMPLE: u32 = 500;

/// A page of its own: `title` and one sentence.
pub(crate) fn message(c: &Console, status: StatusCode, title: &str, text: &str) -> Response<Bytes> {
    let body = html! { h1 { (title) } p { (text) } };
    html_response(status, c.frame(title, "").page(body))
}

/// The answer to a retry a console does not offer.
pub(crate) fn no_retries(c: &Console) -> Response<Bytes> {
    if c.read_only() {
        message(
            c,
            StatusCode::FORBIDDEN,
            "Read-only",
            "This console is read-only: it changes nothing.",
        )
    } else {
        message(
            c,
            StatusCode::FORBIDDEN,
            "No retries here",
            "This console does not retry events: no worker drains its inbox.",
        )
    }
}

pub(crate) fn not_found(c: &Console) -> Response<Bytes> {
    message(
        c,
        StatusCode::NOT_FOUND,
        "Not found",
        "The console has no such page.",
    )
}

fn unavailable(c: &Console, e: &StoreError) -> Response<Bytes> {
    message(
        c,
        StatusCode::SERVICE_UNAVAILABLE,
        "The inbox does not answer",
        &format!("{e}. Reload to try again."),
    )
}

/// The event page's address for `r` (type and tenant tell apart events
/// sharing an id).
pub(crate) fn event_href(c: &Console, id: &str, event_type: &str, tenant: &str) -> String {
    if matches!(id, "" | "." | "..") {
        // Not a path segment: an empty one cannot be routed, and browsers
        // resolve `.` and `..` — and `%2E`, `%2E%2E` — as dot segments, so
        // the link would open another page. The id goes in the query.
        let rest = query(&[("type", Some(event_type)), ("tenant", Some(tenant))]);
        let rest = rest
            .strip_prefix('?')
            .map(|r| format!("&{r}"))
            .unwrap_or_default();
        return format!("{}/event?id={}{rest}", c.base(), encode(id));
    }
    format!(
        "{}/events/{}{}",
        c.base(),
        encode(id),
        query(&[("type", Some(event_type)), ("tenant", Some(tenant))])
    )
}

pub(crate) async fn overview(c: &Console) -> Response<Bytes> {
    let inbox = c.inbox();
    let stats = match inbox.stats().await {
        Ok(s) => s,
        Err(e) => return unavailable(c, &e),
    };
    let activity = match inbox.activity(Duration::from_secs(60), 60).await {
        Ok(a) => a,
        Err(e) => return unavailable(c, &e),
    };
    let failing = match inbox.failing_types(FAILING_SAMPLE, 10).await {
        Ok(f) => f,
        Err(e) => return unavailable(c, &e),
    };
    let base = c.base();
    let running = stats.count(State::Running);
    let body = html! {
        h1 { "Overview" }
        section aria-labelledby="counts" {
            h2 id="counts" { "Events by state" }
            table.counts {
                thead { tr { th scope="col" { "State" } th scope="col" { "Events" } } }
                tbody {
                    @for state in State::ALL {
                        tr {
                            th scope="row" {
                                a href={ (base) "/events?state=" (state.as_str()) } { (state.as_str()) }
                            }
                            td data-state-count=(state.as_str()) { (stats.count(state)) }
                        }
                    }
                }
            }
            p {
                @if stats.oldest_due_ms > 0 {
                    "The oldest due event has waited " (age(stats.oldest_due_ms)) "."
                } @else {
                    "No event is waiting."
                }
                // What a worker that stopped (crash, kill) holds stays
                // `running` until its lease lapses: when that is.
                @match stats.next_lease_lapse_ms {
                    Some(ms) if ms >= 0 => {
                        " " span data-lease-lapse {
                            (running) " running; the first lease lapses in " (age(ms.max(1)))
                            " (a worker that stopped is noticed then)."
                        }
                    }
                    Some(ms) => {
                        " " span data-lease-lapse {
                            (running) " running; a lease lapsed " (age(-ms))
                            " ago: the event waits for a worker to take it again."
                        }
                    }
                    None => {}
                }
            }
        }
        section aria-labelledby="activity" {
            h2 id="activity" { "The last hour" }
            (activity_chart(&activity))
        }
        section aria-labelledby="failing" {
            h2 id="failing" { "Types failing most" }
            @if failing.is_empty() {
                p { "No type is failing." }
            } @else {
                table {
                    caption {
                        "Among the newest " (FAILING_SAMPLE) " dead events and " (FAILING_SAMPLE)
                        " pending events that failed before"
                    }
                    thead { tr {
                        th scope="col" { "Type" } th scope="col" { "Dead" }
                        th scope="col" { "Retrying" } th scope="col" { "Last error" }
                        th scope="col" { "Action" }
                    } }
                    tbody {
                        @for f in &failing {
                            tr {
                                th scope="row" {
                                    a href={ (base) "/events?type=" (encode(&f.event_type)) } { (f.event_type) }
                                }
                                td { (f.dead) }
                                td { (f.retrying) }
                                td.error { (cut(f.last_error.as_deref().unwrap_or(""), 160)) }
                                td {
                                    @if c.can_retry() && f.dead > 0 {
                                        a href={ (base) "/retry?state=dead&type=" (encode(&f.event_type)) } {
                                            "Retry every dead event…"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, c.frame("Overview", "overview").page(body))
}

/// `YYYY-MM-DDTHH:MM[:SS]` (a `datetime-local` field, read as UTC) in ms.
fn local_time(text: &str) -> Option<i64> {
    let full = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => return None,
    };
    occurred_at_ms(&full)
}

pub(crate) async fn events(c: &Console, req: &Req) -> Response<Bytes> {
    let base = c.base();
    let state = req.q("state").and_then(State::from_name);
    let from = req.q("from").and_then(local_time);
    let to = req.q("to").and_then(local_time);
    let filter = ListFilter {
        state,
        event_type: req.q("type").map(str::to_owned),
        tenant: req.q("tenant").map(str::to_owned),
        object_id: req.q("object").map(str::to_owned),
        id_prefix: req.q("id").map(str::to_owned),
        since_ms: from,
        until_ms: to,
        after: req.q("after").and_then(Cursor::from_token),
        newest_first: true,
        limit: PAGE,
    };
    let (records, next) = match c.inbox().list_page(&filter).await {
        Ok(page) => (page.records, page.next),
        Err(e) => return unavailable(c, &e),
    };
    let field = |name: &str, label: &str, kind: &str| {
        html! {
            p {
                label for={ "f-" (name) } { (label) }
                input id={ "f-" (name) } name=(name) type=(kind) value=(req.q(name).unwrap_or(""));
            }
        }
    };
    let keep: Vec<(&str, Option<&str>)> = ["state", "type", "tenant", "object", "id", "from", "to"]
        .iter()
        .map(|k| (*k, req.q(k)))
        .collect();
    let older = next.as_ref().map(|next_page| {
        let token = next_page.to_token();
        let mut next = keep.clone();
        next.push(("after", Some(&token)));
        query(&next)
    });
    let bulk_retry = match (c.can_retry(), state, req.q("type")) {
        (true, Some(s @ (State::Dead | State::Skipped)), Some(ty)) => Some((
            s,
            query(&[
                ("state", Some(s.as_str())),
                ("type", Some(ty)),
                ("tenant", req.q("tenant")),
            ]),
        )),
        _ => None,
    };
    let body = html! {
        h1 { "Events" }
        @if let Some(n) = req.q("retried") {
            (notice(html! { (n) " pending again." }))
        }
        form.filters method="get" action={ (base) "/events" } role="search" {
            p {
                label for="f-state" { "State" }
                select id="f-state" name="state" {
                    option value="" { "any" }
                    @for s in State::ALL {
                        option selected[state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            (field("type", "Type", "text"))
            (field("tenant", "Tenant", "text"))
            (field("object", "Object id", "text"))
            (field("id", "Id starts with", "text"))
            (field("from", "Received from (UTC)", "datetime-local"))
            (field("to", "Received before (UTC)", "datetime-local"))
            p { button type="submit" { "Filter" } " " a href={ (base) "/events" } { "Clear" } }
        }
        @if let Some((s, q)) = &bulk_retry {
            p { a href={ (base) "/retry" (q) } { "Retry every " (s.as_str()) " event of this type…" } }
        }
        table.events {
            caption { "Newest first" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Type" } th scope="col" { "Tenant" }
                th scope="col" { "Object" } th scope="col" { "State" } th scope="col" { "Attempts" }
                th scope="col" { "Last error" } th scope="col" { "Received (UTC)" }
            } }
            tbody {
                @for r in &records {
                    tr data-event-id=(r.id) data-state=(r.state.as_str()) {
                        td { a href=(event_href(c, &r.id, &r.event_type, &r.tenant)) { (r.id) } }
                        td { (r.event_type) }
                        td { (r.tenant) }
                        td { (r.object_id.as_deref().unwrap_or("")) }
                        td { (state_badge(r.state.as_str())) }
                        td { (r.attempts) }
                        td.error { (cut(r.last_error.as_deref().unwrap_or(""), 120)) }
                        td { (time(r.received_at_ms)) }
                    }
                }
                @if records.is_empty() {
                    tr { td colspan="8" {
                        @if next.is_some() {
                            // A Redis listing examines a bounded number of
                            // events per page.
                            "No event matches among the events examined for this page: \
                             Older continues the search."
                        } @else {
                            "No event matches."
                        }
                    } }
                }
            }
        }
        nav aria-label="Pages" class="pager" {
            @if req.q("after").is_some() {
                a href={ (base) "/events" (query(&keep)) } { "Newest" } " "
            }
            @if let Some(q) = &older {
                a href={ (base) "/events" (q) } rel="next" { "Older" }
            }
        }
    };
    html_response(StatusCode::OK, c.frame("Events", "events").page(body))
}

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
                    (csrf_field(c))
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
                    State::Pending => { dt { "Next attempt" } dd { (time(r.next_attempt_at_ms)) } }
                    // A running event's due time is its lease's expiry:
                    // until then its worker holds it — also a worker that
                    // crashed or was killed.
                    State::Running => {
                        dt { "Lease lapses" }
                        dd { span data-lease-lapses {
                            (time(r.next_attempt_at_ms)) " — until then the worker that took it \
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

pub(crate) async fn retry_one(c: &Console, id: &str, f: &[(String, String)]) -> Response<Bytes> {
    let (ty, tenant) = (form::get(f, "type"), form::get(f, "tenant"));
    let filter = RetryFilter {
        id: Some(id.to_owned()),
        dead: true,
        skipped: true,
        stale: true,
        event_type: ty.map(str::to_owned),
        // An empty tenant field is the event without one.
        tenant: Some(tenant.unwrap_or("").to_owned()),
        ..Default::default()
    };
    // Whether it was stale: retried, it may well be stale again.
    let was_stale = match c.inbox().get(id).await {
        Ok(records) => records.iter().any(|r| {
            r.state == State::Stale
                && ty.is_none_or(|t| t == r.event_type)
                && r.tenant == tenant.unwrap_or("")
        }),
        Err(e) => return unavailable(c, &e),
    };
    match c.inbox().retry(&filter).await {
        Ok(n) => {
            let notice = match (n > 0, was_stale) {
                (true, true) => "retried_stale",
                (true, false) => "retried",
                (false, _) => "unchanged",
            };
            redirect(&format!(
                "{}/events/{}{}",
                c.base(),
                encode(id),
                query(&[("type", ty), ("tenant", tenant), ("notice", Some(notice))])
            ))
        }
        Err(e) => unavailable(c, &e),
    }
}

/// Which bulk retry a request asks for: `(state, type, tenant)`.
fn bulk<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<(State, &'a str, Option<&'a str>)> {
    let state = match get("state")? {
        "dead" => State::Dead,
        "skipped" => State::Skipped,
        _ => return None,
    };
    Some((state, get("type")?, get("tenant")))
}

pub(crate) async fn confirm_retry(c: &Console, req: &Req) -> Response<Bytes> {
    let Some((state, ty, tenant)) = bulk(|k| req.q(k)) else {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Which events?",
            "Retry takes state=dead or state=skipped and a type.",
        );
    };
    if !c.can_retry() {
        return no_retries(c);
    }
    let filter = ListFilter {
        state: Some(state),
        event_type: Some(ty.to_owned()),
        tenant: tenant.map(str::to_owned),
        ..Default::default()
    };
    let (count, found) = match c.inbox().count(&filter, 1000).await {
        Ok(Count::Exactly(n)) => (n.to_string(), n),
        Ok(Count::AtLeast(n)) if n > 1000 => ("more than 1,000".to_owned(), n),
        Ok(Count::AtLeast(n)) => (format!("at least {n}"), n),
        Err(e) => return unavailable(c, &e),
    };
    let plural = if found == 1 { "" } else { "s" };
    let base = c.base();
    let back = query(&[
        ("state", Some(state.as_str())),
        ("type", Some(ty)),
        ("tenant", tenant),
    ]);
    let body = html! {
        h1 {
            "Retry " (count) " " (state.as_str()) " event" (plural) " of type " (ty)
            @if let Some(t) = tenant { " for tenant " (t) }
            "?"
        }
        p {
            "Each becomes pending again with its attempts reset, and the workers run it: \
             its handlers that have not succeeded run again."
        }
        form method="post" action={ (base) "/retry" } class="action" {
            (csrf_field(c))
            (hidden("state", state.as_str()))
            (hidden("type", ty))
            @if let Some(t) = tenant { (hidden("tenant", t)) }
            (hidden("confirm", "yes"))
            button type="submit" { "Retry " (count) " event" (plural) }
            " "
            a href={ (base) "/events" (back) } { "Cancel" }
        }
    };
    html_response(StatusCode::OK, c.frame("Retry", "events").page(body))
}

pub(crate) async fn retry_many(c: &Console, f: &[(String, String)]) -> Response<Bytes> {
    let Some((state, ty, tenant)) = bulk(|k| form::get(f, k)) else {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Which events?",
            "Retry takes state=dead or state=skipped and a type.",
        );
    };
    if form::get(f, "confirm") != Some("yes") {
        return message(
            c,
            StatusCode::BAD_REQUEST,
            "Not confirmed",
            "A retry of many events is confirmed on its own page first.",
        );
    }
    let filter = RetryFilter {
        dead: state == State::Dead,
        skipped: state == State::Skipped,
        event_type: Some(ty.to_owned()),
        tenant: tenant.map(str::to_owned),
        ..Default::default()
    };
    match c.inbox().retry(&filter).await {
        Ok(n) => redirect(&format!(
            "{}/events{}",
            c.base(),
            query(&[
                ("type", Some(ty)),
                ("tenant", tenant),
                ("retried", Some(&n.to_string()))
            ])
        )),
        Err(e) => unavailable(c, &e),
    }
}

pub(crate) fn login(c: &Console, wrong: bool) -> Response<Bytes> {
    let base = c.base();
    let status = if wrong {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Sign in" }
        @if wrong { p role="alert" class="error" { "That token is not the console's." } }
        form method="post" action={ (base) "/login" } {
            p {
                label for="token" { "Console token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    html_response(status, c.frame("Sign in", "").page(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_fields_are_utc() {
        assert_eq!(local_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(local_time("2000-02-29T00:00:01"), Some(951_782_401_000));
        assert_eq!(local_time("2000-02-29"), None);
        assert_eq!(local_time("garbage-garbage!"), None);
    }
}
