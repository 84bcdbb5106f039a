//! Facts about the task calling `socket()`, turned into a `TaskMatch` by
//! looking them up in the policy maps. Only the selector kinds the policy
//! uses are looked up; for a task the policy selects, the namespace's MPTCP
//! switch is then always read, because upgrading where MPTCP is off would
//! make `socket()` fail, then its Landlock domain, then whether another
//! tool's `cgroup/sock_create` program applies to it.
//!
//! Fields of the task and of what it points to are loaded directly through
//! BTF pointers ([`crate::layout`]), and so are the words BTF does not type
//! (a namespace's MPTCP state: `net->gen->ptr[id]` is a `void *`;
//! Landlock's slot in the LSM blob), through `bpf_rdonly_cast`: no helper
//! call but the one that gives the task.

use aya_ebpf::helpers::bpf_get_current_ancestor_cgroup_id;
use aya_ebpf::maps::HashMap;
use mptcpify_common::{
    consts::COMM_LEN,
    maps::{
        flag, kind, name_filter, present, role, CommKey, CommSlot, Config, KindBits, NameFilter,
        MAX_CGROUP_RULES, NS_PER_TICK,
    },
    TaskMatch,
};

use crate::layout::{address, field, field_ptr, has, layout, peek};
use crate::maps::{
    CGROUPS, COMMS, COMM_SLOTS, EXPLAIN, MPTCP_SWITCHES, MPTCP_SWITCHES_FULL, NAME_FILTER, NETNS,
    PIDS,
};

/// Roles collected over the selectors: the kinds of the include and of the
/// exclude selectors that name the task (the fold the loader uses to fill
/// CONFIG, shared).
type Hits = KindBits;

/// The policy's view of the task, and which selector kinds named it (for
/// `--explain`).
pub struct Matched {
    pub task: TaskMatch,
    /// [`kind`] bits of the include selectors that name the task.
    pub selected_by: u32,
    /// [`kind`] bits of the exclude selectors that name the task.
    pub excluded_by: u32,
}

/// The task's namespace (`current->nsproxy->net_ns`) and its roles in
/// [`NETNS`], looked up only when the policy selects by namespace or the
/// guard needs them (the fallback mode).
#[inline(always)]
fn namespace(config: &Config, task: u64) -> (Option<u64>, u8) {
    let wanted = config.include_kinds | config.exclude_kinds;
    let net = current_net(task);
    let roles = match net {
        Some(net) if wanted & kind::NETNS != 0 || !has(present::PERNET) => {
            lookup(&NETNS, &field!(net, u64, netns.net_cookie))
        }
        _ => 0,
    };
    (net, roles)
}

/// Whether MPTCP is on in namespace `net`: its own switch, read through
/// `mptcp_slot` ([`Config::mptcp_slot`]); in the fallback mode, the switch
/// where a write of it showed it to be ([`MPTCP_SWITCHES`]), else whether
/// mptcpify checked it at start ([`role::MPTCP_CHECKED`]), unless a write
/// went unrecorded ([`MPTCP_SWITCHES_FULL`]).
#[inline(always)]
fn enabled(net: Option<u64>, roles: u8, mptcp_slot: u32) -> bool {
    match net {
        Some(net) if has(present::PERNET) => mptcp_enabled_in(net, mptcp_slot),
        Some(net) => {
            let cookie = field!(net, u64, netns.net_cookie);
            // SAFETY: the value is plain data, copied out at once.
            match unsafe { MPTCP_SWITCHES.get(&cookie) }.copied() {
                Some(switch) => read::<u8>(switch, 0).is_some_and(|on| on != 0),
                None => {
                    roles & role::MPTCP_CHECKED != 0
                        && MPTCP_SWITCHES_FULL.get(0).is_some_and(|&full| full == 0)
                }
            }
        }
        None => false,
    }
}

/// The namespace guard alone (is MPTCP on in the task's namespace?), as
/// the self-check program reads it, through `mptcp_slot` (see
/// [`mptcp_slot`]).
#[inline(always)]
pub fn mptcp_enabled(config: &Config, task: u64, mptcp_slot: u32) -> bool {
    let (net, netns_roles) = namespace(config, task);
    enabled(net, netns_roles, mptcp_slot)
}

/// The policy's view of the calling task, gathered in the order
/// [`mptcpify_common::decide`] asks: the selection first (what most TCP
/// sockets of a machine stop at when a policy selects a few processes), then
/// the namespace guard and the sandbox, only for a task that would be
/// upgraded. Facts after the one that decides are left at their defaults.
#[inline(always)]
pub fn matches(config: &Config, task: u64) -> Matched {
    let wanted = config.include_kinds | config.exclude_kinds;
    let by_netns = wanted & kind::NETNS != 0;
    let (mut net, mut netns_roles) = (None, 0);
    let mut hits = Hits::default();
    // One test for a policy without selectors (system-wide): under
    // emulation every branch taken ends a translated block.
    if wanted != 0 {
        if by_netns {
            (net, netns_roles) = namespace(config, task);
            hits.add(kind::NETNS, netns_roles);
        }
        if wanted & kind::COMM != 0 {
            hits.add(kind::COMM, comm_roles(&COMMS, name_filter::COMMS, task));
        }
        if wanted & kind::PID != 0 {
            let tgid = field!(task, u32, task.tgid);
            // SAFETY: the value is plain data, copied out at once.
            if let Some(rule) = unsafe { PIDS.get(&tgid) }.copied() {
                if process_start_ticks(task) == Some(rule.start_ticks) {
                    hits.add(kind::PID, rule.roles as u8);
                }
            }
        }
        if wanted & kind::CGROUP != 0 {
            cgroup_hits(config, task, &mut hits);
        }
    }
    let selected_by = hits.include & config.include_kinds;
    let mut facts = TaskMatch {
        included: config.system_wide() || selected_by != 0,
        excluded: hits.exclude != 0,
        ..TaskMatch::default()
    };
    let matched = |task| Matched {
        task,
        selected_by,
        excluded_by: hits.exclude,
    };
    if !facts.included || facts.excluded {
        return matched(facts);
    }
    if !by_netns {
        (net, netns_roles) = namespace(config, task);
    }
    facts.mptcp_enabled = enabled(net, netns_roles, config.mptcp_slot);
    facts.sandboxed = facts.mptcp_enabled
        && config.flags & flag::KEEP_SANDBOXED != 0
        && landlock_domain(config, task) != Some(0);
    facts.filtered = facts.mptcp_enabled && !facts.sandboxed && sock_filtered(config, task);
    matched(facts)
}

/// The number ([`role::selector`]) of the include selector that upgraded
/// the calling task's socket, the first of the kinds `selected_by` (what
/// the upgrader noted) in the upgrader's order: namespace, name (the
/// thread's, then the process's), process, cgroup. For the tag program
/// only, once per upgraded socket: plain lookups, no name filter or slots.
#[inline(always)]
pub fn selector(task: u64, selected_by: u32) -> u32 {
    let included = |roles: u8| (roles & role::INCLUDE != 0).then(|| role::selector(roles));
    if selected_by & kind::NETNS != 0 {
        if let Some(net) = current_net(task) {
            let cookie = field!(net, u64, netns.net_cookie);
            if let Some(n) = included(lookup(&NETNS, &cookie)) {
                return n;
            }
        }
    }
    if selected_by & kind::COMM != 0 {
        if let Some(n) = included(lookup(&COMMS, &CommKey(comm(task)))) {
            return n;
        }
        if let Some(n) = process_name(task).and_then(|name| included(lookup(&COMMS, &name))) {
            return n;
        }
    }
    if selected_by & kind::PID != 0 {
        let tgid = field!(task, u32, task.tgid);
        // SAFETY: the value is plain data, copied out at once.
        if let Some(rule) = unsafe { PIDS.get(&tgid) } {
            if let Some(n) = included(rule.roles as u8) {
                return n;
            }
        }
    }
    if selected_by & kind::CGROUP != 0 {
        let config = crate::maps::config();
        for i in 0..MAX_CGROUP_RULES {
            if i >= config.cgroup_rules {
                break;
            }
            let Some(rule) = CGROUPS.get(i) else { break };
            let Some(n) = included(rule.role as u8) else {
                continue;
            };
            // SAFETY: a helper without pointer arguments.
            if unsafe { bpf_get_current_ancestor_cgroup_id(rule.level as i32) } == rule.id {
                return n;
            }
        }
    }
    0
}

/// A task's own name (`task->comm`), NUL-padded as the kernel keeps it
/// (`__set_task_comm` uses `strscpy_pad`, fs/exec.c), as two words.
#[inline(always)]
pub fn comm(task: u64) -> [u8; COMM_LEN] {
    let words: [u64; 2] = [
        field!(task, u64, task.comm),
        field!(task, u64, task.comm + 8),
    ];
    // SAFETY: two words are 16 bytes.
    unsafe { core::mem::transmute(words) }
}

/// The roles `map` gives the calling thread's name or its process's name;
/// `filter`: its [`NAME_FILTER`] slot, which spares the lookup of a name
/// the map cannot hold.
#[inline(always)]
fn comm_roles(map: &HashMap<CommKey, u8>, filter: u32, task: u64) -> u8 {
    let exact = map_is_comms(filter);
    let Some(filter) = NAME_FILTER.get(filter) else {
        return 0;
    };
    let mut roles = named(map, filter, exact, &CommKey(comm(task)));
    if let Some(process) = process_name(task) {
        roles |= named(map, filter, exact, &process);
    }
    roles
}

/// Whether the name map of `filter` is [`COMMS`], which has
/// [`COMM_SLOTS`] in front of it.
#[inline(always)]
fn map_is_comms(filter: u32) -> bool {
    filter == name_filter::COMMS
}

/// The roles `map` gives `name`, when `filter` (a superset of its names)
/// may hold it; `exact`: `map` is COMMS, whose [`COMM_SLOTS`] answer first.
#[inline(always)]
fn named(map: &HashMap<CommKey, u8>, filter: &NameFilter, exact: bool, name: &CommKey) -> u8 {
    // SAFETY: 16 bytes as two 8-byte words, by value.
    let words: [u64; 2] = unsafe { core::mem::transmute(name.0) };
    let (word, bit) = NameFilter::slot(words);
    if filter.0[word] & bit == 0 {
        return 0;
    }
    if exact {
        if let Some(roles) = comm_slot(NameFilter::index(words) as u32, words) {
            return roles;
        }
    }
    lookup(map, name)
}

/// What [`COMM_SLOTS`] says about `words` at `index`: its roles (0: not in
/// COMMS), or `None`: ask COMMS. Volatile loads, in the order of the
/// sequence lock ([`mptcpify_common::maps::COMM_SLOTS`]).
#[inline(always)]
fn comm_slot(index: u32, words: [u64; 2]) -> Option<u8> {
    let slot = COMM_SLOTS.get_ptr(index)?;
    // SAFETY: a valid map value pointer; plain words, read by value.
    let (first, name, second) = unsafe {
        let first = core::ptr::read_volatile(&raw const (*slot).meta);
        let name = [
            core::ptr::read_volatile(&raw const (*slot).name[0]),
            core::ptr::read_volatile(&raw const (*slot).name[1]),
        ];
        (
            first,
            name,
            core::ptr::read_volatile(&raw const (*slot).meta),
        )
    };
    CommSlot::answer(first, name, second, words)
}

/// `--explain`: whether the operator asked about the calling process (by
/// its name or its thread's, as `--comm` matches).
#[inline(always)]
pub fn explained(config: &Config, task: u64) -> bool {
    config.flags & flag::EXPLAIN != 0 && comm_roles(&EXPLAIN, name_filter::EXPLAIN, task) != 0
}

/// Whether a `cgroup/sock_create` program applies to the sockets the task
/// creates: the first program of its cgroup's effective array
/// ([`mptcpify_common::maps::SockFilterLayout`]). A missing link counts as
/// filtered: keeping TCP is always safe.
#[inline(always)]
pub fn sock_filtered(config: &Config, task: u64) -> bool {
    if config.flags & flag::KEEP_FILTERED == 0 || !has(present::SOCK_FILTER) {
        return false;
    }
    first_sock_create_program(task) != Some(0)
}

#[inline(always)]
fn first_sock_create_program(task: u64) -> Option<u64> {
    // No sock_create program in any cgroup: the kernel runs none for this
    // socket (its static key, see SockFilterLayout), so none applies.
    let key = address!(filter.enabled_key);
    if key != 0 && peek::<u32>(key) == 0 {
        return Some(0);
    }
    let css_set = field_ptr!(task, filter.task_cgroups)?;
    let cgroup = field_ptr!(css_set, filter.css_set_dfl_cgrp)?;
    let programs = field_ptr!(cgroup, filter.cgroup_sock_create)?;
    Some(field!(programs, u64, filter.array_first_prog))
}

/// The process name (`task->group_leader->comm`) when the calling thread
/// is not the leader; the leader's name is the thread's own.
#[inline(always)]
fn process_name(task: u64) -> Option<CommKey> {
    let leader = field_ptr!(task, task.group_leader)?;
    if leader == task {
        return None;
    }
    Some(CommKey(comm(leader)))
}

/// When the calling process started, in the clock ticks of /proc/PID/stat.
#[inline(always)]
fn process_start_ticks(task: u64) -> Option<u64> {
    let leader = field_ptr!(task, task.group_leader)?;
    let ns = field!(leader, u64, task.start_boottime);
    Some(ns / NS_PER_TICK)
}

/// `task->cred->security`, the task's LSM blob (a `void *`, so a plain
/// number to the verifier: read through it with [`read`]).
#[inline(always)]
pub fn cred_security(task: u64) -> Option<u64> {
    let cred = field_ptr!(task, task.cred)?;
    let security = field!(cred, u64, task.cred_security);
    (security != 0).then_some(security)
}

/// The task's Landlock domain pointer (0: not sandboxed). `None` without an
/// LSM blob, which the caller treats as sandboxed: keeping TCP is always
/// safe. (The slot is inside the blob the kernel allocated for every
/// credential, so its read cannot fail.)
#[inline(always)]
fn landlock_domain(config: &Config, task: u64) -> Option<u64> {
    read::<u64>(cred_security(task)?, config.landlock_domain)
}

#[inline(always)]
fn lookup<K>(map: &HashMap<K, u8>, key: &K) -> u8 {
    // SAFETY: the value is a plain u8, copied out at once.
    unsafe { map.get(key) }.copied().unwrap_or(0)
}

/// Is the task's ancestor at each rule's depth the rule's cgroup? With the
/// task's cgroup v2 (`task->cgroups->dfl_cgrp`, where the helper
/// `bpf_get_current_ancestor_cgroup_id` starts) read once, each rule costs
/// loads ([`mptcpify_common::maps::CgroupLayout`]); without the layout of
/// that chain (no cgroup BPF), a helper call.
#[inline(always)]
fn cgroup_hits(config: &Config, task: u64, hits: &mut Hits) {
    let own = if has(present::SOCK_FILTER) {
        task_cgroup(task)
    } else {
        None
    };
    for i in 0..MAX_CGROUP_RULES {
        if i >= config.cgroup_rules {
            break;
        }
        let Some(rule) = CGROUPS.get(i) else { break };
        let ancestor = match own {
            Some(cgroup) => ancestor_id(cgroup, rule.level),
            // SAFETY: a helper without pointer arguments.
            None => unsafe { bpf_get_current_ancestor_cgroup_id(rule.level as i32) },
        };
        if ancestor == rule.id {
            hits.add(kind::CGROUP, rule.role as u8);
        }
    }
}

/// `task->cgroups->dfl_cgrp`, a BTF pointer.
#[inline(always)]
fn task_cgroup(task: u64) -> Option<u64> {
    let css_set = field_ptr!(task, filter.task_cgroups)?;
    field_ptr!(css_set, filter.css_set_dfl_cgrp)
}

/// `cgroup_id(cgroup_ancestor(cgroup, level))`, 0 when `cgroup` is not
/// that deep (include/linux/cgroup.h); no cgroup has id 0.
#[inline(always)]
fn ancestor_id(cgroup: u64, level: u32) -> u64 {
    let depth = field!(cgroup, u32, cgroup.level) as i32;
    if depth < 0 || level > depth as u32 {
        return 0;
    }
    // An index into a flexible array: a computed address, read as a word.
    let slot = layout!(cgroup.ancestors).wrapping_add(level.wrapping_mul(8));
    let Some(ancestor) = read::<u64>(cgroup, slot) else {
        return 0;
    };
    let Some(kn) = read::<u64>(ancestor, layout!(cgroup.cgroup_kn)) else {
        return 0;
    };
    read::<u64>(kn, layout!(cgroup.kn_id)).unwrap_or(0)
}

/// `task->nsproxy->net_ns`.
#[inline(always)]
fn current_net(task: u64) -> Option<u64> {
    let nsproxy = field_ptr!(task, netns.task_nsproxy)?;
    field_ptr!(nsproxy, netns.nsproxy_net_ns)
}

/// Net generic ids are small (one per per-namespace subsystem): a larger
/// one is a wrong address, read as no id.
const MAX_PERNET_ID: u32 = 4096;

/// The byte offset of `ptr[mptcp_pernet_id]` in `struct net_generic` (0:
/// no valid id), from `mptcp_pernet_id`, which the kernel assigns once,
/// when MPTCP registers its per-namespace data at boot
/// (`register_pernet_subsys`, net/mptcp/ctrl.c): one load at its address.
/// Read by the self-check program only; the loader hands what it found to
/// the other programs ([`Config::mptcp_slot`]).
#[inline(always)]
pub fn mptcp_slot() -> u32 {
    let id: u32 = peek(address!(netns.pernet_id_addr));
    if id < MAX_PERNET_ID {
        layout!(netns.net_generic_ptr) + 8 * id
    } else {
        0
    }
}

/// Covers every [`mptcp_slot`] (ids below [`MAX_PERNET_ID`]): the mask
/// bounds a slot read from the config, which lets the verifier accept the
/// address arithmetic.
const MPTCP_SLOT_MASK: u32 = 0xffff;

/// `net->gen->ptr[mptcp_pernet_id]->mptcp_enabled`, the value of the
/// namespace's `net.mptcp.enabled`, with `mptcp_slot` the offset of
/// `ptr[mptcp_pernet_id]` ([`mptcp_slot`]). Any failed read, or no slot,
/// means "off": the socket then stays TCP, which is always safe.
#[inline(always)]
fn mptcp_enabled_in(net: u64, mptcp_slot: u32) -> bool {
    if mptcp_slot == 0 {
        return false;
    }
    let Some(generic) = field_ptr!(net, netns.net_gen) else {
        return false;
    };
    let Some(pernet) = read::<u64>(generic, mptcp_slot & MPTCP_SLOT_MASK) else {
        return false;
    };
    read::<u8>(pernet, layout!(netns.pernet_mptcp_enabled)).is_some_and(|on| on != 0)
}

/// The `T` at kernel address `base + offset`, for addresses BTF does not
/// type ([`crate::layout::peek`]); `None` for a null base. A read where
/// nothing can be read gives 0, never a fault.
#[inline(always)]
pub fn read<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    Some(peek(base.wrapping_add(offset as u64)))
}
