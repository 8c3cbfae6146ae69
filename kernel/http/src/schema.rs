//! The wire shapes of the API's bodies, for the OpenAPI document only.
//!
//! Handlers build most answers as JSON (`json!`), and parse most bodies by hand so that
//! each problem is named at its pointer; these types describe exactly those shapes so that
//! a client generator (openapi-typescript, openapi-generator) and schemathesis see what the
//! handlers really send and accept. Where a handler sends or reads a typed value as it is
//! (a DataItem, a Service, a ServiceRule, a WorkingCalendar, a process state…), the schema
//! is that type's own derived one, not a copy. Nothing here is ever constructed: the
//! structs exist for their `ToSchema` derive, and `kernel/http/tests/openapi_doc.rs` checks real
//! answers against them, so a handler that changes its shape fails there. This module must
//! never describe a field a handler does not send as required, nor a nullable one as not
//! nullable.

// Schema-only types: never built, only derived from.
#![allow(dead_code)]

use std::collections::BTreeMap;

use erpos_design::{DataItem, Label};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use erpos_kernel::scheduler::pcb::{
    Allocation, ExitStatus, ItemRole, ItemState, ProcessState, WaitReason,
};

/// `schema` (an object's) with more properties: for answers that add keys to a typed
/// value (a DataItem with its pending change). The base's `additionalProperties: false`
/// stays, so the extended schema is as strict as the type it extends.
fn extend(base: RefOr<Schema>, extra: Vec<(&str, RefOr<Schema>, bool)>) -> RefOr<Schema> {
    match base {
        RefOr::T(Schema::Object(mut object)) => {
            for (name, schema, required) in extra {
                object.properties.insert(name.to_owned(), schema);
                if required {
                    object.required.push(name.to_owned());
                }
            }
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

/// A schema that may also be `null`.
fn nullable(schema: RefOr<Schema>) -> RefOr<Schema> {
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(schema)
        .into()
}

/// A list of strings.
fn strings() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .into()
}

/// One record of a DataItem as the records API shows it: its fields by name (composed
/// children under the child DataItem's name, as lists or one object), with the stamps
/// every record carries. Fields the caller may not read are left out.
pub struct Record;

impl PartialSchema for Record {
    fn schema() -> RefOr<Schema> {
        let datetime = || {
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
                    Type::String,
                    Type::Null,
                ]))
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A record: its fields by name, composed children under the child DataItem's name, and the stamps `id`, `version`, `created_at`, `updated_at`."))
            .property("id", ObjectBuilder::new().schema_type(Type::String).description(Some("The record's id (a UUID).")))
            .property("version", ObjectBuilder::new().schema_type(Type::Integer).description(Some("Incremented by every change; send it back with a patch.")))
            .property("created_at", datetime())
            .property("updated_at", datetime())
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
            .examples([serde_json::json!({"id": "0192f5c1-7d3e-7c2a-9b1e-3f5d8a2c4b10", "xingming": "张三", "age": 31, "version": 1, "created_at": "2026-11-28T09:00:00Z", "updated_at": "2026-11-28T09:00:00Z"})])
            .into()
    }
}

impl ToSchema for Record {}

/// A record as it is posted or patched: a flat object keyed by field names
/// (`{"xingming": "张三", "age": 31}`), composed children under the child DataItem's name.
/// The DataItem's own JSON Schema (`GET /data-items/{name}/form`) says which keys it takes.
pub struct RecordInput;

impl PartialSchema for RecordInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The record's fields by name; the DataItem's form schema (GET /data-items/{name}/form) says which."))
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
            .examples([serde_json::json!({"xingming": "张三", "age": 31})])
            .into()
    }
}

impl ToSchema for RecordInput {}

// ---------------------------------------------------------------------------------------
// design: DataItems and services

/// `GET /data-items`: every DataItem definition.
#[derive(ToSchema)]
pub struct DataItemList {
    /// The definitions, by name.
    items: Vec<DataItem>,
    /// How many there are.
    total: u64,
    /// Always null: the list comes whole.
    next_cursor: Option<String>,
}

/// A DataItem with its pending change (null when there is none) and the DataItems that
/// extend it, at any depth.
pub struct DataItemShown;

impl PartialSchema for DataItemShown {
    fn schema() -> RefOr<Schema> {
        extend(
            <DataItem as PartialSchema>::schema(),
            vec![
                (
                    "pending_change",
                    nullable(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "DataItem",
                    ))),
                    true,
                ),
                ("descendants", strings(), true),
            ],
        )
    }
}

impl ToSchema for DataItemShown {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("DataItem".into(), <DataItem as PartialSchema>::schema()));
        <DataItem as ToSchema>::schemas(schemas);
    }
}

/// `PUT /data-items/{name}`: the stored pending change and its migration plan.
#[derive(ToSchema)]
pub struct Proposal {
    /// The definition proposed (names derived), not yet applied.
    pending_change: DataItem,
    /// What applying it would do.
    plan: erpos_design::MigrationPlan,
}

/// `POST /data-items/{name}/migration`: the definition now in force and what was done.
#[derive(ToSchema)]
pub struct Migrated {
    /// The definition now in force.
    data_item: DataItem,
    /// The steps applied.
    applied: erpos_design::MigrationPlan,
}

/// `GET /data-items/{name}/form`: the JSON Schemas that validate writes, and the layout.
#[derive(ToSchema)]
pub struct Form {
    /// The DataItem.
    item: String,
    /// JSON Schema (draft 2020-12) a created record must satisfy.
    #[schema(value_type = Object)]
    schema: Value,
    /// JSON Schema a patch must satisfy (nothing required).
    #[schema(value_type = Object)]
    patch_schema: Value,
    /// Sections of inputs, in order.
    layout: Vec<erpos_design::form::LayoutSection>,
}

/// One service as the list shows it.
#[derive(ToSchema)]
pub struct ServiceSummary {
    /// The service's name.
    name: String,
    /// Its label (the newest published version's, else the draft's).
    label: Option<Label>,
    /// The newest published version; null when only a draft exists.
    version: Option<u32>,
    /// Whether a draft is stored.
    has_draft: bool,
}

/// `GET /services`.
#[derive(ToSchema)]
pub struct ServiceList {
    /// The services.
    items: Vec<ServiceSummary>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `GET /services/{name}`: the draft, the newest published version and every version.
#[derive(ToSchema)]
pub struct ServiceShown {
    /// The service's name.
    name: String,
    /// The draft, if one is stored (secrets masked).
    draft: Option<erpos_design::service::Service>,
    /// The newest published version, if any (secrets masked).
    published: Option<erpos_design::service::Service>,
    /// Every published version number, oldest first.
    versions: Vec<u32>,
    /// Every published version with when, by whom and its notes, oldest first.
    releases: Vec<erpos_kernel::store::services::Release>,
}

// ---------------------------------------------------------------------------------------
// records

/// `GET /records/{item}`: one page of records.
#[derive(ToSchema)]
pub struct RecordList {
    /// The records on this page.
    items: Vec<Record>,
    /// How many records match in all.
    total: u64,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /bookings`: one page of bookings, by start.
#[derive(ToSchema)]
pub struct BookingList {
    /// The bookings on this page.
    items: Vec<erpos_kernel::bookings::Booking>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /accounts`: accounts, oldest first.
#[derive(ToSchema)]
pub struct AccountList {
    /// The accounts.
    items: Vec<erpos_design::ledger::Account>,
}

/// `GET /accounts/{id}/entries`: a ledger, in order.
#[derive(ToSchema)]
pub struct EntryList {
    /// The entries.
    items: Vec<erpos_design::ledger::Entry>,
}

/// `GET /bookings/waitlist`: waitlist entries, oldest first.
#[derive(ToSchema)]
pub struct WaitlistList {
    /// The entries.
    items: Vec<erpos_kernel::app::waitlist::WaitlistEntry>,
}

/// `GET /courses`: courses, in the order they were sold.
#[derive(ToSchema)]
pub struct CourseList {
    /// The courses.
    items: Vec<erpos_design::course::Course>,
}

/// `GET /charges`: charges, oldest first.
#[derive(ToSchema)]
pub struct ChargeList {
    /// The charges.
    items: Vec<erpos_design::charge::Charge>,
}

/// `GET /courses/{id}`: a course and its uses (a use answers the one it made).
#[derive(ToSchema)]
pub struct CourseShown {
    /// The course.
    course: erpos_design::course::Course,
    /// Its uses, in order.
    uses: Vec<erpos_design::course::SessionUse>,
}

/// `GET /stock/materials`: every material, by name.
#[derive(ToSchema)]
pub struct MaterialList {
    /// The materials.
    items: Vec<erpos_design::stock::Material>,
}

/// `GET /stock/lots`: lots, in the order they were received.
#[derive(ToSchema)]
pub struct LotList {
    /// The lots.
    items: Vec<erpos_design::stock::Lot>,
}

/// `GET /stock/lots/{id}/movements`: a lot's movements, in order.
#[derive(ToSchema)]
pub struct MovementList {
    /// The movements.
    items: Vec<erpos_design::stock::Movement>,
}

/// `GET /treatments`: every treatment, by name.
#[derive(ToSchema)]
pub struct TreatmentList {
    /// The treatments.
    items: Vec<erpos_design::treatment::Treatment>,
}

/// One entry of a booking's history.
#[derive(ToSchema)]
pub struct BookingEvent {
    /// Its place in the history, from 1.
    seq: i64,
    /// `booked`, `rescheduled`, `cancelled` or `no_show`.
    action: String,
    /// Who did it.
    actor: String,
    /// When (RFC 3339).
    at: String,
    /// What changed (the times moved, the reason).
    detail: Value,
}

/// `GET /bookings/{id}`: the booking and its history.
#[derive(ToSchema)]
pub struct BookingShown {
    /// The booking's own fields.
    #[serde(flatten)]
    booking: erpos_kernel::bookings::Booking,
    /// What happened to it, in order.
    history: Vec<BookingEvent>,
}

/// One entry of a record's audit trail.
#[derive(ToSchema)]
pub struct RecordChange {
    /// The record's version after the change.
    version: Option<i64>,
    /// `create`, `update` or `delete`.
    action: Option<String>,
    /// Who made it.
    actor: Option<String>,
    /// What changed (`{field: {from, to}}`), or the record as created.
    #[schema(value_type = Value)]
    changes: Value,
    /// When (RFC 3339).
    at: Option<String>,
}

/// `GET /records/{item}/{id}/history`.
#[derive(ToSchema)]
pub struct RecordHistory {
    /// Every change, oldest first.
    items: Vec<RecordChange>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------
// processes and work items

/// The record a process is bound to.
#[derive(ToSchema)]
pub struct RecordRef {
    /// The DataItem.
    item: String,
    /// The record's id.
    id: String,
}

/// A work item: one person's part in a step (to handle, to vote on, to countersign).
#[derive(ToSchema)]
pub struct WorkItem {
    /// Its number within the process.
    id: u32,
    /// The step.
    step: String,
    /// Which visit of the step (a step entered again gets new items).
    visit: u32,
    /// Whose it is.
    user: String,
    /// The user it was delegated or forwarded from.
    on_behalf_of: Option<String>,
    /// What the person does with it.
    role: ItemRole,
    /// The item a countersigner was added to.
    for_item: Option<u32>,
    /// Where it stands.
    state: ItemState,
    /// What was done (`agree`, a transition, `forwarded`…).
    action: Option<String>,
    /// The comment given.
    comment: Option<String>,
    /// Who acted, when not the holder.
    acted_by: Option<String>,
    /// When it was created (ms since the epoch).
    created_ms: i64,
    /// When it was finished (ms since the epoch).
    finished_ms: Option<i64>,
}

/// A process (PCB) as the API shows it. `context` holds the process variables and, under
/// `record`, the bound record as it stood (fields the caller may not read left out).
#[derive(ToSchema)]
pub struct Process {
    /// The process id.
    id: u64,
    /// Its service.
    service: String,
    /// The service version it runs.
    version: u32,
    /// The process that started it as a sub-service or branch.
    parent: Option<u64>,
    /// A process it waits for before it starts.
    predecessor: Option<u64>,
    /// The bound record.
    record: Option<RecordRef>,
    /// Its state.
    state: ProcessState,
    /// How it ended (TERMINATED only).
    exit: Option<ExitStatus>,
    /// The state it was suspended from.
    suspended_from: Option<ProcessState>,
    /// Higher runs first.
    priority: i32,
    /// The current step.
    step: Option<String>,
    /// The join it waits at, in a parallel branch.
    join: Option<String>,
    /// Who handles the current step.
    operator: Option<String>,
    /// Resources it holds.
    allocations: Vec<Allocation>,
    /// The process variables (`record`: the bound record).
    #[schema(value_type = Object)]
    context: Value,
    /// Why it is not running.
    wait: Option<WaitReason>,
    /// The current step's deadline (ms since the epoch).
    deadline_ms: Option<i64>,
    /// Since when it is READY (ms since the epoch).
    ready_since_ms: Option<i64>,
    /// Its child processes.
    children: Vec<u64>,
    /// Incremented by every change.
    version_no: u64,
    /// The user the current step was assigned to by a rule or an escalation.
    assignee: Option<String>,
    /// Its serial number (`LEAVE-20261121-0007`), when the service numbers its processes.
    serial: Option<String>,
    /// Who started it.
    creator: Option<String>,
    /// When it was created (ms since the epoch).
    created_ms: i64,
    /// How many steps it has entered.
    visit: u32,
    /// Its work items (left out when there are none).
    work: Option<Vec<WorkItem>>,
    /// Who handled each step last (for returns).
    handlers: Option<BTreeMap<String, Vec<String>>>,
    /// While an iterating sub-service step runs: `entries` (one child each), `started`
    /// (how many children were started) and `running` (child pid → entry index).
    #[schema(value_type = Option<Object>)]
    iteration: Option<Value>,
    /// The steps it is at now.
    current_steps: Vec<String>,
}

/// Something the caller may do at a process now, with what it needs.
#[derive(ToSchema)]
pub struct ProcessAction {
    /// `claim`, `handle`, `forward`, `add_signer`, `return`, `withdraw`, `change_state`,
    /// `suspend`, `resume`, `prioritize` or `terminate` (then `POST /processes/{id}/{action}`).
    #[schema(value_type = ActionName)]
    action: String,
    /// For `handle`: the transition taken.
    transition: Option<String>,
    /// For `handle`: agree, reject or other.
    attribute: Option<String>,
    /// For `handle`: the transition's label.
    label: Option<Label>,
    /// For `handle`: whether the step's required fields are checked.
    check_required: Option<bool>,
    /// The body keys the action needs.
    needs: Option<Vec<String>>,
    /// For `return` and `change_state`: the steps one may go to.
    steps: Option<Vec<String>>,
    /// For `return`: to whom (`last_handler`, `candidates`).
    to: Option<Vec<String>>,
    /// For `prioritize`: the process's base priority now.
    priority: Option<i64>,
}

/// The actions of `POST /processes/{id}/{action}`.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// Take a work item offered to several people.
    Claim,
    /// Handle one's work item (take a transition, vote, fill in fields).
    Handle,
    /// Hand one's work item to someone else.
    Forward,
    /// Add a countersigner.
    AddSigner,
    /// Send the process back to an earlier step.
    Return,
    /// The creator takes the request back.
    Withdraw,
    /// The operator puts her running step aside for other work (a context switch).
    SetAside,
    /// The operator takes up what she set aside.
    TakeUp,
    /// An administrator moves the process to another step.
    ChangeState,
    /// Suspend the process.
    Suspend,
    /// Resume a suspended process.
    Resume,
    /// Change the process's base priority (an administrator's decision).
    Prioritize,
    /// End the process.
    Terminate,
    /// Send an event to a waiting process.
    Signal,
    /// Complete the current step (its operator or an administrator).
    Complete,
}

/// `GET /processes/{id}/actions`.
#[derive(ToSchema)]
pub struct ProcessActions {
    /// The process id.
    process: u64,
    /// What the caller may do now.
    actions: Vec<ProcessAction>,
}

/// The form of the bound record at the caller's step.
#[derive(ToSchema)]
pub struct ProcessForm {
    /// Fields the caller may edit now.
    editable: Vec<String>,
    /// Fields that must have a value before a checking transition.
    required: Vec<String>,
    /// Fields shown, not editable.
    readonly: Vec<String>,
    /// The bound record's values the caller may see.
    #[schema(value_type = Object)]
    record: Value,
}

/// One move in a process's history.
#[derive(ToSchema)]
pub struct ProcessHistoryEntry {
    /// Its number in the process.
    seq: u64,
    /// When (RFC 3339).
    at: Option<String>,
    /// Who.
    by: String,
    /// The state before.
    from: String,
    /// The state after.
    to: String,
    /// Why.
    reason: String,
    /// The step after the move.
    #[schema(value_type = Option<String>)]
    step: Value,
    /// The process variables after the move.
    #[schema(value_type = Value)]
    context: Value,
    /// The bound record as it was.
    #[schema(value_type = Value)]
    record: Value,
    /// The whole process as stored after the move.
    #[schema(value_type = Value)]
    pcb: Value,
    /// Set when the stored entry could not be read back (then the rest is null).
    unreadable: Option<String>,
}

/// `GET /processes/{id}`: the process with its form, actions and history.
#[derive(ToSchema)]
pub struct ProcessDetail {
    #[serde(flatten)]
    process: Process,
    /// The bound record's form at the caller's step.
    form: StepForm,
    /// What the caller may do now.
    actions: Vec<ProcessAction>,
    /// Every move, oldest first.
    history: Vec<ProcessHistoryEntry>,
}

/// What the caller sees and fills in at a process's current step: the bound record's
/// fields by what the step lets them do, and what its instructions take from the handling.
#[derive(ToSchema)]
pub struct StepForm {
    /// Fields the caller may change now (sent as `fields` when handling).
    editable: Vec<String>,
    /// Of those, the ones that must have a value.
    required: Vec<String>,
    /// Fields shown but not changed here.
    readonly: Vec<String>,
    /// The bound record's values the caller may see.
    #[schema(value_type = Object)]
    record: Value,
    /// What the step's instructions take from `context` (only to the holder of its open
    /// work item): send each as `context.<key>`.
    inputs: Vec<erpos_design::rule::ContextInput>,
}

/// `GET /processes`: one page, newest first.
#[derive(ToSchema)]
pub struct ProcessList {
    /// The processes.
    items: Vec<Process>,
    /// How many match in all.
    total: u64,
    /// Pass as `cursor` for the next page (the last id shown); null on the last.
    next_cursor: Option<String>,
}

/// `POST /processes`: what to start.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartProcess {
    /// The service.
    service: String,
    /// A published version (default: the newest).
    #[schema(minimum = 0, maximum = 4294967295.0)]
    version: Option<u64>,
    /// The record to bind: a stored one (`{item, id}`: it must exist), or a new one
    /// (`{item, fields}`: created in the start's transaction). Either is put in the context
    /// as `record`.
    record: Option<StartRecord>,
    /// The starter's decision at the first step, made in the start's transaction (a
    /// refused decision leaves neither record nor process).
    decision: Option<StartDecision>,
    /// 0 to 100 (default: the service's).
    #[schema(minimum = 0, maximum = 100)]
    priority: Option<i64>,
    /// Process variables (not `record`).
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// A process (that the caller may see) this one waits for.
    predecessor: Option<u64>,
    /// When to start (RFC 3339); default now.
    #[schema(format = DateTime)]
    start_at: Option<String>,
}

/// The record a start binds: a stored one, or one created with the start.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum StartRecord {
    /// A stored record.
    Stored(RecordRef),
    /// A new record.
    New(NewRecord),
}

/// A record created with a start: `{item, fields}`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    /// The DataItem (the service's subject).
    item: String,
    /// Its fields, validated like `POST /records/{item}` (a bad one is a 422 at
    /// `/record/fields/…`).
    #[schema(value_type = Object)]
    fields: Value,
}

/// The first step's decision in a start: what `handle` takes, without `user` (it is the
/// starter's) and `fields` (the new record carries them).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDecision {
    /// The transition to take.
    transition: Option<String>,
    /// agree, reject or other.
    attribute: Option<erpos_design::service::TransitionAttribute>,
    /// A comment (at most 2,000 characters).
    #[schema(max_length = 2000)]
    comment: Option<String>,
    /// Process variables to set (not `record`).
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
}

/// `POST /processes/{id}/{action}`: the body (optional) of an action. Which keys an
/// action takes: `claim` `{user?}`; `handle` `{user?, transition?, attribute?, comment?,
/// fields?, context?}`; `forward` `{user?, to, reason}`; `add_signer` `{user?, signer,
/// reason}`; `return` `{step, to?, reason?}`; `withdraw`, `suspend`, `terminate`
/// `{reason?}`; `change_state` `{step, reason}`; `signal` `{event, payload?}`; `complete`
/// `{transition?, context?}`; `prioritize` `{priority}`. Another key is a 422 naming it.
#[derive(ToSchema)]
pub struct ActionBody {
    /// Whose work item (default: the caller's; another's needs `services:{name}:handle`).
    user: Option<String>,
    /// The transition to take.
    transition: Option<String>,
    /// agree, reject or other.
    attribute: Option<erpos_design::service::TransitionAttribute>,
    /// A comment (at most 2,000 characters).
    #[schema(max_length = 2000)]
    comment: Option<String>,
    /// Values for the bound record's fields editable at the step.
    #[schema(value_type = Option<Object>)]
    fields: Option<Value>,
    /// Process variables to set (not `record`).
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// `forward`: to whom; `return`: `last_handler` or `candidates`.
    to: Option<String>,
    /// Why (at most 2,000 characters).
    #[schema(max_length = 2000)]
    reason: Option<String>,
    /// `add_signer`: who countersigns.
    signer: Option<String>,
    /// `return` and `change_state`: the step.
    step: Option<String>,
    /// `signal`: the event's name.
    event: Option<String>,
    /// `signal`: the event's payload (any JSON value; optional).
    #[schema(value_type = Value, required = false)]
    payload: Option<Value>,
    /// `prioritize`: the new base priority, 0 to 100 (higher is dispatched first).
    #[schema(minimum = 0, maximum = 100)]
    priority: Option<i64>,
}

/// A process holding some units of a resource.
#[derive(ToSchema)]
pub struct Holder {
    /// The process.
    process: u64,
    /// How many units.
    quantity: u32,
}

/// A resource in the queues' view.
#[derive(ToSchema)]
pub struct QueueResource {
    /// The resource's id.
    id: String,
    /// Its type.
    #[schema(rename = "type")]
    resource_type: String,
    /// Units it has.
    capacity: u32,
    /// Units in use.
    in_use: u32,
    /// Who holds them.
    holders: Vec<Holder>,
    /// READY processes waiting for its type.
    waiting: u64,
}

/// `GET /queues`.
#[derive(ToSchema)]
pub struct Queues {
    /// Processes per state (every state listed).
    states: BTreeMap<String, u64>,
    /// Processes per wait reason (`resource`, `operator`, `event`, `timer`, `children`).
    waiting: BTreeMap<String, u64>,
    /// Every resource.
    resources: Vec<QueueResource>,
    /// READY process ids in dispatch order.
    ready_queue: Vec<u64>,
    /// Live processes past their step's deadline, the latest first (at most 50).
    late: Vec<LateProcess>,
    /// How many processes are late in all.
    late_total: u64,
}

/// A live process past its step's deadline, as the operator's dashboard lists it.
#[derive(ToSchema)]
pub struct LateProcess {
    /// The process.
    process: u64,
    /// Its service.
    service: String,
    /// The step it is late in.
    step: Option<String>,
    /// Who handles it, if anyone.
    operator: Option<String>,
    /// Its state.
    state: String,
    /// When the step was due (ms since the epoch).
    deadline_ms: i64,
    /// Whole minutes past the deadline.
    late_minutes: i64,
}

/// A process in a person's lists: the process without its context and history, with the
/// step's label, the bound record as the caller may see it and that person's work items.
#[derive(ToSchema)]
pub struct WorkListEntry {
    /// The process id.
    id: u64,
    /// Its service.
    service: String,
    /// The service version.
    version: u32,
    /// The parent process.
    parent: Option<u64>,
    /// The predecessor.
    predecessor: Option<u64>,
    /// The bound record.
    record: Option<RecordRef>,
    /// Its state.
    state: ProcessState,
    /// How it ended.
    exit: Option<ExitStatus>,
    /// The state it was suspended from.
    suspended_from: Option<ProcessState>,
    /// Priority.
    priority: i32,
    /// The current step.
    step: Option<String>,
    /// The current step's label.
    step_label: Option<Label>,
    /// The join it waits at.
    join: Option<String>,
    /// Who handles the current step.
    operator: Option<String>,
    /// Resources held.
    allocations: Vec<Allocation>,
    /// Why it is not running.
    wait: Option<WaitReason>,
    /// The step's deadline (ms since the epoch).
    deadline_ms: Option<i64>,
    /// Since when READY.
    ready_since_ms: Option<i64>,
    /// Child processes.
    children: Vec<u64>,
    /// Incremented by every change.
    version_no: u64,
    /// Assigned user.
    assignee: Option<String>,
    /// Serial number.
    serial: Option<String>,
    /// Who started it.
    creator: Option<String>,
    /// When it was created (ms since the epoch).
    created_ms: i64,
    /// When it was created (RFC 3339).
    created_at: Option<String>,
    /// Steps entered.
    visit: u32,
    /// The listed person's work items in it.
    work: Vec<WorkItem>,
    /// Who handled each step last.
    handlers: Option<BTreeMap<String, Vec<String>>>,
    /// The steps it is at now.
    current_steps: Vec<String>,
    /// The bound record as it stood, fields the caller may not read left out.
    #[schema(value_type = Option<Object>)]
    record_snapshot: Value,
    /// The service's work-order view (when it defines `columns`): each column's field
    /// name, label and value in the snapshot (null where the caller may not read it).
    columns: Option<Vec<WorkOrderColumn>>,
}

/// One column of a work-order view.
#[derive(ToSchema)]
pub struct WorkOrderColumn {
    /// The field.
    name: String,
    /// Its labels.
    label: Option<erpos_design::Label>,
    /// Its value in the record snapshot (any JSON value).
    #[schema(value_type = Value)]
    value: Value,
}

/// `GET /work-items`.
#[derive(ToSchema)]
pub struct WorkList {
    /// The processes, newest first.
    items: Vec<WorkListEntry>,
    /// How many match in all.
    total: u64,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// A wait reason's kind (`GET /processes?wait=`).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// Waiting for resources.
    Resource,
    /// Waiting for a free operator.
    Operator,
    /// Waiting for an event.
    Event,
    /// Waiting for a moment.
    Timer,
    /// Waiting for child processes.
    Children,
}

/// Which of a person's lists (`GET /work-items?view=`).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkView {
    /// What they have to do now.
    Todo,
    /// What they handled.
    Handled,
    /// What they started.
    Created,
    /// Everything they took part in.
    Related,
}

/// A delegation: from `from` to `to`, the user's new work items go to the deputy.
#[derive(ToSchema)]
pub struct Delegation {
    /// Its id.
    id: i64,
    /// Whose work.
    user: String,
    /// Who takes it.
    deputy: String,
    /// Start (RFC 3339).
    from: Option<String>,
    /// End (RFC 3339).
    to: Option<String>,
    /// Start (ms since the epoch).
    from_ms: i64,
    /// End (ms since the epoch).
    to_ms: i64,
    /// Only these services (empty: all).
    services: Vec<String>,
}

/// `GET /delegations`.
#[derive(ToSchema)]
pub struct DelegationList {
    /// The delegations.
    items: Vec<Delegation>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `POST /delegations`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDelegation {
    /// Whose work (default: the caller; another's needs `organisation`).
    user: Option<String>,
    /// Who takes it.
    deputy: String,
    /// Start (RFC 3339).
    #[schema(format = DateTime)]
    from: String,
    /// End (RFC 3339), after `from`.
    #[schema(format = DateTime)]
    to: String,
    /// Only these services.
    services: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------
// rules, events, outbox

/// A rule's counters.
#[derive(ToSchema)]
pub struct RuleStats {
    /// Events it was evaluated on.
    evaluated: Option<i64>,
    /// Times its condition held.
    fired: Option<i64>,
    /// Times its instructions failed.
    failed: Option<i64>,
    /// Its last run (ms since the epoch).
    last_at_ms: Option<i64>,
    /// `done` or `failed`.
    last_outcome: Option<String>,
    /// The last error.
    last_error: Option<String>,
    /// When the counters last changed.
    updated_at_ms: Option<i64>,
}

/// A ServiceRule as shown: its definition (secrets masked) and `stats`.
pub struct RuleShown;

impl PartialSchema for RuleShown {
    fn schema() -> RefOr<Schema> {
        extend(
            <erpos_design::rule::ServiceRule as PartialSchema>::schema(),
            vec![(
                "stats",
                RefOr::Ref(utoipa::openapi::Ref::from_schema_name("RuleStats")),
                true,
            )],
        )
    }
}

impl ToSchema for RuleShown {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <erpos_design::rule::ServiceRule as ToSchema>::schemas(schemas);
        schemas.push(("RuleStats".into(), <RuleStats as PartialSchema>::schema()));
        <RuleStats as ToSchema>::schemas(schemas);
    }
}

/// `GET /rules`.
#[derive(ToSchema)]
pub struct RuleList {
    /// The rules.
    items: Vec<RuleShown>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// One run of a rule on an event.
#[derive(ToSchema)]
pub struct RuleRun {
    /// The event.
    event_seq: Option<u64>,
    /// When (ms since the epoch).
    at_ms: Option<i64>,
    /// `done` or `failed`.
    outcome: Option<String>,
    /// Why it failed.
    error: Option<String>,
    /// What it did.
    #[schema(value_type = Value)]
    effects: Value,
}

/// `GET /rules/{name}/runs`.
#[derive(ToSchema)]
pub struct RuleRuns {
    /// Newest first.
    items: Vec<RuleRun>,
    /// Pass as `before` for the next page (an event number); null on the last.
    next_cursor: Option<u64>,
}

/// An event the rules worker set aside.
#[derive(ToSchema)]
pub struct QuarantinedEvent {
    /// The event.
    event_seq: Option<i64>,
    /// The rules still to run on it.
    #[schema(value_type = Value)]
    rules: Value,
    /// The last error.
    error: Option<String>,
    /// How often it was tried.
    attempts: Option<i64>,
    /// When it was set aside (ms since the epoch).
    at_ms: Option<i64>,
    /// When it was last retried.
    retried_at_ms: Option<i64>,
}

/// `GET /rules/quarantine`.
#[derive(ToSchema)]
pub struct Quarantine {
    /// Newest first.
    items: Vec<QuarantinedEvent>,
    /// Pass as `before` for the next page; null on the last.
    next_cursor: Option<i64>,
}

/// The outcome of retrying a set-aside event.
#[derive(ToSchema)]
pub struct RetryOutcome {
    /// The event.
    event_seq: u64,
    /// `done` (out of the quarantine) or `failed` (still in it).
    #[schema(value_type = RunOutcome)]
    outcome: String,
    /// The new error.
    error: Option<String>,
}

/// How a run ended.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every rule ran.
    Done,
    /// A rule failed.
    Failed,
}

/// `GET /events`.
#[derive(ToSchema)]
pub struct EventList {
    /// Newest first.
    items: Vec<erpos_design::rule::Event>,
    /// Pass as `before` for the next page; null on the last.
    next_cursor: Option<u64>,
}

/// `POST /events/{name}`: the signal's number in the event log.
#[derive(ToSchema)]
pub struct SignalAccepted {
    /// The event's number.
    seq: u64,
}

/// Where an outbox entry stands.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Still to deliver.
    Pending,
    /// Delivered.
    Delivered,
    /// Given up after its attempts.
    Failed,
}

/// An outbox entry: a webhook or notification to deliver.
#[derive(ToSchema)]
pub struct OutboxEntry {
    /// Its id.
    id: Option<i64>,
    /// `webhook` or `notify`.
    kind: Option<String>,
    /// What is delivered (secrets masked).
    #[schema(value_type = Value)]
    payload: Value,
    /// `pending`, `delivered` or `failed`.
    state: Option<String>,
    /// Attempts made.
    attempts: Option<i64>,
    /// The next attempt (ms since the epoch).
    next_at_ms: Option<i64>,
    /// The last error.
    last_error: Option<String>,
    /// When it was queued.
    created_at_ms: Option<i64>,
    /// When it was delivered.
    delivered_at_ms: Option<i64>,
    /// The rule that queued it.
    rule: Option<String>,
    /// The event it came from.
    event_seq: Option<i64>,
}

/// `GET /outbox`.
#[derive(ToSchema)]
pub struct OutboxList {
    /// Newest first.
    items: Vec<OutboxEntry>,
    /// Pass as `before` for the next page; null on the last.
    next_cursor: Option<i64>,
}

/// `POST /outbox/{id}/retry`.
#[derive(ToSchema)]
pub struct OutboxRetried {
    /// The entry.
    id: i64,
    /// Always `pending`.
    state: String,
}

/// A notification delivered to a user's inbox.
#[derive(ToSchema)]
pub struct Notification {
    /// Its id.
    id: Option<i64>,
    /// The title.
    title: Option<String>,
    /// The body.
    body: Option<String>,
    /// When (ms since the epoch).
    at_ms: Option<i64>,
}

/// `GET /notifications`.
#[derive(ToSchema)]
pub struct NotificationList {
    /// Newest first.
    items: Vec<Notification>,
}

// ---------------------------------------------------------------------------------------
// organisation and resources

/// A department (`parent` and `leader` make the tree).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Its name (derived from `label.zh` when absent).
    name: Option<String>,
    /// Its labels.
    label: Label,
    /// The department above it.
    parent: Option<String>,
    /// Its leader (a user id).
    leader: Option<String>,
}

/// A role or a skill.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Title {
    /// Its name (derived from `label.zh` when absent).
    name: Option<String>,
    /// Its labels.
    label: Label,
    /// Skills: whether holding it needs a certificate.
    certification: Option<bool>,
    /// Roles: the grants everyone holding it has (`records:huanzhe:read`, …).
    permissions: Option<Vec<String>>,
}

/// `GET /departments`.
#[derive(ToSchema)]
pub struct DepartmentList {
    /// Every department.
    items: Vec<Department>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `GET /roles`, `GET /skills`.
#[derive(ToSchema)]
pub struct TitleList {
    /// Every role (or skill).
    items: Vec<Title>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// A user as the list shows them, with their current load.
#[derive(ToSchema)]
pub struct UserShown {
    /// The user id.
    id: String,
    /// Roles held.
    roles: Vec<String>,
    /// Skills held.
    skills: Vec<String>,
    /// How many steps at once.
    capacity: u32,
    /// Their department.
    department: Option<String>,
    /// Their working calendar.
    calendar: Option<String>,
    /// Steps they handle now.
    load: u64,
}

/// `GET /users`.
#[derive(ToSchema)]
pub struct UserList {
    /// Every user.
    items: Vec<UserShown>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `POST /users`: a user who can handle steps (answered as sent, without the password).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// The user id.
    id: String,
    /// Their name.
    name: Option<String>,
    /// Their labels.
    #[schema(value_type = Option<Object>)]
    label: Option<Value>,
    /// Roles held.
    roles: Option<Vec<String>>,
    /// Skills held.
    skills: Option<Vec<String>>,
    /// How many steps at once (at least 1; default 1).
    #[schema(minimum = 1)]
    capacity: Option<u64>,
    /// Their department.
    department: Option<String>,
    /// Their working calendar.
    calendar: Option<String>,
    /// The branch they work at (none: every branch).
    branch: Option<String>,
    /// A password (at least 8 characters), stored as an argon2id hash, never echoed.
    #[schema(write_only, min_length = 8)]
    password: Option<String>,
}

/// `POST /resource-types` (answered as sent).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceType {
    /// Its name.
    name: String,
    /// What it is.
    kind: ResourceKind,
    /// Its labels (`zh` required).
    #[schema(value_type = Object)]
    label: Value,
}

/// What a resource type is.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// Consumed (botox units).
    Material,
    /// A device.
    Equipment,
    /// A room.
    Facility,
    /// Money.
    Capital,
    /// Know-how.
    Knowledge,
}

/// `GET /resource-types`.
#[derive(ToSchema)]
pub struct ResourceTypeList {
    /// Every resource type.
    items: Vec<ResourceType>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `POST /resources`: a resource instance (answered as sent).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceBody {
    /// Its id.
    id: String,
    /// Its type.
    #[schema(rename = "type")]
    resource_type: String,
    /// Units (at least 1; default 1).
    #[schema(minimum = 1)]
    capacity: Option<u64>,
    /// Skills or certifications it carries.
    skills: Option<Vec<String>>,
    /// Its labels.
    #[schema(value_type = Option<Object>)]
    label: Option<Value>,
    /// Its name.
    name: Option<String>,
    /// Its working calendar (bookings of it lie within its hours).
    calendar: Option<String>,
    /// The branch it stands in (none: it serves every branch).
    branch: Option<String>,
}

/// A resource with what it holds now.
#[derive(ToSchema)]
pub struct ResourceShown {
    /// Its id.
    id: String,
    /// What staff call it (`{"zh": "激光一室"}`), as defined; null when it has none.
    label: Option<erpos_design::label::Label>,
    /// Its type.
    #[schema(rename = "type")]
    resource_type: String,
    /// Units.
    capacity: u32,
    /// Skills it carries.
    skills: Vec<String>,
    /// The branch it stands in (none: it serves every branch).
    branch: Option<String>,
    /// Its working calendar, if any.
    calendar: Option<String>,
    /// Units in use.
    in_use: u32,
    /// Who holds them.
    allocations: Vec<Holder>,
}

/// `GET /resources`.
#[derive(ToSchema)]
pub struct ResourceList {
    /// Every resource.
    items: Vec<ResourceShown>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `GET /calendars`.
#[derive(ToSchema)]
pub struct CalendarList {
    /// Every calendar.
    items: Vec<erpos_design::WorkingCalendar>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------
// stats

macro_rules! stats_item {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty),* }) => {
        $(#[$doc])*
        #[derive(ToSchema)]
        pub struct $name {
            $($(#[$fdoc])* $field: $ty,)*
            /// Started in the period.
            started: u64,
            /// Completed in the period.
            completed: u64,
            /// Cancelled in the period.
            cancelled: u64,
            /// Failed in the period.
            failed: u64,
            /// Mean duration (ms); null when nothing completed.
            avg_ms: Option<i64>,
            /// Nearest-rank median (ms); null when nothing completed.
            p50_ms: Option<i64>,
            /// Nearest-rank 90th percentile (ms); null when nothing completed.
            p90_ms: Option<i64>,
            /// Late ones.
            late: u64,
            /// Open now.
            backlog: u64,
        }
    };
}

stats_item!(
    /// A service's figures.
    ServiceFigures {
        /// The service.
        service: String
    }
);
stats_item!(
    /// A step's figures.
    StepFigures {
        /// The service.
        service: String,
        /// The step.
        step: String
    }
);
stats_item!(
    /// An operator's figures.
    OperatorFigures {
        /// The user.
        operator: String,
        /// Roles they hold.
        roles: Vec<String>
    }
);
stats_item!(
    /// A role's figures (everyone holding it).
    RoleFigures {
        /// The role.
        role: String,
        /// Who holds it.
        operators: Vec<String>
    }
);

macro_rules! stats_page {
    ($(#[$doc:meta])* $name:ident, $item:ty $(, $(#[$fdoc:meta])* $field:ident: $ty:ty)?) => {
        $(#[$doc])*
        #[derive(ToSchema)]
        pub struct $name {
            $($(#[$fdoc])* $field: $ty,)?
            /// Start of the period (RFC 3339).
            from: Option<String>,
            /// End of the period, exclusive (RFC 3339).
            to: Option<String>,
            /// The groups.
            items: Vec<$item>,
            /// How many.
            total: u64,
            /// Always null: statistics come whole.
            next_cursor: Option<String>,
        }
    };
}

stats_page!(
    /// `GET /stats/services`.
    ServiceStats,
    ServiceFigures
);
stats_page!(
    /// `GET /stats/services/{name}/steps`.
    StepStats,
    StepFigures,
    /// The service.
    service: String
);
stats_page!(
    /// `GET /stats/operators`.
    OperatorStats,
    OperatorFigures
);
stats_page!(
    /// `GET /stats/roles`.
    RoleStats,
    RoleFigures
);

// ---------------------------------------------------------------------------------------
// auth

/// `POST /sessions`.
#[derive(ToSchema)]
pub struct Login {
    /// The user id.
    user: String,
    /// The password.
    #[schema(write_only)]
    password: String,
}

/// A session: send `token` as `Authorization: Bearer <token>`.
#[derive(ToSchema)]
pub struct Session {
    /// The session token.
    token: String,
    /// Who logged in.
    user: String,
    /// When it ends (RFC 3339; 12 hours from login).
    expires_at: Option<String>,
}

/// How the caller authenticated.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// The kernel itself.
    System,
    /// The bootstrap token.
    Bootstrap,
    /// A session.
    User,
    /// An app token's signature.
    App,
}

/// `GET /sessions/current`.
#[derive(ToSchema)]
pub struct WhoAmI {
    /// The user.
    user: String,
    /// How they authenticated.
    kind: CallerKind,
    /// Their grants.
    grants: Vec<String>,
    /// The branches whose bookings, stock and resources they see, sorted: every branch for
    /// head office (no branch of their own), `branches:*` and `admin`.
    branches: Vec<String>,
    /// The app token (app callers only).
    app: Option<String>,
    /// The services the app token is for (app callers only).
    services: Option<Vec<String>>,
}

/// `PUT /users/{id}/password`.
#[derive(ToSchema)]
pub struct NewPassword {
    /// The new password (at least 8 characters).
    #[schema(write_only, min_length = 8)]
    password: String,
    /// The current one (required when changing one's own without `organisation`).
    #[schema(write_only)]
    old_password: Option<String>,
}

/// `POST /app-tokens`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppToken {
    /// Its name (never reused).
    name: String,
    /// The services it may act on.
    services: Vec<String>,
    /// The grants it may use (each one the creator holds).
    scopes: Vec<String>,
    /// Its label for people (left out when it has none).
    label: Option<erpos_design::Label>,
}

/// An app token (`secret` masked in lists, shown once when created).
#[derive(ToSchema)]
pub struct AppToken {
    /// Its name.
    name: String,
    /// The services it may act on.
    services: Vec<String>,
    /// The grants it may use.
    scopes: Vec<String>,
    /// Its label for people (left out when it has none).
    label: Option<erpos_design::Label>,
    /// When it was created (ms since the epoch).
    created_ms: i64,
    /// Who created it.
    created_by: String,
    /// When it was revoked.
    revoked_ms: Option<i64>,
    /// Who revoked it.
    revoked_by: Option<String>,
    /// The secret (`****` and its last 4 characters in lists).
    secret: String,
    /// When it was created (RFC 3339; in the answer to the creation only).
    created_at: Option<String>,
}

/// `GET /app-tokens`.
#[derive(ToSchema)]
pub struct AppTokenList {
    /// Every app token, revoked ones too.
    items: Vec<AppToken>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// One audit row.
#[derive(ToSchema)]
pub struct AuditEntry {
    /// Its number.
    seq: i64,
    /// When (RFC 3339).
    at: Option<String>,
    /// Who.
    actor: String,
    /// What (`data_item.create`, `role.save`, …).
    action: String,
    /// On what.
    subject: String,
}

/// `GET /audit`.
#[derive(ToSchema)]
pub struct AuditList {
    /// Newest first.
    items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; null on the last.
    next_cursor: Option<i64>,
}

// ---------------------------------------------------------------------------------------
// system

/// The node's health.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// Up, but something needs an administrator's look (see `problems`).
    Degraded,
    /// Writes fail now (answered with 503).
    Unavailable,
}

/// Storage's state.
#[derive(ToSchema)]
pub struct StorageHealth {
    /// Whether a read works.
    readable: bool,
    /// Whether a write works (null: another writer held the lock).
    writable: Option<bool>,
    /// Faults met since the node started.
    faults: u64,
    /// Connections recycled after a fault.
    recycled_connections: u64,
    /// When the last fault was met (RFC 3339).
    last_fault_at: Option<String>,
    /// What it was.
    last_fault: Option<String>,
    /// Seconds since then.
    seconds_since_last_fault: Option<u64>,
}

/// Stored rows set aside because they could not be read back.
#[derive(ToSchema)]
pub struct QuarantineCounts {
    /// Rows per table.
    rows: BTreeMap<String, u64>,
    /// Events skipped.
    events: u64,
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    /// `ok`, `degraded` or `unavailable`.
    status: HealthStatus,
    /// `sqlite` or `postgres`.
    database: String,
    /// Storage's state.
    storage: StorageHealth,
    /// Set-aside rows (counts only: this route needs no credentials).
    quarantined: QuarantineCounts,
    /// What is wrong, in words.
    problems: Vec<String>,
}

/// `GET /menus`.
#[derive(ToSchema)]
pub struct MenuList {
    /// The sections the caller has something in: `work`, `start`, `records`.
    items: Vec<erpos_kernel::app::menus::MenuSection>,
    /// How many.
    total: u64,
    /// Always null.
    next_cursor: Option<String>,
}

/// `GET /menus/layout`: the stored menu layout.
#[derive(ToSchema)]
pub struct MenuLayoutShown {
    /// Whether an analyst stored one (false: the menu is generated).
    stored: bool,
    /// The layout (no sections when none is stored).
    layout: erpos_design::menu::MenuLayout,
}

/// `POST /services/preview`'s body: a service as the designer holds it while an analyst
/// types — the keys of a [`erpos_design::service::Service`], every one optional and each
/// read as far as it can be. A draft is previewed, not refused: what cannot be read (a
/// label that is no object, a version out of range, a step of an unknown kind) is a problem
/// at its pointer in the answer, beside the flowchart of the rest. Only a body that is no
/// object at all is a 422.
#[derive(ToSchema)]
pub struct ServiceDraft {
    /// The identifier (derived from `label.zh` when absent).
    name: Option<Value>,
    /// What staff see: `{"zh": "…", "en": "…"}`.
    label: Option<Value>,
    /// The DataItem a process is bound to.
    subject: Option<Value>,
    /// The base priority of its processes.
    priority: Option<Value>,
    /// The steps drawn so far (see `Step`).
    steps: Option<Value>,
    /// The transitions drawn so far (see `Transition`).
    transitions: Option<Value>,
    /// The version it was opened from.
    version: Option<Value>,
    /// How processes are numbered for people (see `SerialSpec`).
    serial: Option<Value>,
    /// Who may start one (a Rhai expression).
    may_start: Option<Value>,
    /// The work-order view's fields.
    columns: Option<Value>,
}
