//! Other tools' cgroup BPF programs, as the kernel reports them: how many
//! `cgroup/sock_create` programs apply to a cgroup (its own and those
//! inherited from its ancestors). The start-up self-check compares this
//! with what the upgrader reads for a task in that cgroup.
//!
//! By hand, over bpf(2): aya 0.14 keeps its BPF_PROG_QUERY wrapper
//! crate-private (`sys::bpf_prog_query`), and exposes queries only for
//! device and lirc programs.

use std::os::fd::AsRawFd;
use std::path::Path;

/// `BPF_PROG_QUERY` and `BPF_CGROUP_INET_SOCK_CREATE`
/// (include/uapi/linux/bpf.h).
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_CGROUP_INET_SOCK_CREATE: u32 = 2;
/// Count the programs that run for the cgroup, inherited ones included.
const BPF_F_QUERY_EFFECTIVE: u32 = 1;

/// How many sock_create programs run for sockets created in `cgroup` (a
/// cgroup2 directory). Needs CAP_NET_ADMIN.
pub fn sock_create_programs(cgroup: &Path) -> std::io::Result<u32> {
    let dir = std::fs::File::open(cgroup)?;
    // union bpf_attr, the query member: target_fd @0, attach_type @4,
    // query_flags @8, attach_flags @12, prog_ids @16, prog_cnt @24. With
    // no prog_ids buffer the kernel only writes the count.
    let mut attr = [0u8; 40];
    attr[0..4].copy_from_slice(&(dir.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&BPF_CGROUP_INET_SOCK_CREATE.to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_F_QUERY_EFFECTIVE.to_ne_bytes());
    // SAFETY: bpf(2) with a zeroed attr of the size given; no pointers in it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u32::from_ne_bytes(
        attr[24..28].try_into().expect("4 bytes"),
    ))
}
