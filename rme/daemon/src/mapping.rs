// SPDX-License-Identifier: GPL-2.0

//! OpenFlow 1.3 flows and meters onto the BMGNIC's rules and meters, and
//! back. Everything the NIC cannot do exactly is refused with the error a
//! controller expects; nothing is approximated
//! (`Documentation/bmgnic/openflow.rst` lists both sides).
//!
//! Ports: [`PORT_HOST`] is the server (the tenant's side of the NIC),
//! [`PORT_FABRIC`] the fabric; each remote VTEP the RME configured appears
//! as a logical tunnel port [`TUNNEL_PORT_BASE`]` + index`, and the VNI is
//! `tunnel_id`, as Open vSwitch shows VXLAN ports.

use crate::openflow::action::{Action, Instruction};
use crate::openflow::buf::OfError;
use crate::openflow::consts::{err, meter, oxm};
use crate::openflow::message::{MeterBand, MeterMod};
use crate::openflow::oxm::{Field, Masked, Match};
use crate::rme::{FlowAction, FlowMatch, FlowSpec, IpPrefix, MeterSpec};

/// OpenFlow port of the host (the tenant's server).
pub const PORT_HOST: u32 = 1;
/// OpenFlow port of the fabric.
pub const PORT_FABRIC: u32 = 2;
/// Logical tunnel port of remote VTEP `i` is `TUNNEL_PORT_BASE + i`.
pub const TUNNEL_PORT_BASE: u32 = 1000;
/// The module's `in-port` of traffic from the guest and from the fabric.
const MODULE_IN_GUEST: u8 = 0;
const MODULE_IN_FABRIC: u8 = 1;
/// The NIC's meter indices (`meter` attribute, 1..=255; 0 is none).
pub const MAX_METER: u32 = 255;

fn bad_match(code: u16) -> OfError {
    OfError::new(err::BAD_MATCH, code)
}

fn bad_action(code: u16) -> OfError {
    OfError::new(err::BAD_ACTION, code)
}

fn bad_meter(code: u16) -> OfError {
    OfError::new(err::METER_MOD_FAILED, code)
}

/// The tunnel index of `port`, if it is a tunnel port.
pub fn tunnel_index(port: u32) -> Option<u8> {
    port.checked_sub(TUNNEL_PORT_BASE)
        .filter(|i| (1..=255).contains(i))
        .map(|i| i as u8)
}

/// Length of a contiguous mask (all ones then all zeros), if it is one.
fn prefix_len(mask: [u8; 4]) -> Option<u8> {
    let m = u32::from_be_bytes(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// What the tenant's configuration contributes to the mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantView {
    /// The tenant's VNI, once set; a flow may set or match only this one.
    pub vni: Option<u32>,
}

/// A flow mapped onto a module rule, with what the agent must set first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub spec: FlowSpec,
    /// The VNI a `set_field tunnel_id` asks for: the tenant's VNI, which
    /// the agent sets when the tenant has none yet.
    pub vni: Option<u32>,
}

/// Maps an OpenFlow match; `Err` names the field the NIC cannot match.
pub fn map_match(m: &Match, tenant: &TenantView) -> Result<FlowMatch, OfError> {
    let mut out = FlowMatch::default();
    for f in &m.fields {
        match f {
            Field::InPort(p) => {
                out.in_port = Some(match *p {
                    PORT_HOST => MODULE_IN_GUEST,
                    // Decapsulated VXLAN arrives from the fabric.
                    PORT_FABRIC => MODULE_IN_FABRIC,
                    p if tunnel_index(p).is_some() => MODULE_IN_FABRIC,
                    _ => return Err(bad_match(err::matching::BAD_VALUE)),
                })
            }
            Field::EthType(t) => out.ethertype = Some(*t),
            Field::IpProto(p) => out.ip_proto = Some(*p),
            Field::EthSrc(m) => out.eth_src = Some((m.value, m.mask.unwrap_or([0xff; 6]))),
            Field::EthDst(m) => out.eth_dst = Some((m.value, m.mask.unwrap_or([0xff; 6]))),
            Field::Ipv4Src(m) | Field::Ipv4Dst(m) => {
                let len = match m.mask {
                    None => 32,
                    Some(mask) => {
                        prefix_len(mask).ok_or(bad_match(err::matching::BAD_NW_ADDR_MASK))?
                    }
                };
                let p = Some(IpPrefix { addr: m.value, len });
                if matches!(f, Field::Ipv4Src(_)) {
                    out.ip_src = p;
                } else {
                    out.ip_dst = p;
                }
            }
            Field::TcpSrc(p) | Field::UdpSrc(p) => out.l4_src = Some(*p),
            Field::TcpDst(p) | Field::UdpDst(p) => out.l4_dst = Some(*p),
            // The NIC accepts only its tenant's VNI from the fabric: a
            // match on that VNI is every tunnelled packet, another none.
            Field::TunnelId(Masked { value, mask: None }) => {
                if tenant.vni.is_some_and(|v| u64::from(v) != *value) || *value > 0xff_ffff {
                    return Err(bad_match(err::matching::BAD_VALUE));
                }
                if out.in_port == Some(MODULE_IN_GUEST) {
                    return Err(bad_match(err::matching::BAD_PREREQ));
                }
                out.in_port = Some(MODULE_IN_FABRIC);
            }
            Field::TunnelId(_) => return Err(bad_match(err::matching::BAD_MASK)),
            // VLAN, metadata, ARP, IPv6, ICMP, DSCP and the rest.
            Field::VlanVid(_) | Field::Other { .. } => {
                return Err(bad_match(err::matching::BAD_FIELD))
            }
        }
    }
    Ok(out)
}

/// Maps a flow's match, priority and instructions onto a module rule.
/// `meter_known` says whether an OpenFlow meter exists.
pub fn map_flow(
    matching: &Match,
    priority: u16,
    instructions: &[Instruction],
    tenant: &TenantView,
    meter_known: impl Fn(u32) -> bool,
) -> Result<Mapped, OfError> {
    let mut m = map_match(matching, tenant)?;
    let mut meter_index = None;
    let mut actions: &[Action] = &[];
    for i in instructions {
        match i {
            Instruction::Meter(id) => {
                if *id == 0 || *id > MAX_METER || !meter_known(*id) {
                    return Err(bad_meter(err::meter_mod::UNKNOWN_METER));
                }
                meter_index = Some(*id as u8);
            }
            Instruction::ApplyActions(a) | Instruction::WriteActions(a) => {
                if !actions.is_empty() && !a.is_empty() {
                    // Apply and write both output: two outputs.
                    return Err(bad_action(err::action::TOO_MANY));
                }
                if !a.is_empty() {
                    actions = a;
                }
            }
            Instruction::ClearActions => {}
            Instruction::GotoTable(_) => {
                return Err(OfError::new(
                    err::BAD_INSTRUCTION,
                    err::instruction::BAD_TABLE_ID,
                ))
            }
            Instruction::WriteMetadata { .. } => {
                return Err(OfError::new(
                    err::BAD_INSTRUCTION,
                    err::instruction::UNSUP_METADATA,
                ))
            }
            Instruction::Other { .. } => {
                return Err(OfError::new(
                    err::BAD_INSTRUCTION,
                    err::instruction::UNKNOWN_INST,
                ))
            }
        }
    }

    let mut vni = None;
    let mut output = None;
    for a in actions {
        match a {
            Action::SetField(Field::TunnelId(Masked { value, mask: None })) => {
                if *value > 0xff_ffff || tenant.vni.is_some_and(|v| u64::from(v) != *value) {
                    return Err(bad_action(err::action::BAD_SET_ARGUMENT));
                }
                if output.is_some() {
                    // Set after output changes nothing the NIC sends.
                    return Err(bad_action(err::action::UNSUPPORTED_ORDER));
                }
                vni = Some(*value as u32);
            }
            Action::SetField(_) => return Err(bad_action(err::action::BAD_SET_TYPE)),
            Action::Output { port, .. } => {
                if output.replace(*port).is_some() {
                    return Err(bad_action(err::action::TOO_MANY));
                }
            }
            Action::Group(_) => return Err(bad_action(err::action::BAD_OUT_GROUP)),
            _ => return Err(bad_action(err::action::BAD_TYPE)),
        }
    }

    let action = match output {
        None => {
            if vni.is_some() {
                // A tunnel id with nowhere to go.
                return Err(bad_action(err::action::BAD_SET_ARGUMENT));
            }
            FlowAction::Drop
        }
        Some(PORT_FABRIC) if vni.is_none() => {
            want_in_port(&mut m, MODULE_IN_GUEST)?;
            FlowAction::Allow
        }
        Some(PORT_HOST) if vni.is_none() => {
            want_in_port(&mut m, MODULE_IN_FABRIC)?;
            FlowAction::Allow
        }
        Some(p) => match tunnel_index(p) {
            Some(vtep) => {
                want_in_port(&mut m, MODULE_IN_GUEST)?;
                FlowAction::Encap { vtep }
            }
            None if vni.is_some() => return Err(bad_action(err::action::BAD_SET_ARGUMENT)),
            None => return Err(bad_action(err::action::BAD_OUT_PORT)),
        },
    };
    Ok(Mapped {
        spec: FlowSpec {
            priority,
            action,
            meter: meter_index,
            matching: m,
        },
        vni,
    })
}

/// A flow may only output away from where its packets come in: without
/// `in_port` it applies to that side only, which is what OpenFlow does
/// (a packet is never output to its in port).
fn want_in_port(m: &mut FlowMatch, side: u8) -> Result<(), OfError> {
    match m.in_port {
        None => {
            m.in_port = Some(side);
            Ok(())
        }
        Some(p) if p == side => Ok(()),
        Some(_) => Err(bad_action(err::action::BAD_OUT_PORT)),
    }
}

/// Maps a METER_MOD's bands (ADD or MODIFY) onto a NIC meter: one drop
/// band in kb/s (`OFPMF_KBPS`, the default) or packets/s (`OFPMF_PKTPS`).
/// Bursts are in kilobits or packets (`OFPMF_BURST`); without one the
/// bucket holds 100 ms of the rate, at least one jumbo frame or packet.
pub fn map_meter(m: &MeterMod) -> Result<MeterSpec, OfError> {
    if m.meter_id == 0 || m.meter_id > MAX_METER {
        return Err(bad_meter(err::meter_mod::INVALID_METER));
    }
    let known = meter::FLAG_KBPS | meter::FLAG_PKTPS | meter::FLAG_BURST | meter::FLAG_STATS;
    let packets = m.flags & meter::FLAG_PKTPS != 0;
    if m.flags & !known != 0 || (packets && m.flags & meter::FLAG_KBPS != 0) {
        return Err(bad_meter(err::meter_mod::BAD_FLAGS));
    }
    let band: &MeterBand = match m.bands.as_slice() {
        [b] => b,
        [] => return Err(bad_meter(err::meter_mod::BAD_BAND)),
        _ => return Err(bad_meter(err::meter_mod::OUT_OF_BANDS)),
    };
    if band.kind != meter::BAND_DROP {
        return Err(bad_meter(err::meter_mod::BAD_BAND));
    }
    if band.rate == 0 {
        return Err(bad_meter(err::meter_mod::BAD_RATE));
    }
    // The NIC counts bytes or packets; OpenFlow's kilobits become bytes.
    let to_unit = |v: u32| {
        if packets {
            u64::from(v)
        } else {
            u64::from(v) * 1000 / 8
        }
    };
    let rate = to_unit(band.rate);
    let burst = if m.flags & meter::FLAG_BURST != 0 {
        if band.burst_size == 0 {
            return Err(bad_meter(err::meter_mod::BAD_BURST));
        }
        to_unit(band.burst_size)
    } else {
        (rate / 10).max(if packets { 1 } else { 9018 })
    };
    Ok(MeterSpec {
        index: m.meter_id as u8,
        rate,
        burst: u32::try_from(burst).map_err(|_| bad_meter(err::meter_mod::BAD_BURST))?,
        packets,
    })
}

/// The OpenFlow match a PACKET_IN reports for a table miss: the headers
/// the NIC saw, in OXM fields (the port it came in on first).
pub fn miss_match(m: &FlowMatch) -> Match {
    let mut fields = vec![Field::InPort(match m.in_port {
        Some(MODULE_IN_FABRIC) => PORT_FABRIC,
        _ => PORT_HOST,
    })];
    if let Some((mac, _)) = m.eth_dst {
        fields.push(Field::EthDst(Masked::exact(mac)));
    }
    if let Some((mac, _)) = m.eth_src {
        fields.push(Field::EthSrc(Masked::exact(mac)));
    }
    if let Some(t) = m.ethertype {
        fields.push(Field::EthType(t));
    }
    if let Some(p) = m.ip_proto {
        fields.push(Field::IpProto(p));
    }
    if m.ethertype == Some(0x0800) {
        if let Some(p) = m.ip_src {
            fields.push(Field::Ipv4Src(Masked::exact(p.addr)));
        }
        if let Some(p) = m.ip_dst {
            fields.push(Field::Ipv4Dst(Masked::exact(p.addr)));
        }
    }
    let (src, dst) = match m.ip_proto {
        Some(6) => (oxm::TCP_SRC, oxm::TCP_DST),
        Some(17) => (oxm::UDP_SRC, oxm::UDP_DST),
        _ => return Match::new(fields),
    };
    let port = |field, v| match field {
        oxm::TCP_SRC => Field::TcpSrc(v),
        oxm::TCP_DST => Field::TcpDst(v),
        oxm::UDP_SRC => Field::UdpSrc(v),
        _ => Field::UdpDst(v),
    };
    if let Some(p) = m.l4_src {
        fields.push(port(src, p));
    }
    if let Some(p) = m.l4_dst {
        fields.push(port(dst, p));
    }
    Match::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openflow::consts::port;

    fn tenant() -> TenantView {
        TenantView { vni: Some(5001) }
    }

    fn out(p: u32) -> Action {
        Action::Output {
            port: p,
            max_len: 0,
        }
    }

    fn udp_to(port: u16) -> Match {
        Match::new(vec![
            Field::EthType(0x0800),
            Field::IpProto(17),
            Field::UdpDst(port),
        ])
    }

    fn map(m: &Match, actions: Vec<Action>) -> Result<Mapped, OfError> {
        map_flow(
            m,
            10,
            &[Instruction::ApplyActions(actions)],
            &tenant(),
            |id| id == 1,
        )
    }

    #[test]
    fn encapsulation_toward_a_vtep() {
        let mapped = map(
            &udp_to(5201),
            vec![
                Action::SetField(Field::TunnelId(Masked::exact(5001))),
                out(TUNNEL_PORT_BASE + 1),
            ],
        )
        .unwrap();
        assert_eq!(mapped.spec.action, FlowAction::Encap { vtep: 1 });
        assert_eq!(mapped.spec.matching.in_port, Some(MODULE_IN_GUEST));
        assert_eq!(mapped.spec.matching.l4_dst, Some(5201));
        assert_eq!(mapped.vni, Some(5001));
        // Another tenant's VNI is refused, not rewritten.
        assert_eq!(
            map(
                &udp_to(5201),
                vec![
                    Action::SetField(Field::TunnelId(Masked::exact(7))),
                    out(TUNNEL_PORT_BASE + 1)
                ]
            ),
            Err(bad_action(err::action::BAD_SET_ARGUMENT))
        );
    }

    #[test]
    fn drop_allow_and_direction() {
        assert_eq!(
            map(&udp_to(22), vec![]).unwrap().spec.action,
            FlowAction::Drop
        );
        let allow = map(&udp_to(53), vec![out(PORT_FABRIC)]).unwrap().spec;
        assert_eq!(
            (allow.action, allow.matching.in_port),
            (FlowAction::Allow, Some(0))
        );
        let rx = Match::new(vec![Field::InPort(PORT_FABRIC)]);
        assert_eq!(
            map(&rx, vec![out(PORT_HOST)]).unwrap().spec.action,
            FlowAction::Allow
        );
        // Back out of the port it came in on: nothing the NIC does.
        assert_eq!(
            map(&rx, vec![out(PORT_FABRIC)]),
            Err(bad_action(err::action::BAD_OUT_PORT))
        );
        for p in [port::CONTROLLER, port::FLOOD, port::NORMAL, 3] {
            assert_eq!(
                map(&udp_to(1), vec![out(p)]),
                Err(bad_action(err::action::BAD_OUT_PORT))
            );
        }
        assert_eq!(
            map(&udp_to(1), vec![out(PORT_FABRIC), out(PORT_FABRIC)]),
            Err(bad_action(err::action::TOO_MANY))
        );
    }

    #[test]
    fn what_the_nic_cannot_match_is_refused() {
        let vlan = Match::new(vec![Field::VlanVid(Masked::exact(0x1000 | 5))]);
        assert_eq!(map(&vlan, vec![]), Err(bad_match(err::matching::BAD_FIELD)));
        let sparse = Match::new(vec![
            Field::EthType(0x0800),
            Field::Ipv4Dst(Masked {
                value: [10, 0, 0, 1],
                mask: Some([255, 0, 255, 255]),
            }),
        ]);
        assert_eq!(
            map(&sparse, vec![]),
            Err(bad_match(err::matching::BAD_NW_ADDR_MASK))
        );
        let prefix = Match::new(vec![
            Field::EthType(0x0800),
            Field::Ipv4Dst(Masked {
                value: [10, 0, 0, 0],
                mask: Some([255, 255, 255, 0]),
            }),
        ]);
        let ip = map(&prefix, vec![]).unwrap().spec.matching.ip_dst.unwrap();
        assert_eq!((ip.addr, ip.len), ([10, 0, 0, 0], 24));
        assert_eq!(
            map(&Match::new(vec![Field::InPort(7)]), vec![]),
            Err(bad_match(err::matching::BAD_VALUE))
        );
    }

    #[test]
    fn meters_instructions_and_actions_the_nic_lacks() {
        let with_meter = |id| {
            map_flow(
                &udp_to(1),
                1,
                &[
                    Instruction::Meter(id),
                    Instruction::ApplyActions(vec![out(PORT_FABRIC)]),
                ],
                &tenant(),
                |id| id == 1,
            )
        };
        assert_eq!(with_meter(1).unwrap().spec.meter, Some(1));
        assert_eq!(with_meter(2), Err(bad_meter(err::meter_mod::UNKNOWN_METER)));
        let goto = map_flow(
            &udp_to(1),
            1,
            &[Instruction::GotoTable(1)],
            &tenant(),
            |_| true,
        );
        assert_eq!(goto.unwrap_err().kind, err::BAD_INSTRUCTION);
        assert_eq!(
            map(&udp_to(1), vec![Action::PopVlan]),
            Err(bad_action(err::action::BAD_TYPE))
        );
        assert_eq!(
            map(
                &udp_to(1),
                vec![Action::SetField(Field::EthDst(Masked::exact([2; 6])))]
            ),
            Err(bad_action(err::action::BAD_SET_TYPE))
        );
    }

    #[test]
    fn meter_bands() {
        let m = |flags, bands| MeterMod {
            command: meter::ADD,
            flags,
            meter_id: 1,
            bands,
        };
        let drop = |rate, burst_size| MeterBand {
            kind: meter::BAND_DROP,
            rate,
            burst_size,
            extra: vec![0; 4],
        };
        let spec = map_meter(&m(meter::FLAG_KBPS, vec![drop(8000, 0)])).unwrap();
        assert_eq!((spec.rate, spec.burst), (1_000_000, 100_000));
        let spec = map_meter(&m(
            meter::FLAG_KBPS | meter::FLAG_BURST,
            vec![drop(8000, 80)],
        ))
        .unwrap();
        assert_eq!(spec.burst, 10_000);
        let pkts = map_meter(&m(meter::FLAG_PKTPS, vec![drop(500, 0)])).unwrap();
        assert_eq!((pkts.rate, pkts.burst, pkts.packets), (500, 50, true));
        assert_eq!(
            map_meter(&m(meter::FLAG_PKTPS | meter::FLAG_KBPS, vec![drop(100, 0)])),
            Err(bad_meter(err::meter_mod::BAD_FLAGS))
        );
        assert_eq!(
            map_meter(&m(meter::FLAG_KBPS, vec![drop(1, 0), drop(2, 0)])),
            Err(bad_meter(err::meter_mod::OUT_OF_BANDS))
        );
        let mut bad_id = m(meter::FLAG_KBPS, vec![drop(1, 0)]);
        bad_id.meter_id = 256;
        assert_eq!(
            map_meter(&bad_id),
            Err(bad_meter(err::meter_mod::INVALID_METER))
        );
    }

    #[test]
    fn misses_become_packet_in_matches() {
        let miss = FlowMatch {
            in_port: Some(0),
            ethertype: Some(0x0800),
            ip_proto: Some(17),
            ip_dst: Some(IpPrefix {
                addr: [10, 0, 0, 2],
                len: 32,
            }),
            l4_dst: Some(5201),
            ..Default::default()
        };
        let m = miss_match(&miss);
        assert_eq!(m.fields[0], Field::InPort(PORT_HOST));
        assert!(m.fields.contains(&Field::UdpDst(5201)));
        // What a PACKET_IN reports maps back onto the same rule.
        let back = map_match(&m, &tenant()).unwrap();
        assert_eq!(
            (back.l4_dst, back.ip_proto, back.in_port),
            (Some(5201), Some(17), Some(0))
        );
    }
}
