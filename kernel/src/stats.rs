//! Process statistics (the WfMC time service): per service, step, operator and role over a
//! period, how much work started, how it ended, how long it took, how much was late, and
//! how much is open now.
//!
//! Everything is derived from the stored history (`process_history`: each change carries
//! the PCB after it, so a step's enter and leave show when consecutive changes of a process
//! are compared) and, for the backlog, from the process rows as they are now. `compute` is a
//! pure function over rows already read: it does no I/O and never reads a clock (`now` is
//! passed in), so every rule below is unit-tested on hand-made and scheduler-made histories.
//! Reading the rows is `store`'s job. This module must never write anything.
//!
//! # What is counted
//! Three kinds of span are cut out of each process's history:
//! - a **run** (service): from the process's first change to its termination. Parallel
//!   branches are processes of the same service created for one split; they are part of
//!   their parent's run, not runs of their own (they would count one visit two or three
//!   times), but their steps and operators are counted.
//! - a **visit** (step): from the change that shows the process at the step (the step
//!   changed, or the change says it `entered` the step again, for a loop back to itself) to
//!   the next change that shows it elsewhere or terminated. Gateways, joins and end steps
//!   are passed through inside one change and never show: they have no visits.
//! - a **handling** (operator, role): from the change that dispatched the step to an
//!   operator to the change that took the operator off it (the step was left or the process
//!   terminated). A suspension in between does not end it: the operator keeps the work.
//!   Automatic steps run as `system`, which is no operator and is left out.
//!
//! For a period `[from, to)` (`to` exclusive) and each span kind, per group:
//! - `started`: spans that began in the period;
//! - `completed`, `cancelled`, `failed`: spans that ended in the period, by how they ended.
//!   A visit or handling ends `completed` when the process moved on (to another step or to a
//!   completed end) and takes the process's exit when it was terminated there;
//! - `avg_ms`, `p50_ms`, `p90_ms`: over the durations of the spans *completed* in the period, whenever
//!   they began (a visit entered before `from` and left inside the period counts in full).
//!   Cancelled and failed spans are not timed: their length says when someone gave up, not
//!   how long the work takes. `p50_ms` (the median) and `p90_ms` are nearest ranks: the
//!   ⌈0.5·n⌉-th and ⌈0.9·n⌉-th smallest, always a duration that occurred; `avg_ms` is
//!   rounded to the nearest millisecond. All three are null when nothing completed.
//! - `late`: visits and handlings whose step had a deadline and that either ended in the
//!   period after it, or were still open at the end of the period (or now, if that is
//!   earlier) past it. A run is late when one of its visits (or its branches' visits)
//!   counts as late in the period: services have no deadline of their own.
//! - `backlog`: what is open *now*, whatever the period: processes not terminated (runs),
//!   processes at the step, processes whose current operator is the operator or holds the
//!   role.
//!
//! Role membership is the users' definitions as they are now (who held a role last month
//! is not recorded); a handling counts for every role its operator holds.

pub mod store;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::scheduler::{ExitStatus, Pcb, Pid, ProcessState};

/// The operator automatic steps run under: the kernel, not a person.
pub const SYSTEM_OPERATOR: &str = "system";

/// A period `[from_ms, to_ms)` in milliseconds since the Unix epoch: half open, so that
/// consecutive periods (days, months) never count a change twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first instant in the period.
    pub from_ms: i64,
    /// The first instant after the period.
    pub to_ms: i64,
}

impl Period {
    /// Whether `at_ms` falls in the period.
    pub fn contains(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }
}

/// The fields of a stored PCB that statistics read. Deserialized straight from the stored
/// PCB JSON (the context and the rest are skipped), so a history row costs little.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Snapshot {
    /// The process.
    pub id: Pid,
    /// The service it runs.
    pub service: String,
    /// Its state.
    pub state: ProcessState,
    /// How it ended (TERMINATED only).
    #[serde(default)]
    pub exit: Option<ExitStatus>,
    /// The process that started it.
    #[serde(default)]
    pub parent: Option<Pid>,
    /// For a parallel branch: the join where it ends.
    #[serde(default)]
    pub join: Option<String>,
    /// The step it is at.
    #[serde(default)]
    pub step: Option<String>,
    /// The operator handling the step.
    #[serde(default)]
    pub operator: Option<String>,
    /// When the current step is due.
    #[serde(default)]
    pub deadline_ms: Option<i64>,
}

impl Snapshot {
    /// The statistics' view of a PCB.
    pub fn of(pcb: &Pcb) -> Snapshot {
        Snapshot {
            id: pcb.id,
            service: pcb.service.to_string(),
            state: pcb.state,
            exit: pcb.exit,
            parent: pcb.parent,
            join: pcb.join.clone(),
            step: pcb.step.as_deref().map(str::to_owned),
            operator: pcb.operator.as_deref().map(str::to_owned),
            deadline_ms: pcb.deadline_ms,
        }
    }

    /// Whether it is a parallel branch (part of its parent's run, not a run of its own).
    pub fn is_branch(&self) -> bool {
        self.join.is_some()
    }
}

/// One stored change of a process: when, why, and the PCB after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The process.
    pub pid: Pid,
    /// Its position in the process's history.
    pub seq: u64,
    /// When (ms since epoch).
    pub at_ms: i64,
    /// Why, as the scheduler wrote it (a re-entered step shows only here).
    pub reason: String,
    /// The PCB after the change.
    pub after: Snapshot,
}

/// The figures of one group (a service, a step, an operator or a role) for a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Spans that began in the period.
    pub started: u64,
    /// Spans that ended in the period with the work done.
    pub completed: u64,
    /// Spans that ended in the period because the process was cancelled.
    pub cancelled: u64,
    /// Spans that ended in the period because the process failed.
    pub failed: u64,
    /// Mean duration of the completed spans (ms, rounded), null when none completed.
    pub avg_ms: Option<i64>,
    /// Nearest-rank median of the completed spans' durations (ms): what a typical one
    /// takes, which a few very long ones do not move (the mean they do).
    pub p50_ms: Option<i64>,
    /// Nearest-rank 90th percentile of the completed spans' durations (ms).
    pub p90_ms: Option<i64>,
    /// Spans finished after their deadline, or still open past it.
    pub late: u64,
    /// Open now.
    pub backlog: u64,
}

/// Every group's figures for one period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Per service (runs).
    pub services: BTreeMap<String, Figures>,
    /// Per (service, step) (visits).
    pub steps: BTreeMap<(String, String), Figures>,
    /// Per operator (handlings); every known operator is listed, idle ones with zeros.
    pub operators: BTreeMap<String, Figures>,
    /// Per role (handlings of its holders); every role a user holds is listed.
    pub roles: BTreeMap<String, Figures>,
}

/// The nearest-rank percentile `pct` (1–100) of durations sorted ascending: the smallest
/// value with at least `pct` percent of the values at or below it (no interpolation, so the
/// answer is always a duration that really occurred). None for no values.
pub fn nearest_rank(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

/// How a span ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Cancelled,
    Failed,
}

/// A stretch of time cut out of one process's history.
#[derive(Debug, Clone, Copy)]
struct Span {
    start_ms: i64,
    end: Option<(i64, Outcome)>,
    deadline_ms: Option<i64>,
}

impl Span {
    fn open(start_ms: i64, deadline_ms: Option<i64>) -> Span {
        Span {
            start_ms,
            end: None,
            deadline_ms,
        }
    }

    fn closed(mut self, at_ms: i64, outcome: Outcome) -> Span {
        self.end = Some((at_ms, outcome));
        self
    }
}

/// Counts for one group while the spans are gathered.
#[derive(Debug, Default)]
struct Tally {
    started: u64,
    completed: u64,
    cancelled: u64,
    failed: u64,
    durations: Vec<i64>,
    late: u64,
    backlog: u64,
}

impl Tally {
    /// Counts a span; returns whether it counted as late. `edge_ms` is where the period
    /// ends for spans still open: its end, or now if that is earlier.
    fn count(&mut self, span: &Span, period: Period, edge_ms: i64) -> bool {
        if period.contains(span.start_ms) {
            self.started += 1;
        }
        let late = match span.end {
            Some((end, outcome)) if period.contains(end) => {
                match outcome {
                    Outcome::Completed => {
                        self.completed += 1;
                        // A clock stepping back must not make a negative duration.
                        self.durations.push((end - span.start_ms).max(0));
                    }
                    Outcome::Cancelled => self.cancelled += 1,
                    Outcome::Failed => self.failed += 1,
                }
                span.deadline_ms.is_some_and(|d| end > d)
            }
            Some(_) => false,
            None => span.deadline_ms.is_some_and(|d| edge_ms > d),
        };
        if late {
            self.late += 1;
        }
        late
    }

    fn figures(mut self) -> Figures {
        self.durations.sort_unstable();
        let n = self.durations.len() as i128;
        let avg_ms = (n > 0).then(|| {
            let sum: i128 = self.durations.iter().map(|d| i128::from(*d)).sum();
            // Durations are never negative, so this rounds half up.
            i64::try_from((sum + n / 2) / n).unwrap_or(i64::MAX)
        });
        Figures {
            started: self.started,
            completed: self.completed,
            cancelled: self.cancelled,
            failed: self.failed,
            avg_ms,
            p50_ms: nearest_rank(&self.durations, 50),
            p90_ms: nearest_rank(&self.durations, 90),
            late: self.late,
            backlog: self.backlog,
        }
    }
}

fn outcome_of(after: &Snapshot) -> Outcome {
    match (after.state, after.exit) {
        (ProcessState::Terminated, Some(ExitStatus::Cancelled)) => Outcome::Cancelled,
        // Terminated without an exit cannot be written by the scheduler; count it as failed
        // rather than as work done.
        (ProcessState::Terminated, Some(ExitStatus::Failed) | None) => Outcome::Failed,
        _ => Outcome::Completed,
    }
}

/// Whether a change shows the process entering `step` afresh: it was elsewhere before, or
/// the scheduler's reason says it entered it (a loop back to the same step leaves the step
/// name unchanged; the reason is the only trace).
fn entered(change: &Change, previous: Option<&str>, step: &str) -> bool {
    previous != Some(step) || {
        let needle = format!("entered '{step}'");
        change.reason.contains(&needle)
    }
}

/// Computes every group's figures for `period`.
///
/// `changes`: the stored changes of every process that may have been alive in the period,
/// each with its whole history before `to` (a visit entered before `from` needs its
/// entering change), in any order; changes at or after `to` are ignored. `open`: the
/// processes not terminated now (for the backlog). `roles_of`: each operator's roles, from
/// the users' definitions. `now_ms`: the engine's clock.
pub fn compute(
    changes: &[Change],
    open: &[Snapshot],
    roles_of: &BTreeMap<String, BTreeSet<String>>,
    period: Period,
    now_ms: i64,
) -> Report {
    let edge_ms = period.to_ms.min(now_ms);
    let mut histories: BTreeMap<Pid, Vec<&Change>> = BTreeMap::new();
    for c in changes.iter().filter(|c| c.at_ms < period.to_ms) {
        histories.entry(c.pid).or_default().push(c);
    }
    let mut runs: BTreeMap<String, Tally> = BTreeMap::new();
    let mut steps: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut operators: BTreeMap<String, Tally> = BTreeMap::new();
    let mut roles: BTreeMap<String, Tally> = BTreeMap::new();
    for (op, held) in roles_of {
        operators.entry(op.clone()).or_default();
        for r in held {
            roles.entry(r.clone()).or_default();
        }
    }
    // The processes with a late visit, and where each branch belongs.
    let mut late_pids: BTreeSet<Pid> = BTreeSet::new();
    let mut branch_parent: BTreeMap<Pid, Pid> = BTreeMap::new();
    let mut run_spans: Vec<(Pid, String, Span)> = Vec::new();

    for (pid, history) in &mut histories {
        history.sort_by_key(|c| c.seq);
        let Some(first) = history.first() else {
            continue;
        };
        let is_branch = first.after.is_branch();
        if is_branch && let Some(parent) = first.after.parent {
            branch_parent.insert(*pid, parent);
        }
        let service = first.after.service.clone();
        let mut run = Span::open(first.at_ms, None);
        let mut visit: Option<(String, Span)> = None;
        let mut handling: Option<(String, Span)> = None;
        let mut ended_visits: Vec<(String, Span)> = Vec::new();
        let mut ended_handlings: Vec<(String, Span)> = Vec::new();
        for c in history.iter() {
            let after = &c.after;
            let outcome = outcome_of(after);
            let previous = visit.as_ref().map(|(s, _)| s.as_str());
            let enters = after
                .step
                .as_deref()
                .is_some_and(|s| entered(c, previous, s));
            let leaves = visit.is_some() && (enters || after.step.is_none());
            if let Some((op, span)) = handling.take() {
                if leaves || after.operator.as_deref() != Some(op.as_str()) {
                    ended_handlings.push((op, span.closed(c.at_ms, outcome)));
                } else {
                    handling = Some((op, span));
                }
            }
            if leaves && let Some((step, span)) = visit.take() {
                ended_visits.push((step, span.closed(c.at_ms, outcome)));
            }
            if enters && let Some(step) = &after.step {
                visit = Some((step.clone(), Span::open(c.at_ms, after.deadline_ms)));
            }
            if handling.is_none()
                && let Some(op) = &after.operator
                && op != SYSTEM_OPERATOR
            {
                let deadline = visit.as_ref().and_then(|(_, v)| v.deadline_ms);
                handling = Some((op.clone(), Span::open(c.at_ms, deadline)));
            }
            if after.state == ProcessState::Terminated && run.end.is_none() {
                run = run.closed(c.at_ms, outcome);
            }
        }
        ended_visits.extend(visit);
        ended_handlings.extend(handling);
        for (step, span) in &ended_visits {
            let tally = steps.entry((service.clone(), step.clone())).or_default();
            if tally.count(span, period, edge_ms) {
                late_pids.insert(*pid);
            }
        }
        for (op, span) in &ended_handlings {
            operators
                .entry(op.clone())
                .or_default()
                .count(span, period, edge_ms);
            for r in roles_of.get(op).into_iter().flatten() {
                roles
                    .entry(r.clone())
                    .or_default()
                    .count(span, period, edge_ms);
            }
        }
        if !is_branch {
            run_spans.push((*pid, service, run));
        }
    }

    // A branch's lateness is its root run's: climb through nested branches.
    let root = |mut pid: Pid| {
        let mut hops = 0;
        while let Some(parent) = branch_parent.get(&pid) {
            pid = *parent;
            hops += 1;
            if hops > branch_parent.len() {
                break;
            }
        }
        pid
    };
    let late_runs: BTreeSet<Pid> = late_pids.iter().map(|p| root(*p)).collect();
    for (pid, service, span) in &run_spans {
        let tally = runs.entry(service.clone()).or_default();
        // Runs have no deadline of their own; their lateness is their visits'.
        tally.count(span, period, edge_ms);
        if late_runs.contains(pid) {
            tally.late += 1;
        }
    }

    for p in open.iter().filter(|p| p.state != ProcessState::Terminated) {
        if !p.is_branch() {
            runs.entry(p.service.clone()).or_default().backlog += 1;
        }
        if let Some(step) = &p.step {
            steps
                .entry((p.service.clone(), step.clone()))
                .or_default()
                .backlog += 1;
        }
        if let Some(op) = p.operator.as_deref().filter(|op| *op != SYSTEM_OPERATOR) {
            operators.entry(op.to_owned()).or_default().backlog += 1;
            for r in roles_of.get(op).into_iter().flatten() {
                roles.entry(r.clone()).or_default().backlog += 1;
            }
        }
    }

    let finish = |m: BTreeMap<String, Tally>| -> BTreeMap<String, Figures> {
        m.into_iter().map(|(k, t)| (k, t.figures())).collect()
    };
    Report {
        services: finish(runs),
        steps: steps.into_iter().map(|(k, t)| (k, t.figures())).collect(),
        operators: finish(operators),
        roles: finish(roles),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::conditions::RhaiConditions;
    use crate::scheduler::{Command, HistoryEntry, Operator, Scheduler};
    use erpos_design::service::Service;
    use serde_json::json;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_856_400_000;

    fn snap(pid: Pid, state: ProcessState, step: Option<&str>, op: Option<&str>) -> Snapshot {
        Snapshot {
            id: pid,
            service: "visit".into(),
            state,
            exit: None,
            parent: None,
            join: None,
            step: step.map(str::to_owned),
            operator: op.map(str::to_owned),
            deadline_ms: None,
        }
    }

    fn change(pid: Pid, seq: u64, at_min: i64, reason: &str, after: Snapshot) -> Change {
        Change {
            pid,
            seq,
            at_ms: T0 + at_min * MIN,
            reason: reason.into(),
            after,
        }
    }

    fn all_time() -> Period {
        Period {
            from_ms: 0,
            to_ms: i64::MAX,
        }
    }

    #[test]
    fn nearest_rank_takes_the_ceiling_rank_and_never_interpolates() {
        assert_eq!(nearest_rank(&[], 90), None);
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2], 90), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3], 90), Some(3));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 90), Some(9), "rank ⌈9⌉ = 9");
        let eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(nearest_rank(&eleven, 90), Some(10), "rank ⌈9.9⌉ = 10");
        assert_eq!(nearest_rank(&ten, 100), Some(10));
        assert_eq!(nearest_rank(&ten, 1), Some(1));
        // The median: the ⌈n/2⌉-th, a value that occurred (never the mean of two).
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&eleven, 50), Some(6));
        assert_eq!(nearest_rank(&[3, 100], 50), Some(3));
    }

    /// A visit entered before the period and left inside it counts in full; one left before
    /// the period does not count at all; `started` only counts what began inside.
    #[test]
    fn spans_are_attributed_by_when_they_begin_and_end() {
        let mut done = snap(1, ProcessState::Terminated, None, None);
        done.exit = Some(ExitStatus::Completed);
        let changes = vec![
            change(
                1,
                1,
                0,
                "created; entered 'a'",
                snap(1, ProcessState::Ready, Some("a"), None),
            ),
            change(
                1,
                2,
                10,
                "entered 'b'",
                snap(1, ProcessState::Ready, Some("b"), None),
            ),
            change(1, 3, 70, "reached the end", done),
        ];
        let period = Period {
            from_ms: T0 + 30 * MIN,
            to_ms: T0 + 120 * MIN,
        };
        let r = compute(&changes, &[], &BTreeMap::new(), period, T0 + 200 * MIN);
        let a = r.steps[&("visit".into(), "a".into())];
        assert_eq!((a.started, a.completed, a.avg_ms), (0, 0, None), "{a:?}");
        let b = r.steps[&("visit".into(), "b".into())];
        assert_eq!((b.started, b.completed, b.avg_ms), (0, 1, Some(60 * MIN)));
        let run = r.services["visit"];
        assert_eq!(
            (run.started, run.completed, run.avg_ms),
            (0, 1, Some(70 * MIN))
        );
        // A period ending before the termination sees b open, and the run open.
        let early = Period {
            from_ms: T0,
            to_ms: T0 + 60 * MIN,
        };
        let r = compute(&changes, &[], &BTreeMap::new(), early, T0 + 200 * MIN);
        assert_eq!(r.services["visit"].started, 1);
        assert_eq!(r.services["visit"].completed, 0);
        assert_eq!(r.steps[&("visit".into(), "a".into())].completed, 1);
    }

    #[test]
    fn open_visits_are_late_only_once_their_deadline_has_passed_by_the_edge() {
        let mut at_a = snap(1, ProcessState::Running, Some("a"), Some("li"));
        at_a.deadline_ms = Some(T0 + 30 * MIN);
        let changes = vec![change(1, 1, 0, "created; entered 'a'", at_a.clone())];
        let roles: BTreeMap<String, BTreeSet<String>> =
            [("li".to_owned(), ["doctor".to_owned()].into())].into();
        let period = |to_min: i64| Period {
            from_ms: T0,
            to_ms: T0 + to_min * MIN,
        };
        // The period ends before the deadline: not late.
        let r = compute(&changes, &[at_a.clone()], &roles, period(20), T0 + 60 * MIN);
        assert_eq!(r.steps[&("visit".into(), "a".into())].late, 0);
        // It ends after, but now is before the deadline: not late yet.
        let r = compute(&changes, &[at_a.clone()], &roles, period(90), T0 + 25 * MIN);
        assert_eq!(r.operators["li"].late, 0);
        // Both after: late, for the step, the operator, the role and the run.
        let r = compute(&changes, &[at_a.clone()], &roles, period(90), T0 + 45 * MIN);
        assert_eq!(r.steps[&("visit".into(), "a".into())].late, 1);
        assert_eq!(r.operators["li"].late, 1);
        assert_eq!(r.roles["doctor"].late, 1);
        assert_eq!(r.services["visit"].late, 1);
        assert_eq!(r.services["visit"].backlog, 1);
        assert_eq!(r.roles["doctor"].backlog, 1);
    }

    fn service(v: serde_json::Value) -> Service {
        let mut s: Service = serde_json::from_value(v).unwrap();
        s.version = 1;
        s
    }

    /// Drives the real scheduler core and returns its history as stored rows would give it.
    struct Sim {
        core: Scheduler,
        conditions: RhaiConditions,
        now: i64,
        history: Vec<HistoryEntry>,
    }

    impl Sim {
        fn new() -> Sim {
            let mut core = Scheduler::new(60_000);
            core.publish(service(json!({
                "name": "review", "label": {"zh": "审核"},
                "steps": [
                    {"name": "check", "kind": "human", "operators": {"role": "doctor"}, "deadline": "PT30M"},
                    {"name": "split", "kind": "parallel"},
                    {"name": "sign", "kind": "human", "operators": {"role": "nurse"}},
                    {"name": "cool", "kind": "wait", "wait": {"after": "PT10M"}},
                    {"name": "join", "kind": "join"},
                    {"name": "end", "kind": "end"}],
                "transitions": [
                    {"from": "check", "to": "check", "name": "again"},
                    {"from": "check", "to": "split", "name": "ok"},
                    {"from": "split", "to": "sign"}, {"from": "split", "to": "cool"},
                    {"from": "sign", "to": "join"}, {"from": "cool", "to": "join"},
                    {"from": "join", "to": "end"}]})));
            for (id, role) in [("li", "doctor"), ("wang", "nurse")] {
                core.add_operator(Operator {
                    id: id.into(),
                    roles: [role.to_owned()].into(),
                    skills: BTreeSet::new(),
                    capacity: 5,
                    department: None,
                    calendar: None,
                    branch: None,
                });
            }
            Sim {
                core,
                conditions: RhaiConditions::new(),
                now: T0,
                history: Vec::new(),
            }
        }

        fn run(&mut self, command: Command) -> Option<Pid> {
            let out = self
                .core
                .apply(command, self.now, &self.conditions)
                .unwrap();
            self.history.extend(out.entries);
            out.pid
        }

        fn advance(&mut self, minutes: i64) {
            self.now += minutes * MIN;
            self.run(Command::Tick);
        }

        fn complete(&mut self, pid: Pid, transition: Option<&str>) {
            self.run(Command::Complete {
                pid,
                transition: transition.map(str::to_owned),
                context: None,
                record: None,
                by: "test".into(),
            });
        }

        fn changes(&self) -> Vec<Change> {
            self.history
                .iter()
                .map(|e| Change {
                    pid: e.pid,
                    seq: e.seq,
                    at_ms: e.at_ms,
                    reason: e.reason.clone(),
                    after: Snapshot::of(&e.after),
                })
                .collect()
        }

        fn open(&self) -> Vec<Snapshot> {
            self.core
                .pcbs()
                .filter(|p| p.state != ProcessState::Terminated)
                .map(Snapshot::of)
                .collect()
        }
    }

    /// A step looped back to itself is two visits (the step name never changes, only the
    /// reason shows the re-entry); parallel branches count their steps and operators but
    /// are not runs; the split's visit lasts until the branches are done.
    #[test]
    fn loops_and_branches_from_the_real_scheduler() {
        let mut sim = Sim::new();
        let pid = sim
            .run(Command::Start {
                service: "review".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({}),
                predecessor: None,
                start_at_ms: None,
                by: "test".into(),
            })
            .unwrap();
        sim.advance(40);
        sim.complete(pid, Some("again"));
        sim.advance(20);
        sim.complete(pid, Some("ok"));
        let sign = sim
            .core
            .pcbs()
            .find(|p| p.step.as_deref() == Some("sign"))
            .map(|p| p.id)
            .unwrap();
        sim.advance(5);
        sim.complete(sign, None);
        sim.advance(5);
        let done = sim.core.pcb(pid).unwrap();
        assert_eq!(done.state, ProcessState::Terminated);
        assert_eq!(done.exit, Some(ExitStatus::Completed));

        let roles: BTreeMap<String, BTreeSet<String>> = [
            ("li".to_owned(), ["doctor".to_owned()].into()),
            ("wang".to_owned(), ["nurse".to_owned()].into()),
        ]
        .into();
        let r = compute(&sim.changes(), &sim.open(), &roles, all_time(), sim.now);
        let key = |s: &str| ("review".to_owned(), s.to_owned());
        let check = r.steps[&key("check")];
        assert_eq!(
            (check.started, check.completed, check.avg_ms, check.p90_ms),
            (2, 2, Some(30 * MIN), Some(40 * MIN)),
            "two visits of 40 and 20 minutes: {check:?}"
        );
        assert_eq!(
            check.p50_ms,
            Some(20 * MIN),
            "the median of two is the first of them (rank ⌈1⌉)"
        );
        assert_eq!(
            (check.started, check.completed),
            (2, 2),
            "two visits of 40 and 20 minutes: {check:?}"
        );
        assert_eq!(check.late, 1, "the first took 40 minutes against 30");
        let li = r.operators["li"];
        assert_eq!((li.started, li.completed, li.late), (2, 2, 1));
        assert_eq!(r.roles["doctor"], li);
        let split = r.steps[&key("split")];
        assert_eq!(
            (split.completed, split.avg_ms),
            (1, Some(10 * MIN)),
            "until the cooling branch ends"
        );
        let sign = r.steps[&key("sign")];
        assert_eq!((sign.completed, sign.avg_ms), (1, Some(5 * MIN)));
        assert_eq!(r.steps[&key("cool")].avg_ms, Some(10 * MIN));
        assert_eq!(r.operators["wang"].completed, 1);
        assert!(!r.operators.contains_key(SYSTEM_OPERATOR));
        let run = r.services["review"];
        assert_eq!(
            (
                run.started,
                run.completed,
                run.avg_ms,
                run.late,
                run.backlog
            ),
            (1, 1, Some(70 * MIN), 1, 0),
            "the branches are not runs of their own: {run:?}"
        );
    }

    /// A process cancelled at a step ends the visit and the handling as cancelled: counted,
    /// not timed. What is open now is the backlog.
    #[test]
    fn cancellations_are_counted_not_timed_and_the_backlog_is_now() {
        let mut sim = Sim::new();
        let start = |sim: &mut Sim| {
            sim.run(Command::Start {
                service: "review".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({}),
                predecessor: None,
                start_at_ms: None,
                by: "test".into(),
            })
            .unwrap()
        };
        let first = start(&mut sim);
        let _second = start(&mut sim);
        sim.advance(10);
        sim.run(Command::Terminate {
            pid: first,
            by: "test".into(),
            reason: "no show".into(),
        });
        let r = compute(
            &sim.changes(),
            &sim.open(),
            &BTreeMap::new(),
            all_time(),
            sim.now,
        );
        let check = r.steps[&("review".into(), "check".into())];
        assert_eq!(
            (
                check.started,
                check.completed,
                check.cancelled,
                check.avg_ms,
                check.backlog
            ),
            (2, 0, 1, None, 1)
        );
        let run = r.services["review"];
        assert_eq!(
            (run.started, run.cancelled, run.avg_ms, run.backlog),
            (2, 1, None, 1)
        );
        let li = r.operators["li"];
        assert_eq!((li.started, li.cancelled, li.backlog), (2, 1, 1));
    }
}
