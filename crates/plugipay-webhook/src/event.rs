//! The verified event.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::json::{self, Envelope, StrSpan};

/// A string of the envelope: borrowed from the body when it had no escapes,
/// decoded once otherwise.
enum Text {
    Span(Range<usize>),
    Owned(Box<str>),
}

impl Text {
    fn new(body: &[u8], span: StrSpan) -> Text {
        if span.escaped {
            Text::Owned(json::unescape(body, &span).into_boxed_str())
        } else {
            Text::Span(span.range)
        }
    }

    fn get<'a>(&'a self, body: &'a [u8]) -> &'a str {
        match self {
            // The whole body was validated as UTF-8 and the span lies between
            // two ASCII quotes, so this cannot fail; no panic either way.
            Text::Span(r) => std::str::from_utf8(&body[r.clone()]).unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

struct Inner {
    body: Bytes,
    id: Text,
    ty: Text,
    account_id: Option<Text>,
    occurred_at: Option<Text>,
    object: Option<Range<usize>>,
    matched_secret: usize,
    object_value: OnceLock<Value>,
    raw_value: OnceLock<Value>,
    span: tracing::Span,
    signature: Option<Box<str>>,
    tenant: Option<Arc<str>>,
}

/// A webhook delivery that passed verification: the signature matched a
/// configured secret, the timestamp was fresh and the body is a valid event
/// envelope.
///
/// Cheap to clone (one reference count) and `Send + Sync + 'static`, so it can
/// travel in request extensions and into spawned tasks. The envelope's strings
/// are borrowed from the verified bytes; [`object`](WebhookEvent::object) and
/// [`raw`](WebhookEvent::raw) are parsed on first use and cannot fail, because
/// verification already validated the whole body.
///
/// `Debug` shows the id and type only: payment objects carry personal data.
///
/// ```
/// use plugipay_webhook::testing::TestDelivery;
///
/// let delivery = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1")
///     .id("evt_1")
///     .object(serde_json::json!({"id": "inv_1", "total": 4200}));
/// let event = delivery.verify_with(&plugipay_webhook::Verifier::new("whsec_test")).unwrap();
/// assert_eq!(event.id(), "evt_1");
/// assert_eq!(event.event_type(), "plugipay.invoice.paid.v1");
/// assert_eq!(event.object()["total"], 4200);
/// assert_eq!(format!("{event:?}"), r#"WebhookEvent { id: "evt_1", type: "plugipay.invoice.paid.v1" }"#);
/// ```
#[derive(Clone)]
pub struct WebhookEvent {
    inner: Arc<Inner>,
}

impl WebhookEvent {
    /// The `tracing` span the delivery was verified in — over HTTP, the
    /// `plugipay_webhook.delivery` span (`id`, `event_type`,
    /// `matched_secret`, `outcome`) that the adapters open for each
    /// delivery; the dispatcher runs the handler inside it, so the logs of
    /// verification, dispatch and handler hang together. `Span::none()`
    /// when no subscriber is interested.
    #[must_use]
    pub fn span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// An event from bytes that were verified earlier and kept since — a
    /// durable inbox reads its rows back with this. The envelope is checked
    /// again (so reading the event can never fail); the signature is not: the
    /// bytes must come from storage that only verified deliveries are
    /// written to, never from a request.
    pub fn from_verified_bytes(
        body: Bytes,
        matched_secret: usize,
    ) -> Result<WebhookEvent, crate::SignatureError> {
        let envelope = crate::json::scan_envelope(&body)?;
        Ok(WebhookEvent::new(body, envelope, matched_secret, None))
    }

    /// An event read back from a durable store that only verified deliveries
    /// are written to (as [`from_verified_bytes`](WebhookEvent::from_verified_bytes)),
    /// with the tenant it was verified for.
    pub fn from_stored(
        body: Bytes,
        matched_secret: usize,
        tenant: Option<&str>,
    ) -> Result<WebhookEvent, crate::SignatureError> {
        let event = WebhookEvent::from_verified_bytes(body, matched_secret)?;
        Ok(event.with_tenant(tenant.filter(|t| !t.is_empty()).map(Arc::from)))
    }

    /// The event, carrying `tenant` (it is not shared yet: set in place).
    pub(crate) fn with_tenant(mut self, tenant: Option<Arc<str>>) -> WebhookEvent {
        if tenant.is_some() {
            if let Some(inner) = Arc::get_mut(&mut self.inner) {
                inner.tenant = tenant;
            }
        }
        self
    }

    /// The tenant whose secret verified this delivery: the name a
    /// per-tenant verifier source
    /// ([`Verifiers::by_tenant`](crate::http::Verifiers::by_tenant),
    /// [`by_tenant_with`](crate::http::Verifiers::by_tenant_with)) found in
    /// the request, or the name a route was given
    /// ([`Verifiers::route_for_tenant`](crate::http::Verifiers::route_for_tenant));
    /// `None` with a single verifier or an unnamed route.
    ///
    /// **Decide whose data to touch from this, never from the body's
    /// [`account_id`](WebhookEvent::account_id)**: a tenant knows its own
    /// secret and can sign any body, including one naming another tenant's
    /// account. The inbox and the de-duplication stores key on
    /// `(tenant, id, type)`, so one tenant cannot occupy another's events
    /// either.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.inner.tenant.as_deref()
    }

    /// The `X-Plugipay-Signature` value the delivery carried, when it was
    /// received over HTTP through an adapter (`None` for events verified
    /// directly with [`Verifier::verify`](crate::Verifier::verify)). A
    /// durable inbox keeps it as tamper evidence.
    #[must_use]
    pub fn signature_header(&self) -> Option<&str> {
        self.inner.signature.as_deref()
    }

    pub(crate) fn new(
        body: Bytes,
        env: Envelope,
        matched_secret: usize,
        signature: Option<Box<str>>,
    ) -> WebhookEvent {
        let id = Text::new(&body, env.id);
        let ty = Text::new(&body, env.ty);
        let account_id = env.account_id.map(|s| Text::new(&body, s));
        let occurred_at = env.occurred_at.map(|s| Text::new(&body, s));
        WebhookEvent {
            inner: Arc::new(Inner {
                id,
                ty,
                account_id,
                occurred_at,
                object: env.object,
                matched_secret,
                object_value: OnceLock::new(),
                raw_value: OnceLock::new(),
                span: tracing::Span::current(),
                signature,
                tenant: None,
                body,
            }),
        }
    }

    /// The event id (`evt_…`). Stable across redeliveries of the same event;
    /// de-duplicate on `(id, event_type)`.
    #[must_use]
    pub fn id(&self) -> &str {
        self.inner.id.get(&self.inner.body)
    }

    /// The event type, e.g. `plugipay.invoice.paid.v1`.
    #[must_use]
    pub fn event_type(&self) -> &str {
        self.inner.ty.get(&self.inner.body)
    }

    /// The merchant workspace (`acc_…`), when present and not `null`.
    #[must_use]
    pub fn account_id(&self) -> Option<&str> {
        self.inner
            .account_id
            .as_ref()
            .map(|t| t.get(&self.inner.body))
    }

    /// When the event occurred (ISO 8601, exactly as sent), when present and
    /// not `null`.
    #[must_use]
    pub fn occurred_at(&self) -> Option<&str> {
        self.inner
            .occurred_at
            .as_ref()
            .map(|t| t.get(&self.inner.body))
    }

    /// The resource that triggered the event (`data.object`), or JSON `null`
    /// when `data` or `object` is absent or `null`. Parsed on first call.
    #[must_use]
    pub fn object(&self) -> &Value {
        self.inner
            .object_value
            .get_or_init(|| parse_or_null(self.object_json().as_bytes()))
    }

    /// The raw JSON text of `data.object` exactly as sent (`null` when absent).
    #[must_use]
    pub fn object_json(&self) -> &str {
        match &self.inner.object {
            Some(r) => std::str::from_utf8(&self.inner.body[r.clone()]).unwrap_or("null"),
            None => "null",
        }
    }

    /// Deserialises `data.object` straight from the verified bytes into the
    /// caller's type, without building a [`Value`] first.
    ///
    /// ```
    /// # use plugipay_webhook::{testing::TestDelivery, Verifier};
    /// #[derive(serde::Deserialize)]
    /// struct Invoice { id: String, total: u64 }
    ///
    /// let event = TestDelivery::new("whsec_test", "plugipay.invoice.paid.v1")
    ///     .object(serde_json::json!({"id": "inv_1", "total": 4200}))
    ///     .verify_with(&Verifier::new("whsec_test"))
    ///     .unwrap();
    /// let invoice: Invoice = event.object_as().unwrap();
    /// assert_eq!((invoice.id.as_str(), invoice.total), ("inv_1", 4200));
    /// ```
    pub fn object_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.object_json())
    }

    /// The whole envelope as JSON, parsed on first call (useful for storing or
    /// forwarding). For the exact bytes, use [`raw_body`](WebhookEvent::raw_body).
    #[must_use]
    pub fn raw(&self) -> &Value {
        self.inner
            .raw_value
            .get_or_init(|| parse_or_null(&self.inner.body))
    }

    /// The exact bytes that were verified.
    #[must_use]
    pub fn raw_body(&self) -> &Bytes {
        &self.inner.body
    }

    /// The position, in the configured keyring, of the secret whose signature
    /// matched. During rotation, watch this to see when the old secret stops
    /// being used.
    #[must_use]
    pub fn matched_secret(&self) -> usize {
        self.inner.matched_secret
    }
}

fn parse_or_null(bytes: &[u8]) -> Value {
    // Verification validated this JSON (RFC 8259, depth ≤ 64, finite numbers),
    // so serde_json accepts it; stay panic-free regardless.
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::error!(error = %e, "plugipay-webhook: verified JSON failed to parse; please report this");
        Value::Null
    })
}

impl fmt::Debug for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WebhookEvent");
        d.field("id", &self.id()).field("type", &self.event_type());
        if let Some(tenant) = self.tenant() {
            d.field("tenant", &tenant);
        }
        d.finish()
    }
}
