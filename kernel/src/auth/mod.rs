//! Authentication: who a request comes from. Passwords (argon2id), login sessions (bearer
//! tokens kept only as their SHA-256), the bootstrap token, app tokens (HMAC-signed
//! requests with anti-replay, in `apps`), login throttling (per address and account, in
//! `throttle`), and the grants a user's roles give them. Whoever holds a caller for long
//! (a WebSocket) watches `revisions` to learn when credentials or grants changed.
//!
//! This module decides who someone is and which grants they hold; what a grant allows is
//! `caller`'s business. It must never log, store or return a password or a bearer token
//! (only their hashes are stored), never show an app token's secret after it is created,
//! never tell a caller whether a user name exists, and never read the system clock (only
//! the kernel's `Clock`, so tests can move time).

pub mod apps;
pub mod throttle;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use dashmap::DashMap;
use erpos_design::Issue;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::caller::Caller;
use crate::clock::Clock;
use crate::db::Db;
use crate::error::{KernelError, Result};
use crate::sql::Sql;
use crate::store::Select;

/// How long a session lasts: a fixed 12 hours from login (not sliding: a stolen token
/// stops working at a known time whatever its use; a person logs in again each day).
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes (hashing is deliberately costly; a megabyte
/// "password" must not become a denial of service).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins in a row for one user name from one client address after which that
/// pair is refused for a while (see `throttle` for the whole policy).
pub const MAX_FAILURES: u32 = throttle::PAIR_MAX_FAILURES;
/// How long a user name stays locked, from that address, after `MAX_FAILURES` failures
/// (each further failure while locked is not even checked).
pub const LOCKOUT_MS: i64 = throttle::LOCKOUT_MS;
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

/// What a stored role gives: its grants (a role stored without any gives none).
#[derive(serde::Deserialize)]
struct StoredPermissions {
    #[serde(default)]
    permissions: Vec<String>,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    expires_ms: i64,
}

/// Authentication state of a node: the bootstrap token's digest, caches of sessions, app
/// tokens and users' grants (the database is the truth; caches are dropped on change), and
/// the login throttle (in memory: a restart forgets it, which only shortens a lockout).
pub struct Auth {
    db: Db,
    clock: Arc<dyn Clock>,
    bootstrap: RwLock<Option<[u8; 32]>>,
    sessions: DashMap<String, Session>,
    grants: DashMap<String, Arc<BTreeSet<String>>>,
    /// Per user, where they stand (roles, departments covered), cached like `grants` and
    /// also forgotten when a department changes.
    standings: DashMap<String, Arc<crate::caller::Standing>>,
    throttle: throttle::Throttle,
    apps: DashMap<String, Arc<apps::AppToken>>,
    /// Bumped whenever a credential may have stopped working or grants changed (a logout,
    /// a password change, a user's or a role's change, a revoked app token): open
    /// WebSockets watch it and check their caller again.
    revision: tokio::sync::watch::Sender<u64>,
    /// Held while an organisation change is checked and stored (`organisation`).
    organisation: tokio::sync::Mutex<()>,
    /// Set once every live app token is in `apps` (see `apps::load_apps`).
    apps_loaded: tokio::sync::OnceCell<()>,
    /// The secret an unknown app's signature is checked against (random per node, never
    /// valid): an unknown app costs what a bad signature does.
    decoy_app_secret: String,
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
            standings: DashMap::new(),
            throttle: throttle::Throttle::default(),
            apps: DashMap::new(),
            revision: tokio::sync::watch::Sender::new(0),
            organisation: tokio::sync::Mutex::new(()),
            apps_loaded: tokio::sync::OnceCell::new(),
            // A fixed fallback would be as good: no app token can be named by nobody.
            decoy_app_secret: random_token().unwrap_or_else(|_| "decoy".repeat(9)),
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
        self.revise();
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
        let standing = self.standing_of(&user).await?;
        Ok(Some(Caller::user(&user, grants, standing)))
    }

    /// A receiver that sees a new value whenever a credential may have ended or grants
    /// changed: whoever holds a `Caller` for long (a WebSocket) checks it again then.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Tells every `revisions` watcher that credentials or grants changed.
    fn revise(&self) {
        self.revision.send_modify(|r| *r = r.wrapping_add(1));
    }

    /// The user of the session with this token hash, when it is open.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(self.session(token_hash).await?.map(|(user, _)| user))
    }

    /// The user of the session with this token hash and when it ends (ms since the
    /// epoch), when it is open.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(String, i64)>> {
        let now = self.now_ms();
        let cached = self.sessions.get(token_hash).map(|s| s.clone());
        let session = match cached {
            Some(s) => Some(s),
            None => {
                // The token hash is never put in an error: the row is named by its user.
                let mut select =
                    Select::from(self.db.dialect(), "sessions", &["user_id", "expires_ms"])
                        .keyed("user_id");
                select.sql().push(" WHERE token_hash = ").text(token_hash);
                let found = match select.fetch_one(&self.db).await? {
                    Some(r) => Some(Session {
                        user: r.text("user_id")?,
                        expires_ms: r.int("expires_ms")?,
                    }),
                    None => None,
                };
                if let Some(s) = &found {
                    self.sessions.insert(token_hash.to_owned(), s.clone());
                }
                found
            }
        };
        match session {
            Some(s) if s.expires_ms > now => Ok(Some((s.user, s.expires_ms))),
            Some(_) => {
                self.end_session(token_hash).await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Checks a user name and password, sent from client address `addr` (`None`: not
    /// known), and opens a session. A wrong user name and a wrong password get the same
    /// error (and take as long); guessing is throttled per address and per account
    /// (`throttle`), so that nobody can lock another person out.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<NewSession> {
        let now = self.now_ms();
        self.throttle.begin(user, addr, now, BAD_LOGIN)?;
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
            self.throttle.failed(user, addr, now);
            return Err(KernelError::Unauthorized(BAD_LOGIN.to_owned()));
        }
        self.throttle.succeeded(user, addr, now);
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
        let done = self.db.write_atomically(vec![sql]).await;
        self.revise();
        done
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
        let done = self.db.write_atomically(vec![sql]).await;
        self.revise();
        done
    }

    /// The stored PHC string of a user's password, if they have one.
    async fn password_hash(&self, user: &str) -> Result<Option<String>> {
        let mut select = Select::from(
            self.db.dialect(),
            "credentials",
            &["user_id", "password_hash"],
        )
        .keyed("user_id");
        select.sql().push(" WHERE user_id = ").text(user);
        match select.fetch_one(&self.db).await? {
            Some(r) => Ok(Some(r.text("password_hash")?)),
            None => Ok(None),
        }
    }

    /// Whether `password` is the user's current password (a user without one never
    /// matches), sent from `addr`. Counts as a login attempt: it is throttled like one.
    pub async fn check_password_of(
        &self,
        user: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<bool> {
        let now = self.now_ms();
        self.throttle.begin(user, addr, now, BAD_LOGIN)?;
        let ok = match self.password_hash(user).await? {
            Some(phc) => verify_password(password, &phc).await,
            None => false,
        };
        if ok {
            self.throttle.succeeded(user, addr, now);
        } else {
            self.throttle.failed(user, addr, now);
        }
        Ok(ok)
    }

    /// What the login throttle holds now (entries and the bytes of user names): bounded
    /// whatever is sent.
    pub fn throttle_footprint(&self) -> throttle::Footprint {
        self.throttle.footprint()
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

    /// Sets a user's password (already checked with `check_password`), with its audit row.
    pub async fn set_password(
        &self,
        user: &str,
        password: &str,
        audit: &crate::audit::Audit,
    ) -> Result<()> {
        let phc = hash_password(password).await?;
        self.db
            .write_atomically(vec![
                self.password_sql(user, &phc),
                audit.row(self.db.dialect(), user),
            ])
            .await
    }

    /// The roles a user holds, or `None` when there is no such user.
    pub async fn roles_of(&self, user: &str) -> Result<Option<BTreeSet<String>>> {
        // A definition that does not decode is an error naming the user, never a user
        // without roles.
        Ok(crate::store::organisation::operator(&self.db, user)
            .await?
            .map(|op| op.roles))
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

    /// Where a user stands: their roles, and their department with every department below
    /// it (for row visibility). Cached until the user, a role or a department changes.
    pub async fn standing_of(&self, user: &str) -> Result<Arc<crate::caller::Standing>> {
        if let Some(s) = self.standings.get(user) {
            return Ok(s.clone());
        }
        let operator = crate::store::organisation::operator(&self.db, user).await?;
        let mut standing = crate::caller::Standing::default();
        if let Some(op) = operator {
            standing.roles = op.roles;
            standing.branch = op.branch;
            if let Some(own) = op.department {
                let tree: Vec<(String, Option<String>)> =
                    crate::store::organisation::departments(&self.db)
                        .await?
                        .into_iter()
                        .filter_map(|d| d.value.ok().map(|l| (l.name, l.parent)))
                        .collect();
                standing.departments.insert(own);
                // Down the tree, one level at a time (a cycle cannot be stored, but the
                // walk stops anyway when a level adds nothing).
                loop {
                    let below: Vec<String> = tree
                        .iter()
                        .filter(|(name, parent)| {
                            parent
                                .as_ref()
                                .is_some_and(|p| standing.departments.contains(p))
                                && !standing.departments.contains(name)
                        })
                        .map(|(name, _)| name.clone())
                        .collect();
                    if below.is_empty() {
                        break;
                    }
                    standing.departments.extend(below);
                }
            }
        }
        let standing = Arc::new(standing);
        self.standings.insert(user.to_owned(), standing.clone());
        Ok(standing)
    }

    /// The union of the permissions of these roles (unknown roles give none).
    pub async fn permissions_of(&self, roles: &BTreeSet<String>) -> Result<BTreeSet<String>> {
        let mut grants = BTreeSet::new();
        if !roles.is_empty() {
            let mut select =
                Select::from(self.db.dialect(), "roles", &["name", "definition"]).keyed("name");
            let sql = select.sql();
            sql.push(" WHERE name IN (");
            for (i, r) in roles.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.text(r);
            }
            sql.push(")");
            for row in select.fetch(&self.db).await? {
                // A permission that is not a grant's text is an error naming the role,
                // never a grant silently dropped (nor one silently given).
                let role: StoredPermissions = row.json("definition")?;
                grants.extend(role.permissions);
            }
        }
        Ok(grants)
    }

    /// The lock an organisation change (a role's permissions, a user's roles, a department's
    /// leader) is checked and stored under: two changes cannot both see an administrator
    /// the other is removing. One node's; see the README on several nodes.
    pub async fn organisation_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.organisation.lock().await
    }

    /// Forgets a user's cached grants and standing (their roles or department changed).
    pub fn user_changed(&self, user: &str) {
        self.grants.remove(user);
        self.standings.remove(user);
        self.revise();
    }

    /// Forgets every user's cached grants and standing (a role's permissions changed).
    pub fn roles_changed(&self) {
        self.grants.clear();
        self.standings.clear();
        self.revise();
    }

    /// Forgets every user's cached standing (the department tree changed, and with it
    /// which records "my department" covers).
    pub fn departments_changed(&self) {
        self.standings.clear();
        self.revise();
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
