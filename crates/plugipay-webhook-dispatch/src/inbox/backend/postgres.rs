//! The PostgreSQL inbox: replicas share it; workers claim with `FOR UPDATE
//! SKIP LOCKED` and are woken by `LISTEN/NOTIFY`; transactional handlers
//! commit with the event's move to `done`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    Backend, Begun, ClaimParams, Claimed, Committed, Inserted, Job, NewEvent, Param, Session,
    TxConn,
};
use crate::conn::pg::{connect, execute_locked, pipelined, sqlstate, PgClient, PgConn, Redacted};
use crate::error::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::{Move, State};
use crate::inbox::progress::Progress;
use crate::inbox::sql::InboxSql;
use crate::inbox::types::{
    Activity, ListFilter, PruneFilter, Record, RetryFilter, Stats, DEFAULT_INBOX_TABLE,
};
use crate::sql::Dialect;
use crate::tx::Tx;

/// The advisory lock the inbox's start-up statements run under.
const LOCK_KEY: i64 = 727_167;

/// How many connections a PostgreSQL inbox receives on, unless
/// [`PostgresInboxBuilder::connections`] says otherwise.
pub const DEFAULT_POSTGRES_CONNECTIONS: usize = 8;

/// An inbox in PostgreSQL, for receivers and workers on several machines.
/// Creates its table on first use (or brings an earlier release's forward);
/// plain TCP (no TLS). Every call is bounded by the store timeout (default
/// 5 s).
#[derive(Clone)]
pub struct PostgresInbox {
    inner: Arc<Shared>,
}

struct Shared {
    conn: PgConn,
    sql: Arc<InboxSql>,
    wake: Arc<tokio::sync::Notify>,
    listening: AtomicBool,
    /// When this process last sent a NOTIFY (ms since `started`): under load
    /// workers are busy claiming anyway, and every NOTIFY serialises on
    /// PostgreSQL's notification queue, so at most one per 5 ms is sent.
    last_notify_ms: AtomicU64,
    started: std::time::Instant,
}

impl std::fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("PostgresInbox")
            .field("table", &self.inner.sql.table)
            .finish_non_exhaustive()
    }
}

/// Options of a [`PostgresInbox`]: `PostgresInbox::builder(url).table(…).timeout(…).connect()`.
#[must_use]
pub struct PostgresInboxBuilder {
    url: String,
    table: String,
    timeout: Duration,
    connections: usize,
}

impl std::fmt::Debug for PostgresInboxBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresInboxBuilder")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl PostgresInboxBuilder {
    /// The table (default `plugipay_webhook_inbox`).
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// How long one store call may take, connecting included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many connections receiving (and the console's and CLI's
    /// queries) use, in turn (default [`DEFAULT_POSTGRES_CONNECTIONS`]; at least 1). One
    /// PostgreSQL backend commits one transaction at a time: concurrent
    /// deliveries on one connection wait for each other's commits, on
    /// several they are flushed together. Workers hold connections of
    /// their own, one each.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Connects, creating the table (or bringing an earlier release's
    /// forward) under an advisory lock.
    pub async fn connect(self) -> Result<PostgresInbox, StoreError> {
        crate::sql::check_table(&self.table)?;
        let sql = Arc::new(InboxSql::new(&self.table, Dialect::Postgres));
        let inbox = PostgresInbox {
            inner: Arc::new(Shared {
                conn: PgConn::new(
                    &self.url,
                    self.timeout,
                    sql.schema.clone(),
                    LOCK_KEY,
                    "postgres inbox",
                )
                .with_connections(self.connections),
                sql,
                wake: Arc::new(tokio::sync::Notify::new()),
                listening: AtomicBool::new(false),
                last_notify_ms: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        };
        inbox
            .inner
            .conn
            .call("connect", |_| async { Ok(()) })
            .await?;
        Ok(inbox)
    }
}

impl PostgresInbox {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and creates
    /// the table if needed.
    pub async fn connect(url: &str) -> Result<PostgresInbox, StoreError> {
        PostgresInbox::builder(url).connect().await
    }

    /// Connects with a table of your choosing and a store timeout.
    pub async fn connect_with(
        url: &str,
        table: &str,
        timeout: Duration,
    ) -> Result<PostgresInbox, StoreError> {
        PostgresInbox::builder(url)
            .table(table)
            .timeout(timeout)
            .connect()
            .await
    }

    /// Options: table and timeout.
    pub fn builder(url: &str) -> PostgresInboxBuilder {
        PostgresInboxBuilder {
            url: url.to_owned(),
            table: DEFAULT_INBOX_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            connections: DEFAULT_POSTGRES_CONNECTIONS,
        }
    }

    /// Starts (once) the task that LISTENs for new events and wakes workers.
    fn listen(&self) {
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (url, channel, wake) = (
            self.inner.conn.url.clone(),
            self.inner.sql.table.clone(),
            self.inner.wake.clone(),
        );
        tokio::spawn(async move {
            loop {
                if let Ok((client, mut connection)) = tokio_postgres::connect(&url, NoTls).await {
                    let sql = format!("LISTEN \"{channel}\"");
                    let listen = client.batch_execute(&sql);
                    let messages = async {
                        loop {
                            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                                    wake.notify_one();
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => return,
                            }
                        }
                    };
                    tokio::pin!(listen, messages);
                    // Drive the connection while LISTEN is sent, then keep
                    // reading notifications until the connection ends.
                    let mut listened = false;
                    std::future::poll_fn(|cx| {
                        use std::task::Poll;
                        if !listened {
                            if let Poll::Ready(r) = listen.as_mut().poll(cx) {
                                if r.is_err() {
                                    return Poll::Ready(());
                                }
                                listened = true;
                            }
                        }
                        messages.as_mut().poll(cx)
                    })
                    .await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Whether this insert should also NOTIFY (at most one per 5 ms).
    fn notify_now(&self) -> bool {
        let now_ms = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.inner.last_notify_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= 5
            && self
                .inner
                .last_notify_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    async fn notify(&self, c: &PgClient) {
        let _ = c
            .execute("SELECT pg_notify($1, '')", &[&self.inner.sql.table])
            .await;
    }
}

fn record_from(row: &Row) -> Record {
    Record {
        tenant: row.get("tenant"),
        id: row.get("event_id"),
        event_type: row.get("event_type"),
        state: State::from_name(row.get("state")).unwrap_or(State::Pending),
        attempts: u32::try_from(row.get::<_, i32>("attempts")).unwrap_or(0),
        received_at_ms: row.get("received_at"),
        next_attempt_at_ms: row.get("due_at"),
        updated_at_ms: row.get("updated_at"),
        last_error: row.get("last_error"),
        account_id: row.get("account_id"),
        occurred_at: row.get("occurred_at"),
        body: Bytes::from(row.get::<_, Vec<u8>>("body")),
        signature: row.get("signature"),
        matched_secret: usize::try_from(row.get::<_, i64>("matched_secret")).unwrap_or(0),
        object_id: row.get("object_id"),
        order_key: row.get("order_key"),
        handlers: Progress::parse(row.get::<_, Option<&str>>("handlers")).0,
    }
}

fn job_from(row: &Row) -> (String, Job) {
    (
        row.get(0),
        Job {
            tenant: row.get(1),
            id: row.get(2),
            event_type: row.get(3),
            body: Bytes::from(row.get::<_, Vec<u8>>(4)),
            matched_secret: usize::try_from(row.get::<_, i64>(5)).unwrap_or(0),
            attempt: u32::try_from(row.get::<_, i32>(6)).unwrap_or(u32::MAX),
            received_at_ms: row.get(7),
            progress: row.get(8),
            rerun: row.get(9),
            trace: row.get(10),
            stale: row.get::<_, i32>(11) == 1,
        },
    )
}

impl Backend for PostgresInbox {
    fn can_order(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        Box::pin(self.inner.conn.call("insert", move |c| async move {
            let insert = c.prepared("insert", &self.inner.sql.insert).await?;
            let inserted = c
                .query_opt(
                    &insert,
                    &[
                        &e.tenant,
                        &e.id,
                        &e.event_type,
                        &Redacted(&e.body[..]),
                        &Redacted(&e.signature),
                        &e.matched_secret,
                        &e.account_id,
                        &e.occurred_at,
                        &e.state.as_str(),
                        &e.object_id,
                        &e.order_key,
                        &e.occurred_ms,
                        &e.due_in_ms,
                        &e.trace,
                    ],
                )
                .await
                .map_err(|err| c.err("insert", &err))?;
            if inserted.is_some() {
                if e.state == State::Pending && self.notify_now() {
                    self.notify(&c).await;
                }
                return Ok(Inserted::New);
            }
            let redeliver = c.prepared("redeliver", &self.inner.sql.redeliver).await?;
            let revived = c
                .query_opt(&redeliver, &[&e.tenant, &e.id, &e.event_type])
                .await
                .map_err(|err| c.err("redeliver", &err))?;
            if revived.is_some() {
                self.notify(&c).await;
                return Ok(Inserted::Revived);
            }
            Ok(Inserted::Duplicate)
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            // The table exists once the shared client connected.
            self.inner
                .conn
                .call("session", |_| async { Ok(()) })
                .await?;
            Ok(Box::new(PgSession {
                client: None,
                url: self.inner.conn.url.clone(),
                sql: self.inner.sql.clone(),
                timeout: self.inner.conn.timeout,
                txid: 0,
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
        Box::pin(self.inner.conn.call("stats", move |c| async move {
            let mut stats = Stats::default();
            let sql = &self.inner.sql;
            for row in c
                .query(&sql.count_by_state, &[])
                .await
                .map_err(|e| c.err("stats", &e))?
            {
                if let Some(state) = State::from_name(row.get(0)) {
                    stats
                        .counts
                        .insert(state, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
                }
            }
            stats.oldest_due_ms = c
                .query_one(&sql.oldest_due, &[])
                .await
                .map_err(|e| c.err("stats", &e))?
                .get(0);
            Ok(stats)
        }))
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        Box::pin(self.inner.conn.call("activity", move |c| async move {
            let sql = &self.inner.sql;
            let mut counts = Vec::new();
            for query in [&sql.activity_received, &sql.activity_done] {
                let rows = c
                    .query(query.as_str(), &[&since_ms, &bucket_ms])
                    .await
                    .map_err(|e| c.err("activity", &e))?;
                counts.push(super::bucketed(
                    rows.iter()
                        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))),
                    buckets,
                ));
            }
            let processed = counts.pop().unwrap_or_default();
            let received = counts.pop().unwrap_or_default();
            Ok(Activity {
                since_ms,
                bucket_ms,
                received,
                processed,
            })
        }))
    }

    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(self.inner.conn.call("list", move |c| async move {
            let (query, params) = self.inner.sql.list(Dialect::Postgres, filter);
            let boxed: Vec<Box<dyn ToSql + Sync + Send>> = params
                .into_iter()
                .map(|p| -> Box<dyn ToSql + Sync + Send> {
                    match p {
                        Param::Text(t) => Box::new(t),
                        Param::Int(i) => Box::new(i),
                    }
                })
                .collect();
            let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| &**b as _).collect();
            let rows = c
                .query(&query, &refs)
                .await
                .map_err(|e| c.err("list", &e))?;
            Ok(rows.iter().map(record_from).collect())
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(self.inner.conn.call("get", move |c| async move {
            let rows = c
                .query(&self.inner.sql.get, &[&id])
                .await
                .map_err(|e| c.err("get", &e))?;
            Ok(rows.iter().map(record_from).collect())
        }))
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.inner.conn.call("retry", move |c| async move {
            let n = c
                .execute(
                    &self.inner.sql.revive,
                    &[
                        &f.id,
                        &f.dead,
                        &f.skipped,
                        &f.done,
                        &f.event_type,
                        &f.tenant,
                        &f.stale,
                        &f.handler,
                        &f.since_ms,
                    ],
                )
                .await
                .map_err(|e| c.err("retry", &e))?;
            if n > 0 {
                self.notify(&c).await;
            }
            Ok(n)
        }))
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let ms = millis(f.older_than);
        Box::pin(self.inner.conn.call("prune", move |c| async move {
            c.execute(&self.inner.sql.prune, &[&ms, &f.skipped])
                .await
                .map_err(|e| c.err("prune", &e))
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        Some(Box::pin(
            self.inner.conn.call("execute", move |c| async move {
                execute_locked(&c, sql, LOCK_KEY, "postgres inbox execute").await
            }),
        ))
    }
}

/// How a worker's connection plans its own statements: the claim and the
/// next due time take rows in due order, and without these settings their
/// plan depends on the table's statistics, which lag behind a burst.
/// Measured: a table analysed while it held few open rows made every claim
/// read all 7,000 open rows of the backlog and sort them (a bitmap scan, then
/// a sort: 18 ms a claim instead of 0.1), and processing fell to a third.
/// With sorting off, the only plan left walks the due index from its start
/// and stops at the first row it can take; with generic plans, the claim
/// (with its ordering parameters) is planned once per connection rather
/// than on every call (custom plans won on estimated cost and cost 0.7 ms of
/// server CPU each).
const WORKER_SETTINGS: &str =
    "SET enable_sort = off; SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan";

/// A handler's transaction starts with the settings its session would have
/// had: its own statements are planned as usual (`WORKER_SETTINGS` apply to
/// the inbox's statements only). No extra round trip: it is one message.
const BEGIN_AS_USUAL: &str =
    "BEGIN; SET LOCAL enable_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT;\
     SET LOCAL plan_cache_mode TO DEFAULT";

/// A worker's own connection (reconnected after any doubt).
struct PgSession {
    client: Option<PgClient>,
    url: String,
    sql: Arc<InboxSql>,
    timeout: Duration,
    /// The open transaction's id (see `InboxSql::lock`).
    txid: i64,
}

impl PgSession {
    /// The connection, connecting if the last one was thrown away.
    async fn client(&mut self) -> Result<&PgClient, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let client = bounded(
                self.timeout,
                "postgres inbox connect",
                connect(&self.url, "postgres inbox"),
            )
            .await?;
            let client = PgClient::new(client, "postgres inbox");
            bounded(self.timeout, "postgres inbox connect", async {
                client
                    .batch_execute(WORKER_SETTINGS)
                    .await
                    .map_err(|e| client.err("connect", &e))
            })
            .await?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("just connected"))
    }

    /// Runs one statement under the timeout; any failure throws the
    /// connection away (it may be the one that stopped answering, or be
    /// inside something half done).
    async fn one<T>(
        &mut self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl FnOnce(Vec<Row>) -> T,
    ) -> Result<T, StoreError> {
        let timeout = self.timeout;
        let result = bounded(timeout, &format!("postgres inbox {what}"), async {
            let c = self.client().await?;
            let statement = c.prepared(what, sql).await?;
            c.query(&statement, params)
                .await
                .map_err(|e| c.err(what, &e))
        })
        .await;
        match result {
            Ok(rows) => Ok(read(rows)),
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }
}

impl Session for PgSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        Box::pin(async move {
            let sql = self.sql.clone();
            let max = i32::try_from(p.max_attempts).unwrap_or(i32::MAX);
            let claimed = if p.ordered {
                self.one(
                    "claim",
                    &sql.claim,
                    &[
                        &p.owner,
                        &p.lease_ms,
                        &max,
                        &p.skip_stale,
                        &p.dead_holds_key,
                    ],
                    |rows| rows.first().map(job_from),
                )
                .await
            } else {
                self.one(
                    "claim",
                    &sql.claim_unordered,
                    &[&p.owner, &p.lease_ms, &max],
                    |rows| rows.first().map(job_from),
                )
                .await
            };
            let claimed = match claimed {
                // Two claims raced for two events of one key (ordering):
                // the key's unique running index let one through. The other
                // claims again at once (and now sees the key busy).
                Err(e) if e.sqlstate() == Some("23505") => {
                    return Ok(Claimed::Idle { due_in_ms: Some(0) })
                }
                other => other?,
            };
            Ok(match claimed {
                Some((state, job)) if state == "dead" => Claimed::Exhausted(job),
                Some((state, job)) if state == "stale" => Claimed::Stale(job),
                Some((_, job)) => Claimed::Job(job),
                None => Claimed::Idle {
                    due_in_ms: {
                        let (next, params): (&str, &[&(dyn ToSql + Sync)]) = if p.ordered {
                            (&sql.next_due, &[&p.dead_holds_key])
                        } else {
                            (&sql.next_due_unordered, &[])
                        };
                        self.one("next due", next, params, |rows| {
                            rows.first().and_then(|r| r.get::<_, Option<i64>>(0))
                        })
                        .await?
                    },
                },
            })
        })
    }

    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let sql = self.sql.clone();
            let to = mv.to().as_str();
            let refund = i32::from(mv.refund);
            let result = bounded(self.timeout, "postgres inbox transition", async {
                let c = self.client().await?;
                let statement = c.prepared("transition", &sql.transition).await?;
                c.execute(
                    &statement,
                    &[
                        &job.tenant,
                        &job.id,
                        &job.event_type,
                        &owner,
                        &to,
                        &mv.due_in_ms,
                        &mv.error,
                        &refund,
                        &mv.progress,
                    ],
                )
                .await
                .map_err(|e| c.err("transition", &e))
            })
            .await;
            match result {
                Ok(n) => Ok(n == 1),
                Err(e) => {
                    self.discard();
                    Err(e)
                }
            }
        })
    }

    fn peek<'a>(&'a mut self, job: &'a Job) -> BoxFuture<'a, Result<super::Peeked, StoreError>> {
        Box::pin(async move {
            let sql = self.sql.clone();
            self.one(
                "peek",
                &sql.peek,
                &[&job.tenant, &job.id, &job.event_type],
                |rows| {
                    rows.first().map(|r| {
                        (
                            State::from_name(r.get(0)).unwrap_or(State::Pending),
                            r.get::<_, Option<String>>(1),
                        )
                    })
                },
            )
            .await
        })
    }

    fn tx(&mut self) -> Option<&mut dyn TxConn> {
        Some(self)
    }
}

impl TxConn for PgSession {
    fn begin<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Begun, StoreError>> {
        Box::pin(async move {
            let sql = self.sql.clone();
            let timeout = self.timeout;
            // BEGIN and the owner-checked lock in one round trip.
            let result = bounded(timeout, "postgres inbox begin", async {
                let c = self.client().await?;
                let lock = c.prepared("lock", &sql.lock).await?;
                let (begun, locked) = pipelined(
                    c.batch_execute(BEGIN_AS_USUAL),
                    c.query_opt(&lock, &[&job.tenant, &job.id, &job.event_type, &owner]),
                )
                .await;
                begun.map_err(|e| c.err("begin", &e))?;
                locked.map_err(|e| c.err("begin", &e))
            })
            .await;
            match result {
                Ok(Some(row)) => {
                    self.txid = row.get(0);
                    Ok(Begun::Locked)
                }
                Ok(None) => {
                    if self.rollback().await.is_err() {
                        self.discard();
                    }
                    Ok(Begun::LostLease)
                }
                // The caller's guard discards the connection.
                Err(e) => Err(e),
            }
        })
    }

    fn handle(&self) -> Tx<'_> {
        let c = self
            .client
            .as_ref()
            .expect("a transaction is open on this connection");
        Tx::postgres_on(&c.client, &c.statements)
    }

    fn commit_done<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        progress: &'a str,
        last: bool,
    ) -> BoxFuture<'a, Committed> {
        Box::pin(async move {
            let sql = self.sql.clone();
            let txid = self.txid;
            // The move to done and COMMIT in one round trip: when the move
            // fails (an aborted transaction, a lost lease) the COMMIT finds
            // the transaction aborted and rolls it back.
            let result = bounded(self.timeout, "postgres inbox commit", async {
                let c = self.client().await?;
                let done = c.prepared("done", &sql.done_in_tx).await?;
                let (moved, committed) = pipelined(
                    c.query_one(
                        &done,
                        &[
                            &job.tenant,
                            &job.id,
                            &job.event_type,
                            &owner,
                            &txid,
                            &progress,
                            &last,
                        ],
                    ),
                    c.batch_execute("COMMIT"),
                )
                .await;
                Ok((moved, committed))
            })
            .await;
            let (moved, committed) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.discard();
                    return Committed::Unknown(e.to_string());
                }
            };
            let c = self.client.as_ref().expect("connected");
            match (moved, committed) {
                (Ok(_), Ok(())) => Committed::Done,
                (Err(e), Ok(())) => match sqlstate(&e) {
                    // Nothing to move: the lease is someone else's, or the
                    // handler ended the transaction itself.
                    Some("22012") => Committed::LostLease,
                    Some("25P02") => Committed::RolledBack(
                        "a statement of the handler failed (its error was ignored), which aborted \
                         the transaction: rolled back"
                            .to_owned(),
                    ),
                    Some(_) => Committed::RolledBack(c.err("move to done", &e).to_string()),
                    None => {
                        let why = c.err("move to done", &e).to_string();
                        self.discard();
                        Committed::Unknown(why)
                    }
                },
                (_, Err(e)) if e.as_db_error().is_some() => {
                    // The server refused the COMMIT (a deferred constraint,
                    // a serialization failure): the transaction is gone.
                    Committed::RolledBack(c.err("commit", &e).to_string())
                }
                (_, Err(e)) => {
                    let why = c.err("commit", &e).to_string();
                    self.discard();
                    Committed::Unknown(why)
                }
            }
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let timeout = self.timeout;
            let Some(c) = self.client.as_ref() else {
                return Ok(());
            };
            bounded(timeout, "postgres inbox rollback", async {
                c.batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| c.err("rollback", &e))
            })
            .await
        })
    }

    fn discard(&mut self) {
        if let Some(c) = self.client.take() {
            // Whatever it was running is cancelled; dropping the client
            // closes the connection, and the server rolls back.
            c.cancel();
        }
    }
}
