//! `mptcpify_audit_setsockopt`: fentry on `tcp_setsockopt`, attached only by
//! `mptcpify audit`. For a selected process (the same selection as the
//! upgrader's), reports each socket option it sets on a TCP socket once;
//! user space then asks the running kernel whether MPTCP would refuse it.
//! `tcp_setsockopt` handles SOL_TCP and passes SOL_IP/SOL_IPV6 on
//! (net/ipv4/tcp.c); SOL_SOCKET options never reach it.

use aya_ebpf::programs::FEntryContext;
use mptcpify_common::{
    event::outcome,
    maps::{flag, AuditKey},
};

use crate::layout::{current_task, field};
use crate::{events, maps, task};

/// `int tcp_setsockopt(struct sock *sk, int level, int optname,
/// sockptr_t optval, unsigned int optlen)`: level is slot 1, optname 2.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/tcp_setsockopt")]
pub extern "C" fn mptcpify_audit_setsockopt(ctx: *mut core::ffi::c_void) -> i32 {
    let config = maps::config();
    if config.flags & flag::AUDIT == 0 {
        return 0;
    }
    let ctx = FEntryContext::new(ctx);
    let level: i32 = ctx.arg(1);
    let option: i32 = ctx.arg(2);
    let current = current_task();
    let task = task::matches(&config, current).task;
    if !task.included || task.excluded {
        return 0;
    }
    let key = AuditKey {
        tgid: field!(current, u32, task.tgid),
        level: level as u32,
        option: option as u32,
    };
    // SAFETY: only the presence of the key is used.
    if unsafe { maps::AUDIT_SEEN.get(&key) }.is_some() {
        return 0;
    }
    let _ = maps::AUDIT_SEEN.insert(&key, &1, 0);
    events::report_option(current, outcome::TCP_OPTION, key.level, key.option, 0);
    0
}
