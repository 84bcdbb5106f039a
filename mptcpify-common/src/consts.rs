//! Linux ABI numbers (from `include/linux/socket.h`, `include/uapi/linux/in.h`
//! and `include/linux/net.h`). They are stable ABI, so they are written here
//! rather than pulled from a bindings crate the BPF side cannot use.

pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 10;

pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_RAW: i32 = 3;
pub const SOCK_SEQPACKET: i32 = 5;
/// `socket()` passes the type with `SOCK_CLOEXEC`/`SOCK_NONBLOCK` or'ed in;
/// the kernel masks it with this to get the socket type.
pub const SOCK_TYPE_MASK: i32 = 0xf;
pub const SOCK_NONBLOCK: i32 = 0o4000;
pub const SOCK_CLOEXEC: i32 = 0o2000000;

pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_MPTCP: i32 = 262;

/// `TASK_COMM_LEN`: the kernel keeps 15 bytes of a task's name plus a NUL.
pub const COMM_LEN: usize = 16;
