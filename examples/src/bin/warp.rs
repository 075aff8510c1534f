//! The warp receiver: `POST /webhooks/plugipay` and
//! `POST /tenants/{tenant}/webhooks/plugipay`, verified with the
//! `verified_event` filter and answered by `recover` on each route.
//!
//! PLUGIPAY_WEBHOOK_SECRET=whsec_… cargo run -p plugipay-webhook-examples --bin warp

use plugipay_webhook_examples::{
    init_tracing, render_metrics, shutdown_signal, Config, Receiver, CONSOLE_ROUTE,
    METRICS_CONTENT_TYPE,
};
use plugipay_webhook_warp::{recover, verified_event, Dispatched, VerifiedEvent};
use warp::http::StatusCode;
use warp::Filter;

#[tokio::main]
async fn main() {
    init_tracing();
    let config = Config::from_env_or_exit();
    let receiver = Receiver::from_env_or_exit().await;
    // The inbox's console under /console, when PLUGIPAY_CONSOLE_TOKEN is set
    // (else 404 there).
    let console = receiver.console_or_exit(&config);
    let console = warp::path(CONSOLE_ROUTE.trim_start_matches('/'))
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(
            // A form's body, under a limit; none for a page.
            warp::body::content_length_limit(64 * 1024)
                .and(warp::body::bytes())
                .or(warp::get().or(warp::head()).unify().map(bytes::Bytes::new))
                .unify(),
        )
        .then(
            move |path: warp::path::FullPath,
                  query: String,
                  method: warp::http::Method,
                  headers: warp::http::HeaderMap,
                  body: bytes::Bytes| {
                let console = console.clone();
                async move {
                    let Some(console) = console else {
                        return warp::http::Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(bytes::Bytes::new())
                            .expect("a valid response");
                    };
                    let uri = if query.is_empty() {
                        path.as_str().to_owned()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let mut request = warp::http::Request::new(body);
                    *request.method_mut() = method;
                    *request.headers_mut() = headers;
                    match uri.parse() {
                        Ok(uri) => *request.uri_mut() = uri,
                        Err(_) => {
                            return warp::http::Response::builder()
                                .status(StatusCode::BAD_REQUEST)
                                .body(bytes::Bytes::new())
                                .expect("a valid response")
                        }
                    }
                    console.respond(request).await
                }
            },
        );
    let workers = receiver.clone();
    let health_receiver = receiver.clone();
    let healthz = warp::get()
        .and(warp::path("healthz"))
        .and(warp::path::end())
        .then(move || {
            let receiver = health_receiver.clone();
            async move {
                let (status, body) = receiver.health().await;
                warp::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(body)
                    .expect("a valid response")
            }
        });
    let handle = move |event: VerifiedEvent| {
        let receiver = receiver.clone();
        async move { Dispatched(receiver.handle(&event).await) }
    };
    let webhook = warp::post()
        .and(warp::path!("webhooks" / "plugipay"))
        .and(verified_event(config.verifier.clone()))
        .then(handle.clone())
        .recover(recover);
    let tenant_webhook = warp::post()
        .and(warp::path!("tenants" / String / "webhooks" / "plugipay"))
        .map(|_tenant: String| ())
        .untuple_one()
        .and(verified_event(config.tenants.clone()))
        .then(handle)
        .recover(recover);
    // A baseline for load comparisons: reads the same body, verifies nothing.
    let plain = warp::post()
        .and(warp::path("plain"))
        .and(warp::path::end())
        .and(warp::body::bytes())
        .map(|_body: bytes::Bytes| StatusCode::NO_CONTENT);
    let metrics = warp::get()
        .and(warp::path("metrics"))
        .and(warp::path::end())
        .map(|| warp::reply::with_header(render_metrics(), "content-type", METRICS_CONTENT_TYPE));
    let routes = webhook
        .or(tenant_webhook)
        .or(healthz)
        .or(metrics)
        .or(plain)
        .or(console);
    let listener = config.listen_or_exit().await;
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown_signal())
        .run()
        .await;
    workers.shutdown().await;
}
