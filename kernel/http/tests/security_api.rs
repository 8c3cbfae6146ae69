//! What a probe of the release build found about reading and writing past one's grants
//! (issue 11, items 3, 4, 5, 7, 8, 10, 11, 22), each as a user with narrow grants would try
//! it, over HTTP, on both databases: binding records to processes, the answers to writes,
//! composed children, forged records at `complete`, secrets in definitions, webhooks into
//! the server's own network, hidden fields in process views, and ids that tell whether
//! something exists.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

/// The leave request's form, with a field the leader must not see (`reason` is hidden at
/// the leader's step) and one the applicant's step hides (`leader_opinion`), and a service
/// whose leader is the user `lin`, who holds no record grant at all: what he reads of the
/// record he reads as a participant.
async fn leave(app: &TestApp) -> anyhow::Result<()> {
    // The approvers the service names.
    app.staff(&["lin", "liuyang"]).await?;
    app.define(json!({
        "name": "qingjia", "label": {"zh": "请假单", "en": "Leave form"},
        "fields": [
            {"name": "days", "label": {"zh": "请假天数"}, "type": "integer", "required": true},
            {"name": "reason", "label": {"zh": "事由"}, "type": "text"},
            {"name": "leader_opinion", "label": {"zh": "主管意见"}, "type": "text"}
        ]
    }))
    .await?;
    let service = json!({
        "name": "leave", "label": {"zh": "请假申请"}, "subject": "qingjia",
        "steps": [
            {"name": "apply", "kind": "human", "label": {"zh": "填写申请"}, "operators": {"creator": true},
             "fields": {"days": "required", "reason": "required", "leader_opinion": "hidden"}},
            {"name": "leader", "kind": "human", "label": {"zh": "主管审批"}, "operators": {"user": "lin"},
             "fields": {"leader_opinion": "optional", "reason": "hidden"}},
            {"name": "by_days", "kind": "exclusive"},
            {"name": "director", "kind": "human", "label": {"zh": "医务总监审批"}, "operators": {"user": "liuyang"}},
            {"name": "end", "kind": "end"}
        ],
        "transitions": [
            {"from": "apply", "to": "leader", "attribute": "agree"},
            {"from": "leader", "to": "by_days", "attribute": "agree"},
            {"from": "by_days", "to": "director", "condition": "record.days > 3"},
            {"from": "by_days", "to": "end", "default": true},
            {"from": "director", "to": "end", "attribute": "agree"}
        ]
    });
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/leave/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    Ok(())
}

fn pid_of(p: &Value) -> u64 {
    p["id"].as_u64().unwrap_or_default()
}

/// How many processes there are (as the administrator sees them).
async fn processes(app: &TestApp) -> anyhow::Result<u64> {
    let (_, b) = app.call("GET", "/api/v1/processes?limit=500", None).await?;
    Ok(b["total"].as_u64().unwrap_or_default())
}

#[tokio::test]
async fn a_start_binds_only_a_record_of_the_subject_that_the_caller_may_read() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        leave(&app).await?;
        app.define(json!({
            "name": "yisheng", "label": {"zh": "医生", "en": "Practitioner"},
            "fields": [
                {"name": "xingming", "label": {"zh": "姓名"}, "type": "text"},
                {"name": "phone", "label": {"zh": "电话"}, "type": "text"},
                {"name": "licence", "label": {"zh": "执业证号"}, "type": "text"}
            ]
        }))
        .await?;
        let doctor = app
            .create("yisheng", json!({"xingming": "李医生", "phone": "13800001111", "licence": "110-2026-0001"}))
            .await?;
        let colleague = app
            .create("qingjia", json!({"days": 2, "reason": "体检"}))
            .await?;
        let starter = app.user_with("xiaoli", &["services:leave:start"]).await?;
        let before = processes(&app).await?;

        // A record of another DataItem: refused, whatever the caller may read.
        let (s, b) = app
            .call_as(As::Bearer(&starter), "POST", "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "yisheng", "id": doctor["id"]}})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/record/item", "{b}");
        assert!(!b.to_string().contains("13800001111"), "{b}");

        // A colleague's leave record without a read grant: 403, and the same answer for an
        // id that does not exist (no existence oracle).
        let (s, real) = app
            .call_as(As::Bearer(&starter), "POST", "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "qingjia", "id": colleague["id"]}})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{real}");
        assert!(real["error"]["message"].as_str().unwrap_or_default().contains("records:qingjia:read"), "{real}");
        let (s, ghost) = app
            .call_as(As::Bearer(&starter), "POST", "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "qingjia", "id": "0190a000-0000-7000-8000-000000000000"}})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{ghost}");
        assert_eq!(real, ghost, "a real and a missing record get the same answer");

        // A forged record in the context is refused.
        let (s, b) = app
            .call_as(As::Bearer(&starter), "POST", "/api/v1/processes",
                Some(json!({"service": "leave", "context": {"record": {"days": 1}}})))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/context/record", "{b}");

        // Someone else's process as a predecessor, and process ids: the same answer whether
        // the process exists or not.
        let (_, other) = app
            .call("POST", "/api/v1/processes", Some(json!({"service": "leave", "record": {"item": "qingjia", "id": colleague["id"]}})))
            .await?;
        let other = pid_of(&other);
        let mut answers = Vec::new();
        for pid in [other, other + 1000] {
            let (s, b) = app
                .call_as(As::Bearer(&starter), "POST", "/api/v1/processes",
                    Some(json!({"service": "leave", "predecessor": pid})))
                .await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            answers.push(b["error"]["details"][0]["message"].as_str().unwrap_or_default().replace(&pid.to_string(), "N"));
            let (s, b) = app
                .call_as(As::Bearer(&starter), "GET", &format!("/api/v1/processes/{pid}"), None)
                .await?;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
            answers.push(b["error"]["message"].as_str().unwrap_or_default().replace(&pid.to_string(), "N"));
        }
        assert_eq!(answers[0], answers[2], "predecessor: {answers:?}");
        assert_eq!(answers[1], answers[3], "process ids: {answers:?}");
        let (s, _) = app.call("GET", &format!("/api/v1/processes/{}", other + 1000), None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "an administrator, who sees every process, is told");

        assert_eq!(processes(&app).await?, before + 1, "only the administrator's start happened");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn complete_takes_the_record_from_storage_and_only_from_its_operator() -> anyhow::Result<()> {
    each_backend(|app| async move {
        leave(&app).await?;
        let applicant = app
            .user_with("xiaoli", &["services:leave:start", "records:qingjia:*"])
            .await?;
        let lin = app.user_with("lin", &[]).await?;
        let handler = app.user_with("zhoumin", &["services:leave:handle"]).await?;
        let ten = app
            .create("qingjia", json!({"days": 10, "reason": "回老家"}))
            .await?;
        let (s, p) = app
            .call_as(
                As::Bearer(&applicant),
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "qingjia", "id": ten["id"]}})),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let pid = pid_of(&p);
        // The applicant operates the first step, whose fields are required: `complete`
        // would skip their check, so that step is handled, not completed.
        let (s, b) = app
            .call_as(
                As::Bearer(&applicant),
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({})),
            )
            .await?;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&applicant),
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"attribute": "agree"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["current_steps"], json!(["leader"]), "{b}");
        assert_eq!(b["operator"], "lin", "{b}");

        // The operator tries to make it look like one day: refused, nothing moves.
        let (s, b) = app
            .call_as(
                As::Bearer(&lin),
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({"context": {"record": {"days": 1}}})),
            )
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/context/record", "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&lin),
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"attribute": "agree", "context": {"record": {"days": 1}}})),
            )
            .await?;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "the same for handle: {b}"
        );

        // Someone with `handle` who is not the operator may not complete (the README:
        // the step's operator or an administrator).
        let (s, b) = app
            .call_as(
                As::Bearer(&handler),
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

        // The record changed in storage since the start: complete sees the stored value.
        let (s, b) = app
            .call(
                "PATCH",
                &format!(
                    "/api/v1/records/qingjia/{}",
                    ten["id"].as_str().unwrap_or_default()
                ),
                Some(json!({"days": 12})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app
            .call_as(
                As::Bearer(&lin),
                "POST",
                &format!("/api/v1/processes/{pid}/complete"),
                Some(json!({"context": {"note": "同意"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b["current_steps"],
            json!(["director"]),
            "10 days need the director: {b}"
        );
        let (_, full) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(full["context"]["record"]["days"], 12, "{full}");
        assert_eq!(full["context"]["note"], "同意", "{full}");
        Ok(())
    })
    .await
}

/// A patient with allergies composed into it (each patient record holds its allergy rows).
async fn patients(app: &TestApp) -> anyhow::Result<()> {
    app.define(json!({
        "name": "guomin", "label": {"zh": "过敏史", "en": "Allergy"},
        "fields": [{"name": "allergen", "label": {"zh": "过敏原"}, "type": "text", "required": true}]
    }))
    .await?;
    app.define(json!({
        "name": "huanzhe", "label": {"zh": "患者", "en": "Patient"},
        "fields": [
            {"name": "xingming", "label": {"zh": "姓名"}, "type": "text", "required": true},
            {"name": "phone", "label": {"zh": "电话"}, "type": "text"}
        ],
        "consists": [{"item": "guomin", "cardinality": "many"}]
    }))
    .await?;
    Ok(())
}

#[tokio::test]
async fn write_answers_and_composed_children_follow_the_readers_and_writers_grants()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        patients(&app).await?;
        let zhang = app
            .create("huanzhe", json!({"xingming": "张三", "phone": "13900002222", "guomin": [{"allergen": "青霉素"}]}))
            .await?;
        let id = zhang["id"].as_str().unwrap_or_default().to_owned();
        let writer = app.user_with("qiantai", &["records:huanzhe:create", "records:huanzhe:update"]).await?;

        // Writers without a read grant get the stamps back, never the fields or children.
        let (s, b) = app
            .call_as(As::Bearer(&writer), "PATCH", &format!("/api/v1/records/huanzhe/{id}"), Some(json!({})))
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        for hidden in ["xingming", "phone", "guomin"] {
            assert!(b.get(hidden).is_none(), "{hidden} in {b}");
        }
        assert!(b.get("id").is_some() && b.get("version").is_some(), "{b}");
        let (s, b) = app
            .call_as(As::Bearer(&writer), "POST", "/api/v1/records/huanzhe", Some(json!({"xingming": "李四"})))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert!(b.get("xingming").is_none(), "{b}");

        // Children are written with their own DataItem's grants.
        let rows = app.count_rows("guomin").await?;
        let (s, b) = app
            .call_as(As::Bearer(&writer), "POST", "/api/v1/records/huanzhe",
                Some(json!({"xingming": "王五", "guomin": [{"allergen": "花粉"}]})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("records:guomin:create"), "{b}");
        let (s, b) = app
            .call_as(As::Bearer(&writer), "PATCH", &format!("/api/v1/records/huanzhe/{id}"), Some(json!({"guomin": []})))
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "replacing children deletes the old ones: {b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("records:guomin:delete"), "{b}");
        assert_eq!(app.count_rows("guomin").await?, rows, "nothing written");

        // Children are read with their own grants.
        let reader = app.user_with("hushi", &["records:huanzhe:read"]).await?;
        let (s, b) = app
            .call_as(As::Bearer(&reader), "GET", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["xingming"], "张三");
        assert!(b.get("guomin").is_none(), "the allergies need records:guomin:read: {b}");
        let doctor = app.user_with("dr_li", &["records:huanzhe:read", "records:guomin:read"]).await?;
        let (_, b) = app
            .call_as(As::Bearer(&doctor), "GET", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert_eq!(b["guomin"][0]["allergen"], "青霉素", "{b}");

        // Deleting a patient deletes the allergies: that needs their delete grant too.
        let deleter = app.user_with("admin2", &["records:huanzhe:delete"]).await?;
        let (s, b) = app
            .call_as(As::Bearer(&deleter), "DELETE", &format!("/api/v1/records/huanzhe/{id}"), None)
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("records:guomin:delete"), "{b}");
        let (s, _) = app.call("GET", &format!("/api/v1/records/huanzhe/{id}"), None).await?;
        assert_eq!(s, StatusCode::OK, "still there");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn process_views_leave_out_hidden_fields_and_what_grants_do_not_give() -> anyhow::Result<()> {
    each_backend(|app| async move {
        leave(&app).await?;
        let applicant = app
            .user_with("xiaoli", &["services:leave:start", "records:qingjia:*"])
            .await?;
        let lin = app.user_with("lin", &[]).await?;
        let viewer = app
            .user_with("kan", &["services:leave:view", "records:qingjia:read:days"])
            .await?;
        let rec = app
            .create("qingjia", json!({"days": 2, "reason": "家父住院，需陪护"}))
            .await?;
        let (_, p) = app
            .call_as(
                As::Bearer(&applicant),
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "qingjia", "id": rec["id"]}})),
            )
            .await?;
        let pid = pid_of(&p);
        assert_eq!(
            p["context"]["record"]["reason"], "家父住院，需陪护",
            "the applicant reads it all: {p}"
        );
        app.call_as(
            As::Bearer(&applicant),
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree"})),
        )
        .await?;
        let secret = "家父住院";

        // The leader takes part, holds no record grant, and `reason` is hidden at his step.
        let (s, b) = app
            .call_as(
                As::Bearer(&lin),
                "GET",
                &format!("/api/v1/processes/{pid}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(
            !b.to_string().contains(secret),
            "context, history and form: {b}"
        );
        assert_eq!(b["context"]["record"]["days"], 2, "{b}");
        // The opinion is hidden at the applicant's step, so no copy of the record shows it
        // to him; but his own step's form does, for him to fill in.
        assert!(
            b["context"]["record"].get("leader_opinion").is_none(),
            "{b}"
        );
        assert!(b["form"]["record"].get("leader_opinion").is_some(), "{b}");
        assert_eq!(b["form"]["editable"], json!(["leader_opinion"]), "{b}");
        assert!(b["history"].as_array().is_some_and(|h| h.len() > 2), "{b}");
        let (_, list) = app
            .call_as(
                As::Bearer(&lin),
                "GET",
                "/api/v1/work-items?view=todo",
                None,
            )
            .await?;
        assert_eq!(list["items"][0]["record_snapshot"]["days"], 2, "{list}");
        assert!(!list.to_string().contains(secret), "{list}");
        let (_, list) = app
            .call_as(As::Bearer(&lin), "GET", "/api/v1/processes", None)
            .await?;
        assert_eq!(list["total"], 1, "{list}");
        assert!(!list.to_string().contains(secret), "{list}");

        // A viewer by grant reads only the field their record grants give.
        let (s, b) = app
            .call_as(
                As::Bearer(&viewer),
                "GET",
                &format!("/api/v1/processes/{pid}"),
                None,
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let shown: Vec<&String> = b["context"]["record"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert!(
            shown.iter().all(
                |k| ["id", "version", "created_at", "updated_at", "days"].contains(&k.as_str())
            ),
            "{shown:?}"
        );
        assert!(!b.to_string().contains(secret), "{b}");

        // The WebSocket: the snapshot and every change, as the leader may see them.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = app.bare.clone();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={lin}"))
                .await?;
        use futures_util::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        ws.send(Message::Text(
            json!({"subscribe": "process", "id": pid})
                .to_string()
                .into(),
        ))
        .await?;
        let mut seen = Vec::new();
        let mut next = async || -> anyhow::Result<String> {
            loop {
                let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("closed"))??;
                if let Message::Text(t) = msg {
                    return Ok(t.to_string());
                }
            }
        };
        // The snapshot first (the subscription is in place), then the leader's handling.
        seen.push(next().await?);
        let (s, b) = app
            .call_as(
                As::Bearer(&lin),
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"attribute": "agree", "fields": {"leader_opinion": "同意"}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(
            !b.to_string().contains(secret),
            "the answer to his own handling: {b}"
        );
        seen.push(next().await?);
        assert!(seen[0].contains("snapshot"), "{seen:?}");
        assert!(seen[1].contains("\"change\""), "{seen:?}");
        assert!(seen.iter().all(|m| !m.contains(secret)), "{seen:?}");
        server.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn webhook_secrets_and_url_credentials_are_never_shown() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let rule = json!({
            "name": "payment_hook", "label": {"zh": "付款通知财务"},
            "event": {"kind": "signal", "name": "payment_received"},
            "instructions": [{"op": "webhook", "url": "https://finance:pa55word@hooks.clinic.test/in", "secret": "s3cret-signing-key"}]
        });
        let (s, b) = app.call("POST", "/api/v1/rules", Some(rule)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let service = json!({
            "name": "billing", "label": {"zh": "结算"},
            "steps": [
                {"name": "notify", "kind": "automatic", "instructions": [{"op": "webhook", "url": "https://bot:t0ken@erp.clinic.test/hook", "secret": "step-secret"}]},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [{"from": "notify", "to": "end"}]
        });
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert!(!b.to_string().contains("step-secret"), "{b}");
        let (s, b) = app.call("POST", "/api/v1/services/billing/publish", None).await?;
        assert!(s.is_success(), "{b}");
        let designer = app.user_with("fenxi", &["design"]).await?;
        let nobody = app.user_with("nobody", &[]).await?;
        for token in [&designer, &nobody] {
            for path in ["/api/v1/rules", "/api/v1/rules/payment_hook", "/api/v1/services", "/api/v1/services/billing"] {
                let (s, b) = app.call_as(As::Bearer(token), "GET", path, None).await?;
                assert_eq!(s, StatusCode::OK, "{path}: {b}");
                let text = b.to_string();
                for leaked in ["s3cret-signing-key", "pa55word", "step-secret", "t0ken"] {
                    assert!(!text.contains(leaked), "{path} shows {leaked}: {text}");
                }
            }
        }

        // Saved back as it was shown, the rule keeps its stored secret and URL.
        let (_, shown) = app.call_as(As::Bearer(&designer), "GET", "/api/v1/rules/payment_hook", None).await?;
        assert_eq!(shown["instructions"][0]["secret"], "********", "{shown}");
        let mut back = shown.clone();
        if let Some(o) = back.as_object_mut() {
            o.remove("stats");
        }
        back["label"] = json!({"zh": "付款通知财务（新）"});
        let (s, b) = app.call_as(As::Bearer(&designer), "PUT", "/api/v1/rules/payment_hook", Some(back)).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let stored = app.kernel.rules.all();
        let hook = serde_json::to_value(&stored[0])?;
        assert_eq!(hook["instructions"][0]["secret"], "s3cret-signing-key", "{hook}");
        assert_eq!(hook["instructions"][0]["url"], "https://finance:pa55word@hooks.clinic.test/in", "{hook}");
        // A mask with no secret behind it is not a secret.
        let (s, b) = app
            .call_as(As::Bearer(&designer), "POST", "/api/v1/rules", Some(json!({
                "name": "other_hook", "label": {"zh": "另一个"}, "event": {"kind": "signal", "name": "x"},
                "instructions": [{"op": "webhook", "url": "https://hooks.clinic.test/in", "secret": "********"}]
            })))
            .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/instructions/0/secret", "{b}");
        Ok(())
    })
    .await
}

/// A receiver on loopback that answers every call with `status`, a `Location` to `/inner`
/// and a body, counting calls to `/hook` and to `/inner`.
async fn receiver(status: u16) -> anyhow::Result<(u16, Arc<AtomicUsize>, Arc<AtomicUsize>)> {
    let hooks = Arc::new(AtomicUsize::new(0));
    let inner = Arc::new(AtomicUsize::new(0));
    let (h, i) = (hooks.clone(), inner.clone());
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
                        [("location", "/inner")],
                        "INTERNAL-ADMIN-PAGE root:x:0:0",
                    )
                }
            }),
        )
        .route(
            "/inner",
            axum::routing::any(move || {
                let i = i.clone();
                async move {
                    i.fetch_add(1, Ordering::SeqCst);
                    "INNER"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, hooks, inner))
}

async fn settle(app: &TestApp) -> anyhow::Result<()> {
    for _ in 0..20 {
        let read = app.kernel.rules.round().await?;
        let sent = app.kernel.outbox.deliver_due().await?;
        if read == 0 && sent == 0 {
            return Ok(());
        }
    }
    anyhow::bail!("rules and outbox did not settle")
}

/// Fires a rule posting to `url` once; returns its outbox row.
async fn deliver_once(app: &TestApp, name: &str, url: &str) -> anyhow::Result<Value> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/rules",
            Some(json!({
                "name": name, "label": {"zh": "通知"}, "event": {"kind": "signal", "name": name},
                "instructions": [{"op": "webhook", "url": url}]
            })),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    app.call("POST", &format!("/api/v1/events/{name}"), Some(json!({})))
        .await?;
    settle(app).await?;
    let (_, all) = app.call("GET", "/api/v1/outbox", None).await?;
    all["items"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["rule"] == name).cloned())
        .ok_or_else(|| anyhow::anyhow!("no outbox row for {name}: {all}"))
}

#[tokio::test]
async fn webhooks_reach_no_private_address_follow_no_redirect_and_keep_no_answer()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        let (port, hooks, inner) = receiver(302).await?;
        app.kernel.outbox.egress.allow(Vec::new());
        for (name, url) in [
            ("to_loopback", format!("http://127.0.0.1:{port}/hook")),
            ("to_localhost", format!("http://localhost:{port}/hook")),
            (
                "to_metadata",
                "http://169.254.169.254/latest/meta-data/".to_owned(),
            ),
            (
                "to_mapped",
                format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            ),
        ] {
            let row = deliver_once(&app, name, &url).await?;
            assert_eq!(
                row["state"], "failed",
                "refused for good, not retried: {row}"
            );
            assert!(
                row["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("target refused"),
                "{row}"
            );
        }
        assert_eq!(
            hooks.load(Ordering::SeqCst),
            0,
            "nothing reached the receiver"
        );

        // Allowed by the operator: delivered to loopback, but a redirect is not followed and
        // nothing of the answer is kept.
        app.kernel.outbox.egress.allow(vec![
            erpos_kernel::egress::Block::parse("127.0.0.1").map_err(anyhow::Error::msg)?,
        ]);
        let row = deliver_once(&app, "allowed", &format!("http://127.0.0.1:{port}/hook")).await?;
        assert_eq!(hooks.load(Ordering::SeqCst), 1, "{row}");
        assert_eq!(
            inner.load(Ordering::SeqCst),
            0,
            "the redirect was not followed: {row}"
        );
        let error = row["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("HTTP 302"), "{row}");
        assert!(
            !error.contains("INTERNAL-ADMIN-PAGE"),
            "no answer body is kept: {row}"
        );
        let (port2, _, _) = receiver(403).await?;
        let row = deliver_once(
            &app,
            "answer_403",
            &format!("http://127.0.0.1:{port2}/hook"),
        )
        .await?;
        assert!(!row.to_string().contains("root:x:0:0"), "{row}");
        Ok(())
    })
    .await
}
