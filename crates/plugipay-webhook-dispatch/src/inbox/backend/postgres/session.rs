//! A PostgreSQL inbox worker's own connection: the claim, the owner-checked
//! transitions, and the steps of a transactional handler's transaction.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Database, Postgres, TransactionManager};

use super::super::{Begun, ClaimParams, Claimed, Job, Peeked, Session, TxConn, TxEnd};
use crate::conn::postgres::{self as pg, sqlstate};
use crate::error::{bounded, BoxFuture, StoreError};
use crate::inbox::machine::{Move, State};
use crate::inbox::sql::InboxSql;
use crate::tx::Tx;

type Manager = <Postgres as Database>::TransactionManager;

/// The claimed row's state and job, from a row of `JOB_COLUMNS`, stale.
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
pub(super) struct PgSession {
    conn: Option<PgConnection>,
    options: Arc<PgConnectOptions>,
    sql: Arc<InboxSql>,
    timeout: Duration,
    /// The open transaction's id (see `InboxSql::lock`).
    txid: i64,
    /// Statements named and kept on the connection (not through a
    /// transaction pooler: `conn::postgres::named_statements`).
    persistent: bool,
    /// The server backend of `conn`, on a direct connection (through a
    /// pooler a pid names whichever server connection is lent, so none is
    /// kept): what `discard` asks the server to cancel.
    pid: Option<i32>,
}

/// `what`'s error, named after the inbox.
fn inbox_err(what: &str, e: &sqlx::Error) -> StoreError {
    pg::err(&format!("postgres inbox {what}"), e)
}

impl PgSession {
    /// A session that connects on first use, with `options`.
    pub(super) fn new(
        options: Arc<PgConnectOptions>,
        sql: Arc<InboxSql>,
        timeout: Duration,
        persistent: bool,
    ) -> PgSession {
        PgSession {
            conn: None,
            options,
            sql,
            timeout,
            txid: 0,
            persistent,
            pid: None,
        }
    }

    /// The connection, connecting if the last one was thrown away.
    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.conn.is_none() {
            let persistent = self.persistent;
            let (conn, pid) = bounded(self.timeout, "postgres inbox connect", async {
                let mut conn = pg::connect(&self.options, "postgres inbox").await?;
                let mut pid = None;
                if persistent {
                    sqlx::Executor::execute(&mut conn, WORKER_SETTINGS)
                        .await
                        .map_err(|e| inbox_err("connect", &e))?;
                    pid = Some(
                        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                            .fetch_one(&mut conn)
                            .await
                            .map_err(|e| inbox_err("connect", &e))?,
                    );
                }
                Ok((conn, pid))
            })
            .await?;
            self.conn = Some(conn);
            self.pid = pid;
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
        let out = match claimed.as_ref().map(super::super::rows::job).transpose() {
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

    fn peek<'a>(&'a mut self, job: &'a Job) -> BoxFuture<'a, Result<Peeked, StoreError>> {
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
                // Through sqlx's transaction manager: the handler's own
                // `conn.begin()` (repository code often opens one) then
                // nests as a savepoint instead of committing the inbox's
                // transaction early.
                Manager::begin(&mut *c, Some(begin.into()))
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
    ) -> BoxFuture<'a, TxEnd> {
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
                // COMMIT of an aborted transaction rolls it back (no error):
                // either way sqlx's count of open transactions is right.
                let committed = Manager::commit(&mut *c).await;
                if matches!(&committed, Err(e) if sqlstate(e).is_some()) {
                    // Refused (a deferred constraint): the server ended the
                    // transaction; sqlx's count is set right by a ROLLBACK
                    // (outside a transaction only a warning).
                    let _ = Manager::rollback(&mut *c).await;
                }
                Ok((moved, committed))
            })
            .await;
            let (moved, committed) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.discard();
                    return TxEnd::Unknown(e.to_string());
                }
            };
            match (moved, committed) {
                (Ok(_), Ok(())) => TxEnd::Done,
                (Err(e), Ok(())) => match sqlstate(&e).as_deref() {
                    // Nothing to move: the lease is someone else's, or the
                    // handler ended the transaction itself.
                    Some("22012") => TxEnd::LostLease,
                    Some("25P02") => TxEnd::Failed(
                        "a statement of the handler failed (its error was ignored), which aborted \
                         the transaction: rolled back"
                            .to_owned(),
                    ),
                    Some(_) => TxEnd::Failed(inbox_err("move to done", &e).to_string()),
                    None => {
                        let why = inbox_err("move to done", &e).to_string();
                        self.discard();
                        TxEnd::Unknown(why)
                    }
                },
                (_, Err(e)) if sqlstate(&e).is_some() => {
                    // The server refused the COMMIT (a deferred constraint,
                    // a serialization failure): the transaction is gone.
                    TxEnd::Failed(inbox_err("commit", &e).to_string())
                }
                (_, Err(e)) => {
                    let why = inbox_err("commit", &e).to_string();
                    self.discard();
                    TxEnd::Unknown(why)
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
                // Savepoints the handler left open, then the transaction.
                while sqlx::Connection::is_in_transaction(&*c) {
                    Manager::rollback(&mut *c)
                        .await
                        .map_err(|e| inbox_err("rollback", &e))?;
                }
                Ok(())
            })
            .await
        })
    }

    fn discard(&mut self) {
        // Dropping the connection closes its socket, but a server busy with
        // a statement (a lock wait, a slow trigger) notices only when that
        // statement ends — holding the event's row lock, so no worker can
        // claim the event meanwhile. The server is asked to cancel it, from
        // a connection of its own (as tokio-postgres' cancel request did).
        let had = self.conn.take().is_some();
        if let (true, Some(pid)) = (had, self.pid.take()) {
            let options = self.options.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let cancel = async {
                        let mut c = pg::connect(&options, "postgres inbox cancel").await.ok()?;
                        sqlx::query("SELECT pg_cancel_backend($1)")
                            .bind(pid)
                            .execute(&mut c)
                            .await
                            .ok()
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
                });
            }
        }
    }
}
