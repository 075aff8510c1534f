//! The handler registry the dispatcher and the inbox share: the kinds of
//! handler, how each is run (timeouts, panics caught), and the table by
//! event type.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use plugipay_webhook::WebhookEvent;
use serde::de::DeserializeOwned;

use crate::error::{BoxFuture, HandlerError};

pub(crate) type AsyncHandler =
    Arc<dyn Fn(WebhookEvent) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;
pub(crate) type BlockingHandler =
    Arc<dyn Fn(&WebhookEvent) -> Result<(), HandlerError> + Send + Sync>;

/// A transactional handler: its writes go through the inbox's transaction.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) type TxHandler = Arc<
    dyn for<'a> Fn(
            &'a mut crate::tx::Tx<'_>,
            WebhookEvent,
        ) -> BoxFuture<'a, Result<(), HandlerError>>
        + Send
        + Sync,
>;

/// A registered handler. Blocking ones are kept apart: a thread cannot be
/// cancelled at the timeout, so their claim is kept until the thread
/// returns. Transactional ones take part in an inbox's SQL transaction
/// (inbox only).
#[derive(Clone)]
pub(crate) enum Handler {
    Async(AsyncHandler),
    Blocking(BlockingHandler),
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
    Transactional(TxHandler),
}

impl Handler {
    /// An async handler.
    pub(crate) fn from_async<F, Fut, E>(handler: F) -> Handler
    where
        F: Fn(WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        Handler::Async(Arc::new(move |event| {
            let fut = handler(event);
            Box::pin(async move { fut.await.map_err(Into::into) })
        }))
    }

    /// An async handler of `data.object` as `T`.
    pub(crate) fn from_object<T, F, Fut, E>(handler: F) -> Handler
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, WebhookEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        let handler = Arc::new(handler);
        Handler::from_async(move |event: WebhookEvent| {
            let handler = handler.clone();
            async move {
                let object: T = object_of(&event)?;
                handler(object, event).await.map_err(Into::into)
            }
        })
    }

    /// A blocking handler.
    pub(crate) fn from_blocking<F, E>(handler: F) -> Handler
    where
        F: Fn(&WebhookEvent) -> Result<(), E> + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        Handler::Blocking(Arc::new(move |event| handler(event).map_err(Into::into)))
    }

    /// A transactional handler of `data.object` as `T` (a deserialisation
    /// failure is a handler failure naming the field's path).
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
    pub(crate) fn from_tx_object<T, F>(handler: F) -> Handler
    where
        T: DeserializeOwned + Send + 'static,
        F: for<'a> Fn(
                &'a mut crate::tx::Tx<'_>,
                T,
                WebhookEvent,
            ) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        Handler::Transactional(Arc::new(move |tx, event: WebhookEvent| {
            match object_of::<T>(&event) {
                Ok(object) => handler(tx, object, event),
                Err(e) => Box::pin(std::future::ready(Err(e))),
            }
        }))
    }

    /// Whether it needs an inbox's transaction.
    pub(crate) fn is_transactional(&self) -> bool {
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
        if matches!(self, Handler::Transactional(_)) {
            return true;
        }
        false
    }
}

/// `data.object` as `T`, straight from the verified bytes; an error names
/// the field's path (`data.object.lines[0].amount: invalid type: …`).
pub(crate) fn object_of<T: DeserializeOwned>(event: &WebhookEvent) -> Result<T, HandlerError> {
    let mut de = serde_json::Deserializer::from_str(event.object_json());
    serde_path_to_error::deserialize(&mut de).map_err(|e| -> HandlerError {
        let path = e.path().to_string();
        let path = if path == "." {
            "data.object".to_owned()
        } else {
            format!("data.object.{path}")
        };
        format!("{path}: {}", e.inner()).into()
    })
}

/// The handler name of the unnamed registrations.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(unreachable_pub, dead_code)
)]
pub const DEFAULT_HANDLER: &str = "default";

/// The handlers by event type, each type's in registration order with its
/// name (the dispatcher keeps one per type; the inbox several).
#[derive(Clone, Default)]
pub(crate) struct Handlers(HashMap<String, Vec<(String, Handler)>>);

impl Handlers {
    /// Registers `handler` as the type's only one.
    pub(crate) fn insert(&mut self, event_type: &str, handler: Handler) {
        self.0.insert(
            event_type.to_owned(),
            vec![(DEFAULT_HANDLER.to_owned(), handler)],
        );
    }

    /// Registers `handler` under `name` beside the type's others (a
    /// handler of the same name is replaced, keeping its place).
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code, reason = "used by the inbox")
    )]
    pub(crate) fn add(&mut self, event_type: &str, name: &str, handler: Handler) {
        let list = self.0.entry(event_type.to_owned()).or_default();
        match list.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = handler,
            None => list.push((name.to_owned(), handler)),
        }
    }

    /// The type's first handler (the dispatcher's one).
    pub(crate) fn get(&self, event_type: &str) -> Option<&Handler> {
        self.0
            .get(event_type)
            .and_then(|l| l.first())
            .map(|(_, h)| h)
    }

    /// The type's handlers with their names, in registration order.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code, reason = "used by the inbox")
    )]
    pub(crate) fn named(&self, event_type: &str) -> &[(String, Handler)] {
        self.0.get(event_type).map_or(&[], Vec::as_slice)
    }

    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code, reason = "used by the inbox")
    )]
    pub(crate) fn contains(&self, event_type: &str) -> bool {
        self.0.get(event_type).is_some_and(|l| !l.is_empty())
    }

    /// The registered types, sorted.
    pub(crate) fn types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.0.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }

    /// The first type with a transactional handler.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code, reason = "used by the inbox")
    )]
    pub(crate) fn transactional_type(&self) -> Option<&str> {
        self.types()
            .into_iter()
            .find(|t| self.0[*t].iter().any(|(_, h)| h.is_transactional()))
    }

    /// Pairs of registered types that are two versions of one event
    /// (`….paid.v1` and `….paid.v2`).
    pub(crate) fn version_conflicts(&self) -> Vec<(String, String)> {
        version_conflicts(self.0.keys().map(String::as_str))
    }
}

/// Pairs of types that are two versions of one event.
pub(crate) fn version_conflicts<'a>(types: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut by_base: HashMap<&str, Vec<&str>> = HashMap::new();
    for t in types {
        if let Some((base, v)) = t.rsplit_once(".v") {
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                by_base.entry(base).or_default().push(t);
            }
        }
    }
    let mut out = Vec::new();
    for versions in by_base.values_mut() {
        versions.sort_unstable();
        for i in 0..versions.len() {
            for j in i + 1..versions.len() {
                out.push((versions[i].to_owned(), versions[j].to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// Runs an async handler under `timeout`: its synchronous part and its future
/// may panic (a failure), and on timeout the future is dropped — it cannot
/// outlive the claim.
pub(crate) async fn run_async(
    handler: &AsyncHandler,
    event: WebhookEvent,
    timeout: Duration,
) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(event))) {
        Err(_) => Err("handler panicked".to_owned()),
        Ok(fut) => match tokio::time::timeout(timeout, CatchUnwind(fut)).await {
            Ok(finished) => finished,
            Err(_) => Err(format!("handler timed out after {timeout:?}")),
        },
    }
}

/// Runs a blocking handler on the blocking pool to its end (a thread cannot
/// be cancelled), with `current_attempt` and `is_stale` (`crate::attempt`)
/// answering `current` on its thread.
///
/// `permit` (a handler's concurrency slot) moves into the thread and is
/// released when the thread ends — not when this future is dropped (a lost
/// lease drops it while the thread, which cannot be stopped, still runs).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) async fn run_blocking(
    handler: &BlockingHandler,
    event: WebhookEvent,
    current: Option<crate::attempt::Current>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<(), String> {
    let handler = handler.clone();
    blocking_result(
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::attempt::on_thread(current, || handler(&event))
            }))
        })
        .await,
    )
}

/// Runs a transactional handler on `tx` under `timeout`, a panic being a
/// failure.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) async fn run_tx(
    handler: &TxHandler,
    tx: &mut crate::tx::Tx<'_>,
    event: WebhookEvent,
    timeout: Duration,
) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(tx, event))) {
        Err(_) => Err("handler panicked".to_owned()),
        Ok(fut) => match tokio::time::timeout(timeout, CatchUnwind(fut)).await {
            Ok(finished) => finished,
            Err(_) => Err(format!("handler timed out after {timeout:?}")),
        },
    }
}

/// What a finished handler returned, as the dispatcher judges it.
pub(crate) fn handler_result(returned: Result<(), HandlerError>) -> Result<(), String> {
    returned.map_err(|e| format!("handler error: {}", crate::error::chain(&*e)))
}

pub(crate) fn blocking_result(
    finished: Result<std::thread::Result<Result<(), HandlerError>>, tokio::task::JoinError>,
) -> Result<(), String> {
    match finished {
        Ok(Ok(returned)) => handler_result(returned),
        Ok(Err(_)) => Err("handler panicked".to_owned()),
        Err(e) => Err(format!("blocking handler: {e}")),
    }
}

/// Polls a handler's future, turning a panic inside it into an error.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future<Output = Result<(), HandlerError>> + Unpin> Future for CatchUnwind<F> {
    type Output = Result<(), String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::pin::Pin::new(&mut *fut).poll(cx)
        })) {
            Ok(std::task::Poll::Ready(returned)) => {
                std::task::Poll::Ready(handler_result(returned))
            }
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err("handler panicked".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::version_conflicts;

    #[test]
    fn finds_versions_of_one_event() {
        let c = version_conflicts(
            [
                "plugipay.invoice.paid.v1",
                "plugipay.invoice.paid.v2",
                "plugipay.refund.succeeded.v1",
                "plugipay.invoice.paid.vx",
            ]
            .into_iter(),
        );
        assert_eq!(
            c,
            vec![(
                "plugipay.invoice.paid.v1".into(),
                "plugipay.invoice.paid.v2".into()
            )]
        );
    }
}
