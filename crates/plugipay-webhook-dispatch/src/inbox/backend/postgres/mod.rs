//! The PostgreSQL inbox on sqlx: replicas share it; workers claim with
//! `FOR UPDATE SKIP LOCKED` and are woken by `LISTEN/NOTIFY` where the
//! connection allows it (polling otherwise); transactional handlers commit
//! with the event's move to `done`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool};
use sqlx::query::Query;
use sqlx::Postgres;

mod calls;
mod session;

use super::Param;
use crate::conn::postgres::{self as pg, PgConn};
use crate::error::{StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::sql::InboxSql;
use crate::inbox::types::{Record, DEFAULT_INBOX_TABLE};
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
