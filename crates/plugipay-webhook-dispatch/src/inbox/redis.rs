//! The Redis Streams inbox: due events are entries of one stream read by a
//! consumer group; a worker's lease is its entry's idle time in the group's
//! pending list, and `XAUTOCLAIM` hands lapsed entries to another worker.
//! Not transactional: a handler's own writes cannot commit with "done".
//!
//! Layout (every key shares the hash tag `{prefix}`, so one Redis Cluster
//! slot holds the whole inbox and every script touches one slot):
//!
//! | key                      | what                                              |
//! |--------------------------|---------------------------------------------------|
//! | `{p}:ev:<ref>`           | hash: the stored event and its state              |
//! | `{p}:stream`             | stream of due events (`ref` field), group `workers` |
//! | `{p}:delayed`            | zset: pending events waiting for their backoff    |
//! | `{p}:state:<state>`      | zset per state (pending: by next attempt time)    |
//! | `{p}:all`                | zset of every event by `received_at`              |
//! | `{p}:id:<len>:<id>`      | set: the types stored under one id                |
//!
//! `<ref>` is `<len(id)>:<id>:<type>`. Every change of state is one Lua script
//! (atomic), with the server's clock (`TIME`), so replicas with skewed clocks
//! agree. Exactly one live stream entry carries an event (its hash names it):
//! an entry that does not match is stale and dropped when read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plugipay_webhook::WebhookEvent;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{
    Backend, Inserted, Job, NewEvent, Record, RetryFilter, Session, State, Stats, TxEnd, TxHandler,
};
use crate::store::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};

/// Default key prefix (hash tag) of a Redis inbox.
pub const DEFAULT_INBOX_PREFIX: &str = "plugipay:webhook:inbox";

const GROUP: &str = "workers";

/// Lua prelude: the server's time in ms, and key helpers.
const PRELUDE: &str = r"
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stream = p .. ':stream'
local function ev(ref) return p .. ':ev:' .. ref end
local function st(s) return p .. ':state:' .. s end
local function enqueue(ref)
  local entry = redis.call('XADD', stream, '*', 'ref', ref)
  redis.call('HSET', ev(ref), 'entry', entry)
  return entry
end
";

/// ARGV: prefix, ref, id-ref, id, type, body, signature, matched_secret,
/// account (`-` none, `+value`), occurred (same), state.
/// Returns 0 new, 1 duplicate, 2 revived.
const INSERT: &str = r"
local ref = ARGV[2]
local h = ev(ref)
local state = redis.call('HGET', h, 'state')
if state then
  if state ~= 'dead' then return 1 end
  redis.call('ZREM', st('dead'), ref)
  redis.call('HSET', h, 'state', 'pending', 'attempts', 0, 'next_attempt_at', now,
    'updated_at', now, 'owner', '')
  redis.call('HDEL', h, 'last_error')
  redis.call('ZADD', st('pending'), now, ref)
  enqueue(ref)
  return 2
end
redis.call('HSET', h, 'id', ARGV[4], 'type', ARGV[5], 'body', ARGV[6], 'signature', ARGV[7],
  'matched_secret', ARGV[8], 'received_at', now, 'state', ARGV[11], 'attempts', 0,
  'next_attempt_at', now, 'updated_at', now, 'owner', '', 'entry', '')
if string.sub(ARGV[9], 1, 1) == '+' then redis.call('HSET', h, 'account_id', string.sub(ARGV[9], 2)) end
if string.sub(ARGV[10], 1, 1) == '+' then redis.call('HSET', h, 'occurred_at', string.sub(ARGV[10], 2)) end
redis.call('ZADD', p .. ':all', now, ref)
redis.call('SADD', p .. ':id:' .. ARGV[3], ARGV[5])
redis.call('ZADD', st(ARGV[11]), now, ref)
if ARGV[11] == 'pending' then enqueue(ref) end
return 0
";

/// ARGV: prefix, consumer (the worker's owner token), lease ms.
/// Returns false, or {id, type, body, matched_secret, attempts}.
const CLAIM: &str = r"
local me = ARGV[2]
local lease = tonumber(ARGV[3])
-- Pending events whose backoff is over join the stream.
local due = redis.call('ZRANGEBYSCORE', p .. ':delayed', '-inf', now, 'LIMIT', 0, 64)
for _, ref in ipairs(due) do
  redis.call('ZREM', p .. ':delayed', ref)
  if redis.call('HGET', ev(ref), 'state') == 'pending' then enqueue(ref) end
end
for _ = 1, 32 do
  local entry, fields
  local r = redis.call('XREADGROUP', 'GROUP', 'workers', me, 'COUNT', 1, 'STREAMS', stream, '>')
  if r and r[1] and r[1][2][1] then
    entry, fields = r[1][2][1][1], r[1][2][1][2]
  else
    -- An entry idle in another worker's pending list for a whole lease: that
    -- worker died or stalled; its lease lapsed.
    local a = redis.call('XAUTOCLAIM', stream, 'workers', me, lease, '0-0', 'COUNT', 1)
    if a[2][1] then entry, fields = a[2][1][1], a[2][1][2] end
  end
  if not entry then return false end
  local ref = fields and fields[2]
  local h = ref and ev(ref)
  local cur = h and redis.call('HMGET', h, 'state', 'entry') or {}
  if (cur[1] == 'pending' or cur[1] == 'running') and cur[2] == entry then
    local attempts = redis.call('HINCRBY', h, 'attempts', 1)
    redis.call('HSET', h, 'state', 'running', 'owner', me, 'updated_at', now)
    redis.call('ZREM', st('pending'), ref)
    redis.call('ZADD', st('running'), now, ref)
    local v = redis.call('HMGET', h, 'id', 'type', 'body', 'matched_secret')
    return {v[1], v[2], v[3], v[4], attempts}
  end
  -- Stale (the event moved on, or was pruned): drop it.
  redis.call('XACK', stream, 'workers', entry)
  redis.call('XDEL', stream, entry)
end
return false
";

/// ARGV: prefix, ref, owner, to (`done`, `skipped`, `dead`, `pending`,
/// `extend`), error, retry ms. Returns 1 when the owner still held it.
const FINISH: &str = r"
local ref, me, to = ARGV[2], ARGV[3], ARGV[4]
local h = ev(ref)
local cur = redis.call('HMGET', h, 'state', 'owner', 'entry')
if cur[1] ~= 'running' or cur[2] ~= me then return 0 end
if to == 'extend' then
  -- Claiming the entry again resets its idle time: the lease starts over.
  redis.call('XCLAIM', stream, 'workers', me, 0, cur[3], 'JUSTID')
  return 1
end
redis.call('XACK', stream, 'workers', cur[3])
redis.call('XDEL', stream, cur[3])
redis.call('ZREM', st('running'), ref)
redis.call('HSET', h, 'state', to, 'owner', '', 'entry', '', 'updated_at', now)
if to == 'pending' then
  local next = now + tonumber(ARGV[6])
  redis.call('HSET', h, 'next_attempt_at', next, 'last_error', ARGV[5])
  redis.call('ZADD', st('pending'), next, ref)
  redis.call('ZADD', p .. ':delayed', next, ref)
elseif to == 'dead' then
  redis.call('HSET', h, 'last_error', ARGV[5])
  redis.call('ZADD', st('dead'), now, ref)
else
  redis.call('HDEL', h, 'last_error')
  redis.call('ZADD', st(to), now, ref)
end
return 1
";

/// ARGV: prefix, id-ref (or ''), dead (0/1), skipped (0/1), type (or '').
/// Returns how many moved back to pending.
const RETRY: &str = r"
local idref, dead, skipped, only = ARGV[2], ARGV[3] == '1', ARGV[4] == '1', ARGV[5]
local refs = {}
if idref ~= '' then
  for _, ty in ipairs(redis.call('SMEMBERS', p .. ':id:' .. idref)) do
    table.insert(refs, idref .. ':' .. ty)
  end
else
  if dead then for _, r in ipairs(redis.call('ZRANGE', st('dead'), 0, -1)) do table.insert(refs, r) end end
  if skipped then for _, r in ipairs(redis.call('ZRANGE', st('skipped'), 0, -1)) do table.insert(refs, r) end end
end
local n = 0
for _, ref in ipairs(refs) do
  local h = ev(ref)
  local cur = redis.call('HMGET', h, 'state', 'type')
  if (cur[1] == 'dead' or cur[1] == 'skipped') and (only == '' or cur[2] == only) then
    redis.call('ZREM', st(cur[1]), ref)
    redis.call('HSET', h, 'state', 'pending', 'attempts', 0, 'next_attempt_at', now,
      'updated_at', now, 'owner', '')
    redis.call('HDEL', h, 'last_error')
    redis.call('ZADD', st('pending'), now, ref)
    enqueue(ref)
    n = n + 1
  end
end
return n
";

/// ARGV: prefix, older-than ms, batch. Deletes up to `batch` done or skipped
/// events; returns how many.
const PRUNE: &str = r"
local cutoff = now - tonumber(ARGV[2])
local n = 0
for _, s in ipairs({'done', 'skipped'}) do
  local refs = redis.call('ZRANGEBYSCORE', st(s), '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
  for _, ref in ipairs(refs) do
    local cur = redis.call('HMGET', ev(ref), 'id', 'type')
    redis.call('DEL', ev(ref))
    redis.call('ZREM', st(s), ref)
    redis.call('ZREM', p .. ':all', ref)
    if cur[1] then
      local ids = p .. ':id:' .. string.len(cur[1]) .. ':' .. cur[1]
      redis.call('SREM', ids, cur[2])
    end
    n = n + 1
  end
end
return n
";

/// ARGV: prefix. Returns the five counts (pending, running, done, dead,
/// skipped) and the oldest due event's age in ms.
const STATS: &str = r"
local out = {}
for _, s in ipairs({'pending', 'running', 'done', 'dead', 'skipped'}) do
  table.insert(out, redis.call('ZCARD', st(s)))
end
local first = redis.call('ZRANGE', st('pending'), 0, 0, 'WITHSCORES')
local age = 0
if first[2] and tonumber(first[2]) <= now then age = now - tonumber(first[2]) end
table.insert(out, age)
return out
";

/// An inbox in Redis (Streams with one consumer group), for receivers on
/// several machines that already run Redis. **Not transactional**: a
/// handler's writes elsewhere cannot commit together with "done", so a crash
/// between them runs the handler again — make such handlers idempotent, or
/// use the PostgreSQL inbox. [`on_tx`](super::InboxBuilder::on_tx) handlers
/// are refused at [`build`](super::InboxBuilder::build).
///
/// Every call is bounded by the store timeout (default 5 s). Every worker of
/// one inbox should use the same lease: a lease is the idle time of the
/// worker's stream entry, renewed every third of it.
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

struct Scripts {
    insert: Script,
    claim: Script,
    finish: Script,
    retry: Script,
    prune: Script,
    stats: Script,
}

impl std::fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisInbox")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn err(what: &str, e: &redis::RedisError) -> StoreError {
    StoreError::new(format!("redis inbox {what}: {e}"))
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// `<len(id)>:<id>` — the length keeps ids containing `:` unambiguous.
fn id_ref(id: &str) -> String {
    format!("{}:{id}", id.len())
}

fn event_ref(id: &str, event_type: &str) -> String {
    format!("{}:{event_type}", id_ref(id))
}

fn optional(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("+{v}"))
}

impl RedisInbox {
    /// Connects to `url` (`redis://host:port/db`), key prefix
    /// `plugipay:webhook:inbox`, 5 s timeout.
    pub async fn connect(url: &str) -> Result<RedisInbox, StoreError> {
        RedisInbox::connect_with(url, DEFAULT_INBOX_PREFIX, DEFAULT_STORE_TIMEOUT).await
    }

    /// Connects with a key prefix and a store timeout of your choosing.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisInbox, StoreError> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                "a redis inbox prefix must be non-empty and without braces",
            ));
        }
        let client = redis::Client::open(url).map_err(|e| err("url", &e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = bounded(timeout, "redis inbox connect", async {
            ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| err("connect", &e))
        })
        .await?;
        let inbox = RedisInbox {
            inner: Arc::new(Shared {
                url: url.to_owned(),
                conn,
                prefix: format!("{{{prefix}}}"),
                timeout,
                wake: Arc::new(tokio::sync::Notify::new()),
                listening: AtomicBool::new(false),
                scripts: Scripts {
                    insert: script(INSERT),
                    claim: script(CLAIM),
                    finish: script(FINISH),
                    retry: script(RETRY),
                    prune: script(PRUNE),
                    stats: script(STATS),
                },
            }),
        };
        inbox.create_group().await?;
        Ok(inbox)
    }

    fn stream(&self) -> String {
        format!("{}:stream", self.inner.prefix)
    }

    /// Creates the stream and its consumer group (reading from the start),
    /// if they are not there.
    async fn create_group(&self) -> Result<(), StoreError> {
        bounded(self.inner.timeout, "redis inbox create", async {
            let mut conn = self.inner.conn.clone();
            let created: Result<(), _> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream())
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Ok(()) => Ok(()),
                Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
                Err(e) => Err(err("create group", &e)),
            }
        })
        .await
    }

    /// Runs one script with the prefix as its first argument.
    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let result = bounded(self.inner.timeout, &format!("redis inbox {what}"), async {
            let mut conn = self.inner.conn.clone();
            let mut call = script.arg(self.inner.prefix.as_str());
            for a in args {
                call.arg(*a);
            }
            Ok(call.invoke_async::<T>(&mut conn).await)
        })
        .await?;
        match result {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some("NOGROUP") => {
                // The stream was deleted under us (FLUSHDB, say): recreate it.
                self.create_group().await?;
                Err(err(what, &e))
            }
            Err(e) => Err(err(what, &e)),
        }
    }

    /// Starts (once) the task that reads new stream entries on a connection
    /// of its own and wakes one worker per entry.
    fn listen(&self) {
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (url, stream, wake) = (
            self.inner.url.clone(),
            self.stream(),
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

    /// Removes consumers of dead workers: no pending entries and idle for an
    /// hour (a consumer is named after a worker's random owner token).
    async fn forget_idle_consumers(&self) {
        let mut conn = self.inner.conn.clone();
        let info: Result<Vec<HashMap<String, redis::Value>>, _> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(self.stream())
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        let Ok(info) = info else { return };
        for c in info {
            let int = |k: &str| match c.get(k) {
                Some(redis::Value::Int(i)) => *i,
                _ => -1,
            };
            let name = match c.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => continue,
            };
            if int("pending") == 0 && int("idle") > 3_600_000 {
                let _: Result<i64, _> = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(self.stream())
                    .arg(GROUP)
                    .arg(name)
                    .query_async(&mut conn)
                    .await;
            }
        }
    }

    async fn records(&self, refs: &[String]) -> Result<Vec<Record>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        bounded(self.inner.timeout, "redis inbox read", async {
            let mut conn = self.inner.conn.clone();
            let mut pipe = redis::pipe();
            for r in refs {
                pipe.cmd("HGETALL")
                    .arg(format!("{}:ev:{r}", self.inner.prefix));
            }
            let rows: Vec<HashMap<String, Vec<u8>>> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| err("read", &e))?;
            Ok(rows.iter().filter_map(record_from).collect())
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

fn record_from(h: &HashMap<String, Vec<u8>>) -> Option<Record> {
    let text = |k: &str| h.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
    let int = |k: &str| text(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    Some(Record {
        id: text("id")?,
        event_type: text("type")?,
        state: State::from_name(&text("state")?).unwrap_or(State::Pending),
        attempts: u32::try_from(int("attempts")).unwrap_or(0),
        received_at_ms: int("received_at"),
        next_attempt_at_ms: int("next_attempt_at"),
        last_error: text("last_error"),
        account_id: text("account_id"),
        body: Bytes::from(h.get("body").cloned().unwrap_or_default()),
        signature: text("signature").unwrap_or_default(),
    })
}

impl Backend for RedisInbox {
    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        Box::pin(async move {
            let (r, idr) = (event_ref(&e.id, &e.event_type), id_ref(&e.id));
            let (secret, account, occurred) = (
                e.matched_secret.to_string(),
                optional(e.account_id.as_deref()),
                optional(e.occurred_at.as_deref()),
            );
            let n: i64 = self
                .run(
                    "insert",
                    &self.inner.scripts.insert,
                    &[
                        r.as_bytes(),
                        idr.as_bytes(),
                        e.id.as_bytes(),
                        e.event_type.as_bytes(),
                        &e.body,
                        e.signature.as_bytes(),
                        secret.as_bytes(),
                        account.as_bytes(),
                        occurred.as_bytes(),
                        e.state.as_str().as_bytes(),
                    ],
                )
                .await?;
            Ok(match n {
                0 => Inserted::New,
                2 => Inserted::Revived,
                _ => Inserted::Duplicate,
            })
        })
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            self.create_group().await?;
            let _ = bounded(self.inner.timeout, "redis inbox consumers", async {
                self.forget_idle_consumers().await;
                Ok(())
            })
            .await;
            Ok(Box::new(RedisSession {
                inbox: self.clone(),
            }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        self.listen();
        super::notified_within(&self.inner.wake, max)
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let v: Vec<i64> = self.run("stats", &self.inner.scripts.stats, &[]).await?;
            let mut stats = Stats::default();
            for (state, n) in [
                State::Pending,
                State::Running,
                State::Done,
                State::Dead,
                State::Skipped,
            ]
            .into_iter()
            .zip(&v)
            {
                stats.counts.insert(state, u64::try_from(*n).unwrap_or(0));
            }
            stats.oldest_due_ms = v.get(5).copied().unwrap_or(0);
            Ok(stats)
        })
    }

    fn list<'a>(
        &'a self,
        state: Option<State>,
        event_type: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            // Oldest first: walk `all` by received_at, a page at a time.
            let all = format!("{}:all", self.inner.prefix);
            let limit = limit as usize;
            let mut out = Vec::new();
            let mut start = 0isize;
            const PAGE: isize = 500;
            while out.len() < limit {
                let refs: Vec<String> = bounded(self.inner.timeout, "redis inbox list", async {
                    let mut conn = self.inner.conn.clone();
                    redis::cmd("ZRANGE")
                        .arg(&all)
                        .arg(start)
                        .arg(start + PAGE - 1)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| err("list", &e))
                })
                .await?;
                if refs.is_empty() {
                    break;
                }
                start += PAGE;
                let page = self.records(&refs).await?;
                out.extend(page.into_iter().filter(|r| {
                    state.is_none_or(|s| r.state == s)
                        && event_type.is_none_or(|t| r.event_type == t)
                }));
            }
            out.truncate(limit);
            Ok(out)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let key = format!("{}:id:{}", self.inner.prefix, id_ref(id));
            let mut types: Vec<String> = bounded(self.inner.timeout, "redis inbox get", async {
                let mut conn = self.inner.conn.clone();
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| err("get", &e))
            })
            .await?;
            types.sort();
            let refs: Vec<String> = types.iter().map(|t| event_ref(id, t)).collect();
            self.records(&refs).await
        })
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let idr = f.id.as_deref().map(id_ref).unwrap_or_default();
            let flag = |b: bool| if b { "1" } else { "0" };
            let n: i64 = self
                .run(
                    "retry",
                    &self.inner.scripts.retry,
                    &[
                        idr.as_bytes(),
                        flag(f.dead).as_bytes(),
                        flag(f.skipped).as_bytes(),
                        f.event_type.as_deref().unwrap_or("").as_bytes(),
                    ],
                )
                .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn prune(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        let ms = millis(older_than).to_string();
        Box::pin(async move {
            const BATCH: i64 = 1000;
            let mut total = 0u64;
            loop {
                let n: i64 = self
                    .run(
                        "prune",
                        &self.inner.scripts.prune,
                        &[ms.as_bytes(), BATCH.to_string().as_bytes()],
                    )
                    .await?;
                total += u64::try_from(n).unwrap_or(0);
                if n < BATCH {
                    return Ok(total);
                }
            }
        })
    }

    fn execute<'a>(&'a self, _sql: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async {
            Err(StoreError::new(
                "the redis inbox runs no SQL: transactional handlers need the PostgreSQL or SQLite inbox",
            ))
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn transactional(&self) -> bool {
        false
    }
}

struct RedisSession {
    inbox: RedisInbox,
}

impl RedisSession {
    async fn finish(
        &self,
        job: &Job,
        owner: &str,
        to: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<bool, StoreError> {
        let r = event_ref(&job.id, &job.event_type);
        let ms = millis(retry_in).to_string();
        let n: i64 = self
            .inbox
            .run(
                to,
                &self.inbox.inner.scripts.finish,
                &[
                    r.as_bytes(),
                    owner.as_bytes(),
                    to.as_bytes(),
                    error.as_bytes(),
                    ms.as_bytes(),
                ],
            )
            .await?;
        Ok(n == 1)
    }
}

impl Session for RedisSession {
    fn claim<'a>(
        &'a mut self,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>> {
        Box::pin(async move {
            let ms = millis(lease).max(1).to_string();
            let v: Option<(String, String, Vec<u8>, String, i64)> = self
                .inbox
                .run(
                    "claim",
                    &self.inbox.inner.scripts.claim,
                    &[owner.as_bytes(), ms.as_bytes()],
                )
                .await?;
            Ok(v.map(|(id, event_type, body, secret, attempts)| Job {
                id,
                event_type,
                body: Bytes::from(body),
                matched_secret: secret.parse().unwrap_or(0),
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            }))
        })
    }

    fn complete<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.finish(job, owner, "done", "", Duration::ZERO))
    }

    fn fail<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        error: &'a str,
        retry_in: Duration,
        dead: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let to = if dead { "dead" } else { "pending" };
        Box::pin(self.finish(job, owner, to, error, retry_in))
    }

    fn skip<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.finish(job, owner, "skipped", "", Duration::ZERO))
    }

    fn extend<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.finish(job, owner, "extend", "", Duration::ZERO))
    }

    fn transaction<'a>(
        &'a mut self,
        _job: &'a Job,
        _owner: &'a str,
        _handler: &'a TxHandler,
        _event: WebhookEvent,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<TxEnd, StoreError>> {
        // `build` refuses transactional handlers on this backend.
        Box::pin(async {
            Err(StoreError::new(
                "the redis inbox is not transactional: use the PostgreSQL or SQLite inbox",
            ))
        })
    }
}
