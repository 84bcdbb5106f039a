//! The one raw `bpf(2)` call, for the commands aya 0.14 does not expose
//! (it keeps its own wrappers crate-private): loading and running a syscall
//! program (`kernel::kallsyms`), counting the programs on a cgroup hook
//! (`bpf::cgroup_bpf`), reading an entry of another instance's map whose
//! value size aya's typed maps would refuse (`bpf::instances`).
//!
//! Every attribute is the kernel's own `union bpf_attr`, as aya-obj
//! generates it from include/uapi/linux/bpf.h: no offsets are counted by
//! hand.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use aya_obj::generated::BPF_F_QUERY_EFFECTIVE;
pub use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type};

/// An attribute with every field unset.
pub fn attr() -> bpf_attr {
    // SAFETY: all zeros is the kernel's "unset" for every field of the
    // union, which is plain integers.
    unsafe { std::mem::zeroed() }
}

/// `bpf(command, attr)`: the kernel reads and writes `attr`; its pointers
/// must point to live buffers of the sizes it gives.
///
/// # Safety
/// The caller vouches for the pointers in `attr`.
pub unsafe fn call(command: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<i32> {
    // SAFETY: `attr` is a whole bpf_attr of the size given; the pointers in
    // it are the caller's promise.
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

/// Loads a program of `prog_type` made of `insns` (`BPF_PROG_LOAD`).
pub fn load(
    prog_type: bpf_prog_type,
    insns: &[bpf_insn],
    license: &std::ffi::CStr,
    flags: u32,
) -> std::io::Result<OwnedFd> {
    let mut attr = attr();
    attr.__bindgen_anon_3.prog_type = prog_type as u32;
    attr.__bindgen_anon_3.insn_cnt = insns.len() as u32;
    attr.__bindgen_anon_3.insns = insns.as_ptr() as u64;
    attr.__bindgen_anon_3.license = license.as_ptr() as u64;
    attr.__bindgen_anon_3.prog_flags = flags;
    // SAFETY: the instructions and the license outlive the call.
    let fd = unsafe { call(bpf_cmd::BPF_PROG_LOAD, &mut attr)? };
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs `program` once on the context `ctx` (`BPF_PROG_TEST_RUN`), which it
/// may write; its return value.
pub fn test_run(program: BorrowedFd<'_>, ctx: &mut [u8]) -> std::io::Result<u32> {
    let mut attr = attr();
    attr.test.prog_fd = program.as_raw_fd() as u32;
    attr.test.ctx_in = ctx.as_mut_ptr() as u64;
    attr.test.ctx_size_in = ctx.len() as u32;
    // SAFETY: `ctx` outlives the call, with the size given.
    unsafe { call(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)? };
    // SAFETY: the kernel filled the member it was asked to run with.
    Ok(unsafe { attr.test.retval })
}

/// How many programs run at hook `attach_type` of the cgroup (or other
/// target) `target`, inherited ones included (`BPF_PROG_QUERY` with
/// `BPF_F_QUERY_EFFECTIVE`; no id buffer: the kernel writes the count).
pub fn effective_programs(
    target: BorrowedFd<'_>,
    attach_type: bpf_attach_type,
) -> std::io::Result<u32> {
    let mut attr = attr();
    attr.query.__bindgen_anon_1.target_fd = target.as_raw_fd() as u32;
    attr.query.attach_type = attach_type as u32;
    attr.query.query_flags = BPF_F_QUERY_EFFECTIVE;
    // SAFETY: no pointers are set.
    unsafe { call(bpf_cmd::BPF_PROG_QUERY, &mut attr)? };
    // SAFETY: the kernel wrote the count.
    Ok(unsafe { attr.query.__bindgen_anon_2.prog_cnt })
}

/// Entry `key` of map `map` into `value`, which must hold the whole value
/// (`BPF_MAP_LOOKUP_ELEM`).
pub fn lookup(map: BorrowedFd<'_>, key: &u32, value: &mut [u8]) -> std::io::Result<()> {
    let mut attr = attr();
    attr.__bindgen_anon_2.map_fd = map.as_raw_fd() as u32;
    attr.__bindgen_anon_2.key = key as *const u32 as u64;
    attr.__bindgen_anon_2.__bindgen_anon_1.value = value.as_mut_ptr() as u64;
    // SAFETY: `key` and `value` outlive the call; the caller sized `value`
    // for the map.
    unsafe { call(bpf_cmd::BPF_MAP_LOOKUP_ELEM, &mut attr)? };
    Ok(())
}
