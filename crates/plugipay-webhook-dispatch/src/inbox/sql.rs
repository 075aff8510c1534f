//! The inbox's SQL, written once for both dialects: the schema (version 3)
//! and its upgrades from the earlier releases, and one statement per kind
//! of transition — the `from` states of each come from the state machine's
//! table.
//!
//! `due_at` is when a row is due: a pending event's next attempt, a running
//! event's lease expiry. One partial index on it serves every claim, so a
//! lapsed lease is due in the same order as everything else.
//!
//! Ordering (version 3): an ordered row carries its key (`order_key`), when
//! it happened (`occurred_ms`, NULL when `occurred_at` does not parse) and
//! its place in the key's order (`order_at`: `occurred_ms`, else the
//! arrival time). A claim takes an ordered pending row only when its key has
//! no running row and no pending row before it (`{table}_key_running`,
//! unique, and `{table}_key_pending` serve those probes; the unique index
//! also makes a second running row of one key impossible, whatever two
//! claims race); it moves the row to `stale` instead when its `occurred_ms`
//! is older than the key's newest done one (`{table}_key_done`).

use super::machine::{
    from_list, owned_from, State, Transition, EXHAUSTED_PENDING, EXHAUSTED_RUNNING,
};
use crate::sql::{Dialect, Schema};

/// The columns a record is read with (`Record`).
pub(crate) const RECORD_COLUMNS: &str = "tenant, event_id, event_type, state, attempts, received_at, due_at, last_error, account_id, occurred_at, body, signature, matched_secret, updated_at, object_id, order_key, handlers";

/// The columns a claimed job is read with (then whether it is stale).
const JOB_COLUMNS: &str =
    "state, tenant, event_id, event_type, body, matched_secret, attempts, received_at, handlers, rerun, trace";

/// Every statement of one inbox table in one dialect.
pub(crate) struct InboxSql {
    pub(crate) schema: Schema,
    /// `tenant, id, type, body, signature, matched_secret, account_id,
    /// occurred_at, state, object_id, order_key, occurred_ms, due in ms` →
    /// one row when inserted.
    pub(crate) insert: String,
    /// `tenant, id, type` → one row when a dead event was made pending.
    pub(crate) redeliver: String,
    /// `owner, lease ms, max attempts, skip stale, dead holds its key` → the
    /// claimed row (`JOB_COLUMNS`, then 1 when stale).
    pub(crate) claim: String,
    /// `dead holds its key` → how long until the earliest open event a claim
    /// could take is due, in ms (for an idle worker's wait): an ordered
    /// event behind its key's head does not count — the head does.
    pub(crate) next_due: String,
    /// `owner, lease ms, max attempts` → `claim` for an inbox that does
    /// not order (no key to respect, nothing stale).
    pub(crate) claim_unordered: String,
    /// `next_due` for an inbox that does not order.
    pub(crate) next_due_unordered: String,
    /// `tenant, id, type, owner, to, due in ms, error, refund` → rows changed.
    pub(crate) transition: String,
    /// `tenant, id, type` → `state, lease_owner`.
    pub(crate) peek: String,
    /// Inside the transaction: `tenant, id, type, owner` → a row (its
    /// transaction id on PostgreSQL) when the owner still holds it; locks it.
    pub(crate) lock: String,
    /// Inside the transaction: `tenant, id, type, owner, txid` → done.
    pub(crate) done_in_tx: String,
    pub(crate) count_by_state: String,
    /// Events received per bucket: $1 since, $2 bucket length.
    pub(crate) activity_received: String,
    /// Events done per bucket (by updated_at): $1 since, $2 bucket length.
    pub(crate) activity_done: String,
    pub(crate) oldest_due: String,
    /// `id` → the records of one id (every tenant and type).
    pub(crate) get: String,
    /// `filter` → how many moved.
    pub(crate) revive: String,
    /// `cutoff ms, include skipped` → how many deleted.
    pub(crate) prune: String,
    pub(crate) table: String,
}

impl InboxSql {
    pub(crate) fn new(table: &str, d: Dialect) -> InboxSql {
        let p = |n| d.p(n);
        let now = d.now();
        let t = format!("\"{table}\"");
        let blob = d.blob();
        let open = from_list(Transition::Claim);
        // A statement that finds one event by its key compares the state
        // as an expression: no index on the state (the partial ones of the
        // claim and of ordering) can serve it, and the planner takes the
        // primary key whatever the statistics say. Compared plainly, a table
        // analysed while it held no open row made these lookups walk every
        // open row's index entry — dead versions included — per event.
        let st = "(state || '')";
        let key = format!(
            "tenant = {} AND event_id = {} AND event_type = {}",
            p(1),
            p(2),
            p(3)
        );
        let fields_v2 = format!(
            "tenant TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                body {blob} NOT NULL,
                signature TEXT NOT NULL,
                matched_secret BIGINT NOT NULL,
                account_id TEXT,
                occurred_at TEXT,
                received_at BIGINT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                due_at BIGINT NOT NULL,
                lease_owner TEXT,
                last_error TEXT,
                updated_at BIGINT NOT NULL"
        );
        let pk = "PRIMARY KEY (tenant, event_id, event_type)";
        let added_v3 = "object_id TEXT, order_key TEXT, occurred_ms BIGINT, order_at BIGINT";
        let columns_v2 = format!("{fields_v2}, {pk}");
        // Version 5: each handler's state (JSON, `inbox::progress`), which
        // handlers a tool asked to run again, and the receiving request's
        // W3C trace context (`traceparent`, a newline, `tracestate`).
        let added_v5 = "handlers TEXT, rerun TEXT, trace TEXT";
        let columns = format!("{fields_v2}, {added_v3}, {added_v5}, {pk}");
        let indexes_v2 = format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_due\" ON {t} (due_at) WHERE state IN ({open});
             CREATE INDEX IF NOT EXISTS \"{table}_id\" ON {t} (event_id);
             CREATE INDEX IF NOT EXISTS \"{table}_received\" ON {t} (received_at);
             CREATE INDEX IF NOT EXISTS \"{table}_state\" ON {t} (state, updated_at);"
        );
        // Version 4: the index on the state covers settled events only (for
        // listings, statistics and prune). Over every state, it was the
        // planner's pick for the claim's and ordering's probes of running
        // rows whenever the statistics said there were none, and each probe
        // then read every running row version not yet vacuumed: 1,167 index
        // entries per event over a backlog of 1,500.
        let settled = format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_settled\" ON {t} (state, updated_at)
                WHERE state NOT IN ({open})"
        );
        let indexes_v2_kept = format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_due\" ON {t} (due_at) WHERE state IN ({open});
             CREATE INDEX IF NOT EXISTS \"{table}_id\" ON {t} (event_id);
             CREATE INDEX IF NOT EXISTS \"{table}_received\" ON {t} (received_at);"
        );
        let indexes_v3 = format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_key_running\" ON {t} (order_key)
                WHERE state = 'running' AND order_key IS NOT NULL;
             CREATE INDEX IF NOT EXISTS \"{table}_key_pending\"
                ON {t} (order_key, order_at, received_at, event_id, event_type)
                WHERE state = 'pending' AND order_key IS NOT NULL;
             CREATE INDEX IF NOT EXISTS \"{table}_key_done\" ON {t} (order_key, occurred_ms)
                WHERE state = 'done' AND order_key IS NOT NULL;
             CREATE INDEX IF NOT EXISTS \"{table}_key_dead\" ON {t} (order_key)
                WHERE state = 'dead' AND order_key IS NOT NULL;
             CREATE INDEX IF NOT EXISTS \"{table}_object\" ON {t} (object_id)
                WHERE object_id IS NOT NULL;"
        );
        let indexes = format!("{indexes_v2_kept}\n{indexes_v3}\n{settled};");
        // Version 1: keyed on (event_id, event_type), no tenant, a pending
        // event's time in next_attempt_at and a running one's lease in
        // lease_until.
        let upgrade_1_to_2 = match d {
            Dialect::Postgres => format!(
                "DROP INDEX IF EXISTS \"{table}_due\";
                 ALTER TABLE {t} ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
                 ALTER TABLE {t} RENAME COLUMN next_attempt_at TO due_at;
                 UPDATE {t} SET due_at = COALESCE(lease_until, due_at) WHERE state = 'running';
                 ALTER TABLE {t} DROP COLUMN lease_until;
                 ALTER TABLE {t} DROP CONSTRAINT \"{table}_pkey\";
                 ALTER TABLE {t} ADD PRIMARY KEY (tenant, event_id, event_type);
                 {indexes_v2}"
            ),
            Dialect::Sqlite => format!(
                "DROP INDEX IF EXISTS \"{table}_due\";
                 ALTER TABLE {t} RENAME TO \"{table}__v1\";
                 CREATE TABLE {t} ({columns_v2});
                 INSERT INTO {t} (tenant, event_id, event_type, body, signature, matched_secret,
                    account_id, occurred_at, received_at, state, attempts, due_at, lease_owner,
                    last_error, updated_at)
                 SELECT '', event_id, event_type, body, signature, matched_secret, account_id,
                    occurred_at, received_at, state, attempts,
                    CASE WHEN state = 'running' THEN COALESCE(lease_until, next_attempt_at)
                         ELSE next_attempt_at END,
                    lease_owner, last_error, updated_at
                 FROM \"{table}__v1\";
                 DROP TABLE \"{table}__v1\";
                 {indexes_v2}"
            ),
        };
        // Version 2 → 3: the columns of ordering and the object id (NULL for
        // the events stored before: they are not ordered).
        let upgrade_2_to_3 = format!(
            "ALTER TABLE {t} ADD COLUMN object_id TEXT;
             ALTER TABLE {t} ADD COLUMN order_key TEXT;
             ALTER TABLE {t} ADD COLUMN occurred_ms BIGINT;
             ALTER TABLE {t} ADD COLUMN order_at BIGINT;
             {indexes_v3}"
        );
        let schema = Schema {
            table: table.to_owned(),
            version: 5,
            create: format!("CREATE TABLE IF NOT EXISTS {t} ({columns}); {indexes}"),
            upgrades: vec![
                upgrade_1_to_2,
                upgrade_2_to_3,
                format!("DROP INDEX IF EXISTS \"{table}_state\"; {settled};"),
                format!(
                    "ALTER TABLE {t} ADD COLUMN handlers TEXT;
                     ALTER TABLE {t} ADD COLUMN rerun TEXT;
                     ALTER TABLE {t} ADD COLUMN trace TEXT;"
                ),
            ],
        };

        // The claim: the earliest due open row (pending and due, or running
        // with its lease lapsed) that is the head of its key (an unordered
        // row always is), taken under a new lease — or, when its attempts
        // are exhausted, moved to dead instead (Exhaust); or, ordered and
        // older than its key's newest done event, to stale (Outdate).
        let (skip_stale, dead_holds) = match d {
            Dialect::Postgres => ("$4::BOOLEAN", "$5::BOOLEAN"),
            Dialect::Sqlite => ("?4", "?5"),
        };
        let (pending, running, dead, done) = (
            State::Pending.as_str(),
            State::Running.as_str(),
            State::Dead.as_str(),
            State::Done.as_str(),
        );
        let place =
            |a: &str| format!("({a}.order_at, {a}.received_at, {a}.event_id, {a}.event_type)");
        let (o, r) = (place("o"), place("r"));
        // A running row already holds its key (a lapsed lease resumes); a
        // pending one waits for a running row of its key, for every pending
        // row before it, and — when dead events hold their key — for every
        // dead one before it.
        //
        // Each probe is a correlated lookup in its key's partial index
        // (`OFFSET 0` keeps PostgreSQL from turning it into a hashed subplan:
        // that one reads every row version in the state — dead ones
        // included, until vacuum — on every claim; measured, 1,167 index
        // entries read per event over a backlog of 1,500).
        let fence = match d {
            Dialect::Postgres => " OFFSET 0",
            Dialect::Sqlite => "",
        };
        let head_with = |dead_holds: &str| {
            format!(
            "(r.order_key IS NULL OR r.state = '{running}' OR (
                NOT EXISTS (SELECT 1 FROM {t} o
                            WHERE o.order_key = r.order_key AND o.state = '{running}'{fence})
                AND NOT EXISTS (SELECT 1 FROM {t} o
                            WHERE o.order_key = r.order_key AND o.state = '{pending}' AND {o} < {r}{fence})
                AND NOT ({dead_holds} AND EXISTS (SELECT 1 FROM {t} o
                            WHERE o.order_key = r.order_key AND o.state = '{dead}' AND {o} < {r}{fence}))))"
        )
        };
        let pick_with = |head: &str| {
            match d {
            Dialect::Postgres => format!(
                "(tenant, event_id, event_type) = (
                    SELECT tenant, event_id, event_type FROM {t} r
                    WHERE state IN ({open}) AND due_at <= {now} AND {head}
                    ORDER BY due_at LIMIT 1
                    FOR UPDATE SKIP LOCKED)"
            ),
            Dialect::Sqlite => format!(
                "rowid = (SELECT rowid FROM {t} r WHERE state IN ({open}) AND due_at <= {now} AND {head}
                          ORDER BY due_at LIMIT 1)"
            ),
        }
        };
        let pick = pick_with(&head_with(dead_holds));
        let stale = format!(
            "(order_key IS NOT NULL AND occurred_ms IS NOT NULL AND occurred_ms < (
                SELECT MAX(h.occurred_ms) FROM {t} h
                WHERE h.order_key = {t}.order_key AND h.state = '{done}'))"
        );
        let outdate = format!("({skip_stale} AND {stale})");
        let exhausted = format!("attempts >= {}", p(3));
        debug_assert_eq!(from_list(Transition::Exhaust), open);
        debug_assert_eq!(from_list(Transition::Outdate), open);
        let claim = format!(
            "UPDATE {t} SET
                state = CASE WHEN {outdate} THEN '{stale_state}'
                             WHEN {exhausted} THEN '{dead}' ELSE '{running}' END,
                last_error = CASE WHEN {outdate} THEN last_error WHEN {exhausted} THEN
                    CASE WHEN state = '{running}' THEN '{EXHAUSTED_RUNNING}' ELSE '{EXHAUSTED_PENDING}' END
                    ELSE last_error END,
                attempts = CASE WHEN {outdate} OR {exhausted} THEN attempts ELSE attempts + 1 END,
                lease_owner = {owner},
                due_at = {now} + {lease},
                updated_at = {now}
             WHERE {pick}
             RETURNING {JOB_COLUMNS}, CASE WHEN {stale} THEN 1 ELSE 0 END",
            owner = p(1),
            lease = p(2),
            stale_state = State::Stale.as_str(),
        );
        // An inbox that does not order: no head to find, nothing stale (its
        // events carry no key), and a plan as small as the statement.
        let claim_unordered = format!(
            "UPDATE {t} SET
                state = CASE WHEN {exhausted} THEN '{dead}' ELSE '{running}' END,
                last_error = CASE WHEN {exhausted} THEN
                    CASE WHEN state = '{running}' THEN '{EXHAUSTED_RUNNING}' ELSE '{EXHAUSTED_PENDING}' END
                    ELSE last_error END,
                attempts = CASE WHEN {exhausted} THEN attempts ELSE attempts + 1 END,
                lease_owner = {owner},
                due_at = {now} + {lease},
                updated_at = {now}
             WHERE {pick}
             RETURNING {JOB_COLUMNS}, 0",
            owner = p(1),
            lease = p(2),
            pick = pick_with("TRUE"),
        );

        // Every owned transition in one statement: the new state, when it is
        // due next (NULL: unchanged), the error it keeps (NULL: unchanged),
        // and whether the attempt is given back.
        let owned = owned_from().as_str();
        // The handlers' states (NULL: unchanged) replace the stored ones and
        // settle a rerun request.
        let (to, due, error, refund, progress) = match d {
            Dialect::Postgres => (
                "$5::TEXT",
                "$6::BIGINT",
                "$7::TEXT",
                "$8::INTEGER",
                "$9::TEXT",
            ),
            Dialect::Sqlite => ("?5", "?6", "?7", "?8", "?9"),
        };
        let transition = format!(
            "UPDATE {t} SET state = {to},
                due_at = CASE WHEN {due} IS NULL THEN due_at ELSE {now} + {due} END,
                last_error = COALESCE({error}, last_error),
                attempts = attempts - {refund},
                handlers = COALESCE({progress}, handlers),
                rerun = CASE WHEN {progress} IS NULL THEN rerun ELSE NULL END,
                updated_at = {now}
             WHERE {key} AND lease_owner = {} AND {st} = '{owned}'",
            p(4)
        );

        let (lock, done_in_tx) = match d {
            // The row is locked for the whole transaction: no other worker
            // can claim it (claims skip locked rows), however long the
            // handler runs. The transaction id ties the final move to this
            // very transaction: a handler that ended it itself (COMMIT or
            // ROLLBACK through the raw client) makes the move find nothing.
            // A move that finds nothing divides by zero, which aborts the
            // transaction, so the COMMIT sent with it in the same round trip
            // rolls back instead of committing the handler's writes alone.
            Dialect::Postgres => (
                format!(
                    "SELECT txid_current() FROM {t}
                     WHERE {key} AND lease_owner = $4 AND {st} = '{owned}' FOR UPDATE"
                ),
                format!(
                    "WITH moved AS (
                        UPDATE {t} SET state = CASE WHEN $7::BOOLEAN THEN 'done' ELSE state END,
                            handlers = $6::TEXT, rerun = NULL, updated_at = {now}
                        WHERE {key} AND lease_owner = $4 AND {st} = '{owned}'
                          AND txid_current() = $5
                        RETURNING 1)
                     SELECT 1 / COUNT(*) FROM moved"
                ),
            ),
            // SQLite: `BEGIN IMMEDIATE` holds the database's write lock.
            Dialect::Sqlite => (
                format!("SELECT 0 FROM {t} WHERE {key} AND lease_owner = ?4 AND {st} = '{owned}'"),
                format!(
                    "UPDATE {t} SET state = CASE WHEN ?6 THEN 'done' ELSE state END,
                        handlers = ?5, rerun = NULL, updated_at = {now}
                     WHERE {key} AND lease_owner = ?4 AND {st} = '{owned}'"
                ),
            ),
        };

        let revive_from = from_list(Transition::Revive);
        let rerun_from = from_list(Transition::Rerun);
        let (b, i, tx) = match d {
            Dialect::Postgres => ("::BOOLEAN", "::TEXT", "::TEXT"),
            Dialect::Sqlite => ("", "", ""),
        };
        // Filter parameters: id, dead, skipped, done, type, tenant, stale,
        // handler, since. A done event reruns every handler (`*`) unless one
        // is named; a dead one its handlers that are not done.
        let revive = format!(
            "UPDATE {t} SET state = 'pending', attempts = 0, due_at = {now}, last_error = NULL,
                lease_owner = NULL, updated_at = {now},
                rerun = COALESCE({p8}{tx}, CASE WHEN state = 'done' THEN '{all}' ELSE NULL END)
             WHERE ({p1}{i} IS NULL OR event_id = {p1})
               AND (({p2}{b} AND state = 'dead') OR ({p3}{b} AND state = 'skipped')
                    OR ({p7}{b} AND state = 'stale') OR ({p4}{b} AND state IN ({rerun_from})))
               AND state IN ({revive_from}, {rerun_from})
               AND ({p5}{tx} IS NULL OR event_type = {p5})
               AND ({p6}{tx} IS NULL OR tenant = {p6})
               AND ({p9}{bi} IS NULL OR received_at >= {p9})",
            all = super::progress::RERUN_ALL,
            bi = match d {
                Dialect::Postgres => "::BIGINT",
                Dialect::Sqlite => "",
            },
            p8 = p(8),
            p9 = p(9),
            p1 = p(1),
            p2 = p(2),
            p3 = p(3),
            p4 = p(4),
            p5 = p(5),
            p6 = p(6),
            p7 = p(7),
        );
        // A key's newest done event is its high-water mark: pruning keeps it.
        let prune = format!(
            "DELETE FROM {t} WHERE (state = 'done' OR ({p2}{b} AND state = 'skipped'))
               AND state IN ({from}) AND updated_at < {now} - {p1}
               AND NOT (state = 'done' AND order_key IS NOT NULL AND occurred_ms IS NOT NULL
                        AND occurred_ms >= (SELECT MAX(h.occurred_ms) FROM {t} h
                            WHERE h.order_key = {t}.order_key AND h.state = 'done'))",
            from = from_list(Transition::Prune),
            p1 = p(1),
            p2 = p(2),
        );
        InboxSql {
            schema,
            insert: format!(
                "INSERT INTO {t} (tenant, event_id, event_type, body, signature, matched_secret,
                    account_id, occurred_at, received_at, state, attempts, due_at, updated_at,
                    object_id, order_key, occurred_ms, order_at, trace)
                 VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {now}, {}, 0, {now} + {}, {now},
                    {}, {}, {}, COALESCE({}, {now}), {})
                 ON CONFLICT (tenant, event_id, event_type) DO NOTHING
                 RETURNING 1",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(13),
                p(10),
                p(11),
                p(12),
                p(12),
                p(14)
            ),
            redeliver: format!(
                "UPDATE {t} SET state = 'pending', attempts = 0, due_at = {now}, last_error = NULL,
                    lease_owner = NULL, updated_at = {now}
                 WHERE {key} AND {st} IN ({})
                 RETURNING 1",
                from_list(Transition::Redeliver)
            ),
            claim,
            claim_unordered,
            next_due_unordered: format!(
                "SELECT due_at - {now} FROM {t} WHERE state IN ({open}) ORDER BY due_at LIMIT 1"
            ),
            next_due: format!(
                "SELECT due_at - {now} FROM {t} r WHERE state IN ({open}) AND {next_head}
                 ORDER BY due_at LIMIT 1",
                next_head = head_with(match d {
                    Dialect::Postgres => "$1::BOOLEAN",
                    Dialect::Sqlite => "?1",
                })
            ),
            transition,
            peek: format!("SELECT state, lease_owner FROM {t} WHERE {key}"),
            lock,
            done_in_tx,
            count_by_state: format!("SELECT state, COUNT(*) FROM {t} GROUP BY state"),
            activity_received: format!(
                "SELECT (received_at - {a}) / {b}, COUNT(*) FROM {t}
                 WHERE received_at >= {a} GROUP BY 1",
                a = p(1),
                b = p(2)
            ),
            activity_done: format!(
                "SELECT (updated_at - {a}) / {b}, COUNT(*) FROM {t}
                 WHERE state = 'done' AND updated_at >= {a} GROUP BY 1",
                a = p(1),
                b = p(2)
            ),
            oldest_due: format!(
                "SELECT COALESCE({now} - MIN(due_at), 0) FROM {t}
                 WHERE state IN ({open}) AND due_at <= {now}"
            ),
            get: format!(
                "SELECT {RECORD_COLUMNS} FROM {t} WHERE event_id = {} ORDER BY tenant, event_type",
                p(1)
            ),
            revive,
            prune,
            table: table.to_owned(),
        }
    }

    /// A listing: `WHERE` built from which filters are set, keyset-paged on
    /// `(received_at, tenant, event_id, event_type)`.
    pub(crate) fn list(
        &self,
        d: Dialect,
        q: &super::types::ListFilter,
    ) -> (String, Vec<super::backend::Param>) {
        use super::backend::Param;
        let t = &self.table;
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
        let dir = if q.newest_first { "DESC" } else { "ASC" };
        params.push(Param::Int(i64::from(q.limit())));
        let limit = d.p(params.len());
        (
            format!(
                "SELECT {RECORD_COLUMNS} FROM \"{t}\" {filter}
                 ORDER BY received_at {dir}, tenant {dir}, event_id {dir}, event_type {dir}
                 LIMIT {limit}"
            ),
            params,
        )
    }
}
