//! The kernel's layout ([`KernelLayout`]), a read-only global the loader
//! sets before the load, and the loads that use it: [`field!`] for fields
//! of BTF-typed pointers (their offsets written into the instructions),
//! [`peek`] for words BTF does not type.
//!
//! A pointer the kernel typed with BTF (`bpf_get_current_task_btf()`, and
//! any pointer field loaded from it) plus a constant offset is a pointer to
//! a known field: the verifier checks the access against BTF once, at
//! load, and the load is one instruction (a `BPF_PROBE_MEM` load, which
//! reads 0 instead of faulting), not a `bpf_probe_read_kernel` call. With
//! [`field!`] that constant is the instruction's own offset, written by
//! the loader. A `u32` the programs compute with (a type id, an offset
//! into an array, the presence bits) is a move of an immediate the loader
//! writes ([`layout!`]), so the verifier drops the code behind a `false`
//! [`has`]. Only the kernel addresses, too wide for an immediate, are read
//! from [`KERNEL_LAYOUT`] ([`address!`]): the verifier reads a frozen
//! read-only global as constants (kernel/bpf/verifier.c,
//! `bpf_map_direct_read`).

use aya_ebpf::helpers::generated::bpf_get_current_task_btf;
use mptcpify_common::maps::{KernelLayout, RDONLY_CAST_PLACEHOLDER};

/// Set by the loader (`EbpfLoader::set_global`); all zeros in the object.
/// Read only through [`address!`] (its kernel addresses), so that the
/// compiler cannot fold the zeros in; its `u32` fields the loader also
/// writes into the instructions ([`layout!`], [`field!`]).
#[unsafe(no_mangle)]
pub static KERNEL_LAYOUT: KernelLayout = unsafe { core::mem::zeroed() };

/// A `u32` field of the kernel's layout as a constant, e.g.
/// `layout!(netns.net_generic_ptr)`: one move of an immediate, which the
/// loader writes. The program holds a load from the stack at a marker
/// offset no stack has ([`mptcpify_common::maps::field`]); the loader
/// rewrites it into `dst = value` before the load, so the verifier sees a
/// constant, as it did when this read the frozen global (one memory load
/// fewer per use).
macro_rules! layout {
    ($($field:ident).+) => {{
        let value: u32;
        // SAFETY: replaced by a move before the program is loaded.
        unsafe {
            core::arch::asm!(
                "{value} = *(u32 *)(r10 - {below})",
                value = lateout(reg) value,
                below = const -(mptcpify_common::maps::field::marker(
                    core::mem::offset_of!(mptcpify_common::maps::KernelLayout, $($field).+),
                    0,
                ) as i32),
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        value
    }};
}
pub(crate) use layout;

/// A kernel address of the layout (a `u64`, which no immediate holds),
/// read from [`KERNEL_LAYOUT`], e.g. `address!(filter.enabled_key)`.
macro_rules! address {
    ($($field:ident).+) => {
        // SAFETY: an aligned field of a static, read by value.
        unsafe { core::ptr::read_volatile(&$crate::layout::KERNEL_LAYOUT.$($field).+) }
    };
}
pub(crate) use address;

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

/// The field `$ty` at `$base`, a BTF-typed pointer, where
/// [`KERNEL_LAYOUT`]`.$field` (+ an addend) says, e.g.
/// `field!(task, u32, task.pid)` or `field!(task, u64, task.comm + 8)`:
/// one load instruction, whose offset the loader sets to the running
/// kernel's ([`mptcpify_common::maps::field`]). The verifier checks the
/// access against BTF at load (it refuses the program otherwise) and makes
/// it a load that reads 0 instead of faulting where `$base` is invalid.
macro_rules! field {
    ($base:expr, $ty:ident, $($field:ident).+) => {
        $crate::layout::field!($base, $ty, $($field).+ + 0)
    };
    ($base:expr, $ty:ident, $($field:ident).+ + $addend:literal) => {{
        let value: $ty;
        // SAFETY: a load the verifier checks; it writes nothing.
        unsafe {
            core::arch::asm!(
                // The assembler takes a negative offset as `- N` only.
                concat!("{value} = *(", stringify!($ty), " *)({base} - {below})"),
                value = lateout(reg) value,
                base = in(reg) $base,
                below = const -(mptcpify_common::maps::field::marker(
                    core::mem::offset_of!(mptcpify_common::maps::KernelLayout, $($field).+),
                    $addend,
                ) as i32),
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        value
    }};
}
pub(crate) use field;

/// A pointer field ([`field!`]), `None` when NULL. The check is needed
/// before any arithmetic on an `__rcu` pointer (the verifier marks those
/// maybe-NULL).
macro_rules! field_ptr {
    ($base:expr, $($field:ident).+) => {{
        let pointer = $crate::layout::field!($base, u64, $($field).+);
        (pointer != 0).then_some(pointer)
    }};
}
pub(crate) use field_ptr;

/// The `T` at `base` (a BTF-typed pointer), or 0 where nothing can be read.
#[inline(always)]
fn load<T: Copy>(base: u64) -> T {
    // SAFETY: the verifier turns this into a load that cannot fault.
    unsafe { core::ptr::read_volatile(base as *const T) }
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
    load(typed)
}
