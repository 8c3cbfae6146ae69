//! Statistics over HTTP, on every backend: a small clinic runs five visits with the clock
//! moved by known minutes (one cancelled, one treatment finished late against its 30-minute
//! deadline, one still open past it), and every figure per service, step, operator and role
//! is checked exactly, for the default period, a period starting mid-way, one ending
//! early, whole days and a service filter; bad parameters get 400 naming the parameter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

const MIN: i64 = 60_000;

async fn post(app: &TestApp, path: &str, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app.call("POST", path, Some(body)).await?;
    anyhow::ensure!(s.is_success(), "POST {path}: {s} {b}");
    Ok(b)
}

async fn get(app: &TestApp, path: &str) -> anyhow::Result<Value> {
    let (s, b) = app.call("GET", path, None).await?;
    anyhow::ensure!(s == StatusCode::OK, "GET {path}: {s} {b}");
    Ok(b)
}

/// A front desk (checkin) and one doctor (treatment, due within 30 minutes).
async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    for user in [
        json!({"id": "wang_hushi", "roles": ["front_desk", "nurse"], "capacity": 3}),
        json!({"id": "li_yisheng", "roles": ["doctor"]}),
        json!({"id": "sun_yaoshi", "roles": ["pharmacist"]}),
    ] {
        post(app, "/api/v1/users", user).await?;
    }
    let visit = json!({
        "name": "quick_visit", "label": {"zh": "快速就诊"},
        "steps": [
            {"name": "checkin", "kind": "human", "label": {"zh": "到诊登记"}, "operators": {"role": "front_desk"}},
            {"name": "treat", "kind": "human", "label": {"zh": "治疗"}, "operators": {"role": "doctor"}, "deadline": "PT30M"},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "checkin", "to": "treat"}, {"from": "treat", "to": "end"}]});
    let call = json!({
        "name": "phone_followup", "label": {"zh": "电话回访"},
        "steps": [
            {"name": "call", "kind": "human", "operators": {"role": "nurse"}},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "call", "to": "end"}]});
    for svc in [visit, call] {
        let name = svc["name"].as_str().unwrap().to_owned();
        post(app, "/api/v1/services", svc).await?;
        post(app, &format!("/api/v1/services/{name}/publish"), json!({})).await?;
    }
    Ok(())
}

async fn start(app: &TestApp, service: &str) -> anyhow::Result<u64> {
    let p = post(app, "/api/v1/processes", json!({"service": service})).await?;
    Ok(p["id"].as_u64().unwrap())
}

async fn complete(app: &TestApp, pid: u64) -> anyhow::Result<Value> {
    post(app, &format!("/api/v1/processes/{pid}/complete"), json!({})).await
}

/// The figures of an item, without the fields naming its group.
fn figures(item: &Value) -> Value {
    let keys = [
        "started",
        "completed",
        "cancelled",
        "failed",
        "avg_ms",
        "p90_ms",
        "late",
        "backlog",
    ];
    Value::Object(
        keys.iter()
            .map(|k| ((*k).to_owned(), item[*k].clone()))
            .collect(),
    )
}

fn find<'a>(page: &'a Value, key: &str, name: &str) -> &'a Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i[key] == name)
        .unwrap_or_else(|| panic!("no {key} {name} in {page}"))
}

#[allow(clippy::too_many_arguments)]
fn fig(
    started: u64,
    completed: u64,
    cancelled: u64,
    avg_ms: Option<i64>,
    p90_ms: Option<i64>,
    late: u64,
    backlog: u64,
) -> Value {
    json!({"started": started, "completed": completed, "cancelled": cancelled, "failed": 0,
           "avg_ms": avg_ms, "p90_ms": p90_ms, "late": late, "backlog": backlog})
}

#[tokio::test]
async fn figures_per_service_step_operator_and_role() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        // 09:00: three patients check in at once (the front desk takes three at a time).
        let p1 = start(&app, "quick_visit").await?;
        let p2 = start(&app, "quick_visit").await?;
        let p3 = start(&app, "quick_visit").await?;
        app.advance(10 * MIN).await?;
        let p = complete(&app, p1).await?; // 09:10 checkin 10 min; treat starts, due 09:40
        assert_eq!(
            (p["step"].as_str(), p["operator"].as_str()),
            (Some("treat"), Some("li_yisheng"))
        );
        app.advance(10 * MIN).await?;
        post(
            &app,
            &format!("/api/v1/processes/{p3}/terminate"),
            json!({"reason": "未到诊"}),
        )
        .await?; // 09:20
        app.advance(35 * MIN).await?;
        complete(&app, p1).await?; // 09:55: treated in 45 min, late; the visit took 55
        app.advance(5 * MIN).await?;
        complete(&app, p2).await?; // 10:00: checkin 60 min; treat due 10:30
        app.advance(20 * MIN).await?;
        complete(&app, p2).await?; // 10:20: treated in 20 min; the visit took 80
        app.advance(5 * MIN).await?;
        let _p4 = start(&app, "quick_visit").await?; // 10:25, stays at checkin
        let p5 = start(&app, "quick_visit").await?;
        app.advance(5 * MIN).await?;
        complete(&app, p5).await?; // 10:30: checkin 5 min; treat due 11:00, never finished
        app.advance(40 * MIN).await?; // 11:10

        let services = get(&app, "/api/v1/stats/services").await?;
        assert_eq!(
            services["total"], 2,
            "every published service is listed: {services}"
        );
        assert_eq!(services["next_cursor"], Value::Null);
        assert_eq!(
            figures(find(&services, "service", "quick_visit")),
            fig(5, 2, 1, Some(135 * MIN / 2), Some(80 * MIN), 2, 2),
            "durations 55 and 80 min; p1 and p5 had a late treatment; p4 and p5 open"
        );
        assert_eq!(
            figures(find(&services, "service", "phone_followup")),
            fig(0, 0, 0, None, None, 0, 0)
        );
        // The median of the two runs (55 and 80 min) is the first of them; none without
        // a completed run.
        assert_eq!(
            find(&services, "service", "quick_visit")["p50_ms"],
            json!(55 * MIN)
        );
        assert_eq!(
            find(&services, "service", "phone_followup")["p50_ms"],
            Value::Null
        );

        let steps = get(&app, "/api/v1/stats/services/quick_visit/steps").await?;
        assert_eq!(steps["service"], "quick_visit");
        let names: Vec<&str> = steps["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["step"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["checkin", "treat"],
            "definition order, the end step takes no time"
        );
        assert_eq!(
            figures(find(&steps, "step", "checkin")),
            fig(5, 3, 1, Some(25 * MIN), Some(60 * MIN), 0, 1),
            "checkins of 10, 60 and 5 min; p3 cancelled at checkin; p4 waits there"
        );
        assert_eq!(
            figures(find(&steps, "step", "treat")),
            fig(3, 2, 0, Some(65 * MIN / 2), Some(45 * MIN), 2, 1),
            "45 min (late) and 20 min; p5 open 40 min against 30 (late)"
        );

        let operators = get(&app, "/api/v1/stats/operators").await?;
        assert_eq!(operators["total"], 3, "{operators}");
        let li = find(&operators, "operator", "li_yisheng");
        assert_eq!(li["roles"], json!(["doctor"]));
        // p2 waited nowhere for the doctor here, so dispatch-to-leave equals the visit.
        assert_eq!(
            figures(li),
            fig(3, 2, 0, Some(65 * MIN / 2), Some(45 * MIN), 2, 1)
        );
        let wang = find(&operators, "operator", "wang_hushi");
        assert_eq!(wang["roles"], json!(["front_desk", "nurse"]));
        assert_eq!(
            figures(wang),
            fig(5, 3, 1, Some(25 * MIN), Some(60 * MIN), 0, 1)
        );
        assert_eq!(
            figures(find(&operators, "operator", "sun_yaoshi")),
            fig(0, 0, 0, None, None, 0, 0)
        );

        let roles = get(&app, "/api/v1/stats/roles").await?;
        assert_eq!(roles["total"], 4, "{roles}");
        assert_eq!(
            find(&roles, "role", "nurse")["operators"],
            json!(["wang_hushi"])
        );
        assert_eq!(figures(find(&roles, "role", "nurse")), figures(wang));
        assert_eq!(figures(find(&roles, "role", "front_desk")), figures(wang));
        assert_eq!(figures(find(&roles, "role", "doctor")), figures(li));
        assert_eq!(
            figures(find(&roles, "role", "pharmacist")),
            fig(0, 0, 0, None, None, 0, 0)
        );

        // From 09:50: only p4 and p5 started; p2's checkin, entered at 09:00 and left at
        // 10:00, counts with its full 60 minutes; p3's cancellation (09:20) is outside.
        let from = "from=2026-11-28T09:50:00Z";
        let services = get(&app, &format!("/api/v1/stats/services?{from}")).await?;
        assert_eq!(services["from"], "2026-11-28T09:50:00.000000Z");
        assert_eq!(
            figures(find(&services, "service", "quick_visit")),
            fig(2, 2, 0, Some(135 * MIN / 2), Some(80 * MIN), 2, 2)
        );
        let steps = get(
            &app,
            &format!("/api/v1/stats/services/quick_visit/steps?{from}"),
        )
        .await?;
        assert_eq!(
            figures(find(&steps, "step", "checkin")),
            fig(2, 2, 0, Some(65 * MIN / 2), Some(60 * MIN), 0, 1)
        );
        // An offset written with an unescaped '+' (a space once decoded) still reads.
        let tz = get(
            &app,
            "/api/v1/stats/services?from=2026-11-28T17:50:00+08:00",
        )
        .await?;
        assert_eq!(tz["from"], "2026-11-28T09:50:00.000000Z");

        // Up to 09:30: nothing completed yet; p1's treatment is open but not due until 09:40.
        let early = get(&app, "/api/v1/stats/services?to=2026-11-28T09:30:00Z").await?;
        assert_eq!(
            figures(find(&early, "service", "quick_visit")),
            fig(3, 0, 1, None, None, 0, 2),
            "the backlog is now's"
        );
        let steps = get(
            &app,
            "/api/v1/stats/services/quick_visit/steps?to=2026-11-28T09:30:00Z",
        )
        .await?;
        assert_eq!(
            figures(find(&steps, "step", "checkin")),
            fig(3, 1, 1, Some(10 * MIN), Some(10 * MIN), 0, 1)
        );
        assert_eq!(
            figures(find(&steps, "step", "treat")),
            fig(1, 0, 0, None, None, 0, 1)
        );

        // Dates: a whole day (`to` inclusive of its day); the day before saw nothing.
        let day = get(&app, "/api/v1/stats/services?from=2026-11-28&to=2026-11-28").await?;
        assert_eq!(
            (day["from"].as_str(), day["to"].as_str()),
            (
                Some("2026-11-28T00:00:00.000000Z"),
                Some("2026-11-29T00:00:00.000000Z")
            )
        );
        assert_eq!(
            figures(find(&day, "service", "quick_visit")),
            fig(5, 2, 1, Some(135 * MIN / 2), Some(80 * MIN), 2, 2)
        );
        let before = get(&app, "/api/v1/stats/services?to=2026-11-27").await?;
        assert_eq!(
            figures(find(&before, "service", "quick_visit")),
            fig(0, 0, 0, None, None, 0, 2)
        );

        // A follow-up call of another service: the service filter keeps it out.
        let call = start(&app, "phone_followup").await?;
        app.advance(7 * MIN).await?;
        complete(&app, call).await?;
        let all = get(&app, "/api/v1/stats/operators").await?;
        assert_eq!(
            figures(find(&all, "operator", "wang_hushi")),
            fig(6, 4, 1, Some(41 * MIN / 2), Some(60 * MIN), 0, 1)
        );
        let visits = get(&app, "/api/v1/stats/operators?service=quick_visit").await?;
        assert_eq!(
            figures(find(&visits, "operator", "wang_hushi")),
            fig(5, 3, 1, Some(25 * MIN), Some(60 * MIN), 0, 1)
        );
        let calls = get(&app, "/api/v1/stats/roles?service=phone_followup").await?;
        assert_eq!(
            figures(find(&calls, "role", "nurse")),
            fig(1, 1, 0, Some(7 * MIN), Some(7 * MIN), 0, 0)
        );
        let services = get(&app, "/api/v1/stats/services?service=phone_followup").await?;
        assert_eq!(services["total"], 1);
        assert_eq!(
            figures(&services["items"][0]),
            fig(1, 1, 0, Some(7 * MIN), Some(7 * MIN), 0, 0)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_parameter() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        for (path, param) in [
            ("/api/v1/stats/services?from=yesterday", "/query/from"),
            ("/api/v1/stats/operators?to=2026-13-01", "/query/to"),
            (
                "/api/v1/stats/roles?from=2026-11-28&to=2026-11-01",
                "/query/from",
            ),
            ("/api/v1/stats/services?servce=quick_visit", "/query/servce"),
            ("/api/v1/stats/services?service=nowhere", "/query/service"),
            (
                "/api/v1/stats/services/quick_visit/steps?service=quick_visit",
                "/query/service",
            ),
            (
                "/api/v1/stats/services/quick_visit/steps?from=28.11.2026",
                "/query/from",
            ),
        ] {
            let (s, b) = app.call("GET", path, None).await?;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
            assert_eq!(b["error"]["code"], "bad_request", "{path}: {b}");
            assert_eq!(b["error"]["details"][0]["path"], param, "{path}: {b}");
        }
        let (s, b) = app
            .call("GET", "/api/v1/stats/services/nowhere/steps", None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(b["error"]["code"], "not_found");
        let doc = get(&app, "/api/v1/openapi.json").await?;
        for path in [
            "/api/v1/stats/services",
            "/api/v1/stats/services/{name}/steps",
            "/api/v1/stats/operators",
            "/api/v1/stats/roles",
        ] {
            assert!(
                doc["paths"][path]["get"].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }
        Ok(())
    })
    .await
}
