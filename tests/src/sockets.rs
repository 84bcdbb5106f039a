//! Creating sockets and reading what the kernel made of them.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub use mptcpify_common::consts::*;

const SOL_MPTCP: i32 = 284;
const MPTCP_INFO: i32 = 1;

/// What `socket()` returned: the protocol of the created socket
/// (`SO_PROTOCOL`), or the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Protocol(i32),
    Errno(i32),
}

pub fn create(family: i32, sock_type: i32, protocol: i32) -> Outcome {
    // SAFETY: socket(2) with plain integers.
    let fd = unsafe { libc::socket(family, sock_type, protocol) };
    if fd < 0 {
        return Outcome::Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Outcome::Protocol(protocol_of(&fd))
}

/// `SO_PROTOCOL` of a socket: 262 for MPTCP, 6 for TCP.
pub fn protocol_of(fd: &impl AsRawFd) -> i32 {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: value/len point to valid memory of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PROTOCOL,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt(SO_PROTOCOL): {}",
        std::io::Error::last_os_error()
    );
    value
}

/// The protocol of a new `socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)`,
/// as Rust, Go and Python create them.
pub fn new_tcp_protocol() -> i32 {
    match create(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) {
        Outcome::Protocol(p) => p,
        Outcome::Errno(e) => panic!("socket(AF_INET, SOCK_STREAM) failed: errno {e}"),
    }
}

/// Bytes of `struct mptcp_info` the kernel returns for the socket, or the
/// errno (a TCP socket gives EOPNOTSUPP).
pub fn mptcp_info_len(fd: &impl AsRawFd) -> Result<usize, i32> {
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf/len describe a valid buffer.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_MPTCP,
            MPTCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(len as usize)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    }
}

/// Runs `f` on a new thread named `name` (its kernel comm) and returns its result.
pub fn as_comm<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("spawning a named thread")
        .join()
        .expect("named thread panicked")
}

/// `addr` as the kernel's `sockaddr_in`, for bind(2) and connect(2) with
/// raw descriptors.
pub fn sockaddr_in(addr: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}
