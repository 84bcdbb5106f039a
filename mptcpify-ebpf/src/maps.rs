//! The maps, as declared to the loader (names from `mptcpify_common::maps`).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use mptcpify_common::{
    event::Event,
    maps::{
        AuditKey, CgroupPath, CgroupRule, CheckSlot, CloseLayout, CommKey, Config, Counter,
        PidRule, Tag, MAX_AUDIT_SEEN, MAX_CGROUP_RULES, MAX_COMMS, MAX_EXPLAIN, MAX_NETNS,
        MAX_PIDS, MAX_TAGGED,
    },
};

/// `BPF_RB_NO_WAKEUP` (include/uapi/linux/bpf.h): submit without waking
/// the reader.
const BPF_RB_NO_WAKEUP: u64 = 1;

#[map(name = "CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "COMMS")]
pub static COMMS: HashMap<CommKey, u8> = HashMap::with_max_entries(MAX_COMMS, 0);

#[map(name = "EXPLAIN")]
pub static EXPLAIN: HashMap<CommKey, u8> = HashMap::with_max_entries(MAX_EXPLAIN, 0);

#[map(name = "PIDS")]
pub static PIDS: HashMap<u32, PidRule> = HashMap::with_max_entries(MAX_PIDS, 0);

#[map(name = "NETNS")]
pub static NETNS: HashMap<u64, u8> = HashMap::with_max_entries(MAX_NETNS, 0);

#[map(name = "CGROUPS")]
pub static CGROUPS: Array<CgroupRule> = Array::with_max_entries(MAX_CGROUP_RULES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// 4096 events (64 bytes each) between two reads of the reader, which reads
/// every 50 ms: 80,000 events a second. When full, events are dropped and
/// counted (the other counters still count what they would have said).
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

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

#[map(name = "CLOSE_LAYOUT")]
static CLOSE_LAYOUT: Array<CloseLayout> = Array::with_max_entries(1, 0);

#[map(name = "CHECK")]
pub static CHECK: Array<CheckSlot> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

#[inline(always)]
pub fn close_layout() -> CloseLayout {
    CLOSE_LAYOUT.get(0).copied().unwrap_or_default()
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
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count(Counter::DroppedEvents);
        return;
    };
    entry.write(Event {
        outcome,
        pid: tag.pid,
        tid: tag.tid,
        family: tag.family,
        why,
        // SAFETY: a helper without arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        comm: tag.comm,
        ..Event::default()
    });
    entry.submit(BPF_RB_NO_WAKEUP);
}

/// A socket's event: `outcome` is an [`mptcpify_common::event::outcome`] value.
#[inline(always)]
pub fn report(outcome: u32, family: i32) {
    submit(Event {
        outcome,
        family: family as u32,
        ..Event::default()
    });
}

/// An `--explain` event: the verdict and the selector kinds that named the
/// task.
#[inline(always)]
pub fn report_verdict(why: u32, family: i32) {
    submit(Event {
        outcome: mptcpify_common::event::outcome::VERDICT,
        family: family as u32,
        why,
        ..Event::default()
    });
}

/// A refused socket option's event.
#[inline(always)]
pub fn report_option(outcome: u32, level: u32, option: u32, errno: u32) {
    submit(Event {
        outcome,
        level,
        option,
        errno,
        ..Event::default()
    });
}

/// Adds who and when, and sends; dropped when the ring is full (the
/// counters still count).
#[inline(always)]
fn submit(mut event: Event) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count(Counter::DroppedEvents);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    event.pid = (pid_tgid >> 32) as u32;
    event.tid = pid_tgid as u32;
    // SAFETY: a helper without arguments.
    event.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
    event.comm = bpf_get_current_comm().unwrap_or_default();
    entry.write(event);
    // No wake-up per event (a wake-up costs the socket() caller microseconds):
    // the reader drains the ring on a short timer instead (events.rs).
    entry.submit(BPF_RB_NO_WAKEUP);
}
