//! The process control block and its states: what the kernel knows about one running
//! business process, and the one table of legal moves between states.
//!
//! Every change to a PCB is an appended `HistoryEntry` carrying the state it leaves the PCB
//! in, so replaying the history rebuilds the PCB exactly. Nothing here decides anything;
//! the scheduler does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A process id: unique, assigned by the scheduler in creation order (never last+1 read
/// from a table: the scheduler owns the counter, so concurrent starts cannot collide).
pub type Pid = u64;

/// The six states of a process (an OS process's, with operators and resources as the
/// processors).
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
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessState {
    /// Created, not yet admitted (its start time has not come).
    New,
    /// Could proceed now; queued for an operator and the step's resources.
    Ready,
    /// Dispatched: operator and resources allocated, the step is being worked on.
    Running,
    /// Blocked on something other than dispatch: an event, a timer, children.
    Waiting,
    /// Taken out of scheduling by a person or a rule; resumes to where it was.
    Suspended,
    /// Completed, cancelled or failed.
    Terminated,
}

impl ProcessState {
    /// Every state.
    pub const ALL: [ProcessState; 6] = [
        ProcessState::New,
        ProcessState::Ready,
        ProcessState::Running,
        ProcessState::Waiting,
        ProcessState::Suspended,
        ProcessState::Terminated,
    ];

    /// The states this one may move to: the only table of legal moves in erpos.
    pub fn allowed_moves(self) -> &'static [ProcessState] {
        use ProcessState as S;
        match self {
            S::New => &[S::Ready, S::Waiting, S::Suspended, S::Terminated],
            S::Ready => &[S::Running, S::Waiting, S::Suspended, S::Terminated],
            S::Running => &[S::Ready, S::Waiting, S::Suspended, S::Terminated],
            S::Waiting => &[S::Ready, S::Suspended, S::Terminated],
            S::Suspended => &[S::New, S::Ready, S::Running, S::Waiting, S::Terminated],
            S::Terminated => &[],
        }
    }

    /// Whether moving from `self` to `to` is legal.
    pub fn can_move_to(self, to: ProcessState) -> bool {
        self.allowed_moves().contains(&to)
    }
}

/// How a terminated process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It reached an end step.
    Completed,
    /// A person, a rule or its parent cancelled it.
    Cancelled,
    /// Something it depended on failed.
    Failed,
}

/// Why a process is not running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitReason {
    /// READY, but the step's resources cannot all be allocated now.
    Resource {
        /// The resource types it waits for.
        types: Vec<String>,
    },
    /// READY, but no operator who may handle the step is free.
    Operator,
    /// WAITING for a named event.
    Event {
        /// The event name.
        name: String,
    },
    /// WAITING (or NEW) until a moment, in milliseconds since the Unix epoch.
    Timer {
        /// When it wakes.
        at_ms: i64,
    },
    /// WAITING for child processes (sub-service, parallel branches).
    Children,
    /// SUSPENDED by its own operator for other work (a context switch), with the resources
    /// it let go of (those its step does not hold while waiting).
    SetAside {
        /// The operator who set it aside and takes it up again.
        by: String,
        /// The resources released (empty: it kept all it held).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        released: Vec<String>,
    },
    /// WAITING at a step that cannot start: one of its `requires` does not hold (the
    /// treatment without a signed consent form). Nothing re-checks it by itself: someone
    /// moves the process (back to the consent step, with `jump`).
    Requirement {
        /// The condition that does not hold.
        condition: String,
        /// What staff are told.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<erpos_design::Label>,
    },
}

/// A resource allocation held by a process.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Allocation {
    /// The resource instance.
    pub resource: String,
    /// How many units.
    pub quantity: u32,
    /// Kept while the process waits inside the step.
    pub hold_while_waiting: bool,
}

/// The process control block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pcb {
    /// The process id.
    pub id: Pid,
    /// The service it runs (shared: every history snapshot carries it).
    pub service: std::sync::Arc<str>,
    /// The service version it runs (kept for its whole life).
    pub version: u32,
    /// The process that started it (sub-service or parallel branch), if any.
    pub parent: Option<Pid>,
    /// The process it follows in a sequential chain, if any.
    pub predecessor: Option<Pid>,
    /// The bound business record: (DataItem, record id).
    pub record: Option<(String, String)>,
    /// Where it is.
    pub state: ProcessState,
    /// How it ended (TERMINATED only).
    pub exit: Option<ExitStatus>,
    /// The state it was suspended from (SUSPENDED only).
    pub suspended_from: Option<ProcessState>,
    /// Base priority (higher first).
    pub priority: i32,
    /// The step it is at (None once terminated).
    pub step: Option<std::sync::Arc<str>>,
    /// For a parallel branch: the join step where the branch ends.
    pub join: Option<String>,
    /// The operator handling the current step.
    pub operator: Option<std::sync::Arc<str>>,
    /// Resources held.
    pub allocations: Vec<Allocation>,
    /// Context variables. Shared (`Arc`): history entries snapshot the PCB many times, and
    /// the context only changes when a step or a signal writes to it (copy on write).
    pub context: std::sync::Arc<Json>,
    /// Why it is not running.
    pub wait: Option<WaitReason>,
    /// When the current step is due (ms since epoch).
    pub deadline_ms: Option<i64>,
    /// When it became READY (ms), the base of its aging.
    pub ready_since_ms: Option<i64>,
    /// Children still running (sub-service or branches).
    pub children: Vec<Pid>,
    /// Number of changes so far (the history length).
    pub version_no: u64,
    /// The user the current step was given to (a reassignment): only they are dispatched
    /// to it. Cleared when the step is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<std::sync::Arc<str>>,
    /// The number people use for it (`LEAVE-20261121-0007`), if its service numbers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The user who started it (a child process inherits its parent's): the applicant who
    /// may withdraw it, whose leader a step may go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<std::sync::Arc<str>>,
    /// When it was created (ms since epoch).
    #[serde(default)]
    pub created_ms: i64,
    /// Counts the steps entered: work items carry the visit they belong to, so the votes
    /// of a step entered twice are never mixed.
    #[serde(default)]
    pub visit: u32,
    /// Every work item the process has had, in creation order (`id` is the position + 1).
    /// Shared (`Arc`) like the context: every history entry snapshots the PCB, and the items
    /// only change when someone acts on the step (copy on write).
    #[serde(default, skip_serializing_if = "no_work")]
    pub work: std::sync::Arc<Vec<WorkItem>>,
    /// Who handled each human step the last time it was completed (for a return to it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handlers: BTreeMap<String, Vec<String>>,
    /// The iteration its current `sub_service` step runs (the entries, how far it is,
    /// which child runs which entry), while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<Iteration>,
}

/// Where an iterating sub-service call stands: a call frame over many children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// The entries, one child each (`0..times` for a count).
    pub entries: Vec<Json>,
    /// How many children have been started.
    pub started: usize,
    /// Which entry each running child runs.
    pub running: BTreeMap<Pid, usize>,
}

fn no_work(work: &std::sync::Arc<Vec<WorkItem>>) -> bool {
    work.is_empty()
}

/// Where a work item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// In a claim pool: every candidate sees it, the first to claim it handles it.
    Offered,
    /// To do.
    Open,
    /// Sent to an added signer; it comes back when they have acted.
    Waiting,
    /// Acted on (see `action`).
    Done,
    /// No longer needed: claimed by someone else, decided by the others, the step left.
    Closed,
}

impl ItemState {
    /// Whether the item still asks something of its user.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            ItemState::Offered | ItemState::Open | ItemState::Waiting
        )
    }
}

/// Why a person holds a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemRole {
    /// Handles the step: their decision moves the process.
    Handler,
    /// One vote of a committee (policy `all`).
    Voter,
    /// An added signer: acts, then the item goes back to whoever asked.
    Signer,
}

/// A human step's task for one person (loonflow's ticket in someone's to-do list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Its number within the process (1-based).
    pub id: u32,
    /// The step.
    pub step: std::sync::Arc<str>,
    /// The step visit it belongs to (`Pcb::visit` when it was made).
    pub visit: u32,
    /// Who it is for.
    pub user: std::sync::Arc<str>,
    /// The person it was meant for when a delegation sent it to `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<std::sync::Arc<str>>,
    /// Why they hold it.
    pub role: ItemRole,
    /// For a signer: the item that waits for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_item: Option<u32>,
    /// Where it is.
    pub state: ItemState,
    /// What was done: agree, reject, other, claimed, forwarded, signed, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The comment or reason given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who acted, when not `user` (an administrator handling it for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted_by: Option<String>,
    /// When it was made (ms).
    pub created_ms: i64,
    /// When it was done or closed (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
}

/// A notification a change sends (a step's to-do or finished template), written to the
/// outbox in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The users.
    pub to: Vec<String>,
    /// The rendered title.
    pub title: String,
    /// The rendered body.
    pub body: String,
}

/// One change to a PCB: who, when, from, to, why, and the PCB's fields after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The process.
    pub pid: Pid,
    /// Position in the process's history (1-based).
    pub seq: u64,
    /// When (ms since epoch).
    pub at_ms: i64,
    /// Who caused it (a user, `scheduler`, `timer`, a rule).
    pub by: String,
    /// The state before.
    pub from: ProcessState,
    /// The state after (equal to `from` for a step change within a state).
    pub to: ProcessState,
    /// Why, in words.
    pub reason: String,
    /// The step the process was at in its previous entry (step entered / left events
    /// compare it with `after.step`). Not stored: replayed entries leave it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step: Option<std::sync::Arc<str>>,
    /// The PCB after the change.
    pub after: Pcb,
    /// Notifications to send with it (written to the outbox with the entry; not stored).
    #[serde(default, skip)]
    pub notices: Vec<Notice>,
}

impl Pcb {
    /// The branch the process stands in (issue 14 §9): its booking's (a booked visit),
    /// else the `branch` it was started in (a walk-in at a branch's desk; a sub-service
    /// inherits its caller's); None for a process of no branch. Its work goes to that
    /// branch's staff, its steps take that branch's rooms, and its lists are that branch's.
    pub fn branch(&self) -> Option<&str> {
        match self.context.pointer("/booking/branch") {
            Some(Json::String(b)) => Some(b),
            _ => self.context.get("branch").and_then(Json::as_str),
        }
    }

    /// The work items, to change: copied first if a history snapshot still shares them
    /// (copy on write), so a snapshot never sees a later change.
    pub fn work_mut(&mut self) -> &mut Vec<WorkItem> {
        std::sync::Arc::make_mut(&mut self.work)
    }

    /// Rebuilds a PCB from its history: the state after the last entry, checked to be a
    /// chain of legal moves with consecutive sequence numbers. None if the history is
    /// empty or broken.
    pub fn replay(history: &[HistoryEntry]) -> Option<Pcb> {
        let mut current: Option<Pcb> = None;
        for (i, entry) in history.iter().enumerate() {
            if entry.seq != i as u64 + 1 {
                return None;
            }
            if let Some(prev) = &current
                && (prev.state != entry.from
                    || (entry.from != entry.to && !entry.from.can_move_to(entry.to)))
            {
                return None;
            }
            current = Some(entry.after.clone());
        }
        current
    }
}

/// Counts of processes by state, for the queues view.
pub fn count_by_state<'a>(pcbs: impl Iterator<Item = &'a Pcb>) -> BTreeMap<ProcessState, usize> {
    let mut out: BTreeMap<ProcessState, usize> =
        ProcessState::ALL.iter().map(|s| (*s, 0)).collect();
    for p in pcbs {
        *out.entry(p.state).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminated_is_final_and_nothing_moves_to_itself() {
        assert!(ProcessState::Terminated.allowed_moves().is_empty());
        for s in ProcessState::ALL {
            assert!(!s.can_move_to(s), "{s:?} must not list itself");
            assert!(
                s == ProcessState::Terminated || s.can_move_to(ProcessState::Terminated),
                "{s:?} cannot be terminated"
            );
        }
        assert!(!ProcessState::Waiting.can_move_to(ProcessState::Running));
        assert!(!ProcessState::New.can_move_to(ProcessState::Running));
    }
}
