//! Choosing the verifier for a request: one for the application, one per
//! route, or one per tenant looked up (possibly asynchronously).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::RequestHead;
use crate::error::ConfigError;
use crate::Verifier;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a tenant's verifier could not be looked up (its database is down…):
/// the delivery is answered `503 verifier_unavailable` and retried. Its
/// message is logged; it must hold no secret.
pub type LookupError = Box<dyn std::error::Error + Send + Sync>;

/// How long a tenant's verifier lookup may take by default
/// ([`Verifiers::lookup_timeout`]): 5 s. A lookup that takes longer is
/// answered `503 verifier_unavailable` with `Retry-After`.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How a tenant lookup is run.
#[derive(Debug, Clone, Copy)]
struct LookupOptions {
    timeout: Duration,
    /// An unknown tenant is answered as a delivery that fails verification.
    hide_unknown: bool,
}

impl Default for LookupOptions {
    fn default() -> Self {
        LookupOptions {
            timeout: DEFAULT_LOOKUP_TIMEOUT,
            hide_unknown: false,
        }
    }
}

/// Where the verifier for a request comes from. The adapters take anything
/// that implements it: a [`Verifier`] (one for every request) or
/// [`Verifiers`] (per route, per tenant).
///
/// Modelled on tower-http's `AsyncAuthorizeRequest`: the choice is made from
/// the request head, before the body is read, synchronously when it can be
/// and through a future when it cannot (a database lookup).
pub trait VerifierSource: Send + Sync {
    /// Chooses the verifier for the request with this head.
    fn select(&self, head: &dyn RequestHead) -> Selection;
}

/// The verifier chosen for one request, now or once a lookup finishes, and
/// the name of the tenant (or route) it belongs to, which the verified event
/// carries ([`WebhookEvent::tenant`](crate::WebhookEvent::tenant)).
pub struct Selection(Choice, Option<Arc<str>>);

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
enum Choice {
    Ready(Option<Verifier>),
    Lookup(
        BoxFuture<'static, Result<Option<Verifier>, LookupError>>,
        LookupOptions,
    ),
}

impl fmt::Debug for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let choice = match self.0 {
            Choice::Ready(Some(_)) => "Ready(Some(..))",
            Choice::Ready(None) => "Ready(None)",
            Choice::Lookup(..) => "Lookup(..)",
        };
        f.debug_struct("Selection")
            .field("choice", &format_args!("{choice}"))
            .field("tenant", &self.1)
            .finish()
    }
}

impl Selection {
    /// Decided now: this verifier, or `None` — no verifier for this request
    /// (`404 endpoint_unknown`).
    #[must_use]
    pub fn ready(verifier: Option<Verifier>) -> Selection {
        Selection(Choice::Ready(verifier), None)
    }

    /// Decided by a lookup: `Ok(None)` is `404 endpoint_unknown`, `Err` is
    /// `503 verifier_unavailable`.
    pub fn lookup(
        lookup: impl Future<Output = Result<Option<Verifier>, LookupError>> + Send + 'static,
    ) -> Selection {
        Selection(
            Choice::Lookup(Box::pin(lookup), LookupOptions::default()),
            None,
        )
    }

    /// The same choice, made for the tenant (or route) `name`: an event
    /// verified with it carries that name
    /// ([`WebhookEvent::tenant`](crate::WebhookEvent::tenant)), and the
    /// inbox and de-duplication stores key on it.
    #[must_use]
    pub fn for_tenant(self, name: impl Into<Arc<str>>) -> Selection {
        Selection(self.0, Some(name.into()))
    }

    /// The tenant (or route) this selection was made for.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        self.1.as_deref()
    }

    #[cfg(feature = "tokio")]
    pub(crate) async fn resolve(self) -> Result<(Verifier, Option<Arc<str>>), super::Rejection> {
        let tenant = self.1;
        let found = match self.0 {
            Choice::Ready(found) => found,
            Choice::Lookup(lookup, options) => {
                let found = match tokio::time::timeout(options.timeout, lookup).await {
                    Ok(found) => found.map_err(|e| {
                        tracing::warn!(error = %e, tenant = tenant.as_deref(), "plugipay webhook: looking up the verifier failed; answering 503 verifier_unavailable");
                        super::Rejection::VerifierUnavailable
                    })?,
                    Err(_) => {
                        tracing::warn!(
                            tenant = tenant.as_deref(),
                            "plugipay webhook: looking up the verifier did not answer within {:?}; answering 503 verifier_unavailable",
                            options.timeout
                        );
                        return Err(super::Rejection::VerifierUnavailable);
                    }
                };
                if found.is_none() && options.hide_unknown {
                    // Answered exactly as a delivery whose signature does
                    // not verify: the header rules, the body limit, then
                    // `signature_invalid` — no tenant name is confirmed.
                    tracing::debug!(
                        tenant = tenant.as_deref(),
                        "plugipay webhook: unknown tenant, answered as a failed verification"
                    );
                    return Ok((decoy(), None));
                }
                found
            }
        };
        match found {
            Some(verifier) => Ok((verifier, tenant)),
            None => {
                tracing::debug!(
                    tenant = tenant.as_deref(),
                    "plugipay webhook rejected: no verifier for this endpoint"
                );
                Err(super::Rejection::EndpointUnknown)
            }
        }
    }
}

/// A verifier with a random secret of this process's own, which no
/// delivery can match: what an unknown tenant is verified with when unknown
/// tenants are hidden.
#[cfg(feature = "tokio")]
fn decoy() -> Verifier {
    static DECOY: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let mut key = [0u8; 32];
            if getrandom::fill(&mut key).is_err() {
                // Never seen on a supported OS: the SipHash keys the
                // standard library draws from the OS instead.
                use std::hash::{BuildHasher, Hasher};
                for chunk in key.chunks_mut(8) {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_usize(chunk.as_ptr() as usize);
                    chunk.copy_from_slice(&h.finish().to_le_bytes());
                }
            }
            let secret: String = key.iter().map(|b| format!("{b:02x}")).collect();
            Verifier::new(format!("whsec_decoy_{secret}"))
        })
        .clone()
}

impl VerifierSource for Verifier {
    fn select(&self, _head: &dyn RequestHead) -> Selection {
        Selection::ready(Some(self.clone()))
    }
}

impl<T: VerifierSource + ?Sized> VerifierSource for Arc<T> {
    fn select(&self, head: &dyn RequestHead) -> Selection {
        (**self).select(head)
    }
}

type Lookup =
    dyn Fn(String) -> BoxFuture<'static, Result<Option<Verifier>, LookupError>> + Send + Sync;

/// Verifiers chosen per request: by route (several endpoints, each with its
/// own secret, in one application) or by tenant (a platform receiving
/// webhooks for its own customers, each with its secret). Cheap to clone.
///
/// ```
/// use plugipay_webhook::http::{Tenant, Verifiers};
/// use plugipay_webhook::Verifier;
///
/// // Two endpoints, two secrets.
/// let routes = Verifiers::by_route()
///     .route("/webhooks/payments", Verifier::new("whsec_payments"))
///     .route("/webhooks/payouts", Verifier::new("whsec_payouts"));
///
/// // Tenants from configuration: `acme=whsec_a,whsec_a_old;globex=whsec_b`.
/// let secrets = Verifiers::parse_tenant_secrets("acme=whsec_a,whsec_a_old;globex=whsec_b")?;
/// let tenants = Verifiers::by_tenant(Tenant::in_path("/tenants/{tenant}/webhooks/plugipay"), secrets);
///
/// // Or looked up per request, e.g. from a database.
/// let looked_up = Verifiers::by_tenant_with(Tenant::in_header("x-tenant"), |tenant: String| async move {
///     let secret: Option<String> = None; // SELECT secret FROM tenants WHERE name = $1
///     Ok::<_, std::io::Error>(secret.map(Verifier::new))
/// });
/// # let _ = (routes, tenants, looked_up);
/// # Ok::<(), plugipay_webhook::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Verifiers(Arc<By>);

enum By {
    /// Path → the verifier, and the tenant it is named for (if any).
    Route(HashMap<String, (Verifier, Option<Arc<str>>)>),
    Tenant(Tenant, Arc<Lookup>, LookupOptions),
    Either(Verifiers, Verifiers),
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            By::Route(routes) => {
                let mut paths: Vec<&String> = routes.keys().collect();
                paths.sort();
                f.debug_struct("Verifiers").field("routes", &paths).finish()
            }
            By::Tenant(tenant, _, options) => f
                .debug_struct("Verifiers")
                .field("tenant", tenant)
                .field("lookup_timeout", &options.timeout)
                .field("hide_unknown", &options.hide_unknown)
                .finish(),
            By::Either(first, then) => f.debug_tuple("Verifiers").field(first).field(then).finish(),
        }
    }
}

impl Verifiers {
    /// An empty route table; add routes with [`route`](Verifiers::route).
    /// A request whose path is not in the table is `404 endpoint_unknown`.
    #[must_use]
    pub fn by_route() -> Verifiers {
        Verifiers(Arc::new(By::Route(HashMap::new())))
    }

    /// Verifies requests to exactly `path` (the request path, without the
    /// query) with `verifier`. Its events carry no tenant, as with a single
    /// verifier (see [`route_for_tenant`](Verifiers::route_for_tenant)).
    #[must_use]
    pub fn route(self, path: &str, verifier: Verifier) -> Verifiers {
        self.add_route(path, verifier, None)
    }

    /// Verifies requests to exactly `path` with `verifier`, as tenant
    /// `tenant`: its events carry that name
    /// ([`WebhookEvent::tenant`](crate::WebhookEvent::tenant)), and the
    /// inbox and the de-duplication stores keep them apart from every other
    /// tenant's — for endpoints of different Plugipay accounts in one
    /// application.
    #[must_use]
    pub fn route_for_tenant(self, path: &str, tenant: &str, verifier: Verifier) -> Verifiers {
        self.add_route(path, verifier, Some(tenant.into()))
    }

    fn add_route(self, path: &str, verifier: Verifier, tenant: Option<Arc<str>>) -> Verifiers {
        let mut routes = match Arc::try_unwrap(self.0) {
            Ok(By::Route(routes)) => routes,
            Ok(other) => {
                return Verifiers(Arc::new(other))
                    .or(Verifiers::by_route().add_route(path, verifier, tenant))
            }
            Err(shared) => match &*shared {
                By::Route(routes) => routes.clone(),
                _ => {
                    return Verifiers(shared)
                        .or(Verifiers::by_route().add_route(path, verifier, tenant))
                }
            },
        };
        routes.insert(path.to_owned(), (verifier, tenant));
        Verifiers(Arc::new(By::Route(routes)))
    }

    /// This source where it knows the request, `other` where it does not:
    /// one application with a main endpoint and per-tenant endpoints (a
    /// lookup that answers "unknown tenant" does not fall through; only a
    /// request this source cannot place does).
    ///
    /// ```
    /// use plugipay_webhook::http::{Tenant, Verifiers};
    /// use plugipay_webhook::Verifier;
    /// let all = Verifiers::by_route()
    ///     .route("/webhooks/plugipay", Verifier::new("whsec_main"))
    ///     .or(Verifiers::by_tenant(Tenant::in_path("/tenants/{tenant}/webhooks/plugipay"), Default::default()));
    /// # let _ = all;
    /// ```
    #[must_use]
    pub fn or(self, other: Verifiers) -> Verifiers {
        Verifiers(Arc::new(By::Either(self, other)))
    }

    /// Tenants and their verifiers from a map (see
    /// [`parse_tenant_secrets`](Verifiers::parse_tenant_secrets)); a tenant
    /// not in the map, or a request without one, is `404 endpoint_unknown`.
    #[must_use]
    pub fn by_tenant(tenant: Tenant, verifiers: HashMap<String, Verifier>) -> Verifiers {
        let verifiers = Arc::new(verifiers);
        Verifiers::by_tenant_with(tenant, move |name: String| {
            let found = verifiers.get(&name).cloned();
            std::future::ready(Ok::<_, LookupError>(found))
        })
    }

    /// Tenants whose verifier is looked up per request by `lookup` (a
    /// database, a secrets manager): `Ok(Some(verifier))`, `Ok(None)` for an
    /// unknown tenant (`404 endpoint_unknown`), `Err` when the lookup failed
    /// (`503 verifier_unavailable`, `Retry-After: 5`). Cache in `lookup` if
    /// it is expensive: it runs for every delivery.
    #[must_use]
    pub fn by_tenant_with<F, Fut, E>(tenant: Tenant, lookup: F) -> Verifiers
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Verifier>, E>> + Send + 'static,
        E: Into<LookupError>,
    {
        let lookup: Arc<Lookup> = Arc::new(move |name| {
            let fut = lookup(name);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Verifiers(Arc::new(By::Tenant(
            tenant,
            lookup,
            LookupOptions::default(),
        )))
    }

    /// How long a tenant's lookup may take (default
    /// [`DEFAULT_LOOKUP_TIMEOUT`], 5 s): a lookup still running then is
    /// answered `503 verifier_unavailable` with `Retry-After`, so a hung
    /// database cannot hang every delivery. Applies to every per-tenant
    /// source in this one.
    #[must_use]
    pub fn lookup_timeout(self, timeout: Duration) -> Verifiers {
        self.map_tenants(&|o| LookupOptions { timeout, ..o })
    }

    /// Answers a delivery for an unknown tenant exactly as a delivery that
    /// fails verification is answered — the header rules, the body limit,
    /// then `400 signature_invalid` — instead of `404 endpoint_unknown`
    /// before any check, which tells anyone which tenant names exist. The
    /// default stays `404`: clearer to a tenant that mistyped its URL.
    /// Applies to every per-tenant source in this one; a path that names no
    /// tenant at all is still `404`.
    #[must_use]
    pub fn hide_unknown_tenants(self) -> Verifiers {
        self.map_tenants(&|o| LookupOptions {
            hide_unknown: true,
            ..o
        })
    }

    fn map_tenants(self, change: &dyn Fn(LookupOptions) -> LookupOptions) -> Verifiers {
        match &*self.0 {
            By::Route(_) => self,
            By::Tenant(tenant, lookup, options) => Verifiers(Arc::new(By::Tenant(
                tenant.clone(),
                lookup.clone(),
                change(*options),
            ))),
            By::Either(first, then) => Verifiers(Arc::new(By::Either(
                first.clone().map_tenants(change),
                then.clone().map_tenants(change),
            ))),
        }
    }

    /// Parses tenants' secrets written as `acme=whsec_a,whsec_a_old;globex=whsec_b`:
    /// tenants separated by `;`, a tenant's rotation keyring by `,`,
    /// whitespace around items ignored. Every verifier has the default
    /// tolerance and limits.
    ///
    /// # Errors
    /// An item without `=`, an empty tenant name, a tenant without a
    /// secret, or a tenant named twice (the message names the tenant, never
    /// a secret).
    pub fn parse_tenant_secrets(spec: &str) -> Result<HashMap<String, Verifier>, ConfigError> {
        let mut out = HashMap::new();
        for item in spec.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((name, secrets)) = item.split_once('=') else {
                return Err(ConfigError::new(
                    "tenant secrets: every item must be `tenant=secret[,secret…]`".to_owned(),
                ));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(ConfigError::new(
                    "tenant secrets: an item has an empty tenant name".to_owned(),
                ));
            }
            let secrets: Vec<&str> = secrets
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if secrets.is_empty() {
                return Err(ConfigError::new(format!(
                    "tenant secrets: tenant {name:?} has no secret"
                )));
            }
            if out
                .insert(name.to_owned(), Verifier::from_secrets(secrets))
                .is_some()
            {
                return Err(ConfigError::new(format!(
                    "tenant secrets: tenant {name:?} is named twice"
                )));
            }
        }
        Ok(out)
    }
}

impl VerifierSource for Verifiers {
    fn select(&self, head: &dyn RequestHead) -> Selection {
        match &*self.0 {
            By::Route(routes) => match routes.get(head.path()) {
                Some((verifier, Some(tenant))) => {
                    Selection::ready(Some(verifier.clone())).for_tenant(tenant.clone())
                }
                Some((verifier, None)) => Selection::ready(Some(verifier.clone())),
                None => Selection::ready(None),
            },
            By::Tenant(tenant, lookup, options) => match tenant.find(head) {
                Some(name) => {
                    let lookup = lookup(name.clone());
                    Selection(Choice::Lookup(lookup, *options), Some(name.into()))
                }
                None => Selection::ready(None),
            },
            By::Either(first, then) => match first.select(head) {
                Selection(Choice::Ready(None), _) => then.select(head),
                chosen => chosen,
            },
        }
    }
}

/// Where a request names its tenant.
#[derive(Debug, Clone)]
pub struct Tenant(Where);

#[derive(Debug, Clone)]
enum Where {
    /// Path segments; `None` marks the tenant's.
    Path(Vec<Option<String>>),
    Header(String),
}

impl Tenant {
    /// In the path, where `{tenant}` stands in `pattern` (e.g.
    /// `/tenants/{tenant}/webhooks/plugipay`); every other segment must
    /// match exactly. A path that does not match names no tenant.
    #[must_use]
    pub fn in_path(pattern: &str) -> Tenant {
        Tenant(Where::Path(
            pattern
                .split('/')
                .map(|s| (s != "{tenant}").then(|| s.to_owned()))
                .collect(),
        ))
    }

    /// In a header field (its first value, trimmed; UTF-8).
    #[must_use]
    pub fn in_header(name: &str) -> Tenant {
        Tenant(Where::Header(name.to_ascii_lowercase()))
    }

    /// The tenant the request names, if any (never empty).
    #[must_use]
    pub fn find(&self, head: &dyn RequestHead) -> Option<String> {
        let found = match &self.0 {
            Where::Path(pattern) => {
                let path = head.path();
                if path.split('/').count() != pattern.len() {
                    return None;
                }
                let mut tenant = None;
                for (segment, want) in path.split('/').zip(pattern) {
                    match want {
                        Some(want) if want != segment => return None,
                        Some(_) => {}
                        None => tenant = Some(segment.to_owned()),
                    }
                }
                tenant?
            }
            Where::Header(name) => std::str::from_utf8(head.header_values(name).first()?)
                .ok()?
                .trim()
                .to_owned(),
        };
        (!found.is_empty()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpHead;

    fn head_find(tenant: &Tenant, path: &str, header: Option<&str>) -> Option<String> {
        let mut headers = http::HeaderMap::new();
        if let Some(h) = header {
            headers.insert("x-tenant", h.parse().unwrap());
        }
        tenant.find(&HttpHead::new(path, &headers))
    }

    #[test]
    fn tenants_in_paths_and_headers() {
        let t = Tenant::in_path("/tenants/{tenant}/webhooks/plugipay");
        assert_eq!(
            head_find(&t, "/tenants/acme/webhooks/plugipay", None).as_deref(),
            Some("acme")
        );
        assert_eq!(head_find(&t, "/tenants//webhooks/plugipay", None), None);
        assert_eq!(head_find(&t, "/tenants/acme/webhooks/other", None), None);
        assert_eq!(
            head_find(&t, "/tenants/acme/webhooks/plugipay/x", None),
            None
        );
        let h = Tenant::in_header("X-Tenant");
        assert_eq!(
            head_find(&h, "/", Some(" globex ")).as_deref(),
            Some("globex")
        );
        assert_eq!(head_find(&h, "/", None), None);
    }

    #[test]
    fn or_falls_through_only_for_requests_the_first_cannot_place() {
        let headers = http::HeaderMap::new();
        let all = Verifiers::by_route()
            .route("/main", Verifier::new("whsec_main"))
            .or(Verifiers::by_tenant(
                Tenant::in_path("/t/{tenant}"),
                Verifiers::parse_tenant_secrets("acme=whsec_acme").unwrap(),
            ));
        let ready = |path: &str| match all.select(&HttpHead::new(path, &headers)).0 {
            Choice::Ready(v) => Some(v.is_some()),
            Choice::Lookup(..) => None,
        };
        assert_eq!(ready("/main"), Some(true));
        assert_eq!(ready("/t/acme"), None, "the tenant lookup decides");
        assert_eq!(ready("/elsewhere"), Some(false));
    }

    #[test]
    fn a_selection_names_the_tenant_only_when_one_was_chosen() {
        let headers = http::HeaderMap::new();
        let all = Verifiers::by_route()
            .route("/main", Verifier::new("whsec_main"))
            .route_for_tenant("/payouts", "payouts", Verifier::new("whsec_payouts"))
            .or(Verifiers::by_tenant(
                Tenant::in_path("/t/{tenant}"),
                Verifiers::parse_tenant_secrets("acme=whsec_acme").unwrap(),
            ));
        let tenant = |path: &str| {
            all.select(&HttpHead::new(path, &headers))
                .tenant()
                .map(str::to_owned)
        };
        assert_eq!(tenant("/main"), None, "an unnamed route is no tenant");
        assert_eq!(tenant("/payouts").as_deref(), Some("payouts"));
        assert_eq!(tenant("/t/acme").as_deref(), Some("acme"));
        assert_eq!(
            tenant("/t/unknown").as_deref(),
            Some("unknown"),
            "named before the lookup"
        );
        assert_eq!(tenant("/elsewhere"), None);
    }

    #[test]
    fn tenant_secrets_parse_and_errors_name_no_secret() {
        let map =
            Verifiers::parse_tenant_secrets(" acme=whsec_a, whsec_a_old ;globex=whsec_b;").unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["acme"].secret_count(), 2);
        assert_eq!(map["globex"].secret_count(), 1);
        for bad in ["acme", "=whsec_x", "acme=", "acme=whsec_1;acme=whsec_2"] {
            let e = Verifiers::parse_tenant_secrets(bad)
                .unwrap_err()
                .to_string();
            assert!(!e.contains("whsec"), "{e}");
        }
    }
}
