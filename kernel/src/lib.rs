//! erpos-kernel: the operating engine.
//!
//! This first layer holds storage (SQLite or PostgreSQL through one `Db`), live DataItem
//! definitions (tables created and migrated from the metamodel), records, and the HTTP API.
//! Process control blocks and the scheduler build on it.

pub mod api;
pub mod clock;
pub mod conditions;
pub mod db;
pub mod definitions;
pub mod engine;
pub mod error;
pub mod records;
pub mod resources;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod sql;

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
    pub records: Records,
    /// Processes: the scheduler core and its storage.
    pub engine: Arc<engine::Engine>,
    /// Service definitions: drafts and published versions.
    pub services: services::Services,
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
        let definitions = Arc::new(Definitions::load(db.clone()).await?);
        let records = Records::new(db.clone(), definitions.clone());
        let engine = engine::Engine::load(db.clone(), clock).await?;
        let services = services::Services::new(db.clone(), definitions.clone(), engine.clone());
        Ok(Arc::new(Kernel {
            db,
            definitions,
            records,
            engine,
            services,
        }))
    }
}
