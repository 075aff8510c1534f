//! A test bed per case: a fresh inbox on one backend, a ledger its
//! transactional handlers write to, and a fault injector that makes one
//! transition fail, stall or lose its connection for a window of time.
//!
//! - SQL: triggers on the inbox table, one per transition (claim, done,
//!   fail, extend) and a deferred one on the ledger (commit), active while a
//!   control row says so: `error` raises, `delay` outlasts the store timeout
//!   (`pg_sleep`; on SQLite a cross join that burns CPU), `drop` makes
//!   PostgreSQL terminate the connection running the statement.
//! - Redis: a server of the suite's own, reached through the shared test
//!   proxy: `error` is `maxmemory 1` (every write refused, as a full disk
//!   refuses), `delay` the proxy gone silent, `drop` the proxy closing every
//!   connection. Redis has no triggers, so the fault is armed at the moment
//!   the transition comes next (the runner's hooks).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugipay_webhook_conformance::plumbing::{server_url, through, Mode, Proxy};
use plugipay_webhook_dispatch::inbox::{InboxBackend, PostgresInbox, RedisInbox, SqliteInbox};
use plugipay_webhook_dispatch::ClaimToken;

/// One store call's bound in the suite: faults outlast it.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_millis(400);
/// How long an injected delay stalls a statement.
pub(crate) const DELAY: Duration = Duration::from_millis(1000);
/// How long a fault stays armed.
pub(crate) const WINDOW: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
    Redis,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
        }
    }

    pub(crate) fn transactional(self) -> bool {
        self != Kind::Redis
    }
}

/// Where a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    Claim,
    Done,
    Fail,
    Extend,
    Commit,
}

impl At {
    pub(crate) fn name(self) -> &'static str {
        match self {
            At::Claim => "claim",
            At::Done => "done",
            At::Fail => "fail",
            At::Extend => "extend",
            At::Commit => "commit",
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Error,
    Delay,
    Drop,
}

impl Fault {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Error => "error",
            Fault::Delay => "delay",
            Fault::Drop => "drop",
        }
    }
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}_{}", &ClaimToken::new().as_str()[..12])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A Redis server of the suite's own (its configuration is changed to
/// inject faults, which must not reach other tests), and a proxy in front.
pub(crate) struct OwnRedis {
    child: std::process::Child,
    pub(crate) url: String,
    pub(crate) proxy: Proxy,
    pub(crate) via: String,
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OwnRedis {
    pub(crate) fn start() -> OwnRedis {
        let port = plugipay_webhook_conformance::plumbing::free_port();
        let dir = std::env::temp_dir().join(unique("plugipay-suite-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by scripts/services)");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        plugipay_webhook_conformance::plumbing::wait_until_listening(addr);
        let url = format!("redis://127.0.0.1:{port}/");
        let proxy = Proxy::start(addr);
        let (via, _) = through(&url, proxy.addr);
        OwnRedis {
            child,
            url,
            proxy,
            via,
        }
    }

    /// Ends any fault: the proxy forwards, writes are allowed.
    pub(crate) async fn heal(&self) {
        self.proxy.set(Mode::Up);
        let mut admin = self.admin().await;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg("0")
            .query_async(&mut admin)
            .await
            .expect("redis admin");
    }

    pub(crate) async fn admin(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("redis admin connection")
    }
}

/// One case's inbox and everything around it.
pub(crate) struct Bed {
    pub(crate) kind: Kind,
    pub(crate) backend: InboxBackend,
    /// The inbox table (SQL) or key prefix (Redis).
    pub(crate) name: String,
    pub(crate) ledger: String,
    sqlite: Option<PathBuf>,
    pg: Option<tokio_postgres::Client>,
    redis: Option<Arc<OwnRedis>>,
    armed: Arc<AtomicBool>,
    armed_at: Mutex<Option<Instant>>,
    fault: Mutex<Option<(Fault, At)>>,
}

impl Bed {
    /// A fresh inbox on `kind` (`None` when that server is not configured).
    pub(crate) async fn fresh(kind: Kind, redis: Option<Arc<OwnRedis>>) -> Option<Bed> {
        let name = unique("suite");
        let ledger = format!("{name}_ledger");
        let (mut sqlite, mut pg) = (None, None);
        let backend: InboxBackend = match kind {
            Kind::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("plugipay-suite-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("{name}.sqlite3"));
                let b = SqliteInbox::open_with(&path, &name, STORE_TIMEOUT)
                    .await
                    .expect("sqlite");
                sqlite = Some(path);
                b.into()
            }
            Kind::Postgres => {
                let url = server_url("PLUGIPAY_TEST_POSTGRES_URL")?;
                let b = PostgresInbox::connect_with(&url, &name, STORE_TIMEOUT)
                    .await
                    .expect("postgres");
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("postgres admin");
                tokio::spawn(conn);
                pg = Some(client);
                b.into()
            }
            Kind::Redis => {
                let own = redis.as_ref()?;
                // A previous case's fault window may still be open (its
                // healer resets it later): a fresh bed starts healthy.
                // Seen: the model's next plan began within the window and
                // could not even set up ("OOM … maxmemory").
                own.heal().await;
                RedisInbox::connect_with(&own.via, &name, STORE_TIMEOUT)
                    .await
                    .expect("redis")
                    .into()
            }
        };
        let bed = Bed {
            kind,
            backend,
            name,
            ledger,
            sqlite,
            pg,
            redis: if kind == Kind::Redis { redis } else { None },
            armed: Arc::new(AtomicBool::new(false)),
            armed_at: Mutex::new(None),
            fault: Mutex::new(None),
        };
        bed.install_faults().await;
        Some(bed)
    }

    fn sqlite_conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.sqlite.as_ref().expect("sqlite")).unwrap();
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn
    }

    fn pg(&self) -> &tokio_postgres::Client {
        self.pg.as_ref().expect("postgres")
    }

    /// The ledger table and the triggers (inactive until armed).
    async fn install_faults(&self) {
        let (t, l) = (&self.name, &self.ledger);
        match self.kind {
            Kind::Sqlite => {
                let conn = self.sqlite_conn();
                let now = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
                let mut sql = format!(
                    "CREATE TABLE \"{l}\" (event_id TEXT NOT NULL);
                     CREATE TABLE \"{t}_ctl\" (until_ms INTEGER NOT NULL, fault TEXT NOT NULL, at TEXT NOT NULL);
                     INSERT INTO \"{t}_ctl\" VALUES (0, 'none', 'none');
                     CREATE TABLE \"{t}_burn\" (x INTEGER);"
                );
                let conditions = [
                    ("claim", "NEW.state = 'running' AND (OLD.state <> 'running' OR NEW.lease_owner IS NOT OLD.lease_owner)"),
                    ("extend", "NEW.state = 'running' AND OLD.state = 'running' AND NEW.lease_owner IS OLD.lease_owner"),
                    ("done", "NEW.state = 'done' AND OLD.state = 'running'"),
                    ("fail", "OLD.state = 'running' AND NEW.state IN ('pending', 'dead')"),
                ];
                for (at, when) in conditions {
                    sql.push_str(&format!(
                        "CREATE TRIGGER \"{t}_f_{at}\" BEFORE UPDATE ON \"{t}\"
                         WHEN {when} AND (SELECT at FROM \"{t}_ctl\") = '{at}'
                              AND (SELECT until_ms FROM \"{t}_ctl\") > {now}
                         BEGIN
                           SELECT RAISE(ABORT, 'injected fault at {at}') WHERE (SELECT fault FROM \"{t}_ctl\") = 'error';
                           SELECT count(*) FROM \"{t}_burn\" a, \"{t}_burn\" b, \"{t}_burn\" c
                             WHERE (SELECT fault FROM \"{t}_ctl\") = 'delay';
                         END;"
                    ));
                }
                conn.execute_batch(&sql).unwrap();
                calibrate_burn(&conn, t);
            }
            Kind::Postgres => {
                let delay = DELAY.as_secs_f64();
                self.pg()
                    .batch_execute(&format!(
                        "CREATE TABLE \"{l}\" (event_id TEXT NOT NULL);
                         CREATE TABLE \"{t}_ctl\" (until_ms BIGINT NOT NULL, fault TEXT NOT NULL, at TEXT NOT NULL);
                         INSERT INTO \"{t}_ctl\" VALUES (0, 'none', 'none');
                         CREATE FUNCTION \"{t}_fault\"() RETURNS trigger LANGUAGE plpgsql AS $$
                         DECLARE c RECORD; what TEXT;
                         BEGIN
                           SELECT * INTO c FROM \"{t}_ctl\";
                           IF c.until_ms < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT THEN
                             RETURN NEW;
                           END IF;
                           IF TG_TABLE_NAME = '{l}' THEN what := 'commit';
                           ELSIF NEW.state = 'running' AND (OLD.state <> 'running'
                                 OR NEW.lease_owner IS DISTINCT FROM OLD.lease_owner) THEN what := 'claim';
                           ELSIF NEW.state = 'running' AND OLD.state = 'running' THEN what := 'extend';
                           ELSIF NEW.state = 'done' AND OLD.state = 'running' THEN what := 'done';
                           ELSIF OLD.state = 'running' AND NEW.state IN ('pending', 'dead') THEN what := 'fail';
                           ELSE RETURN NEW;
                           END IF;
                           IF what <> c.at THEN RETURN NEW; END IF;
                           IF c.fault = 'error' THEN RAISE EXCEPTION 'injected fault at %', what;
                           ELSIF c.fault = 'delay' THEN PERFORM pg_sleep({delay});
                           ELSIF c.fault = 'drop' THEN PERFORM pg_terminate_backend(pg_backend_pid());
                           END IF;
                           RETURN NEW;
                         END $$;
                         CREATE TRIGGER \"{t}_f\" BEFORE UPDATE ON \"{t}\"
                           FOR EACH ROW EXECUTE FUNCTION \"{t}_fault\"();
                         CREATE CONSTRAINT TRIGGER \"{t}_fc\" AFTER INSERT ON \"{l}\"
                           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \"{t}_fault\"();"
                    ))
                    .await
                    .expect("install faults");
            }
            Kind::Redis => {}
        }
    }

    /// Whether this backend can stage `fault` at `at`.
    pub(crate) fn can(&self, fault: Fault, at: At) -> Result<(), &'static str> {
        match (self.kind, fault, at) {
            (Kind::Sqlite, Fault::Drop, _) => {
                Err("SQLite is in the process: no connection to drop (an I/O error is `error`)")
            }
            (Kind::Sqlite, _, At::Commit) => Err(
                "SQLite's COMMIT cannot be made to fail without a custom VFS; the move to done, \
                 the last statement before it, stands in",
            ),
            (Kind::Redis, _, At::Commit) => Err("Redis has no transaction to commit"),
            _ => Ok(()),
        }
    }

    /// Decides the fault this case injects; SQL arms it now (its triggers
    /// strike only at `at`), Redis when [`strike`](Bed::strike) is called.
    pub(crate) async fn prepare(&self, fault: Fault, at: At) {
        *self.fault.lock().unwrap() = Some((fault, at));
        if self.kind != Kind::Redis {
            self.arm(fault, at).await;
        }
    }

    /// The moment before `at` comes next (in a handler, before it returns):
    /// Redis arms its fault here, once.
    pub(crate) async fn strike(&self, at: At) {
        if self.kind != Kind::Redis {
            return;
        }
        let Some((fault, armed_at)) = *self.fault.lock().unwrap() else {
            return;
        };
        if armed_at != at || self.armed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.arm(fault, at).await;
    }

    /// When the armed fault's window ends (`None`: never armed).
    pub(crate) fn window_end(&self) -> Option<Instant> {
        self.armed_at.lock().unwrap().map(|t| t + WINDOW)
    }

    async fn arm(&self, fault: Fault, at: At) {
        *self.armed_at.lock().unwrap() = Some(Instant::now());
        let until = now_ms() + i64::try_from(WINDOW.as_millis()).unwrap();
        let t = &self.name;
        match self.kind {
            Kind::Sqlite => {
                let conn = self.sqlite_conn();
                conn.execute(
                    &format!("UPDATE \"{t}_ctl\" SET until_ms = ?1, fault = ?2, at = ?3"),
                    rusqlite::params![until, fault.name(), at.name()],
                )
                .unwrap();
            }
            Kind::Postgres => {
                self.pg()
                    .execute(
                        &format!("UPDATE \"{t}_ctl\" SET until_ms = $1, fault = $2, at = $3"),
                        &[&until, &fault.name(), &at.name()],
                    )
                    .await
                    .unwrap();
            }
            Kind::Redis => {
                let own = self.redis.clone().expect("redis");
                match fault {
                    Fault::Error => {
                        let mut admin = own.admin().await;
                        let _: () = redis::cmd("CONFIG")
                            .arg("SET")
                            .arg("maxmemory")
                            .arg("1")
                            .query_async(&mut admin)
                            .await
                            .unwrap();
                    }
                    Fault::Delay => own.proxy.set(Mode::Silent),
                    Fault::Drop => own.proxy.set(Mode::Down),
                }
                tokio::spawn(async move {
                    tokio::time::sleep(WINDOW).await;
                    own.heal().await;
                });
            }
        }
    }

    /// Ledger rows per event id (SQL).
    /// PostgreSQL: the scans of the inbox table so far (index and
    /// sequential), from the server's statistics; `None` on other backends.
    pub(crate) async fn table_scans(&self) -> Option<i64> {
        let pg = self.pg.as_ref()?;
        pg.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .ok()?;
        pg.query_one(
            "SELECT COALESCE(idx_scan, 0) + COALESCE(seq_scan, 0) FROM pg_stat_user_tables
             WHERE relname = $1",
            &[&self.name],
        )
        .await
        .ok()
        .map(|r| r.get(0))
    }

    /// PostgreSQL: the rows and index entries read from the inbox table so
    /// far (sequential scans' rows, every index's entries), from the
    /// server's statistics; `None` on other backends.
    pub(crate) async fn tuples_read(&self) -> Option<i64> {
        let pg = self.pg.as_ref()?;
        pg.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .ok()?;
        pg.query_one(
            "SELECT COALESCE(t.seq_tup_read, 0)
                  + COALESCE((SELECT SUM(i.idx_tup_read) FROM pg_stat_user_indexes i
                              WHERE i.relid = t.relid), 0)::BIGINT
             FROM pg_stat_user_tables t WHERE t.relname = $1",
            &[&self.name],
        )
        .await
        .ok()
        .map(|r| r.get(0))
    }

    /// PostgreSQL: each index of the inbox table with its scans and the
    /// entries they read so far (for a failure's message).
    pub(crate) async fn index_reads(&self) -> String {
        let Some(pg) = self.pg.as_ref() else {
            return String::new();
        };
        let rows = pg
            .query(
                "SELECT indexrelname::TEXT, idx_scan, idx_tup_read FROM pg_stat_user_indexes
                 WHERE relname = $1 AND idx_scan > 0 ORDER BY idx_tup_read DESC",
                &[&self.name],
            )
            .await
            .unwrap_or_default();
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                let name = name
                    .strip_prefix(self.name.as_str())
                    .unwrap_or(&name)
                    .to_owned();
                format!(
                    "{name}: {} scans, {} read",
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// PostgreSQL: `ANALYZE` the inbox table now (statistics of this moment).
    pub(crate) async fn analyze(&self) {
        if let Some(pg) = self.pg.as_ref() {
            pg.batch_execute(&format!("ANALYZE \"{}\"", self.name))
                .await
                .unwrap();
        }
    }

    pub(crate) async fn ledger(&self) -> HashMap<String, i64> {
        let l = &self.ledger;
        let sql = format!("SELECT event_id, COUNT(*) FROM \"{l}\" GROUP BY event_id");
        match self.kind {
            Kind::Sqlite => {
                let conn = self.sqlite_conn();
                let mut q = conn.prepare(&sql).unwrap();
                q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Kind::Postgres => self
                .pg()
                .query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Kind::Redis => HashMap::new(),
        }
    }

    /// Gives the lease of event `id` to someone else, as if it had lapsed
    /// and another worker had taken it.
    pub(crate) async fn steal_lease(&self, id: &str) {
        let t = &self.name;
        match self.kind {
            Kind::Sqlite => {
                self.sqlite_conn()
                    .execute(
                        &format!("UPDATE \"{t}\" SET lease_owner = 'thief' WHERE event_id = ?1"),
                        [id],
                    )
                    .unwrap();
            }
            Kind::Postgres => {
                self.pg()
                    .execute(
                        &format!("UPDATE \"{t}\" SET lease_owner = 'thief' WHERE event_id = $1"),
                        &[&id],
                    )
                    .await
                    .unwrap();
            }
            Kind::Redis => {
                let own = self.redis.clone().expect("redis");
                let mut admin = own.admin().await;
                let key = format!("{{{t}}}:ev:{}:{id}:{}", id.len(), crate::PAID);
                let _: () = redis::cmd("HSET")
                    .arg(&key)
                    .arg("owner")
                    .arg("thief")
                    .query_async(&mut admin)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Sizes the burn table so the triple cross join takes at least
/// `DELAY` on this machine.
fn calibrate_burn(conn: &rusqlite::Connection, t: &str) {
    let mut rows = 40i64;
    loop {
        conn.execute_batch(&format!(
            "DELETE FROM \"{t}_burn\";
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
             INSERT INTO \"{t}_burn\" SELECT x FROM c;"
        ))
        .unwrap();
        let started = Instant::now();
        let _: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM \"{t}_burn\" a, \"{t}_burn\" b, \"{t}_burn\" c"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let took = started.elapsed();
        if took >= DELAY {
            return;
        }
        // Cubic in rows: scale towards the target, at least by a tenth.
        let ratio = (DELAY.as_secs_f64() / took.as_secs_f64().max(0.001)).cbrt();
        rows = ((rows as f64) * ratio.clamp(1.1, 4.0)).ceil() as i64;
    }
}
