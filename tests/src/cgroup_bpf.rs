//! Another tool's cgroup BPF program, as a sysadmin would attach one: a
//! `cgroup/sock_create` filter that refuses TCP sockets, or a
//! `cgroup/connect4` program that refuses every IPv4 connect. The tests
//! check that mptcpify does not let a process around them.
//!
//! Written against the raw bpf(2) syscall (`crate::bpf_sys`), with hand-assembled
//! instructions: the programs stand for a foreign tool, so they must not
//! share mptcpify's loader (aya), and each is a handful of instructions.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::bpf_sys::{self, bpf_attach_type, bpf_cmd, bpf_prog_type};

/// `BPF_F_ALLOW_MULTI` (include/uapi/linux/bpf.h): attach next to whatever
/// else the cgroup has, as tools that share a host do.
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// One eBPF instruction (include/uapi/linux/bpf.h, `struct bpf_insn`).
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64
        | ((dst | src << 4) as u64) << 8
        | (off as u16 as u64) << 16
        | (imm as u32 as u64) << 32
}
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_IMM: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95;
/// `offsetof(struct bpf_sock, protocol)`: bound_dev_if, family, type come
/// first, 4 bytes each.
const BPF_SOCK_PROTOCOL: i16 = 12;

/// What the foreign program does.
#[derive(Clone, Copy, Debug)]
pub enum Foreign {
    /// `cgroup/sock_create`: refuse sockets whose protocol is `IPPROTO_TCP`
    /// (socket() fails with EPERM), allow the rest.
    DenyTcpSockets,
    /// `cgroup/connect4`: refuse every IPv4 connect (EPERM).
    DenyConnect4,
}

/// A foreign program attached to a cgroup; detached on drop.
pub struct Attached {
    cgroup: OwnedFd,
    program: OwnedFd,
    attach_type: bpf_attach_type,
}

impl Foreign {
    fn program(self) -> (bpf_prog_type, bpf_attach_type, Vec<u64>) {
        match self {
            Foreign::DenyTcpSockets => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK,
                bpf_attach_type::BPF_CGROUP_INET_SOCK_CREATE,
                vec![
                    insn(LDX_W, 2, 1, BPF_SOCK_PROTOCOL, 0), // r2 = ctx->protocol
                    insn(MOV64_IMM, 0, 0, 0, 1),             // r0 = 1 (allow)
                    insn(JNE_IMM, 2, 0, 1, libc::IPPROTO_TCP), // if r2 != 6: exit
                    insn(MOV64_IMM, 0, 0, 0, 0),             // r0 = 0 (refuse)
                    insn(EXIT, 0, 0, 0, 0),
                ],
            ),
            Foreign::DenyConnect4 => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
                bpf_attach_type::BPF_CGROUP_INET4_CONNECT,
                vec![insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)],
            ),
        }
    }

    /// Loads the program and attaches it to `cgroup` (a cgroup2 directory).
    pub fn attach(self, cgroup: &Path) -> Attached {
        let (prog_type, attach_type, insns) = self.program();
        let program = bpf_sys::load(prog_type, attach_type, 0, &insns)
            .unwrap_or_else(|e| panic!("loading the foreign {self:?} program: {e}"));
        let dir = std::fs::File::open(cgroup)
            .unwrap_or_else(|e| panic!("opening {}: {e}", cgroup.display()));
        // SAFETY: no pointers in this command's attributes.
        unsafe {
            bpf_sys::call(
                bpf_cmd::BPF_PROG_ATTACH,
                &mut attach(&dir, &program, attach_type, BPF_F_ALLOW_MULTI),
            )
        }
        .unwrap_or_else(|e| {
            panic!(
                "attaching the foreign {self:?} program to {}: {e}",
                cgroup.display()
            )
        });
        Attached {
            cgroup: dir.into(),
            program,
            attach_type,
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut attr = attach(&self.cgroup, &self.program, self.attach_type, 0);
        // SAFETY: no pointers in this command's attributes.
        let _ = unsafe { bpf_sys::call(bpf_cmd::BPF_PROG_DETACH, &mut attr) };
    }
}

/// The attributes of BPF_PROG_ATTACH (with `flags`) and BPF_PROG_DETACH
/// (none).
fn attach(
    cgroup: &impl AsRawFd,
    program: &impl AsRawFd,
    attach_type: bpf_attach_type,
    flags: u32,
) -> bpf_sys::bpf_attr {
    let mut attr = bpf_sys::attr();
    attr.__bindgen_anon_5.__bindgen_anon_1.target_fd = cgroup.as_raw_fd() as u32;
    attr.__bindgen_anon_5.attach_bpf_fd = program.as_raw_fd() as u32;
    attr.__bindgen_anon_5.attach_type = attach_type as u32;
    attr.__bindgen_anon_5.attach_flags = flags;
    attr
}
