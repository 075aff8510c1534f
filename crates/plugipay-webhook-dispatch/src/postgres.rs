//! The PostgreSQL store: atomic claims across replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use crate::sql::{self, Statements, DEFAULT_TABLE, PURGE_EVERY};
use crate::store::{millis, BoxFuture, Claim, ClaimToken, DedupStore, EventKey, StoreError};

/// A store in PostgreSQL, for receivers running as several replicas: the
/// claim is one `INSERT … ON CONFLICT … DO UPDATE … WHERE expired RETURNING`,
/// atomic across processes, and times are the server's clock. Creates its
/// table on first use; reconnects after a lost connection. Plain TCP (no TLS).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    sql: Statements,
    client: Mutex<Option<Arc<Client>>>,
    claims: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

const NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

fn err(what: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::new(format!("postgres {what}: {e}"))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), table
    /// `plugipay_webhook_events`.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with_table(url, DEFAULT_TABLE).await
    }

    /// Connects with a table of your choosing.
    pub async fn connect_with_table(url: &str, table: &str) -> Result<PostgresStore, StoreError> {
        sql::check_table(table)?;
        let store = PostgresStore {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                sql: sql::statements(table, |n| format!("${n}"), NOW),
                client: Mutex::new(None),
                claims: AtomicU64::new(0),
            }),
        };
        store.client().await?;
        Ok(store)
    }

    /// The live client, connecting (and creating the table) when needed.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.inner.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = tokio_postgres::connect(&self.inner.url, NoTls)
            .await
            .map_err(|e| err("connect", &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres de-duplication store connection closed");
            }
        });
        // Several replicas may start together: serialise the DDL.
        client
            .batch_execute(&format!(
                "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock(727166); {} COMMIT;",
                self.inner.sql.create
            ))
            .await
            .map_err(|e| err("create table", &e))?;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

impl DedupStore for PostgresStore {
    fn claim<'a>(
        &'a self,
        key: &'a EventKey,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            if self
                .inner
                .claims
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(PURGE_EVERY)
            {
                c.execute(&self.inner.sql.purge, &[])
                    .await
                    .map_err(|e| err("purge", &e))?;
            }
            let token = ClaimToken::new();
            let row = c
                .query_opt(
                    &self.inner.sql.claim,
                    &[&key.id, &key.event_type, &token.as_str(), &millis(lease)],
                )
                .await
                .map_err(|e| err("claim", &e))?;
            if row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() == Some(token.as_str()) {
                return Ok(Claim::Acquired(token));
            }
            let state = c
                .query_opt(&self.inner.sql.state, &[&key.id, &key.event_type])
                .await
                .map_err(|e| err("state", &e))?
                .map(|r| r.get::<_, String>(0));
            Ok(match state.as_deref() {
                Some("done") => Claim::Done,
                _ => Claim::InProgress,
            })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    &self.inner.sql.complete,
                    &[
                        &millis(retention),
                        &key.id,
                        &key.event_type,
                        &token.as_str(),
                    ],
                )
                .await
                .map_err(|e| err("complete", &e))?;
            Ok(n == 1)
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a EventKey,
        token: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = self.client().await?;
            let n = c
                .execute(
                    &self.inner.sql.release,
                    &[&key.id, &key.event_type, &token.as_str()],
                )
                .await
                .map_err(|e| err("release", &e))?;
            Ok(n == 1)
        })
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}
