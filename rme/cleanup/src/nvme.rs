// SPDX-License-Identifier: GPL-2.0

//! NVMe admin commands through Linux's passthrough ioctl: Identify and
//! Format NVM (NVMe Base Specification 2.0, 5.15 and 5.23).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct nvme_passthru_cmd` of `<linux/nvme_ioctl.h>`.
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)`.
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<PassthruCmd>() as libc::c_ulong) << 16) | (0x4e << 8) | 0x41;

const OPC_IDENTIFY: u8 = 0x06;
const OPC_FORMAT_NVM: u8 = 0x80;
const CNS_NAMESPACE: u32 = 0x00;
const CNS_CONTROLLER: u32 = 0x01;
/// Identify Controller: Format NVM Attributes.
const ID_CTRL_FNA: usize = 524;
/// FNA bit 2: cryptographic erase is supported.
const FNA_CRYPTO_ERASE: u8 = 1 << 2;
/// Identify Namespace: Formatted LBA Size.
const ID_NS_FLBAS: usize = 26;

/// Secure Erase Settings of Format NVM (CDW10 bits 11:9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecureErase {
    /// User data erase.
    UserData = 1,
    /// Cryptographic erase.
    Crypto = 2,
}

/// An NVMe controller's character device (`/dev/nvme0`).
pub struct Controller {
    file: File,
}

impl Controller {
    /// Opens `path`.
    pub fn open(path: &str) -> io::Result<Self> {
        Ok(Self {
            file: File::options().read(true).write(true).open(path)?,
        })
    }

    fn admin(&self, cmd: &mut PassthruCmd) -> io::Result<u32> {
        // SAFETY: `cmd` is a valid `nvme_passthru_cmd` for the duration of
        // the call, and its `addr`/`data_len`, when set, describe a buffer
        // the caller keeps alive and large enough.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, cmd as *mut _) };
        match rc {
            0 => Ok(cmd.result),
            rc if rc < 0 => Err(io::Error::last_os_error()),
            status => Err(io::Error::other(format!("NVMe status 0x{status:x}"))),
        }
    }

    fn identify(&self, cns: u32, nsid: u32) -> io::Result<Vec<u8>> {
        let mut data = vec![0u8; 4096];
        let mut cmd = PassthruCmd {
            opcode: OPC_IDENTIFY,
            nsid,
            addr: data.as_mut_ptr() as u64,
            data_len: data.len() as u32,
            cdw10: cns,
            ..Default::default()
        };
        self.admin(&mut cmd)?;
        Ok(data)
    }

    /// Whether Format NVM can erase cryptographically.
    pub fn crypto_erase_supported(&self) -> io::Result<bool> {
        Ok(self.identify(CNS_CONTROLLER, 0)?[ID_CTRL_FNA] & FNA_CRYPTO_ERASE != 0)
    }

    /// The namespace's current LBA format index.
    pub fn current_lba_format(&self, nsid: u32) -> io::Result<u32> {
        let flbas = self.identify(CNS_NAMESPACE, nsid)?[ID_NS_FLBAS];
        // Bits 3:0 and, since NVMe 2.0, 6:5 as the upper bits.
        Ok(u32::from(flbas & 0x0f) | (u32::from(flbas >> 5 & 0x03) << 4))
    }

    /// Format NVM of namespace `nsid` in its current LBA format.
    pub fn format(&self, nsid: u32, ses: SecureErase) -> io::Result<()> {
        let lbaf = self.current_lba_format(nsid)?;
        let mut cmd = PassthruCmd {
            opcode: OPC_FORMAT_NVM,
            nsid,
            cdw10: (lbaf & 0x0f) | ((ses as u32) << 9) | ((lbaf >> 4 & 0x03) << 12),
            // A format may take long on a real drive.
            timeout_ms: 600_000,
            ..Default::default()
        };
        self.admin(&mut cmd).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        assert_eq!(std::mem::size_of::<PassthruCmd>(), 72);
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xC048_4E41);
    }
}
