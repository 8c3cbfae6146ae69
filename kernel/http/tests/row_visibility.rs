//! Row visibility (issue 13 §8), on both databases: a DataItem's rules say which of its
//! records each role sees — a nurse the patients of her branch (and a regional nurse those
//! of every branch below her department), a doctor the patients he attends, a manager all —
//! and lists (their totals too), search, reads, writes, deletes, binding a record to a
//! process, and the record a process shows to someone taking no part in it all follow
//! them. A record outside one's scope is answered as one that does not exist. Before, a
//! reader of a DataItem saw every record.

mod common;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

const READ_WRITE: [&str; 4] = [
    "records:huanzhe:read",
    "records:huanzhe:create",
    "records:huanzhe:update",
    "records:huanzhe:delete",
];

/// A user holding `role` in `department`, logged in.
async fn member(
    app: &TestApp,
    id: &str,
    role: &str,
    department: Option<&str>,
) -> anyhow::Result<String> {
    let mut user = json!({"id": id, "roles": [role], "password": format!("password-of-{id}")});
    if let Some(d) = department {
        user["department"] = json!(d);
    }
    let (s, b) = app.call("POST", "/api/v1/users", Some(user)).await?;
    anyhow::ensure!(s == StatusCode::CREATED, "user {id}: {s} {b}");
    app.login(id, &format!("password-of-{id}")).await
}

async fn clinic(app: &TestApp) -> anyhow::Result<Vec<(String, String)>> {
    for (name, zh, parent) in [
        ("shanghai", "上海区", None),
        ("jingan", "静安店", Some("shanghai")),
        ("xuhui", "徐汇店", Some("shanghai")),
    ] {
        let mut d = json!({"name": name, "label": {"zh": zh}});
        if let Some(p) = parent {
            d["parent"] = json!(p);
        }
        let (s, b) = app.call("POST", "/api/v1/departments", Some(d)).await?;
        anyhow::ensure!(s.is_success(), "department {name}: {s} {b}");
    }
    for (role, zh, grants) in [
        ("nurse", "护士", READ_WRITE.to_vec()),
        ("doctor", "医生", vec!["records:huanzhe:read"]),
        ("manager", "店长", vec!["records:huanzhe:read"]),
        (
            "clerk",
            "前台",
            vec!["records:huanzhe:read", "services:visit:view"],
        ),
    ] {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/roles",
                Some(json!({"name": role, "label": {"zh": zh}, "permissions": grants})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "role {role}: {s} {b}");
    }
    app.staff(&["dr_li", "dr_wang"]).await?;
    app.define(json!({
        "name": "huanzhe", "label": {"zh": "患者"},
        "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
            {"name": "mendian", "label": {"zh": "门店"}, "type": "text"},
            {"name": "yisheng", "label": {"zh": "主治医生"}, "type": "text"}
        ],
        "visibility": [
            {"role": "nurse", "sees": "department", "field": "mendian"},
            {"role": "doctor", "sees": "user", "field": "yisheng"},
            {"role": "manager", "sees": "all"}
        ]
    }))
    .await?;
    let mut ids = Vec::new();
    for (name, branch, doctor) in [
        ("曾丽", "jingan", "dr_li"),
        ("单雪", "xuhui", "dr_li"),
        ("解晓东", "jingan", "dr_wang"),
        ("仇敏", "xuhui", "dr_wang"),
    ] {
        let r = app
            .create(
                "huanzhe",
                json!({"xingming": name, "mendian": branch, "yisheng": doctor}),
            )
            .await?;
        ids.push((
            name.to_owned(),
            r["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(ids)
}

fn id_of<'a>(ids: &'a [(String, String)], name: &str) -> &'a str {
    ids.iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, id)| id.as_str())
}

/// The names a caller's list shows, and its total.
async fn names(app: &TestApp, token: &str, query: &str) -> anyhow::Result<(Vec<String>, u64)> {
    let (s, b) = app
        .call_as(
            As::Bearer(token),
            "GET",
            &format!("/api/v1/records/huanzhe?sort=xingming{query}"),
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
    let names = b["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["xingming"].as_str().map(str::to_owned))
        .collect();
    Ok((names, b["total"].as_u64().unwrap_or_default()))
}

#[tokio::test]
async fn each_role_sees_the_records_its_rule_admits_and_nothing_else() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let ids = clinic(&app).await?;
        let nurse = member(&app, "nurse_wang", "nurse", Some("jingan")).await?;
        let regional = member(&app, "nurse_zhou", "nurse", Some("shanghai")).await?;
        let doctor = member(&app, "dr_li_login", "doctor", None).await?;
        let manager = member(&app, "manager_chen", "manager", Some("xuhui")).await?;
        let clerk = member(&app, "clerk_sun", "clerk", Some("jingan")).await?;

        // Lists, with totals that count only what the caller sees (pinyin order).
        assert_eq!(
            names(&app, &nurse, "").await?,
            (vec!["解晓东".to_owned(), "曾丽".to_owned()], 2)
        );
        assert_eq!(
            names(&app, &regional, "").await?.1,
            4,
            "a regional nurse sees every branch below her"
        );
        assert_eq!(names(&app, &manager, "").await?.1, 4);
        assert_eq!(
            names(&app, &clerk, "").await?,
            (Vec::new(), 0),
            "no rule of the clerk's role: no record"
        );
        assert_eq!(
            names(&app, &nurse, "&limit=1").await?.1,
            2,
            "pages count only what is visible"
        );
        // Search and filters stay inside the scope.
        assert_eq!(names(&app, &nurse, "&q=zl").await?.0, ["曾丽"]);
        assert_eq!(
            names(&app, &nurse, "&q=sx").await?.1,
            0,
            "单雪 is of 徐汇店"
        );
        assert_eq!(names(&app, &nurse, "&mendian=xuhui").await?.1, 0);

        // A doctor's user-id rule: he sees the patients he attends, whatever the branch.
        let doctor_li = member(&app, "dr_li_2", "doctor", None).await?;
        assert_eq!(
            names(&app, &doctor_li, "").await?.1,
            0,
            "nobody is attended by dr_li_2"
        );
        let (s, b) = app
            .call(
                "PATCH",
                &format!("/api/v1/records/huanzhe/{}", id_of(&ids, "单雪")),
                Some(json!({"yisheng": "dr_li_login"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(names(&app, &doctor, "").await?.0, ["单雪"]);

        // Reads, writes and deletes outside the scope: 404, as for a record that does not
        // exist; nothing changes.
        let other = id_of(&ids, "单雪");
        let missing = "0190a000-0000-7000-8000-000000000000";
        for (method, body) in [
            ("GET", None),
            ("PATCH", Some(json!({"xingming": "改名"}))),
            ("DELETE", None),
        ] {
            let (s, b) = app
                .call_as(
                    As::Bearer(&nurse),
                    method,
                    &format!("/api/v1/records/huanzhe/{other}"),
                    body.clone(),
                )
                .await?;
            assert_eq!(s, StatusCode::NOT_FOUND, "{method}: {b}");
            let (s2, _) = app
                .call_as(
                    As::Bearer(&nurse),
                    method,
                    &format!("/api/v1/records/huanzhe/{missing}"),
                    body,
                )
                .await?;
            assert_eq!(s2, StatusCode::NOT_FOUND, "{method} of a missing record");
        }
        let (_, still) = app
            .call("GET", &format!("/api/v1/records/huanzhe/{other}"), None)
            .await?;
        assert_eq!(still["xingming"], "单雪", "{still}");
        // Inside the scope: read and written as before.
        let own = id_of(&ids, "曾丽");
        let (s, r) = app
            .call_as(
                As::Bearer(&nurse),
                "GET",
                &format!("/api/v1/records/huanzhe/{own}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{r}");
        // A write that would move a record out of one's scope, or create one outside it: 403.
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "PATCH",
                &format!("/api/v1/records/huanzhe/{own}"),
                Some(json!({"mendian": "xuhui"})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("'mendian' one of jingan"),
            "{b}"
        );
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({"xingming": "区家明", "mendian": "xuhui"})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "POST",
                "/api/v1/records/huanzhe",
                Some(json!({"xingming": "查小欣", "mendian": "jingan"})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(names(&app, &nurse, "").await?.1, 3);

        // A department moved under another changes what "my department" covers at once.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/departments",
                Some(json!({"name": "xuhui", "label": {"zh": "徐汇店"}, "parent": "jingan"})),
            )
            .await?;
        assert!(s.is_success(), "{s} {b}");
        assert_eq!(
            names(&app, &nurse, "").await?.1,
            5,
            "徐汇店 is now below 静安店"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_process_shows_a_bound_record_only_within_the_viewers_scope() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let ids = clinic(&app).await?;
        let service = json!({
            "name": "visit", "label": {"zh": "到店就诊"}, "subject": "huanzhe",
            "steps": [
                {"name": "checkin", "kind": "human", "label": {"zh": "到店登记"}, "operators": {"user": "dr_li"}},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [{"from": "checkin", "to": "end", "attribute": "agree"}]
        });
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app.call("POST", "/api/v1/services/visit/publish", None).await?;
        assert!(s.is_success(), "{b}");
        let (s, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "visit", "record": {"item": "huanzhe", "id": id_of(&ids, "单雪")}}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let pid = p["id"].as_u64().unwrap_or_default();
        // A clerk who may view every visit but has no rule on 患者 sees the process, not the
        // patient in it.
        let clerk = member(&app, "clerk_sun", "clerk", Some("jingan")).await?;
        let (s, seen) = app.call_as(As::Bearer(&clerk), "GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert_eq!(s, StatusCode::OK, "{seen}");
        assert!(!seen.to_string().contains("单雪"), "{seen}");
        let (_, admin) = app.call("GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert!(admin.to_string().contains("单雪"), "{admin}");
        // Binding a record outside one's scope: answered as a record that does not exist.
        let (s, role) = app.call("POST", "/api/v1/roles", Some(json!({"name": "nurse", "label": {"zh": "护士"},
            "permissions": ["records:huanzhe:read", "records:huanzhe:create", "services:visit:start"]}))).await?;
        assert!(s.is_success(), "{role}");
        let nurse = member(&app, "nurse_wang", "nurse", Some("jingan")).await?;
        let start = |id: &str| json!({"service": "visit", "record": {"item": "huanzhe", "id": id}});
        let (s, outside) = app.call_as(As::Bearer(&nurse), "POST", "/api/v1/processes", Some(start(id_of(&ids, "单雪")))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{outside}");
        let (s2, ghost) = app.call_as(As::Bearer(&nurse), "POST", "/api/v1/processes", Some(start("0190a000-0000-7000-8000-000000000000"))).await?;
        assert_eq!(s2, StatusCode::UNPROCESSABLE_ENTITY, "{ghost}");
        let (s, inside) = app.call_as(As::Bearer(&nurse), "POST", "/api/v1/processes", Some(start(id_of(&ids, "曾丽")))).await?;
        assert_eq!(s, StatusCode::CREATED, "{inside}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn visibility_rules_are_checked_when_saved_and_their_roles_when_removed() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        clinic(&app).await?;
        let def = |rule: Value| json!({"name": "zhenshi", "label": {"zh": "诊室"},
            "fields": [{"name": "mendian", "label": {"zh": "门店"}, "type": "text"}, {"name": "mianji", "label": {"zh": "面积"}, "type": "integer"}],
            "visibility": [rule]});
        for (rule, at, says) in [
            (json!({"role": "nures", "sees": "department", "field": "mendian"}), "/visibility/0/role", "did you mean 'nurse'"),
            (json!({"role": "nurse", "sees": "department", "field": "mendain"}), "/visibility/0/field", "did you mean 'mendian'"),
            (json!({"role": "nurse", "sees": "department", "field": "mianji"}), "/visibility/0/field", "integer field"),
            (json!({"role": "nurse", "sees": "department"}), "/visibility/0/field", "names the field"),
            (json!({"role": "nurse", "sees": "all", "field": "mendian"}), "/visibility/0/field", "leave field out"),
            (json!({"role": "nurse", "sees": "everyone"}), "/visibility/0/sees", "unknown variant"),
        ] {
            let (s, b) = app.call("POST", "/api/v1/data-items", Some(def(rule.clone()))).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{rule}: {b}");
            let detail = b["error"]["details"].as_array().into_iter().flatten()
                .find(|d| d["path"] == at).cloned().unwrap_or_default();
            assert!(detail["message"].as_str().unwrap_or_default().contains(says), "{rule}: {b}");
        }
        // A bounded number of rules.
        let many: Vec<Value> = (0..101).map(|_| json!({"role": "*", "sees": "all"})).collect();
        let mut too_many = def(json!({"role": "*", "sees": "all"}));
        too_many["visibility"] = json!(many);
        let (s, b) = app.call("POST", "/api/v1/data-items", Some(too_many)).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/visibility", "{b}");
        // A role a DataItem's rules name cannot be removed.
        let (s, b) = app.call("DELETE", "/api/v1/roles/doctor", None).await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        assert_eq!(b["error"]["code"], "in_use", "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("'huanzhe'"), "{b}");
        // Changing the rules is a migration like any other: shown, applied, no table change.
        let (s, plan) = app.call("PUT", "/api/v1/data-items/huanzhe", Some(json!({"label": {"zh": "患者"},
            "fields": [
                {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "searchable": true},
                {"name": "mendian", "label": {"zh": "门店"}, "type": "text"},
                {"name": "yisheng", "label": {"zh": "主治医生"}, "type": "text"}
            ],
            "visibility": [{"role": "nurse", "sees": "department", "field": "mendian"}]}))).await?;
        assert_eq!(s, StatusCode::OK, "{plan}");
        assert!(plan["plan"]["steps"][0]["description"].as_str().unwrap_or_default().contains("row visibility"), "{plan}");
        let (s, b) = app.call("POST", "/api/v1/data-items/huanzhe/migration", None).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app.call("DELETE", "/api/v1/roles/doctor", None).await?;
        assert!(s.is_success(), "the doctor role is free again: {s} {b}");
        Ok(())
    })
    .await
}
