//! The PostgreSQL inbox on sqlx: replicas share it; workers claim with
//! `FOR UPDATE SKIP LOCKED` and are woken by `LISTEN/NOTIFY` where the
//! connection allows it (polling otherwise); transactional handlers commit
//! with the event's move to `done`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::{
    Backend, Begun, ClaimParams, Claimed, Committed, Inserted, Job, NewEvent, Param, Session,
    TxConn,
};
use crate::conn::pg::{self, execute_locked, sqlstate, PgConn};
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

/// How many connections a PostgreSQL inbox opened from a URL receives on,
/// unless [`PostgresInboxBuilder::connections`] says otherwise.
pub const DEFAULT_POSTGRES_CONNECTIONS: usize = 8;

/// An inbox in PostgreSQL, for receivers and workers on several machines.
/// Creates its table on first use (or brings an earlier release's forward).
///
/// Opened from a URL ([`connect`](PostgresInbox::connect),
/// [`connect_with`](PostgresInbox::connect_with), [`builder`](PostgresInbox::builder)),
/// libpq's conventions hold: `sslmode` (`disable`, `prefer` — the default
/// —, `require`, `verify-ca`, `verify-full`) and `sslrootcert` in the URL,
/// the `PG*` environment variables for what it leaves out, SCRAM passwords;
/// TLS is rustls with the system's trust store (and `SSL_CERT_FILE`). Or
/// on the application's own sqlx pool: [`from_pool`](PostgresInbox::from_pool).
/// Every call is bounded by the store timeout (default 5 s).
#[derive(Clone)]
pub struct PostgresInbox {
    inner: Arc<Shared>,
}

struct Shared {
    conn: PgConn,
    /// What a worker's own connection is made with: the pool's options.
    options: Arc<PgConnectOptions>,
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
    /// queries) use at most: the size of the pool built from the URL
    /// (default [`DEFAULT_POSTGRES_CONNECTIONS`]; at least 1). One
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
        let options = pg::options(&self.url, "postgres inbox")?;
        // The pool makes only the listener's connection: receiving runs on
        // connections of the inbox's own (`conn::pg::Source`).
        let pool = pg::pool(options, 1, self.timeout);
        PostgresInbox::open(pool, Some(self.connections), &self.table, self.timeout).await
    }
}

impl PostgresInbox {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=…`)
    /// and creates the table if needed.
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

    /// Options: table, timeout, connections.
    pub fn builder(url: &str) -> PostgresInboxBuilder {
        PostgresInboxBuilder {
            url: url.to_owned(),
            table: DEFAULT_INBOX_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            connections: DEFAULT_POSTGRES_CONNECTIONS,
        }
    }

    /// The inbox in table `name` on the application's own pool: receiving
    /// and the tools' queries take connections from it (each returned once
    /// its call succeeded, closed when it failed or timed out — never
    /// handed back mid-statement); workers hold connections of their own,
    /// made with the pool's connect options (the same TLS and credentials),
    /// so they never wait for the application's connections nor take them.
    /// Creates the table, or brings an earlier release's forward.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use plugipay_webhook_dispatch::inbox::PostgresInbox;
    /// use plugipay_webhook_dispatch::sqlx::postgres::PgPoolOptions;
    ///
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(20)
    ///     .connect("postgres://app:pw@db/app?sslmode=verify-full")
    ///     .await?;
    /// let inbox = PostgresInbox::from_pool(pool.clone(), "plugipay_webhook_inbox").await?;
    /// # let _ = inbox; Ok(()) }
    /// ```
    pub async fn from_pool(pool: PgPool, name: &str) -> Result<PostgresInbox, StoreError> {
        PostgresInbox::open(pool, None, name, DEFAULT_STORE_TIMEOUT).await
    }

    async fn open(
        pool: PgPool,
        slots: Option<usize>,
        table: &str,
        timeout: Duration,
    ) -> Result<PostgresInbox, StoreError> {
        crate::sql::check_table(table)?;
        let sql = Arc::new(InboxSql::new(table, Dialect::Postgres));
        let options = pg::pool_options(&pool);
        let inbox = PostgresInbox {
            inner: Arc::new(Shared {
                conn: PgConn::new(
                    pool,
                    slots,
                    timeout,
                    sql.schema.clone(),
                    LOCK_KEY,
                    "postgres inbox",
                ),
                options,
                sql,
                wake: Arc::new(tokio::sync::Notify::new()),
                listening: AtomicBool::new(false),
                last_notify_ms: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        };
        let conn = &inbox.inner.conn;
        conn.bounded("connect", async { conn.lease().await?.finish().await })
            .await?;
        Ok(inbox)
    }

    /// Starts (once) the task that LISTENs for new events and wakes
    /// workers. Never through a transaction pooler: a `LISTEN` there stays
    /// on whichever server connection took it, and that connection's
    /// notifications then reach other clients' statements (sqlx fails them:
    /// "unexpected message: NotificationResponse"). Workers then find other
    /// processes' events by polling (and this process's at once).
    fn listen(&self) {
        if !self.inner.conn.persistent || self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (pool, channel, wake) = (
            self.inner.conn.pool.clone(),
            self.inner.sql.table.clone(),
            self.inner.wake.clone(),
        );
        tokio::spawn(async move {
            loop {
                // A connection of the pool, taken out of it for good.
                let listener = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(&channel).await?;
                    Ok::<_, sqlx::Error>(listener)
                };
                if let Ok(Ok(mut listener)) =
                    tokio::time::timeout(Duration::from_secs(10), listener).await
                {
                    while listener.recv().await.is_ok() {
                        wake.notify_one();
                    }
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

    /// The records `query` selects (`RECORD_COLUMNS`).
    async fn records(
        &self,
        what: &str,
        query: Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<Record>, StoreError> {
        let conn = &self.inner.conn;
        conn.bounded(what, async {
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err(what, &err);
            let rows = query.fetch_all(&mut *c).await.map_err(e)?;
            let records = rows
                .iter()
                .map(record_from)
                .collect::<Result<_, _>>()
                .map_err(e)?;
            c.finish().await?;
            Ok(records)
        })
        .await
    }

    async fn notify(&self, c: &mut PgConnection) {
        if !self.inner.conn.persistent {
            // Through a transaction pooler nobody listens (see `listen`).
            return;
        }
        let _ = sqlx::query("SELECT pg_notify($1, '')")
            .persistent(self.inner.conn.persistent)
            .bind(&self.inner.sql.table)
            .execute(c)
            .await;
    }
}

/// A record, from a row of `RECORD_COLUMNS`.
fn record_from(row: &PgRow) -> Result<Record, sqlx::Error> {
    Ok(Record {
        tenant: row.try_get("tenant")?,
        id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        state: State::from_name(row.try_get("state")?).unwrap_or(State::Pending),
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        received_at_ms: row.try_get("received_at")?,
        next_attempt_at_ms: row.try_get("due_at")?,
        updated_at_ms: row.try_get("updated_at")?,
        last_error: row.try_get("last_error")?,
        account_id: row.try_get("account_id")?,
        occurred_at: row.try_get("occurred_at")?,
        body: Bytes::from(row.try_get::<Vec<u8>, _>("body")?),
        signature: row.try_get("signature")?,
        matched_secret: usize::try_from(row.try_get::<i64, _>("matched_secret")?).unwrap_or(0),
        object_id: row.try_get("object_id")?,
        order_key: row.try_get("order_key")?,
        handlers: Progress::parse(row.try_get::<Option<&str>, _>("handlers")?).0,
    })
}

/// The claimed row's state and job, from a row of `JOB_COLUMNS`, stale.
fn job_from(row: &PgRow) -> Result<(String, Job), sqlx::Error> {
    Ok((
        row.try_get(0)?,
        Job {
            tenant: row.try_get(1)?,
            id: row.try_get(2)?,
            event_type: row.try_get(3)?,
            body: Bytes::from(row.try_get::<Vec<u8>, _>(4)?),
            matched_secret: usize::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
            attempt: u32::try_from(row.try_get::<i32, _>(6)?).unwrap_or(u32::MAX),
            received_at_ms: row.try_get(7)?,
            progress: row.try_get(8)?,
            rerun: row.try_get(9)?,
            trace: row.try_get(10)?,
            stale: row.try_get::<i32, _>(11)? == 1,
        },
    ))
}

/// A statement's `$n` parameters from a built query's values.
fn bind_params(
    mut q: Query<'_, Postgres, PgArguments>,
    params: Vec<Param>,
) -> Query<'_, Postgres, PgArguments> {
    for p in params {
        q = match p {
            Param::Text(t) => q.bind(t),
            Param::Int(i) => q.bind(i),
        };
    }
    q
}

impl Backend for PostgresInbox {
    fn can_order(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("insert", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let inserted = sqlx::query(&sql.insert)
                .persistent(self.inner.conn.persistent)
                .bind(&e.tenant)
                .bind(&e.id)
                .bind(&e.event_type)
                .bind(&e.body[..])
                .bind(&e.signature)
                .bind(e.matched_secret)
                .bind(&e.account_id)
                .bind(&e.occurred_at)
                .bind(e.state.as_str())
                .bind(&e.object_id)
                .bind(&e.order_key)
                .bind(e.occurred_ms)
                .bind(e.due_in_ms)
                .bind(&e.trace)
                .fetch_optional(&mut *c)
                .await
                .map_err(|err| conn.err("insert", &err))?;
            let outcome = if inserted.is_some() {
                if e.state == State::Pending && self.notify_now() {
                    self.notify(&mut c).await;
                }
                Inserted::New
            } else {
                let revived = sqlx::query(&sql.redeliver)
                    .persistent(self.inner.conn.persistent)
                    .bind(&e.tenant)
                    .bind(&e.id)
                    .bind(&e.event_type)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(|err| conn.err("redeliver", &err))?;
                if revived.is_some() {
                    self.notify(&mut c).await;
                    Inserted::Revived
                } else {
                    Inserted::Duplicate
                }
            };
            c.finish().await?;
            Ok(outcome)
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            // The table exists once a shared connection checked it.
            let conn = &self.inner.conn;
            conn.bounded("session", async { conn.lease().await?.finish().await })
                .await?;
            Ok(Box::new(PgSession {
                conn: None,
                options: self.inner.options.clone(),
                sql: self.inner.sql.clone(),
                timeout: conn.timeout,
                txid: 0,
                persistent: conn.persistent,
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
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("stats", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err("stats", &err);
            let mut stats = Stats::default();
            for row in sqlx::query(&sql.count_by_state)
                .persistent(self.inner.conn.persistent)
                .fetch_all(&mut *c)
                .await
                .map_err(e)?
            {
                if let Some(state) = State::from_name(row.try_get(0).map_err(e)?) {
                    let n: i64 = row.try_get(1).map_err(e)?;
                    stats.counts.insert(state, u64::try_from(n).unwrap_or(0));
                }
            }
            stats.oldest_due_ms = sqlx::query_scalar(&sql.oldest_due)
                .persistent(self.inner.conn.persistent)
                .fetch_one(&mut *c)
                .await
                .map_err(e)?;
            c.finish().await?;
            Ok(stats)
        }))
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("activity", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let mut counts = Vec::new();
            for query in [&sql.activity_received, &sql.activity_done] {
                let rows: Vec<(i64, i64)> = sqlx::query_as(query)
                    .persistent(self.inner.conn.persistent)
                    .bind(since_ms)
                    .bind(bucket_ms)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(|e| conn.err("activity", &e))?;
                counts.push(super::bucketed(rows, buckets));
            }
            c.finish().await?;
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
        Box::pin(async move {
            let (query, params) = self.inner.sql.list(Dialect::Postgres, filter);
            let q = sqlx::query(&query).persistent(self.inner.conn.persistent);
            self.records("list", bind_params(q, params)).await
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let q = sqlx::query(&self.inner.sql.get)
                .persistent(self.inner.conn.persistent)
                .bind(id);
            self.records("get", q).await
        })
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("retry", async move {
            let mut c = conn.lease().await?;
            let n = sqlx::query(&self.inner.sql.revive)
                .persistent(self.inner.conn.persistent)
                .bind(&f.id)
                .bind(f.dead)
                .bind(f.skipped)
                .bind(f.done)
                .bind(&f.event_type)
                .bind(&f.tenant)
                .bind(f.stale)
                .bind(&f.handler)
                .bind(f.since_ms)
                .execute(&mut *c)
                .await
                .map_err(|e| conn.err("retry", &e))?
                .rows_affected();
            if n > 0 {
                self.notify(&mut c).await;
            }
            c.finish().await?;
            Ok(n)
        }))
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let ms = millis(f.older_than);
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("prune", async move {
            let mut c = conn.lease().await?;
            let n = sqlx::query(&self.inner.sql.prune)
                .persistent(self.inner.conn.persistent)
                .bind(ms)
                .bind(f.skipped)
                .execute(&mut *c)
                .await
                .map_err(|e| conn.err("prune", &e))?
                .rows_affected();
            c.finish().await?;
            Ok(n)
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        let conn = &self.inner.conn;
        Some(Box::pin(conn.bounded("execute", async move {
            let mut c = conn.lease().await?;
            execute_locked(&mut c, sql, LOCK_KEY, "postgres inbox execute").await?;
            c.finish().await?;
            Ok(())
        })))
    }
}

/// How a worker plans the inbox's statements: the claim and the next due
/// time take rows in due order, and without these settings their plan
/// depends on the table's statistics, which lag behind a burst. Measured: a
/// table analysed while it held few open rows made every claim read all
/// 7,000 open rows of the backlog and sort them (a bitmap scan, then a sort:
/// 18 ms a claim instead of 0.1), and processing fell to a third. With
/// sorting off, the only plan left walks the due index from its start and
/// stops at the first row it can take; with generic plans, the claim is
/// planned once per connection rather than on every call.
///
/// On a direct connection (the worker's own) they are the session's, set
/// once; a handler's transaction starts with them reset to the server's
/// defaults in the same message as its BEGIN ([`BEGIN_AS_USUAL`]). Through
/// a transaction pooler nothing may stay in a session: the claim then runs
/// in a transaction of its own that sets them `LOCAL` ([`CLAIM_BEGIN`]).
const WORKER_SETTINGS: &str =
    "SET enable_sort = off; SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan";

/// A handler's transaction on a direct connection starts with the settings
/// its session would have had (`WORKER_SETTINGS` apply to the inbox's
/// statements only). No extra round trip: it is one message.
const BEGIN_AS_USUAL: &str =
    "BEGIN; SET LOCAL enable_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT; \
     SET LOCAL plan_cache_mode TO DEFAULT";

/// The claim's own transaction through a transaction pooler.
const CLAIM_BEGIN: &str = "BEGIN; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; \
     SET LOCAL plan_cache_mode = force_generic_plan";

/// A worker's own connection (made afresh after any doubt).
struct PgSession {
    conn: Option<PgConnection>,
    options: Arc<PgConnectOptions>,
    sql: Arc<InboxSql>,
    timeout: Duration,
    /// The open transaction's id (see `InboxSql::lock`).
    txid: i64,
    /// Statements named and kept on the connection (not through a
    /// transaction pooler: `conn::pg::named_statements`).
    persistent: bool,
}

/// `what`'s error, named after the inbox.
fn inbox_err(what: &str, e: &sqlx::Error) -> StoreError {
    pg::err(&format!("postgres inbox {what}"), e)
}

impl PgSession {
    /// The connection, connecting if the last one was thrown away.
    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.conn.is_none() {
            let persistent = self.persistent;
            let conn = bounded(self.timeout, "postgres inbox connect", async {
                let mut conn = pg::connect(&self.options, "postgres inbox").await?;
                if persistent {
                    sqlx::Executor::execute(&mut conn, WORKER_SETTINGS)
                        .await
                        .map_err(|e| inbox_err("connect", &e))?;
                }
                Ok(conn)
            })
            .await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// The claim under the worker's planner settings (the session's on a
    /// direct connection; through a pooler, in a transaction of its own that
    /// sets them): the claimed row, or the time until the next is due.
    async fn claim_now(
        &mut self,
        p: &ClaimParams<'_>,
    ) -> Result<Result<Option<(String, Job)>, Option<i64>>, sqlx::Error> {
        let sql = self.sql.clone();
        let persistent = self.persistent;
        let c = self.conn.as_mut().expect("connected");
        // Direct: one autocommit statement under the session's settings.
        let in_tx = !persistent;
        if in_tx {
            sqlx::Executor::execute(&mut *c, CLAIM_BEGIN).await?;
        }
        let max = i32::try_from(p.max_attempts).unwrap_or(i32::MAX);
        let claimed = if p.ordered {
            sqlx::query(&sql.claim)
                .persistent(persistent)
                .bind(p.owner)
                .bind(p.lease_ms)
                .bind(max)
                .bind(p.skip_stale)
                .bind(p.dead_holds_key)
                .fetch_optional(&mut *c)
                .await
        } else {
            sqlx::query(&sql.claim_unordered)
                .persistent(persistent)
                .bind(p.owner)
                .bind(p.lease_ms)
                .bind(max)
                .fetch_optional(&mut *c)
                .await
        };
        let claimed = match claimed {
            Ok(row) => row,
            Err(e) => {
                if in_tx {
                    sqlx::Executor::execute(&mut *c, "ROLLBACK").await?;
                }
                return Err(e);
            }
        };
        let out = match claimed.as_ref().map(job_from).transpose() {
            Ok(Some(job)) => Ok(Some(job)),
            Ok(None) => {
                // No row (nothing open) or a NULL: nothing is due.
                let next: Option<Option<i64>> = if p.ordered {
                    sqlx::query_scalar(&sql.next_due)
                        .persistent(persistent)
                        .bind(p.dead_holds_key)
                        .fetch_optional(&mut *c)
                        .await?
                } else {
                    sqlx::query_scalar(&sql.next_due_unordered)
                        .persistent(persistent)
                        .fetch_optional(&mut *c)
                        .await?
                };
                Err(next.flatten())
            }
            // The row was claimed but cannot be read: its lease lapses.
            Err(e) => {
                if in_tx {
                    sqlx::Executor::execute(&mut *c, "ROLLBACK").await?;
                }
                return Err(e);
            }
        };
        if in_tx {
            sqlx::Executor::execute(&mut *c, "COMMIT").await?;
        }
        Ok(out)
    }
}

impl Session for PgSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        Box::pin(async move {
            let timeout = self.timeout;
            let result = bounded(timeout, "postgres inbox claim", async {
                self.connection().await?;
                self.claim_now(&p).await.map_err(|e| inbox_err("claim", &e))
            })
            .await;
            let claimed = match result {
                Ok(claimed) => claimed,
                // Two claims raced for two events of one key (ordering):
                // the key's unique running index let one through. The other
                // (rolled back, its connection intact) claims again at once
                // and now sees the key busy.
                Err(e) if e.sqlstate() == Some("23505") => {
                    return Ok(Claimed::Idle { due_in_ms: Some(0) })
                }
                Err(e) => {
                    self.discard();
                    return Err(e);
                }
            };
            Ok(match claimed {
                Ok(Some((state, job))) if state == "dead" => Claimed::Exhausted(job),
                Ok(Some((state, job))) if state == "stale" => Claimed::Stale(job),
                Ok(Some((_, job))) => Claimed::Job(job),
                Ok(None) => Claimed::Idle { due_in_ms: None },
                Err(due_in_ms) => Claimed::Idle { due_in_ms },
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
            let persistent = self.persistent;
            let to = mv.to().as_str();
            let refund = i32::from(mv.refund);
            let result = bounded(self.timeout, "postgres inbox transition", async {
                let c = self.connection().await?;
                // Through a transaction pooler, a transaction of its own
                // (see `PgConn::lease`).
                if !persistent {
                    sqlx::Executor::execute(&mut *c, "BEGIN")
                        .await
                        .map_err(|e| inbox_err("transition", &e))?;
                }
                let moved = sqlx::query(&sql.transition)
                    .persistent(persistent)
                    .bind(&job.tenant)
                    .bind(&job.id)
                    .bind(&job.event_type)
                    .bind(owner)
                    .bind(to)
                    .bind(mv.due_in_ms)
                    .bind(&mv.error)
                    .bind(refund)
                    .bind(&mv.progress)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| inbox_err("transition", &e))?;
                if !persistent {
                    sqlx::Executor::execute(&mut *c, "COMMIT")
                        .await
                        .map_err(|e| inbox_err("transition", &e))?;
                }
                Ok(moved)
            })
            .await;
            match result {
                Ok(done) => Ok(done.rows_affected() == 1),
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
            let persistent = self.persistent;
            let result = bounded(self.timeout, "postgres inbox peek", async {
                let c = self.connection().await?;
                if !persistent {
                    sqlx::Executor::execute(&mut *c, "BEGIN")
                        .await
                        .map_err(|e| inbox_err("peek", &e))?;
                }
                let row: Option<(String, Option<String>)> = sqlx::query_as(&sql.peek)
                    .persistent(persistent)
                    .bind(&job.tenant)
                    .bind(&job.id)
                    .bind(&job.event_type)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(|e| inbox_err("peek", &e))?;
                if !persistent {
                    sqlx::Executor::execute(&mut *c, "COMMIT")
                        .await
                        .map_err(|e| inbox_err("peek", &e))?;
                }
                Ok(row.map(|(state, owner)| {
                    (State::from_name(&state).unwrap_or(State::Pending), owner)
                }))
            })
            .await;
            if result.is_err() {
                self.discard();
            }
            result
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
            let persistent = self.persistent;
            let timeout = self.timeout;
            let result = bounded(timeout, "postgres inbox begin", async {
                let c = self.connection().await?;
                let begin = if persistent { BEGIN_AS_USUAL } else { "BEGIN" };
                sqlx::Executor::execute(&mut *c, begin)
                    .await
                    .map_err(|e| inbox_err("begin", &e))?;
                sqlx::query_scalar::<_, i64>(&sql.lock)
                    .persistent(persistent)
                    .bind(&job.tenant)
                    .bind(&job.id)
                    .bind(&job.event_type)
                    .bind(owner)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(|e| inbox_err("begin", &e))
            })
            .await;
            match result {
                Ok(Some(txid)) => {
                    self.txid = txid;
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

    fn handle(&mut self) -> Tx<'_> {
        let c = self
            .conn
            .as_mut()
            .expect("a transaction is open on this connection");
        Tx::postgres_on(c, self.persistent)
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
            let persistent = self.persistent;
            let txid = self.txid;
            // The move to done, then COMMIT whatever it did: when the move
            // failed (an aborted transaction, a lost lease) the COMMIT finds
            // the transaction aborted and rolls it back.
            let result = bounded(self.timeout, "postgres inbox commit", async {
                let c = self.connection().await?;
                let moved = sqlx::query(&sql.done_in_tx)
                    .persistent(persistent)
                    .bind(&job.tenant)
                    .bind(&job.id)
                    .bind(&job.event_type)
                    .bind(owner)
                    .bind(txid)
                    .bind(progress)
                    .bind(last)
                    .fetch_one(&mut *c)
                    .await;
                if matches!(&moved, Err(e) if sqlstate(e).is_none()) {
                    // The connection itself failed: no COMMIT to send.
                    return Ok((moved, Ok(())));
                }
                let committed = sqlx::Executor::execute(&mut *c, "COMMIT").await.map(drop);
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
            match (moved, committed) {
                (Ok(_), Ok(())) => Committed::Done,
                (Err(e), Ok(())) => match sqlstate(&e).as_deref() {
                    // Nothing to move: the lease is someone else's, or the
                    // handler ended the transaction itself.
                    Some("22012") => Committed::LostLease,
                    Some("25P02") => Committed::RolledBack(
                        "a statement of the handler failed (its error was ignored), which aborted \
                         the transaction: rolled back"
                            .to_owned(),
                    ),
                    Some(_) => Committed::RolledBack(inbox_err("move to done", &e).to_string()),
                    None => {
                        let why = inbox_err("move to done", &e).to_string();
                        self.discard();
                        Committed::Unknown(why)
                    }
                },
                (_, Err(e)) if sqlstate(&e).is_some() => {
                    // The server refused the COMMIT (a deferred constraint,
                    // a serialization failure): the transaction is gone.
                    Committed::RolledBack(inbox_err("commit", &e).to_string())
                }
                (_, Err(e)) => {
                    let why = inbox_err("commit", &e).to_string();
                    self.discard();
                    Committed::Unknown(why)
                }
            }
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let timeout = self.timeout;
            let Some(c) = self.conn.as_mut() else {
                return Ok(());
            };
            bounded(timeout, "postgres inbox rollback", async {
                sqlx::Executor::execute(c, "ROLLBACK")
                    .await
                    .map(drop)
                    .map_err(|e| inbox_err("rollback", &e))
            })
            .await
        })
    }

    fn discard(&mut self) {
        // Dropping the connection closes its socket; the server rolls back
        // whatever was open there.
        self.conn = None;
    }
}
