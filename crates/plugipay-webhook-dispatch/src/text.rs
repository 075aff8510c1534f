//! Text from a signed body, made safe for a terminal or a log line: a
//! signature proves who sent the bytes, not that they hold no escape
//! sequences or newlines. One function for every human-facing output of the
//! family (the CLI's listings, `listen`, the example receivers' lines, the
//! inbox's log messages).

use std::borrow::Cow;

/// Whether a character could steer a terminal or reorder what it shows:
/// C0 and C1 controls (newline and tab included), DEL, and the
/// bidirectional overrides and isolates.
fn steers_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character that steers a terminal written by `spell`.
fn escape(text: &str, spell: fn(u32) -> String) -> Cow<'_, str> {
    if !text.chars().any(steers_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if steers_terminal(c) {
            out.push_str(&spell(u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` safe to print on a line of its own: each control, DEL and
/// bidirectional override shown as `\u{1b}` (newlines and tabs too, so a
/// field stays on its line and cannot forge the next one); anything else,
/// any script included, as it is. Borrowed when nothing needed escaping.
///
/// ```
/// use plugipay_webhook_dispatch::printable;
/// assert_eq!(printable("evt_1\n\u{1b}[2Jforged"), "evt_1\\u{a}\\u{1b}[2Jforged");
/// assert_eq!(printable("évènement"), "évènement");
/// ```
#[must_use]
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, |c| format!("\\u{{{c:x}}}"))
}

/// JSON text (one line of it) with every character that steers a terminal
/// escaped as `\uXXXX` — serde_json escapes only C0 controls, not DEL, C1
/// or the bidirectional overrides; still the same JSON value.
///
/// ```
/// use plugipay_webhook_dispatch::printable_json;
/// let line = serde_json::json!({"id": "evt_\u{202e}1"}).to_string();
/// assert_eq!(printable_json(&line), r#"{"id":"evt_\u202e1"}"#);
/// ```
#[must_use]
pub fn printable_json(json: &str) -> Cow<'_, str> {
    escape(json, |c| {
        // Outside the BMP nothing steers a terminal; inside, four digits.
        format!("\\u{c:04x}")
    })
}
