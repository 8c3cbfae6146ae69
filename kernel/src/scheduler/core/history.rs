//! The history: every change of a PCB goes through here, so that every change is recorded.
//! A move of state ([`Scheduler::move_to`], legal moves only, keeping the ready queue in
//! step), a change of fields with an entry of its own ([`Scheduler::mutate`]), or a quiet
//! change that the next entry of the process carries ([`Scheduler::quiet`]). Each entry
//! holds the PCB as it is after the change.
//!
//! Part of the scheduler core: pure, no I/O, no clock. Nothing here decides anything: it
//! records what the command families decided, in the order they decided it. It must never
//! make a move the table of legal moves does not allow, nor drop a change without an entry
//! (a quiet note not carried by a later entry gets its own at the end of the command).

use crate::scheduler::pcb::{HistoryEntry, Pcb, Pid, ProcessState, WaitReason};

use super::Scheduler;

impl Scheduler {
    /// Appends a history entry for the PCB as it is now.
    pub(super) fn push_entry(
        &mut self,
        pid: Pid,
        from: ProcessState,
        to: ProcessState,
        by: &str,
        now_ms: i64,
        reason: &str,
    ) {
        let reason = match self.notes.remove(&pid) {
            Some(mut note) if note != reason => {
                note.push_str("; ");
                note.push_str(reason);
                note
            }
            _ => reason.to_owned(),
        };
        if let Some(pcb) = self.pcbs.get_mut(&pid) {
            pcb.version_no += 1;
            let from_step = if pcb.state == ProcessState::Terminated {
                self.entry_steps.remove(&pid).flatten()
            } else {
                self.entry_steps.insert(pid, pcb.step.clone()).flatten()
            };
            let entry = HistoryEntry {
                from_step,
                pid,
                seq: pcb.version_no,
                at_ms: now_ms,
                by: by.to_owned(),
                from,
                to,
                reason,
                after: pcb.clone(),
                notices: self.notices.remove(&pid).unwrap_or_default(),
            };
            self.out.entries.push(entry);
        }
    }

    /// Changes fields (not the state) of a PCB and records it.
    pub(super) fn mutate(
        &mut self,
        pid: Pid,
        by: &str,
        now_ms: i64,
        reason: &str,
        change: impl FnOnce(&mut Pcb),
    ) {
        let Some(pcb) = self.pcbs.get_mut(&pid) else {
            return;
        };
        change(pcb);
        let state = pcb.state;
        self.push_entry(pid, state, state, by, now_ms, reason);
    }

    /// Changes fields of a PCB without an entry of its own: the next entry for the process
    /// (in this command) carries the change and `note` in its reason. Used where one
    /// logical transition touches a PCB several times.
    pub(super) fn quiet(&mut self, pid: Pid, note: &str, change: impl FnOnce(&mut Pcb)) {
        self.quiet_with(pid, |n| n.push_str(note), change);
    }

    /// `quiet` with the note written straight into the pending note (no intermediate string:
    /// this runs for every step a process enters).
    pub(super) fn quiet_with(
        &mut self,
        pid: Pid,
        write: impl FnOnce(&mut String),
        change: impl FnOnce(&mut Pcb),
    ) {
        let Some(pcb) = self.pcbs.get_mut(&pid) else {
            return;
        };
        change(pcb);
        let n = self.notes.entry(pid).or_default();
        if !n.is_empty() {
            n.push_str("; ");
        }
        write(n);
    }

    /// Sets what a process waits for, recorded as a change of its own.
    pub(super) fn set_wait(
        &mut self,
        pid: Pid,
        wait: Option<WaitReason>,
        by: &str,
        now_ms: i64,
        reason: &str,
    ) {
        self.mutate(pid, by, now_ms, reason, |p| p.wait = wait);
    }

    /// Moves a process to another state (a legal move only) and records it, keeping the
    /// ready queue in step with the state.
    pub(super) fn move_to(
        &mut self,
        pid: Pid,
        to: ProcessState,
        by: &str,
        now_ms: i64,
        reason: &str,
        change: impl FnOnce(&mut Pcb),
    ) {
        let aging = self.aging_ms;
        let Some(pcb) = self.pcbs.get_mut(&pid) else {
            return;
        };
        let from = pcb.state;
        if from != to && !from.can_move_to(to) {
            // Internal moves are chosen from the table; reaching here is a bug. Refuse it
            // loudly in tests, and leave the process as it is in production.
            debug_assert!(false, "illegal internal move {from:?} -> {to:?} for {pid}");
            return;
        }
        if from == ProcessState::Ready {
            let key = pcb
                .ready_since_ms
                .unwrap_or(0)
                .saturating_sub(i64::from(pcb.priority).saturating_mul(aging));
            self.ready.remove(&(key, pid));
        }
        pcb.state = to;
        change(pcb);
        if to == ProcessState::Ready {
            if from != ProcessState::Ready && from != ProcessState::Suspended {
                pcb.ready_since_ms = Some(now_ms);
            }
            let key = pcb
                .ready_since_ms
                .unwrap_or(0)
                .saturating_sub(i64::from(pcb.priority).saturating_mul(aging));
            self.ready.insert((key, pid));
            self.dirty = true;
        } else if from == ProcessState::Suspended || to != ProcessState::Suspended {
            pcb.ready_since_ms = None;
        }
        self.push_entry(pid, from, to, by, now_ms, reason);
    }
}
