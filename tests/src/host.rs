//! What the kernel under the tests can do, found out independently of
//! mptcpify: whether its BTF has the hook, and whether it loads a trivial
//! `fmod_ret` program on it. The tests derive what to expect from this
//! instead of being told (a host that can attach must not be expected to
//! refuse, and one that refuses must not be waited on).

use crate::bpf_sys::{bpf_attach_type, bpf_prog_type};
use aya_obj::btf::{Btf, BtfKind};

pub const HOOK: &str = "update_socket_protocol";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// No `update_socket_protocol` in the kernel's BTF (e.g. Debian 6.1).
    NoHook,
    /// The hook exists, but BPF_PROG_LOAD of a trampoline program fails with
    /// EPERM even for root (lockdown, hardened kernels, our build hosts).
    RefusesTrampolines,
    /// mptcpify can attach here: the kernel suites can run on this machine.
    CanAttach,
}

impl KernelKind {
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::NoHook => "too-old",
            KernelKind::RefusesTrampolines => "trampolines",
            KernelKind::CanAttach => "attachable",
        }
    }
}

/// Probes the running kernel. Panics (the test fails) when the probe itself
/// cannot run: no BTF, or not root.
pub fn kernel_kind() -> KernelKind {
    let btf = Btf::from_sys_fs().expect("reading /sys/kernel/btf/vmlinux");
    let Ok(hook) = btf.id_by_type_name_kind(HOOK, BtfKind::Func) else {
        return KernelKind::NoHook;
    };
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "probing BPF needs root: run the tests as root"
    );
    match load_trivial_fmod_ret(hook) {
        Ok(fd) => {
            // SAFETY: closing the fd we were just given.
            unsafe { libc::close(fd) };
            KernelKind::CanAttach
        }
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => KernelKind::RefusesTrampolines,
        Err(e) => panic!("loading a trivial fmod_ret program on {HOOK}: {e}"),
    }
}

/// BPF_PROG_LOAD of `r0 = 0; exit` as BPF_MODIFY_RETURN on BTF id `hook`.
/// Written against the raw syscall: the probe must not share mptcpify's
/// loader, which is what the tests check.
fn load_trivial_fmod_ret(hook: u32) -> std::io::Result<i32> {
    // mov64 r0, 0 ; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    crate::bpf_sys::load(
        bpf_prog_type::BPF_PROG_TYPE_TRACING,
        bpf_attach_type::BPF_MODIFY_RETURN,
        hook,
        &insns,
    )
    .map(std::os::fd::IntoRawFd::into_raw_fd)
}
