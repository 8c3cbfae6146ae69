//! Sub-service calls return values and iterate (issue 13 §5), on both databases: a
//! consultation's diagnosis reaches the visit that called it; a visit runs its treatments
//! one after the other and gathers their results; a parallel iteration that is complete
//! early cancels the children still running; cancelling the caller cancels its children.
//! Before, a sub-service's results never reached its caller and nothing iterated.

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use serde_json::{Value, json};

/// 王医生 handles every step; 面诊 (a consultation), 治疗 (one treatment) and the visits
/// that call them.
async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    let human = |name: &str, zh: &str| json!({"name": name, "kind": "human", "label": {"zh": zh}, "operators": {"user": "dr_wang"}});
    let services = [
        json!({"name": "mianzhen", "label": {"zh": "面诊"},
               "steps": [human("see", "医生面诊"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "see", "to": "end"}]}),
        json!({"name": "zhiliao", "label": {"zh": "治疗"},
               "steps": [human("treat", "执行治疗"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "treat", "to": "end"}]}),
        json!({"name": "visit", "label": {"zh": "到诊"},
               "steps": [{"name": "consult", "kind": "sub_service", "service": "mianzhen",
                          "outputs": {"zhenduan": "diagnosis"}},
                         human("plan", "制定方案"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "consult", "to": "plan"}, {"from": "plan", "to": "end"}]}),
        json!({"name": "course", "label": {"zh": "疗程"},
               "steps": [{"name": "treat_all", "kind": "sub_service", "service": "zhiliao",
                          "iterate": {"over": "context.treatments", "as": "treatment"},
                          "outputs": {"results": "result"}},
                         human("review", "疗程复核"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "treat_all", "to": "review"}, {"from": "review", "to": "end"}]}),
        json!({"name": "trial", "label": {"zh": "试做"},
               "steps": [{"name": "tries", "kind": "sub_service", "service": "zhiliao",
                          "iterate": {"times": 3, "parallel": true,
                                      "complete_when": "context.scores.filter(|s| type_of(s) == \"i64\").len() >= 2"},
                          "outputs": {"scores": "score"}},
                         human("review", "复核"), {"name": "end", "kind": "end"}],
               "transitions": [{"from": "tries", "to": "review"}, {"from": "review", "to": "end"}]}),
    ];
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"id": "dr_wang", "name": "王医生", "capacity": 10})),
        )
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    for service in services {
        let name = service["name"].as_str().unwrap_or_default().to_owned();
        let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
        anyhow::ensure!(s.is_success(), "{name}: {b}");
        let (s, b) = app
            .call("POST", &format!("/api/v1/services/{name}/publish"), None)
            .await?;
        anyhow::ensure!(s.is_success(), "{name}: {b}");
    }
    Ok(())
}

async fn process(app: &TestApp, pid: u64) -> anyhow::Result<Value> {
    let (s, b) = app
        .call("GET", &format!("/api/v1/processes/{pid}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{b}");
    Ok(b)
}

async fn start(app: &TestApp, service: &str, context: Value) -> anyhow::Result<u64> {
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/processes",
            Some(json!({"service": service, "context": context})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    b["id"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no id: {b}"))
}

async fn complete(app: &TestApp, pid: u64, context: Value) -> anyhow::Result<Value> {
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/v1/processes/{pid}/complete"),
            Some(json!({"context": context})),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "complete {pid}: {s} {b}");
    Ok(b)
}

fn children(p: &Value) -> Vec<u64> {
    p["children"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

#[tokio::test]
async fn a_consultation_returns_its_diagnosis_to_the_visit() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let visit = start(&app, "visit", json!({"patient": "曾丽"})).await?;
        let p = process(&app, visit).await?;
        assert_eq!(
            (p["state"].as_str(), p["wait"]["kind"].as_str()),
            (Some("WAITING"), Some("children")),
            "{p}"
        );
        let [child] = children(&p)[..] else {
            anyhow::bail!("one child: {p}")
        };
        let c = process(&app, child).await?;
        assert_eq!(
            c["context"]["patient"], "曾丽",
            "the child sees the caller's context: {c}"
        );
        complete(
            &app,
            child,
            json!({"diagnosis": "轻度色斑", "notes": "不外传"}),
        )
        .await?;
        let p = process(&app, visit).await?;
        assert_eq!(p["step"], "plan", "{p}");
        assert_eq!(p["context"]["zhenduan"], "轻度色斑", "{p}");
        assert!(
            p["context"].get("notes").is_none(),
            "only the declared outputs return: {p}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_course_runs_its_treatments_one_after_the_other_and_gathers_the_results()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let treatments = ["肉毒素", "水光针", "光子嫩肤"];
        let course = start(&app, "course", json!({"treatments": treatments})).await?;
        let mut app = app;
        for (i, treatment) in treatments.iter().enumerate() {
            if i == 1 {
                // The call frame is in the stored history: a restart carries on from it.
                app = app.restart().await?;
            }
            let p = process(&app, course).await?;
            let [child] = children(&p)[..] else {
                anyhow::bail!("one child at a time: {p}")
            };
            let c = process(&app, child).await?;
            assert_eq!(
                (
                    c["context"]["treatment"].as_str(),
                    c["context"]["index"].as_u64()
                ),
                (Some(*treatment), Some(i as u64)),
                "{c}"
            );
            complete(&app, child, json!({"result": format!("{treatment}完成")})).await?;
        }
        let p = process(&app, course).await?;
        assert_eq!(p["step"], "review", "{p}");
        assert_eq!(
            p["context"]["results"],
            json!(["肉毒素完成", "水光针完成", "光子嫩肤完成"]),
            "{p}"
        );
        assert!(
            p.get("iteration").is_none(),
            "the call frame is gone once it returned: {p}"
        );
        // An empty list: the call returns at once with empty results.
        let empty = start(&app, "course", json!({"treatments": []})).await?;
        let p = process(&app, empty).await?;
        assert_eq!(
            (p["step"].as_str(), &p["context"]["results"]),
            (Some("review"), &json!([])),
            "{p}"
        );
        // Not a list: the visit fails, saying why.
        let wrong = start(&app, "course", json!({"treatments": "肉毒素"})).await?;
        let p = process(&app, wrong).await?;
        assert_eq!(p["exit"], "failed", "{p}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_parallel_iteration_complete_early_cancels_the_rest_and_cancelling_the_caller_cancels_its_children()
-> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let trial = start(&app, "trial", json!({})).await?;
        let p = process(&app, trial).await?;
        let kids = children(&p);
        assert_eq!(kids.len(), 3, "all three at once: {p}");
        complete(&app, kids[0], json!({"score": 7})).await?;
        assert_eq!(process(&app, trial).await?["step"], "tries");
        complete(&app, kids[2], json!({"score": 9})).await?;
        let p = process(&app, trial).await?;
        assert_eq!(p["step"], "review", "two scores complete it: {p}");
        assert_eq!(p["context"]["scores"], json!([7, null, 9]), "{p}");
        let third = process(&app, kids[1]).await?;
        assert_eq!(
            (third["state"].as_str(), third["exit"].as_str()),
            (Some("TERMINATED"), Some("cancelled")),
            "{third}"
        );

        // Cancelling a caller while its children run cancels them.
        let other = start(&app, "trial", json!({})).await?;
        let kids = children(&process(&app, other).await?);
        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{other}/terminate"),
                Some(json!({"reason": "患者取消"})),
            )
            .await?;
        assert!(s.is_success(), "{b}");
        for kid in kids {
            let c = process(&app, kid).await?;
            assert_eq!(
                (c["state"].as_str(), c["exit"].as_str()),
                (Some("TERMINATED"), Some("cancelled")),
                "{c}"
            );
        }
        let p = process(&app, other).await?;
        assert_eq!(
            (p["state"].as_str(), p["exit"].as_str()),
            (Some("TERMINATED"), Some("cancelled")),
            "{p}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn calls_that_cannot_run_are_refused_when_saved() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "bad", "label": {"zh": "错误"},
            "steps": [{"name": "a", "kind": "sub_service", "service": "zhiliao",
                       "iterate": {"over": "context.x", "times": 2}, "outputs": {"bad key": "y"}},
                      {"name": "b", "kind": "human", "iterate": {"times": 2}},
                      {"name": "c", "kind": "sub_service", "service": "zhiliao", "iterate": {"times": 0}},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "end"}]
        }))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["path"].as_str()).collect();
        for expected in ["/steps/0/iterate", "/steps/0/outputs/bad key", "/steps/1/iterate", "/steps/2/iterate/times"] {
            assert!(paths.contains(&expected), "{expected}: {b}");
        }
        Ok(())
    })
    .await
}
