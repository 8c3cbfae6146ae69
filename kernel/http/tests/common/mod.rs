//! Test harness: a fresh database per test (a temp SQLite file, and a freshly created
//! PostgreSQL database when `ERPOS_TEST_POSTGRES_URL` is set), the real router, and a helper
//! that sends a request through it.
//!
//! The kernel is opened with the bootstrap token `BOOTSTRAP`, and `TestApp::router` sends it
//! with every request that carries no credentials of its own, so tests written before
//! authentication act as the administrator. `call_as` sends as someone else (another bearer
//! token, an app signature, or nobody) through `TestApp::bare`, the router as a real client
//! meets it.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use erpos_kernel::Kernel;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// One database a test runs against.
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// The connection URL.
    pub url: String,
    /// For a PostgreSQL database: the administrator's URL and the database's name, so
    /// `each_backend` drops it when its test ends (thousands of test runs otherwise fill
    /// the disk with databases nobody reads again).
    created: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Drops the PostgreSQL database this test created (nothing for SQLite, whose
    /// temporary directory goes with it), closing any connection still open to it.
    pub async fn drop_created(created: Option<(String, String)>) -> anyhow::Result<()> {
        if let Some((admin, db)) = created {
            let pool = sqlx::PgPool::connect(&admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        Ok(())
    }
}

/// Every backend this run tests: SQLite always, PostgreSQL when configured.
pub async fn backends() -> anyhow::Result<Vec<TestDb>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("test.db").display());
    let mut out = vec![TestDb {
        name: "sqlite",
        url,
        created: None,
        _dir: Some(dir),
    }];
    if let Ok(admin) = std::env::var("ERPOS_TEST_POSTGRES_URL") {
        let db = format!("erpos_test_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&pool)
            .await?;
        pool.close().await;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_owned();
        out.push(TestDb {
            name: "postgres",
            url: format!("{base}/{db}"),
            created: Some((admin.clone(), db)),
            _dir: None,
        });
    }
    Ok(out)
}

/// The bootstrap token every test kernel is opened with.
pub const BOOTSTRAP: &str = "test-bootstrap-token-0123456789";

/// Adds the bootstrap token to a request that carries no credentials (no `Authorization`,
/// no app signature, no `access_token`).
async fn default_credentials(mut req: Request<Body>) -> Request<Body> {
    let has = req.headers().contains_key("authorization")
        || req.headers().contains_key("x-erpos-app")
        || req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")));
    if !has && let Ok(v) = format!("Bearer {BOOTSTRAP}").parse() {
        req.headers_mut().insert("authorization", v);
    }
    req
}

fn routers(kernel: &Arc<Kernel>) -> (Router, Router) {
    let bare = erpos_http::router(kernel.clone());
    let router = bare
        .clone()
        .layer(axum::middleware::map_request(default_credentials));
    (router, bare)
}

/// Whom a request is sent as (`TestApp::call_as`).
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// No credentials at all.
    Nobody,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// An app token's signature (signed now, on the kernel's clock), for `user`.
    App {
        /// The app token's name.
        app: &'a str,
        /// Its secret.
        secret: &'a str,
        /// The user it acts for.
        user: &'a str,
    },
}

/// A kernel and its router on a fresh database.
pub struct TestApp {
    /// The backend's name.
    pub backend: &'static str,
    /// The database URL (to reopen it, as a restart would).
    pub url: String,
    /// The clock the kernel runs on; tests move it forward.
    pub clock: Arc<erpos_kernel::clock::ManualClock>,
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// The real router, sending the bootstrap token when a request carries no credentials.
    pub router: Router,
    /// The real router, as clients meet it (nothing added).
    pub bare: Router,
    _db: TestDb,
}

/// Opens a kernel on `db`.
pub async fn app(db: TestDb) -> anyhow::Result<TestApp> {
    let clock = Arc::new(erpos_kernel::clock::ManualClock::new(1_795_856_400_000));
    let kernel = Kernel::open_with_clock(&db.url, clock.clone()).await?;
    kernel.set_bootstrap_token(Some(BOOTSTRAP))?;
    allow_loopback_webhooks(&kernel)?;
    let (router, bare) = routers(&kernel);
    Ok(TestApp {
        backend: db.name,
        url: db.url.clone(),
        clock,
        kernel,
        router,
        bare,
        _db: db,
    })
}

impl TestApp {
    /// Closes this kernel and opens a new one on the same database, as a restart would.
    pub async fn restart(mut self) -> anyhow::Result<TestApp> {
        self.kernel.db.close().await;
        let kernel = Kernel::open_with_clock(&self.url, self.clock.clone()).await?;
        kernel.set_bootstrap_token(Some(BOOTSTRAP))?;
        allow_loopback_webhooks(&kernel)?;
        (self.router, self.bare) = routers(&kernel);
        self.kernel = kernel;
        Ok(self)
    }

    /// Moves time forward and fires every timer due.
    pub async fn advance(&self, ms: i64) -> anyhow::Result<()> {
        self.clock.advance_ms(ms);
        self.kernel
            .engine
            .command(erpos_kernel::scheduler::Command::Tick)
            .await?;
        Ok(())
    }
}

/// The tests' webhook receivers listen on loopback: this test deployment allows it, as an
/// operator would with `--webhook-allow 127.0.0.0/8` (the SSRF tests clear it again).
fn allow_loopback_webhooks(kernel: &Kernel) -> anyhow::Result<()> {
    let block = erpos_kernel::egress::Block::parse("127.0.0.0/8").map_err(anyhow::Error::msg)?;
    kernel.outbox.egress.allow(vec![block]);
    Ok(())
}

/// Runs `test` once per backend, each on its own fresh database.
pub async fn each_backend<F, Fut>(test: F) -> anyhow::Result<()>
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for mut db in backends().await? {
        let name = db.name;
        let created = db.created.take();
        let app = app(db).await?;
        let outcome = test(app).await.map_err(|e| e.context(format!("on {name}")));
        TestDb::drop_created(created).await?;
        outcome?;
    }
    Ok(())
}

impl TestApp {
    /// Sends a request with an optional JSON body; returns the status and the JSON body
    /// (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call_with(method, path, body, &[]).await
    }

    /// Like `call`, with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.send(&self.router, method, path, body, headers).await
    }

    /// Sends as `who` (see `As`) through the bare router.
    pub async fn call_as(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let body = body.map(|b| b.to_string().into_bytes());
        let headers = self.credentials(who, method, path, body.as_deref().unwrap_or_default());
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send(&self.bare, method, path, body, &headers).await
    }

    /// The headers that authenticate a request as `who`, signed for exactly this method,
    /// path and body.
    pub fn credentials(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        use erpos_kernel::clock::Clock as _;
        match who {
            As::Nobody => Vec::new(),
            As::Bearer(token) => vec![("authorization".into(), format!("Bearer {token}"))],
            As::App { app, secret, user } => {
                let ts = (self.clock.now_ms() / 1000).to_string();
                let text = erpos_kernel::auth::apps::string_to_sign(&ts, user, method, path, body);
                vec![
                    ("x-erpos-app".into(), app.to_owned()),
                    ("x-erpos-timestamp".into(), ts),
                    ("x-erpos-user".into(), user.to_owned()),
                    (
                        "x-erpos-signature".into(),
                        erpos_kernel::auth::apps::sign(secret, &text),
                    ),
                ]
            }
        }
    }

    /// Sends raw body bytes with exactly these headers through the bare router (for
    /// tampered or replayed requests).
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(String, String)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send(&self.bare, method, path, body, &headers).await
    }

    async fn send(
        &self,
        router: &Router,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b))?,
            None => req.body(Body::empty())?,
        };
        let res = router.clone().oneshot(req).await?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, json))
    }

    /// Sends a GET and returns the status, the content type and the body as text.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<(StatusCode, String, String)> {
        let res = self
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty())?)
            .await?;
        let status = res.status();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok((status, ctype, String::from_utf8(bytes.to_vec())?))
    }

    /// Creates a user with `password` holding one role (named after them) that carries
    /// `grants`, and logs them in; returns the session token.
    pub async fn user_with(&self, id: &str, grants: &[&str]) -> anyhow::Result<String> {
        let role = format!("role_{id}");
        let password = format!("password-of-{id}");
        let (s, b) = self
            .call(
                "POST",
                "/api/v1/roles",
                Some(
                    serde_json::json!({"name": role, "label": {"zh": role}, "permissions": grants}),
                ),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "role: {s} {b}");
        let (s, b) = self
            .call(
                "POST",
                "/api/v1/users",
                Some(serde_json::json!({"id": id, "roles": [role], "password": password})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "user: {s} {b}");
        self.login(id, &password).await
    }

    /// Creates users who hold nothing: the people definitions name (a notice's recipients,
    /// an escalation's), which must exist before a definition may name them. A user who
    /// exists already is left as they are.
    pub async fn staff(&self, ids: &[&str]) -> anyhow::Result<()> {
        let (s, b) = self.call("GET", "/api/v1/users?limit=1000", None).await?;
        anyhow::ensure!(s == StatusCode::OK, "users: {s} {b}");
        let exists = |id: &str| {
            b["items"]
                .as_array()
                .is_some_and(|users| users.iter().any(|u| u["id"] == id))
        };
        for id in ids.iter().filter(|id| !exists(id)) {
            let (s, b) = self
                .call("POST", "/api/v1/users", Some(serde_json::json!({"id": id})))
                .await?;
            anyhow::ensure!(s == StatusCode::CREATED, "user {id}: {s} {b}");
        }
        Ok(())
    }

    /// Logs in; returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> anyhow::Result<String> {
        let (s, b) = self
            .call_as(
                As::Nobody,
                "POST",
                "/api/v1/sessions",
                Some(serde_json::json!({"user": user, "password": password})),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "login {user}: {s} {b}");
        Ok(b["token"].as_str().unwrap_or_default().to_owned())
    }

    /// POSTs a DataItem and asserts it was created.
    pub async fn define(&self, def: Value) -> anyhow::Result<Value> {
        let (status, body) = self.call("POST", "/api/v1/data-items", Some(def)).await?;
        anyhow::ensure!(
            status == StatusCode::CREATED,
            "define failed: {status} {body}"
        );
        Ok(body)
    }

    /// Saves a service and publishes it, asserting both succeed.
    pub async fn publish(&self, service: Value) -> anyhow::Result<()> {
        let name = service["name"].as_str().unwrap_or_default().to_owned();
        let (s, b) = self.call("POST", "/api/v1/services", Some(service)).await?;
        anyhow::ensure!(s.is_success(), "save {name}: {s} {b}");
        let (s, b) = self
            .call("POST", &format!("/api/v1/services/{name}/publish"), None)
            .await?;
        anyhow::ensure!(s.is_success(), "publish {name}: {s} {b}");
        Ok(())
    }

    /// A process as the administrator reads it, asserting it is there.
    pub async fn process(&self, pid: u64) -> anyhow::Result<Value> {
        let (s, b) = self
            .call("GET", &format!("/api/v1/processes/{pid}"), None)
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "process {pid}: {s} {b}");
        Ok(b)
    }

    /// POSTs a record and asserts it was created.
    pub async fn create(&self, item: &str, record: Value) -> anyhow::Result<Value> {
        let (status, body) = self
            .call("POST", &format!("/api/v1/records/{item}"), Some(record))
            .await?;
        anyhow::ensure!(
            status == StatusCode::CREATED,
            "create {item} failed: {status} {body}"
        );
        Ok(body)
    }

    /// What bookings need of the clinic: its hours (门诊时间, 09:00–21:00 every day, UTC+8),
    /// two treatment rooms (room-a1, room-a2), a laser (picolaser-1) and 王医生 (doc.wang),
    /// each working those hours.
    pub async fn bookable_clinic(&self) -> anyhow::Result<()> {
        let day = serde_json::json!([["09:00", "21:00"]]);
        let ok = |(s, b): (StatusCode, Value)| {
            anyhow::ensure!(s.is_success(), "{s} {b}");
            Ok(())
        };
        ok(self
            .call("POST", "/api/v1/calendars", Some(serde_json::json!({
                "name": "menzhen", "label": {"zh": "门诊时间"}, "utc_offset_minutes": 480,
                "weekly": {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day}
            })))
            .await?)?;
        for (name, kind, zh) in [
            ("treatment_room", "facility", "治疗室"),
            ("laser", "equipment", "激光设备"),
        ] {
            ok(self
                .call(
                    "POST",
                    "/api/v1/resource-types",
                    Some(serde_json::json!({"name": name, "kind": kind, "label": {"zh": zh}})),
                )
                .await?)?;
        }
        for (id, ty, zh) in [
            ("room-a1", "treatment_room", "治疗室A1"),
            ("room-a2", "treatment_room", "治疗室A2"),
            ("picolaser-1", "laser", "超皮秒激光1号"),
        ] {
            ok(self
                .call("POST", "/api/v1/resources", Some(serde_json::json!({"id": id, "type": ty, "label": {"zh": zh}, "calendar": "menzhen"})))
                .await?)?;
        }
        ok(self
            .call("POST", "/api/v1/users", Some(serde_json::json!({"id": "doc.wang", "name": "王医生", "skills": ["laser_cert"], "calendar": "menzhen"})))
            .await?)
    }

    /// Counts the rows of a record table directly in the database (not through the API).
    pub async fn count_rows(&self, item: &str) -> anyhow::Result<i64> {
        let mut sql = erpos_kernel::sql::Sql::new(self.kernel.db.dialect());
        sql.push("SELECT CAST(COUNT(*) AS TEXT) FROM ")
            .ident(&format!("rec_{item}"));
        let rows = self.kernel.db.fetch(sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default()
            .parse()?)
    }

    /// The column names of a record table, read from the database's own catalog.
    pub async fn columns(&self, item: &str) -> anyhow::Result<Vec<String>> {
        let table = format!("rec_{item}");
        let mut sql = erpos_kernel::sql::Sql::new(self.kernel.db.dialect());
        match self.backend {
            "sqlite" => {
                sql.push("SELECT name FROM pragma_table_info(")
                    .text(table)
                    .push(") ORDER BY cid");
            }
            _ => {
                sql.push("SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_name = ")
                    .text(table)
                    .push(" ORDER BY ordinal_position");
            }
        }
        Ok(self
            .kernel
            .db
            .fetch(sql)
            .await?
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect())
    }
}

/// The clinic's patient as the ENGINEERING guide posts it (without `extends`).
pub fn patient_def() -> Value {
    serde_json::json!({
        "label": {"zh": "患者", "en": "Patient"},
        "fields": [
            {"label": {"zh": "姓名", "en": "Name"}, "type": "text", "required": true, "searchable": true},
            {"name": "age", "label": {"zh": "年龄", "en": "Age"}, "type": "integer", "min": 0, "max": 150},
            {"name": "source", "label": {"zh": "客户来源"}, "type": "enum", "options": ["小红书", "微博", "朋友介绍"]},
            {"name": "balance", "label": {"zh": "预充值余额"}, "type": "money", "default": "0.00"},
            {"name": "record_no", "label": {"zh": "病历号"}, "type": "text", "unique": true}
        ]
    })
}
