// SPDX-License-Identifier: GPL-2.0

//! Accounts, roles and sessions. Accounts come from a file the cloud
//! provisions (`user:role:password` lines); the three predefined Redfish
//! roles carry the standard privileges of DSP8011's registry. Passwords
//! and tokens are compared as SHA-256 digests in constant time, so
//! neither their content nor their length leaks through timing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    Login,
    ConfigureComponents,
    ConfigureManager,
    ConfigureUsers,
    ConfigureSelf,
}

impl Privilege {
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "Login",
            Self::ConfigureComponents => "ConfigureComponents",
            Self::ConfigureManager => "ConfigureManager",
            Self::ConfigureUsers => "ConfigureUsers",
            Self::ConfigureSelf => "ConfigureSelf",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Administrator,
    Operator,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Administrator, Role::Operator, Role::ReadOnly];

    pub fn name(self) -> &'static str {
        match self {
            Self::Administrator => "Administrator",
            Self::Operator => "Operator",
            Self::ReadOnly => "ReadOnly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The standard privileges of the predefined roles.
    pub fn privileges(self) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            Self::Administrator => &[
                Login,
                ConfigureManager,
                ConfigureUsers,
                ConfigureComponents,
                ConfigureSelf,
            ],
            Self::Operator => &[Login, ConfigureComponents, ConfigureSelf],
            Self::ReadOnly => &[Login, ConfigureSelf],
        }
    }

    pub fn has(self, p: Privilege) -> bool {
        self.privileges().contains(&p)
    }
}

pub struct Account {
    /// The account's resource id: its line's rank in the file, from 1.
    pub id: usize,
    pub user: String,
    pub role: Role,
    pw_digest: [u8; 32],
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b).as_ref());
    out
}

/// Parses an accounts file: `user:role:password` per line (the password
/// may hold colons); blank lines and `#` comments are skipped.
pub fn parse_accounts(text: &str) -> Result<Vec<Account>, String> {
    let mut out: Vec<Account> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut f = line.splitn(3, ':');
        let (Some(user), Some(role), Some(pw)) = (f.next(), f.next(), f.next()) else {
            return Err(format!("line {}: expected user:role:password", n + 1));
        };
        let role = Role::parse(role).ok_or_else(|| {
            format!(
                "line {}: role must be Administrator, Operator or ReadOnly",
                n + 1
            )
        })?;
        if user.is_empty() || pw.is_empty() {
            return Err(format!("line {}: empty user or password", n + 1));
        }
        if out.iter().any(|a| a.user == user) {
            return Err(format!("line {}: {user} given twice", n + 1));
        }
        out.push(Account {
            id: out.len() + 1,
            user: user.to_string(),
            role,
            pw_digest: sha256(pw.as_bytes()),
        });
    }
    Ok(out)
}

pub struct Session {
    pub id: String,
    /// Index into the accounts.
    pub account: usize,
    token_digest: [u8; 32],
    last_used: Instant,
}

/// Who a request is: an account, and the session it came with if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account: usize,
    pub user: String,
    pub role: Role,
    pub session: Option<String>,
}

impl Principal {
    pub fn has(&self, p: Privilege) -> bool {
        self.role.has(p)
    }
}

pub struct Auth {
    pub accounts: Vec<Account>,
    sessions: Mutex<SessionTable>,
}

struct SessionTable {
    by_id: BTreeMap<String, Session>,
    next: u64,
    timeout: Duration,
}

/// SessionService.SessionTimeout bounds, seconds (the schema's).
pub const TIMEOUT_MIN: u64 = 30;
pub const TIMEOUT_MAX: u64 = 86400;

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    // The system RNG failing is not something a request can cause.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        log::error!("the system RNG failed");
    }
    b
}

/// A fresh random UUID (version 4).
pub fn random_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Auth {
    pub fn new(accounts: Vec<Account>) -> Self {
        Self {
            accounts,
            sessions: Mutex::new(SessionTable {
                by_id: BTreeMap::new(),
                next: 1,
                timeout: Duration::from_secs(1800),
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, SessionTable> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn principal(&self, account: usize, session: Option<String>) -> Option<Principal> {
        let a = self.accounts.get(account)?;
        Some(Principal {
            account,
            user: a.user.clone(),
            role: a.role,
            session,
        })
    }

    /// Checks a user name and password; every account is compared, so
    /// the time does not tell which user names exist.
    pub fn check_password(&self, user: &str, password: &str) -> Option<Principal> {
        let pw = sha256(password.as_bytes());
        let u = sha256(user.as_bytes());
        let mut found = None;
        for (i, a) in self.accounts.iter().enumerate() {
            let ok = sha256(a.user.as_bytes()).ct_eq(&u) & a.pw_digest.ct_eq(&pw);
            if bool::from(ok) {
                found = Some(i);
            }
        }
        self.principal(found?, None)
    }

    /// An `Authorization: Basic ...` header's principal.
    pub fn basic(&self, header: &str) -> Option<Principal> {
        let (scheme, b64) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pw) = text.split_once(':')?;
        self.check_password(user, pw)
    }

    pub fn timeout(&self) -> Duration {
        self.table().timeout
    }

    pub fn set_timeout(&self, secs: u64) {
        self.table().timeout = Duration::from_secs(secs);
    }

    /// Opens a session: (its id, its token).
    pub fn login(&self, p: &Principal) -> (String, String) {
        let token: String = random_bytes::<24>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut t = self.table();
        let id = t.next.to_string();
        t.next += 1;
        t.by_id.insert(
            id.clone(),
            Session {
                id: id.clone(),
                account: p.account,
                token_digest: sha256(token.as_bytes()),
                last_used: Instant::now(),
            },
        );
        (id, token)
    }

    /// The principal of an `X-Auth-Token`; a session idle longer than the
    /// timeout is gone, and each use restarts its clock.
    pub fn token(&self, token: &str) -> Option<Principal> {
        let d = sha256(token.as_bytes());
        let mut t = self.table();
        let timeout = t.timeout;
        t.by_id.retain(|_, s| s.last_used.elapsed() <= timeout);
        let mut found = None;
        for s in t.by_id.values_mut() {
            if bool::from(s.token_digest.ct_eq(&d)) {
                s.last_used = Instant::now();
                found = Some((s.account, s.id.clone()));
            }
        }
        drop(t);
        let (account, id) = found?;
        self.principal(account, Some(id))
    }

    /// The live sessions: (id, account index).
    pub fn sessions(&self) -> Vec<(String, usize)> {
        let mut t = self.table();
        let timeout = t.timeout;
        t.by_id.retain(|_, s| s.last_used.elapsed() <= timeout);
        t.by_id
            .values()
            .map(|s| (s.id.clone(), s.account))
            .collect()
    }

    pub fn logout(&self, id: &str) -> bool {
        self.table().by_id.remove(id).is_some()
    }

    #[cfg(test)]
    pub fn age_sessions(&self, by: Duration) {
        for s in self.table().by_id.values_mut() {
            s.last_used = s.last_used.checked_sub(by).unwrap_or(s.last_used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            parse_accounts(
                "# test\nadmin:Administrator:a:b:c\nop:Operator:op1\n\nro:ReadOnly:ro1\n",
            )
            .unwrap(),
        )
    }

    #[test]
    fn accounts_file() {
        let a = auth();
        assert_eq!(a.accounts.len(), 3);
        assert_eq!(a.accounts[2].id, 3);
        assert!(parse_accounts("x:Root:pw").is_err());
        assert!(parse_accounts("x:ReadOnly").is_err());
        assert!(parse_accounts("x:ReadOnly:1\nx:ReadOnly:2").is_err());
    }

    #[test]
    fn passwords_and_basic() {
        let a = auth();
        assert_eq!(
            a.check_password("admin", "a:b:c").unwrap().role,
            Role::Administrator
        );
        assert!(a.check_password("admin", "a:b").is_none());
        assert!(a.check_password("nobody", "a:b:c").is_none());
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("op:op1")
        );
        assert_eq!(a.basic(&h).unwrap().role, Role::Operator);
        assert!(a.basic("Basic !!!").is_none());
        assert!(a.basic("Bearer x").is_none());
    }

    #[test]
    fn roles_have_the_standard_privileges() {
        assert!(Role::ReadOnly.has(Privilege::Login));
        assert!(!Role::ReadOnly.has(Privilege::ConfigureComponents));
        assert!(Role::Operator.has(Privilege::ConfigureComponents));
        assert!(!Role::Operator.has(Privilege::ConfigureManager));
        assert!(Role::Administrator.has(Privilege::ConfigureUsers));
    }

    #[test]
    fn sessions_log_in_out_and_time_out() {
        let a = auth();
        let p = a.check_password("ro", "ro1").unwrap();
        let (id, tok) = a.login(&p);
        assert_eq!(a.token(&tok).unwrap().session.as_deref(), Some(id.as_str()));
        assert!(a.token("nope").is_none());
        assert!(a.logout(&id));
        assert!(a.token(&tok).is_none());
        let (_, tok) = a.login(&p);
        a.set_timeout(TIMEOUT_MIN);
        a.age_sessions(Duration::from_secs(TIMEOUT_MIN + 1));
        assert!(a.token(&tok).is_none());
        assert!(a.sessions().is_empty());
    }
}
