//! erpos-kernel: the operating engine.
//!
//! This first layer holds storage (SQLite or PostgreSQL through one `Db`), live DataItem
//! definitions (tables created and migrated from the metamodel), records, and the HTTP API.
//! Process control blocks and the scheduler build on it.

pub mod api;
pub mod conditions;
pub mod db;
pub mod definitions;
pub mod error;
pub mod records;
pub mod scheduler;
pub mod server;
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
}

impl Kernel {
    /// Connects to `database_url`, applies erpos's own migrations and loads the catalog.
    pub async fn open(database_url: &str) -> Result<Arc<Kernel>, KernelError> {
        let db = Db::connect(database_url).await?;
        db.migrate().await?;
        let definitions = Arc::new(Definitions::load(db.clone()).await?);
        let records = Records::new(db.clone(), definitions.clone());
        Ok(Arc::new(Kernel {
            db,
            definitions,
            records,
        }))
    }
}
