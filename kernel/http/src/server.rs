//! Serving the API on a socket, and shutting down cleanly: on Ctrl-C or SIGTERM the server
//! stops accepting, lets requests in flight finish, then closes the database pool.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use erpos_kernel::Kernel;

/// Serves `kernel` on `listener` until `shutdown` completes.
pub async fn serve(
    kernel: Arc<Kernel>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(kernel, listener, shutdown, None).await
}

/// [`serve`], also serving `assets` (the web console) at `/`.
pub async fn serve_with(
    kernel: Arc<Kernel>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    assets: Option<Arc<dyn crate::assets::Assets>>,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "erpos is serving");
    let app = crate::router_with(kernel.clone(), assets);
    // Timers fire from here: the kernel's clock, checked as often as the next timer needs.
    let timers = kernel.engine.spawn_timer();
    // Rules read the event log (and fire time rules); the outbox delivers what they queued.
    let rules = erpos_kernel::worker::spawn(&kernel.rules);
    let outbox = erpos_kernel::worker::spawn(&kernel.outbox);
    // Migrations a crash interrupted go on from their last committed batch.
    let runs = erpos_kernel::app::migration_runs::resume(&kernel);
    // With each connection's peer address: login throttling counts per client address.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    timers.abort();
    rules.abort();
    outbox.abort();
    for run in runs {
        run.abort();
    }
    served?;
    kernel.db.close().await;
    tracing::info!("erpos stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
