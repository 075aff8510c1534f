//! Group commit of deliveries on SQLite: receives that arrive while another
//! batch commits wait together and share one transaction — one fsync for
//! them all — each in a savepoint of its own, so a row that fails fails its
//! own caller only. Every caller is answered after the commit (or told the
//! store failed: the whole batch then stored nothing). Leader-based: the
//! caller that takes the writer's turn waits the window for more, drains
//! the queue and commits it on a task of its own (so a caller that goes
//! away mid-commit does not take its batch with it).

use std::sync::Mutex;
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::oneshot;

use super::super::{Inserted, NewEvent};
use super::SqliteInbox;
use crate::conn::sqlite as conn;
use crate::error::StoreError;
use crate::inbox::sql::InboxSql;

/// Default: how long the caller committing a batch waits for more
/// deliveries to join it.
pub const DEFAULT_RECEIVE_WINDOW: Duration = Duration::from_micros(200);

/// The most deliveries one transaction takes.
const MAX_BATCH: usize = 256;

type Answer = oneshot::Sender<Result<Inserted, StoreError>>;

/// The deliveries waiting for the next commit, and the writer's turn.
pub(super) struct Group {
    queue: Mutex<Vec<(NewEvent, Answer)>>,
    turn: tokio::sync::Mutex<()>,
    pub(super) window: Duration,
}

impl Group {
    pub(super) fn new(window: Duration) -> Group {
        Group {
            queue: Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
            window,
        }
    }

    fn push(&self, e: NewEvent, answer: Answer) {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((e, answer));
    }

    fn take(&self) -> Vec<(NewEvent, Answer)> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = queue.len().min(MAX_BATCH);
        queue.drain(..n).collect()
    }

    fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }
}

impl SqliteInbox {
    /// Stores `e` in the next batch's transaction: answered once it
    /// committed.
    pub(super) async fn insert_grouped(&self, e: &NewEvent) -> Result<Inserted, StoreError> {
        let group = &self.inner.group;
        let (answer, mut answered) = oneshot::channel();
        group.push(e.clone(), answer);
        // The answer, or the writer's turn — whichever comes first: a
        // caller whose row another caller committed does not wait for the
        // turn behind later batches.
        let turn = tokio::select! {
            biased;
            outcome = &mut answered => return answer_of(outcome),
            turn = group.turn.lock() => turn,
        };
        // Others may join during the window; then batches until ours is
        // answered (an earlier holder of the turn may have committed it).
        if !group.is_empty() {
            tokio::time::sleep(group.window).await;
        }
        loop {
            match answered.try_recv() {
                Ok(outcome) => return answer_of(Ok(outcome)),
                Err(oneshot::error::TryRecvError::Closed) => break,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch = group.take();
            if batch.is_empty() {
                break;
            }
            // A task of its own: if this caller goes away mid-commit (its
            // HTTP request dropped), the batch still commits and its other
            // callers are answered.
            let inbox = self.clone();
            let _ = tokio::spawn(async move { inbox.commit_batch(batch).await }).await;
        }
        drop(turn);
        answer_of(answered.await)
    }

    /// One transaction for `batch`, each row in a savepoint; every caller
    /// answered with its row's outcome once the commit is confirmed, or
    /// with the error that ended the transaction.
    async fn commit_batch(&self, batch: Vec<(NewEvent, Answer)>) {
        let (events, answers): (Vec<NewEvent>, Vec<Answer>) = batch.into_iter().unzip();
        let sql = self.inner.sql.clone();
        let done = self
            .inner
            .conn
            .with("insert", move |c| {
                Box::pin(async move {
                    sqlx::query("BEGIN IMMEDIATE").execute(&mut *c).await?;
                    let mut out = Vec::with_capacity(events.len());
                    for e in &events {
                        sqlx::query("SAVEPOINT plugipay_webhook_receive")
                            .execute(&mut *c)
                            .await?;
                        match insert_one(c, &sql, e).await {
                            Ok(inserted) => {
                                sqlx::query("RELEASE plugipay_webhook_receive")
                                    .execute(&mut *c)
                                    .await?;
                                out.push(Ok(inserted));
                            }
                            Err(err) => {
                                // This row alone; a transaction SQLite
                                // rolled back itself ends here (no such
                                // savepoint) and fails the batch.
                                sqlx::query(
                                    "ROLLBACK TO plugipay_webhook_receive; \
                                     RELEASE plugipay_webhook_receive",
                                )
                                .execute(&mut *c)
                                .await?;
                                out.push(Err(conn::err("sqlite inbox insert", &err)));
                            }
                        }
                    }
                    sqlx::query("COMMIT").execute(&mut *c).await?;
                    Ok(out)
                })
            })
            .await;
        match done {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(outcome);
                }
            }
            // Not committed (the connection was thrown away: SQLite rolled
            // the transaction back): nothing of the batch is stored.
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// A caller's answer; its batch dropped unanswered (the committing
/// caller's call was cancelled) stored nothing of it.
fn answer_of(
    outcome: Result<Result<Inserted, StoreError>, oneshot::error::RecvError>,
) -> Result<Inserted, StoreError> {
    outcome.unwrap_or_else(|_| {
        Err(StoreError::new(
            "sqlite inbox insert: its batch ended before it committed (nothing of it stored)",
        ))
    })
}

/// One delivery: inserted, a redelivery of a dead event revived, or a
/// duplicate.
pub(super) async fn insert_one(
    c: &mut SqliteConnection,
    sql: &InboxSql,
    e: &NewEvent,
) -> Result<Inserted, sqlx::Error> {
    let inserted = super::super::rows::bind_new(sqlx::query(&sql.insert), e)
        .fetch_optional(&mut *c)
        .await?;
    if inserted.is_some() {
        return Ok(Inserted::New);
    }
    let revived = sqlx::query(&sql.redeliver)
        .bind(&e.tenant)
        .bind(&e.id)
        .bind(&e.event_type)
        .fetch_optional(&mut *c)
        .await?;
    Ok(if revived.is_some() {
        Inserted::Revived
    } else {
        Inserted::Duplicate
    })
}
