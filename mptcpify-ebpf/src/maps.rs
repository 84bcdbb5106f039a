//! The maps, as declared to the loader (names from `mptcpify_common::maps`).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use mptcpify_common::maps::{
    name_filter, note, noted, AuditKey, CgroupPath, CgroupRule, CheckSlot, CommKey, CommSlot,
    Config, Counter, NameFilter, PidRule, SelectorCounter, SelectorName, Staged, Tag,
    COMM_SLOTS_LEN, FALLBACK_SLOTS, MAX_AUDIT_SEEN, MAX_CGROUP_RULES, MAX_COMMS, MAX_EXPLAIN,
    MAX_MPTCP_SWITCHES, MAX_NETNS, MAX_PIDS, MAX_SELECTORS, MAX_TAGGED, NOTE_SLOTS, REFUSED_SLOTS,
    STAGE_POS_STRIDE,
};

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

#[map(name = "BY_SELECTOR")]
static SELECTOR_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_SELECTORS * SelectorCounter::COUNT, 0);

/// Written by the loader only; here so that the object declares it.
#[map(name = "SELECTOR_NAMES")]
pub static SELECTOR_NAMES: Array<SelectorName> = Array::with_max_entries(MAX_SELECTORS, 0);

#[map(name = "FALLBACKS")]
static FALLBACKS: PerCpuArray<u64> = PerCpuArray::with_max_entries(FALLBACK_SLOTS, 0);

#[map(name = "REFUSED")]
static REFUSED: PerCpuArray<u64> = PerCpuArray::with_max_entries(REFUSED_SLOTS, 0);

/// 4096 events (64 bytes each) between two reads of the reader, which reads
/// every 50 ms: 80,000 events a second. When full, events are dropped and
/// counted (the other counters still count what they would have said).
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// `BPF_F_MMAPABLE` (include/uapi/linux/bpf.h): user space may map the
/// array's values.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The `socket()` events (see [`mptcpify_common::maps::STAGED`]); sized by
/// the loader.
#[map(name = "STAGED")]
pub static STAGED: Array<Staged> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// One value per CPU: its head and tail words, in one lookup.
#[map(name = "STAGE_POS")]
pub static STAGE_POS: Array<[u64; STAGE_POS_STRIDE as usize]> =
    Array::with_max_entries(1, BPF_F_MMAPABLE);

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
static UPGRADING: Array<u64> = Array::with_max_entries(NOTE_SLOTS, 0);

#[map(name = "CHECK")]
pub static CHECK: Array<CheckSlot> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// The upgrader notes that thread `tid` is creating a socket that include
/// selectors of the kinds `selected_by` upgraded (see
/// [`mptcpify_common::maps::UPGRADING`]).
#[inline(always)]
pub fn note_upgrade(tid: u32, selected_by: u32) {
    if let Some(slot) = UPGRADING.get_ptr_mut(tid & (NOTE_SLOTS - 1)) {
        // SAFETY: a plain u64 store; another thread of the same slot only
        // replaces the note (see maps::UPGRADING).
        unsafe { *slot = note(tid, selected_by) };
    }
}

/// The kinds of the upgrader's note for thread `tid`, if it noted it;
/// takes the note.
#[inline(always)]
pub fn take_upgrade_note(tid: u32) -> Option<u32> {
    let slot = UPGRADING.get_ptr_mut(tid & (NOTE_SLOTS - 1))?;
    // SAFETY: as in note_upgrade.
    unsafe {
        let kinds = noted(*slot, tid)?;
        *slot = 0;
        Some(kinds)
    }
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

/// Counts `counter` for the sockets of selector `selector`.
#[inline(always)]
pub fn count_selector(selector: u32, counter: SelectorCounter, n: u64) {
    add(&SELECTOR_COUNTERS, counter.index(selector), n);
}

/// Counts a fallback told at close ([`mptcpify_common::maps::fallback_index`]).
#[inline(always)]
pub fn count_fallback(index: u32) {
    add(&FALLBACKS, index, 1);
}

/// Counts a refused option ([`mptcpify_common::maps::refused_index`]).
#[inline(always)]
pub fn count_refused(index: u32) {
    add(&REFUSED, index, 1);
}

#[inline(always)]
fn add(map: &PerCpuArray<u64>, index: u32, n: u64) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *slot += n };
    }
}
