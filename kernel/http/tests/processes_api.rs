//! Services and processes over HTTP, on every backend: a five-step clinic visit with an
//! exclusive gateway, a sub-service, a parallel split/join and a timer runs to completion;
//! illegal moves get 409 naming the state; suspend, resume and terminate cascade to children
//! and release resources; history replays to the PCB; everything survives a restart,
//! timers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, each_backend};
use erpos_kernel::scheduler::{HistoryEntry, Pcb};
use serde_json::{Value, json};

async fn clinic(app: &TestApp) -> anyhow::Result<()> {
    for (name, kind, zh) in [
        ("laser_room", "facility", "激光室"),
        ("laser_device", "equipment", "激光设备"),
        ("consult_room", "facility", "咨询室"),
    ] {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/resource-types",
                Some(json!({"name": name, "kind": kind, "label": {"zh": zh}})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    }
    for (id, t, zh) in [
        ("laser-1", "laser_room", "激光一室"),
        ("picosure", "laser_device", "PicoSure 755"),
        ("consult-1", "consult_room", "咨询室一"),
    ] {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/resources",
                Some(json!({"id": id, "type": t, "capacity": 1, "label": {"zh": zh}})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    }
    for (id, roles, skills) in [
        ("wang_hushi", json!(["front_desk"]), json!([])),
        ("li_yisheng", json!(["doctor"]), json!(["laser"])),
    ] {
        let (s, b) = app
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"id": id, "roles": roles, "skills": skills})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{b}");
    }
    let consultation = json!({
        "name": "consultation", "label": {"zh": "面诊", "en": "Consultation"},
        "steps": [
            {"name": "assess", "kind": "human", "label": {"zh": "面诊评估"}, "operators": {"role": "doctor"}, "resources": [{"type": "consult_room"}]},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "assess", "to": "end"}]});
    let visit = json!({
        "name": "treatment_visit", "label": {"zh": "治疗就诊", "en": "Treatment visit"},
        "steps": [
            {"name": "checkin", "kind": "human", "label": {"zh": "到诊登记"}, "operators": {"role": "front_desk"}},
            {"name": "route", "kind": "exclusive", "label": {"zh": "是否初诊"}},
            {"name": "consult", "kind": "sub_service", "service": "consultation", "label": {"zh": "面诊"}},
            {"name": "treat", "kind": "human", "label": {"zh": "激光治疗"}, "operators": {"skill": "laser", "policy": "least_loaded"},
             "resources": [{"type": "laser_room", "quantity": 1}, {"type": "laser_device", "quantity": 1}], "duration_minutes": 45, "deadline": "PT2H"},
            {"name": "split", "kind": "parallel"},
            {"name": "bill", "kind": "automatic", "label": {"zh": "结算"}},
            {"name": "care", "kind": "wait", "label": {"zh": "术后观察"}, "wait": {"after": "PT30M"}},
            {"name": "join", "kind": "join"},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "checkin", "to": "route"},
            {"from": "route", "to": "consult", "condition": "context.first_visit == true"},
            {"from": "route", "to": "treat", "default": true},
            {"from": "consult", "to": "treat"},
            {"from": "treat", "to": "split", "attribute": "agree"},
            {"from": "split", "to": "bill"}, {"from": "split", "to": "care"},
            {"from": "bill", "to": "join"}, {"from": "care", "to": "join"},
            {"from": "join", "to": "end"}]});
    for svc in [consultation, visit] {
        let name = svc["name"].as_str().unwrap().to_owned();
        let (s, b) = app.call("POST", "/api/v1/services", Some(svc)).await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{b}");
        let (s, b) = app
            .call("POST", &format!("/api/v1/services/{name}/publish"), None)
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "{b}");
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

fn at(p: &Value) -> (String, Option<String>) {
    (
        p["state"].as_str().unwrap_or_default().to_owned(),
        p["step"].as_str().map(str::to_owned),
    )
}

async fn complete(app: &TestApp, pid: u64, body: Value) -> anyhow::Result<Value> {
    let (s, b) = app
        .call(
            "POST",
            &format!("/api/v1/processes/{pid}/complete"),
            Some(body),
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "complete {pid}: {s} {b}");
    Ok(b)
}

#[tokio::test]
async fn a_clinic_visit_runs_to_completion() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (s, started) = app.call("POST", "/api/v1/processes", Some(json!({"service": "treatment_visit", "priority": 7, "context": {"first_visit": true}}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{started}");
        let pid = started["id"].as_u64().unwrap();
        assert_eq!(at(&started), ("RUNNING".into(), Some("checkin".into())));
        assert_eq!(started["operator"], "wang_hushi");
        assert_eq!(started["version"], 1);

        let p = complete(&app, pid, json!({})).await?;
        assert_eq!(at(&p), ("WAITING".into(), Some("consult".into())));
        let child = p["children"][0].as_u64().unwrap();
        let c = process(&app, child).await?;
        assert_eq!(at(&c), ("RUNNING".into(), Some("assess".into())));
        assert_eq!(c["operator"], "li_yisheng");

        complete(&app, child, json!({"context": {"diagnosis": "色斑"}})).await?;
        let p = process(&app, pid).await?;
        assert_eq!(at(&p), ("RUNNING".into(), Some("treat".into())));
        let held: Vec<&str> = p["allocations"].as_array().unwrap().iter().map(|a| a["resource"].as_str().unwrap()).collect();
        assert_eq!(held, vec!["laser-1", "picosure"]);
        let (_, queues) = app.call("GET", "/api/v1/queues", None).await?;
        assert_eq!(queues["states"]["RUNNING"], 1);
        assert_eq!(queues["resources"].as_array().unwrap().iter().find(|r| r["id"] == "laser-1").unwrap()["in_use"], 1);

        // A wrong transition name is refused, naming the ones there are.
        let (s, b) = app.call("POST", &format!("/api/v1/processes/{pid}/complete"), Some(json!({"transition": "nowhere"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let p = complete(&app, pid, json!({"transition": "split"})).await?;
        assert_eq!(at(&p), ("WAITING".into(), Some("split".into())));
        assert!(p["allocations"].as_array().unwrap().is_empty(), "resources released after the step");

        app.advance(29 * 60_000).await?;
        assert_eq!(at(&process(&app, pid).await?).0, "WAITING");
        app.advance(2 * 60_000).await?;
        let done = process(&app, pid).await?;
        assert_eq!(done["state"], "TERMINATED");
        assert_eq!(done["exit"], "completed");

        // The stored history replays to exactly the PCB.
        let history: Vec<HistoryEntry> = done["history"].as_array().unwrap().iter().enumerate().map(|(i, h)| {
            let after: Pcb = serde_json::from_value(h["pcb"].clone()).unwrap();
            HistoryEntry {
                pid, seq: i as u64 + 1, at_ms: 0, by: h["by"].as_str().unwrap().into(),
                from: serde_json::from_value(h["from"].clone()).unwrap(), to: serde_json::from_value(h["to"].clone()).unwrap(),
                reason: h["reason"].as_str().unwrap().into(), from_step: None, after, notices: Vec::new(),
            }
        }).collect();
        for w in history.windows(2) {
            assert_eq!(w[0].after.state, w[1].from, "break in the chain at seq {}: {} then {}", w[1].seq, w[0].reason, w[1].reason);
        }
        let replayed = Pcb::replay(&history).expect("a chain of legal moves");
        let now: Pcb = serde_json::from_value(history.last().unwrap().after.clone().pipe_json())?;
        assert_eq!(replayed, now);
        assert!(history.iter().any(|h| h.reason.contains("entered 'join'")), "the parent continues at the join once its branches are done");
        // Everything is released.
        let (_, resources) = app.call("GET", "/api/v1/resources", None).await?;
        assert!(resources["items"].as_array().unwrap().iter().all(|r| r["in_use"] == 0), "{resources}");
        Ok(())
    })
    .await
}

trait PipeJson {
    fn pipe_json(self) -> Value;
}
impl PipeJson for Pcb {
    fn pipe_json(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn illegal_moves_get_409_and_cascades_reach_children() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (_, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "treatment_visit", "context": {"first_visit": true}})),
            )
            .await?;
        let pid = p["id"].as_u64().unwrap();
        complete(&app, pid, json!({})).await?;
        let child = process(&app, pid).await?["children"][0].as_u64().unwrap();
        assert_eq!(
            process(&app, child).await?["allocations"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let (s, b) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/suspend"),
                Some(json!({"reason": "患者临时离开"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(process(&app, child).await?["state"], "SUSPENDED");
        let (s, b) = app
            .call("POST", &format!("/api/v1/processes/{pid}/suspend"), None)
            .await?;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(b["error"]["code"], "illegal_move");
        assert!(
            b["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Suspended"),
            "{b}"
        );

        app.call("POST", &format!("/api/v1/processes/{pid}/resume"), None)
            .await?;
        assert_eq!(
            at(&process(&app, pid).await?),
            ("WAITING".into(), Some("consult".into()))
        );
        assert_eq!(
            process(&app, child).await?["state"],
            "RUNNING",
            "resumed to the state it was suspended from"
        );

        let (s, _) = app
            .call(
                "POST",
                &format!("/api/v1/processes/{pid}/terminate"),
                Some(json!({"reason": "预约取消"})),
            )
            .await?;
        assert_eq!(s, StatusCode::OK);
        let c = process(&app, child).await?;
        assert_eq!(
            (c["state"].as_str(), c["exit"].as_str()),
            (Some("TERMINATED"), Some("cancelled"))
        );
        let (_, resources) = app.call("GET", "/api/v1/resources", None).await?;
        assert!(
            resources["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["in_use"] == 0),
            "{resources}"
        );
        for action in ["resume", "suspend", "terminate", "complete"] {
            let (s, b) = app
                .call("POST", &format!("/api/v1/processes/{pid}/{action}"), None)
                .await?;
            assert_eq!(s, StatusCode::CONFLICT, "{action}: {b}");
        }
        let (s, _) = app
            .call("POST", "/api/v1/processes/424242/resume", None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .call("POST", &format!("/api/v1/processes/{pid}/dance"), None)
            .await?;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, list) = app
            .call("GET", "/api/v1/processes?state=TERMINATED", None)
            .await?;
        assert_eq!(list["total"], 2);
        let (s, _) = app
            .call("GET", "/api/v1/processes?state=SLEEPING", None)
            .await?;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn invalid_services_are_refused_naming_the_step_and_drawn_when_valid() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (s, b) = app.call("POST", "/api/v1/services", Some(json!({
            "name": "broken", "label": {"zh": "坏流程"},
            "steps": [{"name": "a", "kind": "human"}, {"name": "gate", "kind": "exclusive"}, {"name": "island", "kind": "human"}, {"name": "end", "kind": "end"}],
            "transitions": [{"from": "a", "to": "gate"}, {"from": "gate", "to": "end", "condition": "context.x >"}, {"from": "gate", "to": "ghost"}]
        }))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
        for expected in ["/transitions/1/condition", "/transitions/2/to", "/steps/2"] {
            assert!(paths.contains(&expected), "{expected} missing from {paths:?}");
        }
        clinic(&app).await?;
        let (s, ctype, svg) = app.get_text("/api/v1/services/treatment_visit/flowchart.svg").await?;
        assert_eq!(s, StatusCode::OK);
        assert!(ctype.starts_with("image/svg+xml"), "{ctype}");
        for label in ["到诊登记", "激光治疗", "术后观察", "context.first_visit"] {
            assert!(svg.contains(label), "the flowchart lacks {label}");
        }
        let (_, services) = app.call("GET", "/api/v1/services", None).await?;
        assert_eq!(services["total"], 2);
        let (s, b) = app.call("POST", "/api/v1/processes", Some(json!({"service": "nothing"}))).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        let (s, b) = app.call("POST", "/api/v1/processes", Some(json!({"service": "treatment_visit", "priority": "high"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // An administrator raises a process's priority (the dashboard's button); a priority
        // outside 0–100, of the wrong type, or an unknown key is 422 and changes nothing.
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "treatment_visit"}))).await?;
        let pid = p["id"].as_u64().unwrap();
        let (_, acts) = app.call("GET", &format!("/api/v1/processes/{pid}/actions"), None).await?;
        assert!(
            acts["actions"].as_array().unwrap().iter().any(|a| a["action"] == "prioritize" && a["priority"] == p["priority"]),
            "{acts}"
        );
        for (body, path) in [
            (json!({"priority": 101}), "/priority"),
            (json!({"priority": "high"}), "/priority"),
            (json!({}), "/priority"),
            (json!({"priority": 80, "why": "急诊"}), "/why"),
        ] {
            let (s, b) = app.call("POST", &format!("/api/v1/processes/{pid}/prioritize"), Some(body.clone())).await?;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
            assert_eq!(b["error"]["details"][0]["path"], path, "{b}");
        }
        let (s, b) = app.call("POST", &format!("/api/v1/processes/{pid}/prioritize"), Some(json!({"priority": 80}))).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, shown) = app.call("GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert_eq!(shown["priority"], 80, "{shown}");
        // A process's flowchart outlines where it is (and nothing else when it has ended).
        let (s, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "treatment_visit"}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let (s, ctype, svg) = app
            .get_text(&format!("/api/v1/processes/{}/flowchart.svg", p["id"]))
            .await?;
        assert_eq!(s, StatusCode::OK, "{svg}");
        assert!(ctype.starts_with("image/svg+xml"), "{ctype}");
        let here = format!(r#"class="here" data-step="{}""#, p["step"].as_str().unwrap_or_default());
        assert!(svg.contains(&here), "{here} in {svg}");
        assert_eq!(svg.matches(r#"class="here""#).count(), 1);
        let (s, _, b) = app.get_text("/api/v1/processes/999999/flowchart.svg").await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn processes_and_timers_survive_a_restart() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (_, p) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "treatment_visit", "context": {"first_visit": false}})),
            )
            .await?;
        let pid = p["id"].as_u64().unwrap();
        complete(&app, pid, json!({})).await?;
        complete(&app, pid, json!({"transition": "split"})).await?;
        let (_, second) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "treatment_visit"})),
            )
            .await?;
        let before = process(&app, pid).await?;
        assert_eq!(at(&before), ("WAITING".into(), Some("split".into())));

        let app = app.restart().await?;
        let after = process(&app, pid).await?;
        assert_eq!(after["history"], before["history"]);
        let s2 = process(&app, second["id"].as_u64().unwrap()).await?;
        assert_eq!(at(&s2), ("RUNNING".into(), Some("checkin".into())));
        // The 30-minute care timer was pending across the restart; it still fires.
        app.advance(31 * 60_000).await?;
        assert_eq!(process(&app, pid).await?["state"], "TERMINATED");
        // New processes get fresh ids after a restart.
        let (_, third) = app
            .call(
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "treatment_visit"})),
            )
            .await?;
        assert!(third["id"].as_u64().unwrap() > second["id"].as_u64().unwrap());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn running_processes_keep_their_version_and_new_ones_take_the_newest() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let (_, old) = app.call("POST", "/api/v1/processes", Some(json!({"service": "consultation"}))).await?;
        // Version 2 adds a follow-up call after the assessment.
        let v2 = json!({
            "name": "consultation", "label": {"zh": "面诊", "en": "Consultation"},
            "steps": [
                {"name": "assess", "kind": "human", "operators": {"role": "doctor"}, "resources": [{"type": "consult_room"}]},
                {"name": "follow_up", "kind": "human", "label": {"zh": "电话回访"}, "operators": {"role": "front_desk"}},
                {"name": "end", "kind": "end"}],
            "transitions": [{"from": "assess", "to": "follow_up"}, {"from": "follow_up", "to": "end"}]});
        let (s, b) = app.call("POST", "/api/v1/services", Some(v2)).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, published) = app.call("POST", "/api/v1/services/consultation/publish", None).await?;
        assert_eq!(s, StatusCode::OK, "{published}");
        assert_eq!(published["version"], 2);
        let (_, info) = app.call("GET", "/api/v1/services/consultation", None).await?;
        assert_eq!(info["versions"], json!([1, 2]));

        let old_pid = old["id"].as_u64().unwrap();
        assert_eq!(process(&app, old_pid).await?["version"], 1);
        complete(&app, old_pid, json!({})).await?;
        assert_eq!(process(&app, old_pid).await?["state"], "TERMINATED", "version 1 ends after the assessment");

        let (_, new) = app.call("POST", "/api/v1/processes", Some(json!({"service": "consultation"}))).await?;
        let new_pid = new["id"].as_u64().unwrap();
        assert_eq!(new["version"], 2);
        complete(&app, new_pid, json!({})).await?;
        assert_eq!(at(&process(&app, new_pid).await?), ("RUNNING".into(), Some("follow_up".into())));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn readers_never_see_a_transition_before_it_is_stored() -> anyhow::Result<()> {
    each_backend(|app| async move {
        clinic(&app).await?;
        let mut pids = Vec::new();
        for _ in 0..8 {
            let (_, p) = app
                .call(
                    "POST",
                    "/api/v1/processes",
                    Some(json!({"service": "treatment_visit", "context": {"first_visit": false}})),
                )
                .await?;
            pids.push(p["id"].as_u64().unwrap());
        }
        // Writers suspend and resume the visits as fast as they can (many small group
        // commits) while a reader checks every process it reads against stored history.
        let app = std::sync::Arc::new(app);
        let mut writers = Vec::new();
        for (w, pid) in pids.iter().copied().enumerate() {
            let app = app.clone();
            writers.push(tokio::spawn(async move {
                for _ in 0..15 {
                    for action in ["suspend", "resume"] {
                        let (s, b) = app
                            .call("POST", &format!("/api/v1/processes/{pid}/{action}"), None)
                            .await?;
                        anyhow::ensure!(s == StatusCode::OK, "writer {w}: {action} {s} {b}");
                    }
                }
                anyhow::Ok(())
            }));
        }
        let mut reads = 0;
        while writers.iter().any(|w| !w.is_finished()) || reads < 20 {
            for pid in &pids {
                let p = process(&app, *pid).await?;
                let version = p["version_no"].as_u64().unwrap();
                let stored = p["history"].as_array().unwrap().len() as u64;
                assert!(
                    stored >= version,
                    "process {pid} shown at version {version} with only {stored} entries stored"
                );
                reads += 1;
            }
        }
        for w in writers {
            w.await??;
        }
        Ok(())
    })
    .await
}
