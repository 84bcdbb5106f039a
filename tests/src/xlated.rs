//! A loaded program's translated image (what the verifier made of it,
//! `bpf_prog_info.xlated_prog_insns`), counted by kind of instruction: a
//! deterministic measure of what a run can cost, next to the benchmark's
//! noisy nanoseconds.
//!
//! Over bpf(2), with the kernel's `union bpf_attr` as aya-obj generates it:
//! aya gives the image's size (`ProgramInfo::size_translated`) but not the
//! image. The tests are black-box (they run the binary, which has no
//! library), so this is their own call, not mptcpify's `sys::bpf`.

use std::os::fd::{AsFd, AsRawFd};

/// What the image holds, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub instructions: u32,
    /// Calls of helper functions (`BPF_CALL`, source 0).
    pub helper_calls: u32,
    /// Loads from anything but the stack: through BTF pointers (the
    /// fault-tolerant `BPF_PROBE_MEM` loads, which the kernel dumps as
    /// plain loads, kernel/bpf/syscall.c `bpf_insn_prepare_dump`), from
    /// map values and from the context.
    pub memory_loads: u32,
}

/// The translated image of the loaded program `info`, counted.
pub fn counts(info: &aya::programs::ProgramInfo) -> Counts {
    let len = info
        .size_translated()
        .expect("the kernel gives the translated image's size (root)");
    let fd = info.fd().expect("an fd of the loaded program");
    let mut image = vec![0u64; len as usize / 8];
    let mut prog_info: aya_obj::generated::bpf_prog_info =
        // SAFETY: a plain C struct, all zeros is valid.
        unsafe { std::mem::zeroed() };
    prog_info.xlated_prog_len = len;
    prog_info.xlated_prog_insns = image.as_mut_ptr() as u64;
    let mut attr = crate::bpf_sys::attr();
    attr.info.bpf_fd = fd.as_fd().as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of_val(&prog_info) as u32;
    attr.info.info = &raw mut prog_info as u64;
    // SAFETY: the attribute points to a bpf_prog_info whose own pointer
    // points to a buffer of the size given.
    unsafe { crate::bpf_sys::call(crate::bpf_sys::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }
        .unwrap_or_else(|e| panic!("BPF_OBJ_GET_INFO_BY_FD: {e}"));
    let mut counts = Counts {
        instructions: 0,
        helper_calls: 0,
        memory_loads: 0,
    };
    for word in &image {
        let bytes = word.to_le_bytes();
        let (code, source) = (bytes[0], bytes[1] >> 4);
        counts.instructions += 1;
        // BPF_JMP | BPF_CALL, source 0: a helper (1: a BPF function, 2: a kfunc).
        if code == 0x85 && source == 0 {
            counts.helper_calls += 1;
        }
        // BPF_LDX with BPF_MEM, BPF_MEMSX or BPF_PROBE_MEM, not from r10.
        if code & 0x07 == 0x01 && matches!(code & 0xe0, 0x60 | 0x80 | 0x20) && source != 10 {
            counts.memory_loads += 1;
        }
    }
    counts
}
