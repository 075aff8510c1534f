//! The de-duplication stores' SQL: each statement in a file of its own per
//! dialect, `sql/dedup/postgres/` and `sql/dedup/sqlite/` (`"{table}"`
//! stands for the table), the schema this release makes (`create.sql`,
//! version 2) and the numbered migrations from earlier releases.

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

macro_rules! file {
    ($dialect:literal, $name:literal) => {
        include_str!(concat!("../../sql/dedup/", $dialect, "/", $name, ".sql"))
    };
}

/// The statement files of one dialect: create, migrations, claim, state,
/// complete, release, extend, purge.
type Files = (&'static str, &'static [&'static str], [&'static str; 6]);

macro_rules! files {
    ($dialect:literal) => {
        (
            file!($dialect, "create"),
            &[file!($dialect, "migrations/002")],
            [
                file!($dialect, "claim"),
                file!($dialect, "state"),
                file!($dialect, "complete"),
                file!($dialect, "release"),
                file!($dialect, "extend"),
                file!($dialect, "purge"),
            ],
        )
    };
}

const POSTGRES: Files = files!("postgres");
const SQLITE: Files = files!("sqlite");

/// The statements for `table` (a name [`check_table`](crate::sql::check_table)
/// accepted) in dialect `d`.
pub(crate) fn statements(table: &str, d: Dialect) -> Statements {
    let (create, migrations, [claim, state, complete, release, extend, purge]) = match d {
        Dialect::Postgres => POSTGRES,
        Dialect::Sqlite => SQLITE,
    };
    let on = |sql: &str| crate::sql::on_table(sql, table);
    Statements {
        schema: Schema {
            table: table.to_owned(),
            version: 1 + i64::try_from(migrations.len()).expect("a few migrations"),
            create: on(create),
            upgrades: migrations.iter().map(|m| on(m)).collect(),
        },
        claim: on(claim),
        state: on(state),
        complete: on(complete),
        release: on(release),
        extend: on(extend),
        purge: on(purge),
    }
}

/// Purge expired rows once every this many claims.
pub(crate) const PURGE_EVERY: u64 = 1024;
