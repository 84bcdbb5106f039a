//! Where the BPF programs find what they read in kernel memory: struct field
//! offsets from the running kernel's BTF, and the address of
//! `mptcp_pernet_id` from the kernel's symbol table (`crate::kernel::kallsyms`). aya has no CO-RE for Rust BPF
//! programs, so the offsets are computed here and handed to the programs as
//! their read-only global (`mptcpify_common::maps::KernelLayout`), set
//! before the load so that the verifier checks each access against BTF.
//!
//! The namespace chain: `current->nsproxy->net_ns` → `net->net_cookie` (as
//! `SO_NETNS_COOKIE` gives it) and
//! `net->gen->ptr[mptcp_pernet_id]->mptcp_enabled`. The task's facts
//! (process name, start time, credentials), a new cgroup's id and whether a
//! `cgroup/sock_create` program applies to a task: see
//! `mptcpify_common::maps::{TaskLayout, CgroupLayout, SockFilterLayout,
//! CloseLayout}`.

use anyhow::{Context, Result};

pub use mptcpify_core::btf::{Btf, BtfIds, BtfKind, Layout, SOCK_CREATE_KEYS};

/// Tests only: `MPTCPIFY_FAULT_GUARD_OFFSET=N` replaces the offset of
/// `mptcp_enabled` in `struct mptcp_pernet`, to prove that the start-up
/// self-check refuses a guard that reads the wrong byte. Not for operators.
fn fault_injected_offset() -> Option<u32> {
    std::env::var("MPTCPIFY_FAULT_GUARD_OFFSET")
        .ok()?
        .parse()
        .ok()
}

/// What the programs get to find their way in kernel memory (set as their
/// read-only global before the load), and to keep sockets TCP where MPTCP
/// is off.
pub struct Guard {
    pub kernel: KernelLayout,
    /// Why the outcome programs cannot run here, when they cannot (see
    /// [`Layout::close`]).
    pub close: Result<(), String>,
    /// Set when the program cannot read other namespaces' MPTCP switch (no
    /// `mptcp_pernet_id` in kallsyms): only mptcpify's own namespace,
    /// checked here, is upgraded.
    pub fallback: Option<String>,
    /// Why the fallback mode cannot follow writes of `net.mptcp.enabled`
    /// on this kernel, when it cannot (see [`Layout::sysctl`]).
    pub sysctl: Result<(), String>,
}

use crate::kernel::kallsyms::{self, hidden_because, Symbol};
use mptcpify_common::maps::{present, KernelLayout, NetnsLayout, TaskLayout};

/// Where the kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What start-up learns from the running kernel's BTF and symbols, in one
/// read and one parse of the BTF. `Err` when the BTF cannot be read; else
/// the ids of `wanted` (name, [`BtfKind`]) and the guard, `Err` when the BTF
/// lacks a field the programs read.
pub fn read(wanted: &[(&'static str, BtfKind)]) -> Result<(BtfIds, Result<Guard>)> {
    // Asked on a thread of its own (a BPF program load) while the BTF is
    // read and parsed here.
    let symbols = std::thread::spawn(|| {
        let [pernet_id, sock_create_keys] = kallsyms::lookup(["mptcp_pernet_id", SOCK_CREATE_KEYS]);
        Symbols {
            pernet_id,
            sock_create_keys,
        }
    });
    let data = std::fs::read(VMLINUX_BTF).with_context(|| format!("reading {VMLINUX_BTF}"))?;
    let btf = Btf::parse(&data).with_context(|| format!("parsing {VMLINUX_BTF}"))?;
    let ids = btf.ids(wanted);
    let guard = Layout::from_parsed(&btf).map(|layout| {
        // The events name the kernel's fallback reasons by its values.
        mptcpify_core::output::fallback::learn(layout.fallback_mibs.clone());
        let symbols = symbols.join().unwrap_or(Symbols {
            pernet_id: Symbol::Missing,
            sock_create_keys: Symbol::Missing,
        });
        guard_from(&layout, symbols, || {
            std::fs::read_to_string("/proc/sys/kernel/kptr_restrict")
                .ok()
                .and_then(|v| v.trim().parse().ok())
        })
    });
    Ok((ids, guard))
}

/// Learns the running kernel's fallback reasons (`mptcpify monitor`, which
/// writes events without attaching anything). Events name an unknown
/// reason by its number when the BTF cannot be read.
pub fn learn_fallback_reasons() {
    let Ok(data) = std::fs::read(VMLINUX_BTF) else {
        return;
    };
    if let Ok(layout) = Layout::from_btf(&data) {
        mptcpify_core::output::fallback::learn(layout.fallback_mibs);
    }
}

/// The ids of `wanted` in the running kernel's BTF (for `status`).
pub fn ids_of_running_kernel(wanted: &[(&'static str, BtfKind)]) -> Result<BtfIds> {
    let data = std::fs::read(VMLINUX_BTF).with_context(|| format!("reading {VMLINUX_BTF}"))?;
    Ok(Btf::parse(&data)?.ids(wanted))
}

/// What kallsyms says of the two variables the programs read.
#[derive(Debug, Clone, Copy)]
struct Symbols {
    pernet_id: Symbol,
    sock_create_keys: Symbol,
}

/// The guard for `layout` and what kallsyms said of the variables;
/// `kptr_restrict` is asked only when `mptcp_pernet_id` is hidden.
fn guard_from(
    layout: &Layout,
    symbols: Symbols,
    kptr_restrict: impl FnOnce() -> Option<u8>,
) -> Guard {
    let mut kernel = KernelLayout {
        netns: NetnsLayout {
            pernet_id_addr: 0,
            task_nsproxy: layout.task_nsproxy,
            nsproxy_net_ns: layout.nsproxy_net_ns,
            net_cookie: layout.net_cookie,
            net_gen: layout.net_gen,
            net_generic_ptr: layout.net_generic_ptr,
            pernet_mptcp_enabled: 0,
        },
        task: TaskLayout {
            group_leader: layout.task_group_leader,
            comm: layout.task_comm,
            pid: layout.task_pid,
            tgid: layout.task_tgid,
            cred: layout.task_cred,
            cred_security: layout.cred_security,
            start_boottime: layout.task_start_boottime,
        },
        cgroup: layout.cgroup,
        filter: layout.sock_filter.unwrap_or_default(),
        close: layout.close.clone().unwrap_or_default(),
        sysctl: layout.sysctl.clone().unwrap_or_default(),
        present: 0,
        rb_node_type: 0,
    };
    if layout.sock_filter.is_some() {
        kernel.present |= present::SOCK_FILTER;
        // Without the key's address the program reads the chain always.
        if let (Symbol::Address(keys), Some(offset)) =
            (symbols.sock_create_keys, layout.sock_create_key)
        {
            kernel.filter.enabled_key = keys + u64::from(offset);
        }
    }
    if layout.close.is_ok() {
        kernel.present |= present::CLOSE;
        let release = crate::sys::kernel_release();
        let mut version = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (version.next(), version.next()) {
            let bit = mptcpify_common::event::closed::fallback_done_bit(major, minor);
            if bit == mptcpify_common::event::closed::FALLBACK_DONE_BIT_BEFORE_6_9 {
                kernel.present |= present::FALLBACK_DONE_4;
            }
        }
    }
    let fallback = match (symbols.pernet_id, layout.pernet_mptcp_enabled) {
        (Symbol::Address(address), Some(offset)) => {
            kernel.netns.pernet_id_addr = address;
            kernel.netns.pernet_mptcp_enabled = fault_injected_offset().unwrap_or(offset);
            kernel.present |= present::PERNET;
            None
        }
        (Symbol::Hidden, _) => Some(hidden_because(kptr_restrict())),
        (Symbol::Missing, _) => Some(
            "mptcp_pernet_id is not in kallsyms: the kernel was built without \
             CONFIG_KALLSYMS_ALL"
                .into(),
        ),
        (_, None) => Some("the kernel's BTF has no struct mptcp_pernet".into()),
    };
    Guard {
        kernel,
        close: layout.close.clone().map(drop),
        fallback,
        sysctl: layout.sysctl.clone().map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the programs' read-only global says the kernel has, by what
    /// kallsyms said of mptcp_pernet_id.
    #[test]
    fn the_kernel_layout_says_which_parts_the_programs_may_read() {
        let layout = Layout::from_btf(
            &std::fs::read(VMLINUX_BTF).expect("this host's /sys/kernel/btf/vmlinux"),
        )
        .unwrap();
        let all = present::PERNET | present::SOCK_FILTER | present::CLOSE;
        let both = |pernet_id, sock_create_keys| Symbols {
            pernet_id,
            sock_create_keys,
        };
        let keys = 0xffff_ffff_8200_0000;
        let found = guard_from(
            &layout,
            both(
                Symbol::Address(0xffff_ffff_8000_1234),
                Symbol::Address(keys),
            ),
            || panic!("kptr_restrict is asked only for a hidden address"),
        );
        assert_eq!(found.kernel.present, all);
        assert_eq!(found.kernel.netns.pernet_id_addr, 0xffff_ffff_8000_1234);
        assert_eq!(
            Some(found.kernel.netns.pernet_mptcp_enabled),
            layout.pernet_mptcp_enabled
        );
        assert_eq!(found.kernel.task.comm, layout.task_comm);
        assert!(found.fallback.is_none() && found.close.is_ok());
        // The sock_create key: the array's address plus its element's
        // counter; 0 (always read the chain) without the address.
        let key_offset = layout.sock_create_key.expect("struct static_key_false");
        assert_eq!(
            found.kernel.filter.enabled_key,
            keys + u64::from(key_offset)
        );

        let missing = guard_from(&layout, both(Symbol::Missing, Symbol::Missing), || None);
        assert_eq!(missing.kernel.filter.enabled_key, 0);
        assert_eq!(missing.kernel.present, all & !present::PERNET);
        assert_eq!(missing.kernel.netns.pernet_id_addr, 0);
        assert!(missing.fallback.unwrap().contains("CONFIG_KALLSYMS_ALL"));

        let hidden = guard_from(&layout, both(Symbol::Hidden, Symbol::Hidden), || Some(2));
        assert_eq!(hidden.kernel.filter.enabled_key, 0);
        assert_eq!(hidden.kernel.present & present::PERNET, 0);
        assert!(hidden.fallback.unwrap().contains("kptr_restrict"));
        // The loader fills in the one field BTF does not give.
        assert_eq!(found.kernel.rb_node_type, 0);
    }

    /// The ids the programs are loaded against (aya no longer parses the
    /// kernel's BTF) are the ones aya's own parser finds, for every target,
    /// on this host's kernel.
    #[test]
    fn finds_the_same_btf_ids_as_aya() {
        let data = std::fs::read(VMLINUX_BTF).expect("this host's /sys/kernel/btf/vmlinux");
        let targets = crate::bpf::loader::btf_targets();
        let ours = Btf::parse(&data).unwrap().ids(&targets);
        let theirs = aya::Btf::parse(&data, aya::Endianness::default()).unwrap();
        for (name, kind) in targets {
            assert_eq!(
                ours.get(name, kind).ok(),
                theirs.id_by_type_name_kind(name, kind).ok(),
                "{name}"
            );
            assert!(ours.get(name, kind).is_ok(), "{name} is in this host's BTF");
        }
        assert!(ours
            .func("no_such_function_mptcpify")
            .unwrap_err()
            .contains("no function no_such_function_mptcpify"));
    }
}
