//! The SQLite store: one file, one machine, survives restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use crate::store::{
    bounded, millis, BoxFuture, Claim, ClaimToken, DedupStore, EventKey, StoreError,
    DEFAULT_STORE_TIMEOUT,
};

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
/// within the timeout instead of queueing them.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    sql: Statements,
    path: PathBuf,
    timeout: Duration,
    claims: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

const NOW: &str = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";

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

    /// Opens (creating if needed) the database and the table.
    pub fn open(self) -> Result<SqliteStore, StoreError> {
        sql::check_table(&self.table)?;
        let path = self.path;
        let conn =
            Connection::open(&path).map_err(|e| err(&format!("open {}", path.display()), &e))?;
        conn.busy_timeout(self.timeout)
            .map_err(|e| err("busy_timeout", &e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err("WAL", &e))?;
        let sql = sql::statements(&self.table, |n| format!("?{n}"), NOW);
        conn.execute_batch(&sql.create)
            .map_err(|e| err("create table", &e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                sql,
                path,
                timeout: self.timeout,
                claims: AtomicU64::new(0),
            }),
        })
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, table
    /// `plugipay_webhook_events`, 5 s timeout.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::builder(path).open()
    }

    /// Opens the database at `path` with a table of your choosing.
    pub fn open_with_table(path: impl AsRef<Path>, table: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::builder(path).table(table).open()
    }

    /// Options: table and timeout.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
        }
    }

    /// Runs `f` on the blocking pool, under the timeout (a call waiting for
    /// the connection behind a locked file is answered, not queued).
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        bounded(self.inner.timeout, &format!("sqlite {what}"), async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| StoreError::new(format!("sqlite task: {e}")))?
        })
        .await
    }

    /// One statement changing one claimed row; `Ok(true)` when it did.
    async fn owned_update(
        &self,
        what: &'static str,
        statement: fn(&Statements) -> &str,
        params: impl rusqlite::Params + Send + 'static,
    ) -> Result<bool, StoreError> {
        self.blocking(what, move |i| {
            let n = i
                .conn()?
                .execute(statement(&i.sql), params)
                .map_err(|e| err(what, &e))?;
            Ok(n == 1)
        })
        .await
    }
}

fn err(what: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::new(format!("sqlite {what}: {e}"))
}

impl Inner {
    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::new("sqlite connection lock poisoned"))
    }

    fn claim(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        let conn = self.conn()?;
        if self
            .claims
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            conn.execute(&self.sql.purge, [])
                .map_err(|e| err("purge", &e))?;
        }
        let token = ClaimToken::new();
        let won: Option<String> = conn
            .query_row(
                &self.sql.claim,
                params![key.id, key.event_type, token.as_str(), millis(lease)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| err("claim", &e))?;
        if won.as_deref() == Some(token.as_str()) {
            return Ok(Claim::Acquired(token));
        }
        let state: Option<String> = conn
            .query_row(&self.sql.state, params![key.id, key.event_type], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| err("state", &e))?;
        Ok(match state.as_deref() {
            Some("done") => Claim::Done,
            _ => Claim::InProgress,
        })
    }
}

impl DedupStore for SqliteStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let key = key.clone();
        Box::pin(self.blocking("claim", move |i| i.claim(&key, lease)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = (
            millis(retention),
            key.id.clone(),
            key.event_type.clone(),
            token.as_str().to_owned(),
        );
        Box::pin(self.owned_update("complete", |s| &s.complete, params))
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = (
            key.id.clone(),
            key.event_type.clone(),
            token.as_str().to_owned(),
        );
        Box::pin(self.owned_update("release", |s| &s.release, params))
    }

    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let params = (
            millis(lease),
            key.id.clone(),
            key.event_type.clone(),
            token.as_str().to_owned(),
        );
        Box::pin(self.owned_update("extend", |s| &s.extend, params))
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.blocking("health check", |i| {
            i.conn()?
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| err("health check", &e))
        }))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
