//! `/api/v1/ws`: live streams of process changes for the operator dashboard.
//!
//! A client sends one subscription: `{"subscribe": "queues"}`, `{"subscribe": "service",
//! "name": "treatment_visit"}` or `{"subscribe": "process", "id": 7}`, optionally with
//! `"since": N` (the last `seq` it saw). It gets a `snapshot` (or, with `since`, every stored
//! change after N: a `resume`), then every `change` in order, each with its `seq` — so a
//! client that reconnects resumes without gaps. A client too slow to keep up is closed
//! with a reason telling it where to resume; it never slows the kernel, which only ever
//! broadcasts into a bounded buffer.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::processes::pcb_json;
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::engine::{Change, state_name};
use crate::scheduler::Pcb;

/// What a client watches.
#[derive(Debug, Clone)]
enum Topic {
    Queues,
    Service(String),
    Process(u64),
}

impl Topic {
    fn parse(v: &Value) -> Result<(Topic, Option<u64>), String> {
        let since = v.get("since").and_then(Value::as_u64);
        let topic = match v.get("subscribe").and_then(Value::as_str) {
            Some("queues") => Topic::Queues,
            Some("service") => Topic::Service(
                v.get("name")
                    .and_then(Value::as_str)
                    .ok_or("a service subscription needs \"name\"")?
                    .to_owned(),
            ),
            Some("process") => Topic::Process(
                v.get("id")
                    .and_then(Value::as_u64)
                    .ok_or("a process subscription needs \"id\"")?,
            ),
            _ => {
                return Err(
                    "send {\"subscribe\": \"queues\" | \"service\" | \"process\", …}".into(),
                );
            }
        };
        Ok((topic, since))
    }

    /// Whether a change of `pcb` goes to this subscriber: on their topic, and a process
    /// they may see (the same rule as `GET /processes`).
    fn wants(&self, pcb: &Pcb, caller: &Caller) -> bool {
        crate::tasks::visible(pcb, caller) && self.on_topic(pcb)
    }

    fn on_topic(&self, pcb: &Pcb) -> bool {
        match self {
            Topic::Queues => true,
            Topic::Service(name) => &*pcb.service == name.as_str(),
            Topic::Process(id) => pcb.id == *id || pcb.parent == Some(*id),
        }
    }
}

/// A change as `caller` may see it: the PCB with its bound record redacted (see
/// `crate::redact`); the services' definitions are looked up once per version.
async fn change_json(k: &Kernel, caller: &Caller, services: &mut Services, c: &Change) -> Value {
    let p = &c.entry.after;
    let key = (p.service.to_string(), p.version);
    if !services.contains_key(&key) {
        let found = k
            .engine
            .read(|core| core.service(&p.service, p.version).cloned())
            .await;
        services.insert(key.clone(), found);
    }
    let svc = services.get(&key).and_then(|s| s.as_deref());
    let schema = k.definitions.schema();
    let pcb = crate::redact::pcb(&schema.catalog, svc, caller, p, pcb_json(p));
    json!({
        "type": "change", "seq": c.seq, "process": c.entry.pid, "at_ms": c.entry.at_ms, "by": c.entry.by,
        "from": state_name(c.entry.from), "to": state_name(c.entry.to), "reason": c.entry.reason,
        "step": c.entry.after.step, "pcb": pcb,
    })
}

/// The service versions a subscriber's changes were shown with.
type Services =
    std::collections::HashMap<(String, u32), Option<Arc<erpos_design::service::Service>>>;

/// Upgrades to a WebSocket (see the module's doc for the protocol). Browsers, which cannot
/// set headers on a WebSocket, may send their session token as `?access_token=`.
#[utoipa::path(get, path = "/api/v1/ws", tag = "processes",
    params(("access_token" = Option<String>, Query, description = "a session token, for clients that cannot send Authorization")),
    responses((status = 101, description = "switching to the WebSocket protocol"),
              (status = 401, description = "no credentials", body = super::error::ErrorBody)))]
pub async fn upgrade(
    State(k): State<Arc<Kernel>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(k, socket, caller))
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

async fn serve(k: Arc<Kernel>, mut socket: WebSocket, caller: Caller) {
    let first = match tokio::time::timeout(std::time::Duration::from_secs(30), socket.recv()).await
    {
        Ok(Some(Ok(Message::Text(t)))) => t,
        _ => return close(&mut socket, 1008, "send a subscription first".into()).await,
    };
    let parsed = serde_json::from_str::<Value>(first.as_str())
        .map_err(|e| e.to_string())
        .and_then(|v| Topic::parse(&v));
    let (topic, since) = match parsed {
        Ok(t) => t,
        Err(e) => {
            let _ = send(
                &mut socket,
                json!({"type": "error", "error": {"code": "bad_subscription", "message": e}}),
            )
            .await;
            return close(&mut socket, 1008, "bad subscription".into()).await;
        }
    };
    // The queue counts cover every process: they need the monitor grant, as `/queues` does.
    if matches!(topic, Topic::Queues) && !caller.may(Permission::Monitor) {
        let _ = send(
            &mut socket,
            json!({"type": "error", "error": {"code": "forbidden", "message": "the queues need the monitor grant"}}),
        )
        .await;
        return close(&mut socket, 1008, "forbidden".into()).await;
    }
    let t = topic.clone();
    let c = caller.clone();
    let schema = k.definitions.schema();
    let mut services = Services::new();
    let (snapshot, at, mut rx) = k
        .engine
        .subscribe(move |core| {
            let wanted: Vec<&Pcb> = core.pcbs().filter(|p| t.wants(p, &c)).collect();
            let processes: Vec<Value> = wanted
                .iter()
                .map(|p| super::processes::pcb_for(core, &schema.catalog, &c, p))
                .collect();
            let states: serde_json::Map<String, Value> =
                crate::scheduler::pcb::count_by_state(wanted.iter().copied())
                    .into_iter()
                    .map(|(s, n)| (state_name(s).to_owned(), json!(n)))
                    .collect();
            (processes, states)
        })
        .await;
    let mut last = at;
    match since {
        Some(since) if since <= at => match k.engine.changes_between(since, at).await {
            Ok(missed) => {
                if !send(
                    &mut socket,
                    json!({"type": "resume", "from": since, "to": at}),
                )
                .await
                {
                    return;
                }
                for c in missed
                    .iter()
                    .filter(|c| topic.wants(&c.entry.after, &caller))
                {
                    if !send(
                        &mut socket,
                        change_json(&k, &caller, &mut services, c).await,
                    )
                    .await
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading missed changes failed");
                return close(
                    &mut socket,
                    1011,
                    "could not read missed changes; subscribe without since".into(),
                )
                .await;
            }
        },
        _ => {
            let (processes, states) = snapshot;
            let body = match &topic {
                Topic::Queues => json!({"type": "snapshot", "seq": at, "states": states}),
                _ => {
                    json!({"type": "snapshot", "seq": at, "states": states, "processes": processes})
                }
            };
            if !send(&mut socket, body).await {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) => {
                    if c.seq <= last {
                        continue;
                    }
                    last = c.seq;
                    if topic.wants(&c.entry.after, &caller)
                        && !send(&mut socket, change_json(&k, &caller, &mut services, &c).await).await
                    {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    return close(&mut socket, 4000, format!("too slow to keep up; reconnect with since={last}")).await;
                }
                Err(RecvError::Closed) => return close(&mut socket, 1001, "server shutting down".into()).await,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}
