//! SQLite connections, each on a thread of its own: rusqlite blocks (on the
//! disk, and for up to the busy timeout on another process's lock), so no
//! statement ever runs on the async runtime's threads. A connection's jobs
//! run one after the other, in the order they were sent — so a rollback
//! sent after a statement that timed out runs right after it, before
//! anything else can use the connection.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{bounded, StoreError};
use crate::sql::{Dialect, Schema};

type Job = Box<dyn FnOnce(&mut Slot) + Send>;

/// How a connection is opened.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) path: PathBuf,
    /// SQLite's busy timeout: how long a statement waits for another
    /// connection's lock.
    pub(crate) busy: Duration,
    /// `synchronous=FULL` (the inbox: a commit survives a power cut) rather
    /// than `NORMAL` (the de-duplication store: a lost record only runs a
    /// handler again).
    pub(crate) full_sync: bool,
    /// Create the file when it does not exist.
    pub(crate) create: bool,
    /// `sqlite inbox`, `sqlite store`: how errors name it.
    pub(crate) what: String,
}

impl Setup {
    fn open(&self) -> Result<Connection, StoreError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if self.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if !self.path.exists() {
            return Err(StoreError::new(format!(
                "{}: {} does not exist",
                self.what,
                self.path.display()
            )));
        }
        let e = |step: &str| {
            let what = format!("{} {step} {}", self.what, self.path.display());
            move |err: rusqlite::Error| StoreError::caused(&what, &err)
        };
        let conn = Connection::open_with_flags(&self.path, flags).map_err(e("open"))?;
        conn.busy_timeout(self.busy).map_err(e("busy_timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(e("WAL"))?;
        let sync = if self.full_sync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(e("synchronous"))?;
        Ok(conn)
    }
}

/// The thread's side: the connection, reopened when one had to be thrown
/// away.
pub(crate) struct Slot {
    conn: Option<Connection>,
    setup: Setup,
}

impl Slot {
    /// The connection, opened again if the last one was thrown away.
    pub(crate) fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(self.setup.open()?);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Leaves the connection outside any transaction: rolls back, and if it
    /// is still inside one, throws it away (the next job opens another).
    pub(crate) fn settle(&mut self) {
        if let Some(conn) = &self.conn {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            if !conn.is_autocommit() {
                tracing::warn!(
                    "sqlite connection still inside a transaction after ROLLBACK: discarded"
                );
                self.conn = None;
            }
        }
    }

    /// Whether the connection is inside a transaction.
    pub(crate) fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_autocommit())
    }

    /// The error of `what` in this connection's terms.
    pub(crate) fn err(&self, what: &str, e: &rusqlite::Error) -> StoreError {
        StoreError::caused(format!("{} {what}", self.setup.what), e)
    }
}

/// A connection on its own thread. Cheap to clone (a channel sender); the
/// thread ends when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct SqliteConn {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
    what: String,
}

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConn")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl SqliteConn {
    /// Opens a connection, runs `init` on it (the schema: on the calling
    /// thread, at start-up), and moves it to a thread of its own; fails now
    /// if it cannot be opened. Every call is bounded by `timeout`.
    pub(crate) fn open(
        setup: Setup,
        timeout: Duration,
        init: impl FnOnce(&Connection) -> Result<(), StoreError>,
    ) -> Result<SqliteConn, StoreError> {
        let first = setup.open()?;
        init(&first)?;
        let what = setup.what.clone();
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("plugipay-sqlite".into())
            .spawn(move || {
                let mut slot = Slot {
                    conn: Some(first),
                    setup,
                };
                while let Ok(job) = inbox.recv() {
                    let ran =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut slot)));
                    if ran.is_err() {
                        // Whatever it left half done is undone.
                        slot.settle();
                    }
                }
            })
            .map_err(|e| StoreError::caused(format!("{what}: a thread for the connection"), &e))?;
        Ok(SqliteConn {
            jobs,
            timeout,
            what,
        })
    }

    /// Runs `f` on the connection's thread and waits for it, without a
    /// bound (a handler's statements: the handler's timeout bounds them).
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Slot) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |slot| {
                let _ = tx.send(f(slot));
            }))
            .map_err(|_| {
                StoreError::new(format!("{}: the connection's thread ended", self.what))
            })?;
        rx.await
            .map_err(|_| StoreError::new(format!("{}: the statement panicked", self.what)))
    }

    /// Runs `f` on the connection's thread, bounded by the store timeout
    /// (the job itself still runs to its end on the thread).
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Slot) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        bounded(self.timeout, &format!("{} {what}", self.what), async {
            self.run(f).await?
        })
        .await
    }

    /// Runs `f` on the connection, bounded: a statement's error is named
    /// after `what`.
    pub(crate) async fn with<R: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.call(what, move |slot| {
            let conn = slot.conn()?;
            f(conn).map_err(|e| slot.err(what, &e))
        })
        .await
    }

    /// Queues `f` without waiting for it: it runs before any job sent after.
    pub(crate) fn send(&self, f: impl FnOnce(&mut Slot) + Send + 'static) {
        let _ = self.jobs.send(Box::new(f));
    }

    /// Queues a rollback (or, if that fails, throwing the connection away):
    /// whatever comes next finds the connection outside any transaction.
    pub(crate) fn settle(&self) {
        self.send(Slot::settle);
    }
}

/// Brings `schema` to its current version, in one `BEGIN IMMEDIATE`
/// transaction (processes opening the file together wait for each other).
pub(crate) fn ensure_schema(
    conn: &Connection,
    schema: &Schema,
    what: &str,
) -> Result<(), StoreError> {
    let e = |step: &str| {
        let what = format!("{what} {step}");
        move |err: rusqlite::Error| StoreError::caused(&what, &err)
    };
    let (bookkeeping, read, record) = Schema::bookkeeping(Dialect::Sqlite);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(e("schema"))?;
    let result = (|| {
        conn.execute_batch(&bookkeeping).map_err(e("schema"))?;
        let recorded: Option<i64> = conn
            .query_row(&read, [&schema.table], |r| r.get(0))
            .map(Some)
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .map_err(e("schema"))?;
        let exists: i64 = conn
            .query_row(Dialect::Sqlite.table_exists(), [&schema.table], |r| {
                r.get(0)
            })
            .map_err(e("schema"))?;
        let plan = schema.plan(recorded, exists > 0)?;
        if plan.is_empty() && recorded.is_some() {
            return Ok(());
        }
        for statements in plan {
            conn.execute_batch(statements)
                .map_err(e("schema upgrade"))?;
        }
        conn.execute(&record, rusqlite::params![schema.table, schema.version])
            .map_err(e("schema"))?;
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(e("schema"))?;
    result
}

/// A path of `sqlite://PATH` as a `Path`.
pub(crate) fn setup(
    path: &Path,
    busy: Duration,
    full_sync: bool,
    create: bool,
    what: &str,
) -> Setup {
    Setup {
        path: path.to_path_buf(),
        busy,
        full_sync,
        create,
        what: what.to_owned(),
    }
}
