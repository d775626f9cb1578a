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
//!
//! The sideband device belongs to its own driver: when it is unregistered
//! (unbound, `ip link del`) the module lets go of it at once and answers
//! requests with `ENETDOWN` until a device of that name comes up again,
//! when it brings the NC-SI channel up anew.

use kernel::{
    module_param::IfName,
    net::{dev, netlink::OpsRegistration, notifier, packet},
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

mod control;
mod flow_table;
#[path = "../wire/src/genl.rs"]
mod genl;
// The shared wire formats (see wire/src/lib.rs), under the module names
// their `crate::` paths expect.
#[path = "../wire/src/ncsi.rs"]
mod ncsi;
mod ncsi_client;
#[path = "../wire/src/ncsi_oem.rs"]
mod ncsi_oem;
mod netlink;
mod nic_cache;
#[path = "../wire/src/regs.rs"]
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

/// The module: the NIC's control behind the sideband, the watch on the
/// sideband device, and the netlink family.
struct BmgnicRme {
    rme: Arc<Rme>,
    link: Arc<Link>,
    watch: Option<Pin<KBox<notifier::Registration<Watch>>>>,
    family: Option<OpsRegistration<Rme>>,
}

/// The sideband device while attached: its frames' receiver.
struct Attached {
    ifindex: i32,
    _rx: Pin<KBox<packet::Registration<Receiver<Rme>>>>,
}

/// The attachment to the sideband device named by the parameter.
#[pin_data]
struct Link {
    name: IfName,
    rme: Arc<Rme>,
    #[pin]
    attached: Mutex<Option<Attached>>,
    /// Module exit: events no longer attach or detach.
    closing: Atomic<bool>,
}

impl Link {
    /// Receives NC-SI frames on `dev` and sends commands on it.
    fn attach(&self, dev: &dev::Device) -> Result {
        let dev: ARef<dev::Device> = dev.into();
        let mut attached = self.attached.lock();
        let rx = KBox::pin_init(
            packet::Registration::new(
                dev.clone(),
                ncsi::ETHERTYPE,
                Receiver {
                    sink: self.rme.clone(),
                },
            ),
            GFP_KERNEL,
        )?;
        self.rme.sideband.attach(dev.clone(), dev.mac());
        *attached = Some(Attached {
            ifindex: dev.ifindex(),
            _rx: rx,
        });
        Ok(())
    }

    /// Drops every reference to the sideband device: the receiver, then
    /// (after the command in flight) the command path's.
    fn detach(&self) -> Option<i32> {
        let gone = self.attached.lock().take()?;
        drop(self.rme.sideband.detach());
        Some(gone.ifindex)
    }
}

/// Follows the sideband device through the netdev notifier chain.
struct Watch {
    link: Arc<Link>,
}

impl notifier::Handler for Watch {
    fn event(&self, event: notifier::Event, dev: &dev::Device) {
        let link = &self.link;
        if link.closing.load(Relaxed) {
            return;
        }
        match event {
            notifier::Event::Unregister => {
                let ours = link
                    .attached
                    .lock()
                    .as_ref()
                    .is_some_and(|a| a.ifindex == dev.ifindex());
                if ours && link.detach().is_some() {
                    pr_warn!(
                        "sideband {} unregistered: detached; NC-SI requests fail until it is back\n",
                        link.name.as_c_str()
                    );
                }
            }
            notifier::Event::Up => {
                let free = link.attached.lock().is_none();
                if free && dev.name().as_c_str() == link.name.as_c_str() {
                    match link.attach(dev) {
                        Ok(()) => {
                            pr_info!(
                                "sideband {} is back (ifindex {}): reattached\n",
                                link.name.as_c_str(),
                                dev.ifindex()
                            );
                            Rme::sideband_back(&link.rme);
                        }
                        Err(e) => pr_err!(
                            "sideband {} is back, but attaching failed: {:?}\n",
                            link.name.as_c_str(),
                            e
                        ),
                    }
                }
            }
            _ => {}
        }
    }
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
        let rme = Arc::pin_init(
            Rme::new(sideband.clone(), sideband.mac(), netlink::notify)?,
            GFP_KERNEL,
        )?;
        let link_rme = rme.clone();
        let link = Arc::pin_init(
            pin_init!(Link {
                name,
                rme: link_rme,
                attached <- new_mutex!(None, "bmgnic_rme_link"),
                closing: Atomic::new(false),
            }),
            GFP_KERNEL,
        )?;
        link.attach(&sideband)?;
        let mut this = BmgnicRme {
            rme,
            link: link.clone(),
            watch: None,
            family: None,
        };
        // From here on the notifier lets go of the device when it is
        // unregistered; one unregistered before it was registered (which
        // takes RTNL, so the unregistration is complete) is let go here.
        this.watch = Some(KBox::pin_init(
            notifier::Registration::new(Watch { link }),
            GFP_KERNEL,
        )?);
        if !sideband.is_registered() {
            this.link.detach();
        }
        drop(sideband);
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
        // User space first, then the device watch and the frames, then the
        // work they queued.
        self.family.take();
        self.link.closing.store(true, Relaxed);
        self.watch.take();
        let ifindex = self.link.detach().unwrap_or(0);
        self.rme.stop();
        let s = self.rme.sideband.stats();
        pr_info!(
            "detached from sideband ifindex {}: {} NC-SI commands, {} retries, {} timeouts, {} AENs dropped, {} frames ignored, {} from foreign sources\n",
            ifindex,
            s.commands,
            s.retries,
            s.timeouts,
            s.aens_dropped,
            s.frames_ignored,
            s.frames_foreign
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
