//! The transaction a transactional inbox handler writes through.

use crate::error::HandlerError;

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
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Bytes(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// The inbox's open transaction, handed to a transactional handler: what it
/// writes commits together with the event's move to `done`, or not at all.
///
/// Statements use `$1`, `$2`, … placeholders on every backend (on
/// PostgreSQL each is prepared once per worker connection). For anything
/// more — the application's own sqlx queries and repository functions —
/// reach the connection inside the transaction with `Tx::pg` (feature
/// `postgres`: a `&mut sqlx::PgConnection`) or `Tx::sqlite` (feature
/// `sqlite`: a `&mut sqlx::SqliteConnection`); `sqlx::Error` converts to
/// [`HandlerError`] with `?`. The inbox begins, commits and rolls back the
/// transaction: never `COMMIT` or `ROLLBACK` it yourself (`SAVEPOINT`s are
/// yours to use — on SQLite sqlx's own `conn.begin()` is one). On
/// PostgreSQL a statement that fails aborts the whole transaction, even
/// when the handler ignores the error: the event is then not done, and runs
/// again. On SQLite only the failed statement is undone (unless SQLite
/// rolled the transaction back — a full disk, an I/O error —, which the
/// inbox sees: the event is not done).
pub struct Tx<'t>(Backend<'t>);

enum Backend<'t> {
    #[cfg(feature = "postgres")]
    Postgres {
        conn: &'t mut sqlx::PgConnection,
        /// Statements named and kept on the connection (not through a
        /// transaction pooler).
        persistent: bool,
    },
    /// `None`: the connection was thrown away (never seen by a handler:
    /// the transaction begins on an open connection).
    #[cfg(feature = "sqlite")]
    Sqlite(Option<&'t mut sqlx::SqliteConnection>),
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
    /// On PostgreSQL: the worker's connection, inside the transaction the
    /// inbox began on it.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_on(conn: &'t mut sqlx::PgConnection, persistent: bool) -> Tx<'t> {
        Tx(Backend::Postgres { conn, persistent })
    }

    /// On SQLite: the worker's connection, inside its transaction.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_on(conn: Option<&'t mut sqlx::SqliteConnection>) -> Tx<'t> {
        Tx(Backend::Sqlite(conn))
    }
}

impl Tx<'_> {
    /// Runs one statement in the transaction; the number of rows changed.
    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, HandlerError> {
        match &mut self.0 {
            #[cfg(feature = "postgres")]
            Backend::Postgres { conn, persistent } => {
                let mut query = sqlx::query(sql).persistent(*persistent);
                for p in params {
                    query = pg_bind(query, p);
                }
                Ok(query.execute(&mut **conn).await?.rows_affected())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(conn) => {
                let conn = conn
                    .as_deref_mut()
                    .ok_or("the inbox's connection was closed")?;
                let mut query = sqlx::query(sql);
                for p in params {
                    query = sqlite_bind(query, p);
                }
                Ok(query.execute(conn).await?.rows_affected())
            }
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            Backend::NoSql(_) => {
                let _ = (sql, params);
                Err("no SQL inbox in this build".into())
            }
        }
    }

    /// The PostgreSQL connection, inside the inbox's open transaction, for
    /// the application's own sqlx code; `None` on another backend. The
    /// inbox began the transaction and commits or rolls it back with the
    /// event's move to done: never `COMMIT` or `ROLLBACK` yourself
    /// (`SAVEPOINT`s are yours to use). A statement that fails aborts the
    /// whole transaction, even when the handler ignores its error: the
    /// event is then not done, and runs again.
    ///
    /// ```no_run
    /// use plugipay_webhook_dispatch::inbox::Tx;
    /// use plugipay_webhook_dispatch::sqlx::{self, PgConnection};
    /// use plugipay_webhook_dispatch::HandlerError;
    ///
    /// // The application's repository function, as it already is.
    /// async fn mark_paid(conn: &mut PgConnection, invoice: &str) -> Result<(), sqlx::Error> {
    ///     sqlx::query("UPDATE invoices SET paid = true WHERE id = $1")
    ///         .bind(invoice)
    ///         .execute(conn)
    ///         .await?;
    ///     Ok(())
    /// }
    ///
    /// async fn on_paid(tx: &mut Tx<'_>, invoice: &str) -> Result<(), HandlerError> {
    ///     mark_paid(tx.pg().expect("a PostgreSQL inbox"), invoice).await?;
    ///     Ok(())
    /// }
    /// ```
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn pg(&mut self) -> Option<&mut sqlx::PgConnection> {
        match &mut self.0 {
            Backend::Postgres { conn, .. } => Some(&mut **conn),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The SQLite connection, inside the inbox's open transaction, for the
    /// application's own sqlx code; `None` on another backend. The inbox
    /// began the transaction (`BEGIN IMMEDIATE`: the write lock is held)
    /// and commits or rolls it back with the event's move to done: never
    /// `COMMIT` or `ROLLBACK` yourself — sqlx's `conn.begin()` nests as a
    /// savepoint. A handler that ends the inbox's transaction anyway is
    /// seen: its event is not done, and runs again.
    ///
    /// ```no_run
    /// use plugipay_webhook_dispatch::inbox::Tx;
    /// use plugipay_webhook_dispatch::sqlx::{self, SqliteConnection};
    /// use plugipay_webhook_dispatch::HandlerError;
    ///
    /// // The application's repository function, as it already is.
    /// async fn mark_paid(conn: &mut SqliteConnection, invoice: &str) -> Result<(), sqlx::Error> {
    ///     sqlx::query("UPDATE invoices SET paid = 1 WHERE id = ?1")
    ///         .bind(invoice)
    ///         .execute(conn)
    ///         .await?;
    ///     Ok(())
    /// }
    ///
    /// async fn on_paid(tx: &mut Tx<'_>, invoice: &str) -> Result<(), HandlerError> {
    ///     mark_paid(tx.sqlite().expect("a SQLite inbox"), invoice).await?;
    ///     Ok(())
    /// }
    /// ```
    #[cfg(feature = "sqlite")]
    #[must_use]
    pub fn sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match &mut self.0 {
            Backend::Sqlite(conn) => conn.as_deref_mut(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The attempt number of the event being processed (1 for the first).
    #[must_use]
    pub fn attempt(&self) -> u32 {
        crate::attempt::current_attempt().unwrap_or(1)
    }
}

/// `v` bound to `query`'s next parameter. A NULL's type is left to the
/// server to infer (it fits a column of any type); the others bind as
/// their SQL type (an `Int` into an `INTEGER` column is cast on assignment).
#[cfg(feature = "postgres")]
fn pg_bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    v: &SqlValue,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    match v.clone() {
        SqlValue::Null => query.bind(crate::conn::postgres::UntypedNull),
        SqlValue::Int(i) => query.bind(i),
        SqlValue::Float(f) => query.bind(f),
        SqlValue::Text(t) => query.bind(t),
        SqlValue::Bytes(b) => query.bind(b),
        SqlValue::Bool(b) => query.bind(b),
    }
}

/// `v` bound to `query`'s next parameter (`$N` and `?N` both name the
/// N-th; a boolean is stored as 0 or 1, as SQLite does).
#[cfg(feature = "sqlite")]
fn sqlite_bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    v: &SqlValue,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    match v.clone() {
        SqlValue::Null => query.bind(None::<i64>),
        SqlValue::Int(i) => query.bind(i),
        SqlValue::Float(f) => query.bind(f),
        SqlValue::Text(t) => query.bind(t),
        SqlValue::Bytes(b) => query.bind(b),
        SqlValue::Bool(b) => query.bind(b),
    }
}
