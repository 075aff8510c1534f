//! PostgreSQL connections, shared by the de-duplication store and the
//! inbox: cached clients (the store's one, the inbox's
//! `DEFAULT_POSTGRES_CONNECTIONS` unless told), each connected (and its
//! schema created or brought forward, under an advisory lock) on first use,
//! every call bounded by a timeout, a client dropped after a failure so the
//! next call on it connects afresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls, Statement};

use crate::error::{bounded, StoreError};
use crate::sql::{Dialect, Schema};

/// The error of `what`, with the server's own reason: its message and
/// SQLSTATE for a database error (`database "x" does not exist (3D000)`),
/// the cause for a connection error (`connection refused`).
pub(crate) fn err(what: &str, e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{what}: {} ({})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(": ");
                text.push_str(detail);
            }
            StoreError::new(text).with_sqlstate(db.code().code())
        }
        None => StoreError::caused(what, e),
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

/// Connects to `url`; the connection is driven on a task of its own.
/// `what` names the store in errors (`postgres inbox`).
pub(crate) async fn connect(url: &str, what: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| err(&format!("{what} connect"), &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %crate::error::chain(&e), "postgres connection closed");
        }
    });
    Ok(client)
}

/// Statements prepared on one connection, by their SQL: the hot
/// statements are parsed and planned once per connection, not once per call
/// (one round trip and PostgreSQL's parse/plan work saved each time).
/// Prepared statements belong to the session, so one prepared inside a
/// transaction stays after it ends, committed or not.
#[derive(Default)]
pub(crate) struct Statements(std::sync::Mutex<HashMap<String, Statement>>);

impl Statements {
    /// `sql` prepared on `on`'s connection (once).
    pub(crate) async fn get<C: GenericClient + Sync>(
        &self,
        on: &C,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.0.lock().ok().and_then(|m| m.get(sql).cloned()) {
            return Ok(s);
        }
        let prepared = on.prepare(sql).await?;
        if let Ok(mut map) = self.0.lock() {
            map.insert(sql.to_owned(), prepared.clone());
        }
        Ok(prepared)
    }
}

/// A client and the statements prepared on it.
pub(crate) struct PgClient {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
    what: String,
}

impl PgClient {
    pub(crate) fn new(client: Client, what: &str) -> PgClient {
        PgClient {
            client,
            statements: Statements::default(),
            what: what.to_owned(),
        }
    }

    /// `sql` prepared on this connection (once); a failure as a store error.
    pub(crate) async fn prepared(&self, what: &str, sql: &str) -> Result<Statement, StoreError> {
        self.statements
            .get(&self.client, sql)
            .await
            .map_err(|e| self.err(what, &e))
    }

    /// `what`'s error, named after this connection's store.
    pub(crate) fn err(&self, what: &str, e: &tokio_postgres::Error) -> StoreError {
        err(&format!("{} {what}", self.what), e)
    }

    /// Asks the server to cancel whatever this connection is running (the
    /// connection itself is left to its owner to drop).
    pub(crate) fn cancel(&self) {
        let token = self.client.cancel_token();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), token.cancel_query(NoTls)).await;
            });
        }
    }
}

impl std::ops::Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Brings `schema` to its current version on `client`, inside a transaction
/// that holds the advisory lock `lock_key` (replicas starting together wait
/// for each other instead of colliding).
pub(crate) async fn ensure_schema(
    client: &Client,
    schema: &Schema,
    lock_key: i64,
    what: &str,
) -> Result<(), StoreError> {
    let e = |step: &str| {
        let what = format!("{what} {step}");
        move |err_: tokio_postgres::Error| err(&what, &err_)
    };
    let (bookkeeping, read, record) = Schema::bookkeeping(Dialect::Postgres);
    client
        .batch_execute(&format!(
            "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock({lock_key}); {bookkeeping}"
        ))
        .await
        .map_err(e("schema"))?;
    let result = async {
        let recorded: Option<i64> = client
            .query_opt(&read, &[&schema.table])
            .await
            .map_err(e("schema"))?
            .map(|r| r.get(0));
        let exists: i64 = client
            .query_one(Dialect::Postgres.table_exists(), &[&schema.table])
            .await
            .map_err(e("schema"))?
            .get(0);
        let plan = schema.plan(recorded, exists > 0)?;
        if plan.is_empty() && recorded.is_some() {
            return Ok(());
        }
        for statements in plan {
            client
                .batch_execute(statements)
                .await
                .map_err(e("schema upgrade"))?;
        }
        client
            .execute(&record, &[&schema.table, &schema.version])
            .await
            .map_err(e("schema"))?;
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await.map_err(e("schema"))?;
    result
}

/// Runs `sql` (any statements) in a transaction holding the advisory lock
/// `lock_key`: start-up statements of replicas starting together run one
/// after the other instead of colliding (`CREATE TABLE IF NOT EXISTS` is not
/// safe against itself).
pub(crate) async fn execute_locked(
    client: &Client,
    sql: &str,
    lock_key: i64,
    what: &str,
) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({lock_key});"))
        .await
        .map_err(|e| err(what, &e))?;
    match client.batch_execute(sql).await {
        Ok(()) => client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| err(what, &e)),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(err(what, &e))
        }
    }
}

/// The shared, cached connections of a store: calls go to them in turn.
/// One server backend commits one transaction at a time, so concurrent
/// callers' commits on one connection queue behind each other; on several
/// they reach the server together, which flushes them to the WAL in one
/// group commit.
pub(crate) struct PgConn {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    /// `postgres inbox`, `postgres store`: how errors name it.
    pub(crate) what: String,
    schema: Schema,
    pub(crate) lock_key: i64,
    clients: Vec<Mutex<Option<Arc<PgClient>>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PgConn {
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        schema: Schema,
        lock_key: i64,
        what: &str,
    ) -> PgConn {
        PgConn {
            url: url.to_owned(),
            timeout,
            what: what.to_owned(),
            schema,
            lock_key,
            clients: vec![Mutex::new(None)],
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The same with `n` connections (at least one).
    pub(crate) fn with_connections(mut self, n: usize) -> PgConn {
        self.clients = (0..n.max(1)).map(|_| Mutex::new(None)).collect();
        self
    }

    /// Runs `f` with a live client, all of it (waiting for the connection,
    /// connecting, the statements) under the timeout. A failure drops the
    /// cached connection, which may be the one that stopped answering.
    pub(crate) async fn call<'a, T, F, Fut>(&'a self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<PgClient>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + 'a,
    {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.clients.len();
        let result = bounded(self.timeout, &format!("{} {what}", self.what), async {
            f(self.client(i).await?).await
        })
        .await;
        if result.is_err() {
            if let Ok(mut slot) = self.clients[i].try_lock() {
                *slot = None;
            }
        }
        result
    }

    async fn client(&self, i: usize) -> Result<Arc<PgClient>, StoreError> {
        let mut slot = self.clients[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = connect(&self.url, &self.what).await?;
        ensure_schema(&client, &self.schema, self.lock_key, &self.what).await?;
        let client = Arc::new(PgClient::new(client, &self.what));
        *slot = Some(client.clone());
        Ok(client)
    }
}

/// Both futures to their ends, `a` polled first: on one connection, their
/// requests go out in that order in one write, and the answers come back in
/// one round trip (tokio-postgres pipelines requests polled together).
pub(crate) async fn pipelined<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => std::task::Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                std::task::Poll::Pending
            }
        }
    })
    .await
}

/// A statement parameter the driver must not log: tokio-postgres writes
/// every parameter's `Debug` at `debug` level ("executing statement … with
/// parameters: […]"); this one's is `<redacted>`. For an event's body and
/// signature header.
pub(crate) struct Redacted<T>(pub(crate) T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: tokio_postgres::types::ToSql> tokio_postgres::types::ToSql for Redacted<T> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        T::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}
