//! The designer's API (issue 15 §2), on SQLite and PostgreSQL: a service draft checked and
//! drawn as it is edited (`POST /services/preview`), publishing with version notes, and a
//! rule tried on a sample with nothing kept (`POST /rules/dry-run`).

mod common;

use axum::http::StatusCode;
use common::{As, each_backend, patient_def};
use serde_json::{Value, json};

/// The clinic's follow-up call, as an analyst draws it: a call, then a choice on the
/// patient's answer (a revisit when unhappy), then the end.
fn follow_up(condition: &str) -> Value {
    json!({"name": "follow_up", "label": {"zh": "术后回访", "en": "Follow-up"}, "subject": "huanzhe",
        "steps": [
            {"name": "call", "kind": "human", "label": {"zh": "电话回访"}},
            {"name": "choose", "kind": "exclusive", "label": {"zh": "是否满意"}},
            {"name": "revisit", "kind": "human", "label": {"zh": "复诊"}},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "call", "to": "choose"},
            {"from": "choose", "to": "revisit", "condition": condition},
            {"from": "choose", "to": "end", "default": true},
            {"from": "revisit", "to": "end"}]})
}

fn paths(body: &Value) -> Vec<String> {
    body["issues"]
        .as_array()
        .or_else(|| body["error"]["details"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|i| i["path"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_service_draft_is_checked_and_drawn_as_it_is_edited_and_nothing_is_stored()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/services/preview",
                Some(follow_up("context.manyi == false")),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["valid"], true, "{b}");
        assert_eq!(b["issues"], json!([]));
        assert_eq!(b["service"]["name"], "follow_up");
        let svg = b["flowchart"].as_str().unwrap_or_default();
        assert!(svg.starts_with("<svg") && svg.contains("电话回访") && svg.contains("复诊"));

        // A condition that does not compile, half typed: named at its pointer, and the
        // chart still drawn from what could be read.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/services/preview",
                Some(follow_up("context.manyi ==")),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["valid"], false, "{b}");
        assert_eq!(paths(&b), ["/transitions/1/condition"], "{b}");
        assert!(b["service"].is_null());
        assert!(
            b["flowchart"]
                .as_str()
                .is_some_and(|svg| svg.contains("是否满意")),
            "{b}"
        );

        // A step nothing leads to and a transition to no step: each at its place.
        let mut broken = follow_up("true");
        broken["transitions"][3]["to"] = json!("nowhere");
        let (_, b) = app
            .call("POST", "/api/v1/services/preview", Some(broken))
            .await?;
        assert_eq!(b["valid"], false);
        assert!(
            paths(&b).iter().any(|p| p.starts_with("/transitions/3")),
            "{b}"
        );

        // Nothing was stored by any of it.
        let (s, b) = app.call("GET", "/api/v1/services/follow_up", None).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

        // Only for designers.
        let nurse = app
            .user_with("hushi_wang", &["records:huanzhe:read"])
            .await?;
        let (s, b) = app
            .call_as(
                As::Bearer(&nurse),
                "POST",
                "/api/v1/services/preview",
                Some(follow_up("true")),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn each_version_is_published_with_its_notes_and_who_published_it() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        let (s, b) = app
            .call("POST", "/api/v1/services", Some(follow_up("true")))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        // No body: published, without notes (packs and older clients publish so).
        let (s, b) = app
            .call("POST", "/api/v1/services/follow_up/publish", None)
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["version"], 1);

        app.call(
            "POST",
            "/api/v1/services",
            Some(follow_up("context.manyi == false")),
        )
        .await?;
        // Too long, or a key that is not one: refused, nothing published.
        let long = "改".repeat(2001);
        for (body, at) in [
            (json!({"notes": long}), "/notes"),
            (json!({"note": "复诊条件"}), "/note"),
        ] {
            let (s, b) = app
                .call("POST", "/api/v1/services/follow_up/publish", Some(body))
                .await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert_eq!(paths(&b), [at], "{b}");
        }
        let (_, b) = app.call("GET", "/api/v1/services/follow_up", None).await?;
        assert_eq!(b["versions"], json!([1]), "{b}");

        let (s, b) = app
            .call(
                "POST",
                "/api/v1/services/follow_up/publish",
                Some(json!({"notes": "  不满意的患者转复诊  "})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["version"], 2);
        let (_, b) = app.call("GET", "/api/v1/services/follow_up", None).await?;
        let releases = b["releases"].as_array().cloned().unwrap_or_default();
        assert_eq!(releases.len(), 2, "{b}");
        assert_eq!(releases[0]["version"], 1);
        assert_eq!(releases[0]["notes"], Value::Null);
        assert_eq!(releases[1]["version"], 2);
        assert_eq!(releases[1]["notes"], "不满意的患者转复诊");
        assert_eq!(releases[1]["published_by"], "admin");
        let at = releases[1]["published_at"].as_str().unwrap_or_default();
        assert!(
            erpos_design::value::parse_datetime(at).is_some() && at.ends_with('Z'),
            "{at}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_rule_is_tried_on_a_sample_and_nothing_it_did_is_kept() -> anyhow::Result<()> {
    each_backend(|app| async move {
        app.define(patient_def()).await?;
        app.publish(follow_up("true")).await?;
        let rule = json!({"name": "adult_follow_up", "label": {"zh": "成年患者回访"},
            "event": {"kind": "record.created", "item": "huanzhe"},
            "condition": "record.age >= 18",
            "instructions": [
                {"op": "create_record", "item": "huanzhe", "set": {"xingming": "张三的家属"}},
                {"op": "start_service", "service": "follow_up"}]});
        let before = app.count_rows("huanzhe").await?;

        // A made-up adult: the condition holds, both instructions run, then roll back.
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/rules/dry-run",
                Some(json!({"rule": rule, "sample": {"xingming": "张三", "age": 30}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["condition"]["holds"], true, "{b}");
        assert_eq!(b["ran"], true);
        assert_eq!(b["error"], Value::Null, "{b}");
        let ops: Vec<&str> = b["effects"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["op"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ops, ["create_record", "start_service"], "{b}");
        assert_eq!(b["event"]["kind"], "record.created");
        assert_eq!(
            app.count_rows("huanzhe").await?,
            before,
            "the dry run kept a record"
        );
        let (_, outbox) = app.call("GET", "/api/v1/outbox", None).await?;
        assert_eq!(
            outbox["items"],
            json!([]),
            "the dry run kept its outbox entry: {outbox}"
        );

        // A minor: the condition does not hold, nothing runs.
        let (_, b) = app
            .call(
                "POST",
                "/api/v1/rules/dry-run",
                Some(json!({"rule": rule, "sample": {"xingming": "小明", "age": 12}})),
            )
            .await?;
        assert_eq!(b["condition"]["holds"], false, "{b}");
        assert_eq!(b["ran"], false);

        // The stored rule by name, on a stored record; an instruction that fails is named.
        let mut failing = rule.clone();
        failing["instructions"][0]["set"] = json!({"age": 300});
        let (s, b) = app.call("POST", "/api/v1/rules", Some(failing)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let zhang = app
            .create("huanzhe", json!({"xingming": "张三", "age": 30}))
            .await?;
        let id = zhang["id"].as_str().unwrap_or_default().to_owned();
        let before = app.count_rows("huanzhe").await?;
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/rules/dry-run",
                Some(json!({"name": "adult_follow_up", "record": {"item": "huanzhe", "id": id}})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["ran"], true);
        assert_eq!(b["error"]["index"], 0, "{b}");
        assert_eq!(b["error"]["op"], "create_record");
        assert_eq!(app.count_rows("huanzhe").await?, before);

        // Refused, each at its place: an invalid rule (under /rule), both or neither of rule
        // and name, both record and sample, an unknown stored rule.
        let mut bad = rule.clone();
        bad["condition"] = json!("record.age >=");
        for (body, status, at) in [
            (json!({"rule": bad}), 422, "/rule/condition"),
            (json!({"rule": rule, "name": "x"}), 422, "/name"),
            (json!({}), 422, "/rule"),
            (
                json!({"rule": rule, "sample": {}, "record": {"item": "huanzhe", "id": id}}),
                422,
                "/sample",
            ),
            (json!({"rule": rule, "sample": [1]}), 422, "/sample"),
            (json!({"rule": rule, "extra": 1}), 422, "/extra"),
        ] {
            let (s, b) = app
                .call("POST", "/api/v1/rules/dry-run", Some(body))
                .await?;
            assert_eq!(s.as_u16(), status, "{b}");
            assert!(paths(&b).iter().any(|p| p == at), "{at}: {b}");
        }
        let (s, _) = app
            .call(
                "POST",
                "/api/v1/rules/dry-run",
                Some(json!({"name": "nope"})),
            )
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let nurse = app
            .user_with("hushi_wang", &["records:huanzhe:read"])
            .await?;
        let (s, _) = app
            .call_as(
                As::Bearer(&nurse),
                "POST",
                "/api/v1/rules/dry-run",
                Some(json!({"rule": rule})),
            )
            .await?;
        assert_eq!(s, StatusCode::FORBIDDEN);
        Ok(())
    })
    .await
}
