//! App tokens: how a calling system (an OA, a web shop) acts on behalf of a user.
//!
//! A token has a name, a secret, the services it may touch and scopes (grant patterns). A
//! request is signed: `X-Erpos-Signature: hex(HMAC-SHA256(secret, "{timestamp}\n{user}\n
//! {METHOD}\n{path_and_query}\n{hex sha256(body)}"))`, with `X-Erpos-App`,
//! `X-Erpos-Timestamp` (unix seconds, within `WINDOW_S` of the kernel's clock) and
//! `X-Erpos-User`. The user is signed too: whoever sees a request in flight cannot send it
//! on as somebody else. An optional `X-Erpos-Nonce` (1–64 visible characters) is appended
//! to the text as `\n{nonce}`, so that two otherwise identical requests in the same second
//! differ. Each signature is
//! accepted once: it is stored with its timestamp and a second use within the window is
//! refused (older ones are refused by their timestamp anyway, and pruned).
//!
//! Before a signature is verified, nothing tells a caller whether an app name exists: an
//! unknown (or revoked) app and a bad signature get the same 401 message
//! ([`BAD_SIGNATURE`]) after the same work (the live tokens are all held in memory, and an
//! unknown app's signature is checked against a decoy secret); the log says which it was.
//!
//! This module must never return a secret except once, when the token is created, and
//! never log one; it compares signatures in constant time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use erpos_design::Issue;
use erpos_design::naming::is_identifier;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Auth, random_token};
use crate::caller::{Caller, CallerKind, check_grant, restrict};
use crate::error::{KernelError, Result};
use crate::sql::Sql;
use crate::store::{Select, StoredRow};

/// How far a request's timestamp may be from the kernel's clock, in seconds (either way).
pub const WINDOW_S: i64 = 300;

/// The one message for an unknown or revoked app and for a signature that does not match:
/// before the signature is verified a caller must not learn which app names exist.
pub const BAD_SIGNATURE: &str = "unknown app or bad signature";

/// An app token as stored (the secret is never serialized).
#[derive(Debug, Clone, Serialize)]
pub struct AppToken {
    /// Its name (`X-Erpos-App`).
    pub name: String,
    /// The services whose processes it may touch (`*`: any).
    pub services: Vec<String>,
    /// Grant patterns limiting what the user it acts for may do through it.
    pub scopes: Vec<String>,
    /// A label for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Value>,
    /// When it was created (ms since the epoch).
    pub created_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// Who revoked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(skip)]
    secret: String,
}

impl AppToken {
    /// The token as the API lists it: the secret masked but for its last four characters.
    pub fn masked(&self) -> Value {
        let tail: String = self
            .secret
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut v = json!(self);
        v["secret"] = json!(format!("****{tail}"));
        v
    }
}

/// What a signed request carries, read from its headers, method, URI and body.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    /// `X-Erpos-App`.
    pub app: &'a str,
    /// `X-Erpos-Timestamp` (unix seconds, as sent).
    pub timestamp: &'a str,
    /// `X-Erpos-User`.
    pub user: &'a str,
    /// `X-Erpos-Nonce`, if sent.
    pub nonce: Option<&'a str>,
    /// `X-Erpos-Signature` (hex).
    pub signature: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The path and query as sent (`/api/v1/records/leave?limit=5`).
    pub path_and_query: &'a str,
    /// The body bytes.
    pub body: &'a [u8],
}

/// The text an app signs (and the kernel recomputes): everything the request's meaning
/// depends on — when, for whom, what and on what.
pub fn string_to_sign(
    timestamp: &str,
    user: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    format!(
        "{timestamp}\n{user}\n{method}\n{path_and_query}\n{}",
        super::sha256_hex(body)
    )
}

/// The text to sign with a nonce: the plain text (from [`string_to_sign`]) followed by
/// `\n{nonce}`.
pub fn with_nonce(mut text: String, nonce: &str) -> String {
    text.push('\n');
    text.push_str(nonce);
    text
}

/// Whether a nonce is usable: 1–64 visible ASCII characters (it travels in a header and
/// is part of the signed text, so nothing that a proxy might rewrite).
fn valid_nonce(nonce: &str) -> bool {
    (1..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_graphic())
}

/// `hex(HMAC-SHA256(secret, text))` — what a client puts in `X-Erpos-Signature`.
pub fn sign(secret: &str, text: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(text.as_bytes());
    super::hex(&mac.finalize().into_bytes())
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

fn strings(body: &Value, key: &str, issues: &mut Vec<Issue>) -> Vec<String> {
    match body.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v.as_str() {
                Some(s) => Some(s.to_owned()),
                None => {
                    issues.push(Issue::new(format!("/{key}/{i}"), "expected a string"));
                    None
                }
            })
            .collect(),
        Some(_) => {
            issues.push(Issue::new(
                format!("/{key}"),
                "expected an array of strings",
            ));
            Vec::new()
        }
    }
}

/// What an app token's stored definition holds besides its columns.
#[derive(serde::Deserialize)]
struct StoredApp {
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    label: Option<Value>,
}

/// The columns [`parse_row`] reads.
const APP_COLUMNS: &[&str] = &[
    "name",
    "definition",
    "secret",
    "created_ms",
    "created_by",
    "revoked_ms",
    "revoked_by",
];

/// A stored app token. A list that is not of strings, a time that is not a number, is an
/// error naming the token and the column — never a token with fewer scopes or services
/// than were stored. (The secret is never quoted in an error: only the name is a key.)
fn parse_row(r: &StoredRow) -> Result<AppToken> {
    let def: StoredApp = r.json("definition")?;
    Ok(AppToken {
        name: r.text("name")?,
        services: def.services,
        scopes: def.scopes,
        label: def.label.filter(|l| !l.is_null()),
        created_ms: r.int("created_ms")?,
        created_by: r.text("created_by")?,
        revoked_ms: r.opt_int("revoked_ms")?,
        revoked_by: r.opt_text("revoked_by")?,
        secret: r.text("secret")?,
    })
}

fn select(d: erpos_design::Dialect) -> Select {
    Select::from(d, "app_tokens", APP_COLUMNS).keyed("name")
}

fn refused(message: &str) -> KernelError {
    KernelError::Unauthorized(format!("app signature refused: {message}"))
}

impl Auth {
    /// Creates an app token: `{"name", "services": [...], "scopes": [grant patterns],
    /// "label"?}`. Answers with the token and its secret, which is never shown again.
    pub async fn create_app(
        &self,
        body: &Value,
        audit: &crate::audit::Audit,
    ) -> Result<(AppToken, String)> {
        let by = audit.actor();
        let mut issues = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(KernelError::Invalid(vec![Issue::new(
                "",
                "expected a JSON object",
            )]));
        };
        for key in obj.keys() {
            if !["name", "services", "scopes", "label"].contains(&key.as_str()) {
                issues.push(Issue::new(format!("/{key}"), "unknown key"));
            }
        }
        let name = match obj.get("name").and_then(Value::as_str) {
            Some(n) if is_identifier(n) => n.to_owned(),
            Some(_) => {
                issues.push(Issue::new(
                    "/name",
                    "use lowercase letters, digits and single underscores, starting with a letter",
                ));
                String::new()
            }
            None => {
                issues.push(Issue::new("/name", "is required"));
                String::new()
            }
        };
        let services = strings(body, "services", &mut issues);
        for (i, s) in services.iter().enumerate() {
            if s != "*" && !is_identifier(s) {
                issues.push(Issue::new(
                    format!("/services/{i}"),
                    "not a service name or *",
                ));
            }
        }
        let scopes = strings(body, "scopes", &mut issues);
        for (i, s) in scopes.iter().enumerate() {
            if let Err(e) = check_grant(s) {
                issues.push(Issue::new(format!("/scopes/{i}"), e));
            }
        }
        // A label is a label (`{"zh", "en"?}`): `0` or `false` were stored and listed as
        // such (found by the schemathesis run).
        let label = obj.get("label").cloned().filter(|l| !l.is_null());
        if let Some(l) = &label
            && serde_json::from_value::<erpos_design::Label>(l.clone()).is_err()
        {
            issues.push(Issue::new(
                "/label",
                "expected a label: {\"zh\": \"…\", \"en\"?: \"…\"}",
            ));
        }
        if !issues.is_empty() {
            return Err(KernelError::Invalid(issues));
        }
        let secret = random_token()?;
        let now = self.now_ms();
        let definition = json!({"services": services, "scopes": scopes, "label": label});
        let mut sql = Sql::new(self.db.dialect());
        sql.push(
            "INSERT INTO app_tokens (name, secret, definition, created_ms, created_by) VALUES (",
        )
        .text(&name)
        .push(", ")
        .text(&secret)
        .push(", ")
        .json(&definition)
        .push(", ")
        .int(now)
        .push(", ")
        .text(by)
        .push(") ON CONFLICT (name) DO NOTHING");
        self.load_apps().await?;
        let mut tx = self.db.begin().await?;
        if tx.execute(sql).await? == 0 {
            return Err(KernelError::Conflict {
                code: crate::error::ErrorCode::AppTokenExists,
                message: format!(
                    "an app token named '{name}' exists (or existed: names of revoked tokens are not reused)"
                ),
                details: vec![Issue::new("/name", "choose another name")],
            });
        }
        tx.execute(audit.row(self.db.dialect(), &name)).await?;
        tx.commit().await?;
        tracing::info!(app = %name, by, "app token created");
        let token = AppToken {
            name,
            services,
            scopes,
            label,
            created_ms: now,
            created_by: by.to_owned(),
            revoked_ms: None,
            revoked_by: None,
            secret: secret.clone(),
        };
        self.apps
            .insert(token.name.clone(), Arc::new(token.clone()));
        Ok((token, secret))
    }

    /// Every app token, revoked ones included, by name.
    pub async fn apps(&self) -> Result<Vec<AppToken>> {
        let mut select = select(self.db.dialect());
        select.sql().push(" ORDER BY name");
        select
            .fetch(&self.db)
            .await?
            .iter()
            .map(parse_row)
            .collect()
    }

    /// Loads every live app token into memory, once per node: from then on a lookup never
    /// touches the database, so a known and an unknown name take the same time (a query
    /// only for unknown names would tell them apart). Creating and revoking keep the cache
    /// in step; both wait for this load first, so neither can be undone by it.
    async fn load_apps(&self) -> Result<()> {
        self.apps_loaded
            .get_or_try_init(|| async {
                let mut select = select(self.db.dialect());
                select.sql().push(" WHERE revoked_ms IS NULL");
                for row in select.fetch(&self.db).await? {
                    let app = parse_row(&row)?;
                    self.apps.insert(app.name.clone(), Arc::new(app));
                }
                Ok::<(), KernelError>(())
            })
            .await
            .map(|_| ())
    }

    /// The live (not revoked) app token of that name.
    async fn app(&self, name: &str) -> Result<Option<Arc<AppToken>>> {
        self.load_apps().await?;
        Ok(self.apps.get(name).map(|a| a.clone()))
    }

    /// Revokes an app token: from now on its signatures are refused. Its row stays, for
    /// the record of who created and revoked it.
    pub async fn revoke_app(&self, name: &str, audit: &crate::audit::Audit) -> Result<()> {
        let by = audit.actor();
        let mut sql = Sql::new(self.db.dialect());
        sql.push("UPDATE app_tokens SET revoked_ms = ")
            .int(self.now_ms())
            .push(", revoked_by = ")
            .text(by)
            .push(" WHERE revoked_ms IS NULL AND name = ")
            .text(name);
        self.load_apps().await?;
        let mut tx = self.db.begin().await?;
        let changed = tx.execute(sql).await?;
        if changed > 0 {
            tx.execute(audit.row(self.db.dialect(), name)).await?;
        }
        tx.commit().await?;
        self.apps.remove(name);
        self.revise();
        if changed == 0 {
            return Err(KernelError::NotFound(format!("app token '{name}'")));
        }
        tracing::info!(app = %name, by, "app token revoked");
        Ok(())
    }

    /// Authenticates a signed request: the caller is the named user, acting through the
    /// app, with the user's grants narrowed to the token's scopes. Refused (401) when the
    /// app is unknown or revoked, the timestamp is outside the window, the signature does
    /// not match, the user is unknown, or the same signature was already used.
    pub async fn signed(&self, req: &SignedRequest<'_>) -> Result<Caller> {
        let now = self.now_ms();
        // Looked up now, used only once the signature is checked: until then an unknown app
        // goes through exactly the steps a known one does.
        let app = self.app(req.app).await?;
        let ts: i64 = req
            .timestamp
            .trim()
            .parse()
            .map_err(|_| refused("X-Erpos-Timestamp must be unix seconds"))?;
        if (now / 1000 - ts).abs() > WINDOW_S {
            return Err(refused(&format!(
                "the timestamp is more than {WINDOW_S} s from the server's clock"
            )));
        }
        let sent = unhex(req.signature.trim()).ok_or_else(|| refused(BAD_SIGNATURE))?;
        let mut text = string_to_sign(
            req.timestamp,
            req.user,
            req.method,
            req.path_and_query,
            req.body,
        );
        if let Some(nonce) = req.nonce {
            if !valid_nonce(nonce) {
                return Err(refused(
                    "X-Erpos-Nonce must be 1 to 64 visible ASCII characters",
                ));
            }
            text = with_nonce(text, nonce);
        }
        // An unknown app's signature is checked against a decoy secret of the same length,
        // so that both answers cost the same.
        let secret = app
            .as_ref()
            .map_or(self.decoy_app_secret.as_str(), |a| a.secret.as_str());
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .map_err(|_| refused(BAD_SIGNATURE))?;
        mac.update(text.as_bytes());
        // Constant time.
        let verified = mac.verify_slice(&sent).is_ok();
        let app = match app {
            Some(app) if verified => app,
            Some(app) => {
                tracing::info!(app = %app.name, "app signature refused: the signature does not match");
                return Err(refused(BAD_SIGNATURE));
            }
            None => {
                tracing::info!(app = %req.app.chars().take(64).collect::<String>(), "app signature refused: no live app token of that name");
                return Err(refused(BAD_SIGNATURE));
            }
        };
        let Some(_) = self.roles_of(req.user).await? else {
            return Err(refused("unknown user"));
        };
        self.use_signature(&app.name, &super::hex(&sent), ts * 1000, now)
            .await?;
        let grants = self.grants_of(req.user).await?;
        Ok(Caller {
            user: req.user.to_owned(),
            kind: CallerKind::App {
                app: app.name.clone(),
                services: app.services.clone(),
            },
            grants: Arc::new(restrict(&grants, &app.scopes)),
            standing: self.standing_of(req.user).await?,
        })
    }

    /// The caller an app token acting for `user` is now (its scopes over the user's
    /// current grants), or `None` once the token is revoked or the user gone: a long-lived
    /// connection opened with a signature checks itself again with it.
    pub async fn app_caller(&self, app: &str, user: &str) -> Result<Option<Caller>> {
        let Some(app) = self.app(app).await? else {
            return Ok(None);
        };
        if self.roles_of(user).await?.is_none() {
            return Ok(None);
        }
        let grants = self.grants_of(user).await?;
        Ok(Some(Caller {
            user: user.to_owned(),
            kind: CallerKind::App {
                app: app.name.clone(),
                services: app.services.clone(),
            },
            grants: Arc::new(restrict(&grants, &app.scopes)),
            standing: self.standing_of(user).await?,
        }))
    }

    /// Records a signature as used; refuses one used before. Signatures whose timestamp
    /// left the window are pruned now and then (they are refused by their timestamp).
    async fn use_signature(&self, app: &str, signature: &str, at_ms: i64, now: i64) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now - last > 60_000 {
            let mut prune = tx.sql();
            prune
                .push("DELETE FROM app_signatures WHERE at_ms < ")
                .int(now - 2 * WINDOW_S * 1000);
            tx.execute(prune).await?;
            self.last_prune_ms.store(now, Ordering::Relaxed);
        }
        let mut sql = tx.sql();
        sql.push("INSERT INTO app_signatures (app, signature, at_ms) VALUES (")
            .text(app)
            .push(", ")
            .text(signature)
            .push(", ")
            .int(at_ms)
            .push(") ON CONFLICT (app, signature) DO NOTHING");
        if tx.execute(sql).await? == 0 {
            tracing::warn!(app, "replayed app signature refused");
            return Err(refused("this signed request was already used"));
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_is_timestamp_user_method_path_and_body_digest() {
        let text = string_to_sign(
            "1795856400",
            "xiaoli",
            "POST",
            "/api/v1/records/leave?x=1",
            b"{}",
        );
        assert_eq!(
            text,
            "1795856400\nxiaoli\nPOST\n/api/v1/records/leave?x=1\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let sig = sign("s3cret", &text);
        assert_eq!(sig.len(), 64);
        assert_eq!(unhex(&sig).map(|b| b.len()), Some(32));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn the_readme_example_signs_as_documented() {
        let text = string_to_sign(
            "1795856400",
            "xiaoli",
            "POST",
            "/api/v1/records/leave",
            br#"{"days":3}"#,
        );
        assert_eq!(
            text,
            "1795856400\nxiaoli\nPOST\n/api/v1/records/leave\n\
             7ba9aa5c370eb3f549174c6673b04e54248b183a6ed20e351a1c42be967f6ce8"
        );
        assert_eq!(
            sign("Qx3v9-example-secret-shown-once-at-creation", &text),
            "8f9424e7b932c11101eef721e94558288dd416e8da4a9adf9918a5c41824c36d"
        );
    }
}
