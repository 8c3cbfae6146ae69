//! The SQL of `record_sort_keys` (migration 0012): per record and searchable text field,
//! the key it sorts by in pinyin order (`erpos_design::naming::sort_key`). Written in the
//! same transaction as the record, so a list sorted by such a field always sees the keys
//! of what it lists; a field left empty has no key (it sorts last, like a NULL).

use erpos_design::{Dialect, EffectiveField, FieldType};

use crate::sql::Sql;

/// Whether a field sorts by its pinyin key: searchable text fields (names, mostly; an enum
/// keeps the order of its values' code points, and its cursor must stay one of them).
pub fn sorts_by_pinyin(field: &erpos_design::Field) -> bool {
    field.searchable && field.field_type == FieldType::Text
}

/// The sort key of `field` of the record in the row of `table` (a DataItem's table, in the
/// outer query), as an expression a list orders and pages by. A correlated subquery rather
/// than a join, so the record table's own columns stay unambiguous.
pub fn key_expression(sql: &mut Sql, item: &str, table: &str, field: &str) {
    sql.push("(SELECT k.sort_key FROM record_sort_keys k WHERE k.item = ")
        .text(item)
        .push(" AND k.field = ")
        .text(field)
        .push(" AND k.id = CAST(")
        .ident(table)
        .push(".\"id\" AS TEXT))");
    if sql.dialect() == Dialect::Postgres {
        // Bytewise, as the column is: the same order SQLite's BINARY gives.
        sql.push(" COLLATE \"C\"");
    }
}

/// The statements storing the keys derived from one record's searchable fields (replacing
/// what was stored): its pinyin sort keys — an upsert per searchable text field with a
/// value, a delete per one without — and its search grams (`super::search_grams`), so
/// every writer of a record keeps both with one call.
pub fn store(
    d: Dialect,
    item: &str,
    id: &str,
    fields: &[EffectiveField],
    text_of: impl Fn(&str) -> Option<String>,
) -> Vec<Sql> {
    fields
        .iter()
        .filter(|e| sorts_by_pinyin(&e.field))
        .map(|e| {
            let mut sql = Sql::new(d);
            match text_of(&e.field.name) {
                Some(text) => {
                    sql.push("INSERT INTO record_sort_keys (item, field, id, sort_key) VALUES (")
                        .text(item)
                        .push(", ")
                        .text(&e.field.name)
                        .push(", ")
                        .text(id)
                        .push(", ")
                        .text(erpos_design::naming::sort_key(&text))
                        .push(
                            ") ON CONFLICT (item, field, id) DO UPDATE SET sort_key = excluded.sort_key",
                        );
                }
                None => {
                    sql.push("DELETE FROM record_sort_keys WHERE item = ")
                        .text(item)
                        .push(" AND field = ")
                        .text(&e.field.name)
                        .push(" AND id = ")
                        .text(id);
                }
            }
            sql
        })
        .chain(super::search_grams::store(
            d,
            item,
            id,
            &erpos_design::catalog::search_document(fields, &text_of),
        ))
        .collect()
}

/// Forgets the sort keys and search grams of one record (deleted) — or, without `id`, of
/// every record of `item` (before they are rebuilt).
pub fn forget(d: Dialect, item: &str, id: Option<&str>) -> Vec<Sql> {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM record_sort_keys WHERE item = ")
        .text(item);
    if let Some(id) = id {
        sql.push(" AND id = ").text(id);
    }
    vec![sql, super::search_grams::forget(d, item, id)]
}
