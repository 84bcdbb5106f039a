//! The tests' one raw `bpf(2)` call, with the kernel's `union bpf_attr` as
//! aya-obj generates it (include/uapi/linux/bpf.h): no offsets counted by
//! hand. The tests stand apart from mptcpify on purpose: the host probe,
//! the foreign tools' programs and the image reader must not share the
//! loader they check, and the binary has no library to share anyway.

use std::os::fd::{FromRawFd, OwnedFd};

pub use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};

/// An attribute with every field unset.
pub fn attr() -> bpf_attr {
    // SAFETY: all zeros is the kernel's "unset" for every field of the
    // union, which is plain integers.
    unsafe { std::mem::zeroed() }
}

/// `bpf(command, attr)`: the non-negative value it returned.
///
/// # Safety
/// The pointers in `attr` must point to live buffers of the sizes it gives.
pub unsafe fn call(command: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<i32> {
    // SAFETY: a whole bpf_attr of the size given; its pointers are the
    // caller's promise.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command as libc::c_int,
            attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as i32)
}

/// Loads `insns` (raw 8-byte instructions) as a GPL program of
/// `prog_type`, for `expected_attach_type` (and BTF id `attach_btf_id`,
/// for tracing programs).
pub fn load(
    prog_type: bpf_prog_type,
    expected_attach_type: bpf_attach_type,
    attach_btf_id: u32,
    insns: &[u64],
) -> std::io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = attr();
    attr.__bindgen_anon_3.prog_type = prog_type as u32;
    attr.__bindgen_anon_3.insn_cnt = insns.len() as u32;
    attr.__bindgen_anon_3.insns = insns.as_ptr() as u64;
    attr.__bindgen_anon_3.license = license.as_ptr() as u64;
    attr.__bindgen_anon_3.expected_attach_type = expected_attach_type as u32;
    attr.__bindgen_anon_3.attach_btf_id = attach_btf_id;
    // SAFETY: the instructions and the license outlive the call.
    let fd = unsafe { call(bpf_cmd::BPF_PROG_LOAD, &mut attr)? };
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
