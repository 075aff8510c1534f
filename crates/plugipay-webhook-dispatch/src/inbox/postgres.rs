//! The PostgreSQL inbox: replicas share it; workers claim with `FOR UPDATE
//! SKIP LOCKED` and are woken by `LISTEN/NOTIFY`; transactional handlers
//! commit with the event's move to `done`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plugipay_webhook::WebhookEvent;
use tokio_postgres::{NoTls, Row};

use super::{
    Backend, Inserted, Job, NewEvent, Record, RetryFilter, Session, State, Stats, Tx, TxEnd,
    TxHandler, DEFAULT_INBOX_TABLE,
};
use crate::store::{bounded, millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};

const NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

use crate::pg::{connect, err, pipelined, PgClient, PgConn};

/// An inbox in PostgreSQL, for receivers and workers on several machines.
/// Creates its table on first use; plain TCP (no TLS). Every call is bounded
/// by the store timeout (default 5 s).
#[derive(Clone)]
pub struct PostgresInbox {
    inner: Arc<Shared>,
}

struct Shared {
    conn: PgConn,
    table: String,
    sql: Arc<InboxSql>,
    wake: Arc<tokio::sync::Notify>,
    listening: AtomicBool,
    /// When this process last sent a NOTIFY (ms since `started`): under load
    /// workers are busy claiming anyway, and every NOTIFY serialises on
    /// PostgreSQL's notification queue, so at most one per 5 ms is sent.
    last_notify_ms: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl std::fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresInbox")
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

impl PostgresInbox {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and creates
    /// the table if needed.
    pub async fn connect(url: &str) -> Result<PostgresInbox, StoreError> {
        PostgresInbox::connect_with(url, DEFAULT_INBOX_TABLE, DEFAULT_STORE_TIMEOUT).await
    }

    /// Connects with a table of your choosing and a store timeout.
    pub async fn connect_with(
        url: &str,
        table: &str,
        timeout: Duration,
    ) -> Result<PostgresInbox, StoreError> {
        crate::sql::check_table(table)?;
        let t = table;
        let schema = format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" (
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                body BYTEA NOT NULL,
                signature TEXT NOT NULL,
                matched_secret BIGINT NOT NULL,
                account_id TEXT,
                occurred_at TEXT,
                received_at BIGINT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                lease_owner TEXT,
                lease_until BIGINT,
                last_error TEXT,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (event_id, event_type)
             );
             CREATE INDEX IF NOT EXISTS \"{t}_due\" ON \"{t}\" (state, next_attempt_at);"
        );
        let inbox = PostgresInbox {
            inner: Arc::new(Shared {
                conn: PgConn::new(url, timeout, schema, 727_167),
                table: table.to_owned(),
                sql: Arc::new(InboxSql::new(table)),
                wake: Arc::new(tokio::sync::Notify::new()),
                listening: AtomicBool::new(false),
                last_notify_ms: std::sync::atomic::AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        };
        inbox.call("connect", |_| async { Ok(()) }).await?;
        Ok(inbox)
    }

    async fn call<'a, T, F, Fut>(&'a self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<PgClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
    {
        self.inner.conn.call(what, f).await
    }

    /// Starts (once) the task that LISTENs for new events and wakes workers.
    fn listen(&self) {
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let (url, channel, wake) = (
            self.inner.conn.url.clone(),
            self.inner.table.clone(),
            self.inner.wake.clone(),
        );
        tokio::spawn(async move {
            loop {
                if let Ok((client, mut connection)) = tokio_postgres::connect(&url, NoTls).await {
                    let sql = format!("LISTEN \"{channel}\"");
                    let listen = client.batch_execute(&sql);
                    let messages = async {
                        loop {
                            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                                    wake.notify_one();
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => return,
                            }
                        }
                    };
                    tokio::pin!(listen, messages);
                    // Drive the connection while LISTEN is sent, then keep
                    // reading notifications until the connection ends.
                    let mut listened = false;
                    std::future::poll_fn(|cx| {
                        use std::task::Poll;
                        if !listened {
                            if let Poll::Ready(r) = listen.as_mut().poll(cx) {
                                if r.is_err() {
                                    return Poll::Ready(());
                                }
                                listened = true;
                            }
                        }
                        messages.as_mut().poll(cx)
                    })
                    .await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

fn record_from(row: &Row) -> Record {
    Record {
        id: row.get("event_id"),
        event_type: row.get("event_type"),
        state: State::from_name(row.get("state")).unwrap_or(State::Pending),
        attempts: u32::try_from(row.get::<_, i32>("attempts")).unwrap_or(0),
        received_at_ms: row.get("received_at"),
        next_attempt_at_ms: row.get("next_attempt_at"),
        last_error: row.get("last_error"),
        account_id: row.get("account_id"),
        body: Bytes::from(row.get::<_, Vec<u8>>("body")),
        signature: row.get("signature"),
    }
}

const COLUMNS: &str = "event_id, event_type, state, attempts, received_at, next_attempt_at, last_error, account_id, body, signature";

/// The statements of the hot path, written once per inbox (and prepared once
/// per connection).
struct InboxSql {
    insert: String,
    revive: String,
    /// Due pending events, then running events whose lease lapsed: two
    /// index scans instead of one table scan for an `OR`.
    claim: [String; 2],
    complete: String,
    fail_dead: String,
    fail_retry: String,
    skip: String,
    extend: String,
}

impl InboxSql {
    fn new(t: &str) -> InboxSql {
        let owned = |set: &str| {
            format!(
                "UPDATE \"{t}\" SET {set}, updated_at = {NOW}
                 WHERE event_id = $1 AND event_type = $2 AND lease_owner = $3 AND state = 'running'"
            )
        };
        let claim = |due: &str| {
            format!(
                "UPDATE \"{t}\" SET state = 'running', lease_owner = $1, lease_until = {NOW} + $2,
                    attempts = attempts + 1, updated_at = {NOW}
                 WHERE (event_id, event_type) = (
                    SELECT event_id, event_type FROM \"{t}\" WHERE {due}
                    ORDER BY next_attempt_at LIMIT 1
                    FOR UPDATE SKIP LOCKED)
                 RETURNING event_id, event_type, body, matched_secret, attempts"
            )
        };
        InboxSql {
            insert: format!(
                "WITH ins AS (
                    INSERT INTO \"{t}\" (event_id, event_type, body, signature, matched_secret, account_id,
                        occurred_at, received_at, state, attempts, next_attempt_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, {NOW}, $8, 0, {NOW}, {NOW})
                    ON CONFLICT (event_id, event_type) DO NOTHING
                    RETURNING 1)
                 SELECT CASE WHEN $9 = '' THEN '' ELSE pg_notify($9, '')::TEXT END FROM ins"
            ),
            revive: format!(
                "WITH up AS (
                    UPDATE \"{t}\" SET state = 'pending', attempts = 0, next_attempt_at = {NOW},
                        last_error = NULL, updated_at = {NOW}
                    WHERE event_id = $1 AND event_type = $2 AND state = 'dead'
                    RETURNING 1)
                 SELECT pg_notify($3, '') FROM up"
            ),
            claim: [
                claim(&format!("state = 'pending' AND next_attempt_at <= {NOW}")),
                claim(&format!("state = 'running' AND lease_until <= {NOW}")),
            ],
            complete: owned("state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL"),
            fail_dead: owned("state = 'dead', lease_owner = NULL, lease_until = NULL, last_error = $4"),
            fail_retry: owned(&format!(
                "state = 'pending', lease_owner = NULL, lease_until = NULL, last_error = $4,
                 next_attempt_at = {NOW} + $5"
            )),
            skip: owned("state = 'skipped', lease_owner = NULL, lease_until = NULL"),
            extend: owned(&format!("lease_until = {NOW} + $4")),
        }
    }
}

impl Backend for PostgresInbox {
    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        Box::pin(self.call("insert", move |c| async move {
            let t = &self.inner.table;
            let now_ms =
                u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.inner.last_notify_ms.load(Ordering::Relaxed);
            let notify = now_ms.saturating_sub(last) >= 5
                && self
                    .inner
                    .last_notify_ms
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok();
            // An empty channel name makes the NOTIFY a no-op.
            let channel: &str = if notify { t } else { "" };
            let insert = c.prepared("insert", &self.inner.sql.insert).await?;
            let inserted = c
                .query_opt(
                    &insert,
                    &[
                        &e.id,
                        &e.event_type,
                        &&e.body[..],
                        &e.signature,
                        &e.matched_secret,
                        &e.account_id,
                        &e.occurred_at,
                        &e.state.as_str(),
                        &channel,
                    ],
                )
                .await
                .map_err(|err_| err("insert", &err_))?;
            if inserted.is_some() {
                return Ok(Inserted::New);
            }
            let revive = c.prepared("revive", &self.inner.sql.revive).await?;
            let revived = c
                .query_opt(&revive, &[&e.id, &e.event_type, t])
                .await
                .map_err(|err_| err("revive", &err_))?;
            Ok(if revived.is_some() {
                Inserted::Revived
            } else {
                Inserted::Duplicate
            })
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            // The table exists once the shared client connected.
            self.call("session", |_| async { Ok(()) }).await?;
            let client = bounded(
                self.inner.conn.timeout,
                "postgres inbox connect",
                connect(&self.inner.conn.url),
            )
            .await?;
            Ok(Box::new(PgSession {
                client: PgClient::new(client),
                sql: self.inner.sql.clone(),
                timeout: self.inner.conn.timeout,
            }) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        self.listen();
        super::notified_within(&self.inner.wake, max)
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(self.call("stats", move |c| async move {
            let t = &self.inner.table;
            let mut stats = Stats::default();
            for row in c
                .query(
                    &format!("SELECT state, COUNT(*) FROM \"{t}\" GROUP BY state"),
                    &[],
                )
                .await
                .map_err(|e| err("stats", &e))?
            {
                if let Some(state) = State::from_name(row.get(0)) {
                    stats
                        .counts
                        .insert(state, u64::try_from(row.get::<_, i64>(1)).unwrap_or(0));
                }
            }
            stats.oldest_due_ms = c
                .query_one(
                    &format!(
                        "SELECT COALESCE({NOW} - MIN(next_attempt_at), 0)::BIGINT FROM \"{t}\"
                         WHERE state = 'pending' AND next_attempt_at <= {NOW}"
                    ),
                    &[],
                )
                .await
                .map_err(|e| err("stats", &e))?
                .get(0);
            Ok(stats)
        }))
    }

    fn list<'a>(
        &'a self,
        state: Option<State>,
        event_type: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(self.call("list", move |c| async move {
            let t = &self.inner.table;
            let rows = c
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM \"{t}\"
                         WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR event_type = $2)
                         ORDER BY received_at, event_id LIMIT $3"
                    ),
                    &[&state.map(State::as_str), &event_type, &i64::from(limit)],
                )
                .await
                .map_err(|e| err("list", &e))?;
            Ok(rows.iter().map(record_from).collect())
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(self.call("get", move |c| async move {
            let t = &self.inner.table;
            let rows = c
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM \"{t}\" WHERE event_id = $1 ORDER BY event_type"
                    ),
                    &[&id],
                )
                .await
                .map_err(|e| err("get", &e))?;
            Ok(rows.iter().map(record_from).collect())
        }))
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.call("retry", move |c| async move {
            let t = &self.inner.table;
            let n = c
                .execute(
                    &format!(
                        "UPDATE \"{t}\" SET state = 'pending', attempts = 0, next_attempt_at = {NOW},
                            last_error = NULL, updated_at = {NOW}
                         WHERE (($1::TEXT IS NOT NULL AND event_id = $1 AND state IN ('dead', 'skipped'))
                                OR ($1::TEXT IS NULL AND (($2 AND state = 'dead') OR ($3 AND state = 'skipped'))))
                           AND ($4::TEXT IS NULL OR event_type = $4)"
                    ),
                    &[&f.id, &f.dead, &f.skipped, &f.event_type],
                )
                .await
                .map_err(|e| err("retry", &e))?;
            if n > 0 {
                let _ = c.execute("SELECT pg_notify($1, '')", &[t]).await;
            }
            Ok(n)
        }))
    }

    fn prune(&self, older_than: Duration) -> BoxFuture<'_, Result<u64, StoreError>> {
        let ms = millis(older_than);
        Box::pin(self.call("prune", move |c| async move {
            let t = &self.inner.table;
            c.execute(
                &format!("DELETE FROM \"{t}\" WHERE state IN ('done', 'skipped') AND updated_at < {NOW} - $1"),
                &[&ms],
            )
            .await
            .map_err(|e| err("prune", &e))
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.call("execute", move |c| async move {
            c.batch_execute(sql).await.map_err(|e| err("execute", &e))
        }))
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

struct PgSession {
    client: PgClient,
    sql: Arc<InboxSql>,
    timeout: Duration,
}

impl PgSession {
    /// One owner-checked statement on the claimed row; `Ok(true)` when the
    /// owner still held it.
    async fn owned(
        &self,
        what: &'static str,
        sql: &str,
        job: &Job,
        owner: &str,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&job.id, &job.event_type, &owner];
        params.extend_from_slice(extra);
        bounded(self.timeout, &format!("postgres inbox {what}"), async {
            let statement = self.client.prepared(what, sql).await?;
            self.client
                .execute(&statement, &params)
                .await
                .map(|n| n == 1)
                .map_err(|e| err(what, &e))
        })
        .await
    }
}

impl Session for PgSession {
    fn claim<'a>(
        &'a mut self,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<Job>, StoreError>> {
        let lease = millis(lease);
        Box::pin(async move {
            let mut row = None;
            for sql in &self.sql.claim {
                row = bounded(self.timeout, "postgres inbox claim", async {
                    let statement = self.client.prepared("claim", sql).await?;
                    self.client
                        .query_opt(&statement, &[&owner, &lease])
                        .await
                        .map_err(|e| err("claim", &e))
                })
                .await?;
                if row.is_some() {
                    break;
                }
            }
            Ok(row.map(|r| Job {
                id: r.get(0),
                event_type: r.get(1),
                body: Bytes::from(r.get::<_, Vec<u8>>(2)),
                matched_secret: usize::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                attempt: u32::try_from(r.get::<_, i32>(4)).unwrap_or(u32::MAX),
            }))
        })
    }

    fn complete<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.owned("complete", &self.sql.complete, job, owner, &[])
                .await
        })
    }

    fn fail<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        error: &'a str,
        retry_in: Duration,
        dead: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if dead {
                self.owned("fail", &self.sql.fail_dead, job, owner, &[&error])
                    .await
            } else {
                let ms = millis(retry_in);
                self.owned("fail", &self.sql.fail_retry, job, owner, &[&error, &ms])
                    .await
            }
        })
    }

    fn skip<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { self.owned("skip", &self.sql.skip, job, owner, &[]).await })
    }

    fn extend<'a>(
        &'a mut self,
        job: &'a Job,
        owner: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let ms = millis(lease);
            self.owned("extend", &self.sql.extend, job, owner, &[&ms])
                .await
        })
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
            let store_timeout = self.timeout;
            let complete = self.client.prepared("complete", &self.sql.complete).await?;
            let PgClient { client, statements } = &self.client;
            // `BEGIN` and the owner-checked move to "done" in one round trip
            // (requests are sent in the order first polled). From then on
            // the row is locked by this transaction, so no other worker can
            // claim it (claims skip locked rows) until it commits or rolls
            // back, however long the handler takes. Another owner already:
            // roll back, run nothing.
            let (begun, done) = bounded(store_timeout, "postgres inbox begin", async {
                Ok(pipelined(
                    client.batch_execute("BEGIN"),
                    client.execute(&complete, &[&job.id, &job.event_type, &owner]),
                )
                .await)
            })
            .await?;
            let rollback = || async {
                let _ = bounded(store_timeout, "postgres inbox rollback", async {
                    client
                        .batch_execute("ROLLBACK")
                        .await
                        .map_err(|e| err("rollback", &e))
                })
                .await;
            };
            let done = match begun.and(done) {
                Ok(n) => n,
                Err(e) => {
                    rollback().await;
                    return Err(err("complete", &e));
                }
            };
            if done != 1 {
                rollback().await;
                return Ok(TxEnd::LostLease);
            }
            let mut handle = Tx::postgres_on(client, statements);
            let ran = crate::dispatcher::run_tx(handler, &mut handle, event, timeout).await;
            if let Err(why) = ran {
                rollback().await;
                return Ok(TxEnd::Failed(why));
            }
            let committed = bounded(store_timeout, "postgres inbox commit", async {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| err("commit", &e))
            })
            .await;
            if let Err(e) = committed {
                // Never leave the worker's connection inside a transaction
                // its next statements would silently join.
                rollback().await;
                return Err(e);
            }
            Ok(TxEnd::Done)
        })
    }
}
