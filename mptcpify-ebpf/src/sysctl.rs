//! `mptcpify_sysctl` (`cgroup/sysctl`, attached at the root cgroup in the
//! fallback mode only): where the upgrader cannot find a namespace's MPTCP
//! switch itself (no `mptcp_pernet_id`), each write of `net.mptcp.enabled`
//! tells it where that namespace's switch is ([`MPTCP_SWITCHES`]), and the
//! upgrader reads the switch there from then on (`task::enabled`).
//!
//! The kernel runs the program in `proc_sys_call_handler` (fs/proc/
//! proc_sysctl.c) before the handler writes the value, in the writer's
//! context: the switch's address is recorded before it can change, so no
//! `socket()` ever sees MPTCP off while the upgrader thinks it on. The
//! namespace is the one whose sysctl is written (its table's header),
//! which is not always the writer's (a file opened in another namespace).
//! The program never refuses a write: it returns 1.

use aya_ebpf::{bindings::bpf_sysctl, helpers::generated::bpf_sysctl_get_name};
use mptcpify_common::maps::MPTCP_ENABLED_SYSCTL;

use crate::layout::layout;
use crate::maps::{MPTCP_SWITCHES, MPTCP_SWITCHES_FULL};
use crate::task::read;

/// What a `cgroup/sysctl` program returns to let the access proceed.
const ALLOW: i32 = 1;

#[unsafe(no_mangle)]
#[unsafe(link_section = "cgroup/sysctl")]
pub extern "C" fn mptcpify_sysctl(ctx: *mut bpf_sysctl) -> i32 {
    // SAFETY: the context's `write` is readable by every sysctl program.
    if unsafe { (*ctx).write } == 0 || !is_mptcp_enabled(ctx) {
        return ALLOW;
    }
    let kernel_ctx = ctx as u64;
    let (Some(head), Some(table)) = (
        read::<u64>(kernel_ctx, layout!(sysctl.kern_head)),
        read::<u64>(kernel_ctx, layout!(sysctl.kern_table)),
    ) else {
        return ALLOW;
    };
    let set = read::<u64>(head, layout!(sysctl.header_set)).unwrap_or(0);
    let switch = read::<u64>(table, layout!(sysctl.table_data)).unwrap_or(0);
    if set == 0 || switch == 0 {
        return ALLOW;
    }
    let net = set.wrapping_sub(u64::from(layout!(sysctl.net_sysctls)));
    let Some(cookie) = read::<u64>(net, layout!(netns.net_cookie)) else {
        return ALLOW;
    };
    if MPTCP_SWITCHES.insert(&cookie, &switch, 0).is_err() {
        // Full: say so to the upgrader, which then keeps TCP wherever it
        // has no recorded switch.
        if let Some(full) = MPTCP_SWITCHES_FULL.get_ptr_mut(0) {
            // SAFETY: a valid map value; any non-zero value means full.
            unsafe { *full = 1 };
        }
    }
    ALLOW
}

/// Whether the sysctl accessed is `net.mptcp.enabled`: its full name
/// compared as three words (BPF has no memcmp).
#[inline(always)]
fn is_mptcp_enabled(ctx: *mut bpf_sysctl) -> bool {
    let mut name = [0u64; 3];
    // SAFETY: the helper writes at most 24 bytes, NUL-terminated.
    let len = unsafe { bpf_sysctl_get_name(ctx, name.as_mut_ptr().cast(), 24, 0) };
    let mut wanted = [0u8; 24];
    let mut i = 0;
    while i < MPTCP_ENABLED_SYSCTL.len() {
        wanted[i] = MPTCP_ENABLED_SYSCTL[i];
        i += 1;
    }
    // SAFETY: 24 bytes as three words, by value.
    let wanted: [u64; 3] = unsafe { core::mem::transmute(wanted) };
    len == MPTCP_ENABLED_SYSCTL.len() as i64 && name == wanted
}
