//! The bounds of what the API accepts, on SQLite and PostgreSQL (issue 11, items 2, 17, 18,
//! 19, 20): JSON nested too deep or holding NUL is refused where it enters (422 naming
//! it) and what was accepted reads back after a restart; a process context is at most
//! 64 KiB; page and cursor parameters out of range are 400 on every list; a DataItem has at
//! most 300 fields; user and resource ids are a safe charset unique without case, and
//! labels refuse invisible characters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

/// `{"a": {"a": … 1}}`, `levels` deep.
fn nest(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

fn first_path(body: &Value) -> String {
    body["error"]["details"][0]["path"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A DataItem with a text and a json field, a doctor, and a service that waits for a
/// payment signal, then has a doctor review.
async fn intake(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "name": "dangan", "label": {"zh": "档案", "en": "File"},
        "fields": [
            {"name": "note", "label": {"zh": "备注"}, "type": "text"},
            {"name": "data", "label": {"zh": "数据"}, "type": "json"}
        ]
    }))
    .await?;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "li_yisheng", "roles": ["doctor"]})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    let service = json!({
        "name": "intake", "label": {"zh": "登记"}, "subject": "dangan",
        "steps": [
            {"name": "wait_pay", "kind": "wait", "label": {"zh": "等待付款"}, "wait": {"event": "paid"}},
            {"name": "review", "kind": "human", "label": {"zh": "审核"}, "operators": {"role": "doctor"}},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "wait_pay", "to": "review"}, {"from": "review", "to": "end"}]});
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/intake/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    Ok(())
}

async fn start(app: &TestApp, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    app.call("POST", "/api/v1/processes", Some(body)).await
}

#[tokio::test]
async fn json_nested_too_deep_or_holding_nul_is_refused_where_it_enters() -> anyhow::Result<()> {
    each_backend(|app| async move {
        intake(&app).await?;
        // The probe's 126 levels in a json field: 422 naming the field, nothing stored.
        let (s, b) = app
            .call("POST", "/api/v1/records/dangan", Some(json!({"data": nest(126)})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(first_path(&b).starts_with("/data"), "{b}");
        assert_eq!(app.count_rows("dangan").await?, 0);
        // 32 levels in all (the field's value 31) is accepted and reads back.
        let deepest = nest(31);
        let rec = app.create("dangan", json!({"data": deepest})).await?;
        let id = rec["id"].as_str().unwrap_or_default().to_owned();
        // Past serde_json's own limit the body is not even JSON it reads: a 400.
        let (s, _) = app
            .call("POST", "/api/v1/records/dangan", Some(json!({"data": nest(200)})))
            .await?;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // NUL in text (PostgreSQL cannot store it): 422 on both databases.
        let (s, b) = app
            .call("POST", "/api/v1/records/dangan", Some(json!({"note": "a\u{0}b"})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/note", "{b}");
        let (s, b) = app
            .call("POST", "/api/v1/records/dangan", Some(json!({"data": {"k\u{0}": 1}})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

        // A context too deep is refused at the start, naming /context.
        let (s, b) = start(&app, json!({"service": "intake", "context": {"x": nest(40)}})).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(first_path(&b).starts_with("/context"), "{b}");
        // A process bound to the deepest record, with the deepest context a body allows.
        let (s, pcb) = start(
            &app,
            json!({"service": "intake", "record": {"item": "dangan", "id": id}, "context": {"x": nest(30)}}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{pcb}");
        let pid = pcb["id"].as_u64().unwrap_or_default();
        // A signal's payload too deep: 422 naming /payload; the process still waits.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/signal"),
                Some(json!({"event": "paid", "payload": nest(40)})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(first_path(&b).starts_with("/payload"), "{b}");
        // And through the rules' signal route.
        let (s, b) = app
            .call("POST", "/api/v1/events/ping", Some(nest(40)))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/signal"),
                Some(json!({"event": "paid", "payload": nest(30)})),
            )
            .await?;
        assert!(s.is_success(), "{b}");

        // Everything accepted reads back, after a restart too.
        let app = app.restart().await?;
        let (s, p) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["context"]["record"]["data"], deepest);
        assert_eq!(p["context"]["signals"]["paid"], nest(30));
        assert_eq!(p["context"]["x"], nest(30));
        let (s, r) = app
            .call("GET", &format!("/api/v1/records/dangan/{id}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(r["data"], deepest);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_process_context_is_at_most_64_kib() -> anyhow::Result<()> {
    each_backend(|app| async move {
        intake(&app).await?;
        // The probe's 1.9 MB start: refused, naming /context, and no process made.
        let (s, b) = start(
            &app,
            json!({"service": "intake", "context": {"blob": "x".repeat(1_900_000)}}),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/context", "{b}");
        let (s, b) = start(
            &app,
            json!({"service": "intake", "context": {"blob": "x".repeat(70_000)}}),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // A caller's own `record` key is refused whatever its size (the bound record is
        // only ever read from storage; see security_api).
        let (s, b) = start(
            &app,
            json!({"service": "intake", "context": {"record": {"blob": "x".repeat(70_000)}}}),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/context/record", "{b}");
        let (_, list) = app.call("GET", "/api/v1/processes", None).await?;
        assert_eq!(list["total"], 0, "{list}");
        // Just under the bound is fine.
        let (s, pcb) = start(
            &app,
            json!({"service": "intake", "context": {"blob": "x".repeat(60_000)}}),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{pcb}");
        let pid = pcb["id"].as_u64().unwrap_or_default();
        // A signal whose payload would take the context over the bound: refused.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/signal"),
                Some(json!({"event": "paid", "payload": "y".repeat(10_000)})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/payload", "{b}");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/signal"),
                Some(json!({"event": "paid", "payload": "ok"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        let (_, before) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(before["state"], "RUNNING", "{before}");
        // Completing with a context patch that would take it over: refused, unchanged.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({"context": {"more": "z".repeat(10_000)}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/context", "{b}");
        let (_, after) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(after["state"], "RUNNING");
        assert_eq!(after["history"], before["history"], "no history written");
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({"context": {"record": {"more": "z".repeat(70_000)}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // A comment or reason past 4,000 characters is refused too.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/suspend"),
                Some(json!({"reason": "r".repeat(5_000)})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/reason", "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn page_cursor_and_limit_out_of_range_are_400_on_every_list() -> anyhow::Result<()> {
    each_backend(|app| async move {
        intake(&app).await?;
        app.create("dangan", json!({"note": "张三"})).await?;
        let huge = "18446744073709551615";
        let bad_cursor = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"["not a time","not an id"]"#)
        };
        for (path, param) in [
            (format!("/api/v1/records/dangan?page={huge}"), "page"),
            ("/api/v1/records/dangan?page=0".into(), "page"),
            ("/api/v1/records/dangan?page=100001".into(), "page"),
            ("/api/v1/records/dangan?limit=501".into(), "limit"),
            (
                format!("/api/v1/records/dangan?cursor={bad_cursor}"),
                "cursor",
            ),
            ("/api/v1/records/dangan?cursor=%25%25".into(), "cursor"),
            ("/api/v1/records/dangan?note=a%00b".into(), "note\\0"),
            (format!("/api/v1/processes?cursor={huge}0"), "cursor"),
            (format!("/api/v1/processes?limit={huge}"), "limit"),
            (format!("/api/v1/events?before={huge}"), "before"),
            ("/api/v1/events?limit=0".into(), "limit"),
            (format!("/api/v1/audit?before={huge}"), "before"),
            (format!("/api/v1/work-items?cursor={huge}0"), "cursor"),
            ("/api/v1/outbox?limit=-1".into(), "limit"),
            (format!("/api/v1/outbox?before={huge}"), "before"),
            (format!("/api/v1/notifications?limit={huge}"), "limit"),
            (format!("/api/v1/processes?page={huge}"), "page"),
        ] {
            let (s, b) = app.call("GET", &path, None).await?;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
            let at = first_path(&b);
            assert!(
                at == format!("/query/{param}") || param == "note\\0",
                "{path} names {at}: {b}"
            );
        }
        // The last page a list takes still answers.
        let (s, b) = app
            .call("GET", "/api/v1/records/dangan?page=100000", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        // A NUL in a path segment is a 4xx, not a database error.
        let (s, b) = app
            .call("GET", "/api/v1/records/dangan/a%00b", None)
            .await?;
        assert!(s.is_client_error(), "{s} {b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_data_item_has_at_most_300_fields() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let fields = |n: usize| -> Value {
            (0..n)
                .map(|i| json!({"name": format!("f{i}"), "label": {"zh": format!("字段{i}")}, "type": "text"}))
                .collect()
        };
        // The probe's 2,100 fields: 422 naming /fields (not SQLite's column limit, a 500).
        for n in [2_100, 1_601, 301] {
            let (s, b) = app
                .call(
                    "POST",
                    "/api/v1/data-items",
                    Some(json!({"name": "kuan", "label": {"zh": "宽表"}, "fields": fields(n)})),
                )
                .await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {b}");
            assert_eq!(first_path(&b), "/fields", "{b}");
        }
        // 300 fit both databases, with a long value in every one of them.
        app.define(json!({"name": "kuan", "label": {"zh": "宽表"}, "fields": fields(300)}))
            .await?;
        let record: serde_json::Map<String, Value> = (0..300)
            .map(|i| (format!("f{i}"), json!("长".repeat(200))))
            .collect();
        app.create("kuan", Value::Object(record)).await?;
        // Inherited fields count: a child of the wide item may add none.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(json!({"name": "kuan_child", "label": {"zh": "子表"}, "extends": "kuan", "fields": fields(1)})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // Composition and labels are bounded too.
        let consists: Vec<Value> = (0..33)
            .map(|i| json!({"item": format!("c{i}"), "cardinality": "many"}))
            .collect();
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(json!({"name": "duo", "label": {"zh": "多"}, "consists": consists})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(
            b["error"]["details"]
                .as_array()
                .is_some_and(|d| d.iter().any(|i| i["path"] == "/consists")),
            "{b}"
        );
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(json!({"name": "chang", "label": {"zh": "长".repeat(201)}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/label/zh", "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn ids_are_a_safe_charset_unique_without_case_and_labels_are_visible() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let user = |body: Value| app.call("POST", "/api/v1/users", Some(body));
        let (s, b) = user(json!({"id": "li_yisheng", "roles": ["doctor"]})).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        // Zero-width, bidi and control characters, and look-alike letters: 422 at /id.
        for id in ["li_yisheng\u{200b}", "\u{202e}gnehsiy_il", "li\tyisheng", "lі_yisheng", ""] {
            let (s, b) = user(json!({"id": id})).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{id:?}: {b}");
            assert_eq!(first_path(&b), "/id", "{b}");
        }
        // A case variant of a taken id: 409 naming /id.
        let (s, b) = user(json!({"id": "Li_Yisheng"})).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(first_path(&b), "/id", "{b}");
        // The same id again replaces the user (unchanged behaviour).
        let (s, b) = user(json!({"id": "li_yisheng", "roles": ["doctor", "surgeon"]})).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        // Role names a user holds are names; a display name must be visible text.
        let (s, b) = user(json!({"id": "wang", "roles": ["doctor\u{200b}"]})).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/roles/0", "{b}");
        let (s, b) = user(json!({"id": "wang", "name": "王医生\u{202e}"})).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/name", "{b}");
        let (s, b) = user(json!({"id": "wang_hushi", "name": "王丽 护士"})).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");

        // Resources: a hyphenated id is fine, a case variant or an invisible one is not.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/resource-types",
                Some(json!({"name": "laser_room", "kind": "facility", "label": {"zh": "激光室"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let resource = |id: &str, zh: &str| {
            app.call(
                "POST",
                "/api/v1/resources",
                Some(json!({"id": id, "type": "laser_room", "label": {"zh": zh}})),
            )
        };
        let (s, b) = resource("laser-room-1", "激光一室").await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = resource("Laser-Room-1", "激光一室").await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = resource("laser-room-1\u{200d}", "激光一室").await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = resource("laser-room-2", "激光\u{200b}二室").await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/label/zh", "{b}");

        // Roles, departments and skills: labels must be visible text.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(json!({"name": "nurse", "label": {"zh": "护士\u{200b}"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/label/zh", "{b}");
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/departments",
                Some(json!({"name": "laser", "label": {"zh": "激光科", "en": "Laser\u{0007}"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(first_path(&b), "/label/en", "{b}");

        // DataItems: item, field and option labels; Chinese and emoji stay fine.
        for (def, at) in [
            (
                json!({"label": {"zh": "患者\u{200b}"}, "fields": []}),
                "/label/zh",
            ),
            (
                json!({"label": {"zh": "患者"}, "fields": [{"label": {"zh": "姓\u{202e}名"}, "type": "text"}]}),
                "/fields/0/label/zh",
            ),
            (
                json!({"label": {"zh": "患者"}, "fields": [{"name": "source", "label": {"zh": "来源"}, "type": "enum", "options": ["微博", "小\u{0000}红书"]}]}),
                "/fields/0/options/1",
            ),
        ] {
            let (s, b) = app.call("POST", "/api/v1/data-items", Some(def)).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert!(
                b["error"]["details"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|i| i["path"] == at)),
                "{at}: {b}"
            );
        }
        app.define(json!({"label": {"zh": "患者 🩺", "en": "Patient"}, "fields": [
            {"label": {"zh": "姓名"}, "type": "text"},
            {"name": "source", "label": {"zh": "客户来源"}, "type": "enum", "options": ["小红书", "微博", "朋友介绍"]}]}))
            .await?;
        Ok(())
    })
    .await
}
