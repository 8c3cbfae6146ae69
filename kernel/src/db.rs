//! The database: a SQLite file (the embedded default) or a PostgreSQL server.
//!
//! erpos's own tables come from `migrations/`; record tables are created from definitions.
//! Everything runs inside transactions handed out here, and every value is a text parameter
//! cast by the database (see `sql`), which gives one code path for both dialects while the
//! columns keep their real types. This module must not know about DataItems.

use std::str::FromStr;
use std::time::Duration;

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

/// A connection pool to the configured database.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite file in WAL mode.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// An open transaction. Dropping it without `commit` rolls it back, so an error anywhere in
/// a request leaves the database unchanged.
pub enum Tx {
    /// A SQLite transaction (`BEGIN IMMEDIATE`: writers queue instead of failing mid-way).
    Sqlite(Transaction<'static, Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(Transaction<'static, Postgres>),
}

impl Db {
    /// Connects to `url`: `postgres://…` selects PostgreSQL; `sqlite:PATH` or a plain path
    /// selects a SQLite file, created when missing.
    pub async fn connect(url: &str) -> Result<Db, KernelError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?
                .application_name("erpos")
                .options([("timezone", "UTC")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            return Ok(Db::Postgres(pool));
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Applies erpos's own migrations (embedded in the binary from `migrations/`).
    pub async fn migrate(&self) -> Result<(), KernelError> {
        match self {
            Db::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Opens a transaction.
    pub async fn begin(&self) -> Result<Tx, KernelError> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Runs one read-only statement outside any explicit transaction.
    pub async fn fetch(&self, sql: Sql) -> Result<Vec<Row>, KernelError> {
        let (text, params) = sql.into_parts();
        match self {
            Db::Sqlite(pool) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await?;
                rows.iter().map(sqlite_row).collect()
            }
            Db::Postgres(pool) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(pool).await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Closes every connection (on shutdown), waiting for those in use.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
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
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
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
            Tx::Sqlite(tx) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                q.execute(&mut **tx).await?.rows_affected()
            }
            Tx::Postgres(tx) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                q.execute(&mut **tx).await?.rows_affected()
            }
        })
    }

    /// Runs a DDL statement produced by `erpos_design::ddl` (no parameters).
    pub async fn execute_ddl(&mut self, statement: &str) -> Result<(), KernelError> {
        let text = statement.to_owned();
        match self {
            Tx::Sqlite(tx) => {
                sqlx::query(AssertSqlSafe(text)).execute(&mut **tx).await?;
            }
            Tx::Postgres(tx) => {
                sqlx::query(AssertSqlSafe(text)).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Runs a query; every selected column must be text (use `Sql::col_text`).
    pub async fn fetch(&mut self, sql: Sql) -> Result<Vec<Row>, KernelError> {
        let (text, params) = sql.into_parts();
        match self {
            Tx::Sqlite(tx) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(&mut **tx).await?;
                rows.iter().map(sqlite_row).collect()
            }
            Tx::Postgres(tx) => {
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                let rows = q.fetch_all(&mut **tx).await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Makes every change of the transaction durable.
    pub async fn commit(self) -> Result<(), KernelError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
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
            Db::Sqlite(pool) => {
                let mut text = String::from("BEGIN IMMEDIATE;\n");
                let mut params = Vec::new();
                for sql in statements {
                    let (t, p) = sql.into_parts();
                    text.push_str(&t);
                    text.push_str(";\n");
                    params.extend(p);
                }
                text.push_str("COMMIT;");
                let mut conn = pool.acquire().await?;
                let mut q = sqlx::query(AssertSqlSafe(text));
                for p in params {
                    q = q.bind(p);
                }
                if let Err(e) = q.execute(&mut *conn).await {
                    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                        // Either no transaction was open (BEGIN itself failed) or the
                        // connection is broken; never hand a doubtful connection back.
                        conn.close_on_drop();
                    }
                    return Err(e.into());
                }
                Ok(())
            }
            Db::Postgres(_) => {
                let mut tx = self.begin().await?;
                for sql in statements {
                    tx.execute(sql).await?;
                }
                tx.commit().await
            }
        }
    }
}
