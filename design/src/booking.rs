//! Bookings as data: what a reservation of resources and operators over time looks like
//! when stored and shown, and the spans it holds (issue 14 §2). Pure: the kernel's
//! `bookings` decides and stores them.

use serde::{Deserialize, Serialize};

/// A half-open span of time, `[from, to)`, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Its first millisecond.
    pub from: i64,
    /// The first millisecond after it.
    pub to: i64,
}

impl Span {
    /// Whether the two spans share a millisecond (touching ends do not).
    pub fn overlaps(&self, other: &Span) -> bool {
        self.from < other.to && other.from < self.to
    }

    /// Its length in milliseconds.
    pub fn len(&self) -> i64 {
        self.to - self.from
    }

    /// Whether it holds no time at all.
    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

/// What a booking is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingKind {
    /// A patient's visit: a treatment on its room, device and practitioner.
    #[default]
    Visit,
    /// A resource out of use: a device's service, a room's deep clean.
    Maintenance,
}

/// Where a booking is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// Holding its resources and operators.
    Booked,
    /// Cancelled: holds nothing.
    Cancelled,
    /// The patient did not come: holds nothing.
    NoShow,
}

impl BookingState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Booked => "booked",
            BookingState::Cancelled => "cancelled",
            BookingState::NoShow => "no_show",
        }
    }
}

/// A booking as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Booking {
    /// Its id.
    pub id: String,
    /// What it is for.
    pub kind: BookingKind,
    /// Where it is.
    pub state: BookingState,
    /// When the visit (or the maintenance) starts (RFC 3339).
    pub start: String,
    /// When it ends.
    pub end: String,
    /// Minutes held before `start` (preparation).
    pub buffer_before_minutes: u32,
    /// Minutes held after `end` (cleaning).
    pub buffer_after_minutes: u32,
    /// When the holds begin: `start` less the buffer before.
    pub held_from: String,
    /// When the holds end: `end` plus the buffer after.
    pub held_to: String,
    /// The resources held (ids).
    pub resources: Vec<String>,
    /// The operators held (user ids).
    pub operators: Vec<String>,
    /// The patient (a record id), for a visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The treatment booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment: Option<String>,
    /// A note for staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The branch it is in: the one its rooms, devices and practitioners stand in (none
    /// when it holds only what serves every branch). Lists are per branch by it, and the
    /// visit takes its consumables from that branch's stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The visit process it started (a booked visit of a treatment that runs a service):
    /// NEW until the day before, then the visit's flow, its treatment step on exactly
    /// these holders. Cancelling or a no-show cancels it; moving the booking moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<u64>,
    /// Counts its changes: a reschedule or cancel naming an older one is refused.
    pub version: i64,
    /// Who booked it.
    pub created_by: String,
    /// When it was booked.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A booking's times, decided: the span it serves and the span it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// `[start, end)`.
    pub served: Span,
    /// `[start - buffer before, end + buffer after)`.
    pub held: Span,
    /// The buffer before, in minutes.
    pub before: u32,
    /// The buffer after, in minutes.
    pub after: u32,
}

fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| crate::value::format_datetime(&t))
        .unwrap_or_default()
}

impl Booking {
    /// The span its holds cover, as stored.
    pub fn held(&self) -> Option<Span> {
        let from = crate::value::parse_datetime(&self.held_from)?.timestamp_millis();
        let to = crate::value::parse_datetime(&self.held_to)?.timestamp_millis();
        Some(Span { from, to })
    }

    /// Takes `times` as its own (start, end, buffers and the held span).
    pub fn set_times(&mut self, times: &Times) {
        self.start = instant(times.served.from);
        self.end = instant(times.served.to);
        self.held_from = instant(times.held.from);
        self.held_to = instant(times.held.to);
        self.buffer_before_minutes = times.before;
        self.buffer_after_minutes = times.after;
    }
}
