//! Storage of erpos's own tables (`processes`, `audit_log`, `rules`, `sessions`, …): how
//! their rows are read back, and the SQL of the table families the process runtime keeps
//! ([`processes`], [`services`], [`resources`], [`organisation`]).
//!
//! Every value comes back from the database as text (see `db`); this module turns it into
//! what the kernel uses, column by column, through a [`StoredRow`] that knows its table
//! and its columns' names. A value that does not decode — a number that is not one, a
//! JSON document that does not parse or has the wrong shape, a NULL where a value must be,
//! a number out of its type's range — is an [`Undecodable`] error that names the table,
//! the column, the row's key and what is wrong with the value. It is never read as `0`,
//! `""`, `null` or a row that silently is not there. Where one bad row must not stop the
//! whole (a start, the rules worker, a replay), the caller sets the row aside and reports
//! the same error (`engine::Quarantined`, `Events::unreadable`).
//!
//! The record tables (`rec_*`) that DataItems define are not read here: their columns are
//! decided at run time and `records` builds their SQL from the definition. This module
//! must never take a value as SQL text, and never default a value it cannot read.

pub mod bookings;
pub mod charges;
pub mod courses;
pub mod ledger;
pub mod named;
pub mod organisation;
pub mod outbox;
pub mod processes;
pub mod resources;
pub mod search_grams;
pub mod services;
pub mod sort_keys;
pub mod stock;
pub mod treatments;
pub mod waitlist;

use erpos_design::Dialect;

use crate::db::{Db, Row, Tx};
use crate::error::{Result, shown};
use crate::sql::Sql;

pub use crate::error::Undecodable;

/// What a [`StoredRow`] reader answers: the value, or why it cannot be read.
pub type Decoded<T> = std::result::Result<T, Undecodable>;

/// A row the process runtime loads at its start: its key as stored (what the report names
/// when it cannot be read back) and its value, or why it cannot be read.
#[derive(Debug)]
pub struct Loaded<T> {
    /// The row's key (a pid, `name:version`, a user id).
    pub key: String,
    /// The value, or the error naming the table and the column.
    pub value: Decoded<T>,
}

/// Every definition of `table`, whose `columns` are its key then `definition`, in key
/// order: for the runtime's load, each with its value or why it cannot be read back.
pub async fn definitions<T>(
    db: &Db,
    table: &'static str,
    columns: &'static [&'static str; 2],
) -> Result<Vec<Loaded<T>>>
where
    T: serde::de::DeserializeOwned + Send,
{
    let key = columns[0];
    let mut select = Select::from(db.dialect(), table, columns).keyed(key);
    select.sql().push(" ORDER BY ").ident(key);
    Ok(select
        .fetch(db)
        .await?
        .into_iter()
        .map(|row| Loaded {
            key: row.key().unwrap_or("?").to_owned(),
            value: row.json("definition"),
        })
        .collect())
}

/// A SELECT over one of erpos's own tables whose columns are all read as text, with the
/// names the rows it returns are read by. Build it with [`Select::from`] (the columns of
/// one table) or [`Select::raw`] (an expression, a join, a `RETURNING`), append the rest
/// of the statement to [`Select::sql`], then fetch.
#[derive(Debug, Clone)]
pub struct Select {
    table: &'static str,
    columns: &'static [&'static str],
    key: Option<&'static str>,
    sql: Sql,
}

impl Select {
    /// `SELECT CAST(c AS TEXT) AS "t__c", … FROM table`: every column in `columns`, in order.
    pub fn from(dialect: Dialect, table: &'static str, columns: &'static [&'static str]) -> Self {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.col_text(column);
        }
        sql.push(" FROM ").push(table);
        Select {
            table,
            columns,
            key: None,
            sql,
        }
    }

    /// A statement written by the caller (`sql`), whose selected values are, in order,
    /// what `columns` names (`max_gseq` for `CAST(MAX(gseq) AS TEXT)`), about `table`.
    pub fn raw(table: &'static str, columns: &'static [&'static str], sql: Sql) -> Self {
        Select {
            table,
            columns,
            key: None,
            sql,
        }
    }

    /// Names each row by this selected column in the errors its values give (`seq`).
    pub fn keyed(mut self, key: &'static str) -> Self {
        self.key = Some(key);
        self
    }

    /// The statement, to append `WHERE`, `ORDER BY` and `LIMIT` to.
    pub fn sql(&mut self) -> &mut Sql {
        &mut self.sql
    }

    /// Appends ` WHERE holder = … AND id > … ORDER BY id LIMIT …`: one page of a holder's
    /// rows (or everyone's) in id order (ids are UUIDv7: the order they were made in).
    pub fn holder_page(mut self, holder: Option<&str>, after: Option<&str>, limit: usize) -> Self {
        self.sql.push(" WHERE 1 = 1");
        if let Some(h) = holder {
            self.sql.push(" AND holder = ").text(h);
        }
        if let Some(a) = after {
            self.sql.push(" AND id > ").text(a);
        }
        self.sql
            .push(" ORDER BY id LIMIT ")
            .push(&limit.to_string());
        self
    }

    /// Runs the statement outside a transaction.
    pub async fn fetch(self, db: &Db) -> Result<Vec<StoredRow>> {
        let rows = db.fetch(self.sql).await?;
        Ok(Self::wrap(self.table, self.columns, self.key, rows))
    }

    /// Runs the statement inside `tx`.
    pub async fn fetch_in(self, tx: &mut Tx) -> Result<Vec<StoredRow>> {
        let rows = tx.fetch(self.sql).await?;
        Ok(Self::wrap(self.table, self.columns, self.key, rows))
    }

    /// Runs the statement and reads its one row, if there is one.
    pub async fn fetch_one(self, db: &Db) -> Result<Option<StoredRow>> {
        Ok(self.fetch(db).await?.into_iter().next())
    }

    fn wrap(
        table: &'static str,
        columns: &'static [&'static str],
        key: Option<&'static str>,
        rows: Vec<Row>,
    ) -> Vec<StoredRow> {
        rows.into_iter()
            .map(|values| StoredRow {
                table,
                columns,
                key,
                values,
            })
            .collect()
    }
}

/// One row of one of erpos's own tables, read column by column by name. Every reader
/// answers the value or an [`Undecodable`] error naming the table, the column, the row and
/// the problem (`?` turns it into a `KernelError`); none of them defaults.
#[derive(Debug, Clone)]
pub struct StoredRow {
    table: &'static str,
    columns: &'static [&'static str],
    key: Option<&'static str>,
    values: Row,
}

impl StoredRow {
    /// The table the row is from.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// The row's key as stored (the column given to [`Select::keyed`]), for reports about
    /// a row that does not decode.
    pub fn key(&self) -> Option<&str> {
        let key = self.key?;
        let i = self.columns.iter().position(|c| *c == key)?;
        self.values.get(i)?.as_deref()
    }

    /// The error for `column` of this row: `problem` with the table, column and key.
    pub fn undecodable(&self, column: &'static str, problem: impl Into<String>) -> Undecodable {
        Undecodable {
            table: self.table,
            column,
            key: self
                .key
                .zip(self.key().map(str::to_owned))
                .filter(|(k, _)| *k != column),
            problem: problem.into(),
        }
    }

    /// The raw stored text of `column` (None for NULL). A column the statement did not
    /// select is an error too: a reader asking for it is a bug, and says which.
    fn raw(&self, column: &'static str) -> Decoded<Option<&str>> {
        match self.columns.iter().position(|c| *c == column) {
            Some(i) => Ok(self.values.get(i).and_then(|v| v.as_deref())),
            None => Err(self.undecodable(column, "was not selected by the query")),
        }
    }

    /// A value that must be there (NULL is an error).
    fn required(&self, column: &'static str) -> Decoded<&str> {
        self.raw(column)?
            .ok_or_else(|| self.undecodable(column, "is NULL; a value was expected"))
    }

    /// A text column that must not be NULL.
    pub fn text(&self, column: &'static str) -> Decoded<String> {
        self.required(column).map(str::to_owned)
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, column: &'static str) -> Decoded<Option<String>> {
        self.raw(column).map(|v| v.map(str::to_owned))
    }

    fn parse_int(&self, column: &'static str, text: &str) -> Decoded<i64> {
        text.trim()
            .parse::<i64>()
            .map_err(|_| self.undecodable(column, format!("{} is not an integer", shown(text))))
    }

    /// An integer column that must not be NULL.
    pub fn int(&self, column: &'static str) -> Decoded<i64> {
        let text = self.required(column)?;
        self.parse_int(column, text)
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, column: &'static str) -> Decoded<Option<i64>> {
        match self.raw(column)? {
            Some(text) => Ok(Some(self.parse_int(column, text)?)),
            None => Ok(None),
        }
    }

    /// An integer column read into a narrower type (`u64` for a sequence number, `u32` for
    /// a depth): a value outside it (a negative number of a `u64`) is an error, never
    /// wrapped or truncated.
    pub fn number<T>(&self, column: &'static str) -> Decoded<T>
    where
        T: TryFrom<i64>,
    {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| {
            self.undecodable(
                column,
                format!("{n} is out of range for a {}", std::any::type_name::<T>()),
            )
        })
    }

    /// [`StoredRow::number`] of a column that may be NULL.
    pub fn opt_number<T>(&self, column: &'static str) -> Decoded<Option<T>>
    where
        T: TryFrom<i64>,
    {
        match self.opt_int(column)? {
            Some(n) => T::try_from(n).map(Some).map_err(|_| {
                self.undecodable(
                    column,
                    format!("{n} is out of range for a {}", std::any::type_name::<T>()),
                )
            }),
            None => Ok(None),
        }
    }

    /// A JSON document, decoded into `T` with `limits::decode_stored` (so a document
    /// written before the depth bounds still reads). Text that is not JSON, or JSON of
    /// another shape than `T`, is an error saying why.
    pub fn json<T>(&self, column: &'static str) -> Decoded<T>
    where
        T: serde::de::DeserializeOwned + Send,
    {
        let text = self.required(column)?;
        crate::limits::decode_stored(text)
            .map_err(|why| self.undecodable(column, format!("does not decode: {why}")))
    }

    /// [`StoredRow::json`] of a column that may be NULL.
    pub fn opt_json<T>(&self, column: &'static str) -> Decoded<Option<T>>
    where
        T: serde::de::DeserializeOwned + Send,
    {
        match self.raw(column)? {
            Some(_) => self.json(column).map(Some),
            None => Ok(None),
        }
    }

    /// A column read with `parse` (a state's name, an event's kind): `what` names what the
    /// value should be in the error (`a process state`).
    pub fn parsed<T>(
        &self,
        column: &'static str,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Decoded<T> {
        let text = self.required(column)?;
        parse(text)
            .ok_or_else(|| self.undecodable(column, format!("{} is not {what}", shown(text))))
    }

    /// A time stored as milliseconds since the epoch, as the API shows it (RFC 3339). A
    /// number no calendar holds is an error, never a `null`.
    pub fn instant(&self, column: &'static str) -> Decoded<String> {
        let ms = self.int(column)?;
        self.instant_of(column, ms)
    }

    /// [`StoredRow::instant`] of a column that may be NULL.
    pub fn opt_instant(&self, column: &'static str) -> Decoded<Option<String>> {
        match self.opt_int(column)? {
            Some(ms) => self.instant_of(column, ms).map(Some),
            None => Ok(None),
        }
    }

    fn instant_of(&self, column: &'static str, ms: i64) -> Decoded<String> {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| erpos_design::value::format_datetime(&t))
            .ok_or_else(|| self.undecodable(column, format!("{ms} ms is not a point in time")))
    }
}

/// The value of a one-column, one-row statement (`SELECT CAST(MAX(gseq) AS TEXT) …`) as an
/// integer, `column` naming it (`&["max_gseq"]`); None when there is no row or it is NULL.
pub async fn scalar(
    db: &Db,
    table: &'static str,
    column: &'static [&'static str; 1],
    sql: Sql,
) -> Result<Option<i64>> {
    match Select::raw(table, column, sql).fetch_one(db).await? {
        Some(row) => Ok(row.opt_int(column[0])?),
        None => Ok(None),
    }
}

/// [`scalar`] inside a transaction.
pub async fn scalar_in(
    tx: &mut Tx,
    table: &'static str,
    column: &'static [&'static str; 1],
    sql: Sql,
) -> Result<Option<i64>> {
    match Select::raw(table, column, sql)
        .fetch_in(tx)
        .await?
        .into_iter()
        .next()
    {
        Some(row) => Ok(row.opt_int(column[0])?),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>]) -> StoredRow {
        StoredRow {
            table: "audit_log",
            columns: &["seq", "at_ms", "actor", "payload"],
            key: Some("seq"),
            values: values.iter().map(|v| v.map(str::to_owned)).collect(),
        }
    }

    /// The error a reader must give, as text (a value read back fails the test).
    fn error<T: std::fmt::Debug>(read: Decoded<T>) -> std::result::Result<String, String> {
        match read {
            Ok(v) => Err(format!("read back as {v:?}")),
            Err(e) => Ok(e.to_string()),
        }
    }

    #[test]
    fn every_reader_names_the_table_column_and_row_and_never_defaults()
    -> std::result::Result<(), String> {
        let r = row(&[Some("12"), Some("soon"), None, Some("{not json")]);
        assert_eq!(
            error(r.int("at_ms"))?,
            "table audit_log, column at_ms (row seq = '12'): 'soon' is not an integer"
        );
        let e = error(r.text("actor"))?;
        assert!(e.contains("column actor") && e.contains("NULL"), "{e}");
        assert_eq!(r.opt_text("actor"), Ok(None));
        let e = error(r.json::<serde_json::Value>("payload"))?;
        assert!(e.contains("column payload"), "{e}");
        assert!(r.int("no_such").is_err());
        assert_eq!(r.number::<u64>("seq"), Ok(12));

        let r = row(&[Some("-3"), Some("9223372036854775807"), Some("li"), None]);
        let e = error(r.number::<u64>("seq"))?;
        // The key's own column is not named twice.
        assert!(
            e.contains("-3 is out of range") && !e.contains("row seq"),
            "{e}"
        );
        assert_eq!(r.int("at_ms"), Ok(i64::MAX));
        let e = error(r.instant("at_ms"))?;
        assert!(e.contains("is not a point in time"), "{e}");
        assert_eq!(r.opt_json::<serde_json::Value>("payload"), Ok(None));
        assert!(r.parsed("actor", "a state", |_| None::<()>).is_err());
        Ok(())
    }

    #[test]
    fn long_values_are_quoted_shortened() -> std::result::Result<(), String> {
        let long = "x".repeat(500);
        let r = row(&[Some("1"), Some(&long), None, None]);
        let e = error(r.int("at_ms"))?;
        assert!(e.len() < 200, "{e}");
        Ok(())
    }
}
