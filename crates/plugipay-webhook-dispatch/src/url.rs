//! Choosing a store from a URL (`PLUGIPAY_DEDUP_URL`).

use std::sync::Arc;

use crate::store::{DedupStore, StoreError};

/// Opens the store a URL names:
///
/// | URL | store | feature |
/// |---|---|---|
/// | `memory:` (or empty) | [`MemoryStore`](crate::MemoryStore) | `memory` |
/// | `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://relative/path`) | `SqliteStore` | `sqlite` |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` | `postgres` |
/// | `redis://…` | `RedisStore` | `redis` |
///
/// A scheme whose feature is not enabled is an error naming the feature.
pub async fn store_from_url(url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    let url = url.trim();
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    match scheme {
        "" | "memory" => memory(),
        "sqlite" => sqlite(url.trim_start_matches("sqlite:").trim_start_matches("//")),
        "postgres" | "postgresql" => postgres(url).await,
        "redis" => redis(url).await,
        other => Err(StoreError::new(format!(
            "unknown de-duplication store {other:?}: use memory:, sqlite://PATH, postgres://… or redis://…"
        ))),
    }
}

// Unused when every backend is compiled in.
#[allow(dead_code)]
fn missing(feature: &str) -> StoreError {
    StoreError::new(format!(
        "this build has no {feature} store: enable plugipay-webhook-dispatch's `{feature}` feature"
    ))
}

#[cfg(feature = "memory")]
fn memory() -> Result<Arc<dyn DedupStore>, StoreError> {
    Ok(Arc::new(crate::MemoryStore::new()))
}

#[cfg(not(feature = "memory"))]
fn memory() -> Result<Arc<dyn DedupStore>, StoreError> {
    Err(missing("memory"))
}

#[cfg(feature = "sqlite")]
fn sqlite(path: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    if path.is_empty() {
        return Err(StoreError::new("sqlite:// needs a file path"));
    }
    Ok(Arc::new(crate::SqliteStore::open(path)?))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite(_path: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    Err(missing("sqlite"))
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    Ok(Arc::new(crate::PostgresStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    Err(missing("postgres"))
}

#[cfg(feature = "redis")]
async fn redis(url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    Ok(Arc::new(crate::RedisStore::connect(url).await?))
}

#[cfg(not(feature = "redis"))]
async fn redis(_url: &str) -> Result<Arc<dyn DedupStore>, StoreError> {
    Err(missing("redis"))
}
