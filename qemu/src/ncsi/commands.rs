// SPDX-License-Identifier: GPL-2.0

//! The NC-SI commands the BMGNIC implements: their scope, payload and
//! response lengths, and the answers built from the NIC's state.

use super::{Channel, PacketStats};
use crate::{ncsi_oem, regs};
use bmgnic_wire::ncsi::{
    cmd, AEN_ENABLE_LINK_STATUS, CODES_LEN, ETH_ALEN, LINK_STATUS_LINK_UP, REASON_MAC_ADDRESS_ZERO,
    REASON_NONE, REASON_PARAMETER_INVALID, REASON_VLAN_TAG_INVALID, RESPONSE_COMPLETED,
    RESPONSE_FAILED,
};

/// NC-SI version reported by Get Version ID: 1.1.0, packed BCD with 0xf
/// fill as DSP0222 encodes it. Reporting 1.2 would make Linux ask for Get
/// MC MAC Address (1.2 only), which the BMGNIC does not implement.
pub(super) const NCSI_VERSION: [u8; 4] = [0xf1, 0xf1, 0xf0, 0x00];
/// Firmware name of Get Version ID, zero-padded to 12 bytes.
pub(super) const FIRMWARE_NAME: &[u8] = b"BMGNIC";
/// Firmware version of Get Version ID, one byte per component of the
/// model's version (0.1.0.0).
pub(super) const FIRMWARE_VERSION: u32 = 0x0001_0000;

/// Unicast MAC address filters of the channel (Set MAC Address indexes
/// them from 1); Get Parameters reports them as one flag byte.
pub(super) const MAC_FILTERS: usize = 2;
/// VLAN filters of the channel (Set VLAN Filter indexes them from 1).
pub(super) const VLAN_FILTERS: usize = 8;

/// Get Capabilities flags: NC to MC and MC to NC flow control (bits 2 and
/// 3), global multicast filtering (bit 4). Hardware arbitration (bit 0) is
/// not supported and its status bits 6:5 are left "unknown", as one package
/// needs no arbitration.
pub(super) const CAPABILITIES: u32 = 0x04 | 0x08 | 0x10;
/// Broadcast filter capabilities: ARP, DHCP client, DHCP server, NetBIOS.
pub(super) const BROADCAST_FILTER_CAPS: u32 = 0x0f;
/// Multicast filter capabilities: IPv6 neighbour advertisement, IPv6
/// router advertisement, DHCPv6 relay and server multicast.
pub(super) const MULTICAST_FILTER_CAPS: u32 = 0x07;
/// AEN control support: the bits AEN Enable accepts.
pub(super) const AEN_CAPS: u32 = AEN_ENABLE_LINK_STATUS | ncsi_oem::AEN_ENABLE_OEM;
/// VLAN modes supported: VLAN only, VLAN and non-VLAN, any VLAN and
/// non-VLAN (bits 0-2 for Enable VLAN modes 1-3).
pub(super) const VLAN_MODE_CAPS: u8 = 0x07;

/// Get Link Status: link up, 10GBASE-T full duplex (speed code 8 in bits
/// 4:1). The fabric port is virtual; this is the speed the model claims.
pub(super) const LINK_STATUS_UP: u32 = LINK_STATUS_LINK_UP | (0x08 << 1);

/// Byte `at` of a payload whose length was checked; 0 if out of range, so
/// that a mistake in a length table cannot turn into a panic.
pub(super) fn byte(payload: &[u8], at: usize) -> u8 {
    payload.get(at).copied().unwrap_or(0)
}

/// Big-endian u16 at `at`; see [`byte`].
pub(super) fn be16(payload: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([byte(payload, at), byte(payload, at + 1)])
}

/// Big-endian u32 at `at`; see [`byte`].
pub(super) fn be32(payload: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([
        byte(payload, at),
        byte(payload, at + 1),
        byte(payload, at + 2),
        byte(payload, at + 3),
    ])
}

/// Commands the BMGNIC implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Command {
    ClearInitialState,
    SelectPackage,
    DeselectPackage,
    EnableChannel,
    DisableChannel,
    ResetChannel,
    EnableChannelTx,
    DisableChannelTx,
    AenEnable,
    SetLink,
    GetLinkStatus,
    SetVlanFilter,
    EnableVlan,
    DisableVlan,
    SetMacAddress,
    EnableBroadcastFilter,
    DisableBroadcastFilter,
    EnableMulticastFilter,
    DisableMulticastFilter,
    SetFlowControl,
    GetVersionId,
    GetCapabilities,
    GetParameters,
    GetPacketStatistics,
    GetNcsiStatistics,
    GetPassthroughStatistics,
    GetPackageStatus,
    Oem,
}

/// Whether a command addresses the package, a channel, or either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    Package,
    Channel,
    /// Set NC-SI Flow Control configures the shared interface, but Linux
    /// addresses it to a channel.
    Either,
}

impl Command {
    pub(super) fn from_type(packet_type: u8) -> Option<Self> {
        Some(match packet_type {
            cmd::CLEAR_INITIAL_STATE => Self::ClearInitialState,
            cmd::SELECT_PACKAGE => Self::SelectPackage,
            cmd::DESELECT_PACKAGE => Self::DeselectPackage,
            cmd::ENABLE_CHANNEL => Self::EnableChannel,
            cmd::DISABLE_CHANNEL => Self::DisableChannel,
            cmd::RESET_CHANNEL => Self::ResetChannel,
            cmd::ENABLE_CHANNEL_TX => Self::EnableChannelTx,
            cmd::DISABLE_CHANNEL_TX => Self::DisableChannelTx,
            cmd::AEN_ENABLE => Self::AenEnable,
            cmd::SET_LINK => Self::SetLink,
            cmd::GET_LINK_STATUS => Self::GetLinkStatus,
            cmd::SET_VLAN_FILTER => Self::SetVlanFilter,
            cmd::ENABLE_VLAN => Self::EnableVlan,
            cmd::DISABLE_VLAN => Self::DisableVlan,
            cmd::SET_MAC_ADDRESS => Self::SetMacAddress,
            cmd::ENABLE_BROADCAST_FILTER => Self::EnableBroadcastFilter,
            cmd::DISABLE_BROADCAST_FILTER => Self::DisableBroadcastFilter,
            cmd::ENABLE_MULTICAST_FILTER => Self::EnableMulticastFilter,
            cmd::DISABLE_MULTICAST_FILTER => Self::DisableMulticastFilter,
            cmd::SET_FLOW_CONTROL => Self::SetFlowControl,
            cmd::GET_VERSION_ID => Self::GetVersionId,
            cmd::GET_CAPABILITIES => Self::GetCapabilities,
            cmd::GET_PARAMETERS => Self::GetParameters,
            cmd::GET_PACKET_STATISTICS => Self::GetPacketStatistics,
            cmd::GET_NCSI_STATISTICS => Self::GetNcsiStatistics,
            cmd::GET_PASSTHROUGH_STATISTICS => Self::GetPassthroughStatistics,
            cmd::GET_PACKAGE_STATUS => Self::GetPackageStatus,
            cmd::OEM => Self::Oem,
            _ => return None,
        })
    }

    pub(super) fn scope(self) -> Scope {
        match self {
            Self::SelectPackage | Self::DeselectPackage | Self::GetPackageStatus => Scope::Package,
            Self::SetFlowControl => Scope::Either,
            _ => Scope::Channel,
        }
    }

    /// Command payload length (DSP0222, and Linux's `ncsi-cmd.c` table);
    /// `None` for the OEM command, whose length varies.
    pub(super) fn payload_len(self) -> Option<usize> {
        Some(match self {
            Self::SelectPackage
            | Self::DisableChannel
            | Self::ResetChannel
            | Self::EnableVlan
            | Self::EnableBroadcastFilter
            | Self::EnableMulticastFilter
            | Self::SetFlowControl => 4,
            Self::AenEnable | Self::SetLink | Self::SetVlanFilter | Self::SetMacAddress => 8,
            Self::Oem => return None,
            _ => 0,
        })
    }

    /// Response payload length, response and reason codes included, as
    /// Linux's `ncsi-rsp.c` table expects it. Get Parameters (variable in
    /// DSP0222) always reports every filter, so its length is fixed too; the
    /// OEM response is built apart.
    pub(super) fn response_len(self) -> usize {
        match self {
            Self::GetLinkStatus => 16,
            Self::GetVersionId => 40,
            Self::GetCapabilities => 32,
            Self::GetParameters => 32 + ETH_ALEN * MAC_FILTERS + 2 * VLAN_FILTERS,
            Self::GetPacketStatistics => 204,
            Self::GetNcsiStatistics => 32,
            Self::GetPassthroughStatistics => 48,
            Self::GetPackageStatus => 8,
            _ => CODES_LEN,
        }
    }
}

/// A response payload before framing.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) code: u16,
    pub(super) reason: u16,
    /// What follows the response and reason codes.
    pub(super) data: Vec<u8>,
}

impl Reply {
    pub(super) fn completed(data: Vec<u8>) -> Self {
        Self {
            code: RESPONSE_COMPLETED,
            reason: REASON_NONE,
            data,
        }
    }

    /// Command Failed with `reason`, at the full length of `command`'s
    /// response (see the module documentation).
    pub(super) fn failed(command: Command, reason: u16) -> Self {
        Self {
            code: RESPONSE_FAILED,
            reason,
            data: vec![0; command.response_len() - CODES_LEN],
        }
    }
}

/// Link status field of Get Link Status and the Link Status Change AEN.
pub(super) fn link_status(up: bool) -> u32 {
    if up {
        LINK_STATUS_UP
    } else {
        0
    }
}

/// Set VLAN Filter: payload bytes 2-3 VLAN tag, byte 6 filter (from 1),
/// byte 7 bit 0 enable.
pub(super) fn set_vlan_filter(channel: &mut Channel, payload: &[u8]) -> Result<(), u16> {
    let tag = be16(payload, 2);
    let index = usize::from(byte(payload, 6));
    let enable = byte(payload, 7) & 1 != 0;
    let slot = index
        .checked_sub(1)
        .filter(|&i| i < VLAN_FILTERS)
        .ok_or(REASON_PARAMETER_INVALID)?;
    // Linux clears every filter at start-up with tag 0 and enable 0, so
    // only enabling VLAN ID 0 is an error.
    if enable && tag & 0x0fff == 0 {
        return Err(REASON_VLAN_TAG_INVALID);
    }
    if let Some(t) = channel.vlan_tags.get_mut(slot) {
        *t = tag;
    }
    if enable {
        channel.vlan_enabled |= 1 << slot;
    } else {
        channel.vlan_enabled &= !(1 << slot);
    }
    Ok(())
}

/// Set MAC Address: payload bytes 0-5 MAC, byte 6 filter (from 1), byte 7
/// address type in bits 7:5 (0 unicast) and enable in bit 0.
pub(super) fn set_mac_address(channel: &mut Channel, payload: &[u8]) -> Result<(), u16> {
    let mut mac = [0u8; ETH_ALEN];
    for (i, b) in mac.iter_mut().enumerate() {
        *b = byte(payload, i);
    }
    let index = usize::from(byte(payload, 6));
    let flags = byte(payload, 7);
    let enable = flags & 1 != 0;
    let slot = index
        .checked_sub(1)
        .filter(|&i| i < MAC_FILTERS)
        .ok_or(REASON_PARAMETER_INVALID)?;
    // Every filter is a unicast one, which a multicast address cannot use.
    if flags >> 5 != 0 || (enable && mac[0] & 1 != 0) {
        return Err(REASON_PARAMETER_INVALID);
    }
    if enable && mac == [0; ETH_ALEN] {
        return Err(REASON_MAC_ADDRESS_ZERO);
    }
    if let Some(m) = channel.macs.get_mut(slot) {
        *m = mac;
    }
    if enable {
        channel.mac_enabled |= 1 << slot;
    } else {
        channel.mac_enabled &= !(1 << slot);
    }
    Ok(())
}

/// Get Version ID data, laid out as Linux's `struct ncsi_rsp_gvi_pkt`.
pub(super) fn version_id() -> Vec<u8> {
    let mut data = Vec::with_capacity(Command::GetVersionId.response_len() - CODES_LEN);
    data.extend_from_slice(&NCSI_VERSION);
    // Reserved, then alpha2: none.
    data.extend_from_slice(&[0; 4]);
    let mut name = [0u8; 12];
    for (n, c) in name.iter_mut().zip(FIRMWARE_NAME) {
        *n = *c;
    }
    data.extend_from_slice(&name);
    data.extend_from_slice(&FIRMWARE_VERSION.to_be_bytes());
    // Device, vendor, subsystem and subsystem vendor IDs, as the function's
    // configuration space has them.
    for id in [
        regs::PCI_DEVICE_ID,
        regs::PCI_VENDOR_ID,
        regs::PCI_DEVICE_ID,
        regs::PCI_VENDOR_ID,
    ] {
        data.extend_from_slice(&id.to_be_bytes());
    }
    data.extend_from_slice(&ncsi_oem::MANUFACTURER_ID.to_be_bytes());
    data
}

/// Get Capabilities data, laid out as Linux's `struct ncsi_rsp_gc_pkt`.
pub(super) fn capabilities() -> Vec<u8> {
    let mut data = Vec::with_capacity(Command::GetCapabilities.response_len() - CODES_LEN);
    for word in [
        CAPABILITIES,
        BROADCAST_FILTER_CAPS,
        MULTICAST_FILTER_CAPS,
        // Buffering: nothing passes through, so nothing is buffered.
        0,
        AEN_CAPS,
    ] {
        data.extend_from_slice(&word.to_be_bytes());
    }
    // VLAN, mixed, multicast and unicast filter counts, 2 reserved bytes,
    // VLAN modes, channel count.
    data.extend_from_slice(&[VLAN_FILTERS as u8, 0, 0, MAC_FILTERS as u8]);
    data.extend_from_slice(&[0, 0, VLAN_MODE_CAPS, 1]);
    data
}

/// Get Controller Packet Statistics data, laid out as Linux's
/// `struct ncsi_rsp_gcps_pkt`; counters the model does not keep are zero.
pub(super) fn packet_statistics(s: PacketStats) -> Vec<u8> {
    let mut data = Vec::with_capacity(Command::GetPacketStatistics.response_len() - CODES_LEN);
    // "Counters cleared from last read": none.
    data.extend_from_slice(&0u64.to_be_bytes());
    for c in [
        s.rx_bytes,
        s.tx_bytes,
        s.rx_unicast,
        s.rx_multicast,
        s.rx_broadcast,
        s.tx_unicast,
        s.tx_multicast,
        s.tx_broadcast,
    ] {
        data.extend_from_slice(&c.to_be_bytes());
    }
    // 28 error, pause, collision and size-bucket counters.
    data.extend_from_slice(&[0; 28 * 4]);
    // Valid bytes received: every byte, as the model sees no bad frames.
    data.extend_from_slice(&s.rx_bytes.to_be_bytes());
    // Runt and jabber errors.
    data.extend_from_slice(&[0; 8]);
    data
}
