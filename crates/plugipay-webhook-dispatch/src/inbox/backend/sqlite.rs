//! The SQLite inbox: one file, one machine — the embedded default. Every
//! connection runs on a thread of its own (the receiver's, and one per
//! worker), with `synchronous=FULL`: an acknowledged event survives a power
//! cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{
    Backend, Begun, ClaimParams, Claimed, Committed, Inserted, Job, NewEvent, Param, Session,
    TxConn,
};
use crate::conn::sqlite::{ensure_schema, Setup, SqliteConn};
use crate::error::{BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::inbox::machine::{Move, State};
use crate::inbox::progress::Progress;
use crate::inbox::sql::InboxSql;
use crate::inbox::types::{
    Activity, ListFilter, PruneFilter, Record, RetryFilter, Stats, DEFAULT_INBOX_TABLE,
};
use crate::sql::Dialect;
use crate::tx::Tx;

/// An inbox in an SQLite database file (WAL mode, `synchronous=FULL`).
/// Several processes on the machine may share the file. Statements run on
/// threads of the inbox's own, never on the async runtime's.
///
/// A transactional handler holds SQLite's write lock while it runs, and a
/// delivery arriving meanwhile waits for it up to the store timeout (which
/// is SQLite's busy timeout): so on SQLite a transactional handler's timeout
/// must be shorter than the store timeout — by default it is half of it, and
/// [`build`](crate::inbox::InboxBuilder::build) refuses a longer one.
#[derive(Clone)]
pub struct SqliteInbox {
    inner: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    timeout: Duration,
    setup: Setup,
    /// The receiver's and the tools' connection.
    conn: SqliteConn,
    sql: Arc<InboxSql>,
}

impl std::fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.inner.path)
            .field("table", &self.inner.sql.table)
            .finish_non_exhaustive()
    }
}

/// Options of a [`SqliteInbox`]: `SqliteInbox::builder(path).table(…).timeout(…).open()`.
#[derive(Debug)]
#[must_use]
pub struct SqliteInboxBuilder {
    path: PathBuf,
    table: String,
    timeout: Duration,
    create: bool,
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

    /// Opens the inbox, creating its table or bringing an earlier release's
    /// forward.
    pub fn open(self) -> Result<SqliteInbox, StoreError> {
        crate::sql::check_table(&self.table)?;
        let sql = Arc::new(InboxSql::new(&self.table, Dialect::Sqlite));
        let setup =
            crate::conn::sqlite::setup(&self.path, self.timeout, true, self.create, "sqlite inbox");
        let conn = SqliteConn::open(setup.clone(), self.timeout, |conn| {
            ensure_schema(conn, &sql.schema, "sqlite inbox")
        })?;
        Ok(SqliteInbox {
            inner: Arc::new(Shared {
                path: self.path,
                timeout: self.timeout,
                setup: Setup {
                    create: false,
                    ..setup
                },
                conn,
                sql,
            }),
        })
    }
}

impl SqliteInbox {
    /// Opens (creating if needed) the inbox in the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteInbox, StoreError> {
        SqliteInbox::builder(path).open()
    }

    /// Opens the inbox with a table of your choosing and a store timeout.
    pub fn open_with(
        path: impl AsRef<Path>,
        table: &str,
        timeout: Duration,
    ) -> Result<SqliteInbox, StoreError> {
        SqliteInbox::builder(path)
            .table(table)
            .timeout(timeout)
            .open()
    }

    /// Options: table, timeout, whether to create the file.
    pub fn builder(path: impl AsRef<Path>) -> SqliteInboxBuilder {
        SqliteInboxBuilder {
            path: path.as_ref().to_path_buf(),
            table: DEFAULT_INBOX_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
            create: true,
        }
    }

    fn sql(&self) -> Arc<InboxSql> {
        self.inner.sql.clone()
    }
}

fn record_from(row: &rusqlite::Row<'_>) -> Result<Record, rusqlite::Error> {
    let state: String = row.get("state")?;
    Ok(Record {
        tenant: row.get("tenant")?,
        id: row.get("event_id")?,
        event_type: row.get("event_type")?,
        state: State::from_name(&state).unwrap_or(State::Pending),
        attempts: row
            .get::<_, i64>("attempts")?
            .try_into()
            .unwrap_or(u32::MAX),
        received_at_ms: row.get("received_at")?,
        next_attempt_at_ms: row.get("due_at")?,
        updated_at_ms: row.get("updated_at")?,
        last_error: row.get("last_error")?,
        account_id: row.get("account_id")?,
        occurred_at: row.get("occurred_at")?,
        body: Bytes::from(row.get::<_, Vec<u8>>("body")?),
        signature: row.get("signature")?,
        matched_secret: row.get::<_, i64>("matched_secret")?.try_into().unwrap_or(0),
        object_id: row.get("object_id")?,
        order_key: row.get("order_key")?,
        handlers: Progress::parse(row.get::<_, Option<String>>("handlers")?.as_deref()).0,
    })
}

fn values(params: Vec<Param>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => rusqlite::types::Value::Text(t),
            Param::Int(i) => rusqlite::types::Value::Integer(i),
        })
        .collect()
}

impl Backend for SqliteInbox {
    fn can_order(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        let (e, sql) = (e.clone(), self.sql());
        Box::pin(self.inner.conn.with("insert", move |conn| {
            let key = params![e.tenant, e.id, e.event_type];
            let inserted = conn
                .query_row(
                    &sql.insert,
                    params![
                        e.tenant,
                        e.id,
                        e.event_type,
                        &e.body[..],
                        e.signature,
                        e.matched_secret,
                        e.account_id,
                        e.occurred_at,
                        e.state.as_str(),
                        e.object_id,
                        e.order_key,
                        e.occurred_ms,
                        e.due_in_ms,
                        e.trace
                    ],
                    |_| Ok(()),
                )
                .optional()?;
            if inserted.is_some() {
                return Ok(Inserted::New);
            }
            let revived = conn.query_row(&sql.redeliver, key, |_| Ok(())).optional()?;
            Ok(if revived.is_some() {
                Inserted::Revived
            } else {
                Inserted::Duplicate
            })
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        let (setup, timeout, sql) = (self.inner.setup.clone(), self.inner.timeout, self.sql());
        Box::pin(async move {
            let conn = SqliteConn::open(setup, timeout, |_| Ok(()))?;
            Ok(Box::new(SqliteSession { conn, sql }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(max))
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        let sql = self.sql();
        Box::pin(self.inner.conn.with("stats", move |conn| {
            let mut stats = Stats::default();
            let mut q = conn.prepare_cached(&sql.count_by_state)?;
            let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, n) = row?;
                if let Some(state) = State::from_name(&state) {
                    stats.counts.insert(state, n.try_into().unwrap_or(0));
                }
            }
            stats.oldest_due_ms = conn.query_row(&sql.oldest_due, [], |r| r.get(0))?;
            Ok(stats)
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
            let mut counts = Vec::new();
            for query in [&sql.activity_received, &sql.activity_done] {
                let mut q = conn.prepare_cached(query)?;
                let rows = q.query_map([since_ms, bucket_ms], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })?;
                let rows: Vec<(i64, i64)> = rows.collect::<Result<_, _>>()?;
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
        }))
    }

    fn list<'a>(
        &'a self,
        filter: &'a ListFilter,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let (query, params) = self.inner.sql.list(Dialect::Sqlite, filter);
        Box::pin(self.inner.conn.with("list", move |conn| {
            let mut q = conn.prepare(&query)?;
            let rows = q.query_map(params_from_iter(values(params)), record_from)?;
            rows.collect()
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        let (id, sql) = (id.to_owned(), self.sql());
        Box::pin(self.inner.conn.with("get", move |conn| {
            let mut q = conn.prepare_cached(&sql.get)?;
            let rows = q.query_map(params![id], record_from)?;
            rows.collect()
        }))
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (f, sql) = (f.clone(), self.sql());
        Box::pin(self.inner.conn.with("retry", move |conn| {
            let n = conn.execute(
                &sql.revive,
                params![
                    f.id,
                    f.dead,
                    f.skipped,
                    f.done,
                    f.event_type,
                    f.tenant,
                    f.stale,
                    f.handler,
                    f.since_ms
                ],
            )?;
            Ok(n as u64)
        }))
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (ms, skipped, sql) = (crate::error::millis(f.older_than), f.skipped, self.sql());
        Box::pin(self.inner.conn.with("prune", move |conn| {
            Ok(conn.execute(&sql.prune, params![ms, skipped])? as u64)
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        let sql = sql.to_owned();
        Some(Box::pin(self.inner.conn.call("execute", move |slot| {
            let conn = slot.conn()?;
            let ran = conn
                .execute_batch("BEGIN IMMEDIATE")
                .and_then(|()| conn.execute_batch(&sql))
                .and_then(|()| conn.execute_batch("COMMIT"));
            if let Err(e) = ran {
                slot.settle();
                return Err(slot.err("execute", &e));
            }
            Ok(())
        })))
    }

    fn lock_timeout(&self) -> Option<Duration> {
        Some(self.inner.timeout)
    }
}

/// A worker's connection, on its own thread.
struct SqliteSession {
    conn: SqliteConn,
    sql: Arc<InboxSql>,
}

fn job_from(row: &rusqlite::Row<'_>) -> Result<(String, Job), rusqlite::Error> {
    Ok((
        row.get(0)?,
        Job {
            tenant: row.get(1)?,
            id: row.get(2)?,
            event_type: row.get(3)?,
            body: Bytes::from(row.get::<_, Vec<u8>>(4)?),
            matched_secret: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
            attempt: row.get::<_, i64>(6)?.try_into().unwrap_or(u32::MAX),
            received_at_ms: row.get(7)?,
            progress: row.get(8)?,
            rerun: row.get(9)?,
            trace: row.get(10)?,
            stale: row.get::<_, i64>(11)? == 1,
        },
    ))
}

fn claim(
    conn: &Connection,
    sql: &InboxSql,
    p: &ClaimParams<'_>,
) -> Result<Claimed, rusqlite::Error> {
    let claimed = if p.ordered {
        conn.prepare_cached(&sql.claim)?.query_row(
            params![
                p.owner,
                p.lease_ms,
                p.max_attempts,
                p.skip_stale,
                p.dead_holds_key
            ],
            job_from,
        )
    } else {
        conn.prepare_cached(&sql.claim_unordered)?
            .query_row(params![p.owner, p.lease_ms, p.max_attempts], job_from)
    }
    .optional()?;
    Ok(match claimed {
        Some((state, job)) if state == "dead" => Claimed::Exhausted(job),
        Some((state, job)) if state == "stale" => Claimed::Stale(job),
        Some((_, job)) => Claimed::Job(job),
        None => Claimed::Idle {
            due_in_ms: if p.ordered {
                conn.query_row(&sql.next_due, params![p.dead_holds_key], |r| r.get(0))
            } else {
                conn.query_row(&sql.next_due_unordered, [], |r| r.get(0))
            }
            .optional()?,
        },
    })
}

impl Session for SqliteSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        let (sql, owner) = (self.sql.clone(), p.owner.to_owned());
        let (lease_ms, max_attempts, ordered) = (p.lease_ms, p.max_attempts, p.ordered);
        let (skip_stale, dead_holds_key) = (p.skip_stale, p.dead_holds_key);
        Box::pin(self.conn.with("claim", move |conn| {
            claim(
                conn,
                &sql,
                &ClaimParams {
                    owner: &owner,
                    lease_ms,
                    max_attempts,
                    ordered,
                    skip_stale,
                    dead_holds_key,
                },
            )
        }))
    }

    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let sql = self.sql.clone();
        let (tenant, id, ty, owner) = (
            job.tenant.clone(),
            job.id.clone(),
            job.event_type.clone(),
            owner.to_owned(),
        );
        let (to, due, error, refund, progress) = (
            mv.to().as_str(),
            mv.due_in_ms,
            mv.error.clone(),
            i64::from(mv.refund),
            mv.progress.clone(),
        );
        Box::pin(self.conn.with("transition", move |conn| {
            let n = conn.prepare_cached(&sql.transition)?.execute(params![
                tenant, id, ty, owner, to, due, error, refund, progress
            ])?;
            Ok(n == 1)
        }))
    }

    fn peek<'a>(&'a mut self, job: &'a Job) -> BoxFuture<'a, Result<super::Peeked, StoreError>> {
        let sql = self.sql.clone();
        let (tenant, id, ty) = (job.tenant.clone(), job.id.clone(), job.event_type.clone());
        Box::pin(self.conn.with("peek", move |conn| {
            conn.query_row(&sql.peek, params![tenant, id, ty], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .optional()
            .map(|found| found.map(|(s, o)| (State::from_name(&s).unwrap_or(State::Pending), o)))
        }))
    }

    fn tx(&mut self) -> Option<&mut dyn TxConn> {
        Some(self)
    }
}

impl TxConn for SqliteSession {
    fn begin<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Begun, StoreError>> {
        let sql = self.sql.clone();
        let (tenant, id, ty, owner) = (
            job.tenant.clone(),
            job.id.clone(),
            job.event_type.clone(),
            owner.to_owned(),
        );
        Box::pin(self.conn.call("begin", move |slot| {
            let conn = slot.conn()?;
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| slot.err("begin", &e))?;
            let conn = slot.conn()?;
            let held = conn
                .query_row(&sql.lock, params![tenant, id, ty, owner], |_| Ok(()))
                .optional();
            match held {
                Ok(Some(())) => Ok(Begun::Locked),
                Ok(None) => {
                    slot.settle();
                    Ok(Begun::LostLease)
                }
                Err(e) => {
                    let e = slot.err("begin", &e);
                    slot.settle();
                    Err(e)
                }
            }
        }))
    }

    fn handle(&mut self) -> Tx<'_> {
        Tx::sqlite_on(&self.conn)
    }

    fn commit_done<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        progress: &'a str,
        last: bool,
    ) -> BoxFuture<'a, Committed> {
        let sql = self.sql.clone();
        let progress = progress.to_owned();
        let (tenant, id, ty, owner) = (
            job.tenant.clone(),
            job.id.clone(),
            job.event_type.clone(),
            owner.to_owned(),
        );
        Box::pin(async move {
            let ended = self
                .conn
                .call("commit", move |slot| {
                    if !slot.in_transaction() {
                        return Ok(Committed::RolledBack(
                            "the handler ended the inbox's transaction itself (COMMIT or ROLLBACK): \
                             the event is not marked done"
                                .to_owned(),
                        ));
                    }
                    let conn = slot.conn()?;
                    let moved = conn.execute(&sql.done_in_tx, params![tenant, id, ty, owner, progress, last]);
                    let end = match moved {
                        Err(e) => Committed::RolledBack(slot.err("move to done", &e).to_string()),
                        Ok(0) => Committed::LostLease,
                        Ok(_) => match conn.execute_batch("COMMIT") {
                            Ok(()) if conn.is_autocommit() => return Ok(Committed::Done),
                            Ok(()) => Committed::Unknown("still in a transaction after COMMIT".into()),
                            Err(e) => Committed::RolledBack(slot.err("commit", &e).to_string()),
                        },
                    };
                    slot.settle();
                    Ok(end)
                })
                .await;
            match ended {
                Ok(end) => end,
                Err(e) => {
                    // Timed out: the job still runs to its end on the
                    // thread; whatever it leaves is rolled back next.
                    self.conn.settle();
                    Committed::Unknown(e.to_string())
                }
            }
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.conn.call("rollback", |slot| {
            slot.settle();
            Ok(())
        }))
    }

    fn discard(&mut self) {
        self.conn.settle();
    }
}
