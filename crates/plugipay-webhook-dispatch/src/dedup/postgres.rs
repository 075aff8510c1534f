//! The PostgreSQL store: atomic claims across replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use super::{Claim, DedupStore, EventKey};
use sqlx::postgres::PgPool;

use crate::conn::postgres::{self as pg, PgConn};
use crate::error::{millis, BoxFuture, StoreError, DEFAULT_STORE_TIMEOUT};
use crate::sql::Dialect;
use crate::token::ClaimToken;

/// A store in PostgreSQL, for receivers running as several replicas: the
/// claim is one `INSERT … ON CONFLICT … DO UPDATE … WHERE expired RETURNING`,
/// atomic across processes, and times are the server's clock. Creates its
/// table on first use; reconnects after a lost connection. Opened from a URL
/// with libpq's conventions (`sslmode`, `sslrootcert`, `PG*` variables;
/// rustls with the system's trust store), or on the application's own sqlx
/// pool ([`from_pool`](PostgresStore::from_pool)).
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
        let options = pg::options(&self.url, "postgres store")?;
        let pool = pg::pool(options, 1, self.timeout);
        PostgresStore::open(pool, Some(1), &self.table, self.timeout).await
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

    /// The store in table `name` on the application's own pool (each
    /// call takes a connection and gives it back once it succeeded; one
    /// that failed or timed out is closed, never returned mid-statement).
    /// Creates the table if needed.
    pub async fn from_pool(pool: PgPool, name: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::open(pool, None, name, DEFAULT_STORE_TIMEOUT).await
    }

    async fn open(
        pool: PgPool,
        slots: Option<usize>,
        table: &str,
        timeout: Duration,
    ) -> Result<PostgresStore, StoreError> {
        crate::sql::check_table(table)?;
        let sql = sql::statements(table, Dialect::Postgres);
        let store = PostgresStore {
            inner: Arc::new(Inner {
                conn: PgConn::new(
                    pool,
                    slots,
                    timeout,
                    sql.schema.clone(),
                    727_166,
                    "postgres store",
                ),
                sql,
                claims: AtomicU64::new(0),
            }),
        };
        let conn = &store.inner.conn;
        conn.bounded("connect", async { conn.lease().await?.finish().await })
            .await?;
        Ok(store)
    }

    /// `sql` bound to one claim: its key's tenant, id and type, then the
    /// owner's token (`$1`–`$4`).
    fn keyed<'q>(
        &self,
        sql: &'q str,
        key: &'q EventKey,
        token: &'q ClaimToken,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sql)
            .persistent(self.inner.conn.persistent)
            .bind(&key.tenant)
            .bind(&key.id)
            .bind(&key.event_type)
            .bind(token.as_str())
    }

    /// One statement changing one claimed row; `Ok(true)` when it did.
    async fn owned_update(
        &self,
        what: &'static str,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<bool, StoreError> {
        let conn = &self.inner.conn;
        conn.bounded(what, async {
            let mut c = conn.lease().await?;
            let n = query
                .execute(&mut *c)
                .await
                .map_err(|e| conn.err(what, &e))?
                .rows_affected();
            c.finish().await?;
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
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("claim", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            if self
                .inner
                .claims
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(PURGE_EVERY)
            {
                sqlx::query(&sql.purge)
                    .persistent(self.inner.conn.persistent)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| conn.err("purge", &e))?;
            }
            let token = ClaimToken::new();
            let holder: Option<Option<String>> = sqlx::query_scalar(&sql.claim)
                .persistent(self.inner.conn.persistent)
                .bind(&key.tenant)
                .bind(&key.id)
                .bind(&key.event_type)
                .bind(token.as_str())
                .bind(millis(lease))
                .fetch_optional(&mut *c)
                .await
                .map_err(|e| conn.err("claim", &e))?;
            if holder.flatten().as_deref() == Some(token.as_str()) {
                c.finish().await?;
                return Ok(Claim::Acquired(token));
            }
            let state: Option<String> = sqlx::query_scalar(&sql.state)
                .persistent(self.inner.conn.persistent)
                .bind(&key.tenant)
                .bind(&key.id)
                .bind(&key.event_type)
                .fetch_optional(&mut *c)
                .await
                .map_err(|e| conn.err("state", &e))?;
            c.finish().await?;
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
            let q = self.keyed(&self.inner.sql.complete, key, token).bind(ms);
            self.owned_update("complete", q).await
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let q = self.keyed(&self.inner.sql.release, key, token);
            self.owned_update("release", q).await
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
            let q = self.keyed(&self.inner.sql.extend, key, token).bind(ms);
            self.owned_update("extend", q).await
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("health check", async {
            let mut c = conn.lease().await?;
            sqlx::Executor::execute(&mut *c, "SELECT 1")
                .await
                .map_err(|e| conn.err("health check", &e))?;
            c.finish().await?;
            Ok(())
        }))
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
