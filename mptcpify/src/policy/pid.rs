//! `--pid PID`: a running process, as the kernel's tgid and its start time
//! (so that a process that later reuses the pid is not selected).

use std::os::unix::fs::MetadataExt;

use crate::errors::Failure;

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO`).
const INIT_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// A selected process: its id (the kernel's tgid) and start time (clock
/// ticks since boot, /proc/PID/stat's `starttime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub tgid: u32,
    pub start_ticks: u64,
}

/// Resolves `pid` (a process or one of its threads) to its process, which
/// the program compares with the kernel's tgid and the start time.
pub fn resolve(pid: u32) -> Result<Process, Failure> {
    // The program sees ids of the initial PID namespace.
    if std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() != INIT_PID_NS_INODE) {
        return Err(Failure::BadSelector {
            what: format!("--pid {pid}: mptcpify runs in a PID namespace, where PIDs are not the kernel's"),
            fix: "Run it in the host's PID namespace (--pid=host), or select with --cgroup or --netns.".into(),
        });
    }
    let status = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.status())
        .map_err(|_| Failure::BadSelector {
            what: format!("--pid {pid}: no such process"),
            fix: "Give the PID of a running process (pgrep NAME); to start a command with MPTCP, \
              use `mptcpify run -- CMD`."
                .into(),
        })?;
    // A thread's id names its process.
    let tgid = u32::try_from(status.tgid).unwrap_or(pid);
    let start_ticks = procfs::process::Process::new(tgid as i32)
        .and_then(|p| p.stat())
        .map_err(|e| Failure::BadSelector {
            what: format!("--pid {pid}: reading /proc/{tgid}/stat: {e}"),
            fix: "Give the PID of a running process (pgrep NAME).".into(),
        })?
        .starttime;
    Ok(Process { tgid, start_ticks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_resolves_and_a_dead_one_does_not() {
        let me = std::process::id();
        if std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == INIT_PID_NS_INODE) {
            assert_eq!(resolve(me).unwrap().tgid, me);
        }
        assert!(resolve(u32::MAX - 1).is_err());
    }
}
