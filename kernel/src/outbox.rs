//! The outbox: deliveries that must happen at least once, whatever crashes meanwhile.
//!
//! A rule's notifications, webhooks and process commands are written as outbox rows in the
//! rule's own transaction, so they exist exactly when the rule's run committed. A worker
//! delivers due rows in order; a failure is retried with exponential backoff until
//! `MAX_ATTEMPTS`, then the row is `failed` — visible and retryable over the API. Rows
//! survive restarts (they are only rows), and a row due while the server was down is
//! delivered on start.
//!
//! Exactly-once where erpos can make it so: a notification is inserted into the inbox in
//! the same transaction that marks its row delivered; a started process carries its
//! outbox id (`context._origin.outbox`), so a start redelivered after a crash finds the
//! process it already started. A webhook receiver gets the row id in `X-Erpos-Delivery`
//! to drop the rare duplicate.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;

use crate::app::orders::ProcessOrder;
use crate::clock::Clock;
use crate::db::Db;
use crate::engine::Engine;
use crate::error::{KernelError, Result};
use crate::sql::Sql;
use crate::store::{Select, StoredRow};

/// Attempts before a delivery is given up (and shown as failed).
pub const MAX_ATTEMPTS: i64 = 8;
/// The first retry waits this long; each next one twice as long (capped at an hour).
pub const BASE_BACKOFF_MS: i64 = 1_000;
/// How long a webhook receiver may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::store::outbox::{Delivery, Kind, enqueue_sql};

/// The outbox worker.
pub struct Outbox {
    db: Db,
    clock: Arc<dyn Clock>,
    engine: Arc<Engine>,
    /// Records and DataItems: a rule's `start_service` starts through the application
    /// layer (`app::processes::start_with`), which reads the bound record.
    records: Arc<crate::records::Records>,
    definitions: Arc<crate::definitions::Definitions>,
    http: reqwest::Client,
    /// Where webhooks may go (checked at delivery, after DNS).
    pub egress: Arc<crate::egress::Egress>,
    /// Woken when rows are committed, so they go out at once.
    pub wake: Arc<tokio::sync::Notify>,
}

/// Why one delivery did not happen.
enum Failure {
    /// Worth retrying (network, 5xx, storage).
    Transient(String),
    /// Will fail the same way again (a refused process command, a 4xx): not retried.
    Permanent(String),
}

impl Outbox {
    /// The worker over `db`, delivering process commands to `engine`.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        engine: Arc<Engine>,
        records: Arc<crate::records::Records>,
        definitions: Arc<crate::definitions::Definitions>,
    ) -> Result<Self> {
        // One crypto provider for the process; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let egress = Arc::new(crate::egress::Egress::default());
        // No redirects: a 30x would turn a checked POST into a GET of anything.
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .user_agent("erpos-outbox/1")
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(crate::egress::Resolver(egress.clone()))
            .build()
            .map_err(|e| KernelError::Corrupt(format!("HTTP client: {e}")))?;
        Ok(Self {
            db,
            clock,
            egress,
            wake: engine.outbox_wake.clone(),
            engine,
            records,
            definitions,
            http,
        })
    }

    /// Delivers every due row; returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut select = Select::from(
            self.db.dialect(),
            "outbox",
            &["id", "kind", "payload", "attempts", "claimed_at_ms", "rule"],
        )
        .keyed("id");
        select
            .sql()
            .push(" WHERE state = 'pending' AND next_at_ms <= ")
            .int(now)
            .push(" ORDER BY next_at_ms, id LIMIT 64");
        let rows = select.fetch(&self.db).await?;
        for row in &rows {
            self.deliver_row(row).await?;
        }
        Ok(rows.len())
    }

    async fn deliver_row(&self, row: &StoredRow) -> Result<()> {
        // The row's number is what the failure is written back to: without it nothing can
        // be marked, and the round fails (naming the column).
        let id = row.int("id")?;
        // Anything else that cannot be read back fails its row (visible, retryable)
        // instead of every round of the worker.
        let read = (|| {
            Ok::<_, crate::store::Undecodable>((
                row.text("kind")?,
                row.json::<Json>("payload")?,
                row.int("attempts")?,
                row.opt_int("claimed_at_ms")?.is_some(),
                row.opt_text("rule")?,
            ))
        })();
        let (kind, payload, attempts, claimed, rule, unreadable) = match read {
            Ok((kind, payload, attempts, claimed, rule)) => {
                (kind, payload, attempts, claimed, rule, None)
            }
            Err(e) => {
                tracing::error!(outbox = id, table = e.table, column = e.column, error = %e, "a stored delivery cannot be read back");
                // The attempts so far count when they can be read; the row fails for good.
                let attempts = row.int("attempts").unwrap_or(MAX_ATTEMPTS);
                (
                    String::new(),
                    Json::Null,
                    attempts,
                    false,
                    None,
                    Some(e.to_string()),
                )
            }
        };
        let result = match (kind.as_str(), unreadable) {
            (_, Some(why)) => Err(Failure::Permanent(format!(
                "the stored delivery cannot be read back: {why}"
            ))),
            ("notify", None) => return self.deliver_notification(id, &payload).await,
            ("webhook", None) => self.post(id, &payload, rule.as_deref()).await,
            ("process", None) => self.command(id, &payload, claimed).await,
            (other, None) => Err(Failure::Permanent(format!(
                "unknown delivery kind '{other}'"
            ))),
        };
        let now = self.clock.now_ms();
        let mut sql = Sql::new(self.db.dialect());
        match result {
            Ok(()) => {
                sql.push("UPDATE outbox SET state = 'delivered', attempts = ")
                    .int(attempts + 1)
                    .push(", delivered_at_ms = ")
                    .int(now)
                    .push(", last_error = NULL");
            }
            Err(failure) => {
                let (permanent, message) = match failure {
                    Failure::Transient(m) => (false, m),
                    Failure::Permanent(m) => (true, m),
                };
                let tried = attempts + 1;
                let gave_up = permanent || tried >= MAX_ATTEMPTS;
                tracing::warn!(outbox = id, attempt = tried, error = %message, "delivery failed");
                sql.push("UPDATE outbox SET state = ")
                    .text(if gave_up { "failed" } else { "pending" })
                    .push(", attempts = ")
                    .int(tried);
                sql.push(", next_at_ms = ")
                    .int(now + backoff_ms(tried))
                    .push(", last_error = ")
                    .text(message);
            }
        }
        sql.push(" WHERE id = ").int(id);
        self.db.write_atomically(vec![sql]).await
    }

    /// A notification: inbox rows and the delivered mark in one transaction.
    async fn deliver_notification(&self, id: i64, payload: &Json) -> Result<()> {
        let now = self.clock.now_ms();
        let text = |k: &str| payload.get(k).and_then(Json::as_str).unwrap_or_default();
        let mut statements = Vec::new();
        for user in payload
            .get("to")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
        {
            let mut sql = Sql::new(self.db.dialect());
            sql.push("INSERT INTO notifications (user_id, title, body, at_ms, outbox_id) VALUES (")
                .text(user)
                .push(", ")
                .text(text("title"));
            sql.push(", ")
                .text(text("body"))
                .push(", ")
                .int(now)
                .push(", ")
                .int(id);
            sql.push(") ON CONFLICT (outbox_id, user_id) DO NOTHING");
            statements.push(sql);
        }
        let mut sql = Sql::new(self.db.dialect());
        sql.push(
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at_ms = ",
        )
        .int(now)
        .push(" WHERE id = ")
        .int(id);
        statements.push(sql);
        self.db.write_atomically(statements).await
    }

    /// A webhook: POST the body, signed when a secret is given. The target is checked
    /// against the egress policy (an address written in the URL here, a name when it is
    /// resolved); no redirect is followed and nothing of the answer but its status is kept.
    async fn post(&self, id: i64, payload: &Json, rule: Option<&str>) -> Result<(), Failure> {
        let url = payload
            .get("url")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let shown = crate::secrets::mask_url(url);
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| Failure::Permanent(format!("POST {shown}: not a URL: {e}")))?;
        let literal = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = literal {
            self.egress
                .check(ip)
                .map_err(|e| Failure::Permanent(format!("POST {shown}: target refused: {e}")))?;
        }
        let body = payload
            .get("body")
            .cloned()
            .unwrap_or(Json::Null)
            .to_string();
        let timestamp = (self.clock.now_ms() / 1000).to_string();
        let mut request = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .header("x-erpos-delivery", id.to_string())
            .header("x-erpos-timestamp", &timestamp);
        if let Some(rule) = rule {
            request = request.header("x-erpos-rule", rule);
        }
        if let Some(secret) = payload.get("secret").and_then(Json::as_str) {
            request = request.header(
                "x-erpos-signature",
                format!("sha256={}", sign(secret, &timestamp, &body)),
            );
        }
        let response = request.body(body).send().await.map_err(|e| {
            let mut refused = None;
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            while let Some(c) = cause {
                let text = c.to_string();
                if text.contains("target refused") {
                    refused = Some(text);
                }
                cause = c.source();
            }
            match refused {
                Some(why) => Failure::Permanent(format!("POST {shown}: {why}")),
                None => Failure::Transient(format!("POST {shown}: {}", e.without_url())),
                // (`without_url`: the URL may carry credentials; `shown` has them masked.)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The answer's body is never kept: it may be anything the target chose to say.
        let message = format!("POST {shown}: HTTP {}", status.as_u16());
        // 408 and 429 are worth another try; other 4xx mean the request itself is wrong.
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(Failure::Permanent(message))
        } else {
            Err(Failure::Transient(message))
        }
    }

    /// A process command. A start remembers its outbox id, so a redelivery after a crash
    /// finds the process instead of starting a second one. The order is carried out through
    /// the application layer (`app::orders`), the rule acting as the kernel under its own
    /// name, as a start over the API would be.
    async fn command(&self, id: i64, p: &Json, claimed: bool) -> Result<(), Failure> {
        let mut order =
            ProcessOrder::from_payload(p).map_err(|e| Failure::Permanent(e.to_string()))?;
        let rule = p.get("rule").and_then(Json::as_str);
        if let ProcessOrder::StartService { context, .. } = &mut order {
            if claimed && let Some(found) = self.started_by(id).await {
                tracing::info!(
                    outbox = id,
                    pid = found,
                    "start already done before a restart"
                );
                return Ok(());
            }
            self.claim(id)
                .await
                .map_err(|e| Failure::Transient(e.to_string()))?;
            // The bound record is read again by the start, as it is now.
            context.remove("record");
            context.insert("_origin".into(), json!({"outbox": id, "rule": rule}));
        }
        let by = match rule {
            Some(rule) => format!("rule:{rule}"),
            None => "system".to_owned(),
        };
        let parts = crate::app::processes::Parts {
            engine: &self.engine,
            records: &self.records,
            definitions: &self.definitions,
        };
        let caller = crate::caller::Caller::system(&by);
        match crate::app::orders::carry_out(&parts, &caller, order).await {
            Ok(()) => Ok(()),
            // Refused as asked (no such service or process, a record of another DataItem
            // or gone, a command not legal in the process's state): it would be refused
            // again.
            Err(
                e @ (KernelError::Process(_)
                | KernelError::NotFound(_)
                | KernelError::Invalid(_)
                | KernelError::Design(_)
                | KernelError::Forbidden(_)),
            ) => Err(Failure::Permanent(e.to_string())),
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }

    /// Marks a row as being delivered (so a restart knows a start may have happened).
    async fn claim(&self, id: i64) -> Result<()> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE outbox SET claimed_at_ms = ")
            .int(self.clock.now_ms())
            .push(" WHERE id = ")
            .int(id);
        self.db.write_atomically(vec![sql]).await
    }

    /// The process a start row already started, if any.
    async fn started_by(&self, id: i64) -> Option<u64> {
        self.engine
            .read(|core| {
                core.pcbs_unordered()
                    .find(|p| {
                        p.context
                            .get("_origin")
                            .and_then(|o| o.get("outbox"))
                            .and_then(Json::as_i64)
                            == Some(id)
                    })
                    .map(|p| p.id)
            })
            .await
    }

    /// Puts a failed (or pending) row back in line now, with its attempts reset.
    pub async fn retry(&self, id: i64, audit: &crate::audit::Audit) -> Result<()> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE outbox SET state = 'pending', attempts = 0, next_at_ms = ")
            .int(self.clock.now_ms())
            .push(" WHERE id = ")
            .int(id)
            .push(" AND state <> 'delivered' RETURNING CAST(id AS TEXT)");
        let mut tx = self.db.begin().await?;
        if Select::raw("outbox", &["id"], sql)
            .fetch_in(&mut tx)
            .await?
            .is_empty()
        {
            // Dropped without a commit: nothing changed, so nothing is audited.
            return Err(KernelError::NotFound(format!(
                "undelivered outbox entry {id}"
            )));
        }
        tx.execute(audit.row(self.db.dialect(), &id.to_string()))
            .await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// A page of rows, newest first, optionally in one state, before a cursor.
    pub async fn list(
        &self,
        state: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Json>> {
        let mut select = Select::from(
            self.db.dialect(),
            "outbox",
            &[
                "id",
                "kind",
                "payload",
                "state",
                "attempts",
                "next_at_ms",
                "last_error",
                "created_at_ms",
                "delivered_at_ms",
                "rule",
                "event_seq",
            ],
        )
        .keyed("id");
        let sql = select.sql();
        sql.push(" WHERE 1=1");
        if let Some(state) = state {
            sql.push(" AND state = ").text(state);
        }
        if let Some(before) = before {
            sql.push(" AND id < ").int(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ").int(limit as i64);
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|r| {
                // A payload that cannot be read back is listed as null, so the row that
                // failed on it stays visible and retryable; its `last_error` (written by
                // the worker) names the column and why, and the log says so now.
                let mut payload: Json = match r.json("payload") {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(table = e.table, column = e.column, error = %e, "a stored delivery cannot be read back; listed without its payload");
                        Json::Null
                    }
                };
                if let Some(p) = payload.as_object_mut() {
                    if p.contains_key("secret") {
                        p.insert("secret".into(), json!("***"));
                    }
                    if let Some(Json::String(u)) = p.get_mut("url") {
                        *u = crate::secrets::mask_url(u);
                    }
                }
                Ok(json!({
                    "id": r.int("id")?, "kind": r.text("kind")?, "payload": payload,
                    "state": r.text("state")?, "attempts": r.int("attempts")?,
                    "next_at_ms": r.int("next_at_ms")?, "last_error": r.opt_text("last_error")?,
                    "created_at_ms": r.int("created_at_ms")?,
                    "delivered_at_ms": r.opt_int("delivered_at_ms")?,
                    "rule": r.opt_text("rule")?, "event_seq": r.opt_int("event_seq")?,
                }))
            })
            .collect()
    }

    /// A user's notifications, newest first.
    pub async fn notifications(&self, user: &str, limit: usize) -> Result<Vec<Json>> {
        let mut select = Select::from(
            self.db.dialect(),
            "notifications",
            &["id", "title", "body", "at_ms"],
        )
        .keyed("id");
        select
            .sql()
            .push(" WHERE user_id = ")
            .text(user)
            .push(" ORDER BY id DESC LIMIT ")
            .int(limit as i64);
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(|r| {
                Ok(json!({
                    "id": r.int("id")?,
                    "title": r.text("title")?, "body": r.text("body")?,
                    "at_ms": r.int("at_ms")?,
                }))
            })
            .collect()
    }
}

impl crate::worker::Worker for Outbox {
    const NAME: &'static str = "outbox";

    fn round(&self) -> impl std::future::Future<Output = Result<usize>> + Send {
        self.deliver_due()
    }

    /// Due rows are taken 64 at a time; after an empty round, wait.
    fn busy(&self, done: usize) -> bool {
        done > 0
    }

    fn wake(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}

/// Backoff before attempt `tried + 1`: 1 s, 2 s, 4 s, … capped at an hour.
pub fn backoff_ms(tried: i64) -> i64 {
    BASE_BACKOFF_MS
        .saturating_mul(1_i64 << (tried - 1).clamp(0, 20))
        .min(3_600_000)
}

/// `hex(HMAC-SHA256(secret, "{timestamp}.{body}"))`: the receiver recomputes it, and the
/// timestamp in the signed text stops a replay of an old delivery.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
