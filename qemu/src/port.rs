// SPDX-License-Identifier: GPL-2.0

//! Ethernet ports of the model (fabric and NC-SI sideband).
//!
//! Each port is a unix datagram socket pair that QEMU's own
//! `-netdev dgram,local.type=unix,...,remote.type=unix,...` speaks: one raw
//! Ethernet frame per datagram, no header, either side may restart.

use crate::regs::guest;
use crate::vxlan;
use socket2::{SockAddr, SockRef};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Largest frame a port carries: a guest frame of the largest MTU inside
/// VXLAN on the fabric (NC-SI frames are far shorter).
pub const MAX_FRAME: usize = guest::MAX_FRAME_LEN + vxlan::OUTER_HLEN;

/// Where a port's datagrams come from and go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Path this end binds.
    pub local: PathBuf,
    /// Path of the peer (a QEMU `-netdev dgram` local path).
    pub remote: PathBuf,
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    /// Parses `local=PATH,remote=PATH`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (mut local, mut remote) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("local", p)) if !p.is_empty() => local = Some(PathBuf::from(p)),
                Some(("remote", p)) if !p.is_empty() => remote = Some(PathBuf::from(p)),
                _ => {
                    return Err(format!(
                        "bad port part '{part}': want local=PATH,remote=PATH"
                    ))
                }
            }
        }
        match (local, remote) {
            (Some(local), Some(remote)) => Ok(Self { local, remote }),
            _ => Err("a port needs local=PATH,remote=PATH".into()),
        }
    }
}

/// A bound Ethernet port.
pub struct Port {
    name: &'static str,
    socket: UnixDatagram,
    remote: PathBuf,
    /// `remote` as a socket address, for [`Self::try_send`].
    remote_addr: SockAddr,
}

impl Port {
    /// Binds `spec.local`, replacing a stale socket file.
    pub fn bind(name: &'static str, spec: &PortSpec) -> io::Result<Self> {
        remove_stale(&spec.local)?;
        let socket = UnixDatagram::bind(&spec.local)?;
        Ok(Self {
            name,
            socket,
            remote: spec.remote.clone(),
            remote_addr: SockAddr::unix(&spec.remote)?,
        })
    }

    /// The port's name, for logs.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Sends one frame to the peer. A peer that is not there (yet) loses the
    /// frame, as a cable without a link partner would. A peer that is there
    /// but not reading (a paused VM) makes this wait until it reads.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        lost_without_partner(self.socket.send_to(frame, &self.remote))
    }

    /// Sends one frame to the peer if its socket has room now, as
    /// [`Self::send`] otherwise; returns `Ok(false)`, with nothing sent,
    /// where [`Self::send`] would wait.
    pub fn try_send(&self, frame: &[u8]) -> io::Result<bool> {
        let sent = SockRef::from(&self.socket).send_to_with_flags(
            frame,
            &self.remote_addr,
            libc::MSG_DONTWAIT,
        );
        match sent {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            sent => lost_without_partner(sent).map(|()| true),
        }
    }

    /// Whether a link partner is there: a socket is bound at the remote
    /// path (connecting a datagram socket sends nothing). A partner that
    /// closed its socket or whose path is gone is a pulled cable.
    pub fn partner_present(&self) -> bool {
        UnixDatagram::unbound()
            .and_then(|probe| probe.connect(&self.remote))
            .is_ok()
    }

    /// Receives one frame into `buf`, returning its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf)
    }

    /// Makes [`Self::recv`] give up after `timeout` with `WouldBlock`
    /// (on every handle of the socket), so a receiver can see a shutdown.
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    /// A second handle on the same socket (for a receive thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            name: self.name,
            socket: self.socket.try_clone()?,
            remote: self.remote.clone(),
            remote_addr: self.remote_addr.clone(),
        })
    }
}

/// A send's result, where a missing link partner loses the frame.
fn lost_without_partner(sent: io::Result<usize>) -> io::Result<()> {
    match sent {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes a socket file left by an earlier run; refuses other files.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_spec() {
        let spec: PortSpec = "local=/tmp/a.sock,remote=/tmp/b.sock".parse().unwrap();
        assert_eq!(spec.local, PathBuf::from("/tmp/a.sock"));
        assert_eq!(spec.remote, PathBuf::from("/tmp/b.sock"));
        assert!("local=/tmp/a".parse::<PortSpec>().is_err());
        assert!("remote=/x,bogus=1".parse::<PortSpec>().is_err());
        assert!("local=,remote=/x".parse::<PortSpec>().is_err());
    }

    #[test]
    fn partner_present_follows_the_remote_socket() {
        let dir = std::env::temp_dir().join(format!("bmgnic-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let port = Port::bind(
            "a",
            &PortSpec {
                local: a,
                remote: b.clone(),
            },
        )
        .unwrap();
        assert!(!port.partner_present(), "no socket at the remote path");
        let partner = UnixDatagram::bind(&b).unwrap();
        assert!(port.partner_present());
        let unplugged = dir.join("b.unplugged");
        std::fs::rename(&b, &unplugged).unwrap();
        assert!(!port.partner_present(), "the path is gone");
        std::fs::rename(&unplugged, &b).unwrap();
        assert!(port.partner_present(), "the same socket is back");
        drop(partner);
        assert!(!port.partner_present(), "the partner closed its socket");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frames_cross_a_datagram_pair() {
        let dir = std::env::temp_dir().join(format!("bmgnic-port-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let pa = Port::bind(
            "a",
            &PortSpec {
                local: a.clone(),
                remote: b.clone(),
            },
        )
        .unwrap();
        let pb = Port::bind(
            "b",
            &PortSpec {
                local: b,
                remote: a,
            },
        )
        .unwrap();
        let frame = [0x5au8; 60];
        pa.send(&frame).unwrap();
        let mut buf = [0u8; MAX_FRAME];
        let n = pb.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &frame);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
