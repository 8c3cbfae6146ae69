//! Work items: what a human step asks of people, and what they do with it — claim, decide
//! (agree / reject / other), vote in a committee, forward, add a signer, return, withdraw,
//! and an administrator's direct change of state.
//!
//! Part of the scheduler core (it reads the core's private tables): pure, no I/O, no
//! clock. Like every core command, each one here checks everything before it changes
//! anything, so a refused command leaves the core exactly as it was.

use std::sync::Arc;

use erpos_design::service::{OperatorRule, Service, Step, TransitionAttribute};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::steps::choose;
use super::{Conditions, CoreError, Scheduler, merge_context};
use crate::scheduler::pcb::{
    ExitStatus, ItemRole, ItemState, Notice, Pcb, Pid, ProcessState, WaitReason, WorkItem,
};
use crate::scheduler::resources::Operator;

/// A period during which a user's new work items go to a deputy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Its id (from storage).
    pub id: i64,
    /// The user whose work it is.
    pub user: String,
    /// Who does it meanwhile.
    pub deputy: String,
    /// From (ms, inclusive).
    pub from_ms: i64,
    /// Until (ms, exclusive).
    pub to_ms: i64,
    /// Only these services' steps (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
}

/// A person acting on their work item (the body of `Command::Handle`).
#[derive(Debug, Clone, PartialEq)]
pub struct HandleAction {
    /// The process.
    pub pid: Pid,
    /// Whose item (the caller, or the holder an administrator acts for).
    pub user: String,
    /// Agree, reject or other (chooses among transitions marked so).
    pub attribute: Option<TransitionAttribute>,
    /// A transition by name (wins over `attribute`).
    pub transition: Option<String>,
    /// The comment.
    pub comment: Option<String>,
    /// Context variables to merge in.
    pub context: Option<Json>,
    /// The bound record as it is after the handler's edits (replaces `context.record`, so
    /// the history entry snapshots it).
    pub record: Option<Json>,
    /// Who acts.
    pub by: String,
}

/// The word an attribute is recorded as.
pub fn attribute_word(a: TransitionAttribute) -> &'static str {
    match a {
        TransitionAttribute::Agree => "agree",
        TransitionAttribute::Reject => "reject",
        TransitionAttribute::Other => "other",
    }
}

/// Closes every item still asking something of someone (the step is left).
pub(super) fn close_pending(p: &mut Pcb, why: &str, now_ms: i64) {
    // Most steps left have nothing pending: leave the shared list alone then.
    if !p.work.iter().any(|w| w.state.is_pending()) {
        return;
    }
    for w in p.work_mut().iter_mut().filter(|w| w.state.is_pending()) {
        w.state = ItemState::Closed;
        w.action.get_or_insert_with(|| why.to_owned());
        w.finished_ms = Some(now_ms);
    }
}

fn new_item(
    p: &Pcb,
    user: &str,
    on_behalf_of: Option<&str>,
    role: ItemRole,
    state: ItemState,
    now_ms: i64,
) -> WorkItem {
    WorkItem {
        id: p.work.len() as u32 + 1,
        step: p.step.clone().unwrap_or_else(|| Arc::from("")),
        visit: p.visit,
        user: Arc::from(user),
        on_behalf_of: on_behalf_of.map(Arc::from),
        role,
        for_item: None,
        state,
        action: None,
        comment: None,
        acted_by: None,
        created_ms: now_ms,
        finished_ms: None,
    }
}

/// Gives each holder an open item for the step just dispatched, unless the visit already
/// has an open one (a claimed step). Returns who got one.
pub(super) fn ensure_items(
    p: &mut Pcb,
    holders: &[(String, Option<String>)],
    role: ItemRole,
    now_ms: i64,
) -> Vec<String> {
    let open = p
        .work
        .iter()
        .any(|w| w.visit == p.visit && matches!(w.state, ItemState::Open | ItemState::Waiting));
    if open {
        return Vec::new();
    }
    let mut made = Vec::new();
    for (user, behalf) in holders {
        let item = new_item(p, user, behalf.as_deref(), role, ItemState::Open, now_ms);
        p.work_mut().push(item);
        made.push(user.clone());
    }
    made
}

/// The open item of `user` at the process's current step visit.
fn open_item(p: &Pcb, user: &str) -> Option<usize> {
    p.work
        .iter()
        .rposition(|w| w.visit == p.visit && &*w.user == user && w.state == ItemState::Open)
}

fn finish(w: &mut WorkItem, action: &str, comment: Option<&str>, by: &str, now_ms: i64) {
    w.state = ItemState::Done;
    w.action = Some(action.to_owned());
    w.comment = comment.map(str::to_owned);
    w.acted_by = (by != &*w.user).then(|| by.to_owned());
    w.finished_ms = Some(now_ms);
}

impl Scheduler {
    pub(super) fn refuse(&self, pcb: &Pcb, message: impl Into<String>) -> CoreError {
        CoreError::WrongState {
            pid: pcb.id,
            state: pcb.state,
            step: pcb.step.as_deref().map(str::to_owned),
            message: message.into(),
        }
    }

    /// Replaces a user's delegations (from storage or the API).
    pub fn set_delegations(&mut self, user: &str, list: Vec<Delegation>) {
        if list.is_empty() {
            self.delegations.remove(user);
        } else {
            self.delegations.insert(user.to_owned(), list);
        }
    }

    /// Every delegation, by user.
    pub fn delegations(&self) -> impl Iterator<Item = &Delegation> {
        self.delegations.values().flatten()
    }

    /// Who a new item of `user` at `service` goes to now: their deputy while a delegation
    /// runs (one level: a deputy's own delegation is not followed, so two people cannot
    /// send work round in a loop), else themselves.
    pub(super) fn delegate(
        &self,
        user: &str,
        service: &str,
        now_ms: i64,
    ) -> (String, Option<String>) {
        let deputy = self.delegations.get(user).and_then(|list| {
            list.iter().find(|d| {
                d.from_ms <= now_ms
                    && now_ms < d.to_ms
                    && (d.services.is_empty() || d.services.iter().any(|s| s == service))
                    && self.operators.contains_key(&d.deputy)
            })
        });
        match deputy {
            Some(d) => (d.deputy.clone(), Some(user.to_owned())),
            None => (user.to_owned(), None),
        }
    }

    /// The leader of the creator's department; a creator who leads it goes to the leader
    /// of the department above.
    fn creator_leader(&self, pcb: &Pcb) -> Option<String> {
        let creator = pcb.creator.as_deref()?;
        let mut department = self.operators.get(creator)?.department.clone();
        for _ in 0..=self.departments.len() {
            let d = department?;
            match self.leaders.get(&d) {
                Some(l) if l != creator => return Some(l.clone()),
                _ => department = self.departments.get(&d).cloned().flatten(),
            }
        }
        None
    }

    /// The users a step's rule narrows its candidates to at run time (an expression, a
    /// record field, a context variable, the creator, the creator's leader, the booked
    /// visit's branch); None when it names nobody that way.
    pub(super) fn allowed_users(
        &self,
        step: &Step,
        pid: Pid,
        conditions: &dyn Conditions,
    ) -> Result<Option<Vec<String>>, String> {
        let pcb = self.pcbs.get(&pid);
        let rule = step.operators.as_ref();
        let mut allowed: Option<Vec<String>> =
            match (rule.and_then(|r| r.expression.as_deref()), pcb) {
                (Some(expr), Some(p)) => Some(conditions.operators(expr, p)?),
                _ => None,
            };
        let mut narrow = |list: Vec<String>| {
            allowed = Some(match allowed.take() {
                Some(a) => a.into_iter().filter(|u| list.contains(u)).collect(),
                None => list,
            });
        };
        if let Some(named) = named_users(step, pcb) {
            narrow(named);
        }
        if rule.is_some_and(|r| r.creator) {
            narrow(
                pcb.and_then(|p| p.creator.as_deref())
                    .map(|c| vec![c.to_owned()])
                    .unwrap_or_default(),
            );
        }
        if rule.is_some_and(|r| r.creator_leader) {
            narrow(
                pcb.and_then(|p| self.creator_leader(p))
                    .into_iter()
                    .collect(),
            );
        }
        // A visit of a branch (its booking's, a walk-in's) is worked by that branch's staff
        // and those of none (head office): 静安店's front desk receives 静安店's patients.
        if let Some(branch) = pcb.and_then(crate::scheduler::Pcb::branch) {
            narrow(
                self.operators
                    .values()
                    .filter(|o| o.branch.as_deref().is_none_or(|b| b == branch))
                    .map(|o| o.id.clone())
                    .collect(),
            );
        }
        Ok(allowed)
    }

    /// Whether an operator fits a step's rule (capacity aside).
    pub(super) fn qualifies(
        &self,
        o: &Operator,
        rule: &OperatorRule,
        allowed: Option<&[String]>,
    ) -> bool {
        rule.role.as_ref().is_none_or(|r| o.roles.contains(r))
            && rule.skill.as_ref().is_none_or(|s| o.skills.contains(s))
            && rule.user.as_ref().is_none_or(|u| &o.id == u)
            && (rule.users.is_empty() || rule.users.contains(&o.id))
            && allowed.is_none_or(|a| a.contains(&o.id))
            && rule
                .department
                .as_deref()
                .is_none_or(|d| self.within(o.department.as_deref(), d))
    }

    /// Every candidate of a step (claim pools and committees ignore load), by id.
    pub(super) fn eligible(&self, step: &Step, allowed: Option<&[String]>) -> Vec<String> {
        let default = OperatorRule::default();
        let rule = step.operators.as_ref().unwrap_or(&default);
        self.operators
            .values()
            .filter(|o| self.qualifies(o, rule, allowed))
            .map(|o| o.id.clone())
            .collect()
    }

    /// Offers a READY step to its candidates (policy `claim`).
    pub(super) fn offer(
        &mut self,
        pid: Pid,
        step: &Step,
        service: &str,
        candidates: Vec<String>,
        now_ms: i64,
    ) {
        if candidates.is_empty() {
            let waiting = self
                .pcbs
                .get(&pid)
                .is_some_and(|p| p.wait == Some(WaitReason::Operator));
            if !waiting {
                self.set_wait(
                    pid,
                    Some(WaitReason::Operator),
                    "scheduler",
                    now_ms,
                    "nobody may claim it",
                );
            }
            return;
        }
        let holders: Vec<(String, Option<String>)> = candidates
            .iter()
            .map(|c| self.delegate(c, service, now_ms))
            .collect();
        let users: Vec<String> = holders.iter().map(|(u, _)| u.clone()).collect();
        let reason = format!("offered to {}", users.join(", "));
        self.mutate(pid, "scheduler", now_ms, &reason, |p| {
            for (user, behalf) in &holders {
                let item = new_item(
                    p,
                    user,
                    behalf.as_deref(),
                    ItemRole::Handler,
                    ItemState::Offered,
                    now_ms,
                );
                p.work_mut().push(item);
            }
            p.wait = Some(WaitReason::Operator);
        });
        self.todo_notice(pid, step, users);
    }

    /// What a step's templates see.
    fn notice_root(&self, pcb: &Pcb, step: &Step, user: Option<&str>) -> Json {
        json!({
            "id": pcb.id, "serial": pcb.serial, "service": &*pcb.service, "step": step.name,
            "step_label": step.label.as_ref().map(|l| l.zh.clone()),
            "creator": pcb.creator.as_deref(), "user": user,
            "record": pcb.context.get("record"), "context": &*pcb.context,
        })
    }

    fn queue_notice(&mut self, pid: Pid, to: Vec<String>, title: String, body: String) {
        self.notices
            .entry(pid)
            .or_default()
            .push(Notice { to, title, body });
    }

    /// The step's to-do notice, to the people who just got an item.
    pub(super) fn todo_notice(&mut self, pid: Pid, step: &Step, users: Vec<String>) {
        let Some(t) = step.notify.as_ref().and_then(|n| n.todo.as_ref()) else {
            return;
        };
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        let root = self.notice_root(pcb, step, users.first().map(String::as_str));
        let title = erpos_design::template::render(&t.title, &root);
        let body = erpos_design::template::render(&t.body, &root);
        self.queue_notice(pid, users, title, body);
    }

    /// The step's finished notice, to the creator.
    fn finished_notice(&mut self, pid: Pid, step: &Step, by: &str) {
        let Some(t) = step.notify.as_ref().and_then(|n| n.finished.as_ref()) else {
            return;
        };
        let Some(pcb) = self.pcbs.get(&pid) else {
            return;
        };
        let Some(creator) = pcb.creator.as_deref().map(str::to_owned) else {
            return;
        };
        let root = self.notice_root(pcb, step, Some(by));
        let title = erpos_design::template::render(&t.title, &root);
        let body = erpos_design::template::render(&t.body, &root);
        self.queue_notice(pid, vec![creator], title, body);
    }

    /// The step's timeout notice, to the people holding it (the time service calls this
    /// when the deadline passes).
    pub fn timeout_notice(&self, pid: Pid) -> Option<Notice> {
        let pcb = self.pcbs.get(&pid)?;
        let svc = self.service_of(pcb).ok()?;
        let step = svc.step(pcb.step.as_deref()?)?;
        let t = step.notify.as_ref()?.timeout.as_ref()?;
        let to: Vec<String> = pcb
            .work
            .iter()
            .filter(|w| w.visit == pcb.visit && w.state.is_pending())
            .map(|w| w.user.to_string())
            .collect();
        if to.is_empty() {
            return None;
        }
        let root = self.notice_root(pcb, step, to.first().map(String::as_str));
        Some(Notice {
            title: erpos_design::template::render(&t.title, &root),
            body: erpos_design::template::render(&t.body, &root),
            to,
        })
    }

    /// `Command::Claim`.
    pub(super) fn claim(
        &mut self,
        pid: Pid,
        user: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let offered = pcb.work.iter().position(|w| {
            w.visit == pcb.visit && &*w.user == user && w.state == ItemState::Offered
        });
        let Some(index) = offered else {
            return Err(self.refuse(pcb, format!("nothing here is offered to '{user}'")));
        };
        if pcb.state != ProcessState::Ready {
            return Err(self.refuse(pcb, "only a READY step can be claimed"));
        }
        self.out.pid = Some(pid);
        let reason = format!("claimed by {user}");
        self.mutate(pid, by, now_ms, &reason, |p| {
            let visit = p.visit;
            for (i, w) in p.work_mut().iter_mut().enumerate() {
                if i == index {
                    w.state = ItemState::Open;
                    w.acted_by = (by != user).then(|| by.to_owned());
                } else if w.visit == visit && w.state == ItemState::Offered {
                    w.state = ItemState::Closed;
                    w.action = Some(format!("claimed by {user}"));
                    w.finished_ms = Some(now_ms);
                }
            }
            p.assignee = Some(Arc::from(user));
            p.wait = None;
        });
        self.dirty = true;
        Ok(())
    }

    /// The transition a handler's decision takes: one named, else among those marked with
    /// the attribute (conditions decide between several), else as `choose` would. The
    /// target step and the attribute the decision counts as.
    fn decide(
        svc: &Service,
        step: &Step,
        transition: Option<&str>,
        attribute: Option<TransitionAttribute>,
        pcb: &Pcb,
        conditions: &dyn Conditions,
    ) -> Result<(String, Option<TransitionAttribute>), CoreError> {
        if let Some(name) = transition {
            let attr = svc
                .outgoing(&step.name)
                .find(|t| t.key() == name)
                .and_then(|t| t.attribute);
            return Ok((choose(svc, step, Some(name), pcb, conditions)?, attr));
        }
        let marked = svc.outgoing(&step.name).any(|t| t.attribute.is_some());
        let Some(attr) = attribute.filter(|_| marked) else {
            return Ok((choose(svc, step, None, pcb, conditions)?, attribute));
        };
        let matching: Vec<_> = svc
            .outgoing(&step.name)
            .filter(|t| t.attribute == Some(attr))
            .collect();
        let available = || {
            svc.outgoing(&step.name)
                .map(|t| t.key().to_owned())
                .collect()
        };
        if let [only] = matching.as_slice() {
            return Ok((only.to.clone(), Some(attr)));
        }
        for t in &matching {
            if let Some(cond) = &t.condition
                && conditions.holds(cond, pcb).unwrap_or(false)
            {
                return Ok((t.to.clone(), Some(attr)));
            }
        }
        matching
            .iter()
            .find(|t| t.default || t.condition.is_none())
            .map(|t| (t.to.clone(), Some(attr)))
            .ok_or_else(|| CoreError::NoTransition {
                step: step.name.clone(),
                name: attribute_word(attr).to_owned(),
                available: available(),
            })
    }

    /// `Command::Handle`.
    pub(super) fn handle(
        &mut self,
        a: HandleAction,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(a.pid)?.clone();
        let pcb = &pcb;
        let step = self.current_step(pcb)?;
        let Some(index) = open_item(pcb, &a.user) else {
            return Err(self.refuse(
                pcb,
                format!("'{}' has no open work item at this step", a.user),
            ));
        };
        if pcb.state != ProcessState::Running {
            return Err(self.refuse(
                pcb,
                "the step is not being worked on (it waits for a free slot or resources)",
            ));
        }
        let svc = self.service_of(pcb)?;
        let pid = a.pid;
        let mut view = pcb.clone();
        if let Some(patch) = &a.context {
            merge_context(Arc::make_mut(&mut view.context), patch);
        }
        if let Some(record) = &a.record {
            Arc::make_mut(&mut view.context)["record"] = record.clone();
        }
        let role = pcb.work[index].role;
        let comment = a.comment.as_deref();
        self.out.pid = Some(pid);
        let context = view.context.clone();
        match role {
            ItemRole::Signer => {
                let back = pcb.work[index].for_item;
                let word = a.attribute.map_or("signed", attribute_word).to_owned();
                let reason = format!("{} signed ({word})", a.user);
                self.mutate(pid, &a.by, now_ms, &reason, |p| {
                    finish(&mut p.work_mut()[index], &word, comment, &a.by, now_ms);
                    if let Some(w) = back.and_then(|b| p.work_mut().get_mut(b as usize - 1))
                        && w.state == ItemState::Waiting
                    {
                        w.state = ItemState::Open;
                    }
                    p.context = context;
                });
                Ok(())
            }
            ItemRole::Voter => {
                let attr = match (a.attribute, a.transition.as_deref()) {
                    (Some(attr), _) => attr,
                    (None, Some(name)) => svc
                        .outgoing(&step.name)
                        .find(|t| t.key() == name)
                        .and_then(|t| t.attribute)
                        .ok_or_else(|| {
                            self.refuse(pcb, "a committee member votes agree, reject or other")
                        })?,
                    (None, None) => {
                        return Err(
                            self.refuse(pcb, "a committee member votes agree, reject or other")
                        );
                    }
                };
                let visit = pcb.visit;
                let voters: Vec<&WorkItem> = pcb
                    .work
                    .iter()
                    .filter(|w| {
                        w.visit == visit
                            && w.role == ItemRole::Voter
                            && w.action.as_deref() != Some("forwarded")
                            && w.state != ItemState::Closed
                    })
                    .collect();
                let total = voters.len() as u32;
                let count = |word: &str| {
                    voters
                        .iter()
                        .filter(|w| w.state == ItemState::Done && w.action.as_deref() == Some(word))
                        .count() as u32
                };
                let agrees = count("agree") + u32::from(attr == TransitionAttribute::Agree);
                let rejects = count("reject") + u32::from(attr == TransitionAttribute::Reject);
                let pending = voters.iter().filter(|w| w.state.is_pending()).count() as u32 - 1;
                let quorum = step
                    .operators
                    .as_ref()
                    .and_then(|r| r.quorum)
                    .unwrap_or(total)
                    .clamp(1, total.max(1));
                let decision = if rejects > 0 {
                    Some(TransitionAttribute::Reject)
                } else if agrees >= quorum {
                    Some(TransitionAttribute::Agree)
                } else if pending == 0 {
                    Some(TransitionAttribute::Reject)
                } else {
                    None
                };
                let word = attribute_word(attr);
                let tally =
                    format!("{agrees} agree, {rejects} reject of {total} (quorum {quorum})");
                let Some(decision) = decision else {
                    let reason = format!("{} voted {word}: {tally}", a.user);
                    self.mutate(pid, &a.by, now_ms, &reason, |p| {
                        finish(&mut p.work_mut()[index], word, comment, &a.by, now_ms);
                        p.context = context;
                    });
                    return Ok(());
                };
                let (next, _) = Self::decide(&svc, &step, None, Some(decision), &view, conditions)?;
                let reason = format!(
                    "{} voted {word}: {tally}: committee decided {}",
                    a.user,
                    attribute_word(decision)
                );
                let voted: Vec<String> = voters
                    .iter()
                    .filter(|w| w.state == ItemState::Done)
                    .map(|w| w.user.to_string())
                    .chain(std::iter::once(a.user.clone()))
                    .collect();
                self.quiet(pid, &reason, |p| {
                    finish(&mut p.work_mut()[index], word, comment, &a.by, now_ms);
                    p.context = context;
                    p.handlers.insert(step.name.clone(), voted);
                });
                self.finished_notice(pid, &step, &a.user);
                self.leave_dispatched(pid, &a.by, now_ms, "committee decided");
                self.go(pid, next, &a.by, now_ms, conditions);
                Ok(())
            }
            ItemRole::Handler => {
                let (next, attr) = Self::decide(
                    &svc,
                    &step,
                    a.transition.as_deref(),
                    a.attribute,
                    &view,
                    conditions,
                )?;
                let word = match (attr, a.transition.as_deref()) {
                    (Some(attr), _) => attribute_word(attr).to_owned(),
                    (None, Some(name)) => name.to_owned(),
                    (None, None) => "done".to_owned(),
                };
                let reason = format!("{} handled it: {word}", a.user);
                self.quiet(pid, &reason, |p| {
                    finish(&mut p.work_mut()[index], &word, comment, &a.by, now_ms);
                    p.context = context;
                    p.handlers.insert(step.name.clone(), vec![a.user.clone()]);
                });
                self.finished_notice(pid, &step, &a.user);
                self.leave_dispatched(pid, &a.by, now_ms, "step completed");
                self.go(pid, next, &a.by, now_ms, conditions);
                Ok(())
            }
        }
    }

    /// Checks a person an item goes to: a known user without an item here already.
    fn check_receiver(&self, pcb: &Pcb, user: &str, to: &str) -> Result<(), CoreError> {
        if !self.operators.contains_key(to) {
            return Err(self.refuse(pcb, format!("there is no user '{to}'")));
        }
        if to == user {
            return Err(self.refuse(pcb, "the item is already theirs"));
        }
        if pcb
            .work
            .iter()
            .any(|w| w.visit == pcb.visit && &*w.user == to && w.state.is_pending())
        {
            return Err(self.refuse(pcb, format!("'{to}' already has an item at this step")));
        }
        Ok(())
    }

    /// `Command::Forward`.
    pub(super) fn forward(
        &mut self,
        pid: Pid,
        user: &str,
        to: &str,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let step = self.current_step(pcb)?;
        let Some(index) = open_item(pcb, user) else {
            return Err(self.refuse(pcb, format!("'{user}' has no open work item to forward")));
        };
        self.check_receiver(pcb, user, to)?;
        let moves_operator = pcb.operator.as_deref() == Some(user);
        let running = pcb.state == ProcessState::Running;
        if moves_operator && running && !self.has_room(to) {
            // The running step would go onto her load: nobody works over their capacity.
            return Err(self.refuse(
                pcb,
                format!("'{to}' is at her capacity: forward to someone with room, or later"),
            ));
        }
        self.out.pid = Some(pid);
        if moves_operator && running {
            if let Some(l) = self.load.get_mut(user) {
                *l = l.saturating_sub(1);
            }
            *self.load.entry(to.to_owned()).or_default() += 1;
        }
        let note = format!("forwarded by {user} to {to}: {reason}");
        self.mutate(pid, by, now_ms, &note, |p| {
            let old = p.work[index].clone();
            finish(
                &mut p.work_mut()[index],
                "forwarded",
                Some(reason),
                by,
                now_ms,
            );
            let mut item = new_item(p, to, None, old.role, ItemState::Open, now_ms);
            item.for_item = old.for_item;
            p.work_mut().push(item);
            if moves_operator {
                p.operator = Some(Arc::from(to));
            }
        });
        self.todo_notice(pid, &step, vec![to.to_owned()]);
        Ok(())
    }

    /// `Command::AddSigner`.
    pub(super) fn add_signer(
        &mut self,
        pid: Pid,
        user: &str,
        signer: &str,
        reason: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let step = self.current_step(pcb)?;
        let Some(index) = open_item(pcb, user) else {
            return Err(self.refuse(pcb, format!("'{user}' has no open work item")));
        };
        self.check_receiver(pcb, user, signer)?;
        self.out.pid = Some(pid);
        let note = format!("{user} added {signer} as a signer: {reason}");
        self.mutate(pid, by, now_ms, &note, |p| {
            p.work_mut()[index].state = ItemState::Waiting;
            let mut item = new_item(p, signer, None, ItemRole::Signer, ItemState::Open, now_ms);
            item.for_item = Some(p.work[index].id);
            item.comment = Some(reason.to_owned());
            p.work_mut().push(item);
        });
        self.todo_notice(pid, &step, vec![signer.to_owned()]);
        Ok(())
    }

    /// `Command::Return`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn return_to(
        &mut self,
        pid: Pid,
        step: &str,
        to_last_handler: bool,
        reason: &str,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let Some(handlers) = pcb.handlers.get(step) else {
            return Err(self.refuse(
                pcb,
                format!(
                    "it has not passed a human step '{step}' (it can return to: {})",
                    pcb.handlers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if pcb.step.as_deref() == Some(step) {
            return Err(self.refuse(pcb, "it is at that step already"));
        }
        let assignee = if to_last_handler {
            handlers.last().cloned()
        } else {
            None
        };
        let note = format!("returned to '{step}': {reason}");
        self.jump(pid, step, assignee, &note, by, now_ms, conditions)
    }

    /// `Command::ChangeState`.
    pub(super) fn change_state(
        &mut self,
        pid: Pid,
        step: &str,
        reason: &str,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let note = format!("state changed by an administrator to '{step}': {reason}");
        self.jump(pid, step, None, &note, by, now_ms, conditions)
    }

    /// Puts a process at `step` directly, closing what the current step asked of people.
    #[allow(clippy::too_many_arguments)]
    fn jump(
        &mut self,
        pid: Pid,
        step: &str,
        assignee: Option<String>,
        note: &str,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let svc = self.service_of(pcb)?;
        if svc.step(step).is_none() {
            return Err(CoreError::NoTransition {
                step: pcb.step.as_deref().unwrap_or_default().to_owned(),
                name: step.to_owned(),
                available: svc.steps.iter().map(|s| s.name.clone()).collect(),
            });
        }
        let state = pcb.state;
        match state {
            ProcessState::Ready | ProcessState::Running => {}
            ProcessState::Waiting if pcb.wait != Some(WaitReason::Children) => {}
            _ => {
                return Err(self.refuse(
                    pcb,
                    "only a READY, RUNNING or WAITING (not for children) process can be moved",
                ));
            }
        }
        self.out.pid = Some(pid);
        if state == ProcessState::Running {
            self.leave_dispatched(pid, by, now_ms, "taken back");
        } else {
            self.quiet(pid, "taken back", |p| {
                close_pending(p, "step left", now_ms);
                p.wait = None;
            });
            self.timers.retain(|(_, p)| *p != pid);
        }
        self.quiet(pid, note, |_| {});
        self.enter(pid, step, by, now_ms, conditions, 0);
        if let Some(user) = assignee {
            let at_step = self
                .pcbs
                .get(&pid)
                .is_some_and(|p| p.step.as_deref() == Some(step) && p.state == ProcessState::Ready);
            if at_step {
                self.quiet(pid, &format!("for {user}"), |p| {
                    p.assignee = Some(Arc::from(user.as_str()))
                });
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// `Command::Withdraw`.
    pub(super) fn withdraw(
        &mut self,
        pid: Pid,
        reason: &str,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        if pcb.creator.as_deref() != Some(by) {
            return Err(self.refuse(pcb, "only the creator may withdraw it"));
        }
        if pcb.state == ProcessState::Terminated {
            return Err(self.refuse(pcb, "it has ended"));
        }
        let acted = pcb
            .work
            .iter()
            .any(|w| w.state == ItemState::Done && Some(&*w.user) != pcb.creator.as_deref());
        if acted {
            return Err(self.refuse(pcb, "someone has acted on it already"));
        }
        self.out.pid = Some(pid);
        let note = format!("withdrawn by the creator: {reason}");
        self.terminate(pid, ExitStatus::Cancelled, by, now_ms, &note, conditions);
        Ok(())
    }
}

/// The users a step's operator rule names through the bound record's `field` or a context
/// `variable` (None when it names none that way). A missing value names nobody, so the
/// step waits for one to be set.
fn named_users(step: &Step, pcb: Option<&Pcb>) -> Option<Vec<String>> {
    let rule = step.operators.as_ref()?;
    if rule.field.is_none() && rule.variable.is_none() {
        return None;
    }
    let context = pcb.map(|p| &*p.context);
    let users = |v: Option<&Json>| -> Vec<String> {
        match v {
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(list)) => list
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut out: Option<Vec<String>> = None;
    if let Some(field) = &rule.field {
        out = Some(users(
            context
                .and_then(|c| c.get("record"))
                .and_then(|r| r.get(field)),
        ));
    }
    if let Some(var) = &rule.variable {
        let named = users(context.and_then(|c| c.get(var)));
        out = Some(match out {
            Some(prev) => prev.into_iter().filter(|u| named.contains(u)).collect(),
            None => named,
        });
    }
    out
}
