//! Use cases of processes: starting one. A start is checked here whichever way it comes
//! (the API, a pack): the caller's grant on the service, that a bound record is of the
//! service's subject DataItem and one the caller may read (binding shows it to the
//! process's participants), that a predecessor is a process the caller may see. The bound
//! record is copied into the context as `record`, read from storage, never taken from the
//! caller.
//!
//! A start may carry a **new** record (its fields inline) and the **first step's
//! decision**: then the record, the start and the decision commit in one transaction —
//! loonflow's "create a ticket" in one request, with nothing left behind when any part is
//! refused.

use erpos_design::Issue;
use serde_json::{Value, json};

use super::records::check_write;
use std::sync::Arc;

use crate::Kernel;
use crate::caller::{Caller, FieldAccess, Permission, RecordOp, ServiceOp};
use crate::definitions::Definitions;
use crate::engine::Engine;
use crate::error::{ErrorCode, KernelError, Result};
use crate::records::Records;
use crate::scheduler::{Command, Pcb, Pid};

/// The record a process is about.
#[derive(Debug, Clone)]
pub enum Binding {
    /// A stored record: `{"item", "id"}`.
    Existing {
        /// The DataItem.
        item: String,
        /// The record's id.
        id: String,
    },
    /// A record created with the start, in its transaction: `{"item", "fields"}`.
    New {
        /// The DataItem.
        item: String,
        /// The record's fields, validated like `POST /records/{item}`.
        fields: Value,
    },
}

impl Binding {
    fn item(&self) -> &str {
        match self {
            Binding::Existing { item, .. } | Binding::New { item, .. } => item,
        }
    }
}

/// A start, as the caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct StartProcess {
    /// The service.
    pub service: String,
    /// Its version (None: the newest published).
    pub version: Option<u32>,
    /// Base priority 0–100 (None: the service's).
    pub priority: Option<i32>,
    /// Initial context variables (an object, never with `record`).
    pub context: Value,
    /// The record the process is about.
    pub binding: Option<Binding>,
    /// Start after this process terminates.
    pub predecessor: Option<Pid>,
    /// Do not admit before this instant (ms).
    pub start_at_ms: Option<i64>,
    /// The starter's decision at the first step (`{"attribute"?, "transition"?,
    /// "comment"?, "context"?}`, as `handle` takes it; the record's fields go in the
    /// binding), made in the start's transaction.
    pub decision: Option<Value>,
}

/// What a start did.
#[derive(Debug, Clone)]
pub struct Started {
    /// The new process.
    pub pid: Pid,
}

fn invalid(path: &str, message: impl Into<String>) -> KernelError {
    KernelError::Invalid(vec![Issue::new(path, message)])
}

/// What a start needs of the kernel. The outbox, which runs inside the kernel (a rule's
/// `start_service`), starts through the same use case with its own parts.
pub struct Parts<'a> {
    /// The scheduler and its storage.
    pub engine: &'a Engine,
    /// The records (the bound one is read, or created, here).
    pub records: &'a Arc<Records>,
    /// The DataItems (for the record's grants and checks).
    pub definitions: &'a Definitions,
}

impl<'a> Parts<'a> {
    /// The parts of the whole kernel.
    pub fn of(k: &'a Kernel) -> Self {
        Self {
            engine: &k.engine,
            records: &k.records,
            definitions: &k.definitions,
        }
    }
}

/// Puts a process that `caller` starts in a branch (issue 14 §9): the `branch` its
/// context names (422 when nobody stands in it, 403 when it is outside the caller's), else
/// the caller's own, so a walk-in at 静安店's desk is 静安店's visit — its lists, its stock,
/// its charge. A caller of no branch (head office) starts processes of none.
async fn stand_in_branch(engine: &Engine, caller: &Caller, context: &mut Value) -> Result<()> {
    match context.get("branch") {
        None => {
            if let Some(own) = &caller.standing.branch {
                context["branch"] = Value::String(own.clone());
            }
            Ok(())
        }
        Some(Value::String(b)) => {
            if !super::branches::known(engine, b).await {
                return Err(invalid(
                    "/context/branch",
                    format!("no resource or practitioner stands in branch '{b}'"),
                ));
            }
            if !caller.sees_branch(Some(b)) {
                return Err(KernelError::Forbidden(format!(
                    "starting a process of branch '{b}' needs branches:{b}"
                )));
            }
            Ok(())
        }
        Some(_) => Err(invalid("/context/branch", "a branch's name, a text")),
    }
}

/// Starts a process for `caller` (see the module's documentation).
pub async fn start(k: &Kernel, caller: &Caller, s: StartProcess) -> Result<Started> {
    start_with(&Parts::of(k), caller, s).await
}

/// [`start`] on the kernel's `parts`.
pub async fn start_with(k: &Parts<'_>, caller: &Caller, s: StartProcess) -> Result<Started> {
    let service = s.service.as_str();
    if !caller.may(Permission::Service {
        name: service,
        op: ServiceOp::Start,
    }) {
        return Err(KernelError::Forbidden(format!(
            "starting '{service}' needs services:{service}:start"
        )));
    }
    let mut context = s.context;
    match context.as_object() {
        Some(given) if given.contains_key("record") => {
            return Err(invalid(
                "/context/record",
                "the bound record is read from storage: bind one with \"record\": {\"item\", \"id\"}",
            ));
        }
        Some(_) => {}
        None => return Err(invalid("/context", "expected a JSON object")),
    }
    // What only the kernel writes (the booking, a step's signed form) no caller sets; the
    // kernel itself starts a booked visit with its booking.
    if !caller.is_kernel()
        && let Some(svc) = k
            .engine
            .read_applied(|c| c.startable(service, s.version))
            .await
    {
        super::work::kernel_owned(&svc, Some(&context))?;
        if let Some(decision) = &s.decision {
            super::work::kernel_owned(&svc, decision.get("context"))
                .and_then(|()| super::work::branch_fixed(decision.get("context")))
                .map_err(|e| at("/decision", e))?;
        }
    }
    if !caller.is_kernel() {
        stand_in_branch(k.engine, caller, &mut context).await?;
    }
    if let Some(binding) = &s.binding {
        check_subject(k, service, s.version, binding.item()).await?;
    }
    if let Some(decision) = &s.decision {
        super::work::only_keys(decision, &["transition", "attribute", "comment", "context"])
            .map_err(|e| at("/decision", e))?;
    }
    let schema = k.definitions.schema();
    let mut new_record: Option<(String, Value)> = None;
    let record = match s.binding {
        None => None,
        Some(Binding::Existing { item, id }) => {
            // Binding a record shows it to the process's participants: only someone who
            // may read it may bind it (checked before looking it up, so a refusal says
            // nothing about whether it exists).
            if caller.record_fields(&item, RecordOp::Read) != FieldAccess::All {
                return Err(KernelError::Forbidden(format!(
                    "binding a record of '{item}' needs records:{item}:read"
                )));
            }
            let stored = k.records.get(&item, &id).await.map_err(|e| match e {
                KernelError::NotFound(_) | KernelError::Design(_) => {
                    invalid("/record", e.to_string())
                }
                other => other,
            })?;
            // A record outside the caller's row scope is answered as one that does not
            // exist.
            if !crate::visibility::sees(&schema.catalog, caller, &item, &stored) {
                return Err(invalid(
                    "/record",
                    crate::visibility::not_found(&item, &id).to_string(),
                ));
            }
            context["record"] = stored;
            Some((item, id))
        }
        Some(Binding::New { item, fields }) => {
            check_write(&schema.catalog, caller, &item, RecordOp::Create, &fields)?;
            crate::visibility::check_write(&schema.catalog, caller, &item, &fields)?;
            if caller.record_fields(&item, RecordOp::Read) != FieldAccess::All {
                return Err(KernelError::Forbidden(format!(
                    "binding a record of '{item}' needs records:{item}:read"
                )));
            }
            // Validated now, so a bad field is a 422 at its place before anything starts.
            k.records
                .validate(&item, &fields, true)
                .map_err(|e| at("/record/fields", e))?;
            new_record = Some((item, fields));
            None
        }
    };
    let predecessor = match s.predecessor {
        None => None,
        Some(pid) => {
            // Only a process the caller may see can be waited for; one they may not see
            // gets the same answer as one that does not exist.
            let seen = k
                .engine
                .read_applied(|c| c.pcb(pid).is_some_and(|p| crate::tasks::visible(p, caller)))
                .await;
            if !seen {
                return Err(invalid(
                    "/predecessor",
                    format!("no process {pid} that you may see"),
                ));
            }
            Some(pid)
        }
    };
    let command = Command::Start {
        service: s.service.clone(),
        version: s.version,
        priority: s.priority,
        record,
        context,
        predecessor,
        start_at_ms: s.start_at_ms,
        by: caller.user.clone(),
    };
    let outcome = if new_record.is_none() && s.decision.is_none() {
        k.engine.command(command).await?
    } else {
        let records = k.records.clone();
        let actor = caller.user.clone();
        let then = s
            .decision
            .map(|decision| decide(caller.user.clone(), decision));
        k.engine
            .command_then(
                move |tx| {
                    Box::pin(async move {
                        let mut command = command;
                        if let Some((item, fields)) = new_record {
                            let stored = records
                                .create_in(tx, &item, &fields, Some(&actor), 0)
                                .await
                                .map_err(|e| at("/record/fields", e))?;
                            let id = stored
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned();
                            if let Command::Start {
                                record, context, ..
                            } = &mut command
                            {
                                context["record"] = stored;
                                *record = Some((item, id));
                            }
                        }
                        Ok(command)
                    })
                },
                then,
            )
            .await?
    };
    let pid = outcome
        .pid
        .ok_or_else(|| KernelError::Corrupt("start gave no pid".into()))?;
    Ok(Started { pid })
}

/// The follow-up of a start with a decision: `user` handles the first step of the process
/// just created, with the record the start bound (see [`super::work::plan_handle`]).
fn decide(user: String, decision: Value) -> crate::engine::FollowUp {
    Box::new(move |core, outcome| {
        let pid = outcome
            .pid
            .ok_or_else(|| KernelError::Corrupt("start gave no pid".into()))?;
        let pcb = core
            .pcb(pid)
            .ok_or_else(|| KernelError::Corrupt(format!("process {pid} vanished")))?;
        let svc = core
            .service(&pcb.service, pcb.version)
            .ok_or_else(|| KernelError::NotFound(format!("service '{}'", pcb.service)))?;
        let current = pcb.record.as_ref().map(|_| {
            pcb.context
                .get("record")
                .cloned()
                .unwrap_or_else(|| json!({}))
        });
        let planned = super::work::plan_handle(svc, pcb, user.clone(), &decision, user, current)
            .map_err(|e| at("/decision", e))?;
        Ok(Command::Handle(planned.action))
    })
}

/// `e` with its pointers moved under `prefix` (`/fields/days` → `/record/fields/days`): the
/// use case checks parts of a larger body.
fn at(prefix: &str, e: KernelError) -> KernelError {
    let under = |issues: Vec<Issue>| {
        issues
            .into_iter()
            .map(|i| Issue::new(format!("{prefix}{}", i.path), i.message))
            .collect()
    };
    match e {
        KernelError::Invalid(issues) => KernelError::Invalid(under(issues)),
        KernelError::Design(erpos_design::DesignError::InvalidRecord(issues)) => {
            KernelError::Design(erpos_design::DesignError::InvalidRecord(under(issues)))
        }
        other => other,
    }
}

/// Refuses a binding of `item` to a service about another DataItem (or about none).
async fn check_subject(
    k: &Parts<'_>,
    service: &str,
    version: Option<u32>,
    item: &str,
) -> Result<()> {
    let subject = k
        .engine
        .read_applied(|c| c.startable(service, version).map(|s| s.subject.clone()))
        .await
        .ok_or_else(|| KernelError::NotFound(format!("service '{service}'")))?;
    match subject.as_deref() {
        Some(s) if s == item => Ok(()),
        Some(s) => Err(invalid(
            "/record/item",
            format!("'{service}' is about records of '{s}', not '{item}'"),
        )),
        None => Err(invalid(
            "/record",
            format!("'{service}' has no subject DataItem: its processes bind no record"),
        )),
    }
}

/// The process if the caller may see it. A process that is not theirs to see and one that
/// does not exist get the same 403, so ids cannot be probed; only a caller who may see
/// every process (an administrator, or a `services:*:view` grant) is told 404.
pub async fn visible(k: &Kernel, caller: &Caller, id: &str) -> Result<Pcb> {
    visible_in(k, caller, id, Reading::Committed).await
}

/// [`visible`] for a caller about to act on the process: read as applied, without
/// waiting for the writer (see `Engine::read_applied`; the act's own commit covers it).
pub async fn visible_to_act(k: &Kernel, caller: &Caller, id: &str) -> Result<Pcb> {
    visible_in(k, caller, id, Reading::Applied).await
}

/// Which state of the core a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Only what is committed (what is shown).
    Committed,
    /// Everything applied (what an act is planned on).
    Applied,
}

async fn visible_in(k: &Kernel, caller: &Caller, id: &str, reading: Reading) -> Result<Pcb> {
    let not_yours = |id: &str| {
        KernelError::Forbidden(format!(
            "process {id} is not one you may see (other people's processes need a services:{{name}}:view grant)"
        ))
    };
    let sees_all = caller.may(Permission::Service {
        name: "*",
        op: ServiceOp::View,
    });
    let Ok(pid) = id.parse::<Pid>() else {
        return Err(if sees_all {
            KernelError::NotFound(format!("process '{id}'"))
        } else {
            not_yours(id)
        });
    };
    let found = match reading {
        Reading::Committed => k.engine.read(|c| c.pcb(pid).cloned()).await,
        Reading::Applied => k.engine.read_applied(|c| c.pcb(pid).cloned()).await,
    };
    match found {
        Some(pcb) if crate::tasks::visible(&pcb, caller) => Ok(pcb),
        None => {
            // A process whose stored row could not be read back is out of the running
            // system; a monitor is told so (others get what a missing process gets).
            if caller.may(Permission::Monitor)
                && let Some(q) = k.engine.quarantined_process(pid)
            {
                return Err(KernelError::Conflict {
                    code: ErrorCode::Quarantined,
                    message: format!(
                        "process {pid} could not be read back from storage and is quarantined: {}",
                        q.error
                    ),
                    details: Vec::new(),
                });
            }
            Err(if sees_all {
                KernelError::NotFound(format!("process {pid}"))
            } else {
                not_yours(id)
            })
        }
        Some(_) => Err(not_yours(id)),
    }
}
