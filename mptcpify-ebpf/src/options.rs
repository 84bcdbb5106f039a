//! `mptcpify_setsockopt` and `mptcpify_getsockopt`: fexit programs on MPTCP's
//! socket option handlers. When MPTCP refuses an option that TCP has (it
//! answers -EOPNOTSUPP or -ENOPROTOOPT, net/mptcp/sockopt.c), they count it
//! and report the caller, the option and the errno: what forcing MPTCP broke,
//! learnt from the running kernel, not from a list. Only MPTCP sockets reach
//! these functions, so TCP sockets pay nothing.

use aya_ebpf::programs::FExitContext;
use mptcpify_common::{
    event::{outcome, refused},
    maps::{refused_index, Counter, SelectorCounter},
};

use crate::{events, layout::current_task, maps};

/// `int mptcp_setsockopt(struct sock *sk, int level, int optname,
/// sockptr_t optval, unsigned int optlen)`. sockptr_t is a 16-byte struct
/// passed by value, two of the trampoline's 8-byte argument slots (3 and 4),
/// so optlen is slot 5 and the return value slot 6.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit/mptcp_setsockopt")]
pub extern "C" fn mptcpify_setsockopt(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FExitContext::new(ctx);
    let ret: i64 = ctx.arg::<i32>(6) as i64;
    if refused::is_refusal(ret) {
        note(
            outcome::REFUSED_SETSOCKOPT,
            ctx.arg(0),
            ctx.arg(1),
            ctx.arg(2),
            ret,
        );
    }
    0
}

/// `int mptcp_getsockopt(struct sock *sk, int level, int optname,
/// char __user *optval, int __user *option)`: the return value is slot 5.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fexit/mptcp_getsockopt")]
pub extern "C" fn mptcpify_getsockopt(ctx: *mut core::ffi::c_void) -> i32 {
    let ctx = FExitContext::new(ctx);
    let ret: i64 = ctx.arg::<i32>(5) as i64;
    if refused::is_refusal(ret) {
        note(
            outcome::REFUSED_GETSOCKOPT,
            ctx.arg(0),
            ctx.arg(1),
            ctx.arg(2),
            ret,
        );
    }
    0
}

#[inline(always)]
fn note(what: u32, sk: u64, level: i32, option: i32, ret: i64) {
    maps::count(Counter::RefusedOption);
    maps::count_refused(refused_index(level as u32, option as u32));
    // SAFETY: the value is plain data, copied out at once.
    if let Some(tag) = unsafe { maps::TAGGED.get(&sk) } {
        maps::count_selector(tag.selector, SelectorCounter::RefusedOptions, 1);
    }
    events::report_option(
        current_task(),
        what,
        level as u32,
        option as u32,
        (-ret) as u32,
    );
}
