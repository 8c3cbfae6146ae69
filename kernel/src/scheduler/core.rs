//! The scheduler core: a pure, synchronous state machine over PCBs, resources and
//! operators. It takes a command and the time, and returns what happened — history entries
//! (every move, with the PCB after it) and effects for the runtime (run an automatic step's
//! instructions, a timer to keep). It never does I/O and never reads a clock, so it can be
//! driven exhaustively by tests and replayed exactly.
//!
//! Commands are checked completely before anything changes: a refused command leaves the
//! core exactly as it was.
//!
//! This file holds the core's types, its tables and [`Scheduler::apply`], which sends each
//! command to the method of its family, then dispatches and flushes the history. The
//! families live beside it, one file each: `start` (admission, new processes,
//! predecessors), `lifecycle` (suspend, resume, terminate, fail, and what follows an end),
//! `steps` (entering steps, gateways and joins, completing, signals, escalations),
//! `dispatch` (the ready queue, operators, resources), `timers` (ticks and deadline
//! alarms), `work` (work items: claim, handle, forward, add a signer, return, withdraw,
//! change of state) and `history` (every change of a PCB recorded).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use erpos_design::service::{SerialSpec, Service, Step};
use serde_json::Value as Json;

use super::pcb::{ExitStatus, HistoryEntry, Notice, Pcb, Pid, ProcessState, WaitReason};

mod calls;
mod dispatch;
mod history;
mod lifecycle;
mod migrate;
mod start;
mod steps;
mod timers;
pub mod work;
use super::resources::{Operator, Resource, ResourcePool};
pub use work::{Delegation, HandleAction};

/// Evaluates analysts' expressions for the core (Rhai in the kernel; anything in tests).
pub trait Conditions {
    /// Whether a transition condition holds for a process.
    fn holds(&self, expression: &str, pcb: &Pcb) -> Result<bool, String>;
    /// The instant (ms since epoch) an `until` expression of a wait step names.
    fn instant(&self, expression: &str, pcb: &Pcb) -> Result<i64, String>;
    /// The user ids an operator-rule expression allows to handle a step.
    fn operators(&self, expression: &str, pcb: &Pcb) -> Result<Vec<String>, String>;
    /// When a deadline of `seconds` from `now_ms` falls, counted in `calendar`'s working
    /// time (None: the organisation's). Without calendars every hour counts.
    fn due_ms(&self, calendar: Option<&str>, now_ms: i64, seconds: i64) -> i64 {
        let _ = calendar;
        now_ms.saturating_add(seconds.saturating_mul(1000))
    }
    /// Whether `at_ms` is working time in the user calendar `calendar`, and if not when it
    /// next starts (so the dispatcher looks again then). Without calendars: always.
    fn on_duty(&self, calendar: &str, at_ms: i64) -> (bool, Option<i64>) {
        let _ = (calendar, at_ms);
        (true, None)
    }
    /// The list an iteration's `over` expression gives for a process (each entry as JSON).
    /// Evaluators without it refuse, so an iteration never silently runs nothing.
    fn list(&self, expression: &str, pcb: &Pcb) -> Result<Vec<Json>, String> {
        let _ = pcb;
        Err(format!("cannot evaluate '{expression}' here"))
    }
    /// Whether `expression` holds over named values (a service's `may_start`). Evaluators
    /// without it refuse, so a limit is never silently skipped.
    fn holds_over(
        &self,
        expression: &str,
        bindings: &serde_json::Map<String, Json>,
    ) -> Result<bool, String> {
        let _ = bindings;
        Err(format!("cannot evaluate '{expression}' here"))
    }
}

/// A deadline alarm of a process's current step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmKind {
    /// The deadline is near (`escalation.warn_before`).
    Warning,
    /// The deadline has passed.
    Passed,
}

/// A due alarm, as the time service reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// When it is due (ms).
    pub at_ms: i64,
    /// The process.
    pub pid: Pid,
    /// Which alarm.
    pub kind: AlarmKind,
    /// The deadline it belongs to (identifies the visit of the step).
    pub deadline_ms: i64,
}

/// What the core is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create a process of a service (newest published version unless given).
    Start {
        /// Service name.
        service: String,
        /// Version (None: the newest).
        version: Option<u32>,
        /// Base priority (None: the service's, else 5).
        priority: Option<i32>,
        /// Bound record (DataItem, id).
        record: Option<(String, String)>,
        /// Initial context variables.
        context: Json,
        /// Start after this process terminates (a sequential chain).
        predecessor: Option<Pid>,
        /// Do not admit before this instant (ms).
        start_at_ms: Option<i64>,
        /// Who asks.
        by: String,
    },
    /// Finish the current (running) step, taking a transition.
    Complete {
        /// The process.
        pid: Pid,
        /// The transition's key; None when there is only one way on (or conditions decide).
        transition: Option<String>,
        /// Context variables to merge in (never `record`: see [`merge_context`]).
        context: Option<Json>,
        /// The bound record as it is in storage now (replaces `context.record`, so the
        /// conditions that choose the way on see what is stored, not what a caller says).
        record: Option<Json>,
        /// Who.
        by: String,
    },
    /// Deliver an event to a process waiting for it.
    Signal {
        /// The process.
        pid: Pid,
        /// The event name.
        event: String,
        /// Merged into the context under `signals.<event>`.
        payload: Json,
        /// Who.
        by: String,
    },
    /// Take a process (and its children) out of scheduling.
    Suspend {
        /// The process.
        pid: Pid,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Return a suspended process (and its children) to where it was. A step that was
    /// running goes back to its operator only if she has room for it (and it still holds
    /// what it needs); else it queues for her.
    Resume {
        /// The process.
        pid: Pid,
        /// Who.
        by: String,
    },
    /// A context switch by the operator herself (a doctor takes an urgent patient): her
    /// running human step is put aside — SUSPENDED, off her load — keeping the resources
    /// its step holds while waiting (`hold_while_waiting`) and freeing the others.
    SetAside {
        /// The process.
        pid: Pid,
        /// The step's operator.
        user: String,
        /// Why.
        reason: String,
        /// Who (the operator, or an administrator for her).
        by: String,
    },
    /// The operator takes up what she set aside: back to RUNNING when it kept all it holds,
    /// else queued for her to get its resources again. Refused while she is at capacity.
    TakeUp {
        /// The process.
        pid: Pid,
        /// The operator who set it aside.
        user: String,
        /// Who.
        by: String,
    },
    /// Cancel a process and its children.
    Terminate {
        /// The process.
        pid: Pid,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// End a process as failed (an automatic step's instruction failed).
    Fail {
        /// The process.
        pid: Pid,
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// Move a running process to another published version of its service, its current
    /// step mapped by name (`steps`: old name → new name; unmapped names stay).
    Migrate {
        /// The process.
        pid: Pid,
        /// The version it moves to.
        version: u32,
        /// Old step name → new step name.
        steps: BTreeMap<String, String>,
        /// Who.
        by: String,
    },
    /// Change a process's base priority (a rule's escalation, an operator's decision).
    SetPriority {
        /// The process.
        pid: Pid,
        /// The new base priority.
        priority: i32,
        /// Who.
        by: String,
    },
    /// Give the current step to a user (reassign).
    Assign {
        /// The process.
        pid: Pid,
        /// The user.
        user: String,
        /// Who.
        by: String,
    },
    /// Allocate a resource instance to the process for its current step.
    Allocate {
        /// The process.
        pid: Pid,
        /// The resource instance.
        resource: String,
        /// Units.
        quantity: u32,
        /// Who.
        by: String,
    },
    /// Release a resource instance the process holds.
    Release {
        /// The process.
        pid: Pid,
        /// The resource instance.
        resource: String,
        /// Who.
        by: String,
    },
    /// Leave the current step, undone, by a named transition (an escalation).
    TakeTransition {
        /// The process.
        pid: Pid,
        /// The transition's key.
        transition: String,
        /// Who.
        by: String,
    },
    /// Claim a step offered to several people (policy `claim`): the claimer handles it.
    Claim {
        /// The process.
        pid: Pid,
        /// The user claiming it.
        user: String,
        /// Who.
        by: String,
    },
    /// Act on a work item: decide the step (agree / reject / other, or a named transition),
    /// vote in a committee, or sign for whoever added the user as a signer.
    Handle(Box<HandleAction>),
    /// Hand one's work item to another person, with a reason.
    Forward {
        /// The process.
        pid: Pid,
        /// Whose item.
        user: String,
        /// To whom.
        to: String,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// Ask another person to act before one's item comes back.
    AddSigner {
        /// The process.
        pid: Pid,
        /// Whose item.
        user: String,
        /// The signer.
        signer: String,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// Send the process back to a human step it has passed, to the last handler there or to
    /// all its candidates.
    Return {
        /// The process.
        pid: Pid,
        /// The earlier step.
        step: String,
        /// Give it to the last handler there (else to the step's candidates).
        to_last_handler: bool,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// The creator takes the process back while nobody else has acted on it.
    Withdraw {
        /// The process.
        pid: Pid,
        /// Why.
        reason: String,
        /// Who (must be the creator).
        by: String,
    },
    /// An administrator puts the process at any step directly (recorded as such).
    ChangeState {
        /// The process.
        pid: Pid,
        /// The step.
        step: String,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// The visit's booking moved: `context.booking` becomes `booking` (the kernel's copy
    /// of what was booked), a process still NEW waits for `start_at_ms` instead, and a
    /// wait step counting to a time (`until`) counts to the new one.
    Rebook {
        /// The process.
        pid: Pid,
        /// The booking as the process sees it.
        booking: Json,
        /// When a process still NEW starts now (its reminder time).
        start_at_ms: Option<i64>,
        /// Who.
        by: String,
    },
    /// Fire every timer due at the given time.
    Tick,
}

/// Something the runtime must do after a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run an automatic step's instructions, then send `Complete`.
    RunAutomatic {
        /// The process.
        pid: Pid,
        /// The step.
        step: String,
    },
}

/// Why the core refused a command. Nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// No process with this id.
    #[error("no process {0}")]
    NoProcess(Pid),
    /// No published service with this name (and version).
    #[error("no published service '{0}'")]
    NoService(String),
    /// The move is not in the table of legal moves.
    #[error("process {pid} is {from:?}; it cannot become {to:?} (allowed: {allowed:?})")]
    IllegalMove {
        /// The process.
        pid: Pid,
        /// Its state.
        from: ProcessState,
        /// The state asked for.
        to: ProcessState,
        /// What its state allows.
        allowed: Vec<ProcessState>,
    },
    /// The caller may not do this (a service's `may_start` refused a start).
    #[error("{0}")]
    NotAllowed(String),
    /// The command needs the process in another state or step.
    #[error("process {pid} is {state:?}{}: {message}", .step.as_ref().map(|s| format!(" at '{s}'")).unwrap_or_default())]
    WrongState {
        /// The process.
        pid: Pid,
        /// Its state.
        state: ProcessState,
        /// Its step.
        step: Option<String>,
        /// What was expected.
        message: String,
    },
    /// No such transition from the current step.
    #[error("step '{step}' has no transition '{name}' (choose one of: {})", .available.join(", "))]
    NoTransition {
        /// The step.
        step: String,
        /// The name asked for.
        name: String,
        /// The transitions there are.
        available: Vec<String>,
    },
}

/// The result of one command.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// The process the command created or addressed.
    pub pid: Option<Pid>,
    /// Every change, in order.
    pub entries: Vec<HistoryEntry>,
    /// What the runtime must do.
    pub effects: Vec<Effect>,
}

/// Default base priority.
pub const DEFAULT_PRIORITY: i32 = 5;

/// The scheduler core.
#[derive(Debug, Clone)]
pub struct Scheduler {
    services: BTreeMap<String, BTreeMap<u32, Arc<Service>>>,
    /// Every process by id: hashed, since every command looks processes up many times.
    pcbs: std::collections::HashMap<Pid, Pcb>,
    ready: BTreeSet<(i64, Pid)>,
    timers: BTreeSet<(i64, Pid)>,
    pool: ResourcePool,
    /// Processes waiting (NEW) for a predecessor to terminate, by predecessor.
    successors: BTreeMap<Pid, Vec<Pid>>,
    /// Quiet changes not yet in an entry, by process: the next entry carries them.
    notes: BTreeMap<Pid, String>,
    /// The department tree: each department's parent.
    departments: BTreeMap<String, Option<String>>,
    /// The last serial number given in each scope (prefix and day).
    serials: std::collections::HashMap<String, u64>,
    /// Deadline alarms by due time: (at, pid, kind, deadline).
    alarms: BTreeSet<(i64, Pid, AlarmKind, i64)>,
    /// Each process's entries in `alarms` (to remove them without a scan).
    alarm_keys: std::collections::HashMap<Pid, Vec<(i64, Pid, AlarmKind, i64)>>,
    /// The step each process was at in its last history entry (for `from_step`).
    entry_steps: std::collections::HashMap<Pid, Option<Arc<str>>>,
    operators: BTreeMap<String, Operator>,
    /// Each department's leader.
    leaders: BTreeMap<String, String>,
    /// Each user's delegations (periods their work items go to a deputy).
    delegations: BTreeMap<String, Vec<Delegation>>,
    /// When an operator skipped for being off duty comes on duty: the dispatcher looks at
    /// the queue again then.
    duty_check: Option<i64>,
    /// Notifications made in this command, by process: the next entry carries them.
    notices: BTreeMap<Pid, Vec<Notice>>,
    load: BTreeMap<String, u32>,
    round_robin: BTreeMap<String, usize>,
    rng: u64,
    next_pid: Pid,
    aging_ms: i64,
    dirty: bool,
    out: Outcome,
}

impl Scheduler {
    /// An empty core. `aging_ms`: waiting this long in READY is worth one priority level.
    pub fn new(aging_ms: i64) -> Self {
        Self {
            services: BTreeMap::new(),
            pcbs: std::collections::HashMap::new(),
            ready: BTreeSet::new(),
            timers: BTreeSet::new(),
            pool: ResourcePool::default(),
            successors: BTreeMap::new(),
            notes: BTreeMap::new(),
            entry_steps: std::collections::HashMap::new(),
            alarms: BTreeSet::new(),
            alarm_keys: std::collections::HashMap::new(),
            serials: std::collections::HashMap::new(),
            departments: BTreeMap::new(),
            operators: BTreeMap::new(),
            leaders: BTreeMap::new(),
            delegations: BTreeMap::new(),
            notices: BTreeMap::new(),
            duty_check: None,
            load: BTreeMap::new(),
            round_robin: BTreeMap::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            next_pid: 1,
            aging_ms: aging_ms.max(1),
            dirty: false,
            out: Outcome::default(),
        }
    }

    /// Publishes a (validated) service version.
    pub fn publish(&mut self, service: Service) {
        self.services
            .entry(service.name.clone())
            .or_default()
            .insert(service.version, Arc::new(service));
    }

    /// Adds or replaces a resource.
    pub fn add_resource(&mut self, resource: Resource) {
        self.pool.upsert(resource);
        self.dirty = true;
    }

    /// Adds or replaces an operator.
    pub fn add_operator(&mut self, operator: Operator) {
        self.operators.insert(operator.id.clone(), operator);
        self.dirty = true;
    }

    /// Keeps process number `pid` taken without restoring the process (its stored row
    /// could not be read back): a new process must never reuse the number and overwrite it.
    pub fn reserve_pid(&mut self, pid: Pid) {
        self.next_pid = self.next_pid.max(pid.saturating_add(1));
    }

    /// Restores a process read back from storage (after a restart).
    pub fn restore(&mut self, pcb: Pcb) {
        self.next_pid = self.next_pid.max(pcb.id + 1);
        if pcb.state == ProcessState::Ready {
            self.ready.insert((self.key(&pcb), pcb.id));
        }
        if let Some(WaitReason::Timer { at_ms }) = &pcb.wait
            && matches!(
                pcb.state,
                ProcessState::Waiting | ProcessState::New | ProcessState::Suspended
            )
        {
            self.timers.insert((*at_ms, pcb.id));
        }
        self.pool.commit(pcb.id, &pcb.allocations);
        if pcb.state == ProcessState::New
            && let Some(p) = pcb.predecessor
        {
            self.successors.entry(p).or_default().push(pcb.id);
        }
        if pcb.state == ProcessState::Running
            && let Some(op) = &pcb.operator
        {
            *self.load.entry(op.to_string()).or_default() += 1;
        }
        self.entry_steps.insert(pcb.id, pcb.step.clone());
        if let Some((scope, n)) = pcb.serial.as_deref().and_then(SerialSpec::parse) {
            let last = self.serials.entry(scope.to_owned()).or_default();
            *last = (*last).max(n);
        }
        let alarms = self.alarms_for(&pcb, pcb.deadline_ms);
        self.alarms.extend(alarms.iter().copied());
        if !alarms.is_empty() {
            self.alarm_keys.insert(pcb.id, alarms);
        }
        self.pcbs.insert(pcb.id, pcb);
        self.dirty = true;
    }

    /// Every user, by id.
    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values()
    }

    /// How many steps a user is working on now.
    pub fn load_of(&self, id: &str) -> u32 {
        self.load.get(id).copied().unwrap_or(0)
    }

    /// Whether a user exists.
    pub fn has_operator(&self, id: &str) -> bool {
        self.operators.contains_key(id)
    }

    /// Adds (or moves) a department in the tree, with its leader.
    pub fn add_department(&mut self, name: &str, parent: Option<&str>, leader: Option<&str>) {
        self.departments
            .insert(name.to_owned(), parent.map(str::to_owned));
        match leader {
            Some(l) => self.leaders.insert(name.to_owned(), l.to_owned()),
            None => self.leaders.remove(name),
        };
        self.dirty = true;
    }

    /// Every department's name.
    pub fn departments(&self) -> impl Iterator<Item = &String> {
        self.departments.keys()
    }

    /// Whether a department exists.
    pub fn has_department(&self, name: &str) -> bool {
        self.departments.contains_key(name)
    }

    /// Whether department `member` is `department` or lies below it.
    pub fn within(&self, member: Option<&str>, department: &str) -> bool {
        let mut at = member;
        for _ in 0..=self.departments.len() {
            match at {
                Some(d) if d == department => return true,
                Some(d) => at = self.departments.get(d).and_then(|p| p.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// A process.
    pub fn pcb(&self, pid: Pid) -> Option<&Pcb> {
        self.pcbs.get(&pid)
    }

    /// Every process, in id order.
    pub fn pcbs(&self) -> impl Iterator<Item = &Pcb> {
        let mut all: Vec<&Pcb> = self.pcbs.values().collect();
        all.sort_unstable_by_key(|p| p.id);
        all.into_iter()
    }

    /// Every process, in no particular order (cheaper, for counts).
    pub fn pcbs_unordered(&self) -> impl Iterator<Item = &Pcb> {
        self.pcbs.values()
    }

    /// The resource pool.
    pub fn pool(&self) -> &ResourcePool {
        &self.pool
    }

    /// The READY processes in dispatch order.
    pub fn ready_queue(&self) -> Vec<Pid> {
        self.ready.iter().map(|(_, p)| *p).collect()
    }

    /// Every published service version, by name then version.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values().flat_map(|v| v.values())
    }

    /// The published version a start would take: `version`, or the newest.
    pub fn startable(&self, name: &str, version: Option<u32>) -> Option<Arc<Service>> {
        self.resolve(name, version).ok()
    }

    /// A published service version.
    pub fn service(&self, name: &str, version: u32) -> Option<&Arc<Service>> {
        self.services.get(name).and_then(|v| v.get(&version))
    }

    /// Applies a command at `now_ms`. On error nothing changed.
    pub fn apply(
        &mut self,
        command: Command,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<Outcome, CoreError> {
        self.out = Outcome::default();
        match command {
            Command::Start {
                service,
                version,
                priority,
                record,
                context,
                predecessor,
                start_at_ms,
                by,
            } => self.start(
                &service,
                version,
                priority,
                record,
                context,
                predecessor,
                start_at_ms,
                &by,
                now_ms,
                conditions,
            )?,
            Command::Complete {
                pid,
                transition,
                context,
                record,
                by,
            } => self.complete(pid, transition, context, record, &by, now_ms, conditions)?,
            Command::Signal {
                pid,
                event,
                payload,
                by,
            } => self.signal(pid, event, payload, &by, now_ms, conditions)?,
            Command::Suspend { pid, by, reason } => self.suspend(pid, &by, &reason, now_ms)?,
            Command::Resume { pid, by } => self.resume(pid, &by, now_ms)?,
            Command::SetAside {
                pid,
                user,
                reason,
                by,
            } => self.set_aside(pid, &user, &reason, &by, now_ms)?,
            Command::TakeUp { pid, user, by } => self.take_up(pid, &user, &by, now_ms)?,
            Command::Terminate { pid, by, reason } => {
                self.end(pid, ExitStatus::Cancelled, &by, &reason, now_ms, conditions)?
            }
            Command::Fail { pid, by, reason } => {
                self.end(pid, ExitStatus::Failed, &by, &reason, now_ms, conditions)?
            }
            Command::SetPriority { pid, priority, by } => {
                self.set_priority(pid, priority, &by, now_ms)?
            }
            Command::Migrate {
                pid,
                version,
                steps,
                by,
            } => self.migrate(pid, version, &steps, &by, now_ms)?,
            Command::Assign { pid, user, by } => self.assign(pid, user, &by, now_ms)?,
            Command::Allocate {
                pid,
                resource,
                quantity,
                by,
            } => self.allocate(pid, resource, quantity, &by, now_ms)?,
            Command::Release { pid, resource, by } => self.release(pid, resource, &by, now_ms)?,
            Command::TakeTransition {
                pid,
                transition,
                by,
            } => self.take_transition(pid, transition, &by, now_ms, conditions)?,
            Command::Claim { pid, user, by } => self.claim(pid, &user, &by, now_ms)?,
            Command::Handle(action) => self.handle(*action, now_ms, conditions)?,
            Command::Forward {
                pid,
                user,
                to,
                reason,
                by,
            } => self.forward(pid, &user, &to, &reason, &by, now_ms)?,
            Command::AddSigner {
                pid,
                user,
                signer,
                reason,
                by,
            } => self.add_signer(pid, &user, &signer, &reason, &by, now_ms)?,
            Command::Return {
                pid,
                step,
                to_last_handler,
                reason,
                by,
            } => self.return_to(
                pid,
                &step,
                to_last_handler,
                &reason,
                &by,
                now_ms,
                conditions,
            )?,
            Command::Withdraw { pid, reason, by } => {
                self.withdraw(pid, &reason, &by, now_ms, conditions)?
            }
            Command::ChangeState {
                pid,
                step,
                reason,
                by,
            } => self.change_state(pid, &step, &reason, &by, now_ms, conditions)?,
            Command::Rebook {
                pid,
                booking,
                start_at_ms,
                by,
            } => self.rebook(pid, booking, start_at_ms, &by, now_ms, conditions)?,
            Command::Tick => self.tick(now_ms, conditions),
        }
        self.dispatch(now_ms, conditions);
        // A quiet change must reach the history: any not carried by a later entry gets its own.
        for (pid, note) in std::mem::take(&mut self.notes) {
            if let Some(state) = self.pcbs.get(&pid).map(|p| p.state) {
                self.push_entry(pid, state, state, "scheduler", now_ms, &note);
            }
        }
        Ok(std::mem::take(&mut self.out))
    }

    fn get(&self, pid: Pid) -> Result<&Pcb, CoreError> {
        self.pcbs.get(&pid).ok_or(CoreError::NoProcess(pid))
    }

    fn resolve(&self, name: &str, version: Option<u32>) -> Result<Arc<Service>, CoreError> {
        let versions = self
            .services
            .get(name)
            .ok_or_else(|| CoreError::NoService(name.to_owned()))?;
        let found = match version {
            Some(v) => versions.get(&v),
            None => versions.values().next_back(),
        };
        found
            .cloned()
            .ok_or_else(|| CoreError::NoService(format!("{name} v{}", version.unwrap_or(0))))
    }

    fn service_of(&self, pcb: &Pcb) -> Result<Arc<Service>, CoreError> {
        self.resolve(&pcb.service, Some(pcb.version))
    }

    fn current_step(&self, pcb: &Pcb) -> Result<Step, CoreError> {
        let svc = self.service_of(pcb)?;
        pcb.step
            .as_ref()
            .and_then(|s| svc.step(s))
            .cloned()
            .ok_or_else(|| CoreError::WrongState {
                pid: pcb.id,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: "it is at no step".into(),
            })
    }

    fn check_move(&self, pcb: &Pcb, to: ProcessState) -> Result<(), CoreError> {
        if pcb.state.can_move_to(to) {
            Ok(())
        } else {
            Err(CoreError::IllegalMove {
                pid: pcb.id,
                from: pcb.state,
                to,
                allowed: pcb.state.allowed_moves().to_vec(),
            })
        }
    }

    /// Checks the core's invariants; an empty list means all hold. Used by tests after
    /// every command.
    pub fn check_invariants(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .pool
            .over_allocated()
            .into_iter()
            .map(|r| format!("{r} over-allocated"))
            .collect();
        for (r, pid, _) in self.pool.allocations() {
            match self.pcbs.get(&pid) {
                Some(p) if p.state == ProcessState::Terminated => {
                    out.push(format!("{r} held by terminated {pid}"))
                }
                None => out.push(format!("{r} held by unknown {pid}")),
                _ => {}
            }
        }
        for p in self.pcbs.values() {
            let queued = self.ready.iter().any(|(_, q)| *q == p.id);
            if (p.state == ProcessState::Ready) != queued {
                out.push(format!("{} is {:?} but queued={queued}", p.id, p.state));
            }
            if p.state == ProcessState::Running && p.operator.is_none() {
                out.push(format!("{} RUNNING without operator", p.id));
            }
        }
        // Nobody works over their capacity (a resumed or set-aside task included).
        for (id, load) in &self.load {
            if let Some(o) = self.operators.get(id)
                && *load > o.capacity
            {
                out.push(format!("{id} has {load} tasks, capacity {}", o.capacity));
            }
        }
        out
    }
}

/// Merges a caller's context variables into a process's context, leaving out `record`
/// and `booking`: the bound record is only ever read from storage (at the start, with each
/// handling and completion), and the booking only ever set by the kernel when a visit is
/// booked or moved, so no caller can make conditions see values the record does not hold
/// nor move a booked step onto another room.
pub fn merge_context(target: &mut Json, patch: &Json) {
    if let (Json::Object(t), Json::Object(p)) = (target, patch) {
        for (k, v) in p
            .iter()
            .filter(|(k, _)| k.as_str() != "record" && k.as_str() != "booking")
        {
            merge(t.entry(k.clone()).or_insert(Json::Null), v);
        }
    }
}

/// Merges a JSON object into another (objects recursively; anything else replaces).
pub fn merge(target: &mut Json, patch: &Json) {
    match (target, patch) {
        (Json::Object(t), Json::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}
