//! Signals held back (blocked) while mptcpify attaches, and looked at
//! between the steps: SIGINT, SIGTERM and SIGHUP for every command
//! ([`hold_while_attaching`]), and `mptcpify run`'s forwarded signals until
//! CMD starts.
//!
//! Why: the verifier gives up on a program when a signal is pending for
//! the loading task (kernel/bpf/verifier.c, `do_check`: `signal_pending`
//! → `-EAGAIN`), and aya then loads it again, with the verifier's log on,
//! which takes many times longer; a second signal made the load fail
//! (issue 28: a SIGINT at start-up kept mptcpify busy for 38 s under
//! emulation, or left its outcome programs unloaded). A blocked signal
//! does not make `signal_pending` true, so every load runs once; the
//! loader asks [`interrupted`] between its steps and stops there,
//! detaching what it attached. Dropping [`Held`] unblocks the signals it
//! blocked: one that came meanwhile is delivered then, to the handlers the
//! caller installed.
//!
//! By hand with libc: neither procfs nor rustix offers the thread's signal
//! mask or `sigpending(2)` as a safe call (rustix keeps them in its
//! `runtime` module, for libc-free runtimes).

/// The signals held while attaching.
const WHILE_ATTACHING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
/// The ones among them that ask mptcpify to stop.
const STOPPING: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Signals held back on this thread until dropped.
pub struct Held {
    /// Those this value blocked (not those blocked before it).
    blocked: libc::sigset_t,
}

/// Holds `signals` back on this thread (mptcpify's runtime has one) until
/// the returned value is dropped. Children spawned meanwhile start with an
/// empty mask (std's `Command` resets it).
pub fn hold(signals: &[libc::c_int]) -> Held {
    // SAFETY: sigset operations on local sets; pthread_sigmask with them.
    unsafe {
        let mut wanted: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wanted);
        for &signal in signals {
            libc::sigaddset(&mut wanted, signal);
        }
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &wanted, &mut previous);
        let mut blocked: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut blocked);
        for &signal in signals {
            if libc::sigismember(&previous, signal) == 0 {
                libc::sigaddset(&mut blocked, signal);
            }
        }
        Held { blocked }
    }
}

/// SIGINT, SIGTERM and SIGHUP, while the programs load and attach.
pub fn hold_while_attaching() -> Held {
    hold(&WHILE_ATTACHING)
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: unblocks the signals this value blocked.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.blocked, std::ptr::null_mut()) };
    }
}

/// The first of `signals` that is pending (held back), if any.
pub fn pending(signals: &[libc::c_int]) -> Option<libc::c_int> {
    // SAFETY: sigpending fills a local set; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if libc::sigpending(&mut set) != 0 {
            return None;
        }
        signals
            .iter()
            .copied()
            .find(|&signal| libc::sigismember(&set, signal) == 1)
    }
}

/// The signal that asks mptcpify to stop (SIGINT or SIGTERM) when one is
/// pending, held back: the caller then stops what it is doing.
pub fn interrupted() -> Option<libc::c_int> {
    pending(&STOPPING)
}

/// The name of a signal mptcpify stops on.
pub fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_signal_is_seen_pending_and_delivered_once_released() {
        static DELIVERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        extern "C" fn note(_: libc::c_int) {
            DELIVERED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // SAFETY: a handler that only stores to an atomic.
        unsafe { libc::signal(libc::SIGTERM, note as *const () as libc::sighandler_t) };
        let outer = hold(&[libc::SIGTERM]);
        let held = hold_while_attaching();
        assert_eq!(interrupted(), None);
        // SAFETY: a signal to this very thread.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGTERM) };
        assert_eq!(interrupted(), Some(libc::SIGTERM));
        // The inner hold leaves what the outer one held blocked.
        drop(held);
        assert!(!DELIVERED.load(std::sync::atomic::Ordering::SeqCst));
        drop(outer);
        assert!(DELIVERED.load(std::sync::atomic::Ordering::SeqCst));
        // SAFETY: back to the default action.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    }
}
