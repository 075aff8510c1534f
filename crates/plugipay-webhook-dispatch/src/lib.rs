#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod dispatcher;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub mod inbox;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod url;

pub use dispatcher::{
    ConfigError, Dispatcher, DispatcherBuilder, HandlerError, Outcome, DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_LEASE, DEFAULT_RETENTION, RETRY_AFTER_SECS,
};
#[cfg(feature = "memory")]
pub use memory::{MemoryStore, DEFAULT_MEMORY_CAPACITY};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder, DEFAULT_PREFIX};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{DEFAULT_TABLE, MAX_TABLE_NAME_LEN};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};
pub use store::{
    BoxFuture, Claim, ClaimToken, DedupStore, EventKey, StoreError, DEFAULT_STORE_TIMEOUT,
    MAX_DURATION,
};
pub use url::store_from_url;
