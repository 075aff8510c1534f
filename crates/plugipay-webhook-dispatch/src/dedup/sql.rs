//! The de-duplication stores' SQL, for both dialects.

use crate::sql::{Dialect, Schema};

/// Default table name.
pub const DEFAULT_TABLE: &str = "plugipay_webhook_events";

/// The statements of one de-duplication table in one dialect.
pub(crate) struct Statements {
    pub(crate) schema: Schema,
    pub(crate) claim: String,
    pub(crate) state: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) extend: String,
    pub(crate) purge: String,
}

/// Identifiers are double-quoted (both dialects): the table name is checked
/// by [`check_table`](crate::sql::check_table), so it holds no quote.
pub(crate) fn statements(table: &str, d: Dialect) -> Statements {
    let p = |n| d.p(n);
    let now = d.now();
    let index = format!("\"{table}_expires_at\"");
    let t = format!("\"{table}\"");
    let key = format!(
        "tenant = {} AND event_id = {} AND event_type = {}",
        p(1),
        p(2),
        p(3)
    );
    let columns = "tenant TEXT NOT NULL DEFAULT '',
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                state TEXT NOT NULL,
                owner TEXT,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (tenant, event_id, event_type)";
    let create_index = format!("CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at);");
    // Version 1 keyed on (event_id, event_type): every record it holds is
    // a tenant-less one.
    let upgrade_1_to_2 = match d {
        Dialect::Postgres => format!(
            "ALTER TABLE {t} ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
             ALTER TABLE {t} DROP CONSTRAINT \"{table}_pkey\";
             ALTER TABLE {t} ADD PRIMARY KEY (tenant, event_id, event_type);"
        ),
        Dialect::Sqlite => format!(
            "ALTER TABLE {t} RENAME TO \"{table}__v1\";
             CREATE TABLE {t} ({columns});
             INSERT INTO {t} (tenant, event_id, event_type, state, owner, expires_at)
                SELECT '', event_id, event_type, state, owner, expires_at FROM \"{table}__v1\";
             DROP TABLE \"{table}__v1\";
             {create_index}"
        ),
    };
    Statements {
        schema: Schema {
            table: table.to_owned(),
            version: 2,
            create: format!("CREATE TABLE IF NOT EXISTS {t} ({columns}); {create_index}"),
            upgrades: vec![upgrade_1_to_2],
        },
        // Insert a claim, or take over an expired record; RETURNING tells
        // whether this statement won.
        claim: format!(
            "INSERT INTO {t} AS t (tenant, event_id, event_type, state, owner, expires_at)
             VALUES ({}, {}, {}, 'claimed', {}, {now} + {})
             ON CONFLICT (tenant, event_id, event_type) DO UPDATE
                SET state = 'claimed', owner = excluded.owner, expires_at = excluded.expires_at
                WHERE t.expires_at <= {now}
             RETURNING owner",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        ),
        state: format!("SELECT state FROM {t} WHERE {key} AND expires_at > {now}"),
        complete: format!(
            "UPDATE {t} SET state = 'done', owner = NULL, expires_at = {now} + {}
             WHERE {key} AND owner = {} AND state = 'claimed'",
            p(5),
            p(4)
        ),
        release: format!(
            "DELETE FROM {t} WHERE {key} AND owner = {} AND state = 'claimed'",
            p(4)
        ),
        extend: format!(
            "UPDATE {t} SET expires_at = {now} + {}
             WHERE {key} AND owner = {} AND state = 'claimed'",
            p(5),
            p(4)
        ),
        purge: format!("DELETE FROM {t} WHERE expires_at <= {now}"),
    }
}

/// Purge expired rows once every this many claims.
pub(crate) const PURGE_EVERY: u64 = 1024;
