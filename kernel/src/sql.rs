//! Building SQL for one dialect from validated identifiers and bound parameters.
//!
//! The metamodel decides table and column names at run time, so record SQL is built here.
//! The only text that ever enters a statement is: fixed keywords written in this crate,
//! identifiers that passed `erpos_design::naming::is_identifier` (quoted anyway), and
//! placeholders. Every value a user sent is a bound parameter. This module must never take
//! a value as SQL text.

use erpos_design::Dialect;
use erpos_design::ddl::quote;

/// One statement and its parameters, bound as text (see `erpos_design::value`).
#[derive(Debug, Clone)]
pub struct Sql {
    dialect: Dialect,
    text: String,
    params: Vec<Option<String>>,
}

impl Sql {
    /// An empty statement for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::new(),
            params: Vec::new(),
        }
    }

    /// Appends fixed SQL written in this crate (keywords, punctuation, casts).
    pub fn push(&mut self, fixed: &str) -> &mut Self {
        self.text.push_str(fixed);
        self
    }

    /// Appends a quoted identifier (a table or column name from a validated definition).
    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.text.push_str(&quote(name));
        self
    }

    /// Appends a placeholder bound to `value`, cast to `cast` when given.
    pub fn param(&mut self, value: Option<String>, cast: Option<&str>) -> &mut Self {
        self.params.push(value);
        let placeholder = match self.dialect {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${}", self.params.len()),
        };
        match cast {
            Some(ty) => {
                self.text.push_str("CAST(");
                self.text.push_str(&placeholder);
                self.text.push_str(" AS ");
                self.text.push_str(ty);
                self.text.push(')');
            }
            None => self.text.push_str(&placeholder),
        }
        self
    }

    /// Appends a text placeholder.
    pub fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.param(Some(value.into()), None)
    }

    /// Appends an integer placeholder (BIGINT on PostgreSQL).
    pub fn int(&mut self, value: i64) -> &mut Self {
        let cast = self.dialect.param_cast(erpos_design::FieldType::Integer);
        self.param(Some(value.to_string()), cast)
    }

    /// Appends an optional integer placeholder (NULL when absent).
    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        let cast = self.dialect.param_cast(erpos_design::FieldType::Integer);
        self.param(value.map(|v| v.to_string()), cast)
    }

    /// Appends a JSON document placeholder (JSONB on PostgreSQL, TEXT on SQLite).
    pub fn json(&mut self, value: &serde_json::Value) -> &mut Self {
        let cast = self.dialect.param_cast(erpos_design::FieldType::Json);
        self.param(Some(value.to_string()), cast)
    }

    /// Appends an optional text placeholder (NULL when absent).
    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        self.param(value.map(str::to_owned), None)
    }

    /// Appends a column read as text: `CAST("col" AS TEXT) AS "t__col"`. The alias can never
    /// be a column name (double underscores are reserved), so a bare `ORDER BY col` always
    /// means the table's column: in PostgreSQL an output column named like the table column
    /// would win, and numbers would sort as text.
    pub fn col_text(&mut self, column: &str) -> &mut Self {
        self.text.push_str(&self.dialect.as_text(column));
        self.text.push_str(" AS ");
        self.text.push_str(&quote(&format!("t__{column}")));
        self
    }

    /// The dialect this statement is written for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The statement text (for logs and tests; never contains a value).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The statement text and its parameters.
    pub fn into_parts(self) -> (String, Vec<Option<String>>) {
        (self.text, self.params)
    }
}
