//! The BPF side of mptcpify: one `fmod_ret` program on the kernel function
//! `update_socket_protocol(family, type, protocol)`, which `socket()` calls to
//! let BPF choose the protocol (Linux 6.6+, or backports).
//!
//! It only gathers inputs; [`mptcpify_common::decide`] decides.
//!
//! - [`maps`]: the policy and the outputs (counters, events).
//! - [`task`]: what the policy may ask about the calling task.
#![no_std]
#![no_main]

mod maps;
mod task;

use aya_ebpf::programs::FExitContext;
use mptcpify_common::{
    decide,
    maps::{flag, Counter},
    Facts, SocketCall, Verdict,
};

/// Returns `IPPROTO_MPTCP` to upgrade, or 0 to let the kernel keep the
/// application's protocol (and let other `fmod_ret` programs on the hook run;
/// any non-zero value would skip them).
#[unsafe(no_mangle)]
#[unsafe(link_section = "fmod_ret/update_socket_protocol")]
pub extern "C" fn mptcpify(ctx: *mut core::ffi::c_void) -> i32 {
    // The arguments of a traced function are read from the context the same
    // way for fentry, fexit and fmod_ret.
    let ctx = FExitContext::new(ctx);
    let call = SocketCall {
        family: ctx.arg(0),
        sock_type: ctx.arg(1),
        protocol: ctx.arg(2),
    };
    // The config is read once, and only for TCP calls.
    let mut events = false;
    let verdict = decide(&call, || {
        let config = maps::config();
        events = config.flags & flag::EVENTS != 0;
        Facts {
            support: config.support(),
            task: task::matches(&config),
        }
    });
    if let Some(counter) = Counter::for_verdict(verdict) {
        maps::count(counter);
    }
    if verdict == Verdict::Upgrade && events {
        maps::report_upgrade(call.family);
    }
    verdict.hook_return()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
