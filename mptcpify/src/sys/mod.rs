//! The bottom layer: thin, typed access to what the kernel offers a process,
//! with no knowledge of mptcpify's policy or programs.
//!
//! - [`bpf`]: the one raw `bpf(2)` call, typed, for what aya keeps private.
//! - [`held_signals`]: SIGINT/SIGTERM/SIGHUP held back while attaching.
//! - [`mapped`]: shared, writable mappings of `BPF_F_MMAPABLE` arrays.
//! - [`mptcp_pm`]: the MPTCP path manager's endpoints and limits (generic
//!   netlink).
//! - [`netns`]: the never-reused cookie of the caller's network namespace.
//! - [`rtnl`]: interfaces and addresses, and their changes (rtnetlink).
//! - [`kernel_release`]: the running kernel's release.

pub mod bpf;
pub mod held_signals;
pub mod mapped;
pub mod mptcp_pm;
pub mod netns;
pub mod rtnl;

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(unknown)".into())
}
