// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The `bmgnic` generic netlink family's numbers
//! (`Documentation/netlink/specs/bmgnic.yaml`): the RME module serves them
//! and the RME daemon speaks them.
//!
//! They follow the spec's order (ynl's rules: commands and attributes from
//! 1, enums from 0); `tools/testing/netlink_spec.sh` checks them against
//! the uAPI header ynl generates from the spec.
//!
//! Core-only; see the crate documentation for how each side builds it.

// Public for the daemon, which uses the crate; each side uses a subset.
#![allow(dead_code, unreachable_pub)]

/// Family name, NUL-terminated as the kernel registers it.
pub const FAMILY_NAME: &[u8] = b"bmgnic\0";
/// Family version.
pub const FAMILY_VERSION: u32 = 1;
/// The multicast group of [`cmd::EVENT_NTF`] notifications.
pub const MCGRP_EVENTS: &core::ffi::CStr = c"events";

/// Commands.
pub mod cmd {
    pub const DEV_GET: u8 = 1;
    pub const IDENTITY_SET: u8 = 2;
    pub const TENANT_SET: u8 = 3;
    pub const VTEP_SET: u8 = 4;
    pub const VTEP_GET: u8 = 5;
    pub const FLOW_ADD: u8 = 6;
    pub const FLOW_DEL: u8 = 7;
    pub const FLOW_GET: u8 = 8;
    pub const METER_SET: u8 = 9;
    pub const METER_GET: u8 = 10;
    pub const POLICY_SET: u8 = 11;
    pub const EVENT_NTF: u8 = 12;
    pub const TENANT_RESET: u8 = 13;
}

/// Attributes, per attribute set.
pub mod attr {
    pub mod identity {
        pub const MAC: u16 = 1;
        pub const MTU_CAP: u16 = 2;
        pub const IPV4: u16 = 3;
        pub const IPV6: u16 = 4;
    }
    pub mod tenant {
        pub const VNI: u16 = 1;
        pub const LOCAL_MAC: u16 = 2;
        pub const LOCAL_IP: u16 = 3;
    }
    pub mod vtep {
        pub const INDEX: u16 = 1;
        pub const MAC: u16 = 2;
        pub const IP: u16 = 3;
    }
    pub mod matches {
        pub const IN_PORT: u16 = 1;
        pub const ETHERTYPE: u16 = 2;
        pub const VLAN_TCI: u16 = 3;
        pub const IP_PROTO: u16 = 4;
        pub const ETH_SRC: u16 = 5;
        pub const ETH_SRC_MASK: u16 = 6;
        pub const ETH_DST: u16 = 7;
        pub const ETH_DST_MASK: u16 = 8;
        pub const IP_SRC: u16 = 9;
        pub const IP_SRC_PREFIX: u16 = 10;
        pub const IP_DST: u16 = 11;
        pub const IP_DST_PREFIX: u16 = 12;
        pub const L4_SRC: u16 = 13;
        pub const L4_DST: u16 = 14;
    }
    pub mod flow {
        pub const ID: u16 = 1;
        pub const PRIORITY: u16 = 2;
        pub const ACTION: u16 = 3;
        pub const METER: u16 = 4;
        pub const VTEP: u16 = 5;
        pub const MATCH: u16 = 6;
        pub const PACKETS: u16 = 7;
        pub const BYTES: u16 = 8;
        pub const NIC_SLOT: u16 = 9;
    }
    pub mod meter {
        pub const INDEX: u16 = 1;
        pub const RATE: u16 = 2;
        pub const BURST: u16 = 3;
        pub const UNIT: u16 = 4;
        pub const PASSED_PACKETS: u16 = 5;
        pub const PASSED_BYTES: u16 = 6;
        pub const DROPPED_PACKETS: u16 = 7;
        pub const DROPPED_BYTES: u16 = 8;
    }
    pub mod policy {
        pub const QUARANTINED: u16 = 1;
        pub const MISS_POLICY: u16 = 2;
        pub const MISS_EVENTS_PER_SEC: u16 = 3;
    }
    pub mod counters {
        pub const TX_PACKETS: u16 = 1;
        pub const TX_BYTES: u16 = 2;
        pub const RX_PACKETS: u16 = 3;
        pub const RX_BYTES: u16 = 4;
        pub const DROPS: u16 = 5;
        pub const TABLE_MISSES: u16 = 6;
        pub const EVICTIONS: u16 = 7;
        pub const GUEST_RO_WRITES: u16 = 8;
    }
    pub mod drop {
        pub const REASON: u16 = 1;
        pub const PACKETS: u16 = 2;
    }
    pub mod dev {
        pub const SIDEBAND_IFINDEX: u16 = 1;
        pub const SIDEBAND_NAME: u16 = 2;
        pub const NCSI_VERSION: u16 = 3;
        pub const NIC_FLOW_SLOTS: u16 = 4;
        pub const NIC_FLOWS_USED: u16 = 5;
        pub const SW_FLOWS: u16 = 6;
        pub const IDENTITY: u16 = 7;
        pub const TENANT: u16 = 8;
        pub const POLICY: u16 = 9;
        pub const COUNTERS: u16 = 10;
        pub const FABRIC_LINK: u16 = 11;
    }
    pub mod tenancy {
        pub const FLOWS: u16 = 1;
        pub const PACKETS: u16 = 2;
        pub const BYTES: u16 = 3;
        pub const COUNTERS: u16 = 4;
    }
    pub mod event {
        pub const KIND: u16 = 1;
        pub const COUNT: u16 = 2;
        pub const MATCH: u16 = 3;
        pub const REGISTER: u16 = 4;
        pub const FLOW_ID: u16 = 5;
        pub const FABRIC_LINK: u16 = 6;
    }
}

/// `meter-unit` values.
pub mod meter_unit {
    pub const BYTES: u8 = 0;
    pub const PACKETS: u8 = 1;
}

/// `event-kind` values.
pub mod event_kind {
    pub const TABLE_MISS: u8 = 0;
    pub const VIOLATION: u8 = 1;
    pub const NIC_TIMEOUT: u8 = 2;
    pub const LINK: u8 = 3;
}
