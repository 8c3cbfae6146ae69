//! Authentication: who a request comes from. Passwords (argon2id), login sessions (bearer
//! tokens kept only as their SHA-256), the bootstrap token, app tokens (HMAC-signed
//! requests with anti-replay, in `apps`), and the grants a user's roles give them.
//!
//! This module decides who someone is and which grants they hold; what a grant allows is
//! `caller`'s business. It must never log, store or return a password or a bearer token
//! (only their hashes are stored), never show an app token's secret after it is created,
//! never tell a caller whether a user name exists, and never read the system clock (only
//! the kernel's `Clock`, so tests can move time).

pub mod apps;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use dashmap::DashMap;
use erpos_design::Issue;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::caller::Caller;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;

/// How long a session lasts: a fixed 12 hours from login (not sliding: a stolen token
/// stops working at a known time whatever its use; a person logs in again each day).
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes (hashing is deliberately costly; a megabyte
/// "password" must not become a denial of service).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins in a row for one user name after which attempts are refused for a while.
pub const MAX_FAILURES: u32 = 5;
/// How long a user name stays locked after `MAX_FAILURES` failures (each further failure
/// while locked is not even checked).
pub const LOCKOUT_MS: i64 = 60_000;
/// The one message for a wrong user name or a wrong password: a caller never learns which.
pub const BAD_LOGIN: &str = "the user name or the password is wrong";
/// The shortest bootstrap token accepted, in bytes.
pub const MIN_BOOTSTRAP_BYTES: usize = 16;

/// A session just opened: the bearer token is shown to the user once, here.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The bearer token (256 random bits, base64url).
    pub token: String,
    /// Who logged in.
    pub user: String,
    /// When it stops working (ms since the epoch).
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    expires_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: i64,
}

/// Authentication state of a node: the bootstrap token's digest, caches of sessions, app
/// tokens and users' grants (the database is the truth; caches are dropped on change), and
/// failed-login counters (in memory: a restart forgets them, which only shortens a lockout).
pub struct Auth {
    db: Db,
    clock: Arc<dyn Clock>,
    bootstrap: RwLock<Option<[u8; 32]>>,
    sessions: DashMap<String, Session>,
    grants: DashMap<String, Arc<BTreeSet<String>>>,
    failures: Mutex<HashMap<String, Failures>>,
    apps: DashMap<String, Arc<apps::AppToken>>,
    last_prune_ms: AtomicI64,
}

/// A new random secret: 256 bits from the operating system, base64url without padding.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| KernelError::Corrupt(format!("no random numbers from the OS: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The hex SHA-256 of `bytes` (the form tokens are stored and bodies are signed in).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid(path: &str, message: impl Into<String>) -> KernelError {
    KernelError::Invalid(vec![Issue::new(path, message)])
}

/// Checks a new password's length; the error names `path`.
pub fn check_password(password: &str, path: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid(
            path,
            format!("a password needs at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid(
            path,
            format!("a password may have at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// How many password hashes run at once: each takes 19 MiB and a core for tens of
/// milliseconds, so a flood of logins queues here instead of exhausting memory.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes) into a PHC
/// string carrying its own salt. Runs off the async threads.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| KernelError::Corrupt(format!("hashing a password failed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordHasher as _;
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| KernelError::Corrupt(format!("hashing a password failed: {e}")))
    })
    .await
    .map_err(|e| KernelError::Corrupt(format!("hashing a password failed: {e}")))?
}

/// A hash of a password nobody has, checked when the user is unknown so that a wrong user
/// name costs as long as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Qo1cBd5XWY0fLZl6p7jZ5uI0mG8F2nPqKzqJrhVbq1E";

/// Whether `password` matches the PHC string `phc`. Runs off the async threads.
pub async fn verify_password(password: &str, phc: &str) -> bool {
    let password = password.to_owned();
    let phc = phc.to_owned();
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordVerifier as _;
        argon2::PasswordHash::new(&phc).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

impl Auth {
    /// Authentication over `db`, on the kernel's clock.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            bootstrap: RwLock::new(None),
            sessions: DashMap::new(),
            grants: DashMap::new(),
            failures: Mutex::new(HashMap::new()),
            apps: DashMap::new(),
            last_prune_ms: AtomicI64::new(0),
        }
    }

    /// Now, on the kernel's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Sets (or clears) the bootstrap token. Only its SHA-256 is kept. Refused when shorter
    /// than `MIN_BOOTSTRAP_BYTES`: it opens everything.
    pub fn set_bootstrap_token(&self, token: Option<&str>) -> Result<()> {
        let digest = match token {
            Some(t) if t.len() < MIN_BOOTSTRAP_BYTES => {
                return Err(KernelError::Config(format!(
                    "the bootstrap token must have at least {MIN_BOOTSTRAP_BYTES} characters"
                )));
            }
            Some(t) => Some(Sha256::digest(t.as_bytes()).into()),
            None => None,
        };
        match self.bootstrap.write() {
            Ok(mut b) => *b = digest,
            Err(poisoned) => *poisoned.into_inner() = digest,
        }
        Ok(())
    }

    /// Whether `presented` is the bootstrap token, compared in constant time (their
    /// digests are; the digest of a guess tells nothing about the token).
    pub fn is_bootstrap(&self, presented: &str) -> bool {
        let stored = match self.bootstrap.read() {
            Ok(b) => *b,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let Some(stored) = stored else { return false };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&stored))
    }

    /// The caller a bearer token stands for: the bootstrap administrator, or the user of an
    /// open session. `None` when it is neither (unknown, expired or logged out).
    pub async fn bearer(&self, token: &str) -> Result<Option<Caller>> {
        if self.is_bootstrap(token) {
            return Ok(Some(Caller::bootstrap()));
        }
        let Some(user) = self.session_user(&sha256_hex(token.as_bytes())).await? else {
            return Ok(None);
        };
        let grants = self.grants_of(&user).await?;
        Ok(Some(Caller::user(&user, grants)))
    }

    /// The user of the session with this token hash, when it is open.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<String>> {
        let now = self.now_ms();
        let cached = self.sessions.get(token_hash).map(|s| s.clone());
        let session = match cached {
            Some(s) => Some(s),
            None => {
                let mut sql = Sql::new(self.db.dialect());
                sql.push("SELECT ")
                    .col_text("user_id")
                    .push(", ")
                    .col_text("expires_ms")
                    .push(" FROM sessions WHERE token_hash = ")
                    .text(token_hash);
                let found = self.db.fetch(sql).await?.into_iter().next().map(|r| {
                    let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    Session {
                        user: get(0),
                        expires_ms: get(1).parse().unwrap_or(0),
                    }
                });
                if let Some(s) = &found {
                    self.sessions.insert(token_hash.to_owned(), s.clone());
                }
                found
            }
        };
        match session {
            Some(s) if s.expires_ms > now => Ok(Some(s.user)),
            Some(_) => {
                self.end_session(token_hash).await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Checks a user name and password and opens a session. A wrong user name and a wrong
    /// password get the same error (and take as long); after `MAX_FAILURES` failures in a
    /// row a user name is refused for `LOCKOUT_MS` without checking.
    pub async fn login(&self, user: &str, password: &str) -> Result<NewSession> {
        let now = self.now_ms();
        self.check_lockout(user, now)?;
        let stored = self.password_hash(user).await?;
        let ok = match &stored {
            Some(phc) => verify_password(password, phc).await,
            None => {
                // Spend the same time as a real check: no user enumeration by timing.
                verify_password(password, DECOY_HASH).await;
                false
            }
        };
        if !ok {
            self.record_failure(user, now);
            return Err(KernelError::Unauthorized(BAD_LOGIN.to_owned()));
        }
        self.clear_failures(user);
        let token = random_token()?;
        let hash = sha256_hex(token.as_bytes());
        let expires_ms = now + SESSION_LIFETIME_MS;
        let mut sql = Sql::new(self.db.dialect());
        sql.push("INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES (")
            .text(&hash)
            .push(", ")
            .text(user)
            .push(", ")
            .int(now)
            .push(", ")
            .int(expires_ms)
            .push(")");
        // Sessions that ended long ago go in the same write (cheap, indexed).
        let mut prune = Sql::new(self.db.dialect());
        prune
            .push("DELETE FROM sessions WHERE expires_ms < ")
            .int(now);
        self.db.write_atomically(vec![prune, sql]).await?;
        self.sessions.retain(|_, s| s.expires_ms > now);
        self.sessions.insert(
            hash,
            Session {
                user: user.to_owned(),
                expires_ms,
            },
        );
        tracing::info!(user, "session opened");
        Ok(NewSession {
            token,
            user: user.to_owned(),
            expires_ms,
        })
    }

    /// Ends the session with this token hash (logout).
    pub async fn end_session(&self, token_hash: &str) -> Result<()> {
        self.sessions.remove(token_hash);
        let mut sql = Sql::new(self.db.dialect());
        sql.push("DELETE FROM sessions WHERE token_hash = ")
            .text(token_hash);
        self.db.write_atomically(vec![sql]).await
    }

    /// Ends every session of `user` except `keep` (after a password change).
    pub async fn end_sessions_of(&self, user: &str, keep: Option<&str>) -> Result<()> {
        self.sessions
            .retain(|hash, s| s.user != user || Some(hash.as_str()) == keep);
        let mut sql = Sql::new(self.db.dialect());
        sql.push("DELETE FROM sessions WHERE user_id = ").text(user);
        if let Some(keep) = keep {
            sql.push(" AND token_hash <> ").text(keep);
        }
        self.db.write_atomically(vec![sql]).await
    }

    fn check_lockout(&self, user: &str, now: i64) -> Result<()> {
        let failures = match self.failures.lock() {
            Ok(f) => f.get(user).copied(),
            Err(poisoned) => poisoned.into_inner().get(user).copied(),
        };
        match failures {
            Some(f) if f.count >= MAX_FAILURES && now - f.last_ms < LOCKOUT_MS => {
                Err(KernelError::TooManyAttempts {
                    retry_after_s: (LOCKOUT_MS - (now - f.last_ms) + 999) / 1000,
                })
            }
            _ => Ok(()),
        }
    }

    fn record_failure(&self, user: &str, now: i64) {
        let mut map = match self.failures.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Bounded: names nobody tried for a quarter of an hour are forgotten.
        if map.len() > 10_000 {
            map.retain(|_, f| now - f.last_ms < 15 * LOCKOUT_MS);
        }
        let entry = map.entry(user.to_owned()).or_insert(Failures {
            count: 0,
            last_ms: now,
        });
        if now - entry.last_ms >= 15 * LOCKOUT_MS {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last_ms = now;
        if entry.count >= MAX_FAILURES {
            tracing::warn!(user, failures = entry.count, "login locked for a while");
        }
    }

    fn clear_failures(&self, user: &str) {
        match self.failures.lock() {
            Ok(mut f) => f.remove(user),
            Err(poisoned) => poisoned.into_inner().remove(user),
        };
    }

    /// The stored PHC string of a user's password, if they have one.
    async fn password_hash(&self, user: &str) -> Result<Option<String>> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ")
            .col_text("password_hash")
            .push(" FROM credentials WHERE user_id = ")
            .text(user);
        Ok(self
            .db
            .fetch(sql)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Whether `password` is the user's current password (a user without one never
    /// matches). Counts as a login attempt: failures lock the name like failed logins.
    pub async fn check_password_of(&self, user: &str, password: &str) -> Result<bool> {
        let now = self.now_ms();
        self.check_lockout(user, now)?;
        let ok = match self.password_hash(user).await? {
            Some(phc) => verify_password(password, &phc).await,
            None => false,
        };
        if ok {
            self.clear_failures(user);
        } else {
            self.record_failure(user, now);
        }
        Ok(ok)
    }

    /// The statement that stores a user's password hash (or replaces it).
    pub fn password_sql(&self, user: &str, phc: &str) -> Sql {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("INSERT INTO credentials (user_id, password_hash, updated_ms) VALUES (")
            .text(user)
            .push(", ")
            .text(phc)
            .push(", ")
            .int(self.now_ms())
            .push(") ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_ms = excluded.updated_ms");
        sql
    }

    /// Sets a user's password (already checked with `check_password`).
    pub async fn set_password(&self, user: &str, password: &str) -> Result<()> {
        let phc = hash_password(password).await?;
        self.db
            .write_atomically(vec![self.password_sql(user, &phc)])
            .await
    }

    /// The roles a user holds, or `None` when there is no such user.
    pub async fn roles_of(&self, user: &str) -> Result<Option<BTreeSet<String>>> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ")
            .col_text("definition")
            .push(" FROM users WHERE id = ")
            .text(user);
        let Some(text) = self
            .db
            .fetch(sql)
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
        else {
            return Ok(None);
        };
        let def: Value = serde_json::from_str(&text)
            .map_err(|e| KernelError::Corrupt(format!("stored user '{user}': {e}")))?;
        Ok(Some(
            def.get("roles")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    /// A user's grants: the union of the `permissions` of the roles they hold (empty for an
    /// unknown user). Cached until the user or any role changes.
    pub async fn grants_of(&self, user: &str) -> Result<Arc<BTreeSet<String>>> {
        if let Some(g) = self.grants.get(user) {
            return Ok(g.clone());
        }
        let roles = self.roles_of(user).await?.unwrap_or_default();
        let grants = Arc::new(self.permissions_of(&roles).await?);
        self.grants.insert(user.to_owned(), grants.clone());
        Ok(grants)
    }

    /// The union of the permissions of these roles (unknown roles give none).
    pub async fn permissions_of(&self, roles: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        let mut grants = BTreeSet::new();
        if !roles.is_empty() {
            let mut sql = Sql::new(self.db.dialect());
            sql.push("SELECT ")
                .col_text("definition")
                .push(" FROM roles WHERE name IN (");
            for (i, r) in roles.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.text(r);
            }
            sql.push(")");
            for row in self.db.fetch(sql).await? {
                let Some(text) = row.into_iter().next().flatten() else {
                    continue;
                };
                let def: Value = serde_json::from_str(&text)
                    .map_err(|e| KernelError::Corrupt(format!("stored role: {e}")))?;
                if let Some(p) = def.get("permissions").and_then(Value::as_array) {
                    grants.extend(p.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
        }
        Ok(grants)
    }

    /// Forgets a user's cached grants (their roles changed).
    pub fn user_changed(&self, user: &str) {
        self.grants.remove(user);
    }

    /// Forgets every user's cached grants (a role's permissions changed).
    pub fn roles_changed(&self) {
        self.grants.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_to_salted_phc_strings_and_verify() -> Result<()> {
        let a = hash_password("correct horse").await?;
        let b = hash_password("correct horse").await?;
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse", &a).await);
        assert!(!verify_password("correct horsE", &a).await);
        assert!(!verify_password("anything", DECOY_HASH).await);
        // The decoy must be a well-formed hash with the default cost, or checking it would
        // be quick and betray unknown user names.
        let decoy = argon2::PasswordHash::new(DECOY_HASH)
            .map_err(|e| KernelError::Corrupt(e.to_string()))?;
        let real =
            argon2::PasswordHash::new(&a).map_err(|e| KernelError::Corrupt(e.to_string()))?;
        assert_eq!(decoy.params, real.params);
        assert_eq!(decoy.algorithm, real.algorithm);
        assert!(check_password("short", "/password").is_err());
        assert!(check_password("long enough", "/password").is_ok());
        Ok(())
    }

    #[test]
    fn tokens_are_256_bit_base64url() -> Result<()> {
        let t = random_token()?;
        assert_eq!(t.len(), 43);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, random_token()?);
        Ok(())
    }
}
