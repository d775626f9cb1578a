// SPDX-License-Identifier: GPL-2.0

//! The per-packet isolation pipeline.
//!
//! TX (guest to fabric): quarantine → parse → anti-spoofing (source MAC and
//! IP must be the RME-assigned ones) → flow lookup → action (drop, allow,
//! VXLAN encapsulation toward a VTEP) → meter → flow counters.
//!
//! RX (fabric to guest): quarantine → outer checks (our VTEP, UDP 4789) →
//! VNI must be the tenant's → decapsulation → ingress rules.
//!
//! Every drop returns the guest-visible counter it is accounted under.
//! Pure functions of the RME bank and the frame, so that they are tested
//! and benchmarked without DMA or sockets.

use std::ops::Range;

use crate::ncsi_oem::{self as oem, FlowKey};
use crate::packet;
use crate::regs::guest::Stat;
use crate::rme::{RmeBank, RmeCounter};
use crate::vxlan;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_ICMPV6: u8 = 58;

/// Something the RME should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A guest packet matched no flow.
    Miss {
        /// The packet's fields.
        key: FlowKey,
    },
    /// The guest sent from an address that is not its own.
    Spoofed {
        /// `ncsi_oem::VIOLATION_SPOOFED_*`.
        kind: u8,
        /// The packet's fields.
        key: FlowKey,
    },
    /// The guest wrote a read-only guest-bank register.
    RoWrite {
        /// The register offset.
        offset: u16,
    },
}

/// Whether `key`'s source addresses are the guest's own.
fn spoof_check(rme: &RmeBank, parsed: &packet::Parsed) -> Result<(), u8> {
    let key = &parsed.key;
    let parsed_arp_sender = parsed.arp_sender_mac;
    if !rme.spoof_check_enabled() {
        return Ok(());
    }
    let id = rme.identity();
    if key.eth_src != id.mac || parsed_arp_sender.is_some_and(|m| m != id.mac) {
        return Err(oem::VIOLATION_SPOOFED_MAC);
    }
    let ipv4_allowed = |ip: &[u8]| {
        id.ipv4[..usize::from(id.ipv4_count)]
            .iter()
            .any(|a| a[..] == ip[..4])
    };
    match key.ethertype {
        ETHERTYPE_IPV4 if !ipv4_allowed(&key.ip_src) => Err(oem::VIOLATION_SPOOFED_IP),
        // An ARP probe announces nothing yet (sender 0.0.0.0).
        ETHERTYPE_ARP if key.ip_src[..4] != [0; 4] && !ipv4_allowed(&key.ip_src) => {
            Err(oem::VIOLATION_SPOOFED_IP)
        }
        ETHERTYPE_IPV6 => {
            let assigned = id.ipv6[..usize::from(id.ipv6_count)].contains(&key.ip_src);
            // Duplicate address detection sends from ::, and the link-local
            // address derived from the assigned MAC (EUI-64) is the guest's.
            let dad = key.ip_src == [0; 16] && key.ip_proto == IPPROTO_ICMPV6;
            if assigned || dad || key.ip_src == link_local_of(&id.mac) {
                Ok(())
            } else {
                Err(oem::VIOLATION_SPOOFED_IP)
            }
        }
        _ => Ok(()),
    }
}

/// The EUI-64 IPv6 link-local address of `mac` (RFC 4291 appendix A).
pub fn link_local_of(mac: &[u8; 6]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    a
}

/// Runs a guest frame through the TX pipeline. On success `out` holds the
/// frame to put on the fabric.
pub fn transmit(
    rme: &mut RmeBank,
    frame: &[u8],
    now_ns: u64,
    out: &mut Vec<u8>,
    events: &mut Vec<Event>,
) -> Result<(), Stat> {
    if rme.quarantined() {
        return Err(Stat::TxDropQuarantined);
    }
    let parsed = packet::parse(frame, oem::PORT_GUEST).map_err(|_| Stat::TxDropDenied)?;
    let key = parsed.key;
    if let Err(kind) = spoof_check(rme, &parsed) {
        events.push(Event::Spoofed { kind, key });
        return Err(Stat::TxDropSpoofed);
    }
    let Some(slot) = rme.flows.lookup(&key) else {
        rme.count(RmeCounter::TableMisses, 1);
        events.push(Event::Miss { key });
        if rme.policy().miss_policy != oem::MISS_ALLOW {
            return Err(Stat::TxDropTableMiss);
        }
        out.clear();
        out.extend_from_slice(frame);
        return Ok(());
    };
    let Some(rule) = rme.flows.get(slot).copied() else {
        return Err(Stat::TxDropDenied);
    };
    let bytes = frame.len() as u64;
    if rule.action == oem::ACTION_DROP {
        rme.flows.hit(slot, bytes, now_ns);
        return Err(Stat::TxDropDenied);
    }
    // A flow may name a meter the RME has not created yet: unmetered.
    if rule.meter != oem::NO_METER
        && rme.meters.admit(rule.meter, frame.len() as u32, now_ns) == Some(false)
    {
        return Err(Stat::TxDropMetered);
    }
    out.clear();
    if rule.action == oem::ACTION_ENCAP {
        let tenant = *rme.tenant();
        let Some(vtep) = rme.vtep(rule.vtep).copied() else {
            return Err(Stat::TxDropDenied);
        };
        if tenant.vni == 0 {
            return Err(Stat::TxDropDenied);
        }
        vxlan::encapsulate(frame, &tenant, &vtep, vxlan::flow_hash(&key), out)
            .map_err(|_| Stat::TxDropTooLong)?;
    } else {
        out.extend_from_slice(frame);
    }
    rme.flows.hit(slot, bytes, now_ns);
    Ok(())
}

/// Runs a fabric frame through the RX pipeline; returns the range of
/// `frame` to deliver to the guest.
pub fn receive(
    rme: &mut RmeBank,
    frame: &[u8],
    now_ns: u64,
    _events: &mut Vec<Event>,
) -> Result<Range<usize>, Stat> {
    if rme.quarantined() {
        return Err(Stat::RxDropQuarantined);
    }
    let tenant = *rme.tenant();
    let inner = if tenant.vni == 0 {
        // No tenant network yet: only an open device passes plain frames.
        if rme.spoof_check_enabled() {
            return Err(Stat::RxDropBadOuter);
        }
        0..frame.len()
    } else {
        let d = vxlan::decapsulate(frame, &tenant.local_mac, &tenant.local_ip)
            .map_err(|_| Stat::RxDropBadOuter)?;
        if d.vni != tenant.vni {
            return Err(Stat::RxDropWrongVni);
        }
        frame.len() - d.inner.len()..frame.len()
    };
    let Ok(parsed) = packet::parse(&frame[inner.clone()], oem::PORT_FABRIC) else {
        return Err(Stat::RxDropDenied);
    };
    // Ingress rules: a matching rule decides; without one the tenant's own
    // network is let in (isolation between tenants is the VNI check above).
    if let Some(slot) = rme.flows.lookup(&parsed.key) {
        let action = rme.flows.get(slot).map(|r| r.action);
        rme.flows.hit(slot, inner.len() as u64, now_ns);
        if action == Some(oem::ACTION_DROP) {
            return Err(Stat::RxDropDenied);
        }
    }
    Ok(inner)
}
