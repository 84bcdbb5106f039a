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

pub mod bpf;
pub mod held_signals;
pub mod mapped;
pub mod mptcp_pm;
pub mod netns;
pub mod rtnl;
