//! Property tests of the pure scheduler core: random sequences of start / complete /
//! signal / suspend / resume / terminate / tick over clinic services competing for rooms,
//! devices and practitioners. After every command: no resource is over-allocated or held by
//! a terminated process, every recorded move is legal, replaying each process's history
//! gives exactly its PCB, and no READY process waits while its operator and resources are
//! free (unless an earlier process in the queue reserved them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use erpos_design::service::Service;
use erpos_kernel::conditions::RhaiConditions;
use erpos_kernel::scheduler::{
    Command, HistoryEntry, Operator, Pcb, Pid, ProcessState, Resource, Scheduler,
};
use proptest::prelude::*;
use serde_json::json;

fn service(v: serde_json::Value) -> Service {
    let mut s: Service = serde_json::from_value(v).unwrap();
    s.version = 1;
    s
}

fn clinic() -> Scheduler {
    let mut core = Scheduler::new(60_000);
    core.publish(service(json!({
        "name": "consultation", "label": {"zh": "面诊"},
        "steps": [
            {"name": "assess", "kind": "human", "operators": {"role": "doctor"}, "resources": [{"type": "consult_room"}]},
            {"name": "end", "kind": "end"}],
        "transitions": [{"from": "assess", "to": "end"}]})));
    core.publish(service(json!({
        "name": "treatment_visit", "label": {"zh": "治疗就诊"},
        "steps": [
            {"name": "checkin", "kind": "human", "operators": {"role": "front_desk"}},
            {"name": "route", "kind": "exclusive"},
            {"name": "consult", "kind": "sub_service", "service": "consultation"},
            {"name": "treat", "kind": "human", "operators": {"skill": "laser", "policy": "round_robin"},
             "resources": [{"type": "laser_room"}, {"type": "laser_device"}]},
            {"name": "split", "kind": "parallel"},
            {"name": "bill", "kind": "automatic"},
            {"name": "consent", "kind": "wait", "wait": {"event": "consent_signed"}},
            {"name": "cool", "kind": "wait", "wait": {"after": "PT30M"}},
            {"name": "join", "kind": "join"},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "checkin", "to": "route"},
            {"from": "route", "to": "consult", "condition": "context.first_visit == true"},
            {"from": "route", "to": "treat", "default": true},
            {"from": "consult", "to": "treat"},
            {"from": "treat", "to": "split", "attribute": "agree"},
            {"from": "treat", "to": "checkin", "name": "redo", "attribute": "reject"},
            {"from": "split", "to": "bill"}, {"from": "split", "to": "consent"}, {"from": "split", "to": "cool"},
            {"from": "bill", "to": "join"}, {"from": "consent", "to": "join"}, {"from": "cool", "to": "join"},
            {"from": "join", "to": "end"}]})));
    for (id, t) in [
        ("laser-1", "laser_room"),
        ("laser-2", "laser_room"),
        ("dev-1", "laser_device"),
        ("consult-1", "consult_room"),
    ] {
        core.add_resource(Resource {
            id: id.into(),
            resource_type: t.into(),
            capacity: 1,
            skills: BTreeSet::new(),
            calendar: None,
            branch: None,
        });
    }
    let ops = [
        ("王护士", "front_desk", ""),
        ("李医生", "doctor", "laser"),
        ("张医生", "doctor", "laser"),
        ("赵美容师", "beautician", "laser"),
    ];
    for (id, role, skill) in ops {
        core.add_operator(Operator {
            id: id.into(),
            roles: [role.to_owned()].into(),
            skills: if skill.is_empty() {
                BTreeSet::new()
            } else {
                [skill.to_owned()].into()
            },
            capacity: 1,
            department: None,
            calendar: None,
            branch: None,
        });
    }
    core
}

#[derive(Debug, Clone)]
enum Op {
    Start { first_visit: bool, priority: i32 },
    Complete { pick: usize, reject: bool },
    Signal { pick: usize },
    Suspend { pick: usize },
    Resume { pick: usize },
    SetAside { pick: usize },
    TakeUp { pick: usize },
    Terminate { pick: usize },
    Tick { minutes: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 1..10i32).prop_map(|(f, p)| Op::Start { first_visit: f, priority: p }),
        6 => (any::<usize>(), prop::bool::weighted(0.15)).prop_map(|(pick, reject)| Op::Complete { pick, reject }),
        2 => any::<usize>().prop_map(|pick| Op::Signal { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Suspend { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Resume { pick }),
        2 => any::<usize>().prop_map(|pick| Op::SetAside { pick }),
        2 => any::<usize>().prop_map(|pick| Op::TakeUp { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Terminate { pick }),
        2 => (1..90i64).prop_map(|minutes| Op::Tick { minutes }),
    ]
}

fn pick(core: &Scheduler, i: usize, filter: impl Fn(&Pcb) -> bool) -> Option<Pid> {
    let ids: Vec<Pid> = core.pcbs().filter(|p| filter(p)).map(|p| p.id).collect();
    (!ids.is_empty()).then(|| ids[i % ids.len()])
}

fn check(
    core: &Scheduler,
    histories: &BTreeMap<Pid, Vec<HistoryEntry>>,
) -> Result<(), TestCaseError> {
    let broken = core.check_invariants();
    prop_assert!(broken.is_empty(), "invariants: {broken:?}");
    for pcb in core.pcbs() {
        let replayed = Pcb::replay(histories.get(&pcb.id).map_or(&[][..], Vec::as_slice));
        prop_assert_eq!(replayed.as_ref(), Some(pcb), "replay of {} differs", pcb.id);
    }
    // Nothing READY is left behind while what it needs is free, unless an earlier READY
    // process is blocked on one of the same resource types (a reservation).
    let mut blocked_types: BTreeSet<String> = BTreeSet::new();
    for pid in core.ready_queue() {
        let pcb = core.pcb(pid).unwrap();
        let svc = core.service(&pcb.service, pcb.version).unwrap();
        let step = svc.step(pcb.step.as_deref().unwrap()).unwrap();
        let needs: Vec<_> = step
            .resources
            .iter()
            .map(|r| erpos_kernel::scheduler::resources::Need {
                resource_type: r.resource_type.clone(),
                quantity: r.quantity,
                skill: r.skill.clone(),
                hold_while_waiting: false,
                instance: None,
                branch: None,
            })
            .collect();
        let types: BTreeSet<String> = needs.iter().map(|n| n.resource_type.clone()).collect();
        let resources_free = core.pool().plan(&needs, &BTreeSet::new()).is_ok();
        let reserved = !blocked_types.is_disjoint(&types);
        if matches!(
            pcb.wait,
            Some(erpos_kernel::scheduler::WaitReason::Resource { .. })
        ) {
            blocked_types.extend(types);
        }
        if resources_free && !reserved {
            prop_assert!(
                matches!(
                    pcb.wait,
                    Some(erpos_kernel::scheduler::WaitReason::Operator)
                ),
                "{pid} is READY at {:?} with its resources free and not waiting for an operator: {:?}",
                pcb.step,
                pcb.wait
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2000, .. ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let conditions = RhaiConditions::new();
        let mut core = clinic();
        let mut now: i64 = 1_795_856_400_000;
        let mut histories: BTreeMap<Pid, Vec<HistoryEntry>> = BTreeMap::new();
        for op in ops {
            now += 1_000;
            let command = match op {
                Op::Start { first_visit, priority } => Some(Command::Start {
                    service: "treatment_visit".into(), version: None, priority: Some(priority), record: None,
                    context: json!({"first_visit": first_visit}), predecessor: None, start_at_ms: None, by: "前台".into(),
                }),
                Op::Complete { pick: i, reject } => pick(&core, i, |p| p.state == ProcessState::Running).map(|pid| {
                    let at_treat = core.pcb(pid).and_then(|p| p.step.clone()).as_deref() == Some("treat");
                    Command::Complete { pid, transition: (at_treat && reject).then(|| "redo".to_owned()).or(at_treat.then(|| "split".to_owned())), context: None, record: None, by: "staff".into() }
                }),
                Op::Signal { pick: i } => pick(&core, i, |p| p.state == ProcessState::Waiting && p.step.as_deref() == Some("consent"))
                    .map(|pid| Command::Signal { pid, event: "consent_signed".into(), payload: json!({"signed_by": "患者"}), by: "tablet".into() }),
                Op::Suspend { pick: i } => pick(&core, i, |p| p.state != ProcessState::Terminated)
                    .map(|pid| Command::Suspend { pid, by: "operator".into(), reason: "urgent case first".into() }),
                Op::Resume { pick: i } => pick(&core, i, |p| p.state == ProcessState::Suspended)
                    .map(|pid| Command::Resume { pid, by: "operator".into() }),
                // A context switch: the operator sets her running step aside, and takes it up
                // again later (refused while she is at capacity).
                Op::SetAside { pick: i } => pick(&core, i, |p| p.state == ProcessState::Running).map(|pid| {
                    let user = core.pcb(pid).and_then(|p| p.operator.as_deref().map(str::to_owned)).unwrap_or_default();
                    Command::SetAside { pid, user: user.clone(), reason: "urgent case first".into(), by: user }
                }),
                Op::TakeUp { pick: i } => pick(&core, i, |p| matches!(p.wait, Some(erpos_kernel::scheduler::WaitReason::SetAside { .. }))).map(|pid| {
                    let user = match core.pcb(pid).and_then(|p| p.wait.clone()) {
                        Some(erpos_kernel::scheduler::WaitReason::SetAside { by, .. }) => by,
                        _ => String::new(),
                    };
                    Command::TakeUp { pid, user: user.clone(), by: user }
                }),
                Op::Terminate { pick: i } => pick(&core, i, |p| p.state != ProcessState::Terminated)
                    .map(|pid| Command::Terminate { pid, by: "operator".into(), reason: "patient left".into() }),
                Op::Tick { minutes } => { now += minutes * 60_000; Some(Command::Tick) }
            };
            let Some(command) = command else { continue };
            let before = core.clone();
            match core.apply(command.clone(), now, &conditions) {
                Ok(outcome) => {
                    for e in outcome.entries {
                        prop_assert!(e.from == e.to || e.from.can_move_to(e.to), "illegal move {:?} -> {:?}", e.from, e.to);
                        histories.entry(e.pid).or_default().push(e);
                    }
                }
                Err(e) => {
                    // A refused command changes nothing.
                    prop_assert_eq!(core.pcbs().cloned().collect::<Vec<_>>(), before.pcbs().cloned().collect::<Vec<_>>(), "{:?} failed ({}) but changed the core", command, e);
                }
            }
            check(&core, &histories)?;
        }
    }
}

#[test]
fn a_visit_runs_through_gateway_sub_service_parallel_and_timer_to_completion() {
    let conditions = RhaiConditions::new();
    let mut core = clinic();
    let mut now = 1_795_856_400_000;
    let out = core
        .apply(
            Command::Start {
                service: "treatment_visit".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({"first_visit": true}),
                predecessor: None,
                start_at_ms: None,
                by: "前台".into(),
            },
            now,
            &conditions,
        )
        .unwrap();
    let pid = out.pid.unwrap();
    let state = |core: &Scheduler, pid| {
        let p = core.pcb(pid).unwrap();
        (p.state, p.step.clone())
    };
    assert_eq!(
        state(&core, pid),
        (ProcessState::Running, Some("checkin".into()))
    );
    assert_eq!(core.pcb(pid).unwrap().operator.as_deref(), Some("王护士"));
    core.apply(
        Command::Complete {
            pid,
            transition: None,
            context: None,
            record: None,
            by: "王护士".into(),
        },
        now,
        &conditions,
    )
    .unwrap();
    // First visit: the consultation runs as a child process; the visit waits for it.
    assert_eq!(
        state(&core, pid),
        (ProcessState::Waiting, Some("consult".into()))
    );
    let child = core.pcb(pid).unwrap().children[0];
    assert_eq!(
        state(&core, child),
        (ProcessState::Running, Some("assess".into()))
    );
    assert_eq!(core.pool().holders("consult-1"), vec![(child, 1)]);
    core.apply(
        Command::Complete {
            pid: child,
            transition: None,
            context: None,
            record: None,
            by: "李医生".into(),
        },
        now,
        &conditions,
    )
    .unwrap();
    assert_eq!(core.pcb(child).unwrap().state, ProcessState::Terminated);
    assert!(core.pool().holders("consult-1").is_empty());
    // Treatment holds a laser room and the laser device together.
    assert_eq!(
        state(&core, pid),
        (ProcessState::Running, Some("treat".into()))
    );
    assert_eq!(core.pcb(pid).unwrap().allocations.len(), 2);
    core.apply(
        Command::Complete {
            pid,
            transition: Some("split".into()),
            context: None,
            record: None,
            by: "李医生".into(),
        },
        now,
        &conditions,
    )
    .unwrap();
    // Parallel: billing (automatic) finishes at once, consent waits for a signal, cooling for 30 minutes.
    assert_eq!(
        state(&core, pid),
        (ProcessState::Waiting, Some("split".into()))
    );
    let branches = core.pcb(pid).unwrap().children.clone();
    assert_eq!(branches.len(), 2, "billing completed at once");
    let consent = branches
        .iter()
        .copied()
        .find(|b| core.pcb(*b).unwrap().step.as_deref() == Some("consent"))
        .unwrap();
    core.apply(
        Command::Signal {
            pid: consent,
            event: "consent_signed".into(),
            payload: json!({"by": "患者"}),
            by: "tablet".into(),
        },
        now,
        &conditions,
    )
    .unwrap();
    assert_eq!(
        state(&core, pid),
        (ProcessState::Waiting, Some("split".into()))
    );
    now += 29 * 60_000;
    core.apply(Command::Tick, now, &conditions).unwrap();
    assert_eq!(
        core.pcb(pid).unwrap().state,
        ProcessState::Waiting,
        "the timer is not due yet"
    );
    now += 2 * 60_000;
    core.apply(Command::Tick, now, &conditions).unwrap();
    let p = core.pcb(pid).unwrap();
    assert_eq!(
        (p.state, p.exit),
        (
            ProcessState::Terminated,
            Some(erpos_kernel::scheduler::ExitStatus::Completed)
        )
    );
    assert!(core.check_invariants().is_empty());
    assert!(core.pool().allocations().is_empty());
}

#[test]
fn illegal_requests_are_refused_naming_the_state_and_the_moves() {
    let conditions = RhaiConditions::new();
    let mut core = clinic();
    let pid = core
        .apply(
            Command::Start {
                service: "treatment_visit".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({}),
                predecessor: None,
                start_at_ms: None,
                by: "前台".into(),
            },
            0,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap();
    core.apply(
        Command::Terminate {
            pid,
            by: "x".into(),
            reason: "test".into(),
        },
        1,
        &conditions,
    )
    .unwrap();
    let err = core
        .apply(
            Command::Suspend {
                pid,
                by: "x".into(),
                reason: "again".into(),
            },
            2,
            &conditions,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            erpos_kernel::scheduler::CoreError::IllegalMove {
                from: ProcessState::Terminated,
                ..
            }
        ),
        "{err}"
    );
    let err = core
        .apply(
            Command::Resume {
                pid: 999,
                by: "x".into(),
            },
            2,
            &conditions,
        )
        .unwrap_err();
    assert_eq!(err, erpos_kernel::scheduler::CoreError::NoProcess(999));
}

#[test]
fn aging_lets_an_old_low_priority_process_overtake_newer_high_priority_ones() {
    let conditions = RhaiConditions::new();
    let mut core = Scheduler::new(60_000);
    core.publish(service(json!({"name": "task", "label": {"zh": "任务"},
        "steps": [{"name": "do", "kind": "human"}, {"name": "end", "kind": "end"}],
        "transitions": [{"from": "do", "to": "end"}]})));
    core.add_operator(Operator {
        id: "唯一员工".into(),
        roles: BTreeSet::new(),
        skills: BTreeSet::new(),
        capacity: 1,
        department: None,
        calendar: None,
        branch: None,
    });
    let start = |core: &mut Scheduler, priority, now| {
        core.apply(
            Command::Start {
                service: "task".into(),
                version: None,
                priority: Some(priority),
                record: None,
                context: json!({}),
                predecessor: None,
                start_at_ms: None,
                by: "t".into(),
            },
            now,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap()
    };
    let busy = start(&mut core, 5, 0);
    let low = start(&mut core, 1, 0);
    // Priority-5 work keeps arriving, one a minute. With one priority level worth a minute
    // of waiting, the priority-1 process is overtaken only by work that arrived less than
    // 4 minutes after it; everything later comes after it.
    let mut now = 0;
    let mut high = Vec::new();
    for _ in 0..10 {
        now += 60_000;
        high.push(start(&mut core, 5, now));
    }
    let mut order = Vec::new();
    let mut running = busy;
    for _ in 0..5 {
        core.apply(
            Command::Complete {
                pid: running,
                transition: None,
                context: None,
                record: None,
                by: "唯一员工".into(),
            },
            now,
            &conditions,
        )
        .unwrap();
        running = core
            .pcbs()
            .find(|p| p.state == ProcessState::Running)
            .unwrap()
            .id;
        order.push(running);
    }
    assert_eq!(
        order,
        vec![high[0], high[1], high[2], low, high[3]],
        "dispatch order"
    );
}

#[test]
fn a_successor_starts_when_its_predecessor_terminates() {
    let conditions = RhaiConditions::new();
    let mut core = clinic();
    let start = |core: &mut Scheduler, predecessor| {
        core.apply(
            Command::Start {
                service: "consultation".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({}),
                predecessor,
                start_at_ms: None,
                by: "t".into(),
            },
            0,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap()
    };
    let first = start(&mut core, None);
    let second = start(&mut core, Some(first));
    assert_eq!(
        core.pcb(second).unwrap().state,
        ProcessState::New,
        "waits for its predecessor"
    );
    core.apply(
        Command::Complete {
            pid: first,
            transition: None,
            context: None,
            record: None,
            by: "李医生".into(),
        },
        1,
        &conditions,
    )
    .unwrap();
    assert_eq!(core.pcb(first).unwrap().state, ProcessState::Terminated);
    assert_eq!(
        core.pcb(second).unwrap().state,
        ProcessState::Running,
        "started when the predecessor ended"
    );
}

#[test]
fn a_timer_of_a_suspended_process_survives_a_restore_and_fires_after_resume() {
    let conditions = RhaiConditions::new();
    let mut core = Scheduler::new(60_000);
    core.publish(service(json!({"name": "care", "label": {"zh": "术后观察"},
        "steps": [{"name": "observe", "kind": "wait", "wait": {"after": "PT30M"}}, {"name": "end", "kind": "end"}],
        "transitions": [{"from": "observe", "to": "end"}]})));
    let pid = core
        .apply(
            Command::Start {
                service: "care".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({}),
                predecessor: None,
                start_at_ms: None,
                by: "t".into(),
            },
            0,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap();
    core.apply(
        Command::Suspend {
            pid,
            by: "t".into(),
            reason: "patient stepped out".into(),
        },
        1,
        &conditions,
    )
    .unwrap();
    // A restart: a new core rebuilt from the stored PCBs and services.
    let mut restored = Scheduler::new(60_000);
    restored.publish(core.service("care", 1).map(|s| (**s).clone()).unwrap());
    for pcb in core.pcbs() {
        restored.restore(pcb.clone());
    }
    restored
        .apply(
            Command::Resume {
                pid,
                by: "t".into(),
            },
            2,
            &conditions,
        )
        .unwrap();
    restored
        .apply(Command::Tick, 31 * 60_000, &conditions)
        .unwrap();
    assert_eq!(
        restored.pcb(pid).unwrap().state,
        ProcessState::Terminated,
        "the timer fired after resume"
    );
}

#[test]
fn an_operator_rule_expression_picks_the_patients_own_doctor() {
    let conditions = RhaiConditions::new();
    let mut core = clinic();
    core.publish(service(json!({"name": "review", "label": {"zh": "复诊评估"},
        "steps": [{"name": "review", "kind": "human", "operators": {"role": "doctor", "expression": "record.doctor"}},
                  {"name": "end", "kind": "end"}],
        "transitions": [{"from": "review", "to": "end"}]})));
    let pid = core
        .apply(
            Command::Start {
                service: "review".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({"record": {"doctor": "张医生"}}),
                predecessor: None,
                start_at_ms: None,
                by: "前台".into(),
            },
            0,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap();
    assert_eq!(
        core.pcb(pid).unwrap().operator.as_deref(),
        Some("张医生"),
        "李医生 comes first by name but is not the patient's doctor"
    );
    let stranger = core
        .apply(
            Command::Start {
                service: "review".into(),
                version: None,
                priority: None,
                record: None,
                context: json!({"record": {"doctor": "不在职的医生"}}),
                predecessor: None,
                start_at_ms: None,
                by: "前台".into(),
            },
            0,
            &conditions,
        )
        .unwrap()
        .pid
        .unwrap();
    let p = core.pcb(stranger).unwrap();
    assert_eq!(
        (p.state, p.wait.clone()),
        (
            ProcessState::Ready,
            Some(erpos_kernel::scheduler::WaitReason::Operator)
        )
    );
}
