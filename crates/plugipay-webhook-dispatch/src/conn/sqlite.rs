//! SQLite through sqlx, shared by the de-duplication store and the inbox:
//! the shared calls (receiving, the tools' queries) on the application's
//! pool (`from_pool`) or, opened from a path, on one connection of the
//! store's own taken in turn; each inbox worker on a connection of its own
//! made with the same options. sqlx runs every SQLite connection on a thread of its
//! own, so no statement blocks the async runtime's threads; a connection's
//! commands run in the order they were sent.
//!
//! A call that fails or outlives its timeout does not give its connection
//! back (to the pool, or to the store's slot): it is closed (SQLite rolls back whatever it had open)
//! once the statement it was running ends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, Sqlite};

use crate::error::{bounded, BoxFuture, StoreError};
use crate::sql::{Dialect, Schema};

/// The error of `what`, with SQLite's own reason and (extended) result
/// code: `database is locked (5)`.
pub(crate) fn err(what: &str, e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            StoreError::new(format!("{what}: {} ({code})", db.message()))
        }
        sqlx::Error::PoolTimedOut => StoreError::new(format!(
            "{what}: no connection of the pool was free within its acquire timeout"
        )),
        _ => StoreError::caused(what, e),
    }
}

/// How the family opens a database file it owns: WAL (readers never wait
/// for the writer; several processes may share the file), SQLite's busy
/// timeout, `synchronous=FULL` (`full_sync`: the inbox — a commit survives
/// a power cut) or `NORMAL` (the de-duplication store: a lost record only
/// runs a handler again), the file created when `create`.
pub(crate) fn options(
    path: &Path,
    busy: Duration,
    full_sync: bool,
    create: bool,
) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if full_sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(busy)
        // The statements are few and fixed: each is prepared once per
        // connection (the default capacity, 100, is plenty).
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
}

/// Opens a connection on `path` with [`options`]; fails now, with the
/// reason, when the file cannot be opened.
pub(crate) async fn open(
    path: &Path,
    busy: Duration,
    full_sync: bool,
    create: bool,
    what: &str,
) -> Result<(SqliteConnection, SqliteConnectOptions), StoreError> {
    if !create && !path.exists() {
        return Err(StoreError::new(format!(
            "{what}: {} does not exist",
            path.display()
        )));
    }
    let options = options(path, busy, full_sync, create);
    let conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| err(&format!("{what} open {}", path.display()), &e))?;
    Ok((conn, options))
}

/// What the family needs of an application's pool: a database on a file
/// (an in-memory database is one per connection, and the inbox's workers
/// hold connections of their own), and its busy timeout, read back.
pub(crate) async fn check_pool(pool: &SqlitePool, what: &str) -> Result<Duration, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| err(&format!("{what} connect"), &e))?;
    let file: String = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| err(&format!("{what} connect"), &e))?;
    if file.is_empty() {
        return Err(StoreError::new(format!(
            "{what}: the pool's database is in memory (each connection would see a \
             database of its own): open it on a file"
        )));
    }
    let busy: i64 = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| err(&format!("{what} connect"), &e))?;
    Ok(Duration::from_millis(u64::try_from(busy).unwrap_or(0)))
}

/// A connection borrowed from the pool for one call: given back when the
/// call succeeded, closed otherwise (also when the call's future is
/// dropped mid-statement — the next call gets a fresh one).
struct Lease {
    conn: Option<PoolConnection<Sqlite>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// Where the shared calls' connection comes from.
#[derive(Clone)]
enum Source {
    /// The application's pool (`from_pool`).
    Pool(SqlitePool),
    /// Opened from a path: one connection of the store's own, the calls
    /// queueing for it in turn (as they would for SQLite's write lock
    /// anyway) — a pool's acquire and release on every call cost a fifth
    /// of the receiving rate.
    Own(Arc<tokio::sync::Mutex<Option<SqliteConnection>>>),
}

/// The shared calls' connections, every call bounded by the store timeout.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteConn {
    source: Source,
    /// What another connection is made with (a worker's, or this one's
    /// again after it was thrown away).
    options: SqliteConnectOptions,
    timeout: Duration,
    what: String,
}

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConn")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl SqliteConn {
    /// On the application's pool.
    pub(crate) fn pooled(pool: SqlitePool, timeout: Duration, what: &str) -> SqliteConn {
        SqliteConn {
            options: (*pool.connect_options()).clone(),
            source: Source::Pool(pool),
            timeout,
            what: what.to_owned(),
        }
    }

    /// On a connection of its own (made with `options`).
    pub(crate) fn own(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        timeout: Duration,
        what: &str,
    ) -> SqliteConn {
        SqliteConn {
            source: Source::Own(Arc::new(tokio::sync::Mutex::new(Some(conn)))),
            options,
            timeout,
            what: what.to_owned(),
        }
    }

    /// The store timeout every call is bounded by.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What the connections are made with.
    pub(crate) fn options(&self) -> &SqliteConnectOptions {
        &self.options
    }

    /// Brings `schema` forward (unbounded: an upgrade may take a while),
    /// on a connection of the source.
    pub(crate) async fn ensure(&self, schema: &Schema) -> Result<(), StoreError> {
        match &self.source {
            Source::Pool(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(|e| err(&format!("{} connect", self.what), &e))?;
                ensure_schema(&mut conn, schema, &self.what).await
            }
            Source::Own(slot) => {
                let mut slot = slot.lock().await;
                let conn = slot.as_mut().expect("opened with its connection");
                ensure_schema(conn, schema, &self.what).await
            }
        }
    }

    /// Runs `f` on the connection, bounded by the store timeout (waiting
    /// for the connection included); an error is named after `what`. A
    /// call that fails or is dropped mid-statement (timed out) never gives
    /// its connection back: it is closed once its statement ends, and the
    /// next call opens another.
    pub(crate) async fn with<R>(
        &self,
        what: &str,
        f: impl for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<R, sqlx::Error>>,
    ) -> Result<R, StoreError> {
        let name = format!("{} {what}", self.what);
        bounded(self.timeout, &name, async {
            match &self.source {
                Source::Pool(pool) => {
                    let mut lease = Lease {
                        conn: Some(pool.acquire().await.map_err(|e| err(&name, &e))?),
                    };
                    let conn = lease.conn.as_mut().expect("a lease holds its connection");
                    let r = f(conn).await.map_err(|e| err(&name, &e))?;
                    // Succeeded: back to the pool.
                    drop(lease.conn.take());
                    Ok(r)
                }
                Source::Own(slot) => {
                    let mut slot = slot.lock().await;
                    // Taken out while the call runs: dropped mid-statement,
                    // it is closed, and the slot stays empty.
                    let mut conn = match slot.take() {
                        Some(conn) => conn,
                        None => SqliteConnection::connect_with(&self.options)
                            .await
                            .map_err(|e| err(&format!("{name} connect"), &e))?,
                    };
                    let r = f(&mut conn).await.map_err(|e| err(&name, &e))?;
                    *slot = Some(conn);
                    Ok(r)
                }
            }
        })
        .await
    }
}

/// Brings `schema` to its current version, in one `BEGIN IMMEDIATE`
/// transaction (processes opening the file together wait for each other).
pub(crate) async fn ensure_schema(
    conn: &mut SqliteConnection,
    schema: &Schema,
    what: &str,
) -> Result<(), StoreError> {
    let e = |step: &str| {
        let what = format!("{what} {step}");
        move |e: sqlx::Error| err(&what, &e)
    };
    let (bookkeeping, read, record) = Schema::bookkeeping(Dialect::Sqlite);
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(e("schema"))?;
    // Executor::execute with the text (not `raw_sql`, whose future is
    // not provably `Send` for every lifetime inside a boxed future).
    sqlx::Executor::execute(&mut *tx, bookkeeping.as_str())
        .await
        .map_err(e("schema"))?;
    let recorded: Option<i64> = sqlx::query_scalar(&read)
        .bind(&schema.table)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e("schema"))?;
    let exists: i64 = sqlx::query_scalar(Dialect::Sqlite.table_exists())
        .bind(&schema.table)
        .fetch_one(&mut *tx)
        .await
        .map_err(e("schema"))?;
    // An error rolls back: the transaction is dropped.
    let plan = schema.plan(recorded, exists > 0)?;
    if plan.is_empty() && recorded.is_some() {
        return tx.commit().await.map_err(e("schema"));
    }
    for statements in plan {
        sqlx::Executor::execute(&mut *tx, statements)
            .await
            .map_err(e("schema upgrade"))?;
    }
    sqlx::query(&record)
        .bind(&schema.table)
        .bind(schema.version)
        .execute(&mut *tx)
        .await
        .map_err(e("schema"))?;
    tx.commit().await.map_err(e("schema"))
}

/// A connection of a worker's own, made with `options`: opened when first
/// needed and again after [`Owned::discard`].
pub(crate) struct Owned {
    conn: Option<SqliteConnection>,
    options: SqliteConnectOptions,
    timeout: Duration,
    pub(crate) what: String,
}

impl Owned {
    pub(crate) fn new(options: SqliteConnectOptions, timeout: Duration, what: &str) -> Owned {
        Owned {
            conn: None,
            options,
            timeout,
            what: what.to_owned(),
        }
    }

    /// The connection, opened if there is none (bounded).
    pub(crate) async fn get(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        if self.conn.is_none() {
            let what = format!("{} connect", self.what);
            let opened = bounded(self.timeout, &what, async {
                SqliteConnection::connect_with(&self.options)
                    .await
                    .map_err(|e| err(&what, &e))
            })
            .await?;
            self.conn = Some(opened);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// The store timeout its calls are bounded by.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection, if one is open.
    pub(crate) fn current(&mut self) -> Option<&mut SqliteConnection> {
        self.conn.as_mut()
    }

    /// Throws the connection away: its thread closes it (SQLite rolling
    /// back whatever was open) once the statement it runs, if any, ends.
    pub(crate) fn discard(&mut self) {
        self.conn = None;
    }
}
