//! The Redis store: `SET NX PX` claims with an owner token.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use crate::store::{BoxFuture, Claim, ClaimToken, DedupStore, EventKey, StoreError};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "plugipay:webhook:event";

const DONE: &str = "done";

/// A store in Redis, for receivers running as several replicas: a claim is
/// `SET key claimed:<token> NX PX lease`; only the token's holder can
/// complete (`SET key done PX retention`) or release (`DEL`) it, checked
/// atomically by a Lua script. Keys expire by themselves. Reconnects
/// automatically.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    complete: Script,
    release: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn err(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError::new(format!("redis {what}: {e}"))
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`), key prefix `plugipay:webhook:event`.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Connects with a key prefix of your choosing.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| err("url", &e))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| err("connect", &e))?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            complete: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2]) return 1 \
                 else return 0 end",
            ),
            release: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   return redis.call('DEL', KEYS[1]) \
                 else return 0 end",
            ),
        })
    }

    /// `prefix:<len(id)>:<id>:<type>` — the length keeps ids containing `:` unambiguous.
    fn key(&self, key: &EventKey) -> String {
        format!(
            "{}:{}:{}:{}",
            self.prefix,
            key.id.len(),
            key.id,
            key.event_type
        )
    }
}

fn claimed(token: &ClaimToken) -> String {
    format!("claimed:{}", token.as_str())
}

fn px(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl DedupStore for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let k = self.key(key);
            // A record may expire between SET and GET: try twice.
            for _ in 0..2 {
                let token = ClaimToken::new();
                let set: Option<String> = redis::cmd("SET")
                    .arg(&k)
                    .arg(claimed(&token))
                    .arg("NX")
                    .arg("PX")
                    .arg(px(lease))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| err("SET NX", &e))?;
                if set.is_some() {
                    return Ok(Claim::Acquired(token));
                }
                let current: Option<String> = redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| err("GET", &e))?;
                match current.as_deref() {
                    Some(DONE) => return Ok(Claim::Done),
                    Some(_) => return Ok(Claim::InProgress),
                    None => continue,
                }
            }
            Ok(Claim::InProgress)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: i64 = self
                .complete
                .key(self.key(key))
                .arg(claimed(token))
                .arg(px(retention))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err("complete", &e))?;
            Ok(n == 1)
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let n: i64 = self
                .release
                .key(self.key(key))
                .arg(claimed(token))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err("release", &e))?;
            Ok(n == 1)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
