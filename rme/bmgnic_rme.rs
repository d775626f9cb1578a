// SPDX-License-Identifier: GPL-2.0

//! BMGNIC remote management engine (RME) module.
//!
//! Runs in the Linux of the server's RME (its BMC). It owns the BMGNIC's
//! RME bank, which only the NC-SI sideband reaches: the tenant's identity,
//! VXLAN tenancy, flow table, meters, billing counters and quarantine.
//! This module attaches to the sideband network device named by the
//! `sideband` parameter, brings the NC-SI channel up and serves the
//! `bmgnic` generic netlink family (`Documentation/netlink/specs/
//! bmgnic.yaml`) to user space.

use kernel::{
    net::{dev, netlink::OpsRegistration, packet},
    prelude::*,
    sync::{aref::ARef, Arc},
};

mod control;
mod flow_table;
mod ncsi_client;
mod ncsi_oem;
mod netlink;
mod nic_cache;
#[path = "../drivers/bmgnic/regs.rs"]
mod regs;
mod sideband;

use control::Rme;
use sideband::Receiver;

module! {
    type: BmgnicRme,
    name: "bmgnic_rme",
    authors: ["bmgnic developers"],
    description: "BMGNIC remote management engine: NC-SI control of the NIC's RME bank",
    license: "GPL v2",
    params: {
        sideband: IfName {
            default: kernel::module_param::IfName::EMPTY,
            description: "Network interface of the NC-SI sideband to the BMGNIC (required)",
        },
    },
}

/// The module: the NIC's control behind the sideband, the receiver of its
/// frames, and the netlink family.
struct BmgnicRme {
    sideband: ARef<dev::Device>,
    rme: Arc<Rme>,
    rx: Option<Pin<KBox<packet::Registration<Receiver<Rme>>>>>,
    family: Option<OpsRegistration<Rme>>,
}

/// Why a sideband device cannot be used.
fn check_sideband(found: bool, up: bool, mtu: u32) -> Result {
    if !found {
        return Err(ENODEV);
    }
    if !up {
        return Err(ENETDOWN);
    }
    // NC-SI control packets are at most 1500 bytes of payload.
    if mtu < 1500 {
        return Err(EINVAL);
    }
    Ok(())
}

impl kernel::Module for BmgnicRme {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let name = module_parameters::sideband.value();
        if name.is_empty() {
            pr_err!("the sideband=<ifname> parameter is required\n");
            return Err(EINVAL);
        }
        let sideband = match dev::Device::get_by_name(name.as_c_str()) {
            Ok(sideband) => sideband,
            Err(e) => {
                pr_err!("sideband {}: no such network device\n", name.as_c_str());
                return Err(e);
            }
        };
        if let Err(e) = check_sideband(true, sideband.is_up(), sideband.mtu()) {
            pr_err!(
                "sideband {}: unusable ({}, MTU {})\n",
                name.as_c_str(),
                if sideband.is_up() { "up" } else { "down" },
                sideband.mtu()
            );
            return Err(e);
        }
        pr_info!(
            "attached to sideband {} (ifindex {})\n",
            name.as_c_str(),
            sideband.ifindex()
        );
        let rme = Arc::pin_init(Rme::new(sideband.clone(), sideband.mac())?, GFP_KERNEL)?;
        let rx = KBox::pin_init(
            packet::Registration::new(
                sideband.clone(),
                ncsi_oem::ETHERTYPE_NCSI,
                Receiver { sink: rme.clone() },
            ),
            GFP_KERNEL,
        )?;
        let mut this = BmgnicRme {
            sideband,
            rme,
            rx: Some(rx),
            family: None,
        };
        if let Err(e) = this.rme.start() {
            pr_err!("NC-SI start-up on the sideband failed: {:?}\n", e);
            return Err(e);
        }
        this.family = Some(netlink::FAMILY.register(this.rme.clone())?);
        Ok(this)
    }
}

impl Drop for BmgnicRme {
    fn drop(&mut self) {
        // User space first, then the frames, then the work they queued.
        self.family.take();
        self.rx.take();
        self.rme.stop();
        let s = self.rme.sideband.stats();
        pr_info!(
            "detached from sideband ifindex {}: {} NC-SI commands, {} retries, {} timeouts, {} AENs dropped, {} frames ignored\n",
            self.sideband.ifindex(),
            s.commands,
            s.retries,
            s.timeouts,
            s.aens_dropped,
            s.frames_ignored
        );
    }
}

#[kunit_tests(bmgnic_rme)]
mod tests {
    use super::*;

    #[test]
    fn sideband_must_exist_be_up_and_carry_ncsi_frames() {
        assert_eq!(check_sideband(false, true, 1500), Err(ENODEV));
        assert_eq!(check_sideband(true, false, 1500), Err(ENETDOWN));
        assert_eq!(check_sideband(true, true, 576), Err(EINVAL));
        assert_eq!(check_sideband(true, true, 1500), Ok(()));
    }

    #[test]
    fn interface_name_parameter_is_bounded() {
        use kernel::module_param::{IfName, ModuleParam};
        use kernel::str::BStr;
        let ok = IfName::try_from_param_arg(BStr::from_bytes(b"eth1")).unwrap_or(IfName::EMPTY);
        assert_eq!(ok.as_c_str(), c"eth1");
        assert!(IfName::try_from_param_arg(BStr::from_bytes(b"0123456789abcdef")).is_err());
        assert!(IfName::try_from_param_arg(BStr::from_bytes(b"a\0b")).is_err());
        assert!(IfName::EMPTY.is_empty());
    }
}
