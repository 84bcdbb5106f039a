//! Another tool's cgroup BPF program, as a sysadmin would attach one: a
//! `cgroup/sock_create` filter that refuses TCP sockets, or a
//! `cgroup/connect4` program that refuses every IPv4 connect. The tests
//! check that mptcpify does not let a process around them.
//!
//! Written against the raw bpf(2) syscall, with hand-assembled
//! instructions: the programs stand for a foreign tool, so they must not
//! share mptcpify's loader (aya), and each is a handful of instructions.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_prog_type};

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
    attach_type: u32,
}

impl Foreign {
    fn program(self) -> (u32, u32, Vec<u64>) {
        match self {
            Foreign::DenyTcpSockets => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK as u32,
                bpf_attach_type::BPF_CGROUP_INET_SOCK_CREATE as u32,
                vec![
                    insn(LDX_W, 2, 1, BPF_SOCK_PROTOCOL, 0), // r2 = ctx->protocol
                    insn(MOV64_IMM, 0, 0, 0, 1),             // r0 = 1 (allow)
                    insn(JNE_IMM, 2, 0, 1, libc::IPPROTO_TCP), // if r2 != 6: exit
                    insn(MOV64_IMM, 0, 0, 0, 0),             // r0 = 0 (refuse)
                    insn(EXIT, 0, 0, 0, 0),
                ],
            ),
            Foreign::DenyConnect4 => (
                bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK_ADDR as u32,
                bpf_attach_type::BPF_CGROUP_INET4_CONNECT as u32,
                vec![insn(MOV64_IMM, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)],
            ),
        }
    }

    /// Loads the program and attaches it to `cgroup` (a cgroup2 directory).
    pub fn attach(self, cgroup: &Path) -> Attached {
        let (prog_type, attach_type, insns) = self.program();
        let license = b"GPL\0";
        // union bpf_attr, BPF_PROG_LOAD: prog_type @0, insn_cnt @4, insns @8,
        // license @16, expected_attach_type @68.
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, prog_type);
        put32(&mut attr, 4, insns.len() as u32);
        put64(&mut attr, 8, insns.as_ptr() as u64);
        put64(&mut attr, 16, license.as_ptr() as u64);
        put32(&mut attr, 68, attach_type);
        let fd = bpf(bpf_cmd::BPF_PROG_LOAD, &attr)
            .unwrap_or_else(|e| panic!("loading the foreign {self:?} program: {e}"));
        // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
        let program = unsafe { OwnedFd::from_raw_fd(fd) };
        let dir = std::fs::File::open(cgroup)
            .unwrap_or_else(|e| panic!("opening {}: {e}", cgroup.display()));
        // BPF_PROG_ATTACH: target_fd @0, attach_bpf_fd @4, attach_type @8,
        // attach_flags @12.
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, dir.as_raw_fd() as u32);
        put32(&mut attr, 4, program.as_raw_fd() as u32);
        put32(&mut attr, 8, attach_type);
        put32(&mut attr, 12, BPF_F_ALLOW_MULTI);
        bpf(bpf_cmd::BPF_PROG_ATTACH, &attr).unwrap_or_else(|e| {
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
        // BPF_PROG_DETACH: target_fd @0, attach_bpf_fd @4, attach_type @8.
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, self.cgroup.as_raw_fd() as u32);
        put32(&mut attr, 4, self.program.as_raw_fd() as u32);
        put32(&mut attr, 8, self.attach_type);
        let _ = bpf(bpf_cmd::BPF_PROG_DETACH, &attr);
    }
}

fn put32(attr: &mut [u8; 128], at: usize, value: u32) {
    attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

fn put64(attr: &mut [u8; 128], at: usize, value: u64) {
    attr[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

/// bpf(2): the non-negative value it returned (an fd for BPF_PROG_LOAD).
fn bpf(cmd: bpf_cmd, attr: &[u8; 128]) -> std::io::Result<i32> {
    // SAFETY: a zero-padded attr whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc as i32)
}
