//! The pages: overview, events, one event, the retry confirmations, login.
//! Every value from an event goes through [`esc`].

use std::fmt::Write;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use plugipay_webhook_dispatch::inbox::{
    occurred_at_ms, AttemptOutcome, Count, Cursor, HandlerState, ListFilter, Record, RetryFilter,
    Stale, State,
};
use plugipay_webhook_dispatch::StoreError;

use crate::form::{self, encode, query};
use crate::html::{age, cut, esc, exact_bytes, json_tree, time};
use crate::{html_response, redirect, Console, Req};

/// A listing's page size.
const PAGE: u32 = 50;
/// How many of the newest dead and pending events the overview's failing
/// types are counted among.
const FAILING_SAMPLE: u32 = 500;

pub(crate) fn message(c: &Console, status: StatusCode, title: &str, text: &str) -> Response<Bytes> {
    let body = format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text));
    html_response(status, c.frame(title, "").render(&body))
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

fn state_badge(state: &str) -> String {
    format!("<span class=\"state {s}\">{s}</span>", s = esc(state))
}

pub(crate) fn csrf_field(c: &Console) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        c.csrf()
    )
}

pub(crate) fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        esc(value)
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
    let mut counts = String::new();
    for state in State::ALL {
        let _ = write!(
            counts,
            "<tr><th scope=\"row\"><a href=\"{base}/events?state={s}\">{s}</a></th>\
             <td data-state-count=\"{s}\">{n}</td></tr>",
            s = state.as_str(),
            n = stats.count(state)
        );
    }
    let oldest = if stats.oldest_due_ms > 0 {
        format!(
            "The oldest due event has waited {}.",
            age(stats.oldest_due_ms)
        )
    } else {
        "No event is waiting.".to_owned()
    };
    // What a worker that stopped (crash, kill) holds stays `running` until
    // its lease lapses: when that is.
    let oldest = match stats.next_lease_lapse_ms {
        Some(ms) if ms >= 0 => format!(
            "{oldest} <span data-lease-lapse>{} running; the first lease lapses in {} \
             (a worker that stopped is noticed then).</span>",
            stats.count(State::Running),
            age(ms.max(1))
        ),
        Some(ms) => format!(
            "{oldest} <span data-lease-lapse>{} running; a lease lapsed {} ago: the event \
             waits for a worker to take it again.</span>",
            stats.count(State::Running),
            age(-ms)
        ),
        None => oldest,
    };
    let mut rows = String::new();
    for f in &failing {
        let retry = if !c.can_retry() || f.dead == 0 {
            String::new()
        } else {
            format!(
                "<a href=\"{base}/retry?state=dead&amp;type={}\">Retry every dead event…</a>",
                esc(&encode(&f.event_type))
            )
        };
        let _ = write!(
            rows,
            "<tr><th scope=\"row\"><a href=\"{base}/events?type={}\">{}</a></th><td>{}</td><td>{}</td>\
             <td class=\"error\">{}</td><td>{retry}</td></tr>",
            esc(&encode(&f.event_type)),
            esc(&f.event_type),
            f.dead,
            f.retrying,
            esc(&cut(f.last_error.as_deref().unwrap_or(""), 160)),
        );
    }
    let failing_table = if rows.is_empty() {
        "<p>No type is failing.</p>".to_owned()
    } else {
        format!(
            "<table><caption>Among the newest {FAILING_SAMPLE} dead events and {FAILING_SAMPLE} pending events that failed before</caption>\
             <thead><tr><th scope=\"col\">Type</th><th scope=\"col\">Dead</th>\
             <th scope=\"col\">Retrying</th><th scope=\"col\">Last error</th><th scope=\"col\">Action</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    let body = format!(
        "<h1>Overview</h1>\
         <section aria-labelledby=\"counts\"><h2 id=\"counts\">Events by state</h2>\
         <table class=\"counts\"><thead><tr><th scope=\"col\">State</th><th scope=\"col\">Events</th></tr></thead>\
         <tbody>{counts}</tbody></table><p>{oldest}</p></section>\
         <section aria-labelledby=\"activity\"><h2 id=\"activity\">The last hour</h2>{chart}</section>\
         <section aria-labelledby=\"failing\"><h2 id=\"failing\">Types failing most</h2>{failing_table}</section>",
        chart = crate::chart::activity(&activity),
    );
    html_response(
        StatusCode::OK,
        c.frame("Overview", "overview").render(&body),
    )
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

    let mut options = String::from("<option value=\"\">any</option>");
    for s in State::ALL {
        let selected = if state == Some(s) { " selected" } else { "" };
        let _ = write!(options, "<option{selected}>{}</option>", s.as_str());
    }
    let field = |name: &str, label: &str, kind: &str| {
        format!(
            "<p><label for=\"f-{name}\">{label}</label>\
             <input id=\"f-{name}\" name=\"{name}\" type=\"{kind}\" value=\"{}\"></p>",
            esc(req.q(name).unwrap_or(""))
        )
    };
    let filters = format!(
        "<form class=\"filters\" method=\"get\" action=\"{base}/events\" role=\"search\">\
         <p><label for=\"f-state\">State</label><select id=\"f-state\" name=\"state\">{options}</select></p>\
         {}{}{}{}{}{}\
         <p><button type=\"submit\">Filter</button> <a href=\"{base}/events\">Clear</a></p></form>",
        field("type", "Type", "text"),
        field("tenant", "Tenant", "text"),
        field("object", "Object id", "text"),
        field("id", "Id starts with", "text"),
        field("from", "Received from (UTC)", "datetime-local"),
        field("to", "Received before (UTC)", "datetime-local"),
    );

    let mut rows = String::new();
    for r in &records {
        let _ = write!(
            rows,
            "<tr data-event-id=\"{id}\" data-state=\"{state}\">\
             <td><a href=\"{href}\">{id}</a></td><td>{ty}</td><td>{tenant}</td><td>{object}</td>\
             <td>{badge}</td><td>{attempts}</td><td class=\"error\">{error}</td><td>{received}</td></tr>",
            id = esc(&r.id),
            state = r.state.as_str(),
            href = esc(&event_href(c, &r.id, &r.event_type, &r.tenant)),
            ty = esc(&r.event_type),
            tenant = esc(&r.tenant),
            object = esc(r.object_id.as_deref().unwrap_or("")),
            badge = state_badge(r.state.as_str()),
            attempts = r.attempts,
            error = esc(&cut(r.last_error.as_deref().unwrap_or(""), 120)),
            received = time(r.received_at_ms),
        );
    }
    if rows.is_empty() && next.is_some() {
        // A Redis listing examines a bounded number of events per page.
        rows = "<tr><td colspan=\"8\">No event matches among the events examined for this page: \
                Older continues the search.</td></tr>"
            .to_owned();
    } else if rows.is_empty() {
        rows = "<tr><td colspan=\"8\">No event matches.</td></tr>".to_owned();
    }
    let keep: Vec<(&str, Option<&str>)> = ["state", "type", "tenant", "object", "id", "from", "to"]
        .iter()
        .map(|k| (*k, req.q(k)))
        .collect();
    let mut pager = String::new();
    if req.q("after").is_some() {
        let _ = write!(
            pager,
            "<a href=\"{base}/events{}\">Newest</a> ",
            esc(&query(&keep))
        );
    }
    if let Some(next_page) = &next {
        let token = next_page.to_token();
        let mut next = keep.clone();
        next.push(("after", Some(&token)));
        let _ = write!(
            pager,
            "<a href=\"{base}/events{}\" rel=\"next\">Older</a>",
            esc(&query(&next))
        );
    }
    let mut actions = String::new();
    if let (true, Some(s @ (State::Dead | State::Skipped)), Some(ty)) =
        (c.can_retry(), state, req.q("type"))
    {
        let _ = write!(
            actions,
            "<p><a href=\"{base}/retry{}\">Retry every {} event of this type…</a></p>",
            esc(&query(&[
                ("state", Some(s.as_str())),
                ("type", Some(ty)),
                ("tenant", req.q("tenant"))
            ])),
            s.as_str()
        );
    }
    let notice = req
        .q("retried")
        .map(|n| {
            format!(
                "<p role=\"status\" class=\"notice\">{} pending again.</p>",
                esc(n)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Events</h1>{notice}{filters}{actions}\
         <table class=\"events\"><caption>Newest first</caption><thead><tr>\
         <th scope=\"col\">Id</th><th scope=\"col\">Type</th><th scope=\"col\">Tenant</th>\
         <th scope=\"col\">Object</th><th scope=\"col\">State</th><th scope=\"col\">Attempts</th>\
         <th scope=\"col\">Last error</th><th scope=\"col\">Received (UTC)</th></tr></thead>\
         <tbody>{rows}</tbody></table><nav aria-label=\"Pages\" class=\"pager\">{pager}</nav>"
    );
    html_response(StatusCode::OK, c.frame("Events", "events").render(&body))
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
            let mut items = String::new();
            for r in several {
                let _ = write!(
                    items,
                    "<li><a href=\"{}\">{} {}{}</a> ({})</li>",
                    esc(&event_href(c, &r.id, &r.event_type, &r.tenant)),
                    esc(&r.id),
                    esc(&r.event_type),
                    if r.tenant.is_empty() {
                        String::new()
                    } else {
                        format!(" for tenant {}", esc(&r.tenant))
                    },
                    r.state.as_str()
                );
            }
            let body = format!(
                "<h1>{} events share the id {}</h1><ul>{items}</ul>",
                several.len(),
                esc(id)
            );
            return html_response(StatusCode::OK, c.frame(id, "events").render(&body));
        }
    };
    let base = c.base();
    let notice = match req.q("notice") {
        Some("retried") => {
            "<p role=\"status\" class=\"notice\">Pending again: the workers will run it.</p>"
                .to_owned()
        }
        // What really happens to a stale event made pending: it is still
        // older than its key's newest done event.
        Some("retried_stale") => match c.inbox().stale_events() {
            Stale::Deliver => "<p role=\"status\" class=\"notice\" data-notice=\"retried_stale\">\
                Pending again: the workers will run it, and its handlers are told it is stale \
                (<code>is_stale()</code>): a later event of its key is done already.</p>"
                .to_owned(),
            _ => "<p role=\"status\" class=\"notice\" data-notice=\"retried_stale\">\
                Pending again — but a later event of its key is done already, so the next \
                claim records it as <code>stale</code> again without running a handler. \
                To have it run, the inbox must hand stale events over \
                (<code>on_stale(Stale::Deliver)</code>).</p>"
                .to_owned(),
        },
        Some("unchanged") => format!(
            "<p role=\"status\" class=\"notice\">Nothing changed: the event is {}.</p>",
            r.state.as_str()
        ),
        _ => String::new(),
    };
    let retry = if c.can_retry() && matches!(r.state, State::Dead | State::Skipped | State::Stale) {
        // An id no path segment can carry (see `event_href`) is posted as a
        // field instead.
        let (action, id_field) = if matches!(r.id.as_str(), "" | "." | "..") {
            (format!("{base}/event/retry"), hidden("id", &r.id))
        } else {
            (
                format!("{base}/events/{}/retry", encode(&r.id)),
                String::new(),
            )
        };
        format!(
            "<form method=\"post\" action=\"{}\" class=\"action\">{id_field}{}{}{}\
             <p>Makes this {} event pending again, its attempts reset; handlers that succeeded do not run again.</p>\
             <button type=\"submit\">Retry</button></form>",
            esc(&action),
            csrf_field(c),
            hidden("type", &r.event_type),
            hidden("tenant", &r.tenant),
            r.state.as_str()
        )
    } else {
        String::new()
    };
    let verdict = verdict(c, r);
    let mut fields = String::new();
    let mut field = |name: &str, value: String| {
        let _ = write!(fields, "<dt>{name}</dt><dd>{value}</dd>");
    };
    field("Id", format!("<code>{}</code>", esc(&r.id)));
    field("Type", esc(&r.event_type));
    field(
        "Tenant",
        if r.tenant.is_empty() {
            "none".into()
        } else {
            esc(&r.tenant)
        },
    );
    field(
        "State",
        format!(
            "<span data-state=\"{s}\">{}</span>",
            state_badge(r.state.as_str()),
            s = r.state.as_str()
        ),
    );
    field("Attempts", r.attempts.to_string());
    field("Received", time(r.received_at_ms));
    match r.state {
        State::Pending => field("Next attempt", time(r.next_attempt_at_ms)),
        // A running event's due time is its lease's expiry: until then its
        // worker holds it — also a worker that crashed or was killed.
        State::Running => field(
            "Lease lapses",
            format!(
                "<span data-lease-lapses>{} — until then the worker that took it holds it \
                 (one that stopped is noticed then, and the event runs again)</span>",
                time(r.next_attempt_at_ms)
            ),
        ),
        _ => {}
    }
    field("Last change", time(r.updated_at_ms));
    if let Some(e) = &r.last_error {
        field(
            "Last error",
            format!("<span class=\"error\">{}</span>", esc(e)),
        );
    }
    if let Some(a) = &r.account_id {
        field("Account", esc(a));
    }
    if let Some(o) = &r.occurred_at {
        field("Occurred at", esc(o));
    }
    if let Some(o) = &r.object_id {
        field(
            "Object",
            format!(
                "<a href=\"{base}/events?object={}\">{}</a>",
                esc(&encode(o)),
                esc(o)
            ),
        );
    }
    let handlers = handlers(r);
    let timeline = match &r.object_id {
        Some(object) => match same_object(c, r, object).await {
            Ok(t) => t,
            Err(e) => return unavailable(c, &e),
        },
        None => String::new(),
    };
    let body = format!(
        "<h1>Event <code>{id}</code></h1>{notice}{retry}\
         <section aria-labelledby=\"fields\"><h2 id=\"fields\">Delivery</h2><dl>{fields}</dl></section>\
         <section aria-labelledby=\"signature\"><h2 id=\"signature\">Signature</h2>\
         <p><code class=\"sig\">X-Plugipay-Signature: {sig}</code></p><p class=\"verdict {vclass}\">{vtext}</p></section>\
         <section aria-labelledby=\"handlers\"><h2 id=\"handlers\">Handlers and attempts</h2>{handlers}</section>\
         <section aria-labelledby=\"body\"><h2 id=\"body\">Body ({len} bytes)</h2>{tree}{exact}</section>{timeline}",
        id = esc(&r.id),
        sig = esc(&r.signature),
        vclass = verdict.0,
        vtext = esc(&verdict.1),
        len = r.body.len(),
        tree = json_tree(&r.body),
        exact = exact_bytes(&r.body),
    );
    html_response(StatusCode::OK, c.frame(&r.id, "events").render(&body))
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

fn handlers(r: &Record) -> String {
    if r.handlers.is_empty() {
        return "<p>No handler has run yet.</p>".to_owned();
    }
    let mut rows = String::new();
    let mut history = String::new();
    for h in &r.handlers {
        let state = match h.state {
            HandlerState::Pending => "pending",
            HandlerState::Done => "done",
            HandlerState::Failed => "failed",
            HandlerState::Dead => "dead",
            _ => "unknown",
        };
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            esc(&h.name),
            state_badge(state),
            h.attempts,
            esc(h.last_error.as_deref().unwrap_or(""))
        );
        let mut attempts = String::new();
        for a in h.history.iter().rev() {
            let outcome = match a.outcome {
                AttemptOutcome::Done => "done",
                AttemptOutcome::Failed => "failed",
                AttemptOutcome::CutShort => "cut-short",
                _ => "other",
            };
            let _ = write!(
                attempts,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
                time(a.started_at_ms),
                // A cut-short attempt's length is unknown (noticed later).
                if a.outcome == AttemptOutcome::CutShort {
                    "unknown".to_owned()
                } else {
                    format!("{} ms", a.took_ms)
                },
                state_badge(outcome),
                esc(a.error.as_deref().unwrap_or(""))
            );
        }
        if !attempts.is_empty() {
            let _ = write!(
                history,
                "<details><summary>{} attempt{} of {}</summary><table><caption>Newest first</caption>\
                 <thead><tr><th scope=\"col\">Started (UTC)</th><th scope=\"col\">Took</th>\
                 <th scope=\"col\">Outcome</th><th scope=\"col\">Error</th></tr></thead>\
                 <tbody>{attempts}</tbody></table></details>",
                h.history.len(),
                if h.history.len() == 1 { "" } else { "s" },
                esc(&h.name)
            );
        }
    }
    format!(
        "<table><thead><tr><th scope=\"col\">Handler</th><th scope=\"col\">State</th>\
         <th scope=\"col\">Attempts</th><th scope=\"col\">Last error</th></tr></thead>\
         <tbody>{rows}</tbody></table>{history}"
    )
}

/// The other events of `r`'s object, in `occurred_at` order.
async fn same_object(c: &Console, r: &Record, object: &str) -> Result<String, StoreError> {
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
    let mut rows = String::new();
    for o in &others {
        let this = o.id == r.id && o.event_type == r.event_type;
        let _ = write!(
            rows,
            "<tr{}><td><a href=\"{}\"{}>{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if this { " class=\"this\"" } else { "" },
            esc(&event_href(c, &o.id, &o.event_type, &o.tenant)),
            if this { " aria-current=\"page\"" } else { "" },
            esc(&o.id),
            esc(&o.event_type),
            esc(o.occurred_at.as_deref().unwrap_or("")),
            state_badge(o.state.as_str())
        );
    }
    Ok(format!(
        "<section aria-labelledby=\"object\"><h2 id=\"object\">Events of {} in occurred_at order</h2>\
         <table><thead><tr><th scope=\"col\">Id</th><th scope=\"col\">Type</th>\
         <th scope=\"col\">Occurred at</th><th scope=\"col\">State</th></tr></thead>\
         <tbody>{rows}</tbody></table></section>",
        esc(object)
    ))
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
    let whose = tenant
        .map(|t| format!(" for tenant {}", esc(t)))
        .unwrap_or_default();
    let base = c.base();
    let body = format!(
        "<h1>Retry {count} {s} event{plural} of type {ty}{whose}?</h1>\
         <p>Each becomes pending again with its attempts reset, and the workers run it: \
         its handlers that have not succeeded run again.</p>\
         <form method=\"post\" action=\"{base}/retry\" class=\"action\">{csrf}{hs}{ht}{htn}{hc}\
         <button type=\"submit\">Retry {count} event{plural}</button> \
         <a href=\"{base}/events{back}\">Cancel</a></form>",
        s = state.as_str(),
        plural = if found == 1 { "" } else { "s" },
        ty = esc(ty),
        csrf = csrf_field(c),
        hs = hidden("state", state.as_str()),
        ht = hidden("type", ty),
        htn = tenant.map(|t| hidden("tenant", t)).unwrap_or_default(),
        hc = hidden("confirm", "yes"),
        back = esc(&query(&[
            ("state", Some(state.as_str())),
            ("type", Some(ty)),
            ("tenant", tenant)
        ])),
    );
    html_response(StatusCode::OK, c.frame("Retry", "events").render(&body))
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
    let (status, error) = if wrong {
        (
            StatusCode::UNAUTHORIZED,
            "<p role=\"alert\" class=\"error\">That token is not the console's.</p>",
        )
    } else {
        (StatusCode::OK, "")
    };
    let body = format!(
        "<h1>Sign in</h1>{error}<form method=\"post\" action=\"{base}/login\">\
         <p><label for=\"token\">Console token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required></p>\
         <p><button type=\"submit\">Sign in</button></p></form>"
    );
    html_response(status, c.frame("Sign in", "").render(&body))
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
