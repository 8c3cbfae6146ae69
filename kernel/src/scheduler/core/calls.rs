//! Sub-service calls as call frames (issue 13 §5): a `sub_service` step starts its service
//! as a child and waits; when the child returns, the step's `outputs` copy the child's
//! context variables into the caller's (a consultation's `diagnosis` reaches the visit). An
//! iterating step runs its service once per entry of a list or N times — one child after
//! the other or all at once — gathering each output into a list in entry order, and a
//! completion condition may end the iteration early (children not started are not
//! started, running ones are cancelled). Cancelling the caller cancels its children
//! (`terminate` ends the children first).
//!
//! Part of the scheduler core: pure, no I/O, no clock; expressions only through
//! [`Conditions`].

use std::collections::BTreeMap;
use std::sync::Arc;

use erpos_design::service::{MAX_ITERATIONS, Service, Step};
use serde_json::{Value as Json, json};

use super::steps::choose;
use super::{Conditions, DEFAULT_PRIORITY, Scheduler};
use crate::scheduler::pcb::{ExitStatus, Iteration, Pid, ProcessState};

/// What the caller does after a child returned.
pub(super) enum Returned {
    /// Nothing more here: go on as for any child (move on once none is left).
    Continue,
    /// The caller still waits (the next child of an iteration was started) or was ended.
    Handled,
}

impl Scheduler {
    /// Enters a `sub_service` step: starts its child (or the first children of an
    /// iteration) and makes the caller wait for them.
    pub(super) fn call(
        &mut self,
        pid: Pid,
        state: ProcessState,
        step: &Step,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) {
        let child_svc = step.service.as_deref().map(|s| self.resolve(s, None));
        let Some(Ok(child_svc)) = child_svc else {
            self.terminate(
                pid,
                ExitStatus::Failed,
                by,
                now_ms,
                "the sub-service is not published",
                conditions,
            );
            return;
        };
        let Some(it) = &step.iterate else {
            self.block_on_children(pid, state, by, now_ms);
            self.start_child(pid, &child_svc, None, by, now_ms, conditions);
            return;
        };
        let entries = match (&it.over, it.times) {
            (Some(over), _) => {
                let Some(listed) = self.pcbs.get(&pid).map(|p| conditions.list(over, p)) else {
                    return;
                };
                match listed {
                    Ok(entries) => entries,
                    Err(e) => {
                        let reason = format!("iterate over '{over}': {e}");
                        self.terminate(pid, ExitStatus::Failed, by, now_ms, &reason, conditions);
                        return;
                    }
                }
            }
            (None, Some(n)) => (0..n).map(|i| json!(i)).collect(),
            (None, None) => Vec::new(),
        };
        if entries.len() > MAX_ITERATIONS as usize {
            let reason = format!(
                "the list to iterate has {} entries, more than {MAX_ITERATIONS}",
                entries.len()
            );
            self.terminate(pid, ExitStatus::Failed, by, now_ms, &reason, conditions);
            return;
        }
        if entries.is_empty() {
            // Nothing to run: the call returns at once, with empty lists.
            self.mutate(pid, by, now_ms, "nothing to iterate", |p| {
                let context = Arc::make_mut(&mut p.context);
                for to in step.outputs.keys() {
                    if let Some(map) = context.as_object_mut() {
                        map.insert(to.clone(), json!([]));
                    }
                }
            });
            self.move_on(pid, step, by, now_ms, conditions);
            return;
        }
        self.block_on_children(pid, state, by, now_ms);
        let at_once = if it.parallel { entries.len() } else { 1 };
        self.quiet(pid, "iterating", |p| {
            p.iteration = Some(Iteration {
                entries,
                started: 0,
                running: BTreeMap::new(),
            })
        });
        for _ in 0..at_once {
            self.start_next(pid, &child_svc, step, by, now_ms, conditions);
        }
    }

    /// Starts the child of the iteration's next entry; false when every entry has one.
    fn start_next(
        &mut self,
        pid: Pid,
        child_svc: &Service,
        step: &Step,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> bool {
        let Some(it) = self.pcbs.get(&pid).and_then(|p| p.iteration.as_ref()) else {
            return false;
        };
        let index = it.started;
        let Some(entry) = it.entries.get(index).cloned() else {
            return false;
        };
        let bind = step
            .iterate
            .as_ref()
            .and_then(|i| i.bind.clone())
            .unwrap_or_else(|| "item".to_owned());
        self.start_child(
            pid,
            child_svc,
            Some((index, bind, entry)),
            by,
            now_ms,
            conditions,
        );
        true
    }

    /// Spawns one child of `pid` (with its entry, for an iteration) and enters its first
    /// step. The entry is recorded on the caller before the child runs, so a child that
    /// ends at once finds its place.
    fn start_child(
        &mut self,
        pid: Pid,
        child_svc: &Service,
        entry: Option<(usize, String, Json)>,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) {
        let (record, mut context, priority) = self
            .pcbs
            .get(&pid)
            .map(|p| (p.record.clone(), (*p.context).clone(), p.priority))
            .unwrap_or((None, Json::Null, DEFAULT_PRIORITY));
        if let Some((index, bind, value)) = &entry {
            if !context.is_object() {
                context = json!({});
            }
            if let Some(map) = context.as_object_mut() {
                map.insert(bind.clone(), value.clone());
                map.insert("index".into(), json!(index));
            }
        }
        let child = self.spawn(
            child_svc,
            Some(priority),
            record,
            context,
            Some(pid),
            None,
            None,
            by,
            now_ms,
        );
        if let Some((index, _, _)) = entry {
            self.quiet(pid, "", |p| {
                if let Some(it) = p.iteration.as_mut() {
                    it.started = it.started.max(index + 1);
                    it.running.insert(child, index);
                }
            });
        }
        let first = child_svc
            .start()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        self.enter(child, &first, by, now_ms, conditions, 0);
    }

    /// A called process entered a step marked `returns`: its caller takes the outputs now
    /// and goes on as if it had ended, and it carries on alone (no longer the caller's
    /// child, so cancelling the caller leaves it be). A parallel branch (which has a join,
    /// not a caller) and a process already returned are left alone.
    pub(super) fn return_early(&mut self, child: Pid, now_ms: i64, conditions: &dyn Conditions) {
        let Some(c) = self.pcbs.get(&child) else {
            return;
        };
        let (Some(parent), None) = (c.parent, c.join.as_ref()) else {
            return;
        };
        let calling = self.pcbs.get(&parent).is_some_and(|p| {
            p.children.contains(&child)
                && self
                    .current_step(p)
                    .is_ok_and(|s| s.kind == erpos_design::service::StepKind::SubService)
        });
        if calling {
            self.child_ended(
                parent,
                child,
                ExitStatus::Completed,
                "returned early",
                now_ms,
                conditions,
            );
        }
    }

    /// A child of a `sub_service` step returned (`child` still listed as the caller's):
    /// its outputs reach the caller, and an iteration starts its next child or, when its
    /// completion condition holds, lets the rest go.
    pub(super) fn returned(
        &mut self,
        parent: Pid,
        child: Pid,
        exit: ExitStatus,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Returned {
        let Some(p) = self.pcbs.get(&parent) else {
            return Returned::Handled;
        };
        let Ok(step) = self.current_step(p) else {
            return Returned::Continue;
        };
        if step.kind != erpos_design::service::StepKind::SubService {
            return Returned::Continue;
        }
        let index = p
            .iteration
            .as_ref()
            .and_then(|it| it.running.get(&child).copied());
        let size = p.iteration.as_ref().map(|it| it.entries.len());
        if !step.outputs.is_empty() {
            let given = self.pcbs.get(&child).map(|c| c.context.clone());
            let completed = exit == ExitStatus::Completed;
            self.mutate(
                parent,
                "scheduler",
                now_ms,
                &format!("child {child} returned"),
                |p| {
                    let context = Arc::make_mut(&mut p.context);
                    if !context.is_object() {
                        *context = json!({});
                    }
                    let Some(map) = context.as_object_mut() else {
                        return;
                    };
                    for (to, from) in &step.outputs {
                        let value = given
                            .as_ref()
                            .filter(|_| completed)
                            .and_then(|c| c.get(from).cloned())
                            .unwrap_or(Json::Null);
                        match (index, size) {
                            (Some(i), Some(n)) => {
                                let slot = map.entry(to.clone()).or_insert_with(|| json!([]));
                                if slot.as_array().is_none_or(|a| a.len() != n) {
                                    *slot = Json::Array(vec![Json::Null; n]);
                                }
                                if let Some(cell) = slot.as_array_mut().and_then(|a| a.get_mut(i)) {
                                    *cell = value;
                                }
                            }
                            _ => {
                                map.insert(to.clone(), value);
                            }
                        }
                    }
                },
            );
        }
        let Some(it) = step.iterate.as_ref() else {
            return Returned::Continue;
        };
        if exit != ExitStatus::Completed {
            return Returned::Continue;
        }
        self.quiet(parent, "", |p| {
            if let Some(it) = p.iteration.as_mut() {
                it.running.remove(&child);
            }
        });
        let done = match (&it.complete_when, self.pcbs.get(&parent)) {
            (Some(when), Some(p)) => conditions.holds(when, p),
            _ => Ok(false),
        };
        match done {
            Err(e) => {
                let reason = format!("iterate: complete_when: {e}");
                self.terminate(
                    parent,
                    ExitStatus::Failed,
                    "scheduler",
                    now_ms,
                    &reason,
                    conditions,
                );
                Returned::Handled
            }
            Ok(true) => {
                // Done early: let go of the children still running, then go on.
                let rest: Vec<Pid> = self
                    .pcbs
                    .get(&parent)
                    .map(|p| p.children.iter().copied().filter(|c| *c != child).collect())
                    .unwrap_or_default();
                self.mutate(
                    parent,
                    "scheduler",
                    now_ms,
                    "the iteration is complete",
                    |p| {
                        p.children.retain(|c| *c == child);
                        if let Some(it) = p.iteration.as_mut() {
                            it.started = it.entries.len();
                        }
                    },
                );
                for c in rest {
                    self.terminate(
                        c,
                        ExitStatus::Cancelled,
                        "scheduler",
                        now_ms,
                        "the caller's iteration was complete",
                        conditions,
                    );
                }
                Returned::Continue
            }
            Ok(false) if !it.parallel => {
                let Some(Ok(child_svc)) = step.service.as_deref().map(|s| self.resolve(s, None))
                else {
                    return Returned::Continue;
                };
                // The next one starts once this one has left the caller's list.
                self.mutate(
                    parent,
                    "scheduler",
                    now_ms,
                    &format!("child {child} ended (Completed)"),
                    |p| p.children.retain(|c| *c != child),
                );
                if self.start_next(parent, &child_svc, &step, "scheduler", now_ms, conditions) {
                    Returned::Handled
                } else {
                    Returned::Continue
                }
            }
            Ok(false) => Returned::Continue,
        }
    }

    /// Leaves a `sub_service` step whose call is done: the way on is chosen as after any
    /// step.
    fn move_on(
        &mut self,
        pid: Pid,
        step: &Step,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) {
        let Some(view) = self.pcbs.get(&pid).cloned() else {
            return;
        };
        let Ok(svc) = self.service_of(&view) else {
            return;
        };
        match choose(&svc, step, None, &view, conditions) {
            Ok(next) => self.enter(pid, &next, by, now_ms, conditions, 0),
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
}
