// SPDX-License-Identifier: GPL-2.0

//! The BMGNIC function: its guest bank (BAR0), rings, DMA and interrupts.
//!
//! The guest never needs an MMIO read per packet: completions go to guest
//! memory (descriptor write-back for RX, consumer indices in the status
//! block for both rings) and doorbells are plain writes the driver batches.

use std::fs::File;
use std::io::Write;

use log::{debug, info, warn};

use crate::guest_mem::GuestMemory;
use crate::offload::{self, OffloadError, TxOffload};
use crate::packet;
use crate::pipeline;
use crate::regs::desc;
use crate::regs::guest::{self, Stat, STAT_COUNT};
use crate::rme::Event;
use crate::rme::RmeBank;

/// Smallest RX buffer a driver may post.
const RX_BUF_MIN: u32 = 256;

/// Guest frames that missed the flow table are held this long for the RME
/// to install their flow (a table-miss AEN and an OEM SET take about a
/// millisecond over the sideband), then dropped as `tx_drop_table_miss`.
pub const MISS_HOLD_NS: u64 = 100_000_000;
/// At most this many frames are held; more misses are dropped at once.
pub const MISS_HOLD_FRAMES: usize = 128;

/// One descriptor ring as the device sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Ring {
    base: u64,
    size: u32,
    /// Producer index, from the driver's doorbell or, for TX with
    /// `CONTROL_TX_SHADOW`, from the status block.
    tail: u32,
    /// Consumer index, advanced by the device and written back.
    head: u32,
}

impl Ring {
    fn slot_addr(&self, index: u32) -> u64 {
        self.base + u64::from(desc::slot(index, self.size)) * desc::SIZE as u64
    }
}

/// Device configuration from the command line.
#[derive(Debug, Clone, Copy)]
pub struct DeviceConfig {
    /// Flow table slots in the NIC.
    pub table_size: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self { table_size: 4096 }
    }
}

/// The emulated NIC.
///
/// # Invariants
///
/// Nothing reachable from PCIe (BAR0 accesses here, config space in
/// [`crate::pci_config`]) changes RME-bank state: guest writes reach only the
/// guest-bank registers below, and rejected ones only increment the
/// `guest_ro_writes` counter. Every guest-memory access goes through
/// [`GuestMemory`], which checks it against the DMA mappings.
pub struct Bmgnic {
    control: u32,
    error_code: u32,
    error_info: u32,
    mtu: u32,
    int_cause: u32,
    int_mask: u32,
    moderation_us: u32,
    status_block: u64,
    rx_buf_size: u32,
    tx: Ring,
    rx: Ring,
    stats: [u64; STAT_COUNT],
    link_up: bool,
    msix: Vec<Option<File>>,
    /// Last time each vector fired and whether one is held back by
    /// moderation.
    last_irq_ns: Vec<u64>,
    irq_pending: Vec<bool>,
    mem: GuestMemory,
    /// The RME bank: reached from NC-SI only.
    pub rme: RmeBank,
    /// Events for the RME (table misses, violations), drained by the
    /// NC-SI side.
    pub events: Vec<Event>,
    scratch: Vec<u8>,
    /// Reused for the segments of a TSO frame.
    segment_scratch: Vec<u8>,
    /// The device is polling the driver's TX producer index in the status
    /// block (`STATUS_TX_POLLING`).
    tx_polling: bool,
    /// Bus Master Enable in the function's command register: without it
    /// the device touches no guest memory.
    bus_master: bool,
    /// Guest frames waiting for their flow, oldest first, with the time
    /// they arrived.
    held: std::collections::VecDeque<(Vec<u8>, u64)>,
}

impl Bmgnic {
    /// Creates the device in its power-on state.
    pub fn new(config: DeviceConfig) -> Self {
        let vectors = usize::from(guest::VECTORS);
        let rme = RmeBank::new(config.table_size);
        Self {
            control: 0,
            error_code: guest::ERR_NONE,
            error_info: 0,
            mtu: 1500,
            int_cause: 0,
            int_mask: 0,
            moderation_us: 0,
            status_block: 0,
            rx_buf_size: 2048,
            tx: Ring::default(),
            rx: Ring::default(),
            stats: [0; STAT_COUNT],
            link_up: true,
            msix: (0..vectors).map(|_| None).collect(),
            last_irq_ns: vec![0; vectors],
            irq_pending: vec![false; vectors],
            mem: GuestMemory::new(),
            rme,
            events: Vec::new(),
            scratch: Vec::with_capacity(guest::MAX_FRAME_LEN),
            segment_scratch: Vec::new(),
            held: std::collections::VecDeque::new(),
            tx_polling: false,
            bus_master: true,
        }
    }

    /// Guest memory, for DMA map and unmap.
    pub fn memory_mut(&mut self) -> &mut GuestMemory {
        &mut self.mem
    }

    /// A guest-visible counter.
    pub fn stat(&self, stat: Stat) -> u64 {
        self.stats[stat as usize]
    }

    /// All guest-visible counters, in register order.
    pub fn stats(&self) -> &[u64; STAT_COUNT] {
        &self.stats
    }

    fn count(&mut self, stat: Stat, n: u64) {
        let c = &mut self.stats[stat as usize];
        *c = c.wrapping_add(n);
    }

    /// Sets the eventfds of MSI-X vectors `start..`; empty `fds` clears
    /// them from `start` on.
    pub fn set_msix(&mut self, start: usize, fds: Vec<File>) -> std::io::Result<()> {
        if fds.is_empty() {
            self.msix.iter_mut().skip(start).for_each(|v| *v = None);
            return Ok(());
        }
        if start + fds.len() > self.msix.len() {
            return Err(crate::vfio::einval());
        }
        for (slot, fd) in self.msix.iter_mut().skip(start).zip(fds) {
            *slot = Some(fd);
        }
        Ok(())
    }

    fn status(&self) -> u32 {
        let mut s = 0;
        if self.link_up {
            s |= guest::STATUS_LINK_UP;
        }
        if self.rme.quarantined() {
            s |= guest::STATUS_QUARANTINED;
        }
        if self.error_code != guest::ERR_NONE {
            s |= guest::STATUS_ERROR;
        }
        if self.running() {
            s |= guest::STATUS_ENABLED;
        }
        if self.tx_polling && self.tx_shadow() {
            s |= guest::STATUS_TX_POLLING;
        }
        s
    }

    fn tx_shadow(&self) -> bool {
        self.control & guest::CONTROL_TX_SHADOW != 0
    }

    /// With `CONTROL_TX_SHADOW`: takes the TX producer index the driver
    /// wrote to the status block, the only source of that index in this
    /// mode (a `TX_TAIL` write just calls this).
    pub fn sync_tx_shadow(&mut self, now_ns: u64) {
        if !self.tx_shadow() || !self.running() || self.status_block == 0 {
            return;
        }
        let mut raw = [0u8; 4];
        let at = self.status_block + desc::SB_TX_TAIL as u64;
        if self.mem.read(at, &mut raw).is_err() {
            return self.fail(guest::ERR_STATUS_BLOCK, 0, now_ns);
        }
        let shadow = u32::from_le_bytes(raw);
        let ahead = desc::pending(self.tx.head, shadow);
        if ahead > self.tx.size {
            self.fail(guest::ERR_TAIL_RANGE, shadow & 0xffff, now_ns);
        } else if ahead > desc::pending(self.tx.head, self.tx.tail) {
            self.tx.tail = shadow;
        }
    }

    /// Whether the device tells the driver it polls the TX producer index.
    pub fn tx_polling(&self) -> bool {
        self.tx_polling
    }

    /// Starts or stops polling the TX producer index, and tells the
    /// driver through the status block.
    pub fn set_tx_polling(&mut self, on: bool, now_ns: u64) {
        let on = on && self.tx_shadow() && self.running();
        if on != self.tx_polling {
            self.tx_polling = on;
            self.write_status_block(now_ns);
        }
    }

    fn running(&self) -> bool {
        self.control & guest::CONTROL_ENABLE != 0
            && self.error_code == guest::ERR_NONE
            && self.bus_master
    }

    /// Follows Bus Master Enable of the PCI command register: a device the
    /// guest has not made (or no longer makes) a bus master does no DMA;
    /// its rings resume when it is one again.
    pub fn set_bus_master(&mut self, on: bool) {
        if on != self.bus_master {
            info!("bus mastering {}", if on { "enabled" } else { "disabled" });
            self.bus_master = on;
        }
    }

    /// Whether the fabric link is up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// The fabric link went up or down: the guest sees it in its status
    /// (a link interrupt), the RME in a Link Status Change AEN (sent by
    /// the caller). Returns whether the state changed.
    pub fn set_link(&mut self, up: bool, now_ns: u64) -> bool {
        if self.link_up == up {
            return false;
        }
        self.link_up = up;
        self.link_changed(now_ns);
        true
    }

    /// Whether the device is stopped on an error.
    pub fn error(&self) -> Option<u32> {
        (self.error_code != guest::ERR_NONE).then_some(self.error_code)
    }

    /// Resets guest-bank state (function-level reset or `CONTROL_RESET`).
    /// The RME bank and the counters survive: they belong to the cloud.
    pub fn reset(&mut self) {
        info!("device reset");
        self.control = 0;
        self.error_code = guest::ERR_NONE;
        self.error_info = 0;
        self.mtu = 1500.min(self.mtu_cap());
        self.int_cause = 0;
        self.int_mask = 0;
        self.moderation_us = 0;
        self.status_block = 0;
        self.rx_buf_size = 2048;
        self.tx = Ring::default();
        self.rx = Ring::default();
        self.irq_pending.iter_mut().for_each(|p| *p = false);
        self.held.clear();
        self.tx_polling = false;
    }

    fn mtu_cap(&self) -> u32 {
        u32::from(self.rme.identity().mtu_cap).clamp(guest::MTU_MIN, guest::MTU_MAX)
    }

    /// Stops the device on `code`: visible in `STATUS`/`ERROR_CODE`, counted,
    /// and signalled on the misc vector.
    fn fail(&mut self, code: u32, info_word: u32, now_ns: u64) {
        if self.error_code == guest::ERR_NONE {
            warn!("device error {code} (info {info_word:#x}): stopped until reset");
            self.error_code = code;
            self.error_info = info_word;
        }
        // The driver learns of the error from the status block, as of
        // everything else, without reading STATUS.
        self.write_status_block(now_ns);
        self.raise(guest::INT_ERROR, now_ns);
    }

    fn read_reg32(&self, offset: usize) -> u32 {
        let identity = self.rme.identity();
        let queue_reg = offset.wrapping_sub(guest::QUEUE_BASE);
        match offset {
            guest::ID => guest::ID_MAGIC,
            guest::VERSION => guest::version(guest::VERSION_MAJOR, guest::VERSION_MINOR),
            guest::FEATURES => {
                guest::FEATURE_TX_SHADOW | guest::FEATURE_TX_CSUM | guest::FEATURE_TSO
            }
            guest::QUEUES => 1,
            guest::STATUS => self.status(),
            guest::CONTROL => self.control & (guest::CONTROL_ENABLE | guest::CONTROL_TX_SHADOW),
            guest::ERROR_CODE => self.error_code,
            guest::ERROR_INFO => self.error_info,
            guest::MAC_LO => u32::from_le_bytes([
                identity.mac[0],
                identity.mac[1],
                identity.mac[2],
                identity.mac[3],
            ]),
            guest::MAC_HI => u32::from_le_bytes([identity.mac[4], identity.mac[5], 0, 0]),
            guest::MTU => self.mtu,
            guest::MTU_CAP => self.mtu_cap(),
            guest::INT_CAUSE => self.int_cause,
            guest::INT_MASK => self.int_mask,
            guest::INT_MODERATION => self.moderation_us,
            guest::STATUS_BLOCK_LO => self.status_block as u32,
            guest::STATUS_BLOCK_HI => (self.status_block >> 32) as u32,
            guest::RX_BUF_SIZE => self.rx_buf_size,
            _ if queue_reg < guest::QUEUE_STRIDE => match queue_reg {
                guest::TX_BASE_LO => self.tx.base as u32,
                guest::TX_BASE_HI => (self.tx.base >> 32) as u32,
                guest::TX_SIZE => self.tx.size,
                guest::TX_TAIL => self.tx.tail,
                guest::RX_BASE_LO => self.rx.base as u32,
                guest::RX_BASE_HI => (self.rx.base >> 32) as u32,
                guest::RX_SIZE => self.rx.size,
                guest::RX_TAIL => self.rx.tail,
                _ => 0,
            },
            _ if (guest::STATS_BASE..guest::STATS_BASE + 8 * STAT_COUNT).contains(&offset) => {
                let value = self.stats[(offset - guest::STATS_BASE) / 8];
                if offset.is_multiple_of(8) {
                    value as u32
                } else {
                    (value >> 32) as u32
                }
            }
            _ => 0,
        }
    }

    /// Serves a BAR0 read of any size; unassigned space reads as 0.
    pub fn bar0_read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = match usize::try_from(offset.saturating_add(i as u64)) {
                Ok(at) if at < guest::REGS_END => self.read_reg32(at & !3).to_le_bytes()[at & 3],
                _ => 0,
            };
        }
    }

    /// Serves a BAR0 write. Only aligned 32-bit writes to writable
    /// registers have an effect; anything else changes nothing, is counted
    /// and reported to the RME. Returns whether the TX ring has work.
    pub fn bar0_write(&mut self, offset: u64, data: &[u8], now_ns: u64) -> bool {
        let value = match (usize::try_from(offset), <[u8; 4]>::try_from(data)) {
            (Ok(at), Ok(bytes)) if at.is_multiple_of(4) && at < guest::REGS_END => {
                Some((at, u32::from_le_bytes(bytes)))
            }
            _ => None,
        };
        let accepted = match value {
            Some((at, v)) => self.write_reg32(at, v, now_ns),
            None => false,
        };
        if !accepted {
            debug!("guest write to {offset:#x} ({} bytes) rejected", data.len());
            self.count(Stat::GuestRoWrites, 1);
            self.events.push(Event::RoWrite {
                offset: offset.min(u64::from(u16::MAX)) as u16,
            });
        }
        accepted && self.running() && self.tx.head != self.tx.tail
    }

    fn write_reg32(&mut self, offset: usize, value: u32, now_ns: u64) -> bool {
        let enabled = self.control & guest::CONTROL_ENABLE != 0;
        let queue_reg = offset.wrapping_sub(guest::QUEUE_BASE);
        match offset {
            guest::CONTROL => {
                if value & guest::CONTROL_RESET != 0 {
                    self.reset();
                    self.write_status_block(now_ns);
                } else if value & guest::CONTROL_ENABLE != 0 && !enabled {
                    self.enable(value & guest::CONTROL_TX_SHADOW, now_ns);
                } else if value & guest::CONTROL_ENABLE == 0 {
                    self.control = 0;
                }
                true
            }
            guest::MTU if (guest::MTU_MIN..=self.mtu_cap()).contains(&value) => {
                self.mtu = value;
                true
            }
            guest::INT_CAUSE => {
                self.int_cause &= !value;
                true
            }
            guest::INT_MASK => {
                self.int_mask =
                    value & (guest::INT_TX | guest::INT_RX | guest::INT_LINK | guest::INT_ERROR);
                true
            }
            guest::INT_MODERATION => {
                self.moderation_us = value.min(10_000);
                true
            }
            guest::STATUS_BLOCK_LO if !enabled => {
                self.status_block = (self.status_block & !0xffff_ffff) | u64::from(value);
                true
            }
            guest::STATUS_BLOCK_HI if !enabled => {
                self.status_block = (self.status_block & 0xffff_ffff) | (u64::from(value) << 32);
                true
            }
            guest::RX_BUF_SIZE if !enabled => {
                self.rx_buf_size = value;
                true
            }
            _ if queue_reg < guest::QUEUE_STRIDE => {
                self.write_queue_reg(queue_reg, value, enabled, now_ns)
            }
            _ => false,
        }
    }

    fn write_queue_reg(&mut self, reg: usize, value: u32, enabled: bool, now_ns: u64) -> bool {
        match reg {
            guest::TX_BASE_LO if !enabled => {
                self.tx.base = (self.tx.base & !0xffff_ffff) | u64::from(value)
            }
            guest::TX_BASE_HI if !enabled => {
                self.tx.base = (self.tx.base & 0xffff_ffff) | (u64::from(value) << 32)
            }
            guest::TX_SIZE if !enabled => self.tx.size = value,
            guest::RX_BASE_LO if !enabled => {
                self.rx.base = (self.rx.base & !0xffff_ffff) | u64::from(value)
            }
            guest::RX_BASE_HI if !enabled => {
                self.rx.base = (self.rx.base & 0xffff_ffff) | (u64::from(value) << 32)
            }
            guest::RX_SIZE if !enabled => self.rx.size = value,
            guest::TX_TAIL => {
                if !self.running() {
                    return enabled;
                }
                if self.tx_shadow() {
                    // Only a kick: the value may be older than an index the
                    // device already took from the status block (the write
                    // travels apart from guest memory), and the status
                    // block's index, written in order, never goes back.
                    self.sync_tx_shadow(now_ns);
                } else if desc::pending(self.tx.head, value) > self.tx.size {
                    self.fail(guest::ERR_TAIL_RANGE, value & 0xffff, now_ns);
                } else {
                    self.tx.tail = value;
                }
            }
            guest::RX_TAIL => {
                if !self.running() {
                    return enabled;
                }
                if desc::pending(self.rx.head, value) > self.rx.size {
                    self.fail(
                        guest::ERR_TAIL_RANGE,
                        guest::ERROR_INFO_RX | (value & 0xffff),
                        now_ns,
                    );
                } else {
                    self.rx.tail = value;
                }
            }
            _ => return false,
        }
        true
    }

    fn enable(&mut self, tx_shadow: u32, now_ns: u64) {
        let ring_ok = |r: &Ring| {
            r.size.is_power_of_two() && (guest::RING_MIN..=guest::RING_MAX).contains(&r.size)
        };
        if !ring_ok(&self.tx) {
            return self.fail(guest::ERR_RING_SIZE, 0, now_ns);
        }
        if !ring_ok(&self.rx) {
            return self.fail(guest::ERR_RING_SIZE, guest::ERROR_INFO_RX, now_ns);
        }
        let ring_bytes = |r: &Ring| u64::from(r.size) * desc::SIZE as u64;
        if !self.tx.base.is_multiple_of(16)
            || !self.mem.contains(self.tx.base, ring_bytes(&self.tx))
        {
            return self.fail(guest::ERR_RING_ADDRESS, 0, now_ns);
        }
        if !self.rx.base.is_multiple_of(16)
            || !self.mem.contains(self.rx.base, ring_bytes(&self.rx))
        {
            return self.fail(guest::ERR_RING_ADDRESS, guest::ERROR_INFO_RX, now_ns);
        }
        if !self.status_block.is_multiple_of(16)
            || !self
                .mem
                .contains(self.status_block, desc::STATUS_BLOCK_SIZE as u64)
        {
            return self.fail(guest::ERR_STATUS_BLOCK, 0, now_ns);
        }
        if !(RX_BUF_MIN..=u32::from(u16::MAX)).contains(&self.rx_buf_size) {
            return self.fail(guest::ERR_DESC_LENGTH, guest::ERROR_INFO_RX, now_ns);
        }
        self.tx.head = 0;
        self.tx.tail = 0;
        self.rx.head = 0;
        self.rx.tail = 0;
        self.control = guest::CONTROL_ENABLE | tx_shadow;
        info!(
            "rings enabled: tx {} at {:#x}, rx {} at {:#x}, status block {:#x}",
            self.tx.size, self.tx.base, self.rx.size, self.rx.base, self.status_block
        );
        self.write_status_block(now_ns);
    }

    /// Writes the consumer indices, status and interrupt causes to the
    /// status block in guest memory.
    fn write_status_block(&mut self, now_ns: u64) {
        if self.status_block == 0 || !self.bus_master {
            return;
        }
        // Only the device's half: the rest is the driver's.
        let mut block = [0u8; desc::SB_DEVICE_AREA];
        block[desc::SB_TX_HEAD..desc::SB_TX_HEAD + 4].copy_from_slice(&self.tx.head.to_le_bytes());
        block[desc::SB_RX_HEAD..desc::SB_RX_HEAD + 4].copy_from_slice(&self.rx.head.to_le_bytes());
        block[desc::SB_STATUS..desc::SB_STATUS + 4].copy_from_slice(&self.status().to_le_bytes());
        block[desc::SB_INT_CAUSE..desc::SB_INT_CAUSE + 4]
            .copy_from_slice(&self.int_cause.to_le_bytes());
        if self.mem.write(self.status_block, &block).is_err() {
            // The guest unmapped it under us: stop, but do not recurse.
            self.status_block = 0;
            self.fail(guest::ERR_STATUS_BLOCK, 0, now_ns);
        }
    }

    fn vector_of(cause: u32) -> usize {
        match cause {
            guest::INT_TX => usize::from(guest::VECTOR_TX),
            guest::INT_RX => usize::from(guest::VECTOR_RX),
            _ => usize::from(guest::VECTOR_MISC),
        }
    }

    /// Records `cause` and signals its vector, subject to the mask and to
    /// moderation (a held-back message goes out from [`Self::poll`]).
    fn raise(&mut self, cause: u32, now_ns: u64) {
        self.int_cause |= cause;
        if self.int_mask & cause != 0 {
            return;
        }
        let v = Self::vector_of(cause);
        let gap = u64::from(self.moderation_us) * 1000;
        if gap == 0 || now_ns.saturating_sub(self.last_irq_ns[v]) >= gap {
            self.fire(v, now_ns);
        } else {
            self.irq_pending[v] = true;
        }
    }

    fn fire(&mut self, v: usize, now_ns: u64) {
        self.irq_pending[v] = false;
        self.last_irq_ns[v] = now_ns;
        if let Some(Some(fd)) = self.msix.get_mut(v) {
            if let Err(e) = fd.write_all(&1u64.to_le_bytes()) {
                warn!("MSI-X vector {v}: {e}");
            }
        }
    }

    /// Sends interrupts held back by moderation whose time has come;
    /// returns when the next one is due.
    pub fn poll_interrupts(&mut self, now_ns: u64) -> Option<u64> {
        let gap = u64::from(self.moderation_us) * 1000;
        let mut next = None;
        for v in 0..self.irq_pending.len() {
            if !self.irq_pending[v] {
                continue;
            }
            let due = self.last_irq_ns[v].saturating_add(gap);
            if now_ns >= due {
                self.fire(v, now_ns);
            } else {
                next = Some(next.map_or(due, |n: u64| n.min(due)));
            }
        }
        next
    }

    /// Whether the TX ring has descriptors to process.
    pub fn tx_pending(&self) -> bool {
        self.running() && self.tx.head != self.tx.tail
    }

    /// How many TX descriptors the driver has handed over and the device
    /// not yet processed.
    pub fn tx_pending_descriptors(&self) -> u32 {
        if self.running() {
            desc::pending(self.tx.head, self.tx.tail)
        } else {
            0
        }
    }

    /// Processes the TX ring: every complete frame goes through the TX
    /// pipeline; frames for the fabric are appended to `out`. Returns the
    /// number of descriptors consumed.
    pub fn process_tx(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) -> u32 {
        let mut consumed = 0;
        let mut frame = std::mem::take(&mut self.scratch);
        frame.clear();
        let mut oversize = false;
        // Set by the first descriptor of each frame.
        let mut offload = None;
        while self.running() && self.tx.head != self.tx.tail {
            let slot = desc::slot(self.tx.head, self.tx.size);
            let mut raw = [0u8; desc::SIZE];
            if self
                .mem
                .read(self.tx.slot_addr(self.tx.head), &mut raw)
                .is_err()
            {
                self.fail(guest::ERR_RING_ADDRESS, slot, now_ns);
                break;
            }
            let (addr, len, flags) = desc::decode(&raw);
            if len == 0 {
                self.count(Stat::TxDropBadDescriptor, 1);
                self.fail(guest::ERR_DESC_LENGTH, slot, now_ns);
                break;
            }
            let wanted = *offload.get_or_insert(TxOffload::of_descriptor(flags, &raw));
            let len = usize::from(len);
            if frame.len() + len > wanted.max_frame_len() {
                oversize = true;
            } else {
                let at = frame.len();
                frame.resize(at + len, 0);
                if self.mem.read(addr, &mut frame[at..]).is_err() {
                    self.count(Stat::TxDropBadDescriptor, 1);
                    self.fail(guest::ERR_DESC_ADDRESS, slot, now_ns);
                    break;
                }
            }
            self.tx.head = self.tx.head.wrapping_add(1);
            consumed += 1;
            if flags & desc::TX_FLAG_EOP != 0 {
                if oversize {
                    self.count(Stat::TxDropTooLong, 1);
                } else {
                    self.transmit_offloaded(&mut frame, wanted, now_ns, out);
                }
                frame.clear();
                oversize = false;
                offload = None;
            }
        }
        self.scratch = frame;
        if consumed > 0 {
            self.int_cause |= guest::INT_TX;
            self.write_status_block(now_ns);
            self.raise(guest::INT_TX, now_ns);
        }
        consumed
    }

    /// Does what the frame's first descriptor asked (nothing, a checksum,
    /// segmentation), then sends the frame or its segments.
    fn transmit_offloaded(
        &mut self,
        frame: &mut [u8],
        offload: TxOffload,
        now_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let max_len = self.mtu as usize + guest::FRAME_OVERHEAD as usize;
        let done = match offload {
            TxOffload::Segment { mss } => {
                let mut segment = std::mem::take(&mut self.segment_scratch);
                let done = offload::segment(frame, mss, max_len, &mut segment, |s| {
                    self.transmit(s, now_ns, out)
                });
                self.segment_scratch = segment;
                done.map(|_| ())
            }
            _ if frame.len() > max_len => Err(OffloadError::TooLong),
            TxOffload::Checksum { start, offset } => offload::insert_checksum(frame, start, offset)
                .map(|()| self.transmit(frame, now_ns, out)),
            TxOffload::None => {
                self.transmit(frame, now_ns, out);
                Ok(())
            }
        };
        match done {
            Ok(()) => {}
            Err(OffloadError::TooLong) => self.count(Stat::TxDropTooLong, 1),
            Err(OffloadError::Malformed) => self.count(Stat::TxDropBadDescriptor, 1),
        }
    }

    fn transmit(&mut self, frame: &[u8], now_ns: u64, out: &mut Vec<Vec<u8>>) {
        let mut outer = Vec::with_capacity(frame.len() + 64);
        match pipeline::transmit(&mut self.rme, frame, now_ns, &mut outer, &mut self.events) {
            Ok(()) => {
                self.count(Stat::TxPackets, 1);
                self.count(Stat::TxBytes, frame.len() as u64);
                out.push(outer);
            }
            // Held for the RME, which the miss event asks to install the flow.
            Err(Stat::TxDropTableMiss) if self.held.len() < MISS_HOLD_FRAMES => {
                self.held.push_back((frame.to_vec(), now_ns));
            }
            Err(reason) => self.count(reason, 1),
        }
    }

    /// Whether frames wait for their flow.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Sends the held frames whose flow is now in the table, in order, and
    /// drops those held too long; the others keep waiting.
    pub fn retry_held(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) {
        let mut waiting = std::collections::VecDeque::new();
        while let Some((frame, since)) = self.held.pop_front() {
            let installed = packet::parse(&frame, crate::ncsi_oem::PORT_GUEST)
                .is_ok_and(|p| self.rme.flows.lookup(&p.key).is_some());
            if installed {
                let mut outer = Vec::with_capacity(frame.len() + 64);
                let mut events = Vec::new();
                match pipeline::transmit(&mut self.rme, &frame, now_ns, &mut outer, &mut events) {
                    Ok(()) => {
                        self.count(Stat::TxPackets, 1);
                        self.count(Stat::TxBytes, frame.len() as u64);
                        out.push(outer);
                    }
                    Err(reason) => self.count(reason, 1),
                }
            } else if now_ns.saturating_sub(since) >= MISS_HOLD_NS {
                self.count(Stat::TxDropTableMiss, 1);
            } else {
                waiting.push_back((frame, since));
            }
        }
        self.held = waiting;
    }

    /// Handles a frame from the fabric: RX pipeline, then the RX ring.
    pub fn receive(&mut self, frame: &[u8], now_ns: u64) {
        let inner = match pipeline::receive(&mut self.rme, frame, now_ns, &mut self.events) {
            Ok(range) => range,
            Err(reason) => return self.count(reason, 1),
        };
        let inner = &frame[inner];
        if !self.running() || self.rx.head == self.rx.tail {
            return self.count(Stat::RxDropNoBuffer, 1);
        }
        if inner.len() > self.mtu as usize + guest::FRAME_OVERHEAD as usize {
            return self.count(Stat::RxDropTooLong, 1);
        }
        let slot = desc::slot(self.rx.head, self.rx.size);
        let desc_addr = self.rx.slot_addr(self.rx.head);
        let mut raw = [0u8; desc::SIZE];
        if self.mem.read(desc_addr, &mut raw).is_err() {
            return self.fail(guest::ERR_RING_ADDRESS, guest::ERROR_INFO_RX | slot, now_ns);
        }
        let (addr, buf_len, _) = desc::decode(&raw);
        if u32::from(buf_len) < RX_BUF_MIN.min(self.rx_buf_size) {
            self.count(Stat::RxDropNoBuffer, 1);
            return self.fail(guest::ERR_DESC_LENGTH, guest::ERROR_INFO_RX | slot, now_ns);
        }
        if inner.len() > usize::from(buf_len) {
            return self.count(Stat::RxDropTooLong, 1);
        }
        if self.mem.write(addr, inner).is_err() {
            self.count(Stat::RxDropNoBuffer, 1);
            return self.fail(guest::ERR_DESC_ADDRESS, guest::ERROR_INFO_RX | slot, now_ns);
        }
        let done = desc::encode(
            addr,
            inner.len() as u16,
            desc::RX_FLAG_DONE | desc::RX_FLAG_EOP,
        );
        if self.mem.write(desc_addr, &done).is_err() {
            return self.fail(guest::ERR_RING_ADDRESS, guest::ERROR_INFO_RX | slot, now_ns);
        }
        self.rx.head = self.rx.head.wrapping_add(1);
        self.count(Stat::RxPackets, 1);
        self.count(Stat::RxBytes, inner.len() as u64);
        self.int_cause |= guest::INT_RX;
        self.write_status_block(now_ns);
        self.raise(guest::INT_RX, now_ns);
    }

    /// Tells the guest that link or quarantine state changed.
    pub fn link_changed(&mut self, now_ns: u64) {
        self.write_status_block(now_ns);
        self.raise(guest::INT_LINK, now_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_mem::test_memfd;
    use crate::regs::guest::queue_reg;

    const MEM: u64 = 0x10_0000;
    const TX_RING: u64 = 0x1000;
    const RX_RING: u64 = 0x2000;
    const STATUS: u64 = 0x3000;
    const TX_BUFS: u64 = 0x8000;
    const RX_BUFS: u64 = 0x4_0000;
    const RING: u32 = 16;

    fn w(dev: &mut Bmgnic, reg: usize, value: u32) -> bool {
        dev.bar0_write(reg as u64, &value.to_le_bytes(), 0)
    }

    fn r(dev: &mut Bmgnic, reg: usize) -> u32 {
        let mut b = [0u8; 4];
        dev.bar0_read(reg as u64, &mut b);
        u32::from_le_bytes(b)
    }

    fn mem_read(dev: &Bmgnic, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        dev.mem.read(addr, &mut v).unwrap();
        v
    }

    /// An open device (no RME configuration) with rings programmed and
    /// enabled, as a driver's open() leaves it.
    fn running_device() -> Bmgnic {
        let mut dev = Bmgnic::new(DeviceConfig::default());
        dev.rme.set_factory_mac([0x52, 0x54, 0, 0xb0, 0, 1]);
        dev.rme.open();
        dev.memory_mut().map(0, MEM, 0, test_memfd(MEM)).unwrap();
        w(&mut dev, queue_reg(0, guest::TX_BASE_LO), TX_RING as u32);
        w(&mut dev, queue_reg(0, guest::TX_SIZE), RING);
        w(&mut dev, queue_reg(0, guest::RX_BASE_LO), RX_RING as u32);
        w(&mut dev, queue_reg(0, guest::RX_SIZE), RING);
        w(&mut dev, guest::STATUS_BLOCK_LO, STATUS as u32);
        w(&mut dev, guest::CONTROL, guest::CONTROL_ENABLE);
        assert_eq!(dev.error(), None);
        dev
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&[0x52, 0x54, 0, 0xb0, 0, 2]);
        f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0xb0, 0, 1]);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn post_tx(dev: &mut Bmgnic, index: u32, addr: u64, len: u16, flags: u16) {
        let slot = TX_RING + u64::from(desc::slot(index, RING)) * desc::SIZE as u64;
        dev.mem
            .write(slot, &desc::encode(addr, len, flags))
            .unwrap();
    }

    #[test]
    fn tx_frame_reaches_the_fabric_and_completes_in_guest_memory() {
        let mut dev = running_device();
        let f = frame(100);
        dev.mem.write(TX_BUFS, &f[..60]).unwrap();
        dev.mem.write(TX_BUFS + 0x800, &f[60..]).unwrap();
        post_tx(&mut dev, 0, TX_BUFS, 60, 0);
        post_tx(&mut dev, 1, TX_BUFS + 0x800, 40, desc::TX_FLAG_EOP);
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 2));
        let mut out = Vec::new();
        assert_eq!(dev.process_tx(1, &mut out), 2);
        assert_eq!(out, vec![f.clone()]);
        let sb = mem_read(&dev, STATUS, 16);
        assert_eq!(
            u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]),
            2,
            "TX head"
        );
        let status = u32::from_le_bytes([sb[8], sb[9], sb[10], sb[11]]);
        assert_ne!(status & guest::STATUS_ENABLED, 0);
        assert_ne!(
            u32::from_le_bytes([sb[12], sb[13], sb[14], sb[15]]) & guest::INT_TX,
            0
        );
        assert_eq!(dev.stat(Stat::TxPackets), 1);
        assert_eq!(dev.stat(Stat::TxBytes), 100);
        assert_eq!(r(&mut dev, guest::stat_offset(Stat::TxBytes)), 100);
    }

    /// An IPv4/TCP frame to the open device's peer with `payload` bytes,
    /// as a TSO-capable stack hands it over (checksums left to the device).
    fn tcp_frame(payload: usize) -> Vec<u8> {
        let mut f = frame(14 + 20 + 20 + payload);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        // CAST: Test frames are small.
        f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        f[34..54].fill(0);
        f[34 + 12] = 5 << 4;
        f[34 + 13] = 0x18;
        f
    }

    #[test]
    fn a_tso_frame_leaves_as_mtu_sized_segments_counted_one_by_one() {
        let mut dev = running_device();
        assert_ne!(r(&mut dev, guest::FEATURES) & guest::FEATURE_TSO, 0);
        let f = tcp_frame(4000);
        dev.mem.write(TX_BUFS, &f[..54]).unwrap();
        dev.mem.write(TX_BUFS + 0x1000, &f[54..]).unwrap();
        let first = desc::encode_tx_offload(TX_BUFS, 54, desc::TX_FLAG_TSO, 1448, 0);
        dev.mem.write(TX_RING, &first).unwrap();
        post_tx(&mut dev, 1, TX_BUFS + 0x1000, 4000, desc::TX_FLAG_EOP);
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 2));
        let mut out = Vec::new();
        assert_eq!(dev.process_tx(1, &mut out), 2);
        let lens: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(lens, [1502, 1502, 54 + 1104]);
        assert_eq!(dev.stat(Stat::TxPackets), 3);
        assert_eq!(dev.stat(Stat::TxBytes), 1502 + 1502 + 1158);
        // Past the MTU (1500), the whole frame is dropped as too long.
        let first = desc::encode_tx_offload(TX_BUFS, 54, desc::TX_FLAG_TSO, 1470, 0);
        dev.mem
            .write(TX_RING + 2 * desc::SIZE as u64, &first)
            .unwrap();
        post_tx(&mut dev, 3, TX_BUFS + 0x1000, 4000, desc::TX_FLAG_EOP);
        // Not TCP: a bad descriptor, counted; the device keeps running.
        let mut udp = f.clone();
        udp[14 + 9] = 17;
        dev.mem.write(TX_BUFS + 0x2000, &udp).unwrap();
        let bad = desc::encode_tx_offload(
            TX_BUFS + 0x2000,
            1000,
            desc::TX_FLAG_TSO | desc::TX_FLAG_EOP,
            500,
            0,
        );
        dev.mem
            .write(TX_RING + 4 * desc::SIZE as u64, &bad)
            .unwrap();
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 5));
        out.clear();
        assert_eq!(dev.process_tx(2, &mut out), 3);
        assert!(out.is_empty());
        assert_eq!(dev.stat(Stat::TxDropTooLong), 1);
        assert_eq!(dev.stat(Stat::TxDropBadDescriptor), 1);
        assert_eq!(dev.error(), None);
    }

    #[test]
    fn a_checksum_request_is_filled_in_and_a_bad_one_dropped() {
        let mut dev = running_device();
        let f = tcp_frame(100);
        dev.mem.write(TX_BUFS, &f).unwrap();
        let flags = desc::TX_FLAG_CSUM | desc::TX_FLAG_EOP;
        let d = desc::encode_tx_offload(TX_BUFS, f.len() as u16, flags, 34, 16);
        dev.mem.write(TX_RING, &d).unwrap();
        // A field past the frame's end.
        let d = desc::encode_tx_offload(TX_BUFS, f.len() as u16, flags, 34, 200);
        dev.mem.write(TX_RING + desc::SIZE as u64, &d).unwrap();
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 2));
        let mut out = Vec::new();
        assert_eq!(dev.process_tx(1, &mut out), 2);
        assert_eq!(out.len(), 1);
        // The field holds the complement of the sum over the rest.
        let mut expect = f.clone();
        let sum = crate::packet::internet_checksum(&f[34..]);
        expect[50..52].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(out[0], expect);
        assert_eq!(dev.stat(Stat::TxDropBadDescriptor), 1);
        assert_eq!(dev.error(), None);
    }

    #[test]
    fn tx_shadow_index_replaces_the_doorbell_while_polling() {
        let mut dev = running_device();
        assert_ne!(r(&mut dev, guest::FEATURES) & guest::FEATURE_TX_SHADOW, 0);
        // Re-enabled with the producer index in the status block.
        let mut dev = shadow_device();
        let f = frame(80);
        dev.mem.write(TX_BUFS, &f).unwrap();
        post_tx(&mut dev, 0, TX_BUFS, 80, desc::TX_FLAG_EOP);
        // No doorbell: the driver writes its index to the driver area.
        let shadow = STATUS + desc::SB_TX_TAIL as u64;
        dev.mem.write(shadow, &1u32.to_le_bytes()).unwrap();
        dev.sync_tx_shadow(1);
        assert!(dev.tx_pending());
        let mut out = Vec::new();
        assert_eq!(dev.process_tx(2, &mut out), 1);
        assert_eq!(out, vec![f]);
        // Polling shows in the status block; the device never writes the
        // driver's half of it.
        dev.set_tx_polling(true, 3);
        let sb = mem_read(&dev, STATUS, desc::STATUS_BLOCK_SIZE);
        let status = u32::from_le_bytes([sb[8], sb[9], sb[10], sb[11]]);
        assert_ne!(status & guest::STATUS_TX_POLLING, 0);
        assert_eq!(&sb[16..20], &1u32.to_le_bytes());
        dev.set_tx_polling(false, 4);
        assert_eq!(r(&mut dev, guest::STATUS) & guest::STATUS_TX_POLLING, 0);
        // An index past the ring stops the device like a bad doorbell.
        dev.mem.write(shadow, &1000u32.to_le_bytes()).unwrap();
        dev.sync_tx_shadow(5);
        assert_eq!(dev.error(), Some(guest::ERR_TAIL_RANGE));
    }

    /// A running device with the TX producer index in the status block,
    /// as the tenant driver enables it.
    fn shadow_device() -> Bmgnic {
        let mut dev = running_device();
        w(&mut dev, guest::CONTROL, guest::CONTROL_RESET);
        w(&mut dev, queue_reg(0, guest::TX_BASE_LO), TX_RING as u32);
        w(&mut dev, queue_reg(0, guest::TX_SIZE), RING);
        w(&mut dev, queue_reg(0, guest::RX_BASE_LO), RX_RING as u32);
        w(&mut dev, queue_reg(0, guest::RX_SIZE), RING);
        w(&mut dev, guest::STATUS_BLOCK_LO, STATUS as u32);
        w(
            &mut dev,
            guest::CONTROL,
            guest::CONTROL_ENABLE | guest::CONTROL_TX_SHADOW,
        );
        assert_eq!(dev.error(), None);
        dev
    }

    /// Posts one-descriptor frames in slots `from..to` and publishes `to`
    /// in the status block, as the driver does before its doorbell.
    fn post_and_publish(dev: &mut Bmgnic, from: u32, to: u32) {
        for i in from..to {
            post_tx(dev, i, TX_BUFS, 64, desc::TX_FLAG_EOP);
        }
        dev.mem.write(TX_BUFS, &frame(64)).unwrap();
        let shadow = STATUS + desc::SB_TX_TAIL as u64;
        dev.mem.write(shadow, &to.to_le_bytes()).unwrap();
    }

    #[test]
    fn stale_tx_doorbell_in_shadow_mode_is_only_a_kick() {
        let mut dev = shadow_device();
        let mut out = Vec::new();
        // The device polls 4 from the status block and sends them all;
        // the driver's doorbell for 2 (written before it published 4)
        // arrives only now, behind the device's head.
        post_and_publish(&mut dev, 0, 4);
        dev.sync_tx_shadow(1);
        assert_eq!(dev.process_tx(2, &mut out), 4);
        assert!(!w(&mut dev, queue_reg(0, guest::TX_TAIL), 2));
        assert_eq!(dev.error(), None);
        assert_eq!((dev.tx.head, dev.tx.tail), (4, 4));
        // A stale doorbell behind the published index but not behind the
        // head does not move the tail back either.
        post_and_publish(&mut dev, 4, 7);
        dev.sync_tx_shadow(3);
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 5));
        assert_eq!(dev.error(), None);
        assert_eq!(dev.tx.tail, 7);
        assert_eq!(dev.process_tx(4, &mut out), 3);
        // The kick reads the status block and wakes the worker, whatever
        // value it carries.
        post_and_publish(&mut dev, 7, 9);
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 0xdead_beef));
        assert_eq!(dev.error(), None);
        assert_eq!(dev.tx.tail, 9);
        assert_eq!(dev.process_tx(5, &mut out), 2);
        assert_eq!(out.len(), 9);
    }

    #[test]
    fn tx_shadow_more_than_a_ring_ahead_stops_the_device_on_a_kick() {
        let mut dev = shadow_device();
        // The doorbell value is in range; the published index is not.
        post_and_publish(&mut dev, 0, 1);
        let shadow = STATUS + desc::SB_TX_TAIL as u64;
        dev.mem.write(shadow, &(RING + 1).to_le_bytes()).unwrap();
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 1);
        assert_eq!(dev.error(), Some(guest::ERR_TAIL_RANGE));
        assert_eq!(r(&mut dev, guest::ERROR_INFO), RING + 1);
        assert_eq!(dev.process_tx(1, &mut Vec::new()), 0);
    }

    #[test]
    fn tx_doorbell_without_shadow_mode_keeps_its_value_and_check() {
        let mut dev = running_device();
        // The status block's driver area means nothing in this mode.
        let shadow = STATUS + desc::SB_TX_TAIL as u64;
        dev.mem.write(shadow, &1000u32.to_le_bytes()).unwrap();
        for i in 0..4 {
            post_tx(&mut dev, i, TX_BUFS, 64, desc::TX_FLAG_EOP);
        }
        dev.mem.write(TX_BUFS, &frame(64)).unwrap();
        assert!(w(&mut dev, queue_reg(0, guest::TX_TAIL), 4));
        assert_eq!(dev.tx.tail, 4);
        assert_eq!(dev.process_tx(1, &mut Vec::new()), 4);
        // Behind the head is more than a ring ahead of it: an error.
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 2);
        assert_eq!(dev.error(), Some(guest::ERR_TAIL_RANGE));
        assert_eq!(r(&mut dev, guest::ERROR_INFO), 2);
    }

    #[test]
    fn no_dma_without_bus_master_enable() {
        let mut dev = running_device();
        dev.set_bus_master(false);
        let f = frame(64);
        dev.mem.write(TX_BUFS, &f).unwrap();
        post_tx(&mut dev, 0, TX_BUFS, 64, desc::TX_FLAG_EOP);
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 1);
        let mut out = Vec::new();
        assert_eq!(dev.process_tx(1, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(r(&mut dev, guest::STATUS) & guest::STATUS_ENABLED, 0);
        // Made a bus master again, the rings go on where they were.
        dev.set_bus_master(true);
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 1);
        assert_eq!(dev.process_tx(2, &mut out), 1);
        assert_eq!(out, vec![f]);
    }

    #[test]
    fn bad_descriptor_stops_the_device_visibly_and_is_counted() {
        let mut dev = running_device();
        post_tx(&mut dev, 0, MEM - 10, 64, desc::TX_FLAG_EOP);
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 1);
        let mut out = Vec::new();
        dev.process_tx(1, &mut out);
        assert!(out.is_empty());
        assert_eq!(dev.error(), Some(guest::ERR_DESC_ADDRESS));
        assert_ne!(r(&mut dev, guest::STATUS) & guest::STATUS_ERROR, 0);
        assert_eq!(r(&mut dev, guest::ERROR_CODE), guest::ERR_DESC_ADDRESS);
        assert_eq!(r(&mut dev, guest::ERROR_INFO), 0);
        assert_ne!(r(&mut dev, guest::INT_CAUSE) & guest::INT_ERROR, 0);
        assert_eq!(dev.stat(Stat::TxDropBadDescriptor), 1);
        // Stopped: further doorbells do nothing until a reset.
        post_tx(&mut dev, 1, TX_BUFS, 64, desc::TX_FLAG_EOP);
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 2);
        assert_eq!(dev.process_tx(2, &mut out), 0);
        w(&mut dev, guest::CONTROL, guest::CONTROL_RESET);
        assert_eq!(dev.error(), None);
        assert_eq!(r(&mut dev, guest::STATUS) & guest::STATUS_ENABLED, 0);
    }

    #[test]
    fn zero_length_descriptor_and_runaway_doorbell_are_errors() {
        let mut dev = running_device();
        post_tx(&mut dev, 0, TX_BUFS, 0, desc::TX_FLAG_EOP);
        w(&mut dev, queue_reg(0, guest::TX_TAIL), 1);
        dev.process_tx(1, &mut Vec::new());
        assert_eq!(dev.error(), Some(guest::ERR_DESC_LENGTH));

        let mut dev = running_device();
        w(&mut dev, queue_reg(0, guest::TX_TAIL), RING + 1);
        assert_eq!(dev.error(), Some(guest::ERR_TAIL_RANGE));
    }

    #[test]
    fn enable_checks_rings_against_guest_memory() {
        let mut dev = Bmgnic::new(DeviceConfig::default());
        dev.memory_mut().map(0, MEM, 0, test_memfd(MEM)).unwrap();
        w(
            &mut dev,
            queue_reg(0, guest::TX_BASE_LO),
            (MEM - 0x10) as u32,
        );
        w(&mut dev, queue_reg(0, guest::TX_SIZE), RING);
        w(&mut dev, queue_reg(0, guest::RX_BASE_LO), RX_RING as u32);
        w(&mut dev, queue_reg(0, guest::RX_SIZE), RING);
        w(&mut dev, guest::STATUS_BLOCK_LO, STATUS as u32);
        w(&mut dev, guest::CONTROL, guest::CONTROL_ENABLE);
        assert_eq!(dev.error(), Some(guest::ERR_RING_ADDRESS));

        let mut dev = Bmgnic::new(DeviceConfig::default());
        w(&mut dev, queue_reg(0, guest::TX_SIZE), 100);
        w(&mut dev, guest::CONTROL, guest::CONTROL_ENABLE);
        assert_eq!(dev.error(), Some(guest::ERR_RING_SIZE));
    }

    #[test]
    fn rx_frame_lands_in_a_posted_buffer_with_write_back() {
        let mut dev = running_device();
        for i in 0..4u32 {
            let slot = RX_RING + u64::from(i) * desc::SIZE as u64;
            let buf = RX_BUFS + u64::from(i) * 0x800;
            dev.mem.write(slot, &desc::encode(buf, 2048, 0)).unwrap();
        }
        w(&mut dev, queue_reg(0, guest::RX_TAIL), 4);
        let f = frame(200);
        dev.receive(&f, 5);
        assert_eq!(mem_read(&dev, RX_BUFS, 200), f);
        let d: [u8; 16] = mem_read(&dev, RX_RING, 16).try_into().unwrap();
        assert_eq!(
            desc::decode(&d),
            (RX_BUFS, 200, desc::RX_FLAG_DONE | desc::RX_FLAG_EOP)
        );
        let sb = mem_read(&dev, STATUS, 8);
        assert_eq!(
            u32::from_le_bytes([sb[4], sb[5], sb[6], sb[7]]),
            1,
            "RX head"
        );
        assert_eq!(dev.stat(Stat::RxPackets), 1);
        // Four buffers: the fifth and sixth frames find none.
        for _ in 0..5 {
            dev.receive(&f, 6);
        }
        assert_eq!(dev.stat(Stat::RxPackets), 4);
        assert_eq!(dev.stat(Stat::RxDropNoBuffer), 2);
    }

    #[test]
    fn guest_cannot_write_read_only_registers_or_exceed_the_mtu_cap() {
        let mut dev = Bmgnic::new(DeviceConfig::default());
        for reg in [
            guest::ID,
            guest::VERSION,
            guest::STATUS,
            guest::MAC_LO,
            guest::MTU_CAP,
        ] {
            let before = r(&mut dev, reg);
            w(&mut dev, reg, !before);
            assert_eq!(r(&mut dev, reg), before, "register {reg:#x} changed");
        }
        assert_eq!(dev.stat(Stat::GuestRoWrites), 5);
        assert_eq!(r(&mut dev, guest::MTU_CAP), 1500);
        w(&mut dev, guest::MTU, 9000);
        assert_eq!(r(&mut dev, guest::MTU), 1500);
        w(&mut dev, guest::MTU, 1400);
        assert_eq!(r(&mut dev, guest::MTU), 1400);
        // Narrow and misaligned writes are refused too.
        dev.bar0_write(guest::MTU as u64, &[0x10], 0);
        dev.bar0_write(guest::MTU as u64 + 1, &[0, 0, 0, 0], 0);
        assert_eq!(r(&mut dev, guest::MTU), 1400);
        assert_eq!(dev.stat(Stat::GuestRoWrites), 8);
        assert_eq!(dev.events.len(), 8);
    }

    #[test]
    fn interrupt_moderation_holds_back_and_releases_messages() {
        let mut dev = running_device();
        w(&mut dev, guest::INT_MODERATION, 100);
        dev.raise(guest::INT_RX, 1_000_000);
        assert!(!dev.irq_pending[1]);
        dev.raise(guest::INT_RX, 1_050_000);
        assert!(dev.irq_pending[1]);
        assert_eq!(dev.poll_interrupts(1_060_000), Some(1_100_000));
        assert_eq!(dev.poll_interrupts(1_100_000), None);
        assert!(!dev.irq_pending[1]);
    }
}
