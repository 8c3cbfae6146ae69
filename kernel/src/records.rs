//! Records of DataItems: create, read, patch, delete and list, validated by the DataItem's
//! form, stored in its generated table.
//!
//! A write is validated against the form's JSON Schema, parsed into typed values, checked
//! for references and written — parent, composed children and an audit-trail row — in one
//! transaction, so a refused write changes nothing. Patches carry the version they were
//! based on; a stale one gets a conflict instead of overwriting someone else's change.
//! This module must never put a value into SQL text (see `sql`).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use erpos_design::catalog::EffectiveField;
use erpos_design::data_item::Cardinality;
use erpos_design::ddl::{index_name, table_name};
use erpos_design::form::parse_record;
use erpos_design::value::{format_datetime, parse_datetime};
use erpos_design::{Catalog, DesignError, Dialect, Field, FieldType, Issue, Value};
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use erpos_design::rule::EventKind;

use crate::db::{Db, Row, Tx};
use crate::definitions::Definitions;
use crate::error::{KernelError, Result};
use crate::events::Events;
use crate::sql::Sql;

/// The most records one list page returns.
pub const MAX_LIMIT: usize = 500;
/// The highest `page` a list takes: its offset must stay a number both databases take
/// (and a deep offset is a slow scan; `cursor` pages any depth).
pub const MAX_PAGE: u64 = 100_000;
/// The page size when the caller gives none.
pub const DEFAULT_LIMIT: usize = 50;

pub use erpos_design::catalog::search_document;

/// A comparison in a list filter (`?age__gt=30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `field=v`
    Eq,
    /// `field__ne=v`
    Ne,
    /// `field__lt=v`
    Lt,
    /// `field__lte=v`
    Lte,
    /// `field__gt=v`
    Gt,
    /// `field__gte=v`
    Gte,
    /// `field__in=a,b,c`
    In,
    /// `field__contains=text` (text and enum fields, case-insensitive)
    Contains,
    /// `field__null=true|false`
    Null,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "contains" => Op::Contains,
            "null" => Op::Null,
            _ => return None,
        })
    }
}

/// One filter of a list request, already typed.
#[derive(Debug, Clone)]
pub struct Filter {
    field: Field,
    op: Op,
    values: Vec<Value>,
}

/// A parsed list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    limit: usize,
    cursor: Option<Vec<Option<String>>>,
    page: Option<u64>,
    sort: Vec<(Field, bool)>,
    search: Vec<String>,
    filters: Vec<Filter>,
    /// The caller's row scope (`crate::visibility`): only records some listed field of
    /// which holds one of its values; None for every record.
    visible: Option<Vec<(String, std::collections::BTreeSet<String>)>>,
}

/// One page of a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    /// The records on this page.
    pub items: Vec<Json>,
    /// How many records match the filters in all.
    pub total: u64,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Pseudo-fields every record has, usable in filters and sort.
fn stamp_field(name: &str) -> Option<Field> {
    match name {
        "created_at" | "updated_at" => Some(Field::new(name, name, FieldType::Datetime)),
        "id" => Some(Field::new("id", "id", FieldType::Reference)),
        _ => None,
    }
}

fn lookup_field(fields: &[EffectiveField], name: &str) -> Option<Field> {
    fields
        .iter()
        .find(|e| e.field.name == name)
        .map(|e| e.field.clone())
        .or_else(|| stamp_field(name))
}

/// Parses a query-string value for `field` (query strings carry everything as text).
fn query_value(field: &Field, raw: &str) -> std::result::Result<Value, String> {
    let json = match field.field_type {
        FieldType::Boolean => match raw {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => return Err("expected true or false".into()),
        },
        FieldType::Json => {
            serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.to_owned()))
        }
        _ => Json::String(raw.to_owned()),
    };
    let mut lenient = field.clone();
    lenient.min = None;
    lenient.max = None;
    lenient.max_length = None;
    if lenient.field_type == FieldType::Enum {
        lenient.field_type = FieldType::Text;
    }
    Value::from_json(&lenient, &json)
}

impl ListQuery {
    /// Limits the list to the records a caller's row scope admits (the total counts only
    /// those too).
    pub fn restrict(&mut self, scope: erpos_design::visibility::RowScope) {
        self.visible = match scope {
            erpos_design::visibility::RowScope::All => None,
            erpos_design::visibility::RowScope::Where(list) => Some(list),
        };
    }

    /// Parses list parameters: `limit`, `cursor` or `page`, `sort=-a,b`, `q` (pinyin
    /// search), and filters `field` / `field__op`. Every problem is reported at
    /// `/query/<param>`.
    pub fn parse(catalog: &Catalog, item: &str, params: &[(String, String)]) -> Result<ListQuery> {
        catalog.require(item)?;
        let fields = catalog.effective_fields(item);
        let mut issues = Vec::new();
        let mut q = ListQuery {
            limit: DEFAULT_LIMIT,
            ..ListQuery::default()
        };
        for (key, raw) in params {
            let path = format!("/query/{key}");
            match key.as_str() {
                "limit" => match raw.parse::<usize>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                    _ => issues.push(Issue::new(
                        path,
                        format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                    )),
                },
                "page" => match raw.parse::<u64>() {
                    Ok(n) if (1..=MAX_PAGE).contains(&n) => q.page = Some(n),
                    _ => issues.push(Issue::new(
                        path,
                        format!("page must be a whole number from 1 to {MAX_PAGE} (use cursor to go further)"),
                    )),
                },
                "cursor" => match decode_cursor(raw) {
                    Some(c) => q.cursor = Some(c),
                    None => issues.push(Issue::new(path, "not a cursor returned by this list")),
                },
                "q" => q.search = raw.split_whitespace().map(str::to_lowercase).collect(),
                "sort" => {
                    for part in raw.split(',').filter(|s| !s.is_empty()) {
                        let (desc, name) =
                            part.strip_prefix('-').map_or((false, part), |n| (true, n));
                        match lookup_field(&fields, name) {
                            Some(f) if f.field_type != FieldType::Json => q.sort.push((f, desc)),
                            Some(_) => issues.push(Issue::new(
                                &path,
                                format!("cannot sort by json field '{name}'"),
                            )),
                            None => {
                                issues.push(Issue::new(&path, format!("'{name}' is not a field")))
                            }
                        }
                    }
                }
                _ => {
                    let (name, op) = match key.split_once("__") {
                        Some((name, op)) => (name, Op::parse(op)),
                        None => (key.as_str(), Some(Op::Eq)),
                    };
                    let Some(op) = op else {
                        issues.push(Issue::new(
                            path,
                            "unknown operator: use eq, ne, lt, lte, gt, gte, in, contains or null",
                        ));
                        continue;
                    };
                    let Some(field) = lookup_field(&fields, name) else {
                        issues.push(Issue::new(
                            path,
                            format!("'{name}' is not a field of '{item}'"),
                        ));
                        continue;
                    };
                    if op == Op::Contains
                        && !matches!(field.field_type, FieldType::Text | FieldType::Enum)
                    {
                        issues.push(Issue::new(path, "contains applies to text and enum fields"));
                        continue;
                    }
                    if field.field_type == FieldType::Json && op != Op::Null {
                        issues.push(Issue::new(
                            path,
                            "json fields can only be filtered with __null",
                        ));
                        continue;
                    }
                    let raws: Vec<&str> = match op {
                        Op::In => raw.split(',').collect(),
                        _ => vec![raw.as_str()],
                    };
                    let mut values = Vec::new();
                    for r in raws {
                        let parsed = match op {
                            Op::Contains => Ok(Value::Text(r.to_lowercase())),
                            Op::Null => query_value(&Field::new("n", "n", FieldType::Boolean), r),
                            _ => query_value(&field, r),
                        };
                        match parsed {
                            Ok(v) => values.push(v),
                            Err(m) => issues.push(Issue::new(&path, m)),
                        }
                    }
                    q.filters.push(Filter { field, op, values });
                }
            }
        }
        if q.cursor.is_some() && q.page.is_some() {
            issues.push(Issue::new(
                "/query/page",
                "give either cursor or page, not both",
            ));
        }
        if q.sort.is_empty()
            && let Some(f) = stamp_field("created_at")
        {
            q.sort.push((f, false));
        }
        if let Some(c) = &q.cursor
            && c.len() != q.sort.len() + 1
        {
            issues.push(Issue::new(
                "/query/cursor",
                "the cursor belongs to a list with another sort",
            ));
        }
        // A cursor is the client's text: each key must be a value of its column's type,
        // or the database would fail casting it.
        if let Some(c) = &q.cursor
            && c.len() == q.sort.len() + 1
        {
            let id = Field::new("id", "id", FieldType::Reference);
            let columns = q.sort.iter().map(|(f, _)| f).chain(std::iter::once(&id));
            let bad = columns.zip(c).any(|(f, v)| {
                v.as_deref()
                    .is_some_and(|t| t.contains('\0') || Value::from_storage(f, Some(t)).is_err())
            });
            if bad {
                issues.push(Issue::new(
                    "/query/cursor",
                    "not a cursor returned by this list",
                ));
            }
        }
        if issues.is_empty() {
            Ok(q)
        } else {
            Err(KernelError::BadRequest(issues))
        }
    }
}

fn encode_cursor(values: &[Option<String>]) -> String {
    URL_SAFE_NO_PAD.encode(json!(values).to_string())
}

fn decode_cursor(raw: &str) -> Option<Vec<Option<String>>> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Where reads run: on the pool, or inside a write transaction (to see its own writes).
enum Reader<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Reader<'_> {
    async fn fetch(&mut self, sql: Sql) -> Result<Vec<Row>> {
        match self {
            Reader::Db(db) => db.fetch(sql).await,
            Reader::Tx(tx) => tx.fetch(sql).await,
        }
    }
}

/// The records service.
pub struct Records {
    db: Db,
    definitions: Arc<Definitions>,
    events: Arc<Events>,
    /// Evaluates computed fields on every write.
    computer: crate::computed::Computer,
}

impl Records {
    /// The live DataItem definitions the records are written against.
    pub fn definitions(&self) -> &Arc<Definitions> {
        &self.definitions
    }
}

/// Whether a list sorted by `field` orders by its pinyin sort key.
fn pinyin(field: &Field) -> bool {
    crate::store::sort_keys::sorts_by_pinyin(field)
}

/// How many records a recomputation reads and writes per transaction.
pub const RECOMPUTE_BATCH: usize = 500;

/// Whether `item` or a DataItem it consists of (at any depth) has a computed field.
fn has_computed(catalog: &Catalog, item: &str) -> bool {
    !catalog.computed_fields(item).is_empty()
        || catalog
            .get(item)
            .is_some_and(|d| d.consists.iter().any(|c| has_computed(catalog, &c.item)))
}

/// Fills in the defaults of the fields `record` (of `item`, children included) leaves out,
/// so that what is computed over a new record sees what will be stored.
fn with_defaults(catalog: &Catalog, item: &str, record: &mut Map<String, Json>) {
    for e in catalog.effective_fields(item) {
        if let Some(default) = &e.field.default
            && !record.contains_key(&e.field.name)
        {
            record.insert(e.field.name.clone(), default.clone());
        }
    }
    let Some(def) = catalog.get(item) else {
        return;
    };
    for c in &def.consists {
        match record.get_mut(&c.item) {
            Some(Json::Array(children)) => {
                for child in children.iter_mut() {
                    if let Json::Object(child) = child {
                        with_defaults(catalog, &c.item, child);
                    }
                }
            }
            Some(Json::Object(child)) => with_defaults(catalog, &c.item, child),
            _ => {}
        }
    }
}

/// The fields of `item` numbered by a series, with their series.
fn numbered_fields(
    catalog: &Catalog,
    item: &str,
) -> Vec<(String, erpos_design::serial::SerialSpec)> {
    catalog
        .effective_fields(item)
        .into_iter()
        .filter_map(|e| Some((e.field.name.clone(), e.field.series.clone()?)))
        .collect()
}

/// Refuses a write that names a numbered field (422 at it): the series gives the number.
fn refuse_numbered(
    numbered: &[(String, erpos_design::serial::SerialSpec)],
    body: &Json,
) -> Result<()> {
    let issues: Vec<Issue> = numbered
        .iter()
        .filter(|(name, _)| body.get(name).is_some())
        .map(|(name, spec)| {
            Issue::new(
                format!("/{name}"),
                format!(
                    "numbered by its series ({}-…): leave it out, each new record gets the next number",
                    spec.prefix
                ),
            )
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(DesignError::InvalidRecord(issues).into())
    }
}

fn cast(d: Dialect, ty: FieldType) -> Option<&'static str> {
    d.param_cast(ty)
}

fn parse_id(id: &str, item: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| KernelError::NotFound(format!("{item} record '{id}'")))
}

/// The SELECT list of a record table: system columns then fields, all as text.
fn select_columns(sql: &mut Sql, fields: &[EffectiveField]) {
    sql.push("SELECT ")
        .col_text("id")
        .push(", ")
        .col_text("version")
        .push(", ");
    sql.col_text("created_at").push(", ").col_text("updated_at");
    for e in fields {
        sql.push(", ").col_text(&e.field.name);
    }
}

fn stamp_json(text: Option<&String>) -> Json {
    text.and_then(|t| parse_datetime(t))
        .map_or(Json::Null, |t| Json::String(format_datetime(&t)))
}

/// Turns a row read with `select_columns` into the record's JSON (without children).
fn row_json(fields: &[EffectiveField], row: &Row) -> Result<Map<String, Json>> {
    let mut out = Map::new();
    out.insert(
        "id".into(),
        row.first()
            .cloned()
            .flatten()
            .map_or(Json::Null, Json::String),
    );
    for (i, e) in fields.iter().enumerate() {
        let text = row.get(i + 4).cloned().flatten();
        let value = Value::from_storage(&e.field, text.as_deref()).map_err(KernelError::Corrupt)?;
        out.insert(e.field.name.clone(), value.to_json());
    }
    let version = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    out.insert("version".into(), json!(version));
    out.insert(
        "created_at".into(),
        stamp_json(row.get(2).and_then(Option::as_ref)),
    );
    out.insert(
        "updated_at".into(),
        stamp_json(row.get(3).and_then(Option::as_ref)),
    );
    Ok(out)
}

/// Which field a unique violation on `item`'s table is about.
fn unique_field(catalog: &Catalog, item: &str, error: &KernelError) -> Option<String> {
    let (constraint, message) = error.unique_violation()?;
    let table = table_name(item);
    let mut candidates: Vec<String> = catalog
        .effective_fields(item)
        .into_iter()
        .filter(|e| e.field.unique)
        .map(|e| e.field.name)
        .collect();
    candidates.push("id".into());
    candidates.into_iter().find(|name| {
        constraint.as_deref() == Some(index_name("uq", &table, name).as_str())
            || (name == "id" && constraint.as_deref() == Some(format!("{table}_pkey").as_str()))
            || message.ends_with(&format!("{table}.{name}"))
    })
}

impl Records {
    /// The records service over `db`, reading definitions from `definitions`; writes put
    /// their events (those a rule listens for) in `events`' log in the same transaction.
    pub fn new(db: Db, definitions: Arc<Definitions>, events: Arc<Events>) -> Self {
        Self {
            db,
            definitions,
            events,
            computer: crate::computed::Computer::new(),
        }
    }

    /// `body` (a new record of `item`) with its computed fields (and its children's)
    /// filled in; a computed value the caller sent must be what is computed.
    fn computed_for_create(&self, item: &str, body: &Json) -> Result<Json> {
        let schema = self.definitions.schema();
        let Some(obj) = body.as_object() else {
            return Ok(body.clone());
        };
        if !has_computed(&schema.catalog, item) {
            return Ok(body.clone());
        }
        let given = crate::computed::Computer::given(&schema, item, obj, "");
        let mut record = obj.clone();
        with_defaults(&schema.catalog, item, &mut record);
        self.computer.fill(&schema, item, &mut record, "")?;
        crate::computed::refuse_changed(&given, &record)?;
        Ok(Json::Object(record))
    }

    /// Checks a record body against its DataItem (every failing field at its pointer),
    /// without writing: a use case that writes later in a transaction checks first.
    pub fn validate(&self, catalog_item: &str, body: &Json, for_create: bool) -> Result<()> {
        let schema = self.definitions.schema();
        schema.catalog.require(catalog_item)?;
        if !body.is_object() {
            return Err(KernelError::invalid_record(
                "",
                "expected a JSON object keyed by field names",
            ));
        }
        let issues = schema.validator(catalog_item)?.issues(body, for_create);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(DesignError::InvalidRecord(issues).into())
        }
    }

    /// Creates a record (and its composed children) and returns it as stored. A DataItem
    /// with a numbered field is created in a transaction that counts its number.
    pub async fn create(&self, item: &str, body: &Json, actor: Option<&str>) -> Result<Json> {
        if !numbered_fields(&self.definitions.schema().catalog, item).is_empty() {
            let mut tx = self.db.begin().await?;
            let record = self.create_in(&mut tx, item, body, actor, 0).await?;
            tx.commit().await?;
            self.events.wake.notify_one();
            return Ok(record);
        }
        let (plan, record, evented) = self.plan_create(item, body, actor, 0)?;
        let schema = self.definitions.schema();
        plan.run(&self.db, &schema.catalog).await?;
        if evented {
            self.events.wake.notify_one();
        }
        Ok(record)
    }

    /// Creates a record inside the caller's transaction (a rule's instructions); `depth`
    /// is how many rule runs led here, carried by the event it makes.
    pub async fn create_in(
        &self,
        tx: &mut Tx,
        item: &str,
        body: &Json,
        actor: Option<&str>,
        depth: u32,
    ) -> Result<Json> {
        let body = self.number(tx, item, body).await?;
        let (plan, record, _) = self.plan_create(item, &body, actor, depth)?;
        let schema = self.definitions.schema();
        plan.run_in(tx, &schema.catalog).await?;
        Ok(record)
    }

    /// `body` with the next number of each numbered field of `item`, counted in `tx` (so a
    /// creation that fails gives its number back: gap-free). A body naming such a field is
    /// refused: the series gives it.
    async fn number(&self, tx: &mut Tx, item: &str, body: &Json) -> Result<Json> {
        let schema = self.definitions.schema();
        let numbered = numbered_fields(&schema.catalog, item);
        if numbered.is_empty() {
            return Ok(body.clone());
        }
        refuse_numbered(&numbered, body)?;
        let mut body = body.clone();
        let now_ms = Utc::now().timestamp_millis();
        for (field, spec) in &numbered {
            let scope = spec.scope(now_ms);
            let mut sql = tx.sql();
            sql.push("INSERT INTO record_series (series, last) VALUES (")
                .text(format!("{item}.{field}:{scope}"))
                .push(", 1) ON CONFLICT (series) DO UPDATE SET last = record_series.last + 1 RETURNING CAST(last AS TEXT)");
            let rows = tx.fetch(sql).await?;
            let n: u64 = rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    KernelError::Corrupt(format!("the series of {item}.{field} gave no number"))
                })?;
            if let Some(obj) = body.as_object_mut() {
                obj.insert(field.clone(), Json::String(spec.format(&scope, n)));
            }
        }
        Ok(body)
    }

    /// Computes the computed fields of every record of `item` anew (after a migration added
    /// one or changed its expression), in batches of [`RECOMPUTE_BATCH`] records, each batch
    /// its own transaction, in id order, logging the progress. Returns how many records
    /// changed. Idempotent: run again after a crash, it changes only what is still stale.
    pub async fn recompute(&self, item: &str) -> Result<u64> {
        let schema = self.definitions.schema();
        let catalog = &schema.catalog;
        let computed = catalog.computed_fields(item);
        if computed.is_empty() {
            return Ok(0);
        }
        let fields = catalog.effective_fields(item);
        let table = table_name(item);
        let total = self.count_rows(&table).await?;
        let (mut after, mut seen, mut changed): (Option<String>, u64, u64) = (None, 0, 0);
        loop {
            let mut tx = self.db.begin().await?;
            let d = tx.dialect();
            let mut sql = tx.sql();
            sql.push("SELECT ")
                .col_text("id")
                .push(" FROM ")
                .ident(&table);
            if let Some(last) = &after {
                sql.push(" WHERE \"id\" > ")
                    .param(Some(last.clone()), cast(d, FieldType::Reference));
            }
            sql.push(" ORDER BY \"id\" LIMIT ")
                .push(&RECOMPUTE_BATCH.to_string());
            let ids: Vec<String> = tx
                .fetch(sql)
                .await?
                .into_iter()
                .filter_map(|r| r.into_iter().next().flatten())
                .collect();
            let Some(last) = ids.last().cloned() else {
                tx.commit().await?;
                break;
            };
            for id in &ids {
                let id = parse_id(id, item)?;
                let stored = {
                    let mut reader = Reader::Tx(&mut tx);
                    Box::pin(read_record(&mut reader, catalog, item, id)).await?
                };
                let Some(stored) = stored else { continue };
                let mut fresh = stored.clone();
                self.computer.fill(&schema, item, &mut fresh, "")?;
                let stale: Map<String, Json> = computed
                    .iter()
                    .filter(|(name, _, _)| fresh.get(name) != stored.get(name))
                    .map(|(name, _, _)| {
                        (name.clone(), fresh.get(name).cloned().unwrap_or(Json::Null))
                    })
                    .collect();
                if stale.is_empty() {
                    continue;
                }
                let values =
                    parse_record(&fields, &stale, "").map_err(DesignError::InvalidRecord)?;
                let mut sql = tx.sql();
                sql.push("UPDATE ")
                    .ident(&table)
                    .push(" SET \"_search\" = ")
                    .text(search_document(&fields, |name| {
                        fresh.get(name).and_then(Json::as_str).map(str::to_owned)
                    }));
                for (name, value) in &values {
                    let ty = fields
                        .iter()
                        .find(|e| &e.field.name == name)
                        .map_or(FieldType::Text, |e| e.field.field_type);
                    sql.push(", ")
                        .ident(name)
                        .push(" = ")
                        .param(value.to_storage(d), cast(d, ty));
                }
                sql.push(" WHERE \"id\" = ")
                    .param(Some(id.to_string()), cast(d, FieldType::Reference));
                tx.execute(sql).await?;
                let text_of =
                    |name: &str| fresh.get(name).and_then(Json::as_str).map(str::to_owned);
                for keys in
                    crate::store::sort_keys::store(d, item, &id.to_string(), &fields, text_of)
                {
                    tx.execute(keys).await?;
                }
                changed += 1;
            }
            tx.commit().await?;
            seen += ids.len() as u64;
            tracing::info!(item = %item, done = seen, of = total, changed, "recomputing computed fields");
            after = Some(last);
        }
        Ok(changed)
    }

    async fn count_rows(&self, table: &str) -> Result<u64> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ").ident(table);
        let rows = self.db.fetch(sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0))
    }

    /// Validates a new record and prepares every statement of its creation: the rows,
    /// the audit row and its event (and says whether there is one).
    fn plan_create(
        &self,
        item: &str,
        body: &Json,
        actor: Option<&str>,
        depth: u32,
    ) -> Result<(WritePlan, Json, bool)> {
        self.definitions.refuse_writes(item)?;
        let body = &self.computed_for_create(item, body)?;
        self.validate(item, body, true)?;
        let schema = self.definitions.schema();
        let catalog = &schema.catalog;
        let obj = body.as_object().cloned().unwrap_or_default();
        let d = self.db.dialect();
        let stamp = format_datetime(&Utc::now());
        let mut plan = WritePlan::default();
        let record = plan_insert(&mut plan, d, catalog, item, &obj, None, "", &stamp)?;
        let id = record
            .get("id")
            .and_then(Json::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or_default();
        let audit = audit_sql(
            d,
            item,
            id,
            1,
            "create",
            actor,
            &Json::Object(record.clone()),
        );
        plan.statements
            .push((audit, item.to_owned(), String::new()));
        let record = Json::Object(record);
        let event = self.events.record_event(
            EventKind::RecordCreated,
            item,
            &id.to_string(),
            json!({ "record": record }),
            depth,
        );
        let evented = event.is_some();
        if let Some(event) = event {
            plan.statements
                .push((event, item.to_owned(), String::new()));
        }
        Ok((plan, record, evented))
    }

    /// The type of a DataItem's field (its own or inherited), if both exist.
    pub fn field_type(&self, item: &str, field: &str) -> Option<FieldType> {
        let schema = self.definitions.schema();
        schema.catalog.get(item)?;
        schema
            .catalog
            .effective_fields(item)
            .iter()
            .find(|e| e.field.name == field)
            .map(|e| e.field.field_type)
    }

    /// Reads a record with its composed children.
    pub async fn get(&self, item: &str, id: &str) -> Result<Json> {
        let schema = self.definitions.schema();
        schema.catalog.require(item)?;
        let id = parse_id(id, item)?;
        let mut reader = Reader::Db(&self.db);
        let record = Box::pin(read_record(&mut reader, &schema.catalog, item, id)).await?;
        record
            .map(Json::Object)
            .ok_or_else(|| KernelError::NotFound(format!("{item} record '{id}'")))
    }

    /// Changes the fields named in `body` (and replaces composed children given in it).
    /// `expected` (from the body's `version` or an `If-Match` header) guards against
    /// overwriting a change the caller has not seen.
    pub async fn patch(
        &self,
        item: &str,
        id: &str,
        body: &Json,
        expected: Option<i64>,
        actor: Option<&str>,
    ) -> Result<Json> {
        let mut tx = self.db.begin().await?;
        let (record, evented) = self
            .patch_in(&mut tx, item, id, body, expected, actor, 0)
            .await?;
        tx.commit().await?;
        if evented {
            self.events.wake.notify_one();
        }
        Ok(record)
    }

    /// Changes a record inside the caller's transaction; returns it and whether an event
    /// was written.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_in(
        &self,
        tx: &mut Tx,
        item: &str,
        id: &str,
        body: &Json,
        expected: Option<i64>,
        actor: Option<&str>,
        depth: u32,
    ) -> Result<(Json, bool)> {
        self.definitions.refuse_writes(item)?;
        self.validate(item, body, false)?;
        let schema = self.definitions.schema();
        let catalog = &schema.catalog;
        let id = parse_id(id, item)?;
        let obj = body.as_object().cloned().unwrap_or_default();
        let expected = obj.get("version").and_then(Json::as_i64).or(expected);
        let fields = catalog.effective_fields(item);
        let values = parse_record(&fields, &obj, "").map_err(DesignError::InvalidRecord)?;
        let (current, current_version) = lock_current(tx, catalog, item, id, expected).await?;
        // A numbered field may be sent back as it was read, never changed.
        let changed_numbers: Vec<_> = numbered_fields(catalog, item)
            .into_iter()
            .filter(|(name, _)| obj.get(name).is_some_and(|v| Some(v) != current.get(name)))
            .collect();
        refuse_numbered(&changed_numbers, body)?;
        let (obj, values) = if has_computed(catalog, item) {
            // Computed over the record as it will be: what is stored, with this write.
            let given = crate::computed::Computer::given(&schema, item, &obj, "");
            let mut merged = current.clone();
            merged.extend(obj.clone());
            self.computer.fill(&schema, item, &mut merged, "")?;
            crate::computed::refuse_changed(&given, &merged)?;
            let mut obj = obj;
            for (name, _, _) in catalog.computed_fields(item) {
                obj.insert(
                    name.clone(),
                    merged.get(&name).cloned().unwrap_or(Json::Null),
                );
            }
            for c in &catalog.require(item)?.consists {
                if obj.contains_key(&c.item) {
                    obj.insert(
                        c.item.clone(),
                        merged.get(&c.item).cloned().unwrap_or(Json::Null),
                    );
                }
            }
            let values = parse_record(&fields, &obj, "").map_err(DesignError::InvalidRecord)?;
            (obj, values)
        } else {
            (obj, values)
        };
        check_exist(tx, &reference_checks(&fields, &values, "")).await?;
        let mut changes = Map::new();
        for (name, value) in &values {
            let before = current.get(name).cloned().unwrap_or(Json::Null);
            let after = value.to_json();
            if before != after {
                changes.insert(name.clone(), json!({"from": before, "to": after}));
            }
        }
        let def = catalog.require(item)?.clone();
        let children_given: Vec<_> = def
            .consists
            .iter()
            .filter(|c| obj.contains_key(&c.item))
            .collect();
        if changes.is_empty() && children_given.is_empty() {
            return Ok((Json::Object(current), false));
        }
        let d = tx.dialect();
        let new_version = current_version + 1;
        let stamp = format_datetime(&Utc::now());
        let merged_text = |name: &str| -> Option<String> {
            let v = values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_json())
                .or_else(|| current.get(name).cloned())?;
            v.as_str().map(str::to_owned)
        };
        let mut sql = tx.sql();
        sql.push("UPDATE ")
            .ident(&table_name(item))
            .push(" SET \"version\" = ");
        sql.param(Some(new_version.to_string()), cast(d, FieldType::Integer));
        sql.push(", \"updated_at\" = ")
            .param(Some(stamp), cast(d, FieldType::Datetime));
        sql.push(", \"_search\" = ")
            .text(search_document(&fields, merged_text));
        for (name, value) in &values {
            if !changes.contains_key(name) {
                continue;
            }
            let ty = fields
                .iter()
                .find(|e| &e.field.name == name)
                .map_or(FieldType::Text, |e| e.field.field_type);
            sql.push(", ")
                .ident(name)
                .push(" = ")
                .param(value.to_storage(d), cast(d, ty));
        }
        sql.push(" WHERE \"id\" = ")
            .param(Some(id.to_string()), cast(d, FieldType::Reference));
        sql.push(" AND \"version\" = ").param(
            Some(current_version.to_string()),
            cast(d, FieldType::Integer),
        );
        let updated = match tx.execute(sql).await {
            Ok(n) => n,
            Err(e) => {
                return Err(
                    unique_field(catalog, item, &e).map_or(e, |f| KernelError::Unique {
                        field: format!("/{f}"),
                    }),
                );
            }
        };
        if updated == 0 {
            return Err(KernelError::VersionConflict {
                current: current_version + 1,
                sent: current_version,
            });
        }
        for keys in crate::store::sort_keys::store(d, item, &id.to_string(), &fields, merged_text) {
            tx.execute(keys).await?;
        }
        let stamp = format_datetime(&Utc::now());
        for c in children_given {
            delete_children(tx, catalog, item, id).await?;
            let mut plan = WritePlan::default();
            let written = plan_children(
                &mut plan,
                d,
                catalog,
                item,
                id,
                c,
                obj.get(&c.item),
                "",
                &stamp,
            )?;
            plan.run_in(tx, catalog).await?;
            changes.insert(c.item.clone(), json!({"to": written}));
        }
        let changed: Vec<String> = changes.keys().cloned().collect();
        let changes = Json::Object(changes);
        audit(tx, item, id, new_version, "update", actor, &changes).await?;
        let fresh = {
            let mut reader = Reader::Tx(tx);
            Box::pin(read_record(&mut reader, catalog, item, id)).await?
        }
        .map(Json::Object)
        .ok_or_else(|| KernelError::NotFound(format!("{item} record '{id}'")))?;
        let event = self.events.record_event(
            EventKind::RecordUpdated,
            item,
            &id.to_string(),
            json!({"record": fresh, "changed": changed, "changes": changes}),
            depth,
        );
        let evented = event.is_some();
        if let Some(event) = event {
            tx.execute(event).await?;
        }
        Ok((fresh, evented))
    }

    /// Deletes a record and its composed children; refused while other records reference it.
    pub async fn delete(
        &self,
        item: &str,
        id: &str,
        expected: Option<i64>,
        actor: Option<&str>,
    ) -> Result<()> {
        self.definitions.refuse_writes(item)?;
        let schema = self.definitions.schema();
        let catalog = &schema.catalog;
        catalog.require(item)?;
        let id = parse_id(id, item)?;
        let mut tx = self.db.begin().await?;
        let (current, current_version) = lock_current(&mut tx, catalog, item, id, expected).await?;
        let d = tx.dialect();
        let mut referenced_by = Vec::new();
        for (other, field) in catalog.references_to(item) {
            let mut sql = tx.sql();
            sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ")
                .ident(&table_name(&other))
                .push(" WHERE ")
                .ident(&field);
            sql.push(" = ")
                .param(Some(id.to_string()), cast(d, FieldType::Reference));
            let count = tx
                .fetch(sql)
                .await?
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .unwrap_or_default();
            if count != "0" {
                referenced_by.push(format!("{other}.{field} ({count})"));
            }
        }
        if !referenced_by.is_empty() {
            return Err(KernelError::Referenced(referenced_by));
        }
        delete_children(&mut tx, catalog, item, id).await?;
        let mut sql = tx.sql();
        sql.push("DELETE FROM ")
            .ident(&table_name(item))
            .push(" WHERE \"id\" = ");
        sql.param(Some(id.to_string()), cast(d, FieldType::Reference));
        tx.execute(sql).await?;
        for forget in crate::store::sort_keys::forget(d, item, Some(&id.to_string())) {
            tx.execute(forget).await?;
        }
        let current = Json::Object(current);
        audit(
            &mut tx,
            item,
            id,
            current_version + 1,
            "delete",
            actor,
            &current,
        )
        .await?;
        let event = self.events.record_event(
            EventKind::RecordDeleted,
            item,
            &id.to_string(),
            json!({ "record": current }),
            0,
        );
        let evented = event.is_some();
        if let Some(event) = event {
            tx.execute(event).await?;
        }
        tx.commit().await?;
        if evented {
            self.events.wake.notify_one();
        }
        Ok(())
    }

    /// One page of records matching `query` (children are not included in lists).
    pub async fn list(&self, item: &str, query: &ListQuery) -> Result<Page> {
        let schema = self.definitions.schema();
        let catalog = &schema.catalog;
        catalog.require(item)?;
        let fields = catalog.effective_fields(item);
        let d = self.db.dialect();
        let table = table_name(item);

        let mut count = Sql::new(d);
        count
            .push("SELECT CAST(COUNT(*) AS TEXT) FROM ")
            .ident(&table)
            .push(" WHERE 1=1");
        push_filters(&mut count, item, query);
        let total = self
            .db
            .fetch(count)
            .await?
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);

        let mut sql = Sql::new(d);
        select_columns(&mut sql, &fields);
        // A searchable text field sorts by its pinyin key, which is also what its cursor
        // holds: selected after the fields.
        for (f, _) in query.sort.iter().filter(|(f, _)| pinyin(f)) {
            sql.push(", ");
            crate::store::sort_keys::key_expression(&mut sql, item, &table, &f.name);
        }
        sql.push(" FROM ").ident(&table).push(" WHERE 1=1");
        push_filters(&mut sql, item, query);
        if let Some(cursor) = &query.cursor {
            push_keyset(&mut sql, query, cursor, item, &table);
        }
        // Columns are qualified with the table: in PostgreSQL a bare name in ORDER BY means
        // the output column, which is the text cast, and money would sort as text.
        sql.push(" ORDER BY ");
        for (f, desc) in &query.sort {
            if pinyin(f) {
                crate::store::sort_keys::key_expression(&mut sql, item, &table, &f.name);
            } else {
                sql.ident(&table).push(".").ident(&f.name);
            }
            sql.push(if *desc {
                " DESC NULLS FIRST, "
            } else {
                " ASC NULLS LAST, "
            });
        }
        sql.ident(&table).push(".\"id\" ASC");
        sql.push(&format!(" LIMIT {}", query.limit + 1));
        if let Some(page) = query.page {
            sql.push(&format!(
                " OFFSET {}",
                (page - 1).saturating_mul(query.limit as u64)
            ));
        }
        let rows = self.db.fetch(sql).await?;
        let more = rows.len() > query.limit;
        let mut items = Vec::with_capacity(rows.len().min(query.limit));
        for row in rows.iter().take(query.limit) {
            items.push(Json::Object(row_json(&fields, row)?));
        }
        let next_cursor = match (more, rows.get(query.limit.saturating_sub(1))) {
            (true, Some(last)) => {
                let mut extra = 4 + fields.len();
                let mut key: Vec<Option<String>> = query
                    .sort
                    .iter()
                    .map(|(f, _)| {
                        let at = if pinyin(f) {
                            extra += 1;
                            Some(extra - 1)
                        } else {
                            column_index(&fields, &f.name)
                        };
                        at.and_then(|i| last.get(i).cloned().flatten())
                    })
                    .collect();
                key.push(last.first().cloned().flatten());
                Some(encode_cursor(&key))
            }
            _ => None,
        };
        Ok(Page {
            items,
            total,
            next_cursor,
        })
    }

    /// The audit trail of one record, oldest first.
    pub async fn history(&self, item: &str, id: &str) -> Result<Vec<Json>> {
        self.definitions.schema().catalog.require(item)?;
        let id = parse_id(id, item)?;
        let d = self.db.dialect();
        let mut select = crate::store::Select::from(
            d,
            "record_changes",
            &["seq", "version", "action", "actor", "changes", "at"],
        )
        .keyed("seq");
        select
            .sql()
            .push(" WHERE item = ")
            .text(item)
            .push(" AND record_id = ")
            .param(Some(id.to_string()), cast(d, FieldType::Reference))
            .push(" ORDER BY seq");
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|r| {
                Ok(json!({
                    "version": r.int("version")?,
                    "action": r.text("action")?,
                    "actor": r.opt_text("actor")?,
                    "changes": r.json::<Json>("changes")?,
                    "at": r.parsed("at", "a date and time", |t| {
                        parse_datetime(t).map(|t| format_datetime(&t))
                    })?,
                }))
            })
            .collect()
    }
}

/// Position of a column in a row read with `select_columns`.
fn column_index(fields: &[EffectiveField], name: &str) -> Option<usize> {
    match name {
        "id" => Some(0),
        "version" => Some(1),
        "created_at" => Some(2),
        "updated_at" => Some(3),
        _ => fields
            .iter()
            .position(|e| e.field.name == name)
            .map(|i| i + 4),
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn push_filters(sql: &mut Sql, item: &str, query: &ListQuery) {
    let d = sql.dialect();
    if let Some(visible) = &query.visible {
        if visible.is_empty() {
            sql.push(" AND 1=0");
        } else {
            sql.push(" AND (");
            for (i, (field, values)) in visible.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.ident(field).push(" IN (");
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        sql.push(", ");
                    }
                    sql.text(v);
                }
                sql.push(")");
            }
            sql.push(")");
        }
    }
    for word in &query.search {
        // The grams' index finds the candidates; the document decides.
        crate::store::search_grams::candidates(sql, item, word);
        sql.push(" AND \"_search\" LIKE ")
            .text(format!("%{}%", escape_like(word)))
            .push(" ESCAPE '\\'");
    }
    for f in &query.filters {
        let ty = f.field.field_type;
        let c = cast(d, ty);
        let col = f.field.name.as_str();
        let first = f.values.first().and_then(|v| v.to_storage(d));
        sql.push(" AND ");
        match f.op {
            Op::Eq => {
                sql.ident(col).push(" = ").param(first, c);
            }
            Op::Ne => {
                sql.push("(")
                    .ident(col)
                    .push(" <> ")
                    .param(first, c)
                    .push(" OR ")
                    .ident(col)
                    .push(" IS NULL)");
            }
            Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
                let op = match f.op {
                    Op::Lt => " < ",
                    Op::Lte => " <= ",
                    Op::Gt => " > ",
                    _ => " >= ",
                };
                sql.ident(col).push(op).param(first, c);
            }
            Op::In => {
                sql.ident(col).push(" IN (");
                for (i, v) in f.values.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.param(v.to_storage(d), c);
                }
                sql.push(")");
            }
            Op::Contains => {
                let text = match f.values.first() {
                    Some(Value::Text(t)) => t.clone(),
                    _ => String::new(),
                };
                sql.push("LOWER(")
                    .ident(col)
                    .push(") LIKE ")
                    .text(format!("%{}%", escape_like(&text)))
                    .push(" ESCAPE '\\'");
            }
            Op::Null => {
                let want_null = matches!(f.values.first(), Some(Value::Boolean(true)));
                sql.ident(col).push(if want_null {
                    " IS NULL"
                } else {
                    " IS NOT NULL"
                });
            }
        }
    }
}

/// The keyset condition "after the cursor" for the list's sort (NULLs sort last ascending,
/// first descending, on both dialects), with the id as the final tie-breaker.
fn push_keyset(
    sql: &mut Sql,
    query: &ListQuery,
    cursor: &[Option<String>],
    item: &str,
    table: &str,
) {
    let d = sql.dialect();
    let mut keys: Vec<(String, FieldType, bool, bool)> = query
        .sort
        .iter()
        .map(|(f, desc)| (f.name.clone(), f.field_type, *desc, pinyin(f)))
        .collect();
    keys.push(("id".into(), FieldType::Reference, false, false));
    // A key is its column, or a searchable text field's pinyin sort key (compared as text).
    let key = |sql: &mut Sql, (name, _, _, by_pinyin): &(String, FieldType, bool, bool)| {
        if *by_pinyin {
            crate::store::sort_keys::key_expression(sql, item, table, name);
        } else {
            sql.ident(name);
        }
    };
    let ty_of = |(_, ty, _, by_pinyin): &(String, FieldType, bool, bool)| {
        if *by_pinyin { FieldType::Text } else { *ty }
    };
    sql.push(" AND (");
    for k in 0..keys.len() {
        if k > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for (j, k_j) in keys.iter().enumerate().take(k) {
            if j > 0 {
                sql.push(" AND ");
            }
            key(sql, k_j);
            match cursor.get(j).cloned().flatten() {
                Some(v) => sql.push(" = ").param(Some(v), cast(d, ty_of(k_j))),
                None => sql.push(" IS NULL"),
            };
        }
        if k > 0 {
            sql.push(" AND ");
        }
        let k_k = &keys[k];
        let ty = ty_of(k_k);
        match (cursor.get(k).cloned().flatten(), k_k.2) {
            (Some(v), false) => {
                sql.push("(");
                key(sql, k_k);
                sql.push(" > ").param(Some(v), cast(d, ty)).push(" OR ");
                key(sql, k_k);
                sql.push(" IS NULL)");
            }
            (None, false) => {
                sql.push("1=0");
            }
            (Some(v), true) => {
                key(sql, k_k);
                sql.push(" < ").param(Some(v), cast(d, ty));
            }
            (None, true) => {
                key(sql, k_k);
                sql.push(" IS NOT NULL");
            }
        }
        sql.push(")");
    }
    sql.push(")");
}

/// The references among `values` that must point at existing records: (path, target, id).
fn reference_checks(
    fields: &[EffectiveField],
    values: &[(String, Value)],
    base: &str,
) -> Vec<(String, String, Uuid)> {
    values
        .iter()
        .filter_map(|(name, value)| {
            let Value::Reference(target_id) = value else {
                return None;
            };
            let target = fields
                .iter()
                .find(|e| &e.field.name == name)?
                .field
                .target
                .clone()?;
            Some((format!("{base}/{name}"), target, *target_id))
        })
        .collect()
}

/// Refuses (422, every missing one at its path) references to records that do not exist.
async fn check_exist(tx: &mut Tx, checks: &[(String, String, Uuid)]) -> Result<()> {
    let d = tx.dialect();
    let mut issues = Vec::new();
    for (path, target, target_id) in checks {
        let mut sql = tx.sql();
        sql.push("SELECT CAST(1 AS TEXT) FROM ")
            .ident(&table_name(target))
            .push(" WHERE \"id\" = ");
        sql.param(Some(target_id.to_string()), cast(d, FieldType::Reference));
        if tx.fetch(sql).await?.is_empty() {
            issues.push(Issue::new(
                path.clone(),
                format!("no {target} record with id {target_id}"),
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(DesignError::InvalidRecord(issues).into())
    }
}

/// Reads a record inside a write transaction and checks it is at the version the caller
/// based the write on: 404 when it is gone, 409 when it moved on.
async fn lock_current(
    tx: &mut Tx,
    catalog: &Catalog,
    item: &str,
    id: Uuid,
    expected: Option<i64>,
) -> Result<(Map<String, Json>, i64)> {
    let current = {
        let mut reader = Reader::Tx(tx);
        Box::pin(read_record(&mut reader, catalog, item, id)).await?
    }
    .ok_or_else(|| KernelError::NotFound(format!("{item} record '{id}'")))?;
    let current_version = current.get("version").and_then(Json::as_i64).unwrap_or(0);
    match expected {
        Some(sent) if sent != current_version => Err(KernelError::VersionConflict {
            current: current_version,
            sent,
        }),
        _ => Ok((current, current_version)),
    }
}

/// A write prepared in full before touching the database: its statements (each with the
/// DataItem and path it writes, to name a unique violation), the references it needs to
/// exist, and the record as it will read back.
#[derive(Default)]
struct WritePlan {
    statements: Vec<(Sql, String, String)>,
    checks: Vec<(String, String, Uuid)>,
}

impl WritePlan {
    /// Maps a unique violation raised by one of the plan's statements to its field path.
    fn name_error(&self, catalog: &Catalog, error: KernelError) -> KernelError {
        for (_, item, base) in &self.statements {
            if let Some(f) = unique_field(catalog, item, &error) {
                return KernelError::Unique {
                    field: format!("{base}/{f}"),
                };
            }
        }
        error
    }

    /// Runs the plan inside an open transaction: reference checks first, then the writes.
    async fn run_in(self, tx: &mut Tx, catalog: &Catalog) -> Result<()> {
        check_exist(tx, &self.checks).await?;
        for (sql, _, _) in &self.statements {
            if let Err(e) = tx.execute(sql.clone()).await {
                return Err(self.name_error(catalog, e));
            }
        }
        Ok(())
    }

    /// Runs the plan atomically on its own. With nothing to read first, all of it goes to
    /// the database in one round trip (see `Db::write_atomically`).
    async fn run(self, db: &Db, catalog: &Catalog) -> Result<()> {
        if self.checks.is_empty() {
            let statements = self.statements.iter().map(|(s, _, _)| s.clone()).collect();
            return db
                .write_atomically(statements)
                .await
                .map_err(|e| self.name_error(catalog, e));
        }
        let mut tx = db.begin().await?;
        self.run_in(&mut tx, catalog).await?;
        tx.commit().await
    }
}

/// Prepares the insert of a record and its composed children into `plan`; returns the
/// record as it will read back. Pure: nothing is sent to the database here.
#[allow(clippy::too_many_arguments)]
fn plan_insert(
    plan: &mut WritePlan,
    d: Dialect,
    catalog: &Catalog,
    item: &str,
    obj: &Map<String, Json>,
    parent: Option<(&str, Uuid)>,
    base: &str,
    stamp: &str,
) -> Result<Map<String, Json>> {
    let fields = catalog.effective_fields(item);
    let mut values = parse_record(&fields, obj, base).map_err(DesignError::InvalidRecord)?;
    for e in &fields {
        if !obj.contains_key(&e.field.name)
            && let Some(default) = &e.field.default
        {
            let v = Value::from_json(&e.field, default)
                .map_err(|m| KernelError::invalid_record(format!("{base}/{}", e.field.name), m))?;
            values.push((e.field.name.clone(), v));
        }
    }
    let id = match obj.get("id").and_then(Json::as_str) {
        Some(given) => Uuid::parse_str(given)
            .map_err(|_| KernelError::invalid_record(format!("{base}/id"), "expected a uuid"))?,
        None => Uuid::now_v7(),
    };
    plan.checks.extend(reference_checks(&fields, &values, base));
    let text_of = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_json().as_str().map(str::to_owned))
    };
    let search = search_document(&fields, text_of);
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO ").ident(&table_name(item));
    sql.push(" (\"id\", \"version\", \"created_at\", \"updated_at\", \"_search\", \"_parent_item\", \"_parent_id\"");
    for (name, _) in &values {
        sql.push(", ").ident(name);
    }
    sql.push(") VALUES (")
        .param(Some(id.to_string()), cast(d, FieldType::Reference));
    sql.push(", ")
        .param(Some("1".into()), cast(d, FieldType::Integer));
    sql.push(", ")
        .param(Some(stamp.to_owned()), cast(d, FieldType::Datetime));
    sql.push(", ")
        .param(Some(stamp.to_owned()), cast(d, FieldType::Datetime));
    sql.push(", ").text(search);
    sql.push(", ")
        .param(parent.map(|(p, _)| p.to_owned()), None);
    sql.push(", ").param(
        parent.map(|(_, pid)| pid.to_string()),
        cast(d, FieldType::Reference),
    );
    for (name, value) in &values {
        let ty = fields
            .iter()
            .find(|e| &e.field.name == name)
            .map_or(FieldType::Text, |e| e.field.field_type);
        sql.push(", ").param(value.to_storage(d), cast(d, ty));
    }
    sql.push(")");
    plan.statements
        .push((sql, item.to_owned(), base.to_owned()));
    for keys in crate::store::sort_keys::store(d, item, &id.to_string(), &fields, text_of) {
        plan.statements
            .push((keys, item.to_owned(), base.to_owned()));
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(id.to_string()));
    for e in &fields {
        let v = values
            .iter()
            .find(|(n, _)| n == &e.field.name)
            .map_or(Json::Null, |(_, v)| v.to_json());
        out.insert(e.field.name.clone(), v);
    }
    if let Some(def) = catalog.get(item) {
        for c in &def.consists {
            let written =
                plan_children(plan, d, catalog, item, id, c, obj.get(&c.item), base, stamp)?;
            out.insert(c.item.clone(), written);
        }
    }
    out.insert("version".into(), json!(1));
    out.insert("created_at".into(), json!(stamp));
    out.insert("updated_at".into(), json!(stamp));
    Ok(out)
}

/// Prepares the inserts of the children of one composition given in a document; returns
/// them as they will read back (an array for `many`, an object or null for `one`).
#[allow(clippy::too_many_arguments)]
fn plan_children(
    plan: &mut WritePlan,
    d: Dialect,
    catalog: &Catalog,
    item: &str,
    id: Uuid,
    c: &erpos_design::Consists,
    given: Option<&Json>,
    base: &str,
    stamp: &str,
) -> Result<Json> {
    let list: Vec<Json> = match (c.cardinality, given.cloned().unwrap_or(Json::Null)) {
        (_, Json::Null) => Vec::new(),
        (Cardinality::Many, Json::Array(list)) => list,
        (_, one) => vec![one],
    };
    let mut written = Vec::new();
    for (j, child) in list.iter().enumerate() {
        let path = match c.cardinality {
            Cardinality::Many => format!("{base}/{}/{j}", c.item),
            Cardinality::One => format!("{base}/{}", c.item),
        };
        let child_obj = child.as_object().cloned().unwrap_or_default();
        let rec = plan_insert(
            plan,
            d,
            catalog,
            &c.item,
            &child_obj,
            Some((item, id)),
            &path,
            stamp,
        )?;
        written.push(Json::Object(rec));
    }
    Ok(match c.cardinality {
        Cardinality::Many => Json::Array(written),
        Cardinality::One => written.into_iter().next().unwrap_or(Json::Null),
    })
}

async fn read_record(
    reader: &mut Reader<'_>,
    catalog: &Catalog,
    item: &str,
    id: Uuid,
) -> Result<Option<Map<String, Json>>> {
    let fields = catalog.effective_fields(item);
    let d = catalog_dialect(reader);
    let mut sql = Sql::new(d);
    select_columns(&mut sql, &fields);
    sql.push(" FROM ")
        .ident(&table_name(item))
        .push(" WHERE \"id\" = ");
    sql.param(Some(id.to_string()), cast(d, FieldType::Reference));
    let rows = reader.fetch(sql).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let mut out = row_json(&fields, row)?;
    let version = out.remove("version");
    let created = out.remove("created_at");
    let updated = out.remove("updated_at");
    if let Some(def) = catalog.get(item) {
        for c in &def.consists {
            let child_fields = catalog.effective_fields(&c.item);
            let mut sql = Sql::new(d);
            select_columns(&mut sql, &child_fields);
            sql.push(" FROM ")
                .ident(&table_name(&c.item))
                .push(" WHERE \"_parent_item\" = ")
                .text(item);
            sql.push(" AND \"_parent_id\" = ")
                .param(Some(id.to_string()), cast(d, FieldType::Reference));
            let child_table = table_name(&c.item);
            sql.push(" ORDER BY ")
                .ident(&child_table)
                .push(".\"created_at\", ")
                .ident(&child_table)
                .push(".\"id\"");
            let rows = reader.fetch(sql).await?;
            let mut children = Vec::new();
            for r in &rows {
                let child_id = r
                    .first()
                    .cloned()
                    .flatten()
                    .and_then(|s| Uuid::parse_str(&s).ok());
                let child = match child_id {
                    Some(cid) => Box::pin(read_record(reader, catalog, &c.item, cid)).await?,
                    None => None,
                };
                if let Some(child) = child {
                    children.push(Json::Object(child));
                }
            }
            out.insert(
                c.item.clone(),
                match c.cardinality {
                    Cardinality::Many => Json::Array(children),
                    Cardinality::One => children.into_iter().next().unwrap_or(Json::Null),
                },
            );
        }
    }
    out.insert("version".into(), version.unwrap_or(Json::Null));
    out.insert("created_at".into(), created.unwrap_or(Json::Null));
    out.insert("updated_at".into(), updated.unwrap_or(Json::Null));
    Ok(Some(out))
}

fn catalog_dialect(reader: &Reader<'_>) -> Dialect {
    match reader {
        Reader::Db(db) => db.dialect(),
        Reader::Tx(tx) => tx.dialect(),
    }
}

async fn delete_children(tx: &mut Tx, catalog: &Catalog, item: &str, id: Uuid) -> Result<()> {
    let d = tx.dialect();
    let Some(def) = catalog.get(item) else {
        return Ok(());
    };
    for c in &def.consists {
        let mut sql = tx.sql();
        sql.push("SELECT ")
            .col_text("id")
            .push(" FROM ")
            .ident(&table_name(&c.item));
        sql.push(" WHERE \"_parent_item\" = ")
            .text(item)
            .push(" AND \"_parent_id\" = ");
        sql.param(Some(id.to_string()), cast(d, FieldType::Reference));
        let rows = tx.fetch(sql).await?;
        for row in rows {
            if let Some(child) = row
                .first()
                .cloned()
                .flatten()
                .and_then(|s| Uuid::parse_str(&s).ok())
            {
                Box::pin(delete_children(tx, catalog, &c.item, child)).await?;
                let mut sql = tx.sql();
                sql.push("DELETE FROM ")
                    .ident(&table_name(&c.item))
                    .push(" WHERE \"id\" = ");
                sql.param(Some(child.to_string()), cast(d, FieldType::Reference));
                tx.execute(sql).await?;
                for forget in crate::store::sort_keys::forget(d, &c.item, Some(&child.to_string()))
                {
                    tx.execute(forget).await?;
                }
            }
        }
    }
    Ok(())
}

/// The audit-trail row of one write.
fn audit_sql(
    d: Dialect,
    item: &str,
    id: Uuid,
    version: i64,
    action: &str,
    actor: Option<&str>,
    changes: &Json,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO record_changes (item, record_id, version, action, actor, changes, at) VALUES (");
    sql.text(item)
        .push(", ")
        .param(Some(id.to_string()), cast(d, FieldType::Reference));
    sql.push(", ")
        .param(Some(version.to_string()), cast(d, FieldType::Integer));
    sql.push(", ")
        .text(action)
        .push(", ")
        .param(actor.map(str::to_owned), None);
    sql.push(", ")
        .param(Some(changes.to_string()), cast(d, FieldType::Json));
    sql.push(", ")
        .param(
            Some(format_datetime(&Utc::now())),
            cast(d, FieldType::Datetime),
        )
        .push(")");
    sql
}

async fn audit(
    tx: &mut Tx,
    item: &str,
    id: Uuid,
    version: i64,
    action: &str,
    actor: Option<&str>,
    changes: &Json,
) -> Result<()> {
    let sql = audit_sql(tx.dialect(), item, id, version, action, actor, changes);
    tx.execute(sql).await?;
    Ok(())
}
