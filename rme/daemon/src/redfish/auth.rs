// SPDX-License-Identifier: GPL-2.0

//! Accounts, roles and sessions. Accounts come from a file the cloud
//! provisions (`user:role:password` lines) and are managed through the
//! AccountService from then on. With a store (`--redfish-state`), as a
//! BMC keeps its users on its flash, the accounts live in that file and
//! survive a restart: the provisioned file only seeds it; without one,
//! they live in memory and a restart returns to the provisioned file.
//! The three predefined Redfish roles carry the standard privileges of
//! DSP8011's registry. Passwords are kept as salted SHA-256 digests;
//! passwords and tokens are compared as digests in constant time, so
//! neither their content nor their length leaks through timing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// The password as [`password_digest`] of it with `salt`.
    salt: [u8; 16],
    pw_digest: [u8; 32],
}

impl Account {
    /// An account whose password is `password`, with a fresh salt.
    fn new(id: usize, user: &str, role: Role, enabled: bool, password: &str) -> Self {
        let salt = random_bytes();
        Self {
            id,
            user: user.to_string(),
            role,
            enabled,
            salt,
            pw_digest: password_digest(&salt, password),
        }
    }
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
    /// The store could not keep the change, which was not made.
    Storage(String),
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

/// SHA-256 of `salt` and then `password`. Not a slow hash: the service
/// checks it on every Basic request, in an RME that may run under TCG,
/// and the store sits beside the provisioned file of clear passwords.
fn password_digest(salt: &[u8; 16], password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&SHA256);
    ctx.update(salt);
    ctx.update(password.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
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
        out.push(Account::new(out.len() + 1, user, role, true, pw));
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
    /// The file the accounts are kept in, if any.
    store: Option<PathBuf>,
}

impl AccountTable {
    /// Makes `list` the accounts, and `next_id` the next id. With a store
    /// the file is written first, so a change it cannot keep is not made.
    fn commit(&mut self, list: Vec<Account>, next_id: usize) -> Result<(), AccountError> {
        if let Some(path) = &self.store {
            write_store(path, &list, next_id).map_err(AccountError::Storage)?;
        }
        self.list = list;
        self.next_id = next_id;
        Ok(())
    }

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
                store: None,
            }),
            sessions: Mutex::new(SessionTable {
                by_id: BTreeMap::new(),
                next: 1,
                timeout: Duration::from_secs(1800),
            }),
        }
    }

    /// Accounts kept in the file `path` across restarts: read from it if
    /// it exists (`seed`, the provisioned accounts, is then not used),
    /// otherwise `seed`, written there at once. A file that cannot be
    /// read is an error: the service does not start on other accounts
    /// than the ones it was left with.
    pub fn persistent(seed: Vec<Account>, path: &Path) -> Result<Self, String> {
        let (list, next_id) = match std::fs::read_to_string(path) {
            Ok(text) => read_store(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let next_id = seed.iter().map(|a| a.id).max().unwrap_or(0) + 1;
                write_store(path, &seed, next_id)?;
                (seed, next_id)
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let auth = Self::new(list);
        {
            let mut t = auth.account_table();
            t.next_id = next_id;
            t.store = Some(path.to_path_buf());
        }
        Ok(auth)
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
        let mut list = t.list.clone();
        list.push(Account::new(id, user, role, enabled, password));
        t.commit(list, id + 1)?;
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
        let mut list = t.list.clone();
        let a = list
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(AccountError::NotFound)?;
        if let Some(user) = change.user {
            a.user = user;
        }
        if let Some(role) = change.role {
            a.role = role;
        }
        if let Some(pw) = change.password {
            a.salt = random_bytes();
            a.pw_digest = password_digest(&a.salt, &pw);
        }
        if let Some(enabled) = change.enabled {
            a.enabled = enabled;
        }
        let disabled = !a.enabled;
        let next_id = t.next_id;
        t.commit(list, next_id)?;
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
        let list = t.list.iter().filter(|a| a.id != id).cloned().collect();
        let next_id = t.next_id;
        t.commit(list, next_id)?;
        drop(t);
        self.table().by_id.retain(|_, s| s.account != id);
        Ok(())
    }

    /// Checks a user name and password; every account is compared, so
    /// the time does not tell which user names exist.
    pub fn check_password(&self, user: &str, password: &str) -> Option<Principal> {
        let u = sha256(user.as_bytes());
        let mut found = None;
        for a in self.account_table().list.iter() {
            let pw = password_digest(&a.salt, password);
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

/// The store's format: JSON, one document.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    /// The format's version: 1.
    version: u32,
    /// The id the next account takes: ids are not reused.
    next_id: usize,
    accounts: Vec<StoredAccount>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAccount {
    id: usize,
    user: String,
    role: String,
    enabled: bool,
    /// Hex.
    salt: String,
    /// Hex: [`password_digest`] of the password with `salt`.
    sha256: String,
}

const STORE_VERSION: u32 = 1;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads a store: its accounts and next id, each checked as the service
/// would have written it.
fn read_store(text: &str) -> Result<(Vec<Account>, usize), String> {
    let s: Stored = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if s.version != STORE_VERSION {
        return Err(format!(
            "version {} (this service writes {STORE_VERSION})",
            s.version
        ));
    }
    let mut list: Vec<Account> = Vec::new();
    for a in s.accounts {
        let bad = |why: &str| format!("account {}: {why}", a.id);
        if a.id == 0 || a.id >= s.next_id || list.iter().any(|b| b.id == a.id) {
            return Err(bad("id out of range or given twice"));
        }
        if a.user.is_empty()
            || a.user.contains(':')
            || a.user.chars().any(char::is_control)
            || list.iter().any(|b| b.user == a.user)
        {
            return Err(bad("bad or repeated user name"));
        }
        list.push(Account {
            id: a.id,
            role: Role::parse(&a.role).ok_or_else(|| bad("unknown role"))?,
            enabled: a.enabled,
            salt: unhex(&a.salt).ok_or_else(|| bad("salt is not 16 bytes of hex"))?,
            pw_digest: unhex(&a.sha256).ok_or_else(|| bad("sha256 is not 32 bytes of hex"))?,
            user: a.user,
        });
    }
    list.sort_by_key(|a| a.id);
    Ok((list, s.next_id))
}

/// Writes a store in place of `path` at once: a temporary file (mode
/// 0600: it holds password digests) synced and renamed over it, so a
/// crash leaves the old file or the new one.
fn write_store(path: &Path, list: &[Account], next_id: usize) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let stored = Stored {
        version: STORE_VERSION,
        next_id,
        accounts: list
            .iter()
            .map(|a| StoredAccount {
                id: a.id,
                user: a.user.clone(),
                role: a.role.name().into(),
                enabled: a.enabled,
                salt: hex(&a.salt),
                sha256: hex(&a.pw_digest),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&stored).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("writing {}: {e}", path.display()));
    }
    // The rename is durable once the directory is.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
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
    fn a_store_keeps_the_accounts_across_restarts() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("bmgnic-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.json");
        let _ = std::fs::remove_file(&path);
        let seed = || parse_accounts("admin:Administrator:a:b:c\nop:Operator:op1\n").unwrap();
        let a = Auth::persistent(seed(), &path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let gone = a
            .create("ironic", Role::Operator, "conductor-pw1", true)
            .unwrap();
        let new_password = AccountChange {
            password: Some("new-op-pw1".into()),
            ..Default::default()
        };
        a.update(2, new_password, |_| true).unwrap();
        a.remove(gone).unwrap();
        let kept = a
            .create("metal3", Role::ReadOnly, "metal3-pw1", true)
            .unwrap();
        drop(a);
        // The restart reads the store: the provisioned passwords are past.
        let b = Auth::persistent(seed(), &path).unwrap();
        assert!(b.check_password("op", "op1").is_none());
        assert_eq!(b.check_password("op", "new-op-pw1").unwrap().account, 2);
        assert!(b.check_password("ironic", "conductor-pw1").is_none());
        assert_eq!(
            b.check_password("metal3", "metal3-pw1").unwrap().account,
            kept
        );
        // Ids are not reused across a restart either.
        assert!(
            b.create("next", Role::ReadOnly, "next-pw-12", true)
                .unwrap()
                > kept
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("new-op-pw1") && !text.contains("a:b:c"));
        // A store it cannot read stops the service rather than reverting.
        std::fs::write(&path, "{").unwrap();
        assert!(Auth::persistent(seed(), &path).is_err());
        std::fs::write(&path, text.replace("\"Operator\"", "\"Root\"")).unwrap();
        assert!(Auth::persistent(seed(), &path).is_err());
        // A change the store cannot keep is not made.
        std::fs::write(&path, &text).unwrap();
        let c = Auth::persistent(seed(), &path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            c.create("late", Role::ReadOnly, "late-pw-123", true),
            Err(AccountError::Storage(_))
        ));
        assert!(c.accounts().iter().all(|a| a.user != "late"));
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
