//! erpos-kernel: the operating engine.
//!
//! Storage (SQLite or PostgreSQL through one `Db`), live DataItem definitions (tables
//! created and migrated from the metamodel), records, process control blocks and the
//! scheduler, rules, time and access, and the application layer ([`app`]) every caller
//! goes through. No HTTP here: the API is the `erpos-http` crate, one caller among others
//! (the rules executor, the outbox, packs and benches call [`app`] too).

pub mod app;
pub mod audit;
pub mod auth;
pub mod bookings;
pub mod calendars;
pub mod caller;
pub mod clock;
pub mod computed;
pub mod conditions;
pub mod db;
pub mod definitions;
pub mod delegations;
pub mod egress;
pub mod engine;
pub mod error;
pub mod events;
pub mod limits;
pub mod numbers;
pub mod organisation;
pub mod outbox;
pub mod records;
pub mod redact;
pub mod resources;
pub mod rules;
pub mod sandbox;
pub mod scheduler;
pub mod secrets;
pub mod services;
pub mod sql;
pub mod stats;
pub mod store;
pub mod tasks;
pub mod uses;
pub mod visibility;
pub mod worker;

use std::sync::Arc;

pub use db::Db;
pub use definitions::Definitions;
pub use error::KernelError;
pub use records::Records;

/// Everything a running erpos node holds: its database and the services over it.
pub struct Kernel {
    /// The database.
    pub db: Db,
    /// DataItem definitions, live.
    pub definitions: Arc<Definitions>,
    /// Records of every DataItem.
    pub records: Arc<Records>,
    /// Processes: the scheduler core and its storage.
    pub engine: Arc<engine::Engine>,
    /// Service definitions: drafts and published versions.
    pub services: services::Services,
    /// Keeps the automatic-step runner alive (the runtime holds it weakly, to avoid a
    /// cycle through the rules engine).
    _step_runner: Arc<dyn engine::AutomaticSteps>,
    /// Working calendars (deadlines are counted in them).
    pub calendars: Arc<calendars::Calendars>,
    /// Bookings of resources and operators over time.
    pub bookings: Arc<bookings::Bookings>,
    /// The event log.
    pub events: Arc<events::Events>,
    /// ServiceRules and their worker.
    pub rules: Arc<rules::Rules>,
    /// Deliveries (notifications, webhooks, process commands) and their worker.
    pub outbox: Arc<outbox::Outbox>,
    /// Who requests come from: sessions, the bootstrap token, app tokens, users' grants.
    pub auth: Arc<auth::Auth>,
    /// The kernel's clock (tests move it; app signatures' timestamps are checked on it).
    pub clock: Arc<dyn clock::Clock>,
}

/// Runs automatic steps' instructions through the rules engine's executor, in one
/// transaction per step (with its outbox rows).
struct StepRunner {
    rules: Arc<rules::Rules>,
    db: Db,
    outbox: Arc<outbox::Outbox>,
    clock: Arc<dyn clock::Clock>,
}

impl engine::AutomaticSteps for StepRunner {
    fn run<'a>(
        &'a self,
        pcb: scheduler::Pcb,
        step: &'a str,
        list: Vec<erpos_design::rule::Instruction>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send + 'a>,
    > {
        Box::pin(async move {
            let record = match &pcb.record {
                Some((item, id)) => self
                    .rules
                    .record(item, id)
                    .await
                    .map(|r| (item.clone(), id.clone(), r)),
                None => None,
            };
            let situation = rules::exec::Situation {
                rule: None,
                event: None,
                record,
                pid: Some(pcb.id),
                context: (*pcb.context).clone(),
                depth: 0,
                by: None,
            };
            let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
            let ran = self
                .rules
                .executor()
                .run(&mut tx, &situation, &list, self.clock.now_ms())
                .await
                .map_err(|e| format!("at '{step}', {e}"))?;
            tx.commit().await.map_err(|e| e.to_string())?;
            if ran.queued {
                self.outbox.wake.notify_one();
            }
            Ok(())
        })
    }
}

impl Kernel {
    /// Connects to `database_url`, applies erpos's own migrations and loads the catalog.
    pub async fn open(database_url: &str) -> Result<Arc<Kernel>, KernelError> {
        Self::open_with_clock(database_url, Arc::new(clock::SystemClock)).await
    }

    /// Like `open`, with a clock of the caller's (tests move time forward with a
    /// `ManualClock`). The timer task is started by `serve`, not here.
    pub async fn open_with_clock(
        database_url: &str,
        clock: Arc<dyn clock::Clock>,
    ) -> Result<Arc<Kernel>, KernelError> {
        let db = Db::connect(database_url).await?;
        db.migrate().await?;
        let db_auth = db.clone();
        let definitions = Arc::new(Definitions::load(db.clone()).await?);
        let events = Arc::new(events::Events::new(db.clone(), clock.clone()));
        let records = Arc::new(Records::new(
            db.clone(),
            definitions.clone(),
            events.clone(),
        ));
        let calendars = calendars::Calendars::load(db.clone()).await?;
        let bookings = bookings::Bookings::load(db.clone()).await?;
        let engine = engine::Engine::load(
            db.clone(),
            clock.clone(),
            events.clone(),
            calendars.clone(),
            definitions.clone(),
        )
        .await?;
        let services = services::Services::new(db.clone(), definitions.clone(), engine.clone());
        let outbox = Arc::new(outbox::Outbox::new(
            db.clone(),
            clock.clone(),
            engine.clone(),
            records.clone(),
            definitions.clone(),
        )?);
        let rules = rules::Rules::load(
            db.clone(),
            clock.clone(),
            events.clone(),
            records.clone(),
            engine.clone(),
            outbox.clone(),
            Arc::new(rules::sandbox::Sandbox::new()),
        )
        .await?;
        let runner: Arc<dyn engine::AutomaticSteps> = Arc::new(StepRunner {
            rules: rules.clone(),
            db: db.clone(),
            outbox: outbox.clone(),
            clock: clock.clone(),
        });
        engine.attach_automatic(Arc::downgrade(&runner));
        let kernel = Arc::new(Kernel {
            db,
            definitions,
            records,
            engine,
            services,
            events,
            rules,
            outbox,
            calendars,
            bookings,
            _step_runner: runner,
            auth: Arc::new(auth::Auth::new(db_auth, clock.clone())),
            clock,
        });
        // A crash between storing a booked visit and starting its process left a booking
        // without one: it gets it now.
        app::visits::reconcile(&kernel).await?;
        Ok(kernel)
    }

    /// Sets (or clears) the bootstrap token (`ERPOS_BOOTSTRAP_TOKEN`): `Authorization:
    /// Bearer <it>` then acts as the administrator `admin`. Only its digest is kept; refused
    /// when shorter than 16 characters.
    pub fn set_bootstrap_token(&self, token: Option<&str>) -> Result<(), KernelError> {
        self.auth.set_bootstrap_token(token)
    }
}
