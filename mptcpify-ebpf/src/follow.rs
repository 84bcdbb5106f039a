//! Keeps cgroup rules on the paths the operator named: a service restart
//! removes its cgroup and creates a new one with a new id, and a unit started
//! after mptcpify has no cgroup yet. The kernel calls the `cgroup_mkdir`
//! tracepoint (kernel/cgroup/cgroup.c, `cgroup_mkdir`) before mkdir(2)
//! returns, so the rule holds the new id before any process can be moved in:
//! no window where a selected process's first sockets stay TCP.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use mptcpify_common::maps::{CGROUP2_HIERARCHY_ID, CGROUP_PATH_LEN};

use crate::layout::layout;
use crate::maps::{config, CGROUPS, CGROUP_PATHS, PATH_SCRATCH};
use crate::task::read;

#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn mptcpify_follow(ctx: BtfTracePointContext) -> i32 {
    // The tracepoint's arguments: (struct cgroup *, const char *path).
    let (cgroup, path): (u64, u64) = (ctx.arg(0), ctx.arg(1));
    follow(cgroup, path);
    0
}

#[inline(always)]
fn follow(cgroup: u64, path: u64) -> Option<()> {
    let config = config();
    if config.cgroup_rules == 0 {
        return None;
    }
    let root = read::<u64>(cgroup, layout!(cgroup.cgroup_root))?;
    if read::<i32>(root, layout!(cgroup.root_hierarchy_id))? != CGROUP2_HIERARCHY_ID {
        return None;
    }
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot, used by this program only.
    let key = unsafe { &mut *scratch };
    key.0 = [0; CGROUP_PATH_LEN];
    // SAFETY: the helper checks the source address; it NUL-terminates.
    unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes(path as *const u8, &mut key.0).ok()?;
    }
    // SAFETY: the value is a plain u32, copied out at once.
    let index = unsafe { CGROUP_PATHS.get(key) }.copied()?;
    let kn = read::<u64>(cgroup, layout!(cgroup.cgroup_kn))?;
    let id = read::<u64>(kn, layout!(cgroup.kn_id))?;
    let rule = CGROUPS.get_ptr_mut(index)?;
    // SAFETY: an aligned u64 in a map value; the upgrader reads it whole.
    unsafe { (*rule).id = id };
    Some(())
}
