//! Driving long DataItem migrations (issue 13 §3): a migration too large for one
//! transaction is worked batch by batch in the background (see `definitions::long`), and
//! resumed at start after a crash. The driver holds the kernel weakly, so a node that
//! stops ends it; the run's cursor is in the database, so nothing is lost.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::require;
use crate::Kernel;
use crate::caller::{Caller, Permission};
use crate::definitions::{Advance, MigrationProgress};
use crate::error::Result;

/// The longest wait between two tries of a batch the database refused.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How far the migration of `name` is (`GET …/migration/progress`): its active run, or
/// the last one that ended; needs the design grant, like applying it.
pub async fn progress(k: &Kernel, caller: &Caller, name: &str) -> Result<MigrationProgress> {
    require(caller, Permission::Design, "following migrations")?;
    k.definitions.progress(name).await
}

/// Works `item`'s run to its end in the background.
pub fn spawn(k: &Arc<Kernel>, item: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(drive(Arc::downgrade(k), item))
}

/// Resumes every run a crash (or a stop) interrupted: called once the node serves.
pub fn resume(k: &Arc<Kernel>) -> Vec<tokio::task::JoinHandle<()>> {
    k.definitions
        .active_runs()
        .into_iter()
        .map(|item| {
            tracing::info!(item = %item, "resuming an interrupted migration run");
            spawn(k, item)
        })
        .collect()
}

/// Works `item`'s run until it ends: batch after batch, pausing as the batching says;
/// a batch the database refused is tried again after a growing wait (its error noted on
/// the run, for the progress to show).
pub async fn drive(kernel: Weak<Kernel>, item: String) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let Some(k) = kernel.upgrade() else { return };
        let step = match k.definitions.advance(&item).await {
            Ok(Advance::Recompute(items)) => recompute(&k, &item, &items).await,
            other => other,
        };
        let pause = match step {
            Ok(Advance::Finished) => return,
            Ok(_) => {
                backoff = Duration::from_millis(250);
                k.definitions.batching().pause
            }
            Err(e) => {
                tracing::warn!(item = %item, error = %e, "a migration batch failed; trying again");
                if let Err(noted) = k.definitions.note_run_error(&item, &e.to_string()).await {
                    tracing::warn!(item = %item, error = %noted, "could not note the failed batch");
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                backoff
            }
        };
        drop(k);
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

async fn recompute(k: &Kernel, item: &str, items: &[String]) -> Result<Advance> {
    for each in items {
        k.records.recompute(each).await?;
    }
    k.definitions.finish_recompute(item).await?;
    Ok(Advance::Finished)
}
