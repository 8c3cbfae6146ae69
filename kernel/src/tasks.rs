//! Human tasks seen from one person: which processes they may see, which of them are in
//! their to-do, handled, created and related lists, what they may do now at a process
//! (its actions) and which fields of the bound record they may edit or only see.
//!
//! Pure reads of the scheduler core and the caller's grants: this module never changes a
//! process (the core's commands do) and never decides a permission the `caller` module
//! does not grant.

use erpos_design::service::{FieldAccess, Service, Step};
use serde_json::{Value as Json, json};

use crate::caller::{Caller, Permission, ServiceOp};
use crate::scheduler::core::work::attribute_word;
use crate::scheduler::{ItemRole, ItemState, Pcb, ProcessState, Scheduler};

/// A person's lists of processes (loonflow's 待办 / 已办 / 我创建的 / 关联我的).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Something waits for them: an open item, or one offered to claim.
    Todo,
    /// They acted on it.
    Handled,
    /// They started it.
    Created,
    /// Any of these, or they hold or held an item of it in any way.
    Related,
}

impl View {
    /// Parses `todo`, `handled`, `created`, `related`.
    pub fn parse(text: &str) -> Option<View> {
        match text {
            "todo" => Some(View::Todo),
            "handled" => Some(View::Handled),
            "created" => Some(View::Created),
            "related" => Some(View::Related),
            _ => None,
        }
    }
}

/// Whether process `p` is in `user`'s list `view`.
pub fn in_view(p: &Pcb, user: &str, view: View) -> bool {
    let mine = p.work.iter().filter(|w| &*w.user == user);
    match view {
        View::Todo => {
            p.state != ProcessState::Terminated
                && mine
                    .filter(|w| w.visit == p.visit)
                    .any(|w| matches!(w.state, ItemState::Open | ItemState::Offered))
        }
        View::Handled => mine.into_iter().any(|w| w.state == ItemState::Done),
        View::Created => p.creator.as_deref() == Some(user),
        View::Related => {
            p.creator.as_deref() == Some(user)
                || p.operator.as_deref() == Some(user)
                || p.work.iter().any(|w| &*w.user == user)
        }
    }
}

/// Whether the caller may see process `p`: its app token covers the service, and they
/// started it, take or took part in it, or a role lets them see the service's processes.
pub fn visible(p: &Pcb, caller: &Caller) -> bool {
    if !caller.in_scope(&p.service) {
        return false;
    }
    let grant = |op| {
        caller.may(Permission::Service {
            name: &p.service,
            op,
        })
    };
    // A service's grants show its processes of the branches the caller sees (a visit's
    // branch is its booking's, a walk-in's the one it was started in); a participant
    // sees the process wherever it stands.
    in_view(p, &caller.user, View::Related)
        || (caller.sees_branch(p.branch())
            && (grant(ServiceOp::View) || grant(ServiceOp::Handle) || grant(ServiceOp::Administer)))
}

/// Whether the caller administers the service of `p` (suspend, terminate, change state).
pub fn administers(p: &Pcb, caller: &Caller) -> bool {
    caller.may(Permission::Service {
        name: &p.service,
        op: ServiceOp::Administer,
    })
}

/// The caller's pending item at the current step visit, if any.
fn pending_item<'a>(p: &'a Pcb, user: &str) -> Option<&'a crate::scheduler::WorkItem> {
    p.work
        .iter()
        .rev()
        .find(|w| w.visit == p.visit && &*w.user == user && w.state.is_pending())
}

fn current(core: &Scheduler, p: &Pcb) -> Option<(std::sync::Arc<Service>, usize)> {
    let svc = core.service(&p.service, p.version)?.clone();
    let index = svc
        .steps
        .iter()
        .position(|s| p.step.as_deref() == Some(s.name.as_str()))?;
    Some((svc, index))
}

/// What the caller may do at process `p` now, each with what it needs.
pub fn actions(core: &Scheduler, p: &Pcb, caller: &Caller) -> Vec<Json> {
    let mut out = Vec::new();
    if p.state == ProcessState::Terminated {
        return out;
    }
    let found = current(core, p);
    let step: Option<&Step> = found.as_ref().map(|(svc, i)| &svc.steps[*i]);
    if let (Some((svc, _)), Some(step), Some(item)) = (&found, step, pending_item(p, &caller.user))
    {
        match item.state {
            ItemState::Offered => out.push(json!({"action": "claim"})),
            ItemState::Open if item.role == ItemRole::Handler => {
                for t in svc.outgoing(&step.name) {
                    out.push(json!({
                        "action": "handle", "transition": t.key(),
                        "attribute": t.attribute.map(attribute_word),
                        "label": t.label, "check_required": t.check_required,
                    }));
                }
                out.push(json!({"action": "forward", "needs": ["to", "reason"]}));
                out.push(json!({"action": "add_signer", "needs": ["signer", "reason"]}));
                let back: Vec<&String> = p
                    .handlers
                    .keys()
                    .filter(|s| Some(s.as_str()) != p.step.as_deref())
                    .collect();
                if !back.is_empty() {
                    out.push(json!({"action": "return", "steps": back, "to": ["last_handler", "candidates"]}));
                }
            }
            ItemState::Open => {
                for attribute in ["agree", "reject", "other"] {
                    out.push(json!({"action": "handle", "attribute": attribute}));
                }
                if item.role == ItemRole::Voter {
                    out.push(json!({"action": "forward", "needs": ["to", "reason"]}));
                }
            }
            _ => {}
        }
    }
    let creator = p.creator.as_deref() == Some(caller.user.as_str());
    let others_acted = p
        .work
        .iter()
        .any(|w| w.state == ItemState::Done && Some(&*w.user) != p.creator.as_deref());
    if creator && !others_acted {
        out.push(json!({"action": "withdraw"}));
    }
    // A context switch, the operator's own.
    let human = step.is_some_and(|s| s.kind == erpos_design::service::StepKind::Human);
    if human
        && p.state == ProcessState::Running
        && p.operator.as_deref() == Some(caller.user.as_str())
    {
        out.push(json!({"action": "set_aside", "needs": []}));
    }
    if matches!(&p.wait, Some(crate::scheduler::WaitReason::SetAside { by, .. }) if *by == caller.user)
    {
        out.push(json!({"action": "take_up"}));
    }
    if administers(p, caller) {
        if let Some((svc, _)) = &found {
            let steps: Vec<&str> = svc.steps.iter().map(|s| s.name.as_str()).collect();
            out.push(json!({"action": "change_state", "steps": steps}));
        }
        out.push(json!({"action": if p.state == ProcessState::Suspended { "resume" } else { "suspend" }}));
        out.push(json!({"action": "prioritize", "priority": p.priority}));
        out.push(json!({"action": "terminate"}));
    }
    out
}

/// The fields of the bound record the caller may edit at the current step, must fill in,
/// or may only see (a hidden field is in none of the lists and left out of `record`), and
/// — to the holder of the step's open work item — the `inputs` its instructions take from
/// the handling's `context` (the consent step's patient signature), so a console can ask
/// for them where the step is handled.
pub fn form(core: &Scheduler, p: &Pcb, caller: &Caller) -> Json {
    let record = p.context.get("record").and_then(Json::as_object);
    let found = current(core, p);
    let step = found.as_ref().map(|(svc, i)| &svc.steps[*i]);
    let holds = pending_item(p, &caller.user).is_some_and(|w| w.state == ItemState::Open);
    let access = |field: &str| {
        step.and_then(|s| s.fields.get(field).copied())
            .unwrap_or(FieldAccess::Readonly)
    };
    let mut editable = Vec::new();
    let mut required = Vec::new();
    let mut readonly = Vec::new();
    let mut shown = serde_json::Map::new();
    let mut names: Vec<String> = record
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default();
    for f in step
        .map(|s| s.fields.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !names.contains(&f) {
            names.push(f);
        }
    }
    for name in names {
        let a = access(&name);
        if a == FieldAccess::Hidden {
            continue;
        }
        if let Some(v) = record.and_then(|r| r.get(&name)) {
            shown.insert(name.clone(), v.clone());
        }
        match a {
            FieldAccess::Required | FieldAccess::Optional if holds => {
                if a == FieldAccess::Required {
                    required.push(name.clone());
                }
                editable.push(name);
            }
            _ => readonly.push(name),
        }
    }
    let inputs: Vec<_> = match step {
        Some(s) if holds => s
            .instructions
            .iter()
            .flat_map(|i| i.context_inputs())
            .collect(),
        _ => Vec::new(),
    };
    json!({"editable": editable, "required": required, "readonly": readonly, "record": shown,
           "inputs": inputs})
}
