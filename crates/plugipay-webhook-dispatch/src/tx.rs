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
/// `postgres`: a `&mut sqlx::PgConnection`; `sqlx::Error` converts to
/// [`HandlerError`] with `?`) or `Tx::with_sqlite` (feature `sqlite`). The inbox
/// begins, commits and rolls back the transaction: never `COMMIT` or
/// `ROLLBACK` it yourself (`SAVEPOINT`s are yours to use). On PostgreSQL a
/// statement that fails aborts the whole transaction, even when the handler
/// ignores the error: the event is then not done, and runs again.
pub struct Tx<'t>(Backend<'t>);

enum Backend<'t> {
    #[cfg(feature = "postgres")]
    Postgres {
        conn: &'t mut sqlx::PgConnection,
        /// Statements named and kept on the connection (not through a
        /// transaction pooler).
        persistent: bool,
    },
    #[cfg(feature = "sqlite")]
    Sqlite(&'t crate::conn::sqlite::SqliteConn),
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
    pub(crate) fn sqlite_on(conn: &'t crate::conn::sqlite::SqliteConn) -> Tx<'t> {
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
                let sql = sqlite_placeholders(sql);
                let values: Vec<rusqlite::types::Value> = params.iter().map(sqlite_param).collect();
                let changed = conn
                    .run(move |slot| -> Result<usize, HandlerError> {
                        let conn = slot.conn()?;
                        let mut statement = conn.prepare_cached(&sql)?;
                        Ok(statement.execute(rusqlite::params_from_iter(values))?)
                    })
                    .await??;
                Ok(changed as u64)
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

    /// Runs `f` with the SQLite connection, inside the inbox's transaction,
    /// on the connection's own thread (never the async runtime's); `None`
    /// on another backend. Do not `COMMIT` or `ROLLBACK` in it.
    ///
    /// ```no_run
    /// # async fn f(tx: &mut plugipay_webhook_dispatch::inbox::Tx<'_>) -> Result<(), plugipay_webhook_dispatch::HandlerError> {
    /// let rows: Option<i64> = tx
    ///     .with_sqlite(|conn| conn.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get(0)))
    ///     .await?
    ///     .transpose()?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub async fn with_sqlite<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> R + Send + 'static,
    ) -> Result<Option<R>, HandlerError> {
        match &self.0 {
            Backend::Sqlite(conn) => {
                let r = conn.run(move |slot| slot.conn().map(|c| f(c))).await??;
                Ok(Some(r))
            }
            #[allow(unreachable_patterns)]
            _ => Ok(None),
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
        SqlValue::Null => query.bind(crate::conn::pg::UntypedNull),
        SqlValue::Int(i) => query.bind(i),
        SqlValue::Float(f) => query.bind(f),
        SqlValue::Text(t) => query.bind(t),
        SqlValue::Bytes(b) => query.bind(b),
        SqlValue::Bool(b) => query.bind(b),
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

/// `$N` placeholders spelled `?N` (SQLite reads `$1` as a *named*
/// parameter, numbered by first appearance — `$2 … $1` would bind
/// backwards); quoted text and identifiers are left alone.
#[cfg(feature = "sqlite")]
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('?'),
            None => out.push(c),
        }
    }
    out
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    #[test]
    fn dollar_placeholders_become_numbered_question_marks_outside_quotes() {
        assert_eq!(
            super::sqlite_placeholders("INSERT INTO t (a, b) VALUES ($2, $1) -- '$3' \"$4\""),
            "INSERT INTO t (a, b) VALUES (?2, ?1) -- '$3' \"$4\""
        );
    }
}
