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

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::Script;

use super::{Backend, ClaimParams, Claimed, Inserted, Job, NewEvent, Session};
use crate::conn::redis::{err, event_ref};
use crate::error::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::{
    owned_from, rule, Move, State, Transition, CUT_SHORT, EXHAUSTED_PENDING, EXHAUSTED_RUNNING,
};
use crate::inbox::types::{
    Activity, Count, Cursor, FailingRow, ListFilter, Page, PruneFilter, Record, RetryFilter, Stats,
    MAX_EXAMINED,
};

/// Default key prefix (hash tag) of a Redis inbox.
pub const DEFAULT_INBOX_PREFIX: &str = "plugipay:webhook:inbox";

/// The layout's version (the first release's had none; 3 added the
/// per-state listing indexes).
const LAYOUT_VERSION: i64 = 3;

const PRELUDE: &str = include_str!("../lua/prelude.lua");

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
                    insert: script(include_str!("../lua/insert.lua")),
                    claim: script(include_str!("../lua/claim.lua")),
                    transition: script(include_str!("../lua/transition.lua")),
                    retry: script(include_str!("../lua/retry.lua")),
                    prune: script(include_str!("../lua/prune.lua")),
                    stats: script(include_str!("../lua/stats.lua")),
                    migrate: script(include_str!("../lua/migrate.lua")),
                    migrate3: script(include_str!("../lua/migrate3.lua")),
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
            Ok(rows.iter().filter_map(record_from).collect())
        })
        .await
    }
}

impl RedisInbox {
    /// The index a listing walks: its state's by received time (every
    /// event's, `all`, without a state).
    fn listing_key(&self, q: &ListFilter) -> String {
        match q.state {
            Some(s) => self.key(&format!("recv:{}", s.as_str())),
            None => self.key("all"),
        }
    }

    /// `names` of each ref's hash (one pipelined `HMGET` each; a deleted
    /// event's come back `None`).
    async fn fields(
        &self,
        refs: &[String],
        names: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for r in refs {
            pipe.cmd("HMGET")
                .arg(self.key(&format!("ev:{r}")))
                .arg(names);
        }
        let rows: Vec<Vec<Option<Vec<u8>>>> = self.pipe("read", &pipe).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            })
            .collect())
    }

    /// Up to `limit` records matching `q`, in its order, and where the next
    /// page starts: walks the listing's index a page of scores at a time,
    /// reads the listed fields (never the body), filters in the client, and
    /// stops after [`MAX_EXAMINED`] events.
    async fn walk(
        &self,
        q: &ListFilter,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<Cursor>), StoreError> {
        let key = self.listing_key(q);
        let mut range = ScoreRange::of(q);
        if let Some(after) = &q.after {
            range.narrow(q.newest_first, after.received_at_ms, true);
        }
        let (mut out, mut examined) = (Vec::new(), 0usize);
        loop {
            let (low, high) = range.args();
            let mut cmd = redis::cmd(if q.newest_first {
                "ZREVRANGEBYSCORE"
            } else {
                "ZRANGEBYSCORE"
            });
            cmd.arg(&key);
            if q.newest_first {
                cmd.arg(&high).arg(&low);
            } else {
                cmd.arg(&low).arg(&high);
            }
            cmd.arg("WITHSCORES").arg("LIMIT").arg(0).arg(PAGE);
            let mut batch: Vec<(String, f64)> = self.cmd("list", &cmd).await?;
            let last_page = batch.len() < PAGE;
            if let (false, Some(&(_, edge))) = (last_page, batch.last()) {
                // Members sharing a score come back in member order, not
                // the listing's: the page's last score is read whole, and
                // the next page starts past it.
                let edge = edge as i64;
                batch.retain(|(_, s)| *s as i64 != edge);
                let group: Vec<String> = self
                    .cmd(
                        "list",
                        redis::cmd("ZRANGEBYSCORE").arg(&key).arg(edge).arg(edge),
                    )
                    .await?;
                batch.extend(group.into_iter().map(|r| (r, 0.0)));
                range.narrow(q.newest_first, edge, false);
            }
            let refs: Vec<String> = batch.into_iter().map(|(r, _)| r).collect();
            examined += refs.len();
            let mut records: Vec<Record> = self
                .fields(&refs, &LIST_FIELDS)
                .await?
                .iter()
                .filter_map(|v| listed(v))
                .collect();
            records.sort_by(|a, b| {
                let o = a.cursor().cmp(&b.cursor());
                if q.newest_first {
                    o.reverse()
                } else {
                    o
                }
            });
            let last_seen = records.last().map(Record::cursor);
            for r in records {
                if q.matches(&r) {
                    out.push(r);
                    if out.len() >= limit {
                        let next = out.last().map(Record::cursor);
                        return Ok((out, next));
                    }
                }
            }
            if last_page {
                return Ok((out, None));
            }
            if examined >= MAX_EXAMINED {
                if let Some(next) = last_seen {
                    return Ok((out, Some(next)));
                }
            }
        }
    }
}

/// Scores a listing's page is read between (received times).
#[derive(Debug, Clone, Copy, Default)]
struct ScoreRange {
    /// `(at, inclusive)`; `None`: unbounded.
    low: Option<(i64, bool)>,
    high: Option<(i64, bool)>,
}

impl ScoreRange {
    /// The filter's `since` (inclusive) and `until` (exclusive).
    fn of(q: &ListFilter) -> ScoreRange {
        ScoreRange {
            low: q.since_ms.map(|s| (s, true)),
            high: q.until_ms.map(|u| (u, false)),
        }
    }

    /// Moves the walk's leading end (the high one newest first) to `at`,
    /// when that is narrower.
    fn narrow(&mut self, newest_first: bool, at: i64, inclusive: bool) {
        if newest_first {
            let narrower = self
                .high
                .is_none_or(|(h, i)| at < h || (at == h && i && !inclusive));
            if narrower {
                self.high = Some((at, inclusive));
            }
        } else {
            let narrower = self
                .low
                .is_none_or(|(l, i)| at > l || (at == l && i && !inclusive));
            if narrower {
                self.low = Some((at, inclusive));
            }
        }
    }

    /// `ZRANGEBYSCORE`'s `min` and `max`.
    fn args(&self) -> (String, String) {
        let arg = |b: Option<(i64, bool)>, inf: &str| match b {
            None => inf.to_owned(),
            Some((at, true)) => at.to_string(),
            Some((at, false)) => format!("({at}"),
        };
        (arg(self.low, "-inf"), arg(self.high, "+inf"))
    }
}

/// A listing's page of an index, before filtering.
const PAGE: usize = 500;

/// The fields a listing reads of an event's hash: all but its body and
/// signature.
const LIST_FIELDS: [&str; 14] = [
    "tenant",
    "id",
    "type",
    "state",
    "attempts",
    "received_at",
    "due_at",
    "updated_at",
    "last_error",
    "account_id",
    "occurred_at",
    "matched_secret",
    "object_id",
    "handlers",
];

/// A listed record from [`LIST_FIELDS`]' values (`None`: deleted).
fn listed(values: &[Option<String>]) -> Option<Record> {
    let h: HashMap<String, Vec<u8>> = LIST_FIELDS
        .iter()
        .zip(values)
        .filter_map(|(k, v)| Some(((*k).to_owned(), v.clone()?.into_bytes())))
        .collect();
    record_from(&h)
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
        tenant: text("tenant").unwrap_or_default(),
        id: text("id")?,
        event_type: text("type")?,
        state: State::from_name(&text("state")?).unwrap_or(State::Pending),
        attempts: u32::try_from(int("attempts")).unwrap_or(0),
        received_at_ms: int("received_at"),
        due_at_ms: int("due_at"),
        updated_at_ms: int("updated_at"),
        last_error: text("last_error"),
        account_id: text("account_id"),
        occurred_at: text("occurred_at"),
        body: Bytes::from(h.get("body").cloned().unwrap_or_default()),
        signature: text("signature").unwrap_or_default(),
        matched_secret: usize::try_from(int("matched_secret")).unwrap_or(0),
        object_id: text("object_id"),
        order_key: None,
        handlers: crate::inbox::progress::Progress::parse(text("handlers").as_deref()).0,
    })
}

fn optional(v: Option<&str>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("+{v}"))
}

impl Backend for RedisInbox {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        Box::pin(async move {
            let r = event_ref(&e.tenant, &e.id, &e.event_type);
            let (ids, secret, account, occurred, object, trace) = (
                self.ids_key(&e.id),
                e.matched_secret.to_string(),
                optional(e.account_id.as_deref()),
                optional(e.occurred_at.as_deref()),
                optional(e.object_id.as_deref()),
                optional(e.trace.as_deref()),
            );
            let n: i64 = self
                .run(
                    "insert",
                    &self.inner.scripts.insert,
                    &[
                        r.as_bytes(),
                        ids.as_bytes(),
                        e.tenant.as_bytes(),
                        e.id.as_bytes(),
                        e.event_type.as_bytes(),
                        &e.body,
                        e.signature.as_bytes(),
                        secret.as_bytes(),
                        account.as_bytes(),
                        occurred.as_bytes(),
                        e.state.as_str().as_bytes(),
                        object.as_bytes(),
                        trace.as_bytes(),
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
            Ok(Box::new(RedisSession {
                inbox: self.clone(),
            }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        self.listen();
        let wake = self.inner.wake.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(max, wake.notified()).await;
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let names: Vec<&[u8]> = State::ALL.iter().map(|s| s.as_str().as_bytes()).collect();
            let v: Vec<i64> = self.run("stats", &self.inner.scripts.stats, &names).await?;
            let mut stats = Stats::default();
            for (state, n) in State::ALL.into_iter().zip(&v) {
                stats.counts.insert(state, u64::try_from(*n).unwrap_or(0));
            }
            stats.oldest_due_ms = v.get(State::ALL.len()).copied().unwrap_or(0);
            stats.next_lease_lapse_ms = v.get(State::ALL.len() + 1).copied();
            Ok(stats)
        })
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        Box::pin(async move {
            // ZCOUNT per bucket on `all` (by received_at) and on the done
            // set (by the time of the change): O(log n) each.
            let mut pipe = redis::pipe();
            for key in [self.key("all"), self.key("state:done")] {
                for i in 0..buckets as i64 {
                    let low = since_ms + i * bucket_ms;
                    pipe.cmd("ZCOUNT")
                        .arg(&key)
                        .arg(low)
                        .arg(format!("({}", low + bucket_ms));
                }
            }
            let counts: Vec<u64> = self.pipe("activity", &pipe).await?;
            let (received, processed) = counts.split_at(buckets.min(counts.len()));
            Ok(Activity {
                since_ms,
                bucket_ms,
                received: received.to_vec(),
                processed: processed.to_vec(),
            })
        })
    }

    fn list<'a>(&'a self, q: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let (records, next) = self.walk(q, q.limit() as usize).await?;
            Ok(Page { records, next })
        })
    }

    fn count<'a>(
        &'a self,
        q: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>> {
        Box::pin(async move {
            let exact = |n: u64| {
                if n > at_most {
                    Count::AtLeast(at_most.saturating_add(1))
                } else {
                    Count::Exactly(n)
                }
            };
            let by_index_alone = q.event_type.is_none()
                && q.tenant.is_none()
                && q.object_id.is_none()
                && q.id_prefix.is_none()
                && q.after.is_none();
            if by_index_alone {
                // The index's own count over the received-time range.
                let (low, high) = ScoreRange::of(q).args();
                let n: u64 = self
                    .cmd(
                        "count",
                        redis::cmd("ZCOUNT")
                            .arg(self.listing_key(q))
                            .arg(low)
                            .arg(high),
                    )
                    .await?;
                return Ok(exact(n));
            }
            let want = usize::try_from(at_most)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let (found, next) = self.walk(q, want).await?;
            let n = found.len() as u64;
            Ok(match next {
                Some(_) => Count::AtLeast(n.min(at_most.saturating_add(1))),
                None => exact(n),
            })
        })
    }

    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>> {
        Box::pin(async move {
            let sample = sample as usize;
            let mut out = Vec::new();
            // The newest dead ones, and the newest pending ones that failed
            // before: walked newest first until the sample or the bound.
            for (state, dead) in [(State::Dead, true), (State::Pending, false)] {
                let (mut from, mut examined, mut taken) = (0usize, 0usize, 0usize);
                while taken < sample && examined < MAX_EXAMINED {
                    let batch = if dead { sample } else { PAGE };
                    let refs: Vec<String> = self
                        .cmd(
                            "failing types",
                            redis::cmd("ZREVRANGE")
                                .arg(self.key(&format!("state:{}", state.as_str())))
                                .arg(from)
                                .arg(from + batch - 1),
                        )
                        .await?;
                    from += refs.len();
                    examined += refs.len();
                    let rows = self
                        .fields(&refs, &["type", "attempts", "last_error", "updated_at"])
                        .await?;
                    for f in rows {
                        let attempts = f.get(1).and_then(Option::as_deref).unwrap_or("0");
                        let Some(event_type) = f.first().cloned().flatten() else {
                            continue;
                        };
                        if (dead || attempts != "0") && taken < sample {
                            taken += 1;
                            out.push(FailingRow {
                                event_type,
                                dead,
                                last_error: f.get(2).cloned().flatten().map(|e| {
                                    e.chars()
                                        .take(crate::inbox::types::FAILING_ERROR_LEN)
                                        .collect()
                                }),
                                updated_at_ms: f
                                    .get(3)
                                    .and_then(Option::as_deref)
                                    .and_then(|v| v.parse().ok())
                                    .unwrap_or(0),
                            });
                        }
                    }
                    if refs.len() < batch {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let mut refs: Vec<String> = self
                .cmd("get", redis::cmd("SMEMBERS").arg(self.ids_key(id)))
                .await?;
            refs.sort();
            let mut records = self.records(&refs).await?;
            records.sort_by(|a, b| (&a.tenant, &a.event_type).cmp(&(&b.tenant, &b.event_type)));
            Ok(records)
        })
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let flag = |b: bool| if b { "1" } else { "0" };
            let tenant = f
                .tenant
                .as_deref()
                .map_or_else(|| "-".to_owned(), |t| format!("+{t}"));
            let since = f.since_ms.map(|s| s.to_string()).unwrap_or_default();
            let args = |ids: &str| -> Vec<Vec<u8>> {
                [
                    ids,
                    flag(f.dead),
                    flag(f.skipped),
                    flag(f.done),
                    f.event_type.as_deref().unwrap_or(""),
                    tenant.as_str(),
                    flag(f.stale),
                    f.handler.as_deref().unwrap_or(""),
                    since.as_str(),
                ]
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect()
            };
            let script = &self.inner.scripts.retry;
            if let Some(id) = f.id.as_deref() {
                let ids = self.ids_key(id);
                let args = args(&ids);
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                let (n, _, _): (i64, i64, i64) = self.run("retry", script, &refs).await?;
                return Ok(u64::try_from(n).unwrap_or(0));
            }
            // A batch of one state at a time: each script call is short.
            const BATCH: usize = 500;
            let mut total = 0u64;
            let mut till = String::new();
            let states = [
                (f.dead, State::Dead),
                (f.skipped, State::Skipped),
                (f.stale, State::Stale),
                (f.done, State::Done),
            ];
            for (_, state) in states.iter().filter(|(on, _)| *on) {
                let mut start = 0usize;
                loop {
                    let mut a = args("");
                    a.extend([
                        state.as_str().as_bytes().to_vec(),
                        start.to_string().into_bytes(),
                        BATCH.to_string().into_bytes(),
                        till.clone().into_bytes(),
                    ]);
                    let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
                    let (moved, examined, end): (i64, i64, i64) =
                        self.run("retry", script, &refs).await?;
                    till = end.to_string();
                    let (moved, examined) = (
                        usize::try_from(moved).unwrap_or(0),
                        usize::try_from(examined).unwrap_or(0),
                    );
                    total += moved as u64;
                    // The moved left the state's set; the others stay ahead.
                    start += examined.saturating_sub(moved);
                    if examined < BATCH {
                        break;
                    }
                }
            }
            Ok(total)
        })
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let ms = millis(f.older_than).to_string();
        Box::pin(async move {
            const BATCH: i64 = 1000;
            let mut total = 0u64;
            loop {
                let n: i64 = self
                    .run(
                        "prune",
                        &self.inner.scripts.prune,
                        &[
                            ms.as_bytes(),
                            BATCH.to_string().as_bytes(),
                            if f.skipped { b"1" } else { b"0" },
                        ],
                    )
                    .await?;
                total += u64::try_from(n).unwrap_or(0);
                if n < BATCH {
                    return Ok(total);
                }
            }
        })
    }
}

/// A worker's session: the shared multiplexed connection.
struct RedisSession {
    inbox: RedisInbox,
}

impl Session for RedisSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        Box::pin(async move {
            let (lease, max) = (p.lease_ms.max(1).to_string(), p.max_attempts.to_string());
            let v: redis::Value = self
                .inbox
                .run(
                    "claim",
                    &self.inbox.inner.scripts.claim,
                    &[p.owner.as_bytes(), lease.as_bytes(), max.as_bytes()],
                )
                .await?;
            claimed_from(&v)
        })
    }

    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let r = event_ref(&job.tenant, &job.id, &job.event_type);
            let due = mv.due_in_ms.map(|d| d.to_string()).unwrap_or_default();
            let n: i64 = self
                .inbox
                .run(
                    "transition",
                    &self.inbox.inner.scripts.transition,
                    &[
                        r.as_bytes(),
                        owner.as_bytes(),
                        mv.to().as_str().as_bytes(),
                        due.as_bytes(),
                        mv.error.as_deref().unwrap_or("").as_bytes(),
                        if mv.refund { b"1" } else { b"0" },
                        mv.progress.as_deref().unwrap_or("").as_bytes(),
                    ],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn peek<'a>(&'a mut self, job: &'a Job) -> BoxFuture<'a, Result<super::Peeked, StoreError>> {
        Box::pin(async move {
            let key = self.inbox.key(&format!(
                "ev:{}",
                event_ref(&job.tenant, &job.id, &job.event_type)
            ));
            let v: (Option<String>, Option<String>) = self
                .inbox
                .cmd(
                    "peek",
                    redis::cmd("HMGET").arg(key).arg("state").arg("owner"),
                )
                .await?;
            Ok(v.0.map(|s| (State::from_name(&s).unwrap_or(State::Pending), v.1)))
        })
    }
}

/// A claim script's reply.
fn claimed_from(v: &redis::Value) -> Result<Claimed, StoreError> {
    use redis::Value;
    let bad = || StoreError::new("redis inbox claim: an unexpected reply");
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let int = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => Some(*n),
        _ => None,
    };
    let bytes = |i: usize| match items.get(i) {
        Some(Value::BulkString(b)) => Some(b.clone()),
        _ => None,
    };
    let text = |i: usize| bytes(i).map(|b| String::from_utf8_lossy(&b).into_owned());
    match int(0) {
        Some(0) => Ok(Claimed::Idle {
            due_in_ms: int(1).filter(|d| *d >= 0),
        }),
        Some(kind @ (1 | 2)) => {
            let job = Job {
                tenant: text(1).unwrap_or_default(),
                id: text(2).ok_or_else(bad)?,
                event_type: text(3).ok_or_else(bad)?,
                body: Bytes::from(bytes(4).unwrap_or_default()),
                matched_secret: text(5).and_then(|s| s.parse().ok()).unwrap_or(0),
                attempt: int(6)
                    .and_then(|a| u32::try_from(a).ok())
                    .unwrap_or(u32::MAX),
                received_at_ms: text(7).and_then(|t| t.parse().ok()).unwrap_or(0),
                progress: text(8),
                rerun: text(9),
                trace: text(10),
                stale: false,
                cut_short: int(11) == Some(1),
            };
            Ok(if kind == 1 {
                Claimed::Job(job)
            } else {
                Claimed::Exhausted(job)
            })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing's score range: `since` inclusive, `until` exclusive, and a
    /// cursor or a page's edge narrowing the walk's leading end only.
    #[test]
    fn score_ranges_narrow_the_leading_end() {
        let q = ListFilter {
            since_ms: Some(10),
            until_ms: Some(90),
            ..Default::default()
        };
        let mut r = ScoreRange::of(&q);
        assert_eq!(r.args(), ("10".to_owned(), "(90".to_owned()));
        // Newest first: the high end. A cursor at 90 is no narrower than
        // `until` (exclusive); at 50 it is, inclusive (ties are filtered by
        // the cursor); a page edge at 50 then excludes it.
        r.narrow(true, 90, true);
        assert_eq!(r.args().1, "(90");
        r.narrow(true, 50, true);
        assert_eq!(r.args().1, "50");
        r.narrow(true, 50, false);
        assert_eq!(r.args().1, "(50");
        r.narrow(true, 70, true);
        assert_eq!(r.args(), ("10".to_owned(), "(50".to_owned()));
        // Oldest first: the low end.
        let mut r = ScoreRange::of(&ListFilter::default());
        assert_eq!(r.args(), ("-inf".to_owned(), "+inf".to_owned()));
        r.narrow(false, 20, true);
        r.narrow(false, 20, false);
        r.narrow(false, 5, true);
        assert_eq!(r.args(), ("(20".to_owned(), "+inf".to_owned()));
    }
}

#[cfg(test)]
mod marks {
    use crate::inbox::progress::RERUN_NOT_DONE;

    /// A revival and a redelivery of a dead event mark its handlers not
    /// done to run afresh, with the mark the worker reads.
    #[test]
    fn revivals_set_the_workers_mark() {
        let mark = format!("'rerun', '{RERUN_NOT_DONE}'");
        assert!(include_str!("../lua/retry.lua").contains(&mark));
        assert!(include_str!("../lua/insert.lua").contains(&mark));
    }
}
