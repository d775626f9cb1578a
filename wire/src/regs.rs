// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BMGNIC register map and descriptor formats: the one source of truth.
//!
//! Core-only (no `std`, no `kernel`, no allocation): the tenant driver
//! compiles it as a module of its crate and the device model in `qemu/`
//! includes it with `#[path]`, so the two cannot drift. Each side uses a
//! subset.
//!
//! Documented in `Documentation/bmgnic/registers.rst`.

// Public for the model, whose library exports it; each side uses a subset.
#![allow(dead_code, unreachable_pub)]

/// PCI vendor ID: Red Hat (Qumranet), whose 0x10f0-0x10ff device range QEMU's
/// `docs/specs/pci-ids.rst` leaves free for experimental devices.
pub const PCI_VENDOR_ID: u16 = 0x1af4;
/// PCI device ID of the BMGNIC, from the experimental range.
pub const PCI_DEVICE_ID: u16 = 0x10f0;
/// PCI revision of the function.
pub const PCI_REVISION: u8 = 0x01;
/// PCI class code: network controller, Ethernet, no programming interface.
pub const PCI_CLASS_CODE: u32 = 0x02_00_00;

/// Guest bank: BAR0, the only configuration the tenant can reach.
///
/// All registers are 32 bits wide and little-endian unless noted; the
/// statistics block holds 64-bit counters.
pub mod guest {
    /// Size of BAR0: guest registers, then the MSI-X table and PBA.
    pub const BAR0_SIZE: usize = 0x4000;
    /// End of the guest register block (the driver maps this much).
    pub const REGS_END: usize = 0x1000;
    /// Offset of the MSI-X table in BAR0.
    pub const MSIX_TABLE_OFFSET: u32 = 0x2000;
    /// Offset of the MSI-X pending-bit array in BAR0.
    pub const MSIX_PBA_OFFSET: u32 = 0x3000;

    /// MSI-X vector signalled for TX completions.
    pub const VECTOR_TX: u16 = 0;
    /// MSI-X vector signalled for RX completions.
    pub const VECTOR_RX: u16 = 1;
    /// MSI-X vector signalled for link, quarantine and error events.
    pub const VECTOR_MISC: u16 = 2;
    /// Number of MSI-X vectors.
    pub const VECTORS: u16 = 3;

    /// RO: identification, [`ID_MAGIC`].
    pub const ID: usize = 0x000;
    /// Value of [`ID`]: "BMGN" in ASCII.
    pub const ID_MAGIC: u32 = 0x424d_474e;

    /// RO: register map version, major in bits 31:16, minor in 15:0.
    pub const VERSION: usize = 0x004;
    /// Major version of this register map; a driver refuses another major.
    pub const VERSION_MAJOR: u16 = 0;
    /// Minor version of this register map; additions bump it.
    pub const VERSION_MINOR: u16 = 3;

    /// RO: features the device implements (`FEATURE_*`).
    pub const FEATURES: usize = 0x008;
    /// TX checksum insertion ([`desc::TX_FLAG_CSUM`]).
    pub const FEATURE_TX_CSUM: u32 = 1 << 0;
    /// RX checksum validation (`RX_FLAG_CSUM_OK`). Reserved.
    pub const FEATURE_RX_CSUM: u32 = 1 << 1;
    /// TCP segmentation ([`desc::TX_FLAG_TSO`]), for IPv4 and IPv6.
    pub const FEATURE_TSO: u32 = 1 << 2;
    /// TX doorbell suppression: the driver also writes its TX producer
    /// index to the status block's driver area ([`desc::SB_TX_TAIL`]), and
    /// may skip the `TX_TAIL` doorbell while `STATUS_TX_POLLING` says the
    /// device is reading it there ([`CONTROL_TX_SHADOW`] turns it on).
    pub const FEATURE_TX_SHADOW: u32 = 1 << 3;

    /// RO: number of queue pairs (register blocks at [`QUEUE_BASE`]).
    pub const QUEUES: usize = 0x00c;

    /// RO: device status (`STATUS_*`); mirrored in the status block.
    pub const STATUS: usize = 0x010;
    /// The fabric link is up.
    pub const STATUS_LINK_UP: u32 = 1 << 0;
    /// The RME has quarantined the tenant: no packet moves.
    pub const STATUS_QUARANTINED: u32 = 1 << 1;
    /// The device stopped on an error ([`ERROR_CODE`]); a reset clears it.
    pub const STATUS_ERROR: u32 = 1 << 2;
    /// Rings are running ([`CONTROL_ENABLE`] accepted).
    pub const STATUS_ENABLED: u32 = 1 << 3;
    /// The device is polling the TX producer index in the status block:
    /// no doorbell needed ([`FEATURE_TX_SHADOW`]).
    pub const STATUS_TX_POLLING: u32 = 1 << 4;

    /// RW: device control (`CONTROL_*`).
    pub const CONTROL: usize = 0x014;
    /// Start the rings (set after programming them).
    pub const CONTROL_ENABLE: u32 = 1 << 0;
    /// Reset guest-bank state; self-clearing, reads back as 0.
    pub const CONTROL_RESET: u32 = 1 << 1;
    /// With [`CONTROL_ENABLE`]: use the TX producer index the driver writes
    /// to the status block ([`FEATURE_TX_SHADOW`]). It is then the only
    /// source of that index: a [`TX_TAIL`] write is just a kick that makes
    /// the device re-read it, whatever value it carries, because a doorbell
    /// can reach the device after a newer index in memory.
    pub const CONTROL_TX_SHADOW: u32 = 1 << 2;

    /// RO: why the device stopped (`ERR_*`), the first error since reset.
    pub const ERROR_CODE: usize = 0x018;
    /// RO: ring slot (TX in 15:0 or RX with bit 16 set) of that error.
    pub const ERROR_INFO: usize = 0x01c;

    /// RO: bytes 0-3 of the RME-assigned MAC address.
    pub const MAC_LO: usize = 0x020;
    /// RO: bytes 4-5 of the RME-assigned MAC address in bits 15:0.
    pub const MAC_HI: usize = 0x024;

    /// RW: MTU, at most [`MTU_CAP`]; a larger write is refused and counted.
    pub const MTU: usize = 0x028;
    /// RO: largest MTU the RME allows.
    pub const MTU_CAP: usize = 0x02c;
    /// Smallest MTU the device accepts.
    pub const MTU_MIN: u32 = 68;
    /// Largest MTU the device can ever be allowed.
    pub const MTU_MAX: u32 = 9000;
    /// Bytes of a frame beyond its MTU: the Ethernet header and one VLAN
    /// tag (frames carry no FCS). The device drops longer frames as
    /// `*_drop_too_long`, and an RX buffer of `mtu + FRAME_OVERHEAD` bytes
    /// holds any frame it delivers.
    pub const FRAME_OVERHEAD: u32 = 18;
    /// Longest frame the device moves to or from the guest.
    pub const MAX_FRAME_LEN: usize = (MTU_MAX + FRAME_OVERHEAD) as usize;
    /// Longest frame a driver may hand over for segmentation
    /// ([`desc::TX_FLAG_TSO`]), headers included: Linux's default
    /// `tso_max_size`. Each segment the device makes must fit the MTU.
    pub const TSO_MAX_FRAME_LEN: usize = 65536;
    /// Smallest segment size the device accepts; a smaller one is a bad
    /// descriptor (no TCP stack sends less than 88 bytes per segment).
    pub const TSO_MSS_MIN: u16 = 64;

    /// RW1C: pending interrupt causes (`INT_*`); mirrored in the status block.
    pub const INT_CAUSE: usize = 0x030;
    /// RW: masked interrupt causes (a set bit suppresses the MSI-X message).
    pub const INT_MASK: usize = 0x034;
    /// RW: interrupt moderation, minimum microseconds between messages of
    /// one vector.
    pub const INT_MODERATION: usize = 0x038;
    /// TX descriptors completed.
    pub const INT_TX: u32 = 1 << 0;
    /// RX descriptors completed.
    pub const INT_RX: u32 = 1 << 1;
    /// Link or quarantine state changed.
    pub const INT_LINK: u32 = 1 << 2;
    /// The device stopped on an error.
    pub const INT_ERROR: u32 = 1 << 3;

    /// RW: guest-physical address of the status block (low 32 bits).
    pub const STATUS_BLOCK_LO: usize = 0x040;
    /// RW: guest-physical address of the status block (high 32 bits).
    pub const STATUS_BLOCK_HI: usize = 0x044;
    /// RW: size of every RX buffer the driver posts, in bytes.
    pub const RX_BUF_SIZE: usize = 0x048;

    /// First queue-pair register block.
    pub const QUEUE_BASE: usize = 0x100;
    /// Distance between queue-pair register blocks.
    pub const QUEUE_STRIDE: usize = 0x40;
    /// RW: TX ring guest-physical address, low 32 bits.
    pub const TX_BASE_LO: usize = 0x00;
    /// RW: TX ring guest-physical address, high 32 bits.
    pub const TX_BASE_HI: usize = 0x04;
    /// RW: TX ring entries, a power of two in `RING_MIN..=RING_MAX`.
    pub const TX_SIZE: usize = 0x08;
    /// WO doorbell: TX producer index (free-running). With
    /// [`CONTROL_TX_SHADOW`] the value is ignored: the write only makes the
    /// device read the index at `desc::SB_TX_TAIL`.
    pub const TX_TAIL: usize = 0x0c;
    /// RW: RX ring guest-physical address, low 32 bits.
    pub const RX_BASE_LO: usize = 0x10;
    /// RW: RX ring guest-physical address, high 32 bits.
    pub const RX_BASE_HI: usize = 0x14;
    /// RW: RX ring entries, a power of two in `RING_MIN..=RING_MAX`.
    pub const RX_SIZE: usize = 0x18;
    /// WO doorbell: RX producer index (free-running).
    pub const RX_TAIL: usize = 0x1c;

    /// Offset of a queue-pair register in BAR0.
    pub const fn queue_reg(queue: usize, reg: usize) -> usize {
        QUEUE_BASE + queue * QUEUE_STRIDE + reg
    }

    /// Smallest ring.
    pub const RING_MIN: u32 = 16;
    /// Largest ring.
    pub const RING_MAX: u32 = 4096;

    /// First 64-bit statistics counter; counter `i` is at
    /// `STATS_BASE + 8 * i`, named `STAT_NAMES[i]`.
    pub const STATS_BASE: usize = 0x800;
    /// Statistics the guest can read, in register order (also the names
    /// `ethtool -S` prints).
    pub const STAT_NAMES: [&str; STAT_COUNT] = [
        "tx_packets",
        "tx_bytes",
        "rx_packets",
        "rx_bytes",
        "tx_drop_spoofed",
        "tx_drop_denied",
        "tx_drop_metered",
        "tx_drop_quarantined",
        "tx_drop_too_long",
        "tx_drop_table_miss",
        "tx_drop_bad_descriptor",
        "rx_drop_no_buffer",
        "rx_drop_bad_outer",
        "rx_drop_wrong_vni",
        "rx_drop_denied",
        "rx_drop_quarantined",
        "rx_drop_too_long",
        "guest_ro_writes",
    ];
    /// Number of statistics counters.
    pub const STAT_COUNT: usize = 18;

    /// Index of each counter in [`STAT_NAMES`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(usize)]
    pub enum Stat {
        /// Packets sent to the fabric.
        TxPackets = 0,
        /// Bytes (inner frames) sent to the fabric.
        TxBytes,
        /// Packets delivered to the guest.
        RxPackets,
        /// Bytes delivered to the guest.
        RxBytes,
        /// TX frames whose source MAC or IP is not the RME-assigned one.
        TxDropSpoofed,
        /// TX frames a flow rule denied.
        TxDropDenied,
        /// TX frames over their meter's rate.
        TxDropMetered,
        /// TX frames while quarantined.
        TxDropQuarantined,
        /// TX frames longer than the MTU allows.
        TxDropTooLong,
        /// TX frames that missed the table under a drop-on-miss policy.
        TxDropTableMiss,
        /// TX descriptors with a bad address or length.
        TxDropBadDescriptor,
        /// RX frames with no posted buffer.
        RxDropNoBuffer,
        /// Fabric frames not VXLAN to our VTEP.
        RxDropBadOuter,
        /// VXLAN frames with another tenant's VNI.
        RxDropWrongVni,
        /// RX frames an ingress rule denied.
        RxDropDenied,
        /// RX frames while quarantined.
        RxDropQuarantined,
        /// RX frames larger than the posted buffer or the MTU.
        RxDropTooLong,
        /// Guest writes to read-only or unassigned registers.
        GuestRoWrites,
    }

    /// Offset of a statistics counter.
    pub const fn stat_offset(stat: Stat) -> usize {
        STATS_BASE + 8 * stat as usize
    }

    /// Encodes a version register value.
    pub const fn version(major: u16, minor: u16) -> u32 {
        ((major as u32) << 16) | minor as u32
    }

    /// Major part of a version register value.
    pub const fn version_major(value: u32) -> u16 {
        (value >> 16) as u16
    }

    /// Minor part of a version register value.
    pub const fn version_minor(value: u32) -> u16 {
        value as u16
    }

    /// Errors that stop the device (`ERROR_CODE`).
    pub const ERR_NONE: u32 = 0;
    /// A ring's base or size does not fit guest memory.
    pub const ERR_RING_ADDRESS: u32 = 1;
    /// A ring size is not a power of two in range.
    pub const ERR_RING_SIZE: u32 = 2;
    /// A doorbell, or the TX producer index in the status block, moved a
    /// producer index past the ring.
    pub const ERR_TAIL_RANGE: u32 = 3;
    /// A descriptor's buffer is outside guest memory.
    pub const ERR_DESC_ADDRESS: u32 = 4;
    /// A descriptor's length is zero or too large.
    pub const ERR_DESC_LENGTH: u32 = 5;
    /// The status block is outside guest memory.
    pub const ERR_STATUS_BLOCK: u32 = 6;
    /// Bit of `ERROR_INFO` saying the slot is an RX slot.
    pub const ERROR_INFO_RX: u32 = 1 << 16;
}

/// Descriptors and the status block, in guest memory (little-endian).
pub mod desc {
    /// Size of a TX or RX descriptor.
    pub const SIZE: usize = 16;

    /// Buffer address (u64).
    pub const ADDR: usize = 0;
    /// Buffer length (u16): TX bytes to send; RX buffer size when posted,
    /// frame length when completed.
    pub const LEN: usize = 8;
    /// Flags (u16), `TX_FLAG_*` or `RX_FLAG_*`.
    pub const FLAGS: usize = 10;
    /// TX, with `TX_FLAG_CSUM`: offset in the frame of the first byte the
    /// checksum covers (u16). Offload fields are read from the first
    /// descriptor of a frame; the device ignores them in the others.
    pub const CSUM_START: usize = 12;
    /// TX, with `TX_FLAG_CSUM`: offset of the 16-bit checksum field from
    /// `CSUM_START` (u8).
    pub const CSUM_OFFSET: usize = 14;
    /// TX, with `TX_FLAG_TSO`: the segment size, TCP payload bytes per
    /// segment (u16), in place of `CSUM_START`.
    pub const TSO_MSS: usize = 12;
    /// TX: reserved (u8), zero.
    pub const TX_RESERVED: usize = 15;
    /// RX: RSS hash (u32). Reserved.
    pub const RX_HASH: usize = 12;

    /// TX: last descriptor of a frame.
    pub const TX_FLAG_EOP: u16 = 1 << 0;
    /// TX: insert a checksum, as Linux's `CHECKSUM_PARTIAL` asks. The
    /// device adds up the 16-bit words from `CSUM_START` to the end of the
    /// frame, the checksum field included (the driver leaves there what
    /// the stack put, the pseudo-header's sum), and stores the complement
    /// of that sum in the field; a result of 0 is sent as 0xffff.
    pub const TX_FLAG_CSUM: u16 = 1 << 1;
    /// TX: segment a TCP frame (TSO). The frame is Ethernet (one VLAN tag
    /// at most), IPv4 without fragments or IPv6 without extension headers,
    /// and TCP, of up to `guest::TSO_MAX_FRAME_LEN` bytes. The device cuts
    /// the payload into `TSO_MSS`-byte segments, each with a copy of the
    /// headers in which it sets the IP lengths, the IPv4 ID (one more per
    /// segment) and header checksum, the sequence number, FIN and PSH on
    /// the last segment only and CWR on the first only, and the TCP
    /// checksum. `TX_FLAG_CSUM` is implied and its fields unused. A frame
    /// the device cannot segment is dropped and counted as
    /// `tx_drop_bad_descriptor`; one whose segments exceed the MTU, as
    /// `tx_drop_too_long`.
    pub const TX_FLAG_TSO: u16 = 1 << 2;

    /// RX: the device filled the buffer.
    pub const RX_FLAG_DONE: u16 = 1 << 15;
    /// RX: last buffer of a frame.
    pub const RX_FLAG_EOP: u16 = 1 << 0;
    /// RX: the L4 checksum was checked and is good. Reserved.
    pub const RX_FLAG_CSUM_OK: u16 = 1 << 1;

    /// Size of the status block: 16 bytes the device writes, then 16 the
    /// driver writes.
    pub const STATUS_BLOCK_SIZE: usize = 32;
    /// Bytes of the status block the device writes.
    pub const SB_DEVICE_AREA: usize = 16;
    /// Status block: TX consumer index (u32, free-running).
    pub const SB_TX_HEAD: usize = 0;
    /// Status block: RX consumer index (u32, free-running).
    pub const SB_RX_HEAD: usize = 4;
    /// Status block: copy of the `STATUS` register (u32).
    pub const SB_STATUS: usize = 8;
    /// Status block: copy of the `INT_CAUSE` register (u32).
    pub const SB_INT_CAUSE: usize = 12;
    /// Status block, driver area: the TX producer index (u32), with
    /// `CONTROL_TX_SHADOW`. The driver alone writes it, in order, so it
    /// never goes back; the device takes the index only from here (a
    /// `TX_TAIL` write just makes it look), and an index more than a ring
    /// ahead of the consumer index is `ERR_TAIL_RANGE`.
    pub const SB_TX_TAIL: usize = 16;

    /// Encodes a descriptor.
    pub fn encode(addr: u64, len: u16, flags: u16) -> [u8; SIZE] {
        let mut d = [0u8; SIZE];
        d[ADDR..ADDR + 8].copy_from_slice(&addr.to_le_bytes());
        d[LEN..LEN + 2].copy_from_slice(&len.to_le_bytes());
        d[FLAGS..FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
        d
    }

    /// Encodes the first descriptor of a frame with an offload:
    /// `field` is `CSUM_START` with `TX_FLAG_CSUM`, or `TSO_MSS` with
    /// `TX_FLAG_TSO`; `csum_offset` is `CSUM_OFFSET`.
    pub fn encode_tx_offload(
        addr: u64,
        len: u16,
        flags: u16,
        field: u16,
        csum_offset: u8,
    ) -> [u8; SIZE] {
        let mut d = encode(addr, len, flags);
        d[CSUM_START..CSUM_START + 2].copy_from_slice(&field.to_le_bytes());
        d[CSUM_OFFSET] = csum_offset;
        d
    }

    /// Decodes a TX descriptor's offload fields: `CSUM_START` (or
    /// `TSO_MSS`) and `CSUM_OFFSET`.
    pub fn decode_tx_offload(d: &[u8; SIZE]) -> (u16, u8) {
        (
            u16::from_le_bytes([d[CSUM_START], d[CSUM_START + 1]]),
            d[CSUM_OFFSET],
        )
    }

    /// Decodes a descriptor's address, length and flags.
    pub fn decode(d: &[u8; SIZE]) -> (u64, u16, u16) {
        let mut a = [0u8; 8];
        a.copy_from_slice(&d[ADDR..ADDR + 8]);
        (
            u64::from_le_bytes(a),
            u16::from_le_bytes([d[LEN], d[LEN + 1]]),
            u16::from_le_bytes([d[FLAGS], d[FLAGS + 1]]),
        )
    }

    /// Slot of free-running index `index` in a ring of `size` entries (a
    /// power of two).
    pub const fn slot(index: u32, size: u32) -> u32 {
        index & (size - 1)
    }

    /// Entries between consumer `head` and producer `tail`, across wrap.
    pub const fn pending(head: u32, tail: u32) -> u32 {
        tail.wrapping_sub(head)
    }
}
