//! The events listing: filters, a keyset page, a bulk retry's link.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;
use plugipay_webhook_dispatch::inbox::{occurred_at_ms, Cursor, ListFilter, State};

use super::{event_href, unavailable};
use crate::components::{notice, state_badge, time};
use crate::form::query;
use crate::html::cut;
use crate::reply::html_response;
use crate::request::Req;
use crate::state::Console;

/// A listing's page size.
const PAGE: u32 = 50;

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
