//! SQL shared by the SQLite and PostgreSQL stores.

use crate::store::StoreError;

/// Default table name.
pub const DEFAULT_TABLE: &str = "plugipay_webhook_events";

/// The longest table name: PostgreSQL keeps 63 bytes of an identifier, and
/// the index is named `<table>_expires_at` (11 more), so a longer table name
/// would have its index name truncated onto the table's own name.
pub const MAX_TABLE_NAME_LEN: usize = 63 - "_expires_at".len();

/// Checks a user-chosen table name (it is spliced into SQL, double-quoted,
/// so reserved words such as `order` or `user` work).
pub(crate) fn check_table(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::new(format!(
            "table name {name:?} must be 1-{MAX_TABLE_NAME_LEN} ASCII letters, digits or underscores, not starting with a digit"
        )))
    }
}

/// The statements, with `{t}` for the table, `{now}` for the current time in
/// milliseconds since the epoch, and `{p}` standing for the n-th parameter.
pub(crate) struct Statements {
    pub(crate) create: String,
    pub(crate) claim: String,
    pub(crate) state: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) extend: String,
    pub(crate) purge: String,
}

/// Builds the statements for a dialect: `param(n)` spells the n-th
/// placeholder, `now` the current time in ms.
///
/// Identifiers are double-quoted (both dialects): the table name is checked
/// by [`check_table`], so it holds no quote.
pub(crate) fn statements(table: &str, param: fn(usize) -> String, now: &str) -> Statements {
    let p = param;
    let index = format!("\"{table}_expires_at\"");
    let table = format!("\"{table}\"");
    Statements {
        create: format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                state TEXT NOT NULL,
                owner TEXT,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (event_id, event_type)
            );
            CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);"
        ),
        // Insert a claim, or take over an expired record; RETURNING tells
        // whether this statement won.
        claim: format!(
            "INSERT INTO {table} AS t (event_id, event_type, state, owner, expires_at)
             VALUES ({}, {}, 'claimed', {}, {now} + {})
             ON CONFLICT (event_id, event_type) DO UPDATE
                SET state = 'claimed', owner = excluded.owner, expires_at = excluded.expires_at
                WHERE t.expires_at <= {now}
             RETURNING owner",
            p(1),
            p(2),
            p(3),
            p(4)
        ),
        state: format!(
            "SELECT state FROM {table} WHERE event_id = {} AND event_type = {} AND expires_at > {now}",
            p(1),
            p(2)
        ),
        complete: format!(
            "UPDATE {table} SET state = 'done', owner = NULL, expires_at = {now} + {}
             WHERE event_id = {} AND event_type = {} AND owner = {} AND state = 'claimed'",
            p(1),
            p(2),
            p(3),
            p(4)
        ),
        release: format!(
            "DELETE FROM {table} WHERE event_id = {} AND event_type = {} AND owner = {} AND state = 'claimed'",
            p(1),
            p(2),
            p(3)
        ),
        extend: format!(
            "UPDATE {table} SET expires_at = {now} + {}
             WHERE event_id = {} AND event_type = {} AND owner = {} AND state = 'claimed'",
            p(1),
            p(2),
            p(3),
            p(4)
        ),
        purge: format!("DELETE FROM {table} WHERE expires_at <= {now}"),
    }
}

/// Purge expired rows once every this many claims.
pub(crate) const PURGE_EVERY: u64 = 1024;
