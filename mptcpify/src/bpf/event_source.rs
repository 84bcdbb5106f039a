//! Where the programs' events are read: the ring buffer (`EVENTS`: a
//! connection's later life, socket options) and the per-CPU slots the
//! upgrader writes at `socket()` (`STAGED`, see
//! [`mptcpify_common::maps::Staged`] for the protocol).
//!
//! Order: the ring is read first, then the slots, and the slots' events are
//! given first. An event in the ring that follows a `socket()` event of the
//! same connection (its close, its options) was sent after it, so after
//! the slot was marked whole: before the ring was read, so before the
//! slots were. Events of different connections read in the same pass keep
//! the order of their kernel times when they have them (`--json`, a
//! listening monitor); without times, a pass gives each CPU's `socket()`
//! events in turn.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::mapped::Mapping;
use aya::maps::{MapData, RingBuf};
use mptcpify_common::{
    event::{Event, Record},
    maps::{Staged, STAGE_HEAD, STAGE_POS_STRIDE, STAGE_TAIL},
};

pub struct EventSource {
    ring: RingBuf<MapData>,
    staged: Mapping,
    positions: Mapping,
    cpus: u32,
    slots: u32,
    /// Kept alive for the mappings (a mapping outlives its fd, but the maps
    /// are also the programs': holding them makes that plain).
    _maps: [MapData; 2],
}

impl EventSource {
    /// `staged` and `positions`: the `STAGED` and `STAGE_POS` maps, sized
    /// for `cpus` possible CPUs of `slots` slots each.
    pub fn new(
        ring: RingBuf<MapData>,
        staged: MapData,
        positions: MapData,
        cpus: u32,
        slots: u32,
    ) -> anyhow::Result<Self> {
        let staged_len = std::mem::size_of::<Staged>() * (cpus * slots) as usize;
        let positions_len = 8 * (cpus * STAGE_POS_STRIDE) as usize;
        Ok(Self {
            ring,
            staged: Mapping::new(&staged, staged_len, "STAGED")?,
            positions: Mapping::new(&positions, positions_len, "STAGE_POS")?,
            cpus,
            slots,
            _maps: [staged, positions],
        })
    }

    /// Every event sent and not read yet, in the order above.
    pub fn drain(&mut self) -> Vec<Record> {
        let mut ring = Vec::new();
        while let Some(item) = self.ring.next() {
            if let Some(record) = Record::from_bytes(&item) {
                ring.push(record);
            }
        }
        let mut events = Vec::new();
        for cpu in 0..self.cpus {
            self.drain_cpu(cpu, &mut events);
        }
        let mut records: Vec<Record> = events.into_iter().map(Record::from).collect();
        records.append(&mut ring);
        if records.iter().all(|r| r.event.boot_ns != 0) {
            // Stable: events of one CPU, or of the ring, with equal times
            // keep their order.
            records.sort_by_key(|r| r.event.boot_ns);
        }
        records
    }

    fn drain_cpu(&mut self, cpu: u32, out: &mut Vec<Event>) {
        // SAFETY: the mappings hold cpus × slots slots and cpus ×
        // STAGE_POS_STRIDE positions, and live as long as self.
        unsafe {
            drain_slots(
                self.staged.base.cast(),
                self.positions.base.cast(),
                cpu,
                self.slots,
                out,
            )
        }
    }
}

/// The whole events of `cpu`'s slots, from the reader's position on;
/// stops at a slot not yet marked whole (which the upgrader's order, mark
/// then head, should never show; stopping is the safe answer), and
/// moves the reader's position past what it took.
///
/// # Safety
/// `staged` holds at least `(cpu + 1) × slots` slots and `positions` at
/// least `(cpu + 1) × STAGE_POS_STRIDE` words; `slots` is a power of two.
unsafe fn drain_slots(
    staged: *mut Staged,
    positions: *mut u64,
    cpu: u32,
    slots: u32,
    out: &mut Vec<Event>,
) {
    let position = |index: u32| {
        // SAFETY: inside `positions` (the caller's promise), aligned.
        unsafe { AtomicU64::from_ptr(positions.add(index as usize)) }
    };
    let head = position(cpu * STAGE_POS_STRIDE + STAGE_HEAD);
    let tail = position(cpu * STAGE_POS_STRIDE + STAGE_TAIL);
    let end = head.load(Ordering::Acquire);
    let mut at = tail.load(Ordering::Relaxed);
    while at < end {
        let index = (cpu * slots) as usize + (at & u64::from(slots - 1)) as usize;
        // SAFETY: index < (cpu + 1) × slots, inside `staged`.
        let slot = unsafe { staged.add(index) };
        // SAFETY: an aligned u64 inside the slot.
        let committed = unsafe { AtomicU64::from_ptr(&raw mut (*slot).committed) };
        if committed.load(Ordering::Acquire) != at + 1 {
            break;
        }
        // SAFETY: whole (marked after its writes, in order), and no
        // program writes it again before the tail passes it.
        out.push(unsafe { std::ptr::read_volatile(&raw const (*slot).event) });
        at += 1;
    }
    // After the reads: a program may now reuse the slots.
    tail.store(at, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcpify_common::maps::{STAGE_HEAD, STAGE_TAIL};

    /// What the program does (mptcpify-ebpf/src/maps.rs, `stage`), with
    /// `whole: false` for a program stopped between its reservation and
    /// its mark.
    fn stage(
        staged: &mut [Staged],
        pos: &mut [u64],
        cpu: u32,
        slots: u32,
        pid: u32,
        whole: bool,
    ) -> bool {
        let base = (cpu * STAGE_POS_STRIDE) as usize;
        let at = pos[base + STAGE_HEAD as usize];
        if at - pos[base + STAGE_TAIL as usize] >= u64::from(slots) {
            return false;
        }
        pos[base + STAGE_HEAD as usize] = at + 1;
        let slot = &mut staged[(cpu * slots) as usize + (at & u64::from(slots - 1)) as usize];
        slot.event = Event {
            pid,
            ..Event::default()
        };
        if whole {
            slot.committed = at + 1;
        }
        true
    }

    fn drain(staged: &mut [Staged], pos: &mut [u64], cpu: u32, slots: u32) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: the vectors are as large as the function needs.
        unsafe { drain_slots(staged.as_mut_ptr(), pos.as_mut_ptr(), cpu, slots, &mut out) };
        out.iter().map(|e| e.pid).collect()
    }

    #[test]
    fn slots_give_whole_events_in_order_and_are_reused_only_once_read() {
        let (cpus, slots) = (2, 4);
        let mut staged = vec![Staged::default(); (cpus * slots) as usize];
        let mut pos = vec![0u64; (cpus * STAGE_POS_STRIDE) as usize];
        for pid in 1..=3 {
            assert!(stage(&mut staged, &mut pos, 1, slots, pid, true));
        }
        assert_eq!(drain(&mut staged, &mut pos, 0, slots), Vec::<u32>::new());
        assert_eq!(drain(&mut staged, &mut pos, 1, slots), [1, 2, 3]);
        assert_eq!(drain(&mut staged, &mut pos, 1, slots), Vec::<u32>::new());
        // Around the end of the slots; a reserved slot not yet whole stops
        // the reader, which takes it and what follows once it is.
        assert!(stage(&mut staged, &mut pos, 1, slots, 4, true));
        assert!(stage(&mut staged, &mut pos, 1, slots, 5, false));
        assert!(stage(&mut staged, &mut pos, 1, slots, 6, true));
        assert_eq!(drain(&mut staged, &mut pos, 1, slots), [4]);
        staged[(slots + 4 % slots) as usize].committed = 5;
        assert_eq!(drain(&mut staged, &mut pos, 1, slots), [5, 6]);
        // Full: the program drops (and counts) rather than overwrite what
        // the reader has not read.
        for pid in 7..=10 {
            assert!(stage(&mut staged, &mut pos, 0, slots, pid, true));
        }
        assert!(!stage(&mut staged, &mut pos, 0, slots, 11, true));
        assert_eq!(drain(&mut staged, &mut pos, 0, slots), [7, 8, 9, 10]);
        assert!(stage(&mut staged, &mut pos, 0, slots, 12, true));
        assert_eq!(drain(&mut staged, &mut pos, 0, slots), [12]);
    }
}
