//! The SQLite store: one file, one machine, survives restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqlitePool;

use super::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use super::{Claim, DedupStore, EventKey};
use crate::conn::sqlite::{self as conn, SqliteConn};
use crate::error::{millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::sql::Dialect;
use crate::token::ClaimToken;

/// A store in an SQLite database file, for a receiver on one machine that
/// restarts: events handled before a restart stay duplicates after it.
/// Several processes on the machine may share the file (WAL mode, a busy
/// timeout). Creates its table on first use. Runs with `synchronous=NORMAL`:
/// records survive process crashes; a power loss can lose the latest few,
/// whose events would then run again on redelivery (never be lost).
///
/// Every call is bounded by a timeout (default [`DEFAULT_STORE_TIMEOUT`],
/// 5 s; [`SqliteStoreBuilder::timeout`]), which is also SQLite's busy
/// timeout: a database file locked by another process makes deliveries 503
/// within the timeout instead of queueing them. Statements run on sqlx's
/// connection thread, never on the async runtime's. On the application's
/// own sqlx pool: [`from_pool`](SqliteStore::from_pool).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: SqliteConn,
    sql: Statements,
    path: PathBuf,
    claims: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Options of a [`SqliteStore`]: `SqliteStore::builder(path).table(…).timeout(…).open()`.
#[derive(Debug)]
#[must_use]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    table: String,
    timeout: Duration,
}

impl SqliteStoreBuilder {
    /// The table (default `plugipay_webhook_events`; at most
    /// [`MAX_TABLE_NAME_LEN`](crate::MAX_TABLE_NAME_LEN) ASCII letters,
    /// digits and underscores; reserved words are fine).
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// How long one store call may take, waiting for a lock included
    /// (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens (creating if needed) the database and the table, bringing a
    /// table of an earlier release forward.
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        crate::sql::check_table(&self.table)?;
        let (first, options) =
            conn::open(&self.path, self.timeout, false, true, "sqlite store").await?;
        let conn = SqliteConn::own(first, options, self.timeout, "sqlite store");
        SqliteStore::on(conn, self.path, &self.table).await
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, table
    /// `plugipay_webhook_events`, 5 s timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::builder(path).open().await
    }

    /// Opens the database at `path` with a table of your choosing.
    pub async fn open_with_table(
        path: impl AsRef<Path>,
        table: &str,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::builder(path).table(table).open().await
    }

    /// Options: table and timeout.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
        }
    }

    /// The store in table `name` on the application's own sqlx pool (each
    /// call takes a connection and gives it back once it succeeded; one
    /// that failed or timed out is closed, never returned mid-statement).
    /// The pool's database must be a file (not `:memory:`); its pragmas are
    /// the application's (WAL is advised when several processes share the
    /// file). Creates the table if needed.
    pub async fn from_pool(pool: SqlitePool, name: &str) -> Result<SqliteStore, StoreError> {
        crate::sql::check_table(name)?;
        conn::check_pool(&pool, "sqlite store").await?;
        let path = pool.connect_options().get_filename().to_path_buf();
        let conn = SqliteConn::pooled(pool, DEFAULT_STORE_TIMEOUT, "sqlite store");
        SqliteStore::on(conn, path, name).await
    }

    async fn on(conn: SqliteConn, path: PathBuf, table: &str) -> Result<SqliteStore, StoreError> {
        let sql = sql::statements(table, Dialect::Sqlite);
        conn.ensure(&sql.schema).await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                conn,
                sql,
                path,
                claims: AtomicU64::new(0),
            }),
        })
    }

    /// One statement changing one claimed row; `Ok(true)` when it did.
    async fn owned_update(
        &self,
        what: &'static str,
        statement: fn(&Statements) -> &str,
        params: (String, String, String, String, Option<i64>),
    ) -> Result<bool, StoreError> {
        let inner = self.inner.clone();
        self.inner
            .conn
            .with(what, move |conn| {
                Box::pin(async move {
                    let (tenant, id, ty, owner, ms) = params;
                    let mut q = sqlx::query(statement(&inner.sql))
                        .bind(tenant)
                        .bind(id)
                        .bind(ty)
                        .bind(owner);
                    if let Some(ms) = ms {
                        q = q.bind(ms);
                    }
                    Ok(q.execute(conn).await?.rows_affected() == 1)
                })
            })
            .await
    }
}

fn owned(
    key: &EventKey,
    token: &ClaimToken,
    ms: Option<i64>,
) -> (String, String, String, String, Option<i64>) {
    (
        key.tenant.clone(),
        key.id.clone(),
        key.event_type.clone(),
        token.as_str().to_owned(),
        ms,
    )
}

impl DedupStore for SqliteStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let key = key.clone();
        let inner = self.inner.clone();
        let purge = inner
            .claims
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY);
        Box::pin(self.inner.conn.with("claim", move |conn| {
            Box::pin(async move {
                if purge {
                    sqlx::query(&inner.sql.purge).execute(&mut *conn).await?;
                }
                let token = ClaimToken::new();
                let won: Option<String> = sqlx::query_scalar(&inner.sql.claim)
                    .bind(&key.tenant)
                    .bind(&key.id)
                    .bind(&key.event_type)
                    .bind(token.as_str())
                    .bind(millis(lease))
                    .fetch_optional(&mut *conn)
                    .await?;
                if won.as_deref() == Some(token.as_str()) {
                    return Ok(Claim::Acquired(token));
                }
                let state: Option<String> = sqlx::query_scalar(&inner.sql.state)
                    .bind(&key.tenant)
                    .bind(&key.id)
                    .bind(&key.event_type)
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(match state.as_deref() {
                    Some("done") => Claim::Done,
                    _ => Claim::InProgress,
                })
            })
        }))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = owned(key, token, Some(millis(retention)));
        Box::pin(self.owned_update("complete", |s| &s.complete, params))
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = owned(key, token, None);
        Box::pin(self.owned_update("release", |s| &s.release, params))
    }

    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = owned(key, token, Some(millis(lease)));
        Box::pin(self.owned_update("extend", |s| &s.extend, params))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.inner.conn.with("health check", |conn| {
            Box::pin(async move {
                sqlx::query("SELECT 1").execute(conn).await?;
                Ok(())
            })
        }))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
