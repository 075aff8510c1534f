//! The answers the pages give: a page, a redirect, a line of text.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

pub(crate) fn redirect(to: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(text.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn html_response(status: StatusCode, page: String) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(page));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
