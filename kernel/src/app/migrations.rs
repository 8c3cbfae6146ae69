//! Moving running processes to another version of their service (issue 13 §6): the use
//! case behind `POST /api/v1/services/{name}/instance-migration`. A dry run reports, per
//! process, whether it can move and why not; a real run moves each one that can as one
//! recorded transition of its own (so one refusal never blocks the others) and reports the
//! rest with the reason. Needs `services:{name}:administer`.

use std::collections::BTreeMap;

use erpos_design::Issue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Kernel;
use crate::caller::{Caller, Permission, ServiceOp};
use crate::error::{KernelError, Result};
use crate::scheduler::{Command, Pid, ProcessState};

/// The most processes one request may name in `processes`: a longer list is sent in
/// parts (each process is one recorded transition, all in one request's answer).
pub const MAX_LISTED: usize = 1_000;

/// What to move: the processes of `from_version` (all of them, or the listed ones) to
/// `to_version` (default: the newest), their steps mapped by `steps` (old → new; a step
/// not listed keeps its name).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceMigration {
    /// The version the processes run now.
    pub from_version: u32,
    /// The version they move to (default: the newest published).
    #[serde(default)]
    pub to_version: Option<u32>,
    /// Old step name → new step name.
    #[serde(default)]
    pub steps: BTreeMap<String, String>,
    /// Only report what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these processes (default: every live one of `from_version`).
    #[serde(default)]
    pub processes: Option<Vec<Pid>>,
}

/// One process that moved (or, in a dry run, would).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Moved {
    /// The process.
    pub pid: Pid,
    /// The step it was at.
    pub from_step: Option<String>,
    /// The step it is at in the new version.
    pub to_step: Option<String>,
}

/// One process that cannot move, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Refused {
    /// The process.
    pub pid: Pid,
    /// The step it is at.
    pub step: Option<String>,
    /// Why it cannot move.
    pub reason: String,
}

/// What a migration did (or, dry, would do).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MigrationReport {
    /// The service.
    pub service: String,
    /// From which version.
    pub from_version: u32,
    /// To which version.
    pub to_version: u32,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The processes that moved (would move).
    pub moved: Vec<Moved>,
    /// The processes that cannot move, with why.
    pub refused: Vec<Refused>,
}

/// A candidate process, the step it is at, and the step it would move to or why not.
type Checked = (
    Pid,
    Option<String>,
    std::result::Result<Option<String>, String>,
);

fn invalid(path: &str, message: impl Into<String>) -> KernelError {
    KernelError::Invalid(vec![Issue::new(path, message)])
}

/// Moves (or, dry, checks) the processes `body` names; see the module.
pub async fn migrate_instances(
    k: &Kernel,
    caller: &Caller,
    service: &str,
    body: &Value,
) -> Result<MigrationReport> {
    super::design::service_visible(caller, service)?;
    super::require(
        caller,
        Permission::Service {
            name: service,
            op: ServiceOp::Administer,
        },
        "moving processes to another version",
    )?;
    let spec: InstanceMigration = serde_path_to_error::deserialize(body).map_err(|e| {
        let at = erpos_design::error::serde_path_to_pointer(&e.path().to_string());
        invalid(&at, e.inner().to_string())
    })?;
    if let Some(list) = &spec.processes
        && list.len() > MAX_LISTED
    {
        return Err(invalid(
            "/processes",
            format!(
                "at most {MAX_LISTED} processes per request; this one names {}: send them in parts",
                list.len()
            ),
        ));
    }
    let versions = k.services.versions(service).await;
    if versions.is_empty() {
        return Err(KernelError::NotFound(format!("service '{service}'")));
    }
    let find = |v: u32| versions.iter().find(|s| s.version == v).cloned();
    let from = find(spec.from_version).ok_or_else(|| {
        invalid(
            "/from_version",
            format!("'{service}' has no published version {}", spec.from_version),
        )
    })?;
    let to_version = spec
        .to_version
        .unwrap_or_else(|| versions.iter().map(|s| s.version).max().unwrap_or(1));
    let to = find(to_version).ok_or_else(|| {
        invalid(
            "/to_version",
            format!("'{service}' has no published version {to_version}"),
        )
    })?;
    if to_version == spec.from_version {
        return Err(invalid(
            "/to_version",
            "the processes run this version already",
        ));
    }
    let mut issues = Vec::new();
    for (old, new) in &spec.steps {
        if from.step(old).is_none() {
            issues.push(Issue::new(
                format!("/steps/{old}"),
                format!("version {} has no step '{old}'", spec.from_version),
            ));
        }
        if to.step(new).is_none() {
            issues.push(Issue::new(
                format!("/steps/{old}"),
                format!("version {to_version} has no step '{new}'"),
            ));
        }
    }
    if !issues.is_empty() {
        return Err(KernelError::Invalid(issues));
    }
    // The candidates and whether each can move, read at once.
    let checked: Vec<Checked> = k
        .engine
        .read(|c| {
            let pids: Vec<Pid> = match &spec.processes {
                Some(list) => list.clone(),
                None => c
                    .pcbs()
                    .filter(|p| {
                        *p.service == *service
                            && p.version == spec.from_version
                            && p.state != ProcessState::Terminated
                    })
                    .map(|p| p.id)
                    .collect(),
            };
            pids.into_iter()
                .map(|pid| {
                    let pcb = c.pcb(pid);
                    let step = pcb.and_then(|p| p.step.as_deref().map(str::to_owned));
                    let verdict = match pcb {
                        Some(p) if *p.service != *service => {
                            Err(format!("it is a process of '{}'", p.service))
                        }
                        Some(p) if p.version != spec.from_version => {
                            Err(format!("it runs version {}", p.version))
                        }
                        Some(_) => c.migration_target(pid, to_version, &spec.steps),
                        None => Err(format!("no process {pid}")),
                    };
                    (pid, step, verdict)
                })
                .collect()
        })
        .await;
    let mut report = MigrationReport {
        service: service.to_owned(),
        from_version: spec.from_version,
        to_version,
        dry_run: spec.dry_run,
        moved: Vec::new(),
        refused: Vec::new(),
    };
    for (pid, step, verdict) in checked {
        match verdict {
            Err(reason) => report.refused.push(Refused { pid, step, reason }),
            Ok(to_step) if spec.dry_run => report.moved.push(Moved {
                pid,
                from_step: step,
                to_step,
            }),
            Ok(to_step) => {
                let command = Command::Migrate {
                    pid,
                    version: to_version,
                    steps: spec.steps.clone(),
                    by: caller.user.clone(),
                };
                // Each move is its own transition: the process may have moved on since it
                // was checked, and then the core refuses it, saying why.
                match k.engine.command(command).await {
                    Ok(_) => report.moved.push(Moved {
                        pid,
                        from_step: step,
                        to_step,
                    }),
                    Err(KernelError::Process(e)) => report.refused.push(Refused {
                        pid,
                        step,
                        reason: e.to_string(),
                    }),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(report)
}
