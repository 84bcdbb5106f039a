//! The BPF side of mptcpify: one `fmod_ret` program on the kernel function
//! `update_socket_protocol(family, type, protocol)`, which `socket()` calls to
//! let BPF choose the protocol (Linux 6.6+, or backports).
//!
//! It only gathers inputs; [`mptcpify_common::decide`] decides.
//! A second program, `mptcpify_check`, runs only while the loader checks
//! itself at start-up (see [`mptcpify_check`]).
//!
//! - [`maps`]: the policy and the outputs (counters, events);
//!   [`events`]: events built and sent.
//! - [`layout`]: where kernel fields are (a read-only global), and the
//!   direct loads through BTF pointers that use it.
//! - [`task`]: what the policy may ask about the calling task.
//! - [`follow`]: `mptcpify_follow`, keeping cgroup rules on their paths.
//! - [`options`]: `mptcpify_setsockopt`/`_getsockopt`, reporting the socket
//!   options MPTCP refuses.
//! - [`outcomes`]: `mptcpify_tag`, `_join`, `_closed`: what each upgraded
//!   socket did (MPTCP and its extra subflows, fallback), told at close;
//!   `_established`, `_subflow_closed`: its life, while a monitor listens.
//! - [`audit`]: `mptcpify_audit_setsockopt`, reporting the TCP socket
//!   options selected processes use (`mptcpify audit`).
//! - [`sysctl`]: `mptcpify_sysctl`, which in the fallback mode tells the
//!   upgrader where a namespace's MPTCP switch is when it is written.
#![no_std]
#![no_main]
// Inline assembly for the kfunc call the loader rewrites (layout::peek).
#![feature(asm_experimental_arch)]
// The atomic intrinsic for the exchange the BPF target's atomic types lack
// (events::stage).
#![feature(core_intrinsics)]
#![allow(
    internal_features,
    reason = "core::intrinsics::atomic_xchg, see events::stage"
)]

mod audit;
mod events;
mod follow;
mod layout;
mod maps;
mod options;
mod outcomes;
mod sysctl;
mod task;

use aya_ebpf::programs::FExitContext;
use layout::{current_task, field};
use mptcpify_common::{
    consts::COMM_LEN,
    decide,
    event::{outcome, Explanation},
    maps::{flag, Counter, CHECK_BLOB_WORDS},
    Facts, Keep, SocketCall, Verdict,
};

/// Returns `IPPROTO_MPTCP` to upgrade, or 0 to let the kernel keep the
/// application's protocol (and let other `fmod_ret` programs on the hook run;
/// any non-zero value would skip them).
#[unsafe(no_mangle)]
#[unsafe(link_section = "fmod_ret/update_socket_protocol")]
pub extern "C" fn mptcpify(ctx: *mut core::ffi::c_void) -> i32 {
    let call = socket_call(ctx);
    if !call.is_tcp() {
        // What `decide` answers first, asked here too so that the compiler
        // lays out the TCP path as one straight line (it then drops
        // `decide`'s own test): gathered in a closure, the facts and flags
        // were spilled to the stack on every call, UDP ones included.
        return Verdict::Keep(Keep::NotTcp).hook_return();
    }
    // The config and the task are read once, and only for TCP calls.
    let config = maps::config();
    let current = current_task();
    let matched = task::matches(&config, current);
    let verdict = decide(&call, || Facts {
        support: config.support(),
        task: matched.task,
    });
    let stamped = config.flags & flag::STAMP != 0;
    if let Some(counter) = Counter::for_verdict(verdict) {
        maps::count(counter);
    }
    if task::explained(&config, current) {
        events::report(
            current,
            outcome::VERDICT,
            call.family,
            Explanation::pack(verdict, matched.selected_by, matched.excluded_by),
            stamped,
        );
    }
    if config.flags & flag::AUDIT != 0 {
        // Observe only: said, counted, never done.
        if verdict == Verdict::Upgrade {
            events::report(current, outcome::WOULD_UPGRADE, call.family, 0, stamped);
        }
        return 0;
    }
    if config.flags & flag::OUTCOMES != 0 && verdict == Verdict::Upgrade {
        // For the tag program, which then need not decide again.
        maps::note_upgrade(field!(current, u32, task.pid), matched.selected_by);
    }
    if config.flags & flag::EVENTS != 0 {
        match verdict {
            Verdict::Upgrade => events::report(current, outcome::UPGRADED, call.family, 0, stamped),
            Verdict::Keep(Keep::Sandboxed) => {
                events::report(current, outcome::KEPT_SANDBOXED, call.family, 0, stamped)
            }
            Verdict::Keep(Keep::Filtered) => {
                events::report(current, outcome::KEPT_FILTERED, call.family, 0, stamped)
            }
            Verdict::Keep(_) => {}
        }
    }
    verdict.hook_return()
}

#[inline(always)]
fn socket_call(ctx: *mut core::ffi::c_void) -> SocketCall {
    // The arguments of a traced function are read from the context the same
    // way for fentry, fexit and fmod_ret.
    let ctx = FExitContext::new(ctx);
    SocketCall {
        family: ctx.arg(0),
        sock_type: ctx.arg(1),
        protocol: ctx.arg(2),
    }
}

/// The start-up self-check: for the first TCP `socket()` of the task the
/// loader names in `CHECK` (by the token name the test child takes), records what the upgrader's own code reads (the
/// namespace guard and where it finds MPTCP's per-namespace data, whether a
/// sock_create program applies) and the raw LSM blob of the task's
/// credentials, where the loader finds Landlock's slot. Never changes a socket (returns 0), and
/// is detached before the upgrader is attached.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fmod_ret/update_socket_protocol")]
pub extern "C" fn mptcpify_check(ctx: *mut core::ffi::c_void) -> i32 {
    if !socket_call(ctx).is_tcp() {
        return 0;
    }
    let Some(slot) = maps::CHECK.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a valid map value pointer; only the loader's test children
    // reach the writes, one at a time.
    let slot = unsafe { &mut *slot };
    let current = current_task();
    if slot.seen != 0 || !same_comm(&task::comm(current), &slot.comm) {
        return 0;
    }
    let config = maps::config();
    slot.seen = 1;
    slot.mptcp_slot = task::mptcp_slot();
    slot.mptcp_enabled = task::mptcp_enabled(&config, current, slot.mptcp_slot) as u32;
    slot.filtered = task::sock_filtered(&config, current) as u32;
    if let Some(security) = task::cred_security(current) {
        // SAFETY: the helper checks the source address and fails cleanly.
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                slot.blob.as_mut_ptr().cast(),
                (CHECK_BLOB_WORDS * 8) as u32,
                security as *const core::ffi::c_void,
            )
        };
    }
    0
}

/// Loaded, never attached, by `mptcpify status`: whether the kernel loads
/// trampoline programs at all. It reads nothing, so it needs no layout.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fmod_ret/update_socket_protocol")]
pub extern "C" fn mptcpify_probe(_ctx: *mut core::ffi::c_void) -> i32 {
    0
}

/// Two task names, compared as two words (BPF has no memcmp).
#[inline(always)]
fn same_comm(a: &[u8; COMM_LEN], b: &[u8; COMM_LEN]) -> bool {
    // SAFETY: 16 bytes as two 8-byte words, by value.
    let (a, b): ([u64; 2], [u64; 2]) =
        unsafe { (core::mem::transmute(*a), core::mem::transmute(*b)) };
    a == b
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
