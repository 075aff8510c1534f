//! Two deliveries side by side: their verdicts, the JSON diff of their
//! bodies, the headers that differ.

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::{html, Markup};
use serde_json::Value;

use super::{fetch, seq_of, verdict_badge};
use crate::dev::{Deliveries, Delivery};
use crate::diff::{diff, Change};
use crate::html::cut;
use crate::reply::html_response;
use crate::request::Req;
use crate::state::Console;

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
