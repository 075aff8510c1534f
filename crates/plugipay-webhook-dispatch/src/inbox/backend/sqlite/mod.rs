//! The SQLite inbox: one file, one machine — the embedded default — on
//! sqlx. Receiving and the tools' queries share a pool (one connection of
//! the inbox's own, or the application's pool); each worker has a
//! connection of its own. sqlx runs each connection on a thread of its own:
//! no statement blocks the async runtime. Opened from a path, the file is in
//! WAL mode with `synchronous=FULL`: an acknowledged event survives a power
//! cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqlitePool};
use sqlx::{Row, Sqlite};

use super::{Backend, Inserted, NewEvent, Param, Session};
use crate::conn::sqlite::{self as conn, Owned, SqliteConn};
use crate::error::{BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::State;
use crate::inbox::query::{Count, FailingRow, ListFilter, Page};
use crate::inbox::sql::InboxSql;
use crate::inbox::types::{Activity, PruneFilter, Record, RetryFilter, Stats, DEFAULT_INBOX_TABLE};
use crate::sql::Dialect;

mod group;
mod session;

use group::Group;
pub use group::DEFAULT_RECEIVE_WINDOW;
use session::SqliteSession;

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// An inbox in an SQLite database file. Several processes on the machine
/// may share the file. Statements run on sqlx's connection threads, never
/// on the async runtime's.
///
/// Opened from a path ([`open`](SqliteInbox::open),
/// [`open_with`](SqliteInbox::open_with), [`builder`](SqliteInbox::builder))
/// the file is in WAL mode with `synchronous=FULL`, and the store timeout
/// is SQLite's busy timeout. Or on the application's own sqlx pool
/// ([`from_pool`](SqliteInbox::from_pool)): its pragmas are the
/// application's, and its busy timeout is read back.
///
/// A transactional handler holds SQLite's write lock while it runs, and a
/// delivery arriving meanwhile waits for it up to the busy timeout: so on
/// SQLite a transactional handler's timeout must be shorter than the busy
/// timeout — by default it is half of it, and
/// [`build`](crate::inbox::InboxBuilder::build) refuses a longer one.
#[derive(Clone)]
pub struct SqliteInbox {
    inner: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    timeout: Duration,
    /// SQLite's busy timeout on the inbox's connections.
    busy: Duration,
    /// What a worker's connection is made with: the pool's options.
    options: SqliteConnectOptions,
    /// Receiving's and the tools' connections.
    conn: SqliteConn,
    sql: Arc<InboxSql>,
    /// Deliveries that share a commit.
    group: Group,
}

impl std::fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.inner.path)
            .field("table", &self.inner.sql.table)
            .finish_non_exhaustive()
    }
}

/// Options of a [`SqliteInbox`]: `SqliteInbox::builder(path).table(…).timeout(…).open().await`.
#[derive(Debug)]
#[must_use]
pub struct SqliteInboxBuilder {
    path: PathBuf,
    table: String,
    timeout: Duration,
    create: bool,
    receive_window: Duration,
}

impl SqliteInboxBuilder {
    /// The table (default `plugipay_webhook_inbox`).
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// How long one store call may take, waiting for SQLite's lock included
    /// (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether to create the file when it does not exist (default yes;
    /// tools that only read say no, so a mistyped path is an error rather
    /// than a new, empty inbox).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Group commit: deliveries received while a commit runs share the
    /// next one (one fsync for all of them), and the caller that commits a
    /// batch waits up to this long for more to join (default
    /// [`DEFAULT_RECEIVE_WINDOW`], 0.2 ms). Each is answered after the
    /// commit that stored it; a row that fails fails its own delivery only.
    /// `Duration::ZERO`: each delivery commits alone.
    pub fn receive_window(mut self, window: Duration) -> Self {
        self.receive_window = window;
        self
    }

    /// Opens the inbox, creating its table or bringing an earlier release's
    /// forward.
    pub async fn open(self) -> Result<SqliteInbox, StoreError> {
        crate::sql::check_table(&self.table)?;
        let (first, options) =
            conn::open(&self.path, self.timeout, true, self.create, "sqlite inbox").await?;
        let conn = SqliteConn::own(first, options, self.timeout, "sqlite inbox");
        SqliteInbox::on(
            conn,
            self.path,
            &self.table,
            self.timeout,
            self.receive_window,
        )
        .await
    }
}

impl SqliteInbox {
    /// Opens (creating if needed) the inbox in the database at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteInbox, StoreError> {
        SqliteInbox::builder(path).open().await
    }

    /// Opens the inbox with a table of your choosing and a store timeout.
    pub async fn open_with(
        path: impl AsRef<Path>,
        table: &str,
        timeout: Duration,
    ) -> Result<SqliteInbox, StoreError> {
        SqliteInbox::builder(path)
            .table(table)
            .timeout(timeout)
            .open()
            .await
    }

    /// Options: table, timeout, whether to create the file.
    pub fn builder(path: impl AsRef<Path>) -> SqliteInboxBuilder {
        SqliteInboxBuilder {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_INBOX_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            create: true,
            receive_window: DEFAULT_RECEIVE_WINDOW,
        }
    }

    /// The inbox in table `name` on the application's own sqlx pool:
    /// receiving and the tools' queries take connections from it (each
    /// given back once its call succeeded, closed when it failed or timed
    /// out); workers hold connections of their own, made with the pool's
    /// connect options, so they never take the application's. The pool's
    /// database must be a file (not `:memory:`: each connection would see
    /// a database of its own). Its pragmas stay the application's: WAL and
    /// `synchronous=FULL` are what make an acknowledged event survive a
    /// power cut. Its busy timeout (sqlx's default: 5 s) is the longest a
    /// transactional handler may hold the write lock. Creates the table, or
    /// brings an earlier release's forward.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use plugipay_webhook_dispatch::inbox::SqliteInbox;
    /// use plugipay_webhook_dispatch::sqlx::sqlite::{
    ///     SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    /// };
    ///
    /// let options = SqliteConnectOptions::new()
    ///     .filename("app.sqlite3")
    ///     .create_if_missing(true)
    ///     .journal_mode(SqliteJournalMode::Wal)
    ///     .synchronous(SqliteSynchronous::Full);
    /// let pool = SqlitePoolOptions::new().connect_with(options).await?;
    /// let inbox = SqliteInbox::from_pool(pool.clone(), "plugipay_webhook_inbox").await?;
    /// # let _ = inbox; Ok(()) }
    /// ```
    pub async fn from_pool(pool: SqlitePool, name: &str) -> Result<SqliteInbox, StoreError> {
        crate::sql::check_table(name)?;
        let busy = conn::check_pool(&pool, "sqlite inbox").await?;
        let path = pool.connect_options().get_filename().to_path_buf();
        let conn = SqliteConn::pooled(pool, DEFAULT_STORE_TIMEOUT, "sqlite inbox");
        SqliteInbox::on(conn, path, name, busy, DEFAULT_RECEIVE_WINDOW).await
    }

    async fn on(
        conn: SqliteConn,
        path: PathBuf,
        table: &str,
        busy: Duration,
        receive_window: Duration,
    ) -> Result<SqliteInbox, StoreError> {
        let sql = Arc::new(InboxSql::new(table, Dialect::Sqlite));
        conn.ensure(&sql.schema).await?;
        // Workers reopen the file the inbox opened: never create another.
        let options = conn.options().clone().create_if_missing(false);
        Ok(SqliteInbox {
            inner: Arc::new(Shared {
                path,
                timeout: conn.timeout(),
                busy,
                options,
                conn,
                sql,
                group: Group::new(receive_window),
            }),
        })
    }

    fn sql(&self) -> Arc<InboxSql> {
        self.inner.sql.clone()
    }
}

/// `query` with a built query's parameters bound.
fn bound(query: &str, params: Vec<Param>) -> Query<'_> {
    params.into_iter().fold(sqlx::query(query), |q, p| match p {
        Param::Text(t) => q.bind(t),
        Param::Int(i) => q.bind(i),
    })
}

impl Backend for SqliteInbox {
    fn can_order(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        if !self.inner.group.window.is_zero() {
            return Box::pin(self.insert_grouped(e));
        }
        let (e, sql) = (e.clone(), self.sql());
        Box::pin(self.inner.conn.with("insert", move |c| {
            Box::pin(async move { group::insert_one(c, &sql, &e).await })
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        let conn = Owned::new(
            self.inner.options.clone(),
            self.inner.timeout,
            "sqlite inbox",
        );
        let sql = self.sql();
        Box::pin(async move {
            let mut session = SqliteSession { conn, sql };
            // Fails now when the file cannot be opened.
            session.conn.get().await?;
            Ok(Box::new(session) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(max))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        let sql = self.sql();
        Box::pin(self.inner.conn.with("stats", move |conn| {
            Box::pin(async move {
                let mut stats = Stats::default();
                let rows: Vec<(String, i64)> = sqlx::query_as(&sql.count_by_state)
                    .fetch_all(&mut *conn)
                    .await?;
                for (state, n) in rows {
                    if let Some(state) = State::from_name(&state) {
                        stats.counts.insert(state, n.try_into().unwrap_or(0));
                    }
                }
                stats.oldest_due_ms = sqlx::query_scalar(&sql.oldest_due)
                    .fetch_one(&mut *conn)
                    .await?;
                stats.next_lease_lapse_ms = sqlx::query_scalar(&sql.next_lapse)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(stats)
            })
        }))
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        let sql = self.sql();
        Box::pin(self.inner.conn.with("activity", move |conn| {
            Box::pin(async move {
                let mut counts = Vec::new();
                for query in [&sql.activity_received, &sql.activity_done] {
                    let rows: Vec<(i64, i64)> = sqlx::query_as(query)
                        .bind(since_ms)
                        .bind(bucket_ms)
                        .fetch_all(&mut *conn)
                        .await?;
                    counts.push(super::bucketed(rows, buckets));
                }
                let processed = counts.pop().unwrap_or_default();
                let received = counts.pop().unwrap_or_default();
                Ok(Activity {
                    since_ms,
                    bucket_ms,
                    received,
                    processed,
                })
            })
        }))
    }

    fn list<'a>(&'a self, filter: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>> {
        let (query, params) = self.inner.sql.list(Dialect::Sqlite, filter);
        let limit = filter.limit();
        Box::pin(self.inner.conn.with("list", move |conn| {
            Box::pin(async move {
                let rows = bound(&query, params).fetch_all(&mut *conn).await?;
                let records = rows
                    .iter()
                    .map(|r| super::rows::record(r, false))
                    .collect::<Result<_, _>>()?;
                Ok(super::page(records, limit))
            })
        }))
    }

    fn count<'a>(
        &'a self,
        filter: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>> {
        let (query, params) = self.inner.sql.count(Dialect::Sqlite, filter, at_most);
        Box::pin(self.inner.conn.with("count", move |conn| {
            Box::pin(async move {
                let n: i64 = bound(&query, params)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                Ok(super::counted(n, at_most))
            })
        }))
    }

    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>> {
        let sql = self.sql();
        Box::pin(self.inner.conn.with("failing types", move |conn| {
            Box::pin(async move {
                let rows = sqlx::query(&sql.failing)
                    .bind(i64::from(sample))
                    .fetch_all(&mut *conn)
                    .await?;
                rows.iter().map(super::rows::failing).collect()
            })
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let (id, sql) = (id.to_owned(), self.sql());
        Box::pin(self.inner.conn.with("get", move |conn| {
            Box::pin(async move {
                let rows = sqlx::query(&sql.get).bind(id).fetch_all(&mut *conn).await?;
                rows.iter().map(|r| super::rows::record(r, true)).collect()
            })
        }))
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (f, sql) = (f.clone(), self.sql());
        Box::pin(self.inner.conn.with("retry", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(&sql.revive)
                    .bind(f.id)
                    .bind(f.dead)
                    .bind(f.skipped)
                    .bind(f.done)
                    .bind(f.event_type)
                    .bind(f.tenant)
                    .bind(f.stale)
                    .bind(f.handler)
                    .bind(f.since_ms)
                    .execute(conn)
                    .await?;
                Ok(done.rows_affected())
            })
        }))
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (ms, skipped, sql) = (crate::error::millis(f.older_than), f.skipped, self.sql());
        Box::pin(self.inner.conn.with("prune", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(&sql.prune)
                    .bind(ms)
                    .bind(skipped)
                    .execute(conn)
                    .await?;
                Ok(done.rows_affected())
            })
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        let sql = sql.to_owned();
        Some(Box::pin(self.inner.conn.with("execute", move |conn| {
            Box::pin(async move {
                // An error drops the transaction (rolled back) and closes
                // the connection.
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                sqlx::Executor::execute(&mut *tx, sql.as_str()).await?;
                tx.commit().await
            })
        })))
    }

    fn lock_timeout(&self) -> Option<Duration> {
        Some(self.inner.busy)
    }
}
