//! The SQLite store: one file, one machine, survives restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use crate::store::{millis, BoxFuture, Claim, ClaimToken, DedupStore, EventKey, StoreError};

/// A store in an SQLite database file, for a receiver on one machine that
/// restarts: events handled before a restart stay duplicates after it.
/// Several processes on the machine may share the file (WAL mode, a busy
/// timeout). Creates its table on first use. Runs with `synchronous=NORMAL`:
/// records survive process crashes; a power loss can lose the latest few,
/// whose events would then run again on redelivery (never be lost).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
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

const NOW: &str = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, table `plugipay_webhook_events`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_table(path, DEFAULT_TABLE)
    }

    /// Opens the database at `path` with a table of your choosing.
    pub fn open_with_table(path: impl AsRef<Path>, table: &str) -> Result<SqliteStore, StoreError> {
        sql::check_table(table)?;
        let path = path.as_ref().to_path_buf();
        let conn =
            Connection::open(&path).map_err(|e| err(&format!("open {}", path.display()), &e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| err("busy_timeout", &e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err("WAL", &e))?;
        let sql = sql::statements(table, |n| format!("?{n}"), NOW);
        conn.execute_batch(&sql.create)
            .map_err(|e| err("create table", &e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                sql,
                path,
                claims: AtomicU64::new(0),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::new(format!("sqlite task: {e}")))?
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
        Box::pin(self.blocking(move |i| i.claim(&key, lease)))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (key, token) = (key.clone(), token.clone());
        Box::pin(self.blocking(move |i| {
            let n = i
                .conn()?
                .execute(
                    &i.sql.complete,
                    params![millis(retention), key.id, key.event_type, token.as_str()],
                )
                .map_err(|e| err("complete", &e))?;
            Ok(n == 1)
        }))
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (key, token) = (key.clone(), token.clone());
        Box::pin(self.blocking(move |i| {
            let n = i
                .conn()?
                .execute(
                    &i.sql.release,
                    params![key.id, key.event_type, token.as_str()],
                )
                .map_err(|e| err("release", &e))?;
            Ok(n == 1)
        }))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}
