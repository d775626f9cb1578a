// SPDX-License-Identifier: GPL-2.0

//! The platform channel: JSON lines between the RME and the board
//! (Documentation/bmgnic/platform.rst, "The channel").
//!
//! In the rack the RME VM's QEMU connects a virtio-serial port to the
//! unix socket [`serve`] listens on: the emulated BMC's wires. Requests
//! are answered in order, one line each; a bad line gets an error answer
//! and the channel goes on.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use log::{info, warn};
use serde_json::{json, Value};

use super::checkpoint::KernelBuild;
use super::Board;

/// The longest request line.
pub const MAX_LINE: usize = 64 * 1024;

fn string_arg<'a>(request: &'a Value, name: &str) -> Result<&'a str, String> {
    request
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("'{name}' (a string) is required"))
}

/// Carries out one request; returns its answer (without the id).
fn dispatch(board: &mut Board, request: &Value) -> Result<Value, String> {
    let op = string_arg(request, "op")?;
    let mut extra = json!({});
    match op {
        "status" => {}
        "power-on" => board.power_on()?,
        "force-off" => board.force_off()?,
        "graceful-shutdown" => board.graceful_shutdown()?,
        "reset" => board.reset()?,
        "power-cycle" => board.power_cycle()?,
        "pause" => board.pause()?,
        "resume" => board.resume()?,
        "boot" => {
            let once = match request.get("once") {
                None => false,
                Some(v) => v.as_bool().ok_or("'once' must be a boolean")?,
            };
            board.set_boot(string_arg(request, "target")?, once)?
        }
        "media-insert" => board.insert_media(string_arg(request, "image")?)?,
        "media-eject" => board.eject_media()?,
        "media-store" => {
            let offset = request
                .get("offset")
                .and_then(Value::as_u64)
                .ok_or("'offset' (a byte offset) is required")?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(string_arg(request, "data")?)
                .map_err(|e| format!("'data' is not base64: {e}"))?;
            let last = match request.get("last") {
                None => false,
                Some(v) => v.as_bool().ok_or("'last' must be a boolean")?,
            };
            board.store_media(string_arg(request, "name")?, offset, &data, last)?
        }
        "media-discard" => board.discard_media(string_arg(request, "name")?)?,
        "console" => {
            let offset = match request.get("offset") {
                None => 0,
                Some(v) => v.as_u64().ok_or("'offset' must be a byte offset")?,
            };
            let (data, next) = board.console(offset)?;
            extra = json!({
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "next": next,
            });
        }
        "hibernate" => {
            let kernel = board.hibernate()?;
            extra = json!({ "kernel": kernel.to_json() });
        }
        "guest-ping" => board.guest_ping()?,
        "checkpoint-save" => {
            let meta = request.get("meta").cloned().unwrap_or(Value::Null);
            let kernel = request
                .get("kernel")
                .and_then(KernelBuild::from_json)
                .ok_or(
                    "'kernel' (release, version, machine: what hibernate answered) is required",
                )?;
            let manifest = board.checkpoint_save(string_arg(request, "name")?, &kernel, meta)?;
            extra = json!({ "checkpoint": manifest });
        }
        "checkpoint-restore" => {
            let manifest = board.checkpoint_restore(string_arg(request, "name")?)?;
            extra = json!({ "checkpoint": manifest });
        }
        _ => return Err(format!("unknown request '{op}'")),
    }
    extra["ok"] = json!(true);
    extra["state"] = board.state();
    Ok(extra)
}

/// Answers one request line.
pub fn answer(board: &mut Board, line: &[u8]) -> Value {
    let request: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return json!({ "id": null, "ok": false, "error": "a request is a JSON object" }),
        Err(e) => return json!({ "id": null, "ok": false, "error": format!("not JSON: {e}") }),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let mut answer = match dispatch(board, &request) {
        Ok(a) => a,
        Err(error) => {
            info!("request refused: {error}");
            json!({ "ok": false, "error": error })
        }
    };
    answer["id"] = id;
    answer
}

/// Reads one line of at most [`MAX_LINE`] bytes. `Ok(None)` at the end
/// of the stream; an over-long line is consumed and given as `Err`.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
        // Skip the rest of it.
        let mut rest = Vec::new();
        reader.read_until(b'\n', &mut rest)?;
        return Ok(Some(Err(())));
    }
    Ok(Some(Ok(line)))
}

/// Serves one connection until it closes.
pub fn serve_stream(board: &Mutex<Board>, stream: UnixStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(line) = read_line(&mut reader)? {
        let answer = match line {
            Ok(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(line) => answer(
                &mut board.lock().unwrap_or_else(PoisonError::into_inner),
                &line,
            ),
            Err(()) => json!({ "id": null, "ok": false, "error": "request line too long" }),
        };
        let mut text = answer.to_string();
        text.push('\n');
        writer.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// Accepts connections on `listener` for ever, one thread each (the RME,
/// and a host-side tool looking on).
pub fn serve(board: Arc<Mutex<Board>>, listener: UnixListener) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let board = board.clone();
                std::thread::spawn(move || {
                    info!("channel: connected");
                    if let Err(e) = serve_stream(&board, stream) {
                        warn!("channel: {e}");
                    }
                    info!("channel: disconnected");
                });
            }
            Err(e) => warn!("channel: accept: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::BoardConfig;

    fn board() -> Board {
        Board::new(BoardConfig {
            qemu: vec!["/nonexistent/qemu".into()],
            qmp: "/nonexistent/qmp".into(),
            console: None,
            disk: None,
            media_dir: None,
            guest_agent: None,
            checkpoints: None,
            netboot: None,
        })
    }

    #[test]
    fn bad_lines_get_errors_and_keep_the_id() {
        let mut b = board();
        assert_eq!(answer(&mut b, b"garbage")["ok"], json!(false));
        assert_eq!(
            answer(&mut b, b"[1,2]")["error"],
            json!("a request is a JSON object")
        );
        let a = answer(&mut b, br#"{"id": 4, "op": "frobnicate"}"#);
        assert_eq!(a["id"], json!(4));
        assert_eq!(a["error"], json!("unknown request 'frobnicate'"));
        let a = answer(&mut b, br#"{"id": 5, "op": "boot", "target": "pxe"}"#);
        assert_eq!(
            a["error"],
            json!("pxe: this server has no provisioning network")
        );
        let a = answer(&mut b, br#"{"id": 6, "op": "boot", "target": "hdd"}"#);
        assert_eq!(a["error"], json!("hdd: this server has no disk"));
    }

    #[test]
    fn an_off_server_reports_off_and_refuses_buttons() {
        let mut b = board();
        let a = answer(&mut b, br#"{"id": 1, "op": "status"}"#);
        assert_eq!(a["ok"], json!(true));
        assert_eq!(a["state"]["power"], json!("off"));
        assert_eq!(a["state"]["disk"]["present"], json!(false));
        for op in ["pause", "resume", "reset", "graceful-shutdown"] {
            let a = answer(&mut b, format!(r#"{{"id": 2, "op": "{op}"}}"#).as_bytes());
            assert_eq!(a["error"], json!("the server is off"), "{op}");
        }
        // Cutting the power of an off server changes nothing.
        assert_eq!(answer(&mut b, br#"{"op": "force-off"}"#)["ok"], json!(true));
        // A QEMU that cannot start leaves the power off.
        let a = answer(&mut b, br#"{"op": "power-on"}"#);
        assert_eq!(a["ok"], json!(false));
        assert_eq!(b.state()["power"], json!("off"));
    }

    const KERNEL: &str =
        r##""kernel": {"release": "7.3.0", "version": "#1 SMP", "machine": "x86_64"}"##;

    #[test]
    fn checkpoints_need_storage_a_disk_and_the_power_off() {
        let mut b = board();
        let a = answer(&mut b, br#"{"op": "checkpoint-save", "name": "c1"}"#);
        assert_eq!(a["ok"], json!(false));
        let a = answer(
            &mut b,
            format!(r#"{{"op": "checkpoint-save", "name": "c1", {KERNEL}}}"#).as_bytes(),
        );
        assert_eq!(a["error"], json!("this board has no checkpoint storage"));
        let a = answer(&mut b, br#"{"op": "checkpoint-restore"}"#);
        assert_eq!(a["ok"], json!(false));
        let dir = std::env::temp_dir().join(format!("bmgnic-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk.img");
        std::fs::write(&disk, vec![0u8; 4096]).unwrap();
        let mut b = Board::new(BoardConfig {
            disk: Some(disk.clone()),
            checkpoints: Some(dir.clone()),
            ..board().config.clone()
        });
        // A disk without a partition table, let alone a hibernation
        // image, is not stored, and a missing checkpoint is not restored:
        // the disk is left as it was.
        let a = answer(
            &mut b,
            format!(r#"{{"op": "checkpoint-save", "name": "c1", {KERNEL}}}"#).as_bytes(),
        );
        assert_eq!(a["error"], json!("the disk has no MBR partition table"));
        assert!(!dir.join("c1.json").exists());
        let a = answer(&mut b, br#"{"op": "checkpoint-restore", "name": "c1"}"#);
        assert_eq!(a["error"], json!("no checkpoint 'c1' in provider storage"));
        let a = answer(
            &mut b,
            format!(r#"{{"op": "checkpoint-save", "name": "../c1", {KERNEL}}}"#).as_bytes(),
        );
        assert_eq!(a["ok"], json!(false));
        assert_eq!(std::fs::read(&disk).unwrap(), vec![0u8; 4096]);
        // The guest agent is only reached while the server runs.
        let a = answer(&mut b, br#"{"op": "hibernate"}"#);
        assert_eq!(a["error"], json!("the server is off"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn media_names_cannot_leave_the_media_directory() {
        let dir = std::env::temp_dir().join(format!("bmgnic-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cd.iso"), b"x").unwrap();
        let mut b = Board::new(BoardConfig {
            media_dir: Some(dir.clone()),
            ..board().config.clone()
        });
        for bad in ["../etc/passwd", "/etc/passwd", "", ".hidden", "missing.iso"] {
            assert!(b.insert_media(bad).is_err(), "{bad}");
        }
        b.insert_media("cd.iso").unwrap();
        assert_eq!(b.state()["media"]["image"], json!("cd.iso"));
        assert!(b.insert_media("cd.iso").is_err());
        b.eject_media().unwrap();
        assert_eq!(b.state()["media"]["inserted"], json!(false));
        b.set_boot("cd", true).unwrap();
        assert_eq!(b.state()["boot"], json!({"target": "cd", "once": true}));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stored_images_arrive_in_order_and_never_replace_the_providers() {
        let dir = std::env::temp_dir().join(format!("bmgnic-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("erase.iso"), b"provider").unwrap();
        let mut b = Board::new(BoardConfig {
            media_dir: Some(dir.clone()),
            ..board().config.clone()
        });
        let store = |b: &mut Board, name: &str, offset: u64, data: &[u8], last: bool| {
            let line = json!({
                "op": "media-store", "name": name, "offset": offset, "last": last,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            });
            answer(b, line.to_string().as_bytes())
        };
        assert_eq!(
            store(&mut b, "erase.iso", 0, b"evil", true)["ok"],
            json!(false)
        );
        assert_eq!(
            store(&mut b, "remote-../x", 0, b"evil", true)["ok"],
            json!(false)
        );
        assert_eq!(std::fs::read(dir.join("erase.iso")).unwrap(), b"provider");
        assert_eq!(
            store(&mut b, "remote-a.iso", 0, b"abc", false)["ok"],
            json!(true)
        );
        // Not insertable before its last piece; a gap is refused.
        assert!(b.insert_media("remote-a.iso").is_err());
        let gap = store(&mut b, "remote-a.iso", 9, b"x", false);
        assert_eq!(gap["ok"], json!(false), "{gap}");
        assert_eq!(
            store(&mut b, "remote-a.iso", 3, b"def", true)["ok"],
            json!(true)
        );
        assert_eq!(std::fs::read(dir.join("remote-a.iso")).unwrap(), b"abcdef");
        let a = answer(
            &mut b,
            br#"{"op": "media-store", "name": "remote-b", "offset": 0, "data": "!!"}"#,
        );
        assert_eq!(a["ok"], json!(false));
        // The image in the drive stays as it is.
        b.insert_media("remote-a.iso").unwrap();
        assert_eq!(
            store(&mut b, "remote-a.iso", 0, b"new", true)["ok"],
            json!(false)
        );
        assert_eq!(std::fs::read(dir.join("remote-a.iso")).unwrap(), b"abcdef");
        // A failed download is discarded; the image in the drive is not.
        let discard = |b: &mut Board, name: &str| {
            let line = json!({"op": "media-discard", "name": name});
            answer(b, line.to_string().as_bytes())
        };
        assert_eq!(
            store(&mut b, "remote-b.iso", 0, b"half", false)["ok"],
            json!(true)
        );
        assert!(dir.join(".remote-b.iso.part").exists());
        assert_eq!(discard(&mut b, "remote-b.iso")["ok"], json!(true));
        assert!(!dir.join(".remote-b.iso.part").exists());
        assert_eq!(discard(&mut b, "remote-a.iso")["ok"], json!(false));
        assert_eq!(discard(&mut b, "erase.iso")["ok"], json!(false));
        // A new image replaces what else was stored, never the drive's.
        assert_eq!(
            store(&mut b, "remote-c.iso", 0, b"left", false)["ok"],
            json!(true)
        );
        assert_eq!(
            store(&mut b, "remote-d.iso", 0, b"next", false)["ok"],
            json!(true)
        );
        assert!(!dir.join(".remote-c.iso.part").exists());
        assert!(dir.join("remote-a.iso").exists());
        // Ejected, a stored image is gone; the provider's stay.
        b.eject_media().unwrap();
        assert!(!dir.join("remote-a.iso").exists());
        b.insert_media("erase.iso").unwrap();
        b.eject_media().unwrap();
        assert_eq!(std::fs::read(dir.join("erase.iso")).unwrap(), b"provider");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_lines_are_refused_and_the_stream_goes_on() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(b"{\"op\":\"status\"}\n");
        let mut reader = std::io::Cursor::new(input);
        assert_eq!(read_line(&mut reader).unwrap(), Some(Err(())));
        let line = read_line(&mut reader).unwrap().unwrap().unwrap();
        assert_eq!(line, b"{\"op\":\"status\"}\n");
        assert_eq!(read_line(&mut reader).unwrap(), None);
    }
}
