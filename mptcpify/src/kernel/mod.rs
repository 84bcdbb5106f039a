//! What mptcpify knows of the running kernel, read before anything is
//! loaded.
//!
//! - [`layout`]: what the programs read in kernel memory, and where (BTF
//!   offsets, the namespace guard).
//! - [`kallsyms`]: the addresses of `mptcp_pernet_id` and
//!   `cgroup_bpf_enabled_key`.
//! - [`preflight`]: privilege, kernel and sysctl checks, each a
//!   [`crate::errors::Failure`] with its fix.

pub mod kallsyms;
pub mod layout;
pub mod preflight;
