//! Starting a process: the `Start` command — admission (the service's `may_start` rule for
//! the user who asks), then a new PCB (its serial number counted here), then either the
//! first step entered, a wait for its start time (`start_at`), or a wait for its
//! predecessor to terminate (a sequential chain). Children of sub-service and parallel
//! steps are created here too.
//!
//! Part of the scheduler core: pure, no I/O, no clock. A start is checked whole (service,
//! admission, predecessor) before a process is created, so a refused start leaves no
//! process and takes no process number or serial number.

use chrono::Datelike;
use erpos_design::service::Service;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Conditions, CoreError, DEFAULT_PRIORITY, Scheduler};
use crate::scheduler::pcb::{Pcb, Pid, ProcessState, WaitReason};

impl Scheduler {
    /// `Command::Start`: creates a process of a published service and starts it (or leaves
    /// it NEW, waiting for its start time or its predecessor).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        service: &str,
        version: Option<u32>,
        priority: Option<i32>,
        record: Option<(String, String)>,
        context: Json,
        predecessor: Option<Pid>,
        start_at_ms: Option<i64>,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let svc = self.resolve(service, version)?;
        self.check_may_start(&svc, by, now_ms, conditions)?;
        if let Some(p) = predecessor
            && !self.pcbs.contains_key(&p)
        {
            return Err(CoreError::NoProcess(p));
        }
        let pid = self.spawn(
            &svc,
            priority,
            record,
            context,
            None,
            predecessor,
            None,
            by,
            now_ms,
        );
        self.out.pid = Some(pid);
        let waits_for_predecessor = predecessor
            .and_then(|p| self.pcbs.get(&p))
            .is_some_and(|p| p.state != ProcessState::Terminated);
        match start_at_ms {
            Some(at) if at > now_ms => {
                self.set_wait(
                    pid,
                    Some(WaitReason::Timer { at_ms: at }),
                    by,
                    now_ms,
                    "start time not reached",
                );
                self.timers.insert((at, pid));
            }
            _ if waits_for_predecessor => {
                if let Some(p) = predecessor {
                    self.successors.entry(p).or_default().push(pid);
                    self.mutate(pid, by, now_ms, &format!("waits for process {p}"), |_| {});
                }
            }
            _ => {
                let first = svc.start().map(|s| s.name.clone()).unwrap_or_default();
                self.enter(pid, &first, by, now_ms, conditions, 0);
            }
        }
        Ok(())
    }

    /// Refuses a start the service's `may_start` does not allow for `by` (checked under the
    /// core's lock, so two concurrent starts cannot both slip under a limit). Starts by
    /// anyone who is not a user (rules, timers, the bootstrap administrator) are not limited.
    fn check_may_start(
        &self,
        svc: &Service,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), CoreError> {
        let (Some(expression), Some(user)) = (&svc.may_start, self.operators.get(by)) else {
            return Ok(());
        };
        let offset = svc.serial.as_ref().map_or(0, |s| s.utc_offset_minutes);
        let mut bindings = serde_json::Map::new();
        bindings.insert(
            "user".into(),
            json!({"id": user.id, "roles": user.roles, "skills": user.skills, "department": user.department}),
        );
        bindings.insert(
            "started".into(),
            started_counts(self, by, &svc.name, now_ms, offset),
        );
        match conditions.holds_over(expression, &bindings) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CoreError::NotAllowed(format!(
                "'{by}' may not start '{}' now ({expression})",
                svc.name
            ))),
            Err(e) => Err(CoreError::NotAllowed(format!(
                "the start rule of '{}' failed: {e}",
                svc.name
            ))),
        }
    }

    /// Creates a process (NEW, at no step yet) of `svc`: numbers it when the service has a
    /// serial, inherits its creator from the parent, and records it with the parent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn(
        &mut self,
        svc: &Service,
        priority: Option<i32>,
        record: Option<(String, String)>,
        context: Json,
        parent: Option<Pid>,
        predecessor: Option<Pid>,
        join: Option<String>,
        by: &str,
        now_ms: i64,
    ) -> Pid {
        let pid = self.next_pid;
        self.next_pid += 1;
        // Serial numbers are counted here, under the core's lock, and stored with the
        // process they name: unique and gap-free whatever the concurrency.
        // Parallel branches (which have a join) are parts of their parent's process and are
        // not numbered.
        let numbered = if join.is_none() {
            svc.serial.as_ref()
        } else {
            None
        };
        let serial = numbered.map(|spec| {
            let scope = spec.scope(now_ms);
            let n = self.serials.entry(scope.clone()).or_default();
            *n += 1;
            spec.format(&scope, *n)
        });
        let pcb = Pcb {
            id: pid,
            service: Arc::from(svc.name.as_str()),
            version: svc.version,
            parent,
            predecessor,
            record,
            state: ProcessState::New,
            exit: None,
            suspended_from: None,
            priority: priority.or(svc.priority).unwrap_or(DEFAULT_PRIORITY),
            step: None,
            join,
            operator: None,
            allocations: Vec::new(),
            context: if context.is_null() {
                Arc::new(json!({}))
            } else {
                Arc::new(context)
            },
            wait: None,
            deadline_ms: None,
            ready_since_ms: None,
            children: Vec::new(),
            version_no: 0,
            assignee: None,
            serial,
            creator: match parent.and_then(|p| self.pcbs.get(&p)) {
                Some(p) => p.creator.clone(),
                None => Some(Arc::from(by)),
            },
            created_ms: now_ms,
            visit: 0,
            work: Arc::default(),
            handlers: BTreeMap::new(),
            iteration: None,
        };
        self.pcbs.insert(pid, pcb);
        self.quiet(pid, "created", |_| {});
        if let Some(parent) = parent {
            self.mutate(parent, by, now_ms, &format!("child {pid} started"), |p| {
                p.children.push(pid)
            });
        }
        pid
    }
}

/// Counts of `user`'s processes of `service`: started today, this calendar month (both at
/// `utc_offset_minutes`), in the last 30 days, and still open — what a service's
/// `may_start` expression sees as `started`.
pub fn started_counts(
    core: &Scheduler,
    user: &str,
    service: &str,
    now_ms: i64,
    utc_offset_minutes: i32,
) -> Json {
    let offset = chrono::FixedOffset::east_opt(utc_offset_minutes * 60)
        .or_else(|| chrono::FixedOffset::east_opt(0));
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .zip(offset)
            .map(|(t, o)| t.with_timezone(&o))
    };
    let now = local(now_ms);
    let (mut today, mut month, mut last_30, mut open) = (0, 0, 0, 0);
    for p in core.pcbs_unordered().filter(|p| {
        &*p.service == service && p.creator.as_deref() == Some(user) && p.parent.is_none()
    }) {
        let t = local(p.created_ms);
        if let (Some(t), Some(n)) = (t, now) {
            if t.date_naive() == n.date_naive() {
                today += 1;
            }
            if t.year() == n.year() && t.month() == n.month() {
                month += 1;
            }
        }
        if now_ms - p.created_ms < 30 * 86_400_000 {
            last_30 += 1;
        }
        if p.state != ProcessState::Terminated {
            open += 1;
        }
    }
    json!({"today": today, "this_month": month, "last_30_days": last_30, "open": open})
}
