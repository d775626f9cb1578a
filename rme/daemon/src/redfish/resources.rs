// SPDX-License-Identifier: GPL-2.0

//! The resources: one dispatcher over (method, path), so that every
//! refusal (unknown path, wrong method, no session, no privilege, bad
//! body) is a Redfish error body with the status DSP0266 gives it, and
//! the tree's shape is visible in one place.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::auth::{
    Account, AccountChange, AccountError, Principal, Privilege, Role, PASSWORD_MAX, PASSWORD_MIN,
    TIMEOUT_MAX, TIMEOUT_MIN,
};
use super::errors::RfError;
use super::{hostlog, media, metadata, tasks, Service};
use crate::platform::{BootTarget, PlatformError, PlatformState, Power, Request as PReq};

/// The largest request body taken.
pub const BODY_LIMIT: usize = 64 * 1024;

const SYS: &str = "/redfish/v1/Systems/1";
const MGR: &str = "/redfish/v1/Managers/1";
const CHASSIS: &str = "/redfish/v1/Chassis/1";
const CD: &str = "/redfish/v1/Managers/1/VirtualMedia/Cd";
const LOG_SERVICES: &str = "/redfish/v1/Systems/1/LogServices";
const HOST_LOGGER: &str = "/redfish/v1/Systems/1/LogServices/HostLogger";
const HOST_LOG_ENTRIES: &str = "/redfish/v1/Systems/1/LogServices/HostLogger/Entries";
const CHECKPOINT_ACTION: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Checkpoint";
const RESTORE_ACTION: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Restore";
const DEPLOY_ACTION: &str = "/redfish/v1/Systems/1/Actions/Oem/BmgnicComputerSystem.Deploy";
const RESET_TYPES: [&str; 7] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "ForceRestart",
    "PowerCycle",
    "Pause",
    "Resume",
];
/// The boot targets the platform takes. Pxe boots through the board's
/// provisioning port (the BMGNIC has no boot ROM): offered only where the
/// board has one.
pub const BOOT_TARGETS: [&str; 4] = ["None", "Pxe", "Hdd", "Cd"];
const BOOT_ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
/// The boot modes: the platform's firmware is SeaBIOS, so Legacy only.
pub const BOOT_MODES: [&str; 1] = ["Legacy"];

/// The boot targets of a board in state `st`.
fn boot_targets(st: &PlatformState) -> Vec<&'static str> {
    BOOT_TARGETS
        .into_iter()
        .filter(|&t| t != "Pxe" || st.netboot.present)
        .collect()
}

/// The OData versions the service speaks (the `OData-Version` header).
const ODATA_VERSIONS: [&str; 1] = ["4.0"];
/// Where the JSON schemas the `Link: rel=describedby` header names live.
pub const SCHEMA_BASE: &str = "https://redfish.dmtf.org/schemas/v1";

/// What a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Res {
    Version,
    Root,
    OData,
    Metadata,
    Systems,
    System,
    SystemReset,
    /// The OEM actions of Documentation/bmgnic/migration.rst.
    SystemCheckpoint,
    SystemRestore,
    /// The RME's own virtual-media deploy (Documentation/bmgnic/redfish.rst).
    SystemDeploy,
    EthIfs,
    EthIf,
    /// The server's console, line by line (hostlog.rs).
    LogServices,
    HostLogger,
    HostLogEntries,
    HostLogEntry(u64),
    Storages,
    Storage,
    Drive,
    DriveErase,
    ChassisColl,
    Chassis,
    Managers,
    Manager,
    VirtualMedias,
    Cd,
    CdInsert,
    CdEject,
    SessionService,
    Sessions,
    /// `Sessions/Members`: POST creates a session as on the collection
    /// (DSP0266 lets a client POST to a collection's Members property).
    SessionsMembers,
    Session(String),
    AccountService,
    Accounts,
    Account(usize),
    Roles,
    Role(Role),
    TaskService,
    Tasks,
    Task(u32),
    TaskMonitor(u32),
}

impl Res {
    fn parse(path: &str, svc: &Service) -> Option<Res> {
        let p = path.trim_end_matches('/');
        let r = match p {
            "/redfish" => Res::Version,
            "/redfish/v1" => Res::Root,
            "/redfish/v1/odata" => Res::OData,
            "/redfish/v1/$metadata" => Res::Metadata,
            "/redfish/v1/Systems" => Res::Systems,
            SYS => Res::System,
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" => Res::SystemReset,
            CHECKPOINT_ACTION => Res::SystemCheckpoint,
            RESTORE_ACTION => Res::SystemRestore,
            DEPLOY_ACTION => Res::SystemDeploy,
            "/redfish/v1/Systems/1/EthernetInterfaces" => Res::EthIfs,
            LOG_SERVICES => Res::LogServices,
            HOST_LOGGER => Res::HostLogger,
            HOST_LOG_ENTRIES => Res::HostLogEntries,
            "/redfish/v1/Systems/1/EthernetInterfaces/1" => Res::EthIf,
            "/redfish/v1/Systems/1/Storage" => Res::Storages,
            "/redfish/v1/Systems/1/Storage/1" => Res::Storage,
            "/redfish/v1/Systems/1/Storage/1/Drives/1" => Res::Drive,
            "/redfish/v1/Systems/1/Storage/1/Drives/1/Actions/Drive.SecureErase" => Res::DriveErase,
            "/redfish/v1/Chassis" => Res::ChassisColl,
            CHASSIS => Res::Chassis,
            "/redfish/v1/Managers" => Res::Managers,
            MGR => Res::Manager,
            "/redfish/v1/Managers/1/VirtualMedia" => Res::VirtualMedias,
            CD => Res::Cd,
            "/redfish/v1/Managers/1/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia" => {
                Res::CdInsert
            }
            "/redfish/v1/Managers/1/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia" => {
                Res::CdEject
            }
            "/redfish/v1/SessionService" => Res::SessionService,
            "/redfish/v1/SessionService/Sessions" => Res::Sessions,
            "/redfish/v1/SessionService/Sessions/Members" => Res::SessionsMembers,
            "/redfish/v1/AccountService" => Res::AccountService,
            "/redfish/v1/AccountService/Accounts" => Res::Accounts,
            "/redfish/v1/AccountService/Roles" => Res::Roles,
            "/redfish/v1/TaskService" => Res::TaskService,
            "/redfish/v1/TaskService/Tasks" => Res::Tasks,
            _ => {
                for (prefix, monitor) in [
                    ("/redfish/v1/TaskService/Tasks/", false),
                    ("/redfish/v1/TaskService/TaskMonitors/", true),
                ] {
                    if let Some(id) = p.strip_prefix(prefix) {
                        let id: u32 = id.parse().ok()?;
                        svc.tasks().get(id)?;
                        return Some(if monitor {
                            Res::TaskMonitor(id)
                        } else {
                            Res::Task(id)
                        });
                    }
                }
                if let Some(n) = p
                    .strip_prefix(HOST_LOG_ENTRIES)
                    .and_then(|r| r.strip_prefix('/'))
                {
                    return n.parse().ok().map(Res::HostLogEntry);
                }
                if let Some(id) = p.strip_prefix("/redfish/v1/SessionService/Sessions/") {
                    return Some(Res::Session(id.to_string()));
                }
                if let Some(id) = p.strip_prefix("/redfish/v1/AccountService/Accounts/") {
                    let n: usize = id.parse().ok()?;
                    return svc.auth.account(n).map(|_| Res::Account(n));
                }
                if let Some(id) = p.strip_prefix("/redfish/v1/AccountService/Roles/") {
                    return Role::parse(id).map(Res::Role);
                }
                return None;
            }
        };
        Some(r)
    }

    fn public(&self, method: &Method) -> bool {
        match self {
            Res::Version | Res::Root | Res::OData | Res::Metadata => true,
            Res::Sessions | Res::SessionsMembers => method == Method::POST,
            _ => false,
        }
    }

    /// The methods the resource takes (HEAD goes with GET).
    fn allow(&self) -> &'static str {
        match self {
            Res::SystemReset
            | Res::SystemCheckpoint
            | Res::SystemRestore
            | Res::SystemDeploy
            | Res::DriveErase
            | Res::CdInsert
            | Res::CdEject
            | Res::SessionsMembers => "POST",
            Res::System | Res::SessionService => "GET, HEAD, PATCH",
            Res::Sessions | Res::Accounts => "GET, HEAD, POST",
            Res::Account(_) => "GET, HEAD, PATCH, DELETE",
            Res::Session(_) => "GET, HEAD, DELETE",
            _ => "GET, HEAD",
        }
    }
}

/// A strong ETag of a representation.
pub fn etag_of(v: &Value) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, v.to_string().as_bytes());
    let h: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{h}\"")
}

/// Whether an `If-Match` header lets a change to a resource whose ETag is
/// `current` go ahead. Weak and strong forms of the same tag both match
/// (sushy retries a weak tag as strong).
pub fn if_match_ok(headers: &HeaderMap, current: &str) -> bool {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return true;
    };
    v.to_str().is_ok_and(|v| tags_name(v, current))
}

/// Whether an `If-None-Match` header names `current` (weakly, as
/// RFC 9110 has it for GET) or is `*`.
pub fn if_none_match_hit(headers: &HeaderMap, current: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| tags_name(v, current))
}

/// Whether a list of entity tags is `*` or holds `current`, a weak tag
/// matching the strong one.
fn tags_name(list: &str, current: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(current))
}

/// The `Link` header of a representation: its JSON schema, named by its
/// `@odata.type` (`#Ns.vX_Y_Z.Type` gives `Ns.vX_Y_Z.json`, a
/// collection's `#Ns.Ns` gives `Ns.json`), `rel=describedby`
/// (DSP0266 "Link header"). None without a well-formed type.
pub fn describedby(v: &Value) -> Option<String> {
    let t = v.get("@odata.type")?.as_str()?.strip_prefix('#')?;
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let parts: Vec<&str> = t.split('.').collect();
    if !parts.iter().all(|w| word(w)) {
        return None;
    }
    let file = match parts.as_slice() {
        [ns, ver, _] if ver.starts_with('v') => format!("{ns}.{ver}"),
        [ns, ty] if ns == ty => ns.to_string(),
        _ => return None,
    };
    Some(format!("<{SCHEMA_BASE}/{file}.json>; rel=describedby"))
}

fn json_response(status: StatusCode, v: &Value, etag: bool) -> Response {
    let tag = etag.then(|| etag_of(v));
    let mut body = v.clone();
    if let (Some(tag), Value::Object(o)) = (&tag, &mut body) {
        // The payload carries the header's ETag too (DSP0266 "ETags").
        if o.contains_key("@odata.id") {
            o.insert("@odata.etag".into(), json!(tag));
        }
    }
    let mut r = (status, axum::Json(body)).into_response();
    if let Some(tag) = tag {
        if let Ok(h) = HeaderValue::from_str(&tag) {
            r.headers_mut().insert(header::ETAG, h);
        }
    }
    if let Some(l) = describedby(v).and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, l);
    }
    r
}

/// The first query parameter whose name starts with `$` (`%24` encoded
/// too): the service implements none of them (`$expand`, `$select`,
/// `$filter`, `$top`, `$skip`, ...), and DSP0266 has such a request
/// refused with 501. Other unknown parameters are ignored.
pub fn dollar_param(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|n| n.starts_with('$') || n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%24")))
        .map(|n| n.chars().take(64).collect())
}

/// Every `OData-Version` header of a request must name a version the
/// service speaks (4.0); another is 412 (DSP0266 "Request headers").
pub fn odata_version_ok(headers: &HeaderMap) -> Result<(), RfError> {
    for v in headers.get_all("OData-Version") {
        let s = v.to_str().unwrap_or("");
        if !ODATA_VERSIONS.contains(&s.trim()) {
            return Err(RfError::odata_version_unsupported(s));
        }
    }
    Ok(())
}

fn link(id: &str) -> Value {
    json!({ "@odata.id": id })
}

fn collection(id: &str, ty: &str, name: &str, members: &[String]) -> Value {
    let m: Vec<Value> = members.iter().map(|m| link(m)).collect();
    json!({
        "@odata.id": id,
        "@odata.type": format!("#{ty}.{ty}"),
        "Name": name,
        "Members": m,
        "Members@odata.count": m.len(),
    })
}

fn status_of(state: &PlatformState) -> Value {
    let enabled = if state.power == Power::Off {
        "StandbyOffline"
    } else {
        "Enabled"
    };
    json!({"State": enabled, "Health": "OK"})
}

fn power_name(p: Power) -> &'static str {
    match p {
        Power::On => "On",
        Power::Off => "Off",
        Power::Paused => "Paused",
    }
}

fn boot_target_name(t: BootTarget) -> &'static str {
    match t {
        BootTarget::None => "None",
        BootTarget::Hdd => "Hdd",
        BootTarget::Cd => "Cd",
        BootTarget::Pxe => "Pxe",
    }
}

/// The platform request a `ComputerSystem.Reset` asks for in a power
/// state; `Ok(None)` when the server is already there (a no-op success,
/// as OpenBMC answers), a conflict when it cannot apply.
pub fn reset_plan(reset: &str, power: Power) -> Result<Option<PReq>, RfError> {
    use Power::*;
    let conflict = |why: &str| Err(RfError::conflict(format!("{reset}: {why}")));
    match (reset, power) {
        ("On", Off) => Ok(Some(PReq::PowerOn)),
        ("On", On) => Ok(None),
        ("On", Paused) => conflict("the server is paused; use Resume"),
        ("ForceOff", Off) | ("GracefulShutdown", Off) => Ok(None),
        ("ForceOff", _) => Ok(Some(PReq::ForceOff)),
        ("GracefulShutdown", On) => Ok(Some(PReq::GracefulShutdown)),
        ("GracefulShutdown", Paused) => {
            conflict("a paused server cannot shut down; use Resume or ForceOff")
        }
        ("ForceRestart", Off) => conflict("the server is off; use On"),
        ("ForceRestart", _) => Ok(Some(PReq::Reset)),
        ("PowerCycle", Off) => Ok(Some(PReq::PowerOn)),
        ("PowerCycle", _) => Ok(Some(PReq::PowerCycle)),
        ("Pause", On) => Ok(Some(PReq::Pause)),
        ("Pause", Paused) | ("Resume", On) => Ok(None),
        ("Pause", Off) | ("Resume", Off) => conflict("the server is off"),
        ("Resume", Paused) => Ok(Some(PReq::Resume)),
        (other, _) => Err(RfError::value_not_in_list("ResetType", other)),
    }
}

fn platform_error(e: PlatformError) -> RfError {
    match e {
        PlatformError::Refused(why) => RfError::conflict(format!("the platform refused: {why}")),
        other => RfError::internal(other.to_string()),
    }
}

/// Runs a platform request off the async threads (the channel blocks).
async fn platform(svc: &Arc<Service>, req: PReq) -> Result<PlatformState, RfError> {
    let s = svc.clone();
    tokio::task::spawn_blocking(move || s.platform().call(req).map(|a| a.state))
        .await
        .map_err(|e| RfError::internal(format!("platform task: {e}")))?
        .map_err(platform_error)
}

/// Reads what the server's console has new for the host log.
async fn refresh_host_log(svc: &Arc<Service>) -> Result<(), RfError> {
    let s = svc.clone();
    tokio::task::spawn_blocking(move || {
        let mut log = s.host_log();
        let start = log.offset();
        while log.offset() - start < hostlog::REFRESH_BYTES {
            let (data, _) = s.platform().console(log.offset())?;
            if data.is_empty() {
                break;
            }
            log.feed(&data);
        }
        Ok(())
    })
    .await
    .map_err(|e| RfError::internal(format!("platform task: {e}")))?
    .map_err(platform_error)
}

/// The body as a JSON object; an empty body is an empty object (sushy
/// posts EjectMedia without one).
fn body_object(body: &[u8]) -> Result<Map<String, Value>, RfError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(RfError::malformed_json("the body is not a JSON object")),
        Err(e) => Err(RfError::malformed_json(e)),
    }
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, RfError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RfError::value_type(k)),
    }
}

fn get_bool(m: &Map<String, Value>, k: &str) -> Result<Option<bool>, RfError> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RfError::value_type(k)),
    }
}

/// The erase task owns the server's power, boot source and CD while it
/// runs: other requests for them are refused, not interleaved.
/// The 409 of a request made while task `id` (an erase, a checkpoint, a
/// restore) owns the server.
fn busy_with(id: u32) -> RfError {
    RfError::conflict(format!("a task owns the server: {}", tasks::task_uri(id)))
}

/// Buttons and media wait while a task owns the server.
fn not_while_busy(svc: &Service) -> Result<(), RfError> {
    svc.tasks().busy().map_or(Ok(()), |id| Err(busy_with(id)))
}

/// What the tenant on this server is billed so far: its rules' traffic
/// here, and what it brought in its checkpoint.
fn current_tenancy(svc: &Service) -> Value {
    let (mut packets, mut bytes) = (0, 0);
    match svc.rme().flow_dump() {
        Ok(flows) => {
            for f in flows {
                packets += f.packets;
                bytes += f.bytes;
            }
        }
        Err(e) => return json!({ "Error": e.to_string() }),
    }
    let carried = svc.tasks().carried.clone();
    let (from, cp, cb) = carried.map_or((None, 0, 0), |(n, p, b)| {
        ((!n.is_empty()).then_some(n), p, b)
    });
    json!({
        "BilledPackets": cp + packets,
        "BilledBytes": cb + bytes,
        "CarriedPackets": cp,
        "CarriedBytes": cb,
        "RestoredFrom": from,
    })
}

/// Answers 202 with task `task`'s monitor.
fn accepted(task: &tasks::Task) -> Result<Response, RfError> {
    let mut r = json_response(StatusCode::ACCEPTED, &task.to_json(), false);
    let monitor = tasks::monitor_uri(task.id);
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&monitor).map_err(|e| RfError::internal(e.to_string()))?,
    );
    Ok(r)
}

/// The `CheckpointName` of a checkpoint or restore action.
fn checkpoint_name(m: &serde_json::Map<String, Value>, action: &str) -> Result<String, RfError> {
    if let Some(k) = m.keys().find(|k| *k != "CheckpointName") {
        return Err(RfError::action_parameter_unknown(action, k));
    }
    let name = get_str(m, "CheckpointName")?
        .ok_or_else(|| RfError::action_parameter_missing(action, "CheckpointName"))?;
    if !bmgnic_wire::platform::checkpoint_name_ok(name) {
        return Err(RfError::value_not_in_list("CheckpointName", name));
    }
    Ok(name.to_string())
}

fn require(p: &Principal, privilege: Privilege) -> Result<(), RfError> {
    if p.has(privilege) {
        Ok(())
    } else {
        Err(RfError::insufficient_privilege())
    }
}

/// The one entry point: every request of the service.
pub async fn handle(svc: Arc<Service>, req: Request<Body>) -> Response {
    let mut r = match handle_inner(&svc, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = r.headers_mut();
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// How much of an over-long body is read and dropped, and for how long,
/// before the 413 goes out: a client still sending when the answer comes
/// and the connection closes gets a reset instead of the answer (web
/// servers' "lingering close").
const DRAIN_LIMIT: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The request body, at most [`BODY_LIMIT`] bytes; a longer one is 413
/// once the client has sent it (up to [`DRAIN_LIMIT`]).
async fn read_body(mut body: Body) -> Result<axum::body::Bytes, RfError> {
    use http_body_util::BodyExt;
    let mut data = Vec::new();
    let mut seen = 0usize;
    let mut deadline = None;
    loop {
        let next = body.frame();
        let frame = match deadline {
            None => next.await,
            Some(at) => match tokio::time::timeout_at(at, next).await {
                Ok(f) => f,
                Err(_) => break,
            },
        };
        let chunk = match frame {
            None => break,
            Some(Ok(f)) => match f.into_data() {
                Ok(chunk) => chunk,
                Err(_) => continue,
            },
            Some(Err(_)) => return Err(RfError::too_large(BODY_LIMIT)),
        };
        seen = seen.saturating_add(chunk.len());
        if seen <= BODY_LIMIT {
            data.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        } else {
            deadline.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_TIME);
        }
    }
    if seen > BODY_LIMIT {
        return Err(RfError::too_large(BODY_LIMIT));
    }
    Ok(data.into())
}

async fn handle_inner(svc: &Arc<Service>, req: Request<Body>) -> Result<Response, RfError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let headers = parts.headers;
    let body = read_body(body).await?;
    let res = Res::parse(&path, svc);
    let principal = authenticate(svc, &headers);
    let Some(res) = res else {
        return Err(match principal {
            Some(_) => RfError::not_found(&path),
            None => RfError::no_session(),
        });
    };
    let allow = res.allow();
    let m = method.as_str();
    if !allow.split(", ").any(|a| a == m) {
        return Err(RfError::method_not_allowed(allow));
    }
    let principal = match principal {
        Some(p) => Some(p),
        None if res.public(&method) => None,
        None => return Err(RfError::no_session()),
    };
    odata_version_ok(&headers)?;
    if let Some(q) = dollar_param(parts.uri.query()) {
        return Err(RfError::query_not_supported(&q));
    }
    let head = method == Method::HEAD;
    let method = if head { Method::GET } else { method };
    let mut resp = match (method, principal) {
        (Method::GET, _) if matches!(res, Res::Metadata) => (
            [(header::CONTENT_TYPE, "application/xml")],
            metadata::csdl(),
        )
            .into_response(),
        (Method::GET, p) => {
            let v = get(svc, &res, p.as_ref()).await?;
            if matches!(res, Res::TaskMonitor(_)) && v["TaskState"] == "Running" {
                // DSP0266: the monitor says 202 until the task is done.
                // Retry-After as an HTTP-date: sushy (5.14) passes a
                // delay in seconds to time.sleep() as a string.
                let mut r = json_response(StatusCode::ACCEPTED, &v, false);
                let at = tasks::http_date(SystemTime::now() + Duration::from_secs(5));
                if let Ok(at) = HeaderValue::from_str(&at) {
                    r.headers_mut().insert(header::RETRY_AFTER, at);
                }
                r
            } else if let Some(tag) = Some(etag_of(&v)).filter(|t| if_none_match_hit(&headers, t)) {
                // The client's copy is current (DSP0266 "ETags").
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                if let Ok(h) = HeaderValue::from_str(&tag) {
                    r.headers_mut().insert(header::ETAG, h);
                }
                r
            } else {
                json_response(StatusCode::OK, &v, true)
            }
        }
        (Method::POST, p) => post(svc, &res, p.as_ref(), &body).await?,
        (Method::PATCH, Some(p)) => patch(svc, &res, &p, &headers, &body).await?,
        (Method::DELETE, Some(p)) => delete(svc, &res, &p)?,
        _ => return Err(RfError::no_session()),
    };
    // The methods the resource takes, on every answer it gives (DSP0266
    // has it on GET and HEAD).
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    if head {
        // The GET's headers, its length included, without its body.
        let (mut parts, body) = resp.into_parts();
        let n = axum::body::to_bytes(body, usize::MAX)
            .await
            .map(|b| b.len())
            .unwrap_or(0);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        resp = Response::from_parts(parts, Body::empty());
    }
    Ok(resp)
}

fn authenticate(svc: &Service, headers: &HeaderMap) -> Option<Principal> {
    if let Some(t) = headers.get("X-Auth-Token").and_then(|v| v.to_str().ok()) {
        return svc.auth.token(t);
    }
    let a = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    svc.auth.basic(a)
}

async fn get(svc: &Arc<Service>, res: &Res, p: Option<&Principal>) -> Result<Value, RfError> {
    Ok(match res {
        Res::Version => json!({"v1": "/redfish/v1/"}),
        Res::OData => metadata::service_document(),
        Res::Root => json!({
            "@odata.id": "/redfish/v1/",
            "@odata.type": "#ServiceRoot.v1_17_0.ServiceRoot",
            "Id": "RootService",
            "Name": "bmgnic RME Redfish service",
            "RedfishVersion": "1.20.0",
            "UUID": svc.uuid,
            "Vendor": "bmgnic",
            "Product": "bmgnic RME",
            "Systems": link("/redfish/v1/Systems"),
            "Chassis": link("/redfish/v1/Chassis"),
            "Managers": link("/redfish/v1/Managers"),
            "SessionService": link("/redfish/v1/SessionService"),
            "AccountService": link("/redfish/v1/AccountService"),
            "TaskService": link("/redfish/v1/TaskService"),
            "Links": {"Sessions": link("/redfish/v1/SessionService/Sessions")},
            // No query parameter is implemented: a `$` one is 501, the
            // others (only, excerpt, ...) are ignored.
            "ProtocolFeaturesSupported": {
                "ExcerptQuery": false,
                "ExpandQuery": {"ExpandAll": false, "Levels": false, "Links": false,
                    "NoLinks": false},
                "FilterQuery": false,
                "OnlyMemberQuery": false,
                "SelectQuery": false,
                "TopSkipQuery": false,
                "DeepOperations": {"DeepPATCH": false, "DeepPOST": false},
            },
        }),
        Res::Systems => collection(
            "/redfish/v1/Systems",
            "ComputerSystemCollection",
            "Computer Systems",
            &[SYS.into()],
        ),
        Res::System => system(&platform(svc, PReq::Status).await?),
        Res::LogServices => collection(
            LOG_SERVICES,
            "LogServiceCollection",
            "Log Services",
            &[HOST_LOGGER.into()],
        ),
        Res::HostLogger => {
            // The tenant's console output: for those who run the server.
            require(
                p.ok_or_else(RfError::no_session)?,
                Privilege::ConfigureComponents,
            )?;
            json!({
                "@odata.id": HOST_LOGGER,
                "@odata.type": "#LogService.v1_3_0.LogService",
                "Id": "HostLogger",
                "Name": "Host Logger Service",
                "Description": "The server's serial console, line by line.",
                "ServiceEnabled": true,
                "MaxNumberOfRecords": hostlog::MAX_RECORDS,
                "OverWritePolicy": "WrapsWhenFull",
                "LogEntryType": "OEM",
                "Entries": link(HOST_LOG_ENTRIES),
                "Status": {"State": "Enabled", "Health": "OK"},
            })
        }
        Res::HostLogEntries => {
            require(
                p.ok_or_else(RfError::no_session)?,
                Privilege::ConfigureComponents,
            )?;
            refresh_host_log(svc).await?;
            let members: Vec<String> = svc
                .host_log()
                .entries()
                .map(|(n, _)| format!("{HOST_LOG_ENTRIES}/{n}"))
                .collect();
            collection(
                HOST_LOG_ENTRIES,
                "LogEntryCollection",
                "Host Logger Entries",
                &members,
            )
        }
        Res::HostLogEntry(n) => {
            require(
                p.ok_or_else(RfError::no_session)?,
                Privilege::ConfigureComponents,
            )?;
            refresh_host_log(svc).await?;
            let uri = format!("{HOST_LOG_ENTRIES}/{n}");
            let message = svc
                .host_log()
                .entry(*n)
                .map(str::to_string)
                .ok_or_else(|| RfError::not_found(&uri))?;
            json!({
                "@odata.id": uri,
                "@odata.type": "#LogEntry.v1_9_0.LogEntry",
                "Id": n.to_string(),
                "Name": "Host Logger Entry",
                "EntryType": "Oem",
                "OemRecordFormat": "Host Logger",
                "Message": message,
            })
        }
        Res::EthIfs => collection(
            "/redfish/v1/Systems/1/EthernetInterfaces",
            "EthernetInterfaceCollection",
            "Ethernet Interfaces",
            &["/redfish/v1/Systems/1/EthernetInterfaces/1".into()],
        ),
        Res::EthIf => {
            let s = svc.clone();
            let dev = tokio::task::spawn_blocking(move || s.rme().dev_get())
                .await
                .map_err(|e| RfError::internal(e.to_string()))?
                .map_err(|e| RfError::internal(format!("reading the NIC: {e}")))?;
            let mac = dev
                .guest_mac
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":");
            // The guest has carrier while the fabric port has link and the
            // tenant is not quarantined, as the driver reports it.
            let enabled = !dev.quarantined;
            let link_up = enabled && dev.fabric_link;
            json!({
                "@odata.id": "/redfish/v1/Systems/1/EthernetInterfaces/1",
                "@odata.type": "#EthernetInterface.v1_12_0.EthernetInterface",
                "Id": "1",
                "Name": "BMGNIC guest port",
                "Description": "The tenant's port of the BMGNIC; the MAC address is the one the RME provisioned",
                "MACAddress": mac,
                "PermanentMACAddress": mac,
                "LinkStatus": if link_up { "LinkUp" } else { "LinkDown" },
                "InterfaceEnabled": enabled,
                "Status": {"State": if enabled { "Enabled" } else { "Disabled" }, "Health": if link_up { "OK" } else { "Warning" }},
            })
        }
        Res::Storages => collection(
            "/redfish/v1/Systems/1/Storage",
            "StorageCollection",
            "Storage",
            &["/redfish/v1/Systems/1/Storage/1".into()],
        ),
        Res::Storage => {
            let st = platform(svc, PReq::Status).await?;
            let drives: Vec<Value> = if st.disk.present {
                vec![link("/redfish/v1/Systems/1/Storage/1/Drives/1")]
            } else {
                vec![]
            };
            json!({
                "@odata.id": "/redfish/v1/Systems/1/Storage/1",
                "@odata.type": "#Storage.v1_15_0.Storage",
                "Id": "1",
                "Name": "NVMe storage",
                "Drives": drives,
                "Drives@odata.count": drives.len(),
                "Status": {"State": "Enabled", "Health": "OK"},
            })
        }
        Res::Drive => {
            let st = platform(svc, PReq::Status).await?;
            if !st.disk.present {
                return Err(RfError::not_found(
                    "/redfish/v1/Systems/1/Storage/1/Drives/1",
                ));
            }
            json!({
                "@odata.id": "/redfish/v1/Systems/1/Storage/1/Drives/1",
                "@odata.type": "#Drive.v1_18_0.Drive",
                "Id": "1",
                "Name": "NVMe disk",
                "CapacityBytes": st.disk.bytes,
                "Protocol": "NVMe",
                "MediaType": "SSD",
                "Status": {"State": "Enabled", "Health": "OK"},
                "Actions": {"#Drive.SecureErase": {
                    "target": "/redfish/v1/Systems/1/Storage/1/Drives/1/Actions/Drive.SecureErase"}},
            })
        }
        Res::ChassisColl => collection(
            "/redfish/v1/Chassis",
            "ChassisCollection",
            "Chassis",
            &[CHASSIS.into()],
        ),
        Res::Chassis => {
            let st = platform(svc, PReq::Status).await?;
            json!({
                "@odata.id": CHASSIS,
                "@odata.type": "#Chassis.v1_25_0.Chassis",
                "Id": "1",
                "Name": "Server chassis",
                "ChassisType": "RackMount",
                "PowerState": if st.power == Power::Off { "Off" } else { "On" },
                "Status": status_of(&st),
                "Links": {
                    "ComputerSystems": [link(SYS)],
                    "ManagedBy": [link(MGR)],
                },
            })
        }
        Res::Managers => collection(
            "/redfish/v1/Managers",
            "ManagerCollection",
            "Managers",
            &[MGR.into()],
        ),
        Res::Manager => json!({
            "@odata.id": MGR,
            "@odata.type": "#Manager.v1_19_0.Manager",
            "Id": "1",
            "Name": "bmgnic RME",
            "ManagerType": "BMC",
            "FirmwareVersion": env!("CARGO_PKG_VERSION"),
            "UUID": svc.uuid,
            "Status": {"State": "Enabled", "Health": "OK"},
            "PowerState": "On",
            "VirtualMedia": link("/redfish/v1/Managers/1/VirtualMedia"),
            "Links": {
                "ManagerForServers": [link(SYS)],
                "ManagerForChassis": [link(CHASSIS)],
            },
            // What every tenancy the RME ended was billed (kept for the
            // cloud's billing after the NIC forgot the tenant).
            "Oem": {"Bmgnic": {
                "@odata.type": "#BmgnicManager.v1_0_0.BmgnicManager",
                "EndedTenancies": svc.tasks().tenancies.clone(),
                "CurrentTenancy": current_tenancy(svc),
            }},
        }),
        Res::VirtualMedias => collection(
            "/redfish/v1/Managers/1/VirtualMedia",
            "VirtualMediaCollection",
            "Virtual Media",
            &[CD.into()],
        ),
        Res::Cd => {
            let st = platform(svc, PReq::Status).await?;
            let image = st.media.image.clone().filter(|_| st.media.inserted);
            // Show the URL the image was inserted from, if it was ours.
            let url = match (&image, svc.last_image_url()) {
                (Some(name), Some((n, url))) if *name == n => Some(url),
                (Some(name), _) => Some(name.clone()),
                _ => None,
            };
            json!({
                "@odata.id": CD,
                "@odata.type": "#VirtualMedia.v1_6_0.VirtualMedia",
                "Id": "Cd",
                "Name": "Virtual CD",
                "MediaTypes": ["CD", "DVD"],
                "Inserted": st.media.inserted,
                "Image": url,
                "ImageName": image,
                "WriteProtected": true,
                "ConnectedVia": if st.media.inserted { "URI" } else { "NotConnected" },
                "Actions": {
                    "#VirtualMedia.InsertMedia": {"target": format!("{CD}/Actions/VirtualMedia.InsertMedia")},
                    "#VirtualMedia.EjectMedia": {"target": format!("{CD}/Actions/VirtualMedia.EjectMedia")},
                },
            })
        }
        Res::SessionService => json!({
            "@odata.id": "/redfish/v1/SessionService",
            "@odata.type": "#SessionService.v1_1_8.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": svc.auth.timeout().as_secs(),
            "Sessions": link("/redfish/v1/SessionService/Sessions"),
            "Status": {"State": "Enabled", "Health": "OK"},
        }),
        Res::Sessions => {
            let p = p.ok_or_else(RfError::no_session)?;
            let all = p.has(Privilege::ConfigureManager);
            let members: Vec<String> = svc
                .auth
                .sessions()
                .into_iter()
                .filter(|(_, acc)| all || *acc == p.account)
                .map(|(id, _)| format!("/redfish/v1/SessionService/Sessions/{id}"))
                .collect();
            collection(
                "/redfish/v1/SessionService/Sessions",
                "SessionCollection",
                "Sessions",
                &members,
            )
        }
        Res::Session(id) => {
            let p = p.ok_or_else(RfError::no_session)?;
            session_body(svc, id, session_account(svc, id, p)?)
        }
        Res::AccountService => json!({
            "@odata.id": "/redfish/v1/AccountService",
            "@odata.type": "#AccountService.v1_15_0.AccountService",
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": true,
            "LocalAccountAuth": "Enabled",
            "MinPasswordLength": PASSWORD_MIN,
            "MaxPasswordLength": PASSWORD_MAX,
            "Accounts": link("/redfish/v1/AccountService/Accounts"),
            "Roles": link("/redfish/v1/AccountService/Roles"),
            "Status": {"State": "Enabled", "Health": "OK"},
        }),
        Res::Accounts => {
            let p = p.ok_or_else(RfError::no_session)?;
            let all = p.has(Privilege::ConfigureUsers);
            let members: Vec<String> = svc
                .auth
                .accounts()
                .iter()
                .filter(|a| all || a.id == p.account)
                .map(|a| account_uri(a.id))
                .collect();
            collection(
                "/redfish/v1/AccountService/Accounts",
                "ManagerAccountCollection",
                "Accounts",
                &members,
            )
        }
        Res::Account(n) => {
            let p = p.ok_or_else(RfError::no_session)?;
            let a = svc
                .auth
                .account(*n)
                .ok_or_else(|| RfError::not_found(&account_uri(*n)))?;
            if a.id != p.account && !p.has(Privilege::ConfigureUsers) {
                return Err(RfError::insufficient_privilege());
            }
            account_body(&a)
        }
        Res::Roles => collection(
            "/redfish/v1/AccountService/Roles",
            "RoleCollection",
            "Roles",
            &Role::ALL
                .iter()
                .map(|r| format!("/redfish/v1/AccountService/Roles/{}", r.name()))
                .collect::<Vec<_>>(),
        ),
        Res::Role(r) => json!({
            "@odata.id": format!("/redfish/v1/AccountService/Roles/{}", r.name()),
            "@odata.type": "#Role.v1_3_1.Role",
            "Id": r.name(),
            "Name": format!("{} role", r.name()),
            "RoleId": r.name(),
            "IsPredefined": true,
            "AssignedPrivileges": r.privileges().iter().map(|p| p.name()).collect::<Vec<_>>(),
        }),
        Res::TaskService => json!({
            "@odata.id": "/redfish/v1/TaskService",
            "@odata.type": "#TaskService.v1_2_0.TaskService",
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": true,
            "Tasks": link("/redfish/v1/TaskService/Tasks"),
            "Status": {"State": "Enabled", "Health": "OK"},
        }),
        Res::Tasks => collection(
            "/redfish/v1/TaskService/Tasks",
            "TaskCollection",
            "Tasks",
            &svc.tasks()
                .ids()
                .into_iter()
                .map(tasks::task_uri)
                .collect::<Vec<_>>(),
        ),
        Res::Task(id) | Res::TaskMonitor(id) => svc
            .tasks()
            .get(*id)
            .map(tasks::Task::to_json)
            .ok_or_else(|| RfError::not_found(&tasks::task_uri(*id)))?,
        _ => return Err(RfError::method_not_allowed(res.allow())),
    })
}

fn account_uri(id: usize) -> String {
    format!("/redfish/v1/AccountService/Accounts/{id}")
}

fn account_body(a: &Account) -> Value {
    json!({
        "@odata.id": account_uri(a.id),
        "@odata.type": "#ManagerAccount.v1_12_0.ManagerAccount",
        "Id": a.id.to_string(),
        "Name": "User Account",
        "UserName": a.user,
        "RoleId": a.role.name(),
        "Enabled": a.enabled,
        "Locked": false,
        "Password": null,
        "AccountTypes": ["Redfish"],
        "Links": {"Role": link(&format!("/redfish/v1/AccountService/Roles/{}", a.role.name()))},
    })
}

fn session_body(svc: &Service, id: &str, account: usize) -> Value {
    let user = svc
        .auth
        .account(account)
        .map(|a| a.user)
        .unwrap_or_default();
    json!({
        "@odata.id": format!("/redfish/v1/SessionService/Sessions/{id}"),
        "@odata.type": "#Session.v1_7_0.Session",
        "Id": id,
        "Name": "User Session",
        "UserName": user,
        "Password": null,
        "SessionType": "Redfish",
    })
}

fn system(st: &PlatformState) -> Value {
    let (target, enabled) = match (st.boot.target, st.boot.once) {
        (BootTarget::None, _) => ("None", "Disabled"),
        (t, true) => (boot_target_name(t), "Once"),
        (t, false) => (boot_target_name(t), "Continuous"),
    };
    json!({
        "@odata.id": SYS,
        "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": "1",
        "Name": "bmgnic server",
        "SystemType": "Physical",
        "Manufacturer": "bmgnic",
        "PowerState": power_name(st.power),
        "Status": status_of(st),
        "Boot": {
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideEnabled": enabled,
            "BootSourceOverrideTarget@Redfish.AllowableValues": boot_targets(st),
            "BootSourceOverrideMode": "Legacy",
            "BootSourceOverrideMode@Redfish.AllowableValues": BOOT_MODES,
        },
        "EthernetInterfaces": link("/redfish/v1/Systems/1/EthernetInterfaces"),
        "Storage": link("/redfish/v1/Systems/1/Storage"),
        "LogServices": link(LOG_SERVICES),
        "Links": {"Chassis": [link(CHASSIS)], "ManagedBy": [link(MGR)]},
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{SYS}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES,
            },
            "Oem": {
                "#BmgnicComputerSystem.Checkpoint": {"target": CHECKPOINT_ACTION},
                "#BmgnicComputerSystem.Restore": {"target": RESTORE_ACTION},
                "#BmgnicComputerSystem.Deploy": {"target": DEPLOY_ACTION},
            },
        },
    })
}

async fn post(
    svc: &Arc<Service>,
    res: &Res,
    p: Option<&Principal>,
    body: &[u8],
) -> Result<Response, RfError> {
    let m = body_object(body)?;
    match res {
        Res::Sessions | Res::SessionsMembers => {
            let user =
                get_str(&m, "UserName")?.ok_or_else(|| RfError::property_missing("UserName"))?;
            let pw =
                get_str(&m, "Password")?.ok_or_else(|| RfError::property_missing("Password"))?;
            let who = svc
                .auth
                .check_password(user, pw)
                .ok_or_else(RfError::no_session)?;
            let (id, token) = svc.auth.login(&who);
            let v = session_body(svc, &id, who.account);
            let mut r = json_response(StatusCode::CREATED, &v, false);
            let loc = format!("/redfish/v1/SessionService/Sessions/{id}");
            if let (Ok(t), Ok(l)) = (HeaderValue::from_str(&token), HeaderValue::from_str(&loc)) {
                r.headers_mut().insert("X-Auth-Token", t);
                r.headers_mut().insert(header::LOCATION, l);
            }
            Ok(r)
        }
        Res::Accounts => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureUsers)?;
            const KNOWN: [&str; 4] = ["UserName", "Password", "RoleId", "Enabled"];
            if let Some(k) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
                return Err(RfError::property_unknown(k));
            }
            let user =
                get_str(&m, "UserName")?.ok_or_else(|| RfError::property_missing("UserName"))?;
            let pw =
                get_str(&m, "Password")?.ok_or_else(|| RfError::property_missing("Password"))?;
            let role = get_str(&m, "RoleId")?.ok_or_else(|| RfError::property_missing("RoleId"))?;
            let role =
                Role::parse(role).ok_or_else(|| RfError::value_not_in_list("RoleId", role))?;
            let enabled = get_bool(&m, "Enabled")?.unwrap_or(true);
            let id = svc
                .auth
                .create(user, role, pw, enabled)
                .map_err(|e| account_error(e, user))?;
            log::info!("redfish: {} made account {user} ({})", p.user, role.name());
            let v = get(svc, &Res::Account(id), Some(p)).await?;
            let mut r = json_response(StatusCode::CREATED, &v, true);
            if let Ok(l) = HeaderValue::from_str(&account_uri(id)) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            Ok(r)
        }
        Res::SystemReset => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureComponents)?;
            const A: &str = "ComputerSystem.Reset";
            if let Some(k) = m.keys().find(|k| *k != "ResetType") {
                return Err(RfError::action_parameter_unknown(A, k));
            }
            let reset = get_str(&m, "ResetType")?
                .ok_or_else(|| RfError::action_parameter_missing(A, "ResetType"))?;
            if !RESET_TYPES.contains(&reset) {
                return Err(RfError::value_not_in_list("ResetType", reset));
            }
            not_while_busy(svc)?;
            let st = platform(svc, PReq::Status).await?;
            if let Some(req) = reset_plan(reset, st.power)? {
                log::info!("redfish: {} asks {reset}", p.user);
                platform(svc, req).await?;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Res::CdInsert => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureManager)?;
            not_while_busy(svc)?;
            const A: &str = "VirtualMedia.InsertMedia";
            const KNOWN: [&str; 7] = [
                "Image",
                "Inserted",
                "WriteProtected",
                "TransferProtocolType",
                "TransferMethod",
                "UserName",
                "Password",
            ];
            if let Some(k) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
                return Err(RfError::action_parameter_unknown(A, k));
            }
            let url = get_str(&m, "Image")?
                .ok_or_else(|| RfError::action_parameter_missing(A, "Image"))?;
            if get_bool(&m, "Inserted")? == Some(false) {
                return Err(RfError::value_not_in_list("Inserted", "false"));
            }
            if get_bool(&m, "WriteProtected")? == Some(false) {
                return Err(RfError::value_not_in_list("WriteProtected", "false"));
            }
            // The image is downloaded over HTTP and streamed to the
            // board in one transfer ("Stream" is a transfer the board
            // would make itself).
            if let Some(t) = get_str(&m, "TransferProtocolType")? {
                if t != "HTTP" {
                    return Err(RfError::value_not_in_list("TransferProtocolType", t));
                }
            }
            if let Some(t) = get_str(&m, "TransferMethod")? {
                if t != "Upload" {
                    return Err(RfError::value_not_in_list("TransferMethod", t));
                }
            }
            let credentials = match (get_str(&m, "UserName")?, get_str(&m, "Password")?) {
                (Some(u), Some(pw)) => Some((u, pw)),
                (None, None) => None,
                (Some(_), None) => return Err(RfError::action_parameter_missing(A, "Password")),
                (None, Some(_)) => return Err(RfError::action_parameter_missing(A, "UserName")),
            };
            let name = insert_image_detached(svc, url, credentials).await?;
            log::info!("redfish: {} inserted {url} as {name}", p.user);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Res::CdEject => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureManager)?;
            not_while_busy(svc)?;
            if let Some(k) = m.keys().next() {
                return Err(RfError::action_parameter_unknown(
                    "VirtualMedia.EjectMedia",
                    k,
                ));
            }
            let st = platform(svc, PReq::Status).await?;
            if st.media.inserted {
                platform(svc, PReq::MediaEject).await?;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Res::DriveErase => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureComponents)?;
            if let Some(k) = m.keys().next() {
                return Err(RfError::action_parameter_unknown("Drive.SecureErase", k));
            }
            let task = tasks::start_erase(svc).map_err(busy_with)?;
            accepted(&task)
        }
        Res::SystemDeploy => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureComponents)?;
            const A: &str = "BmgnicComputerSystem.Deploy";
            if let Some(k) = m.keys().find(|k| *k != "Image") {
                return Err(RfError::action_parameter_unknown(A, k));
            }
            let url = get_str(&m, "Image")?
                .ok_or_else(|| RfError::action_parameter_missing(A, "Image"))?;
            media::source(url)?;
            not_while_busy(svc)?;
            // A deploy overwrites the disk: never under a running system.
            let st = platform(svc, PReq::Status).await?;
            if st.power != Power::Off {
                return Err(RfError::conflict(
                    "the server is not off: a deploy overwrites its disk, power it off first",
                ));
            }
            // The medium goes in now (downloaded first if it is a URL),
            // so that one that cannot be had is an error here rather
            // than a failed task.
            if st.media.inserted {
                platform(svc, PReq::MediaEject).await?;
            }
            let name = insert_image_detached(svc, url, None).await?;
            log::info!("redfish: {} asks to deploy {url}", p.user);
            let task = tasks::start_deploy(svc, name, url.to_string()).map_err(busy_with)?;
            accepted(&task)
        }
        Res::SystemCheckpoint => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureComponents)?;
            let name = checkpoint_name(&m, "BmgnicComputerSystem.Checkpoint")?;
            log::info!("redfish: {} asks for checkpoint {name}", p.user);
            let task = tasks::start_checkpoint(svc, name).map_err(busy_with)?;
            accepted(&task)
        }
        Res::SystemRestore => {
            let p = p.ok_or_else(RfError::no_session)?;
            require(p, Privilege::ConfigureComponents)?;
            let name = checkpoint_name(&m, "BmgnicComputerSystem.Restore")?;
            log::info!("redfish: {} asks to restore checkpoint {name}", p.user);
            let task = tasks::start_restore(svc, name).map_err(busy_with)?;
            accepted(&task)
        }
        _ => Err(RfError::method_not_allowed(res.allow())),
    }
}

/// [`insert_image`] in a task of its own: a client that hangs up
/// mid-download drops the request's future, and the download with it,
/// between two pieces of the board's store. The insert the client asked
/// for is done, or fails with its partial image discarded, either way.
async fn insert_image_detached(
    svc: &Arc<Service>,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> Result<String, RfError> {
    let svc = svc.clone();
    let url = url.to_string();
    let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
    tokio::spawn(async move {
        let credentials = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        insert_image(&svc, &url, credentials).await
    })
    .await
    .map_err(|e| RfError::internal(format!("the insert's task: {e}")))?
}

/// Puts the image `url` names in the virtual CD: a medium of the board's
/// media directory, or one downloaded (with HTTP Basic `credentials`)
/// and stored on the board first. Returns the name the board knows it
/// by.
async fn insert_image(
    svc: &Arc<Service>,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> Result<String, RfError> {
    let name = match media::source(url)? {
        media::Source::Provider(name) => name,
        media::Source::Http { uri, stored } => {
            let st = platform(svc, PReq::Status).await?;
            if st.media.inserted {
                return Err(RfError::conflict(
                    "a medium is in the drive: eject it first",
                ));
            }
            // One download at a time: the board's store takes its
            // pieces in order.
            let _one = svc
                .fetching
                .try_lock()
                .map_err(|_| RfError::conflict("another image is being downloaded"))?;
            let started = std::time::Instant::now();
            let got = media::fetch(svc, &uri, &stored, credentials, media::DOWNLOAD_TIME).await?;
            log::info!(
                "redfish: {url}: {} bytes (sha256 {}) stored as {stored} in {:.1} s",
                got.bytes,
                got.sha256,
                started.elapsed().as_secs_f64()
            );
            stored
        }
    };
    platform(
        svc,
        PReq::MediaInsert {
            image: name.clone(),
        },
    )
    .await
    .map_err(|e| {
        if e.status == StatusCode::CONFLICT {
            // The platform refuses an image it does not have.
            RfError::value_not_in_list("Image", url)
        } else {
            e
        }
    })?;
    svc.set_last_image_url(name.clone(), url.to_string());
    Ok(name)
}

async fn patch(
    svc: &Arc<Service>,
    res: &Res,
    p: &Principal,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, RfError> {
    let mut m = body_object(body)?;
    // OData annotations (`@odata.id`, `@odata.etag`, ...) are not
    // properties to write; a body of nothing else asks for nothing.
    let annotated = !m.is_empty();
    m.retain(|k, _| !k.starts_with('@'));
    if annotated && m.is_empty() {
        return Err(RfError::no_operation());
    }
    match res {
        Res::System => {
            require(p, Privilege::ConfigureComponents)?;
            not_while_busy(svc)?;
            let st = platform(svc, PReq::Status).await?;
            if !if_match_ok(headers, &etag_of(&system(&st))) {
                return Err(RfError::precondition_failed());
            }
            for k in m.keys() {
                if k != "Boot" {
                    return Err(if system(&st).get(k).is_some() {
                        RfError::property_not_writable(k)
                    } else {
                        RfError::property_unknown(k)
                    });
                }
            }
            if let Some(boot) = m.get("Boot") {
                let Value::Object(b) = boot else {
                    return Err(RfError::value_type("Boot"));
                };
                const KNOWN: [&str; 3] = [
                    "BootSourceOverrideTarget",
                    "BootSourceOverrideEnabled",
                    "BootSourceOverrideMode",
                ];
                for k in b.keys() {
                    if !KNOWN.contains(&k.as_str()) {
                        return Err(RfError::property_unknown(&format!("Boot/{k}")));
                    }
                }
                // SeaBIOS boots Legacy only: Legacy is a no-op, UEFI is
                // refused (Ironic's redfish driver sets the boot mode).
                if let Some(mode) = get_str(b, "BootSourceOverrideMode")? {
                    if !BOOT_MODES.contains(&mode) {
                        return Err(RfError::value_not_in_list(
                            "Boot/BootSourceOverrideMode",
                            mode,
                        ));
                    }
                }
                let given_target = get_str(b, "BootSourceOverrideTarget")?;
                let target = match given_target {
                    None => st.boot.target,
                    Some("None") => BootTarget::None,
                    Some("Hdd") => BootTarget::Hdd,
                    Some("Cd") => BootTarget::Cd,
                    Some("Pxe") if st.netboot.present => BootTarget::Pxe,
                    // Pxe without a provisioning port is not offered.
                    Some(other) => {
                        return Err(RfError::value_not_in_list(
                            "Boot/BootSourceOverrideTarget",
                            other,
                        ))
                    }
                };
                let enabled = get_str(b, "BootSourceOverrideEnabled")?;
                if let Some(e) = enabled {
                    if !BOOT_ENABLED.contains(&e) {
                        return Err(RfError::value_not_in_list(
                            "Boot/BootSourceOverrideEnabled",
                            e,
                        ));
                    }
                }
                // A target without a frequency on a disabled override is
                // for once, the safe reading.
                let (target, once) = match enabled {
                    Some("Disabled") => (BootTarget::None, false),
                    Some("Continuous") => (target, false),
                    Some(_) => (target, true),
                    None if st.boot.target == BootTarget::None => (target, true),
                    None => (target, st.boot.once),
                };
                let once = once && target != BootTarget::None;
                if given_target.is_some() || enabled.is_some() {
                    platform(svc, PReq::Boot { target, once }).await?;
                }
            }
            let st = platform(svc, PReq::Status).await?;
            Ok(json_response(StatusCode::OK, &system(&st), true))
        }
        Res::Account(id) => {
            let current = get(svc, res, Some(p)).await?;
            let mut change = AccountChange::default();
            for (k, v) in &m {
                match k.as_str() {
                    "UserName" => change.user = Some(str_value(k, v)?.to_string()),
                    "Password" => change.password = Some(str_value(k, v)?.to_string()),
                    "RoleId" => {
                        let r = str_value(k, v)?;
                        change.role = Some(
                            Role::parse(r)
                                .ok_or_else(|| RfError::value_not_in_list("RoleId", r))?,
                        );
                    }
                    "Enabled" => {
                        change.enabled = Some(v.as_bool().ok_or_else(|| RfError::value_type(k))?)
                    }
                    _ if current.get(k).is_some() => return Err(RfError::property_not_writable(k)),
                    _ => return Err(RfError::property_unknown(k)),
                }
            }
            // One's own password is ConfigureSelf (DSP8011); the rest,
            // and other accounts, ConfigureUsers.
            let own_password = *id == p.account
                && change.user.is_none()
                && change.role.is_none()
                && change.enabled.is_none();
            if !own_password {
                require(p, Privilege::ConfigureUsers)?;
            }
            let user = change.user.clone().unwrap_or_default();
            // The precondition is checked under the accounts' lock, with
            // the write: of writers with one ETag, one wins.
            svc.auth
                .update(*id, change, |a| {
                    if_match_ok(headers, &etag_of(&account_body(a)))
                })
                .map_err(|e| account_error(e, &user))?;
            log::info!("redfish: {} changed account {id}", p.user);
            let v = get(svc, res, Some(p)).await;
            match v {
                Ok(v) => Ok(json_response(StatusCode::OK, &v, true)),
                // The principal changed its own role and may no longer
                // read it.
                Err(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            }
        }
        Res::SessionService => {
            require(p, Privilege::ConfigureManager)?;
            let current = get(svc, res, Some(p)).await?;
            if !if_match_ok(headers, &etag_of(&current)) {
                return Err(RfError::precondition_failed());
            }
            for k in m.keys() {
                if k != "SessionTimeout" {
                    return Err(if current.get(k).is_some() {
                        RfError::property_not_writable(k)
                    } else {
                        RfError::property_unknown(k)
                    });
                }
            }
            if let Some(v) = m.get("SessionTimeout") {
                let Some(secs) = v.as_u64() else {
                    return Err(RfError::value_type("SessionTimeout"));
                };
                if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&secs) {
                    return Err(RfError::new(
                        StatusCode::BAD_REQUEST,
                        "PropertyValueOutOfRange",
                        format!("SessionTimeout must be {TIMEOUT_MIN} to {TIMEOUT_MAX} seconds"),
                    )
                    .related("SessionTimeout"));
                }
                svc.auth.set_timeout(secs);
            }
            let v = get(svc, res, Some(p)).await?;
            Ok(json_response(StatusCode::OK, &v, true))
        }
        _ => Err(RfError::method_not_allowed(res.allow())),
    }
}

/// The account of session `id`, which `p` may see (its own, or any with
/// ConfigureManager).
fn session_account(svc: &Service, id: &str, p: &Principal) -> Result<usize, RfError> {
    let (_, account) = svc
        .auth
        .sessions()
        .into_iter()
        .find(|(s, _)| s == id)
        .ok_or_else(|| RfError::not_found(&format!("/redfish/v1/SessionService/Sessions/{id}")))?;
    if account != p.account && !p.has(Privilege::ConfigureManager) {
        return Err(RfError::insufficient_privilege());
    }
    Ok(account)
}

fn delete(svc: &Arc<Service>, res: &Res, p: &Principal) -> Result<Response, RfError> {
    match res {
        Res::Session(id) => {
            session_account(svc, id, p)?;
            svc.auth.logout(id);
        }
        Res::Account(id) => {
            require(p, Privilege::ConfigureUsers)?;
            svc.auth.remove(*id).map_err(|e| account_error(e, ""))?;
            log::info!("redfish: {} removed account {id}", p.user);
        }
        _ => return Err(RfError::method_not_allowed(res.allow())),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A string property's value.
fn str_value<'a>(k: &str, v: &'a Value) -> Result<&'a str, RfError> {
    v.as_str().ok_or_else(|| RfError::value_type(k))
}

/// The Redfish error of a refused account change.
fn account_error(e: AccountError, user: &str) -> RfError {
    match e {
        AccountError::NotFound => RfError::not_found("account"),
        AccountError::Precondition => RfError::precondition_failed(),
        AccountError::Storage(why) => {
            log::error!("redfish: the account store: {why}");
            RfError::internal("the accounts could not be kept; nothing was changed")
        }
        AccountError::UserExists => RfError::new(
            StatusCode::CONFLICT,
            "ResourceAlreadyExists",
            format!("An account with UserName {user} exists."),
        )
        .related("UserName"),
        AccountError::LastAdministrator => RfError::conflict(
            "the change would leave no enabled Administrator account to manage the service",
        ),
        AccountError::BadUserName => RfError::value_not_in_list("UserName", user),
        AccountError::BadPassword => RfError::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueFormatError",
            format!(
                "The password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters and no \
                 control character."
            ),
        )
        .related("Password"),
    }
}
