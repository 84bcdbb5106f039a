//! The kernel's layout ([`KernelLayout`]), a read-only global the loader
//! sets before the load, and the loads that use it.
//!
//! The verifier reads a frozen read-only global as constants
//! (kernel/bpf/verifier.c, `bpf_map_direct_read`). So a pointer the kernel
//! typed with BTF (`bpf_get_current_task_btf()`, and any pointer field
//! loaded from it) plus an offset from here is a pointer to a known field:
//! the verifier checks the access against BTF once, at load, and the load
//! is one instruction (a `BPF_PROBE_MEM` load, which reads 0 instead of
//! faulting), not a `bpf_probe_read_kernel` call.

use aya_ebpf::helpers::generated::bpf_get_current_task_btf;
use mptcpify_common::maps::{KernelLayout, RDONLY_CAST_PLACEHOLDER};

/// Set by the loader (`EbpfLoader::set_global`); all zeros in the object.
/// Read only through [`layout!`], so that the compiler cannot fold the
/// zeros in.
#[unsafe(no_mangle)]
pub static KERNEL_LAYOUT: KernelLayout = unsafe { core::mem::zeroed() };

/// A field of [`KERNEL_LAYOUT`], e.g. `layout!(netns.net_gen)`.
macro_rules! layout {
    ($($field:tt)+) => {
        // SAFETY: an aligned field of a static, read by value.
        unsafe { core::ptr::read_volatile(&$crate::layout::KERNEL_LAYOUT.$($field)+) }
    };
}
pub(crate) use layout;

/// Whether the kernel has the [`mptcpify_common::maps::present`] parts
/// `bits`: a constant to the verifier, so the code behind a `false` is
/// never loaded.
#[inline(always)]
pub fn has(bits: u32) -> bool {
    layout!(present) & bits == bits
}

/// The calling task, `struct task_struct *`, typed by BTF.
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: a helper without arguments; never NULL.
    unsafe { bpf_get_current_task_btf() as u64 }
}

/// The `T` at `base + offset`, where `base` is a BTF-typed pointer and
/// `offset` a field of its type from [`KERNEL_LAYOUT`] (the verifier
/// refuses the program otherwise). Reads 0 if `base` is invalid.
#[inline(always)]
pub fn load<T: Copy>(base: u64, offset: u32) -> T {
    // SAFETY: the verifier turns this into a load that cannot fault.
    unsafe { core::ptr::read_volatile((base as *const u8).add(offset as usize) as *const T) }
}

/// The `T` (at most 8 bytes) at kernel address `address`, which BTF does
/// not type (a `void *`, a kernel variable): `bpf_rdonly_cast(address,
/// struct rb_node)` makes it a read-only BTF pointer, through which the
/// word is one `BPF_PROBE_MEM` load (0 where nothing can be read, as for a
/// NULL address). The loader turns the placeholder call into the kfunc.
#[inline(always)]
pub fn peek<T: Copy>(address: u64) -> T {
    let typed: u64;
    let rb_node = u64::from(layout!(rb_node_type));
    // SAFETY: the kfunc only retypes its argument (the verifier replaces
    // the call by a move); registers r1-r5 are clobbered as by any call.
    unsafe {
        core::arch::asm!(
            "call {kfunc}",
            kfunc = const RDONLY_CAST_PLACEHOLDER,
            inlateout("r1") address => _,
            inlateout("r2") rb_node => _,
            lateout("r0") typed,
            lateout("r3") _,
            lateout("r4") _,
            lateout("r5") _,
            options(nostack, preserves_flags),
        );
    }
    load(typed, 0)
}

/// A pointer field, `None` when NULL. The check is needed before any
/// arithmetic on an `__rcu` pointer (the verifier marks those maybe-NULL).
#[inline(always)]
pub fn load_ptr(base: u64, offset: u32) -> Option<u64> {
    let pointer: u64 = load(base, offset);
    (pointer != 0).then_some(pointer)
}
