// SPDX-License-Identifier: GPL-2.0

//! Long operations as Redfish tasks (DSP0266, "Asynchronous operations"):
//! the action answers 202 with a task monitor in `Location`, whose GET
//! answers 202 while the task runs and 200 once it is done; the task
//! itself is a `Task` resource under the TaskService.
//!
//! The long operations are the machine-lifecycle jobs of the paper's
//! §3.1. The drive's secure erase is how a tenant leaves the server
//! ("cleanup"): the RME ends the tenancy in the NIC (final billing kept,
//! nothing of the tenant left), then boots the cleanup system
//! (rme/cleanup) on the server from virtual media, reads its report from
//! the server's console through the platform, and takes the medium out
//! again. The deploy boots the same system from an install medium, which
//! writes the tenant's image, and then the server from its disk. The
//! checkpoint and restore are Documentation/bmgnic/migration.rst's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::Service;
use crate::platform::{BootTarget, Power};
use crate::rme::Tenancy;

/// The erase medium's name in the platform's media directory, unless
/// the daemon is told another.
pub const ERASE_MEDIA: &str = "erase.iso";
/// How long the cleanup system may take, boot to report.
const ERASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long it may take to power off after its report.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(120);
/// The cleanup system's report line on the console.
const RESULT_MARK: &str = "bmgnic-cleanup: result ";
/// How often the console is read while the cleanup system works.
const POLL: Duration = Duration::from_secs(2);

/// `TaskState` values the service uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Running,
    Completed,
    Exception,
}

/// One task.
#[derive(Clone, Debug)]
pub struct Task {
    pub id: u32,
    name: String,
    pub state: State,
    start: SystemTime,
    end: Option<SystemTime>,
    percent: u8,
    messages: Vec<String>,
    /// What the task produced (its `Oem.Bmgnic`).
    oem: Value,
}

/// URI of task `id`.
pub fn task_uri(id: u32) -> String {
    format!("/redfish/v1/TaskService/Tasks/{id}")
}

/// URI of the monitor of task `id`.
pub fn monitor_uri(id: u32) -> String {
    format!("/redfish/v1/TaskService/TaskMonitors/{id}")
}

/// (year, month, day, seconds into the day) of `t`, UTC.
fn civil(t: SystemTime) -> (i64, i64, i64, u64, u64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest, days)
}

/// RFC 3339 UTC time of `t` (DSP0266's `Edm.DateTimeOffset`).
pub fn rfc3339(t: SystemTime) -> String {
    let (year, month, day, rest, _) = civil(t);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The HTTP-date (RFC 9110) of `t`, as `Retry-After` may carry it.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, rest, days) = civil(t);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

impl Task {
    /// The `Task` resource.
    pub fn to_json(&self) -> Value {
        let (state, status) = match self.state {
            State::Running => ("Running", "OK"),
            State::Completed => ("Completed", "OK"),
            State::Exception => ("Exception", "Critical"),
        };
        let mut v = json!({
            "@odata.id": task_uri(self.id),
            "@odata.type": "#Task.v1_7_3.Task",
            "Id": self.id.to_string(),
            "Name": self.name,
            "TaskState": state,
            "TaskStatus": status,
            "StartTime": rfc3339(self.start),
            "PercentComplete": self.percent,
            "TaskMonitor": monitor_uri(self.id),
            "Messages": self.messages.iter().map(|m| json!({
                "MessageId": "Base.1.18.1.Success",
                "Message": m,
                "Severity": "OK",
                "MessageSeverity": "OK",
            })).collect::<Vec<_>>(),
            "Oem": { "Bmgnic": self.oem },
        });
        if let Some(end) = self.end {
            v["EndTime"] = json!(rfc3339(end));
        }
        v
    }
}

/// The service's tasks, and the tenancies that ended.
#[derive(Default)]
pub struct Tasks {
    next: u32,
    tasks: BTreeMap<u32, Task>,
    /// Every tenancy the RME ended, oldest first: what each was billed.
    pub tenancies: Vec<Value>,
    /// What the tenant on this server was billed before the NIC's
    /// counters started: (the checkpoint it came in, empty if none;
    /// packets; bytes).
    pub carried: Option<(String, u64, u64)>,
}

impl Tasks {
    /// Task `id`.
    pub fn get(&self, id: u32) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Every task's id.
    pub fn ids(&self) -> Vec<u32> {
        self.tasks.keys().copied().collect()
    }

    fn running(&self, name: &str) -> Option<u32> {
        self.tasks
            .values()
            .find(|t| t.name == name && t.state == State::Running)
            .map(|t| t.id)
    }

    /// The task that owns the server (an erase, a deploy, a checkpoint
    /// or a restore), if one runs: the others wait for it.
    pub fn busy(&self) -> Option<u32> {
        [ERASE_NAME, DEPLOY_NAME, CHECKPOINT_NAME, RESTORE_NAME]
            .iter()
            .find_map(|n| self.running(n))
    }
}

const ERASE_NAME: &str = "Secure erase of Drive 1";
const DEPLOY_NAME: &str = "Deploy of the tenant's system";
const CHECKPOINT_NAME: &str = "Checkpoint of the tenant";
const RESTORE_NAME: &str = "Restore of a checkpoint";
/// How long the tenant may take to write its image and power off.
const HIBERNATE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a guest agent may take to answer after the power-on (a
/// restored tenant, or a system the deploy installed).
const RESUME_TIMEOUT: Duration = Duration::from_secs(300);

fn update(svc: &Service, id: u32, f: impl FnOnce(&mut Task)) {
    if let Some(t) = svc.tasks().tasks.get_mut(&id) {
        f(t);
    }
}

fn note(svc: &Service, id: u32, percent: u8, message: String) {
    log::info!("task {id}: {message}");
    update(svc, id, |t| {
        t.percent = percent;
        t.messages.push(message);
    });
}

/// Ends task `id`: with its last message, or its error.
fn finish(svc: &Service, id: u32, result: Result<String, String>) {
    update(svc, id, |t| {
        t.end = Some(SystemTime::now());
        match result {
            Ok(message) => {
                t.state = State::Completed;
                t.percent = 100;
                t.messages.push(message);
            }
            Err(e) => {
                log::warn!("task {}: failed: {e}", t.id);
                t.state = State::Exception;
                t.messages.push(e);
            }
        }
    });
}

/// Starts `job` as task `name` on its own thread; `Err` with the id of
/// the task that owns the server when one runs already.
fn start(
    svc: &Arc<Service>,
    name: &str,
    job: impl FnOnce(&Service, u32) -> Result<String, String> + Send + 'static,
) -> Result<Task, u32> {
    let task = {
        let mut tasks = svc.tasks();
        if let Some(busy) = tasks.busy() {
            return Err(busy);
        }
        tasks.next += 1;
        let task = Task {
            id: tasks.next,
            name: name.into(),
            state: State::Running,
            start: SystemTime::now(),
            end: None,
            percent: 0,
            messages: Vec::new(),
            oem: json!({}),
        };
        tasks.tasks.insert(task.id, task.clone());
        task
    };
    let id = task.id;
    let worker = svc.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("task-{id}"))
        .spawn(move || {
            let result = job(&worker, id);
            finish(&worker, id, result);
        });
    if let Err(e) = spawned {
        finish(svc, id, Err(format!("cannot start the task: {e}")));
    }
    Ok(task)
}

/// Starts the secure erase of the drive; returns the task, or the id of
/// the task the server is busy with.
pub fn start_erase(svc: &Arc<Service>) -> Result<Task, u32> {
    start(svc, ERASE_NAME, |svc, id| {
        let report = erase(svc, id)?;
        update(svc, id, |t| t.oem["Erase"] = report);
        Ok("The drive is erased and verified.".into())
    })
}

/// Starts the deploy of the install medium `media` (named in the
/// platform's media directory; `url` as the client gave it) on the server,
/// which is off; `Err` as for [`start_erase`].
pub fn start_deploy(svc: &Arc<Service>, media: String, url: String) -> Result<Task, u32> {
    start(svc, DEPLOY_NAME, move |svc, id| {
        deploy(svc, id, &media, &url)
    })
}

/// Starts the checkpoint of the tenant as `name`; `Err` as for
/// [`start_erase`].
pub fn start_checkpoint(svc: &Arc<Service>, name: String) -> Result<Task, u32> {
    start(svc, CHECKPOINT_NAME, move |svc, id| {
        checkpoint(svc, id, &name)
    })
}

/// Starts the restore of checkpoint `name` on this server; `Err` as for
/// [`start_erase`].
pub fn start_restore(svc: &Arc<Service>, name: String) -> Result<Task, u32> {
    start(svc, RESTORE_NAME, move |svc, id| restore(svc, id, &name))
}

fn seconds(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

/// Waits until the server is off; whether it went off in `timeout`.
fn wait_off(svc: &Service, timeout: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match svc.platform().status() {
            Ok(s) if s.power == Power::Off => return Ok(true),
            Ok(_) | Err(crate::platform::PlatformError::Timeout) => {}
            Err(e) => return Err(format!("reading the power: {e}")),
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The checkpoint (Documentation/bmgnic/migration.rst): the tenant
/// hibernates into its swap and powers off; the tenancy ends in the NIC,
/// its configuration and billing going into the checkpoint; the platform
/// keeps the disk in provider storage.
fn checkpoint(svc: &Service, id: u32, name: &str) -> Result<String, String> {
    let started = Instant::now();
    let state = svc
        .platform()
        .status()
        .map_err(|e| format!("reading the power: {e}"))?;
    if state.power != Power::On {
        return Err("the server is not running: there is no tenant to checkpoint".into());
    }
    // The kernel the tenant runs is the one its image will need.
    let kernel = svc
        .platform()
        .hibernate()
        .map_err(|e| format!("asking the tenant to hibernate: {e}"))?;
    note(
        svc,
        id,
        10,
        format!(
            "The tenant (kernel {} {}) was asked to hibernate (guest-suspend-disk).",
            kernel["release"].as_str().unwrap_or("?"),
            kernel["version"].as_str().unwrap_or("?")
        ),
    );
    if !wait_off(svc, HIBERNATE_TIMEOUT)? {
        return Err(format!(
            "the tenant did not hibernate within {} s: the server is left on",
            HIBERNATE_TIMEOUT.as_secs()
        ));
    }
    let hibernated = seconds(started);
    note(
        svc,
        id,
        50,
        format!("The tenant hibernated; the server is off after {hibernated} s."),
    );

    // The NIC forgets the tenant before its disk leaves: the server is
    // free, and nothing reaches the tenant's address here any more.
    let nic = svc
        .rme()
        .nic_config()
        .map_err(|e| format!("reading the NIC's configuration: {e}"))?;
    let ended = svc
        .rme()
        .tenant_reset()
        .map_err(|e| format!("ending the tenancy in the NIC: {e}"))?;
    let carried = svc.tasks().carried.take();
    let (before_packets, before_bytes) = carried.as_ref().map_or((0, 0), |c| (c.1, c.2));
    let mut billing = tenancy_json(&ended);
    billing["Checkpoint"] = json!(name);
    billing["CarriedPackets"] = json!(before_packets);
    billing["CarriedBytes"] = json!(before_bytes);
    billing["TotalBilledPackets"] = json!(before_packets + ended.packets);
    billing["TotalBilledBytes"] = json!(before_bytes + ended.bytes);
    svc.tasks().tenancies.push(billing.clone());
    update(svc, id, |t| t.oem["Tenancy"] = billing.clone());
    let nic_json = serde_json::to_value(&nic).map_err(|e| e.to_string())?;
    let meta = json!({ "Nic": nic_json, "Billing": billing });

    let stored = Instant::now();
    let manifest = match svc.platform().checkpoint_save(name, kernel, meta) {
        Ok(m) => m,
        Err(e) => {
            // The tenant stays here: its NIC as it was, its image on the
            // disk for a power-on to resume, and its bill goes on from
            // what the NIC counted (the tenancy did not end after all).
            let back = svc.rme().nic_config_apply(&nic);
            {
                let mut tasks = svc.tasks();
                tasks.tenancies.pop();
                tasks.carried = Some((
                    carried.map(|c| c.0).unwrap_or_default(),
                    before_packets + ended.packets,
                    before_bytes + ended.bytes,
                ));
            }
            return Err(format!(
                "storing the checkpoint: {e}; the server is off with the tenant's image on its \
                 disk, and the NIC's configuration {}",
                match back {
                    Ok(()) => "was put back".to_string(),
                    Err(e) => format!("could not be put back: {e}"),
                }
            ));
        }
    };
    let store_secs = seconds(stored);
    let image = manifest["image_bytes"].as_u64().unwrap_or(0);
    let disk = manifest["disk_bytes"].as_u64().unwrap_or(0);
    update(svc, id, |t| {
        t.oem["Checkpoint"] = json!({
            "Name": name,
            "DiskBytes": disk,
            "ImageBytes": image,
            "Kernel": manifest["kernel"],
            "HibernateSeconds": hibernated,
            "StoreSeconds": store_secs,
        })
    });
    Ok(format!(
        "Checkpoint {name} stored in {} s: a {} MiB hibernation image on a {} MiB disk.",
        seconds(started),
        image >> 20,
        disk >> 20
    ))
}

/// The restore of checkpoint `name` on this server: the platform checks
/// and copies the disk; the NIC gets the tenant's configuration before
/// the power comes on; the tenant's kernel resumes from its image.
fn restore(svc: &Service, id: u32, name: &str) -> Result<String, String> {
    let started = Instant::now();
    let state = svc
        .platform()
        .status()
        .map_err(|e| format!("reading the power: {e}"))?;
    if state.power != Power::Off {
        return Err("the server must be off to restore a checkpoint onto it".into());
    }
    // Checked before the disk is touched: the NIC must be free.
    let held = svc
        .rme()
        .nic_config()
        .map_err(|e| format!("reading the NIC: {e}"))?
        .held();
    if !held.is_empty() {
        return Err(format!(
            "the NIC has a tenant ({}): end its tenancy (Drive.SecureErase) before a restore",
            held.join(", ")
        ));
    }
    let manifest = svc
        .platform()
        .checkpoint_restore(name)
        .map_err(|e| format!("restoring checkpoint {name}: {e}"))?;
    note(
        svc,
        id,
        30,
        format!(
            "Checkpoint {name} is on the disk after {} s.",
            seconds(started)
        ),
    );
    let meta = &manifest["meta"];
    let mut nic: crate::rme::NicConfig = serde_json::from_value(meta["Nic"].clone())
        .map_err(|e| format!("checkpoint {name}: its NIC configuration is unreadable: {e}"))?;
    // The tenant's identity, VNI, peers and rules go with it; the VTEP it
    // sends from is this server's.
    if let (Some(tenant), Some((mac, ip))) = (nic.tenant.as_mut(), svc.local_vtep) {
        tenant.local_mac = mac;
        tenant.local_ip = ip;
    }
    if let Err(e) = svc.rme().nic_config_apply(&nic) {
        let _ = svc.rme().tenant_reset();
        return Err(format!(
            "giving the NIC the tenant's configuration: {e}; the server is left off"
        ));
    }
    let billing = &meta["Billing"];
    let carried = (
        name.to_string(),
        billing["TotalBilledPackets"].as_u64().unwrap_or(0),
        billing["TotalBilledBytes"].as_u64().unwrap_or(0),
    );
    update(svc, id, |t| {
        t.oem["Restore"] = json!({
            "Name": name,
            "CarriedPackets": carried.1,
            "CarriedBytes": carried.2,
        })
    });
    svc.tasks().carried = Some(carried);
    note(
        svc,
        id,
        50,
        "The NIC has the tenant's identity, tenant, VTEPs, meters and rules.".into(),
    );
    let resumed = power_on_until_the_agent_answers(svc, "the tenant's")?;
    update(svc, id, |t| {
        t.oem["Restore"]["ResumeSeconds"] = json!(resumed)
    });
    Ok(format!(
        "The tenant runs again: its guest agent answered {resumed} s after the power-on ({} s in all).",
        seconds(started)
    ))
}

/// Powers the server on and waits for `whose` guest agent to answer;
/// returns the seconds it took.
fn power_on_until_the_agent_answers(svc: &Service, whose: &str) -> Result<f64, String> {
    svc.platform()
        .power_on()
        .map_err(|e| format!("powering on: {e}"))?;
    let powered = Instant::now();
    let deadline = powered + RESUME_TIMEOUT;
    while svc.platform().guest_ping().is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "{whose} guest agent did not answer within {} s of the power-on",
                RESUME_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(seconds(powered))
}

fn tenancy_json(t: &Tenancy) -> Value {
    json!({
        "EndTime": rfc3339(SystemTime::now()),
        "RulesRemoved": t.flows,
        "BilledPackets": t.packets,
        "BilledBytes": t.bytes,
        "PortCounters": {
            "TxPackets": t.counters.tx_packets,
            "TxBytes": t.counters.tx_bytes,
            "RxPackets": t.counters.rx_packets,
            "RxBytes": t.counters.rx_bytes,
            "TableMisses": t.counters.table_misses,
        },
    })
}

/// The platform's console from `offset` to its end, as text.
fn console_from(svc: &Service, mut offset: u64) -> Result<(String, u64), String> {
    let mut text = Vec::new();
    loop {
        let (data, next) = svc.platform().console(offset).map_err(|e| e.to_string())?;
        if data.is_empty() {
            return Ok((String::from_utf8_lossy(&text).into_owned(), next));
        }
        text.extend_from_slice(&data);
        offset = next;
    }
}

/// The cleanup system's report in `console`, if it printed one.
pub fn find_report(console: &str) -> Option<Result<Value, String>> {
    let line = console.lines().rev().find_map(|l| {
        l.find(RESULT_MARK)
            .map(|at| l[at + RESULT_MARK.len()..].trim())
    })?;
    Some(match serde_json::from_str::<Value>(line) {
        Ok(report) if report["ok"] == json!(true) => Ok(report),
        Ok(report) => Err(format!(
            "the cleanup system failed: {}",
            report["error"].as_str().unwrap_or("no reason given")
        )),
        Err(e) => Err(format!("the cleanup system's report is not JSON: {e}")),
    })
}

/// A platform error as a task's message, saying what it was doing.
fn platform_err(what: &str) -> impl FnOnce(crate::platform::PlatformError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn erase(svc: &Service, id: u32) -> Result<Value, String> {
    // The tenant leaves: nothing of it stays in the NIC, what it was
    // billed stays with the RME.
    let ended = svc
        .rme()
        .tenant_reset()
        .map_err(|e| format!("ending the tenancy in the NIC: {e}"))?;
    let mut billing = tenancy_json(&ended);
    if let Some((checkpoint, packets, bytes)) = svc.tasks().carried.take() {
        // The tenant came here in a checkpoint: its bill goes on.
        billing["RestoredFrom"] = json!(checkpoint);
        billing["TotalBilledPackets"] = json!(packets + ended.packets);
        billing["TotalBilledBytes"] = json!(bytes + ended.bytes);
    }
    svc.tasks().tenancies.push(billing.clone());
    update(svc, id, |t| t.oem["Tenancy"] = billing);
    note(
        svc,
        id,
        10,
        format!(
            "Tenancy ended in the NIC: {} rules removed, {} packets and {} bytes billed.",
            ended.flows, ended.packets, ended.bytes
        ),
    );

    svc.platform()
        .force_off()
        .map_err(platform_err("powering off"))?;
    let media = svc.erase_media.clone();
    boot_cleanup_system(svc, id, &media, "erase", 20)
}

/// Boots the cleanup system on `media` once (the server is off): the
/// medium in, a one-time boot from the CD, power on; then reads the
/// server's console until the system reports job `job`, waits for it to
/// power off and takes the medium out. Notes progress from `percent`.
fn boot_cleanup_system(
    svc: &Service,
    id: u32,
    media: &str,
    job: &str,
    percent: u8,
) -> Result<Value, String> {
    let state = svc
        .platform()
        .status()
        .map_err(platform_err("reading the power"))?;
    if state.power != Power::Off {
        return Err("the server is not off".into());
    }
    // The deploy's medium went in with its request.
    if state.media.image.as_deref() != Some(media) {
        if state.media.inserted {
            svc.platform()
                .media_eject()
                .map_err(platform_err("ejecting the medium"))?;
        }
        svc.platform()
            .media_insert(media)
            .map_err(platform_err(&format!("inserting {media}")))?;
    }
    svc.platform()
        .boot(BootTarget::Cd, true)
        .map_err(platform_err("booting from the CD"))?;
    let (_, mut offset) = console_from(svc, 0)?;
    svc.platform()
        .power_on()
        .map_err(platform_err("powering on"))?;
    note(
        svc,
        id,
        percent,
        format!("The server boots the cleanup system from {media} ({job})."),
    );

    let deadline = Instant::now() + ERASE_TIMEOUT;
    let mut console = String::new();
    let report = loop {
        let (text, next) = console_from(svc, offset)?;
        console.push_str(&text);
        offset = next;
        if let Some(report) = find_report(&console) {
            break report.and_then(|r| {
                // The medium decides the job: a wrong one is no success.
                if r["job"] == json!(job) {
                    Ok(r)
                } else {
                    Err(format!(
                        "{media} ran job {}, not {job}",
                        r["job"].as_str().unwrap_or("?")
                    ))
                }
            });
        }
        let power = svc
            .platform()
            .status()
            .map_err(platform_err("reading the power"))?
            .power;
        if power == Power::Off {
            break Err("the server powered off without a report from the cleanup system".into());
        }
        if Instant::now() > deadline {
            let _ = svc.platform().force_off();
            break Err("the cleanup system did not report in time".into());
        }
        std::thread::sleep(POLL);
    };

    let off_by = Instant::now() + POWER_OFF_TIMEOUT;
    while svc.platform().status().map(|s| s.power) != Ok(Power::Off) {
        if Instant::now() > off_by {
            svc.platform()
                .force_off()
                .map_err(platform_err("powering off"))?;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    svc.platform()
        .media_eject()
        .map_err(platform_err(&format!("ejecting {media}")))?;
    note(
        svc,
        id,
        percent.max(80),
        "The cleanup system is done; the medium is out.".into(),
    );
    report
}

/// The deploy (Ironic's virtual-media deploy, done by the RME): the
/// server is off; the cleanup system on the install medium `media`
/// writes the tenant image to the disk and reads it back; then the
/// server boots its disk and the task ends when the tenant's guest agent
/// answers.
fn deploy(svc: &Service, id: u32, media: &str, url: &str) -> Result<String, String> {
    let started = Instant::now();
    let report = boot_cleanup_system(svc, id, media, "install", 10)?;
    let installed = seconds(started);
    update(svc, id, |t| {
        t.oem["Install"] = json!({
            "Image": url,
            "Bytes": report["bytes"],
            "Sha256": report["sha256"],
            "WriteSeconds": report["seconds"],
            "InstallSeconds": installed,
        })
    });
    note(
        svc,
        id,
        90,
        format!(
            "The image is written and verified after {installed} s; the server boots its disk."
        ),
    );
    // The one-time boot from the CD is spent: the server boots its disk.
    let booted = power_on_until_the_agent_answers(svc, "the installed system's")?;
    update(svc, id, |t| t.oem["Install"]["BootSeconds"] = json!(booted));
    Ok(format!(
        "The tenant's system is installed from {url} and runs: its guest agent answered {booted} s \
         after the power-on ({} s in all).",
        seconds(started)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600);
        assert_eq!(rfc3339(leap), "2000-02-29T12:00:00Z");
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 12:00:00 GMT");
        assert_eq!(http_date(t), "Wed, 18 Nov 2026 11:06:40 GMT");
    }

    #[test]
    fn reports_are_read_from_the_console() {
        assert_eq!(find_report("booting\nnothing yet\n"), None);
        let ok =
            "x\nbmgnic-cleanup: result {\"job\":\"erase\",\"ok\":true,\"nonzero_blocks\":0}\r\n";
        assert_eq!(
            find_report(ok).unwrap().unwrap()["nonzero_blocks"],
            json!(0)
        );
        let failed =
            "bmgnic-cleanup: result {\"job\":\"erase\",\"ok\":false,\"error\":\"no disk\"}";
        assert_eq!(
            find_report(failed).unwrap().unwrap_err(),
            "the cleanup system failed: no disk"
        );
        assert!(find_report("bmgnic-cleanup: result {garbage")
            .unwrap()
            .is_err());
    }
}
