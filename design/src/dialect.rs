//! The SQL dialects erpos writes: a module of its own because values (how a typed value is
//! bound) and DDL (how a table is made) both speak of it, and neither should depend on the
//! other for it.

use serde::{Deserialize, Serialize};

/// The SQL dialect of the active database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// SQLite (the embedded default, one file, WAL mode).
    Sqlite,
    /// PostgreSQL (production, several kernel nodes on one database).
    Postgres,
}
