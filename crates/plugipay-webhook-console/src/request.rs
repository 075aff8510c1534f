//! A request, as the routing and the pages see it.

use bytes::Bytes;
use http::{header, Method};

use crate::form;

/// The largest request body the console reads (its forms are a few fields).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// A request, as the pages see it.
pub(crate) struct Req {
    pub(crate) method: Method,
    /// The path under the base, starting with `/`.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    pub(crate) fn q(&self, name: &str) -> Option<&str> {
        form::get(&self.query, name)
    }

    /// Whether a browser asked for a page (not an API client).
    pub(crate) fn wants_html(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
    }

    /// Whether a browser says this request comes from another site: its
    /// Fetch Metadata when it sends them, else its `Origin`.
    pub(crate) fn cross_site(&self) -> bool {
        let header =
            |name: http::header::HeaderName| self.headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(site) = header(http::header::HeaderName::from_static("sec-fetch-site")) {
            return site != "same-origin" && site != "none";
        }
        match (header(header::ORIGIN), header(header::HOST)) {
            (Some("null"), _) => true,
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host)),
            _ => false,
        }
    }
}
