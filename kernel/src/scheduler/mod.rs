//! The scheduler: PCBs, the legal moves between their states, resources and operators, and
//! the pure core that decides every move. The async runtime, storage and API sit around it.

pub mod core;
pub mod pcb;
pub mod resources;

pub use self::core::{
    Alarm, AlarmKind, Command, Conditions, CoreError, Delegation, Effect, HandleAction, Outcome,
    Scheduler,
};
pub use pcb::{
    ExitStatus, HistoryEntry, ItemRole, ItemState, Iteration, Notice, Pcb, Pid, ProcessState,
    WaitReason, WorkItem,
};
pub use resources::{Operator, Resource, ResourcePool};
