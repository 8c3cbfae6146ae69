//! `erpos`: the command line of the erpos kernel.
//!
//! `erpos serve` runs the API on a database, `erpos demo` runs it on a fresh SQLite file
//! with the clinic loaded, `erpos migrate` prepares a database, `erpos openapi` prints the
//! API's OpenAPI document, `erpos bench` measures.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use erpos_applications::{bench, console, demo_day, pack};

/// Prints a line to stdout, ignoring errors: a server must not die because whoever
/// started it stopped reading its output (a closed pipe makes `println!` panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The allocator: see `mimalloc` in the workspace Cargo.toml for why.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use erpos_http::server::{serve_with, shutdown_signal};
use erpos_kernel::Kernel;

/// erpos — a metamodel-driven ERP operating kernel.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the API listens.
#[derive(clap::Args)]
struct ListenArg {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "ERPOS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// Which database erpos runs on.
#[derive(clap::Args)]
struct DatabaseArg {
    /// Database: a SQLite file path (`sqlite:erpos.db`) or a `postgres://` URL.
    #[arg(
        long,
        env = "ERPOS_DATABASE",
        default_value = "sqlite:erpos.db",
        hide_env_values = true
    )]
    database: String,
}

/// The administrator's token.
#[derive(clap::Args)]
struct BootstrapArg {
    /// A secret of at least 16 characters: `Authorization: Bearer <it>` acts as the
    /// administrator `admin` (to create the first users and roles). Never logged.
    #[arg(long, env = "ERPOS_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
}

/// Where webhooks may go beyond public addresses.
#[derive(clap::Args)]
struct WebhookArg {
    /// Private, loopback or link-local addresses webhooks may still reach, as addresses or
    /// CIDR blocks (`10.1.0.0/16,127.0.0.1`). Without it only public addresses are reached.
    #[arg(long, env = "ERPOS_WEBHOOK_ALLOW", value_delimiter = ',', value_parser = parse_block)]
    webhook_allow: Vec<erpos_kernel::egress::Block>,
}

/// How long DataItem migrations are worked in batches.
#[derive(clap::Args)]
struct MigrationArg {
    /// Rows per batch of a migration: a change converting or re-indexing a larger table
    /// runs in batches in the background (resumed after a crash) instead of one
    /// transaction.
    #[arg(long, env = "ERPOS_MIGRATION_BATCH_ROWS", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    migration_batch_rows: u32,
    /// A pause after each batch, in milliseconds, that leaves the database to live
    /// traffic while a large migration runs.
    #[arg(long, env = "ERPOS_MIGRATION_PAUSE_MS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=600_000))]
    migration_pause_ms: u32,
}

impl MigrationArg {
    fn apply(&self, kernel: &Kernel) {
        kernel
            .definitions
            .set_batching(erpos_kernel::definitions::Batching {
                rows: self.migration_batch_rows as usize,
                pause: std::time::Duration::from_millis(u64::from(self.migration_pause_ms)),
            });
    }
}

fn parse_block(text: &str) -> Result<erpos_kernel::egress::Block, String> {
    erpos_kernel::egress::Block::parse(text)
}

/// The password every demo user gets when the demo runs without a bootstrap token (see the
/// README): a person can log in as any of the clinic's staff, or as `admin`.
const DEMO_PASSWORD: &str = "erpos-demo";

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (and, later, the web console) on a database.
    Serve {
        #[command(flatten)]
        listen: ListenArg,
        #[command(flatten)]
        database: DatabaseArg,
        #[command(flatten)]
        bootstrap: BootstrapArg,
        #[command(flatten)]
        webhooks: WebhookArg,
        #[command(flatten)]
        migrations: MigrationArg,
    },
    /// Serve the medical-aesthetics clinic demo on a fresh SQLite file (recreated on every
    /// start), with its DataItems and sample records loaded. Without a bootstrap token,
    /// every demo user (and `admin`) logs in with the demo password `erpos-demo`.
    Demo {
        #[command(flatten)]
        listen: ListenArg,
        #[command(flatten)]
        bootstrap: BootstrapArg,
        /// The SQLite file the demo recreates.
        #[arg(long, env = "ERPOS_DEMO_DATABASE", default_value = "erpos-demo.db")]
        file: std::path::PathBuf,
        #[command(flatten)]
        webhooks: WebhookArg,
        #[command(flatten)]
        migrations: MigrationArg,
    },
    /// Apply erpos's own migrations to a database and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Print the OpenAPI document of the HTTP API (what `/api/v1/openapi.json` serves) and
    /// exit: client generators need no running server.
    Openapi,
    /// Measure a part of erpos and print the figures (see `erpos bench --help`).
    Bench {
        /// What to measure.
        #[command(subcommand)]
        suite: bench::Suite,
    },
}

/// Builds the runtime with `THREAD_STACK` for its threads, so that every Rhai evaluation
/// (conditions in the scheduler, rules, scripts) runs in place on the thread it is on
/// instead of on a fresh stack each time (see `erpos_kernel::rules::sandbox`).
fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(erpos_kernel::rules::sandbox::THREAD_STACK)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only what a script may read (the address served).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("ERPOS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            database,
            bootstrap,
            webhooks,
            migrations,
        } => {
            let kernel = Kernel::open(&database.database).await?;
            kernel.set_bootstrap_token(bootstrap.bootstrap_token.as_deref())?;
            kernel.outbox.egress.allow(webhooks.webhook_allow);
            migrations.apply(&kernel);
            let listener = tokio::net::TcpListener::bind(listen.listen).await?;
            say!("erpos: serving on http://{}", listener.local_addr()?);
            serve_with(
                kernel,
                listener,
                shutdown_signal(),
                Some(Arc::new(console::Console)),
            )
            .await?;
        }
        Command::Demo {
            listen,
            file,
            bootstrap,
            webhooks,
            migrations,
        } => {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = file.clone().into_os_string();
                path.push(suffix);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let kernel = Kernel::open(&format!("sqlite:{}", file.display())).await?;
            kernel.set_bootstrap_token(bootstrap.bootstrap_token.as_deref())?;
            kernel.outbox.egress.allow(webhooks.webhook_allow);
            migrations.apply(&kernel);
            let loaded = pack::load(&kernel, &pack::CLINIC).await?;
            let week = pack::demo_week(&kernel).await?;
            let day = demo_day::demo_day(&kernel).await?;
            let demo_logins = bootstrap.bootstrap_token.is_none();
            if demo_logins {
                pack::demo_passwords(&kernel, DEMO_PASSWORD).await?;
            }
            tracing::info!(
                data_items = loaded.data_items,
                records = loaded.records,
                services = loaded.services,
                processes = loaded.processes,
                bookings = week.bookings,
                full = week.full,
                "clinic demo loaded"
            );
            let listener = tokio::net::TcpListener::bind(listen.listen).await?;
            let addr = listener.local_addr()?;
            say!("erpos demo: serving the clinic on http://{addr}");
            say!(
                "  the console: http://{addr}/  (the staff workspace; the API: http://{addr}/api/v1/records/patient?q=zs, OpenAPI: /api/v1/openapi.json)"
            );
            say!(
                "  a week booked at 徐汇店 (xuhui) and 静安店 (jingan): {} visits, {} 储值卡 — /api/v1/bookings?branch=jingan, /api/v1/queues, /api/v1/stock/alerts",
                week.bookings,
                week.accounts
            );
            say!(
                "  today at 徐汇店: visits done {}, with staff {} (RUNNING), in the queue {} (READY), suspended {}, declined {}, waiting {} (WAITING: a first consultation, a paid visit's time) — /api/v1/processes?service=treatment_visit&state=RUNNING, /api/v1/queues",
                day.done,
                day.running,
                day.ready,
                day.suspended,
                day.declined,
                day.waiting
            );
            if demo_logins {
                say!(
                    "  log in: POST /api/v1/sessions {{\"user\": \"admin\", \"password\": <the demo password in the README>}}"
                );
                say!(
                    "  staff (same password): qiantai_zhou, qiantai_sun (徐汇店 front desk), qiantai_wu (静安店), dr_li, dr_chen, dr_zhao, hushi_wang, hushi_liu"
                );
            }
            serve_with(
                kernel,
                listener,
                shutdown_signal(),
                Some(Arc::new(console::Console)),
            )
            .await?;
        }
        Command::Migrate { database } => {
            Kernel::open(&database.database).await?;
            say!("database is up to date");
        }
        Command::Openapi => {
            use std::io::Write as _;
            let doc = serde_json::to_string_pretty(&erpos_http::openapi_document())?;
            // A closed pipe here is the reader's choice, but an incomplete document must
            // not pass for a whole one: report it.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{doc}")?;
            out.flush()?;
        }
        Command::Bench { suite } => bench::run(suite).await?,
    }
    Ok(())
}
