//! Services: business processes as analysts define them — a graph of steps joined by
//! transitions — which the kernel runs as process control blocks.
//!
//! A step is a human task, an automatic step (Instructions), a wait (event or timer), a
//! sub-service (a child process), an exclusive gateway, a parallel split or join, or an end.
//! Each step names who may act (its operator rule), what it needs (resource requirements),
//! how long it takes and its deadline. Transitions carry Rhai conditions over the process
//! context and the bound record. This module only describes; validation is in
//! `service_check`, drawing in `flowchart`, running in the kernel.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::directory::{Kind, Use};
use crate::label::Label;

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A person handles a task (dispatched to an operator, maybe with resources).
    Human,
    /// The kernel runs the step's Instructions.
    Automatic,
    /// The process waits for an event or a timer.
    Wait,
    /// A child process of another service runs; this one waits for it.
    SubService,
    /// Exactly one outgoing transition is taken: the first whose condition holds, else the default.
    Exclusive,
    /// Every outgoing transition is taken at once (parallel split).
    Parallel,
    /// Waits until every incoming branch has arrived (parallel join).
    Join,
    /// The process completes.
    End,
}

impl StepKind {
    /// Whether the step needs an operator to be dispatched (and so can hold resources).
    pub fn is_dispatched(self) -> bool {
        matches!(self, StepKind::Human | StepKind::Automatic)
    }
}

/// How an operator is chosen among the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperatorPolicy {
    /// The candidate with the fewest running tasks.
    #[default]
    LeastLoaded,
    /// Candidates in turn.
    RoundRobin,
    /// Any candidate, at random.
    Random,
    /// Every candidate gets a work item and must act (countersign, a committee): the step
    /// completes by `quorum` agrees, or is rejected by any reject.
    All,
    /// Every candidate sees the work item; the first to claim it handles it (loonflow's 接单).
    Claim,
}

/// Who may handle a step: resolved against the organisation at run time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorRule {
    /// Users holding this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Users holding this skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// This user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// These users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// A Rhai expression yielding user names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Members of this department or of any department below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// The field of the bound record that names the user (`doctor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The context variable a previous handler set to a user id or a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
    /// The user who started the process (an applicant editing a returned request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creator: bool,
    /// The leader of the creator's department.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creator_leader: bool,
    /// How one operator is chosen.
    #[serde(default)]
    pub policy: OperatorPolicy,
    /// With policy `all`: how many agrees complete the step (default: every candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
}

/// What a person handling a step may do with one field of the bound record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    /// Editable, and must have a value when a transition that checks it is taken.
    Required,
    /// Editable.
    Optional,
    /// Shown, not editable.
    Readonly,
    /// Not shown to the handler at this step.
    Hidden,
}

/// A notification sent at a step, with `{{path}}` placeholders over the process
/// (`{{serial}}`, `{{record.days}}`, `{{step}}`, `{{user}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeTemplate {
    /// The title.
    pub title: String,
    /// The body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

/// The notifications of a human step, delivered through the outbox to users' inboxes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepNotices {
    /// To each person the step becomes a to-do for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub todo: Option<NoticeTemplate>,
    /// To the people holding the step when its deadline passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<NoticeTemplate>,
    /// To the creator when the step is handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<NoticeTemplate>,
}

/// One resource a step needs while it runs (a room, a device, a consumable, money).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRequirement {
    /// The resource type (`laser_room`, `laser_device`, `botox_unit`).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// How many units.
    #[serde(default = "one")]
    pub quantity: u32,
    /// A skill or certification the resource instance must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// How long it is held (defaults to the step's duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// Keep the resource while the process waits inside this step (default: release it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold_while_waiting: bool,
}

fn one() -> u32 {
    1
}

/// What a wait step waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// A named event (a signal to the process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A delay from entering the step, as an ISO 8601 duration (`PT10M`, `P7D`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// A Rhai expression giving the instant to wait until (`record.appointment_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

pub use crate::serial::SerialSpec;

fn yes() -> bool {
    true
}

/// One step of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's identifier, unique in the service.
    pub name: String,
    /// What the step is.
    pub kind: StepKind,
    /// What staff see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// Who may handle it (human and automatic steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operators: Option<OperatorRule>,
    /// What it needs, all allocated together or not at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceRequirement>,
    /// How long the work takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// When it must be done, from entering it (ISO 8601 duration, `PT2H`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// The service a `sub_service` step starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The Instructions an automatic step runs (see the rules engine): typed here, so
    /// they are parsed once, when the service is saved, not every time the step runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<crate::rule::Instruction>,
    /// What a wait step waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitSpec>,
    /// The DataItem form shown at this step, with per-step field rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Json>,
    /// What the handler may do with each field of the bound record at this step (fields
    /// not listed are read-only).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, FieldAccess>,
    /// Notifications (to-do, timeout, finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<StepNotices>,
    /// The working calendar the deadline is counted in (default: the `organisation`
    /// calendar if one is defined, else every hour counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// What happens as the deadline nears and when it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// What a `sub_service` step's service gives back: each key of the caller's context
    /// takes the value of the named context variable of the child when it completes
    /// (`{"zhenduan": "diagnosis"}`). Iterated, the key takes the list of every child's
    /// value, in the order of the iteration (null for a child that did not complete).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
    /// Return to the caller early: when a process called as a sub-service enters this
    /// step, its caller takes the outputs from its context as it is then and goes on, while
    /// this process carries on to its end on its own (a consultation hands the visit its
    /// diagnosis, then finishes its notes). Cancelling the caller no longer cancels it.
    /// Without a caller, nothing happens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub returns: bool,
    /// Runs a `sub_service` step's service once per entry of a list or N times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterate: Option<Iterate>,
    /// Dispatched onto the visit's booking: when the process was started by a booking
    /// (`context.booking`, set by the kernel), this step is given to the booked
    /// practitioner and holds exactly the booked rooms and devices (on top of its own
    /// `resources`), so the time reserved weeks ahead is the time the work runs on. A
    /// process without a booking (a walk-in) is dispatched by the step's own rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub booked: bool,
    /// What must hold before the step can start (human and automatic steps): each
    /// condition is evaluated over the record and the context when the process enters the
    /// step, by any way (a transition, a jump, a reschedule). When one does not hold the
    /// process does not queue: it WAITs, showing the requirement's label, until someone
    /// moves it (the clinic's treatment needs `"consent" in context`, the signed consent
    /// form the nurse's step binds there and no caller can set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Requirement>,
}

/// The most requirements one step may declare (each is evaluated whenever a process
/// enters it).
pub const MAX_REQUIREMENTS: usize = 16;

/// A condition a step needs before it starts, with what staff are told when it does not
/// hold (`缺少已签署的知情同意书`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A Rhai condition over `record` and `context`.
    pub condition: String,
    /// What the waiting process shows (default: the condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
}

/// How a `sub_service` step iterates its service: over a list (`over`, an expression over
/// the caller's context and record) or `times` times; one child after the other, or all at
/// once (`parallel`); and, optionally, when it is done before every child has run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Iterate {
    /// An expression giving the list (`context.treatments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<String>,
    /// Run this many times (1 to [`MAX_ITERATIONS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Start every child at once (default: one after the other).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parallel: bool,
    /// The context variable each child sees its entry as (default `item`); it also sees
    /// `index`, counted from 0.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Done early: evaluated over the caller (its context carries the outputs gathered so
    /// far) after each child completes; when it holds, children not started are not
    /// started, those still running are cancelled, and the caller goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_when: Option<String>,
}

/// The most children one iterating step may run.
pub const MAX_ITERATIONS: u32 = 1000;

/// A step's escalation: a warning before its deadline, and on expiry any of notify,
/// raise the priority, reassign, take a named transition (in that order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Warn this long before the deadline (ISO 8601 duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before: Option<String>,
    /// Users told at the warning and at expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// The process's new priority at expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_priority: Option<i32>,
    /// The user who takes the step over at expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassign: Option<String>,
    /// The named transition taken at expiry (leaving the step undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
}

/// What a transition means to the person taking it (loonflow's agree / reject / other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionAttribute {
    /// Approve / go forward.
    Agree,
    /// Reject / send back.
    Reject,
    /// Anything else.
    Other,
}

/// A move from one step to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// The step it leaves.
    pub from: String,
    /// The step it enters.
    pub to: String,
    /// A name a person chooses it by (defaults to the target step's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What staff see on the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// A Rhai condition over `context` and `record`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Taken by an exclusive gateway when no condition holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Agree / reject / other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<TransitionAttribute>,
    /// Whether the step's required fields must have values to take it (default yes; a
    /// reject usually says no).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub check_required: bool,
}

fn is_true(v: &bool) -> bool {
    *v
}

impl Transition {
    /// The name a person or an API call chooses this transition by.
    pub fn key(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.to)
    }
}

/// A service definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The identifier (derived from `label.zh` when absent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// What staff see.
    pub label: Label,
    /// The DataItem whose record a process of this service is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The base priority of its processes (higher runs first; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The steps; the first is where a process starts.
    pub steps: Vec<Step>,
    /// The transitions.
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// The version, set by the kernel when published.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u32,
    /// How processes of this service are numbered for people (`LEAVE-20261121-0007`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialSpec>,
    /// Who may start one: a Rhai expression over `user` (`id`, `roles`, `department`) and
    /// `started` (this user's processes of the service: `today`, `this_month`,
    /// `last_30_days`, `open`), e.g. `started.this_month < 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_start: Option<String>,
    /// The work-order view: the fields of the bound record a work list shows for each of
    /// its processes, in this order (`["xingming", "xiangmu", "yuyue_shijian"]`), so a
    /// nurse's to-do list reads as the clinic's work orders, not as process numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Service {
    /// Every organisation, resource, calendar and service name a service uses, with where.
    /// The one list both directions read: saving checks each exists, and removing a role (a
    /// skill, a calendar, …) asks which services still use it.
    pub fn uses(&self) -> Vec<Use> {
        let mut out = Vec::new();
        let mut add = |kind: Kind, name: &str, at: String| {
            out.push(Use {
                kind,
                name: name.to_owned(),
                at,
            })
        };
        for (i, step) in self.steps.iter().enumerate() {
            let at = |key: &str| format!("/steps/{i}/{key}");
            if let Some(calendar) = &step.calendar {
                add(Kind::Calendar, calendar, at("calendar"));
            }
            if let Some(called) = &step.service {
                add(Kind::Service, called, at("service"));
            }
            for (k, r) in step.resources.iter().enumerate() {
                add(
                    Kind::ResourceType,
                    &r.resource_type,
                    at(&format!("resources/{k}/type")),
                );
                if let Some(skill) = &r.skill {
                    add(Kind::Skill, skill, at(&format!("resources/{k}/skill")));
                }
            }
            if let Some(o) = &step.operators {
                let named = [
                    (Kind::Role, &o.role, "role"),
                    (Kind::Skill, &o.skill, "skill"),
                    (Kind::User, &o.user, "user"),
                    (Kind::Department, &o.department, "department"),
                ];
                for (kind, name, key) in named {
                    if let Some(name) = name {
                        add(kind, name, at(&format!("operators/{key}")));
                    }
                }
                for (j, user) in o.users.iter().enumerate() {
                    add(Kind::User, user, at(&format!("operators/users/{j}")));
                }
            }
            if let Some(e) = &step.escalation {
                for (j, user) in e.notify.iter().enumerate() {
                    add(Kind::User, user, at(&format!("escalation/notify/{j}")));
                }
                if let Some(user) = &e.reassign {
                    add(Kind::User, user, at("escalation/reassign"));
                }
            }
        }
        out
    }

    /// The context keys only the kernel writes, each with the step that writes it: what a
    /// human step's instructions bind (`as`), kept in the context when it is handled (the
    /// signed consent form, the visit's charge). A caller setting one would forge what
    /// a later step relies on (the treatment's `requires`), so it is refused.
    pub fn kernel_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps
            .iter()
            .filter(|s| s.kind == StepKind::Human)
            .flat_map(|s| {
                s.instructions
                    .iter()
                    .filter_map(move |i| i.binds().map(|b| (b, s.name.as_str())))
            })
    }

    /// The step with this name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The step a process starts at.
    pub fn start(&self) -> Option<&Step> {
        self.steps.first()
    }

    /// The transitions leaving `step`, in declaration order.
    pub fn outgoing<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions.iter().filter(move |t| t.from == step)
    }

    /// The transitions entering `step`.
    pub fn incoming<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions.iter().filter(move |t| t.to == step)
    }
}

/// Test fixtures shared by the design layer's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde_json::{Value as Json, json};

    /// The clinic's treatment visit, as ENGINEERING.md posts it.
    pub fn clinic_json() -> Json {
        json!({
          "name": "treatment_visit",
          "label": {"zh": "治疗就诊", "en": "Treatment visit"},
          "subject": "appointment",
          "steps": [
            {"name": "checkin", "kind": "human", "label": {"zh": "到诊登记"}, "operators": {"role": "front_desk"}},
            {"name": "route", "kind": "exclusive"},
            {"name": "consult", "kind": "sub_service", "service": "consultation"},
            {"name": "treat", "kind": "human", "operators": {"skill": "laser", "policy": "least_loaded"},
             "resources": [{"type": "laser_room", "quantity": 1}, {"type": "laser_device", "quantity": 1}],
             "duration_minutes": 45, "deadline": "PT2H"},
            {"name": "bill", "kind": "automatic", "instructions": [{"op": "update_record", "set": {"billed": true}}]},
            {"name": "end", "kind": "end"}
          ],
          "transitions": [
            {"from": "checkin", "to": "route"},
            {"from": "route", "to": "consult", "condition": "record.first_visit == true"},
            {"from": "route", "to": "treat", "default": true},
            {"from": "consult", "to": "treat"},
            {"from": "treat", "to": "bill", "attribute": "agree"},
            {"from": "bill", "to": "end"}
          ]
        })
    }
}
