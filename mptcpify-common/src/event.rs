//! The record sent to userspace for each upgraded socket.

use crate::consts::COMM_LEN;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpgradeEvent {
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// `AF_INET` or `AF_INET6`.
    pub family: u32,
    pub comm: [u8; COMM_LEN],
}

impl UpgradeEvent {
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Reads an event from the bytes of a ring buffer entry.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked; UpgradeEvent is plain data valid for any bits.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}
