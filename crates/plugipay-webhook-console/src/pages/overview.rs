//! The overview: counts by state, the lease a stopped worker holds, the
//! last hour's activity, the types failing most.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::html;
use plugipay_webhook_dispatch::inbox::State;

use super::unavailable;
use crate::components::activity_chart;
use crate::form::encode;
use crate::html::{age, cut};
use crate::reply::html_response;
use crate::state::Console;

/// How many of the newest dead and pending events the overview's failing
/// types are counted among.
const FAILING_SAMPLE: u32 = 500;

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
