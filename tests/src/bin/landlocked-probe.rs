//! An unmodified program that sandboxes itself with Landlock, forbidding
//! every TCP connect (it handles LANDLOCK_ACCESS_NET_CONNECT_TCP and allows
//! no port), then creates socket(AF_INET, SOCK_STREAM, 0) and connects to
//! 127.0.0.1:PORT. Prints `sandbox=full|partial|none`, `protocol=N` (262 =
//! MPTCP) and `connect=ok` or `connect=errno N`. With `mptcp`, it asks for
//! MPTCP itself (socket(..., IPPROTO_MPTCP)): whether the kernel's Landlock
//! covers MPTCP (landlock-lsm/linux#54), found out without mptcpify.
//!
//!   landlocked-probe PORT [mptcp]
use std::os::fd::{FromRawFd, OwnedFd};

use landlock::{AccessNet, Ruleset, RulesetAttr, RulesetStatus};
use mptcpify_tests::sockets::{protocol_of, AF_INET, IPPROTO_MPTCP, SOCK_STREAM};

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: landlocked-probe PORT");
    let status = Ruleset::default()
        .handle_access(AccessNet::ConnectTcp)
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self())
        .expect("creating the Landlock sandbox");
    let sandbox = match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    };
    println!("sandbox={sandbox}");
    // SAFETY: socket(2) with plain integers; the fd is owned right away.
    let protocol = match std::env::args().nth(2).as_deref() {
        Some("mptcp") => IPPROTO_MPTCP,
        _ => 0,
    };
    let fd = unsafe { libc::socket(AF_INET, SOCK_STREAM, protocol) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    println!("protocol={}", protocol_of(&fd));
    // SAFETY: a zeroed sockaddr_in we own, passed with its size.
    let rc = unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        println!("connect=ok");
    } else {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
        println!("connect=errno {errno}");
    }
}
