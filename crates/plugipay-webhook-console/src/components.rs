//! The console's pieces of markup, rendered by maud's `html!`: every value
//! interpolated is escaped unless it is wrapped in `PreEscaped` — which the
//! console never does (a `PreEscaped` added later must say here why it is
//! safe). The pages (`pages/`, `dev_pages/`) only compose these.
//!
//! maud rather than askama: the markup is Rust checked at compile time
//! (no template files read or shipped), components are plain functions,
//! and an escape is opted out of in one visible place.

use maud::{html, Markup, DOCTYPE};
use plugipay_webhook_dispatch::inbox::Activity;
use serde_json::Value;

/// The frame of every page: head, navigation, `main` around the body.
pub(crate) struct Frame<'a> {
    pub(crate) base: &'a str,
    pub(crate) title: &'a str,
    pub(crate) read_only: bool,
    pub(crate) dev: bool,
    /// The navigation entry to mark current (`overview`, `events`, `deliveries`).
    pub(crate) current: &'a str,
    /// A signed-in session's CSRF token: a Sign out button.
    pub(crate) sign_out: Option<&'a str>,
}

impl Frame<'_> {
    /// The whole page around `body`.
    pub(crate) fn page(&self, body: Markup) -> String {
        let base = self.base;
        let mut items = vec![
            ("overview", "/", "Overview"),
            ("events", "/events", "Events"),
        ];
        if self.dev {
            items.push(("deliveries", "/deliveries", "Deliveries"));
        }
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · Plugipay inbox" }
                    link rel="stylesheet" href={ (base) "/static/console.css" };
                }
                body {
                    header {
                        p.brand { "Plugipay inbox" }
                        nav aria-label="Console" {
                            ul {
                                @for (key, path, label) in items {
                                    li {
                                        a href={ (base) (path) }
                                            aria-current=[(key == self.current).then_some("page")] {
                                            (label)
                                        }
                                    }
                                }
                            }
                        }
                        @if self.read_only { p.mode { "Read-only" } }
                        @if let Some(csrf) = self.sign_out {
                            form method="post" action={ (base) "/logout" } class="signout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" { (body) }
                }
            }
        };
        let mut out = page.into_string();
        out.push('\n');
        out
    }
}

/// A state's badge (`<span class="state dead">dead</span>`).
pub(crate) fn state_badge(state: &str) -> Markup {
    html! { span class={ "state " (state) } { (state) } }
}

/// The request's CSRF token (`Console::csrf`) as a form field.
pub(crate) fn csrf_field(token: &str) -> Markup {
    hidden("csrf", token)
}

/// A hidden form field.
pub(crate) fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// `YYYY-MM-DD HH:MM:SS` UTC for ms since the epoch, in a `<time>` whose
/// `datetime` is the RFC 3339 form (an instant out of range shows as the
/// epoch).
pub(crate) fn time(ms: i64) -> Markup {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let iso = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let shown = iso.replace('T', " ");
    html! { time datetime=(iso) { (shown.trim_end_matches('Z')) } }
}

/// A status line (`role="status"`).
pub(crate) fn notice(text: Markup) -> Markup {
    html! { p role="status" class="notice" { (text) } }
}

/// The body's exact bytes, folded away under the parsed view: every
/// character as it is but the invisible ones, written out (`\u{d}`, a
/// newline as `\n` before its line break) — a byte added after signing
/// (a trailing newline, a carriage return) shows here when the parsed view
/// is the same.
pub(crate) fn exact_bytes(body: &[u8]) -> Markup {
    let text = String::from_utf8_lossy(body);
    let shown: Vec<String> = text
        .split('\n')
        .map(|line| plugipay_webhook_dispatch::printable(line).into_owned())
        .collect();
    html! {
        details.exact {
            summary { "The exact bytes" }
            pre.raw data-exact-bytes { (shown.join("\\n\n")) }
        }
    }
}

/// A JSON value as nested `<details>` (objects and arrays, open, with their
/// size) and escaped scalars; anything else as escaped text.
pub(crate) fn json_tree(body: &[u8]) -> Markup {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => html! { div.json { (node(None, &v, 0)) } },
        Err(_) => html! { pre.raw { (String::from_utf8_lossy(body)) } },
    }
}

fn node(key: Option<&str>, v: &Value, depth: usize) -> Markup {
    let label = html! {
        @if let Some(k) = key {
            span.k { (serde_json::to_string(k).unwrap_or_default()) } ": "
        }
    };
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    match v {
        Value::Object(map) if !map.is_empty() && depth < 64 => html! {
            details open {
                summary { (label) "{ " (map.len()) (plural(map.len(), " key", " keys")) " }" }
                ul { @for (k, v) in map { li { (node(Some(k), v, depth + 1)) } } }
            }
        },
        Value::Array(items) if !items.is_empty() && depth < 64 => html! {
            details open {
                summary { (label) "[ " (items.len()) (plural(items.len(), " item", " items")) " ]" }
                ol start="0" { @for v in items { li { (node(None, v, depth + 1)) } } }
            }
        },
        scalar => {
            let class = match scalar {
                Value::String(_) => "s",
                Value::Number(_) => "n",
                Value::Bool(_) => "b",
                Value::Null => "z",
                _ => "c",
            };
            html! {
                span.leaf {
                    (label)
                    span class=(class) { (serde_json::to_string(scalar).unwrap_or_default()) }
                }
            }
        }
    }
}

const W: f64 = 720.0;
const H: f64 = 180.0;
const PAD_L: f64 = 44.0;
const PAD_B: f64 = 22.0;

/// The overview's chart: events received (bars) and processed (a line) per
/// bucket, as server-rendered SVG with presentation attributes only (the
/// Content-Security-Policy allows no inline style), and the same numbers as
/// a table for screen readers and copying. SVG children are closed
/// explicitly (`<rect …></rect>`): the HTML parser reads a foreign element
/// without `/>` as open.
pub(crate) fn activity_chart(a: &Activity) -> Markup {
    let n = a.received.len().max(1);
    let peak = a
        .received
        .iter()
        .chain(&a.processed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let (plot_w, plot_h) = (W - PAD_L - 4.0, H - PAD_B - 8.0);
    let step = plot_w / n as f64;
    let y = |v: u64| 8.0 + plot_h - plot_h * v as f64 / peak as f64;
    let total_r: u64 = a.received.iter().sum();
    let total_p: u64 = a.processed.iter().sum();
    let bottom = 8.0 + plot_h;
    let bars: Vec<(String, String, String, String)> = a
        .received
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .map(|(i, v)| {
            let (x, top) = (PAD_L + i as f64 * step + 1.0, y(*v));
            (
                format!("{x:.1}"),
                format!("{top:.1}"),
                format!("{:.1}", (step - 2.0).max(1.0)),
                format!("{:.1}", bottom - top),
            )
        })
        .collect();
    let points: Vec<String> = a
        .processed
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", PAD_L + (i as f64 + 0.5) * step, y(*v)))
        .collect();
    let rows: Vec<(i64, u64, u64)> = a
        .received
        .iter()
        .zip(&a.processed)
        .enumerate()
        .rev()
        .filter(|(_, (r, p))| **r > 0 || **p > 0)
        .map(|(i, (r, p))| (a.since_ms + i as i64 * a.bucket_ms, *r, *p))
        .collect();
    html! {
        svg class="chart" viewBox={ "0 0 " (W) " " (H) } width="100%" role="img"
            aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg" {
            title id="chart-title" {
                "Events per minute over the last " (n) " minutes: "
                (total_r) " received, " (total_p) " processed"
            }
            // The axis and the peak's gridline.
            line x1=(PAD_L) y1=(bottom) x2=(W) y2=(bottom) stroke="#8a8f98" stroke-width="1" {}
            line x1=(PAD_L) y1="8" x2=(W) y2="8" stroke="#d5d8dc" stroke-width="1"
                stroke-dasharray="4 4" {}
            text x=(PAD_L - 6.0) y="12" text-anchor="end" font-size="11" fill="#444" { (peak) }
            text x=(PAD_L - 6.0) y=(bottom) text-anchor="end" font-size="11" fill="#444" { "0" }
            text x=(PAD_L) y=(H - 4.0) font-size="11" fill="#444" { "−" (n) " min" }
            text x=(W) y=(H - 4.0) text-anchor="end" font-size="11" fill="#444" { "now" }
            @for (x, top, w, h) in &bars {
                rect x=(x) y=(top) width=(w) height=(h) fill="#9cc3e6" {}
            }
            polyline points=(points.join(" ")) fill="none" stroke="#1b6e3a" stroke-width="2" {}
        }
        p.legend {
            span.swatch.received {} " received "
            span.swatch.processed {} " processed (became done)"
        }
        details {
            summary { "Per minute, as a table" }
            table {
                thead { tr {
                    th scope="col" { "Minute (UTC)" }
                    th scope="col" { "Received" }
                    th scope="col" { "Processed" }
                } }
                tbody {
                    @for (start, r, p) in &rows {
                        tr { td { (time(*start)) } td { (r) } td { (p) } }
                    }
                    @if rows.is_empty() {
                        tr { td colspan="3" { "Nothing received or processed." } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_with_markup_stays_text() {
        let tree = json_tree(
            br#"{"data":{"object":{"note":"<script>alert(1)</script>","<b>":[1,true,null]}}}"#,
        )
        .into_string();
        assert!(
            !tree.contains("<script>") && !tree.contains("<b>"),
            "{tree}"
        );
        assert!(
            tree.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{tree}"
        );
        assert!(tree.contains("&lt;b&gt;"), "{tree}");
        let raw = json_tree(b"not json <img src=x onerror=alert(1)>").into_string();
        assert!(raw.starts_with("<pre") && !raw.contains("<img"), "{raw}");
    }

    #[test]
    fn deep_bodies_end() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        // serde_json refuses past 128; under that, depth 64 prints the rest
        // as one scalar.
        let tree = json_tree(deep.as_bytes()).into_string();
        assert!(tree.matches("<details").count() <= 65);
    }

    #[test]
    fn draws_one_bar_per_busy_minute_and_one_line() {
        let a = Activity {
            since_ms: 0,
            bucket_ms: 60_000,
            received: vec![0, 3, 0, 7],
            processed: vec![0, 1, 2, 7],
        };
        let out = activity_chart(&a).into_string();
        assert_eq!(out.matches("<rect").count(), 2, "{out}");
        assert_eq!(out.matches("</rect>").count(), 2, "closed: {out}");
        assert_eq!(out.matches("<polyline").count(), 1);
        assert!(out.contains("10 received, 10 processed"), "{out}");
        assert_eq!(out.matches("<tr><td>").count(), 3, "{out}");
        // No style attribute: the CSP forbids inline styles.
        assert!(!out.contains("style="));
    }

    #[test]
    fn the_frame_escapes_its_title_and_marks_the_current_page() {
        let f = Frame {
            base: "/console",
            title: "<evt>",
            read_only: true,
            dev: false,
            current: "events",
            sign_out: Some("tok\"en"),
        };
        let page = f.page(html! { p { "hi" } });
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains("<title>&lt;evt&gt; · Plugipay inbox</title>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/console/events\" aria-current=\"page\">Events</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/console/\">Overview</a>"),
            "{page}"
        );
        assert!(page.contains("value=\"tok&quot;en\""), "{page}");
        assert!(page.contains("<p class=\"mode\">Read-only</p>"), "{page}");
    }
}
