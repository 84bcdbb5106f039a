//! The record sent to userspace for each upgraded socket, and for each
//! socket kept TCP because its task is sandboxed.

use crate::consts::COMM_LEN;

/// Values of [`UpgradeEvent::outcome`].
pub mod outcome {
    pub const UPGRADED: u32 = 0;
    /// Would have been upgraded, kept TCP: the task is Landlock-sandboxed.
    pub const KEPT_SANDBOXED: u32 = 1;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpgradeEvent {
    /// [`outcome`].
    pub outcome: u32,
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
