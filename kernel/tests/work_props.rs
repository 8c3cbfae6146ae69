//! Property tests of work items in the pure scheduler core: random claims, decisions,
//! votes, forwards, added signers, returns, withdrawals, administrator state changes,
//! suspensions and delegations over the clinic's leave request. After every command: the
//! core's invariants hold, every move is legal, each history replays to its PCB, a refused
//! command changes nothing, and the work items tell the truth — nothing is pending outside
//! the current step visit or after the end, a running human step always has someone who
//! can act, and a step has at most one handler at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use erpos_design::service::{Service, TransitionAttribute};
use erpos_kernel::conditions::RhaiConditions;
use erpos_kernel::scheduler::{
    Command, Delegation, HandleAction, HistoryEntry, ItemRole, ItemState, Operator, Pcb, Pid,
    ProcessState, Scheduler,
};
use proptest::prelude::*;
use serde_json::json;

const USERS: [&str; 8] = [
    "xiaoli", "wangjing", "zhaolei", "sunli", "liuyang", "wei", "he", "lu",
];

fn core() -> Scheduler {
    let mut s: Service = serde_json::from_value(json!({
        "name": "leave", "label": {"zh": "请假申请"},
        "steps": [
            {"name": "apply", "kind": "human", "operators": {"creator": true}},
            {"name": "leader", "kind": "human", "operators": {"role": "team_leader", "policy": "claim"}},
            {"name": "by_days", "kind": "exclusive"},
            {"name": "director", "kind": "human", "operators": {"role": "director"}},
            {"name": "committee", "kind": "human", "operators": {"role": "committee", "policy": "all", "quorum": 2}},
            {"name": "end", "kind": "end"}],
        "transitions": [
            {"from": "apply", "to": "leader", "attribute": "agree"},
            {"from": "leader", "to": "by_days", "attribute": "agree"},
            {"from": "leader", "to": "apply", "name": "back", "attribute": "reject"},
            {"from": "by_days", "to": "director", "condition": "context.days > 3"},
            {"from": "by_days", "to": "committee", "default": true},
            {"from": "director", "to": "committee", "attribute": "agree"},
            {"from": "director", "to": "apply", "name": "director_back", "attribute": "reject"},
            {"from": "committee", "to": "end", "attribute": "agree"},
            {"from": "committee", "to": "apply", "name": "committee_back", "attribute": "reject"}]
    }))
    .unwrap();
    s.version = 1;
    let mut core = Scheduler::new(60_000);
    core.publish(s);
    let roles = [
        ("xiaoli", "nurse"),
        ("wangjing", "team_leader"),
        ("zhaolei", "team_leader"),
        ("sunli", "team_leader"),
        ("liuyang", "director"),
        ("wei", "committee"),
        ("he", "committee"),
        ("lu", "committee"),
    ];
    for (id, role) in roles {
        core.add_operator(Operator {
            id: id.into(),
            roles: [role.to_owned()].into(),
            skills: BTreeSet::new(),
            capacity: 2,
            department: None,
            calendar: None,
            branch: None,
        });
    }
    core
}

#[derive(Debug, Clone)]
enum Op {
    Start {
        days: i64,
    },
    Claim {
        pick: usize,
        user: usize,
    },
    Handle {
        pick: usize,
        user: usize,
        attribute: u8,
    },
    Forward {
        pick: usize,
        user: usize,
        to: usize,
    },
    AddSigner {
        pick: usize,
        user: usize,
        signer: usize,
    },
    Return {
        pick: usize,
        step: bool,
        last: bool,
    },
    Withdraw {
        pick: usize,
    },
    ChangeState {
        pick: usize,
        step: usize,
    },
    Suspend {
        pick: usize,
    },
    Resume {
        pick: usize,
    },
    Delegate {
        user: usize,
        deputy: usize,
        on: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS.len();
    prop_oneof![
        2 => (1..8i64).prop_map(|days| Op::Start { days }),
        3 => (any::<usize>(), u.clone()).prop_map(|(pick, user)| Op::Claim { pick, user }),
        8 => (any::<usize>(), u.clone(), 0..3u8).prop_map(|(pick, user, attribute)| Op::Handle { pick, user, attribute }),
        1 => (any::<usize>(), u.clone(), u.clone()).prop_map(|(pick, user, to)| Op::Forward { pick, user, to }),
        1 => (any::<usize>(), u.clone(), u.clone()).prop_map(|(pick, user, signer)| Op::AddSigner { pick, user, signer }),
        1 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(pick, step, last)| Op::Return { pick, step, last }),
        1 => any::<usize>().prop_map(|pick| Op::Withdraw { pick }),
        1 => (any::<usize>(), 0..6usize).prop_map(|(pick, step)| Op::ChangeState { pick, step }),
        1 => any::<usize>().prop_map(|pick| Op::Suspend { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Resume { pick }),
        1 => (u.clone(), u, any::<bool>()).prop_map(|(user, deputy, on)| Op::Delegate { user, deputy, on }),
    ]
}

fn pick(core: &Scheduler, i: usize) -> Option<Pid> {
    let ids: Vec<Pid> = core.pcbs().map(|p| p.id).collect();
    (!ids.is_empty()).then(|| ids[i % ids.len()])
}

/// Mostly someone who holds an item of `state` at the process now (so the commands mostly
/// make sense), sometimes anyone (so refusals are tried too).
fn holder(core: &Scheduler, pid: Pid, state: ItemState, i: usize) -> String {
    let holders: Vec<String> = core
        .pcb(pid)
        .map(|p| {
            p.work
                .iter()
                .filter(|w| w.visit == p.visit && w.state == state)
                .map(|w| w.user.to_string())
                .collect()
        })
        .unwrap_or_default();
    if holders.is_empty() || i.is_multiple_of(5) {
        USERS[i % USERS.len()].to_owned()
    } else {
        holders[i % holders.len()].clone()
    }
}

/// The items of a PCB tell the truth.
fn check_items(p: &Pcb) -> Result<(), TestCaseError> {
    for w in p.work.iter() {
        prop_assert!(
            !w.state.is_pending() || (w.visit == p.visit && p.state != ProcessState::Terminated),
            "{}: item {} pending outside the current visit: {w:?}",
            p.id,
            w.id
        );
        prop_assert_eq!(
            w.id as usize,
            p.work.iter().position(|x| x.id == w.id).unwrap() + 1
        );
    }
    let current: Vec<_> = p.work.iter().filter(|w| w.visit == p.visit).collect();
    let handlers = current
        .iter()
        .filter(|w| {
            w.role == ItemRole::Handler && matches!(w.state, ItemState::Open | ItemState::Waiting)
        })
        .count();
    prop_assert!(
        handlers <= 1,
        "{}: {handlers} handlers at once: {:?}",
        p.id,
        current
    );
    if p.state == ProcessState::Running {
        let can_act = current.iter().any(|w| w.state == ItemState::Open);
        prop_assert!(
            can_act,
            "{} RUNNING at {:?} with nobody to act: {:?}",
            p.id,
            p.step,
            current
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2000, .. ProptestConfig::default() })]

    #[test]
    fn work_items_keep_their_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let conditions = RhaiConditions::new();
        let mut core = core();
        let mut now: i64 = 1_795_856_400_000;
        let mut histories: BTreeMap<Pid, Vec<HistoryEntry>> = BTreeMap::new();
        let steps = ["apply", "leader", "by_days", "director", "committee", "end"];
        for op in ops {
            now += 60_000;
            let user = |i: usize| USERS[i].to_owned();
            let command = match op {
                Op::Start { days } => Some(Command::Start {
                    service: "leave".into(), version: None, priority: None, record: None,
                    context: json!({"days": days}), predecessor: None, start_at_ms: None, by: "xiaoli".into(),
                }),
                Op::Claim { pick: i, user: u } => pick(&core, i).map(|pid| {
                    let u = holder(&core, pid, ItemState::Offered, u);
                    Command::Claim { pid, user: u.clone(), by: u }
                }),
                Op::Handle { pick: i, user: u, attribute } => pick(&core, i).map(|pid| Command::Handle(Box::new(HandleAction {
                    pid, user: holder(&core, pid, ItemState::Open, u),
                    attribute: Some([TransitionAttribute::Agree, TransitionAttribute::Reject, TransitionAttribute::Other][attribute as usize]),
                    transition: None, comment: Some("好".into()), context: None, record: None, by: "staff".into(),
                }))),
                Op::Forward { pick: i, user: u, to } => pick(&core, i).map(|pid| {
                    let u = holder(&core, pid, ItemState::Open, u);
                    Command::Forward { pid, user: u.clone(), to: user(to), reason: "请代办".into(), by: u }
                }),
                Op::AddSigner { pick: i, user: u, signer } => pick(&core, i).map(|pid| {
                    let u = holder(&core, pid, ItemState::Open, u);
                    Command::AddSigner { pid, user: u.clone(), signer: user(signer), reason: "请会签".into(), by: u }
                }),
                Op::Return { pick: i, step, last } => pick(&core, i).map(|pid| Command::Return {
                    pid, step: if step { "leader" } else { "apply" }.into(), to_last_handler: last, reason: "退回".into(), by: "liuyang".into(),
                }),
                Op::Withdraw { pick: i } => pick(&core, i).map(|pid| Command::Withdraw { pid, reason: "不请了".into(), by: "xiaoli".into() }),
                Op::ChangeState { pick: i, step } => pick(&core, i).map(|pid| Command::ChangeState { pid, step: steps[step].into(), reason: "特批".into(), by: "admin".into() }),
                Op::Suspend { pick: i } => pick(&core, i).map(|pid| Command::Suspend { pid, by: "admin".into(), reason: "暂停".into() }),
                Op::Resume { pick: i } => pick(&core, i).map(|pid| Command::Resume { pid, by: "admin".into() }),
                Op::Delegate { user: u, deputy, on } => {
                    let list = if on && u != deputy {
                        vec![Delegation { id: 1, user: user(u), deputy: user(deputy), from_ms: now - 1, to_ms: now + 3_600_000, services: Vec::new() }]
                    } else {
                        Vec::new()
                    };
                    core.set_delegations(USERS[u], list);
                    None
                }
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
                    prop_assert_eq!(core.pcbs().cloned().collect::<Vec<_>>(), before.pcbs().cloned().collect::<Vec<_>>(), "{:?} failed ({}) but changed the core", command, e);
                }
            }
            let broken = core.check_invariants();
            prop_assert!(broken.is_empty(), "invariants: {broken:?}");
            for pcb in core.pcbs() {
                let replayed = Pcb::replay(histories.get(&pcb.id).map_or(&[][..], Vec::as_slice));
                prop_assert_eq!(replayed.as_ref(), Some(pcb), "replay of {} differs", pcb.id);
                check_items(pcb)?;
            }
        }
    }
}
