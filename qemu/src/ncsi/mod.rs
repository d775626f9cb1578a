// SPDX-License-Identifier: GPL-2.0

//! NC-SI responder of the BMGNIC sideband port (DMTF DSP0222 1.1).
//!
//! The RME reaches the NIC only through this port. The standard commands
//! bring the channel up the way a BMC stack expects (Linux's `net/ncsi` is
//! the reference client), and the BMGNIC OEM command
//! ([`cmd::OEM`]) carries the RME bank, which the device serves
//! through [`NcsiBackend::oem`].
//!
//! The NIC is one package (ID 0) with one channel (ID 0). The control
//! packet layout, checksum and codes are the shared ones of
//! [`bmgnic_wire::ncsi`], which the RME's client builds too.
//!
//! Where DSP0222 leaves a choice, this responder follows what Linux's
//! `net/ncsi/ncsi-rsp.c` accepts:
//!
//! - Responses and AENs go to the broadcast address, from the NIC's sideband
//!   MAC. Linux sends commands from the broadcast address until it learns a
//!   MAC, so echoing the source would not reach it, and the MC's NIC
//!   receives broadcast whatever its filters.
//! - A failed response keeps the payload length of the command's successful
//!   response, zero-filled after the codes. `ncsi-rsp.c` checks the length
//!   before the response code, and only a response whose length matches
//!   reaches `ncsi-netlink` users with its reason code.
//! - Pass-through traffic is not modelled. Filter, VLAN, flow-control and
//!   TX-enable settings are kept so that Get Parameters reports them, and
//!   they have no other effect.
//!
//! The parts: [`client`] frames commands and parses answers as a
//! management controller does (for tests and `bmgnic-rmectl`); `commands`
//! knows each command (scope, lengths, answers); this file is the
//! responder, the channel state and the dispatch.

mod client;
mod commands;
#[cfg(test)]
mod tests;

pub use client::{command_frame, oem_command_payload, parse_received, Received};

use crate::ncsi_oem::{self, OemHeader};
use bmgnic_wire::ncsi::{
    cmd, parse_packet, FrameError, Header, AEN_ENABLE_LINK_STATUS, AEN_LINK_STATUS_CHANGE,
    AEN_PACKET_TYPE, CODES_LEN, ETHERTYPE, ETH_ALEN, ETH_HLEN, MAX_PAYLOAD, PACKAGE_CHANNEL,
    REASON_INIT_REQUIRED, REASON_PARAMETER_INVALID, REASON_PAYLOAD_LENGTH, REASON_UNKNOWN_COMMAND,
    RESPONSE_BIT, RESPONSE_COMPLETED, RESPONSE_FAILED, RESPONSE_UNSUPPORTED,
};
use client::framed;
use commands::*;
use log::{debug, warn};

/// Package ID of the NIC.
pub const PACKAGE_ID: u8 = 0;
/// Internal channel ID of its only channel.
pub const CHANNEL_ID: u8 = 0;

/// Host-side packet counters for Get Controller Packet Statistics.
///
/// "Received" is traffic the NIC received from the network, "transmitted"
/// traffic it sent to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Unicast packets received.
    pub rx_unicast: u64,
    /// Multicast packets received.
    pub rx_multicast: u64,
    /// Broadcast packets received.
    pub rx_broadcast: u64,
    /// Unicast packets transmitted.
    pub tx_unicast: u64,
    /// Multicast packets transmitted.
    pub tx_multicast: u64,
    /// Broadcast packets transmitted.
    pub tx_broadcast: u64,
}

/// What the responder needs from the device.
pub trait NcsiBackend {
    /// Whether the network link is up (Get Link Status bit 0).
    fn link_up(&self) -> bool;

    /// Serves a BMGNIC OEM command whose manufacturer ID and OEM version
    /// the responder has checked.
    ///
    /// `records` is everything after the header; checking it against
    /// `header.count` and the object's record size is the backend's job
    /// ([`ncsi_oem::REASON_BAD_COUNT`]). Records answered go to `out`.
    /// A command whose answer would exceed `MAX_PAYLOAD - RESPONSE_PREFIX`
    /// bytes must be refused with `REASON_BAD_COUNT` before it changes
    /// anything: the responder cannot undo it.
    ///
    /// Returns the number of records answered, or an OEM reason code, which
    /// the responder sends with Command Failed and no records.
    fn oem(&mut self, header: &OemHeader, records: &[u8], out: &mut Vec<u8>) -> Result<u8, u16>;

    /// Host-side counters for Get Controller Packet Statistics; zero unless
    /// the device provides them.
    fn packet_stats(&self) -> PacketStats {
        PacketStats::default()
    }
}

/// Counters kept by the responder, reported by Get NC-SI Statistics (which
/// carries their low 32 bits) and exported by the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NcsiStats {
    /// Frames that were not NC-SI: another ethertype, or shorter than an
    /// Ethernet header. Not otherwise counted.
    pub not_ncsi: u64,
    /// NC-SI control packets received, whatever became of them.
    pub rx_packets: u64,
    /// Commands addressed to this package or its channel that were well
    /// formed and passed the checksum: each gets a response.
    pub commands: u64,
    /// Control packets dropped without a response: malformed, checksum
    /// errors, and responses or AENs from another controller.
    pub dropped: u64,
    /// Of `dropped`: truncated, or of an unknown header revision.
    pub malformed: u64,
    /// Of `dropped`: checksum errors.
    pub checksum_errors: u64,
    /// Commands for another package or for a channel this package does not
    /// have, ignored as DSP0222 requires on a shared interface.
    pub foreign: u64,
    /// Commands of an unsupported type (answered Command Unsupported).
    pub unsupported: u64,
    /// Responses whose response code is not Command Completed.
    pub failed: u64,
    /// Responses sent.
    pub responses: u64,
    /// AENs sent.
    pub aens: u64,
}

/// Configuration of the channel; Reset Channel returns it to
/// [`Channel::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Channel {
    /// DSP0222 Initial State: only Clear Initial State is accepted.
    initial_state: bool,
    /// Enable Channel: the channel may send AENs (and would pass traffic).
    enabled: bool,
    /// Enable Channel Network TX.
    tx_enabled: bool,
    /// MC ID of AEN Enable, used in AENs.
    aen_mc_id: u8,
    /// AEN control of AEN Enable (`AEN_ENABLE_*` bits).
    aen_control: u32,
    /// Link settings and OEM link settings of Set Link.
    link_settings: u32,
    oem_link_settings: u32,
    /// Enable VLAN mode (1-3) while VLAN filtering is enabled.
    vlan_mode: Option<u8>,
    /// Set VLAN Filter tags, and their enable flags (bit n: filter n + 1).
    vlan_tags: [u16; VLAN_FILTERS],
    vlan_enabled: u16,
    /// Set MAC Address filters, and their enable flags (bit n: filter n + 1).
    macs: [[u8; ETH_ALEN]; MAC_FILTERS],
    mac_enabled: u8,
    /// Enable Broadcast Filter mode while enabled.
    broadcast_filter: Option<u32>,
    /// Enable Global Multicast Filter mode while enabled.
    multicast_filter: Option<u32>,
}

impl Default for Channel {
    fn default() -> Self {
        Self {
            initial_state: true,
            enabled: false,
            tx_enabled: false,
            aen_mc_id: 0,
            aen_control: 0,
            link_settings: 0,
            oem_link_settings: 0,
            vlan_mode: None,
            vlan_tags: [0; VLAN_FILTERS],
            vlan_enabled: 0,
            macs: [[0; ETH_ALEN]; MAC_FILTERS],
            mac_enabled: 0,
            broadcast_filter: None,
            multicast_filter: None,
        }
    }
}

/// Why a control packet gets no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Discard {
    /// Truncated or of an unknown header revision.
    Malformed,
    /// Not a command: a response or AEN of another controller.
    NotCommand,
    /// The checksum does not match.
    Checksum,
}

/// A command that passed framing and checksum checks.
#[derive(Debug)]
struct Request<'a> {
    mc_id: u8,
    iid: u8,
    packet_type: u8,
    channel: u8,
    payload: &'a [u8],
}

impl<'a> Request<'a> {
    /// Parses the control packet after the Ethernet header.
    fn parse(packet: &'a [u8]) -> Result<Self, Discard> {
        let (header, payload) = parse_packet(packet).map_err(|e| match e {
            FrameError::Checksum => Discard::Checksum,
            _ => Discard::Malformed,
        })?;
        if header.packet_type & RESPONSE_BIT != 0 {
            return Err(Discard::NotCommand);
        }
        Ok(Self {
            mc_id: header.mc_id,
            iid: header.iid,
            packet_type: header.packet_type,
            channel: header.channel,
            payload,
        })
    }
}

/// The NC-SI side of the BMGNIC: one package with one channel.
///
/// Feed it every frame of the sideband port with [`NcsiResponder::handle`]
/// and send what it returns; ask it for AENs with
/// [`NcsiResponder::link_aen`] and [`NcsiResponder::oem_aen`].
#[derive(Debug)]
pub struct NcsiResponder {
    /// Source MAC of responses and AENs.
    mac: [u8; ETH_ALEN],
    /// DSP0222 package selection: any command but Deselect Package selects
    /// the package, and a deselected package sends no AENs.
    selected: bool,
    /// Set NC-SI Flow Control mode (0-3), a property of the interface.
    flow_control: u8,
    channel: Channel,
    stats: NcsiStats,
}

impl NcsiResponder {
    /// Creates the responder in its power-on state: package deselected,
    /// channel disabled and in the Initial State. `mac` is the sideband
    /// port's own address, the source of responses and AENs.
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            selected: false,
            flow_control: 0,
            channel: Channel::default(),
            stats: NcsiStats::default(),
        }
    }

    /// The responder's counters.
    pub fn stats(&self) -> NcsiStats {
        self.stats
    }

    /// Handles one frame received on the sideband port and returns the
    /// response frame to send, if any.
    ///
    /// Frames that are not NC-SI, malformed packets, checksum errors and
    /// commands for another package or channel get no response and are
    /// counted in [`NcsiStats`].
    pub fn handle(&mut self, frame: &[u8], backend: &mut dyn NcsiBackend) -> Option<Vec<u8>> {
        let Some((eth, packet)) = frame.split_first_chunk::<ETH_HLEN>() else {
            self.stats.not_ncsi += 1;
            return None;
        };
        if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE {
            self.stats.not_ncsi += 1;
            return None;
        }
        self.stats.rx_packets += 1;

        let request = match Request::parse(packet) {
            Ok(request) => request,
            Err(discard) => {
                self.stats.dropped += 1;
                match discard {
                    Discard::Malformed => self.stats.malformed += 1,
                    Discard::Checksum => self.stats.checksum_errors += 1,
                    Discard::NotCommand => {}
                }
                debug!("ncsi: dropped {discard:?} packet of {} bytes", frame.len());
                return None;
            }
        };

        // On a shared interface every package sees every command: only
        // answer for ourselves and the channel we have.
        let internal = request.channel & PACKAGE_CHANNEL;
        if request.channel >> 5 != PACKAGE_ID
            || (internal != CHANNEL_ID && internal != PACKAGE_CHANNEL)
        {
            self.stats.foreign += 1;
            return None;
        }
        self.stats.commands += 1;
        self.selected = true;

        let reply = self.execute(&request, internal == PACKAGE_CHANNEL, backend);
        if request.packet_type == cmd::DESELECT_PACKAGE && reply.code == RESPONSE_COMPLETED {
            // The response is the last thing a package sends before it
            // leaves the interface.
            self.selected = false;
        }

        self.stats.responses += 1;
        if reply.code != RESPONSE_COMPLETED {
            self.stats.failed += 1;
        }
        let mut payload = Vec::with_capacity(CODES_LEN + reply.data.len());
        payload.extend_from_slice(&reply.code.to_be_bytes());
        payload.extend_from_slice(&reply.reason.to_be_bytes());
        payload.extend_from_slice(&reply.data);
        Some(self.frame(
            request.mc_id,
            request.iid,
            request.packet_type | RESPONSE_BIT,
            request.channel,
            &payload,
        ))
    }

    /// Builds a Link Status Change AEN reporting `link_up`, if the MC
    /// enabled it ([`AEN_ENABLE_LINK_STATUS`]) and may receive AENs: package
    /// selected, channel out of the Initial State and enabled.
    pub fn link_aen(&mut self, link_up: bool) -> Option<Vec<u8>> {
        if !self.aen_allowed(AEN_ENABLE_LINK_STATUS) {
            return None;
        }
        let mut payload = vec![0, 0, 0, AEN_LINK_STATUS_CHANGE];
        payload.extend_from_slice(&link_status(link_up).to_be_bytes());
        // OEM link status: none.
        payload.extend_from_slice(&0u32.to_be_bytes());
        Some(self.aen(&payload))
    }

    /// Builds a BMGNIC OEM AEN ([`ncsi_oem::AEN_OEM`]) for `event` with
    /// `body`, if the MC enabled OEM AENs ([`ncsi_oem::AEN_ENABLE_OEM`]) and may
    /// receive AENs (see [`NcsiResponder::link_aen`]).
    ///
    /// The payload is the AEN header (3 reserved bytes and the AEN type),
    /// then [`ncsi_oem::MANUFACTURER_ID`], `event`, 3 reserved bytes and
    /// `body`. Returns `None` as well if that exceeds
    /// [`MAX_PAYLOAD`].
    pub fn oem_aen(&mut self, event: u8, body: &[u8]) -> Option<Vec<u8>> {
        if !self.aen_allowed(ncsi_oem::AEN_ENABLE_OEM) {
            return None;
        }
        let len = CODES_LEN + ncsi_oem::AEN_PREFIX + body.len();
        if len > MAX_PAYLOAD {
            return None;
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&[0, 0, 0, ncsi_oem::AEN_OEM]);
        payload.extend_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
        payload.extend_from_slice(&[event, 0, 0, 0]);
        payload.extend_from_slice(body);
        Some(self.aen(&payload))
    }

    fn aen_allowed(&self, bit: u32) -> bool {
        let channel = &self.channel;
        self.selected && !channel.initial_state && channel.enabled && channel.aen_control & bit != 0
    }

    fn aen(&mut self, payload: &[u8]) -> Vec<u8> {
        self.stats.aens += 1;
        // DSP0222 reserves IID 0 for AENs.
        let channel = (PACKAGE_ID << 5) | CHANNEL_ID;
        self.frame(self.channel.aen_mc_id, 0, AEN_PACKET_TYPE, channel, payload)
    }

    /// Frames a control packet from the sideband port's MAC.
    fn frame(&self, mc_id: u8, iid: u8, packet_type: u8, channel: u8, payload: &[u8]) -> Vec<u8> {
        // Every payload built here is bounded by MAX_PAYLOAD.
        debug_assert!(payload.len() <= MAX_PAYLOAD);
        let header = Header {
            mc_id,
            iid,
            packet_type,
            channel,
        };
        framed(&self.mac, &header, payload)
    }

    /// Validates a command addressed to us and carries it out.
    fn execute(
        &mut self,
        request: &Request<'_>,
        to_package: bool,
        backend: &mut dyn NcsiBackend,
    ) -> Reply {
        let Some(command) = Command::from_type(request.packet_type) else {
            self.stats.unsupported += 1;
            return Reply {
                code: RESPONSE_UNSUPPORTED,
                reason: REASON_UNKNOWN_COMMAND,
                data: Vec::new(),
            };
        };
        let payload = request.payload;

        if command == Command::Oem {
            return self.oem(payload, to_package, backend);
        }
        let scope_ok = match command.scope() {
            Scope::Package => to_package,
            Scope::Channel => !to_package,
            Scope::Either => true,
        };
        if !scope_ok {
            return Reply::failed(command, REASON_PARAMETER_INVALID);
        }
        if command.payload_len() != Some(payload.len()) {
            return Reply::failed(command, REASON_PAYLOAD_LENGTH);
        }
        if !to_package && self.channel.initial_state && command != Command::ClearInitialState {
            return Reply::failed(command, REASON_INIT_REQUIRED);
        }

        match self.run(command, payload, backend) {
            Ok(data) => Reply::completed(data),
            Err(reason) => Reply::failed(command, reason),
        }
    }

    /// Carries out a validated standard command: the response data after
    /// the codes, or the reason it failed.
    fn run(
        &mut self,
        command: Command,
        payload: &[u8],
        backend: &mut dyn NcsiBackend,
    ) -> Result<Vec<u8>, u16> {
        let channel = &mut self.channel;
        match command {
            Command::ClearInitialState => channel.initial_state = false,
            // Bit 0 of byte 3 disables hardware arbitration, which the
            // BMGNIC does not implement either way.
            Command::SelectPackage | Command::DeselectPackage => {}
            Command::EnableChannel => channel.enabled = true,
            // "Allow link down" (byte 3 bit 0) matters only to a NIC that
            // could lower its link for power; this one cannot.
            Command::DisableChannel => channel.enabled = false,
            Command::ResetChannel => *channel = Channel::default(),
            Command::EnableChannelTx => channel.tx_enabled = true,
            Command::DisableChannelTx => channel.tx_enabled = false,
            Command::AenEnable => {
                let control = be32(payload, 4);
                if control & !AEN_CAPS != 0 {
                    return Err(REASON_PARAMETER_INVALID);
                }
                channel.aen_mc_id = byte(payload, 3);
                channel.aen_control = control;
            }
            Command::SetLink => {
                channel.link_settings = be32(payload, 0);
                channel.oem_link_settings = be32(payload, 4);
            }
            Command::GetLinkStatus => {
                let mut data = Vec::with_capacity(12);
                data.extend_from_slice(&link_status(backend.link_up()).to_be_bytes());
                // Other indications (host driver status) and OEM status.
                data.extend_from_slice(&[0; 8]);
                return Ok(data);
            }
            Command::SetVlanFilter => set_vlan_filter(channel, payload)?,
            Command::EnableVlan => {
                let mode = byte(payload, 3);
                if !(1..=3).contains(&mode) || VLAN_MODE_CAPS & (1 << (mode - 1)) == 0 {
                    return Err(REASON_PARAMETER_INVALID);
                }
                channel.vlan_mode = Some(mode);
            }
            Command::DisableVlan => channel.vlan_mode = None,
            Command::SetMacAddress => set_mac_address(channel, payload)?,
            Command::EnableBroadcastFilter => {
                let mode = be32(payload, 0);
                if mode & !BROADCAST_FILTER_CAPS != 0 {
                    return Err(REASON_PARAMETER_INVALID);
                }
                channel.broadcast_filter = Some(mode);
            }
            Command::DisableBroadcastFilter => channel.broadcast_filter = None,
            Command::EnableMulticastFilter => {
                let mode = be32(payload, 0);
                if mode & !MULTICAST_FILTER_CAPS != 0 {
                    return Err(REASON_PARAMETER_INVALID);
                }
                channel.multicast_filter = Some(mode);
            }
            Command::DisableMulticastFilter => channel.multicast_filter = None,
            Command::SetFlowControl => {
                // 0 off, 1 NC to MC, 2 MC to NC, 3 both: all advertised.
                let mode = byte(payload, 3);
                if mode > 3 {
                    return Err(REASON_PARAMETER_INVALID);
                }
                self.flow_control = mode;
            }
            Command::GetVersionId => return Ok(version_id()),
            Command::GetCapabilities => return Ok(capabilities()),
            Command::GetParameters => return Ok(self.parameters()),
            Command::GetPacketStatistics => return Ok(packet_statistics(backend.packet_stats())),
            Command::GetNcsiStatistics => return Ok(self.ncsi_statistics()),
            Command::GetPassthroughStatistics => {
                // Nothing passes through: all counters stay zero.
                return Ok(vec![0; command.response_len() - CODES_LEN]);
            }
            Command::GetPackageStatus => {
                // Bit 0, hardware arbitration active: never.
                return Ok(vec![0; command.response_len() - CODES_LEN]);
            }
            Command::Oem => return Err(REASON_UNKNOWN_COMMAND),
        }
        Ok(Vec::new())
    }

    /// Get Parameters data, laid out as Linux's `struct ncsi_rsp_gp_pkt`.
    fn parameters(&self) -> Vec<u8> {
        let channel = &self.channel;
        let mut flags = 0u32;
        if channel.broadcast_filter.is_some() {
            flags |= 1 << 0;
        }
        if channel.enabled {
            flags |= 1 << 1;
        }
        if channel.tx_enabled {
            flags |= 1 << 2;
        }
        if channel.multicast_filter.is_some() {
            flags |= 1 << 3;
        }
        let mut data = Vec::with_capacity(Command::GetParameters.response_len() - CODES_LEN);
        data.extend_from_slice(&[MAC_FILTERS as u8, 0, 0, channel.mac_enabled]);
        data.extend_from_slice(&[VLAN_FILTERS as u8, 0]);
        data.extend_from_slice(&channel.vlan_enabled.to_be_bytes());
        data.extend_from_slice(&channel.link_settings.to_be_bytes());
        data.extend_from_slice(&channel.broadcast_filter.unwrap_or(0).to_be_bytes());
        data.extend_from_slice(&flags.to_be_bytes());
        data.extend_from_slice(&[channel.vlan_mode.unwrap_or(0), self.flow_control, 0, 0]);
        data.extend_from_slice(&channel.aen_control.to_be_bytes());
        for mac in &channel.macs {
            data.extend_from_slice(mac);
        }
        for tag in &channel.vlan_tags {
            data.extend_from_slice(&tag.to_be_bytes());
        }
        data
    }

    /// Get NC-SI Statistics data: the low 32 bits of the counters, as
    /// hardware counters wrap.
    fn ncsi_statistics(&self) -> Vec<u8> {
        let s = &self.stats;
        let counters = [
            s.commands,
            s.dropped,
            s.unsupported,
            s.checksum_errors,
            s.rx_packets,
            s.responses + s.aens,
            s.aens,
        ];
        counters
            .iter()
            .flat_map(|&c| (c as u32).to_be_bytes())
            .collect()
    }

    /// Serves the OEM command: manufacturer ID, [`OemHeader`], records.
    fn oem(&mut self, payload: &[u8], to_package: bool, backend: &mut dyn NcsiBackend) -> Reply {
        let failed = |reason: u16, echo: &[u8]| Reply {
            code: RESPONSE_FAILED,
            reason,
            data: echo.to_vec(),
        };
        let Some((mfr, rest)) = payload.split_first_chunk::<4>() else {
            return failed(REASON_PAYLOAD_LENGTH, &[]);
        };
        if to_package {
            return failed(REASON_PARAMETER_INVALID, mfr);
        }
        if self.channel.initial_state {
            return failed(REASON_INIT_REQUIRED, mfr);
        }
        if u32::from_be_bytes(*mfr) != ncsi_oem::MANUFACTURER_ID {
            return failed(REASON_PARAMETER_INVALID, mfr);
        }
        let Some((&[version, op, object, count], records)) = rest.split_first_chunk::<4>() else {
            return failed(REASON_PAYLOAD_LENGTH, mfr);
        };
        let header = OemHeader {
            version,
            op,
            object,
            count,
        };
        let mut echo = [0u8; ncsi_oem::COMMAND_PREFIX];
        echo[..4].copy_from_slice(mfr);
        echo[4..].copy_from_slice(&[version, op, object, count]);
        if version != ncsi_oem::OEM_VERSION {
            return failed(ncsi_oem::REASON_BAD_VERSION, &echo);
        }

        let mut out = Vec::new();
        match backend.oem(&header, records, &mut out) {
            Ok(answered) if ncsi_oem::RESPONSE_PREFIX + out.len() <= MAX_PAYLOAD => {
                echo[ncsi_oem::COMMAND_PREFIX - 1] = answered;
                let mut data = Vec::with_capacity(echo.len() + out.len());
                data.extend_from_slice(&echo);
                data.extend_from_slice(&out);
                Reply::completed(data)
            }
            // The backend should have refused it before acting (see
            // `NcsiBackend::oem`); at least no malformed frame goes out.
            Ok(_) => {
                warn!("OEM answer of {} bytes does not fit a response", out.len());
                failed(ncsi_oem::REASON_BAD_COUNT, &echo)
            }
            Err(reason) => failed(reason, &echo),
        }
    }
}
