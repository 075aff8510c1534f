//! The PostgreSQL connection the de-duplication store and the inbox share:
//! one cached client, connected (and its schema created) on first use, every
//! call bounded by a timeout, dropped after a failure so the next call
//! connects afresh.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls, Statement};

use crate::store::{bounded, StoreError};

pub(crate) fn err(what: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::new(format!("postgres {what}: {e}"))
}

/// Connects to `url`; the connection is driven on a task of its own.
pub(crate) async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| err("connect", &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
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
}

impl PgClient {
    pub(crate) fn new(client: Client) -> PgClient {
        PgClient {
            client,
            statements: Statements::default(),
        }
    }

    /// `sql` prepared on this connection (once); a failure as a store error.
    pub(crate) async fn prepared(&self, what: &str, sql: &str) -> Result<Statement, StoreError> {
        self.statements
            .get(&self.client, sql)
            .await
            .map_err(|e| err(what, &e))
    }
}

impl std::ops::Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

pub(crate) struct PgConn {
    pub(crate) url: String,
    pub(crate) timeout: Duration,
    /// Statements creating the schema; run once per connection under an
    /// advisory lock (several replicas may start together).
    schema: String,
    lock_key: i64,
    client: Mutex<Option<Arc<PgClient>>>,
}

impl PgConn {
    pub(crate) fn new(url: &str, timeout: Duration, schema: String, lock_key: i64) -> PgConn {
        PgConn {
            url: url.to_owned(),
            timeout,
            schema,
            lock_key,
            client: Mutex::new(None),
        }
    }

    /// Runs `f` with a live client, all of it (waiting for the connection,
    /// connecting, the statements) under the timeout. A failure drops the
    /// cached connection, which may be the one that stopped answering.
    pub(crate) async fn call<'a, T, F, Fut>(&'a self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<PgClient>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + 'a,
    {
        let result = bounded(self.timeout, &format!("postgres {what}"), async {
            f(self.client().await?).await
        })
        .await;
        if result.is_err() {
            if let Ok(mut slot) = self.client.try_lock() {
                *slot = None;
            }
        }
        result
    }

    async fn client(&self) -> Result<Arc<PgClient>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = connect(&self.url).await?;
        client
            .batch_execute(&format!(
                "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock({}); {} COMMIT;",
                self.lock_key, self.schema
            ))
            .await
            .map_err(|e| err("create table", &e))?;
        let client = Arc::new(PgClient::new(client));
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
