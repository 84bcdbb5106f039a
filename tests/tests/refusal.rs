//! A kernel that cannot run mptcpify must be told apart, with its own exit
//! code and fix. What to expect is derived from the kernel itself
//! (`host::kernel_kind`, a probe independent of mptcpify): no hook (e.g.
//! Debian 6.1), trampolines refused (lockdown, our build hosts), or neither,
//! where mptcpify must attach and detach cleanly instead.

use std::time::Duration;

use mptcpify_tests::host::{kernel_kind, KernelKind};
use mptcpify_tests::process::{run, Running};

#[test]
fn outcome_matches_what_the_kernel_can_do() {
    let kind = kernel_kind();
    eprintln!("this kernel: {kind:?}");
    let (code, needles): (i32, &[&str]) = match kind {
        KernelKind::NoHook => (
            5,
            &[
                "has no update_socket_protocol hook",
                "Linux 6.6",
                "mptcpize run CMD",
            ],
        ),
        KernelKind::RefusesTrampolines => (
            6,
            &["refused to load the fmod_ret program", "EPERM", "lockdown"],
        ),
        KernelKind::CanAttach => {
            let running = Running::attach(&["-q", "--comm", "no-such-comm-x"]);
            running.signal(libc::SIGINT);
            let (status, output) = running.wait_timeout(Duration::from_secs(30));
            assert_eq!(status.code(), Some(0), "{output:?}");
            assert!(output.iter().any(|l| l.contains("detached")), "{output:?}");
            return;
        }
    };
    let (status, out) = run(&["--comm", "iperf3"]);
    assert_eq!(status.code(), Some(code), "{out}");
    for needle in needles {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}
