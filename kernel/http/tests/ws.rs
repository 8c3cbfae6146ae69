//! The WebSocket stream over a real socket: a subscriber gets a snapshot and then every
//! transition in order with consecutive sequence numbers; after a disconnect it resumes
//! with `since` and receives exactly what it missed, then the live stream, without gaps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::each_backend;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        if let Message::Text(t) = msg {
            return Ok(serde_json::from_str(t.as_str())?);
        }
    }
}

/// Serves `router` on a free local port, as a client reaches it over TCP: its address, and
/// the task to abort when the test is done.
async fn serve(
    router: axum::Router,
) -> anyhow::Result<(String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    Ok((
        addr,
        tokio::spawn(async move { axum::serve(listener, router).await }),
    ))
}

async fn subscribe(addr: &str, body: Value) -> anyhow::Result<Socket> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await?;
    ws.send(Message::Text(body.to_string().into())).await?;
    Ok(ws)
}

#[tokio::test]
async fn subscribers_see_every_transition_in_order_and_resume_without_gaps() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let (addr, server) = serve(app.router.clone()).await?;

        app.call("POST", "/api/v1/users", Some(json!({"id": "wang_hushi", "roles": ["front_desk"]}))).await?;
        app.call("POST", "/api/v1/services", Some(json!({"name": "checkin", "label": {"zh": "到诊登记"},
            "steps": [{"name": "register", "kind": "human", "operators": {"role": "front_desk"}},
                      {"name": "wait_consent", "kind": "wait", "wait": {"event": "consent_signed"}},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "register", "to": "wait_consent"}, {"from": "wait_consent", "to": "end"}]}))).await?;
        app.call("POST", "/api/v1/services/checkin/publish", None).await?;

        let mut ws = subscribe(&addr, json!({"subscribe": "queues"})).await?;
        let snapshot = next_json(&mut ws).await?;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        // The queue snapshot is the whole of `/queues`: the dashboard needs nothing else.
        let (_, queues) = app.call("GET", "/api/v1/queues", None).await?;
        for key in ["states", "waiting", "resources", "ready_queue", "late", "late_total"] {
            assert_eq!(snapshot[key], queues[key], "{key}: {snapshot} vs {queues}");
        }
        let mut last = snapshot["seq"].as_u64().unwrap();

        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let pid = p["id"].as_u64().unwrap();
        let mut states = Vec::new();
        loop {
            let c = next_json(&mut ws).await?;
            assert_eq!(c["seq"].as_u64().unwrap(), last + 1, "no gaps: {c}");
            last += 1;
            if c["from"] != c["to"] {
                states.push(c["to"].as_str().unwrap().to_owned());
            }
            if c["to"] == "RUNNING" {
                break;
            }
        }
        assert_eq!(states, vec!["READY", "RUNNING"]);

        // Disconnect; work goes on; reconnect with since and miss nothing.
        ws.close(None).await?;
        app.call("POST", &format!("/api/v1/processes/{pid}/complete"), Some(json!({}))).await?;
        app.call("POST", &format!("/api/v1/processes/{pid}/signal"), Some(json!({"event": "consent_signed", "payload": {"by": "患者"}}))).await?;
        let mut ws = subscribe(&addr, json!({"subscribe": "process", "id": pid, "since": last})).await?;
        let resume = next_json(&mut ws).await?;
        assert_eq!(resume["type"], "resume", "{resume}");
        let upto = resume["to"].as_u64().unwrap();
        let mut seen = Vec::new();
        while last < upto {
            let c = next_json(&mut ws).await?;
            assert_eq!(c["seq"].as_u64().unwrap(), last + 1, "no gaps after resume: {c}");
            last += 1;
            seen.push((c["to"].as_str().unwrap().to_owned(), c["step"].clone()));
        }
        assert_eq!(seen.last().map(|s| s.0.as_str()), Some("TERMINATED"), "{seen:?}");
        assert!(seen.iter().any(|(_, step)| step == "wait_consent"));

        // Live changes keep coming after the replay.
        let (_, p2) = app.call("POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let mut watch = subscribe(&addr, json!({"subscribe": "process", "id": p2["id"]})).await?;
        let snap = next_json(&mut watch).await?;
        assert_eq!(snap["processes"][0]["state"], "RUNNING");
        app.call("POST", &format!("/api/v1/processes/{}/terminate", p2["id"]), None).await?;
        let mut terminated = false;
        for _ in 0..10 {
            let c = next_json(&mut watch).await?;
            if c["to"] == "TERMINATED" {
                terminated = true;
                break;
            }
        }
        assert!(terminated);

        // A bad subscription gets an error and a close.
        let mut bad = subscribe(&addr, json!({"subscribe": "everything"})).await?;
        assert_eq!(next_json(&mut bad).await?["error"]["code"], "bad_subscription");
        server.abort();
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_user_is_streamed_only_the_processes_she_may_see() -> anyhow::Result<()> {
    each_backend(|app| async move {
        let mine = app.user_with("xiaoli", &["services:checkin:start"]).await?;
        let (addr, server) = serve(app.bare.clone()).await?;
        app.call("POST", "/api/v1/roles", Some(json!({"name": "front_desk", "label": {"zh": "前台"}}))).await?;
        app.call("POST", "/api/v1/services", Some(json!({"name": "checkin", "label": {"zh": "到诊登记"},
            "steps": [{"name": "register", "kind": "human", "operators": {"role": "front_desk"}}, {"name": "end", "kind": "end"}],
            "transitions": [{"from": "register", "to": "end"}]}))).await?;
        app.call("POST", "/api/v1/services/checkin/publish", None).await?;
        let (_, theirs) = app.call("POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let connect = |topic: Value| {
            let (addr, token) = (addr.clone(), mine.clone());
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={token}")).await?;
                ws.send(Message::Text(topic.to_string().into())).await?;
                Ok::<Socket, anyhow::Error>(ws)
            }
        };
        // The queue counts cover everyone's processes: they need the monitor grant.
        let mut ws = connect(json!({"subscribe": "queues"})).await?;
        let refused = next_json(&mut ws).await?;
        assert_eq!(refused["error"]["code"], "forbidden", "{refused}");

        let mut ws = connect(json!({"subscribe": "service", "name": "checkin"})).await?;
        let snapshot = next_json(&mut ws).await?;
        assert_eq!(snapshot["processes"], json!([]), "someone else's process is not shown: {snapshot}");
        // Someone else's new process is not streamed; her own is.
        app.call("POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let (_, own) = app.call_as(common::As::Bearer(&mine), "POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let first = next_json(&mut ws).await?;
        assert_eq!(first["process"], own["id"], "the first change she sees is her own: {first}");
        assert_ne!(first["process"], theirs["id"]);
        server.abort();
        Ok(())
    })
    .await
}

/// A process past its step's deadline is listed as late — by `/queues` and by the
/// dashboard's snapshot alike — with how late it is, and leaves the list when handled.
#[tokio::test]
async fn a_process_past_its_deadline_is_late_in_the_queues_and_the_snapshot() -> anyhow::Result<()>
{
    each_backend(|app| async move {
        let (addr, server) = serve(app.router.clone()).await?;
        app.call("POST", "/api/v1/users", Some(json!({"id": "wang_hushi", "roles": ["front_desk"]}))).await?;
        app.call("POST", "/api/v1/services", Some(json!({"name": "checkin", "label": {"zh": "到诊登记"},
            "steps": [{"name": "register", "kind": "human", "operators": {"role": "front_desk"}, "deadline": "PT30M"},
                      {"name": "end", "kind": "end"}],
            "transitions": [{"from": "register", "to": "end"}]}))).await?;
        app.call("POST", "/api/v1/services/checkin/publish", None).await?;
        let (_, p) = app.call("POST", "/api/v1/processes", Some(json!({"service": "checkin"}))).await?;
        let pid = p["id"].as_u64().unwrap();
        let (_, queues) = app.call("GET", "/api/v1/queues", None).await?;
        assert_eq!(queues["late"], json!([]), "not late yet: {queues}");
        assert_eq!(queues["late_total"], 0);

        app.advance(42 * 60_000).await?;
        let (_, queues) = app.call("GET", "/api/v1/queues", None).await?;
        assert_eq!(queues["late_total"], 1, "{queues}");
        let late = &queues["late"][0];
        assert_eq!(late["process"], pid, "{late}");
        assert_eq!(late["step"], "register");
        assert_eq!(late["service"], "checkin");
        assert_eq!(late["late_minutes"], 12, "42 minutes in a 30-minute step: {late}");
        let mut ws = subscribe(&addr, json!({"subscribe": "queues"})).await?;
        let snapshot = next_json(&mut ws).await?;
        assert_eq!(snapshot["late"], queues["late"], "{snapshot}");

        let (s, body) = app.call("POST", &format!("/api/v1/processes/{pid}/handle"), Some(json!({"user": "wang_hushi"}))).await?;
        assert!(s.is_success(), "{s} {body}");
        let (_, queues) = app.call("GET", "/api/v1/queues", None).await?;
        assert_eq!(queues["late_total"], 0, "handled, no longer late: {queues}");
        server.abort();
        Ok(())
    })
    .await
}
