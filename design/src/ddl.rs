//! DDL for record tables, per SQL dialect.
//!
//! Every identifier that reaches SQL is a validated erpos identifier (see `naming`) and is
//! double-quoted here; values never appear in SQL text, only as bound parameters. This module
//! produces statements; running them is the kernel's job.

use crate::catalog::EffectiveField;
use crate::field::{Field, FieldType};

pub use crate::dialect::Dialect;

/// The table holding the records of a DataItem. The prefix keeps record tables apart from
/// the kernel's own tables.
pub fn table_name(item: &str) -> String {
    format!("rec_{item}")
}

/// Double-quotes an identifier. Callers pass only validated identifiers, so this never needs
/// to escape; it still doubles quotes so that a mistake cannot become an injection.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A name for an index or constraint of `table` on `column`, within PostgreSQL's 63 bytes:
/// long names are shortened with a hash so that two indexes never collide.
pub fn index_name(prefix: &str, table: &str, column: &str) -> String {
    let full = format!("{prefix}_{table}_{column}");
    if full.len() <= 60 {
        return full;
    }
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}_{:08x}", &full[..48], hash as u32)
}

/// The name a removed or retyped field's column is kept under.
pub fn archived_column(field: &str, version: u32) -> String {
    format!("{field}__archived_v{version}")
}

impl Dialect {
    /// The column type holding values of `ty`.
    pub fn column_type(self, ty: FieldType) -> &'static str {
        use FieldType as T;
        match (self, ty) {
            (Dialect::Sqlite, T::Integer | T::Decimal | T::Money | T::Boolean) => "INTEGER",
            (Dialect::Sqlite, _) => "TEXT",
            (Dialect::Postgres, T::Text | T::Enum) => "TEXT",
            (Dialect::Postgres, T::Integer | T::Decimal | T::Money) => "BIGINT",
            (Dialect::Postgres, T::Boolean) => "BOOLEAN",
            (Dialect::Postgres, T::Date) => "DATE",
            (Dialect::Postgres, T::Datetime) => "TIMESTAMPTZ",
            (Dialect::Postgres, T::Reference) => "UUID",
            (Dialect::Postgres, T::Json) => "JSONB",
        }
    }

    /// The type a text parameter is cast to before it meets a column of `ty`, if any.
    pub fn param_cast(self, ty: FieldType) -> Option<&'static str> {
        match (self, ty) {
            (
                Dialect::Sqlite,
                FieldType::Integer | FieldType::Decimal | FieldType::Money | FieldType::Boolean,
            ) => Some("INTEGER"),
            (Dialect::Sqlite, _) | (Dialect::Postgres, FieldType::Text | FieldType::Enum) => None,
            (Dialect::Postgres, other) => Some(self.column_type(other)),
        }
    }

    /// The type of the `id`, `_parent_id` and reference columns.
    pub fn id_type(self) -> &'static str {
        match self {
            Dialect::Sqlite => "TEXT",
            Dialect::Postgres => "UUID",
        }
    }

    /// The type of the created/updated stamps.
    pub fn stamp_type(self) -> &'static str {
        self.column_type(FieldType::Datetime)
    }

    /// The expression that reads a column as text (the one representation values are
    /// parsed from).
    pub fn as_text(self, column: &str) -> String {
        format!("CAST({} AS TEXT)", quote(column))
    }

    /// `ALTER TABLE … ADD COLUMN` for a field.
    pub fn add_column(self, table: &str, column: &str, ty: FieldType) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(table),
            quote(column),
            self.column_type(ty)
        )
    }

    /// `ALTER TABLE … RENAME COLUMN`.
    pub fn rename_column(self, table: &str, from: &str, to: &str) -> String {
        format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            quote(table),
            quote(from),
            quote(to)
        )
    }

    /// The unique index enforcing `unique` on a field.
    pub fn create_unique_index(self, table: &str, column: &str) -> String {
        format!(
            "CREATE UNIQUE INDEX {} ON {} ({})",
            quote(&index_name("uq", table, column)),
            quote(table),
            quote(column)
        )
    }

    /// The index that makes reference checks and "who references this" lookups fast.
    pub fn create_lookup_index(self, table: &str, column: &str) -> String {
        format!(
            "CREATE INDEX {} ON {} ({})",
            quote(&index_name("ix", table, column)),
            quote(table),
            quote(column)
        )
    }

    /// Drops an index created by one of the two functions above.
    pub fn drop_index(self, prefix: &str, table: &str, column: &str) -> String {
        format!(
            "DROP INDEX IF EXISTS {}",
            quote(&index_name(prefix, table, column))
        )
    }

    /// The indexes a field needs: unique for `unique`, a lookup index for references.
    pub fn field_indexes(self, table: &str, field: &Field) -> Vec<String> {
        let mut out = Vec::new();
        if field.unique {
            out.push(self.create_unique_index(table, &field.name));
        } else if field.field_type == FieldType::Reference {
            out.push(self.create_lookup_index(table, &field.name));
        }
        out
    }

    /// Drops whatever `field_indexes` created for `field`.
    pub fn drop_field_indexes(self, table: &str, field: &Field) -> Vec<String> {
        let mut out = Vec::new();
        if field.unique {
            out.push(self.drop_index("uq", table, &field.name));
        } else if field.field_type == FieldType::Reference {
            out.push(self.drop_index("ix", table, &field.name));
        }
        out
    }

    /// The statements creating a DataItem's record table and its indexes.
    ///
    /// Besides the fields, every record table has: `id`, `version` (optimistic concurrency),
    /// `created_at`/`updated_at`, `_search` (pinyin search keys) and `_parent_item` /
    /// `_parent_id` (the parent record of a composed child).
    pub fn create_table(self, item: &str, fields: &[EffectiveField]) -> Vec<String> {
        let table = table_name(item);
        let mut columns = vec![
            format!("\"id\" {} PRIMARY KEY", self.id_type()),
            format!(
                "\"version\" {} NOT NULL",
                self.column_type(FieldType::Integer)
            ),
            format!("\"created_at\" {} NOT NULL", self.stamp_type()),
            format!("\"updated_at\" {} NOT NULL", self.stamp_type()),
            "\"_search\" TEXT NOT NULL DEFAULT ''".to_owned(),
            "\"_parent_item\" TEXT".to_owned(),
            format!("\"_parent_id\" {}", self.id_type()),
        ];
        columns.extend(fields.iter().map(|e| {
            format!(
                "{} {}",
                quote(&e.field.name),
                self.column_type(e.field.field_type)
            )
        }));
        let strict = if self == Dialect::Sqlite {
            " STRICT"
        } else {
            ""
        };
        let mut out = vec![format!(
            "CREATE TABLE {} (\n  {}\n){strict}",
            quote(&table),
            columns.join(",\n  ")
        )];
        out.push(format!(
            "CREATE INDEX {} ON {} (\"_parent_id\") WHERE \"_parent_id\" IS NOT NULL",
            quote(&index_name("ix", &table, "_parent_id")),
            quote(&table)
        ));
        for e in fields {
            out.extend(self.field_indexes(&table, &e.field));
        }
        out
    }
}
