//! A process's life as a whole: suspend and resume (the process and its children, as one
//! tree), terminate and fail, and what follows an end — the parent told its child ended
//! (a parallel branch joined, a sub-service returned, or a failure passed up), and the
//! successors waiting for this process started.
//!
//! Part of the scheduler core: pure, no I/O, no clock. The commands here check everything
//! before they change anything, so a refused one leaves the core as it was; the moves they
//! make are only legal ones (the PCB's table), and an ended process is never touched again.

use super::steps::{choose, find_join};
use super::{Conditions, CoreError, Scheduler, work};
use crate::scheduler::pcb::{ExitStatus, Pid, ProcessState, WaitReason};
use erpos_design::service::StepKind;

impl Scheduler {
    /// `Command::Suspend`: takes the process (and its children) out of scheduling.
    pub(super) fn suspend(
        &mut self,
        pid: Pid,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        self.check_move(pcb, ProcessState::Suspended)?;
        self.out.pid = Some(pid);
        self.suspend_tree(pid, by, now_ms, reason);
        Ok(())
    }

    /// `Command::Resume`: returns a suspended process (and its children) to where it was.
    pub(super) fn resume(&mut self, pid: Pid, by: &str, now_ms: i64) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        if pcb.state != ProcessState::Suspended {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: "only a SUSPENDED process can be resumed".into(),
            });
        }
        self.out.pid = Some(pid);
        self.resume_tree(pid, by, now_ms);
        Ok(())
    }

    /// `Command::SetAside`: the operator puts her running human step aside for other work.
    pub(super) fn set_aside(
        &mut self,
        pid: Pid,
        user: &str,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let human = self
            .current_step(pcb)
            .is_ok_and(|s| s.kind == StepKind::Human);
        if pcb.state != ProcessState::Running || !human || pcb.operator.as_deref() != Some(user) {
            return Err(self.refuse(
                pcb,
                format!(
                    "only a RUNNING human step can be set aside, by its operator ('{user}' is not running it)"
                ),
            ));
        }
        let (kept, freed): (Vec<_>, Vec<_>) = pcb
            .allocations
            .iter()
            .cloned()
            .partition(|a| a.hold_while_waiting);
        self.pool.release(pid, &freed);
        if let Some(l) = self.load.get_mut(user) {
            *l = l.saturating_sub(1);
        }
        self.dirty = true;
        self.out.pid = Some(pid);
        let wait = WaitReason::SetAside {
            by: user.to_owned(),
            released: freed.iter().map(|a| a.resource.clone()).collect(),
        };
        let note = if reason.is_empty() {
            format!("set aside by {user}")
        } else {
            format!("set aside by {user}: {reason}")
        };
        self.move_to(pid, ProcessState::Suspended, by, now_ms, &note, |p| {
            p.suspended_from = Some(ProcessState::Running);
            p.allocations = kept;
            p.wait = Some(wait);
        });
        Ok(())
    }

    /// `Command::TakeUp`: the operator takes up what she set aside, if she has room for it.
    pub(super) fn take_up(
        &mut self,
        pid: Pid,
        user: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let hers = pcb.state == ProcessState::Suspended
            && matches!(&pcb.wait, Some(WaitReason::SetAside { by, .. }) if by == user);
        if !hers {
            return Err(self.refuse(
                pcb,
                format!("only what '{user}' set aside can be taken up by her"),
            ));
        }
        if !self.has_room(user) {
            return Err(self.refuse(
                pcb,
                format!("'{user}' is at her capacity: finish or set aside what she is doing first"),
            ));
        }
        self.out.pid = Some(pid);
        self.resume_tree(pid, by, now_ms);
        Ok(())
    }

    /// Whether `user` can take one more task now.
    pub(super) fn has_room(&self, user: &str) -> bool {
        let load = self.load.get(user).copied().unwrap_or(0);
        self.operators.get(user).is_some_and(|o| load < o.capacity)
    }

    /// `Command::Terminate` (`exit` cancelled) and `Command::Fail` (`exit` failed): ends the
    /// process and its children.
    pub(super) fn end(
        &mut self,
        pid: Pid,
        exit: ExitStatus,
        by: &str,
        reason: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        self.check_move(pcb, ProcessState::Terminated)?;
        self.out.pid = Some(pid);
        self.terminate(pid, exit, by, now_ms, reason, conditions);
        Ok(())
    }

    /// Ends a process (its children first, cancelled), releasing what it holds, then tells
    /// its parent and starts the successors that waited for it. Ending an ended process
    /// does nothing.
    pub(super) fn terminate(
        &mut self,
        pid: Pid,
        exit: ExitStatus,
        by: &str,
        now_ms: i64,
        reason: &str,
        conditions: &dyn Conditions,
    ) {
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        if pcb.state == ProcessState::Terminated {
            return;
        }
        let children: Vec<Pid> = pcb.children.clone();
        let parent = pcb.parent;
        let was_running = pcb.state == ProcessState::Running;
        for child in children {
            self.terminate(
                child,
                ExitStatus::Cancelled,
                by,
                now_ms,
                "parent ended",
                conditions,
            );
        }
        if was_running {
            self.leave_dispatched(pid, by, now_ms, "released on termination");
        } else if let Some(p) = self.pcbs.get(&pid) {
            let allocations = p.allocations.clone();
            self.pool.release(pid, &allocations);
        }
        self.timers.retain(|(_, p)| *p != pid);
        self.dirty = true;
        self.move_to(pid, ProcessState::Terminated, by, now_ms, reason, |p| {
            p.exit = Some(exit);
            p.step = None;
            p.wait = None;
            p.allocations.clear();
            p.operator = None;
            p.suspended_from = None;
            p.deadline_ms = None;
            p.assignee = None;
            work::close_pending(p, "process ended", now_ms);
        });
        self.set_alarms(pid, None);
        if let Some(parent) = parent {
            self.child_ended(parent, pid, exit, "ended", now_ms, conditions);
        }
        let successors: Vec<Pid> = self
            .successors
            .remove(&pid)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| {
                self.pcbs
                    .get(s)
                    .is_some_and(|p| p.state == ProcessState::New && p.wait.is_none())
            })
            .collect();
        for s in successors {
            let first = self
                .pcbs
                .get(&s)
                .and_then(|p| self.service_of(p).ok())
                .and_then(|svc| svc.start().map(|st| st.name.clone()));
            if let Some(first) = first {
                self.enter(s, &first, "scheduler", now_ms, conditions, 0);
            }
        }
    }

    /// A child has ended: the parent forgets it, fails if the child did not complete, and
    /// moves on once its last child is done.
    pub(super) fn child_ended(
        &mut self,
        parent: Pid,
        child: Pid,
        exit: ExitStatus,
        how: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) {
        let Some(p) = self.pcbs.get(&parent) else {
            return;
        };
        if p.state == ProcessState::Terminated || !p.children.contains(&child) {
            // Ended, or a child it let go (an iteration complete before every child ran).
            return;
        }
        if let super::calls::Returned::Handled =
            self.returned(parent, child, exit, now_ms, conditions)
        {
            return;
        }
        self.mutate(
            parent,
            "scheduler",
            now_ms,
            &format!("child {child} {how} ({exit:?})"),
            |p| p.children.retain(|c| *c != child),
        );
        let Some(p) = self.pcbs.get(&parent) else {
            return;
        };
        if exit != ExitStatus::Completed {
            self.terminate(
                parent,
                ExitStatus::Failed,
                "scheduler",
                now_ms,
                &format!("child {child} did not complete"),
                conditions,
            );
            return;
        }
        if !p.children.is_empty()
            || p.state != ProcessState::Waiting
            || p.wait != Some(WaitReason::Children)
        {
            return;
        }
        let (Ok(svc), Ok(step)) = (self.service_of(p), self.current_step(p)) else {
            return;
        };
        let view = p.clone();
        self.quiet(parent, "children done", |p| {
            p.wait = None;
            p.iteration = None;
        });
        let next = if step.kind == StepKind::Parallel {
            svc.outgoing(&step.name)
                .next()
                .and_then(|t| find_join(&svc, &t.to))
                .ok_or_else(|| "the parallel split has no join".to_owned())
        } else {
            choose(&svc, &step, None, &view, conditions).map_err(|e| e.to_string())
        };
        match next {
            Ok(next) => self.enter(parent, &next, "scheduler", now_ms, conditions, 0),
            Err(e) => self.terminate(
                parent,
                ExitStatus::Failed,
                "scheduler",
                now_ms,
                &e,
                conditions,
            ),
        }
    }

    /// Suspends a process and (below it) its children, where the move is legal.
    fn suspend_tree(&mut self, pid: Pid, by: &str, now_ms: i64, reason: &str) {
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        if !pcb.state.can_move_to(ProcessState::Suspended) {
            return;
        }
        let children = pcb.children.clone();
        let from = pcb.state;
        if from == ProcessState::Running
            && let Some(op) = &pcb.operator
            && let Some(l) = self.load.get_mut(&**op)
        {
            // A context switch: the operator is free for other work; the process keeps its
            // resources and comes back to the same operator.
            *l = l.saturating_sub(1);
            self.dirty = true;
        }
        self.move_to(pid, ProcessState::Suspended, by, now_ms, reason, |p| {
            p.suspended_from = Some(from)
        });
        for c in children {
            self.suspend_tree(c, by, now_ms, "parent suspended");
        }
    }

    /// Resumes a suspended process and its children to the state each was in.
    fn resume_tree(&mut self, pid: Pid, by: &str, now_ms: i64) {
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        if pcb.state != ProcessState::Suspended {
            return;
        }
        let back = pcb.suspended_from.unwrap_or(ProcessState::Ready);
        let children = pcb.children.clone();
        let operator = pcb.operator.clone();
        let released = matches!(&pcb.wait, Some(WaitReason::SetAside { released, .. }) if !released.is_empty());
        let set_aside = matches!(&pcb.wait, Some(WaitReason::SetAside { .. }));
        match (back, operator) {
            (ProcessState::Running, Some(op)) if self.has_room(&op) && !released => {
                *self.load.entry(op.to_string()).or_default() += 1;
                self.move_to(pid, back, by, now_ms, "resumed", |p| {
                    p.suspended_from = None;
                    if set_aside {
                        p.wait = None;
                    }
                });
            }
            (ProcessState::Running, Some(op)) => {
                // She has no room for it now, or it let its resources go: it queues for
                // her, and the dispatcher gives it back with all it needs, all or nothing.
                let allocations = pcb.allocations.clone();
                self.pool.release(pid, &allocations);
                self.dirty = true;
                self.move_to(
                    pid,
                    ProcessState::Ready,
                    by,
                    now_ms,
                    "resumed: queued for its operator",
                    |p| {
                        p.suspended_from = None;
                        p.wait = None;
                        p.allocations.clear();
                        p.operator = None;
                        p.assignee = Some(op.clone());
                        p.ready_since_ms = Some(now_ms);
                        work::close_pending(p, "queued again", now_ms);
                    },
                );
            }
            _ => {
                self.move_to(pid, back, by, now_ms, "resumed", |p| {
                    p.suspended_from = None
                });
            }
        }
        for c in children {
            self.resume_tree(c, by, now_ms);
        }
    }
}
