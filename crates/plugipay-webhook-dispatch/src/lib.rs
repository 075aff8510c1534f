#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
mod attempt;
mod conn;
pub mod dedup;
mod dispatcher;
mod error;
mod handlers;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub mod inbox;
mod labels;
mod outage;
mod outcome;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod tenancy;
mod text;
mod token;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
mod tx;
mod url;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use dedup::DEFAULT_TABLE;
pub use dedup::{store_from_url, Claim, DedupStore, EventKey};
#[cfg(feature = "memory")]
pub use dedup::{MemoryStore, DEFAULT_MEMORY_CAPACITY};
#[cfg(feature = "postgres")]
pub use dedup::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use dedup::{RedisStore, RedisStoreBuilder, DEFAULT_PREFIX};
#[cfg(feature = "sqlite")]
pub use dedup::{SqliteStore, SqliteStoreBuilder};
pub use dispatcher::{
    Dispatcher, DispatcherBuilder, DEFAULT_HANDLER_TIMEOUT, DEFAULT_LEASE, DEFAULT_RETENTION,
};
pub use error::{
    BoxFuture, ConfigError, HandlerError, StoreError, DEFAULT_STORE_TIMEOUT, MAX_DURATION,
};
pub use outage::OUTAGE_REPORT_EVERY;
pub use outcome::{Outcome, RETRY_AFTER_SECS};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::MAX_TABLE_NAME_LEN;
/// The SQL toolkit the SQL backends run on, re-exported: pools for
/// `from_pool` (PostgreSQL, SQLite) and the connection a transactional
/// handler reaches with `Tx::pg` or `Tx::sqlite` are its types, so an
/// application uses the same version as the inbox.
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use sqlx;
pub use text::{printable, printable_json};
pub use token::ClaimToken;
pub use url::redact_url;
