//! Network namespaces named by path (`/proc/PID/ns/net`, `/run/netns/NAME`)
//! or `self`, resolved to the cookie the program compares (`net->net_cookie`,
//! never reused, unlike the namespace's inode number).

use std::os::fd::AsRawFd;

use crate::errors::Failure;

/// `NS_GET_NSTYPE` from `linux/nsfs.h`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The cookie of the network namespace at `spec` (`self` is mptcpify's own).
pub fn resolve(spec: &str) -> Result<u64, Failure> {
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
    if spec == "self" {
        return own_cookie().map_err(|e| bad(format!("reading its cookie: {e}")));
    }
    in_namespace(file, own_cookie).map_err(|e| bad(format!("reading its cookie: {e}")))
}

/// Runs `f` on a thread that joined the namespace of `file` (joining a
/// network namespace is allowed per thread, setns(2); needs CAP_SYS_ADMIN).
fn in_namespace<T: Send + 'static>(
    file: std::fs::File,
    f: fn() -> std::io::Result<T>,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace reader panicked"))?
}

use crate::sys::netns::own_cookie;

/// Whether `net.mptcp.enabled` is 1 in mptcpify's own namespace.
pub fn own_mptcp_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/net/mptcp/enabled").is_ok_and(|v| v.trim() == "1")
}

/// Whether `net.mptcp.enabled` is 1 in the namespace at `spec`: read by a
/// thread that joined it (/proc/sys/net shows the reading task's namespace;
/// joining a network namespace is allowed per thread, setns(2)).
pub fn mptcp_enabled_at(spec: &str) -> std::io::Result<bool> {
    let path = if spec == "self" {
        "/proc/self/ns/net"
    } else {
        spec
    };
    let file = std::fs::File::open(path)?;
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        Ok(std::fs::read_to_string("/proc/sys/net/mptcp/enabled")?.trim() == "1")
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace reader panicked"))?
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

    /// Needs root (unshare -n), as every machine of ours has.
    #[test]
    fn reads_another_namespaces_mptcp_setting() {
        for value in ["0", "1"] {
            let mut child = std::process::Command::new("unshare")
                .args([
                    "-n",
                    "sh",
                    "-c",
                    &format!("echo {value} > /proc/sys/net/mptcp/enabled && echo ok && sleep 10"),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("unshare -n (needs root)");
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "ok");
            // The shell is the child; its namespace is the one to read.
            let spec = format!("/proc/{}/ns/net", child.id());
            let enabled = mptcp_enabled_at(&spec);
            let _ = child.kill();
            let _ = child.wait();
            assert_eq!(enabled.unwrap(), value == "1");
        }
    }

    #[test]
    fn namespaces_have_distinct_cookies() {
        let mut child = std::process::Command::new("unshare")
            .args(["-n", "sleep", "10"])
            .spawn()
            .expect("unshare -n (needs root)");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let other = resolve(&format!("/proc/{}/ns/net", child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert_ne!(other.unwrap(), resolve("self").unwrap());
    }

    #[test]
    fn other_namespace_kinds_and_missing_paths_are_refused() {
        assert!(resolve("/proc/self/ns/pid").is_err());
        assert!(resolve("/run/netns/definitely-not-here").is_err());
        assert!(resolve("/etc/hostname").is_err());
    }
}
