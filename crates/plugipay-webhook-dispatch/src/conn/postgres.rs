//! PostgreSQL through sqlx, shared by the de-duplication store and the
//! inbox: for the shared calls the application's pool (`from_pool`), or —
//! opened from a URL — connections of their own taken in turn; for the
//! inbox's workers, a connection each, made with the pool's options (the
//! same TLS and credentials); the schema created or brought forward under a
//! transaction-level advisory lock; every call bounded by a timeout.
//!
//! Nothing here keeps state in a server session — no session `SET`, no
//! session advisory lock, no reliance on `LISTEN` — so the same code runs
//! through PgBouncer in transaction pooling mode (with sqlx's
//! `statement-cache-capacity=0` in the URL, since PgBouncer before 1.21
//! does not carry named prepared statements across server connections).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Postgres};

use crate::error::{bounded, BoxFuture, StoreError};
use crate::sql::{Dialect, Schema};

/// The error of `what`, with the server's own reason: its message and
/// SQLSTATE for a database error (`database "x" does not exist (3D000)`),
/// the cause for a connection or TLS error (`connection refused`,
/// `invalid peer certificate: UnknownIssuer`). Never the URL or a password.
pub(crate) fn err(what: &str, e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let mut text = format!("{what}: {} ({code})", db.message());
            if let Some(detail) = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|d| d.detail())
            {
                text.push_str(": ");
                text.push_str(detail);
            }
            StoreError::new(text).with_sqlstate(&code)
        }
        sqlx::Error::PoolTimedOut => StoreError::new(format!(
            "{what}: no connection of the pool was free within its acquire timeout"
        )),
        _ => StoreError::caused(what, e),
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Connection options from a libpq-style URL (`postgres://user:pass@host/db
/// ?sslmode=verify-full&sslrootcert=ca.pem`); what the URL leaves out comes
/// from the `PG*` environment variables, as with libpq. Like libpq,
/// `sslmode=require` verifies the server's chain when a root certificate is
/// given (`sslrootcert` or `PGSSLROOTCERT`), and only encrypts without one.
pub(crate) fn options(url: &str, what: &str) -> Result<PgConnectOptions, StoreError> {
    let opts: PgConnectOptions = url.trim().parse().map_err(|e: sqlx::Error| {
        // sqlx's parse errors quote the URL, password included: not shown.
        let why = match &e {
            sqlx::Error::Configuration(c) => redact_url(&c.to_string(), url),
            other => redact_url(&other.to_string(), url),
        };
        StoreError::new(format!("{what}: invalid connection URL: {why}"))
    })?;
    let rooted = query_param(url, "sslrootcert").is_some()
        || std::env::var_os("PGSSLROOTCERT").is_some_and(|v| !v.is_empty());
    let opts = if rooted && matches!(opts.get_ssl_mode(), PgSslMode::Require) {
        opts.ssl_mode(PgSslMode::VerifyCa)
    } else {
        opts
    };
    // No `extra_float_digits` startup parameter: PgBouncer refuses a
    // connection that sends one unless told to ignore it ("unsupported
    // startup parameter"), and the inbox reads no float as text.
    // Statements are logged at debug level (their text, never their
    // parameters): not at info, where a receiver's logs would fill with them.
    Ok(opts
        .extra_float_digits(None)
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1)))
}

/// The value of `name` in the URL's query, if present.
fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `text` with the URL's password (if any) replaced.
fn redact_url(text: &str, url: &str) -> String {
    match crate::url::password(url) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_owned(),
    }
}

/// The pool of a store or inbox opened from a URL: it holds the connect
/// options and makes the listener's connection (the calls themselves run on
/// connections of their own, see `PgConn`); `max` connections, none kept
/// open before use, none tested on acquire.
pub(crate) fn pool(opts: PgConnectOptions, max: usize, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(u32::try_from(max.max(1)).unwrap_or(u32::MAX))
        .min_connections(0)
        .acquire_timeout(timeout)
        .test_before_acquire(false)
        .connect_lazy_with(opts)
}

/// Connects a connection of its own (a worker's) with `opts`.
pub(crate) async fn connect(
    opts: &PgConnectOptions,
    what: &str,
) -> Result<PgConnection, StoreError> {
    opts.connect()
        .await
        .map_err(|e| err(&format!("{what} connect"), &e))
}

/// Brings `schema` to its current version on `conn`, inside a transaction
/// that holds the advisory lock `lock_key` (replicas starting together wait
/// for each other instead of colliding; a transaction-level lock, so it
/// holds through a transaction pooler).
pub(crate) fn ensure_schema<'a>(
    conn: &'a mut PgConnection,
    schema: &'a Schema,
    lock_key: i64,
    what: &'a str,
    persistent: bool,
) -> BoxFuture<'a, Result<(), StoreError>> {
    Box::pin(ensure_schema_now(conn, schema, lock_key, what, persistent))
}

async fn ensure_schema_now(
    conn: &mut PgConnection,
    schema: &Schema,
    lock_key: i64,
    what: &str,
    persistent: bool,
) -> Result<(), StoreError> {
    let e = |step: &str| {
        let what = format!("{what} {step}");
        move |err_: sqlx::Error| err(&what, &err_)
    };
    let (bookkeeping, read, record) = Schema::bookkeeping(Dialect::Postgres);
    sqlx::Executor::execute(
        &mut *conn,
        &*format!(
            "BEGIN; SET LOCAL client_min_messages = warning; \
         SELECT pg_advisory_xact_lock({lock_key}); {bookkeeping}"
        ),
    )
    .await
    .map_err(e("schema"))?;
    let result = async {
        let recorded: Option<i64> = sqlx::query_scalar(&read)
            .persistent(persistent)
            .bind(&schema.table)
            .fetch_optional(&mut *conn)
            .await
            .map_err(e("schema"))?;
        let exists: i64 = sqlx::query_scalar(Dialect::Postgres.table_exists())
            .persistent(persistent)
            .bind(&schema.table)
            .fetch_one(&mut *conn)
            .await
            .map_err(e("schema"))?;
        let plan = schema.plan(recorded, exists > 0)?;
        if plan.is_empty() && recorded.is_some() {
            return Ok(());
        }
        for statements in plan {
            sqlx::Executor::execute(&mut *conn, statements)
                .await
                .map_err(e("schema upgrade"))?;
        }
        sqlx::query(&record)
            .persistent(persistent)
            .bind(&schema.table)
            .bind(schema.version)
            .execute(&mut *conn)
            .await
            .map_err(e("schema"))?;
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::Executor::execute(&mut *conn, end)
        .await
        .map_err(e("schema"))?;
    result
}

/// Runs `sql` (any statements) in a transaction holding the advisory lock
/// `lock_key`: start-up statements of replicas starting together run one
/// after the other instead of colliding (`CREATE TABLE IF NOT EXISTS` is not
/// safe against itself).
pub(crate) async fn execute_locked(
    lease: &mut Lease<'_>,
    sql: &str,
    lock_key: i64,
    what: &str,
) -> Result<(), StoreError> {
    let lock = format!("SELECT pg_advisory_xact_lock({lock_key})");
    if lease.in_tx {
        // Already in the call's own transaction (through a pooler):
        // `Lease::finish` commits it.
        sqlx::Executor::execute(&mut **lease, &*lock)
            .await
            .map_err(|e| err(what, &e))?;
        return sqlx::Executor::execute(&mut **lease, sql)
            .await
            .map(drop)
            .map_err(|e| err(what, &e));
    }
    let conn: &mut PgConnection = lease;
    sqlx::Executor::execute(&mut *conn, &*format!("BEGIN; {lock}"))
        .await
        .map_err(|e| err(what, &e))?;
    match sqlx::Executor::execute(&mut *conn, sql).await {
        Ok(_) => sqlx::Executor::execute(&mut *conn, "COMMIT")
            .await
            .map(drop)
            .map_err(|e| err(what, &e)),
        Err(e) => {
            let _ = sqlx::Executor::execute(&mut *conn, "ROLLBACK").await;
            Err(err(what, &e))
        }
    }
}

/// The shared connections of a store or inbox, the schema brought to its
/// version on first use (and again after any failure: a table dropped
/// behind our back is made anew): the application's pool, or — opened from
/// a URL — connections of our own, taken in turn.
pub(crate) struct PgConn {
    /// The application's pool; from a URL, a pool that only makes the
    /// listener's connection (and holds the options).
    pub(crate) pool: PgPool,
    source: Source,
    pub(crate) timeout: Duration,
    /// `postgres inbox`, `postgres store`: how errors name it.
    pub(crate) what: String,
    schema: Schema,
    pub(crate) lock_key: i64,
    ready: AtomicBool,
    /// Statements named and kept per connection (see [`named_statements`]).
    pub(crate) persistent: bool,
    /// The last attempt to get a pooled connection did not succeed (or has
    /// not been made): the next one connects directly first (see `lease`).
    down: AtomicBool,
}

/// Where a call's connection comes from.
enum Source {
    /// Borrowed from the application's pool for the call.
    Pool,
    /// Connections of our own, taken in turn, each kept while it works:
    /// sqlx 0.8's pool pings every connection given back to it (a round
    /// trip and a task per call, the connection unusable meanwhile — it
    /// halved the receive rate), and one connection per slot is what an
    /// inbox opened from a URL needs.
    Slots {
        slots: Vec<tokio::sync::Mutex<Option<PgConnection>>>,
        next: AtomicUsize,
        options: Arc<PgConnectOptions>,
    },
}

impl PgConn {
    /// On `pool`; with `slots`, on that many connections of its own made
    /// with the pool's options instead of the pool's.
    pub(crate) fn new(
        pool: PgPool,
        slots: Option<usize>,
        timeout: Duration,
        schema: Schema,
        lock_key: i64,
        what: &str,
    ) -> PgConn {
        let options = pool.connect_options();
        let persistent = named_statements(&options);
        let source = match slots {
            None => Source::Pool,
            Some(n) => Source::Slots {
                slots: (0..n.max(1))
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
                options,
            },
        };
        PgConn {
            pool,
            source,
            timeout,
            persistent,
            down: AtomicBool::new(true),
            what: what.to_owned(),
            schema,
            lock_key,
            ready: AtomicBool::new(false),
        }
    }

    /// `what`'s error, named after this store.
    pub(crate) fn err(&self, what: &str, e: &sqlx::Error) -> StoreError {
        err(&format!("{} {what}", self.what), e)
    }

    /// `f` under the timeout, named after this store.
    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        bounded(self.timeout, &format!("{} {what}", self.what), f).await
    }

    /// A connection, the schema current. Give it back with
    /// [`Lease::finish`] once its call succeeded: dropped otherwise (an
    /// error, a timeout, a cancelled future), it is closed, never used
    /// again in the middle of a statement or a transaction.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>, StoreError> {
        let held = match &self.source {
            Source::Pool => Held::Pooled(Some(self.pooled().await?)),
            Source::Slots {
                slots,
                next,
                options,
            } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % slots.len();
                let mut slot = slots[i].lock().await;
                if slot.is_none() {
                    *slot = Some(connect(options, &self.what).await?);
                }
                Held::Slot(slot)
            }
        };
        let mut lease = Lease {
            held,
            owner: self,
            in_tx: false,
            finished: false,
        };
        if !self.ready.load(Ordering::Acquire) {
            ensure_schema(
                &mut lease,
                &self.schema,
                self.lock_key,
                &self.what,
                self.persistent,
            )
            .await?;
            self.ready.store(true, Ordering::Release);
        }
        if !self.persistent {
            // Through a transaction pooler every call is a transaction of
            // its own: sqlx sends an unnamed statement's Parse and its Bind
            // in two exchanges, and between them the pooler may hand the
            // client another server connection ("unnamed prepared statement
            // does not exist"). Inside a transaction it keeps the one.
            sqlx::Executor::execute(&mut *lease, "BEGIN")
                .await
                .map_err(|e| self.err("begin", &e))?;
            lease.in_tx = true;
        }
        Ok(lease)
    }

    /// A connection of the application's pool.
    async fn pooled(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        if self.down.load(Ordering::Acquire) {
            // sqlx's pool retries a refused connection with backoff until
            // its acquire timeout and then says only that no connection was
            // free. While the server may be away, one direct attempt first:
            // a stopped server is `connection refused` at once, a wrong
            // password is the server's own words.
            let probe = self.pool.connect_options().connect().await;
            drop(probe.map_err(|e| self.err("connect", &e))?);
        }
        // Until this succeeds, the next call probes again (also when this
        // future is dropped by the timeout).
        self.down.store(true, Ordering::Release);
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.err("connect", &e))?;
        self.down.store(false, Ordering::Release);
        Ok(conn)
    }
}

/// A call's connection.
enum Held<'p> {
    Pooled(Option<PoolConnection<Postgres>>),
    Slot(tokio::sync::MutexGuard<'p, Option<PgConnection>>),
}

/// A connection in use by one call: closed on drop unless finished.
pub(crate) struct Lease<'p> {
    held: Held<'p>,
    owner: &'p PgConn,
    /// In the call's own transaction (through a transaction pooler).
    in_tx: bool,
    finished: bool,
}

impl Lease<'_> {
    /// The call succeeded: committed (when it runs in a transaction of its
    /// own — what it wrote is durable before the caller answers), and the
    /// connection given back (to the pool, or kept in its slot).
    pub(crate) async fn finish(mut self) -> Result<(), StoreError> {
        if self.in_tx {
            sqlx::Executor::execute(&mut *self, "COMMIT")
                .await
                .map_err(|e| self.owner.err("commit", &e))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match &self.held {
            Held::Pooled(c) => c.as_ref().expect("a lease holds its connection"),
            Held::Slot(s) => s.as_ref().expect("a lease holds its connection"),
        }
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.held {
            Held::Pooled(c) => c.as_mut().expect("a lease holds its connection"),
            Held::Slot(s) => s.as_mut().expect("a lease holds its connection"),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Closed: a pooled one is taken out of the pool first. The server
        // rolls back whatever was open. The next call checks the schema
        // again (the failure may have been a missing table).
        match &mut self.held {
            Held::Pooled(c) => {
                if let Some(c) = c.take() {
                    drop(c.detach());
                }
            }
            Held::Slot(s) => drop(s.take()),
        }
        self.owner.ready.store(false, Ordering::Release);
    }
}

/// The options a pool connects with, for connections of one's own.
pub(crate) fn pool_options(pool: &PgPool) -> Arc<PgConnectOptions> {
    pool.connect_options()
}

/// Whether statements may be named and kept on the connection: not when
/// the options turn sqlx's statement cache off (`statement-cache-capacity=0`,
/// how a transaction pooler is named). sqlx 0.8 still prepares a query it
/// runs as persistent under a name — `sqlx_s_1`, counted per client
/// connection — and never closes it when nothing is cached; through
/// PgBouncer two clients' `sqlx_s_1` meet on one server connection ("prepared
/// statement already exists"). Unnamed statements do not outlive their
/// transaction's round trip.
pub(crate) fn named_statements(opts: &PgConnectOptions) -> bool {
    let url = opts.to_url_lossy();
    !url.query_pairs()
        .any(|(k, v)| k == "statement-cache-capacity" && v == "0")
}

/// A parameter whose type the server infers from the statement (as libpq
/// and tokio-postgres leave it): a NULL bound through `SqlValue` (a
/// transactional handler's `Tx::execute`) fits a column of any type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
    fn compatible(_: &sqlx::postgres::PgTypeInfo) -> bool {
        true
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}
