//! The inbox's SQL: every statement in a file of its own per dialect, under
//! `sql/inbox/postgres/` and `sql/inbox/sqlite/` (each file says what its
//! parameters are), read in at compile time; the schema this release makes
//! (`create.sql`, version 5) and the numbered migrations from the earlier
//! releases' tables. The listing and the count alone are built here, from which filters
//! are set. The state lists in the files are the state machine's (`from`
//! states of each transition): a test checks them against its table.
//!
//! `due_at` is when a row is due: a pending event's next attempt, a running
//! event's lease expiry. One partial index on it serves every claim, so a
//! lapsed lease is due in the same order as everything else.
//!
//! Ordering: an ordered row carries its key (`order_key`), when it happened
//! (`occurred_ms`, NULL when `occurred_at` does not parse) and its place in
//! the key's order (`order_at`: `occurred_ms`, else the arrival time). A
//! claim takes an ordered pending row only when its key has no running row
//! and no pending row before it (`{table}_key_running`, unique, and
//! `{table}_key_pending` serve those probes; the unique index also makes a
//! second running row of one key impossible, whatever two claims race); it
//! moves the row to `stale` instead when its `occurred_ms` is older than the
//! key's newest done one (`{table}_key_done`).

use crate::sql::{Dialect, Schema};

/// The columns a whole record is read with (`Record`, `rows::record`):
/// `get.sql`'s, checked by a test.
#[cfg(test)]
const RECORD_COLUMNS: &str = "tenant, event_id, event_type, state, attempts, received_at, due_at, last_error, account_id, occurred_at, body, signature, matched_secret, updated_at, object_id, order_key, handlers";

/// The columns a listing reads: a record's but its body and signature.
pub(crate) const LIST_COLUMNS: &str = "tenant, event_id, event_type, state, attempts, received_at, due_at, last_error, account_id, occurred_at, matched_secret, updated_at, object_id, order_key, handlers";

/// A statement parameter of a built query (the listing's).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// Every statement of one inbox table in one dialect (what each takes and
/// returns: the first lines of its file).
pub(crate) struct InboxSql {
    pub(crate) schema: Schema,
    pub(crate) insert: String,
    pub(crate) redeliver: String,
    pub(crate) claim: String,
    pub(crate) next_due: String,
    pub(crate) claim_unordered: String,
    pub(crate) next_due_unordered: String,
    pub(crate) transition: String,
    pub(crate) peek: String,
    pub(crate) lock: String,
    pub(crate) done_in_tx: String,
    pub(crate) count_by_state: String,
    pub(crate) activity_received: String,
    pub(crate) activity_done: String,
    pub(crate) oldest_due: String,
    pub(crate) next_lapse: String,
    pub(crate) get: String,
    pub(crate) failing: String,
    pub(crate) revive: String,
    pub(crate) prune: String,
    pub(crate) table: String,
}

/// The statement files of one dialect, `sql/inbox/<dialect>/`: each
/// statement in a file of its own (`"{table}"` stands for the table), the
/// schema as this release makes it (`create.sql`), and the numbered
/// migrations that bring an earlier release's table forward
/// (`migrations/00N.sql` takes version N-1 to N).
struct Files {
    create: &'static str,
    migrations: &'static [&'static str],
    insert: &'static str,
    redeliver: &'static str,
    claim: &'static str,
    next_due: &'static str,
    claim_unordered: &'static str,
    next_due_unordered: &'static str,
    transition: &'static str,
    peek: &'static str,
    lock: &'static str,
    done_in_tx: &'static str,
    count_by_state: &'static str,
    activity_received: &'static str,
    activity_done: &'static str,
    oldest_due: &'static str,
    next_lapse: &'static str,
    get: &'static str,
    failing: &'static str,
    revive: &'static str,
    prune: &'static str,
}

macro_rules! files {
    ($dialect:literal) => {
        Files {
            create: include_str!(concat!("../../sql/inbox/", $dialect, "/create.sql")),
            migrations: &[
                include_str!(concat!("../../sql/inbox/", $dialect, "/migrations/002.sql")),
                include_str!(concat!("../../sql/inbox/", $dialect, "/migrations/003.sql")),
                include_str!(concat!("../../sql/inbox/", $dialect, "/migrations/004.sql")),
                include_str!(concat!("../../sql/inbox/", $dialect, "/migrations/005.sql")),
            ],
            insert: include_str!(concat!("../../sql/inbox/", $dialect, "/insert.sql")),
            redeliver: include_str!(concat!("../../sql/inbox/", $dialect, "/redeliver.sql")),
            claim: include_str!(concat!("../../sql/inbox/", $dialect, "/claim.sql")),
            next_due: include_str!(concat!("../../sql/inbox/", $dialect, "/next_due.sql")),
            claim_unordered: include_str!(concat!(
                "../../sql/inbox/",
                $dialect,
                "/claim_unordered.sql"
            )),
            next_due_unordered: include_str!(concat!(
                "../../sql/inbox/",
                $dialect,
                "/next_due_unordered.sql"
            )),
            transition: include_str!(concat!("../../sql/inbox/", $dialect, "/transition.sql")),
            peek: include_str!(concat!("../../sql/inbox/", $dialect, "/peek.sql")),
            lock: include_str!(concat!("../../sql/inbox/", $dialect, "/lock.sql")),
            done_in_tx: include_str!(concat!("../../sql/inbox/", $dialect, "/done_in_tx.sql")),
            count_by_state: include_str!(concat!(
                "../../sql/inbox/",
                $dialect,
                "/count_by_state.sql"
            )),
            activity_received: include_str!(concat!(
                "../../sql/inbox/",
                $dialect,
                "/activity_received.sql"
            )),
            activity_done: include_str!(concat!(
                "../../sql/inbox/",
                $dialect,
                "/activity_done.sql"
            )),
            oldest_due: include_str!(concat!("../../sql/inbox/", $dialect, "/oldest_due.sql")),
            next_lapse: include_str!(concat!("../../sql/inbox/", $dialect, "/next_lapse.sql")),
            get: include_str!(concat!("../../sql/inbox/", $dialect, "/get.sql")),
            failing: include_str!(concat!("../../sql/inbox/", $dialect, "/failing.sql")),
            revive: include_str!(concat!("../../sql/inbox/", $dialect, "/revive.sql")),
            prune: include_str!(concat!("../../sql/inbox/", $dialect, "/prune.sql")),
        }
    };
}

const POSTGRES: Files = files!("postgres");
const SQLITE: Files = files!("sqlite");

impl InboxSql {
    pub(crate) fn new(table: &str, d: Dialect) -> InboxSql {
        let f = match d {
            Dialect::Postgres => &POSTGRES,
            Dialect::Sqlite => &SQLITE,
        };
        let on = |sql: &str| crate::sql::on_table(sql, table);
        InboxSql {
            schema: Schema {
                table: table.to_owned(),
                version: 1 + i64::try_from(f.migrations.len()).expect("a few migrations"),
                create: on(f.create),
                upgrades: f.migrations.iter().map(|m| on(m)).collect(),
            },
            insert: on(f.insert),
            redeliver: on(f.redeliver),
            claim: on(f.claim),
            next_due: on(f.next_due),
            claim_unordered: on(f.claim_unordered),
            next_due_unordered: on(f.next_due_unordered),
            transition: on(f.transition),
            peek: on(f.peek),
            lock: on(f.lock),
            done_in_tx: on(f.done_in_tx),
            count_by_state: on(f.count_by_state),
            activity_received: on(f.activity_received),
            activity_done: on(f.activity_done),
            oldest_due: on(f.oldest_due),
            next_lapse: on(f.next_lapse),
            get: on(f.get),
            failing: on(f.failing),
            revive: on(f.revive),
            prune: on(f.prune),
            table: table.to_owned(),
        }
    }

    /// The `WHERE` of a listing or a count, built from which filters are
    /// set (the keyset `after` included), and its parameters.
    fn filter(d: Dialect, q: &super::query::ListFilter) -> (String, Vec<Param>) {
        let mut conditions = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        let mut add = |cond: &dyn Fn(&str) -> String, v: Param| {
            params.push(v);
            conditions.push(cond(&d.p(params.len())));
        };
        if let Some(s) = q.state {
            add(
                &|p| format!("state = {p}"),
                Param::Text(s.as_str().to_owned()),
            );
        }
        if let Some(ty) = &q.event_type {
            add(&|p| format!("event_type = {p}"), Param::Text(ty.clone()));
        }
        if let Some(tenant) = &q.tenant {
            add(&|p| format!("tenant = {p}"), Param::Text(tenant.clone()));
        }
        if let Some(since) = q.since_ms {
            add(&|p| format!("received_at >= {p}"), Param::Int(since));
        }
        if let Some(until) = q.until_ms {
            add(&|p| format!("received_at < {p}"), Param::Int(until));
        }
        if let Some(object) = &q.object_id {
            add(&|p| format!("object_id = {p}"), Param::Text(object.clone()));
        }
        if let Some(prefix) = &q.id_prefix {
            // Not LIKE (no wildcard to escape) and not a range (collations
            // need not order by code point): the prefix itself, compared.
            add(
                &|p| format!("substr(event_id, 1, length({p})) = {p}"),
                Param::Text(prefix.clone()),
            );
        }
        if let Some(after) = &q.after {
            let op = if q.newest_first { "<" } else { ">" };
            params.push(Param::Int(after.received_at_ms));
            let a = d.p(params.len());
            params.push(Param::Text(after.tenant.clone()));
            let b = d.p(params.len());
            params.push(Param::Text(after.id.clone()));
            let c = d.p(params.len());
            params.push(Param::Text(after.event_type.clone()));
            let e = d.p(params.len());
            conditions.push(format!(
                "(received_at, tenant, event_id, event_type) {op} ({a}, {b}, {c}, {e})"
            ));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        (filter, params)
    }

    /// A listing of the listed columns (no body, no signature), keyset-paged
    /// on `(received_at, tenant, event_id, event_type)`.
    pub(crate) fn list(&self, d: Dialect, q: &super::query::ListFilter) -> (String, Vec<Param>) {
        let t = &self.table;
        let (filter, mut params) = Self::filter(d, q);
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        params.push(Param::Int(i64::from(q.limit())));
        let limit = d.p(params.len());
        (
            format!(
                "SELECT {LIST_COLUMNS} FROM \"{t}\" {filter}
                 ORDER BY received_at {dir}, tenant {dir}, event_id {dir}, event_type {dir}
                 LIMIT {limit}"
            ),
            params,
        )
    }

    /// How many rows match, counting at most `at_most + 1` of them.
    pub(crate) fn count(
        &self,
        d: Dialect,
        q: &super::query::ListFilter,
        at_most: u64,
    ) -> (String, Vec<Param>) {
        let t = &self.table;
        let (filter, mut params) = Self::filter(d, q);
        params.push(Param::Int(
            i64::try_from(at_most)
                .unwrap_or(i64::MAX - 1)
                .saturating_add(1),
        ));
        let limit = d.p(params.len());
        (
            format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM \"{t}\" {filter} LIMIT {limit}) AS counted"
            ),
            params,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::machine::{
        from_list, owned_from, Transition, CUT_SHORT, EXHAUSTED_PENDING, EXHAUSTED_RUNNING,
    };
    use super::super::progress::{RERUN_ALL, RERUN_NOT_DONE};
    use super::*;

    /// The state lists written in the files are the state machine's.
    #[test]
    fn the_files_hold_the_state_machines_lists() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            let s = InboxSql::new("t", d);
            let open = format!("state IN ({})", from_list(Transition::Claim));
            assert_eq!(from_list(Transition::Exhaust), from_list(Transition::Claim));
            assert_eq!(from_list(Transition::Outdate), from_list(Transition::Claim));
            for (name, sql) in [
                ("claim", &s.claim),
                ("claim_unordered", &s.claim_unordered),
                ("next_due", &s.next_due),
                ("next_due_unordered", &s.next_due_unordered),
                ("oldest_due", &s.oldest_due),
                ("create", &s.schema.create),
            ] {
                assert!(sql.contains(&open), "{d:?} {name}: {open}");
            }
            for sql in [&s.claim, &s.claim_unordered] {
                assert!(sql.contains(EXHAUSTED_RUNNING) && sql.contains(EXHAUSTED_PENDING));
                assert!(sql.contains(&format!("THEN '{CUT_SHORT}'")), "{d:?}");
            }
            let owned = format!("(state || '') = '{}'", owned_from().as_str());
            for sql in [&s.transition, &s.lock, &s.done_in_tx] {
                assert!(sql.contains(&owned), "{d:?}: {owned} in {sql}");
            }
            let redeliver = format!("(state || '') IN ({})", from_list(Transition::Redeliver));
            assert!(s.redeliver.contains(&redeliver), "{d:?} {redeliver}");
            let revive = format!(
                "state IN ({}, {})",
                from_list(Transition::Revive),
                from_list(Transition::Rerun)
            );
            assert!(s.revive.contains(&revive), "{d:?} {revive}");
            assert!(s.revive.contains(&format!("'{RERUN_ALL}'")));
            assert!(s.revive.contains(&format!("'{RERUN_NOT_DONE}'")));
            assert!(s.redeliver.contains(&format!("rerun = '{RERUN_NOT_DONE}'")));
            let prune = format!("state IN ({})", from_list(Transition::Prune));
            assert!(s.prune.contains(&prune), "{d:?} {prune}");
            assert!(s.get.contains(RECORD_COLUMNS));
            assert_eq!(
                RECORD_COLUMNS.replace(" body, signature,", ""),
                LIST_COLUMNS,
                "a listing reads a record's columns but its body and signature"
            );
            // The table is named everywhere, and nothing else is left to fill.
            for sql in [&s.claim, &s.schema.create, &s.schema.upgrades[0]] {
                assert!(sql.contains("\"t\"") && !sql.contains('{'), "{d:?}: {sql}");
            }
            assert_eq!(s.schema.version, 5);
        }
    }

    /// The claim and the idle worker's wait find a key's head with the same
    /// probes (written out in both files): they must not drift apart, or an
    /// idle worker would wait for an event no claim takes, or sleep past
    /// one it would.
    #[test]
    fn claim_and_next_due_share_their_head_of_key() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            let s = InboxSql::new("t", d);
            let head = |sql: &str, dead_holds: &str| -> String {
                let from = sql.find("(r.order_key IS NULL").expect("a head");
                let to = from + sql[from..].find("ORDER BY").expect("its end");
                sql[from..to]
                    .replace(dead_holds, "DEAD_HOLDS")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let (claim, next) = match d {
                Dialect::Postgres => (
                    head(&s.claim, "$5::BOOLEAN"),
                    head(&s.next_due, "$1::BOOLEAN"),
                ),
                Dialect::Sqlite => (head(&s.claim, "?5"), head(&s.next_due, "?1")),
            };
            assert_eq!(claim, next, "{d:?}");
            assert!(claim.contains("DEAD_HOLDS"), "{d:?}: {claim}");
        }
    }
}
