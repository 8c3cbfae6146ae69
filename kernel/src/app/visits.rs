//! A booked visit as a process (issue 14 §2 and §6): booking a visit of a treatment that
//! runs a service starts a process of it, NEW until the day before the visit (when its
//! first step, the reminder, runs), with the booking in its context as the kernel's own
//! copy (`context.booking`, which no caller can write), so the visit's `booked` step is
//! dispatched onto exactly the holders reserved for it. Moving the booking moves the
//! process (`Rebook`); cancelling it or a no-show cancels the process.
//!
//! The booking is stored first and the process started after it: a refused booking (409)
//! leaves no process behind, and a process that cannot start cancels the booking again, so
//! either both exist or neither does.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::Kernel;
use crate::bookings::{Booking, BookingKind, BookingState};
use crate::caller::Caller;
use crate::error::Result;
use crate::scheduler::Command;

/// How long before a visit its process starts: the reminder goes out the day before.
pub const REMIND_BEFORE_MS: i64 = 86_400_000;

/// The booking as its process sees it (`context.booking`): ids and times, both as text
/// (for notices) and as milliseconds (for `until` expressions).
pub fn view(b: &Booking) -> Value {
    let ms = |t: &str| erpos_design::value::parse_datetime(t).map(|t| t.timestamp_millis());
    json!({
        "id": b.id,
        "treatment": b.treatment,
        "patient": b.patient,
        "start": b.start,
        "end": b.end,
        "start_ms": ms(&b.start),
        "end_ms": ms(&b.end),
        "held_from_ms": ms(&b.held_from),
        "held_to_ms": ms(&b.held_to),
        "resources": b.resources,
        "operators": b.operators,
        "branch": b.branch,
    })
}

/// When the process of a visit starting at `start` starts (None: at once).
fn start_at(b: &Booking, now_ms: i64) -> Option<i64> {
    let start = erpos_design::value::parse_datetime(&b.start)?.timestamp_millis();
    Some(start - REMIND_BEFORE_MS).filter(|at| *at > now_ms)
}

/// The service a booking's visit runs: its treatment's, if it names a treatment that
/// names one.
async fn service_of(k: &Kernel, b: &Booking) -> Result<Option<String>> {
    if b.kind != BookingKind::Visit {
        return Ok(None);
    }
    let Some(name) = b.treatment.as_deref() else {
        return Ok(None);
    };
    Ok(crate::store::treatments::get(&k.db, name)
        .await?
        .and_then(|t| t.service))
}

/// Starts the visit process of booking `b` (just stored) when its treatment runs a
/// service, and answers the booking with it. The process binds the patient's record when
/// `patient` is the id of one of the service's subject. If the start is refused, the
/// booking is cancelled again and the refusal answered.
pub async fn start(k: &Kernel, caller: &Caller, b: Booking) -> Result<Booking> {
    let Some(service) = service_of(k, &b).await? else {
        return Ok(b);
    };
    let subject = k
        .engine
        .read(|c| c.startable(&service, None).and_then(|s| s.subject.clone()))
        .await;
    let binding = match (subject, b.patient.as_deref()) {
        (Some(item), Some(id)) if k.records.get(&item, id).await.is_ok() => {
            Some(super::processes::Binding::Existing {
                item,
                id: id.to_owned(),
            })
        }
        _ => None,
    };
    let now = k.clock.now_ms();
    let start = super::processes::StartProcess {
        service,
        binding,
        context: json!({"booking": view(&b)}),
        start_at_ms: start_at(&b, now),
        ..Default::default()
    };
    // The kernel starts it on behalf of whoever booked (they are its creator).
    let id = Uuid::parse_str(&b.id).map_err(|e| crate::KernelError::Corrupt(e.to_string()))?;
    match super::processes::start(k, &Caller::system(&caller.user), start).await {
        Ok(started) => k.bookings.link(id, started.pid, &caller.user, now).await,
        Err(e) => {
            let reason = format!("the visit process could not start: {e}");
            k.bookings
                .end(
                    id,
                    BookingState::Cancelled,
                    Some(reason),
                    None,
                    &caller.user,
                    now,
                )
                .await?;
            Err(e)
        }
    }
}

/// Starts the visit process of every booked visit still to come that should have one and
/// has none — the kernel stopped between storing the booking and starting its process —
/// on behalf of whoever booked it. Answers how many it started. Runs when the kernel
/// opens, before it serves.
pub async fn reconcile(k: &Kernel) -> Result<usize> {
    let mut query = crate::store::bookings::BookingQuery {
        state: Some(BookingState::Booked),
        from_ms: Some(k.clock.now_ms()),
        limit: 500,
        ..Default::default()
    };
    let mut started = 0;
    loop {
        let (page, next) = crate::store::bookings::list(&k.db, &query).await?;
        for b in page {
            if b.process.is_some() || service_of(k, &b).await?.is_none() {
                continue;
            }
            let by = Caller::system(&b.created_by);
            match start(k, &by, b).await {
                Ok(_) => started += 1,
                // The booking is cancelled again with the reason; the others go on.
                Err(e) => tracing::warn!(error = %e, "a booked visit's process could not start"),
            }
        }
        let Some(cursor) = next else { break };
        let after = cursor
            .split_once('_')
            .and_then(|(start, id)| Some((start.parse().ok()?, id.to_owned())));
        if after.is_none() {
            break;
        }
        query.after = after;
    }
    if started > 0 {
        tracing::info!(
            started,
            "booked visits given the process a crash left them without"
        );
    }
    Ok(started)
}

/// The booking moved: its process sees the new times (and, still NEW, starts the day
/// before the new time).
pub async fn moved(k: &Kernel, caller: &Caller, b: &Booking) -> Result<()> {
    let Some(pid) = b.process else {
        return Ok(());
    };
    let command = Command::Rebook {
        pid,
        booking: view(b),
        start_at_ms: start_at(b, k.clock.now_ms()).or(Some(k.clock.now_ms())),
        by: caller.user.clone(),
    };
    ignore_ended(k.engine.command(command).await.map(|_| ()))
}

/// The booking was cancelled or the patient did not come: its process is cancelled.
pub async fn ended(k: &Kernel, caller: &Caller, b: &Booking) -> Result<()> {
    let Some(pid) = b.process else {
        return Ok(());
    };
    let reason = match b.state {
        BookingState::NoShow => "the patient did not come (no-show)",
        _ => "the booking was cancelled",
    };
    let command = Command::Terminate {
        pid,
        by: caller.user.clone(),
        reason: reason.to_owned(),
    };
    ignore_ended(k.engine.command(command).await.map(|_| ()))
}

/// A process that has ended already (the visit is over, or someone cancelled it) has
/// nothing to follow: that is not the booking's failure.
fn ignore_ended(r: Result<()>) -> Result<()> {
    match r {
        Err(crate::KernelError::Process(
            crate::scheduler::CoreError::WrongState { .. }
            | crate::scheduler::CoreError::NoProcess(_),
        )) => Ok(()),
        other => other,
    }
}
