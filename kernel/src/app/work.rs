//! Use cases of work items: the actions people take on a step (claim, handle, forward, add
//! a signer, return, withdraw, and the administrators' change_state, suspend, resume,
//! terminate, signal, complete), each checked against the caller's grants, and the rules
//! of acting (which keys an action takes, what a comment may be, which fields a handler may
//! edit and must fill). Commands are built here; the scheduler core decides whether they
//! are legal in the process's state, so a refused one changes nothing.
//!
//! [`plan_handle`] is pure over the service, the process and the bound record: it can run
//! inside the scheduler's critical section, where the one-call start decides the first step
//! in the same transaction as the start.

use erpos_design::Issue;
use erpos_design::rule::Instruction;
use erpos_design::service::{FieldAccess, OperatorPolicy, Service, StepKind, TransitionAttribute};
use serde_json::{Map, Value};

use crate::Kernel;
use crate::caller::{Caller, Permission, ServiceOp};
use crate::error::{ErrorCode, KernelError, Result};
use crate::scheduler::{Command, HandleAction, ItemState, Pcb};

/// The longest comment or reason kept.
pub const MAX_COMMENT: usize = 2_000;

fn invalid(issues: Vec<Issue>) -> KernelError {
    KernelError::Invalid(issues)
}

/// A text at `key`: absent or null is `None`; longer than [`MAX_COMMENT`] or not a string
/// is a 422 naming it.
pub fn text(body: &Value, key: &str) -> Result<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > MAX_COMMENT => {
            Err(invalid(vec![Issue::new(
                format!("/{key}"),
                format!("at most {MAX_COMMENT} characters"),
            )]))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(vec![Issue::new(
            format!("/{key}"),
            "expected a string",
        )])),
    }
}

/// A text at `key` that must be there and not blank.
pub fn required(body: &Value, key: &str) -> Result<String> {
    text(body, key)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            invalid(vec![Issue::new(
                format!("/{key}"),
                format!("'{key}' is required"),
            )])
        })
}

/// Refuses every key of `body` not in `allowed`, each at its pointer, naming the allowed.
pub fn only_keys(body: &Value, allowed: &[&str]) -> Result<()> {
    let unknown: Vec<Issue> = body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .map(|(k, _)| {
            Issue::new(
                format!("/{k}"),
                format!("unknown attribute (use: {})", allowed.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(invalid(unknown))
    }
}

/// The decision's kind at `attribute`: agree, reject or other.
pub fn attribute(body: &Value) -> Result<Option<TransitionAttribute>> {
    match text(body, "attribute")?.as_deref() {
        None => Ok(None),
        Some("agree") => Ok(Some(TransitionAttribute::Agree)),
        Some("reject") => Ok(Some(TransitionAttribute::Reject)),
        Some("other") => Ok(Some(TransitionAttribute::Other)),
        Some(other) => Err(invalid(vec![Issue::new(
            "/attribute",
            format!("'{other}' is not agree, reject or other"),
        )])),
    }
}

/// The context variables a caller sends with an action: an object, without `record` (the
/// bound record is read from storage, never taken from a caller).
pub fn caller_context(body: &Value) -> Result<Option<Value>> {
    match body.get("context") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) if c.contains_key("record") => Err(invalid(vec![Issue::new(
            "/context/record",
            "the bound record is read from storage; change its fields with \"fields\"",
        )])),
        Some(c @ Value::Object(_)) => Ok(Some(c.clone())),
        Some(_) => Err(invalid(vec![Issue::new(
            "/context",
            "expected a JSON object",
        )])),
    }
}

/// Refuses a caller's `context` that sets what only the kernel writes in `svc`'s
/// processes: `booking` (set when a visit is booked) and what a human step's instructions
/// bind (the signed consent form a treatment requires). 422 at `/context/<key>`.
pub fn kernel_owned(svc: &Service, context: Option<&Value>) -> Result<()> {
    let Some(Value::Object(given)) = context else {
        return Ok(());
    };
    let issues: Vec<Issue> = svc
        .kernel_keys()
        .filter(|(key, _)| given.contains_key(*key))
        .map(|(key, step)| {
            Issue::new(
                format!("/context/{key}"),
                format!("set by the kernel when step '{step}' is handled"),
            )
        })
        .chain(given.contains_key("booking").then(|| {
            Issue::new(
                "/context/booking",
                "set by the kernel when a visit is booked: book it with POST /api/v1/bookings",
            )
        }))
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(invalid(issues))
    }
}

/// Refuses a handling's `context` that moves the process to another branch: its
/// `branch` is fixed when it starts (its lists, stock and charges follow it). 422 at
/// `/context/branch`.
pub fn branch_fixed(context: Option<&Value>) -> Result<()> {
    match context {
        Some(Value::Object(given)) if given.contains_key("branch") => {
            Err(invalid(vec![Issue::new(
                "/context/branch",
                "fixed when the process starts (its booking's, or the branch it was started in)",
            )]))
        }
        _ => Ok(()),
    }
}

fn blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// A handling as planned: the command, and the fields to write to the bound record with
/// it (empty: nothing to write).
pub struct Handling {
    /// The command (its record snapshot is `current`, or the record as written).
    pub action: Box<HandleAction>,
    /// The fields the handler edits (already checked against the step's access).
    pub fields: Map<String, Value>,
    /// The step's instructions, to run in the handling's transaction: empty when the
    /// step has none or the handling rejects (a rejection charges nobody).
    pub instructions: Vec<Instruction>,
}

/// Plans `user` handling `pcb`'s current step of `svc` with `body` (`{"transition"?,
/// "attribute"?, "comment"?, "fields"?, "context"?}`): checks the fields against the step's
/// access and, when the transition taken checks them, that the required ones are filled
/// (in `fields` or in `current`, the bound record as it stands). Every problem in one 422.
pub fn plan_handle(
    svc: &Service,
    pcb: &Pcb,
    user: String,
    body: &Value,
    by: String,
    current: Option<Value>,
) -> Result<Handling> {
    let attribute = attribute(body)?;
    let transition = text(body, "transition")?;
    let comment = text(body, "comment")?;
    let context = caller_context(body)?;
    kernel_owned(svc, context.as_ref())?;
    branch_fixed(context.as_ref())?;
    let fields: Map<String, Value> = match body.get("fields") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(invalid(vec![Issue::new(
                "/fields",
                "expected a JSON object",
            )]));
        }
    };
    let step_name = pcb.step.as_deref().unwrap_or_default();
    let step = pcb.step.as_deref().and_then(|s| svc.step(s));
    let access = |f: &str| step.and_then(|s| s.fields.get(f).copied());
    let mut issues = Vec::new();
    for name in fields.keys() {
        if !matches!(
            access(name),
            Some(FieldAccess::Required | FieldAccess::Optional)
        ) {
            issues.push(Issue::new(
                format!("/fields/{name}"),
                format!("not editable at step '{step_name}'"),
            ));
        }
    }
    // Whether the transition taken checks required fields: the one named, else those the
    // attribute could take, else any leaving the step.
    let check = step.is_some_and(|s| {
        let outgoing: Vec<_> = svc
            .outgoing(&s.name)
            .filter(|t| match (&transition, attribute) {
                (Some(name), _) => t.key() == name,
                (None, Some(a)) => t.attribute == Some(a),
                (None, None) => true,
            })
            .collect();
        outgoing.is_empty() || outgoing.iter().any(|t| t.check_required)
    });
    match &current {
        None if !fields.is_empty() => {
            issues.push(Issue::new("/fields", "the process has no bound record"));
        }
        Some(current) if check => {
            for (name, a) in step.map(|s| s.fields.iter()).into_iter().flatten() {
                if *a == FieldAccess::Required
                    && blank(fields.get(name).or_else(|| current.get(name)))
                {
                    issues.push(Issue::new(
                        format!("/fields/{name}"),
                        format!("required at step '{step_name}'"),
                    ));
                }
            }
        }
        None | Some(_) => {}
    }
    if !issues.is_empty() {
        return Err(invalid(issues));
    }
    let rejects = match (&transition, attribute) {
        (Some(name), _) => step.is_some_and(|s| {
            svc.outgoing(&s.name)
                .any(|t| t.key() == name && t.attribute == Some(TransitionAttribute::Reject))
        }),
        (None, a) => a == Some(TransitionAttribute::Reject),
    };
    let instructions = match step {
        Some(s) if !rejects && s.kind == StepKind::Human => s.instructions.clone(),
        _ => Vec::new(),
    };
    Ok(Handling {
        action: Box::new(HandleAction {
            pid: pcb.id,
            user,
            attribute,
            transition,
            comment,
            context,
            record: current,
            by,
        }),
        fields,
        instructions,
    })
}

fn forbidden(message: impl Into<String>) -> KernelError {
    KernelError::Forbidden(message.into())
}

fn grant(caller: &Caller, pcb: &Pcb, op: ServiceOp) -> bool {
    caller.may(Permission::Service {
        name: &pcb.service,
        op,
    })
}

/// Whose item an action is on: the caller's, or (with `services:{name}:handle`) the user
/// named in `user`.
fn holder(caller: &Caller, pcb: &Pcb, body: &Value) -> Result<String> {
    match text(body, "user")? {
        Some(user) if user != caller.user => {
            if grant(caller, pcb, ServiceOp::Handle) || grant(caller, pcb, ServiceOp::Administer) {
                Ok(user)
            } else {
                Err(forbidden(format!(
                    "acting on {user}'s item needs services:{}:handle",
                    pcb.service
                )))
            }
        }
        _ => Ok(caller.user.clone()),
    }
}

fn administer(caller: &Caller, pcb: &Pcb, action: &str) -> Result<()> {
    if grant(caller, pcb, ServiceOp::Administer) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "'{action}' needs services:{}:administer",
            pcb.service
        )))
    }
}

/// A handler's edit of the bound record, written in the same transaction as the
/// command that carries it (see [`Engine::command_with`](crate::engine::Engine::command_with)).
pub struct RecordEdit {
    /// The DataItem.
    item: String,
    /// The record's id.
    id: String,
    /// The fields to change (already checked against the step's access).
    fields: Value,
    /// Who the record's audit trail names.
    actor: String,
}

/// What a handling writes with its transition: the handler's edit of the bound record,
/// and the step's instructions (the clinic's payment step charges the visit). Both run in
/// the transaction that stores the transition, so a refused instruction leaves the step
/// where it was and nothing written.
pub struct StepWrites {
    /// The edit, if the handler changes fields.
    edit: Option<RecordEdit>,
    /// The step's instructions (empty when it has none or the handling rejects).
    instructions: Vec<Instruction>,
    /// The bound record, as (DataItem, id), for the instructions to see.
    bound: Option<(String, String)>,
    /// The process's context with the handler's `context` merged in.
    context: Value,
}

/// A command built from a request: most go to the core as they are; a handling that
/// edits the bound record or runs the step's instructions carries them, which must commit
/// with it.
pub enum Planned {
    /// A command on its own (it joins the group commit).
    Command(Command),
    /// A handling with what it writes.
    Edit {
        /// The handling (its record snapshot is filled in from the write).
        action: Box<HandleAction>,
        /// The edit and the instructions.
        writes: StepWrites,
    },
}

/// Carries out a planned command: with an edit or instructions, they, the transition and
/// its history commit together or not at all; without, it joins the group commit.
pub async fn run(k: &Kernel, planned: Planned) -> Result<()> {
    let (mut action, writes) = match planned {
        Planned::Command(command) => {
            k.engine.command(command).await?;
            return Ok(());
        }
        Planned::Edit { action, writes } => (action, writes),
    };
    let records = k.records.clone();
    let rules = k.rules.clone();
    let now_ms = k.clock.now_ms();
    k.engine
        .command_with(move |tx| {
            Box::pin(async move {
                if let Some(edit) = &writes.edit {
                    let (record, _) = records
                        .patch_in(
                            tx,
                            &edit.item,
                            &edit.id,
                            &edit.fields,
                            None,
                            Some(&edit.actor),
                            0,
                        )
                        .await?;
                    action.record = Some(record);
                }
                if !writes.instructions.is_empty() {
                    let record = match (&writes.bound, &action.record) {
                        (Some((item, id)), Some(r)) => Some((item.clone(), id.clone(), r.clone())),
                        _ => None,
                    };
                    let bound = rules
                        .run_for_handling(
                            tx,
                            action.pid,
                            record,
                            writes.context.clone(),
                            &action.by,
                            &writes.instructions,
                            now_ms,
                        )
                        .await?;
                    // What the step's instructions bound stays in the process's context
                    // (`context.consent`, the signed form): the kernel's keys, which no
                    // caller may set (see `kernel_owned`).
                    if !bound.is_empty() {
                        let mut given = match action.context.take() {
                            Some(Value::Object(m)) => m,
                            _ => Map::new(),
                        };
                        for (name, value) in bound {
                            given.insert(name, value);
                        }
                        action.context = Some(Value::Object(given));
                    }
                }
                Ok(Command::Handle(action))
            })
        })
        .await?;
    Ok(())
}

/// Builds the command for `action` on `pcb`, checking the caller may take it.
pub async fn command(
    k: &Kernel,
    caller: &Caller,
    pcb: &Pcb,
    action: &str,
    body: &Value,
) -> Result<Planned> {
    let pid = pcb.id;
    let by = caller.user.clone();
    Ok(Planned::Command(match action {
        "claim" => {
            only_keys(body, &["user"])?;
            Command::Claim {
                pid,
                user: holder(caller, pcb, body)?,
                by,
            }
        }
        "handle" => {
            only_keys(
                body,
                &[
                    "user",
                    "transition",
                    "attribute",
                    "comment",
                    "fields",
                    "context",
                ],
            )?;
            let user = holder(caller, pcb, body)?;
            return handle(k, pcb, user, body, by).await;
        }
        "forward" => {
            only_keys(body, &["user", "to", "reason"])?;
            Command::Forward {
                pid,
                user: holder(caller, pcb, body)?,
                to: required(body, "to")?,
                reason: required(body, "reason")?,
                by,
            }
        }
        "add_signer" => {
            only_keys(body, &["user", "signer", "reason"])?;
            Command::AddSigner {
                pid,
                user: holder(caller, pcb, body)?,
                signer: required(body, "signer")?,
                reason: required(body, "reason")?,
                by,
            }
        }
        "return" => {
            only_keys(body, &["step", "to", "reason"])?;
            let holds = pcb.work.iter().any(|w| {
                w.visit == pcb.visit && w.user.as_ref() == caller.user && w.state == ItemState::Open
            });
            if !holds && !grant(caller, pcb, ServiceOp::Administer) {
                return Err(forbidden(
                    "only the person handling the step (or an administrator) may return it",
                ));
            }
            let to_last_handler = match text(body, "to")?.as_deref() {
                None | Some("last_handler") => true,
                Some("candidates") => false,
                Some(other) => {
                    return Err(invalid(vec![Issue::new(
                        "/to",
                        format!("'{other}' is not last_handler or candidates"),
                    )]));
                }
            };
            Command::Return {
                pid,
                step: required(body, "step")?,
                to_last_handler,
                reason: text(body, "reason")?.unwrap_or_else(|| "returned".into()),
                by,
            }
        }
        "withdraw" => {
            only_keys(body, &["reason"])?;
            Command::Withdraw {
                pid,
                reason: text(body, "reason")?.unwrap_or_else(|| "withdrawn".into()),
                by,
            }
        }
        // A context switch, the operator's own: no administrator needed.
        "set_aside" => {
            only_keys(body, &["user", "reason"])?;
            Command::SetAside {
                pid,
                user: holder(caller, pcb, body)?,
                reason: text(body, "reason")?.unwrap_or_default(),
                by,
            }
        }
        "take_up" => {
            only_keys(body, &["user"])?;
            Command::TakeUp {
                pid,
                user: holder(caller, pcb, body)?,
                by,
            }
        }
        "change_state" => {
            only_keys(body, &["step", "reason"])?;
            administer(caller, pcb, action)?;
            Command::ChangeState {
                pid,
                step: required(body, "step")?,
                reason: required(body, "reason")?,
                by,
            }
        }
        "suspend" | "terminate" => {
            only_keys(body, &["reason"])?;
            administer(caller, pcb, action)?;
            let reason = text(body, "reason")?;
            if action == "suspend" {
                Command::Suspend {
                    pid,
                    by,
                    reason: reason.unwrap_or_else(|| "suspended over the API".into()),
                }
            } else {
                Command::Terminate {
                    pid,
                    by,
                    reason: reason.unwrap_or_else(|| "terminated over the API".into()),
                }
            }
        }
        "resume" => {
            administer(caller, pcb, action)?;
            Command::Resume { pid, by }
        }
        "prioritize" => {
            only_keys(body, &["priority"])?;
            administer(caller, pcb, action)?;
            let priority = body
                .get("priority")
                .and_then(Value::as_i64)
                .filter(|p| (0..=100).contains(p))
                .ok_or_else(|| {
                    invalid(vec![Issue::new(
                        "/priority",
                        "a whole number from 0 to 100 (higher is dispatched first)",
                    )])
                })?;
            Command::SetPriority {
                pid,
                priority: priority as i32,
                by,
            }
        }
        "signal" => {
            administer(caller, pcb, action)?;
            Command::Signal {
                pid,
                event: required(body, "event")?,
                payload: body.get("payload").cloned().unwrap_or(Value::Null),
                by,
            }
        }
        "complete" => {
            only_keys(body, &["transition", "context"])?;
            // As the README says: the step's operator, or an administrator of the service.
            if pcb.operator.as_deref() != Some(caller.user.as_str())
                && !grant(caller, pcb, ServiceOp::Administer)
            {
                return Err(forbidden(format!(
                    "only the step's operator or services:{}:administer may complete it",
                    pcb.service
                )));
            }
            // A committee's votes and a step's required fields are decided by `handle`;
            // completing such a step over them is an administrator's act only.
            if !grant(caller, pcb, ServiceOp::Administer) {
                let step = k
                    .engine
                    .read_applied(|c| {
                        c.service(&pcb.service, pcb.version)
                            .and_then(|s| s.step(pcb.step.as_deref()?).cloned())
                    })
                    .await;
                let decided_by_items = step.is_some_and(|s| {
                    s.kind == StepKind::Human
                        && (s
                            .operators
                            .as_ref()
                            .is_some_and(|o| o.policy == OperatorPolicy::All)
                            || s.fields.values().any(|a| *a == FieldAccess::Required))
                });
                if decided_by_items {
                    return Err(KernelError::Conflict {
                        code: ErrorCode::Conflict,
                        message: format!(
                            "step '{}' is decided by its work items (votes or required fields): use handle",
                            pcb.step.as_deref().unwrap_or_default()
                        ),
                        details: Vec::new(),
                    });
                }
            }
            let context = caller_context(body)?;
            let svc = k
                .engine
                .read_applied(|c| c.service(&pcb.service, pcb.version).cloned())
                .await
                .ok_or_else(|| KernelError::NotFound(format!("service '{}'", pcb.service)))?;
            kernel_owned(&svc, context.as_ref())?;
            branch_fixed(context.as_ref())?;
            // The conditions that choose the way on see the record as stored now.
            let record = match &pcb.record {
                Some((item, id)) => Some(k.records.get(item, id).await?),
                None => None,
            };
            Command::Complete {
                pid,
                transition: text(body, "transition")?,
                context,
                record,
                by,
            }
        }
        other => {
            return Err(KernelError::NotFound(format!("action '{other}'")));
        }
    }))
}

/// `handle`: checks the fields against the step's access and the transition's required
/// check ([`plan_handle`]), and plans their write to the bound record
/// with the command (whose record snapshot is the record as written, or as it stands when
/// nothing is edited).
async fn handle(k: &Kernel, pcb: &Pcb, user: String, body: &Value, by: String) -> Result<Planned> {
    let svc = k
        .engine
        .read_applied(|c| c.service(&pcb.service, pcb.version).cloned())
        .await
        .ok_or_else(|| KernelError::NotFound(format!("service '{}'", pcb.service)))?;
    let current = match &pcb.record {
        Some((item, id)) => Some(k.records.get(item, id).await?),
        None => None,
    };
    let planned = plan_handle(&svc, pcb, user, body, by.clone(), current)?;
    let edit = match (&pcb.record, planned.fields.is_empty()) {
        (Some((item, id)), false) => Some(RecordEdit {
            item: item.clone(),
            id: id.clone(),
            fields: Value::Object(planned.fields),
            actor: by,
        }),
        _ => None,
    };
    if edit.is_none() && planned.instructions.is_empty() {
        return Ok(Planned::Command(Command::Handle(planned.action)));
    }
    let mut context = match &*pcb.context {
        Value::Object(_) => (*pcb.context).clone(),
        _ => Value::Object(Map::new()),
    };
    if let (Some(into), Some(Value::Object(given))) =
        (context.as_object_mut(), &planned.action.context)
    {
        for (key, value) in given {
            into.insert(key.clone(), value.clone());
        }
    }
    Ok(Planned::Edit {
        action: planned.action,
        writes: StepWrites {
            edit,
            instructions: planned.instructions,
            bound: pcb.record.clone(),
            context,
        },
    })
}

/// Every action a person or an administrator can take on a process.
pub const ACTIONS: [&str; 15] = [
    "claim",
    "handle",
    "forward",
    "add_signer",
    "return",
    "withdraw",
    "set_aside",
    "take_up",
    "change_state",
    "suspend",
    "resume",
    "prioritize",
    "terminate",
    "signal",
    "complete",
];

/// Takes `action` on `pcb` for `caller` (one of [`ACTIONS`], with its body): checks that
/// the caller may, builds the command and carries it out (with a handler's edit of the
/// bound record in the same transaction). The core decides whether it is legal in the
/// process's state, so a refused one changes nothing.
pub async fn act(k: &Kernel, caller: &Caller, pcb: &Pcb, action: &str, body: &Value) -> Result<()> {
    let planned = command(k, caller, pcb, action, body).await?;
    run(k, planned).await
}
