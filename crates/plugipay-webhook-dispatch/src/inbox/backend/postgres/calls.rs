//! The PostgreSQL inbox's calls: receiving, stats, activity, listings,
//! counts, the tools' transitions and pruning — each on a leased connection,
//! bounded by the store timeout.

use std::time::Duration;

use sqlx::Row;

use super::super::{Backend, Inserted, NewEvent, Session};
use super::session::PgSession;
use super::{bind_params, PostgresInbox, LOCK_KEY};
use crate::conn::postgres::execute_locked;
use crate::error::{millis, BoxFuture, StoreError};
use crate::inbox::machine::State;
use crate::inbox::query::{Count, FailingRow, ListFilter, Page};
use crate::inbox::types::{Activity, PruneFilter, Record, RetryFilter, Stats};
use crate::sql::Dialect;

impl Backend for PostgresInbox {
    fn can_order(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn insert<'a>(&'a self, e: &'a NewEvent) -> BoxFuture<'a, Result<Inserted, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("insert", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let insert = sqlx::query(&sql.insert).persistent(self.inner.conn.persistent);
            let inserted = super::super::rows::bind_new(insert, e)
                .fetch_optional(&mut *c)
                .await
                .map_err(|err| conn.err("insert", &err))?;
            let outcome = if inserted.is_some() {
                if e.state == State::Pending && self.notify_now() {
                    self.notify(&mut c).await;
                }
                Inserted::New
            } else {
                let revived = sqlx::query(&sql.redeliver)
                    .persistent(self.inner.conn.persistent)
                    .bind(&e.tenant)
                    .bind(&e.id)
                    .bind(&e.event_type)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(|err| conn.err("redeliver", &err))?;
                if revived.is_some() {
                    self.notify(&mut c).await;
                    Inserted::Revived
                } else {
                    Inserted::Duplicate
                }
            };
            c.finish().await?;
            Ok(outcome)
        }))
    }

    fn session(&self) -> BoxFuture<'_, Result<Box<dyn Session>, StoreError>> {
        Box::pin(async move {
            // The table exists once a shared connection checked it.
            let conn = &self.inner.conn;
            conn.bounded("session", async { conn.lease().await?.finish().await })
                .await?;
            Ok(Box::new(PgSession::new(
                self.inner.options.clone(),
                self.inner.sql.clone(),
                conn.timeout,
                conn.persistent,
            )) as Box<dyn Session>)
        })
    }

    fn wait(&self, max: Duration) -> BoxFuture<'_, ()> {
        self.listen();
        let wake = self.inner.wake.clone();
        Box::pin(async move {
            let _ = tokio::time::timeout(max, wake.notified()).await;
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("stats", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err("stats", &err);
            let mut stats = Stats::default();
            for row in sqlx::query(&sql.count_by_state)
                .persistent(self.inner.conn.persistent)
                .fetch_all(&mut *c)
                .await
                .map_err(e)?
            {
                if let Some(state) = State::from_name(row.try_get(0).map_err(e)?) {
                    let n: i64 = row.try_get(1).map_err(e)?;
                    stats.counts.insert(state, u64::try_from(n).unwrap_or(0));
                }
            }
            stats.oldest_due_ms = sqlx::query_scalar(&sql.oldest_due)
                .persistent(self.inner.conn.persistent)
                .fetch_one(&mut *c)
                .await
                .map_err(e)?;
            stats.next_lease_lapse_ms = sqlx::query_scalar(&sql.next_lapse)
                .persistent(self.inner.conn.persistent)
                .fetch_one(&mut *c)
                .await
                .map_err(e)?;
            c.finish().await?;
            Ok(stats)
        }))
    }

    fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> BoxFuture<'_, Result<Activity, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("activity", async move {
            let sql = &self.inner.sql;
            let mut c = conn.lease().await?;
            let mut counts = Vec::new();
            for query in [&sql.activity_received, &sql.activity_done] {
                let rows: Vec<(i64, i64)> = sqlx::query_as(query)
                    .persistent(self.inner.conn.persistent)
                    .bind(since_ms)
                    .bind(bucket_ms)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(|e| conn.err("activity", &e))?;
                counts.push(super::super::bucketed(rows, buckets));
            }
            c.finish().await?;
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

    fn list<'a>(&'a self, filter: &'a ListFilter) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let (query, params) = self.inner.sql.list(Dialect::Postgres, filter);
            let q = sqlx::query(&query).persistent(self.inner.conn.persistent);
            let records = self.records("list", bind_params(q, params), false).await?;
            Ok(super::super::page(records, filter.limit()))
        })
    }

    fn count<'a>(
        &'a self,
        filter: &'a ListFilter,
        at_most: u64,
    ) -> BoxFuture<'a, Result<Count, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("count", async move {
            let (query, params) = self.inner.sql.count(Dialect::Postgres, filter, at_most);
            let mut c = conn.lease().await?;
            let q = sqlx::query(&query).persistent(self.inner.conn.persistent);
            let n: i64 = bind_params(q, params)
                .fetch_one(&mut *c)
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| conn.err("count", &e))?;
            c.finish().await?;
            Ok(super::super::counted(n, at_most))
        }))
    }

    fn failing(&self, sample: u32) -> BoxFuture<'_, Result<Vec<FailingRow>, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("failing types", async move {
            let mut c = conn.lease().await?;
            let e = |err: sqlx::Error| conn.err("failing types", &err);
            let rows = sqlx::query(&self.inner.sql.failing)
                .persistent(self.inner.conn.persistent)
                .bind(i64::from(sample))
                .fetch_all(&mut *c)
                .await
                .map_err(e)?;
            let out = rows
                .iter()
                .map(super::super::rows::failing)
                .collect::<Result<_, _>>()
                .map_err(e)?;
            c.finish().await?;
            Ok(out)
        }))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let q = sqlx::query(&self.inner.sql.get)
                .persistent(self.inner.conn.persistent)
                .bind(id);
            self.records("get", q, true).await
        })
    }

    fn retry<'a>(&'a self, f: &'a RetryFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("retry", async move {
            let mut c = conn.lease().await?;
            let n = sqlx::query(&self.inner.sql.revive)
                .persistent(self.inner.conn.persistent)
                .bind(&f.id)
                .bind(f.dead)
                .bind(f.skipped)
                .bind(f.done)
                .bind(&f.event_type)
                .bind(&f.tenant)
                .bind(f.stale)
                .bind(&f.handler)
                .bind(f.since_ms)
                .execute(&mut *c)
                .await
                .map_err(|e| conn.err("retry", &e))?
                .rows_affected();
            if n > 0 {
                self.notify(&mut c).await;
            }
            c.finish().await?;
            Ok(n)
        }))
    }

    fn prune<'a>(&'a self, f: &'a PruneFilter) -> BoxFuture<'a, Result<u64, StoreError>> {
        let ms = millis(f.older_than);
        let conn = &self.inner.conn;
        Box::pin(conn.bounded("prune", async move {
            let mut c = conn.lease().await?;
            let n = sqlx::query(&self.inner.sql.prune)
                .persistent(self.inner.conn.persistent)
                .bind(ms)
                .bind(f.skipped)
                .execute(&mut *c)
                .await
                .map_err(|e| conn.err("prune", &e))?
                .rows_affected();
            c.finish().await?;
            Ok(n)
        }))
    }

    fn execute<'a>(&'a self, sql: &'a str) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        let conn = &self.inner.conn;
        Some(Box::pin(conn.bounded("execute", async move {
            let mut c = conn.lease().await?;
            execute_locked(&mut c, sql, LOCK_KEY, "postgres inbox execute").await?;
            c.finish().await?;
            Ok(())
        })))
    }
}
