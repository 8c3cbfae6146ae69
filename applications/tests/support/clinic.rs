//! The clinic pack on a kernel with the test clock, driven over the HTTP router: what the
//! clinic's end-to-end tests share (each runs on SQLite and, when `ERPOS_TEST_POSTGRES_URL`
//! names a server, on a fresh PostgreSQL database too).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use erpos_kernel::Kernel;
use erpos_kernel::clock::{Clock, ManualClock};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// 2026-11-28 17:00 China time, as in the HTTP tests.
pub const START_MS: i64 = 1_795_856_400_000;
pub const DAY_MS: i64 = 86_400_000;

/// The clinic pack loaded on a kernel with the test clock, served by the HTTP router.
pub struct Clinic {
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    router: axum::Router,
}

impl Clinic {
    /// A fresh clinic on the database at `url`.
    pub async fn open(url: &str) -> anyhow::Result<Clinic> {
        let clock = Arc::new(ManualClock::new(START_MS));
        let kernel = Kernel::open_with_clock(url, clock.clone()).await?;
        erpos_applications::pack::load(&kernel, &erpos_applications::pack::CLINIC).await?;
        erpos_applications::pack::demo_passwords(&kernel, "erpos-demo").await?;
        let router = erpos_http::router(kernel.clone());
        Ok(Clinic {
            kernel,
            clock,
            router,
        })
    }

    /// Terminates the demo's walk-in visits (they fill the front desk's hands and remind
    /// it of their patients), so a test meets only the visits it makes.
    pub async fn send_walk_ins_home(&self) -> anyhow::Result<()> {
        let admin = self.login("admin").await?;
        let (_, walk_ins) = self
            .send(
                Some(&admin),
                "GET",
                "/api/v1/processes?service=treatment_visit",
                None,
            )
            .await?;
        for w in walk_ins["items"].as_array().cloned().unwrap_or_default() {
            let (s, b) = self
                .send(
                    Some(&admin),
                    "POST",
                    &format!("/api/v1/processes/{}/terminate", w["id"]),
                    Some(json!({"reason": "演示数据"})),
                )
                .await?;
            anyhow::ensure!(s == StatusCode::OK, "{s} {b}");
        }
        Ok(())
    }

    /// A GET as `user` (logged in afresh: sessions lapse while the clock jumps days).
    pub async fn get(&self, user: &str, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let token = self.login(user).await?;
        self.send(Some(&token), "GET", path, None).await
    }

    /// `user` claims the step of process `pid` offered to them; answers the status.
    pub async fn claim(&self, user: &str, pid: u64) -> anyhow::Result<(StatusCode, Value)> {
        let token = self.login(user).await?;
        self.send(
            Some(&token),
            "POST",
            &format!("/api/v1/processes/{pid}/claim"),
            Some(json!({})),
        )
        .await
    }

    /// One request, as the holder of `token`.
    pub async fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))?,
            None => req.body(Body::empty())?,
        };
        let res = self.router.clone().oneshot(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, json))
    }

    /// A session of a demo user (password `erpos-demo`).
    pub async fn login(&self, user: &str) -> anyhow::Result<String> {
        let (s, b) = self
            .send(
                None,
                "POST",
                "/api/v1/sessions",
                Some(json!({"user": user, "password": "erpos-demo"})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "login {user}: {s} {b}");
        Ok(b["token"].as_str().unwrap_or_default().to_owned())
    }

    /// Moves the clock to `to` and fires what is due (timers, rules, the outbox).
    pub async fn at(&self, to: i64) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        if to > now {
            self.clock.advance_ms(to - now);
        }
        self.kernel
            .engine
            .command(erpos_kernel::scheduler::Command::Tick)
            .await?;
        for _ in 0..20 {
            let read = self.kernel.rules.round().await?;
            let sent = self.kernel.outbox.deliver_due().await?;
            if read == 0 && sent == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Process `pid` as the holder of `token` reads it.
    pub async fn process(&self, token: &str, pid: u64) -> anyhow::Result<Value> {
        let (s, p) = self
            .send(
                Some(token),
                "GET",
                &format!("/api/v1/processes/{pid}"),
                None,
            )
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "{s} {p}");
        Ok(p)
    }

    /// `user` agrees on their open work item of process `pid` (with `context`).
    pub async fn agree(&self, token: &str, pid: u64, context: Value) -> anyhow::Result<()> {
        let (s, b) = self
            .send(
                Some(token),
                "POST",
                &format!("/api/v1/processes/{pid}/handle"),
                Some(json!({"attribute": "agree", "context": context})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "handle {pid}: {s} {b}");
        Ok(())
    }
}

/// The body of `POST /api/v1/bookings` that books `slot` (as a slot search answers it)
/// for `patient`'s `treatment`.
pub fn booking_of(slot: &Value, treatment: &str, patient: &str) -> Value {
    json!({
        "resources": slot["resources"], "operators": slot["operators"],
        "start": slot["start"], "end": slot["end"],
        "buffer_before_minutes": slot["buffer_before_minutes"],
        "buffer_after_minutes": slot["buffer_after_minutes"],
        "treatment": treatment, "patient": patient
    })
}

/// `text` fit for a query string (RFC 3339 instants).
pub fn q(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// Runs `test` on a fresh SQLite file and, when a PostgreSQL server is named, on a fresh
/// database of it (dropped afterwards).
pub async fn on_both_databases<F, Fut>(test: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("clinic.db").display());
    test(url).await?;
    if let Ok(admin) = std::env::var("ERPOS_TEST_POSTGRES_URL") {
        let name = format!("erpos_visit_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let result = test(format!("{base}/{name}")).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await?;
        result?;
    }
    Ok(())
}
