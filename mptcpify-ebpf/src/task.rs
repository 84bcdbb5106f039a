//! Facts about the task calling `socket()`, turned into a `TaskMatch` by
//! looking them up in the policy maps. Only selector kinds that the policy
//! uses are looked up.

use aya_ebpf::helpers::bpf_get_current_comm;
use mptcpify_common::{
    maps::{kind, role, CommKey},
    TaskMatch,
};

use crate::maps::{config, COMMS};

#[inline(always)]
pub fn matches() -> TaskMatch {
    let config = config();
    let wanted = config.include_kinds | config.exclude_kinds;
    let mut roles = 0u8;
    let mut included_kinds = 0u32;
    if wanted & kind::COMM != 0 {
        let comm = CommKey(bpf_get_current_comm().unwrap_or_default());
        // SAFETY: the value is a plain u8 copied out at once.
        if let Some(r) = unsafe { COMMS.get(&comm) } {
            roles |= *r;
            if *r & role::INCLUDE != 0 {
                included_kinds |= kind::COMM;
            }
        }
    }
    TaskMatch {
        included: config.system_wide() || included_kinds & config.include_kinds != 0,
        excluded: roles & role::EXCLUDE != 0,
        mptcp_enabled: true,
    }
}
