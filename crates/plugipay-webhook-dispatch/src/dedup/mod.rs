//! De-duplication stores: claim, complete, release per `(tenant, id, type)`
//! — in memory, SQLite, PostgreSQL or Redis.

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{BoxFuture, StoreError};
use crate::token::ClaimToken;

#[cfg(feature = "memory")]
pub use memory::{MemoryStore, DEFAULT_MEMORY_CAPACITY};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder, DEFAULT_PREFIX};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::DEFAULT_TABLE;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

/// What a delivery is de-duplicated on: `(tenant, id, type)`.
///
/// The tenant is the name of the per-tenant (or per-route) verifier that
/// accepted the delivery ([`WebhookEvent::tenant`](plugipay_webhook::WebhookEvent::tenant)),
/// empty with a single verifier: one tenant's events never collide with
/// another's. Plugipay does not document whether the `.v1` and `.v2` of one
/// occurrence share an id, so the type is part of the key
/// (`docs/behaviour.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    /// The verified tenant (empty: none).
    pub tenant: String,
    /// The event id.
    pub id: String,
    /// The event type.
    pub event_type: String,
}

impl EventKey {
    /// The key of `event`.
    #[must_use]
    pub fn of(event: &plugipay_webhook::WebhookEvent) -> EventKey {
        EventKey {
            tenant: event.tenant().unwrap_or_default().to_owned(),
            id: event.id().to_owned(),
            event_type: event.event_type().to_owned(),
        }
    }

    /// A key from its parts, without a tenant.
    pub fn new(id: impl Into<String>, event_type: impl Into<String>) -> EventKey {
        EventKey::for_tenant("", id, event_type)
    }

    /// A key from its parts, for `tenant`.
    pub fn for_tenant(
        tenant: impl Into<String>,
        id: impl Into<String>,
        event_type: impl Into<String>,
    ) -> EventKey {
        EventKey {
            tenant: tenant.into(),
            id: id.into(),
            event_type: event_type.into(),
        }
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This delivery holds the event until the lease passes: run the handler.
    Acquired(ClaimToken),
    /// Another delivery holds a live claim: answer 409 and let Plugipay retry.
    InProgress,
    /// Already handled within the retention: a duplicate.
    Done,
}

/// A de-duplication store with claim / complete / release semantics per
/// [`EventKey`].
///
/// - `claim`: atomically, across every process sharing the store — no record,
///   or an expired one (a lapsed lease, a done record past its retention) →
///   a new claim with `lease`, [`Claim::Acquired`]; a live claim →
///   [`Claim::InProgress`]; a live done record → [`Claim::Done`].
/// - `complete`: the claim's holder marks the event done for `retention`.
///   `Ok(false)` when the token no longer holds the claim (the lease lapsed).
/// - `release`: the claim's holder gives the event up (the handler failed),
///   so the next delivery runs it. `Ok(false)` when the token no longer holds it.
///
/// - `extend`: the claim's holder pushes its lease out to `lease` from now
///   (a blocking handler still running past its timeout keeps its claim).
///   `Ok(false)` when the token no longer holds it.
///
/// A process that dies mid-handler never releases: its claim lapses after
/// the lease and the next redelivery runs the handler.
///
/// Durations longer than [`MAX_DURATION`](crate::MAX_DURATION) are taken as `MAX_DURATION`, so
/// `Duration::MAX` means "forever" and never overflows a clock.
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key` for `lease`.
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Marks `key` done, kept for `retention`.
    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Releases the claim on `key`.
    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Extends the claim on `key` to `lease` from now.
    ///
    /// The default answers an error: a store that cannot extend claims
    /// cannot keep a blocking handler that outlives its timeout from running
    /// twice (every store of this crate can).
    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let _ = (key, token, lease);
        Box::pin(std::future::ready(Err(StoreError::new(format!(
            "the {} store cannot extend a claim",
            self.kind()
        )))))
    }

    /// Whether the store answers now (for health checks): a round trip to
    /// its server, under its timeout. The default answers `Ok`.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// A short name for logs (`memory`, `sqlite`, `postgres`, `redis`).
    fn kind(&self) -> &'static str;
}

/// Opens the store a URL names:
///
/// | URL | store | feature |
/// |---|---|---|
/// | `memory:` (or empty) | `MemoryStore` | `memory` |
/// | `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://relative/path`) | `SqliteStore` | `sqlite` |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` | `postgres` |
/// | `redis://…`, `rediss://…` | `RedisStore` | `redis` |
///
/// A scheme whose feature is not enabled is an error naming the feature.
pub async fn store_from_url(url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    use crate::url::Target;
    match Target::parse(url, "de-duplication store")? {
        #[cfg(feature = "memory")]
        Target::Memory => Ok(Arc::new(MemoryStore::new())),
        #[cfg(feature = "sqlite")]
        Target::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path).await?)),
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
        #[cfg(feature = "redis")]
        Target::Redis(url) => Ok(Arc::new(RedisStore::connect(url).await?)),
        #[allow(unreachable_patterns)]
        other => Err(other.missing_feature("de-duplication store")),
    }
}
