//! The row shapes both SQL backends read and write, once: a [`Record`]
//! from the columns `get` or a listing selects (by name), a claimed [`Job`] from
//! the claim's `RETURNING` list (by position), a [`NewEvent`] bound to
//! `insert.sql`'s parameters. The same code on PostgreSQL and
//! SQLite: integers are read as the narrowest type both store them in
//! (`attempts` is `INTEGER` — 32 bits — on PostgreSQL).

use bytes::Bytes;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};

use super::{Job, NewEvent};
use crate::inbox::machine::{State, CUT_SHORT};
use crate::inbox::progress::Progress;
use crate::inbox::query::FailingRow;
use crate::inbox::types::Record;

/// A record, from a row of `RECORD_COLUMNS` (`whole`) or of the listing's
/// `LIST_COLUMNS` (no body, no signature: both left empty). An attempt
/// count or a secret index out of range reads as 0 (never a panic on a
/// hand-edited row).
pub(crate) fn record<R>(row: &R, whole: bool) -> Result<Record, sqlx::Error>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    Ok(Record {
        tenant: row.try_get("tenant")?,
        id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        state: State::from_name(&state).unwrap_or(State::Pending),
        attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
        received_at_ms: row.try_get("received_at")?,
        due_at_ms: row.try_get("due_at")?,
        updated_at_ms: row.try_get("updated_at")?,
        last_error: row.try_get("last_error")?,
        account_id: row.try_get("account_id")?,
        occurred_at: row.try_get("occurred_at")?,
        body: if whole {
            Bytes::from(row.try_get::<Vec<u8>, _>("body")?)
        } else {
            Bytes::new()
        },
        signature: if whole {
            row.try_get("signature")?
        } else {
            String::new()
        },
        matched_secret: usize::try_from(row.try_get::<i64, _>("matched_secret")?).unwrap_or(0),
        object_id: row.try_get("object_id")?,
        order_key: row.try_get("order_key")?,
        handlers: Progress::parse(row.try_get::<Option<String>, _>("handlers")?.as_deref()).0,
    })
}

/// The state a claim left and the job, from its `RETURNING` list: state,
/// tenant, event_id, event_type, body, matched_secret, attempts,
/// received_at, handlers, rerun, trace, stale (1 or 0), the error it keeps
/// (the claim's note that a lapsed lease was taken again). An attempt number
/// out of range reads as `u32::MAX` (exhausted, never run again).
pub(crate) fn job<R>(row: &R) -> Result<(String, Job), sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        row.try_get(0)?,
        Job {
            tenant: row.try_get(1)?,
            id: row.try_get(2)?,
            event_type: row.try_get(3)?,
            body: Bytes::from(row.try_get::<Vec<u8>, _>(4)?),
            matched_secret: usize::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
            attempt: u32::try_from(row.try_get::<i32, _>(6)?).unwrap_or(u32::MAX),
            received_at_ms: row.try_get(7)?,
            progress: Progress::parse(row.try_get::<Option<String>, _>(8)?.as_deref()),
            rerun: row.try_get(9)?,
            trace: row.try_get(10)?,
            stale: row.try_get::<i32, _>(11)? == 1,
            cut_short: row.try_get::<Option<String>, _>(12)?.as_deref() == Some(CUT_SHORT),
        },
    ))
}

/// `insert.sql` with `e` bound to `$1`–`$14` (the file says which is which).
pub(crate) fn bind_new<'q, DB>(
    query: Query<'q, DB, <DB as Database>::Arguments<'q>>,
    e: &'q NewEvent,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(e.tenant.as_str())
        .bind(e.id.as_str())
        .bind(e.event_type.as_str())
        .bind(&e.body[..])
        .bind(e.signature.as_str())
        .bind(e.matched_secret)
        .bind(e.account_id.as_deref())
        .bind(e.occurred_at.as_deref())
        .bind(e.state.as_str())
        .bind(e.object_id.as_deref())
        .bind(e.order_key.as_deref())
        .bind(e.occurred_ms)
        .bind(e.due_in_ms)
        .bind(e.trace.as_deref())
}

/// One row of `failing.sql`: event_type, dead (1 or 0), last_error,
/// updated_at.
pub(crate) fn failing<R>(row: &R) -> Result<FailingRow, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(FailingRow {
        event_type: row.try_get(0)?,
        dead: row.try_get::<i32, _>(1)? == 1,
        last_error: row.try_get(2)?,
        updated_at_ms: row.try_get(3)?,
    })
}
