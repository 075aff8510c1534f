//! The Redis inbox: each event is a hash, and the open ones (pending and
//! running) sit in one sorted set by when they are due — a pending event's
//! next attempt, a running event's lease expiry — so a claim takes the
//! earliest due event whatever its state, exactly as the SQL backends do.
//! Not transactional: a handler's own writes cannot commit with "done".
//!
//! Layout (every key shares the hash tag `{prefix}`, so one Redis Cluster
//! slot holds the whole inbox and every script touches one slot):
//!
//! | key                       | what                                              |
//! |---------------------------|---------------------------------------------------|
//! | `{p}:ev:<ref>`            | hash: the stored event and its state              |
//! | `{p}:due`                 | zset of open events by when they are due          |
//! | `{p}:state:<state>`       | zset per state, by when the event entered it      |
//! | `{p}:recv:<state>`        | zset per state, by `received_at` (listings)       |
//! | `{p}:all`                 | zset of every event by `received_at`              |
//! | `{p}:ids:<len>:<id>`      | set: the refs stored under one id                 |
//! | `{p}:wake`                | short stream: a new due event (wakes listeners)   |
//! | `{p}:schema`              | the layout's version                              |
//!
//! `<ref>` names one `(tenant, id, type)` (see `conn::redis::event_ref`).
//! Every change of state is one Lua script (`inbox/lua/*.lua`), on the
//! server's clock, so replicas with skewed clocks agree.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

mod calls;
mod listing;
mod session;

use crate::conn::redis::err;
use crate::error::{bounded, millis, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::{
    owned_from, rule, Transition, CUT_SHORT, EXHAUSTED_PENDING, EXHAUSTED_RUNNING,
};
use crate::inbox::types::Record;

/// Default key prefix (hash tag) of a Redis inbox.
pub const DEFAULT_INBOX_PREFIX: &str = "plugipay:webhook:inbox";

/// The layout's version (the first release's had none; 3 added the
/// per-state listing indexes).
const LAYOUT_VERSION: i64 = 3;

const PRELUDE: &str = include_str!("../../lua/prelude.lua");

/// `local FROM = {…}`: each transition's `from` states, out of the state
/// machine's table, for the scripts; and `EXHAUSTED`, the error a claim
/// records per state when it finds the attempts exhausted.
fn from_table() -> String {
    let set = |on: Transition| {
        let states: Vec<String> = rule(on)
            .from
            .iter()
            .map(|s| format!("{} = true", s.as_str()))
            .collect();
        format!("{{{}}}", states.join(", "))
    };
    format!(
        "local FROM = {{claim = {}, redeliver = {}, revive = {}, rerun = {}, prune = {}, owned = '{}'}}\n\
         local EXHAUSTED = {{running = '{EXHAUSTED_RUNNING}', pending = '{EXHAUSTED_PENDING}'}}\n\
         local CUT_SHORT = '{CUT_SHORT}'\n",
        set(Transition::Claim),
        set(Transition::Redeliver),
        set(Transition::Revive),
        set(Transition::Rerun),
        set(Transition::Prune),
        owned_from().as_str()
    )
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}{PRELUDE}{body}", from_table()))
}

struct Scripts {
    insert: Script,
    claim: Script,
    transition: Script,
    retry: Script,
    prune: Script,
    stats: Script,
    migrate: Script,
    migrate3: Script,
}

/// An inbox in Redis, for receivers on several machines that already run
/// Redis. **Not transactional**: a handler's writes elsewhere cannot commit
/// together with "done", so a crash between them runs the handler again —
/// make such handlers idempotent, or use the PostgreSQL inbox.
/// [`on_tx`](crate::inbox::InboxBuilder::on_tx) handlers are refused at
/// [`build`](crate::inbox::InboxBuilder::build).
///
/// Every call is bounded by the store timeout (default 5 s). A `202` is as
/// durable as Redis's persistence is configured (`docs/inbox.md`).
#[derive(Clone)]
pub struct RedisInbox {
    inner: Arc<Shared>,
}

struct Shared {
    url: String,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    wake: Arc<tokio::sync::Notify>,
    listening: AtomicBool,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisInbox")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Options of a [`RedisInbox`]: `RedisInbox::builder(url).prefix(…).timeout(…).connect()`.
#[must_use]
pub struct RedisInboxBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisInboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInboxBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisInboxBuilder {
    /// The key prefix (default `plugipay:webhook:inbox`; no braces).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// How long one store call may take, connecting included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects, bringing an earlier release's layout forward.
    pub async fn connect(self) -> Result<RedisInbox, StoreError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                "a redis inbox prefix must be non-empty and without braces",
            ));
        }
        let conn = crate::conn::redis::connect(&self.url, self.timeout, "redis inbox").await?;
        let inbox = RedisInbox {
            inner: Arc::new(Shared {
                url: self.url,
                conn,
                prefix: format!("{{{}}}", self.prefix),
                timeout: self.timeout,
                wake: Arc::new(tokio::sync::Notify::new()),
                listening: AtomicBool::new(false),
                scripts: Scripts {
                    insert: script(include_str!("../../lua/insert.lua")),
                    claim: script(include_str!("../../lua/claim.lua")),
                    transition: script(include_str!("../../lua/transition.lua")),
                    retry: script(include_str!("../../lua/retry.lua")),
                    prune: script(include_str!("../../lua/prune.lua")),
                    stats: script(include_str!("../../lua/stats.lua")),
                    migrate: script(include_str!("../../lua/migrate.lua")),
                    migrate3: script(include_str!("../../lua/migrate3.lua")),
                },
            }),
        };
        inbox.ensure_layout().await?;
        Ok(inbox)
    }
}

impl RedisInbox {
    /// Connects to `url` — `redis://host:port/db`, or `rediss://` for TLS
    /// (rustls, the system's trust store, or the file `SSL_CERT_FILE`
    /// names instead), with `user:password@` for ACL credentials
    /// (`default:password@` for `requirepass`) — key prefix
    /// `plugipay:webhook:inbox`, 5 s timeout.
    pub async fn connect(url: &str) -> Result<RedisInbox, StoreError> {
        RedisInbox::builder(url).connect().await
    }

    /// Connects with a key prefix and a store timeout of your choosing.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisInbox, StoreError> {
        RedisInbox::builder(url)
            .prefix(prefix)
            .timeout(timeout)
            .connect()
            .await
    }

    /// Options: prefix and timeout.
    pub fn builder(url: &str) -> RedisInboxBuilder {
        RedisInboxBuilder {
            url: url.to_owned(),
            prefix: DEFAULT_INBOX_PREFIX.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.inner.prefix)
    }

    /// The set of one id's refs.
    fn ids_key(&self, id: &str) -> String {
        self.key(&format!("ids:{}:{id}", id.len()))
    }

    async fn cmd<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        bounded(self.inner.timeout, &format!("redis inbox {what}"), async {
            let mut conn = self.inner.conn.clone();
            cmd.query_async(&mut conn)
                .await
                .map_err(|e| err(&format!("redis inbox {what}"), &e))
        })
        .await
    }

    /// Records the layout's version on a fresh inbox; migrates an earlier
    /// release's (the first one's to 2, then 2 to 3).
    async fn ensure_layout(&self) -> Result<(), StoreError> {
        let version: Option<i64> = self
            .cmd("schema", redis::cmd("GET").arg(self.key("schema")))
            .await?;
        match version {
            Some(LAYOUT_VERSION) => return Ok(()),
            Some(v) if v > LAYOUT_VERSION => return Err(StoreError::new(format!(
                "redis inbox {}: layout version {v}, newer than this release's {LAYOUT_VERSION}: upgrade plugipay-webhook-dispatch",
                self.inner.prefix
            ))),
            Some(_) => {}
            None => {
                let old: i64 = self
                    .cmd("schema", redis::cmd("EXISTS").arg(self.key("all")).arg(self.key("stream")))
                    .await?;
                if old == 0 {
                    let _: () = self
                        .cmd("schema", redis::cmd("SET").arg(self.key("schema")).arg(LAYOUT_VERSION))
                        .await?;
                    return Ok(());
                }
                let lease = millis(crate::inbox::types::DEFAULT_INBOX_LEASE).to_string();
                while self
                    .run::<i64>("migrate", &self.inner.scripts.migrate, &[b"200", lease.as_bytes(), b"2"])
                    .await?
                    > 0
                {}
            }
        }
        let version = LAYOUT_VERSION.to_string();
        while self
            .run::<i64>(
                "migrate",
                &self.inner.scripts.migrate3,
                &[b"500", version.as_bytes()],
            )
            .await?
            > 0
        {}
        Ok(())
    }

    /// Runs one script with the prefix as its first argument.
    async fn pipe<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        bounded(self.inner.timeout, &format!("redis inbox {what}"), async {
            let mut conn = self.inner.conn.clone();
            pipe.query_async(&mut conn)
                .await
                .map_err(|e| err(&format!("redis inbox {what}"), &e))
        })
        .await
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        bounded(self.inner.timeout, &format!("redis inbox {what}"), async {
            let mut conn = self.inner.conn.clone();
            let mut call = script.arg(self.inner.prefix.as_str());
            for a in args {
                call.arg(*a);
            }
            call.invoke_async::<T>(&mut conn)
                .await
                .map_err(|e| err(&format!("redis inbox {what}"), &e))
        })
        .await
    }

    /// Starts (once) the task that reads the wake stream on a connection of
    /// its own and wakes one worker per new entry.
    fn listen(&self) {
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (url, stream, wake) = (
            self.inner.url.clone(),
            self.key("wake"),
            self.inner.wake.clone(),
        );
        tokio::spawn(async move {
            loop {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(Some(Duration::from_secs(5)));
                let conn = match redis::Client::open(url.as_str()) {
                    Ok(client) => client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .ok(),
                    Err(_) => return,
                };
                if let Some(mut conn) = conn {
                    let mut last = "$".to_owned();
                    loop {
                        let read: Result<redis::Value, _> = redis::cmd("XREAD")
                            .arg("BLOCK")
                            .arg(1000)
                            .arg("COUNT")
                            .arg(64)
                            .arg("STREAMS")
                            .arg(&stream)
                            .arg(&last)
                            .query_async(&mut conn)
                            .await;
                        let Ok(read) = read else { break };
                        for id in entry_ids(&read) {
                            wake.notify_one();
                            last = id;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn records(&self, refs: &[String]) -> Result<Vec<Record>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        bounded(self.inner.timeout, "redis inbox read", async {
            let mut conn = self.inner.conn.clone();
            let mut pipe = redis::pipe();
            for r in refs {
                pipe.cmd("HGETALL").arg(self.key(&format!("ev:{r}")));
            }
            let rows: Vec<HashMap<String, Vec<u8>>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| err("redis inbox read", &e))?;
            Ok(rows.iter().filter_map(listing::record_from).collect())
        })
        .await
    }
}

/// The ids of the entries of an `XREAD` reply.
fn entry_ids(v: &redis::Value) -> Vec<String> {
    use redis::Value;
    let mut ids = Vec::new();
    let streams = match v {
        Value::Array(s) => s.clone(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
            .collect(),
        _ => return ids,
    };
    for s in streams {
        let Value::Array(pair) = s else { continue };
        let Some(Value::Array(entries)) = pair.get(1) else {
            continue;
        };
        for e in entries {
            if let Value::Array(e) = e {
                if let Some(Value::BulkString(id)) = e.first() {
                    ids.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    ids
}

fn optional(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("+{v}"))
}

#[cfg(test)]
mod marks {
    use crate::inbox::progress::RERUN_NOT_DONE;

    /// A revival and a redelivery of a dead event mark its handlers not
    /// done to run afresh, with the mark the worker reads.
    #[test]
    fn revivals_set_the_workers_mark() {
        let mark = format!("'rerun', '{RERUN_NOT_DONE}'");
        assert!(include_str!("../../lua/retry.lua").contains(&mark));
        assert!(include_str!("../../lua/insert.lua").contains(&mark));
    }
}
