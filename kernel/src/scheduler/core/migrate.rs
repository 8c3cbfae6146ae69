//! Instance migration (issue 13 §6): moving a running process from the version of its
//! service it started with to another published version, its current step mapped to a step
//! of the same kind there (by name when the analyst gives no mapping). The move is one
//! recorded transition (`migrated v1 → v2`), so replaying the history replays it; the
//! current step keeps its operator, work items, resources and deadline, and the new
//! version's rules apply from the next step on.
//!
//! What cannot move is said, never guessed: an ended process, one whose step has no
//! counterpart, one whose counterpart is another kind of step or waits for another signal,
//! and one in the middle of a call or parallel branches (its children run the old graph).
//!
//! Part of the scheduler core: pure, no I/O, no clock.

use std::collections::BTreeMap;

use erpos_design::service::StepKind;

use super::{CoreError, Scheduler};
use crate::scheduler::pcb::{Pid, ProcessState};

impl Scheduler {
    /// Whether process `pid` can move to `version` of its service with `steps` mapping
    /// old step names to new ones: the step it would be at (None for a process not yet at
    /// a step), or why it cannot move.
    pub fn migration_target(
        &self,
        pid: Pid,
        version: u32,
        steps: &BTreeMap<String, String>,
    ) -> Result<Option<String>, String> {
        let pcb = self
            .pcbs
            .get(&pid)
            .ok_or_else(|| format!("no process {pid}"))?;
        if pcb.state == ProcessState::Terminated {
            return Err("it has ended".into());
        }
        if pcb.version == version {
            return Err(format!("it runs version {version} already"));
        }
        let target = self
            .resolve(&pcb.service, Some(version))
            .map_err(|_| format!("'{}' has no published version {version}", pcb.service))?;
        if !pcb.children.is_empty() || pcb.join.is_some() || pcb.parent.is_some() {
            return Err(
                "it is part of a call or of parallel branches (its children run the old \
                 version's steps): move it when they have returned"
                    .into(),
            );
        }
        let Some(step) = pcb.step.as_deref() else {
            return Ok(None);
        };
        let mapped = steps.get(step).map(String::as_str).unwrap_or(step);
        let Some(new) = target.step(mapped) else {
            return Err(if steps.contains_key(step) {
                format!(
                    "step '{step}' is mapped to '{mapped}', which version {version} does not have"
                )
            } else {
                format!(
                    "step '{step}' has no counterpart in version {version}: map it (\"steps\": {{\"{step}\": …}})"
                )
            });
        };
        let old = self
            .service_of(pcb)
            .ok()
            .and_then(|svc| svc.step(step).cloned())
            .ok_or_else(|| format!("its step '{step}' is not in its own version"))?;
        if old.kind != new.kind {
            return Err(format!(
                "step '{step}' is {:?} and '{mapped}' in version {version} is {:?}: a process \
                 moves only to a step of the same kind",
                old.kind, new.kind
            )
            .to_lowercase());
        }
        if old.kind == StepKind::Wait {
            let event =
                |s: &erpos_design::service::Step| s.wait.as_ref().and_then(|w| w.event.clone());
            if event(&old) != event(new) {
                return Err(format!(
                    "step '{step}' waits for {:?} and '{mapped}' in version {version} for {:?}",
                    event(&old),
                    event(new)
                ));
            }
        }
        Ok(Some(mapped.to_owned()))
    }

    /// `Command::Migrate`: moves the process (see [`Scheduler::migration_target`]).
    pub(super) fn migrate(
        &mut self,
        pid: Pid,
        version: u32,
        steps: &BTreeMap<String, String>,
        by: &str,
        now_ms: i64,
    ) -> Result<(), CoreError> {
        let pcb = self.get(pid)?;
        let (from_version, from_step, state) = (pcb.version, pcb.step.clone(), pcb.state);
        let target = self
            .migration_target(pid, version, steps)
            .map_err(|message| CoreError::WrongState {
                pid,
                state,
                step: from_step.as_deref().map(str::to_owned),
                message,
            })?;
        self.out.pid = Some(pid);
        let moved = match (&from_step, &target) {
            (Some(a), Some(b)) if a.as_ref() != b.as_str() => format!(" (step {a} → {b})"),
            _ => String::new(),
        };
        self.mutate(
            pid,
            by,
            now_ms,
            &format!("migrated v{from_version} → v{version}{moved}"),
            |p| {
                p.version = version;
                if let Some(step) = &target {
                    p.step = Some(std::sync::Arc::from(step.as_str()));
                }
            },
        );
        Ok(())
    }
}
