//! Timers and deadline alarms: a `Tick` fires what is due — a delayed start (`start_at`)
//! reached, a wait step's timer run out — and the alarms of each step's deadline (a
//! warning `warn_before` it, and the deadline passed) are kept here for the time service.
//!
//! Part of the scheduler core: pure, no I/O. It never reads a clock: "now" is always the
//! `now_ms` it is given, so a replay fires exactly the same timers. It never escalates by
//! itself either: an alarm only says a deadline is near or past; what to do about it is the
//! time service's (and the rules') decision, sent back as a command.

use super::steps::choose;
use super::{Alarm, AlarmKind, Conditions, Scheduler};
use crate::scheduler::pcb::{ExitStatus, Pcb, Pid, ProcessState, WaitReason};

impl Scheduler {
    /// `Command::Tick`: fires every timer due at `now_ms` (and lets the dispatcher look
    /// again when someone skipped for being off duty has come on duty).
    pub(super) fn tick(&mut self, now_ms: i64, conditions: &dyn Conditions) {
        if self.duty_check.is_some_and(|at| at <= now_ms) {
            self.duty_check = None;
            self.dirty = true;
        }
        let due: Vec<(i64, Pid)> = self.timers.range(..=(now_ms, Pid::MAX)).copied().collect();
        for (at, pid) in due {
            let Some(pcb) = self.pcbs.get(&pid) else {
                self.timers.remove(&(at, pid));
                continue;
            };
            match pcb.state {
                ProcessState::Suspended => continue,
                ProcessState::New if matches!(pcb.wait, Some(WaitReason::Timer { at_ms }) if at_ms == at) =>
                {
                    self.timers.remove(&(at, pid));
                    let first = self
                        .service_of(pcb)
                        .ok()
                        .and_then(|s| s.start().map(|s| s.name.clone()));
                    self.quiet(pid, "start time reached", |p| p.wait = None);
                    if let Some(first) = first {
                        self.enter(pid, &first, "timer", now_ms, conditions, 0);
                    }
                }
                ProcessState::Waiting if matches!(pcb.wait, Some(WaitReason::Timer { at_ms }) if at_ms == at) =>
                {
                    self.timers.remove(&(at, pid));
                    let (Ok(svc), Ok(step)) = (self.service_of(pcb), self.current_step(pcb)) else {
                        continue;
                    };
                    let view = pcb.clone();
                    self.quiet(pid, "timer fired", |p| p.wait = None);
                    match choose(&svc, &step, None, &view, conditions) {
                        Ok(next) => self.go(pid, next, "timer", now_ms, conditions),
                        Err(e) => self.terminate(
                            pid,
                            ExitStatus::Failed,
                            "timer",
                            now_ms,
                            &e.to_string(),
                            conditions,
                        ),
                    }
                }
                _ => {
                    self.timers.remove(&(at, pid));
                }
            }
        }
    }

    /// `Command::Rebook`: the visit's booking moved. The process sees the new booking;
    /// still NEW, it waits for `start_at_ms` (or enters its first step now, when that has
    /// passed); waiting at a step that counts to a time (`until`), it counts to the time
    /// the expression gives over the new booking.
    pub(super) fn rebook(
        &mut self,
        pid: Pid,
        booking: serde_json::Value,
        start_at_ms: Option<i64>,
        by: &str,
        now_ms: i64,
        conditions: &dyn Conditions,
    ) -> Result<(), super::CoreError> {
        let pcb = self
            .pcbs
            .get(&pid)
            .ok_or(super::CoreError::NoProcess(pid))?;
        if pcb.state == ProcessState::Terminated {
            return Err(super::CoreError::WrongState {
                pid,
                state: pcb.state,
                step: None,
                message: "a terminated process has no booking to move".into(),
            });
        }
        let state = pcb.state;
        let old_timer = match pcb.wait {
            Some(WaitReason::Timer { at_ms }) => Some(at_ms),
            _ => None,
        };
        let counts_until = self
            .current_step(pcb)
            .ok()
            .and_then(|s| s.wait.as_ref()?.until.clone());
        self.out.pid = Some(pid);
        self.mutate(pid, by, now_ms, "booking moved", |p| {
            if let Some(o) = std::sync::Arc::make_mut(&mut p.context).as_object_mut() {
                o.insert("booking".into(), booking);
            }
        });
        let new_timer = match state {
            ProcessState::New if old_timer.is_some() => start_at_ms.or(old_timer),
            ProcessState::Waiting if old_timer.is_some() => match counts_until {
                Some(until) => match self.pcbs.get(&pid).map(|v| conditions.instant(&until, v)) {
                    Some(Ok(at)) => Some(at),
                    _ => old_timer,
                },
                None => old_timer,
            },
            _ => None,
        };
        if let (Some(old), Some(new)) = (old_timer, new_timer)
            && old != new
        {
            self.timers.remove(&(old, pid));
            if state == ProcessState::New && new <= now_ms {
                // The new start time has passed already: start now.
                let first = self
                    .pcbs
                    .get(&pid)
                    .and_then(|p| self.service_of(p).ok())
                    .and_then(|s| s.start().map(|s| s.name.clone()));
                self.quiet(pid, "start time reached", |p| p.wait = None);
                if let Some(first) = first {
                    self.enter(pid, &first, by, now_ms, conditions, 0);
                }
            } else {
                self.timers.insert((new, pid));
                self.set_wait(
                    pid,
                    Some(WaitReason::Timer { at_ms: new }),
                    by,
                    now_ms,
                    "waits for the booking's new time",
                );
            }
        }
        Ok(())
    }

    /// The earliest pending timer (so the runtime knows when to `Tick`).
    pub fn next_timer(&self) -> Option<i64> {
        let timer = self.timers.first().map(|(at, _)| *at);
        match (timer, self.duty_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Alarms due at `now_ms`, earliest first, of processes that are not suspended.
    pub fn alarms_due(&self, now_ms: i64) -> Vec<Alarm> {
        self.alarms
            .range(..=(now_ms, Pid::MAX, AlarmKind::Passed, i64::MAX))
            .filter(|(_, pid, _, _)| {
                self.pcbs
                    .get(pid)
                    .is_some_and(|p| p.state != ProcessState::Suspended)
            })
            .map(|&(at_ms, pid, kind, deadline_ms)| Alarm {
                at_ms,
                pid,
                kind,
                deadline_ms,
            })
            .collect()
    }

    /// Forgets an alarm once the time service has handled it (not a change of the
    /// process: no history entry; after a restart the time service's marks dedupe).
    pub fn clear_alarm(&mut self, alarm: &Alarm) {
        self.alarms
            .remove(&(alarm.at_ms, alarm.pid, alarm.kind, alarm.deadline_ms));
    }

    /// The alarms of a PCB's current step for `deadline`: passed at the deadline, and a
    /// warning `warn_before` it (not before the deadline was set, if that is later).
    pub(super) fn alarms_for(
        &self,
        pcb: &Pcb,
        deadline: Option<i64>,
    ) -> Vec<(i64, Pid, AlarmKind, i64)> {
        let Some(deadline) = deadline else {
            return Vec::new();
        };
        let mut out = vec![(deadline, pcb.id, AlarmKind::Passed, deadline)];
        let warn = self
            .resolve(&pcb.service, Some(pcb.version))
            .ok()
            .and_then(|svc| {
                let step = svc.step(pcb.step.as_deref()?)?;
                let w = step.escalation.as_ref()?.warn_before.as_deref()?;
                iso_seconds(w)
            });
        if let Some(w) = warn {
            out.push((deadline - w * 1000, pcb.id, AlarmKind::Warning, deadline));
        }
        out
    }

    /// Replaces a process's alarms with those of `deadline`.
    /// Only this process's own entries are touched (through the deadline they were set
    /// for), never a scan of every alarm: this runs for every step entered.
    pub(super) fn set_alarms(&mut self, pid: Pid, deadline: Option<i64>) {
        for old in self.alarm_keys.remove(&pid).unwrap_or_default() {
            self.alarms.remove(&old);
        }
        if let (Some(pcb), Some(_)) = (self.pcbs.get(&pid), deadline) {
            let fresh = self.alarms_for(pcb, deadline);
            self.alarms.extend(fresh.iter().copied());
            self.alarm_keys.insert(pid, fresh);
        }
    }
}

/// Seconds in an ISO 8601 duration (`PT2H`, `P7D`), as the design layer validates them.
pub(super) fn iso_seconds(s: &str) -> Option<i64> {
    erpos_design::service_check::parse_iso_duration(s).and_then(|v| i64::try_from(v).ok())
}
