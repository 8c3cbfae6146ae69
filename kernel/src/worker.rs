//! The background loop the rules engine and the outbox share: run a round; when it found
//! little to do, sleep until woken (new work was committed) or a short tick passes (work
//! that becomes due with time: retries, time rules, deadlines). The loop holds its worker
//! only weakly, so dropping the kernel ends it. Each round runs as its own task, so a round
//! that panics is a failed round (logged, tried again after a tick), never a dead worker:
//! the loop must never end while its worker lives.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Result;

/// How long an idle worker sleeps when nobody wakes it.
const TICK: Duration = Duration::from_millis(250);

/// A worker run in rounds.
pub trait Worker: Send + Sync + 'static {
    /// Its name in logs.
    const NAME: &'static str;
    /// Does one round; returns how much it did.
    fn round(&self) -> impl Future<Output = Result<usize>> + Send;
    /// Whether a round that did `done` left more to do at once.
    fn busy(&self, done: usize) -> bool;
    /// What wakes it.
    fn wake(&self) -> Arc<Notify>;
}

/// Runs `worker`'s rounds until it is dropped.
pub fn spawn<W: Worker>(worker: &Arc<W>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(worker);
    tokio::spawn(async move {
        loop {
            let Some(worker) = weak.upgrade() else { break };
            let running = worker.clone();
            let done = match tokio::spawn(async move { running.round().await }).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::warn!(worker = W::NAME, error = %e, "round failed");
                    0
                }
                Err(e) => {
                    tracing::error!(worker = W::NAME, error = %e, "round panicked");
                    0
                }
            };
            if !worker.busy(done) {
                let wake = worker.wake();
                drop(worker);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        }
    })
}
