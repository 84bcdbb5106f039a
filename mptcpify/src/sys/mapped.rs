//! Shared, writable mappings of `BPF_F_MMAPABLE` arrays: the per-CPU
//! event slots ([`crate::bpf::event_source`]) and the exact name slots
//! ([`crate::bpf::comm_slots`]), which user space and the programs share without
//! a system call per access.

use aya::maps::MapData;

/// A shared, writable mapping of a `BPF_F_MMAPABLE` array's values
/// (kernel/bpf/arraymap.c, `array_map_mmap`). By hand: aya 0.14 maps only
/// ring buffers (privately), and neither aya nor libbpf-rs's crates offer
/// it for an aya map.
pub struct Mapping {
    pub base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, accessed with atomics and
// volatile copies only.
unsafe impl Send for Mapping {}

impl Mapping {
    pub fn new(map: &MapData, len: usize, name: &str) -> anyhow::Result<Self> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh mapping of the map's own pages, checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            anyhow::bail!(
                "mapping the map {name} ({len} bytes): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Self {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
