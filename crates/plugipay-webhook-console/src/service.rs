//! The console as a tower `Service` (hyper, tower, anything that speaks
//! `http::Request`), and as an axum `Router` (feature `axum`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use crate::request::MAX_FORM_BYTES;
use crate::state::Console;

/// The console as a tower `Service`: reads the body (at most
/// [`MAX_FORM_BYTES`], else `413`) and answers with [`Console::respond`].
/// From [`Console::service`].
#[derive(Debug, Clone)]
pub struct ConsoleService {
    console: Console,
}

impl Console {
    /// The console as a tower `Service` over any `http_body::Body`.
    pub fn service(&self) -> ConsoleService {
        ConsoleService {
            console: self.clone(),
        }
    }

    /// The console as an axum `Router` holding its routes under the base
    /// path ([`ConsoleBuilder::base`](crate::ConsoleBuilder::base)), to
    /// `merge` into an app: `app.merge(console.router())`.
    ///
    /// Not `nest`: axum's `nest("/console", …)` never routes `/console/`
    /// (the overview, where the login lands) to the nested router.
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let base = self.base();
        let (root, slash, rest) = if base.is_empty() {
            ("/".to_owned(), "/".to_owned(), "/{*rest}".to_owned())
        } else {
            (
                base.to_owned(),
                format!("{base}/"),
                format!("{base}/{{*rest}}"),
            )
        };
        let mut router = axum::Router::new()
            .route_service(&slash, self.service())
            .route_service(&rest, self.service());
        if root != slash {
            router = router.route_service(&root, self.service());
        }
        router
    }
}

impl<B> tower_service::Service<Request<B>> for ConsoleService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let console = self.console.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = match Limited::new(body, MAX_FORM_BYTES).collect().await {
                Ok(collected) => {
                    console
                        .respond(Request::from_parts(parts, collected.to_bytes()))
                        .await
                }
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_none() =>
                {
                    crate::reply::plain(
                        StatusCode::BAD_REQUEST,
                        "the request's body could not be read\n",
                    )
                }
                Err(_) => {
                    let mut r =
                        crate::reply::plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large\n");
                    r.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    r
                }
            };
            Ok(response.map(Full::new))
        })
    }
}
