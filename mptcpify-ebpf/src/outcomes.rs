//! What each upgraded socket did, told when it is closed, so that
//! short-lived connections count too:
//!
//! - `mptcpify_tag` (fentry on `mptcp_init_sock`, which `socket()` calls
//!   for the new MPTCP socket): a socket the upgrader upgraded is tagged
//!   with its creator ([`maps::TAGGED`]);
//! - `mptcpify_join` (fexit on `mptcp_finish_join`): an extra subflow of a
//!   tagged socket completed MP_JOIN;
//! - `mptcpify_closed` (fentry on `mptcp_close`, the socket's `close`):
//!   MPTCP, fell back to TCP, listener or never connected
//!   ([`mptcpify_common::event::closed::classify`]), counted and reported.
//!
//! While a monitor listens ([`flag::LIVE`]), the life in between too:
//! - `mptcpify_established` (fentry on `mptcp_pm_new_connection`, which
//!   `mptcp_finish_connect` calls once the peer answered MP_CAPABLE,
//!   net/mptcp/protocol.c): the connection is MPTCP;
//! - `mptcpify_join`: the subflow that joined;
//! - `mptcpify_subflow_closed` (fentry on `mptcp_close_ssk`, which sends
//!   the kernel's own `MPTCP_EVENT_SUB_CLOSED`, net/mptcp/protocol.c): a
//!   subflow closed while the connection lives on.
//! A fallback has no such function (`mptcp_do_fallback` is inline): it is
//! told at close.
//!
//! Only MPTCP sockets reach these functions: TCP sockets pay nothing.

use aya_ebpf::programs::{FEntryContext, FExitContext};
use mptcpify_common::{
    event::{closed, outcome},
    maps::{flag, Counter, Tag},
};

use crate::events;
use crate::layout::{current_task, field, layout};
use crate::maps;
use crate::task::{self, read};

/// `static int mptcp_init_sock(struct sock *sk)`: called by `socket()` for
/// the new MPTCP socket. Tags it when the upgrader noted that it upgraded
/// this thread's call ([`mptcpify_common::maps::UPGRADING`]).
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/mptcp_init_sock")]
pub extern "C" fn mptcpify_tag(ctx: *mut core::ffi::c_void) -> i32 {
    let current = current_task();
    let tid = field!(current, u32, task.pid);
    if !maps::take_upgrade_note(tid) {
        return 0;
    }
    let ctx = FEntryContext::new(ctx);
    // A BTF pointer (`struct sock *`): its family is a direct load.
    let sk: u64 = ctx.arg(0);
    let tag = Tag {
        pid: field!(current, u32, task.tgid),
        tid,
        family: u32::from(field!(sk, u16, close.sk_family)),
        joins: 0,
        comm: task::comm(current),
    };
    let _ = maps::TAGGED.insert(&sk, &tag, 0);
    0
}

/// `bool mptcp_finish_join(struct sock *ssk)`: the return value is slot 1.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit/mptcp_finish_join")]
pub extern "C" fn mptcpify_join(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FExitContext::new(ctx);
    let joined: u64 = ctx.arg(1);
    if joined & 0xff == 0 {
        return 0;
    }
    let ssk: u64 = ctx.arg(0);
    let Some(subflow) = read::<u64>(ssk, layout!(close.icsk_ulp_data)) else {
        return 0;
    };
    let Some(msk) = read::<u64>(subflow, layout!(close.subflow_conn)) else {
        return 0;
    };
    let Some(tag) = maps::TAGGED.get_ptr_mut(&msk) else {
        return 0;
    };
    // SAFETY: a valid map value; joins of one socket on two CPUs at once
    // are rare, and a lost increment only under-counts.
    let tag = unsafe {
        (*tag).joins += 1;
        *tag
    };
    if maps::config().flags & flag::LIVE != 0 {
        events::report_tagged(&tag, outcome::SUBFLOW_UP, tag.joins);
    }
    0
}

/// `void mptcp_pm_new_connection(struct mptcp_sock *msk, const struct sock
/// *ssk, int server_side)` (net/mptcp/pm.c): the MPTCP connection `msk` is
/// established. Only while a monitor listens.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/mptcp_pm_new_connection")]
pub extern "C" fn mptcpify_established(ctx: *mut core::ffi::c_void) -> i32 {
    live(ctx, outcome::ESTABLISHED);
    0
}

/// `void mptcp_close_ssk(struct sock *sk, struct sock *ssk, struct
/// mptcp_subflow_context *subflow)` (net/mptcp/protocol.c): a subflow of
/// `sk` is closed. Only while a monitor listens.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/mptcp_close_ssk")]
pub extern "C" fn mptcpify_subflow_closed(ctx: *mut core::ffi::c_void) -> i32 {
    live(ctx, outcome::SUBFLOW_DOWN);
    0
}

/// Reports `outcome` for the MPTCP socket in argument 0 when it is tagged
/// and a monitor listens.
#[inline(always)]
fn live(ctx: *mut core::ffi::c_void, outcome: u32) {
    if maps::config().flags & flag::LIVE == 0 {
        return;
    }
    let sk: u64 = FEntryContext::new(ctx).arg(0);
    // SAFETY: the value is plain data, copied out at once.
    if let Some(tag) = (unsafe { maps::TAGGED.get(&sk) }).copied() {
        events::report_tagged(&tag, outcome, tag.joins);
    }
}

/// `static void mptcp_close(struct sock *sk, long timeout)`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/mptcp_close")]
pub extern "C" fn mptcpify_closed(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FEntryContext::new(ctx);
    let sk: u64 = ctx.arg(0);
    // SAFETY: the value is plain data, copied out at once.
    let Some(tag) = (unsafe { maps::TAGGED.get(&sk) }).copied() else {
        return 0;
    };
    let _ = maps::TAGGED.remove(&sk);
    let state = read::<u8>(sk, layout!(close.sk_state)).unwrap_or(0);
    let remote_key = read::<u64>(sk, layout!(close.remote_key)).unwrap_or(0);
    let bytes = read::<u64>(sk, layout!(close.bytes_sent))
        .unwrap_or(0)
        .wrapping_add(read::<u64>(sk, layout!(close.bytes_received)).unwrap_or(0));
    let kind = closed::classify(state, remote_key, bytes);
    let counter = match kind {
        closed::MPTCP => Counter::ClosedMptcp,
        closed::FALLBACK => Counter::ClosedFallback,
        closed::LISTENER => Counter::ClosedListener,
        _ => Counter::ClosedUnconnected,
    };
    maps::count(counter);
    if kind == closed::MPTCP {
        maps::count_by(Counter::ExtraSubflows, u64::from(tag.joins));
    }
    if maps::config().flags & flag::EVENTS != 0 {
        events::report_tagged(&tag, outcome::CLOSED, kind | tag.joins << 8);
    }
    0
}
