//! ServiceRules over HTTP, on SQLite and PostgreSQL: events, conditions, instructions, the
//! outbox with retries, time rules on a simulated clock, the sandbox, and restarts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use common::{TestApp, each_backend, patient_def};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

/// Runs rule rounds and outbox deliveries until nothing is left to do now.
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

/// The clinic: patients, treatments (with a date), a follow-up service.
async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    // The staff the rules notify.
    app.staff(&["qiantai_zhou", "dr_li", "dr_chen"]).await?;
    app.define(patient_def()).await?;
    app.define(json!({
        "name": "zhiliao", "label": {"zh": "治疗记录", "en": "Treatment"},
        "fields": [
            {"name": "patient", "label": {"zh": "患者"}, "type": "reference", "target": "huanzhe"},
            {"name": "xiangmu", "label": {"zh": "项目"}, "type": "enum", "options": ["肉毒素", "超声炮", "光子", "水光针"]},
            {"name": "riqi", "label": {"zh": "治疗日期"}, "type": "date"},
            {"name": "billed", "label": {"zh": "已结算"}, "type": "boolean", "default": false}
        ]
    }))
    .await?;
    for body in [
        json!({"name": "follow_up", "label": {"zh": "术后回访"}, "subject": "huanzhe",
               "steps": [{"name": "call", "kind": "human", "label": {"zh": "电话回访"}}, {"name": "end", "kind": "end"}],
               "transitions": [{"from": "call", "to": "end"}]}),
        json!({"name": "billing", "label": {"zh": "结算"}, "subject": "zhiliao",
               "steps": [{"name": "wait_pay", "kind": "wait", "wait": {"event": "paid"}},
                         {"name": "bill", "kind": "automatic", "instructions": [{"op": "update_record", "set": {"billed": true}}]},
                         {"name": "end", "kind": "end"}],
               "transitions": [{"from": "wait_pay", "to": "bill"}, {"from": "bill", "to": "end"}]}),
    ] {
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let (s, b) = app.call("POST", "/api/v1/services", Some(body)).await?;
        assert!(s.is_success(), "{b}");
        let (s, b) = app
            .call("POST", &format!("/api/v1/services/{name}/publish"), None)
            .await?;
        assert!(s.is_success(), "{b}");
    }
    Ok(())
}

async fn rule(app: &TestApp, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call("POST", "/api/v1/rules", Some(body)).await?;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    Ok(b)
}

async fn notifications(app: &TestApp, user: &str) -> anyhow::Result<Vec<Value>> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/notifications?user={user}"), None)
        .await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    Ok(b["items"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn a_new_adult_patient_starts_a_follow_up_and_notifies_the_front_desk() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        clinic(&app).await?;
        let r = rule(&app, json!({
            "label": {"zh": "新患者回访", "en": "Follow up new patients"},
            "event": {"kind": "record.created", "item": "huanzhe"},
            "condition": "record.age >= 18",
            "instructions": [
                {"op": "start_service", "service": "follow_up", "priority": 7, "compute": {"source": "record.source"}},
                {"op": "notify", "to": ["qiantai_zhou"], "title": "新患者 {{record.xingming}}", "body": "来源：{{record.source}}"}
            ]
        })).await?;
        assert_eq!(r["name"], "xinhuanzhehuifang", "the name is derived from the Chinese label");

        let zhang = app.create("huanzhe", json!({"xingming": "张三", "age": 31, "source": "小红书"})).await?;
        app.create("huanzhe", json!({"xingming": "李小四", "age": 12})).await?;
        settle(&app).await?;

        let (_, list) = app.call("GET", "/api/v1/processes?service=follow_up", None).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "only the adult gets a follow-up: {list}");
        let (_, pcb) = app.call("GET", &format!("/api/v1/processes/{}", items[0]["id"]), None).await?;
        assert_eq!(pcb["record"], json!({"item": "huanzhe", "id": zhang["id"]}), "bound to the new patient: {pcb}");
        assert_eq!(pcb["context"]["record"]["xingming"], "张三", "its snapshot is in the context, as for an API start");
        assert_eq!(pcb["priority"], 7);
        assert_eq!(pcb["context"]["source"], "小红书");
        assert_eq!(pcb["context"]["_origin"]["rule"], "xinhuanzhehuifang");

        let inbox = notifications(&app, "qiantai_zhou").await?;
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox[0]["title"], "新患者 张三");
        assert_eq!(inbox[0]["body"], "来源：小红书");

        let (_, shown) = app.call("GET", "/api/v1/rules/xinhuanzhehuifang", None).await?;
        assert_eq!(shown["stats"]["evaluated"], 2, "{shown}");
        assert_eq!(shown["stats"]["fired"], 1);
        assert_eq!(shown["stats"]["failed"], 0);
        let (_, runs) = app.call("GET", "/api/v1/rules/xinhuanzhehuifang/runs", None).await?;
        assert_eq!(runs["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(runs["items"][0]["outcome"], "done");

        // Running the rounds again does nothing twice.
        settle(&app).await?;
        assert_eq!(notifications(&app, "qiantai_zhou").await?.len(), 1);
        let (_, events) = app.call("GET", "/api/v1/events?kind=record.created&subject=huanzhe", None).await?;
        assert_eq!(events["items"].as_array().map(Vec::len), Some(2), "{events}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn invalid_rules_are_refused_with_every_problem_and_nothing_stored() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app.call("POST", "/api/v1/rules", Some(json!({
            "label": {"zh": "坏规则"},
            "event": {"kind": "record.updated", "item": "huanzhe", "fields": ["nope"], "service": "follow_up"},
            "condition": "record.age >",
            "instructions": [
                {"op": "start_service", "service": "no_such_service"},
                {"op": "create_record", "item": "zhiliao", "set": {"colour": "red"}},
                {"op": "notify", "title": ""},
                {"op": "webhook", "url": "ftp://x"},
                {"op": "script", "source": "let x = ;"}
            ]
        }))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["path"].as_str()).collect();
        for want in ["/event/service", "/event/fields/0", "/condition", "/instructions/0/service", "/instructions/1/set",
                     "/instructions/2/to", "/instructions/2/title", "/instructions/3/url", "/instructions/4/source"] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        let (s, b) = app.call("POST", "/api/v1/rules", Some(json!({"label": {"zh": "x"}, "event": {"kind": "time", "cron": "61 * * * *"}}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(b["error"]["details"][0]["message"].as_str().unwrap_or_default().contains("minute"), "{b}");
        let (_, list) = app.call("GET", "/api/v1/rules", None).await?;
        assert_eq!(list["total"], 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_follow_up_fires_seven_simulated_days_after_the_treatment_date_once_even_across_a_restart()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        rule(&app, json!({
            "name": "seven_day_follow_up", "label": {"zh": "术后七天回访"},
            "event": {"kind": "time", "item": "zhiliao", "field": "riqi", "offset": "P7D", "at_time": "09:00", "utc_offset_minutes": 480},
            "instructions": [{"op": "notify", "to": ["dr_li"], "title": "术后第7天回访：{{record.xiangmu}}"}]
        })).await?;
        // The clock starts at 2026-11-28 17:00 China time; the treatment is that day.
        app.create("zhiliao", json!({"xiangmu": "超声炮", "riqi": "2026-11-28"})).await?;
        app.create("zhiliao", json!({"xiangmu": "光子", "riqi": "2026-11-30"})).await?;
        app.advance(6 * DAY).await?;
        settle(&app).await?;
        assert!(notifications(&app, "dr_li").await?.is_empty(), "not yet after six days");

        // The server is down over the due time (12-05 09:00 China time) and starts after it.
        let app = app.restart().await?;
        app.advance(DAY).await?;
        settle(&app).await?;
        let inbox = notifications(&app, "dr_li").await?;
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0]["title"], "术后第7天回访：超声炮");

        app.advance(DAY).await?;
        settle(&app).await?;
        assert_eq!(notifications(&app, "dr_li").await?.len(), 1, "the 30th's is not due before 12-07 09:00");
        app.advance(DAY).await?;
        settle(&app).await?;
        let inbox = notifications(&app, "dr_li").await?;
        assert_eq!(inbox.len(), 2, "each treatment fires exactly once");
        assert_eq!(inbox[0]["title"], "术后第7天回访：光子");
        Ok(())
    })
    .await
}

/// A webhook receiver that fails the first `fail` calls, recording every call.
async fn receiver(
    fail: usize,
) -> anyhow::Result<(String, Arc<std::sync::Mutex<Vec<(HeaderMap, String)>>>)> {
    let calls: Arc<std::sync::Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let count = count.clone();
            async move {
                if let Ok(mut c) = seen.lock() {
                    c.push((headers, body));
                }
                if count.fetch_add(1, Ordering::SeqCst) < fail {
                    (StatusCode::INTERNAL_SERVER_ERROR, "busy")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, calls))
}

#[tokio::test]
async fn a_webhook_that_fails_twice_is_delivered_on_the_third_try_and_recorded_once()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (url, calls) = receiver(2).await?;
        rule(&app, json!({
            "name": "payment_hook", "label": {"zh": "付款通知财务"},
            "event": {"kind": "signal", "name": "payment_received"},
            "instructions": [{"op": "webhook", "url": url, "secret": "s3cret",
                              "body": {"patient": "{{event.payload.data.patient}}", "amount": "{{event.payload.data.amount}}"}}]
        })).await?;
        let (s, b) = app.call("POST", "/api/v1/events/payment_received", Some(json!({"patient": "张三", "amount": "3800.00"}))).await?;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        settle(&app).await?;
        let (_, pending) = app.call("GET", "/api/v1/outbox?state=pending", None).await?;
        assert_eq!(pending["items"][0]["attempts"], 1, "{pending}");
        assert!(pending["items"][0]["last_error"].as_str().unwrap_or_default().contains("HTTP 500"), "{pending}");
        assert_eq!(pending["items"][0]["payload"]["secret"], "***", "secrets are masked");

        app.advance(1_000).await?;
        settle(&app).await?;
        app.advance(2_000).await?;
        settle(&app).await?;
        let (_, delivered) = app.call("GET", "/api/v1/outbox?state=delivered", None).await?;
        let items = delivered["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "{delivered}");
        assert_eq!(items[0]["attempts"], 3);
        app.advance(60_000).await?;
        settle(&app).await?;

        let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
        assert_eq!(calls.len(), 3, "two failures, one success, nothing after");
        let (headers, body) = &calls[2];
        let body_json: Value = serde_json::from_str(body)?;
        assert_eq!(body_json, json!({"patient": "张三", "amount": "3800.00"}));
        let stamp = headers["x-erpos-timestamp"].to_str()?;
        let signature = headers["x-erpos-signature"].to_str()?;
        assert_eq!(signature, format!("sha256={}", erpos_kernel::outbox::sign("s3cret", stamp, body)));
        assert_eq!(headers["x-erpos-delivery"].to_str()?, items[0]["id"].to_string());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pending_deliveries_and_delayed_commands_survive_a_restart() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        // A receiver that is not up yet: the port is taken and released.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let url = format!("http://127.0.0.1:{port}/hook");
        rule(
            &app,
            json!({
                "name": "pause_billing", "label": {"zh": "暂停结算两小时"},
                "event": {"kind": "step.entered", "service": "billing", "step": "wait_pay"},
                "instructions": [
                    {"op": "suspend_process", "reason": "等待医生确认", "for": "PT2H"},
                    {"op": "webhook", "url": url}
                ]
            }),
        )
        .await?;
        let t = app
            .create(
                "zhiliao",
                json!({"xiangmu": "肉毒素", "riqi": "2026-11-28"}),
            )
            .await?;
        let (s, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "billing", "record": {"item": "zhiliao", "id": t["id"]}})),
            )
            .await?;
        assert!(s.is_success(), "{p}");
        let pid = p["id"].as_u64().unwrap_or_default();
        settle(&app).await?;
        let (_, pcb) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(pcb["state"], "SUSPENDED", "{pcb}");
        let (_, pending) = app
            .call("GET", "/api/v1/outbox?state=pending", None)
            .await?;
        assert_eq!(
            pending["items"].as_array().map(Vec::len),
            Some(2),
            "the resume in 2 h and the webhook: {pending}"
        );

        let app = app.restart().await?;
        app.advance(2 * 3_600_000).await?;
        settle(&app).await?;
        let (_, pcb) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(
            pcb["state"], "WAITING",
            "resumed by the delayed command after the restart: {pcb}"
        );
        let (_, all) = app.call("GET", "/api/v1/outbox", None).await?;
        let hook = all["items"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["kind"] == "webhook").cloned())
            .unwrap_or_default();
        assert!(
            hook["attempts"].as_i64().unwrap_or_default() >= 2,
            "retried after the restart: {hook}"
        );
        assert_eq!(hook["state"], "pending", "still in line: {hook}");

        // The automatic step's update_record runs when the payment arrives.
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/signal"),
                Some(json!({"event": "paid"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        let (_, pcb) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        assert_eq!(pcb["state"], "TERMINATED", "{pcb}");
        assert_eq!(pcb["exit"], "completed", "{pcb}");
        let (_, record) = app
            .call(
                "GET",
                &format!(
                    "/api/v1/records/zhiliao/{}",
                    t["id"].as_str().unwrap_or_default()
                ),
                None,
            )
            .await?;
        assert_eq!(record["billed"], true, "{record}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn runaway_scripts_are_stopped_with_the_rule_and_line_named_and_other_rules_go_on()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let bad = [
            ("endless_loop", "let n = 0;\nloop { n += 1; }", "operations"),
            ("deep_recursion", "fn down(n) { down(n + 1) }\ndown(0)", "stack"),
            ("huge_string", "let s = \"患者\";\nloop { s += s; }", "string"),
            ("file_system", "let text = open_file(\"/etc/passwd\");\ntext", "function not found"),
        ];
        for (name, source, _) in bad {
            rule(&app, json!({"name": name, "label": {"zh": "坏脚本"}, "priority": 10,
                              "event": {"kind": "signal", "name": "check"},
                              "instructions": [{"op": "script", "source": source}]})).await?;
        }
        rule(&app, json!({"name": "healthy", "label": {"zh": "正常规则"},
                          "event": {"kind": "signal", "name": "check"},
                          "instructions": [{"op": "script", "source": "if now > 0 { notify([\"dr_chen\"], \"检查\", \"ok\") }"}]})).await?;
        app.call("POST", "/api/v1/events/check", Some(json!({}))).await?;
        settle(&app).await?;
        for (name, _, want) in bad {
            let (_, shown) = app.call("GET", &format!("/api/v1/rules/{name}"), None).await?;
            let error = shown["stats"]["last_error"].as_str().unwrap_or_default().to_lowercase();
            assert_eq!(shown["stats"]["last_outcome"], "failed", "{shown}");
            assert!(error.contains(&format!("rule '{name}'")), "{error}");
            assert!(error.contains(want), "{name}: {error}");
            assert!(error.contains("line"), "{name}: {error}");
        }
        assert_eq!(notifications(&app, "dr_chen").await?.len(), 1, "the healthy rule ran");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_deadline_in_working_hours_skips_a_holiday_warns_and_escalates_once() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app.call("POST", "/api/v1/calendars", Some(json!({
            "name": "organisation", "label": {"zh": "门诊工作日历"}, "utc_offset_minutes": 480,
            "weekly": {"mon": [["09:00", "12:00"], ["13:00", "18:00"]], "tue": [["09:00", "12:00"], ["13:00", "18:00"]],
                       "wed": [["09:00", "12:00"], ["13:00", "18:00"]], "thu": [["09:00", "12:00"], ["13:00", "18:00"]],
                       "fri": [["09:00", "12:00"], ["13:00", "18:00"]]},
            "holidays": ["2026-11-30"]
        }))).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app.call("POST", "/api/v1/calendars", Some(json!({"label": {"zh": "坏日历"}, "utc_offset_minutes": 480, "weekly": {"mon": [["18:00", "09:00"]]}}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/weekly/mon/0", "{b}");

        let (s, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "consent_review", "label": {"zh": "知情同意审核"},
            "steps": [
                {"name": "review", "kind": "human", "label": {"zh": "审核知情同意书"}, "deadline": "PT4H",
                 "escalation": {"warn_before": "PT1H", "notify": ["dr_chen"], "raise_priority": 9, "transition": "timeout"}},
                {"name": "supervisor", "kind": "human", "label": {"zh": "主任复核"}},
                {"name": "end", "kind": "end"}],
            "transitions": [
                {"from": "review", "to": "end", "name": "approve"},
                {"from": "review", "to": "supervisor", "name": "timeout"},
                {"from": "supervisor", "to": "end"}]
        }))).await?;
        assert!(s.is_success(), "{b}");
        app.call("POST", "/api/v1/services/consent_review/publish", None).await?;
        rule(&app, json!({"name": "late_review", "label": {"zh": "超时通知"},
                          "event": {"kind": "deadline.passed", "service": "consent_review"},
                          "instructions": [{"op": "notify", "to": ["dr_li"], "title": "{{event.payload.step}} 超时"}]})).await?;

        // Saturday 2026-11-28 17:00 China time: the clock's start.
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "consent_review", "priority": 3}))).await?;
        let pid = p["id"].as_u64().unwrap_or_default();
        // Monday is a holiday: Tuesday 09:00–12:00 and 13:00–14:00 make the four hours.
        let tuesday_14h = 1_795_856_400_000 + 2 * DAY + 21 * 3_600_000;
        assert_eq!(p["deadline_ms"], tuesday_14h, "{p}");

        app.advance(2 * DAY).await?; // Monday 17:00, the holiday
        settle(&app).await?;
        assert!(notifications(&app, "dr_chen").await?.is_empty());
        app.advance(20 * 3_600_000 + 30 * 60_000).await?; // Tuesday 13:30
        settle(&app).await?;
        let warned = notifications(&app, "dr_chen").await?;
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0]["title"], "即将超时：审核知情同意书");

        let app = app.restart().await?;
        settle(&app).await?;
        assert_eq!(notifications(&app, "dr_chen").await?.len(), 1, "the warning fires once across a restart");
        app.advance(31 * 60_000).await?; // Tuesday 14:01
        settle(&app).await?;
        let chen = notifications(&app, "dr_chen").await?;
        assert_eq!(chen.len(), 2);
        assert_eq!(chen[0]["title"], "已超时：审核知情同意书");
        assert_eq!(notifications(&app, "dr_li").await?[0]["title"], "review 超时", "rules see deadline.passed");
        let (_, pcb) = app.call("GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert_eq!(pcb["step"], "supervisor", "{pcb}");
        assert_eq!(pcb["priority"], 9);
        let history = pcb["history"].as_array().cloned().unwrap_or_default();
        assert!(history.iter().any(|h| h["reason"].as_str().unwrap_or_default().contains("escalated by 'timeout'")), "{history:?}");

        app.advance(DAY).await?;
        settle(&app).await?;
        assert_eq!(notifications(&app, "dr_chen").await?.len(), 2, "nothing fires twice");
        Ok(())
    })
    .await
}
