// SPDX-License-Identifier: GPL-2.0

//! OpenFlow 1.3.5 numbers (ONF TS-023, `openflow.h`): message types,
//! error types and codes, OXM fields, actions, instructions, multipart
//! types, ports and flags. Only the names this agent reads or writes.

/// Wire version of OpenFlow 1.3.
pub const OFP_VERSION: u8 = 0x04;
/// Length of the common header.
pub const HEADER_LEN: usize = 8;
/// The IANA port of OpenFlow.
pub const TCP_PORT: u16 = 6653;

/// Message types (`enum ofp_type`).
pub mod msg {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

/// Error types (`enum ofp_error_type`) and their codes.
pub mod err {
    pub const HELLO_FAILED: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_ACTION: u16 = 2;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BAD_MATCH: u16 = 4;
    pub const FLOW_MOD_FAILED: u16 = 5;
    pub const GROUP_MOD_FAILED: u16 = 6;
    pub const PORT_MOD_FAILED: u16 = 7;
    pub const TABLE_MOD_FAILED: u16 = 8;
    pub const SWITCH_CONFIG_FAILED: u16 = 10;
    pub const ROLE_REQUEST_FAILED: u16 = 11;
    pub const METER_MOD_FAILED: u16 = 12;

    /// `OFPHFC_*`.
    pub mod hello {
        pub const INCOMPATIBLE: u16 = 0;
    }
    /// `OFPBRC_*`.
    pub mod request {
        pub const BAD_VERSION: u16 = 0;
        pub const BAD_TYPE: u16 = 1;
        pub const BAD_MULTIPART: u16 = 2;
        pub const BAD_EXPERIMENTER: u16 = 3;
        pub const EPERM: u16 = 5;
        pub const BAD_LEN: u16 = 6;
        pub const BUFFER_UNKNOWN: u16 = 8;
        pub const BAD_TABLE_ID: u16 = 9;
        pub const IS_SLAVE: u16 = 10;
        pub const BAD_PORT: u16 = 11;
    }
    /// `OFPBAC_*`.
    pub mod action {
        pub const BAD_TYPE: u16 = 0;
        pub const BAD_LEN: u16 = 1;
        pub const BAD_EXPERIMENTER: u16 = 2;
        pub const BAD_OUT_PORT: u16 = 4;
        pub const BAD_ARGUMENT: u16 = 5;
        pub const EPERM: u16 = 6;
        pub const TOO_MANY: u16 = 7;
        pub const BAD_OUT_GROUP: u16 = 9;
        pub const MATCH_INCONSISTENT: u16 = 10;
        pub const UNSUPPORTED_ORDER: u16 = 11;
        pub const BAD_SET_TYPE: u16 = 13;
        pub const BAD_SET_LEN: u16 = 14;
        pub const BAD_SET_ARGUMENT: u16 = 15;
    }
    /// `OFPBIC_*`.
    pub mod instruction {
        pub const UNKNOWN_INST: u16 = 0;
        pub const UNSUP_INST: u16 = 1;
        pub const BAD_TABLE_ID: u16 = 2;
        pub const UNSUP_METADATA: u16 = 3;
        pub const BAD_EXPERIMENTER: u16 = 5;
        pub const BAD_LEN: u16 = 7;
    }
    /// `OFPBMC_*`.
    pub mod matching {
        pub const BAD_TYPE: u16 = 0;
        pub const BAD_LEN: u16 = 1;
        pub const BAD_DL_ADDR_MASK: u16 = 3;
        pub const BAD_NW_ADDR_MASK: u16 = 4;
        pub const BAD_WILDCARDS: u16 = 5;
        pub const BAD_FIELD: u16 = 6;
        pub const BAD_VALUE: u16 = 7;
        pub const BAD_MASK: u16 = 8;
        pub const BAD_PREREQ: u16 = 9;
        pub const DUP_FIELD: u16 = 10;
        pub const EPERM: u16 = 11;
    }
    /// `OFPFMFC_*`.
    pub mod flow_mod {
        pub const UNKNOWN: u16 = 0;
        pub const TABLE_FULL: u16 = 1;
        pub const BAD_TABLE_ID: u16 = 2;
        pub const OVERLAP: u16 = 3;
        pub const EPERM: u16 = 4;
        pub const BAD_TIMEOUT: u16 = 5;
        pub const BAD_COMMAND: u16 = 6;
        pub const BAD_FLAGS: u16 = 7;
    }
    /// `OFPPMFC_*`.
    pub mod port_mod {
        pub const BAD_PORT: u16 = 0;
        pub const EPERM: u16 = 4;
    }
    /// `OFPRRFC_*`.
    pub mod role {
        pub const STALE: u16 = 0;
        pub const UNSUP: u16 = 1;
        pub const BAD_ROLE: u16 = 2;
    }
    /// `OFPMMFC_*`.
    pub mod meter_mod {
        pub const UNKNOWN: u16 = 0;
        pub const METER_EXISTS: u16 = 1;
        pub const INVALID_METER: u16 = 2;
        pub const UNKNOWN_METER: u16 = 3;
        pub const BAD_COMMAND: u16 = 4;
        pub const BAD_FLAGS: u16 = 5;
        pub const BAD_RATE: u16 = 6;
        pub const BAD_BURST: u16 = 7;
        pub const BAD_BAND: u16 = 8;
        pub const BAD_BAND_VALUE: u16 = 9;
        pub const OUT_OF_METERS: u16 = 10;
        pub const OUT_OF_BANDS: u16 = 11;
    }
}

/// Port numbers (`enum ofp_port_no`).
pub mod port {
    /// Highest number of a physical or logical port.
    pub const MAX: u32 = 0xffff_ff00;
    pub const IN_PORT: u32 = 0xffff_fff8;
    pub const TABLE: u32 = 0xffff_fff9;
    pub const NORMAL: u32 = 0xffff_fffa;
    pub const FLOOD: u32 = 0xffff_fffb;
    pub const ALL: u32 = 0xffff_fffc;
    pub const CONTROLLER: u32 = 0xffff_fffd;
    pub const LOCAL: u32 = 0xffff_fffe;
    pub const ANY: u32 = 0xffff_ffff;
}

/// Group "any" (`OFPG_ANY`).
pub const GROUP_ANY: u32 = 0xffff_ffff;
/// No buffered packet (`OFP_NO_BUFFER`).
pub const NO_BUFFER: u32 = 0xffff_ffff;
/// All tables (`OFPTT_ALL`).
pub const TABLE_ALL: u8 = 0xff;

/// OXM classes and OpenFlow basic fields (`enum oxm_ofb_match_fields`).
pub mod oxm {
    pub const CLASS_OPENFLOW_BASIC: u16 = 0x8000;
    pub const IN_PORT: u8 = 0;
    pub const IN_PHY_PORT: u8 = 1;
    pub const METADATA: u8 = 2;
    pub const ETH_DST: u8 = 3;
    pub const ETH_SRC: u8 = 4;
    pub const ETH_TYPE: u8 = 5;
    pub const VLAN_VID: u8 = 6;
    pub const VLAN_PCP: u8 = 7;
    pub const IP_DSCP: u8 = 8;
    pub const IP_ECN: u8 = 9;
    pub const IP_PROTO: u8 = 10;
    pub const IPV4_SRC: u8 = 11;
    pub const IPV4_DST: u8 = 12;
    pub const TCP_SRC: u8 = 13;
    pub const TCP_DST: u8 = 14;
    pub const UDP_SRC: u8 = 15;
    pub const UDP_DST: u8 = 16;
    pub const TUNNEL_ID: u8 = 38;
    /// `OFPVID_PRESENT`: the VLAN_VID bit that says a tag is present.
    pub const VID_PRESENT: u16 = 0x1000;
    /// Match type of an OXM match (`OFPMT_OXM`).
    pub const MATCH_TYPE_OXM: u16 = 1;
}

/// Instruction types (`enum ofp_instruction_type`).
pub mod inst {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Action types (`enum ofp_action_type`).
pub mod act {
    pub const OUTPUT: u16 = 0;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const SET_QUEUE: u16 = 21;
    pub const GROUP: u16 = 22;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Flow mod commands (`enum ofp_flow_mod_command`) and flags.
pub mod flow_mod {
    pub const ADD: u8 = 0;
    pub const MODIFY: u8 = 1;
    pub const MODIFY_STRICT: u8 = 2;
    pub const DELETE: u8 = 3;
    pub const DELETE_STRICT: u8 = 4;
    pub const FLAG_SEND_FLOW_REM: u16 = 1 << 0;
    pub const FLAG_CHECK_OVERLAP: u16 = 1 << 1;
    pub const FLAG_RESET_COUNTS: u16 = 1 << 2;
    pub const FLAG_NO_PKT_COUNTS: u16 = 1 << 3;
    pub const FLAG_NO_BYT_COUNTS: u16 = 1 << 4;
}

/// Flow removed reasons (`enum ofp_flow_removed_reason`).
pub mod removed {
    pub const IDLE_TIMEOUT: u8 = 0;
    pub const HARD_TIMEOUT: u8 = 1;
    pub const DELETE: u8 = 2;
    pub const METER_DELETE: u8 = 4;
}

/// Packet-in reasons (`enum ofp_packet_in_reason`).
pub mod packet_in {
    pub const NO_MATCH: u8 = 0;
    pub const ACTION: u8 = 1;
}

/// Port status reasons, config and state bits.
pub mod port_status {
    pub const ADD: u8 = 0;
    pub const DELETE: u8 = 1;
    pub const MODIFY: u8 = 2;
    /// `OFPPC_PORT_DOWN`.
    pub const CONFIG_PORT_DOWN: u32 = 1 << 0;
    /// `OFPPC_NO_RECV`.
    pub const CONFIG_NO_RECV: u32 = 1 << 2;
    /// `OFPPC_NO_FWD`.
    pub const CONFIG_NO_FWD: u32 = 1 << 5;
    /// `OFPPS_LINK_DOWN`.
    pub const STATE_LINK_DOWN: u32 = 1 << 0;
    /// `OFPPS_BLOCKED`.
    pub const STATE_BLOCKED: u32 = 1 << 1;
    /// `OFPPS_LIVE`.
    pub const STATE_LIVE: u32 = 1 << 2;
    /// `OFPPF_10GB_FD`.
    pub const FEATURE_10GB_FD: u32 = 1 << 6;
    /// `OFPPF_OTHER`.
    pub const FEATURE_OTHER: u32 = 1 << 12;
}

/// Multipart types (`enum ofp_multipart_type`) and flags.
pub mod mp {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
    /// `OFPMPF_REQ_MORE` / `OFPMPF_REPLY_MORE`.
    pub const FLAG_MORE: u16 = 1;
}

/// Meter mod commands, flags, band types and special meters.
pub mod meter {
    pub const ADD: u16 = 0;
    pub const MODIFY: u16 = 1;
    pub const DELETE: u16 = 2;
    pub const FLAG_KBPS: u16 = 1 << 0;
    pub const FLAG_PKTPS: u16 = 1 << 1;
    pub const FLAG_BURST: u16 = 1 << 2;
    pub const FLAG_STATS: u16 = 1 << 3;
    pub const BAND_DROP: u16 = 1;
    pub const BAND_DSCP_REMARK: u16 = 2;
    pub const BAND_EXPERIMENTER: u16 = 0xffff;
    /// Highest meter number (`OFPM_MAX`).
    pub const MAX: u32 = 0xffff_0000;
    /// All meters (`OFPM_ALL`).
    pub const ALL: u32 = 0xffff_ffff;
}

/// Controller roles (`enum ofp_controller_role`).
pub mod role {
    pub const NOCHANGE: u32 = 0;
    pub const EQUAL: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const SLAVE: u32 = 3;
}

/// Switch capabilities (`enum ofp_capabilities`).
pub mod cap {
    pub const FLOW_STATS: u32 = 1 << 0;
    pub const TABLE_STATS: u32 = 1 << 1;
    pub const PORT_STATS: u32 = 1 << 2;
}

/// Switch config flags and the miss-send length.
pub mod config {
    /// `OFPC_FRAG_MASK`: the fragment handling bits.
    pub const FRAG_MASK: u16 = 3;
    /// `OFPCML_NO_BUFFER`: send whole packets.
    pub const MISS_SEND_NO_BUFFER: u16 = 0xffff;
    /// Default miss-send length (`OFP_DEFAULT_MISS_SEND_LEN`).
    pub const DEFAULT_MISS_SEND_LEN: u16 = 128;
}
