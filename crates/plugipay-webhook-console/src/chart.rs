//! The overview's chart: events received (bars) and processed (a line) per
//! minute, as server-rendered SVG with presentation attributes only (the
//! Content-Security-Policy allows no inline style), and the same numbers as
//! a table for screen readers and copying.

use std::fmt::Write;

use plugipay_webhook_dispatch::inbox::Activity;

use crate::html;

const W: f64 = 720.0;
const H: f64 = 180.0;
const PAD_L: f64 = 44.0;
const PAD_B: f64 = 22.0;

/// The chart and its table.
pub(crate) fn activity(a: &Activity) -> String {
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
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" \
         aria-labelledby=\"chart-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-title\">Events per minute over the last {n} minutes: \
         {total_r} received, {total_p} processed</title>"
    );
    // Axis and the peak's gridline.
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\" stroke=\"#8a8f98\" stroke-width=\"1\"/>\
         <line x1=\"{PAD_L}\" y1=\"8\" x2=\"{W}\" y2=\"8\" stroke=\"#d5d8dc\" stroke-width=\"1\" stroke-dasharray=\"4 4\"/>\
         <text x=\"{tx}\" y=\"12\" text-anchor=\"end\" font-size=\"11\" fill=\"#444\">{peak}</text>\
         <text x=\"{tx}\" y=\"{b}\" text-anchor=\"end\" font-size=\"11\" fill=\"#444\">0</text>\
         <text x=\"{PAD_L}\" y=\"{lb}\" font-size=\"11\" fill=\"#444\">−{n} min</text>\
         <text x=\"{W}\" y=\"{lb}\" text-anchor=\"end\" font-size=\"11\" fill=\"#444\">now</text>",
        b = 8.0 + plot_h,
        tx = PAD_L - 6.0,
        lb = H - 4.0,
    );
    for (i, v) in a.received.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let (x, top) = (PAD_L + i as f64 * step + 1.0, y(*v));
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#9cc3e6\"/>",
            w = (step - 2.0).max(1.0),
            h = 8.0 + plot_h - top,
        );
    }
    let points: Vec<String> = a
        .processed
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", PAD_L + (i as f64 + 0.5) * step, y(*v)))
        .collect();
    let _ = write!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1b6e3a\" stroke-width=\"2\"/></svg>",
        points.join(" ")
    );
    let legend = "<p class=\"legend\"><span class=\"swatch received\"></span> received \
                  <span class=\"swatch processed\"></span> processed (became done)</p>";
    let mut rows = String::new();
    for (i, (r, p)) in a.received.iter().zip(&a.processed).enumerate().rev() {
        if *r == 0 && *p == 0 {
            continue;
        }
        let start = a.since_ms + i as i64 * a.bucket_ms;
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{r}</td><td>{p}</td></tr>",
            html::time(start)
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=\"3\">Nothing received or processed.</td></tr>".into();
    }
    format!(
        "{svg}{legend}<details><summary>Per minute, as a table</summary>\
         <table><thead><tr><th scope=\"col\">Minute (UTC)</th><th scope=\"col\">Received</th>\
         <th scope=\"col\">Processed</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_per_busy_minute_and_one_line() {
        let a = Activity {
            since_ms: 0,
            bucket_ms: 60_000,
            received: vec![0, 3, 0, 7],
            processed: vec![0, 1, 2, 7],
        };
        let out = activity(&a);
        assert_eq!(out.matches("<rect").count(), 2, "{out}");
        assert_eq!(out.matches("<polyline").count(), 1);
        assert!(out.contains("10 received, 10 processed"), "{out}");
        assert_eq!(out.matches("<tr><td>").count(), 3, "{out}");
        // No style attribute: the CSP forbids inline styles.
        assert!(!out.contains("style="));
    }
}
