//! Facts about the task calling `socket()`, turned into a `TaskMatch` by
//! looking them up in the policy maps. Only the selector kinds the policy
//! uses are looked up; for a task the policy selects, the namespace's MPTCP
//! switch is then always read, because upgrading where MPTCP is off would
//! make `socket()` fail, then its Landlock domain, then whether another
//! tool's `cgroup/sock_create` program applies to it.

use aya_ebpf::helpers::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_task, bpf_probe_read_kernel,
};
use aya_ebpf::maps::HashMap;
use mptcpify_common::{
    consts::COMM_LEN,
    maps::{
        flag, kind, role, CommKey, Config, NetnsLayout, SockFilterLayout, TaskLayout,
        MAX_CGROUP_RULES, NS_PER_TICK,
    },
    TaskMatch,
};

use crate::maps::{CGROUPS, COMMS, EXPLAIN, NETNS, PIDS};

/// Roles collected over the selectors: the kinds of the include and of the
/// exclude selectors that name the task.
#[derive(Default)]
struct Hits {
    included_kinds: u32,
    excluded_kinds: u32,
}

impl Hits {
    #[inline(always)]
    fn add(&mut self, kind: u32, roles: u8) {
        if roles & role::INCLUDE != 0 {
            self.included_kinds |= kind;
        }
        if roles & role::EXCLUDE != 0 {
            self.excluded_kinds |= kind;
        }
    }
}

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
fn namespace(config: &Config) -> (Option<u64>, u8) {
    let wanted = config.include_kinds | config.exclude_kinds;
    let net = current_net(&config.netns);
    let roles = match net {
        Some(net) if wanted & kind::NETNS != 0 || config.netns.pernet_id_addr == 0 => {
            read::<u64>(net, config.netns.net_cookie).map_or(0, |cookie| lookup(&NETNS, &cookie))
        }
        _ => 0,
    };
    (net, roles)
}

/// Whether MPTCP is on in namespace `net`: its own switch, or in the
/// fallback mode whether mptcpify checked it ([`role::MPTCP_CHECKED`]).
#[inline(always)]
fn enabled(config: &Config, net: Option<u64>, roles: u8) -> bool {
    match net {
        Some(_) if config.netns.pernet_id_addr == 0 => roles & role::MPTCP_CHECKED != 0,
        Some(net) => mptcp_enabled_in(net, &config.netns),
        None => false,
    }
}

/// The namespace guard alone (is MPTCP on in the task's namespace?), as
/// the self-check program reads it.
#[inline(always)]
pub fn mptcp_enabled(config: &Config) -> bool {
    let (net, netns_roles) = namespace(config);
    enabled(config, net, netns_roles)
}

/// The policy's view of the calling task, gathered in the order
/// [`mptcpify_common::decide`] asks: the selection first (what most TCP
/// sockets of a machine stop at when a policy selects a few processes), then
/// the namespace guard and the sandbox, only for a task that would be
/// upgraded. Facts after the one that decides are left at their defaults.
#[inline(always)]
pub fn matches(config: &Config) -> Matched {
    let wanted = config.include_kinds | config.exclude_kinds;
    let by_netns = wanted & kind::NETNS != 0;
    let (mut net, mut netns_roles) = (None, 0);
    let mut hits = Hits::default();
    if by_netns {
        (net, netns_roles) = namespace(config);
        hits.add(kind::NETNS, netns_roles);
    }
    if wanted & kind::COMM != 0 {
        hits.add(kind::COMM, comm_roles(&COMMS, &config.task));
    }
    if wanted & kind::PID != 0 {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // SAFETY: the value is plain data, copied out at once.
        if let Some(rule) = unsafe { PIDS.get(&tgid) }.copied() {
            if process_start_ticks(&config.task) == Some(rule.start_ticks) {
                hits.add(kind::PID, rule.roles as u8);
            }
        }
    }
    if wanted & kind::CGROUP != 0 {
        cgroup_hits(config, &mut hits);
    }
    let selected_by = hits.included_kinds & config.include_kinds;
    let mut facts = TaskMatch {
        included: config.system_wide() || selected_by != 0,
        excluded: hits.excluded_kinds != 0,
        ..TaskMatch::default()
    };
    let matched = |task| Matched {
        task,
        selected_by,
        excluded_by: hits.excluded_kinds,
    };
    if !facts.included || facts.excluded {
        return matched(facts);
    }
    if !by_netns {
        (net, netns_roles) = namespace(config);
    }
    facts.mptcp_enabled = enabled(config, net, netns_roles);
    facts.sandboxed = facts.mptcp_enabled
        && config.flags & flag::KEEP_SANDBOXED != 0
        && landlock_domain(&config.task) != Some(0);
    facts.filtered = facts.mptcp_enabled && !facts.sandboxed && sock_filtered(config);
    matched(facts)
}

/// The roles `map` gives the calling thread's name or its process's name.
#[inline(always)]
fn comm_roles(map: &HashMap<CommKey, u8>, layout: &TaskLayout) -> u8 {
    let comm = CommKey(bpf_get_current_comm().unwrap_or_default());
    let mut roles = lookup(map, &comm);
    if let Some(process) = process_name(layout) {
        roles |= lookup(map, &process);
    }
    roles
}

/// `--explain`: whether the operator asked about the calling process (by
/// its name or its thread's, as `--comm` matches).
#[inline(always)]
pub fn explained(config: &Config) -> bool {
    config.flags & flag::EXPLAIN != 0 && comm_roles(&EXPLAIN, &config.task) != 0
}

/// Whether a `cgroup/sock_create` program applies to the sockets the task
/// creates: the first program of its cgroup's effective array
/// ([`SockFilterLayout`]). A failed read counts as filtered: keeping TCP is
/// always safe.
#[inline(always)]
pub fn sock_filtered(config: &Config) -> bool {
    if config.flags & flag::KEEP_FILTERED == 0 {
        return false;
    }
    first_sock_create_program(&config.filter) != Some(0)
}

#[inline(always)]
fn first_sock_create_program(layout: &SockFilterLayout) -> Option<u64> {
    // SAFETY: the current task's address; only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let css_set = read::<u64>(task, layout.task_cgroups)?;
    let cgroup = read::<u64>(css_set, layout.css_set_dfl_cgrp)?;
    let programs = read::<u64>(cgroup, layout.cgroup_sock_create)?;
    read::<u64>(programs, layout.array_first_prog)
}

/// The process name (`current->group_leader->comm`) when the calling thread
/// is not the leader; the leader's name is the thread's own.
#[inline(always)]
fn process_name(layout: &TaskLayout) -> Option<CommKey> {
    // SAFETY: the current task's address; only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let leader = read::<u64>(task, layout.group_leader)?;
    if leader == task {
        return None;
    }
    read::<[u8; COMM_LEN]>(leader, layout.comm).map(CommKey)
}

/// When the calling process started, in the clock ticks of /proc/PID/stat.
#[inline(always)]
fn process_start_ticks(layout: &TaskLayout) -> Option<u64> {
    // SAFETY: the current task's address; only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let leader = read::<u64>(task, layout.group_leader)?;
    read::<u64>(leader, layout.start_boottime).map(|ns| ns / NS_PER_TICK)
}

/// `current->cred->security`, the task's LSM blob.
#[inline(always)]
pub fn cred_security(layout: &TaskLayout) -> Option<u64> {
    // SAFETY: the current task's address; only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let cred = read::<u64>(task, layout.cred)?;
    read::<u64>(cred, layout.cred_security)
}

/// The task's Landlock domain pointer (0: not sandboxed). `None` when a read
/// failed, which the caller treats as sandboxed: keeping TCP is always safe.
#[inline(always)]
fn landlock_domain(layout: &TaskLayout) -> Option<u64> {
    read::<u64>(cred_security(layout)?, layout.landlock_domain)
}

#[inline(always)]
fn lookup<K>(map: &HashMap<K, u8>, key: &K) -> u8 {
    // SAFETY: the value is a plain u8, copied out at once.
    unsafe { map.get(key) }.copied().unwrap_or(0)
}

/// One helper call per rule: is the task's ancestor at the rule's depth the
/// rule's cgroup?
#[inline(always)]
fn cgroup_hits(config: &Config, hits: &mut Hits) {
    for i in 0..MAX_CGROUP_RULES {
        if i >= config.cgroup_rules {
            break;
        }
        let Some(rule) = CGROUPS.get(i) else { break };
        // SAFETY: a helper without pointer arguments.
        let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(rule.level as i32) };
        if ancestor == rule.id {
            hits.add(kind::CGROUP, rule.role as u8);
        }
    }
}

/// `current->nsproxy->net_ns`.
#[inline(always)]
fn current_net(layout: &NetnsLayout) -> Option<u64> {
    // SAFETY: returns the current task's address; only read through probe reads.
    let task = unsafe { bpf_get_current_task() };
    let nsproxy = read::<u64>(task, layout.task_nsproxy)?;
    read::<u64>(nsproxy, layout.nsproxy_net_ns)
}

/// `net->gen->ptr[mptcp_pernet_id]->mptcp_enabled`, the value of the
/// namespace's `net.mptcp.enabled`. Any failed read means "off": the socket
/// then stays TCP, which is always safe.
#[inline(always)]
fn mptcp_enabled_in(net: u64, layout: &NetnsLayout) -> bool {
    let Some(id) = read::<u32>(layout.pernet_id_addr, 0) else {
        return false;
    };
    let Some(generic) = read::<u64>(net, layout.net_gen) else {
        return false;
    };
    let slot = layout.net_generic_ptr as u64 + 8 * id as u64;
    let Some(pernet) = read::<u64>(generic, slot as u32) else {
        return false;
    };
    read::<u8>(pernet, layout.pernet_mptcp_enabled).is_some_and(|on| on != 0)
}

/// Reads a `T` at kernel address `base + offset`; `None` for a null base or
/// a failed read.
#[inline(always)]
pub fn read<T: Copy>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    let address = base.wrapping_add(offset as u64) as *const T;
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(address) }.ok()
}
