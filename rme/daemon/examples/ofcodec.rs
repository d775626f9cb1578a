// SPDX-License-Identifier: GPL-2.0

//! The OpenFlow codec as a filter, for interoperability tests against
//! another implementation (`tools/testing/openflow/interop.py` runs it
//! against os-ken's parser):
//!
//!   ofcodec echo      reads OpenFlow messages on stdin, writes each one
//!                     decoded and encoded again, or the error message the
//!                     switch would answer it with
//!   ofcodec samples   writes one of each message the switch sends

use bmgnic_rmed::openflow::action::{Action, Instruction};
use bmgnic_rmed::openflow::consts::{meter, port_status, NO_BUFFER};
use bmgnic_rmed::openflow::message::{self, *};
use bmgnic_rmed::openflow::oxm::{Field, Masked, Match};
use std::io::{Read, Write};

fn samples() -> Vec<Message> {
    let matching = Match::new(vec![
        Field::InPort(1),
        Field::EthType(0x0800),
        Field::IpProto(17),
        Field::Ipv4Dst(Masked {
            value: [10, 0, 0, 0],
            mask: Some([255, 255, 255, 0]),
        }),
        Field::UdpDst(5201),
    ]);
    let host = Port {
        port_no: 1,
        hw_addr: [0x52, 0x54, 0, 0xb0, 0, 1],
        name: "host".into(),
        config: 0,
        state: port_status::STATE_LIVE,
        curr: port_status::FEATURE_10GB_FD,
        advertised: 0,
        supported: port_status::FEATURE_10GB_FD,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 10_000_000,
    };
    vec![
        Message::Hello { versions: 1 << 4 },
        Message::FeaturesReply {
            datapath_id: 0x5254_00b0_0001,
            n_buffers: 0,
            n_tables: 1,
            capabilities: 7,
        },
        Message::GetConfigReply(SwitchConfig {
            flags: 0,
            miss_send_len: 128,
        }),
        Message::PacketIn(PacketIn {
            buffer_id: NO_BUFFER,
            total_len: 64,
            reason: 0,
            table_id: 0,
            cookie: u64::MAX,
            matching: Match::new(vec![Field::InPort(1)]),
            data: vec![0x5a; 64],
        }),
        Message::FlowRemoved(FlowRemoved {
            cookie: 7,
            priority: 100,
            reason: 0,
            table_id: 0,
            duration_sec: 12,
            duration_nsec: 500,
            idle_timeout: 10,
            hard_timeout: 0,
            packet_count: 42,
            byte_count: 4200,
            matching: matching.clone(),
        }),
        Message::PortStatus {
            reason: port_status::MODIFY,
            port: host.clone(),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Desc(Desc {
                mfr: "bmgnic".into(),
                hw: "BMGNIC (emulated)".into(),
                sw: "bmgnic-rmed".into(),
                serial: "0".into(),
                dp: "rack".into(),
            }),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Flow(vec![FlowStats {
                table_id: 0,
                duration_sec: 3,
                duration_nsec: 4,
                priority: 100,
                idle_timeout: 10,
                hard_timeout: 0,
                flags: 1,
                cookie: 7,
                packet_count: 42,
                byte_count: 4200,
                matching,
                instructions: vec![
                    Instruction::Meter(1),
                    Instruction::ApplyActions(vec![
                        Action::SetField(Field::TunnelId(Masked::exact(5001))),
                        Action::Output {
                            port: 2,
                            max_len: 0,
                        },
                    ]),
                ],
            }]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Aggregate {
                packet_count: 1,
                byte_count: 2,
                flow_count: 3,
            },
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Table(vec![TableStats {
                table_id: 0,
                active_count: 3,
                lookup_count: 100,
                matched_count: 90,
            }]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::PortStats(vec![PortStats {
                port_no: 1,
                rx_packets: 10,
                tx_packets: 11,
                rx_bytes: 1000,
                tx_bytes: 1100,
                ..Default::default()
            }]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::PortDesc(vec![host]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::Meter(vec![MeterStats {
                meter_id: 1,
                flow_count: 1,
                packet_in_count: 5,
                byte_in_count: 500,
                duration_sec: 1,
                duration_nsec: 0,
                bands: vec![(2, 200)],
            }]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::MeterConfig(vec![MeterMod {
                command: 0,
                flags: meter::FLAG_KBPS,
                meter_id: 1,
                bands: vec![MeterBand {
                    kind: meter::BAND_DROP,
                    rate: 10_000,
                    burst_size: 100,
                    extra: vec![0; 4],
                }],
            }]),
        },
        Message::MultipartReply {
            flags: 0,
            body: MultipartReply::MeterFeatures(MeterFeatures {
                max_meter: 255,
                band_types: 1 << meter::BAND_DROP,
                capabilities: u32::from(meter::FLAG_KBPS | meter::FLAG_STATS),
                max_bands: 1,
                max_color: 0,
            }),
        },
        Message::BarrierReply,
        Message::RoleReply {
            role: 2,
            generation_id: 1,
        },
        Message::EchoReply(b"bmgnic".to_vec()),
        Message::Error {
            kind: 4,
            code: 6,
            data: vec![4, 14, 0, 8, 0, 0, 0, 1],
        },
    ]
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "samples" => {
            for (xid, m) in samples().iter().enumerate() {
                let bytes = message::encode(xid as u32 + 1, m).expect("a sample fits");
                out.write_all(&bytes).expect("stdout");
            }
        }
        "echo" => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).expect("stdin");
            let mut rest = &input[..];
            while let Some(Ok(len)) = message::frame_len(rest) {
                if len > rest.len() {
                    break;
                }
                let (one, tail) = rest.split_at(len);
                rest = tail;
                let bytes = match message::decode(one) {
                    Ok((xid, m)) => message::encode(xid, &m),
                    Err((xid, e)) => message::encode(xid, &message::error_for(one, e)),
                };
                out.write_all(&bytes.expect("fits")).expect("stdout");
            }
        }
        _ => {
            eprintln!("usage: ofcodec echo|samples");
            std::process::exit(2);
        }
    }
}
