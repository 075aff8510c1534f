//! The PostgreSQL store: atomic claims across replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use super::{Claim, DedupStore, EventKey};
use crate::conn::pg::{PgClient, PgConn};
use crate::error::{millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::sql::Dialect;
use crate::token::ClaimToken;

/// A store in PostgreSQL, for receivers running as several replicas: the
/// claim is one `INSERT … ON CONFLICT … DO UPDATE … WHERE expired RETURNING`,
/// atomic across processes, and times are the server's clock. Creates its
/// table on first use; reconnects after a lost connection. Plain TCP (no TLS).
///
/// Every call — connecting included — is bounded by a timeout (default
/// [`DEFAULT_STORE_TIMEOUT`], 5 s; [`PostgresStoreBuilder::timeout`]): a
/// stopped server, or one that accepts connections and never answers, makes
/// deliveries 503 within the timeout instead of hanging them. After a
/// timeout the connection is dropped and the next call connects afresh.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    sql: Statements,
    conn: PgConn,
    claims: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("PostgresStore")
            .field("timeout", &self.inner.conn.timeout)
            .finish_non_exhaustive()
    }
}

/// Options of a [`PostgresStore`]: `PostgresStore::builder(url).table(…).timeout(…).connect()`.
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    table: String,
    timeout: Duration,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The table (default `plugipay_webhook_events`; at most
    /// [`MAX_TABLE_NAME_LEN`](crate::MAX_TABLE_NAME_LEN) ASCII letters,
    /// digits and underscores; reserved words are fine).
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// How long one store call may take, connecting included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connects (and creates the table if needed).
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        crate::sql::check_table(&self.table)?;
        let sql = sql::statements(&self.table, Dialect::Postgres);
        let store = PostgresStore {
            inner: Arc::new(Inner {
                conn: PgConn::new(
                    &self.url,
                    self.timeout,
                    sql.schema.clone(),
                    727_166,
                    "postgres store",
                ),
                sql,
                claims: AtomicU64::new(0),
            }),
        };
        store.call("connect", |_| async { Ok(()) }).await?;
        Ok(store)
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), table
    /// `plugipay_webhook_events`, 5 s timeout.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::builder(url).connect().await
    }

    /// Connects with a table of your choosing.
    pub async fn connect_with_table(url: &str, table: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::builder(url).table(table).connect().await
    }

    /// Options: table and timeout.
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.to_owned(),
            table: DEFAULT_TABLE.to_owned(),
            timeout: DEFAULT_STORE_TIMEOUT,
        }
    }

    async fn call<'a, T, F, Fut>(&'a self, what: &str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<PgClient>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
    {
        self.inner.conn.call(what, f).await
    }

    /// One statement changing one claimed row; `Ok(true)` when it did.
    async fn owned_update(
        &self,
        what: &'static str,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        self.call(what, |c| async move {
            let statement = c.prepared(what, statement).await?;
            let n = c
                .execute(&statement, params)
                .await
                .map_err(|e| c.err(what, &e))?;
            Ok(n == 1)
        })
        .await
    }
}

impl DedupStore for PostgresStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(self.call("claim", move |c| async move {
            if self
                .inner
                .claims
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(PURGE_EVERY)
            {
                c.execute(&c.prepared("purge", &self.inner.sql.purge).await?, &[])
                    .await
                    .map_err(|e| c.err("purge", &e))?;
            }
            let token = ClaimToken::new();
            let row = c
                .query_opt(
                    &c.prepared("claim", &self.inner.sql.claim).await?,
                    &[
                        &key.tenant,
                        &key.id,
                        &key.event_type,
                        &token.as_str(),
                        &millis(lease),
                    ],
                )
                .await
                .map_err(|e| c.err("claim", &e))?;
            if row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() == Some(token.as_str()) {
                return Ok(Claim::Acquired(token));
            }
            let state = c
                .query_opt(
                    &c.prepared("state", &self.inner.sql.state).await?,
                    &[&key.tenant, &key.id, &key.event_type],
                )
                .await
                .map_err(|e| c.err("state", &e))?
                .map(|r| r.get::<_, String>(0));
            Ok(match state.as_deref() {
                Some("done") => Claim::Done,
                _ => Claim::InProgress,
            })
        }))
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let ms = millis(retention);
            self.owned_update(
                "complete",
                &self.inner.sql.complete,
                &[&key.tenant, &key.id, &key.event_type, &token.as_str(), &ms],
            )
            .await
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.owned_update(
                "release",
                &self.inner.sql.release,
                &[&key.tenant, &key.id, &key.event_type, &token.as_str()],
            )
            .await
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let ms = millis(lease);
            self.owned_update(
                "extend",
                &self.inner.sql.extend,
                &[&key.tenant, &key.id, &key.event_type, &token.as_str(), &ms],
            )
            .await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.call("health check", |c| async move {
            c.simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| c.err("health check", &e))
        }))
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
