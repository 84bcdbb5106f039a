//! What each upgraded socket did, told when it is closed, so that
//! short-lived connections count too:
//!
//! - `mptcpify_tag` (fentry on `mptcp_init_sock`, which `socket()` calls
//!   for the new MPTCP socket): a socket the upgrader upgraded is tagged
//!   with its creator ([`maps::TAGGED`]);
//! - `mptcpify_join` (fexit on `mptcp_finish_join`): an extra subflow of a
//!   tagged socket completed MP_JOIN;
//! - `mptcpify_accepted` (fexit on `mptcp_stream_accept`, an MPTCP
//!   listener's `accept`): a connection a tagged listener accepted is
//!   counted and reported, MPTCP or plain TCP, and an MPTCP one is tagged
//!   in the accepting thread's name, so that its subflows and its close
//!   are told too;
//! - `mptcpify_closed` (fentry on `mptcp_close`, the socket's `close`):
//!   MPTCP, fell back to TCP (at once, or later), listener or never
//!   connected ([`mptcpify_common::event::closed::classify`]), counted and
//!   reported;
//! - `mptcpify_fallback` (fexit on `__mptcp_try_fallback`, 6.17+): why a
//!   followed socket fell back, as the kernel counts it, kept for its close
//!   and reported at once.
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
    consts::AF_INET6,
    event::{accepted, closed, origin, outcome, Ends},
    maps::{fallback_index, flag, present, Counter, SelectorCounter, Tag},
};

use crate::events;
use crate::layout::{current_task, field, has, layout};
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
    let Some(kinds) = maps::take_upgrade_note(tid) else {
        return 0;
    };
    let mut selector = task::selector(current, kinds);
    // A number has a name (the loader numbers below the map's size); the
    // lookup also ties SELECTOR_NAMES to a program, where `status` finds it.
    if maps::SELECTOR_NAMES.get(selector).is_none() {
        selector = 0;
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
        origin: origin::CREATED,
        fallback: 0,
        selector,
        _pad: 0,
    };
    let _ = maps::TAGGED.insert(&sk, &tag, 0);
    maps::count_selector(selector, SelectorCounter::Upgraded, 1);
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

/// `IPPROTO_MPTCP` (include/uapi/linux/in.h), as `sock.sk_protocol` holds it.
const IPPROTO_MPTCP: u16 = 262;

/// `static int mptcp_stream_accept(struct socket *sock, struct socket
/// *newsock, struct proto_accept_arg *arg)` (net/mptcp/protocol.c; `int
/// flags, bool kern` before 6.10): the MPTCP listener `sock` accepted
/// `newsock`, whose `sk` is the new MPTCP socket, or, for a client that did
/// not do MP_CAPABLE, the plain TCP socket the kernel hands over to TCP.
/// On failure `newsock->sk` stays NULL. Only listeners mptcpify tagged
/// count: an application's own MPTCP listener is not mptcpify's to report.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit/mptcp_stream_accept")]
pub extern "C" fn mptcpify_accepted(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FExitContext::new(ctx);
    let sock: u64 = ctx.arg(0);
    let newsock: u64 = ctx.arg(1);
    let Some(listener) = read::<u64>(sock, layout!(close.socket_sk)) else {
        return 0;
    };
    // SAFETY: the value is plain data, copied out at once.
    let Some(selector) = (unsafe { maps::TAGGED.get(&listener) }).map(|tag| tag.selector) else {
        return 0;
    };
    let sk = read::<u64>(newsock, layout!(close.socket_sk)).unwrap_or(0);
    if sk == 0 {
        return 0;
    }
    let current = current_task();
    let family = u32::from(read::<u16>(sk, layout!(close.sk_family)).unwrap_or(0));
    let mptcp = read::<u16>(sk, layout!(close.sk_protocol)) == Some(IPPROTO_MPTCP);
    if mptcp {
        maps::count(Counter::AcceptedMptcp);
        maps::count_selector(selector, SelectorCounter::AcceptedMptcp, 1);
        // Subflows may have joined while the connection waited in the
        // accept queue: start from the kernel's count.
        let joined = u32::from(read::<u8>(sk, layout!(close.pm_subflows)).unwrap_or(0));
        let tag = Tag {
            pid: field!(current, u32, task.tgid),
            tid: field!(current, u32, task.pid),
            family,
            joins: joined,
            comm: task::comm(current),
            origin: origin::ACCEPTED,
            fallback: 0,
            selector,
            _pad: 0,
        };
        let _ = maps::TAGGED.insert(&sk, &tag, 0);
    } else {
        maps::count(Counter::AcceptedTcp);
        maps::count_selector(selector, SelectorCounter::AcceptedTcp, 1);
    }
    if maps::config().flags & flag::EVENTS != 0 {
        let why = if mptcp { accepted::MPTCP } else { accepted::TCP };
        events::report_accepted(current, why, family, &ends(sk, family));
    }
    0
}

/// The two ends of the connection `sk` (`sock_common`'s fields; an MPTCP
/// socket has its first subflow's, `mptcp_copy_inaddrs`).
#[inline(always)]
fn ends(sk: u64, family: u32) -> Ends {
    let mut ends = Ends {
        local_port: read::<u16>(sk, layout!(close.skc_num)).unwrap_or(0),
        remote_port: u16::from_be(read::<u16>(sk, layout!(close.skc_dport)).unwrap_or(0)),
        ..Ends::default()
    };
    // Words, as `read` loads them (one load of at most 8 bytes each), in
    // the kernel's byte order.
    let word = |offset: u32| read::<u64>(sk, offset).unwrap_or(0).to_ne_bytes();
    if family == AF_INET6 as u32 {
        let (local, remote) = (
            layout!(close.skc_v6_rcv_saddr),
            layout!(close.skc_v6_daddr),
        );
        ends.local[..8].copy_from_slice(&word(local));
        ends.local[8..].copy_from_slice(&word(local + 8));
        ends.remote[..8].copy_from_slice(&word(remote));
        ends.remote[8..].copy_from_slice(&word(remote + 8));
    } else {
        let v4 = |offset: u32| read::<u32>(sk, offset).unwrap_or(0).to_ne_bytes();
        ends.local[..4].copy_from_slice(&v4(layout!(close.skc_rcv_saddr)));
        ends.remote[..4].copy_from_slice(&v4(layout!(close.skc_daddr)));
    }
    ends
}

/// `bool __mptcp_try_fallback(struct mptcp_sock *msk, int fb_mib)`
/// (net/mptcp/protocol.c, 6.17+; before, the fallback is an inline
/// function and its reason is not passed): `msk` fell back to TCP when it
/// returns true, counted by the kernel's MIB `fb_mib`. The first
/// fallback of a followed socket is kept (a later call for one already
/// fallen back returns true again) and reported.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit/__mptcp_try_fallback")]
pub extern "C" fn mptcpify_fallback(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FExitContext::new(ctx);
    let done: u64 = ctx.arg(2);
    if done & 0xff == 0 {
        return 0;
    }
    let msk: u64 = ctx.arg(0);
    let Some(tag) = maps::TAGGED.get_ptr_mut(&msk) else {
        return 0;
    };
    let fb_mib: u64 = ctx.arg(1);
    // SAFETY: a valid map value; the fallback of one socket is decided
    // under its fallback lock, once.
    let tag = unsafe {
        if (*tag).fallback != 0 {
            return 0;
        }
        (*tag).fallback = (fb_mib as u32).wrapping_add(1);
        *tag
    };
    if maps::config().flags & flag::EVENTS != 0 {
        events::report_tagged(&tag, outcome::FALLBACK, fb_mib as u32);
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

/// The per-selector and per-reason counts of a followed socket closed as
/// `kind` ([`closed`]): the sockets that used MPTCP, fell back (with the
/// kernel's reason where it gave one), and their extra subflows.
#[inline(always)]
fn count_closed(tag: &Tag, kind: u32) {
    let selector = tag.selector;
    let counter = match kind {
        closed::MPTCP if tag.origin != origin::ACCEPTED => Some(SelectorCounter::ClosedMptcp),
        closed::FALLBACK => Some(SelectorCounter::FellBack),
        closed::FELL_BACK_LATER => Some(SelectorCounter::FellBackLater),
        _ => None,
    };
    if let Some(counter) = counter {
        maps::count_selector(selector, counter, 1);
    }
    if kind == closed::FALLBACK || kind == closed::FELL_BACK_LATER {
        maps::count_fallback(fallback_index(kind == closed::FELL_BACK_LATER, tag.fallback));
    }
    if tag.joins != 0 {
        maps::count_selector(selector, SelectorCounter::ExtraSubflows, u64::from(tag.joins));
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
    let flags = read::<u64>(sk, layout!(close.msk_flags)).unwrap_or(0);
    let done_bit = if has(present::FALLBACK_DONE_4) {
        closed::FALLBACK_DONE_BIT_BEFORE_6_9
    } else {
        closed::FALLBACK_DONE_BIT
    };
    let kind = closed::classify(state, remote_key, bytes, flags, done_bit);
    count_closed(&tag, kind);
    if tag.origin == origin::ACCEPTED {
        // Tagged only when MP_CAPABLE was done: MPTCP, or fell back later.
        if kind == closed::FELL_BACK_LATER {
            maps::count(Counter::ClosedAcceptedFellBackLater);
        } else {
            maps::count(Counter::ClosedAccepted);
        }
        maps::count_by(Counter::ExtraSubflowsAccepted, u64::from(tag.joins));
    } else {
        let counter = match kind {
            closed::MPTCP => Counter::ClosedMptcp,
            closed::FELL_BACK_LATER => Counter::ClosedFellBackLater,
            closed::FALLBACK => Counter::ClosedFallback,
            closed::LISTENER => Counter::ClosedListener,
            _ => Counter::ClosedUnconnected,
        };
        maps::count(counter);
        if kind == closed::MPTCP || kind == closed::FELL_BACK_LATER {
            maps::count_by(Counter::ExtraSubflows, u64::from(tag.joins));
        }
    }
    if maps::config().flags & flag::EVENTS != 0 {
        events::report_tagged(
            &tag,
            outcome::CLOSED,
            closed::pack(kind, tag.origin, tag.joins),
        );
    }
    0
}
