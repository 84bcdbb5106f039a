//! The maps, as declared to the loader (names from `mptcpify_common::maps`).

use core::intrinsics::{atomic_xchg, AtomicOrdering};

use crate::layout::field;
use crate::task;
use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use mptcpify_common::{
    event::Event,
    maps::{
        flag, name_filter, AuditKey, CgroupPath, CgroupRule, CheckSlot, CommKey, CommSlot, Config,
        Counter, NameFilter, PidRule, Staged, Tag, COMM_SLOTS_LEN, MAX_AUDIT_SEEN,
        MAX_CGROUP_RULES, MAX_COMMS, MAX_EXPLAIN, MAX_MPTCP_SWITCHES, MAX_NETNS, MAX_PIDS,
        MAX_TAGGED, STAGE_HEAD,
        STAGE_POS_STRIDE, STAGE_TAIL,
    },
};

/// An [`Event`] as 8-byte words (it has no padding, and its size is a
/// multiple of 8).
const EVENT_WORDS: usize = Event::SIZE / 8;
const _: () = assert!(Event::SIZE % 8 == 0);

/// `BPF_RB_NO_WAKEUP` (include/uapi/linux/bpf.h): submit without waking
/// the reader.
const BPF_RB_NO_WAKEUP: u64 = 1;

#[map(name = "CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "COMMS")]
pub static COMMS: HashMap<CommKey, u8> = HashMap::with_max_entries(MAX_COMMS, 0);

#[map(name = "EXPLAIN")]
pub static EXPLAIN: HashMap<CommKey, u8> = HashMap::with_max_entries(MAX_EXPLAIN, 0);

#[map(name = "COMM_SLOTS")]
pub static COMM_SLOTS: Array<CommSlot> = Array::with_max_entries(COMM_SLOTS_LEN, BPF_F_MMAPABLE);

#[map(name = "NAME_FILTER")]
pub static NAME_FILTER: Array<NameFilter> = Array::with_max_entries(name_filter::COUNT, 0);

#[map(name = "PIDS")]
pub static PIDS: HashMap<u32, PidRule> = HashMap::with_max_entries(MAX_PIDS, 0);

#[map(name = "NETNS")]
pub static NETNS: HashMap<u64, u8> = HashMap::with_max_entries(MAX_NETNS, 0);

/// `BPF_F_NO_PREALLOC` (include/uapi/linux/bpf.h): entries are allocated
/// when written; most of the map is never used.
const BPF_F_NO_PREALLOC: u32 = 1;

/// See [`mptcpify_common::maps::MPTCP_SWITCHES`].
#[map(name = "MPTCP_SWITCHES")]
pub static MPTCP_SWITCHES: HashMap<u64, u64> =
    HashMap::with_max_entries(MAX_MPTCP_SWITCHES, BPF_F_NO_PREALLOC);

/// See [`mptcpify_common::maps::MPTCP_SWITCHES_FULL`].
#[map(name = "MPTCP_SWITCHES_FULL")]
pub static MPTCP_SWITCHES_FULL: Array<u32> = Array::with_max_entries(1, 0);

#[map(name = "CGROUPS")]
pub static CGROUPS: Array<CgroupRule> = Array::with_max_entries(MAX_CGROUP_RULES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// 4096 events (64 bytes each) between two reads of the reader, which reads
/// every 50 ms: 80,000 events a second. When full, events are dropped and
/// counted (the other counters still count what they would have said).
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// `BPF_F_MMAPABLE` (include/uapi/linux/bpf.h): user space may map the
/// array's values.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The `socket()` events (see [`mptcpify_common::maps::STAGED`]); sized by
/// the loader.
#[map(name = "STAGED")]
static STAGED: Array<Staged> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// One value per CPU: its head and tail words, in one lookup.
#[map(name = "STAGE_POS")]
static STAGE_POS: Array<[u64; STAGE_POS_STRIDE as usize]> =
    Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Slots of [`STAGED`] per CPU, a power of two; set by the loader
/// (`EbpfLoader::override_global`), a constant to the verifier.
#[unsafe(no_mangle)]
static STAGE_SLOTS: u32 = 0;

/// 1 where a plain store reaches the reader after the stores before it
/// (x86-64), so a slot is marked whole without an exchange; set by the
/// loader, a constant to the verifier.
#[unsafe(no_mangle)]
static STAGE_ORDERED: u32 = 0;

#[map(name = "CGROUP_PATHS")]
pub static CGROUP_PATHS: HashMap<CgroupPath, u32> = HashMap::with_max_entries(MAX_CGROUP_RULES, 0);

#[map(name = "PATH_SCRATCH")]
pub static PATH_SCRATCH: PerCpuArray<CgroupPath> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "AUDIT_SEEN")]
pub static AUDIT_SEEN: LruHashMap<AuditKey, u8> = LruHashMap::with_max_entries(MAX_AUDIT_SEEN, 0);

// A plain (preallocated) hash map: a full one only leaves a socket
// untracked.
#[map(name = "TAGGED")]
pub static TAGGED: HashMap<u64, Tag> = HashMap::with_max_entries(MAX_TAGGED, 0);

#[map(name = "UPGRADING")]
static UPGRADING: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "CHECK")]
pub static CHECK: Array<CheckSlot> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// The upgrader notes that thread `tid` is creating an upgraded socket
/// (see [`mptcpify_common::maps::UPGRADING`]).
#[inline(always)]
pub fn note_upgrade(tid: u32) {
    if let Some(slot) = UPGRADING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; a program that preempts this one on the
        // CPU only replaces the note, which costs a second decision.
        unsafe { *slot = tid };
    }
}

/// Whether the upgrader noted thread `tid` on this CPU; takes the note.
#[inline(always)]
pub fn take_upgrade_note(tid: u32) -> bool {
    let Some(slot) = UPGRADING.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: as in note_upgrade.
    unsafe {
        if *slot != tid {
            return false;
        }
        *slot = 0;
    }
    true
}

#[inline(always)]
pub fn count(counter: Counter) {
    count_by(counter, 1);
}

#[inline(always)]
pub fn count_by(counter: Counter, n: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *slot += n };
    }
}

/// An event of an upgraded socket (closed, or its life while a monitor
/// listens), in the name of its creator.
#[inline(always)]
pub fn report_tagged(tag: &Tag, outcome: u32, why: u32) {
    send(&Event {
        outcome,
        pid: tag.pid,
        tid: tag.tid,
        family: tag.family,
        why,
        boot_ns: stamp(stamped()),
        comm: tag.comm,
        ..Event::default()
    });
}

/// A socket's event, sent at `socket()`: `outcome` is an
/// [`mptcpify_common::event::outcome`] value, `why` its
/// [`Event::why`] (0 but for [`outcome::VERDICT`]); `task` is the calling
/// task ([`crate::layout::current_task`]).
///
/// [`outcome::VERDICT`]: mptcpify_common::event::outcome::VERDICT
#[inline(always)]
pub fn report(task: u64, outcome: u32, family: i32, why: u32, stamped: bool) {
    stage(&whole(
        task,
        Event {
            outcome,
            family: family as u32,
            why,
            ..Event::default()
        },
        stamped,
    ));
}

/// A refused socket option's event.
#[inline(always)]
pub fn report_option(task: u64, outcome: u32, level: u32, option: u32, errno: u32) {
    send(&whole(
        task,
        Event {
            outcome,
            level,
            option,
            errno,
            ..Event::default()
        },
        stamped(),
    ));
}

/// Adds who (from the task's own fields, as `bpf_get_current_pid_tgid` and
/// `bpf_get_current_comm` would give them, without their calls) and when
/// (if `stamped`).
#[inline(always)]
fn whole(task: u64, mut event: Event, stamped: bool) -> Event {
    event.pid = field!(task, u32, task.tgid);
    event.tid = field!(task, u32, task.pid);
    event.boot_ns = stamp(stamped);
    event.comm = task::comm(task);
    event
}

/// Whether somebody reads event times ([`flag::STAMP`]); the upgrader
/// knows it from the config it read already.
#[inline(always)]
pub fn stamped() -> bool {
    config().flags & flag::STAMP != 0
}

/// The time of an event when `stamped`; else 0, which the reader replaces
/// by the time it reads the event.
#[inline(always)]
fn stamp(stamped: bool) -> u64 {
    if !stamped {
        return 0;
    }
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// One helper call: `bpf_ringbuf_output` reserves, copies and commits.
/// Dropped when the ring is full (the counters still count). No wake-up
/// per event (a wake-up costs the socket() caller microseconds): the reader
/// drains the ring on a short timer instead (events.rs).
#[inline(always)]
fn send(event: &Event) {
    if EVENTS.output::<Event>(event, BPF_RB_NO_WAKEUP).is_err() {
        count(Counter::DroppedEvents);
    }
}

/// Puts a `socket()` event in this CPU's next free slot of [`STAGED`]
/// (protocol at [`mptcpify_common::maps::Staged`]): write the event, mark
/// it whole, then move this CPU's head past it. Dropped and counted when
/// the reader has not read the slot yet.
///
/// Only the upgrader stages events, and the kernel enters it at most once
/// per CPU at a time (`__bpf_prog_enter_recur`, kernel/bpf/trampoline.c: a
/// `socket()` on a CPU where a preempted task is inside the program runs
/// without it). So this CPU's head has one writer at a time: plain loads
/// and stores, no compare-and-swap. The mark is a plain store where stores
/// reach the reader in program order ([`STAGE_ORDERED`], x86-64), else an
/// exchange (a full barrier): either way the reader sees the event before
/// the mark.
#[inline(always)]
fn stage(event: &Event) {
    // SAFETY: aligned statics, read by value; helpers without arguments.
    let slots = unsafe { core::ptr::read_volatile(&STAGE_SLOTS) };
    let ordered = unsafe { core::ptr::read_volatile(&STAGE_ORDERED) } != 0;
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(position) = STAGE_POS.get_ptr_mut(cpu) else {
        count(Counter::DroppedEvents);
        return;
    };
    // SAFETY: aligned u64s in map values, shared with the reader (the BPF
    // target selects no atomic load before BPF ISA v4).
    let (head, at, read) = unsafe {
        let head = &raw mut (*position)[STAGE_HEAD as usize];
        (
            head,
            core::ptr::read_volatile(head),
            core::ptr::read_volatile(&raw const (*position)[STAGE_TAIL as usize]),
        )
    };
    let index = cpu
        .wrapping_mul(slots)
        .wrapping_add(at as u32 & slots.wrapping_sub(1));
    let Some(slot) = STAGED.get_ptr_mut(index) else {
        count(Counter::DroppedEvents);
        return;
    };
    if at.wrapping_sub(read) >= u64::from(slots) {
        count(Counter::DroppedEvents);
        return;
    }
    // SAFETY: this CPU's next slot, which the reader has read (or never
    // had) and reads again only once marked whole; the head's one writer.
    // The event goes in as whole words straight from registers: written
    // as a struct (volatile), it was first built on the stack and then
    // copied a field at a time, twice the memory accesses.
    unsafe {
        let words: [u64; EVENT_WORDS] = core::mem::transmute(*event);
        let to = (&raw mut (*slot).event).cast::<u64>();
        for (i, word) in words.into_iter().enumerate() {
            core::ptr::write_volatile(to.add(i), word);
        }
        if ordered {
            core::ptr::write_volatile(&raw mut (*slot).committed, at + 1);
        } else {
            atomic_xchg::<u64, { AtomicOrdering::AcqRel }>(&raw mut (*slot).committed, at + 1);
        }
        core::ptr::write_volatile(head, at + 1);
    }
}
