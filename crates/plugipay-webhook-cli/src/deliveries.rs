//! `listen --ui`'s record of every delivery, verified or not: a table in
//! the temporary SQLite database that also holds its inbox, shown by the
//! console's development pages.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plugipay_webhook_console::dev::{
    BoxFuture, Deliveries, Delivery, DeliveryError, DeliveryQuery, Verdict,
};
use plugipay_webhook_dispatch::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use plugipay_webhook_dispatch::sqlx::{self, Row};

/// How many deliveries that are not pinned are kept; older ones go.
pub(crate) const KEEP: usize = 1000;

/// How many bytes of bodies the deliveries that are not pinned may hold
/// together (1,000 of 1 MiB would be a gigabyte in the temporary
/// directory); the oldest go first.
pub(crate) const KEEP_BYTES: u64 = 256 * 1024 * 1024;

/// Sends a body again, signed afresh: what happened, as a sentence.
pub(crate) type Replayer =
    Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// A directory of this run's own (owner only, `tempfile`'s), removed when
/// dropped, named `<prefix>-<pid>-<16 random letters and digits>` with an
/// owner file naming its process: a later run removes it once that process
/// is gone (killed before it could).
pub(crate) struct TempDir(tempfile::TempDir);

/// The random part of a run's directory name.
const RANDOM_LEN: usize = 16;

impl TempDir {
    pub(crate) fn new(prefix: &str) -> std::io::Result<TempDir> {
        let named = format!("{prefix}-{}-", std::process::id());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&named).rand_bytes(RANDOM_LEN);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir()?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        Ok(TempDir(dir))
    }

    /// Removes the directories `<prefix>-<pid>-<random>` in the temporary
    /// directory that a process of this user left behind and that is gone
    /// (a run killed before it could remove its own): only where `/proc`
    /// tells whether a process lives, and only a directory whose owner file
    /// names the pid in its name. How many went.
    pub(crate) fn sweep(prefix: &str) -> usize {
        sweep_in(&std::env::temp_dir(), prefix, |pid| {
            Path::new("/proc").join(pid.to_string()).exists()
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

/// The file in a run's directory naming its process.
const OWNER_FILE: &str = "owner.pid";

fn sweep_in(dir: &Path, prefix: &str, alive: impl Fn(u32) -> bool) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut gone = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&format!("{prefix}-")))
        else {
            continue;
        };
        let Some((pid, hex)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if hex.len() != RANDOM_LEN || !hex.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let path = entry.path();
        let owner = std::fs::read_to_string(path.join(OWNER_FILE));
        if owner.ok().and_then(|o| o.trim().parse::<u32>().ok()) != Some(pid) {
            continue;
        }
        if !mine(&path) || pid == std::process::id() || alive(pid) {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            gone += 1;
        }
    }
    gone
}

/// Whether `path` belongs to this process's user.
#[cfg(unix)]
fn mine(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata("/proc/self")) {
        (Ok(p), Ok(me)) => p.uid() == me.uid(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn mine(_: &Path) -> bool {
    false
}

/// The deliveries table, and how to replay one.
#[derive(Clone)]
pub(crate) struct DeliveryLog {
    /// One connection: the writes are one at a time anyway.
    pool: SqlitePool,
    replay: Option<(String, Replayer)>,
    /// How many unpinned deliveries, and how many bytes of their bodies,
    /// are kept.
    keep: (usize, u64),
}

impl DeliveryLog {
    /// Opens (creating) the table in the database at `path`; `replay` is
    /// the forward target and how to send to it.
    pub(crate) async fn open(
        path: &Path,
        replay: Option<(String, Replayer)>,
    ) -> Result<Self, String> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|e| format!("the delivery log: {e}"))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS listen_deliveries (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                received_at_ms INTEGER NOT NULL,
                method TEXT NOT NULL,
                path TEXT NOT NULL,
                headers TEXT NOT NULL,
                body BLOB NOT NULL,
                ok INTEGER NOT NULL,
                event_id TEXT,
                event_type TEXT,
                tenant TEXT,
                matched_secret INTEGER,
                status INTEGER,
                code TEXT,
                message TEXT,
                explain TEXT NOT NULL,
                answered INTEGER,
                forwarded TEXT,
                pinned INTEGER NOT NULL DEFAULT 0,
                replays INTEGER NOT NULL DEFAULT 0,
                last_replay TEXT
            );",
        )
        .execute(&pool)
        .await
        .map_err(|e| format!("the delivery log: {e}"))?;
        Ok(DeliveryLog {
            pool,
            replay,
            keep: (KEEP, KEEP_BYTES),
        })
    }

    /// The same log keeping at most `count` unpinned deliveries and `bytes`
    /// of their bodies.
    #[cfg(test)]
    fn keeping(mut self, count: usize, bytes: u64) -> Self {
        self.keep = (count, bytes);
        self
    }

    /// Records one delivery (its `seq` is given by the table) and lets the
    /// oldest unpinned ones beyond [`KEEP`] deliveries or [`KEEP_BYTES`] of
    /// bodies go (the newest one stays, whatever its size); its number.
    pub(crate) async fn record(&self, d: Delivery) -> Result<u64, DeliveryError> {
        let headers = serde_json::to_string(&d.headers).unwrap_or_else(|_| "[]".into());
        let explain = serde_json::to_string(&d.explain).unwrap_or_else(|_| "[]".into());
        let (ok, id, ty, tenant, matched, status, code, message) = match &d.verdict {
            Verdict::Verified {
                id,
                event_type,
                tenant,
                matched_secret,
            } => (
                true,
                Some(id.as_str()),
                Some(event_type.as_str()),
                tenant.as_deref(),
                Some(*matched_secret as i64),
                None,
                None,
                None,
            ),
            Verdict::Rejected {
                status,
                code,
                message,
            } => (
                false,
                None,
                None,
                None,
                None,
                Some(i64::from(*status)),
                Some(code.as_str()),
                Some(message.as_str()),
            ),
        };
        let mut conn = self.pool.acquire().await.map_err(failed)?;
        let seq = sqlx::query(
            "INSERT INTO listen_deliveries (received_at_ms, method, path, headers, body, ok,
                event_id, event_type, tenant, matched_secret, status, code, message, explain,
                answered, forwarded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .bind(d.received_at_ms)
        .bind(&d.method)
        .bind(&d.path)
        .bind(headers)
        .bind(&d.body[..])
        .bind(ok)
        .bind(id)
        .bind(ty)
        .bind(tenant)
        .bind(matched)
        .bind(status)
        .bind(code)
        .bind(message)
        .bind(explain)
        .bind(d.answered)
        .bind(&d.forwarded)
        .execute(&mut *conn)
        .await
        .map_err(failed)?
        .last_insert_rowid();
        sqlx::query(
            "DELETE FROM listen_deliveries WHERE pinned = 0 AND seq <= (
                SELECT seq FROM listen_deliveries WHERE pinned = 0
                ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
        )
        .bind(self.keep.0 as i64)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
        // The bytes: newest first, a running total; what lies beyond the cap
        // goes (never the newest).
        sqlx::query(
            "DELETE FROM listen_deliveries WHERE pinned = 0 AND seq IN (
                SELECT seq FROM (
                    SELECT seq, SUM(length(body)) OVER (ORDER BY seq DESC) AS total
                    FROM listen_deliveries WHERE pinned = 0)
                WHERE total > ?1 AND seq < ?2)",
        )
        .bind(i64::try_from(self.keep.1).unwrap_or(i64::MAX))
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
        Ok(seq as u64)
    }

    async fn get(&self, seq: u64) -> Result<Option<Delivery>, DeliveryError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM listen_deliveries WHERE seq = ?1"
        ))
        .bind(seq as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed)?;
        row.as_ref().map(delivery).transpose().map_err(failed)
    }
}

fn failed(e: sqlx::Error) -> DeliveryError {
    DeliveryError(format!("the delivery log: {e}"))
}

const COLUMNS: &str = "seq, received_at_ms, method, path, headers, body, ok, event_id, event_type,
    tenant, matched_secret, status, code, message, explain, answered, forwarded, pinned, replays,
    last_replay";

fn delivery(row: &SqliteRow) -> Result<Delivery, sqlx::Error> {
    let headers: String = row.try_get(4)?;
    let explain: String = row.try_get(14)?;
    let body: Vec<u8> = row.try_get(5)?;
    let verdict = if row.try_get::<bool, _>(6)? {
        Verdict::Verified {
            id: row.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
            event_type: row.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
            tenant: row.try_get(9)?,
            matched_secret: row.try_get::<Option<i64>, _>(10)?.unwrap_or(0) as usize,
        }
    } else {
        Verdict::Rejected {
            status: row.try_get::<Option<i64>, _>(11)?.unwrap_or(0) as u16,
            code: row.try_get::<Option<String>, _>(12)?.unwrap_or_default(),
            message: row.try_get::<Option<String>, _>(13)?.unwrap_or_default(),
        }
    };
    Ok(Delivery {
        seq: row.try_get::<i64, _>(0)? as u64,
        received_at_ms: row.try_get(1)?,
        method: row.try_get(2)?,
        path: row.try_get(3)?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body: Bytes::from(body),
        verdict,
        explain: serde_json::from_str(&explain).unwrap_or_default(),
        answered: row.try_get::<Option<i64>, _>(15)?.map(|s| s as u16),
        forwarded: row.try_get(16)?,
        pinned: row.try_get(17)?,
        replays: row.try_get::<i64, _>(18)? as u32,
        last_replay: row.try_get(19)?,
    })
}

impl Deliveries for DeliveryLog {
    fn list(&self, q: DeliveryQuery) -> BoxFuture<'_, Result<Vec<Delivery>, DeliveryError>> {
        Box::pin(async move {
            let before = q.before.map_or(i64::MAX, |b| b as i64);
            let verified = q.verified.map(i64::from);
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM listen_deliveries
                 WHERE seq < ?1 AND (?2 = 0 OR pinned = 1) AND (?3 IS NULL OR ok = ?3)
                 ORDER BY seq DESC LIMIT ?4"
            ))
            .bind(before)
            .bind(q.pinned_only)
            .bind(verified)
            .bind(q.limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
            rows.iter()
                .map(delivery)
                .collect::<Result<_, _>>()
                .map_err(failed)
        })
    }

    fn get(&self, seq: u64) -> BoxFuture<'_, Result<Option<Delivery>, DeliveryError>> {
        Box::pin(DeliveryLog::get(self, seq))
    }

    fn set_pinned(&self, seq: u64, pinned: bool) -> BoxFuture<'_, Result<bool, DeliveryError>> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE listen_deliveries SET pinned = ?2 WHERE seq = ?1")
                .bind(seq as i64)
                .bind(pinned)
                .execute(&self.pool)
                .await
                .map_err(failed)?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn replay_target(&self) -> Option<String> {
        self.replay.as_ref().map(|(target, _)| target.clone())
    }

    fn replay(&self, seq: u64) -> BoxFuture<'_, Result<String, DeliveryError>> {
        Box::pin(async move {
            let Some((_, send)) = &self.replay else {
                return Err(DeliveryError(
                    "this receiver forwards nowhere: start it with --forward-to URL".into(),
                ));
            };
            let d = DeliveryLog::get(self, seq)
                .await?
                .ok_or_else(|| DeliveryError(format!("no delivery #{seq}")))?;
            if !matches!(d.verdict, Verdict::Verified { .. }) {
                return Err(DeliveryError(format!(
                    "delivery #{seq} did not verify: only a verified delivery is replayed"
                )));
            }
            let outcome = match send(d.body).await {
                Ok(outcome) => outcome,
                Err(e) => format!("failed: {e}"),
            };
            let recorded = outcome.clone();
            sqlx::query(
                "UPDATE listen_deliveries SET replays = replays + 1, last_replay = ?2
                 WHERE seq = ?1",
            )
            .bind(seq as i64)
            .bind(recorded)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &str, ok: bool) -> Delivery {
        Delivery {
            seq: 0,
            received_at_ms: 1_700_000_000_000,
            method: "POST".into(),
            path: "/hook".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_owned()),
            verdict: if ok {
                Verdict::Verified {
                    id: "evt_1".into(),
                    event_type: "plugipay.invoice.paid.v1".into(),
                    tenant: None,
                    matched_secret: 1,
                }
            } else {
                Verdict::Rejected {
                    status: 400,
                    code: "signature_invalid".into(),
                    message: "no signature matched".into(),
                }
            },
            explain: vec!["a line".into()],
            answered: Some(204),
            forwarded: None,
            pinned: false,
            replays: 0,
            last_replay: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_lists_pins_and_forgets_the_oldest_unpinned() {
        let dir = TempDir::new("plugipay-cli-deliveries-test").unwrap();
        let log = DeliveryLog::open(&dir.path().join("db"), None)
            .await
            .unwrap();
        let first = log.record(delivery("{\"a\":1}", true)).await.unwrap();
        let second = log.record(delivery("not json", false)).await.unwrap();
        assert_eq!((first, second), (1, 2));
        let back = log.get(first).await.unwrap().unwrap();
        let mut expected = delivery("{\"a\":1}", true);
        expected.seq = 1;
        assert_eq!(back, expected, "a delivery comes back as recorded");
        assert!(log.set_pinned(first, true).await.unwrap());
        assert!(!log.set_pinned(99, true).await.unwrap());
        for _ in 0..KEEP {
            log.record(delivery("{}", true)).await.unwrap();
        }
        assert!(log.get(first).await.unwrap().is_some(), "pinned: kept");
        assert!(
            log.get(second).await.unwrap().is_none(),
            "the oldest unpinned went"
        );
        let all = log
            .list(DeliveryQuery {
                limit: 5000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), KEEP + 1);
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        let pinned = log
            .list(DeliveryQuery {
                pinned_only: true,
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(pinned.iter().map(|d| d.seq).collect::<Vec<_>>(), [first]);
        let err = log.replay(first).await.unwrap_err();
        assert!(err.0.contains("--forward-to"), "{err}");
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists(), "the directory goes with its guard");
    }

    /// A directory left by a process that is gone is removed at the next
    /// start; one whose owner lives, one without an owner file and one of
    /// another name stay.
    #[test]
    fn the_directories_of_dead_owners_are_swept() {
        let root = TempDir::new("plugipay-cli-sweep-root").unwrap();
        let make = |name: &str, owner: Option<&str>| {
            let p = root.path().join(name);
            std::fs::create_dir(&p).unwrap();
            if let Some(o) = owner {
                std::fs::write(p.join(OWNER_FILE), o).unwrap();
            }
            std::fs::write(p.join("listen.sqlite3"), b"x").unwrap();
            p
        };
        let dead = make("plugipay-listen-4000001-00112233aabbccdd", Some("4000001"));
        let alive = make("plugipay-listen-4000002-00112233aabbccdd", Some("4000002"));
        let no_owner = make("plugipay-listen-4000003-00112233aabbccdd", None);
        let other = make("plugipay-other-4000001-00112233aabbccdd", Some("4000001"));
        let n = sweep_in(root.path(), "plugipay-listen", |pid| pid == 4000002);
        assert_eq!(n, 1);
        assert!(!dead.exists(), "a dead owner's directory goes");
        assert!(alive.exists() && no_owner.exists() && other.exists());

        // A run's own directory has the name and the owner file the sweep
        // looks for, and is the owner's alone.
        let own = TempDir::new("plugipay-cli-sweep-own").unwrap();
        let name = own.path().file_name().unwrap().to_str().unwrap().to_owned();
        let pid = std::process::id().to_string();
        let random = name
            .strip_prefix(&format!("plugipay-cli-sweep-own-{pid}-"))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            std::fs::read_to_string(own.path().join(OWNER_FILE)).unwrap(),
            pid
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(own.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let copy = make(&name, Some(&pid));
        assert_eq!(
            sweep_in(root.path(), "plugipay-cli-sweep-own", |_| false),
            0,
            "its own pid"
        );
        assert!(copy.exists());
    }

    /// Bodies are capped by bytes too: the oldest unpinned go first, a
    /// pinned one stays, the newest stays whatever its size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_oldest_unpinned_go_when_the_bodies_pass_the_byte_cap() {
        let dir = TempDir::new("plugipay-cli-deliveries-bytes").unwrap();
        let log = DeliveryLog::open(&dir.path().join("db"), None)
            .await
            .unwrap()
            .keeping(100, 10_000);
        let kib = |c: char| c.to_string().repeat(4000);
        let pinned = log.record(delivery(&kib('p'), true)).await.unwrap();
        assert!(log.set_pinned(pinned, true).await.unwrap());
        let mut seqs = Vec::new();
        for c in ['a', 'b', 'c', 'd'] {
            seqs.push(log.record(delivery(&kib(c), true)).await.unwrap());
        }
        let kept: Vec<u64> = log
            .list(DeliveryQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect();
        // 4,000 bytes each: two unpinned fit in 10,000; the pinned one
        // does not count.
        assert_eq!(kept, [seqs[3], seqs[2], pinned]);
        let huge = log
            .record(delivery(&"h".repeat(50_000), true))
            .await
            .unwrap();
        let kept: Vec<u64> = log
            .list(DeliveryQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect();
        assert_eq!(kept, [huge, pinned], "the newest stays, alone over the cap");
    }
}
