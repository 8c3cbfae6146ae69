//! The demo's day at 徐汇店 (issue 14 §11): the clinic pack's walk-in visits, worked by the
//! branch's own staff through the API's use cases, and each left at another point of the
//! customer-service flow, so the demo shows visits in every state a clinic has at noon —
//! one done (its follow-ups NEW for 1, 7 and 30 days), one in treatment with the doctor
//! (RUNNING), one at the cashier (RUNNING), one suspended while the patient stepped out,
//! one in the queue to be received (READY, offered to the front desks), and one whose
//! consent was declined (ended) — and a new patient registered at the desk whose visit
//! WAITS for her first consultation with the doctor (and, once tomorrow's visits have
//! started, one of them paid in advance, WAITING for its time). The week's later visits
//! are NEW.
//! Only `erpos demo` runs it: the tests load the pack without it, so each meets the
//! visits it makes.

use erpos_kernel::Kernel;
use erpos_kernel::caller::Caller;
use erpos_kernel::scheduler::{Command, Pid, ProcessState};
use serde_json::{Value, json};

/// Where a walk-in of the demo is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// In the queue at reception, offered to the front desks.
    Queued,
    /// Suspended at consent (the patient stepped out).
    Suspended,
    /// Ended at consent: the patient declined.
    Declined,
    /// At the cashier.
    Paying,
    /// In treatment with the doctor.
    Treating,
    /// Done: care instructions given, follow-ups started.
    Done,
}

/// The walk-ins, oldest first, and where each is left; the treatment each came for (of
/// those 徐汇店 has rooms and devices for).
const PLAN: [(Leave, &str); 6] = [
    (Leave::Done, "guangzi"),
    (Leave::Treating, "shuiguangzhen"),
    (Leave::Paying, "guosuan"),
    (Leave::Suspended, "roudusu"),
    (Leave::Queued, "guangzi"),
    (Leave::Declined, "tiaoq"),
];

/// What [`demo_day`] left, by state.
#[derive(Debug, Default, Clone, Copy)]
pub struct DayRun {
    /// Visits completed.
    pub done: usize,
    /// Visits with a member of staff now.
    pub running: usize,
    /// Visits suspended.
    pub suspended: usize,
    /// Visits in the queue to be received (READY).
    pub ready: usize,
    /// Visits waiting: for a first consultation, or (paid in advance) for their time.
    pub waiting: usize,
    /// Visits ended by a declined consent.
    pub declined: usize,
}

/// `user` as the API would see them after logging in: their grants and where they stand.
async fn staff(k: &Kernel, user: &str) -> anyhow::Result<Caller> {
    Ok(Caller::user(
        user,
        k.auth.grants_of(user).await?,
        k.auth.standing_of(user).await?,
    ))
}

/// Takes `action` (with `body`) on process `pid` as `caller`, as `POST
/// /api/v1/processes/{pid}/{action}` would.
async fn act(
    k: &Kernel,
    caller: &Caller,
    pid: Pid,
    action: &str,
    body: Value,
) -> anyhow::Result<()> {
    let pcb = erpos_kernel::app::processes::visible_to_act(k, caller, &pid.to_string()).await?;
    erpos_kernel::app::work::act(k, caller, &pcb, action, &body)
        .await
        .map_err(|e| anyhow::anyhow!("{action} on visit {pid} as {}: {e}", caller.user))
}

/// Where process `pid` is: its step, the operator handling it and its state.
async fn at(k: &Kernel, pid: Pid) -> anyhow::Result<(String, Option<String>, ProcessState)> {
    k.engine
        .read(|c| {
            c.pcb(pid).map(|p| {
                (
                    p.step.as_deref().unwrap_or_default().to_owned(),
                    p.operator.as_deref().map(str::to_owned),
                    p.state,
                )
            })
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("visit {pid} vanished"))
}

/// The operator now handling `pid` at `step`, as a caller: the flow's own choice.
async fn handler(k: &Kernel, pid: Pid, step: &str) -> anyhow::Result<Caller> {
    // A wait step with an `until` of 0 (no booking) is left at the next tick.
    k.engine.command(Command::Tick).await?;
    match at(k, pid).await? {
        (s, Some(user), _) if s == step => staff(k, &user).await,
        other => {
            anyhow::bail!("visit {pid}: expected step '{step}' with its operator, found {other:?}")
        }
    }
}

/// Agrees on `pid`'s step `step` as its operator, sending `context`.
async fn agree(k: &Kernel, pid: Pid, step: &str, context: Value) -> anyhow::Result<()> {
    let caller = handler(k, pid, step).await?;
    act(
        k,
        &caller,
        pid,
        "handle",
        json!({"attribute": "agree", "context": context}),
    )
    .await
}

/// Works the demo's walk-in visits (those started by the pack, without a booking) to the
/// points of [`PLAN`]: reception by 周婷, consent with the branch's nurse, payment at the
/// desk by WeChat Pay, treatment, care.
pub async fn demo_day(k: &Kernel) -> anyhow::Result<DayRun> {
    let walk_ins: Vec<Pid> = k
        .engine
        .read(|c| {
            let mut pids: Vec<Pid> = c
                .pcbs()
                .filter(|p| {
                    &*p.service == "treatment_visit"
                        && p.context.get("booking").is_none()
                        && p.state != ProcessState::Terminated
                })
                .map(|p| p.id)
                .collect();
            pids.sort_unstable();
            pids
        })
        .await;
    let desk = staff(k, "qiantai_zhou").await?;
    let mut run = DayRun::default();
    for (&pid, &(leave, treatment)) in walk_ins.iter().zip(PLAN.iter()) {
        if leave == Leave::Queued {
            run.ready += 1;
            continue;
        }
        act(k, &desk, pid, "claim", json!({})).await?;
        agree(
            k,
            pid,
            "checkin",
            json!({"treatment": treatment, "notes": "现场就诊", "health_survey": "无过敏，近期未服药"}),
        )
        .await?;
        match leave {
            Leave::Suspended => {
                let admin = crate::pack::loader();
                act(
                    k,
                    &admin,
                    pid,
                    "suspend",
                    json!({"reason": "患者外出取药，回来后继续"}),
                )
                .await?;
                run.suspended += 1;
                continue;
            }
            Leave::Declined => {
                let nurse = handler(k, pid, "consent").await?;
                act(
                    k,
                    &nurse,
                    pid,
                    "handle",
                    json!({"attribute": "reject", "comment": "患者考虑后暂不治疗"}),
                )
                .await?;
                run.declined += 1;
                continue;
            }
            _ => {}
        }
        agree(
            k,
            pid,
            "consent",
            json!({"signed_name": "本人签署", "risks": "泛红、轻微肿胀，偶见色素沉着"}),
        )
        .await?;
        if leave == Leave::Paying {
            run.running += 1;
            continue;
        }
        agree(
            k,
            pid,
            "pay",
            json!({"charge_type": "single", "method": "wechat"}),
        )
        .await?;
        if leave == Leave::Treating {
            handler(k, pid, "treat").await?;
            run.running += 1;
            continue;
        }
        agree(k, pid, "treat", json!({"note": "按方案完成治疗"})).await?;
        agree(
            k,
            pid,
            "care",
            json!({"care": "24小时内避免沾水，注意防晒"}),
        )
        .await?;
        run.done += 1;
    }
    // A new patient walks in: registered at the desk with her visit, received, and sent to
    // her first consultation; the visit waits for it (the doctor has the consultation).
    let start = erpos_kernel::app::processes::StartProcess {
        service: "treatment_visit".to_owned(),
        binding: Some(erpos_kernel::app::processes::Binding::New {
            item: "patient".to_owned(),
            fields: json!({"xingming": "林小雨", "xingbie": "女", "phone": "13761820417",
                "birthday": "1996-04-09", "record_no": "MR2026-0901", "kehulaiyuan": "大众点评",
                "first_visit": true, "notes": "初诊，咨询祛斑"}),
        }),
        context: json!({}),
        ..Default::default()
    };
    let new_patient = erpos_kernel::app::processes::start(k, &desk, start)
        .await?
        .pid;
    act(k, &desk, new_patient, "claim", json!({})).await?;
    agree(
        k,
        new_patient,
        "checkin",
        json!({"treatment": "guangzi", "notes": "初诊，面诊后定方案"}),
    )
    .await?;
    if at(k, new_patient).await?.2 == ProcessState::Waiting {
        run.waiting += 1;
    }
    // One of tomorrow's visits at 徐汇店, when they have started (the day before), received,
    // consented and paid in advance: it waits for its booked time.
    let tomorrow = k
        .engine
        .read(|c| {
            c.pcbs()
                .filter(|p| {
                    &*p.service == "treatment_visit"
                        && p.branch() == Some("xuhui")
                        && p.context.get("booking").is_some()
                        && p.step.as_deref() == Some("checkin")
                })
                .map(|p| p.id)
                .min()
        })
        .await;
    if let Some(pid) = tomorrow {
        act(k, &desk, pid, "claim", json!({})).await?;
        agree(k, pid, "checkin", json!({"notes": "提前到店登记，预付"})).await?;
        agree(
            k,
            pid,
            "consent",
            json!({"signed_name": "本人签署", "risks": "泛红、轻微肿胀，偶见色素沉着"}),
        )
        .await?;
        agree(
            k,
            pid,
            "pay",
            json!({"charge_type": "single", "method": "alipay"}),
        )
        .await?;
        run.waiting += 1;
    }
    // The rule starts the done visit's follow-ups.
    for _ in 0..20 {
        let read = k.rules.round().await?;
        let sent = k.outbox.deliver_due().await?;
        if read == 0 && sent == 0 {
            break;
        }
    }
    Ok(run)
}
