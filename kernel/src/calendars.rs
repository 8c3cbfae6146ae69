//! Working calendars, live: stored definitions, and the deadline arithmetic the scheduler
//! asks for ("4 working hours from now in the clinic's calendar").
//!
//! A step names its calendar; without one the calendar named `organisation` applies if it
//! is defined, else every hour counts. Calendars are read on every step entered, so they
//! live in memory behind a lock that writers hold only to swap the map.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use erpos_design::WorkingCalendar;
use serde_json::Value as Json;

use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

/// The organisation's calendar: the default for every deadline.
pub const ORGANISATION: &str = "organisation";

/// Every working calendar.
pub struct Calendars {
    db: Db,
    map: RwLock<Arc<BTreeMap<String, WorkingCalendar>>>,
}

impl Calendars {
    /// Loads the stored calendars.
    pub async fn load(db: Db) -> Result<Arc<Calendars>> {
        let mut select =
            crate::store::Select::from(db.dialect(), "calendars", &["name", "definition"])
                .keyed("name");
        select.sql().push(" ORDER BY name");
        let mut map = BTreeMap::new();
        for row in select.fetch(&db).await? {
            let cal: WorkingCalendar = row.json("definition")?;
            map.insert(cal.name.clone(), cal);
        }
        Ok(Arc::new(Calendars {
            db,
            map: RwLock::new(Arc::new(map)),
        }))
    }

    /// Every calendar.
    pub fn all(&self) -> Arc<BTreeMap<String, WorkingCalendar>> {
        self.map
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|_| Arc::new(BTreeMap::new()))
    }

    /// Validates and stores a calendar (new or replacing one of the same name).
    pub async fn put(
        &self,
        body: &Json,
        now_ms: i64,
        audit: &crate::audit::Audit,
    ) -> Result<WorkingCalendar> {
        // Read as far as it can be, then checked whole: one answer carries every problem.
        let cal = WorkingCalendar::prepare_reading(WorkingCalendar::read(body), body)?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("INSERT INTO calendars (name, definition, updated_at) VALUES (")
            .text(&cal.name)
            .push(", ")
            .json(&serde_json::to_value(&cal).map_err(|e| KernelError::Corrupt(e.to_string()))?);
        sql.push(", ").int(now_ms).push(
            ") ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        );
        let row = audit.row(self.db.dialect(), &cal.name);
        self.db.write_atomically(vec![sql, row]).await?;
        self.swap(|m| {
            m.insert(cal.name.clone(), cal.clone());
        });
        Ok(cal)
    }

    /// Deletes a calendar (deadlines already set keep their instant).
    pub async fn delete(&self, name: &str, audit: &crate::audit::Audit) -> Result<()> {
        if !self.all().contains_key(name) {
            return Err(KernelError::NotFound(format!("calendar '{name}'")));
        }
        let mut sql = Sql::new(self.db.dialect());
        sql.push("DELETE FROM calendars WHERE name = ").text(name);
        let row = audit.row(self.db.dialect(), name);
        self.db.write_atomically(vec![sql, row]).await?;
        self.swap(|m| {
            m.remove(name);
        });
        Ok(())
    }

    fn swap(&self, change: impl FnOnce(&mut BTreeMap<String, WorkingCalendar>)) {
        if let Ok(mut slot) = self.map.write() {
            let mut next = (**slot).clone();
            change(&mut next);
            *slot = Arc::new(next);
        }
    }

    /// Whether `at_ms` is working time in `calendar` (an unknown calendar: always), and if
    /// not, when working time next starts.
    pub fn on_duty(&self, calendar: &str, at_ms: i64) -> (bool, Option<i64>) {
        match self.all().get(calendar) {
            None => (true, None),
            Some(cal) if cal.is_working(at_ms) => (true, None),
            Some(cal) => (false, cal.next_working_start(at_ms)),
        }
    }

    /// When `seconds` of working time from `now_ms` have passed in `calendar` (or the
    /// organisation's). A calendar with no working time at all gives wall time rather
    /// than a deadline that never comes.
    pub fn due_ms(&self, calendar: Option<&str>, now_ms: i64, seconds: i64) -> i64 {
        let wall = now_ms.saturating_add(seconds.saturating_mul(1000));
        let all = self.all();
        let chosen = calendar
            .and_then(|c| all.get(c))
            .or_else(|| all.get(ORGANISATION));
        match chosen {
            Some(cal) => cal
                .add_working(now_ms, seconds.saturating_mul(1000))
                .unwrap_or(wall),
            None => wall,
        }
    }
}
