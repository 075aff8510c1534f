//! Opening an inbox from a URL (`sqlite://`, `postgres://`, `redis://`).

#[cfg(feature = "postgres")]
use super::backend::postgres::PostgresInbox;
#[cfg(feature = "redis")]
use super::backend::redis::RedisInbox;
#[cfg(feature = "sqlite")]
use super::backend::sqlite::SqliteInbox;
use super::state::InboxBackend;
use crate::error::StoreError;

/// Opens the inbox a URL names: `sqlite://PATH`, `postgres://…` or
/// `redis://…` (each store call bounded by
/// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT)); the table (or
/// the keys) are created on first use, or an earlier release's brought
/// forward.
pub async fn inbox_from_url(url: &str) -> Result<InboxBackend, StoreError> {
    open_url(url, true).await
}

/// Opens an inbox that must exist already (the read-only tools): on SQLite
/// a missing file is an error instead of a new, empty inbox.
pub async fn existing_inbox_from_url(url: &str) -> Result<InboxBackend, StoreError> {
    open_url(url, false).await
}

async fn open_url(url: &str, create: bool) -> Result<InboxBackend, StoreError> {
    use crate::url::Target;
    let _ = create;
    match Target::parse(url, "inbox")? {
        #[cfg(feature = "sqlite")]
        Target::Sqlite(path) => Ok(SqliteInbox::builder(path)
            .create(create)
            .open()
            .await?
            .into()),
        #[cfg(feature = "postgres")]
        Target::Postgres(url) => Ok(PostgresInbox::connect(url).await?.into()),
        #[cfg(feature = "redis")]
        Target::Redis(url) => Ok(RedisInbox::connect(url).await?.into()),
        Target::Memory => Err(StoreError::new(
            "the inbox is durable: use sqlite://PATH, postgres://… or redis://…, not memory:",
        )),
        #[allow(unreachable_patterns)]
        other => Err(other.missing_feature("inbox")),
    }
}
