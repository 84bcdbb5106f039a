//! The record sent to userspace through the `EVENTS` ring buffer: an
//! upgraded socket, a socket kept TCP because its task is sandboxed or
//! under another tool's `cgroup/sock_create` program, or a
//! socket option that MPTCP refused on an MPTCP socket.

use crate::consts::COMM_LEN;

/// Values of [`Event::outcome`].
pub mod outcome {
    pub const UPGRADED: u32 = 0;
    /// Would have been upgraded, kept TCP: the task is Landlock-sandboxed.
    pub const KEPT_SANDBOXED: u32 = 1;
    /// `setsockopt` on an MPTCP socket failed with EOPNOTSUPP or ENOPROTOOPT:
    /// MPTCP does not implement that option (see [`super::Event::level`]).
    pub const REFUSED_SETSOCKOPT: u32 = 2;
    /// The same for `getsockopt` (e.g. `TCP_MAXSEG`).
    pub const REFUSED_GETSOCKOPT: u32 = 3;
    /// `mptcpify audit`: this TCP socket would have been upgraded (it was not).
    pub const WOULD_UPGRADE: u32 = 4;
    /// `mptcpify audit`: a selected process set this option on a TCP socket
    /// (first time per process and option; see [`super::Event::level`]).
    pub const TCP_OPTION: u32 = 5;
    /// Would have been upgraded, kept TCP: a `cgroup/sock_create` program
    /// (another tool's) applies to the task's sockets.
    pub const KEPT_FILTERED: u32 = 6;
}

/// The errors by which MPTCP says "not implemented for MPTCP"
/// (net/mptcp/sockopt.c: `-EOPNOTSUPP` for SOL_SOCKET/SOL_IP/SOL_IPV6
/// options it does not pass on, `-ENOPROTOOPT` for SOL_TCP ones).
pub mod refused {
    pub const EOPNOTSUPP: i32 = 95;
    pub const ENOPROTOOPT: i32 = 92;

    /// Whether a socket option call's return value is such a refusal.
    #[inline(always)]
    pub fn is_refusal(ret: i64) -> bool {
        ret == -(EOPNOTSUPP as i64) || ret == -(ENOPROTOOPT as i64)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// [`outcome`].
    pub outcome: u32,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// `AF_INET` or `AF_INET6` (upgrade outcomes; 0 for options).
    pub family: u32,
    /// Option outcomes: the option's level (`SOL_TCP`, `SOL_IP`, ...).
    pub level: u32,
    /// Option outcomes: the option (`TCP_ULP`, ...).
    pub option: u32,
    /// Option outcomes: the positive errno the call returned.
    pub errno: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub boot_ns: u64,
    pub comm: [u8; COMM_LEN],
}

impl Event {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Reads an event from the bytes of a ring buffer entry.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked; Event is plain data valid for any bits.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// The process name, as the kernel keeps it (up to 15 bytes).
    pub fn comm(&self) -> &[u8] {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        &self.comm[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mptcps_not_implemented_errors_are_refusals() {
        assert!(refused::is_refusal(-95));
        assert!(refused::is_refusal(-92));
        for other in [0, -1, -13, -22, 92, 95] {
            assert!(!refused::is_refusal(other), "{other}");
        }
    }
}
