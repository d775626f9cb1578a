// SPDX-License-Identifier: GPL-2.0

//! NC-SI frames from the sideband, through the responder into the RME bank.

#![no_main]

use bmgnic_model::device::{Bmgnic, DeviceConfig};
use bmgnic_model::ncsi::{NcsiBackend, NcsiResponder};
use bmgnic_model::ncsi_oem::OemHeader;
use libfuzzer_sys::fuzz_target;

struct Backend(Bmgnic);

impl NcsiBackend for Backend {
    fn link_up(&self) -> bool {
        true
    }

    fn oem(&mut self, header: &OemHeader, records: &[u8], out: &mut Vec<u8>) -> Result<u8, u16> {
        let stats = *self.0.stats();
        self.0.rme.handle_oem(header, records, out, &stats, 0)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut responder = NcsiResponder::new([2, 0, 0, 0, 0, 1]);
    let mut backend = Backend(Bmgnic::new(DeviceConfig { table_size: 64 }));
    // Several frames per input, so that state (channel enabled, identity
    // set) carries from one command to the next.
    for frame in data.split(|&b| b == 0xa5) {
        if let Some(response) = responder.handle(frame, &mut backend) {
            assert!(response.len() >= 60 && response.len() <= 1514);
        }
    }
});
