//! Other tools' cgroup BPF programs, as the kernel reports them: how many
//! `cgroup/sock_create` programs apply to a cgroup (its own and those
//! inherited from its ancestors). The start-up self-check compares this
//! with what the upgrader reads for a task in that cgroup.
//!
//! Over the raw bpf(2) (`crate::sys::bpf`): aya 0.14 keeps its BPF_PROG_QUERY wrapper
//! crate-private (`sys::bpf_prog_query`), and exposes queries only for
//! device and lirc programs.

use std::os::fd::AsFd;
use std::path::Path;

use crate::sys::bpf::{self, bpf_attach_type};

/// How many sock_create programs run for sockets created in `cgroup` (a
/// cgroup2 directory). Needs CAP_NET_ADMIN.
pub fn sock_create_programs(cgroup: &Path) -> std::io::Result<u32> {
    let dir = std::fs::File::open(cgroup)?;
    bpf::effective_programs(dir.as_fd(), bpf_attach_type::BPF_CGROUP_INET_SOCK_CREATE)
}
