//! Stored rows of erpos's own tables that do not decode (issue 12, point 5), on SQLite and
//! PostgreSQL: a row damaged by hand — a time no calendar holds, a number where a list
//! was, a JSON document of the wrong shape or no JSON at all, a negative depth — is read
//! back as an error that names the table and the column (a 500 over the API, the details
//! in the log), never as a `0`, a `""`, a `null` or a row silently missing. Where one bad
//! row must not stop the whole (the runtime's start, the rules worker, a WebSocket replay,
//! the outbox), the row is set aside and the report names the table and the column.
//!
//! PostgreSQL's columns are typed (BIGINT, JSONB, TIMESTAMPTZ) and SQLite's tables are
//! STRICT, so the damage each test does is what that backend can hold: numbers out of any
//! range and JSON of the wrong shape on both; text that is not JSON, and a non-numeric
//! number in a table rebuilt without STRICT (as a hand-edit with a generic tool leaves
//! it), on SQLite only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use erpos_kernel::sql::Sql;
use serde_json::{Value, json};

/// Runs fixed SQL written in this test (no user values) as one write.
async fn damage(app: &TestApp, statements: &[&str]) -> anyhow::Result<()> {
    let list = statements
        .iter()
        .map(|s| {
            let mut sql = Sql::new(app.kernel.db.dialect());
            sql.push(s);
            sql
        })
        .collect();
    app.kernel.db.write_atomically(list).await?;
    Ok(())
}

/// Whether `error` names the table and the column, as every stored-row error must.
fn names(error: &impl std::fmt::Display, table: &str, column: &str) -> bool {
    let text = error.to_string();
    text.contains(&format!("table {table}")) && text.contains(&format!("column {column}"))
}

/// Asserts that `result` is an error naming `table` and `column`.
fn assert_names<T: std::fmt::Debug>(
    result: Result<T, erpos_kernel::KernelError>,
    table: &str,
    column: &str,
) {
    match result {
        Ok(v) => panic!("{table}.{column}: a damaged row was read back as {v:?}"),
        Err(e) => assert!(names(&e, table, column), "{table}.{column}: {e}"),
    }
}

/// GET `path` answers 500 `internal` (the damaged row is an error, logged), not a 200
/// with a default in its place.
async fn assert_internal(app: &TestApp, path: &str) -> anyhow::Result<()> {
    let (s, b) = app.call("GET", path, None).await?;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {b}");
    assert_eq!(b["error"]["code"], "internal", "{path}: {b}");
    Ok(())
}

async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call(method, path, Some(body)).await?;
    anyhow::ensure!(s.is_success(), "{method} {path}: {s} {b}");
    Ok(b)
}

/// Rebuilds a SQLite table without STRICT (rows kept), as a generic tool's "edit table"
/// does: afterwards its INTEGER columns take any text.
async fn unstrict(app: &TestApp, table: &str, columns: &str) -> anyhow::Result<()> {
    let statements = [
        format!("ALTER TABLE {table} RENAME TO {table}_strict"),
        format!("CREATE TABLE {table} ({columns})"),
        format!("INSERT INTO {table} SELECT * FROM {table}_strict"),
        format!("DROP TABLE {table}_strict"),
    ];
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    damage(app, &refs).await
}

// ---------------------------------------------------------------------------------------

/// `audit_log.at_ms`: a time no calendar holds (both), and text where the number was
/// (SQLite, the table rebuilt without STRICT). Before: `"at": null` and `1970-01-01`.
#[tokio::test]
async fn an_audit_row_whose_time_does_not_decode_is_an_error_naming_at_ms() -> anyhow::Result<()> {
    each_backend(|app| async move {
        ok(
            &app,
            "POST",
            "/api/v1/roles",
            json!({"name": "doctor", "label": {"zh": "医生"}}),
        )
        .await?;
        let (s, b) = app.call("GET", "/api/v1/audit", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        damage(
            &app,
            &["UPDATE audit_log SET at_ms = 9223372036854775807 WHERE seq = (SELECT MAX(seq) FROM audit_log)"],
        )
        .await?;
        assert_internal(&app, "/api/v1/audit").await?;
        let listed = erpos_kernel::audit::list(&app.kernel, None, None, 50).await;
        assert_names(listed, "audit_log", "at_ms");
        if app.backend == "sqlite" {
            unstrict(
                &app,
                "audit_log",
                "seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL, \
                 action TEXT NOT NULL, subject TEXT NOT NULL",
            )
            .await?;
            damage(
                &app,
                &["UPDATE audit_log SET at_ms = 'soon' WHERE seq = (SELECT MAX(seq) FROM audit_log)"],
            )
            .await?;
            assert_internal(&app, "/api/v1/audit").await?;
            let listed = erpos_kernel::audit::list(&app.kernel, None, None, 50).await;
            let e = listed.expect_err("'soon' read back as a time");
            assert!(names(&e, "audit_log", "at_ms"), "{e}");
            assert!(e.to_string().contains("'soon' is not an integer"), "{e}");
        }
        Ok(())
    })
    .await
}

/// `rules.definition` that is not a rule (both) or not JSON (SQLite), and
/// `rule_quarantine.rules` that is not JSON (a TEXT column on both). Before: the rule was
/// listed as whatever was stored, the quarantine's `rules` as null.
#[tokio::test]
async fn a_rule_or_quarantine_row_that_does_not_decode_is_an_error_naming_its_column()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "li_yisheng", "roles": ["doctor"]}),
        )
        .await?;
        ok(
            &app,
            "POST",
            "/api/v1/rules",
            json!({"name": "on_ping", "label": {"zh": "收到信号"},
                   "event": {"kind": "signal", "name": "ping"},
                   "instructions": [{"op": "notify", "to": ["li_yisheng"], "title": "信号"}]}),
        )
        .await?;
        let (s, b) = app.call("GET", "/api/v1/rules", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");

        damage(
            &app,
            &[r#"UPDATE rules SET definition = '{"name": "on_ping", "event": 7}' WHERE name = 'on_ping'"#],
        )
        .await?;
        assert_internal(&app, "/api/v1/rules").await?;
        assert_names(app.kernel.rules.list().await, "rules", "definition");
        if app.backend == "sqlite" {
            damage(
                &app,
                &["UPDATE rules SET definition = '{not json' WHERE name = 'on_ping'"],
            )
            .await?;
            assert_internal(&app, "/api/v1/rules").await?;
            assert_names(app.kernel.rules.list().await, "rules", "definition");
        }

        damage(
            &app,
            &[r#"INSERT INTO rule_quarantine (event_seq, rules, error, attempts, at_ms) VALUES (99, '["on_ping"', 'boom', 1, 0)"#],
        )
        .await?;
        assert_internal(&app, "/api/v1/rules/quarantine").await?;
        assert_names(
            app.kernel.rules.quarantined(None, 50).await,
            "rule_quarantine",
            "rules",
        );
        Ok(())
    })
    .await
}

/// What the process runtime loads at its start: a resource without its type, a user whose
/// roles are a string, a department without a name, a service version of the wrong shape
/// and a process row that is not a PCB are set aside (the start goes on), and each report
/// names its table and column. Before: the reports did not name the column, and the
/// department without a name was loaded as a department named "". A user's damaged
/// definition is also an error when their grants are read (before: a user with no roles).
#[tokio::test]
async fn rows_the_runtime_cannot_load_are_quarantined_with_their_table_and_column()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        ok(
            &app,
            "POST",
            "/api/v1/resource-types",
            json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}),
        )
        .await?;
        ok(
            &app,
            "POST",
            "/api/v1/resources",
            json!({"id": "laser-room-1", "type": "laser_room", "label": {"zh": "激光一室"}}),
        )
        .await?;
        ok(
            &app,
            "POST",
            "/api/v1/departments",
            json!({"name": "pifuke", "label": {"zh": "皮肤科"}}),
        )
        .await?;
        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "li_yisheng", "roles": ["doctor"]}),
        )
        .await?;
        for name in ["intake", "follow_up"] {
            ok(
                &app,
                "POST",
                "/api/v1/services",
                json!({"name": name, "label": {"zh": "登记"},
                       "steps": [{"name": "review", "kind": "human", "label": {"zh": "审核"}, "operators": {"role": "doctor"}},
                                 {"name": "end", "kind": "end"}],
                       "transitions": [{"from": "review", "to": "end"}]}),
            )
            .await?;
            ok(&app, "POST", &format!("/api/v1/services/{name}/publish"), json!({})).await?;
        }
        let p = ok(&app, "POST", "/api/v1/processes", json!({"service": "intake"})).await?;
        let pid = p["id"].as_u64().unwrap_or_default();

        damage(
            &app,
            &[
                r#"UPDATE resources SET definition = '{"id": "laser-room-1"}' WHERE id = 'laser-room-1'"#,
                r#"UPDATE users SET definition = '{"id": "li_yisheng", "roles": "doctor"}' WHERE id = 'li_yisheng'"#,
                r#"UPDATE departments SET definition = '{"label": {"zh": "皮肤科"}}' WHERE name = 'pifuke'"#,
                r#"UPDATE services SET definition = '{"name": 5}' WHERE name = 'follow_up'"#,
            ],
        )
        .await?;
        let mut sql = Sql::new(app.kernel.db.dialect());
        sql.push(r#"UPDATE processes SET pcb = '{"id": "not a process"}' WHERE pid = "#)
            .int(pid as i64);
        app.kernel.db.write_atomically(vec![sql]).await?;
        // Grants are read from the stored definition: an error, not a user without roles.
        assert_names(
            app.kernel.auth.roles_of("li_yisheng").await,
            "users",
            "definition",
        );

        let app = app.restart().await?;
        let quarantined = app.kernel.engine.quarantined();
        let mut tables: Vec<&str> = quarantined.iter().map(|q| q.table).collect();
        tables.sort_unstable();
        assert_eq!(
            tables,
            ["departments", "processes", "resources", "services", "users"],
            "{quarantined:?}"
        );
        for q in &quarantined {
            let column = if q.table == "processes" { "pcb" } else { "definition" };
            assert!(names(&q.error, q.table, column), "{q:?}");
        }
        let (s, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(s, StatusCode::OK, "{health}");
        assert_eq!(health["quarantined"]["rows"]["departments"], 1, "{health}");
        // The process says why it is set aside, naming the column.
        let (s, b) = app.call("GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "quarantined", "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| names(&m, "processes", "pcb")),
            "{b}"
        );
        Ok(())
    })
    .await
}

/// `events.depth` below zero (both): the event is skipped and reported as unreadable,
/// naming the column (before: read as depth 4294967291). `process_history.at_ms` out of
/// any calendar (both): the history is an error naming it (before: `"at": null`), and the
/// WebSocket replay leaves out a change whose state is no state instead of failing whole.
#[tokio::test]
async fn events_and_history_entries_that_do_not_decode_are_reported_by_column() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        damage(
            &app,
            &[r#"INSERT INTO events (kind, subject, record_id, pid, at_ms, depth, payload) VALUES ('signal', 'ping', NULL, NULL, 0, -5, '{}')"#],
        )
        .await?;
        let events = app.kernel.events.list(None, None, None, 50).await?;
        assert!(events.is_empty(), "{events:?}");
        let unreadable = app.kernel.events.unreadable();
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert!(names(&unreadable[0].1, "events", "depth"), "{unreadable:?}");
        let (_, health) = app.call("GET", "/healthz", None).await?;
        assert_eq!(health["quarantined"]["events"], 1, "{health}");

        ok(
            &app,
            "POST",
            "/api/v1/users",
            json!({"id": "li_yisheng", "roles": ["doctor"]}),
        )
        .await?;
        ok(
            &app,
            "POST",
            "/api/v1/services",
            json!({"name": "intake", "label": {"zh": "登记"},
                   "steps": [{"name": "review", "kind": "human", "label": {"zh": "审核"}, "operators": {"role": "doctor"}},
                             {"name": "end", "kind": "end"}],
                   "transitions": [{"from": "review", "to": "end"}]}),
        )
        .await?;
        ok(&app, "POST", "/api/v1/services/intake/publish", json!({})).await?;
        let a = ok(&app, "POST", "/api/v1/processes", json!({"service": "intake"})).await?;
        let b = ok(&app, "POST", "/api/v1/processes", json!({"service": "intake"})).await?;
        let (a, b) = (
            a["id"].as_u64().unwrap_or_default(),
            b["id"].as_u64().unwrap_or_default(),
        );
        let upto = app
            .kernel
            .engine
            .changes_between(0, i64::MAX as u64)
            .await?
            .len();
        assert!(upto >= 2);

        let mut sql = Sql::new(app.kernel.db.dialect());
        sql.push("UPDATE process_history SET at_ms = 9223372036854775807 WHERE pid = ")
            .int(a as i64);
        let mut other = Sql::new(app.kernel.db.dialect());
        other
            .push("UPDATE process_history SET from_state = 'SLEEPING' WHERE pid = ")
            .int(b as i64);
        app.kernel.db.write_atomically(vec![sql, other]).await?;
        assert_names(
            app.kernel.engine.history(a).await,
            "process_history",
            "at_ms",
        );
        assert_internal(&app, &format!("/api/v1/processes/{a}")).await?;
        // The replay goes on without the changes that cannot be read back.
        let replay = app.kernel.engine.changes_between(0, i64::MAX as u64).await?;
        assert!(replay.iter().all(|c| c.entry.pid != b), "{replay:?}");
        assert!(replay.len() < upto, "{replay:?}");
        Ok(())
    })
    .await
}

/// `outbox.payload` nested past every bound (both) or not JSON (SQLite): the worker fails
/// the row, and its `last_error` names the column (before: only "cannot be read back").
/// `app_tokens.definition` whose scopes are a string (both): an error naming it (before: a
/// token with no scopes).
#[tokio::test]
async fn outbox_and_app_token_rows_that_do_not_decode_name_their_column() -> anyhow::Result<()> {
    each_backend(|app| async move {
        use erpos_kernel::clock::Clock as _;
        let mut deep = json!("title");
        for _ in 0..600 {
            deep = json!([deep]);
        }
        let delivery = erpos_kernel::outbox::Delivery {
            kind: erpos_kernel::outbox::Kind::Notify,
            payload: json!({"to": ["li_yisheng"], "title": deep}),
            due_ms: app.clock.now_ms(),
            rule: None,
            event_seq: None,
        };
        let sql = erpos_kernel::outbox::enqueue_sql(&app.kernel.db, &delivery, app.clock.now_ms());
        app.kernel.db.write_atomically(vec![sql]).await?;
        if app.backend == "sqlite" {
            let mut sql = Sql::new(app.kernel.db.dialect());
            sql.push("INSERT INTO outbox (kind, payload, state, attempts, next_at_ms, created_at_ms) VALUES ('notify', '{not json', 'pending', 0, ")
                .int(app.clock.now_ms())
                .push(", ")
                .int(app.clock.now_ms())
                .push(")");
            app.kernel.db.write_atomically(vec![sql]).await?;
        }
        app.kernel.outbox.deliver_due().await?;
        let (s, outbox) = app.call("GET", "/api/v1/outbox?state=failed", None).await?;
        assert_eq!(s, StatusCode::OK, "{outbox}");
        let failed = outbox["items"].as_array().cloned().unwrap_or_default();
        let expected = if app.backend == "sqlite" { 2 } else { 1 };
        assert_eq!(failed.len(), expected, "{outbox}");
        for item in &failed {
            let error = item["last_error"].as_str().unwrap_or_default();
            assert!(error.contains("cannot be read back"), "{item}");
            assert!(names(&error, "outbox", "payload"), "{item}");
        }

        damage(
            &app,
            &[r#"INSERT INTO app_tokens (name, secret, definition, created_ms, created_by) VALUES ('oa', 'oa-secret-0123456789abcdef', '{"services": ["*"], "scopes": "records:*"}', 0, 'admin')"#],
        )
        .await?;
        assert_names(app.kernel.auth.apps().await, "app_tokens", "definition");
        assert_internal(&app, "/api/v1/app-tokens").await?;
        Ok(())
    })
    .await
}

/// `resource_types.definition` that is not an object (both) or not JSON (SQLite): an
/// error naming it (before: listed as a string, or silently left out). A DataItem's
/// stored definition of the wrong shape stops the start with an error naming
/// `data_items.definition`. `record_changes.at` that is not a time (SQLite; a TIMESTAMPTZ
/// on PostgreSQL): the record's history is an error naming it (before: `"at": null`).
#[tokio::test]
async fn definitions_and_record_history_that_do_not_decode_name_their_column() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        ok(
            &app,
            "POST",
            "/api/v1/resource-types",
            json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}}),
        )
        .await?;
        damage(
            &app,
            &[r#"UPDATE resource_types SET definition = '"laser_room"' WHERE name = 'laser_room'"#],
        )
        .await?;
        assert_internal(&app, "/api/v1/resource-types").await?;
        assert_names(
            erpos_kernel::resources::types(&app.kernel).await,
            "resource_types",
            "definition",
        );
        if app.backend == "sqlite" {
            damage(
                &app,
                &["UPDATE resource_types SET definition = '{oops' WHERE name = 'laser_room'"],
            )
            .await?;
            assert_internal(&app, "/api/v1/resource-types").await?;
        }

        app.define(common::patient_def()).await?;
        let record = app.create("huanzhe", json!({"xingming": "张三"})).await?;
        let id = record["id"].as_str().unwrap_or_default().to_owned();
        let history = app.kernel.records.history("huanzhe", &id).await?;
        assert_eq!(history.len(), 1, "{history:?}");
        if app.backend == "sqlite" {
            damage(&app, &["UPDATE record_changes SET at = 'yesterday'"]).await?;
            assert_names(
                app.kernel.records.history("huanzhe", &id).await,
                "record_changes",
                "at",
            );
            assert_internal(&app, &format!("/api/v1/records/huanzhe/{id}/history")).await?;
        }

        damage(
            &app,
            &[r#"UPDATE data_items SET definition = '{"name": "huanzhe"}' WHERE name = 'huanzhe'"#],
        )
        .await?;
        match app.restart().await {
            Ok(_) => panic!("a DataItem that does not decode was loaded"),
            Err(e) => assert!(names(&e, "data_items", "definition"), "{e:#}"),
        }
        Ok(())
    })
    .await
}
