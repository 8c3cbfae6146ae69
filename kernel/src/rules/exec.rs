//! Running instructions: the kernel's system calls, for rules and automatic steps alike.
//!
//! Record instructions run in the caller's transaction (the rule run's, or the automatic
//! step's), so they commit together with the run's record or not at all. Everything that
//! leaves the database — notifications, webhooks — and every process command goes into
//! the outbox in that same transaction, to be delivered at least once after it commits.
//! Scripts run on tokio's blocking threads (they may take up to their time limit), never
//! on the async threads; expressions, bounded far tighter, run in place.

use std::sync::Arc;

use erpos_design::Issue;
use erpos_design::rule::{Event, Instruction, parse_instructions};
use erpos_design::service_check::parse_iso_duration;
use erpos_design::template::{render, render_json};
use serde_json::{Map, Value as Json, json};

use crate::app::orders::{ProcessOrder, RecordRef};
use crate::db::{Db, Tx};
use crate::error::{ErrorCode, KernelError};
use crate::outbox::{Delivery, Kind, enqueue_sql};
use crate::records::Records;
use crate::sandbox::{Bindings, Sandbox};

/// How many rule runs may lead to one another before the kernel stops the cascade (a rule
/// that updates the record it listens for would otherwise run for ever).
pub const MAX_DEPTH: u32 = 8;

/// The longest reference a `consume_stock` takes (one per material is made of it, within
/// the 200 characters a stock operation's reference may have).
const MAX_REFERENCE: usize = 160;

/// What an instruction list runs on.
#[derive(Debug, Clone, Default)]
pub struct Situation {
    /// The rule running (None for an automatic step).
    pub rule: Option<String>,
    /// The event it runs on, if any.
    pub event: Option<Event>,
    /// The record concerned: (DataItem, id, record).
    pub record: Option<(String, String, Json)>,
    /// The process concerned.
    pub pid: Option<u64>,
    /// The process's context.
    pub context: Json,
    /// Rule runs that led here.
    pub depth: u32,
    /// Who acts when a person's handling runs them (a human step's instructions): the
    /// audit trails name that person, not the system.
    pub by: Option<String>,
}

/// Why an instruction list stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("instruction {index} ({op}): {message}")]
pub struct InstructionError {
    /// Position in the list (0-based).
    pub index: usize,
    /// Its op.
    pub op: String,
    /// What went wrong.
    pub message: String,
    /// The typed reason, when an instruction was refused as a request would be (a short
    /// balance, a used-up course, an invalid value): a person's handling answers with it.
    pub code: Option<ErrorCode>,
    /// Where, when the reason names fields (the charge's `/method`, …).
    pub details: Vec<Issue>,
}

/// Why one instruction failed: a message, and the request's typed reason when it was
/// refused like a request.
struct Failure {
    message: String,
    code: Option<ErrorCode>,
    details: Vec<Issue>,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            code: None,
            details: Vec::new(),
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl Failure {
    /// A kernel error as an instruction's failure, keeping its code and details.
    fn of(e: KernelError) -> Self {
        let (code, details) = match &e {
            KernelError::Invalid(issues)
            | KernelError::Design(erpos_design::DesignError::InvalidRecord(issues)) => {
                (Some(ErrorCode::ValidationFailed), issues.clone())
            }
            KernelError::Conflict { code, details, .. } => (Some(*code), details.clone()),
            _ => (None, Vec::new()),
        };
        let message = match &e {
            KernelError::Invalid(issues)
            | KernelError::Design(erpos_design::DesignError::InvalidRecord(issues)) => issues
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        Failure {
            message,
            code,
            details,
        }
    }
}

/// What a run of instructions did.
pub struct Ran {
    /// A summary of each effect, for the run's record.
    pub effects: Vec<Json>,
    /// Whether anything went to the outbox.
    pub queued: bool,
    /// What the instructions bound under their `as` names, in order.
    pub bound: Vec<(String, Json)>,
}

/// Runs instructions.
pub struct Executor {
    db: Db,
    records: Arc<Records>,
    sandbox: Arc<Sandbox>,
}

impl Executor {
    /// An executor writing through `records`, evaluating in `sandbox`.
    pub fn new(db: Db, records: Arc<Records>, sandbox: Arc<Sandbox>) -> Self {
        Self {
            db,
            records,
            sandbox,
        }
    }

    /// The sandbox (conditions are evaluated there too).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The variables a situation shows to expressions (the record's money and decimal
    /// fields as exact numbers).
    pub fn bindings(&self, situation: &Situation, now_ms: i64) -> Bindings {
        let exact = situation
            .record
            .as_ref()
            .map_or_else(Vec::new, |(item, _, _)| {
                self.records
                    .definitions()
                    .schema()
                    .exact_fields(item)
                    .to_vec()
            });
        Bindings {
            event: situation
                .event
                .as_ref()
                .and_then(|e| serde_json::to_value(e).ok())
                .unwrap_or(Json::Null),
            record: situation
                .record
                .as_ref()
                .map(|r| r.2.clone())
                .unwrap_or(Json::Null),
            context: situation.context.clone(),
            now_ms,
            vars: Vec::new(),
            exact,
        }
    }

    /// Runs `list` in `tx`; returns a summary of each effect (for the run's record),
    /// whether anything went to the outbox, and what the instructions bound (`as`), in
    /// order.
    pub async fn run(
        &self,
        tx: &mut Tx,
        situation: &Situation,
        list: &[Instruction],
        now_ms: i64,
    ) -> Result<Ran, InstructionError> {
        let mut bindings = self.bindings(situation, now_ms);
        let mut effects = Vec::new();
        let mut queued = false;
        let mut work: Vec<(usize, Instruction, bool)> = list
            .iter()
            .enumerate()
            .map(|(i, ins)| (i, ins.clone(), false))
            .rev()
            .collect();
        while let Some((index, ins, from_script)) = work.pop() {
            let fail = |message: String| InstructionError {
                index,
                op: ins.op().to_owned(),
                message,
                code: None,
                details: Vec::new(),
            };
            if let Instruction::Script { source } = &ins {
                if from_script {
                    return Err(fail("a script cannot return another script".into()));
                }
                // Off the async threads: a script may run up to its time limit.
                let (sandbox, source, given) =
                    (self.sandbox.clone(), source.clone(), bindings.clone());
                let built = tokio::task::spawn_blocking(move || sandbox.script(&source, &given))
                    .await
                    .map_err(|e| fail(format!("the script's thread failed: {e}")))?
                    .map_err(fail)?;
                let parsed = parse_instructions(&built, "")
                    .map_err(|issues| fail(format!("the script returned {}", issues[0].message)))?;
                effects.push(json!({"op": "script", "instructions": parsed.len()}));
                for next in parsed.into_iter().rev() {
                    work.push((index, next, true));
                }
                continue;
            }
            let (effect, delivery) = self
                .one(tx, situation, &mut bindings, &ins, now_ms)
                .await
                .map_err(|f| InstructionError {
                    code: f.code,
                    details: f.details,
                    ..fail(f.message)
                })?;
            for d in delivery {
                queued = true;
                tx.execute(enqueue_sql(&self.db, &d, now_ms))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            }
            effects.push(effect);
        }
        Ok(Ran {
            effects,
            queued,
            bound: bindings.vars,
        })
    }

    /// One instruction: record writes happen here; the rest becomes deliveries.
    async fn one(
        &self,
        tx: &mut Tx,
        s: &Situation,
        bindings: &mut Bindings,
        ins: &Instruction,
        now_ms: i64,
    ) -> Result<(Json, Vec<Delivery>), Failure> {
        let actor = match (&s.by, &s.rule) {
            (Some(by), _) => by.clone(),
            (None, Some(rule)) => format!("rule:{rule}"),
            (None, None) => "system".to_owned(),
        };
        let depth = s.depth + 1;
        let deliver = |kind: Kind, mut payload: Json, due_ms: i64| {
            if let Some(p) = payload.as_object_mut() {
                p.insert("rule".into(), json!(s.rule));
            }
            Delivery {
                kind,
                payload,
                due_ms,
                rule: s.rule.clone(),
                event_seq: s.event.as_ref().map(|e| e.seq),
            }
        };
        let root = || {
            let mut root = json!({
                "event": bindings.event, "record": bindings.record, "context": bindings.context,
            });
            if let Some(r) = root.as_object_mut() {
                for (k, v) in &bindings.vars {
                    r.insert(k.clone(), v.clone());
                }
            }
            root
        };
        match ins {
            Instruction::CreateRecord {
                item,
                set,
                compute,
                bind,
            } => {
                let mut body = self.values(set, compute, bindings)?;
                // A value computed from what is not there (`context.signed_name` not
                // sent) is not given: the DataItem's own rules say whether it must be.
                if let Some(fields) = body.as_object_mut() {
                    fields.retain(|_, v| !v.is_null());
                }
                let record = self
                    .records
                    .create_in(tx, item, &body, Some(&actor), depth)
                    .await
                    .map_err(Failure::of)?;
                let id = record.get("id").cloned().unwrap_or(Json::Null);
                if let Some(name) = bind {
                    bindings.vars.push((name.clone(), record));
                }
                Ok((
                    json!({"op": "create_record", "item": item, "id": id}),
                    vec![],
                ))
            }
            Instruction::UpdateRecord {
                item,
                id,
                set,
                compute,
            } => {
                let (item, id) = match (item, id) {
                    (Some(item), Some(expr)) => {
                        let id = self.sandbox.eval(expr, bindings)?;
                        let id = id
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("'id' gave {id}, not a record id"))?;
                        (item.clone(), id)
                    }
                    (wanted, _) => {
                        let (item, id, _) = s.record.as_ref().ok_or(
                            "there is no record here to update: give 'item' and 'id'".to_owned(),
                        )?;
                        if wanted.as_ref().is_some_and(|w| w != item) {
                            return Err(format!(
                                "the record here is a '{item}', not a '{}': give its 'id'",
                                wanted.as_deref().unwrap_or_default()
                            )
                            .into());
                        }
                        (item.clone(), id.clone())
                    }
                };
                let body = self.values(set, compute, bindings)?;
                let (record, _) = self
                    .records
                    .patch_in(tx, &item, &id, &body, None, Some(&actor), depth)
                    .await
                    .map_err(|e| e.to_string())?;
                if s.record.as_ref().is_some_and(|r| r.1 == id) {
                    bindings.record = record;
                }
                Ok((
                    json!({"op": "update_record", "item": item, "id": id}),
                    vec![],
                ))
            }
            Instruction::StartService {
                service,
                record,
                priority,
                context,
                compute,
                delay,
            } => {
                // The bound record must exist now (else the rule's run fails, naming it); the
                // start reads it again when it is delivered and puts it in the context, like
                // every start (`app::processes::start`).
                let bound = match record {
                    Some(expr) => {
                        let r = self.sandbox.eval(expr, bindings)?;
                        match (
                            r.get("item").and_then(Json::as_str),
                            r.get("id").and_then(Json::as_str),
                        ) {
                            (Some(item), Some(id)) => {
                                self.records
                                    .get(item, id)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                Some(RecordRef {
                                    item: item.to_owned(),
                                    id: id.to_owned(),
                                })
                            }
                            _ => {
                                return Err(
                                    format!("'record' gave {r}, not #{{item: …, id: …}}").into()
                                );
                            }
                        }
                    }
                    None => s.record.as_ref().map(|(item, id, _)| RecordRef {
                        item: item.clone(),
                        id: id.clone(),
                    }),
                };
                let context = match self.values(context, compute, bindings)? {
                    Json::Object(c) => c,
                    _ => Map::new(),
                };
                let start_at_ms = delay
                    .as_deref()
                    .and_then(parse_iso_duration)
                    .map(|secs| now_ms + secs as i64 * 1000);
                let payload = ProcessOrder::StartService {
                    service: service.clone(),
                    record: bound,
                    priority: *priority,
                    context,
                    start_at_ms,
                }
                .to_payload();
                Ok((
                    json!({"op": "start_service", "service": service}),
                    vec![deliver(Kind::Process, payload, now_ms)],
                ))
            }
            Instruction::SignalProcess {
                process,
                signal,
                payload,
            } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::SignalProcess {
                    pid,
                    signal: signal.clone(),
                    payload: Json::Object(payload.clone()),
                }
                .to_payload();
                Ok((
                    json!({"op": "signal_process", "pid": pid, "signal": signal}),
                    vec![deliver(Kind::Process, body, now_ms)],
                ))
            }
            Instruction::SetPriority { process, priority } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::SetPriority {
                    pid,
                    priority: *priority,
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::SuspendProcess {
                process,
                reason,
                period,
            } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::SuspendProcess {
                    pid,
                    reason: reason.clone(),
                }
                .to_payload();
                let mut out = vec![deliver(Kind::Process, body, now_ms)];
                if let Some(secs) = period.as_deref().and_then(parse_iso_duration) {
                    let resume = ProcessOrder::ResumeProcess { pid }.to_payload();
                    out.push(deliver(Kind::Process, resume, now_ms + secs as i64 * 1000));
                }
                Ok((
                    json!({"op": "suspend_process", "pid": pid, "for": period}),
                    out,
                ))
            }
            Instruction::ResumeProcess { process } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::ResumeProcess { pid }.to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::TerminateProcess { process, reason } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::TerminateProcess {
                    pid,
                    reason: reason.clone(),
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::AssignOperator { process, user } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::AssignOperator {
                    pid,
                    user: user.clone(),
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::AllocateResource {
                process,
                resource,
                quantity,
            } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::AllocateResource {
                    pid,
                    resource: resource.clone(),
                    quantity: quantity.unwrap_or(1),
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::ReleaseResource { process, resource } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::ReleaseResource {
                    pid,
                    resource: resource.clone(),
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::TakeTransition {
                process,
                transition,
            } => {
                let pid = self.pid(process, s, bindings)?;
                let body = ProcessOrder::TakeTransition {
                    pid,
                    transition: transition.clone(),
                }
                .to_payload();
                Ok((body.clone(), vec![deliver(Kind::Process, body, now_ms)]))
            }
            Instruction::Notify {
                to,
                to_expr,
                title,
                body,
            } => {
                let mut users = to.clone();
                if let Some(expr) = to_expr {
                    match self.sandbox.eval(expr, bindings)? {
                        Json::String(u) => users.push(u),
                        Json::Array(list) => {
                            for u in list {
                                users.push(u.as_str().map(str::to_owned).ok_or_else(|| {
                                    format!("'to_expr' listed {u}, not a user id")
                                })?);
                            }
                        }
                        other => return Err(format!("'to_expr' gave {other}, not user ids").into()),
                    }
                }
                users.sort();
                users.dedup();
                let root = root();
                let payload = json!({
                    "to": users, "title": render(title, &root), "body": render(body, &root),
                });
                Ok((
                    json!({"op": "notify", "to": users}),
                    vec![deliver(Kind::Notify, payload, now_ms)],
                ))
            }
            Instruction::Webhook { url, secret, body } => {
                let root = root();
                let body = match body {
                    Some(template) => render_json(template, &root),
                    None => {
                        json!({"rule": s.rule, "event": bindings.event, "record": bindings.record})
                    }
                };
                let payload = json!({"url": url, "secret": secret, "body": body});
                Ok((
                    json!({"op": "webhook", "url": url}),
                    vec![deliver(Kind::Webhook, payload, now_ms)],
                ))
            }
            Instruction::ConsumeStock {
                treatment,
                branch,
                reference,
                bind,
            } => {
                let text_of =
                    |expr: &Option<String>, default: Option<String>, what: &str| match expr {
                        Some(e) => {
                            let v = self.sandbox.eval(e, bindings)?;
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("'{what}' gave {v}, not a text"))
                        }
                        None => default.ok_or_else(|| format!("say which '{what}'")),
                    };
                let booked = bindings
                    .context
                    .pointer("/booking/treatment")
                    .and_then(Json::as_str)
                    .map(str::to_owned);
                let name = text_of(treatment, booked, "treatment")?;
                let branch = match (
                    branch,
                    bindings.context.pointer("/booking/branch"),
                    bindings.context.get("branch"),
                ) {
                    (Some(b), _, _) => b.clone(),
                    (None, Some(Json::String(b)), _) => b.clone(),
                    // A walk-in takes the stock of the branch it was started in.
                    (None, None | Some(Json::Null), Some(Json::String(b))) => b.clone(),
                    (None, _, _) => {
                        return Err(
                            "say which 'branch': the visit has no booking of a branch, nor a branch"
                                .into(),
                        );
                    }
                };
                let reference =
                    text_of(reference, s.pid.map(|p| format!("visit-{p}")), "reference")?;
                if reference.trim().is_empty() || reference.chars().count() > MAX_REFERENCE {
                    return Err(
                        format!("the reference must have 1 to {MAX_REFERENCE} characters").into(),
                    );
                }
                let found = crate::store::treatments::get(&self.db, &name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("there is no treatment '{name}'"))?;
                let mut lots = Vec::new();
                let mut text = Vec::new();
                for c in &found.consumables {
                    let material = crate::store::stock::material(&self.db, &c.material)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("there is no material '{}'", c.material))?;
                    let head = crate::store::stock::OperationHead {
                        reference: format!("{reference}/{}", c.material),
                        kind: "consumption".into(),
                        material: c.material.clone(),
                        branch: branch.clone(),
                        quantity: c.quantity,
                    };
                    let by = crate::store::stock::By {
                        actor: &actor,
                        now_ms,
                        note: Some(&reference),
                        audit: crate::audit::Audit::new(&actor, "stock.consumption", now_ms)
                            .row(self.db.dialect(), &head.reference),
                    };
                    let (done, _) = crate::store::stock::consume_in(
                        tx,
                        head,
                        material.use_within_hours_of_opening,
                        by,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    for (lot, movement) in &done.moved {
                        let quantity = -movement.quantity;
                        lots.push(json!({"material": c.material, "lot": lot.id,
                            "lot_number": lot.lot_number, "quantity": quantity}));
                        text.push(format!(
                            "{} {} ×{quantity}",
                            material.label.zh, lot.lot_number
                        ));
                    }
                }
                let used = json!({"lots": lots, "text": text.join("，")});
                if let Some(name) = bind {
                    bindings.vars.push((name.clone(), used.clone()));
                }
                Ok((
                    json!({"op": "consume_stock", "treatment": name, "reference": reference, "lots": used["lots"]}),
                    vec![],
                ))
            }
            Instruction::Charge {
                charge_type,
                holder,
                treatment,
                amount,
                discount,
                account,
                course,
                method,
                reference,
                session_at,
                bind,
            } => {
                let booking = bindings.context.get("booking").cloned();
                let booked = |key: &str| booking.as_ref().and_then(|b| b.get(key)).cloned();
                let bound_id = s.record.as_ref().map(|(_, id, _)| json!(id));
                let mut request = Map::new();
                for (key, e, default) in [
                    ("charge_type", charge_type, None),
                    ("holder", holder, booked("patient").or(bound_id)),
                    ("treatment", treatment, booked("treatment")),
                    ("amount", amount, None),
                    ("discount", discount, None),
                    ("account", account, None),
                    ("course", course, None),
                    ("method", method, None),
                    (
                        "reference",
                        reference,
                        s.pid.map(|p| json!(format!("visit-{p}"))),
                    ),
                ] {
                    let value = match e {
                        Some(e) => self.sandbox.eval(e, bindings)?,
                        // What the handler sent with the handling, else the booking's.
                        None => bindings
                            .context
                            .get(key)
                            .cloned()
                            .or(default)
                            .unwrap_or(Json::Null),
                    };
                    match value {
                        Json::Null => {}
                        // Money may come as a number from a form: its text is exact.
                        Json::Number(n) => {
                            request.insert(key.into(), json!(n.to_string()));
                        }
                        v => {
                            request.insert(key.into(), v);
                        }
                    }
                }
                if let Some(id) = booked("id") {
                    request.insert("booking".into(), id);
                } else if let Some(b) = bindings.context.get("branch").filter(|b| b.is_string()) {
                    // A walk-in's branch: the one it was started in.
                    request.insert("branch".into(), b.clone());
                }
                // When a session is deducted matters only to a charge that pays with one.
                let by_session = matches!(
                    request.get("charge_type").and_then(Json::as_str),
                    Some("course" | "yearly")
                );
                if let Some(at) = session_at.filter(|_| by_session) {
                    request.insert("session_at".into(), json!(at));
                }
                let body = Json::Object(request);
                let r: crate::app::charges::ChargeRequest =
                    crate::app::read_body(&body).map_err(Failure::of)?;
                let c = crate::app::charges::resolve(&self.db, r, &actor, s.pid, now_ms)
                    .await
                    .map_err(Failure::of)?;
                let dialect = self.db.dialect();
                let rows = |action, subject: &str| {
                    crate::audit::Audit::new(&actor, action, now_ms).row(dialect, subject)
                };
                let (charge, _) = crate::store::charges::charge_in(tx, &c, &rows)
                    .await
                    .map_err(Failure::of)?;
                let shown = serde_json::to_value(&charge).map_err(|e| e.to_string())?;
                if let Some(name) = bind {
                    bindings.vars.push((name.clone(), shown));
                }
                Ok((
                    json!({"op": "charge", "id": charge.id, "reference": charge.reference,
                        "received": charge.received, "covered": charge.covered}),
                    vec![],
                ))
            }
            Instruction::UseSession { reference, bind } => {
                let reference = match reference {
                    Some(e) => {
                        let v = self.sandbox.eval(e, bindings)?;
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("'reference' gave {v}, not a text"))?
                    }
                    None => s
                        .pid
                        .map(|p| format!("visit-{p}"))
                        .ok_or("say which 'reference': no visit runs this")?,
                };
                let dialect = self.db.dialect();
                let rows = |action, subject: &str| {
                    crate::audit::Audit::new(&actor, action, now_ms).row(dialect, subject)
                };
                let deducted = crate::store::charges::use_pending_session(
                    tx, &reference, &actor, now_ms, &rows,
                )
                .await
                .map_err(Failure::of)?;
                let shown = match &deducted {
                    Some((d, _)) => json!({"course": d.course.id, "left": d.course.left,
                        "seq": d.session.seq}),
                    None => Json::Null,
                };
                if let Some(name) = bind {
                    bindings.vars.push((name.clone(), shown.clone()));
                }
                Ok((
                    json!({"op": "use_session", "reference": reference, "deducted": shown}),
                    vec![],
                ))
            }
            Instruction::Script { .. } => Err("scripts are expanded before they run".into()),
        }
    }

    /// Literal values merged with computed ones.
    fn values(
        &self,
        set: &Map<String, Json>,
        compute: &std::collections::BTreeMap<String, String>,
        bindings: &Bindings,
    ) -> Result<Json, String> {
        let mut out = set.clone();
        for (name, expr) in compute {
            let v = self
                .sandbox
                .eval(expr, bindings)
                .map_err(|e| format!("computing '{name}': {e}"))?;
            out.insert(name.clone(), v);
        }
        Ok(Json::Object(out))
    }

    /// The process an instruction targets: its expression, else the situation's.
    fn pid(
        &self,
        expr: &Option<String>,
        s: &Situation,
        bindings: &Bindings,
    ) -> Result<u64, String> {
        match expr {
            Some(e) => {
                let v = self.sandbox.eval(e, bindings)?;
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                    .ok_or_else(|| format!("'process' gave {v}, not a process id"))
            }
            None => s
                .pid
                .ok_or_else(|| "there is no process here: give 'process'".to_owned()),
        }
    }
}
