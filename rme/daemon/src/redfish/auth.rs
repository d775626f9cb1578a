// SPDX-License-Identifier: GPL-2.0

//! Accounts, roles and sessions. Accounts come from a file the cloud
//! provisions (`user:role:password` lines) and are managed through the
//! AccountService from then on, in memory: the file stays the baseline a
//! restart returns to. The three predefined Redfish roles carry the
//! standard privileges of DSP8011's registry. Passwords and tokens are
//! compared as SHA-256 digests in constant time, so neither their content
//! nor their length leaks through timing.

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

#[derive(Clone)]
pub struct Account {
    /// The account's resource id: its line's rank in the file, from 1;
    /// accounts made later take the next free number, never reused.
    pub id: usize,
    pub user: String,
    pub role: Role,
    /// A disabled account cannot log in.
    pub enabled: bool,
    pw_digest: [u8; 32],
}

/// The bounds on a password set through the service (the file's are the
/// provider's business).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 64;
/// The longest user name.
pub const USER_MAX: usize = 32;

/// Why an account change is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountError {
    /// No account has that id.
    NotFound,
    /// Another account has that user name.
    UserExists,
    /// The change would leave no enabled Administrator to manage the
    /// service.
    LastAdministrator,
    /// The user name is not one the accounts file could hold.
    BadUserName,
    /// The password is outside the bounds.
    BadPassword,
    /// The caller's precondition (its If-Match) does not hold.
    Precondition,
}

/// What a PATCH of an account changes.
#[derive(Debug, Default)]
pub struct AccountChange {
    pub user: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
    pub enabled: Option<bool>,
}

/// Whether `user` is a user name: printable ASCII without `:` (the
/// accounts file's separator) or white space, 1 to USER_MAX bytes.
pub fn user_name_ok(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= USER_MAX
        && user.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Whether `pw` is a password the service sets.
pub fn password_ok(pw: &str) -> bool {
    (PASSWORD_MIN..=PASSWORD_MAX).contains(&pw.chars().count()) && !pw.chars().any(char::is_control)
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
            enabled: true,
            pw_digest: sha256(pw.as_bytes()),
        });
    }
    Ok(out)
}

pub struct Session {
    pub id: String,
    /// The account's id.
    pub account: usize,
    token_digest: [u8; 32],
    last_used: Instant,
}

/// Who a request is: an account (its id), and the session it came with
/// if any.
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
    accounts: Mutex<AccountTable>,
    sessions: Mutex<SessionTable>,
}

struct AccountTable {
    list: Vec<Account>,
    next_id: usize,
}

impl AccountTable {
    fn find(&mut self, id: usize) -> Result<&mut Account, AccountError> {
        self.list
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(AccountError::NotFound)
    }

    fn user_taken(&self, user: &str, except: usize) -> bool {
        self.list.iter().any(|a| a.user == user && a.id != except)
    }

    /// Whether an enabled Administrator other than `except` is left.
    fn other_admin(&self, except: usize) -> bool {
        self.list
            .iter()
            .any(|a| a.id != except && a.enabled && a.role == Role::Administrator)
    }
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
        let next_id = accounts.iter().map(|a| a.id).max().unwrap_or(0) + 1;
        Self {
            accounts: Mutex::new(AccountTable {
                list: accounts,
                next_id,
            }),
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

    fn account_table(&self) -> std::sync::MutexGuard<'_, AccountTable> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal of account `id`, which must be enabled.
    fn principal(&self, id: usize, session: Option<String>) -> Option<Principal> {
        let t = self.account_table();
        let a = t.list.iter().find(|a| a.id == id && a.enabled)?;
        Some(Principal {
            account: id,
            user: a.user.clone(),
            role: a.role,
            session,
        })
    }

    /// Every account, in id order.
    pub fn accounts(&self) -> Vec<Account> {
        self.account_table().list.clone()
    }

    /// Account `id`.
    pub fn account(&self, id: usize) -> Option<Account> {
        self.account_table()
            .list
            .iter()
            .find(|a| a.id == id)
            .cloned()
    }

    /// Makes an account; returns its id.
    pub fn create(
        &self,
        user: &str,
        role: Role,
        password: &str,
        enabled: bool,
    ) -> Result<usize, AccountError> {
        if !user_name_ok(user) {
            return Err(AccountError::BadUserName);
        }
        if !password_ok(password) {
            return Err(AccountError::BadPassword);
        }
        let mut t = self.account_table();
        if t.user_taken(user, 0) {
            return Err(AccountError::UserExists);
        }
        let id = t.next_id;
        t.next_id += 1;
        t.list.push(Account {
            id,
            user: user.to_string(),
            role,
            enabled,
            pw_digest: sha256(password.as_bytes()),
        });
        Ok(id)
    }

    /// Changes account `id` if `precondition` holds for it: all of
    /// `change` or, on an error, nothing. The precondition is checked
    /// with the write, under the accounts' lock. A disabled account loses
    /// its sessions.
    pub fn update(
        &self,
        id: usize,
        change: AccountChange,
        precondition: impl FnOnce(&Account) -> bool,
    ) -> Result<(), AccountError> {
        let mut t = self.account_table();
        if !precondition(t.find(id)?) {
            return Err(AccountError::Precondition);
        }
        if let Some(user) = &change.user {
            if !user_name_ok(user) {
                return Err(AccountError::BadUserName);
            }
            if t.user_taken(user, id) {
                return Err(AccountError::UserExists);
            }
        }
        if let Some(pw) = &change.password {
            if !password_ok(pw) {
                return Err(AccountError::BadPassword);
            }
        }
        let a = t.find(id)?;
        let stays_admin = change.role.unwrap_or(a.role) == Role::Administrator
            && change.enabled.unwrap_or(a.enabled);
        let was_admin = a.role == Role::Administrator && a.enabled;
        if was_admin && !stays_admin && !t.other_admin(id) {
            return Err(AccountError::LastAdministrator);
        }
        let a = t.find(id)?;
        if let Some(user) = change.user {
            a.user = user;
        }
        if let Some(role) = change.role {
            a.role = role;
        }
        if let Some(pw) = change.password {
            a.pw_digest = sha256(pw.as_bytes());
        }
        if let Some(enabled) = change.enabled {
            a.enabled = enabled;
        }
        let disabled = !a.enabled;
        drop(t);
        if disabled {
            self.table().by_id.retain(|_, s| s.account != id);
        }
        Ok(())
    }

    /// Removes account `id` and its sessions.
    pub fn remove(&self, id: usize) -> Result<(), AccountError> {
        let mut t = self.account_table();
        let a = t.find(id)?;
        if a.role == Role::Administrator && a.enabled && !t.other_admin(id) {
            return Err(AccountError::LastAdministrator);
        }
        t.list.retain(|a| a.id != id);
        drop(t);
        self.table().by_id.retain(|_, s| s.account != id);
        Ok(())
    }

    /// Checks a user name and password; every account is compared, so
    /// the time does not tell which user names exist.
    pub fn check_password(&self, user: &str, password: &str) -> Option<Principal> {
        let pw = sha256(password.as_bytes());
        let u = sha256(user.as_bytes());
        let mut found = None;
        for a in self.account_table().list.iter() {
            let ok = sha256(a.user.as_bytes()).ct_eq(&u) & a.pw_digest.ct_eq(&pw);
            if bool::from(ok) {
                found = Some(a.id);
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

    /// The live sessions: (id, account id).
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
        assert_eq!(a.accounts().len(), 3);
        assert_eq!(a.accounts()[2].id, 3);
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
    fn accounts_are_managed() {
        let a = auth();
        assert_eq!(
            a.create("x:y", Role::ReadOnly, "password1", true),
            Err(AccountError::BadUserName)
        );
        assert_eq!(
            a.create("new", Role::ReadOnly, "short", true),
            Err(AccountError::BadPassword)
        );
        assert_eq!(
            a.create("op", Role::ReadOnly, "password1", true),
            Err(AccountError::UserExists)
        );
        let id = a.create("new", Role::Operator, "password1", true).unwrap();
        assert_eq!(id, 4);
        assert_eq!(a.check_password("new", "password1").unwrap().account, 4);
        let (_, tok) = a.login(&a.check_password("new", "password1").unwrap());
        // A refused change changes nothing.
        let bad = AccountChange {
            role: Some(Role::ReadOnly),
            password: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(a.update(id, bad, |_| true), Err(AccountError::BadPassword));
        assert_eq!(a.account(id).unwrap().role, Role::Operator);
        let change = AccountChange {
            password: Some("password2".into()),
            ..Default::default()
        };
        a.update(id, change, |_| true).unwrap();
        assert!(a.check_password("new", "password1").is_none());
        assert!(a.token(&tok).is_some());
        let disable = AccountChange {
            enabled: Some(false),
            ..Default::default()
        };
        a.update(id, disable, |_| true).unwrap();
        assert!(a.check_password("new", "password2").is_none());
        assert!(a.token(&tok).is_none());
        // The last Administrator stays.
        let demote = AccountChange {
            role: Some(Role::Operator),
            ..Default::default()
        };
        assert_eq!(
            a.update(1, demote, |_| true),
            Err(AccountError::LastAdministrator)
        );
        assert_eq!(a.remove(1), Err(AccountError::LastAdministrator));
        a.remove(id).unwrap();
        assert_eq!(a.remove(id), Err(AccountError::NotFound));
        // Ids are not reused.
        assert_eq!(a.create("new", Role::ReadOnly, "password1", true), Ok(5));
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
