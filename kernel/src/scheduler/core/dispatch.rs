//! Dispatch: the ready queue and who runs what. READY processes are taken in key order
//! (priority with aging, so nothing starves); each gets an operator (by the step's operator
//! rule and policy, on duty, under capacity; a claim offered, a committee formed) and its
//! resources all or nothing, or waits for them. Also the commands that change what
//! dispatch sees: `SetPriority`, `Assign`, `Allocate` and `Release`.
//!
//! Part of the scheduler core: pure, no I/O, no clock. It never over-allocates a resource
//! nor gives an operator more than their capacity, and never holds part of a step's
//! resources while it waits for the rest (a blocked request reserves its types for the
//! round instead). Its choices are deterministic (the "random" policy is a seeded
//! xorshift), so a replay of the same commands dispatches the same way.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use erpos_design::service::{OperatorPolicy, Step, StepKind};

use super::steps::choose;
use super::{Conditions, CoreError, Effect, Scheduler, work};
use crate::scheduler::pcb::{ExitStatus, ItemRole, ItemState, Pcb, Pid, ProcessState, WaitReason};
use crate::scheduler::resources::{Need, Operator};

impl Scheduler {
    /// `Command::SetPriority`: changes a process's base priority (and its place in the
    /// ready queue).
    pub(super) fn set_priority(
        &mut self,
        pid: Pid,
        priority: i32,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        if pcb.state == ProcessState::Terminated {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: None,
                message: "a terminated process has no priority to change".into(),
            });
        }
        let old = pcb.priority;
        let queued = (pcb.state == ProcessState::Ready).then(|| (self.key(pcb), pid));
        self.out.pid = Some(pid);
        if let Some(entry) = queued {
            self.ready.remove(&entry);
        }
        self.mutate(
            pid,
            by,
            now_ms,
            &format!("priority {old} → {priority}"),
            |p| p.priority = priority,
        );
        if let Some(pcb) = self.pcbs.get(&pid)
            && queued.is_some()
        {
            let key = self.key(pcb);
            self.ready.insert((key, pid));
        }
        Ok(())
    }

    /// `Command::Assign`: gives the current step to a user (a running step is taken back
    /// from its operator and queued for the new one).
    pub(super) fn assign(
        &mut self,
        pid: Pid,
        user: String,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        if pcb.state == ProcessState::Terminated || !self.operators.contains_key(&user) {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: if self.operators.contains_key(&user) {
                    "a terminated process cannot be reassigned".into()
                } else {
                    format!("there is no user '{user}'")
                },
            });
        }
        let running = pcb.state == ProcessState::Running;
        self.out.pid = Some(pid);
        let reason = format!("assigned to {user}");
        if running {
            // Taken back from its operator and queued for the new one.
            self.leave_dispatched(pid, by, now_ms, "taken back");
            self.quiet(pid, &reason, |p| {
                p.assignee = Some(Arc::from(user.as_str()))
            });
            self.move_to(
                pid,
                ProcessState::Ready,
                by,
                now_ms,
                "queued for dispatch",
                |p| {
                    p.ready_since_ms = Some(now_ms);
                },
            );
        } else {
            self.mutate(pid, by, now_ms, &reason, |p| {
                work::close_pending(p, "reassigned", now_ms);
                p.assignee = Some(Arc::from(user.as_str()))
            });
        }
        self.dirty = true;
        Ok(())
    }

    /// `Command::Allocate`: allocates units of a resource instance to the process.
    pub(super) fn allocate(
        &mut self,
        pid: Pid,
        resource: String,
        quantity: u32,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let free = self
            .pool
            .get(&resource)
            .map(|r| r.capacity.saturating_sub(self.pool.in_use(&resource)));
        let refuse = |message: String| CoreError::WrongState {
            pid,
            state: pcb.state,
            step: pcb.step.as_deref().map(str::to_owned),
            message,
        };
        match free {
            _ if pcb.state == ProcessState::Terminated => {
                return Err(refuse("a terminated process holds nothing".into()));
            }
            None => return Err(refuse(format!("there is no resource '{resource}'"))),
            Some(f) if f < quantity => {
                return Err(refuse(format!(
                    "'{resource}' has {f} free, {quantity} asked"
                )));
            }
            Some(_) => {}
        }
        let allocation = crate::scheduler::pcb::Allocation {
            resource: resource.clone(),
            quantity,
            hold_while_waiting: true,
        };
        self.pool.commit(pid, std::slice::from_ref(&allocation));
        self.out.pid = Some(pid);
        self.mutate(
            pid,
            by,
            now_ms,
            &format!("allocated {quantity} × {resource}"),
            |p| p.allocations.push(allocation),
        );
        Ok(())
    }

    /// `Command::Release`: releases a resource instance the process holds.
    pub(super) fn release(
        &mut self,
        pid: Pid,
        resource: String,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let held: Vec<_> = pcb
            .allocations
            .iter()
            .filter(|a| a.resource == resource)
            .cloned()
            .collect();
        if held.is_empty() {
            return Err(CoreError::WrongState {
                pid,
                state: pcb.state,
                step: pcb.step.as_deref().map(str::to_owned),
                message: format!("it holds no '{resource}'"),
            });
        }
        self.pool.release(pid, &held);
        self.out.pid = Some(pid);
        self.dirty = true;
        self.mutate(pid, by, now_ms, &format!("released {resource}"), |p| {
            p.allocations.retain(|a| a.resource != resource)
        });
        Ok(())
    }

    /// The dispatch key: lower runs first. `ready_since − priority × aging` orders by
    /// effective priority (priority + time waited / aging) without depending on the clock,
    /// so it never needs recomputing and nothing starves.
    pub(super) fn key(&self, pcb: &Pcb) -> i64 {
        pcb.ready_since_ms
            .unwrap_or(0)
            .saturating_sub(i64::from(pcb.priority).saturating_mul(self.aging_ms))
    }

    /// Releases what a dispatched step held (operator, resources).
    pub(super) fn leave_dispatched(&mut self, pid: Pid, by: &str, now_ms: i64, reason: &str) {
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        let allocations = pcb.allocations.clone();
        let operator = pcb.operator.clone();
        self.pool.release(pid, &allocations);
        if let Some(op) = &operator
            && let Some(l) = self.load.get_mut(&**op)
        {
            *l = l.saturating_sub(1);
        }
        self.dirty = true;
        let _ = by;
        self.quiet(pid, reason, |p| {
            p.allocations.clear();
            p.operator = None;
            work::close_pending(p, "step left", now_ms);
        });
    }

    /// Dispatches READY processes in key order while operators and resources allow. A
    /// process that cannot get its resources reserves their types for the rest of the
    /// round, so later, smaller requests cannot starve it.
    pub(super) fn dispatch(&mut self, now_ms: i64, conditions: &dyn Conditions) {
        while self.dirty {
            self.dirty = false;
            let mut reserved: BTreeSet<String> = BTreeSet::new();
            let queue: Vec<Pid> = self.ready.iter().map(|(_, p)| *p).collect();
            let mut runs = VecDeque::new();
            for pid in queue {
                // Borrow the step from the (shared) service instead of cloning PCB and step.
                let Some((svc, index, wait)) = self.pcbs.get(&pid).and_then(|p| {
                    let svc = self.resolve(&p.service, Some(p.version)).ok()?;
                    let index = svc
                        .steps
                        .iter()
                        .position(|s| p.step.as_deref() == Some(s.name.as_str()))?;
                    Some((svc, index, p.wait.clone()))
                }) else {
                    continue;
                };
                let step = &svc.steps[index];
                // A visit of a branch takes that branch's rooms and devices (or shared ones).
                let branch = self
                    .pcbs
                    .get(&pid)
                    .and_then(|p| p.branch().map(str::to_owned));
                let mut needs: Vec<Need> = step
                    .resources
                    .iter()
                    .map(|r| Need {
                        resource_type: r.resource_type.clone(),
                        quantity: r.quantity,
                        skill: r.skill.clone(),
                        hold_while_waiting: r.hold_while_waiting,
                        instance: None,
                        branch: branch.clone(),
                    })
                    .collect();
                let booked = self.pcbs.get(&pid).and_then(|p| self.booked(step, p));
                let mut assignee = self.pcbs.get(&pid).and_then(|p| p.assignee.clone());
                if let Some(b) = booked {
                    needs.extend(b.needs);
                    // A reassignment made by someone wins over the booking's practitioner.
                    assignee = assignee.or(b.practitioner);
                }
                let comes_on_duty = std::cell::Cell::new(None);
                let policy = step
                    .operators
                    .as_ref()
                    .map(|r| r.policy)
                    .unwrap_or_default();
                let human = step.kind == StepKind::Human;
                // A committee's members (policy `all`): everyone votes, the first chairs.
                let mut committee: Vec<String> = Vec::new();
                let operator = if step.kind == StepKind::Automatic {
                    Some("system".to_owned())
                } else if let Some(user) = assignee {
                    self.operators
                        .get(&*user)
                        .filter(|o| self.room_for(&o.id, &svc.name, now_ms))
                        .filter(|o| on_duty(o, now_ms, conditions, &comes_on_duty))
                        .map(|o| o.id.clone())
                } else {
                    let allowed = self.allowed_users(step, pid, conditions);
                    match allowed {
                        Ok(allowed) if human && policy == OperatorPolicy::Claim => {
                            let offered = self.pcbs.get(&pid).is_some_and(|p| {
                                p.work
                                    .iter()
                                    .any(|w| w.visit == p.visit && w.state == ItemState::Offered)
                            });
                            if !offered {
                                let candidates = self.eligible(step, allowed.as_deref());
                                self.offer(pid, step, &svc.name, candidates, now_ms);
                            }
                            continue;
                        }
                        Ok(allowed) if human && policy == OperatorPolicy::All => {
                            committee = self.eligible(step, allowed.as_deref());
                            // The chair carries the step on her load: only with room for it.
                            committee
                                .first()
                                .filter(|chair| self.room_for(chair, &svc.name, now_ms))
                                .cloned()
                        }
                        Ok(allowed) => self.pick_operator(
                            step,
                            &svc.name,
                            allowed.as_deref(),
                            now_ms,
                            conditions,
                        ),
                        Err(e) => {
                            self.terminate(
                                pid,
                                ExitStatus::Failed,
                                "scheduler",
                                now_ms,
                                &format!("operator rule failed: {e}"),
                                conditions,
                            );
                            continue;
                        }
                    }
                };
                self.recheck_at(comes_on_duty.get());
                let Some(operator) = operator else {
                    if wait != Some(WaitReason::Operator) {
                        self.set_wait(
                            pid,
                            Some(WaitReason::Operator),
                            "scheduler",
                            now_ms,
                            "no operator free",
                        );
                    }
                    continue;
                };
                match self.pool.plan(&needs, &reserved) {
                    Ok(allocations) => {
                        // The handler (or each member) gets a work item, unless one is open
                        // already (a claimed step); a delegation sends it to the deputy.
                        let holders: Vec<(String, Option<String>)> = if !human {
                            Vec::new()
                        } else if committee.is_empty() {
                            vec![self.delegate(&operator, &svc.name, now_ms)]
                        } else {
                            committee
                                .iter()
                                .map(|m| self.delegate(m, &svc.name, now_ms))
                                .collect()
                        };
                        let operator = holders.first().map_or(operator, |(user, _)| user.clone());
                        let role = if committee.is_empty() {
                            ItemRole::Handler
                        } else {
                            ItemRole::Voter
                        };
                        let mut made = Vec::new();
                        self.pool.commit(pid, &allocations);
                        if operator != "system" {
                            *self.load.entry(operator.clone()).or_default() += 1;
                        }
                        self.move_to(
                            pid,
                            ProcessState::Running,
                            "scheduler",
                            now_ms,
                            "dispatched",
                            |p| {
                                p.allocations = allocations;
                                p.operator = Some(Arc::from(operator.as_str()));
                                p.wait = None;
                                if human {
                                    made = work::ensure_items(p, &holders, role, now_ms);
                                }
                            },
                        );
                        if !made.is_empty() {
                            self.todo_notice(pid, step, made);
                        }
                        if step.kind == StepKind::Automatic {
                            runs.push_back((pid, svc.clone(), index));
                        }
                    }
                    Err(missing) => {
                        reserved.extend(needs.iter().map(|n| n.resource_type.clone()));
                        let blocked = Some(WaitReason::Resource { types: missing });
                        if wait != blocked {
                            self.set_wait(pid, blocked, "scheduler", now_ms, "resources busy");
                        }
                    }
                }
            }
            // Automatic steps without instructions complete at once; the others are handed
            // to the runtime.
            while let Some((pid, svc, index)) = runs.pop_front() {
                let step = &svc.steps[index];
                if step.instructions.is_empty() {
                    let Some(pcb) = self.pcbs.get(&pid) else {
                        continue;
                    };
                    match choose(&svc, step, None, pcb, conditions) {
                        Ok(next) => {
                            self.leave_dispatched(pid, "system", now_ms, "automatic step done");
                            self.go(pid, next, "system", now_ms, conditions);
                        }
                        Err(e) => self.terminate(
                            pid,
                            ExitStatus::Failed,
                            "system",
                            now_ms,
                            &e.to_string(),
                            conditions,
                        ),
                    }
                } else {
                    self.out.effects.push(Effect::RunAutomatic {
                        pid,
                        step: step.name.clone(),
                    });
                }
            }
        }
    }

    /// What a `booked` step of a process started by a booking holds: exactly the booked
    /// resources (a resource no longer in the pool is asked for by its id, so the process
    /// waits visibly for it rather than taking another) and the booked practitioner. None
    /// for any other step, or a process without a booking (a walk-in).
    fn booked(&self, step: &Step, pcb: &Pcb) -> Option<Booked> {
        if !step.booked {
            return None;
        }
        let booking = pcb.context.get("booking")?.as_object()?;
        let ids = |key: &str| -> Vec<String> {
            booking
                .get(key)
                .and_then(|v| v.as_array())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let needs = ids("resources")
            .into_iter()
            .map(|id| Need {
                resource_type: self
                    .pool
                    .get(&id)
                    .map_or_else(|| id.clone(), |r| r.resource_type.clone()),
                quantity: 1,
                skill: None,
                // Reserved for the visit: kept through a context switch.
                hold_while_waiting: true,
                instance: Some(id),
                branch: None,
            })
            .collect();
        let practitioner = ids("operators")
            .into_iter()
            .next()
            .map(|u| Arc::from(u.as_str()));
        Some(Booked {
            needs,
            practitioner,
        })
    }

    /// Remembers to dispatch again when someone skipped for being off duty comes on duty.
    fn recheck_at(&mut self, at: Option<i64>) {
        if let Some(at) = at {
            self.duty_check = Some(self.duty_check.map_or(at, |m| m.min(at)));
        }
    }

    /// Whether a new task of `user` at `service` fits: her own capacity, or her deputy's
    /// while she delegates (the deputy carries it), so nobody is given more than their
    /// capacity.
    fn room_for(&self, user: &str, service: &str, now_ms: i64) -> bool {
        let (holder, _) = self.delegate(user, service, now_ms);
        self.has_room(&holder)
    }

    /// Picks a free, qualified, on-duty operator for `step` by its rule's policy (least
    /// loaded, round robin, or a deterministic random), or None when nobody is free.
    fn pick_operator(
        &mut self,
        step: &Step,
        service: &str,
        allowed: Option<&[String]>,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Option<String> {
        let default = erpos_design::service::OperatorRule::default();
        let rule = step.operators.as_ref().unwrap_or(&default);
        let comes_on_duty = std::cell::Cell::new(None);
        let free: Vec<&Operator> = self
            .operators
            .values()
            .filter(|o| {
                self.qualifies(o, rule, allowed)
                    && self.room_for(&o.id, service, now_ms)
                    && on_duty(o, now_ms, conditions, &comes_on_duty)
            })
            .collect();
        // (The field itself: `free` still borrows the operators.)
        if let Some(at) = comes_on_duty.get() {
            self.duty_check = Some(self.duty_check.map_or(at, |m| m.min(at)));
        }
        if free.is_empty() {
            return None;
        }
        match rule.policy {
            OperatorPolicy::LeastLoaded | OperatorPolicy::All | OperatorPolicy::Claim => free
                .iter()
                .min_by_key(|o| (self.load.get(&o.id).copied().unwrap_or(0), o.id.clone()))
                .map(|o| o.id.clone()),
            OperatorPolicy::RoundRobin => {
                let key = format!("{service}/{}", step.name);
                let cursor = self.round_robin.entry(key).or_default();
                let pick = free.get(*cursor % free.len()).map(|o| o.id.clone());
                *cursor = cursor.wrapping_add(1);
                pick
            }
            OperatorPolicy::Random => {
                // xorshift: deterministic, so a replay of the same commands picks the same.
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                free.get((self.rng % free.len() as u64) as usize)
                    .map(|o| o.id.clone())
            }
        }
    }
}

/// What a booked step is dispatched onto (see `Scheduler::booked`).
struct Booked {
    /// One unit of each booked resource, that instance only.
    needs: Vec<Need>,
    /// The booked practitioner (the first operator of the booking), if any.
    practitioner: Option<Arc<str>>,
}

/// Whether an operator is in working time (without a calendar: always). Off duty, `next`
/// keeps the soonest moment one of them comes on duty, for the dispatcher to look again.
fn on_duty(
    o: &Operator,
    now_ms: i64,
    conditions: &dyn Conditions,
    next: &std::cell::Cell<Option<i64>>,
) -> bool {
    let Some(calendar) = o.calendar.as_deref() else {
        return true;
    };
    let (working, starts) = conditions.on_duty(calendar, now_ms);
    if let Some(at) = starts.filter(|_| !working) {
        next.set(Some(next.get().map_or(at, |m| m.min(at))));
    }
    working
}
