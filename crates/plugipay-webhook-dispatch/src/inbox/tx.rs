//! The transaction a transactional handler writes through.

use std::sync::Arc;

use plugipay_webhook::WebhookEvent;

use crate::dispatcher::HandlerError;
use crate::store::BoxFuture;

/// A transactional handler.
pub(crate) type TxHandler = Arc<
    dyn for<'a> Fn(&'a mut Tx<'_>, WebhookEvent) -> BoxFuture<'a, Result<(), HandlerError>>
        + Send
        + Sync,
>;

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// An integer (`BIGINT` / `INTEGER`).
    Int(i64),
    /// A float (`DOUBLE PRECISION` / `REAL`).
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes (`BYTEA` / `BLOB`).
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Float(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// The inbox's open transaction, handed to a transactional handler: what it
/// writes commits together with the event's move to `done`, or not at all.
/// Statements use `$1`, `$2`, … placeholders on every backend (on
/// PostgreSQL each is prepared once per worker connection); reach the
/// driver's own connection (inside the transaction) with
/// [`postgres`](Tx::postgres) or [`sqlite`](Tx::sqlite) for anything more.
pub struct Tx<'t>(Backend<'t>);

enum Backend<'t> {
    #[cfg(feature = "postgres")]
    Postgres {
        client: &'t tokio_postgres::Client,
        statements: &'t crate::pg::Statements,
    },
    #[cfg(feature = "sqlite")]
    Sqlite(&'t std::sync::Mutex<rusqlite::Connection>),
    /// Built without a SQL backend: never constructed.
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    #[allow(dead_code)]
    NoSql(std::marker::PhantomData<&'t ()>),
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => "Tx::Postgres",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => "Tx::Sqlite",
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            Backend::NoSql(_) => "Tx::NoSql",
        })
    }
}

impl<'t> Tx<'t> {
    /// On PostgreSQL: `client`, inside the transaction the inbox began on
    /// it, with `statements` prepared on it.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_on(
        client: &'t tokio_postgres::Client,
        statements: &'t crate::pg::Statements,
    ) -> Tx<'t> {
        Tx(Backend::Postgres { client, statements })
    }

    /// On SQLite: the worker's connection, inside its transaction.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_on(conn: &'t std::sync::Mutex<rusqlite::Connection>) -> Tx<'t> {
        Tx(Backend::Sqlite(conn))
    }
}

impl Tx<'_> {
    /// Runs one statement in the transaction; the number of rows changed.
    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, HandlerError> {
        match &self.0 {
            #[cfg(feature = "postgres")]
            Backend::Postgres { client, statements } => {
                let boxed: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> =
                    params.iter().map(pg_param).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| &**b as _).collect();
                let statement = statements.get(*client, sql).await?;
                Ok(client.execute(&statement, &refs).await?)
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(conn) => {
                let conn = conn.lock().map_err(|_| "sqlite connection lock poisoned")?;
                let values: Vec<rusqlite::types::Value> = params.iter().map(sqlite_param).collect();
                let mut statement = conn.prepare_cached(sql)?;
                Ok(statement.execute(rusqlite::params_from_iter(values))? as u64)
            }
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            Backend::NoSql(_) => {
                let _ = (sql, params);
                Err("no SQL inbox in this build".into())
            }
        }
    }

    /// The PostgreSQL connection, on PostgreSQL: inside the inbox's open
    /// transaction (the inbox began it and commits or rolls it back — do not
    /// `COMMIT` or `ROLLBACK` yourself; `SAVEPOINT`s are yours to use).
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres(&self) -> Option<&tokio_postgres::Client> {
        match &self.0 {
            Backend::Postgres { client, .. } => Some(client),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite connection (inside the transaction), on SQLite.
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn sqlite(&self) -> Option<&std::sync::Mutex<rusqlite::Connection>> {
        match &self.0 {
            Backend::Sqlite(conn) => Some(conn),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The attempt number of the event being processed (1 for the first).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        super::worker::current_attempt().unwrap_or(1)
    }
}

#[cfg(feature = "postgres")]
fn pg_param(v: &SqlValue) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
    match v.clone() {
        SqlValue::Null => Box::new(Option::<String>::None),
        SqlValue::Int(i) => Box::new(i),
        SqlValue::Float(f) => Box::new(f),
        SqlValue::Text(t) => Box::new(t),
        SqlValue::Bytes(b) => Box::new(b),
        SqlValue::Bool(b) => Box::new(b),
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_param(v: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v.clone() {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::Integer(i),
        SqlValue::Float(f) => Value::Real(f),
        SqlValue::Text(t) => Value::Text(t),
        SqlValue::Bytes(b) => Value::Blob(b),
        SqlValue::Bool(b) => Value::Integer(i64::from(b)),
    }
}
