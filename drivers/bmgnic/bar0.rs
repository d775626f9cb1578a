// SPDX-License-Identifier: GPL-2.0

//! The guest register bank of BAR0 as typed registers (`register!`).
//!
//! The register map itself is `regs::guest`, shared with the device model
//! and the RME module. The macro takes offsets as literals, so every offset
//! and field below is checked against that map at compile time (the
//! `const` block at the end): a change to one side that the other does not
//! follow does not build.

use crate::regs::guest;
use kernel::io::register::{Register, RegisterBase};

kernel::io::register! {
    /// Identification: reads [`guest::ID_MAGIC`].
    pub(crate) ID(u32) @ 0x000 {
        31:0 magic;
    }

    /// Register map version.
    pub(crate) VERSION(u32) @ 0x004 {
        31:16 major;
        15:0 minor;
    }

    /// Features the device implements.
    pub(crate) FEATURES(u32) @ 0x008 {
        /// TX checksum insertion.
        0:0 tx_csum => bool;
        /// TCP segmentation.
        2:2 tso => bool;
        /// TX doorbell suppression through the status block.
        3:3 tx_shadow => bool;
    }

    /// Device status, also mirrored in the status block.
    pub(crate) STATUS(u32) @ 0x010 {
        /// The fabric link is up.
        0:0 link_up => bool;
        /// The RME has quarantined the tenant.
        1:1 quarantined => bool;
        /// The device stopped on an error; a reset clears it.
        2:2 error => bool;
        /// The device reads the TX producer index from the status block.
        4:4 tx_polling => bool;
    }

    /// Device control.
    pub(crate) CONTROL(u32) @ 0x014 {
        /// Start the rings.
        0:0 enable => bool;
        /// Reset the guest bank; self-clearing.
        1:1 reset => bool;
        /// Take the TX producer index from the status block.
        2:2 tx_shadow => bool;
    }

    /// Why the device stopped, the first error since reset.
    pub(crate) ERROR_CODE(u32) @ 0x018 {
        31:0 code;
    }

    /// The ring slot of that error.
    pub(crate) ERROR_INFO(u32) @ 0x01c {
        31:0 info;
    }

    /// Bytes 0-3 of the MAC address.
    pub(crate) MAC_LO(u32) @ 0x020 {
        31:0 bytes;
    }

    /// Bytes 4-5 of the MAC address.
    pub(crate) MAC_HI(u32) @ 0x024 {
        15:0 bytes;
    }

    /// The MTU, at most [`MTU_CAP`].
    pub(crate) MTU(u32) @ 0x028 {
        31:0 bytes;
    }

    /// The largest MTU the RME allows.
    pub(crate) MTU_CAP(u32) @ 0x02c {
        31:0 bytes;
    }

    /// Interrupt causes masked (no vector signalled).
    pub(crate) INT_MASK(u32) @ 0x034 {
        0:0 tx => bool;
        1:1 rx => bool;
        2:2 link => bool;
        3:3 error => bool;
    }

    /// Interrupt moderation.
    pub(crate) INT_MODERATION(u32) @ 0x038 {
        31:0 usecs;
    }

    /// DMA address of the status block, low half.
    pub(crate) STATUS_BLOCK_LO(u32) @ 0x040 {
        31:0 addr;
    }

    /// DMA address of the status block, high half.
    pub(crate) STATUS_BLOCK_HI(u32) @ 0x044 {
        31:0 addr;
    }

    /// Size of the RX buffers the driver posts.
    pub(crate) RX_BUF_SIZE(u32) @ 0x048 {
        31:0 bytes;
    }

    /// TX ring DMA address, low half.
    pub(crate) TX_BASE_LO(u32) @ QueueBlock + 0x00 {
        31:0 addr;
    }

    /// TX ring DMA address, high half.
    pub(crate) TX_BASE_HI(u32) @ QueueBlock + 0x04 {
        31:0 addr;
    }

    /// TX ring entries.
    pub(crate) TX_SIZE(u32) @ QueueBlock + 0x08 {
        31:0 entries;
    }

    /// TX producer index (the doorbell).
    pub(crate) TX_TAIL(u32) @ QueueBlock + 0x0c {
        31:0 index;
    }

    /// RX ring DMA address, low half.
    pub(crate) RX_BASE_LO(u32) @ QueueBlock + 0x10 {
        31:0 addr;
    }

    /// RX ring DMA address, high half.
    pub(crate) RX_BASE_HI(u32) @ QueueBlock + 0x14 {
        31:0 addr;
    }

    /// RX ring entries.
    pub(crate) RX_SIZE(u32) @ QueueBlock + 0x18 {
        31:0 entries;
    }

    /// RX producer index (the doorbell).
    pub(crate) RX_TAIL(u32) @ QueueBlock + 0x1c {
        31:0 index;
    }

    /// Low halves of the 64-bit statistics counters.
    pub(crate) STAT_LO(u32)[guest::STAT_COUNT, stride = STAT_STRIDE] @ 0x800 {
        31:0 value;
    }

    /// High halves of the 64-bit statistics counters.
    pub(crate) STAT_HI(u32)[guest::STAT_COUNT, stride = STAT_STRIDE] @ 0x804 {
        31:0 value;
    }
}

/// Bytes between two statistics counters.
const STAT_STRIDE: usize = 8;

/// The register block of a queue pair.
pub(crate) struct QueueBlock;

/// Queue pair 0, the one this driver uses.
pub(crate) struct Queue0;

impl RegisterBase<QueueBlock> for Queue0 {
    const BASE: usize = guest::queue_reg(0, 0);
}

// The typed registers are the shared map: same offsets, same bits.
const _: () = {
    assert!(ID::OFFSET == guest::ID);
    assert!(VERSION::OFFSET == guest::VERSION);
    assert!(FEATURES::OFFSET == guest::FEATURES);
    assert!(FEATURES::TX_SHADOW_MASK == guest::FEATURE_TX_SHADOW);
    assert!(FEATURES::TX_CSUM_MASK == guest::FEATURE_TX_CSUM);
    assert!(FEATURES::TSO_MASK == guest::FEATURE_TSO);
    assert!(STATUS::OFFSET == guest::STATUS);
    assert!(STATUS::LINK_UP_MASK == guest::STATUS_LINK_UP);
    assert!(STATUS::QUARANTINED_MASK == guest::STATUS_QUARANTINED);
    assert!(STATUS::ERROR_MASK == guest::STATUS_ERROR);
    assert!(STATUS::TX_POLLING_MASK == guest::STATUS_TX_POLLING);
    assert!(CONTROL::OFFSET == guest::CONTROL);
    assert!(CONTROL::ENABLE_MASK == guest::CONTROL_ENABLE);
    assert!(CONTROL::RESET_MASK == guest::CONTROL_RESET);
    assert!(CONTROL::TX_SHADOW_MASK == guest::CONTROL_TX_SHADOW);
    assert!(ERROR_CODE::OFFSET == guest::ERROR_CODE);
    assert!(ERROR_INFO::OFFSET == guest::ERROR_INFO);
    assert!(MAC_LO::OFFSET == guest::MAC_LO);
    assert!(MAC_HI::OFFSET == guest::MAC_HI);
    assert!(MTU::OFFSET == guest::MTU);
    assert!(MTU_CAP::OFFSET == guest::MTU_CAP);
    assert!(INT_MASK::OFFSET == guest::INT_MASK);
    assert!(INT_MASK::TX_MASK == guest::INT_TX);
    assert!(INT_MASK::RX_MASK == guest::INT_RX);
    assert!(INT_MASK::LINK_MASK == guest::INT_LINK);
    assert!(INT_MASK::ERROR_MASK == guest::INT_ERROR);
    assert!(INT_MODERATION::OFFSET == guest::INT_MODERATION);
    assert!(STATUS_BLOCK_LO::OFFSET == guest::STATUS_BLOCK_LO);
    assert!(STATUS_BLOCK_HI::OFFSET == guest::STATUS_BLOCK_HI);
    assert!(RX_BUF_SIZE::OFFSET == guest::RX_BUF_SIZE);
    assert!(TX_BASE_LO::OFFSET == guest::TX_BASE_LO);
    assert!(TX_BASE_HI::OFFSET == guest::TX_BASE_HI);
    assert!(TX_SIZE::OFFSET == guest::TX_SIZE);
    assert!(TX_TAIL::OFFSET == guest::TX_TAIL);
    assert!(RX_BASE_LO::OFFSET == guest::RX_BASE_LO);
    assert!(RX_BASE_HI::OFFSET == guest::RX_BASE_HI);
    assert!(RX_SIZE::OFFSET == guest::RX_SIZE);
    assert!(RX_TAIL::OFFSET == guest::RX_TAIL);
    assert!(STAT_LO::OFFSET == guest::STATS_BASE);
    assert!(STAT_HI::OFFSET == guest::STATS_BASE + 4);
    assert!(
        guest::stat_offset(guest::Stat::GuestRoWrites)
            == STAT_LO::OFFSET + STAT_STRIDE * (guest::STAT_COUNT - 1)
    );
    assert!(guest::Stat::GuestRoWrites as usize == guest::STAT_COUNT - 1);
    // Every register lies in the bank the driver maps.
    assert!(STAT_HI::OFFSET + STAT_STRIDE * (guest::STAT_COUNT - 1) + 4 <= guest::REGS_END);
};
