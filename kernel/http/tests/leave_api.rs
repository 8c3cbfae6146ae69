//! The leave-request scenario from loonflow's own documentation, at the clinic, over HTTP:
//! a nurse applies for N days of leave; N > 3 needs the medical director, N > 5 also the
//! president; a team leader claims it from a role of three; forwards it to a colleague, who
//! adds a signer; a reject returns it to the applicant, who edits and resubmits; a
//! committee "2 of 3" completes on the second agree. Every list of every participant is
//! checked at every point, and every history entry carries the record's snapshot.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::{As, TestApp, each_backend};
use serde_json::{Value, json};

/// Sends a request as `user`, with a session of theirs (logged in with their password once
/// per database).
async fn call_as(
    app: &TestApp,
    user: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    static SESSIONS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    > = std::sync::OnceLock::new();
    let sessions = SESSIONS.get_or_init(Default::default);
    let key = (app.url.clone(), user.to_owned());
    let known = sessions
        .lock()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .get(&key)
        .cloned();
    let token = match known {
        Some(t) => t,
        None => {
            let t = app.login(user, "clinic-pass-2026").await?;
            sessions
                .lock()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .insert(key, t.clone());
            t
        }
    };
    app.call_as(As::Bearer(&token), method, path, body).await
}

async fn setup(app: &TestApp) -> anyhow::Result<()> {
    setup_with(app, leave_service()).await
}

/// The clinic's leave request: departments, roles, people, the form and the service, as
/// the demo pack ships them.
fn seed() -> Value {
    serde_json::from_str(include_str!("../../../seeds/clinic/leave.json")).unwrap_or_default()
}

fn leave_service() -> Value {
    seed()["service"].clone()
}

async fn setup_with(app: &TestApp, service: Value) -> anyhow::Result<()> {
    let seed = seed();
    let list = |key: &str| seed[key].as_array().cloned().unwrap_or_default();
    for (path, key) in [
        ("/api/v1/departments", "departments"),
        ("/api/v1/roles", "roles"),
        ("/api/v1/users", "users"),
    ] {
        for body in list(key) {
            let (s, b) = app.call("POST", path, Some(body)).await?;
            anyhow::ensure!(s.is_success(), "{path}: {b}");
        }
    }
    app.define(seed["data_item"].clone()).await?;
    let (s, b) = app.call("POST", "/api/v1/services", Some(service)).await?;
    anyhow::ensure!(s.is_success(), "{b}");
    let (s, b) = app
        .call("POST", "/api/v1/services/leave/publish", None)
        .await?;
    anyhow::ensure!(s.is_success(), "{b}");
    Ok(())
}

/// The process ids in one of `user`'s lists.
async fn list(app: &TestApp, user: &str, view: &str) -> anyhow::Result<BTreeSet<u64>> {
    let (s, b) = call_as(
        app,
        user,
        "GET",
        &format!("/api/v1/work-items?view={view}"),
        None,
    )
    .await?;
    anyhow::ensure!(s == StatusCode::OK, "{view} of {user}: {s} {b}");
    Ok(b["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["id"].as_u64())
        .collect())
}

/// Checks every participant's four lists against what they should hold: `todo`, `handled`
/// and `related` name the people whose list has the process (created is the applicant's).
async fn expect_lists(
    app: &TestApp,
    pid: u64,
    at: &str,
    todo: &[&str],
    handled: &[&str],
    related: &[&str],
) -> anyhow::Result<()> {
    let people: Vec<String> = seed()["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    for id in &people {
        let id = id.as_str();
        for (view, who) in [
            ("todo", todo),
            ("handled", handled),
            ("related", related),
            ("created", &["xiaoli"][..]),
        ] {
            let has = list(app, id, view).await?.contains(&pid);
            anyhow::ensure!(
                has == who.contains(&id),
                "{at}: {id}'s {view} list {} process {pid}",
                if has { "has" } else { "lacks" }
            );
        }
    }
    Ok(())
}

async fn act(
    app: &TestApp,
    user: &str,
    pid: u64,
    action: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let (s, b) = call_as(
        app,
        user,
        "POST",
        &format!("/api/v1/processes/{pid}/{action}"),
        Some(body),
    )
    .await?;
    anyhow::ensure!(s == StatusCode::OK, "{user} {action}: {s} {b}");
    Ok(b)
}

async fn step_of(app: &TestApp, pid: u64) -> anyhow::Result<String> {
    let (_, b) = app
        .call("GET", &format!("/api/v1/processes/{pid}"), None)
        .await?;
    Ok(b["step"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_leave_request_scenario_runs_over_http_with_every_list_right() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        // The nurse fills in the form and starts the request.
        let (s, rec) = call_as(
            &app,
            "xiaoli",
            "POST",
            "/api/v1/records/qingjia",
            Some(json!({"days": 6, "reason": "家中有事"})),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{rec}");
        let rid = rec["id"].as_str().unwrap_or_default().to_owned();
        let (s, p) = call_as(
            &app,
            "xiaoli",
            "POST",
            "/api/v1/processes",
            Some(json!({"service": "leave", "record": {"item": "qingjia", "id": rid}})),
        )
        .await?;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let pid = p["id"].as_u64().unwrap_or_default();
        assert_eq!(p["creator"], "xiaoli");
        assert_eq!(p["step"], "apply");
        expect_lists(&app, pid, "created", &["xiaoli"], &[], &["xiaoli"]).await?;

        // Only the applicant may act at `apply`; what she may edit and what she must fill.
        let (_, detail) = call_as(
            &app,
            "xiaoli",
            "GET",
            &format!("/api/v1/processes/{pid}"),
            None,
        )
        .await?;
        assert_eq!(
            detail["form"]["required"],
            json!(["days", "reason"]),
            "{detail}"
        );
        assert_eq!(
            detail["form"]["editable"],
            json!(["days", "reason"]),
            "{detail}"
        );
        let readonly = detail["form"]["readonly"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            readonly.contains(&json!("leader_opinion")) && !readonly.contains(&json!("days")),
            "{detail}"
        );
        let (s, b) = call_as(
            &app,
            "wangjing",
            "GET",
            &format!("/api/v1/processes/{pid}"),
            None,
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a leader sees nothing before it reaches them: {b}"
        );
        let (s, b) = call_as(
            &app,
            "xiaoli",
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree", "fields": {"leader_opinion": "自己批准"}})),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["details"][0]["path"], "/fields/leader_opinion");
        act(
            &app,
            "xiaoli",
            pid,
            "handle",
            json!({"attribute": "agree", "comment": "请批准"}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "leader");

        // Offered to the three team leaders; one claims it.
        expect_lists(
            &app,
            pid,
            "offered",
            &["wangjing", "zhaolei", "sunli"],
            &["xiaoli"],
            &["xiaoli", "wangjing", "zhaolei", "sunli"],
        )
        .await?;
        let (_, actions) = call_as(
            &app,
            "zhaolei",
            "GET",
            &format!("/api/v1/processes/{pid}/actions"),
            None,
        )
        .await?;
        assert_eq!(
            actions["actions"],
            json!([{"action": "claim"}]),
            "{actions}"
        );
        act(&app, "wangjing", pid, "claim", json!({})).await?;
        let (s, b) = call_as(
            &app,
            "zhaolei",
            "POST",
            &format!("/api/v1/processes/{pid}/claim"),
            Some(json!({})),
        )
        .await?;
        assert_eq!(s, StatusCode::CONFLICT, "claimed once only: {b}");
        expect_lists(
            &app,
            pid,
            "claimed",
            &["wangjing"],
            &["xiaoli"],
            &["xiaoli", "wangjing", "zhaolei", "sunli"],
        )
        .await?;

        // She forwards it to a colleague, who asks HR to sign before deciding.
        act(
            &app,
            "wangjing",
            pid,
            "forward",
            json!({"to": "zhoumin", "reason": "我休假，请周敏处理"}),
        )
        .await?;
        expect_lists(
            &app,
            pid,
            "forwarded",
            &["zhoumin"],
            &["xiaoli", "wangjing"],
            &["xiaoli", "wangjing", "zhaolei", "sunli", "zhoumin"],
        )
        .await?;
        act(
            &app,
            "zhoumin",
            pid,
            "add_signer",
            json!({"signer": "qianhui", "reason": "请人事确认假期余额"}),
        )
        .await?;
        expect_lists(
            &app,
            pid,
            "signer added",
            &["qianhui"],
            &["xiaoli", "wangjing"],
            &[
                "xiaoli", "wangjing", "zhaolei", "sunli", "zhoumin", "qianhui",
            ],
        )
        .await?;
        let (s, _) = call_as(
            &app,
            "zhoumin",
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree"})),
        )
        .await?;
        assert_eq!(s, StatusCode::CONFLICT, "waiting for the signer");
        act(
            &app,
            "qianhui",
            pid,
            "handle",
            json!({"attribute": "agree", "comment": "年假余额 8 天"}),
        )
        .await?;
        expect_lists(
            &app,
            pid,
            "signed",
            &["zhoumin"],
            &["xiaoli", "wangjing", "qianhui"],
            &[
                "xiaoli", "wangjing", "zhaolei", "sunli", "zhoumin", "qianhui",
            ],
        )
        .await?;

        // A reject returns it to the applicant, who edits and resubmits.
        act(
            &app,
            "zhoumin",
            pid,
            "handle",
            json!({"attribute": "reject", "comment": "天数太多，请改为 5 天以内或说明"}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "apply");
        let all = [
            "xiaoli", "wangjing", "zhaolei", "sunli", "zhoumin", "qianhui",
        ];
        expect_lists(
            &app,
            pid,
            "rejected",
            &["xiaoli"],
            &["xiaoli", "wangjing", "qianhui", "zhoumin"],
            &all,
        )
        .await?;
        let (s, b) = call_as(
            &app,
            "xiaoli",
            "POST",
            &format!("/api/v1/processes/{pid}/handle"),
            Some(json!({"attribute": "agree", "fields": {"reason": ""}})),
        )
        .await?;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a required field left empty: {b}"
        );
        assert_eq!(b["error"]["details"][0]["path"], "/fields/reason");
        act(
            &app,
            "xiaoli",
            pid,
            "handle",
            json!({"attribute": "agree", "fields": {"days": 7, "reason": "家中老人住院，需陪护"}}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "leader");
        expect_lists(
            &app,
            pid,
            "resubmitted",
            &["wangjing", "zhaolei", "sunli"],
            &["xiaoli", "wangjing", "qianhui", "zhoumin"],
            &all,
        )
        .await?;

        // Another leader claims and agrees, with an opinion; 7 days: director, then president.
        act(&app, "zhaolei", pid, "claim", json!({})).await?;
        act(
            &app,
            "zhaolei",
            pid,
            "handle",
            json!({"attribute": "agree", "fields": {"leader_opinion": "同意，已安排顶班"}}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "director");
        let mut related: Vec<&str> = all.to_vec();
        related.push("liuyang");
        expect_lists(
            &app,
            pid,
            "director",
            &["liuyang"],
            &["xiaoli", "wangjing", "qianhui", "zhoumin", "zhaolei"],
            &related,
        )
        .await?;
        act(
            &app,
            "liuyang",
            pid,
            "handle",
            json!({"attribute": "agree"}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "president");
        related.push("chenzong");
        act(
            &app,
            "chenzong",
            pid,
            "handle",
            json!({"attribute": "agree"}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "committee");
        related.extend(["wei", "he", "lu"]);
        let handled = [
            "xiaoli", "wangjing", "qianhui", "zhoumin", "zhaolei", "liuyang", "chenzong",
        ];
        expect_lists(
            &app,
            pid,
            "committee",
            &["wei", "he", "lu"],
            &handled,
            &related,
        )
        .await?;

        // The committee: 2 of 3; the second agree completes it.
        act(
            &app,
            "wei",
            pid,
            "handle",
            json!({"attribute": "agree", "comment": "同意"}),
        )
        .await?;
        assert_eq!(step_of(&app, pid).await?, "committee");
        let mut handled2 = handled.to_vec();
        handled2.push("wei");
        expect_lists(&app, pid, "one vote", &["he", "lu"], &handled2, &related).await?;
        let done = act(&app, "he", pid, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(done["state"], "TERMINATED", "{done}");
        assert_eq!(done["exit"], "completed");
        handled2.push("he");
        expect_lists(&app, pid, "decided", &[], &handled2, &related).await?;
        let votes: Vec<(String, String)> = done["work"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| w["role"] == "voter")
            .map(|w| {
                (
                    w["user"].as_str().unwrap_or_default().to_owned(),
                    w["action"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert!(
            votes.contains(&("wei".into(), "agree".into()))
                && votes.contains(&("he".into(), "agree".into())),
            "{votes:?}"
        );
        assert!(
            votes.iter().any(|(u, a)| u == "lu" && a != "agree"),
            "the third vote was not needed: {votes:?}"
        );

        // Every history entry has the record's snapshot, and it follows the edits.
        let (_, detail) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        let history = detail["history"].as_array().cloned().unwrap_or_default();
        assert!(history.len() > 20, "{}", history.len());
        for h in &history {
            assert!(
                h["record"].is_object(),
                "entry {} has no snapshot: {h}",
                h["seq"]
            );
        }
        assert_eq!(history[0]["record"]["days"], 6);
        assert_eq!(
            history.last().map(|h| h["record"]["days"].clone()),
            Some(json!(7))
        );
        assert_eq!(
            history
                .last()
                .map(|h| h["record"]["leader_opinion"].clone()),
            Some(json!("同意，已安排顶班"))
        );

        // To-do notices went through the outbox to each person's inbox.
        while app.kernel.outbox.deliver_due().await? > 0 {}
        let (_, inbox) = call_as(
            &app,
            "zhoumin",
            "GET",
            "/api/v1/notifications?user=zhoumin",
            None,
        )
        .await?;
        let titles: Vec<&str> = inbox["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["title"].as_str())
            .collect();
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("待办：LEAVE-") && t.ends_with("主管审批")),
            "{titles:?}"
        );
        let (_, inbox) = call_as(
            &app,
            "xiaoli",
            "GET",
            "/api/v1/notifications?user=xiaoli",
            None,
        )
        .await?;
        assert!(
            inbox["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["title"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("已由委员会决定"))),
            "{inbox}"
        );

        // Shorter leave takes shorter paths: 2 days skips the director, 4 skips the president.
        for (days, path) in [(2, vec!["committee"]), (4, vec!["director", "committee"])] {
            let (_, rec) = call_as(
                &app,
                "xiaoli",
                "POST",
                "/api/v1/records/qingjia",
                Some(json!({"days": days, "reason": "休息"})),
            )
            .await?;
            let (_, p) = call_as(
                &app,
                "xiaoli",
                "POST",
                "/api/v1/processes",
                Some(json!({"service": "leave", "record": {"item": "qingjia", "id": rec["id"]}})),
            )
            .await?;
            let pid = p["id"].as_u64().unwrap_or_default();
            act(&app, "xiaoli", pid, "handle", json!({"attribute": "agree"})).await?;
            act(&app, "sunli", pid, "claim", json!({})).await?;
            act(&app, "sunli", pid, "handle", json!({"attribute": "agree"})).await?;
            let mut seen = vec![step_of(&app, pid).await?];
            if seen[0] == "director" {
                act(
                    &app,
                    "liuyang",
                    pid,
                    "handle",
                    json!({"attribute": "agree"}),
                )
                .await?;
                seen.push(step_of(&app, pid).await?);
            }
            assert_eq!(seen, path, "{days} days");
        }
        Ok(())
    })
    .await
}

async fn start(app: &TestApp, user: &str, days: i64) -> anyhow::Result<(StatusCode, Value)> {
    let (s, rec) = call_as(
        app,
        user,
        "POST",
        "/api/v1/records/qingjia",
        Some(json!({"days": days, "reason": "休息"})),
    )
    .await?;
    anyhow::ensure!(s == StatusCode::CREATED, "{rec}");
    call_as(
        app,
        user,
        "POST",
        "/api/v1/processes",
        Some(json!({"service": "leave", "record": {"item": "qingjia", "id": rec["id"]}})),
    )
    .await
}

#[tokio::test]
async fn returns_withdrawals_delegations_state_changes_and_start_limits() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let mut service = leave_service();
        service["may_start"] = json!("started.this_month < 2 && user.roles.contains(\"nurse\")");
        service["steps"][3]["deadline"] = json!("PT4H");
        service["steps"][3]["notify"] = json!({"timeout": {"title": "已超时：{{serial}} {{step_label}}", "body": "{{user}} 请尽快处理"}});
        setup_with(&app, service).await?;

        // At most two requests a month per nurse; an HR member may not apply at all here.
        let (s, first) = start(&app, "xiaoli", 4).await?;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        let (s, second) = start(&app, "xiaoli", 1).await?;
        assert_eq!(s, StatusCode::CREATED, "{second}");
        let (s, b) = start(&app, "xiaoli", 1).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("may not start 'leave'")), "{b}");
        let (s, b) = start(&app, "qianhui", 1).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (pid, pid2) = (first["id"].as_u64().unwrap_or_default(), second["id"].as_u64().unwrap_or_default());

        // Withdrawn by the applicant while nobody else has acted.
        let (s, b) = call_as(&app, "wangjing", "POST", &format!("/api/v1/processes/{pid2}/withdraw"), Some(json!({}))).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "not hers to see, let alone withdraw: {b}");
        let done = act(&app, "xiaoli", pid2, "withdraw", json!({"reason": "不请了"})).await?;
        assert_eq!(done["state"], "TERMINATED");
        assert_eq!(done["exit"], "cancelled");

        // Claimed and agreed by a leader; 4 days go to the director, who returns it to that
        // leader (the last handler there), then to all the leaders.
        act(&app, "xiaoli", pid, "handle", json!({"attribute": "agree"})).await?;
        act(&app, "wangjing", pid, "claim", json!({})).await?;
        act(&app, "wangjing", pid, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(step_of(&app, pid).await?, "director");
        let (s, b) = call_as(&app, "xiaoli", "POST", &format!("/api/v1/processes/{pid}/withdraw"), Some(json!({}))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "someone has acted: {b}");
        let (s, b) = call_as(&app, "wangjing", "POST", &format!("/api/v1/processes/{pid}/handle"), Some(json!({"attribute": "agree"}))).await?;
        assert_eq!(s, StatusCode::CONFLICT, "no item of hers at the director's step: {b}");
        let (s, b) = call_as(&app, "zhoumin", "GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "not a participant: {b}");
        let (_, actions) = call_as(&app, "liuyang", "GET", &format!("/api/v1/processes/{pid}/actions"), None).await?;
        let returns: Vec<&Value> = actions["actions"].as_array().into_iter().flatten().filter(|a| a["action"] == "return").collect();
        assert_eq!(returns.first().map(|a| a["steps"].clone()), Some(json!(["apply", "leader"])), "{actions}");
        act(&app, "liuyang", pid, "return", json!({"step": "leader", "to": "last_handler", "reason": "请补充顶班安排"})).await?;
        assert_eq!(step_of(&app, pid).await?, "leader");
        assert!(list(&app, "wangjing", "todo").await?.contains(&pid));
        assert!(!list(&app, "zhaolei", "todo").await?.contains(&pid), "only the last handler gets it back");
        act(&app, "wangjing", pid, "handle", json!({"attribute": "agree", "fields": {"leader_opinion": "已安排孙丽顶班"}})).await?;
        act(&app, "liuyang", pid, "return", json!({"step": "leader", "to": "candidates", "reason": "换一位主管看看"})).await?;
        for leader in ["wangjing", "zhaolei", "sunli"] {
            assert!(list(&app, leader, "todo").await?.contains(&pid), "{leader} may claim it again");
        }
        let (s, b) = call_as(&app, "liuyang", "POST", &format!("/api/v1/processes/{pid}/return"), Some(json!({"step": "nowhere"}))).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "the director holds nothing now: {b}");

        // An administrator puts it at the committee directly; it is recorded as such.
        let (s, b) = call_as(&app, "liuyang", "POST", &format!("/api/v1/processes/{pid}/change_state"), Some(json!({"step": "committee", "reason": "x"}))).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, b) = app.call("POST", &format!("/api/v1/processes/{pid}/change_state"), Some(json!({"step": "committee", "reason": "院办特批"}))).await?;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["step"], "committee");
        let (_, detail) = app.call("GET", &format!("/api/v1/processes/{pid}"), None).await?;
        assert!(detail["history"].as_array().into_iter().flatten().any(|h| h["reason"].as_str().is_some_and(|r| r.contains("state changed by an administrator to 'committee': 院办特批"))), "{detail}");
        for leader in ["wangjing", "zhaolei", "sunli"] {
            assert!(!list(&app, leader, "todo").await?.contains(&pid), "the offer to {leader} is closed");
        }

        // The director delegates to the president for a week; new items go to the deputy.
        let (s, b) = call_as(&app, "liuyang", "POST", "/api/v1/delegations", Some(json!({"deputy": "nobody", "from": "2026-11-28T00:00:00Z", "to": "2026-11-27T00:00:00Z"}))).await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let paths: Vec<&str> = b["error"]["details"].as_array().into_iter().flatten().filter_map(|d| d["path"].as_str()).collect();
        assert_eq!(paths, ["/to", "/deputy"], "{b}");
        let (s, b) = call_as(&app, "liuyang", "POST", "/api/v1/delegations", Some(json!({"user": "chenzong", "deputy": "liuyang", "from": "2026-11-28T00:00:00Z", "to": "2026-12-05T00:00:00Z"}))).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "someone else's delegation: {b}");
        let (s, d) = call_as(&app, "liuyang", "POST", "/api/v1/delegations", Some(json!({"deputy": "chenzong", "from": "2026-11-28T00:00:00Z", "to": "2026-12-05T00:00:00Z", "services": ["leave"]}))).await?;
        assert_eq!(s, StatusCode::CREATED, "{d}");
        let (s, p3) = start(&app, "zhoumin", 5).await?;
        assert_eq!(s, StatusCode::CREATED, "{p3}");
        let pid3 = p3["id"].as_u64().unwrap_or_default();
        act(&app, "zhoumin", pid3, "handle", json!({"attribute": "agree"})).await?;
        act(&app, "sunli", pid3, "claim", json!({})).await?;
        act(&app, "sunli", pid3, "handle", json!({"attribute": "agree"})).await?;
        assert_eq!(step_of(&app, pid3).await?, "director");
        assert!(list(&app, "chenzong", "todo").await?.contains(&pid3), "the deputy has it");
        assert!(!list(&app, "liuyang", "todo").await?.contains(&pid3));
        let (_, detail) = call_as(&app, "chenzong", "GET", &format!("/api/v1/processes/{pid3}"), None).await?;
        let item = detail["work"].as_array().and_then(|w| w.last().cloned()).unwrap_or_default();
        assert_eq!((item["user"].clone(), item["on_behalf_of"].clone()), (json!("chenzong"), json!("liuyang")), "{detail}");
        // The delegation survives a restart; ending it sends new items to the director again.
        let app = app.restart().await?;
        let (_, mine) = call_as(&app, "liuyang", "GET", "/api/v1/delegations", None).await?;
        assert_eq!(mine["total"], 1, "{mine}");
        let (s, _) = call_as(&app, "liuyang", "DELETE", &format!("/api/v1/delegations/{}", d["id"]), None).await?;
        assert_eq!(s, StatusCode::OK);
        // Four hours on, the step's own timeout notice reaches whoever holds it.
        app.advance(5 * 3_600_000).await?;
        for _ in 0..5 {
            app.kernel.rules.round().await?;
            while app.kernel.outbox.deliver_due().await? > 0 {}
        }
        let (_, inbox) = call_as(&app, "chenzong", "GET", "/api/v1/notifications?user=chenzong", None).await?;
        let titles: Vec<&str> = inbox["items"].as_array().into_iter().flatten().filter_map(|n| n["title"].as_str()).collect();
        assert!(titles.iter().any(|t| t.starts_with("已超时：LEAVE-") && t.ends_with("医务总监审批")), "{titles:?}");
        act(&app, "chenzong", pid3, "handle", json!({"attribute": "agree", "comment": "代刘总监批"})).await?;

        // The lists filter and page.
        let (_, page) = call_as(&app, "xiaoli", "GET", "/api/v1/work-items?view=created&limit=1", None).await?;
        assert_eq!((page["total"].clone(), page["items"].as_array().map(Vec::len)), (json!(2), Some(1)), "{page}");
        let cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        let (_, next) = call_as(&app, "xiaoli", "GET", &format!("/api/v1/work-items?view=created&limit=1&cursor={cursor}"), None).await?;
        assert_eq!(next["items"][0]["id"], json!(pid), "{next}");
        assert_eq!(next["next_cursor"], Value::Null);
        let (_, ended) = call_as(&app, "xiaoli", "GET", "/api/v1/work-items?view=created&finished=true", None).await?;
        assert_eq!(ended["items"][0]["id"], json!(pid2), "{ended}");
        let (_, none) = call_as(&app, "xiaoli", "GET", "/api/v1/work-items?view=created&created_from=2026-12-01T00:00:00Z", None).await?;
        assert_eq!(none["total"], 0);
        let (s, b) = call_as(&app, "xiaoli", "GET", "/api/v1/work-items?view=mine", None).await?;
        assert_eq!((s, b["error"]["details"][0]["path"].clone()), (StatusCode::BAD_REQUEST, json!("/query/view")), "{b}");
        let (s, _) = call_as(&app, "xiaoli", "GET", "/api/v1/work-items?user=wangjing", None).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "another person's lists");
        let (_, listed) = call_as(&app, "zhoumin", "GET", "/api/v1/processes", None).await?;
        let ids: Vec<u64> = listed["items"].as_array().into_iter().flatten().filter_map(|p| p["id"].as_u64()).collect();
        assert_eq!(ids, [pid3], "a user lists only the processes she is part of");
        Ok(())
    })
    .await
}

/// The record as it stands, and how many changes its audit trail holds.
async fn record_now(app: &TestApp, id: &str) -> anyhow::Result<(Value, usize)> {
    let (s, rec) = app
        .call("GET", &format!("/api/v1/records/qingjia/{id}"), None)
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{rec}");
    let (s, trail) = app
        .call(
            "GET",
            &format!("/api/v1/records/qingjia/{id}/history"),
            None,
        )
        .await?;
    anyhow::ensure!(s == StatusCode::OK, "{trail}");
    let n = trail
        .as_array()
        .or_else(|| trail["items"].as_array())
        .map_or(0, Vec::len);
    Ok((rec, n))
}

#[tokio::test]
async fn a_handler_s_edit_commits_with_the_transition_or_not_at_all() -> anyhow::Result<()> {
    each_backend(|app| async move {
        setup(&app).await?;
        let (s, p) = start(&app, "xiaoli", 2).await?;
        anyhow::ensure!(s == StatusCode::CREATED, "{p}");
        let pid = p["id"].as_u64().unwrap_or_default();
        let rid = p["record"]["id"]
            .as_str()
            .or_else(|| p["record"][1].as_str())
            .unwrap_or_default()
            .to_owned();
        anyhow::ensure!(!rid.is_empty(), "the process names its record: {p}");
        let (before, trail_before) = record_now(&app, &rid).await?;

        // Refused by the core (the applicant's step has no reject): the edit is not kept.
        let path = format!("/api/v1/processes/{pid}/handle");
        let (s, b) = call_as(
            &app,
            "xiaoli",
            "POST",
            &path,
            Some(json!({"attribute": "reject", "fields": {"days": 9}})),
        )
        .await?;
        assert!(s.is_client_error(), "{s} {b}");
        // Refused by the record's own checks (a number expected): the process stays put.
        let (s, b) = call_as(
            &app,
            "xiaoli",
            "POST",
            &path,
            Some(json!({"attribute": "agree", "fields": {"days": "九"}})),
        )
        .await?;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(
            b.to_string().contains("days"),
            "the error names the field: {b}"
        );
        let (after, trail_after) = record_now(&app, &rid).await?;
        assert_eq!(after["days"], before["days"], "{after}");
        assert_eq!(after["version"], before["version"], "{after}");
        assert_eq!(
            trail_after, trail_before,
            "no change in the record's audit trail"
        );
        assert_eq!(step_of(&app, pid).await?, "apply");

        // Two handlings of the same item at once: one wins, and the record holds the
        // winner's value, which is also the snapshot in the winner's history entry.
        let (a, b) = tokio::join!(
            call_as(
                &app,
                "xiaoli",
                "POST",
                &path,
                Some(json!({"attribute": "agree", "fields": {"days": 3}}))
            ),
            call_as(
                &app,
                "xiaoli",
                "POST",
                &path,
                Some(json!({"attribute": "agree", "fields": {"days": 4}}))
            ),
        );
        let (a, b) = (a?, b?);
        let won: Vec<i64> = [(&a, 3), (&b, 4)]
            .iter()
            .filter(|((s, _), _)| *s == StatusCode::OK)
            .map(|(_, d)| *d)
            .collect();
        assert_eq!(won.len(), 1, "exactly one handling wins: {a:?} {b:?}");
        let lost = if a.0 == StatusCode::OK { &b } else { &a };
        // 409 when the core refuses it, 422 when it arrives after the step has moved on.
        assert!(
            matches!(
                lost.0,
                StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{lost:?}"
        );
        let (after, trail) = record_now(&app, &rid).await?;
        assert_eq!(after["days"], json!(won[0]), "{after}");
        assert_eq!(trail, trail_before + 1, "one change, the winner's");
        let (_, shown) = app
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        let submitted = shown["history"]
            .as_array()
            .and_then(|h| h.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(submitted["record"]["days"], json!(won[0]), "{submitted}");
        assert_eq!(step_of(&app, pid).await?, "leader");
        Ok(())
    })
    .await
}
