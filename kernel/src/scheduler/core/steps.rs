//! Steps: entering one and leaving it. Entering takes the state the step's kind asks for —
//! queued for dispatch (human, automatic), waiting (an event, a timer, children), or passed
//! straight through (gateways, joins, the end) — and creates the children of sub-service
//! and parallel steps. Leaving is `Complete` (a running step done), `Signal` (the event a
//! wait step waits for) and `TakeTransition` (an escalation); [`choose`] picks the way on.
//!
//! Part of the scheduler core: pure, no I/O, no clock. Conditions are evaluated only
//! through [`Conditions`], never here; a way on that cannot be chosen refuses the command
//! (or, inside the core, fails the process) — never a guess. Chains of instant steps are
//! bounded ([`MAX_INSTANT_STEPS`]), so a badly drawn service cannot loop forever.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use erpos_design::service::{Service, Step, StepKind};
use serde_json::{Value as Json, json};

use super::timers::iso_seconds;
use super::{Conditions, CoreError, DEFAULT_PRIORITY, Scheduler, merge, merge_context, work};
use crate::scheduler::pcb::{ExitStatus, Pcb, Pid, ProcessState, WaitReason};

/// Deepest chain of instant steps (gateways) followed in one command; beyond it the process
/// is failed rather than looping forever.
const MAX_INSTANT_STEPS: usize = 256;

impl Scheduler {
    /// `Command::Complete`: finishes the current (running) step by a transition, with the
    /// caller's context variables and the stored record.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn complete(
        &mut self,
        pid: Pid,
        transition: Option<String>,
        context: Option<Json>,
        record: Option<Json>,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let step = self.current_step(pcb)?;
        if pcb.state != ProcessState::Running || !step.kind.is_dispatched() {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: "only a RUNNING human or automatic step can be completed".into(),
            });
        }
        let svc = self.service_of(pcb)?;
        let mut pcb_view = pcb.clone();
        let bound = pcb.record.is_some();
        let update = |ctx: &mut Json| {
            if let Some(patch) = &context {
                merge_context(ctx, patch);
            }
            if let (true, Some(r)) = (bound, &record) {
                ctx["record"] = r.clone();
            }
        };
        update(Arc::make_mut(&mut pcb_view.context));
        let next = choose(&svc, &step, transition.as_deref(), &pcb_view, conditions)?;
        self.out.pid = Some(pid);
        if context.is_some() || (bound && record.is_some()) {
            self.quiet(pid, "context updated", |p| {
                update(Arc::make_mut(&mut p.context))
            });
        }
        self.leave_dispatched(pid, by, now_ms, "step completed");
        self.go(pid, next, by, now_ms, conditions);
        Ok(())
    }

    /// `Command::Signal`: delivers an event to the process waiting for it and moves on.
    pub(super) fn signal(
        &mut self,
        pid: Pid,
        event: String,
        payload: Json,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let waiting_for = matches!(&pcb.wait, Some(WaitReason::Event { name }) if *name == event);
        if pcb.state != ProcessState::Waiting || !waiting_for {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: format!("it is not waiting for event '{event}'"),
            });
        }
        let step = self.current_step(pcb)?;
        let svc = self.service_of(pcb)?;
        let mut view = pcb.clone();
        merge(
            Arc::make_mut(&mut view.context),
            &json!({"signals": {event.clone(): payload.clone()}}),
        );
        let next = choose(&svc, &step, None, &view, conditions)?;
        self.out.pid = Some(pid);
        self.quiet(pid, &format!("event '{event}' received"), |p| {
            merge(
                Arc::make_mut(&mut p.context),
                &json!({"signals": {event.clone(): payload.clone()}}),
            );
            p.wait = None;
        });
        self.go(pid, next, by, now_ms, conditions);
        Ok(())
    }

    /// `Command::TakeTransition`: leaves the current step, undone, by a named transition
    /// (an escalation).
    pub(super) fn take_transition(
        &mut self,
        pid: Pid,
        transition: String,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let step = self.current_step(pcb)?;
        let movable = match pcb.state {
            ProcessState::Ready | ProcessState::Running => step.kind.is_dispatched(),
            ProcessState::Waiting => step.kind == StepKind::Wait,
            _ => false,
        };
        if !movable {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: "only a queued, running or waiting step can be escalated".into(),
            });
        }
        let svc = self.service_of(pcb)?;
        let next = choose(&svc, &step, Some(&transition), pcb, conditions)?;
        let state = pcb.state;
        let queued = (state == ProcessState::Ready).then(|| (self.key(pcb), pid));
        self.out.pid = Some(pid);
        if let Some(entry) = queued {
            self.ready.remove(&entry);
        }
        if state == ProcessState::Running {
            self.leave_dispatched(pid, by, now_ms, "step escalated");
        }
        self.timers.retain(|(_, p)| *p != pid);
        let note = format!("escalated by '{transition}'");
        self.quiet(pid, &note, |p| {
            p.wait = None;
            work::close_pending(p, "escalated", now_ms);
        });
        self.go(pid, next, by, now_ms, conditions);
        Ok(())
    }

    /// Enters a step: the state the process takes depends on the step's kind. Gateways and
    /// joins pass straight through.
    pub(super) fn enter(
        &mut self,
        pid: Pid,
        step_name: &str,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
        depth: usize,
    ) {
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        let Ok(svc) = self.service_of(pcb) else {
            return;
        };
        if depth > MAX_INSTANT_STEPS {
            self.terminate(
                pid,
                ExitStatus::Failed,
                by,
                now_ms,
                "the service loops through gateways without stopping",
                conditions,
            );
            return;
        }
        if pcb.join.as_deref() == Some(step_name) {
            self.terminate(
                pid,
                ExitStatus::Completed,
                by,
                now_ms,
                "branch reached its join",
                conditions,
            );
            return;
        }
        let Some(step) = svc.step(step_name) else {
            self.terminate(
                pid,
                ExitStatus::Failed,
                by,
                now_ms,
                &format!("no step '{step_name}'"),
                conditions,
            );
            return;
        };
        let deadline = step
            .deadline
            .as_deref()
            .and_then(iso_seconds)
            .map(|s| conditions.due_ms(step.calendar.as_deref(), now_ms, s));
        let state = pcb.state;
        let had_deadline = pcb.deadline_ms.is_some();
        let entered = |n: &mut String| {
            n.push_str("entered '");
            n.push_str(step_name);
            n.push('\'');
        };
        self.quiet_with(pid, entered, |p| {
            p.step = Some(Arc::from(step_name));
            p.deadline_ms = deadline;
            p.assignee = None;
            p.visit = p.visit.wrapping_add(1);
        });
        if had_deadline || deadline.is_some() {
            self.set_alarms(pid, deadline);
        }
        if step.returns {
            self.return_early(pid, now_ms, conditions);
        }
        match step.kind {
            StepKind::Human | StepKind::Automatic => {
                // A requirement that does not hold keeps the step from starting.
                let view = self.pcbs.get(&pid);
                let unmet = step
                    .requires
                    .iter()
                    .find(|r| view.is_none_or(|v| conditions.holds(&r.condition, v) != Ok(true)));
                match unmet {
                    None => self.move_to(
                        pid,
                        ProcessState::Ready,
                        by,
                        now_ms,
                        "queued for dispatch",
                        |p| p.wait = None,
                    ),
                    Some(r) => {
                        let w = WaitReason::Requirement {
                            condition: r.condition.clone(),
                            label: r.label.clone(),
                        };
                        let note = format!("cannot start: {}", requirement_text(r));
                        if state == ProcessState::Waiting {
                            self.set_wait(pid, Some(w), by, now_ms, &note);
                        } else {
                            self.move_to(pid, ProcessState::Waiting, by, now_ms, &note, |p| {
                                p.wait = Some(w)
                            });
                        }
                    }
                }
            }
            StepKind::Wait => {
                let spec = step
                    .wait
                    .clone()
                    .unwrap_or(erpos_design::service::WaitSpec {
                        event: None,
                        after: None,
                        until: None,
                    });
                let wait = if let Some(event) = spec.event {
                    Ok(WaitReason::Event { name: event })
                } else if let Some(after) = spec.after.as_deref().and_then(iso_seconds) {
                    Ok(WaitReason::Timer {
                        at_ms: now_ms + after * 1000,
                    })
                } else if let Some(until) = spec.until {
                    let view = self.pcbs.get(&pid).cloned();
                    match view.map(|v| conditions.instant(&until, &v)) {
                        Some(Ok(at)) => Ok(WaitReason::Timer { at_ms: at }),
                        Some(Err(e)) => Err(e),
                        None => Err("process vanished".into()),
                    }
                } else {
                    Err("the wait step says nothing to wait for".into())
                };
                match wait {
                    Ok(w) => {
                        if let WaitReason::Timer { at_ms } = &w {
                            self.timers.insert((*at_ms, pid));
                        }
                        let to = ProcessState::Waiting;
                        if state == to {
                            self.set_wait(pid, Some(w), by, now_ms, "waiting");
                        } else {
                            self.move_to(pid, to, by, now_ms, "waiting", |p| p.wait = Some(w));
                        }
                    }
                    Err(e) => self.terminate(pid, ExitStatus::Failed, by, now_ms, &e, conditions),
                }
            }
            StepKind::SubService => self.call(pid, state, step, by, now_ms, conditions),
            StepKind::Parallel => {
                let targets: Vec<String> = svc.outgoing(step_name).map(|t| t.to.clone()).collect();
                let join = targets.first().and_then(|t| find_join(&svc, t));
                self.block_on_children(pid, state, by, now_ms);
                let (record, context, priority) = self
                    .pcbs
                    .get(&pid)
                    .map(|p| (p.record.clone(), (*p.context).clone(), p.priority))
                    .unwrap_or((None, Json::Null, DEFAULT_PRIORITY));
                for target in targets {
                    let child = self.spawn(
                        &svc,
                        Some(priority),
                        record.clone(),
                        context.clone(),
                        Some(pid),
                        None,
                        join.clone(),
                        by,
                        now_ms,
                    );
                    self.enter(child, &target, by, now_ms, conditions, 0);
                }
            }
            StepKind::Exclusive | StepKind::Join => {
                let Some(view) = self.pcbs.get(&pid).cloned() else {
                    return;
                };
                match choose(&svc, step, None, &view, conditions) {
                    Ok(next) => self.enter(pid, &next, by, now_ms, conditions, depth + 1),
                    Err(e) => self.terminate(
                        pid,
                        ExitStatus::Failed,
                        by,
                        now_ms,
                        &e.to_string(),
                        conditions,
                    ),
                }
            }
            StepKind::End => self.terminate(
                pid,
                ExitStatus::Completed,
                by,
                now_ms,
                "reached the end",
                conditions,
            ),
        }
    }

    /// Makes the process wait for its children (a sub-service or parallel step).
    pub(super) fn block_on_children(
        &mut self,
        pid: Pid,
        state: ProcessState,
        by: &str,
        now_ms: i64,
    ) {
        if state == ProcessState::Waiting {
            self.set_wait(
                pid,
                Some(WaitReason::Children),
                by,
                now_ms,
                "waiting for children",
            );
        } else {
            self.move_to(
                pid,
                ProcessState::Waiting,
                by,
                now_ms,
                "waiting for children",
                |p| p.wait = Some(WaitReason::Children),
            );
        }
    }

    /// Moves on after a step was left: enters the next step.
    pub(super) fn go(
        &mut self,
        pid: Pid,
        next: String,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) {
        self.enter(pid, &next, by, now_ms, conditions, 0);
    }
}
/// Picks the transition to take from `step`: the one named; else, among those leaving it,
/// the first whose condition holds, else the default, else the only one.
/// What staff are told of an unmet requirement: its Chinese label, else its condition.
fn requirement_text(r: &erpos_design::service::Requirement) -> String {
    r.label
        .as_ref()
        .map_or_else(|| r.condition.clone(), |l| l.zh.clone())
}

pub(super) fn choose(
    svc: &Service,
    step: &Step,
    name: Option<&str>,
    pcb: &Pcb,
    conditions: &dyn Conditions,
) -> Result<String, CoreError> {
    let outgoing: Vec<_> = svc.outgoing(&step.name).collect();
    let available = || {
        outgoing
            .iter()
            .map(|t| t.key().to_owned())
            .collect::<Vec<_>>()
    };
    if let Some(name) = name {
        return outgoing
            .iter()
            .find(|t| t.key() == name)
            .map(|t| t.to.clone())
            .ok_or_else(|| CoreError::NoTransition {
                step: step.name.clone(),
                name: name.to_owned(),
                available: available(),
            });
    }
    for t in outgoing.iter().filter(|t| !t.default) {
        if let Some(cond) = &t.condition {
            match conditions.holds(cond, pcb) {
                Ok(true) => return Ok(t.to.clone()),
                Ok(false) => {}
                Err(e) => {
                    return Err(CoreError::WrongState {
                        pid: pcb.id,
                        state: pcb.state,
                        step: Some(step.name.clone()),
                        message: format!("condition '{cond}' failed: {e}"),
                    });
                }
            }
        }
    }
    if let Some(t) = outgoing.iter().find(|t| t.default) {
        return Ok(t.to.clone());
    }
    let unconditional: Vec<_> = outgoing.iter().filter(|t| t.condition.is_none()).collect();
    match unconditional.as_slice() {
        [only] => Ok(only.to.clone()),
        _ => Err(CoreError::NoTransition {
            step: step.name.clone(),
            name: String::new(),
            available: available(),
        }),
    }
}
/// The first join step reachable from `from` (where a parallel branch ends).
pub(super) fn find_join(svc: &Service, from: &str) -> Option<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([from.to_owned()]);
    while let Some(s) = queue.pop_front() {
        if !seen.insert(s.clone()) {
            continue;
        }
        if svc.step(&s).is_some_and(|st| st.kind == StepKind::Join) {
            return Some(s);
        }
        queue.extend(svc.outgoing(&s).map(|t| t.to.clone()));
    }
    None
}
