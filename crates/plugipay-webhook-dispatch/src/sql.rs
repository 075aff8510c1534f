//! What the SQL stores share: the two dialects, table names, and the
//! schema's version — every table this crate creates is recorded in
//! `plugipay_webhook_schema` and brought forward from older releases.

use crate::error::StoreError;

/// The longest table name: PostgreSQL keeps 63 bytes of an identifier, and
/// an index is named `<table>_expires_at` (11 more), so a longer table name
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

/// The two SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "one of them is unused when one SQL backend is compiled in"
)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The n-th parameter (1-based).
    pub(crate) fn p(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Whether a table exists: one row with 1 if so; `$1`/`?1` is its name.
    pub(crate) fn table_exists(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = $1 AND schemaname = current_schema()"
            }
        }
    }
}

/// A statement file's text for `table`: `{table}` stands for its name (a
/// name [`check_table`] accepted: letters, digits, underscores — nothing to
/// escape inside the double quotes around it).
pub(crate) fn on_table(sql: &str, table: &str) -> String {
    sql.replace("{table}", table)
}

/// A table's schema and how to bring an older one forward.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    /// The table (the name it is recorded under).
    pub(crate) table: String,
    /// The version this release writes.
    pub(crate) version: i64,
    /// The statements creating it from nothing.
    pub(crate) create: String,
    /// `upgrades[i]` takes version `i + 1` to `i + 2`.
    pub(crate) upgrades: Vec<String>,
}

impl Schema {
    /// Creates the version table (`plugipay_webhook_schema`, one row per
    /// table: its name and version) if needed; the statements that read a
    /// table's version, and that record it (`sql/schema/<dialect>/`).
    pub(crate) fn bookkeeping(d: Dialect) -> (String, String, String) {
        let (ensure, read, record) = match d {
            Dialect::Postgres => (
                include_str!("../sql/schema/postgres/ensure.sql"),
                include_str!("../sql/schema/postgres/read.sql"),
                include_str!("../sql/schema/postgres/record.sql"),
            ),
            Dialect::Sqlite => (
                include_str!("../sql/schema/sqlite/ensure.sql"),
                include_str!("../sql/schema/sqlite/read.sql"),
                include_str!("../sql/schema/sqlite/record.sql"),
            ),
        };
        (ensure.to_owned(), read.to_owned(), record.to_owned())
    }

    /// What to run, given the recorded version (`None`: none recorded) and
    /// whether the table exists (a table without a record was made by the
    /// first release, version 1): the statements in order; then the version
    /// is recorded. Empty when it is current.
    pub(crate) fn plan(
        &self,
        recorded: Option<i64>,
        exists: bool,
    ) -> Result<Vec<&str>, StoreError> {
        let from = match (recorded, exists) {
            // No table — never made, or dropped, or left out of a restore
            // while its version stayed recorded — is made anew.
            (_, false) => return Ok(vec![self.create.as_str()]),
            (Some(v), true) => v,
            (None, true) => 1,
        };
        if from > self.version {
            return Err(StoreError::new(format!(
                "table {:?} has schema version {from}, newer than this release's {}: upgrade plugipay-webhook-dispatch",
                self.table, self.version
            )));
        }
        let first = usize::try_from(from.max(1) - 1).unwrap_or(0);
        let last = usize::try_from(self.version - 1).unwrap_or(0);
        Ok(self.upgrades[first..last]
            .iter()
            .map(String::as_str)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema {
            table: "t".into(),
            version: 3,
            create: "create".into(),
            upgrades: vec!["1to2".into(), "2to3".into()],
        }
    }

    #[test]
    fn plans_create_upgrades_or_nothing() {
        let s = schema();
        assert_eq!(s.plan(None, false).unwrap(), ["create"]);
        assert_eq!(s.plan(None, true).unwrap(), ["1to2", "2to3"]);
        assert_eq!(s.plan(Some(2), true).unwrap(), ["2to3"]);
        assert!(s.plan(Some(3), true).unwrap().is_empty());
        // A recorded version whose table is gone: made anew, not taken as
        // current (every statement would fail on the missing table).
        assert_eq!(s.plan(Some(3), false).unwrap(), ["create"]);
        assert_eq!(s.plan(Some(1), false).unwrap(), ["create"]);
        assert!(s
            .plan(Some(4), true)
            .unwrap_err()
            .to_string()
            .contains("newer"));
    }
}
