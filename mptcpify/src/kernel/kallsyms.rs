//! The addresses of the kernel variables the programs read
//! (`mptcp_pernet_id` for the namespace guard, `cgroup_bpf_enabled_key`),
//! asked of the kernel's own symbol lookup rather than found by reading
//! /proc/kallsyms.
//!
//! /proc/kallsyms is generated as it is read: 122,000 lines and 40 ms on
//! our hosts, the longest step of start-up (issue 10). The kernel looks a
//! name up in microseconds (`kallsyms_lookup_name`, a binary search since
//! Linux 6.2), and BPF exposes it to one program type: the helper
//! `bpf_kallsyms_lookup_name` of `BPF_PROG_TYPE_SYSCALL` programs
//! (kernel/bpf/syscall.c), which run once when asked
//! (`BPF_PROG_TEST_RUN`). The helper shows an address to exactly the
//! readers /proc/kallsyms shows it to (`bpf_dump_raw_ok`, i.e.
//! `kallsyms_show_value`), so hidden means the same in both ways.
//!
//! The program is 13 instructions built here and loaded with the raw
//! `bpf()` call (`crate::sys::bpf`): aya (0.14) can neither load a syscall program nor run one.
//! Where the kernel refuses it (an LSM, a seccomp filter), the file is
//! scanned as before.

use std::io::BufRead;
use std::os::fd::AsFd;

use crate::sys::bpf::{self, bpf_insn, bpf_prog_type};
use aya_obj::generated::{
    bpf_func_id, BPF_ADD, BPF_ALU64, BPF_CALL, BPF_DW, BPF_EXIT, BPF_F_SLEEPABLE, BPF_IMM, BPF_JMP,
    BPF_K, BPF_LD, BPF_LDX, BPF_MEM, BPF_MOV, BPF_ST, BPF_STX, BPF_X,
};

/// What the kernel says about a symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symbol {
    Address(u64),
    /// Shown as 0: `kernel.kptr_restrict` hides addresses (2 hides them
    /// from everyone, 1 from readers without CAP_SYSLOG).
    Hidden,
    /// Not listed: the kernel lacks CONFIG_KALLSYMS_ALL (data symbols).
    Missing,
}

/// The addresses of `names`: by the BPF helper, or by one scan of
/// /proc/kallsyms where the kernel refuses the helper's program.
pub fn lookup<const N: usize>(names: [&str; N]) -> [Symbol; N] {
    let by_bpf: Option<Vec<Symbol>> = names.iter().map(|n| lookup_by_bpf(n).ok()).collect();
    if let Some(found) = by_bpf {
        return found.try_into().expect("one symbol per name");
    }
    match std::fs::File::open("/proc/kallsyms") {
        Ok(file) => find_symbols_in(std::io::BufReader::with_capacity(64 << 10, file), names),
        Err(_) => [Symbol::Missing; N],
    }
}

/// Why the kernel hides the address of mptcp_pernet_id, and the fix, by
/// `kernel.kptr_restrict` (kernel/kallsyms.c, kallsyms_show_value: 2 hides
/// from everyone, 0 and 1 show to a reader with CAP_SYSLOG).
pub fn hidden_because(kptr_restrict: Option<u8>) -> String {
    match kptr_restrict {
        Some(2) => "the kernel hides the address of mptcp_pernet_id from everyone \
                    (kernel.kptr_restrict = 2); `sysctl -w kernel.kptr_restrict=1` shows it \
                    to root with CAP_SYSLOG"
            .into(),
        Some(level) => format!(
            "the kernel hides the address of mptcp_pernet_id from mptcpify \
             (kernel.kptr_restrict = {level}): mptcpify lacks CAP_SYSLOG (a systemd unit's \
             CapabilityBoundingSet= or ProtectKernelLogs=yes removes it); give it CAP_SYSLOG"
        ),
        None => "the kernel hides the address of mptcp_pernet_id (kernel.kptr_restrict \
                 unreadable); root with CAP_SYSLOG sees it when kernel.kptr_restrict is 0 or 1"
            .into(),
    }
}

/// `errno`s the helper returns (include/uapi/asm-generic/errno-base.h).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;

/// Loads the lookup program for `name`, runs it once, and reads the answer
/// it wrote into its context. `Err` when the kernel refuses the program or
/// the run.
fn lookup_by_bpf(name: &str) -> std::io::Result<Symbol> {
    let program = lookup_program(name)?;
    // The verifier accepts syscall programs only as sleepable.
    let program = bpf::load(
        bpf_prog_type::BPF_PROG_TYPE_SYSCALL,
        &program,
        c"GPL",
        BPF_F_SLEEPABLE,
    )?;
    let mut context = [0u8; 8];
    let returned = bpf::test_run(program.as_fd(), &mut context)? as i32;
    let address = u64::from_ne_bytes(context);
    Ok(match (returned, address) {
        (0, address) if address != 0 => Symbol::Address(address),
        (r, _) if r == -EPERM => Symbol::Hidden,
        (r, _) if r == -ENOENT => Symbol::Missing,
        (r, _) => return Err(std::io::Error::from_raw_os_error(-r)),
    })
}

/// One instruction; `code` is the class | size/source | mode/op bits.
fn insn(code: u32, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
    bpf_insn {
        code: code as u8,
        _bitfield_align_1: [],
        _bitfield_1: bpf_insn::new_bitfield_1(dst, src),
        off,
        imm,
    }
}

/// The program: copies `name` (NUL-padded to whole words) onto its stack,
/// calls `bpf_kallsyms_lookup_name(name, size, 0, &address)`, writes the
/// address into the 8-byte context and returns the helper's result.
fn lookup_program(name: &str) -> std::io::Result<Vec<bpf_insn>> {
    // At least one NUL: the helper checks that the buffer's last byte is 0.
    let words = name.len() / 8 + 1;
    if name.as_bytes().contains(&0) || words > 16 {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let mut padded = name.as_bytes().to_vec();
    padded.resize(words * 8, 0);
    let (r0, r1, r2, r3, r4, r6, r10) = (0, 1, 2, 3, 4, 6, 10);
    // Stack: the name at [-8 - 8 * words, -8), the address at [-8, 0).
    let name_at = -8 - 8 * words as i16;
    let mut program = vec![
        insn(BPF_ALU64 | BPF_MOV | BPF_X, r6, r1, 0, 0),
        insn(BPF_ST | BPF_MEM | BPF_DW, r10, 0, -8, 0),
    ];
    for (i, word) in padded.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // A 64-bit immediate takes two instruction slots.
        program.push(insn(
            BPF_LD | BPF_IMM | BPF_DW,
            r1,
            0,
            0,
            word as u32 as i32,
        ));
        program.push(insn(0, 0, 0, 0, (word >> 32) as u32 as i32));
        program.push(insn(
            BPF_STX | BPF_MEM | BPF_DW,
            r10,
            r1,
            name_at + 8 * i as i16,
            0,
        ));
    }
    program.extend([
        insn(BPF_ALU64 | BPF_MOV | BPF_X, r1, r10, 0, 0),
        insn(BPF_ALU64 | BPF_ADD | BPF_K, r1, 0, 0, name_at.into()),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r2, 0, 0, (words * 8) as i32),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r3, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_X, r4, r10, 0, 0),
        insn(BPF_ALU64 | BPF_ADD | BPF_K, r4, 0, 0, -8),
        insn(
            BPF_JMP | BPF_CALL,
            0,
            0,
            0,
            bpf_func_id::BPF_FUNC_kallsyms_lookup_name as i32,
        ),
        insn(BPF_LDX | BPF_MEM | BPF_DW, r1, r10, -8, 0),
        insn(BPF_STX | BPF_MEM | BPF_DW, r6, r1, 0, 0),
        insn(BPF_JMP | BPF_EXIT, r0, 0, 0, 0),
    ]);
    Ok(program)
}

/// Looks `names` up in /proc/kallsyms as it is read, line by line into
/// one buffer, stopping once each is found (the first listing of a name).
/// A plain scan: the few symbols needed do not justify building a table.
pub fn find_symbols_in<const N: usize>(
    mut kallsyms: impl BufRead,
    names: [&str; N],
) -> [Symbol; N] {
    let mut found: [Option<Symbol>; N] = [None; N];
    let mut line = String::new();
    while found.iter().any(Option::is_none) {
        line.clear();
        match kallsyms.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (Some(address), Some(_kind), Some(symbol)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Module symbols carry a "[module]" suffix after the name.
        for (name, slot) in names.iter().zip(found.iter_mut()) {
            if slot.is_none() && symbol == *name {
                *slot = Some(match u64::from_str_radix(address, 16) {
                    Ok(0) | Err(_) => Symbol::Hidden,
                    Ok(address) => Symbol::Address(address),
                });
            }
        }
    }
    found.map(|f| f.unwrap_or(Symbol::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_address_names_the_setting_or_the_capability_that_hides_it() {
        assert!(hidden_because(Some(2)).contains("kptr_restrict=1"));
        for level in [0, 1] {
            let why = hidden_because(Some(level));
            assert!(why.contains("lacks CAP_SYSLOG"), "{why}");
            assert!(!why.contains("sysctl"), "{why}");
        }
        assert!(hidden_because(None).contains("CAP_SYSLOG"));
    }

    fn find_symbol(kallsyms: &str, name: &str) -> Symbol {
        let [found] = find_symbols_in(kallsyms.as_bytes(), [name]);
        found
    }

    #[test]
    fn kallsyms_tells_hidden_from_missing() {
        let shown = "ffffffff81000000 T _stext\nffffffff83a1b2c0 d mptcp_pernet_id\n";
        assert_eq!(
            find_symbol(shown, "mptcp_pernet_id"),
            Symbol::Address(0xffff_ffff_83a1_b2c0)
        );
        let hidden = "0000000000000000 T _stext\n0000000000000000 d mptcp_pernet_id\n";
        assert_eq!(find_symbol(hidden, "mptcp_pernet_id"), Symbol::Hidden);
        assert_eq!(
            find_symbol("ffffffff81000000 T _stext\n", "mptcp_pernet_id"),
            Symbol::Missing
        );
        assert_eq!(
            find_symbols_in(shown.as_bytes(), ["mptcp_pernet_id", "nothing", "_stext"]),
            [
                Symbol::Address(0xffff_ffff_83a1_b2c0),
                Symbol::Missing,
                Symbol::Address(0xffff_ffff_8100_0000)
            ]
        );
    }

    /// The kernel's lookup and the file agree on this host, for a function
    /// (always listed) and for the guard's variable (listed only with
    /// CONFIG_KALLSYMS_ALL): the BPF program is what runs at start-up.
    /// Needs root (CAP_BPF, CAP_SYSLOG): fails, never skips, without.
    #[test]
    fn the_kernels_lookup_agrees_with_proc_kallsyms() {
        for name in [
            "tcp_v4_connect",
            "mptcp_pernet_id",
            "cgroup_bpf_enabled_key",
        ] {
            let by_bpf = lookup_by_bpf(name)
                .unwrap_or_else(|e| panic!("the lookup program for {name} (needs root): {e}"));
            let file = std::fs::File::open("/proc/kallsyms").expect("/proc/kallsyms");
            let [by_file] = find_symbols_in(std::io::BufReader::new(file), [name]);
            assert_eq!(by_bpf, by_file, "{name}");
        }
        assert!(matches!(
            lookup_by_bpf("tcp_v4_connect"),
            Ok(Symbol::Address(_))
        ));
        assert_eq!(
            lookup_by_bpf("no_such_symbol_mptcpify").unwrap(),
            Symbol::Missing
        );
    }

    #[test]
    fn names_are_padded_with_at_least_one_nul() {
        // 15 characters: two words; 16: three.
        assert_eq!(
            lookup_program("mptcp_pernet_id").unwrap().len(),
            2 + 2 * 3 + 10
        );
        assert_eq!(
            lookup_program("mptcp_pernet_idx").unwrap().len(),
            2 + 3 * 3 + 10
        );
        assert!(lookup_program("a\0b").is_err());
    }
}
