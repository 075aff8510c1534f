//! `application/x-www-form-urlencoded`: query strings and form bodies, and
//! the encoding of values put back into links.

/// The pairs of a query string or form body, percent- and `+`-decoded
/// (invalid UTF-8 replaced). At most 64 pairs are read.
pub(crate) fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `name` in `pairs`, if any and not empty.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Percent-decodes `text` (`+` is a space).
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes `text` for a query value or a path segment: everything
/// but unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from the pairs whose value is set.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_browsers_send() {
        assert_eq!(
            pairs("type=plugipay.invoice.paid.v1&tenant=&id=a%2Fb+c&x=%zz%4"),
            vec![
                ("type".into(), "plugipay.invoice.paid.v1".into()),
                ("tenant".into(), "".into()),
                ("id".into(), "a/b c".into()),
                ("x".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(decode("%E2%9C%93"), "✓");
        assert_eq!(decode("%ff"), "\u{fffd}");
        assert_eq!(decode("%"), "%");
    }

    #[test]
    fn round_trips() {
        for s in ["evt_1", "a b/c?d&e=f", "✓ <script>", "%%"] {
            assert_eq!(decode(&encode(s)), s);
        }
        assert_eq!(
            query(&[("state", Some("dead")), ("type", None), ("t", Some(""))]),
            "?state=dead"
        );
    }
}
