//! The Redis store: `SET NX PX` claims with an owner token.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{Claim, DedupStore, EventKey};
use crate::conn::redis::{err, event_ref};
use crate::error::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::token::ClaimToken;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "plugipay:webhook:event";

const DONE: &str = "done";

/// A store in Redis, for receivers running as several replicas: a claim is
/// `SET key claimed:<token> NX PX lease`; only the token's holder can
/// complete (`SET key done PX retention`) or release (`DEL`) it, checked
/// atomically by a Lua script. Keys expire by themselves. Reconnects
/// automatically.
///
/// Every call — connecting included — is bounded by a timeout (default
/// [`DEFAULT_STORE_TIMEOUT`], 5 s; [`RedisStoreBuilder::timeout`]): a stopped
/// server, or one that accepts connections and never answers, makes
/// deliveries 503 within the timeout instead of hanging them.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    complete: Script,
    release: Script,
    extend: Script,
}

/// Options of a [`RedisStore`]: `RedisStore::builder(url).prefix(…).timeout(…).connect()`.
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// The key prefix (default `plugipay:webhook:event`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// How long one store call may take, connecting included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let conn = crate::conn::redis::connect(&self.url, self.timeout, "redis store").await?;
        Ok(RedisStore {
            conn,
            prefix: self.prefix,
            timeout: self.timeout,
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
            extend: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                   return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
                 else return 0 end",
            ),
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`), key prefix
    /// `plugipay:webhook:event`, 5 s timeout.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).connect().await
    }

    /// Connects with a key prefix of your choosing.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        RedisStore::builder(url).prefix(prefix).connect().await
    }

    /// Options: key prefix and timeout.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
        }
    }

    /// Runs a script owned by the claim's token; `Ok(true)` when it acted.
    async fn owned(
        &self,
        what: &'static str,
        script: &Script,
        key: &EventKey,
        token: &ClaimToken,
        ms: Option<u64>,
    ) -> Result<bool, StoreError> {
        bounded(self.timeout, &format!("redis store {what}"), async {
            let mut conn = self.conn.clone();
            let mut call = script.key(self.key(key));
            call.arg(claimed(token));
            if let Some(ms) = ms {
                call.arg(ms);
            }
            let n: i64 = call
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err(&format!("redis store {what}"), &e))?;
            Ok(n == 1)
        })
        .await
    }

    /// `prefix:<event ref>` (see [`event_ref`]).
    fn key(&self, key: &EventKey) -> String {
        format!(
            "{}:{}",
            self.prefix,
            event_ref(&key.tenant, &key.id, &key.event_type)
        )
    }
}

fn claimed(token: &ClaimToken) -> String {
    format!("claimed:{}", token.as_str())
}

/// Milliseconds for `PX`/`PEXPIRE`: at least 1, at most 100 years.
fn px(d: Duration) -> u64 {
    u64::try_from(millis(d)).expect("non-negative").max(1)
}

impl DedupStore for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(bounded(self.timeout, "redis store claim", async move {
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
                    .map_err(|e| err("redis store claim", &e))?;
                if set.is_some() {
                    return Ok(Claim::Acquired(token));
                }
                let current: Option<String> = redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| err("redis store claim", &e))?;
                match current.as_deref() {
                    Some(DONE) => return Ok(Claim::Done),
                    Some(_) => return Ok(Claim::InProgress),
                    None => continue,
                }
            }
            Ok(Claim::InProgress)
        }))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned("complete", &self.complete, key, token, Some(px(retention))))
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned("release", &self.release, key, token, None))
    }

    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned("extend", &self.extend, key, token, Some(px(lease))))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(bounded(self.timeout, "redis PING", async {
            let mut conn = self.conn.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| err("redis store health check", &e))
        }))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
