//! Use cases of operating the running system from outside: sending a signal that rules
//! react to, and putting an undelivered outbox entry back in line.

use serde_json::{Value, json};

use super::{audit, require};
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::error::Result;
use crate::events::NewEvent;
use erpos_design::rule::EventKind;

/// Logs the signal `name` with `data` as its payload (rules on it run next); answers its
/// sequence number. The name is checked by the caller (it is a path segment).
pub async fn send_signal(k: &Kernel, caller: &Caller, name: &str, data: Value) -> Result<u64> {
    require(caller, Permission::Design, "sending signals")?;
    let event = NewEvent {
        kind: EventKind::Signal,
        subject: Some(name.to_owned()),
        record_id: None,
        pid: None,
        payload: json!({"name": name, "data": data}),
        depth: 0,
    };
    k.events
        .append_audited(event, Some(&audit(k, caller, "signal.send")))
        .await
}

/// Puts an undelivered outbox entry back in line now, its attempts reset.
pub async fn retry_delivery(k: &Kernel, caller: &Caller, id: i64) -> Result<()> {
    require(caller, Permission::Admin, "retrying deliveries")?;
    k.outbox.retry(id, &audit(k, caller, "outbox.retry")).await
}
