//! The database: a SQLite file (the embedded default) or a PostgreSQL server.
//!
//! erpos's own tables come from `migrations/`; record tables are created from definitions.
//! Everything runs inside transactions handed out here, and every value is a text parameter
//! cast by the database (see `sql`), which gives one code path for both dialects while the
//! columns keep their real types. This module must not know about DataItems.
//!
//! Storage faults (a read-only or failing disk, a database that went read-only, a lost
//! server) are noticed here, on every error that passes ([`Faults`]): a pooled connection
//! opened before the last fault is never handed out again (SQLite keeps a connection it
//! opened while the file was read-only read-only for good, PostgreSQL keeps a session's
//! read-only default), a write that found its connection read-only is retried once on a
//! fresh one, the API answers 503 while the fault lasts, and `/healthz` says what is wrong.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use erpos_design::Dialect;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite, Transaction};

use crate::error::KernelError;
use crate::sql::Sql;

/// A row read back: every selected column as text (or NULL), in select order.
pub type Row = Vec<Option<String>>;

/// A connection pool to the configured database, with the record of its faults.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite file in WAL mode.
    Sqlite(SqlitePool, Arc<Faults>),
    /// A PostgreSQL database.
    Postgres(PgPool, Arc<Faults>),
}

/// An open transaction. Dropping it without `commit` rolls it back, so an error anywhere in
/// a request leaves the database unchanged.
pub enum Tx {
    /// A SQLite transaction (`BEGIN IMMEDIATE`: writers queue instead of failing mid-way).
    Sqlite(Transaction<'static, Sqlite>, Arc<Faults>),
    /// A PostgreSQL transaction.
    Postgres(Transaction<'static, Postgres>, Arc<Faults>),
}

/// Whether a database error means storage itself is failing (rather than the statement
/// being refused): SQLite's read-only, I/O, full, corrupt, cannot-open, permission and
/// not-a-database codes; PostgreSQL's read-only transaction (a read-only default or a hot
/// standby), connection, resource (disk full), shutdown and system errors; a lost
/// connection. Such errors are answered 503 and recycle the connections that met them.
pub fn is_fault(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(code) = sqlite_code(e) {
                // SQLite: the primary code is the low byte of the extended one.
                return matches!(code & 0xff, 3 | 8 | 10 | 11 | 13 | 14 | 26);
            }
            let Some(code) = db.code() else { return false };
            code == "25006"
                || ["08", "53", "57P", "58"]
                    .iter()
                    .any(|p| code.starts_with(p))
        }
        _ => false,
    }
}

/// The extended result code of a SQLite error (None for any other error).
pub fn sqlite_code(e: &sqlx::Error) -> Option<i64> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::sqlite::SqliteError>()
            .and_then(sqlx::error::DatabaseError::code)
            .and_then(|c| c.parse().ok()),
        _ => None,
    }
}

/// Whether a SQLite error is "attempt to write a readonly database" (SQLITE_READONLY,
/// code 8): the connection was opened while the file could not be written, and nothing of
/// the statement ran. Only then is a write retried on a fresh connection.
fn is_readonly_connection(e: &sqlx::Error) -> bool {
    sqlite_code(e) == Some(8)
}

/// What a node knows about its storage's faults: when the last one was met, when storage
/// healed (the first commit after it), what it was, and how many there were.
///
/// From a fault until the next commit succeeds, every pooled connection is suspect (SQLite
/// opens a connection read-only for good while its file cannot be written; PostgreSQL
/// keeps a session's read-only default): none is handed out or taken back, each request
/// gets a fresh one. Once a commit succeeds, connections opened before it are closed when
/// next met, so none opened during the fault outlives it.
#[derive(Debug)]
pub struct Faults {
    /// When this record started (connection ages are compared against it).
    base: Instant,
    /// Milliseconds after `base` of the last fault, plus one (0: none yet).
    last: AtomicU64,
    /// Milliseconds after `base` of the first commit after the last fault, plus one (0:
    /// not healed since; a value below `last` means the fault may be going on).
    healed: AtomicU64,
    /// The number of faults met.
    count: AtomicU64,
    /// Connections closed because they were opened before a fault.
    recycled: AtomicU64,
    /// Writes committed (a failed probe is stale once one succeeds).
    commits: AtomicU64,
    /// The last fault: when (RFC 3339) and what.
    last_error: std::sync::Mutex<Option<(String, String)>>,
    /// The last write probe and when it ran: probes are shared for a second, so polling
    /// `/healthz` (which needs no credentials) cannot open connection after connection.
    probe: tokio::sync::Mutex<Option<Probe>>,
}

/// A write probe's result, kept for a second: a success until a fault is met, a failure
/// until a write commits.
#[derive(Debug)]
struct Probe {
    at: Instant,
    /// The number of faults met when it ran.
    faults: u64,
    /// The number of commits when it ran.
    commits: u64,
    result: Result<(), String>,
}

/// A storage fault as `/healthz` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultReport {
    /// Faults met since the node started.
    pub faults: u64,
    /// Pooled connections closed because they were opened before a fault.
    pub recycled_connections: u64,
    /// When the last fault was met (RFC 3339), if any.
    pub last_fault_at: Option<String>,
    /// What it was.
    pub last_fault: Option<String>,
    /// Seconds since the last fault.
    pub seconds_since_last_fault: Option<u64>,
}

impl Faults {
    fn new() -> Arc<Faults> {
        Arc::new(Faults {
            base: Instant::now(),
            last: AtomicU64::new(0),
            healed: AtomicU64::new(0),
            count: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
            probe: tokio::sync::Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records `e` if it is a storage fault; returns it as the kernel's error.
    pub fn note(&self, e: sqlx::Error) -> KernelError {
        if is_fault(&e) {
            self.last.store(self.now_ms() + 1, Ordering::SeqCst);
            self.count.fetch_add(1, Ordering::SeqCst);
            let at = erpos_design::value::format_datetime(&chrono::Utc::now());
            tracing::error!(error = %e, "storage fault: pooled connections are recycled until a commit succeeds");
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some((at, e.to_string()));
            }
        }
        KernelError::Database(e)
    }

    /// Counts a committed write; the first after a fault marks storage healed.
    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        let last = self.last.load(Ordering::SeqCst);
        if last > 0 && self.healed.load(Ordering::SeqCst) < last {
            self.healed.store(self.now_ms() + 1, Ordering::SeqCst);
        }
    }

    /// Whether a connection of this age may be poisoned and is closed instead of used: any
    /// connection while a fault may be going on, else one opened before storage healed.
    fn condemns(&self, age: Duration) -> bool {
        let last = self.last.load(Ordering::SeqCst);
        if last == 0 {
            return false;
        }
        let healed = self.healed.load(Ordering::SeqCst);
        let boundary = if healed >= last { healed } else { u64::MAX };
        let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        let opened = self.now_ms().saturating_sub(age) + 1;
        let condemned = opened <= boundary;
        if condemned {
            self.recycled.fetch_add(1, Ordering::SeqCst);
        }
        condemned
    }

    /// The record as `/healthz` shows it.
    pub fn report(&self) -> FaultReport {
        let last = self.last.load(Ordering::SeqCst);
        let (at, what) = self.last_error.lock().ok().and_then(|l| l.clone()).unzip();
        FaultReport {
            faults: self.count.load(Ordering::SeqCst),
            recycled_connections: self.recycled.load(Ordering::SeqCst),
            last_fault_at: at,
            last_fault: what,
            seconds_since_last_fault: (last > 0)
                .then(|| self.now_ms().saturating_sub(last - 1) / 1000),
        }
    }
}

/// What a pool hook answers: whether to keep the connection.
type Keep<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// The pool hook that closes, instead of handing out or taking back, a connection that may
/// be poisoned (see [`Faults`]).
fn keep_unless_condemned<C>(
    faults: &Arc<Faults>,
) -> impl for<'c> Fn(&'c mut C, sqlx::pool::PoolConnectionMetadata) -> Keep<'c> + Send + Sync + 'static
where
    C: Send + 'static,
{
    let faults = faults.clone();
    move |_conn, meta| {
        let keep = !faults.condemns(meta.age);
        Box::pin(std::future::ready(Ok(keep)))
    }
}

impl Db {
    /// Connects to `url`: `postgres://…` selects PostgreSQL; `sqlite:PATH` or a plain path
    /// selects a SQLite file, created when missing.
    pub async fn connect(url: &str) -> Result<Db, KernelError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?
                .application_name("erpos")
                .options([("timezone", "UTC")]);
            let faults = Faults::new();
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .before_acquire(keep_unless_condemned(&faults))
                .after_release(keep_unless_condemned(&faults))
                .connect_with(options)
                .await?;
            return Ok(Db::Postgres(pool, faults));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        // WAL with synchronous=NORMAL: a committed transaction survives a crash of the
        // process (kill -9); only an OS crash or power cut can lose the last commits.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let faults = Faults::new();
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .before_acquire(keep_unless_condemned(&faults))
            .after_release(keep_unless_condemned(&faults))
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool, faults))
    }

    /// The record of this database's faults.
    pub fn faults(&self) -> &Arc<Faults> {
        match self {
            Db::Sqlite(_, f) | Db::Postgres(_, f) => f,
        }
    }

    /// The SQLite pool, for benches that compare erpos with raw sqlx on the same file.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite(pool, _) => Some(pool),
            Db::Postgres(..) => None,
        }
    }

    /// Checks that the database can be written now, on a fresh connection (not a pooled
    /// one that may predate a fault), by committing a write to the one-row `health_probe`
    /// table. The error is a sentence for `/healthz`; a fault found is recorded like any
    /// other. Probes are shared for a second (unless a fault is met meanwhile), so polling
    /// cannot open connection after connection.
    pub async fn probe_write(&self) -> Result<(), String> {
        let faults = self.faults().clone();
        let mut last = faults.probe.lock().await;
        let (count, commits) = (
            faults.count.load(Ordering::SeqCst),
            faults.commits.load(Ordering::SeqCst),
        );
        if let Some(p) = &*last
            && p.at.elapsed() < Duration::from_secs(1)
            && match p.result {
                Ok(()) => p.faults == count,
                Err(_) => p.commits == commits,
            }
        {
            return p.result.clone();
        }
        let result = self.probe_write_now().await;
        *last = Some(Probe {
            at: Instant::now(),
            faults: faults.count.load(Ordering::SeqCst),
            commits: faults.commits.load(Ordering::SeqCst),
            result: result.clone(),
        });
        result
    }

    async fn probe_write_now(&self) -> Result<(), String> {
        use sqlx::Connection as _;
        let faults = self.faults().clone();
        let fail = |e: sqlx::Error| {
            let text = e.to_string();
            faults.note(e);
            text
        };
        // A real commit: taking a lock alone would pass on a disk that takes no writes.
        let now = chrono::Utc::now().timestamp_millis();
        const PROBE: &str = "INSERT INTO health_probe (id, at_ms) VALUES (1, {}) \
                             ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms";
        match self {
            Db::Sqlite(pool, _) => {
                let options = pool.connect_options();
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .map_err(fail)?;
                let result = sqlx::query(AssertSqlSafe(PROBE.replace("{}", "?1")))
                    .bind(now)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                result.map(|_| faults.committed()).map_err(fail)
            }
            Db::Postgres(pool, _) => {
                let options = pool.connect_options();
                let mut conn = sqlx::PgConnection::connect_with(&options)
                    .await
                    .map_err(fail)?;
                let result = sqlx::query(AssertSqlSafe(PROBE.replace("{}", "$1")))
                    .bind(now)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                result.map(|_| faults.committed()).map_err(fail)
            }
        }
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(..) => Dialect::Sqlite,
            Db::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Applies erpos's own migrations (embedded in the binary from `migrations/`).
    pub async fn migrate(&self) -> Result<(), KernelError> {
        match self {
            Db::Sqlite(pool, _) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool, _) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Opens a transaction. On SQLite, a connection found read-only (opened while the file
    /// could not be written) is closed and the transaction begun once more on a fresh one:
    /// nothing had run yet.
    pub async fn begin(&self) -> Result<Tx, KernelError> {
        Ok(match self {
            Db::Sqlite(pool, faults) => {
                let tx = match pool.begin_with("BEGIN IMMEDIATE").await {
                    Ok(tx) => tx,
                    Err(e) if is_fault(&e) => {
                        faults.note(e);
                        pool.begin_with("BEGIN IMMEDIATE")
                            .await
                            .map_err(|e| faults.note(e))?
                    }
                    Err(e) => return Err(faults.note(e)),
                };
                Tx::Sqlite(tx, faults.clone())
            }
            Db::Postgres(pool, faults) => Tx::Postgres(
                pool.begin().await.map_err(|e| faults.note(e))?,
                faults.clone(),
            ),
        })
    }

    /// Runs one read-only statement outside any explicit transaction.
    pub async fn fetch(&self, sql: Sql) -> Result<Vec<Row>, KernelError> {
        let (text, params) = sql.into_parts();
        match self {
            Db::Sqlite(pool, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await.map_err(|e| faults.note(e))?;
                rows.iter().map(sqlite_row).collect()
            }
            Db::Postgres(pool, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await.map_err(|e| faults.note(e))?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Closes every connection (on shutdown), waiting for those in use.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool, _) => pool.close().await,
            Db::Postgres(pool, _) => pool.close().await,
        }
    }
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Row, KernelError> {
    (0..row.len())
        .map(|i| Ok(row.try_get::<Option<String>, _>(i)?))
        .collect()
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Row, KernelError> {
    (0..row.len())
        .map(|i| Ok(row.try_get::<Option<String>, _>(i)?))
        .collect()
}

impl Tx {
    /// The dialect of this transaction's database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(..) => Dialect::Sqlite,
            Tx::Postgres(..) => Dialect::Postgres,
        }
    }

    /// A new statement for this transaction's dialect.
    pub fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, sql: Sql) -> Result<u64, KernelError> {
        let (text, params) = sql.into_parts();
        Ok(match self {
            Tx::Sqlite(tx, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                q.execute(&mut **tx)
                    .await
                    .map_err(|e| faults.note(e))?
                    .rows_affected()
            }
            Tx::Postgres(tx, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                q.execute(&mut **tx)
                    .await
                    .map_err(|e| faults.note(e))?
                    .rows_affected()
            }
        })
    }

    /// Runs a DDL statement produced by `erpos_design::ddl` (no parameters).
    pub async fn execute_ddl(&mut self, statement: &str) -> Result<(), KernelError> {
        let text = statement.to_owned();
        match self {
            Tx::Sqlite(tx, faults) => {
                sqlx::query(AssertSqlSafe(text))
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| faults.note(e))?;
            }
            Tx::Postgres(tx, faults) => {
                sqlx::query(AssertSqlSafe(text))
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| faults.note(e))?;
            }
        }
        Ok(())
    }

    /// Runs a query; every selected column must be text (use `Sql::col_text`).
    pub async fn fetch(&mut self, sql: Sql) -> Result<Vec<Row>, KernelError> {
        let (text, params) = sql.into_parts();
        match self {
            Tx::Sqlite(tx, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(&mut **tx).await.map_err(|e| faults.note(e))?;
                rows.iter().map(sqlite_row).collect()
            }
            Tx::Postgres(tx, faults) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(&mut **tx).await.map_err(|e| faults.note(e))?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Makes every change of the transaction durable.
    pub async fn commit(self) -> Result<(), KernelError> {
        match self {
            Tx::Sqlite(tx, faults) => {
                tx.commit().await.map_err(|e| faults.note(e))?;
                faults.committed();
            }
            Tx::Postgres(tx, faults) => {
                tx.commit().await.map_err(|e| faults.note(e))?;
                faults.committed();
            }
        }
        Ok(())
    }
}

impl Db {
    /// Runs `statements` as one atomic write. On SQLite, when nothing must be read first,
    /// the whole transaction — `BEGIN IMMEDIATE; …; COMMIT` — goes to the database in a
    /// single round trip (sqlx binds `?` parameters in order across the statements); if any
    /// statement fails, the same connection rolls back before it returns to the pool. On
    /// PostgreSQL it is an ordinary transaction.
    pub async fn write_atomically(&self, statements: Vec<Sql>) -> Result<(), KernelError> {
        match self {
            Db::Sqlite(pool, faults) => {
                let mut text = String::from("BEGIN IMMEDIATE;\n");
                let mut params = Vec::new();
                for sql in statements {
                    let (t, p) = sql.into_parts();
                    text.push_str(&t);
                    text.push_str(";\n");
                    params.extend(p);
                }
                text.push_str("COMMIT;");
                let mut retried = false;
                loop {
                    let mut conn = pool.acquire().await.map_err(|e| faults.note(e))?;
                    let mut q = sqlx::query(AssertSqlSafe(text.clone()));
                    for p in &params {
                        q = q.bind(p.clone());
                    }
                    let Err(e) = q.execute(&mut *conn).await else {
                        faults.committed();
                        return Ok(());
                    };
                    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                        // Either no transaction was open (BEGIN itself failed) or the
                        // connection is broken; never hand a doubtful connection back.
                        conn.close_on_drop();
                    }
                    // A read-only connection refused BEGIN: nothing ran, so the write is
                    // tried once more on a fresh connection (this one is closed).
                    let again = !retried && is_readonly_connection(&e);
                    let error = faults.note(e);
                    if !again {
                        return Err(error);
                    }
                    conn.close_on_drop();
                    retried = true;
                }
            }
            Db::Postgres(..) => {
                let mut tx = self.begin().await?;
                for sql in statements {
                    tx.execute(sql).await?;
                }
                tx.commit().await
            }
        }
    }
}
