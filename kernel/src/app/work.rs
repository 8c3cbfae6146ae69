//! Use cases of work items: the rules of acting on a step (which keys an action takes,
//! what a comment may be, which fields a handler may edit and must fill), kept here so the
//! work-items API and a start that makes the first decision apply the same rules.
//!
//! [`plan_handle`] is pure over the service, the process and the bound record: it can run
//! inside the scheduler's critical section, where the one-call start decides the first step
//! in the same transaction as the start.

use erpos_design::Issue;
use erpos_design::service::{FieldAccess, Service, TransitionAttribute};
use serde_json::{Map, Value};

use crate::error::{KernelError, Result};
use crate::scheduler::{HandleAction, Pcb};

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
    })
}
