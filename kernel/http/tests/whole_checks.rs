//! Every definition is checked whole (issue 12, point 2): a DataItem, a service, a rule or a
//! calendar with problems of several kinds — its shape (an unknown type, a misspelled key),
//! its references (a DataItem or a service that does not exist) and its expressions (a Rhai
//! condition that does not parse, bounds that contradict each other) — gets all of them in
//! one 422, each at its JSON pointer and in document order, and nothing is stored. Before,
//! the first shape problem stopped the reading: the analyst fixed it, posted again, and only
//! then learnt of the bad reference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

/// The pointers of a refusal's details, in the order given.
fn paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str().map(str::to_owned))
        .collect()
}

/// The message of the detail at `path`.
fn message<'a>(body: &'a Value, path: &str) -> &'a str {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["path"] == path)
        .and_then(|d| d["message"].as_str())
        .unwrap_or_default()
}

/// What a list answers, to compare before and after a refused write.
async fn listing(app: &TestApp, path: &str) -> anyhow::Result<Value> {
    let (s, b) = app.call("GET", path, None).await?;
    anyhow::ensure!(s == StatusCode::OK, "{path}: {s} {b}");
    Ok(b)
}

/// The clinic's patient 患者, valid, for the service and the rule to refer to.
async fn patient(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "name": "huanzhe", "label": {"zh": "患者", "en": "Patient"},
        "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "required": true},
            {"name": "age", "label": {"zh": "年龄"}, "type": "integer", "min": 0, "max": 150},
            {"name": "first_visit", "label": {"zh": "初诊"}, "type": "boolean"}
        ]
    }))
    .await?;
    Ok(())
}

/// A treatment 治疗 with one problem of each kind, and two more: an unknown field type (the
/// field cannot be read at all), a reference to a DataItem that does not exist, bounds with
/// min above max, a pattern that is not a regular expression together with a misspelled key,
/// and a default that does not fit its type.
fn treatment_with_five_problems() -> Value {
    json!({
        "name": "zhiliao", "label": {"zh": "治疗", "en": "Treatment"},
        "fields": [
            {"name": "xiangmu", "label": {"zh": "治疗项目"}, "type": "txet"},
            {"name": "doctor", "label": {"zh": "主治医生"}, "type": "reference", "target": "yisheng"},
            {"name": "sessions", "label": {"zh": "疗程次数"}, "type": "integer", "min": 12, "max": 1},
            {"name": "code", "label": {"zh": "编码"}, "type": "text", "pattern": "([0-9", "serchable": true},
            {"name": "price", "label": {"zh": "价格"}, "type": "money", "default": "很多"}
        ]
    })
}

const TREATMENT_PATHS: [&str; 6] = [
    "/fields/0/type",
    "/fields/1/target",
    "/fields/2/min",
    "/fields/3/pattern",
    "/fields/3/serchable",
    "/fields/4/default",
];

#[tokio::test]
async fn a_data_item_with_a_shape_a_reference_and_a_bounds_problem_gets_all_of_them_at_once()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        patient(&app).await?;
        let before = listing(&app, "/api/v1/data-items").await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/data-items",
                Some(treatment_with_five_problems()),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["code"], "invalid_definition", "{b}");
        // Every problem, in the order the analyst wrote them, and nothing that only repeats
        // one (the unreadable field is not also "missing its type").
        assert_eq!(paths(&b), TREATMENT_PATHS, "{b}");
        assert!(
            message(&b, "/fields/0/type").starts_with("unknown variant `txet`"),
            "{b}"
        );
        assert_eq!(
            message(&b, "/fields/1/target"),
            "no DataItem named 'yisheng'",
            "{b}"
        );
        assert_eq!(
            message(&b, "/fields/2/min"),
            "min 12 is greater than max 1",
            "{b}"
        );
        assert!(
            message(&b, "/fields/3/serchable").starts_with("unknown field `serchable`"),
            "{b}"
        );
        // Nothing stored: the listing is as it was and no table was created.
        assert_eq!(listing(&app, "/api/v1/data-items").await?, before);
        assert!(app.columns("zhiliao").await?.is_empty());

        // A proposed change to 患者 is checked whole too, and no pending change is kept.
        let mut change = treatment_with_five_problems();
        change["name"] = json!("huanzhe");
        change["label"] = json!({"zh": "患者"});
        let (s, b) = app
            .call("PUT", "/api/v1/data-items/huanzhe", Some(change))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), TREATMENT_PATHS, "{b}");
        let (_, shown) = app.call("GET", "/api/v1/data-items/huanzhe", None).await?;
        assert!(shown["pending_change"].is_null(), "{shown}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_service_with_a_shape_a_reference_and_a_condition_problem_gets_all_of_them_at_once()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        patient(&app).await?;
        let before = listing(&app, "/api/v1/services").await?;
        let service = json!({
            "name": "treatment_visit", "label": {"zh": "治疗就诊", "en": "Treatment visit"},
            "subject": "huanzhe",
            "steps": [
                {"name": "checkin", "kind": "human", "label": {"zh": "到诊登记"}, "operaters": {"role": "front_desk"}},
                {"name": "route", "kind": "exclusive"},
                {"name": "consult", "kind": "sub_service", "service": "consultation"},
                {"name": "treat", "kind": "humen", "label": {"zh": "治疗"}},
                {"name": "bill", "kind": "automatic",
                 "instructions": [{"op": "update_record", "item": "shoufei", "set": {"paid": true}}]},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "checkin", "to": "route"},
                {"from": "route", "to": "consult", "condition": "record.first_visit == "},
                {"from": "route", "to": "treat", "default": true},
                {"from": "consult", "to": "treat"},
                {"from": "treat", "to": "bill"},
                {"from": "bill", "to": "end"}
            ]
        });
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // The misspelled key, the unknown sub-service, the unknown kind, the instruction's
        // unknown DataItem and the condition that does not parse; the transitions into the
        // unreadable step 'treat' are not also "to no step".
        assert_eq!(
            paths(&b),
            [
                "/steps/0/operaters",
                "/steps/2/service",
                "/steps/3/kind",
                "/steps/4/instructions/0/item",
                "/transitions/1/condition",
            ],
            "{b}"
        );
        assert_eq!(message(&b, "/steps/2/service"), "no service named 'consultation'", "{b}");
        assert!(message(&b, "/transitions/1/condition").contains("is not a valid Rhai expression"), "{b}");
        assert_eq!(listing(&app, "/api/v1/services").await?, before);

        // With every step readable, the graph is checked too, beside the shape problem.
        let service = json!({
            "name": "follow_up", "label": {"zh": "术后回访"}, "subject": "huanzhe",
            "steps": [
                {"name": "call", "kind": "human", "label": {"zh": "电话回访"}, "deadlin": "P1D"},
                {"name": "visit", "kind": "human", "label": {"zh": "复诊"}},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [{"from": "call", "to": "end", "condition": "record.age >"}, {"from": "visit", "to": "end"}]
        });
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/steps/0/deadlin", "/steps/1", "/transitions/0/condition"], "{b}");
        assert!(message(&b, "/steps/1").contains("cannot be reached"), "{b}");
        assert_eq!(listing(&app, "/api/v1/services").await?, before);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_rule_with_a_shape_a_reference_and_a_condition_problem_gets_all_of_them_at_once()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        patient(&app).await?;
        let rule = json!({
            "name": "new_patient_follow_up", "label": {"zh": "新患者回访"},
            "priorty": 5,
            "event": {"kind": "record.created", "item": "bingren"},
            "condition": "record.age >= ",
            "instructions": [
                {"op": "start_service", "service": "follow_up"},
                {"op": "notify", "to": ["dr_li"], "titel": "新患者 张三"}
            ]
        });
        let (s, b) = app
            .call("POST", "/api/v1/rules", Some(rule.clone()))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // The misspelled key, the unknown DataItem, the condition, the unknown service, and
        // the notification whose title is misspelled (so it has none: two problems there).
        assert_eq!(
            paths(&b),
            [
                "/priorty",
                "/event/item",
                "/condition",
                "/instructions/0/service",
                "/instructions/1",
                "/instructions/1"
            ],
            "{b}"
        );
        assert_eq!(
            message(&b, "/event/item"),
            "no DataItem named 'bingren'",
            "{b}"
        );
        assert!(message(&b, "/instructions/1").contains("titel"), "{b}");
        let (s, b) = app
            .call("PUT", "/api/v1/rules/new_patient_follow_up", Some(rule))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b).len(), 6, "{b}");
        assert_eq!(listing(&app, "/api/v1/rules").await?["total"], 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_calendar_with_unreadable_hours_and_wrong_hours_gets_all_of_them_at_once()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let before = listing(&app, "/api/v1/calendars").await?;
        let calendar = json!({
            "name": "menzhen", "label": {"zh": "门诊日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00", "12:00"]], "tue": [["25:00", "26:00"]]},
            "holidays": ["2026-02-30"],
            "exceptions": {"2026-10-10": [["18:00", "09:00"]]},
            "holidayz": []
        });
        let (s, b) = app
            .call("POST", "/api/v1/calendars", Some(calendar))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(
            paths(&b),
            [
                "/weekly/tue/0/0",
                "/holidays/0",
                "/exceptions/2026-10-10/0",
                "/holidayz"
            ],
            "{b}"
        );
        assert_eq!(listing(&app, "/api/v1/calendars").await?, before);
        Ok(())
    })
    .await
}

/// Roles, skills and departments are checked whole too: a misspelled key no longer hides
/// a bad name, a bad grant, a parent or a leader that does not exist.
#[tokio::test]
async fn organisation_bodies_get_every_problem_in_one_answer() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let roles = listing(&app, "/api/v1/roles").await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(
                    json!({"name": "Front Desk", "label": {"zh": "前台"}, "certifcation": false,
                            "permissions": ["records:huanzhe:reed"]}),
                ),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(
            paths(&b),
            ["/name", "/certifcation", "/permissions/0"],
            "{b}"
        );
        assert_eq!(listing(&app, "/api/v1/roles").await?, roles);

        let departments = listing(&app, "/api/v1/departments").await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/departments",
                Some(
                    json!({"label": {"zh": "皮肤科"}, "parent": "menzhenbu", "leeder": "dr_chen",
                            "leader": "nobody"}),
                ),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/parent", "/leeder", "/leader"], "{b}");
        assert!(message(&b, "/parent").contains("menzhenbu"), "{b}");
        assert_eq!(listing(&app, "/api/v1/departments").await?, departments);

        // A label that cannot be read is stood in for: the other problems still show.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/skills",
                Some(json!({"name": "laser", "label": "激光", "permissions": ["design"]})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(paths(&b), ["/label", "/permissions"], "{b}");
        // A resource: a misspelled key, a bad capacity and a type that does not exist.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/resources",
                Some(
                    json!({"id": "laser-room-1", "type": "laser_room", "capacty": 1, "capacity": -1,
                            "label": {"zh": "激光一室"}}),
                ),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let mut got = paths(&b);
        got.sort();
        assert_eq!(got, ["/capacity", "/capacty", "/type"], "{b}");
        Ok(())
    })
    .await
}
