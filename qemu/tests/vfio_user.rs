// SPDX-License-Identifier: GPL-2.0

//! Drives the model binary over its vfio-user socket, as QEMU would.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::{VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX};
use vfio_user::Client;

struct Model {
    child: Child,
    dir: PathBuf,
}

impl Model {
    fn start(name: &str) -> (Self, PathBuf) {
        let dir = std::env::temp_dir().join(format!("bmgnic-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("vfio.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_bmgnic-model"))
            .arg("--socket")
            .arg(&socket)
            .arg("--fabric")
            .arg(format!(
                "local={},remote={}",
                dir.join("fab.model").display(),
                dir.join("fab.peer").display()
            ))
            .arg("--log-level=warn")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "model did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        (Self { child, dir }, socket)
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "model did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read32(client: &mut Client, region: u32, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    client.region_read(region, offset, &mut b).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn serves_config_space_and_bar0_then_exits_on_disconnect() {
    let (mut model, socket) = Model::start("serve");
    let mut client = Client::new(&socket).unwrap();
    assert_eq!(
        read32(&mut client, VFIO_PCI_CONFIG_REGION_INDEX, 0),
        0x10f0_1af4
    );
    assert_eq!(
        read32(&mut client, VFIO_PCI_CONFIG_REGION_INDEX, 8) >> 8,
        0x02_00_00
    );
    assert_eq!(
        read32(&mut client, VFIO_PCI_BAR0_REGION_INDEX, 0),
        0x424d_474e
    );
    assert_eq!(
        read32(&mut client, VFIO_PCI_BAR0_REGION_INDEX, 4),
        0x0000_0003
    );
    // A guest write to the read-only ID register changes nothing.
    client
        .region_write(VFIO_PCI_BAR0_REGION_INDEX, 0, &0u32.to_le_bytes())
        .unwrap();
    assert_eq!(
        read32(&mut client, VFIO_PCI_BAR0_REGION_INDEX, 0),
        0x424d_474e
    );
    let info = client.region(VFIO_PCI_BAR0_REGION_INDEX).unwrap();
    assert_eq!(info.size, 0x4000);
    drop(client);
    assert!(model.wait_exit().success());
    assert!(!socket.exists(), "model left its socket behind");
}

#[test]
fn sigterm_stops_the_model_and_removes_its_sockets() {
    let (mut model, socket) = Model::start("sigterm");
    let pid = model.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(model.wait_exit().success());
    assert!(!socket.exists());
    assert!(!model.dir.join("fab.model").exists());
}
