//! The SQLite inbox: one file, one machine — the embedded default.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use plugipay_webhook::WebhookEvent;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    Backend, Inserted, Job, NewEvent, Record, RetryFilter, Session, State, Stats, Tx, TxEnd,
    TxHandler, DEFAULT_INBOX_TABLE,
};
use crate::store::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};

const NOW: &str = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";

fn err(what: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::new(format!("sqlite inbox {what}: {e}"))
}

/// An inbox in an SQLite database file (WAL mode). Several processes on the
/// machine may share the file. Transactional handlers hold SQLite's write
/// lock while they run: keep them short.
#[derive(Clone)]
pub struct SqliteInbox {
    inner: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    table: String,
    timeout: Duration,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.inner.path)
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| err(&format!("open {}", path.display()), &e))?;
    conn.busy_timeout(timeout)
        .map_err(|e| err("busy_timeout", &e))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| err("WAL", &e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| err("synchronous", &e))?;
    Ok(conn)
}

impl SqliteInbox {
    /// Opens (creating if needed) the inbox in the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteInbox, StoreError> {
        SqliteInbox::open_with(path, DEFAULT_INBOX_TABLE, DEFAULT_STORE_TIMEOUT)
    }

    /// Opens the inbox with a table of your choosing and a store timeout.
    pub fn open_with(
        path: impl AsRef<Path>,
        table: &str,
        timeout: Duration,
    ) -> Result<SqliteInbox, StoreError> {
        crate::sql::check_table(table)?;
        let path = path.as_ref().to_path_buf();
        let conn = open_conn(&path, timeout)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                body BLOB NOT NULL,
                signature TEXT NOT NULL,
                matched_secret INTEGER NOT NULL,
                account_id TEXT,
                occurred_at TEXT,
                received_at INTEGER NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER NOT NULL,
                lease_owner TEXT,
                lease_until INTEGER,
                last_error TEXT,
                updated_at INTEGER NOT NULL,
                PRIMARY KEY (event_id, event_type)
            );
            CREATE INDEX IF NOT EXISTS \"{table}_due\" ON \"{table}\" (state, next_attempt_at);"
        ))
        .map_err(|e| err("create table", &e))?;
        Ok(SqliteInbox {
            inner: Arc::new(Shared {
                path,
                table: table.to_owned(),
                timeout,
                conn: Mutex::new(conn),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection, &str) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        bounded(inner.timeout, &format!("sqlite inbox {what}"), async move {
            tokio::task::spawn_blocking(move || {
                let conn = inner
                    .conn
                    .lock()
                    .map_err(|_| StoreError::new("sqlite inbox lock poisoned"))?;
                f(&conn, &inner.table).map_err(|e| err(what, &e))
            })
            .await
            .map_err(|e| StoreError::new(format!("sqlite inbox task: {e}")))?
        })
        .await
    }
}

fn record_from(row: &rusqlite::Row<'_>) -> Result<Record, rusqlite::Error> {
    let state: String = row.get("state")?;
    Ok(Record {
        id: row.get("event_id")?,
        event_type: row.get("event_type")?,
        state: State::from_name(&state).unwrap_or(State::Pending),
        attempts: row
            .get::<_, i64>("attempts")?
            .try_into()
            .unwrap_or(u32::MAX),
        received_at_ms: row.get("received_at")?,
        next_attempt_at_ms: row.get("next_attempt_at")?,
        last_error: row.get("last_error")?,
        account_id: row.get("account_id")?,
        body: Bytes::from(row.get::<_, Vec<u8>>("body")?),
        signature: row.get("signature")?,
    })
}

const COLUMNS: &str = "event_id, event_type, state, attempts, received_at, next_attempt_at, last_error, account_id, body, signature";

impl Backend for SqliteInbox {
    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        let e = e.clone();
        Box::pin(self.blocking("insert", move |conn, t| {
            let n = conn.execute(
                &format!(
                    "INSERT INTO \"{t}\" (event_id, event_type, body, signature, matched_secret, account_id,
                        occurred_at, received_at, state, attempts, next_attempt_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, {NOW}, ?8, 0, {NOW}, {NOW})
                     ON CONFLICT (event_id, event_type) DO NOTHING"
                ),
                params![e.id, e.event_type, &e.body[..], e.signature, e.matched_secret, e.account_id, e.occurred_at, e.state.as_str()],
            )?;
            if n == 1 {
                return Ok(Inserted::New);
            }
            let revived = conn.execute(
                &format!(
                    "UPDATE \"{t}\" SET state = 'pending', attempts = 0, next_attempt_at = {NOW},
                        last_error = NULL, updated_at = {NOW}
                     WHERE event_id = ?1 AND event_type = ?2 AND state = 'dead'"
                ),
                params![e.id, e.event_type],
            )?;
            Ok(if revived == 1 { Inserted::Revived } else { Inserted::Duplicate })
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            let conn = open_conn(&self.inner.path, self.inner.timeout)?;
            Ok(Box::new(SqliteSession {
                conn: Arc::new(Mutex::new(conn)),
                table: self.inner.table.clone(),
                timeout: self.inner.timeout,
            }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(max))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.blocking("stats", |conn, t| {
            let mut stats = Stats::default();
            let mut q = conn.prepare(&format!(
                "SELECT state, COUNT(*) FROM \"{t}\" GROUP BY state"
            ))?;
            let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                if let Some(state) = State::from_name(&state) {
                    stats.counts.insert(state, n.try_into().unwrap_or(0));
                }
            }
            stats.oldest_due_ms = conn.query_row(
                &format!(
                    "SELECT COALESCE(MAX({NOW} - MIN(next_attempt_at), 0), 0) FROM \"{t}\"
                     WHERE state = 'pending' AND next_attempt_at <= {NOW}"
                ),
                [],
                |r| r.get(0),
            )?;
            Ok(stats)
        }))
    }

    fn list<'a>(
        &'a self,
        state: Option<State>,
        event_type: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let event_type = event_type.map(str::to_owned);
        Box::pin(self.blocking("list", move |conn, t| {
            let mut q = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM \"{t}\" WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR event_type = ?2)
                 ORDER BY received_at, event_id LIMIT ?3"
            ))?;
            let rows = q.query_map(params![state.map(State::as_str), event_type, limit], record_from)?;
            rows.collect()
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let id = id.to_owned();
        Box::pin(self.blocking("get", move |conn, t| {
            let mut q = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM \"{t}\" WHERE event_id = ?1 ORDER BY event_type"
            ))?;
            let rows = q.query_map(params![id], record_from)?;
            rows.collect()
        }))
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let f = f.clone();
        Box::pin(self.blocking("retry", move |conn, t| {
            let n = conn.execute(
                &format!(
                    "UPDATE \"{t}\" SET state = 'pending', attempts = 0, next_attempt_at = {NOW},
                        last_error = NULL, updated_at = {NOW}
                     WHERE ((?1 IS NOT NULL AND event_id = ?1 AND state IN ('dead', 'skipped'))
                            OR (?1 IS NULL AND ((?2 AND state = 'dead') OR (?3 AND state = 'skipped'))))
                       AND (?4 IS NULL OR event_type = ?4)"
                ),
                params![f.id, f.dead, f.skipped, f.event_type],
            )?;
            Ok(n as u64)
        }))
    }

    fn prune(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        let ms = millis(older_than);
        Box::pin(self.blocking("prune", move |conn, t| {
            let n = conn.execute(
                &format!("DELETE FROM \"{t}\" WHERE state IN ('done', 'skipped') AND updated_at < {NOW} - ?1"),
                params![ms],
            )?;
            Ok(n as u64)
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let sql = sql.to_owned();
        Box::pin(self.blocking("execute", move |conn, _| conn.execute_batch(&sql)))
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

struct SqliteSession {
    conn: Arc<Mutex<Connection>>,
    table: String,
    timeout: Duration,
}

impl SqliteSession {
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection, &str) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (conn, table) = (self.conn.clone(), self.table.clone());
        bounded(self.timeout, &format!("sqlite inbox {what}"), async move {
            tokio::task::spawn_blocking(move || {
                let conn = conn
                    .lock()
                    .map_err(|_| StoreError::new("sqlite inbox lock poisoned"))?;
                f(&conn, &table).map_err(|e| err(what, &e))
            })
            .await
            .map_err(|e| StoreError::new(format!("sqlite inbox task: {e}")))?
        })
        .await
    }

    /// One statement changing the row this owner holds; `true` when it did.
    async fn owned(
        &self,
        what: &'static str,
        set: String,
        job: &Job,
        owner: &str,
        extra: Vec<rusqlite::types::Value>,
    ) -> Result<bool, StoreError> {
        use rusqlite::types::Value;
        let mut values = vec![
            Value::Text(job.id.clone()),
            Value::Text(job.event_type.clone()),
            Value::Text(owner.to_owned()),
        ];
        values.extend(extra);
        self.blocking(what, move |conn, t| {
            let sql = format!(
                "UPDATE \"{t}\" SET {set}, updated_at = {NOW}
                 WHERE event_id = ?1 AND event_type = ?2 AND lease_owner = ?3 AND state = 'running'"
            );
            Ok(conn.execute(&sql, rusqlite::params_from_iter(values))? == 1)
        })
        .await
    }
}

impl Session for SqliteSession {
    fn claim<'a>(
        &'a mut self,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>> {
        let (owner, lease) = (owner.to_owned(), millis(lease));
        Box::pin(self.blocking("claim", move |conn, t| {
            conn.query_row(
                &format!(
                    "UPDATE \"{t}\" SET state = 'running', lease_owner = ?1, lease_until = {NOW} + ?2,
                        attempts = attempts + 1, updated_at = {NOW}
                     WHERE rowid = COALESCE(
                        (SELECT rowid FROM \"{t}\" WHERE state = 'pending' AND next_attempt_at <= {NOW}
                         ORDER BY next_attempt_at LIMIT 1),
                        (SELECT rowid FROM \"{t}\" WHERE state = 'running' AND lease_until <= {NOW}
                         LIMIT 1))
                     RETURNING event_id, event_type, body, matched_secret, attempts"
                ),
                params![owner, lease],
                |r| {
                    Ok(Job {
                        id: r.get(0)?,
                        event_type: r.get(1)?,
                        body: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                        matched_secret: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
                        attempt: r.get::<_, i64>(4)?.try_into().unwrap_or(u32::MAX),
                    })
                },
            )
            .optional()
        }))
    }

    fn complete<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned(
            "complete",
            "state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL".to_owned(),
            job,
            owner,
            Vec::new(),
        ))
    }

    fn fail<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        error: &'a str,
        retry_in: Duration,
        dead: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        use rusqlite::types::Value;
        let error = Value::Text(error.to_owned());
        Box::pin(async move {
            if dead {
                let set = "state = 'dead', lease_owner = NULL, lease_until = NULL, last_error = ?4";
                return self
                    .owned("fail", set.to_owned(), job, owner, vec![error])
                    .await;
            }
            let set = format!(
                "state = 'pending', lease_owner = NULL, lease_until = NULL, last_error = ?4,
                 next_attempt_at = {NOW} + ?5"
            );
            self.owned(
                "fail",
                set,
                job,
                owner,
                vec![error, Value::Integer(millis(retry_in))],
            )
            .await
        })
    }

    fn skip<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned(
            "skip",
            "state = 'skipped', lease_owner = NULL, lease_until = NULL".to_owned(),
            job,
            owner,
            Vec::new(),
        ))
    }

    fn extend<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.owned(
            "extend",
            format!("lease_until = {NOW} + ?4"),
            job,
            owner,
            vec![rusqlite::types::Value::Integer(millis(lease))],
        ))
    }

    fn transaction<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        handler: &'a TxHandler,
        event: WebhookEvent,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<TxEnd, StoreError>> {
        Box::pin(async move {
            let t = &self.table;
            let exec = |sql: &str| -> Result<(), StoreError> {
                self.conn
                    .lock()
                    .map_err(|_| StoreError::new("sqlite inbox lock poisoned"))?
                    .execute_batch(sql)
                    .map_err(|e| err("transaction", &e))
            };
            exec("BEGIN IMMEDIATE")?;
            let mut tx = Tx::sqlite_on(&self.conn);
            let ran = crate::dispatcher::run_tx(handler, &mut tx, event, timeout).await;
            let end = match ran {
                Err(why) => TxEnd::Failed(why),
                Ok(()) => {
                    let done = self
                        .conn
                        .lock()
                        .map_err(|_| StoreError::new("sqlite inbox lock poisoned"))?
                        .execute(
                            &format!(
                                "UPDATE \"{t}\" SET state = 'done', lease_owner = NULL, lease_until = NULL,
                                    last_error = NULL, updated_at = {NOW}
                                 WHERE event_id = ?1 AND event_type = ?2 AND lease_owner = ?3 AND state = 'running'"
                            ),
                            params![job.id, job.event_type, owner],
                        )
                        .map_err(|e| err("complete", &e))?;
                    if done == 1 {
                        TxEnd::Done
                    } else {
                        TxEnd::LostLease
                    }
                }
            };
            exec(if matches!(end, TxEnd::Done) {
                "COMMIT"
            } else {
                "ROLLBACK"
            })?;
            Ok(end)
        })
    }
}
