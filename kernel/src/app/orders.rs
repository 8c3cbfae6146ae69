//! Use case of carrying out what a rule ordered a process to do: start one, signal it,
//! change its priority, suspend, resume or terminate it, assign an operator, take or give
//! back a resource, take a transition.
//!
//! The rules executor writes a [`ProcessOrder`] into the outbox in the transaction of the
//! event it ran on; the outbox reads the same type back and hands it here. One type on
//! both sides means a key cannot be spelled one way when queued and read with a default
//! the other way: an order that does not read is refused naming its key, never carried
//! out on pid 0 or an empty resource name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::processes::{Binding, Parts, StartProcess, start_with};
use crate::caller::{Caller, Permission, ServiceOp};
use crate::error::{KernelError, Result};
use crate::scheduler::{Command, Pid};

/// The record a started process is bound to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRef {
    /// The DataItem.
    pub item: String,
    /// The record's id.
    pub id: String,
}

/// What a rule ordered, as the outbox stores it (`{"op": "signal_process", "pid": 7, …}`).
/// `rule`, which the executor adds for the outbox's list, is set aside, so rows queued
/// before this type read back unchanged.
///
/// The stored shape is internally tagged, but the type is read and written externally
/// tagged (`{"signal_process": {"pid": 7}}`) and moved across by [`Self::from_payload`] and
/// [`Self::to_payload`]: serde buffers an internally tagged body, which loses the path of a
/// value that does not fit, and the refusal must name its key (`/priority`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessOrder {
    /// Start a process of `service`, bound to `record` when given.
    StartService {
        /// The service.
        service: String,
        /// The bound record (read again by the start, as it is then).
        #[serde(default)]
        record: Option<RecordRef>,
        /// The priority (default: the service's).
        #[serde(default)]
        priority: Option<i32>,
        /// Context variables.
        #[serde(default)]
        context: Map<String, Value>,
        /// Not before this time (ms); `None` starts now.
        #[serde(default)]
        start_at_ms: Option<i64>,
    },
    /// Send `signal` with `payload` to the process.
    SignalProcess {
        /// The process.
        pid: Pid,
        /// The signal's name.
        signal: String,
        /// What it carries.
        #[serde(default)]
        payload: Value,
    },
    /// Change the process's base priority.
    SetPriority {
        /// The process.
        pid: Pid,
        /// The new priority.
        priority: i32,
    },
    /// Suspend the process.
    SuspendProcess {
        /// The process.
        pid: Pid,
        /// Why (default: "suspended by a rule").
        #[serde(default)]
        reason: Option<String>,
    },
    /// Resume a suspended process.
    ResumeProcess {
        /// The process.
        pid: Pid,
    },
    /// Terminate the process.
    TerminateProcess {
        /// The process.
        pid: Pid,
        /// Why (default: "terminated by a rule").
        #[serde(default)]
        reason: Option<String>,
    },
    /// Make `user` the operator of the process's step.
    AssignOperator {
        /// The process.
        pid: Pid,
        /// The user.
        user: String,
    },
    /// Give the process `quantity` of `resource`.
    AllocateResource {
        /// The process.
        pid: Pid,
        /// The resource.
        resource: String,
        /// How many units (default 1).
        #[serde(default = "one")]
        quantity: u32,
    },
    /// Take `resource` back from the process.
    ReleaseResource {
        /// The process.
        pid: Pid,
        /// The resource.
        resource: String,
    },
    /// Leave the process's step by `transition`.
    TakeTransition {
        /// The process.
        pid: Pid,
        /// The transition.
        transition: String,
    },
}

fn one() -> u32 {
    1
}

impl ProcessOrder {
    /// The order stored as `payload`; one that does not read is refused naming the key
    /// (`/pid: missing field`), so it fails its outbox row instead of acting on a default.
    pub fn from_payload(payload: &Value) -> Result<Self> {
        let refuse = |at: String, why: String| {
            KernelError::Invalid(vec![erpos_design::Issue::new(
                at,
                format!("the process order does not read: {why}"),
            )])
        };
        let mut body = payload
            .as_object()
            .cloned()
            .ok_or_else(|| refuse(String::new(), "expected a JSON object".into()))?;
        let op = match body.remove("op") {
            Some(Value::String(op)) => op,
            _ => return Err(refuse("/op".into(), "expected the order's name".into())),
        };
        // Keys only the outbox's list reads.
        body.remove("rule");
        let tagged = Value::Object(Map::from_iter([(op, Value::Object(body))]));
        serde_path_to_error::deserialize(&tagged).map_err(|e| {
            // The path starts with the order's name, which is `/op` in the stored shape.
            let path = e.path().to_string();
            let at = match path.split_once('.') {
                _ if path == "." => "/op".to_owned(),
                Some((_, rest)) => format!("/{}", rest.replace('.', "/")),
                // The order's own body (a key it must have is missing).
                None => String::new(),
            };
            refuse(at, e.inner().to_string())
        })
    }

    /// The order as the outbox stores it (`{"op": …, …}`).
    pub fn to_payload(&self) -> Value {
        let mut out = Map::new();
        if let Ok(Value::Object(tagged)) = serde_json::to_value(self) {
            for (op, body) in tagged {
                out.insert("op".into(), Value::String(op));
                if let Value::Object(body) = body {
                    out.extend(body);
                }
            }
        }
        Value::Object(out)
    }

    /// The process the order is about (`None` for a start).
    pub fn pid(&self) -> Option<Pid> {
        match self {
            ProcessOrder::StartService { .. } => None,
            ProcessOrder::SignalProcess { pid, .. }
            | ProcessOrder::SetPriority { pid, .. }
            | ProcessOrder::SuspendProcess { pid, .. }
            | ProcessOrder::ResumeProcess { pid }
            | ProcessOrder::TerminateProcess { pid, .. }
            | ProcessOrder::AssignOperator { pid, .. }
            | ProcessOrder::AllocateResource { pid, .. }
            | ProcessOrder::ReleaseResource { pid, .. }
            | ProcessOrder::TakeTransition { pid, .. } => Some(*pid),
        }
    }

    /// The scheduler's command for an order about a running process, acting as `by`.
    fn command(self, by: String) -> Option<Command> {
        Some(match self {
            ProcessOrder::StartService { .. } => return None,
            ProcessOrder::SignalProcess {
                pid,
                signal,
                payload,
            } => Command::Signal {
                pid,
                event: signal,
                payload,
                by,
            },
            ProcessOrder::SetPriority { pid, priority } => {
                Command::SetPriority { pid, priority, by }
            }
            ProcessOrder::SuspendProcess { pid, reason } => Command::Suspend {
                pid,
                by,
                reason: reason.unwrap_or_else(|| "suspended by a rule".into()),
            },
            ProcessOrder::ResumeProcess { pid } => Command::Resume { pid, by },
            ProcessOrder::TerminateProcess { pid, reason } => Command::Terminate {
                pid,
                by,
                reason: reason.unwrap_or_else(|| "terminated by a rule".into()),
            },
            ProcessOrder::AssignOperator { pid, user } => Command::Assign { pid, user, by },
            ProcessOrder::AllocateResource {
                pid,
                resource,
                quantity,
            } => Command::Allocate {
                pid,
                resource,
                quantity,
                by,
            },
            ProcessOrder::ReleaseResource { pid, resource } => {
                Command::Release { pid, resource, by }
            }
            ProcessOrder::TakeTransition { pid, transition } => Command::TakeTransition {
                pid,
                transition,
                by,
            },
        })
    }
}

/// Carries out `order` for `caller`: a start goes through [`start_with`] (its grant, the
/// bound record read as it is now); any other order needs
/// `services:<its service>:administer` and is one scheduler command, which the core
/// refuses when it is not legal in the process's state.
pub async fn carry_out(k: &Parts<'_>, caller: &Caller, order: ProcessOrder) -> Result<()> {
    if let ProcessOrder::StartService {
        service,
        record,
        priority,
        context,
        start_at_ms,
    } = order
    {
        let start = StartProcess {
            service,
            priority,
            binding: record.map(|r| Binding::Existing {
                item: r.item,
                id: r.id,
            }),
            context: Value::Object(context),
            start_at_ms,
            ..Default::default()
        };
        return start_with(k, caller, start).await.map(|_| ());
    }
    let pid = order.pid().unwrap_or_default();
    let service = k
        .engine
        .read_applied(|core| core.pcb(pid).map(|p| p.service.to_string()))
        .await
        .ok_or_else(|| KernelError::NotFound(format!("process {pid}")))?;
    if !caller.may(Permission::Service {
        name: &service,
        op: ServiceOp::Administer,
    }) {
        return Err(KernelError::Forbidden(format!(
            "ordering process {pid} needs services:{service}:administer"
        )));
    }
    match order.command(caller.user.clone()) {
        Some(command) => k.engine.command(command).await.map(|_| ()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn orders_queued_before_the_type_read_back() -> std::result::Result<(), KernelError> {
        // Rows as the executor wrote them by hand: the `rule` key is ignored, nulls are
        // the defaults.
        let start = ProcessOrder::from_payload(&json!({
            "op": "start_service", "service": "treatment_visit", "record": null,
            "priority": null, "context": {"来源": "复诊"}, "start_at_ms": null, "rule": "复诊提醒",
        }))?;
        assert_eq!(
            start,
            ProcessOrder::StartService {
                service: "treatment_visit".into(),
                record: None,
                priority: None,
                context: json!({"来源": "复诊"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                start_at_ms: None,
            }
        );
        let suspend = ProcessOrder::from_payload(
            &json!({"op": "suspend_process", "pid": 7, "reason": null, "rule": "r"}),
        )?;
        assert_eq!(suspend.pid(), Some(7));
        let allocate = ProcessOrder::from_payload(
            &json!({"op": "allocate_resource", "pid": 3, "resource": "激光仪"}),
        )?;
        assert_eq!(
            allocate,
            ProcessOrder::AllocateResource {
                pid: 3,
                resource: "激光仪".into(),
                quantity: 1
            }
        );
        // What is written reads back as itself.
        assert_eq!(
            ProcessOrder::from_payload(&allocate.to_payload())?,
            allocate
        );
        Ok(())
    }

    #[test]
    fn an_order_missing_a_key_is_refused_naming_it() {
        let issues = |payload: Value| match ProcessOrder::from_payload(&payload) {
            Err(KernelError::Invalid(issues)) => issues
                .into_iter()
                .map(|i| (i.path, i.message))
                .collect::<Vec<_>>(),
            other => panic!("expected a refusal, got {other:?}"),
        };
        // Before, a missing pid was read as process 0 and an empty resource name as "".
        let missing = issues(json!({"op": "signal_process", "signal": "到店"}));
        assert!(missing[0].1.contains("missing field `pid`"), "{missing:?}");
        let wrong = issues(json!({"op": "set_priority", "pid": 2, "priority": "high"}));
        assert_eq!(wrong[0].0, "/priority", "{wrong:?}");
        let unknown = issues(json!({"op": "reboot", "pid": 2}));
        assert_eq!(unknown[0].0, "/op", "{unknown:?}");
        assert!(
            unknown[0].1.contains("unknown variant `reboot`"),
            "{unknown:?}"
        );
    }
}
