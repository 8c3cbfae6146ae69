//! ServiceRules: "when EVENT if CONDITION do INSTRUCTIONS", written by analysts as data.
//!
//! A rule names an event pattern (a record written, a process changing state, a step
//! entered or left, a deadline, a time, a signal from outside), an optional Rhai condition
//! and an ordered list of [`Instruction`]s, the kernel's system calls. This module holds the
//! shapes, their validation (every problem at a JSON pointer, like DataItems and services)
//! and the pure matching of an [`Event`] against a pattern. Running instructions is the
//! kernel's job; nothing here touches storage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::catalog::Catalog;
use crate::directory::{Directory, Kind};
use crate::error::{DesignError, Issue};
use crate::expression::{Record, check_condition, condition_engine, parse_iso_duration};
use crate::field::FieldType;
use crate::label::Label;
use crate::naming::{derive_identifier, is_identifier};
use crate::shape::{Reading, Shape, stand_in_label};

/// What happened, as the kernel's event bus names it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum EventKind {
    /// A record of a DataItem was created.
    #[serde(rename = "record.created")]
    RecordCreated,
    /// A record was changed (the payload lists the changed fields).
    #[serde(rename = "record.updated")]
    RecordUpdated,
    /// A record was deleted.
    #[serde(rename = "record.deleted")]
    RecordDeleted,
    /// A process changed state (from, to, step).
    #[serde(rename = "process.state_changed")]
    ProcessStateChanged,
    /// A process entered a step.
    #[serde(rename = "step.entered")]
    StepEntered,
    /// A process left a step.
    #[serde(rename = "step.left")]
    StepLeft,
    /// A step's or a process's deadline is near.
    #[serde(rename = "deadline.warning")]
    DeadlineWarning,
    /// A step's or a process's deadline has passed.
    #[serde(rename = "deadline.passed")]
    DeadlinePassed,
    /// A named signal from outside (`POST /api/v1/events/{name}`).
    #[serde(rename = "signal")]
    Signal,
    /// A time: a cron schedule, a moment, or an offset from a record's date field.
    #[serde(rename = "time")]
    Time,
}

impl EventKind {
    /// Every kind, for listings and parsing.
    pub const ALL: [EventKind; 10] = [
        EventKind::RecordCreated,
        EventKind::RecordUpdated,
        EventKind::RecordDeleted,
        EventKind::ProcessStateChanged,
        EventKind::StepEntered,
        EventKind::StepLeft,
        EventKind::DeadlineWarning,
        EventKind::DeadlinePassed,
        EventKind::Signal,
        EventKind::Time,
    ];

    /// The stored and JSON name (`record.created`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RecordCreated => "record.created",
            EventKind::RecordUpdated => "record.updated",
            EventKind::RecordDeleted => "record.deleted",
            EventKind::ProcessStateChanged => "process.state_changed",
            EventKind::StepEntered => "step.entered",
            EventKind::StepLeft => "step.left",
            EventKind::DeadlineWarning => "deadline.warning",
            EventKind::DeadlinePassed => "deadline.passed",
            EventKind::Signal => "signal",
            EventKind::Time => "time",
        }
    }

    /// The kind with this name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the event's subject is a DataItem (else a service, a signal name or a rule).
    pub fn is_record(self) -> bool {
        matches!(
            self,
            EventKind::RecordCreated | EventKind::RecordUpdated | EventKind::RecordDeleted
        )
    }

    /// Whether the event comes from a process (its subject is the service).
    pub fn is_process(self) -> bool {
        matches!(
            self,
            EventKind::ProcessStateChanged
                | EventKind::StepEntered
                | EventKind::StepLeft
                | EventKind::DeadlineWarning
                | EventKind::DeadlinePassed
        )
    }
}

/// Which events a rule listens for. Every attribute but `kind` narrows the match; which
/// attributes a kind accepts is checked by [`prepare_rule`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPattern {
    /// The kind of event.
    pub kind: Option<EventKind>,
    /// Record events and time offsets: the DataItem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// `record.updated`: fire only when one of these fields changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Process events: the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Step and deadline events: the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `process.state_changed`: the state left (`READY`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `process.state_changed`: the state entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `signal`: the signal's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `time`: a five-field cron expression (recurring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `time`: one moment (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `time`: a date or datetime field of `item` the time is counted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `time` with `field`: how long after (ISO 8601, `P7D`; a leading `-` for before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// `time` with a date `field`: the time of day it fires (`09:00`, default `00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_time: Option<String>,
    /// Local time's offset from UTC in minutes, for cron, dates and `at_time` (the clinic:
    /// 480, China time). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_offset_minutes: Option<i32>,
}

/// A time rule's schedule, once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeSpec {
    /// A cron expression.
    Cron(String),
    /// One moment (ms since epoch).
    At(i64),
    /// `offset_ms` after the date (at `at_time_ms` into the local day) or datetime in
    /// `item.field`.
    Offset {
        /// The DataItem.
        item: String,
        /// Its date or datetime field.
        field: String,
        /// Signed offset (ms).
        offset_ms: i64,
        /// For a date field: ms after local midnight.
        at_time_ms: i64,
    },
}

impl EventPattern {
    /// The subject an event of this pattern has (DataItem, service, signal name), if the
    /// pattern names one: what the kernel's interest index is keyed by.
    pub fn subject(&self) -> Option<&str> {
        match self.kind? {
            k if k.is_record() => self.item.as_deref(),
            k if k.is_process() => self.service.as_deref(),
            EventKind::Signal => self.name.as_deref(),
            _ => None,
        }
    }

    /// The schedule of a `time` pattern (None for other kinds or an invalid pattern;
    /// [`prepare_rule`] refuses those).
    pub fn time_spec(&self) -> Option<TimeSpec> {
        if self.kind != Some(EventKind::Time) {
            return None;
        }
        if let Some(cron) = &self.cron {
            return Some(TimeSpec::Cron(cron.clone()));
        }
        if let Some(at) = &self.at {
            return crate::value::parse_datetime(at).map(|t| TimeSpec::At(t.timestamp_millis()));
        }
        let offset_ms = match self.offset.as_deref() {
            None => 0,
            Some(text) => signed_duration_ms(text)?,
        };
        let at_time_ms = match self.at_time.as_deref() {
            None => 0,
            Some(text) => time_of_day_ms(text)?,
        };
        Some(TimeSpec::Offset {
            item: self.item.clone()?,
            field: self.field.clone()?,
            offset_ms,
            at_time_ms,
        })
    }

    /// Local time's offset from UTC (ms).
    pub fn utc_offset_ms(&self) -> i64 {
        i64::from(self.utc_offset_minutes.unwrap_or(0)) * 60_000
    }
}

/// `P7D` → 7 days in ms; `-P1D` → minus one day.
pub fn signed_duration_ms(text: &str) -> Option<i64> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let seconds = i64::try_from(parse_iso_duration(rest)?).ok()?;
    seconds.checked_mul(1000).map(|ms| ms * sign)
}

/// `09:30` → ms after midnight.
pub fn time_of_day_ms(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    (h < 24 && m < 60).then_some((h * 60 + m) * 60_000)
}

/// One system call of a rule or an automatic step. Values in `set` are literal JSON;
/// values in `compute` are Rhai expressions over `event`, `record`, `context` and the
/// results of earlier instructions (named by `as`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Instruction {
    /// Creates a record of `item`.
    CreateRecord {
        /// The DataItem.
        item: String,
        /// Literal field values.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        set: Map<String, Json>,
        /// Field values computed by Rhai expressions.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        compute: BTreeMap<String, String>,
        /// Name under which later instructions see the created record.
        #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// Changes fields of a record: the one given by `item` + `id` (an expression), else
    /// the event's record, else the process's bound record.
    UpdateRecord {
        /// The DataItem (default: the event's or the process's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<String>,
        /// An expression giving the record id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Literal field values.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        set: Map<String, Json>,
        /// Field values computed by Rhai expressions.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        compute: BTreeMap<String, String>,
    },
    /// Starts a process of a service, bound to a record.
    StartService {
        /// The service.
        service: String,
        /// An expression giving `#{item: …, id: …}` (default: the event's record).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<String>,
        /// Priority (default: the service's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<i32>,
        /// Literal context variables.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        context: Map<String, Json>,
        /// Context variables computed by expressions.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        compute: BTreeMap<String, String>,
        /// Start no earlier than `delay` from now (ISO 8601 duration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<String>,
    },
    /// Sends a signal to a process waiting for it.
    SignalProcess {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The signal's name.
        signal: String,
        /// Literal payload.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        payload: Map<String, Json>,
    },
    /// Changes a process's base priority.
    SetPriority {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The new priority.
        priority: i32,
    },
    /// Suspends a process, optionally for a period after which it resumes by itself.
    SuspendProcess {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Resume after this long (ISO 8601 duration).
        #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
        period: Option<String>,
    },
    /// Resumes a suspended process.
    ResumeProcess {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
    },
    /// Cancels a process.
    TerminateProcess {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Gives a process's current step to a user (a reassignment): a queued step is
    /// dispatched only to them, a running one is taken back and handed over.
    AssignOperator {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The user.
        user: String,
    },
    /// Allocates a resource instance to a process for its current step (on top of what
    /// the step requires); refused if it is not free.
    AllocateResource {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The resource instance.
        resource: String,
        /// Units (default 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quantity: Option<u32>,
    },
    /// Releases a resource a process holds.
    ReleaseResource {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The resource instance.
        resource: String,
    },
    /// Leaves the process's current step by a named transition, undone (an escalation).
    TakeTransition {
        /// An expression giving the pid (default: the event's process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The transition's name.
        transition: String,
    },
    /// Takes a treatment's consumables out of a branch's stock, first expiring first, in
    /// the step's (or the rule run's) transaction, under one reference per material (a
    /// retry takes nothing twice). The lots taken are kept under `bind` for the
    /// instructions after it (`used.lots`: `[{material, lot, lot_number, quantity}]`,
    /// `used.text`: `保妥适 C2911 ×50`) — so the treatment record can carry its lot
    /// numbers — and in the run's effects. Too little stock fails the step, and nothing
    /// moves.
    ConsumeStock {
        /// An expression giving the treatment's name (default: the visit's booked
        /// treatment, `context.booking.treatment`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        treatment: Option<String>,
        /// The branch whose stock is used (default: the visit's booked branch,
        /// `context.booking.branch`, else a walk-in's `context.branch`, so each branch's
        /// visits take their own stock).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// An expression giving the reference (default: `visit-<pid>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Name under which later instructions see what was taken.
        #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// Charges the visit (issue 14 §7) in the step's transaction, as `POST
    /// /api/v1/charges` would: each field is an expression, and what is left out comes
    /// from the process's context — `context.charge_type`, `context.account`,
    /// `context.course`, `context.method`, `context.discount`, `context.amount` (what the
    /// front desk sends with its handling), the booking's patient, treatment and id — with
    /// the reference `visit-<pid>`, so a retry never charges twice. A short balance or a
    /// used-up course fails the handling with its 409 and nothing is written; the charge
    /// is kept under `bind` for the instructions after it.
    Charge {
        /// 单次付清 `single`, 预充值 `prepaid`, 项目疗程 `course`, 年度套餐 `yearly`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charge_type: Option<String>,
        /// Whose (default: the booking's patient, else the bound record's id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
        /// The treatment (default: the booking's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        treatment: Option<String>,
        /// 应收, yuan (default: the treatment's price).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<String>,
        /// 优惠, yuan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        discount: Option<String>,
        /// The prepaid account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// The course whose session pays.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        course: Option<String>,
        /// How the desk was paid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The reference (default: `visit-<pid>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// When a course's session is deducted: `charge` (default) or `treatment` (the
        /// treatment step's `use_session` deducts it, so a patient who pays and leaves
        /// before her treatment keeps it). A literal, not an expression; a charge that
        /// pays money ignores it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_at: Option<crate::charge::SessionAt>,
        /// Name under which later instructions see the charge.
        #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// Deducts the course session that the visit's charge (reference `visit-<pid>`, or
    /// the expression `reference`) left for the treatment (`session_at: treatment`), in
    /// the step's transaction: the treatment step runs it when the doctor completes the
    /// treatment, and voiding the charge restores the session. A charge that pays no
    /// pending session (money, a session already used) owes nothing: the instruction
    /// does nothing. An expired or used-up course refuses the handling with its 409 and
    /// nothing is written; what was deducted is kept under `bind` (`{course, left, seq}`,
    /// or null).
    UseSession {
        /// An expression giving the charge's reference (default: `visit-<pid>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Name under which later instructions see the deduction.
        #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
        bind: Option<String>,
    },
    /// Notifies users: a title and a body rendered from `{{path}}` templates over the
    /// event, record and context; delivered through the outbox.
    Notify {
        /// User ids.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        to: Vec<String>,
        /// An expression giving more user ids (a string or an array).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_expr: Option<String>,
        /// Title template.
        title: String,
        /// Body template.
        #[serde(default)]
        body: String,
    },
    /// POSTs JSON to a URL through the outbox, signed with HMAC-SHA256 when a secret is
    /// given.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// The signing secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        /// The body (string values are templates); default: the event and the rule.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Json>,
    },
    /// Runs a Rhai script that may call the documented API (`create_record`,
    /// `update_record`, `start_service`, `signal_process`, `notify`, `log`) to add
    /// instructions.
    Script {
        /// The script.
        source: String,
    },
}

/// A value a human step's handler gives in `context` for its instructions to write into a
/// record's field: what `Instruction::context_inputs` finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContextInput {
    /// The context key the value is sent under.
    pub key: String,
    /// The DataItem whose field it fills (None: the process's bound record's).
    pub item: Option<String>,
    /// The field.
    pub field: String,
}

impl Instruction {
    /// The name the instruction binds its result under (`as`), if it binds one: later
    /// instructions see it, and a human step's handling keeps it in the process's context.
    pub fn binds(&self) -> Option<&str> {
        match self {
            Instruction::CreateRecord { bind, .. }
            | Instruction::ConsumeStock { bind, .. }
            | Instruction::Charge { bind, .. }
            | Instruction::UseSession { bind, .. } => bind.as_deref(),
            _ => None,
        }
    }

    /// What a handler types in for this instruction: each field of the record it creates or
    /// changes whose value is exactly `context.<key>` — the consent step's
    /// `signed_name: "context.signed_name"`. A console draws the field (its label and type
    /// from `item`, or from the bound record's DataItem when `item` is None) and sends the
    /// value as `context.<key>`; an error comes back at `/context/<key>`.
    pub fn context_inputs(&self) -> Vec<ContextInput> {
        let (item, compute) = match self {
            Instruction::CreateRecord { item, compute, .. } => (Some(item.clone()), compute),
            Instruction::UpdateRecord { item, compute, .. } => (item.clone(), compute),
            _ => return Vec::new(),
        };
        compute
            .iter()
            .filter_map(|(field, expr)| {
                let key = expr.trim().strip_prefix("context.")?;
                let plain = !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !key.starts_with(|c: char| c.is_ascii_digit());
                plain.then(|| ContextInput {
                    key: key.to_owned(),
                    item: item.clone(),
                    field: field.clone(),
                })
            })
            .collect()
    }

    /// The `op` name.
    pub fn op(&self) -> &'static str {
        match self {
            Instruction::CreateRecord { .. } => "create_record",
            Instruction::UpdateRecord { .. } => "update_record",
            Instruction::StartService { .. } => "start_service",
            Instruction::SignalProcess { .. } => "signal_process",
            Instruction::SetPriority { .. } => "set_priority",
            Instruction::SuspendProcess { .. } => "suspend_process",
            Instruction::ResumeProcess { .. } => "resume_process",
            Instruction::TerminateProcess { .. } => "terminate_process",
            Instruction::AssignOperator { .. } => "assign_operator",
            Instruction::AllocateResource { .. } => "allocate_resource",
            Instruction::ReleaseResource { .. } => "release_resource",
            Instruction::TakeTransition { .. } => "take_transition",
            Instruction::ConsumeStock { .. } => "consume_stock",
            Instruction::Charge { .. } => "charge",
            Instruction::UseSession { .. } => "use_session",
            Instruction::Notify { .. } => "notify",
            Instruction::Webhook { .. } => "webhook",
            Instruction::Script { .. } => "script",
        }
    }
}

fn yes() -> bool {
    true
}

/// A ServiceRule as analysts post it to `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRule {
    /// Identifier (derived from `label.zh` with pinyin when empty).
    #[serde(default)]
    pub name: String,
    /// Labels.
    pub label: Label,
    /// The event it listens for.
    pub event: EventPattern,
    /// A Rhai expression that must be true for the instructions to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What it does, in order.
    #[serde(default)]
    pub instructions: Vec<Instruction>,
    /// Disabled rules are kept but not evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Rules on the same event run highest priority first (then by name).
    #[serde(default)]
    pub priority: i32,
}

/// An event as the rules engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the event log.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The DataItem, service or signal name it is about.
    pub subject: Option<String>,
    /// The record it is about, if any.
    pub record_id: Option<String>,
    /// The process it is about, if any.
    pub pid: Option<u64>,
    /// When (ms since epoch).
    pub at_ms: i64,
    /// Everything else: `record`, `changed`, `step`, `from`, `to`, `context`, `rule`, …
    pub payload: Json,
    /// How many rule runs led to it (0: a person or the system); bounds rule cascades.
    pub depth: u32,
}

impl ServiceRule {
    /// Whether this rule listens for `event`.
    pub fn matches(&self, event: &Event) -> bool {
        let p = &self.event;
        if p.kind != Some(event.kind) {
            return false;
        }
        let payload_is = |key: &str, want: &Option<String>| {
            want.as_deref()
                .is_none_or(|w| event.payload.get(key).and_then(Json::as_str) == Some(w))
        };
        match event.kind {
            EventKind::Time => {
                event.payload.get("rule").and_then(Json::as_str) == Some(self.name.as_str())
            }
            k if k.is_record() => {
                p.item.as_deref() == event.subject.as_deref()
                    && (p.fields.is_empty()
                        || event
                            .payload
                            .get("changed")
                            .and_then(Json::as_array)
                            .is_some_and(|c| {
                                c.iter()
                                    .filter_map(Json::as_str)
                                    .any(|f| p.fields.iter().any(|w| w == f))
                            }))
            }
            EventKind::Signal => p.name.as_deref() == event.subject.as_deref(),
            _ => {
                p.service
                    .as_deref()
                    .is_none_or(|s| Some(s) == event.subject.as_deref())
                    && payload_is("step", &p.step)
                    && payload_is("from", &p.from)
                    && payload_is("to", &p.to)
            }
        }
    }
}

/// Parses a rule from JSON, every shape problem at its pointer.
pub fn parse_rule(json: &Json) -> Result<ServiceRule, DesignError> {
    read_rule(json).into_result(json)
}

/// Reads a rule from JSON as far as it can be read (see [`crate::shape`]): each instruction
/// on its own, every shape problem at its pointer.
pub fn read_rule(json: &Json) -> Reading<ServiceRule> {
    let mut shape = Shape::new();
    let mut top = json.clone();
    let instructions = shape.take_list(&mut top, "instructions", "/instructions", |s, v, at| {
        s.read(v, at, &[])
    });
    // "A time event needs exactly one of …" is about the whole pattern: with a part of it
    // unreadable, it would only repeat that part's problem.
    shape.depends("/event", "/event");
    let stand_ins = [
        ("label", stand_in_label()),
        ("event", serde_json::json!({})),
    ];
    let value = shape
        .read::<ServiceRule>(&top, "", &stand_ins)
        .map(|mut rule| {
            rule.instructions = instructions;
            rule
        });
    Reading { value, shape }
}

/// [`prepare_rule`] over a rule read from `body`: every shape problem and every problem of the
/// checks over what could be read, in one answer, in document order.
pub fn prepare_rule_reading(
    reading: Reading<ServiceRule>,
    body: &Json,
    catalog: &Catalog,
    directory: &Directory,
    check_cron: &dyn Fn(&str) -> Result<(), String>,
) -> Result<ServiceRule, DesignError> {
    reading.check(body, |rule, _| {
        prepare_rule(rule, catalog, directory, check_cron)
    })
}

/// Parses the instructions of an automatic step (stored as JSON in the service).
pub fn parse_instructions(list: &[Json], base: &str) -> Result<Vec<Instruction>, Vec<Issue>> {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for (i, json) in list.iter().enumerate() {
        match serde_path_to_error::deserialize::<_, Instruction>(json) {
            Ok(instruction) => out.push(instruction),
            Err(e) => {
                let inner = crate::error::serde_path_to_pointer(&e.path().to_string());
                issues.push(Issue::new(
                    format!("{base}/{i}{inner}"),
                    e.inner().to_string(),
                ));
            }
        }
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

const STATES: [&str; 6] = [
    "NEW",
    "READY",
    "RUNNING",
    "WAITING",
    "SUSPENDED",
    "TERMINATED",
];

/// Rule names that are paths of their own under `/api/v1/rules` (the quarantine of events
/// that keep failing): a rule by that name could never be read or changed at its path.
pub const RESERVED_RULE_NAMES: [&str; 1] = ["quarantine"];

/// Derives the name when absent and checks the whole rule against the catalog and the
/// known services; returns the rule as it will be stored or every problem at its pointer.
/// `check_cron` validates a cron expression (the kernel passes its scheduler's parser, so
/// that what is accepted here is exactly what fires).
pub fn prepare_rule(
    mut rule: ServiceRule,
    catalog: &Catalog,
    directory: &Directory,
    check_cron: &dyn Fn(&str) -> Result<(), String>,
) -> Result<ServiceRule, DesignError> {
    let mut issues = Vec::new();
    if rule.label.zh.trim().is_empty() {
        issues.push(Issue::new("/label/zh", "a Chinese label is required"));
    }
    if rule.name.is_empty() {
        rule.name = derive_identifier(&rule.label.zh);
    } else if !is_identifier(&rule.name) {
        issues.push(Issue::new(
            "/name",
            format!(
                "'{}' is not an identifier (lowercase letters, digits, _)",
                rule.name
            ),
        ));
    }
    if RESERVED_RULE_NAMES.contains(&rule.name.as_str()) {
        issues.push(Issue::new(
            "/name",
            format!(
                "'{}' is reserved (/api/v1/rules/{} is another resource): choose another name",
                rule.name, rule.name
            ),
        ));
    }
    check_pattern(&rule.event, catalog, directory, check_cron, &mut issues);
    let engine = condition_engine();
    // The record the rule's expressions read: the event's record (record and time events
    // name the item), else the process's bound record (its service's subject).
    let item = rule
        .event
        .item
        .as_deref()
        .or_else(|| directory.subject_of(rule.event.service.as_deref()?))
        .filter(|item| catalog.get(item).is_some());
    let keys = item.map(|item| catalog.record_keys(item));
    let record = item
        .zip(keys.as_ref())
        .map(|(item, keys)| Record { item, keys });
    if let Some(condition) = &rule.condition {
        check_condition(&engine, condition, "/condition".into(), record, &mut issues);
    }
    check_instructions(
        &rule.instructions,
        "/instructions",
        catalog,
        directory,
        record,
        &mut issues,
    );
    if issues.is_empty() {
        Ok(rule)
    } else {
        Err(DesignError::InvalidDefinition(issues))
    }
}

fn check_pattern(
    p: &EventPattern,
    catalog: &Catalog,
    directory: &Directory,
    check_cron: &dyn Fn(&str) -> Result<(), String>,
    issues: &mut Vec<Issue>,
) {
    let Some(kind) = p.kind else {
        let kinds: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        issues.push(Issue::new(
            "/event/kind",
            format!("an event kind is required, one of {}", kinds.join(", ")),
        ));
        return;
    };
    let given: [(&str, bool); 12] = [
        ("item", p.item.is_some()),
        ("fields", !p.fields.is_empty()),
        ("service", p.service.is_some()),
        ("step", p.step.is_some()),
        ("from", p.from.is_some()),
        ("to", p.to.is_some()),
        ("name", p.name.is_some()),
        ("cron", p.cron.is_some()),
        ("at", p.at.is_some()),
        ("field", p.field.is_some()),
        ("offset", p.offset.is_some()),
        ("at_time", p.at_time.is_some()),
    ];
    let allowed: &[&str] = match kind {
        EventKind::RecordCreated | EventKind::RecordDeleted => &["item"],
        EventKind::RecordUpdated => &["item", "fields"],
        EventKind::ProcessStateChanged => &["service", "step", "from", "to"],
        EventKind::StepEntered
        | EventKind::StepLeft
        | EventKind::DeadlineWarning
        | EventKind::DeadlinePassed => &["service", "step"],
        EventKind::Signal => &["name"],
        EventKind::Time => &["cron", "at", "item", "field", "offset", "at_time"],
    };
    for (key, present) in given {
        if present && !allowed.contains(&key) {
            issues.push(Issue::new(
                format!("/event/{key}"),
                format!("'{key}' does not apply to '{}' events", kind.as_str()),
            ));
        }
    }
    if let Some(m) = p.utc_offset_minutes
        && !(-14 * 60..=14 * 60).contains(&m)
    {
        issues.push(Issue::new(
            "/event/utc_offset_minutes",
            "must be between -840 and 840",
        ));
    }
    let check_item = |issues: &mut Vec<Issue>| -> bool {
        match p.item.as_deref() {
            None => {
                issues.push(Issue::new("/event/item", "the DataItem is required"));
                false
            }
            Some(item) if catalog.get(item).is_none() => {
                issues.push(Issue::new(
                    "/event/item",
                    format!("no DataItem named '{item}'"),
                ));
                false
            }
            Some(_) => true,
        }
    };
    if kind.is_record() && check_item(issues) {
        let fields = catalog.effective_fields(p.item.as_deref().unwrap_or_default());
        for (i, f) in p.fields.iter().enumerate() {
            if !fields.iter().any(|e| &e.field.name == f) {
                issues.push(Issue::new(
                    format!("/event/fields/{i}"),
                    format!(
                        "'{f}' is not a field of '{}'",
                        p.item.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    if let Some(service) = &p.service {
        directory.check(Kind::Service, service, "/event/service", issues);
    }
    for (key, value) in [("from", &p.from), ("to", &p.to)] {
        if let Some(v) = value
            && !STATES.contains(&v.as_str())
        {
            issues.push(Issue::new(
                format!("/event/{key}"),
                format!("'{v}' is not a state (one of {})", STATES.join(", ")),
            ));
        }
    }
    if kind == EventKind::Signal {
        match p.name.as_deref() {
            Some(n) if is_identifier(n) => {}
            Some(n) => issues.push(Issue::new(
                "/event/name",
                format!("'{n}' is not an identifier (lowercase letters, digits, _)"),
            )),
            None => issues.push(Issue::new("/event/name", "the signal's name is required")),
        }
    }
    if kind == EventKind::Time {
        check_time(p, catalog, check_cron, issues, check_item);
    }
}

fn check_time(
    p: &EventPattern,
    catalog: &Catalog,
    check_cron: &dyn Fn(&str) -> Result<(), String>,
    issues: &mut Vec<Issue>,
    check_item: impl Fn(&mut Vec<Issue>) -> bool,
) {
    let ways = [p.cron.is_some(), p.at.is_some(), p.field.is_some()];
    if ways.iter().filter(|w| **w).count() != 1 {
        issues.push(Issue::new(
            "/event",
            "a time event needs exactly one of 'cron', 'at', or 'item' + 'field' (+ 'offset')",
        ));
        return;
    }
    if let Some(cron) = &p.cron
        && let Err(e) = check_cron(cron)
    {
        issues.push(Issue::new("/event/cron", e));
    }
    if let Some(at) = &p.at
        && crate::value::parse_datetime(at).is_none()
    {
        issues.push(Issue::new(
            "/event/at",
            format!("'{at}' is not an RFC 3339 time"),
        ));
    }
    if let Some(field) = &p.field {
        if check_item(issues) {
            let item = p.item.as_deref().unwrap_or_default();
            match catalog
                .effective_fields(item)
                .iter()
                .find(|e| &e.field.name == field)
                .map(|e| e.field.field_type)
            {
                Some(FieldType::Date | FieldType::Datetime) => {}
                Some(t) => issues.push(Issue::new(
                    "/event/field",
                    format!("'{field}' is a {t:?} field; a time needs a date or datetime"),
                )),
                None => issues.push(Issue::new(
                    "/event/field",
                    format!("'{field}' is not a field of '{item}'"),
                )),
            }
        }
        if let Some(offset) = &p.offset
            && signed_duration_ms(offset).is_none()
        {
            issues.push(Issue::new(
                "/event/offset",
                format!("'{offset}' is not an ISO 8601 duration such as P7D or -PT2H"),
            ));
        }
        if let Some(t) = &p.at_time
            && time_of_day_ms(t).is_none()
        {
            issues.push(Issue::new(
                "/event/at_time",
                format!("'{t}' is not a time of day such as 09:00"),
            ));
        }
    } else if p.item.is_some() || p.offset.is_some() || p.at_time.is_some() {
        issues.push(Issue::new(
            "/event",
            "'item', 'offset' and 'at_time' go with 'field'",
        ));
    }
}

/// Checks instructions (of a rule or an automatic step) at `base`.
pub fn check_instructions(
    list: &[Instruction],
    base: &str,
    catalog: &Catalog,
    directory: &Directory,
    record: Option<Record<'_>>,
    issues: &mut Vec<Issue>,
) {
    let engine = condition_engine();
    for (i, ins) in list.iter().enumerate() {
        let at = |key: &str| format!("{base}/{i}/{key}");
        let expr = |key: &str, e: &Option<String>, issues: &mut Vec<Issue>| {
            if let Some(e) = e {
                check_condition(&engine, e, at(key), record, issues);
            }
        };
        let computed = |c: &BTreeMap<String, String>, issues: &mut Vec<Issue>| {
            for (k, e) in c {
                check_condition(&engine, e, at(&format!("compute/{k}")), record, issues);
            }
        };
        let fields_of = |item: &str, names: Vec<&String>, issues: &mut Vec<Issue>| {
            if catalog.get(item).is_none() {
                issues.push(Issue::new(
                    at("item"),
                    format!("no DataItem named '{item}'"),
                ));
                return;
            }
            let fields = catalog.effective_fields(item);
            for name in names {
                if !fields.iter().any(|e| &e.field.name == name) {
                    issues.push(Issue::new(
                        at("set"),
                        format!("'{name}' is not a field of '{item}'"),
                    ));
                }
            }
        };
        let duration = |key: &str, d: &Option<String>, issues: &mut Vec<Issue>| {
            if let Some(d) = d
                && parse_iso_duration(d).is_none()
            {
                issues.push(Issue::new(
                    at(key),
                    format!("'{d}' is not an ISO 8601 duration such as PT2H"),
                ));
            }
        };
        match ins {
            Instruction::CreateRecord {
                item, set, compute, ..
            } => {
                fields_of(item, set.keys().chain(compute.keys()).collect(), issues);
                computed(compute, issues);
            }
            Instruction::UpdateRecord {
                item,
                id,
                set,
                compute,
            } => {
                if let Some(item) = item {
                    fields_of(item, set.keys().chain(compute.keys()).collect(), issues);
                }
                if id.is_some() && item.is_none() {
                    issues.push(Issue::new(at("id"), "an 'id' needs its 'item'"));
                }
                if set.is_empty() && compute.is_empty() {
                    issues.push(Issue::new(at("set"), "nothing to update"));
                }
                expr("id", id, issues);
                computed(compute, issues);
            }
            Instruction::StartService {
                service,
                record,
                compute,
                delay,
                ..
            } => {
                directory.check(Kind::Service, service, at("service"), issues);
                expr("record", record, issues);
                computed(compute, issues);
                duration("delay", delay, issues);
            }
            Instruction::SignalProcess {
                process, signal, ..
            } => {
                expr("process", process, issues);
                if !is_identifier(signal) {
                    issues.push(Issue::new(
                        at("signal"),
                        format!("'{signal}' is not an identifier"),
                    ));
                } else if !directory.knows(Kind::Signal, signal) {
                    let mut message = directory.unknown(Kind::Signal, signal);
                    message.push_str(": no service has a wait step for it");
                    issues.push(Issue::new(at("signal"), message));
                }
            }
            Instruction::SetPriority { process, .. }
            | Instruction::ResumeProcess { process }
            | Instruction::TerminateProcess { process, .. }
            | Instruction::TakeTransition { process, .. } => expr("process", process, issues),
            Instruction::AssignOperator { process, user } => {
                expr("process", process, issues);
                directory.check(Kind::User, user, at("user"), issues);
            }
            Instruction::ReleaseResource { process, resource } => {
                expr("process", process, issues);
                directory.check(Kind::Resource, resource, at("resource"), issues);
            }
            Instruction::AllocateResource {
                process,
                quantity,
                resource,
            } => {
                expr("process", process, issues);
                directory.check(Kind::Resource, resource, at("resource"), issues);
                if *quantity == Some(0) {
                    issues.push(Issue::new(at("quantity"), "at least 1"));
                }
            }
            Instruction::SuspendProcess {
                process, period, ..
            } => {
                expr("process", process, issues);
                duration("for", period, issues);
            }
            Instruction::Notify {
                to, to_expr, title, ..
            } => {
                if to.is_empty() && to_expr.is_none() {
                    issues.push(Issue::new(at("to"), "say who: 'to' or 'to_expr'"));
                }
                for (j, user) in to.iter().enumerate() {
                    directory.check(Kind::User, user, at(&format!("to/{j}")), issues);
                }
                if title.trim().is_empty() {
                    issues.push(Issue::new(at("title"), "a title is required"));
                }
                expr("to_expr", to_expr, issues);
            }
            Instruction::ConsumeStock {
                treatment,
                branch,
                reference,
                ..
            } => {
                expr("treatment", treatment, issues);
                expr("reference", reference, issues);
                if let Some(branch) = branch
                    && !crate::naming::is_identifier(branch)
                {
                    issues.push(Issue::new(
                        at("branch"),
                        format!("'{branch}' is not a branch identifier"),
                    ));
                }
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
                ..
            } => {
                for (key, e) in [
                    ("charge_type", charge_type),
                    ("holder", holder),
                    ("treatment", treatment),
                    ("amount", amount),
                    ("discount", discount),
                    ("account", account),
                    ("course", course),
                    ("method", method),
                    ("reference", reference),
                ] {
                    expr(key, e, issues);
                }
            }
            Instruction::UseSession { reference, .. } => expr("reference", reference, issues),
            Instruction::Webhook { url, .. } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                    issues.push(Issue::new(
                        at("url"),
                        format!("'{url}' is not an http:// or https:// URL"),
                    ));
                }
            }
            Instruction::Script { source } => {
                if let Err(e) = engine.compile(source) {
                    issues.push(Issue::new(
                        at("source"),
                        format!("the script does not compile: {e}"),
                    ));
                } else if let Some(record) = record {
                    record.check(&engine, source, &at("source"), issues);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// No service exists; other kinds are not checked here.
    fn no_services() -> Directory {
        Directory::unchecked().with(Kind::Service, [])
    }

    fn any_cron(_: &str) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_field_computed_straight_from_the_context_is_the_handlers_input() {
        let ins = parse_instructions(
            &[
                json!({"op": "create_record", "item": "consent_form", "compute": {
                    "patient": "record.id",
                    "signed_name": "context.signed_name",
                    "risks": " context.risks ",
                    "treatment": "if \"booking\" in context { context.booking.treatment } else { context.treatment }",
                    "odd": "context.a.b"
                }}),
                json!({"op": "update_record", "compute": {"notes": "context.note"}}),
                json!({"op": "set_priority", "priority": 3}),
            ],
            "",
        )
        .unwrap();
        let found: Vec<_> = ins.iter().flat_map(Instruction::context_inputs).collect();
        let seen: Vec<_> = found
            .iter()
            .map(|i| (i.key.as_str(), i.item.as_deref(), i.field.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("risks", Some("consent_form"), "risks"),
                ("signed_name", Some("consent_form"), "signed_name"),
                ("note", None, "notes"),
            ]
        );
    }

    #[test]
    fn unknown_ops_and_keys_are_refused_at_their_pointer() {
        let e = parse_instructions(
            &[json!({"op": "update_record", "set": {}, "sett": 1})],
            "/steps/3/instructions",
        )
        .unwrap_err();
        assert_eq!(e[0].path, "/steps/3/instructions/0");
        assert!(e[0].message.contains("sett"), "{}", e[0].message);
        let e = parse_instructions(&[json!({"op": "launch_rockets"})], "").unwrap_err();
        assert!(e[0].message.contains("launch_rockets"));
    }

    #[test]
    fn consuming_stock_names_a_branch_and_valid_expressions() {
        let catalog = Catalog::default();
        let rule: ServiceRule = serde_json::from_value(json!({
            "label": {"zh": "耗材出库"}, "event": {"kind": "signal", "name": "treated"},
            "instructions": [{"op": "consume_stock", "branch": "Xu Hui", "treatment": "context.(", "as": "used"}]
        }))
        .unwrap();
        let DesignError::InvalidDefinition(issues) =
            prepare_rule(rule, &catalog, &no_services(), &any_cron).unwrap_err()
        else {
            panic!()
        };
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"/instructions/0/branch"), "{issues:?}");
        assert!(paths.contains(&"/instructions/0/treatment"), "{issues:?}");
    }

    #[test]
    fn a_time_pattern_needs_exactly_one_schedule() {
        let catalog = Catalog::default();
        let rule: ServiceRule = serde_json::from_value(json!({
            "label": {"zh": "提醒"}, "event": {"kind": "time", "cron": "0 9 * * *", "at": "2026-11-21T09:00:00Z"}
        }))
        .unwrap();
        let DesignError::InvalidDefinition(issues) =
            prepare_rule(rule, &catalog, &no_services(), &any_cron).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(issues[0].path, "/event");
    }

    #[test]
    fn a_rule_may_not_take_the_quarantine_s_path_as_its_name() {
        let rule: ServiceRule = serde_json::from_value(json!({
            "name": "quarantine", "label": {"zh": "隔离"}, "event": {"kind": "signal", "name": "x"}
        }))
        .unwrap();
        let DesignError::InvalidDefinition(issues) =
            prepare_rule(rule, &Catalog::default(), &no_services(), &any_cron).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(issues[0].path, "/name");
        assert!(
            issues[0].message.contains("reserved"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn signed_durations() {
        assert_eq!(signed_duration_ms("P7D"), Some(7 * 86_400_000));
        assert_eq!(signed_duration_ms("-PT2H"), Some(-7_200_000));
        assert_eq!(signed_duration_ms("7D"), None);
        assert_eq!(time_of_day_ms("09:30"), Some(34_200_000));
        assert_eq!(time_of_day_ms("24:00"), None);
    }
}
