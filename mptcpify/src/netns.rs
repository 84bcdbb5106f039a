//! Network namespaces named by path (`/proc/PID/ns/net`, `/run/netns/NAME`)
//! or `self`, resolved to the inode the program compares (`net->ns.inum`).

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use crate::errors::Failure;

/// `NS_GET_NSTYPE` from `linux/nsfs.h`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The inode of the network namespace at `spec` (`self` is mptcpify's own).
pub fn resolve(spec: &str) -> Result<u32, Failure> {
    let path = if spec == "self" {
        "/proc/self/ns/net"
    } else {
        spec
    };
    let bad = |why: String| Failure::BadSelector {
        what: format!("--netns {spec}: {why}"),
        fix: "Give a network namespace file: /proc/PID/ns/net of a process in it, \
              /run/netns/NAME (ip netns), or `self` for mptcpify's own (the sidecar case)."
            .into(),
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("{path}: {e}")))?;
    // SAFETY: an ioctl without arguments on an open fd.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(bad(format!("{path} is not a network namespace")));
    }
    let inode = file.metadata().map_err(|e| bad(e.to_string()))?.ino();
    u32::try_from(inode).map_err(|_| bad(format!("unexpected namespace inode {inode}")))
}

/// Whether `net.mptcp.enabled` is 1 in mptcpify's own namespace.
pub fn own_mptcp_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/net/mptcp/enabled").is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_and_proc_paths_agree() {
        let own = resolve("self").unwrap();
        assert_eq!(resolve("/proc/self/ns/net").unwrap(), own);
        assert_eq!(
            resolve(&format!("/proc/{}/ns/net", std::process::id())).unwrap(),
            own
        );
    }

    #[test]
    fn other_namespace_kinds_and_missing_paths_are_refused() {
        assert!(resolve("/proc/self/ns/pid").is_err());
        assert!(resolve("/run/netns/definitely-not-here").is_err());
        assert!(resolve("/etc/hostname").is_err());
    }
}
