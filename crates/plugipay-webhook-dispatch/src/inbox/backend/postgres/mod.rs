//! The PostgreSQL inbox on sqlx: replicas share it; workers claim with
//! `FOR UPDATE SKIP LOCKED` and are woken by `LISTEN/NOTIFY` where the
//! connection allows it (polling otherwise); transactional handlers commit
//! with the event's move to `done`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

mod session;

use session::PgSession;

use super::{Backend, Inserted, NewEvent, Param, Session};
use crate::conn::postgres::{self as pg, execute_locked, PgConn};
use crate::error::{millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::State;
use crate::inbox::query::{Count, FailingRow, ListFilter, Page};
use crate::inbox::sql::InboxSql;
use crate::inbox::types::{Activity, PruneFilter, Record, RetryFilter, Stats, DEFAULT_INBOX_TABLE};
use crate::sql::Dialect;

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
        // connections of the inbox's own (`conn::postgres::Source`).
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

    /// The records `query` selects (`RECORD_COLUMNS` when `whole`, else
    /// `LIST_COLUMNS`).
    async fn records(
        &self,
        what: &str,
        query: Query<'_, Postgres, PgArguments>,
        whole: bool,
    ) -> Result<Vec<Record>, StoreError> {
        let conn = &self.inner.conn;
        conn.bounded(what, async {
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err(what, &err);
            let rows = query.fetch_all(&mut *c).await.map_err(e)?;
            let records = rows
                .iter()
                .map(|r| super::rows::record(r, whole))
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
            let insert = sqlx::query(&sql.insert).persistent(self.inner.conn.persistent);
            let inserted = super::rows::bind_new(insert, e)
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
            Ok(Box::new(PgSession::new(
                self.inner.options.clone(),
                self.inner.sql.clone(),
                conn.timeout,
                conn.persistent,
            )) as Box<dyn Session>)
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
            stats.next_lease_lapse_ms = sqlx::query_scalar(&sql.next_lapse)
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

    fn list<'a>(&'a self, filter: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let (query, params) = self.inner.sql.list(Dialect::Postgres, filter);
            let q = sqlx::query(&query).persistent(self.inner.conn.persistent);
            let records = self.records("list", bind_params(q, params), false).await?;
            Ok(super::page(records, filter.limit()))
        })
    }

    fn count<'a>(
        &'a self,
        filter: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("count", async move {
            let (query, params) = self.inner.sql.count(Dialect::Postgres, filter, at_most);
            let mut c = conn.lease().await?;
            let q = sqlx::query(&query).persistent(self.inner.conn.persistent);
            let n: i64 = bind_params(q, params)
                .fetch_one(&mut *c)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| conn.err("count", &e))?;
            c.finish().await?;
            Ok(super::counted(n, at_most))
        }))
    }

    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("failing types", async move {
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err("failing types", &err);
            let rows = sqlx::query(&self.inner.sql.failing)
                .persistent(self.inner.conn.persistent)
                .bind(i64::from(sample))
                .fetch_all(&mut *c)
                .await
                .map_err(e)?;
            let out = rows
                .iter()
                .map(super::rows::failing)
                .collect::<Result<_, _>>()
                .map_err(e)?;
            c.finish().await?;
            Ok(out)
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let q = sqlx::query(&self.inner.sql.get)
                .persistent(self.inner.conn.persistent)
                .bind(id);
            self.records("get", q, true).await
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
