//! `application/x-www-form-urlencoded`: query strings and form bodies, and
//! the encoding of values put back into links.

/// The pairs of a query string or form body, percent- and `+`-decoded
/// (invalid UTF-8 replaced). At most 64 pairs are read.
pub(crate) fn pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .take(64)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
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

/// Percent-decodes a path segment (invalid UTF-8 replaced; a `+` is a
/// plus: only a query's `+` is a space).
pub(crate) fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Everything but the unreserved characters of RFC 3986.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `text` for a query value or a path segment: everything
/// but unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
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
        // In a path, `+` is a plus (a link encodes it as %2B anyway).
        assert_eq!(decode("a+b%2B"), "a+b+");
        // More than 64 pairs: the rest is not read.
        let many = (0..100)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(pairs(&many).len(), 64);
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
