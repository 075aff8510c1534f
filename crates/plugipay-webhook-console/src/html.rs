//! HTML by hand: one escaping function every value from an event goes
//! through, the page frame, and a JSON body as nested collapsible lists.

use std::fmt::Write;

use serde_json::Value;

/// Escapes text for an HTML text node or a quoted attribute value.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC for ms since the epoch, in a `<time>`.
pub(crate) fn time(ms: i64) -> String {
    let iso = plugipay_webhook_dispatch::rfc3339_utc(ms.div_euclid(1000));
    format!(
        "<time datetime=\"{iso}\">{}</time>",
        iso.replace('T', " ").trim_end_matches('Z')
    )
}

/// A duration in ms as `850 ms`, `42 s`, `3 min`, `5 h`, `2 d`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// The frame of every page: head, navigation, `main` around `body`.
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
    pub(crate) fn render(&self, body: &str) -> String {
        let mut nav = String::new();
        let mut items = vec![
            ("overview", "/", "Overview"),
            ("events", "/events", "Events"),
        ];
        if self.dev {
            items.push(("deliveries", "/deliveries", "Deliveries"));
        }
        for (key, path, label) in items {
            let current = if key == self.current {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(
                nav,
                "<li><a href=\"{}{path}\"{current}>{label}</a></li>",
                self.base
            );
        }
        let mut mode = if self.read_only {
            "<p class=\"mode\">Read-only</p>".to_owned()
        } else {
            String::new()
        };
        if let Some(csrf) = self.sign_out {
            let _ = write!(
                mode,
                "<form method=\"post\" action=\"{}/logout\" class=\"signout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form>",
                self.base,
                esc(csrf)
            );
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Plugipay inbox</title>\
             <link rel=\"stylesheet\" href=\"{base}/static/console.css\"></head>\
             <body><header><p class=\"brand\">Plugipay inbox</p>\
             <nav aria-label=\"Console\"><ul>{nav}</ul></nav>{mode}</header>\
             <main id=\"main\">{body}</main></body></html>\n",
            title = esc(self.title),
            base = self.base,
        )
    }
}

/// The body's exact bytes, folded away under the parsed view: every
/// character as it is but the invisible ones, written out (`\u{d}`, a
/// newline as `\n` before its line break) — a byte added after signing
/// (a trailing newline, a carriage return) shows here when the parsed view
/// is the same.
pub(crate) fn exact_bytes(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let shown: Vec<String> = text
        .split('\n')
        .map(|line| plugipay_webhook_dispatch::printable(line).into_owned())
        .collect();
    format!(
        "<details class=\"exact\"><summary>The exact bytes</summary>\
         <pre class=\"raw\" data-exact-bytes>{}</pre></details>",
        esc(&shown.join("\\n\n"))
    )
}

/// A JSON value as nested `<details>` (objects and arrays, open, with their
/// size) and escaped scalars; anything else as escaped text.
pub(crate) fn json_tree(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut out = String::from("<div class=\"json\">");
            node(&mut out, None, &v, 0);
            out.push_str("</div>");
            out
        }
        Err(_) => format!(
            "<pre class=\"raw\">{}</pre>",
            esc(&String::from_utf8_lossy(body))
        ),
    }
}

fn node(out: &mut String, key: Option<&str>, v: &Value, depth: usize) {
    let label = key
        .map(|k| format!("<span class=\"k\">{}</span>: ", esc(&json_string(k))))
        .unwrap_or_default();
    match v {
        Value::Object(map) if !map.is_empty() && depth < 64 => {
            let _ = write!(
                out,
                "<details open><summary>{label}{{ {} key{} }}</summary><ul>",
                map.len(),
                if map.len() == 1 { "" } else { "s" }
            );
            for (k, v) in map {
                out.push_str("<li>");
                node(out, Some(k), v, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ul></details>");
        }
        Value::Array(items) if !items.is_empty() && depth < 64 => {
            let _ = write!(
                out,
                "<details open><summary>{label}[ {} item{} ]</summary><ol start=\"0\">",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            );
            for v in items {
                out.push_str("<li>");
                node(out, None, v, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ol></details>");
        }
        scalar => {
            let class = match scalar {
                Value::String(_) => "s",
                Value::Number(_) => "n",
                Value::Bool(_) => "b",
                Value::Null => "z",
                _ => "c",
            };
            let text = serde_json::to_string(scalar).unwrap_or_default();
            let _ = write!(
                out,
                "<span class=\"leaf\">{label}<span class=\"{class}\">{}</span></span>",
                esc(&text)
            );
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn a_body_with_markup_stays_text() {
        let tree = json_tree(
            br#"{"data":{"object":{"note":"<script>alert(1)</script>","<b>":[1,true,null]}}}"#,
        );
        assert!(
            !tree.contains("<script>") && !tree.contains("<b>"),
            "{tree}"
        );
        assert!(
            tree.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{tree}"
        );
        assert!(tree.contains("&lt;b&gt;"), "{tree}");
        let raw = json_tree(b"not json <img src=x onerror=alert(1)>");
        assert!(raw.starts_with("<pre") && !raw.contains("<img"), "{raw}");
    }

    #[test]
    fn deep_bodies_end() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        // serde_json refuses past 128; under that, depth 64 prints the rest
        // as one scalar.
        let tree = json_tree(deep.as_bytes());
        assert!(tree.matches("<details").count() <= 65);
    }

    #[test]
    fn ages_and_cuts() {
        assert_eq!(age(850), "850 ms");
        assert_eq!(age(42_000), "42 s");
        assert_eq!(age(3 * 60_000), "3 min");
        assert_eq!(age(-5), "0 ms");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("ab", 3), "ab");
        assert_eq!(cut("✓✓✓✓", 2), "✓✓…");
    }
}
