//! The cookie of the caller's network namespace (`net->net_cookie`): an id
//! the kernel never reuses, unlike the namespace's inode number.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SO_NETNS_COOKIE` from `asm-generic/socket.h` (Linux 5.14+); rustix has
/// no wrapper for it.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's network namespace, from a socket.
pub fn own_cookie() -> std::io::Result<u64> {
    // SAFETY: a new socket we own at once; getsockopt into a local u64.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut cookie = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        if libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(cookie)
    }
}
