//! Service definitions, live: an editable draft per service, validated on every save, and
//! published versions that are frozen. Running processes keep the version they started
//! with; new processes take the newest. This module must not run processes.

use std::sync::Arc;

use erpos_design::directory::Directory;
use erpos_design::service::Service;
use erpos_design::service_check::{prepare_service, prepare_service_reading, read_service};
use serde_json::Value as Json;

use crate::audit::Audit;
use crate::db::Db;
use crate::definitions::Definitions;
use crate::engine::Engine;
use crate::error::{KernelError, Result};

/// The services store.
pub struct Services {
    db: Db,
    definitions: Arc<Definitions>,
    engine: Arc<Engine>,
}

impl Services {
    /// The store over `db`.
    pub fn new(db: Db, definitions: Arc<Definitions>, engine: Arc<Engine>) -> Self {
        Self {
            db,
            definitions,
            engine,
        }
    }

    /// Validates and saves a draft (created or replaced). Sub-services may name other
    /// drafts; publishing checks they are published.
    /// `directory` is what the service may name (drafts included).
    pub async fn save_draft(
        &self,
        body: &Json,
        directory: &Directory,
        audit: &Audit,
    ) -> Result<Service> {
        // Read as far as it can be, then checked whole: one answer carries every problem.
        let reading = read_service(body);
        let catalog = self.definitions.schema().catalog.clone();
        let mut prepared = prepare_service_reading(reading, body, &catalog, directory)?;
        // Versions are the kernel's to number, at publication.
        prepared.version = 0;
        let d = self.db.dialect();
        let sql = crate::store::services::save_draft_sql(d, &prepared)?;
        self.db
            .write_atomically(vec![sql, audit.row(d, &prepared.name)])
            .await?;
        Ok(prepared)
    }

    async fn draft_names(&self) -> Result<Vec<String>> {
        crate::store::services::draft_names(&self.db).await
    }

    /// The draft of a service, if any.
    pub async fn draft(&self, name: &str) -> Result<Option<Service>> {
        crate::store::services::draft(&self.db, name).await
    }

    /// Every published version of a service, oldest first.
    pub async fn versions(&self, name: &str) -> Vec<Arc<Service>> {
        self.engine
            .read(|c| c.published().filter(|s| s.name == name).cloned().collect())
            .await
    }

    /// Every published version of a service with who published it and its notes.
    pub async fn releases(&self, name: &str) -> Result<Vec<crate::store::services::Release>> {
        crate::store::services::releases(&self.db, name).await
    }

    /// Every service: name, label, newest published version, whether a draft exists.
    pub async fn list(&self) -> Result<Vec<Json>> {
        let drafts = self.draft_names().await?;
        let published: Vec<Arc<Service>> =
            self.engine.read(|c| c.published().cloned().collect()).await;
        let mut names: Vec<String> = published
            .iter()
            .map(|s| s.name.clone())
            .chain(drafts.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let newest = published
                .iter()
                .filter(|s| s.name == name)
                .max_by_key(|s| s.version);
            let label = match newest {
                Some(s) => Some(s.label.clone()),
                None => self.draft(&name).await?.map(|d| d.label),
            };
            out.push(serde_json::json!({
                "name": name, "label": label,
                "version": newest.map(|s| s.version),
                "has_draft": drafts.contains(&name),
            }));
        }
        Ok(out)
    }

    /// Publishes the draft as the next version: validated again, now requiring every
    /// sub-service to be published.
    /// `directory` is what the service may name (published services only).
    /// `notes` are the version notes (what changed, said by the one publishing).
    pub async fn publish(
        &self,
        name: &str,
        notes: Option<&str>,
        directory: &Directory,
        audit: &Audit,
    ) -> Result<Service> {
        let draft = self
            .draft(name)
            .await?
            .ok_or_else(|| KernelError::Conflict {
                code: crate::error::ErrorCode::NoDraft,
                message: format!("service '{name}' has no draft to publish: POST it first"),
                details: Vec::new(),
            })?;
        let catalog = self.definitions.schema().catalog.clone();
        let mut prepared = prepare_service(draft, &catalog, directory)?;
        prepared.version = self
            .versions(name)
            .await
            .iter()
            .map(|s| s.version)
            .max()
            .unwrap_or(0)
            + 1;
        self.engine.publish(prepared.clone(), notes, audit).await?;
        tracing::info!(service = %name, version = prepared.version, "service published");
        Ok(prepared)
    }
}
