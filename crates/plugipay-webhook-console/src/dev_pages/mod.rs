//! The development receiver's pages: deliveries (`list.rs`), one delivery —
//! verdict, diagnosis, headers, body, Replay, pin — (`one.rs`), and the
//! diff of two (`compare.rs`), with what they share here. Composed in
//! maud's `html!` from `components`: every value from a delivery — a
//! rejected delivery is anybody's — is escaped.

mod compare;
mod list;
mod one;

pub(crate) use compare::compare;
pub(crate) use list::list;
pub(crate) use one::one;

use bytes::Bytes;
use http::{Response, StatusCode};
use maud::{html, Markup};

use crate::components::{csrf_field, hidden, notice};
use crate::dev::{Deliveries, Delivery, DeliveryError, Verdict};
use crate::form;
use crate::pages::{event_href, message};
use crate::reply::redirect;
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
