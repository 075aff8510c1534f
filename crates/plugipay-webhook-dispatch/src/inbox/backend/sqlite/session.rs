//! A worker's session on SQLite: a connection of its own, the claim and
//! the owned transitions, and a transactional handler's transaction (the
//! write lock taken first, a savepoint marking it as the inbox's).

use std::sync::Arc;

use sqlx::{Database, Sqlite, TransactionManager};

use super::super::{Begun, ClaimParams, Claimed, Job, Session, TxConn, TxEnd};
use super::Query;
use crate::conn::sqlite::{self as conn, Owned};
use crate::error::{BoxFuture, StoreError};
use crate::inbox::machine::{Move, State};
use crate::inbox::sql::InboxSql;
use crate::tx::Tx;

/// A worker's connection, of its own.
pub(super) struct SqliteSession {
    pub(super) conn: Owned,
    pub(super) sql: Arc<InboxSql>,
}

/// How the inbox begins a handler's transaction: the write lock first
/// (`IMMEDIATE`: two writers never deadlock on a lock upgrade), and a
/// savepoint that marks the transaction as the inbox's — `done_in_tx.sql`
/// releases it before the move to done, and finds it gone when the handler
/// ended the transaction itself (`COMMIT`, `ROLLBACK`) or SQLite rolled it
/// back (a full disk, an I/O error). One message.
pub(crate) const BEGIN: &str = "BEGIN IMMEDIATE; SAVEPOINT plugipay_webhook_inbox";

/// Runs `$body` on the worker's connection `$conn` (opened if there is
/// none), bounded by the store timeout; the body may borrow what the caller
/// holds. A statement that fails or a call that times out throws the
/// connection away (it may be inside a transaction, or still running).
macro_rules! on_conn {
    ($owned:expr, $what:literal, |$conn:ident| $body:expr) => {{
        let owned: &mut Owned = $owned;
        let name = concat!("sqlite inbox ", $what);
        let ran = crate::error::bounded(owned.timeout(), name, async {
            let $conn = owned.get().await?;
            let r: Result<_, sqlx::Error> = async { $body }.await;
            r.map_err(|e| conn::err(name, &e))
        })
        .await;
        if ran.is_err() {
            owned.discard();
        }
        ran
    }};
}

impl Session for SqliteSession {
    fn claim<'a>(&'a mut self, p: ClaimParams<'a>) -> BoxFuture<'a, Result<Claimed, StoreError>> {
        let SqliteSession { conn, sql } = self;
        Box::pin(async move {
            on_conn!(conn, "claim", |c| {
                let claimed = if p.ordered {
                    sqlx::query(&sql.claim)
                        .bind(p.owner)
                        .bind(p.lease_ms)
                        .bind(p.max_attempts)
                        .bind(p.skip_stale)
                        .bind(p.dead_holds_key)
                        .fetch_optional(&mut *c)
                        .await?
                } else {
                    sqlx::query(&sql.claim_unordered)
                        .bind(p.owner)
                        .bind(p.lease_ms)
                        .bind(p.max_attempts)
                        .fetch_optional(&mut *c)
                        .await?
                };
                Ok(
                    match claimed.as_ref().map(super::super::rows::job).transpose()? {
                        Some((state, job)) if state == "dead" => Claimed::Exhausted(job),
                        Some((state, job)) if state == "stale" => Claimed::Stale(job),
                        Some((_, job)) => Claimed::Job(job),
                        None if p.ordered => Claimed::Idle {
                            due_in_ms: sqlx::query_scalar(&sql.next_due)
                                .bind(p.dead_holds_key)
                                .fetch_optional(&mut *c)
                                .await?,
                        },
                        None => Claimed::Idle {
                            due_in_ms: sqlx::query_scalar(&sql.next_due_unordered)
                                .fetch_optional(&mut *c)
                                .await?,
                        },
                    },
                )
            })
        })
    }

    fn transition<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        mv: &'a Move,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let SqliteSession { conn, sql } = self;
        Box::pin(async move {
            on_conn!(conn, "transition", |c| {
                let moved = keyed(&sql.transition, job)
                    .bind(owner)
                    .bind(mv.to().as_str())
                    .bind(mv.due_in_ms)
                    .bind(&mv.error)
                    .bind(i64::from(mv.refund))
                    .bind(&mv.progress)
                    .execute(c)
                    .await?;
                Ok(moved.rows_affected() == 1)
            })
        })
    }

    fn peek<'a>(
        &'a mut self,
        job: &'a Job,
    ) -> BoxFuture<'a, Result<super::super::Peeked, StoreError>> {
        let SqliteSession { conn, sql } = self;
        Box::pin(async move {
            on_conn!(conn, "peek", |c| {
                let found: Option<(String, Option<String>)> = sqlx::query_as(&sql.peek)
                    .bind(&job.tenant)
                    .bind(&job.id)
                    .bind(&job.event_type)
                    .fetch_optional(c)
                    .await?;
                Ok(found.map(|(s, o)| (State::from_name(&s).unwrap_or(State::Pending), o)))
            })
        })
    }

    fn tx(&mut self) -> Option<&mut dyn TxConn> {
        Some(self)
    }
}

/// `sql` with the job's key bound to `?1`–`?3`.
fn keyed<'q>(sql: &'q str, job: &'q Job) -> Query<'q> {
    sqlx::query(sql)
        .bind(&job.tenant)
        .bind(&job.id)
        .bind(&job.event_type)
}

type Manager = <Sqlite as Database>::TransactionManager;

impl TxConn for SqliteSession {
    fn begin<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<Begun, StoreError>> {
        Box::pin(async move {
            let SqliteSession { conn, sql } = &mut *self;
            // Begun through sqlx's transaction manager: a handler's own
            // `conn.begin()` then nests as a savepoint.
            let held = on_conn!(conn, "begin", |c| {
                Manager::begin(&mut *c, Some(BEGIN.into())).await?;
                keyed(&sql.lock, job).bind(owner).fetch_optional(c).await
            })?;
            if held.is_some() {
                return Ok(Begun::Locked);
            }
            self.rollback().await?;
            Ok(Begun::LostLease)
        })
    }

    fn handle(&mut self) -> Tx<'_> {
        // begin() opened it; only a discard in between takes it away.
        Tx::sqlite_on(self.conn.current())
    }

    fn commit_done<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        progress: &'a str,
        last: bool,
    ) -> BoxFuture<'a, TxEnd> {
        Box::pin(async move {
            let SqliteSession { conn, sql } = &mut *self;
            let ended = on_conn!(conn, "commit", |c| {
                let moved = keyed(&sql.done_in_tx, job)
                    .bind(owner)
                    .bind(progress)
                    .bind(last)
                    .fetch_optional(&mut *c)
                    .await;
                Ok(match moved {
                    Err(e) if e.to_string().contains("no such savepoint") => Err(TxEnd::Failed(
                        "the handler ended the inbox's transaction itself (COMMIT or ROLLBACK): \
                         the event is not marked done"
                            .to_owned(),
                    )),
                    Err(e) => Err(TxEnd::Failed(
                        conn::err("sqlite inbox move to done", &e).to_string(),
                    )),
                    Ok(None) => Err(TxEnd::LostLease),
                    // A COMMIT that fails leaves the transaction open
                    // (busy) or rolled back (I/O): rolled back below
                    // either way.
                    Ok(Some(_)) => Manager::commit(c).await.map_err(|e| {
                        TxEnd::Failed(conn::err("sqlite inbox commit", &e).to_string())
                    }),
                })
            });
            match ended {
                Ok(Ok(())) => TxEnd::Done,
                Ok(Err(end)) => {
                    // Rolled back — or, when that fails (SQLite or the
                    // handler ended the transaction already, and sqlx's
                    // count of it is wrong), the connection thrown away.
                    if self.rollback().await.is_err() {
                        self.conn.discard();
                    }
                    end
                }
                // Timed out (the connection was thrown away): whether the
                // COMMIT took effect is unknown.
                Err(e) => TxEnd::Unknown(e.to_string()),
            }
        })
    }

    fn rollback(&mut self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if self.conn.current().is_none() {
                return Ok(());
            }
            on_conn!(&mut self.conn, "rollback", |c| {
                // Savepoints the handler left open, then the transaction.
                while sqlx::Connection::is_in_transaction(&*c) {
                    Manager::rollback(&mut *c).await?;
                }
                Ok(())
            })
        })
    }

    fn discard(&mut self) {
        self.conn.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    /// SQLite: the move to done releases the very savepoint BEGIN sets.
    #[test]
    fn sqlite_releases_the_savepoint_its_begin_sets() {
        let s = InboxSql::new("t", Dialect::Sqlite);
        let begin = super::BEGIN;
        let name = begin.rsplit(' ').next().expect("a savepoint name");
        assert!(begin.contains(&format!("SAVEPOINT {name}")));
        assert!(
            s.done_in_tx.contains(&format!("RELEASE {name};")),
            "{}",
            s.done_in_tx
        );
    }
}
