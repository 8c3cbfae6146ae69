//! The SQL of `record_search_grams` (migration 0014): per record, the grams of its search
//! document (`erpos_design::naming::search_grams`), written in the same transaction as the
//! record, so a search finds its candidates by an index range instead of reading every
//! record. The document itself stays, and is still checked (`LIKE`), so the grams only
//! narrow the search; they never decide it alone.

use erpos_design::Dialect;
use erpos_design::naming::{OVERFLOW_GRAM, gram_range, search_grams};

use crate::sql::Sql;

/// The statements replacing the grams of one record by those of `document`. The grams go
/// in as one JSON array expanded by the database, so the statement's text is the same
/// for every record and stays prepared (a `VALUES` list would differ in length each time).
pub fn store(d: Dialect, item: &str, id: &str, document: &str) -> Vec<Sql> {
    let mut out = vec![forget(d, item, Some(id))];
    let grams = search_grams(document);
    if grams.is_empty() {
        return out;
    }
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO record_search_grams (item, gram, id) SELECT ")
        .text(item)
        .push(", value, ")
        .text(id)
        .push(match d {
            Dialect::Sqlite => " FROM json_each(",
            Dialect::Postgres => " FROM jsonb_array_elements_text(",
        })
        .json(&serde_json::json!(grams))
        // SQLite reads `ON CONFLICT` after a bare `FROM …` as a join's constraint.
        .push(") WHERE true ON CONFLICT DO NOTHING");
    out.push(sql);
    out
}

/// Forgets the grams of one record — or, without `id`, of every record of `item`.
pub fn forget(d: Dialect, item: &str, id: Option<&str>) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM record_search_grams WHERE item = ")
        .text(item);
    if let Some(id) = id {
        sql.push(" AND id = ").text(id);
    }
    sql
}

/// The condition "the record may contain `word`": its id among those with a gram in the
/// word's range or with an overflowing document, as an index-served subquery. Two
/// branches of a `UNION ALL` rather than an `OR`, which would make SQLite read every gram
/// of the item instead of the two ranges.
pub fn candidates(sql: &mut Sql, item: &str, word: &str) {
    let (from, to) = gram_range(word);
    let id = match sql.dialect() {
        Dialect::Postgres => "CAST(g.id AS UUID)",
        Dialect::Sqlite => "g.id",
    };
    sql.push(" AND \"id\" IN (SELECT ")
        .push(id)
        .push(" FROM record_search_grams g WHERE g.item = ")
        .text(item)
        .push(" AND g.gram >= ")
        .text(from)
        .push(" AND g.gram < ")
        .text(to)
        .push(" UNION ALL SELECT ")
        .push(id)
        .push(" FROM record_search_grams g WHERE g.item = ")
        .text(item)
        .push(" AND g.gram = ")
        .text(OVERFLOW_GRAM)
        .push(")");
}
