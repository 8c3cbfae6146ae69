//! Test harness: a fresh database per test (a temp SQLite file, and a freshly created
//! PostgreSQL database when `ERPOS_TEST_POSTGRES_URL` is set), the real router, and a helper
//! that sends a request through it.
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
    _dir: Option<tempfile::TempDir>,
}

/// Every backend this run tests: SQLite always, PostgreSQL when configured.
pub async fn backends() -> anyhow::Result<Vec<TestDb>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().join("test.db").display());
    let mut out = vec![TestDb {
        name: "sqlite",
        url,
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
            _dir: None,
        });
    }
    Ok(out)
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
    /// The router (the real one).
    pub router: Router,
    _db: TestDb,
}

/// Opens a kernel on `db`.
pub async fn app(db: TestDb) -> anyhow::Result<TestApp> {
    let clock = Arc::new(erpos_kernel::clock::ManualClock::new(1_795_856_400_000));
    let kernel = Kernel::open_with_clock(&db.url, clock.clone()).await?;
    let router = erpos_kernel::api::router(kernel.clone());
    Ok(TestApp {
        backend: db.name,
        url: db.url.clone(),
        clock,
        kernel,
        router,
        _db: db,
    })
}

impl TestApp {
    /// Closes this kernel and opens a new one on the same database, as a restart would.
    pub async fn restart(mut self) -> anyhow::Result<TestApp> {
        self.kernel.db.close().await;
        let kernel = Kernel::open_with_clock(&self.url, self.clock.clone()).await?;
        self.router = erpos_kernel::api::router(kernel.clone());
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

/// Runs `test` once per backend, each on its own fresh database.
pub async fn each_backend<F, Fut>(test: F) -> anyhow::Result<()>
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for db in backends().await? {
        let name = db.name;
        let app = app(db).await?;
        test(app)
            .await
            .map_err(|e| e.context(format!("on {name}")))?;
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
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
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

    /// POSTs a DataItem and asserts it was created.
    pub async fn define(&self, def: Value) -> anyhow::Result<Value> {
        let (status, body) = self.call("POST", "/api/v1/data-items", Some(def)).await?;
        anyhow::ensure!(
            status == StatusCode::CREATED,
            "define failed: {status} {body}"
        );
        Ok(body)
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
