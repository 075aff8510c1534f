//! What an adapter knows of a request before its body: the path and the
//! header fields.

/// The request line and header fields, as the framework holds them.
///
/// The tower, axum and warp adapters use the implementation for
/// [`http::request::Parts`] or [`HttpHead`]; an adapter for a framework with
/// its own header map implements it on a small wrapper.
pub trait RequestHead {
    /// The request path, without the query.
    fn path(&self) -> &str;

    /// Every value of the header field `name` (given in lower case), in the
    /// order received, as raw bytes.
    fn header_values(&self, name: &str) -> HeaderValues<'_>;

    /// A body limit configured in the framework for this request, which
    /// then replaces the verifier's (Rocket's `limits`); `None` by default.
    fn body_limit(&self) -> Option<usize> {
        None
    }
}

/// The values of one header field: none, one (no allocation), or several.
#[derive(Debug, Clone, Default)]
pub struct HeaderValues<'a>(Values<'a>);

#[derive(Debug, Clone, Default)]
enum Values<'a> {
    #[default]
    None,
    One(&'a [u8]),
    Many(Vec<&'a [u8]>),
}

impl<'a> HeaderValues<'a> {
    /// The first value, if any.
    #[must_use]
    pub fn first(&self) -> Option<&'a [u8]> {
        match &self.0 {
            Values::None => None,
            Values::One(v) => Some(v),
            Values::Many(v) => v.first().copied(),
        }
    }

    /// Every value, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let (one, many): (Option<&'a [u8]>, &[&'a [u8]]) = match &self.0 {
            Values::None => (None, &[]),
            Values::One(v) => (Some(v), &[]),
            Values::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().copied())
    }
}

impl<'a> FromIterator<&'a [u8]> for HeaderValues<'a> {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else {
            return HeaderValues(Values::None);
        };
        match iter.next() {
            None => HeaderValues(Values::One(first)),
            Some(second) => {
                let mut all = vec![first, second];
                all.extend(iter);
                HeaderValues(Values::Many(all))
            }
        }
    }
}

/// A request head over an `http` 1.x header map and a path.
#[derive(Debug, Clone, Copy)]
pub struct HttpHead<'a> {
    path: &'a str,
    headers: &'a http::HeaderMap,
}

impl<'a> HttpHead<'a> {
    /// The head of a request with this path and these header fields.
    #[must_use]
    pub fn new(path: &'a str, headers: &'a http::HeaderMap) -> HttpHead<'a> {
        HttpHead { path, headers }
    }
}

fn values<'a>(headers: &'a http::HeaderMap, name: &str) -> HeaderValues<'a> {
    headers
        .get_all(name)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect()
}

impl RequestHead for HttpHead<'_> {
    fn path(&self) -> &str {
        self.path
    }

    fn header_values(&self, name: &str) -> HeaderValues<'_> {
        values(self.headers, name)
    }
}

impl RequestHead for http::request::Parts {
    fn path(&self) -> &str {
        self.uri.path()
    }

    fn header_values(&self, name: &str) -> HeaderValues<'_> {
        values(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderValues;

    #[test]
    fn header_values_keep_order() {
        let none: HeaderValues<'_> = std::iter::empty().collect();
        assert_eq!(none.first(), None);
        assert_eq!(none.iter().count(), 0);
        let one: HeaderValues<'_> = [&b"a"[..]].into_iter().collect();
        assert_eq!(one.iter().collect::<Vec<_>>(), [b"a"]);
        let three: HeaderValues<'_> = [&b"a"[..], b"b", b"c"].into_iter().collect();
        assert_eq!(three.first(), Some(&b"a"[..]));
        assert_eq!(three.iter().collect::<Vec<_>>(), [b"a", b"b", b"c"]);
    }
}
