//! `/api/v1/ws`: live streams of process changes for the operator dashboard.
//!
//! A client sends one subscription: `{"subscribe": "queues"}`, `{"subscribe": "service",
//! "name": "treatment_visit"}` or `{"subscribe": "process", "id": 7}`, optionally with
//! `"since": N` (the last `seq` it saw). It gets a `snapshot` (for the queues, the whole of
//! what `GET /queues` answers: counts by state and wait reason, each resource's use and
//! holders, the ready queue) (or, with `since`, every stored
//! change after N: a `resume`), then every `change` in order, each with its `seq` — so a
//! client that reconnects resumes without gaps. A client too slow to keep up is closed
//! with a reason telling it where to resume; it never slows the kernel, which only ever
//! broadcasts into a bounded buffer.
//!
//! A resume reaches back at most `RESUME_WINDOW` changes: a `since` older than that gets
//! an error `resume_too_old` and a close (4001) telling the client to subscribe without
//! `since` (a snapshot). The missed changes are read in pages of `RESUME_PAGE`, only of the
//! processes the caller may see (filtered in the query), so a resume costs what it sends.
//!
//! The socket's caller is checked again whenever credentials or grants change anywhere
//! (`Auth::revisions`) and when its session's time is up: after a logout, a password
//! change, a revoked app token or an expired session the socket is closed with 1008
//! "session ended"; after a change of roles the new grants decide what is streamed (the
//! queues without `monitor` close with 1008). This module must never send a change the
//! caller may not see at the moment it is sent, and never read more history than a
//! resume window.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::auth::CurrentSession;
use super::processes::pcb_json;
use crate::extract::Authenticated;
use erpos_kernel::Kernel;
use erpos_kernel::caller::{Caller, CallerKind};
use erpos_kernel::engine::{Change, state_name};
use erpos_kernel::scheduler::{Pcb, Pid};

/// How far back a `since` may reach, in changes: older resumes are refused (take a
/// snapshot instead). Ten thousand changes are hours of a busy clinic's work.
pub const RESUME_WINDOW: u64 = 10_000;
/// How many missed changes are read from storage at once while resuming.
pub const RESUME_PAGE: usize = 500;
/// Up to this many visible processes, a resume's query names them (`pid IN (...)`); a
/// caller who sees more (a monitor) pages through the window and is filtered per change.
const MAX_PID_FILTER: usize = 500;
/// The longest an idle socket waits before checking its caller again.
const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// The close code and reason when the caller's credentials end.
const SESSION_ENDED: (u16, &str) = (1008, "session ended");

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
        erpos_kernel::tasks::visible(pcb, caller) && self.on_topic(pcb)
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
/// `erpos_kernel::redact`); the services' definitions are looked up once per version.
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
    let pcb = erpos_kernel::redact::pcb(&schema.catalog, svc, caller, p, pcb_json(p));
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
#[utoipa::path(get, path = "/api/v1/ws", tag = "processes", operation_id = "websocket",
    params(("access_token" = Option<String>, Query, description = "a session token, for clients that cannot send Authorization")),
    responses((status = 101, description = "switching to the WebSocket protocol"),
              (status = 401, description = "no credentials", body = super::error::ErrorBody)))]
pub async fn upgrade(
    State(k): State<Arc<Kernel>>,
    Authenticated(caller): Authenticated,
    session: Option<axum::Extension<CurrentSession>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // A plain GET (no `Upgrade: websocket`) gets the API's JSON error, not axum's text.
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return axum::response::IntoResponse::into_response(super::ApiError::new(
                e.status(),
                super::error::ErrorCode::BadRequest,
                e.body_text(),
            ));
        }
    };
    let credential = match (&caller.kind, session) {
        (CallerKind::User, Some(axum::Extension(CurrentSession(hash)))) => {
            Credential::Session { hash }
        }
        (CallerKind::App { app, .. }, _) => Credential::App { app: app.clone() },
        _ => Credential::Fixed,
    };
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(k, socket, caller, credential))
}

/// How the socket's caller proved who they are, so it can be checked again.
#[derive(Debug, Clone)]
enum Credential {
    /// A session (its token's hash).
    Session { hash: String },
    /// An app token's signature, for the caller's user.
    App { app: String },
    /// The bootstrap token, the kernel itself or an in-process caller: nothing to re-check.
    Fixed,
}

/// The socket's caller, kept current: checked again when anything changed in
/// authentication (`Auth::revisions`) or when its session's time is up.
struct Watch {
    k: Arc<Kernel>,
    caller: Caller,
    credential: Credential,
    /// When the session ends (ms, the kernel's clock); `None` for other credentials.
    expires_ms: Option<i64>,
    revisions: watch::Receiver<u64>,
    /// The service versions changes were shown with (their hidden fields redact them).
    services: Services,
}

impl Watch {
    async fn new(
        k: Arc<Kernel>,
        caller: Caller,
        credential: Credential,
    ) -> Result<Self, (u16, String)> {
        let revisions = k.auth.revisions();
        let mut w = Self {
            k,
            caller,
            credential,
            expires_ms: None,
            revisions,
            services: Services::new(),
        };
        w.check(true, None).await?;
        Ok(w)
    }

    /// Checks the caller again when `force`d, when a revision came, or when the session's
    /// time is up; refreshes the grants. `Err` is the close code and reason.
    async fn check(&mut self, force: bool, topic: Option<&Topic>) -> Result<(), (u16, String)> {
        let changed = self.revisions.has_changed().unwrap_or(false);
        let expired = self.expires_ms.is_some_and(|at| self.k.auth.now_ms() >= at);
        if !(force || changed || expired) {
            return Ok(());
        }
        self.revisions.borrow_and_update();
        let ended = || (SESSION_ENDED.0, SESSION_ENDED.1.to_owned());
        let failed = |e: erpos_kernel::error::KernelError| {
            tracing::warn!(error = %e, "checking a WebSocket's caller failed");
            (1011, "could not check the session; reconnect".to_owned())
        };
        match &self.credential {
            Credential::Session { hash } => {
                let (user, expires_ms) = self
                    .k
                    .auth
                    .session(hash)
                    .await
                    .map_err(failed)?
                    .ok_or_else(ended)?;
                if user != self.caller.user {
                    return Err(ended());
                }
                self.expires_ms = Some(expires_ms);
                self.caller.grants = self.k.auth.grants_of(&user).await.map_err(failed)?;
            }
            Credential::App { app } => {
                self.caller = self
                    .k
                    .auth
                    .app_caller(app, &self.caller.user)
                    .await
                    .map_err(failed)?
                    .ok_or_else(ended)?;
            }
            Credential::Fixed => {}
        }
        if let Some(Topic::Queues) = topic
            && let Err(e) = erpos_kernel::app::monitor::may_see_queues(&self.caller)
        {
            return Err((1008, format!("forbidden: {e}")));
        }
        Ok(())
    }

    /// How long an idle socket may wait before its next check.
    fn idle(&self) -> Duration {
        match self.expires_ms {
            Some(at) => {
                let left = u64::try_from(at - self.k.auth.now_ms()).unwrap_or(0);
                RECHECK_EVERY.min(Duration::from_millis(left))
            }
            None => RECHECK_EVERY,
        }
    }
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

/// Sends a change when the caller, checked again if need be, may see it now. `Err` is why
/// the socket must close; `Ok(false)` that the client went away.
async fn deliver(
    socket: &mut WebSocket,
    watch: &mut Watch,
    topic: &Topic,
    change: &Change,
) -> Result<bool, (u16, String)> {
    watch.check(false, Some(topic)).await?;
    if !topic.wants(&change.entry.after, &watch.caller) {
        return Ok(true);
    }
    let shown = change_json(&watch.k, &watch.caller, &mut watch.services, change).await;
    Ok(send(socket, shown).await)
}

/// What the subscription starts with, decided under the core lock.
enum Start {
    /// The queues' snapshot: what `GET /queues` answers (counts by state and wait reason,
    /// each resource's use and holders, the ready queue in dispatch order).
    Queues(Value),
    /// A full snapshot: the processes on the topic and the counts by state.
    Snapshot(Vec<Value>, serde_json::Map<String, Value>),
    /// A resume from `since`: the processes on the topic the caller may see now, by id.
    Resume(u64, Vec<Pid>),
}

async fn serve(k: Arc<Kernel>, mut socket: WebSocket, caller: Caller, credential: Credential) {
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
    let mut watch = match Watch::new(k.clone(), caller, credential).await {
        Ok(w) => w,
        Err((code, reason)) => return close(&mut socket, code, reason).await,
    };
    // The queue counts cover every process: they need the monitor grant, as `/queues` does.
    if matches!(topic, Topic::Queues)
        && let Err(e) = erpos_kernel::app::monitor::may_see_queues(&watch.caller)
    {
        let _ = send(
            &mut socket,
            json!({"type": "error", "error": {"code": "forbidden", "message": e.to_string()}}),
        )
        .await;
        return close(&mut socket, 1008, "forbidden".into()).await;
    }
    let t = topic.clone();
    let c = watch.caller.clone();
    let schema = k.definitions.schema();
    let now_ms = k.clock.now_ms();
    let (start, at, mut rx) = k
        .engine
        .subscribe_at(move |core, at| match since {
            // Only ids: the missed changes are read from storage, page by page.
            Some(since) if since <= at => {
                let mut pids: Vec<Pid> = core
                    .pcbs_unordered()
                    .filter(|p| t.wants(p, &c))
                    .map(|p| p.id)
                    .collect();
                pids.sort_unstable();
                Start::Resume(since, pids)
            }
            _ if matches!(t, Topic::Queues) => {
                Start::Queues(erpos_kernel::app::monitor::queues_of(core, now_ms))
            }
            _ => {
                let wanted: Vec<&Pcb> = core.pcbs().filter(|p| t.wants(p, &c)).collect();
                let processes: Vec<Value> = wanted
                    .iter()
                    .map(|p| super::processes::pcb_for(core, &schema.catalog, &c, p))
                    .collect();
                let states: serde_json::Map<String, Value> =
                    erpos_kernel::scheduler::pcb::count_by_state(wanted.iter().copied())
                        .into_iter()
                        .map(|(s, n)| (state_name(s).to_owned(), json!(n)))
                        .collect();
                Start::Snapshot(processes, states)
            }
        })
        .await;
    let mut last = at;
    match start {
        Start::Resume(since, pids) => {
            if at - since > RESUME_WINDOW {
                let _ = send(
                    &mut socket,
                    json!({"type": "error", "error": {"code": "resume_too_old",
                        "message": format!("since={since} is {} changes ago; a resume reaches back at most {RESUME_WINDOW}: subscribe without since to take a snapshot", at - since),
                        "details": [{"path": "/since", "message": format!("at least {}", at - RESUME_WINDOW)}]}}),
                )
                .await;
                return close(
                    &mut socket,
                    4001,
                    "resume too old; subscribe without since".into(),
                )
                .await;
            }
            if !send(
                &mut socket,
                json!({"type": "resume", "from": since, "to": at}),
            )
            .await
            {
                return;
            }
            let filter = (pids.len() <= MAX_PID_FILTER).then_some(pids.as_slice());
            let mut cursor = since;
            loop {
                let page = match k
                    .engine
                    .changes_page(cursor, at, filter, Some(RESUME_PAGE))
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading missed changes failed");
                        return close(
                            &mut socket,
                            1011,
                            "could not read missed changes; subscribe without since".into(),
                        )
                        .await;
                    }
                };
                for c in &page {
                    cursor = c.seq;
                    match deliver(&mut socket, &mut watch, &topic, c).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err((code, reason)) => return close(&mut socket, code, reason).await,
                    }
                }
                if page.len() < RESUME_PAGE {
                    break;
                }
            }
        }
        Start::Snapshot(processes, states) => {
            let body =
                json!({"type": "snapshot", "seq": at, "states": states, "processes": processes});
            if !send(&mut socket, body).await {
                return;
            }
        }
        Start::Queues(mut queues) => {
            if let Some(body) = queues.as_object_mut() {
                body.insert("type".into(), json!("snapshot"));
                body.insert("seq".into(), json!(at));
            }
            if !send(&mut socket, queues).await {
                return;
            }
        }
    }
    loop {
        let idle = watch.idle();
        tokio::select! {
            change = rx.recv() => match change {
                Ok(c) => {
                    if c.seq <= last {
                        continue;
                    }
                    last = c.seq;
                    match deliver(&mut socket, &mut watch, &topic, &c).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err((code, reason)) => return close(&mut socket, code, reason).await,
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    return close(&mut socket, 4000, format!("too slow to keep up; reconnect with since={last}")).await;
                }
                Err(RecvError::Closed) => return close(&mut socket, 1001, "server shutting down".into()).await,
            },
            revised = watch.revisions.changed() => {
                if revised.is_err() {
                    return close(&mut socket, 1001, "server shutting down".into()).await;
                }
                if let Err((code, reason)) = watch.check(true, Some(&topic)).await {
                    return close(&mut socket, code, reason).await;
                }
            }
            () = tokio::time::sleep(idle) => {
                if let Err((code, reason)) = watch.check(false, Some(&topic)).await {
                    return close(&mut socket, code, reason).await;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}
